/**
 * Live migration between hosts of different nodes (cluster mode). The source node drives it as
 * on one node (runtime/live-migration.ts `migrateTo`: phases, progress, cancel, fault injection);
 * only the destination is remote. The source node asks the destination host's owner, over HTTP
 * with the shared admin token, through four internal calls (not part of the public API):
 *
 *   POST /v1/internal/migrations/{id}/target   {vmId, tenantId, hostId, spec, failAt} -> {host, port}
 *        the owner prepares a destination worker that listens on its advertise address;
 *   POST /v1/internal/migrations/{id}/arrival  {stdout, stderr} (base64: the source's console)
 *        -> {ok: true} once the VM arrived (it is then that node's VM, held paused) | {ok: false, reason};
 *   POST /v1/internal/migrations/{id}/resume   after the source recorded the switch-over;
 *   POST /v1/internal/migrations/{id}/abort    the migration failed or was cancelled.
 *
 * The guest's memory goes worker to worker over TCP (docs/migration-protocol.md), never through
 * these calls.
 */
import { Body, Controller, HttpCode, Inject, Injectable, Logger, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { AdminOnly } from '../api/auth.js';
import { ProblemError } from '../api/errors.js';
import { RuntimeService } from '../api/runtime.service.js';
import { CONFIG } from '../api/tokens.js';
import type { Config } from '../config/config.js';
import { HostEntity } from '../persistence/entities.js';
import { IncomingVm, LocalIncoming } from '../runtime/live-migration.js';
import type { VmRunner } from '../runtime/vm-runner.js';
import type { VmSpec } from '../runtime/vm.js';
import type { WorkerInit } from '../runtime/protocol.js';

type FailAt = NonNullable<WorkerInit['incoming']>['failAt'];

/** A VM spec as JSON: byte arrays as `{$bytes: base64}`. */
export function encodeSpec(spec: VmSpec): unknown {
  return JSON.parse(JSON.stringify(spec, function (this: Record<string, unknown>, k: string, v: unknown) {
    const raw = this[k];
    return raw instanceof Uint8Array ? { $bytes: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') } : v;
  }));
}

/** The inverse of encodeSpec. */
export function decodeSpec(json: unknown): VmSpec {
  return JSON.parse(JSON.stringify(json), (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { $bytes?: unknown }).$bytes === 'string') {
      return new Uint8Array(Buffer.from((v as { $bytes: string }).$bytes, 'base64'));
    }
    return v;
  }) as VmSpec;
}

/** The destination as the source node sees it: the VM, once arrived, held by `node`. */
export interface RemoteArrived { resume(): Promise<void> }

/** A destination worker on a host of another node, reached at `baseUrl`. */
export class RemoteIncoming implements IncomingVm<RemoteArrived> {
  constructor(private readonly baseUrl: string, private readonly adminToken: string, private readonly migrationId: string,
    private readonly target: { vmId: string; tenantId: string; hostId: string; spec: VmSpec; failAt: FailAt },
    private readonly sourceConsole: () => { stdout: Uint8Array; stderr: Uint8Array }) {}

