/**
 * VM definitions and their lifecycle. Placement (without hostId: the host with the most free
 * memory) and admission at start both use the host runtime's real free memory; definitions may
 * overcommit a host, and a VM that no longer fits when it starts is refused (409 with numbers). Lifecycle transitions are checked against the
 * one state machine in src/runtime/vm-state.ts and carried out as Operations by the runtime
 * (RuntimeService); their results and the VM's telemetry arrive as events.
 */
import { BadRequestException, Body, Controller, Delete, Get, HttpCode, Injectable, Param, ParseIntPipe, ParseUUIDPipe, Patch, Post, Query, Req, Res, StreamableFile } from '@nestjs/common';
import type { Request, Response } from 'express';
import { ApiBearerAuth, ApiParam, ApiTags, ApiProperty, ApiPropertyOptional, OmitType, PartialType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsInt, IsObject, IsOptional, IsString, IsUUID, Length, Matches, Max, Min, ValidateBy, ValidateNested } from 'class-validator';
import { DataSource, EntityManager, In } from 'typeorm';
import { TenantId } from './auth.js';
import { Idempotent } from './idempotency.js';
import { conflict, notFound, ProblemError } from './errors.js';
import { EventsService } from './events.service.js';
import { DiskSpecRow, HostEntity, ImageEntity, ProcessSpec, VmDiskContentEntity, VmEntity, VmRunEntity } from '../persistence/entities.js';
import { MAX_DISKS } from '../hypervisor/platform.js';
import { Disk, SECTOR } from '../hypervisor/disk.js';
import { OperationsService } from './operations.js';
import { BootCancelled, RuntimeService } from './runtime.service.js';
import type { DiskSpec, VmSpec } from '../runtime/vm.js';
import { checkTechniques } from './techniques.js';
import { notLive, resolveTechniques, TECHNIQUE_BY_NAME } from '../techniques/catalogue.js';
import { listPage, PageQuery } from './pagination.js';
import { uniqueViolation } from './hosts.js';
import { isQuiescent, transition, VmAction, VmState } from '../runtime/vm-state.js';
import { withRetry } from './retry.js';

/** Largest empty disk (only written chunks take host memory). */
const MAX_DISK_MIB = 1024;

/**
 * Disks as stored: each exactly one of imageId / sizeMiB.
 * Raises: ProblemError 400 naming the field.
 */
function checkDisks(disks: DiskDto[]): DiskSpecRow[] {
  return disks.map((d, i) => {
    const keys = Object.keys(d).filter((k) => (d as Record<string, unknown>)[k] !== undefined);
    if (keys.length !== 1 || !['imageId', 'sizeMiB'].includes(keys[0])) {
      throw new ProblemError(400, 'Bad Request', `disks[${i}] must be exactly one of {imageId} or {sizeMiB}`, { field: `disks[${i}]` });
    }
    return d.imageId !== undefined ? { imageId: d.imageId } : { sizeMiB: d.sizeMiB! };
  });
}

/** How long a describe or counters read waits for a busy worker before it answers from the last snapshot. */
const DESCRIBE_TIMEOUT_MS = 2000;
import { pipeWiringProblems, StdioSpec } from '../guest/vfs.js';

const PIPE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** One end of a named pipe between a VM's processes. */
export class PipeEndDto {
  @ApiProperty({ pattern: PIPE_NAME.source }) @IsString() @Matches(PIPE_NAME) pipe!: string;
}

/** stdin: text of at most 1 MiB, or `{pipe: name}`. */
function IsStdin(): PropertyDecorator {
  return ValidateBy({
    name: 'isStdin',
    validator: {
      validate: (v: unknown) => (typeof v === 'string' && v.length <= 1 << 20)
        || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).join() === 'pipe' && typeof (v as PipeEndDto).pipe === 'string' && PIPE_NAME.test((v as PipeEndDto).pipe)),
      defaultMessage: (a) => `${a?.property} must be a string of at most 1 MiB or {"pipe": name} with a name matching ${PIPE_NAME.source}`,
    },
  });
}

