/**
 * Long-running work as persisted Operations (Google AIP-151 style): pending -> running ->
 * succeeded | failed | cancelled, with progress. Runners receive an AbortSignal that `cancel`
 * fires; a runner that ignores it still ends as cancelled (its result is discarded).
 */
import { Controller, Get, HttpCode, Injectable, OnModuleDestroy, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { TenantId } from './auth.js';
import { conflict, notFound } from './errors.js';
import { EventsService } from './events.service.js';
import { OperationEntity } from '../persistence/entities.js';
import { listPage, PageQuery } from './pagination.js';

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

  constructor(private readonly ds: DataSource, private readonly events: EventsService) {}

  /** Persists a pending operation and starts `runner` in the background. */
  async start(tenantId: string, kind: string, subject: string, runner: Runner) {
    const op = await this.events.tx(async (m) => {
      const o = await m.save(m.create(OperationEntity, { tenantId, kind, subject, state: 'pending', progress: 0, error: null, result: null }));
      await this.events.append(m, tenantId, 'operation.created', `operation:${o.id}`, { kind, subject });
      return o;
    });
    const ac = new AbortController();
    this.running.set(op.id, ac);
    void this.run(op, runner, ac);
    return operationView(op);
  }

  private async finish(op: OperationEntity, patch: Partial<OperationEntity>, type: string) {
    await this.events.tx(async (m) => {
      await m.update(OperationEntity, { id: op.id }, patch as never);
      await this.events.append(m, op.tenantId, type, `operation:${op.id}`, { kind: op.kind, subject: op.subject, ...(patch.error ? { error: patch.error } : {}) });
    });
  }

  private async run(op: OperationEntity, runner: Runner, ac: AbortController) {
    try {
      await this.ds.getRepository(OperationEntity).update({ id: op.id, state: 'pending' }, { state: 'running' });
      const result = await runner({
        signal: ac.signal,
        progress: async (p) => { await this.ds.getRepository(OperationEntity).update({ id: op.id, state: 'running' }, { progress: Math.max(0, Math.min(1, p)) }); },
      });
      if (ac.signal.aborted) await this.finish(op, { state: 'cancelled' }, 'operation.cancelled');
      else await this.finish(op, { state: 'succeeded', progress: 1, result }, 'operation.succeeded');
    } catch (e) {
      if (ac.signal.aborted) await this.finish(op, { state: 'cancelled' }, 'operation.cancelled');
      else await this.finish(op, { state: 'failed', error: { message: e instanceof Error ? e.message : String(e) } }, 'operation.failed');
    } finally {
      this.running.delete(op.id);
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

  /** Requests cancellation. Raises: 404 unknown, 409 when the operation already ended. */
  async cancel(tenantId: string, id: string) {
    const o = await this.get(tenantId, id);
    const ac = this.running.get(id);
    if (!ac || o.state === 'succeeded' || o.state === 'failed' || o.state === 'cancelled') {
      throw conflict(`operation ${id} is ${o.state}; only pending or running operations can be cancelled`, { state: o.state });
    }
    ac.abort();
    return { ...o, cancelRequested: true };
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
