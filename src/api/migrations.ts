/**
 * Live migration over REST: POST /v1/vms/{id}/migrations starts a pre-copy migration as an
 * Operation and a migration resource whose phase follows KubeVirt's
 *
 *   pending -> preparing-target -> target-ready -> running -> completed | failed | cancelled
 *
 * with QEMU query-migrate-style statistics after every round (`migration.progress` events and
 * GET). The VM is `migrating` meanwhile and `running` again afterwards, on the destination host
 * when it completed, on the source otherwise. The transport is a real TCP connection between
 * the two VM workers (docs/migration-protocol.md), driven by runtime/live-migration.ts; this service
 * validates, persists and reports.
 *
 * umeAwareMigration off (QEMU's behaviour): a VM with known poisoned pages is refused (409 naming
 * them), and a latent error the copy reads panics the source host. On: poisoned pages travel as
 * error metadata and the destination marks them corrupted.
 */
import { Body, Controller, Get, HttpCode, Inject, Injectable, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsUUID, Max, Min, ValidateNested } from 'class-validator';
import { DataSource } from 'typeorm';
import { TenantId } from './auth.js';
import { conflict, notFound, ProblemError } from './errors.js';
import { EventsService } from './events.service.js';
import { OperationsService, RunnerContext } from './operations.js';
import { RuntimeService } from './runtime.service.js';
import { listPage, PageQuery } from './pagination.js';
import { HostEntity, MemoryErrorEntity, MigrationEntity, VmEntity } from '../persistence/entities.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { POISON } from '../hypervisor/host-memory.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import type { MigrationParams } from '../migration/source.js';
import { MigrateResult, migrateTo, migrateVm } from '../runtime/live-migration.js';
import { ClusterService } from '../cluster/cluster.service.js';
import { RemoteArrived, RemoteIncoming } from '../cluster/remote-migration.js';
import { CONFIG } from './tokens.js';
import type { Config } from '../config/config.js';
import type { VmRunner } from '../runtime/vm-runner.js';

export const MIGRATION_PHASES = ['pending', 'preparing-target', 'target-ready', 'running', 'completed', 'failed', 'cancelled'] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];
const FAULT_PHASES = ['preparing-target', 'target-ready', 'running'] as const;

/** Defaults: QEMU's downtime-limit (300 ms), a 1 GiB/s link, KubeVirt-like limits. */
export const MIGRATION_DEFAULTS = { maxDowntimeMs: 300, maxBandwidthMiBps: 1024, timeoutS: 300, maxRounds: 30 } as const;

export class MigrationFaultsDto {
  /** The connection drops after this many page records. */
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) dropConnectionAfterPages?: number;
  /** The destination fails in this phase. */
  @ApiPropertyOptional({ enum: FAULT_PHASES }) @IsOptional() @IsIn(FAULT_PHASES) destinationFailsAt?: (typeof FAULT_PHASES)[number];
  /** A slower link than maxBandwidthMiBps. */
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(65536) bandwidthMiBps?: number;
}

export class CreateMigrationDto {
  @ApiProperty() @IsUUID() destinationHostId!: string;
  @ApiProperty({ enum: ['precopy'] }) @IsIn(['precopy']) mode!: 'precopy';
  /** Largest acceptable stop-and-copy time, virtual ms (default 300). */
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(60000) maxDowntimeMs?: number;
  /** Link bandwidth in MiB per second of virtual time (default 1024). */
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(65536) maxBandwidthMiBps?: number;
  /** Wall-clock limit (default 300 s). */
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(3600) timeoutS?: number;
  /** Pre-copy rounds before stop-and-copy is forced (default 30). */
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(1000) maxRounds?: number;
  @ApiPropertyOptional({ type: MigrationFaultsDto }) @IsOptional() @ValidateNested() @Type(() => MigrationFaultsDto) faults?: MigrationFaultsDto;
}

export const migrationView = (m: MigrationEntity) => ({
  id: m.id, vmId: m.vmId, sourceHostId: m.sourceHostId, destinationHostId: m.destinationHostId, operationId: m.operationId, mode: m.mode,
  phase: m.phase, params: m.params, faults: m.faults, stats: m.stats, failureReason: m.failureReason,
  createdAt: m.createdAt.toISOString(), updatedAt: m.updatedAt.toISOString(), completedAt: m.completedAt?.toISOString() ?? null,
});