export class ProcessDto implements ProcessSpec {
  @ApiProperty() @IsUUID() imageId!: string;
  @ApiPropertyOptional({ type: [String] }) @IsOptional() @IsArray() @ArrayMaxSize(256) @IsString({ each: true }) argv?: string[];
  @ApiPropertyOptional({ type: [String] }) @IsOptional() @IsArray() @ArrayMaxSize(256) @IsString({ each: true }) env?: string[];
  @ApiPropertyOptional({ oneOf: [{ type: 'string', maxLength: 1 << 20 }, { $ref: '#/components/schemas/PipeEndDto' }] }) @IsOptional() @IsStdin() stdin?: string | PipeEndDto;
  @ApiPropertyOptional({ type: PipeEndDto }) @IsOptional() @IsObject() @ValidateNested() @Type(() => PipeEndDto) stdout?: PipeEndDto;
}

/** One disk: `{imageId}` (the image's bytes, copy-on-write) or `{sizeMiB}` (empty); exactly one of the two. */
export class DiskDto {
  @ApiPropertyOptional() @IsOptional() @IsUUID() imageId?: string;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(MAX_DISK_MIB) sizeMiB?: number;
}

/** Raises: 400 (problem+json) when the processes' pipes are not wired writer to reader. */
function checkPipes(processes: ProcessSpec[]): void {
  const problems = pipeWiringProblems(processes.map(stdio));
  if (problems.length > 0) throw new BadRequestException(problems);
}

const stdio = (p: ProcessSpec): StdioSpec => ({
  stdinPipe: typeof p.stdin === 'object' ? p.stdin.pipe : undefined, stdoutPipe: p.stdout?.pipe,
});

export class CreateVmDto {
  @ApiProperty() @IsString() @Length(1, 100) name!: string;
  @ApiPropertyOptional() @IsOptional() @IsUUID() hostId?: string;
  @ApiProperty() @IsInt() @Min(1) @Max(16) vcpus!: number;
  @ApiProperty() @IsInt() @Min(1) @Max(65536) memoryMiB!: number;
  @ApiProperty({ type: [ProcessDto] }) @IsArray() @ArrayMinSize(1) @ArrayMaxSize(64) @ValidateNested({ each: true }) @Type(() => ProcessDto) processes!: ProcessDto[];
  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'technique settings by name (GET /v1/techniques)' }) @IsOptional() @IsObject() techniques?: Record<string, unknown>;
  @ApiPropertyOptional({ type: [DiskDto] }) @IsOptional() @IsArray() @ArrayMaxSize(MAX_DISKS) @ValidateNested({ each: true }) @Type(() => DiskDto) disks?: DiskDto[];
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(4294967295) seed?: number;
  @ApiPropertyOptional({ enum: ['interp', 'jit'] }) @IsOptional() @IsIn(['interp', 'jit']) engine?: 'interp' | 'jit';
  @ApiPropertyOptional({ enum: ['none', 'retpoline'] }) @IsOptional() @IsIn(['none', 'retpoline']) spectreV2Mitigation?: 'none' | 'retpoline';
  @ApiPropertyOptional({ enum: ['none', 'kpti'] }) @IsOptional() @IsIn(['none', 'kpti']) crossingPreset?: 'none' | 'kpti';
}

/** Every field of CreateVmDto but the host (a VM moves by migration), each optional. */
export class UpdateVmDto extends PartialType(OmitType(CreateVmDto, ['hostId'] as const)) {}

export class ConsoleQuery {
  /** `raw` returns one stream's exact bytes as application/octet-stream. */
  @ApiPropertyOptional({ enum: ['json', 'raw'] }) @IsOptional() @IsIn(['json', 'raw']) format?: 'json' | 'raw';
  @ApiPropertyOptional({ enum: ['stdout', 'stderr'] }) @IsOptional() @IsIn(['stdout', 'stderr']) stream?: 'stdout' | 'stderr';
}

export const vmView = (v: VmEntity) => ({
  id: v.id, name: v.name, hostId: v.hostId, vcpus: v.vcpus, memoryMiB: v.memoryMiB, processes: v.processes, disks: v.disks ?? [],
  techniques: v.techniques, seed: Number(v.seed), engine: v.engine, spectreV2Mitigation: v.spectreV2Mitigation,
  crossingPreset: v.crossingPreset, state: v.state, stateReason: v.stateReason,
  createdAt: v.createdAt.toISOString(), updatedAt: v.updatedAt.toISOString(),
});

