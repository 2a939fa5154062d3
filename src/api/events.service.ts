/**
 * The append-only, per-tenant event log. `append` runs inside the caller's transaction and
 * allocates the next per-tenant `seq` by incrementing the tenant's counter row, which serializes
 * concurrent appends of one tenant (row lock) and keeps seq gap-free and monotonic.
 */
import { Injectable } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { DataSource, EntityManager } from 'typeorm';
import { EventEntity } from '../persistence/entities.js';

export interface HvEvent { seq: number; time: string; type: string; tenantId: string; subject: string; data: Record<string, unknown> }

export const toEvent = (e: EventEntity): HvEvent => ({
  seq: Number(e.seq), time: e.time.toISOString(), type: e.type, tenantId: e.tenantId, subject: e.subject, data: e.data,
});

const PENDING = new WeakMap<EntityManager, HvEvent[]>();

@Injectable()
export class EventsService {
  /** Emits 'event' (HvEvent) for every event, after the transaction that appended it commits. */
  readonly live = new EventEmitter().setMaxListeners(0);

  constructor(private readonly ds: DataSource) {}

  /**
   * Runs `work` in a transaction and publishes the events it appended once it has committed
   * (never for a rolled-back transaction).
   */
  async tx<T>(work: (m: EntityManager) => Promise<T>): Promise<T> {
    let appended: HvEvent[] = [];
    const result = await this.ds.transaction(async (m) => {
      appended = [];
      PENDING.set(m, appended);
      return work(m);
    });
    for (const e of appended) this.live.emit('event', e);
    return result;
  }

  async append(m: EntityManager, tenantId: string, type: string, subject: string, data: Record<string, unknown>): Promise<HvEvent> {
    // TypeORM returns [rows, affected] for UPDATE ... RETURNING.
    const [rows] = (await m.query('UPDATE tenants SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq', [tenantId])) as [Array<{ event_seq: string }>, number];
    if (!rows?.[0]) throw new Error(`tenant ${tenantId} vanished while appending an event`);
    const e = m.create(EventEntity, { tenantId, seq: rows[0].event_seq, time: new Date(), type, subject, data });
    await m.save(EventEntity, e);
    const ev = toEvent(e);
    const pending = PENDING.get(m);
    if (!pending) throw new Error('EventsService.append must run inside EventsService.tx');
    pending.push(ev);
    return ev;
  }

  /** Events with seq > since for any of `subjects`, oldest first. */
  async listSubjects(tenantId: string, since: number, limit: number, subjects: string[]): Promise<HvEvent[]> {
    return (await this.ds.getRepository(EventEntity).createQueryBuilder('e')
      .where('e.tenant_id = :tenantId AND e.seq > :since AND e.subject IN (:...subjects)', { tenantId, since, subjects })
      .orderBy('e.seq', 'ASC').limit(limit).getMany()).map(toEvent);
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