@Injectable()
export class MigrationsService {
  constructor(private readonly ds: DataSource, private readonly events: EventsService, private readonly runtime: RuntimeService, private readonly ops: OperationsService,
    private readonly cluster: ClusterService, @Inject(CONFIG) private readonly config: Config & { resolvedAdminToken: string }) {}

  /**
   * Starts a migration. Raises 404 (VM, destination host), 400 (same host), 409 (VM not running,
   * protection domains, destination not ready, known poisoned pages without the technique), 507
   * (no room on the destination).
   */
  async create(tenantId: string, vmId: string, dto: CreateMigrationDto) {
    return this.runtime.serial(vmId, async () => {
      const vm = await this.ds.getRepository(VmEntity).findOneBy({ id: vmId, tenantId });
      if (!vm) throw notFound('vm', vmId);
      const runner = this.runtime.runner(vmId);
      if (vm.state !== 'running' || !runner) throw conflict(`VM ${vmId} is ${vm.state}: only a running VM can migrate`, { state: vm.state });
      if (vm.domains?.length) throw conflict(`VM ${vmId} has ${vm.domains.length} protection domain(s), whose memory never leaves its host: it cannot be migrated`, { domains: vm.domains.map((d) => d.name) });
      const dest = await this.ds.getRepository(HostEntity).findOneBy({ id: dto.destinationHostId, tenantId });
      if (!dest) throw notFound('host', dto.destinationHostId);
      if (dest.id === vm.hostId) throw new ProblemError(400, 'Bad Request', `VM ${vmId} already runs on host ${dest.id}`);
      if (dest.state !== 'ready') throw conflict(`destination host ${dest.id} is ${dest.state}`, { hostId: dest.id, hostState: dest.state });
      const free = this.runtime.hostUsage(dest).freeMiB;
      if (free < vm.memoryMiB) throw new ProblemError(507, 'Insufficient Storage', `destination host ${dest.id} has ${free} MiB free, the VM needs ${vm.memoryMiB} MiB`, { freeMiB: free, requestedMiB: vm.memoryMiB });
      const source = await this.ds.getRepository(HostEntity).findOneByOrFail({ id: vm.hostId });
      const technique = resolveTechniques(source.techniques, vm.techniques).umeAwareMigration.enabled === true;
      if (!technique) {
        const known = await this.knownPoisoned(runner, source);
        if (known.length) throw conflict(`VM ${vmId} has ${known.length} guest page(s) with known uncorrectable memory errors; without umeAwareMigration they cannot be migrated`, { poisonedGuestPhysicalAddresses: known });
      }
      const faults = { ...(dto.faults ?? {}) };
      const params = {
        maxDowntimeMs: dto.maxDowntimeMs ?? MIGRATION_DEFAULTS.maxDowntimeMs, maxBandwidthMiBps: dto.maxBandwidthMiBps ?? MIGRATION_DEFAULTS.maxBandwidthMiBps,
        timeoutS: dto.timeoutS ?? MIGRATION_DEFAULTS.timeoutS, maxRounds: dto.maxRounds ?? MIGRATION_DEFAULTS.maxRounds, umeAwareMigration: technique,
      };
      const mig = await this.events.tx(async (m) => {
        const v = await m.findOneOrFail(VmEntity, { where: { id: vmId }, lock: { mode: 'pessimistic_write' } });
        const row = await m.save(m.create(MigrationEntity, {
          tenantId, vmId, sourceHostId: source.id, destinationHostId: dest.id, operationId: null, mode: 'precopy', phase: 'pending', params, faults, stats: null, failureReason: null, completedAt: null,
        }));
        await this.runtime.recordTransition(m, v, ['migrate'], null, { migrationId: row.id });
        await this.events.append(m, tenantId, 'migration.phase', `vm:${vmId}`, { migrationId: row.id, from: null, to: 'pending' });
        return row;
      });
      const view = migrationView(mig);
      const op = await this.ops.start(tenantId, 'vm.migrate', `vm:${vmId}`, (ctx) => this.carryOut(mig, runner, source, dest, ctx));
      await this.ds.getRepository(MigrationEntity).update({ id: mig.id }, { operationId: op.id });
      mig.operationId = op.id;
      return { operation: op, migration: { ...view, operationId: op.id } };
    });
  }