@Injectable()
export class VmsService {
  constructor(private readonly ds: DataSource, private readonly events: EventsService,
    private readonly ops: OperationsService, private readonly runtime: RuntimeService) {}

  /** Checks that every image exists for the tenant; records the VM's image references (its processes', domains' and disks'). */
  async linkImages(m: EntityManager, tenantId: string, vmId: string, processes: Array<{ imageId: string }>, disks: DiskSpecRow[] = []) {
    const ids = [...new Set([...processes.map((p) => p.imageId), ...disks.flatMap((d) => ('imageId' in d ? [d.imageId] : []))])];
    const found = await m.find(ImageEntity, { where: { tenantId, id: In(ids) }, select: { id: true } });
    const missing = ids.filter((id) => !found.some((f) => f.id === id));
    if (missing.length) throw new ProblemError(422, 'Unprocessable Content', `unknown image(s): ${missing.join(', ')}`, { imageIds: missing });
    await m.query('DELETE FROM vm_images WHERE vm_id = $1', [vmId]);
    for (const id of ids) await m.query('INSERT INTO vm_images (vm_id, image_id) VALUES ($1, $2)', [vmId, id]);
  }

  /**
   * Host with the most real free memory (its runtime's free frames) that fits `memoryMiB`, or the
   * given host if it fits. Raises 404 (unknown host) or 409 with every host's free memory.
   */
  private async place(m: EntityManager, tenantId: string, memoryMiB: number, hostId?: string): Promise<string> {
    const hosts = await m.find(HostEntity, { where: hostId ? { tenantId, id: hostId } : { tenantId } });
    if (hostId && hosts.length === 0) throw notFound('host', hostId);
    const free = hosts.filter((h) => h.state === 'ready').map((h) => ({ h, free: this.runtime.hostUsage(h).freeMiB }));
    const fits = free.filter((f) => f.free >= memoryMiB).sort((a, b) => b.free - a.free);
    if (fits.length === 0) {
      throw conflict(hosts.length === 0 ? 'no host: create a host first' : `no ready host has ${memoryMiB} MiB free`,
        { requestedMiB: memoryMiB, hosts: free.map((f) => ({ id: f.h.id, state: f.h.state, freeMiB: f.free })) });
    }
    return fits[0].h.id;
  }

  async create(tenantId: string, dto: CreateVmDto) {
    if (dto.techniques) checkTechniques(dto.techniques);
    const disks = checkDisks(dto.disks ?? []);
    checkPipes(dto.processes);
    try {
      return await this.events.tx(async (m) => {
        const hostId = await this.place(m, tenantId, dto.memoryMiB, dto.hostId);
        const vm = await m.save(m.create(VmEntity, {
          tenantId, hostId, name: dto.name, vcpus: dto.vcpus, memoryMiB: dto.memoryMiB, processes: dto.processes.map((p) => ({ ...p })),
          disks, techniques: dto.techniques ?? {}, seed: String(dto.seed ?? 0), state: 'created', stateReason: null,
          engine: dto.engine ?? 'jit', spectreV2Mitigation: dto.spectreV2Mitigation ?? 'none', crossingPreset: dto.crossingPreset ?? 'none',
        }));
        await this.linkImages(m, tenantId, vm.id, [...vm.processes, ...(vm.domains ?? [])], vm.disks);
        await this.events.append(m, tenantId, 'vm.created', `vm:${vm.id}`, vmView(vm));
        return vmView(vm);
      });
    } catch (e) {
      if (uniqueViolation(e)) throw conflict(`a VM named '${dto.name}' already exists`);
      throw e;
    }
  }

  async get(tenantId: string, id: string) {
    const v = await this.ds.getRepository(VmEntity).findOneBy({ id, tenantId });
    if (!v) throw notFound('vm', id);
    return v;
  }

  list(tenantId: string, q: PageQuery) {
    return listPage(this.ds.getRepository(VmEntity), tenantId, q, vmView);
  }

