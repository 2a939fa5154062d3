/**
 * The append-only, per-tenant event log. `append` runs inside the caller's transaction and
 * allocates the next per-tenant `seq` by incrementing the tenant's counter row, which serializes
 * concurrent appends of one tenant (row lock) and keeps seq gap-free and monotonic.
 */
import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { EventEntity } from '../persistence/entities.js';

export interface HvEvent { seq: number; time: string; type: string; tenantId: string; subject: string; data: Record<string, unknown> }

export const toEvent = (e: EventEntity): HvEvent => ({
  seq: Number(e.seq), time: e.time.toISOString(), type: e.type, tenantId: e.tenantId, subject: e.subject, data: e.data,
});

@Injectable()
export class EventsService {
  constructor(private readonly ds: DataSource) {}

  async append(m: EntityManager, tenantId: string, type: string, subject: string, data: Record<string, unknown>): Promise<HvEvent> {
    // TypeORM returns [rows, affected] for UPDATE ... RETURNING.
    const [rows] = (await m.query('UPDATE tenants SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq', [tenantId])) as [Array<{ event_seq: string }>, number];
    if (!rows?.[0]) throw new Error(`tenant ${tenantId} vanished while appending an event`);
    const e = m.create(EventEntity, { tenantId, seq: rows[0].event_seq, time: new Date(), type, subject, data });
    await m.save(EventEntity, e);
    return toEvent(e);
  }

  /** Events with seq > since, oldest first, optionally for one subject. */
  async list(tenantId: string, since: number, limit: number, subject?: string): Promise<HvEvent[]> {
    const q = this.ds.getRepository(EventEntity).createQueryBuilder('e')
      .where('e.tenant_id = :tenantId AND e.seq > :since', { tenantId, since })
      .orderBy('e.seq', 'ASC').limit(limit);
    if (subject) q.andWhere('e.subject = :subject', { subject });
    return (await q.getMany()).map(toEvent);
  }
}