  private async call<T>(step: string, body: unknown): Promise<T> {
    const r = await fetch(new URL(`/v1/internal/migrations/${this.migrationId}/${step}`, this.baseUrl), {
      method: 'POST', headers: { Authorization: `Bearer ${this.adminToken}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    const text = await r.text();
    let v: unknown;
    try { v = JSON.parse(text); } catch { v = null; }
    if (!r.ok) throw new Error(`the destination node answered ${r.status}: ${(v as { detail?: string } | null)?.detail ?? text.slice(0, 200)}`);
    return v as T;
  }

  listen(): Promise<{ host: string; port: number }> {
    return this.call('target', { ...this.target, spec: encodeSpec(this.target.spec) });
  }

  async arrival(): Promise<{ ok: true; target: RemoteArrived } | { ok: false; reason: string }> {
    const c = this.sourceConsole();
    const b64 = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
    const r = await this.call<{ ok: boolean; reason?: string }>('arrival', { stdout: b64(c.stdout), stderr: b64(c.stderr) });
    if (!r.ok) return { ok: false, reason: r.reason ?? 'the destination VM ended before it ran' };
    return { ok: true, target: { resume: () => this.call('resume', {}).then(() => undefined) } };
  }

  async stop(): Promise<void> { await this.call('abort', {}); }
}

interface Pending { local: LocalIncoming; tenantId: string; vmId: string; hostId: string; runner?: VmRunner }

/** The destination node's side: workers prepared for migrations driven by other nodes. */
@Injectable()
export class IncomingMigrations {
  private readonly log = new Logger('IncomingMigrations');
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly ds: DataSource, private readonly runtime: RuntimeService, @Inject(CONFIG) private readonly config: Config) {}

  private get(id: string): Pending {
    const p = this.pending.get(id);
    if (!p) throw new ProblemError(404, 'Not Found', `no incoming migration ${id} on this node`);
    return p;
  }

  async target(id: string, b: { vmId: string; tenantId: string; hostId: string; spec: unknown; failAt: FailAt }): Promise<{ host: string; port: number }> {
    if (!this.config.cluster) throw new ProblemError(404, 'Not Found', 'this service does not run in cluster mode');
    if (this.pending.has(id)) throw new ProblemError(409, 'Conflict', `migration ${id} already has a destination here`);
    const host = await this.ds.getRepository(HostEntity).findOneBy({ id: b.hostId, tenantId: b.tenantId });
    if (!host) throw new ProblemError(404, 'Not Found', `host ${b.hostId} not found`);
    const local = new LocalIncoming(this.runtime.ensureHost(host), b.vmId, decodeSpec(b.spec), b.failAt ?? null, this.config.cluster.advertiseAddress);
    this.pending.set(id, { local, tenantId: b.tenantId, vmId: b.vmId, hostId: b.hostId });
    try {
      return await local.listen();
    } catch (e) {
      this.pending.delete(id);
      await local.stop().catch(() => undefined);
      throw new ProblemError(502, 'Bad Gateway', (e as Error).message);
    }
  }

  async arrival(id: string, b: { stdout: string; stderr: string }): Promise<{ ok: boolean; reason?: string }> {
    const p = this.get(id);
    const a = await p.local.arrival();
    if (!a.ok) { this.pending.delete(id); return { ok: false, reason: a.reason }; }
    p.runner = a.target;
    await this.runtime.adoptIncoming(p.tenantId, p.vmId, p.hostId, a.target, { stdout: Buffer.from(b.stdout ?? '', 'base64'), stderr: Buffer.from(b.stderr ?? '', 'base64') });
    return { ok: true };
  }

  async resume(id: string): Promise<void> {
    const p = this.get(id);
    this.pending.delete(id);
    await p.runner?.resume();
  }

  async abort(id: string): Promise<void> {
    const p = this.pending.get(id);
    this.pending.delete(id);
    if (!p) return;
    if (p.runner) await this.runtime.stopVm(p.vmId); else await p.local.stop();
    this.log.warn(`incoming migration ${id} of VM ${p.vmId} aborted by its source`);
  }
}

@ApiExcludeController()
@Controller('v1/internal/migrations')
export class InternalMigrationsController {
  constructor(private readonly incoming: IncomingMigrations) {}

  @Post(':id/target') @HttpCode(200) @AdminOnly()
  target(@Param('id', ParseUUIDPipe) id: string, @Body() b: Record<string, unknown>) { return this.incoming.target(id, b as never); }

  @Post(':id/arrival') @HttpCode(200) @AdminOnly()
  arrival(@Param('id', ParseUUIDPipe) id: string, @Body() b: Record<string, unknown>) { return this.incoming.arrival(id, b as never); }

  @Post(':id/resume') @HttpCode(200) @AdminOnly()
  async resume(@Param('id', ParseUUIDPipe) id: string) { await this.incoming.resume(id); return {}; }

  @Post(':id/abort') @HttpCode(200) @AdminOnly()
  async abort(@Param('id', ParseUUIDPipe) id: string) { await this.incoming.abort(id); return {}; }
}