  /**
   * Edits a definition. While the VM runs, only `techniques` whose catalogue entry says `live`
   * may change (sent to the running VM, applied at the technique's `appliesAt`); anything else
   * is a 409 unless the VM is created, stopped or crashed. Raises 400/501 for bad techniques.
   */
  async update(tenantId: string, id: string, dto: UpdateVmDto) {
    if (dto.techniques) checkTechniques(dto.techniques);
    const disks = dto.disks ? checkDisks(dto.disks) : undefined;
    if (dto.processes) checkPipes(dto.processes);
    const live = this.runtime.runner(id);
    if (live && Object.keys(dto).every((k) => k === 'techniques') && dto.techniques) return this.updateLive(tenantId, id, dto.techniques);
    try {
      return await this.events.tx(async (m) => {
        const v = await m.findOneBy(VmEntity, { id, tenantId });
        if (!v) throw notFound('vm', id);
        if (!isQuiescent(v.state as VmState)) throw conflict(`VM ${id} is ${v.state}; stop it before editing (a running VM accepts only live technique changes)`, { state: v.state });
        if (dto.memoryMiB !== undefined && dto.memoryMiB > v.memoryMiB) await this.place(m, tenantId, dto.memoryMiB, v.hostId);
        Object.assign(v, { ...dto, seed: dto.seed !== undefined ? String(dto.seed) : v.seed, disks: disks ?? v.disks });
        const saved = await m.save(v);
        // New disks start from their bases: what the old ones kept is dropped.
        if (disks) await m.delete(VmDiskContentEntity, { vmId: id });
        if (dto.processes || disks) await this.linkImages(m, tenantId, id, [...saved.processes, ...(saved.domains ?? [])], saved.disks);
        await this.events.append(m, tenantId, 'vm.updated', `vm:${id}`, { changes: { ...dto } });
        return vmView(saved);
      });
    } catch (e) {
      if (uniqueViolation(e)) throw conflict(`a VM named '${dto.name}' already exists`);
      throw e;
    }
  }

  /** A technique change on a running VM: merged into the definition and sent to the VM. */
  private updateLive(tenantId: string, id: string, change: Record<string, unknown>) {
    return this.runtime.serial(id, () => this.events.tx(async (m) => {
      const v = await m.findOne(VmEntity, { where: { id, tenantId }, lock: { mode: 'pessimistic_write' } });
      if (!v) throw notFound('vm', id);
      const fixed = notLive(change);
      if (fixed.length) throw conflict(`technique(s) ${fixed.join(', ')} cannot change while the VM is ${v.state}`, { state: v.state, techniques: fixed });
      const runner = this.runtime.runner(id);
      if (!runner) throw conflict(`VM ${id} is ${v.state}`, { state: v.state });
      const merged: Record<string, unknown> = { ...v.techniques };
      for (const [name, setting] of Object.entries(change)) merged[name] = { ...(merged[name] as object | undefined), ...(setting as object) };
      const host = await m.findOneByOrFail(HostEntity, { id: v.hostId });
      await runner.request({ type: 'set-techniques', techniques: resolveTechniques(host.techniques, merged) });
      v.techniques = merged;
      const saved = await m.save(v);
      await this.events.append(m, tenantId, 'vm.techniques', `vm:${id}`, {
        changes: change, appliesAt: Object.fromEntries(Object.keys(change).map((n) => [n, TECHNIQUE_BY_NAME.get(n)!.appliesAt])),
      });
      return vmView(saved);
    }), 'techniques');
  }

  async remove(tenantId: string, id: string) {
    await this.events.tx(async (m) => {
      const v = await m.findOneBy(VmEntity, { id, tenantId });
      if (!v) throw notFound('vm', id);
      if (!isQuiescent(v.state as VmState)) throw conflict(`VM ${id} is ${v.state}; stop it before deleting`, { state: v.state });
      await m.delete(VmEntity, { id });
      await this.events.append(m, tenantId, 'vm.deleted', `vm:${id}`, { name: v.name });
    });
    this.runtime.forgetVm(id);
  }

