/**
 * Long-running work as persisted Operations (Google AIP-151 style): pending -> running ->
 * succeeded | failed | cancelled, with progress. Runners receive an AbortSignal that `cancel`
 * fires; a runner that ignores it still ends as cancelled (its result is discarded). Recording an
 * outcome retries while the database is unreachable; an outcome that still cannot be recorded is
 * logged (never an unhandled rejection) and settled at the next start-up (`service-restart`).
 */
import { Controller, Get, HttpCode, Inject, Injectable, Logger, OnModuleDestroy, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { DataSource, In } from 'typeorm';
import { withRetry } from './retry.js';
import { TenantId } from './auth.js';
import { conflict, notFound } from './errors.js';
import { EventsService } from './events.service.js';
import { OperationEntity } from '../persistence/entities.js';
import { listPage, PageQuery } from './pagination.js';
import { CONFIG } from './tokens.js';
import type { Config } from '../config/config.js';

export interface RunnerContext {
  signal: AbortSignal;
  /** Reports progress in [0, 1]. */
  progress(p: number): Promise<void>;
}
export type Runner = (ctx: RunnerContext) => Promise<Record<string, unknown>>;

export const operationView = (o: OperationEntity) => ({
  id: o.id, kind: o.kind, subject: o.subject, state: o.state, progress: o.progress, error: o.error, result: o.result,
  createdAt: o.createdAt.toISOString(), updatedAt: o.updatedAt.toISOString(),
});

@Injectable()
export class OperationsService implements OnModuleDestroy {
  private readonly running = new Map<string, AbortController>();
  private readonly log = new Logger('OperationsService');

  constructor(private readonly ds: DataSource, private readonly events: EventsService, @Inject(CONFIG) private readonly config: Config) {}

  /** Persists a pending operation (in cluster mode, recorded as this node's) and starts `runner` in the background. */
  async start(tenantId: string, kind: string, subject: string, runner: Runner) {
    const op = await this.events.tx(async (m) => {
      const o = await m.save(m.create(OperationEntity, { tenantId, kind, subject, state: 'pending', progress: 0, error: null, result: null, nodeId: this.config.cluster?.nodeId ?? null }));
      await this.events.append(m, tenantId, 'operation.created', `operation:${o.id}`, { kind, subject });
      return o;
    });
    const ac = new AbortController();
    this.running.set(op.id, ac);
    void this.run(op, runner, ac);
    return operationView(op);
  }

  /** Records the outcome once (only an operation still pending or running changes). */
  private async finish(op: OperationEntity, patch: Partial<OperationEntity>, type: string) {
    await withRetry(() => this.events.tx(async (m) => {
      const r = await m.update(OperationEntity, { id: op.id, state: In(['pending', 'running']) }, patch as never);
      if (!r.affected) return;
      await this.events.append(m, op.tenantId, type, `operation:${op.id}`, { kind: op.kind, subject: op.subject, ...(patch.error ? { error: patch.error } : {}) });
    }), { attempts: 12 });
  }

  /** Runs an operation to its recorded end; never rejects. */
  private async run(op: OperationEntity, runner: Runner, ac: AbortController): Promise<void> {
    try {
      await this.execute(op, runner, ac);
    } catch (e) {
      this.log.error(`operation ${op.id} (${op.kind}): its outcome could not be recorded: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.running.delete(op.id);
    }
  }

  private async execute(op: OperationEntity, runner: Runner, ac: AbortController): Promise<void> {
    try {
      await withRetry(() => this.ds.getRepository(OperationEntity).update({ id: op.id, state: 'pending' }, { state: 'running' }));
      const result = await runner({
        signal: ac.signal,
        progress: async (p) => { await this.ds.getRepository(OperationEntity).update({ id: op.id, state: 'running' }, { progress: Math.max(0, Math.min(1, p)) }); },
      });
      if (ac.signal.aborted) await this.finish(op, { state: 'cancelled' }, 'operation.cancelled');
      else await this.finish(op, { state: 'succeeded', progress: 1, result }, 'operation.succeeded');
    } catch (e) {
      if (ac.signal.aborted) await this.finish(op, { state: 'cancelled' }, 'operation.cancelled');
      else await this.finish(op, { state: 'failed', error: { message: e instanceof Error ? e.message : String(e) } }, 'operation.failed');
    }
  }

  async get(tenantId: string, id: string) {
    const o = await this.ds.getRepository(OperationEntity).findOneBy({ id, tenantId });
    if (!o) throw notFound('operation', id);
    return operationView(o);
  }

  list(tenantId: string, q: PageQuery) {
    return listPage(this.ds.getRepository(OperationEntity), tenantId, q, operationView);
  }

  /**
   * Requests cancellation. An operation recorded pending/running whose work no longer runs here
   * (its outcome could not be recorded) is recorded cancelled at once. Raises: 404 unknown, 409
   * when the operation already ended (saying how).
   */
  async cancel(tenantId: string, id: string) {
    const o = await this.get(tenantId, id);
    if (o.state === 'succeeded' || o.state === 'failed' || o.state === 'cancelled') {
      throw conflict(`operation ${id} has already ended (${o.state}); only a pending or running operation can be cancelled`, { state: o.state });
    }
    const ac = this.running.get(id);
    if (ac) {
      ac.abort();
      return { ...o, cancelRequested: true };
    }
    const row = await this.ds.getRepository(OperationEntity).findOneByOrFail({ id, tenantId });
    await this.finish(row, { state: 'cancelled' }, 'operation.cancelled');
    return { ...(await this.get(tenantId, id)), cancelRequested: true };
  }

  /** On shutdown: cancels running operations and waits (up to 2 s) for them to record it. */
  async onModuleDestroy(): Promise<void> {
    await this.drain();
  }

  /** Cancels every running operation and waits until they have ended. */
  async drain(): Promise<void> {
    for (const ac of this.running.values()) ac.abort();
    for (let i = 0; i < 100 && this.running.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
  }
}

@ApiTags('operations')
@ApiBearerAuth()
@Controller('v1/operations')
export class OperationsController {
  constructor(private readonly ops: OperationsService) {}

  @Get()
  list(@TenantId() t: string, @Query() q: PageQuery) { return this.ops.list(t, q); }

  @Get(':id')
  get(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.ops.get(t, id); }

  @Post(':id/cancel') @HttpCode(202)
  cancel(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.ops.cancel(t, id); }
}