  /** Guest pages of the VM whose errors the host knows (poisoned known, or already found corrupted). */
  private async knownPoisoned(runner: VmRunner, host: HostEntity): Promise<number[]> {
    const poison = this.runtime.ensureHost(host).memory.poison;
    const pages = await runner.ask({ type: 'memory-map' });
    return pages.filter((p) => p.corrupted || (p.hpa >= 0 && poison[p.hpa / PAGE_SIZE] === POISON.Known)).map((p) => p.gpa);
  }

  private async phase(mig: MigrationEntity, to: MigrationPhase, patch: Partial<MigrationEntity> = {}): Promise<void> {
    const from = mig.phase;
    mig.phase = to;
    Object.assign(mig, patch);
    await this.events.tx(async (m) => {
      await m.update(MigrationEntity, { id: mig.id }, { phase: to, ...patch } as never);
      await this.events.append(m, mig.tenantId, 'migration.phase', `vm:${mig.vmId}`, { migrationId: mig.id, from, to, ...(patch.failureReason ? { reason: patch.failureReason } : {}) });
    });
  }

  /** The Operation's runner: the migration itself (runtime/live-migration.ts), with its phases, progress and outcome recorded. */
  private async carryOut(mig: MigrationEntity, src: VmRunner, source: HostEntity, dest: HostEntity, ctx: RunnerContext): Promise<Record<string, unknown>> {
    const p = mig.params as typeof MIGRATION_DEFAULTS & { umeAwareMigration: boolean };
    const faults = mig.faults as MigrationFaultsDto;
    const params: MigrationParams = {
      migrationId: mig.id, maxDowntimeMs: p.maxDowntimeMs, bandwidthMiBps: Math.min(p.maxBandwidthMiBps, faults.bandwidthMiBps ?? Infinity),
      maxRounds: p.maxRounds, timeoutS: p.timeoutS, technique: p.umeAwareMigration, dropConnectionAfterPages: faults.dropConnectionAfterPages,
    };
    const hooks = {
      phase: (to: MigrationPhase) => this.phase(mig, to),
      progress: (stats: unknown) => this.progress(mig, stats as Record<string, unknown>),
      latentError: (e: { gpa: number; frame: number }) => this.latentFound(mig, e.gpa, e.frame),
      signal: ctx.signal,
    };
    const switched = () => this.events.tx(async (m) => {
      const v = await m.findOneOrFail(VmEntity, { where: { id: mig.vmId }, lock: { mode: 'pessimistic_write' } });
      v.hostId = dest.id;
      await this.runtime.recordTransition(m, v, ['migrated'], null, { migrationId: mig.id, hostId: dest.id });
    });
    const failAt = faults.destinationFailsAt ?? null;
    let r: MigrateResult<unknown>;
    if (this.runtime.ownsHost(dest.id)) {
      r = await migrateVm(src, this.runtime.ensureHost(dest), mig.vmId, params, failAt, hooks);
      if (r.ok) { await this.runtime.adopt(mig.vmId, r.target as VmRunner, dest.id); await switched(); }
    } else {
      // Cluster mode: the destination host runs on another node (src/cluster/remote-migration.ts).
      const owner = await this.cluster.ownerOf('host', dest.id);
      if (!owner?.alive) throw new Error(`the node of destination host ${dest.id} is not available`);
      r = await migrateTo(src, () => new RemoteIncoming(owner.httpUrl, this.config.resolvedAdminToken, mig.id,
        { vmId: mig.vmId, tenantId: mig.tenantId, hostId: dest.id, spec: src.spec, failAt }, () => ({ stdout: src.console.bytes(0), stderr: src.console.bytes(1) })), params, hooks);
      if (r.ok) {
        // Recorded on the new host before the VM runs on there (its end is the destination node's to record).
        await switched();
        await this.runtime.release(mig.vmId);
        await (r.target as RemoteArrived).resume();
      }
    }
    if (r.ok) {
      await this.phase(mig, 'completed', { stats: r.outcome as unknown as Record<string, unknown>, completedAt: new Date() });
      return { migrationId: mig.id, ...r.outcome };
    }
    if (r.hostPanic) {
      await this.events.tx((m) => this.events.append(m, mig.tenantId, 'vm.memory-failure', `vm:${mig.vmId}`, {
        recipient: 'hypervisor', action: 'fatal', actionRequired: true, during: 'migration', frame: r.hostPanic!.frame, guestPhysicalAddress: r.hostPanic!.gpa,
      }));
      await this.phase(mig, 'failed', { failureReason: r.reason, completedAt: new Date() });
      await this.runtime.panicHost(mig.tenantId, source);
    } else {
      await this.phase(mig, ctx.signal.aborted || r.reason === 'cancelled' ? 'cancelled' : 'failed', { failureReason: r.reason, completedAt: new Date() });
      await this.events.tx(async (m) => {
        const v = await m.findOneOrFail(VmEntity, { where: { id: mig.vmId }, lock: { mode: 'pessimistic_write' } });
        await this.runtime.recordTransition(m, v, ['migration-failed'], r.reason, { migrationId: mig.id });
      });
    }
    throw new Error(r.reason);
  }