  /**
   * A lifecycle action. The transition is checked first (409 with the current state); `start`
   * also checks admission against the host's real free memory (409 with the numbers). `reset`
   * is carried out at once (200 with the VM); the others run as an Operation (202 with it).
   */
  async action(tenantId: string, id: string, action: 'start' | 'pause' | 'resume' | 'stop' | 'reset') {
    return this.runtime.serial(id, async () => {
      const v = await this.events.tx(async (m) => {
        const v = await m.findOne(VmEntity, { where: { id, tenantId }, lock: { mode: 'pessimistic_write' } });
        if (!v) throw notFound('vm', id);
        transition(v.state as VmState, action); // TransitionError: 409 with the state
        if (action === 'start') {
          const host = await m.findOneByOrFail(HostEntity, { id: v.hostId });
          const u = this.runtime.hostUsage(host);
          if (host.state !== 'ready') throw conflict(`host ${host.id} is ${host.state}`, { hostId: host.id, hostState: host.state });
          if (!this.runtime.ownsHost(host.id)) throw new ProblemError(503, 'Service Unavailable', `host ${host.id} is being taken on by its node of the cluster: retry`, { hostId: host.id });
          if (u.freeMiB < v.memoryMiB) throw conflict(`host ${host.id} has ${u.freeMiB} MiB free, the VM needs ${v.memoryMiB} MiB`, { hostId: host.id, requestedMiB: v.memoryMiB, freeMiB: u.freeMiB });
        }
        if ((action === 'pause' || action === 'resume') && !this.runtime.isLive(id)) throw conflict(`VM ${id} has no running instance in this service`, { state: v.state });
        if (action === 'start' || action === 'stop' || action === 'reset') await this.runtime.recordTransition(m, v, [action], null, {}, { strict: true });
        return v;
      });
      if (action === 'reset') return { status: 200, body: vmView(v) };
      const op = await this.ops.start(tenantId, `vm.${action}`, `vm:${id}`, () => this.carryOut(tenantId, v, action));
      return { status: 202, body: op };
    }, `action ${action}`);
  }

  /**
   * The runtime side of a lifecycle action (an Operation's runner). A start that could not be
   * recorded ends its worker (a VM is `running` only while a worker runs it); a stop succeeds
   * only once the VM is recorded `stopped`.
   */
  private async carryOut(tenantId: string, v: VmEntity, action: 'start' | 'pause' | 'resume' | 'stop'): Promise<Record<string, unknown>> {
    const id = v.id;
    if (action === 'start') {
      try {
        const host = await withRetry(() => this.ds.getRepository(HostEntity).findOneByOrFail({ id: v.hostId }));
        await this.runtime.start(tenantId, id, host, await withRetry(() => this.spec(tenantId, v, host)));
      } catch (e) {
        if (e instanceof BootCancelled) throw e;
        const reason = `boot-failed: ${e instanceof Error ? e.message : String(e)}`;
        await this.record(tenantId, id, 'crash', reason);
        throw new Error(reason);
      }
      let applied: boolean;
      try {
        applied = await this.record(tenantId, id, 'started', null);
      } catch (e) {
        await this.runtime.stopVm(id);
        throw e;
      }
      // Not applied: the VM moved on while it booted (it ended by itself, or a stop recorded before
      // the boot began); a worker it no longer has is ended.
      if (!applied && this.runtime.isLive(id)) {
        const now = await withRetry(() => this.get(tenantId, id));
        if (now.state !== 'running' && now.state !== 'paused' && now.state !== 'migrating') {
          await this.runtime.stopVm(id);
          throw new Error(`the VM is ${now.state}; its worker was ended`);
        }
      }
      return { vmId: id };
    }
    if (action === 'stop') {
      await this.runtime.stopVm(id);
      // No worker ended it (none was left, e.g. the boot failed or never began): the stop itself ends it.
      await this.record(tenantId, id, 'stopped', 'stopped');
      const after = await withRetry(() => this.get(tenantId, id));
      if (after.state !== 'stopped') throw new Error(`the VM ended ${after.state}${after.stateReason ? ` (${after.stateReason})` : ''}, not stopped`);
      return { vmId: id };
    }
    const runner = this.runtime.runner(id);
    if (!runner) throw new Error(`VM ${id} is not running`);
    await (action === 'pause' ? runner.pause() : runner.resume());
    await this.record(tenantId, id, action, null);
    return { vmId: id };
  }

  /** Applies a runtime transition to the VM row (if it still applies) with its event; retried while the database is unreachable. */
  private record(tenantId: string, id: string, action: VmAction, reason: string | null): Promise<boolean> {
    return this.runtime.serial(id, () => withRetry(() => this.events.tx(async (m) => {
      const v = await m.findOne(VmEntity, { where: { id, tenantId }, lock: { mode: 'pessimistic_write' } });
      return v ? this.runtime.recordTransition(m, v, [action], reason) : false;
    })), `record ${action}`);
  }

