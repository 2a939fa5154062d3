/**
 * The append-only, per-tenant event log. `append` runs inside the caller's transaction and
 * allocates the next per-tenant `seq` by incrementing the tenant's counter row, which serializes
 * concurrent appends of one tenant (row lock) and keeps seq gap-free and monotonic.
 *
 * Retention (Kubernetes' watch semantics): each tenant keeps its newest HVSIM_EVENT_RETENTION
 * events; older ones are pruned every PRUNE_EVERY_MS, and asking for events after a `since` that
 * has been pruned away is `410 Gone` (the client re-reads the state, then follows from the
 * newest seq).
 */
import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { DataSource, EntityManager } from 'typeorm';
import { EventEntity } from '../persistence/entities.js';
import { ProblemError } from './errors.js';
import { CONFIG } from './tokens.js';
import type { Config } from '../config/config.js';

const PRUNE_EVERY_MS = 30_000;

export interface HvEvent { seq: number; time: string; type: string; tenantId: string; subject: string; data: Record<string, unknown> }

export const toEvent = (e: EventEntity): HvEvent => ({
  seq: Number(e.seq), time: e.time.toISOString(), type: e.type, tenantId: e.tenantId, subject: e.subject, data: e.data,
});

const PENDING = new WeakMap<EntityManager, HvEvent[]>();

@Injectable()
export class EventsService implements OnModuleInit, OnModuleDestroy {
  /** Emits 'event' (HvEvent) for every event, after the transaction that appended it commits. */
  readonly live = new EventEmitter().setMaxListeners(0);
  private readonly log = new Logger('EventsService');
  private pruner: NodeJS.Timeout | null = null;

  constructor(private readonly ds: DataSource, @Inject(CONFIG) private readonly config: Config) {}

  onModuleInit(): void {
    this.pruner = setInterval(() => {
      this.prune().catch((e: unknown) => this.log.warn(`event pruning failed (retried in ${PRUNE_EVERY_MS / 1000} s): ${(e as Error).message}`));
    }, PRUNE_EVERY_MS);
    this.pruner.unref();
  }

  onModuleDestroy(): void { if (this.pruner) clearInterval(this.pruner); }

  /** Deletes every tenant's events older than its newest `keep` (default HVSIM_EVENT_RETENTION); returns how many. */
  async prune(keep = this.config.retention.events): Promise<number> {
    const [, n] = (await this.ds.query('DELETE FROM events e USING tenants t WHERE e.tenant_id = t.id AND e.seq <= t.event_seq - $1', [keep])) as [unknown, number];
    return n ?? 0;
  }

  /** Raises 410 Gone when events after `since` have been pruned (the oldest kept is not since + 1 or earlier). */
  private async checkRetained(tenantId: string, since: number): Promise<void> {
    const [row] = (await this.ds.query('SELECT min(seq) AS oldest FROM events WHERE tenant_id = $1', [tenantId])) as Array<{ oldest: string | null }>;
    const oldest = row?.oldest === null || row?.oldest === undefined ? null : Number(row.oldest);
    if (oldest !== null && oldest > since + 1) {
      throw new ProblemError(410, 'Gone', `events after seq ${since} are no longer kept (the oldest kept is ${oldest}); read the current state and follow from the newest seq`, { oldestSeq: oldest });
    }
  }

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
    await this.checkRetained(tenantId, since);
    return (await this.ds.getRepository(EventEntity).createQueryBuilder('e')
      .where('e.tenant_id = :tenantId AND e.seq > :since AND e.subject IN (:...subjects)', { tenantId, since, subjects })
      .orderBy('e.seq', 'ASC').limit(limit).getMany()).map(toEvent);
  }

  /** The events of a tenant with seq from..to (inclusive), oldest first (those still kept). */
  async range(tenantId: string, from: number, to: number): Promise<HvEvent[]> {
    return (await this.ds.getRepository(EventEntity).createQueryBuilder('e')
      .where('e.tenant_id = :tenantId AND e.seq >= :from AND e.seq <= :to', { tenantId, from, to })
      .orderBy('e.seq', 'ASC').getMany()).map(toEvent);
  }

  /** Events with seq > since, oldest first, optionally for one subject. */
  async list(tenantId: string, since: number, limit: number, subject?: string): Promise<HvEvent[]> {
    await this.checkRetained(tenantId, since);
    const q = this.ds.getRepository(EventEntity).createQueryBuilder('e')
      .where('e.tenant_id = :tenantId AND e.seq > :since', { tenantId, since })
      .orderBy('e.seq', 'ASC').limit(limit);
    if (subject) q.andWhere('e.subject = :subject', { subject });
    return (await q.getMany()).map(toEvent);
  }
}