  private async progress(mig: MigrationEntity, stats: Record<string, unknown>): Promise<void> {
    mig.stats = stats;
    await this.events.tx(async (m) => {
      await m.update(MigrationEntity, { id: mig.id }, { stats } as never);
      await this.events.append(m, mig.tenantId, 'migration.progress', `vm:${mig.vmId}`, { migrationId: mig.id, ...stats });
    });
  }

  /** The UME-aware copy found a latent error: the host knows it now (its record says so) and the page travels as metadata. */
  private async latentFound(mig: MigrationEntity, gpa: number, frame: number): Promise<void> {
    await this.events.tx(async (m) => {
      await m.update(MemoryErrorEntity, { hostId: mig.sourceHostId, frame, state: 'latent' }, { state: 'known' });
      await this.events.append(m, mig.tenantId, 'vm.memory-failure', `vm:${mig.vmId}`, {
        recipient: 'hypervisor', action: 'ignore', actionRequired: false, during: 'migration', foundBy: 'migration-copy', frame, guestPhysicalAddress: gpa,
      });
    });
  }

  async get(tenantId: string, id: string) {
    const m = await this.ds.getRepository(MigrationEntity).findOneBy({ id, tenantId });
    if (!m) throw notFound('migration', id);
    return migrationView(m);
  }

  async list(tenantId: string, vmId: string, q: PageQuery) {
    if (!await this.ds.getRepository(VmEntity).findOneBy({ id: vmId, tenantId })) throw notFound('vm', vmId);
    return listPage(this.ds.getRepository(MigrationEntity), tenantId, q, migrationView, { vmId });
  }

  /** Cancels a migration that has not switched over (its Operation is cancelled; the VM runs on at the source). */
  async cancel(tenantId: string, id: string) {
    const m = await this.get(tenantId, id);
    if (!['pending', 'preparing-target', 'target-ready', 'running'].includes(m.phase)) throw conflict(`migration ${id} is ${m.phase}`, { phase: m.phase });
    if (m.operationId) await this.ops.cancel(tenantId, m.operationId);
    return this.get(tenantId, id);
  }
}

@ApiTags('migrations')
@ApiBearerAuth()
@Controller('v1')
export class MigrationsController {
  constructor(private readonly migrations: MigrationsService) {}

  /** Starts a live migration: 202 with `{operation, migration}`. */
  @Post('vms/:id/migrations') @HttpCode(202)
  create(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Body() dto: CreateMigrationDto) { return this.migrations.create(t, id, dto); }

  @Get('vms/:id/migrations')
  list(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Query() q: PageQuery) { return this.migrations.list(t, id, q); }

  @Get('migrations/:id')
  get(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.migrations.get(t, id); }

  /** Cancels a migration before its switch-over; the VM keeps running on the source. */
  @Post('migrations/:id/cancel')
  cancel(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.migrations.cancel(t, id); }
}