  /**
   * The VM's disks as the runtime takes them: each one's base (an image's bytes, or empty) and
   * what the VM's last run wrote over it (kept when it stopped). `byId`: the images by id.
   */
  private async diskSpecs(v: VmEntity, byId: Map<string, ImageEntity>): Promise<DiskSpec[]> {
    const kept = new Map((await this.ds.getRepository(VmDiskContentEntity).find({ where: { vmId: v.id } })).map((r) => [r.disk, r]));
    return (v.disks ?? []).map((d, n) => {
      let spec: DiskSpec;
      if (!('imageId' in d)) spec = { sizeBytes: d.sizeMiB << 20 };
      else {
        const img = byId.get(d.imageId);
        if (!img) throw new Error(`image ${d.imageId} no longer exists`);
        const bytes = new Uint8Array(img.content);
        spec = { sizeBytes: Math.max(SECTOR, Math.ceil(bytes.length / SECTOR) * SECTOR), image: bytes };
      }
      const k = kept.get(n);
      return k ? { ...spec, written: { chunks: k.chunks, bytes: new Uint8Array(k.content) } } : spec;
    });
  }

  /** The runtime spec of a VM definition: its images' bytes, arguments, stdin and settings. */
  private async spec(tenantId: string, v: VmEntity, host: HostEntity): Promise<VmSpec> {
    const diskImages = (v.disks ?? []).flatMap((d) => ('imageId' in d ? [d.imageId] : []));
    const ids = [...new Set([...[...v.processes, ...(v.domains ?? [])].map((p) => p.imageId), ...diskImages])];
    const rows = await this.ds.getRepository(ImageEntity).createQueryBuilder('i').addSelect('i.content')
      .where('i.tenant_id = :tenantId AND i.id IN (:...ids)', { tenantId, ids }).getMany();
    const byId = new Map(rows.map((r) => [r.id, r]));
    return {
      vcpus: v.vcpus, memoryMiB: v.memoryMiB, seed: Number(v.seed) >>> 0, engine: v.engine,
      spectreV2Mitigation: v.spectreV2Mitigation, crossingPreset: v.crossingPreset,
      techniques: resolveTechniques(host.techniques, v.techniques),
      disks: await this.diskSpecs(v, byId),
      processes: v.processes.map((p) => {
        const img = byId.get(p.imageId);
        if (!img) throw new Error(`image ${p.imageId} no longer exists`);
        return {
          name: img.name, elf: new Uint8Array(img.content), argv: p.argv ?? [img.name], env: p.env ?? [],
          stdin: new TextEncoder().encode(typeof p.stdin === 'string' ? p.stdin : ''), ...stdio(p),
        };
      }),
      domains: (v.domains ?? []).map((d) => {
        const img = byId.get(d.imageId);
        if (!img) throw new Error(`image ${d.imageId} no longer exists`);
        return { name: d.name, elf: new Uint8Array(img.content), entryPoints: d.entryPoints, memoryKiB: d.memoryKiB };
      }),
    };
  }

  /**
   * The VM with its current or latest run: uptime (virtual and wall), vCPUs, processes. A live
   * VM is asked through its worker.
   */
  async describe(tenantId: string, id: string) {
    const v = await this.get(tenantId, id);
    const run = await this.ds.getRepository(VmRunEntity).findOneBy({ vmId: id });
    const runner = this.runtime.runner(id);
    // A worker busy for long answers late: the describe then shows its last reported state.
    const snap = runner ? await runner.request({ type: 'read-state' }, DESCRIBE_TIMEOUT_MS).catch(() => runner.snapshot) : null;
    const counters = (snap?.counters ?? run?.counters ?? null) as { virtualTimeNs?: number; perVcpu?: Array<Record<string, number>> } | null;
    const stoppedAt = runner ? null : run?.stoppedAt ?? null;
    return {
      ...vmView(v),
      run: run ? {
        startedAt: run.startedAt.toISOString(), stoppedAt: stoppedAt?.toISOString() ?? null,
        uptime: { virtualNs: counters?.virtualTimeNs ?? 0, wallMs: (stoppedAt ?? new Date()).getTime() - run.startedAt.getTime() },
        vcpus: (counters?.perVcpu ?? []).map((c, i) => ({ id: i, state: snap?.vcpus?.[i] ?? (runner ? 'running' : 'stopped'), instructions: c.instructions, cycles: c.cycles, idleCycles: c.idleCycles })),
        processes: snap?.processes ?? run.processes,
      } : null,
    };
  }

  /** Console bytes so far (bounded: the newest 1 MiB per stream) of the current or latest run. */
  /**
   * Bytes of disk `n`'s current content: the whole disk, or one byte range that `range(size)`
   * (Express's Range parser) picks. A running or paused VM's disk is read from its worker; a
   * stopped VM's is what it kept when it stopped, over the disk's base.
   * Raises: 404 (no VM, no such disk), 409 (a disk image that no longer exists), 416 (unsatisfiable range).
   */
  async disk(tenantId: string, id: string, n: number, range: (size: number) => { start: number; end: number } | null) {
    const v = await this.get(tenantId, id);
    if (!(n >= 0 && n < (v.disks ?? []).length)) throw new ProblemError(404, 'Not Found', `VM ${id} has ${(v.disks ?? []).length} disk(s); there is no disk ${n}`);
    const runner = this.runtime.runner(id);
    if (!runner || (v.state !== 'running' && v.state !== 'paused')) {
      // Not running: the content kept when the VM stopped (or the base, before its first run).
      const images = (v.disks ?? []).flatMap((d) => ('imageId' in d ? [d.imageId] : []));
      const rows = images.length ? await this.ds.getRepository(ImageEntity).createQueryBuilder('i').addSelect('i.content')
        .where('i.tenant_id = :tenantId AND i.id IN (:...images)', { tenantId, images }).getMany() : [];
      let spec: DiskSpec;
      try { spec = (await this.diskSpecs(v, new Map(rows.map((r) => [r.id, r]))))[n]; } catch (e) { throw conflict(`VM ${id}'s disk ${n}: ${(e as Error).message}`); }
      const disk = new Disk(spec.sizeBytes, spec.image ?? null);
      if (spec.written) disk.importWritten(spec.written);
      const r = range(disk.sizeBytes);
      const want = r ?? { start: 0, end: disk.sizeBytes - 1 };
      return { sizeBytes: disk.sizeBytes, partial: r !== null, start: want.start, bytes: disk.slice(want.start, want.end + 1) };
    }
    const { sizeBytes } = await runner.ask({ type: 'read-disk', disk: n, start: 0, end: 0 });
    const r = range(sizeBytes);
    const want = r ?? { start: 0, end: sizeBytes - 1 };
    const got = await runner.ask({ type: 'read-disk', disk: n, start: want.start, end: want.end + 1 });
    return { sizeBytes, partial: r !== null, start: got.start, bytes: got.bytes };
  }

  async console(tenantId: string, id: string) {
    await this.get(tenantId, id);
    const runner = this.runtime.runner(id);
    if (runner) {
      const c = runner.console;
      return { stdout: c.bytes(0), stderr: c.bytes(1), truncated: c.truncated[0] || c.truncated[1] };
    }
    const run = await this.ds.getRepository(VmRunEntity).createQueryBuilder('r').addSelect('r.consoleStdout').addSelect('r.consoleStderr')
      .where('r.vm_id = :id', { id }).getOne();
    return { stdout: run?.consoleStdout ?? Buffer.alloc(0), stderr: run?.consoleStderr ?? Buffer.alloc(0), truncated: run?.consoleTruncated ?? false };
  }

  /**
   * Counters of the current or latest run, with `history`: samples (wall ms since the start,
   * instructions, cycles, virtual ns) bounded to COUNTER_HISTORY_POINTS, downsampled as the run
   * grows (`stepMs` apart), for runs since the service started. Raises 404 when the VM never ran.
   */
  async counters(tenantId: string, id: string) {
    await this.get(tenantId, id);
    const h = this.runtime.counterHistory(id);
    const history = h ? { stepMs: h.stepMs, points: h.points() } : null;
    const runner = this.runtime.runner(id);
    if (runner) {
      const s = await runner.request({ type: 'read-state' }, DESCRIBE_TIMEOUT_MS).catch(() => runner.snapshot);
      if (s.counters) return { live: true, ...s.counters, history };
    }
    const run = await this.ds.getRepository(VmRunEntity).findOneBy({ vmId: id });
    if (!run?.counters) throw new ProblemError(404, 'Not Found', `VM ${id} has not run yet`);
    return { live: false, ...run.counters, history };
  }
}

@ApiTags('vms')
@ApiBearerAuth()
@Controller('v1/vms')
export class VmsController {
  constructor(private readonly vms: VmsService) {}

  @Post() @Idempotent() @HttpCode(201)
  create(@TenantId() t: string, @Body() dto: CreateVmDto) { return this.vms.create(t, dto); }

  @Get()
  list(@TenantId() t: string, @Query() q: PageQuery) { return this.vms.list(t, q); }

  /** The VM with its current or latest run (uptime, vCPUs, per-process status). */
  @Get(':id')
  get(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.describe(t, id); }

  /** Console output so far: JSON `{stdout, stderr, truncated, bytes}` (text as UTF-8), or `?format=raw&stream=stdout|stderr` for exact bytes. */
  @Get(':id/console')
  async console(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Query() q: ConsoleQuery, @Res({ passthrough: true }) res: Response) {
    const c = await this.vms.console(t, id);
    if (q.format === 'raw') {
      res.type('application/octet-stream');
      return new StreamableFile(q.stream === 'stderr' ? c.stderr : c.stdout);
    }
    return { stdout: c.stdout.toString('utf8'), stderr: c.stderr.toString('utf8'), truncated: c.truncated, bytes: { stdout: c.stdout.length, stderr: c.stderr.length } };
  }

  /**
   * Disk `n`'s current content as application/octet-stream; a single `Range: bytes=...` gives 206
   * with Content-Range, an unsatisfiable one 416 (several ranges or a malformed header: the whole disk).
   */
  @Get(':id/disks/:n') @ApiParam({ name: 'n', type: 'integer', description: 'the disk index, from 0' })
  async disk(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Param('n', ParseIntPipe) n: number, @Req() req: Request, @Res({ passthrough: true }) res: Response) {
    const d = await this.vms.disk(t, id, n, (size) => {
      const r = req.range(size);
      if (r === -1) {
        res.setHeader('Content-Range', `bytes */${size}`);
        throw new ProblemError(416, 'Range Not Satisfiable', `the range ${req.headers.range} lies outside the ${size}-byte disk`, { sizeBytes: size });
      }
      return Array.isArray(r) && r.length === 1 && r.type === 'bytes' ? { start: r[0].start, end: r[0].end } : null;
    });
    res.type('application/octet-stream');
    res.setHeader('Accept-Ranges', 'bytes');
    if (d.partial) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${d.start}-${d.start + d.bytes.length - 1}/${d.sizeBytes}`);
    }
    return new StreamableFile(Buffer.from(d.bytes.buffer, d.bytes.byteOffset, d.bytes.byteLength));
  }

  /** Counters of the current or latest run: instructions, cycles, crossings, exits by reason, syscalls by name, TLB misses, mispredicts, per vCPU and in total. */
  @Get(':id/counters')
  counters(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.counters(t, id); }

  @Patch(':id')
  update(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Body() dto: UpdateVmDto) { return this.vms.update(t, id, dto); }

  @Delete(':id') @HttpCode(204)
  remove(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.remove(t, id); }

  /** Lifecycle: 202 with the Operation that carries it out (its events and GET /v1/operations/{id} tell the outcome); `reset` is 200 with the VM. */
  @Post(':id/start') start(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Res({ passthrough: true }) res: Response) { return this.act(t, id, 'start', res); }
  @Post(':id/pause') pause(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Res({ passthrough: true }) res: Response) { return this.act(t, id, 'pause', res); }
  @Post(':id/resume') resume(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Res({ passthrough: true }) res: Response) { return this.act(t, id, 'resume', res); }
  @Post(':id/stop') stop(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Res({ passthrough: true }) res: Response) { return this.act(t, id, 'stop', res); }
  @Post(':id/reset') reset(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Res({ passthrough: true }) res: Response) { return this.act(t, id, 'reset', res); }

  private async act(t: string, id: string, action: 'start' | 'pause' | 'resume' | 'stop' | 'reset', res: Response) {
    const r = await this.vms.action(t, id, action);
    res.status(r.status);
    return r.body;
  }
}
