/**
 * VM definitions. Placement without hostId picks the host with the most free memory that fits,
 * where a host's committed memory is the sum of its VM definitions' memory (running or not; the
 * runtime's real admission comes with VM execution). Lifecycle transitions are checked against
 * the one state machine in src/runtime/vm-state.ts.
 */
import { Body, Controller, Delete, Get, HttpCode, Injectable, Param, ParseUUIDPipe, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags, ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsInt, IsObject, IsOptional, IsString, IsUUID, Length, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { DataSource, EntityManager, In } from 'typeorm';
import { TenantId } from './auth.js';
import { Idempotent } from './idempotency.js';
import { conflict, notFound, ProblemError } from './errors.js';
import { EventsService } from './events.service.js';
import { HostEntity, ImageEntity, ProcessSpec, VmEntity } from '../persistence/entities.js';
import { listPage, PageQuery } from './pagination.js';
import { uniqueViolation } from './hosts.js';
import { isQuiescent, transition, TransitionError, VmAction, VmState } from '../runtime/vm-state.js';

export class ProcessDto implements ProcessSpec {
  @ApiProperty() @IsUUID() imageId!: string;
  @ApiPropertyOptional({ type: [String] }) @IsOptional() @IsArray() @ArrayMaxSize(256) @IsString({ each: true }) argv?: string[];
  @ApiPropertyOptional({ type: [String] }) @IsOptional() @IsArray() @ArrayMaxSize(256) @IsString({ each: true }) env?: string[];
  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(1 << 20) stdin?: string;
}

export class CreateVmDto {
  @ApiProperty() @IsString() @Length(1, 100) name!: string;
  @ApiPropertyOptional() @IsOptional() @IsUUID() hostId?: string;
  @ApiProperty() @IsInt() @Min(1) @Max(16) vcpus!: number;
  @ApiProperty() @IsInt() @Min(1) @Max(65536) memoryMiB!: number;
  @ApiProperty({ type: [ProcessDto] }) @IsArray() @ArrayMinSize(1) @ArrayMaxSize(64) @ValidateNested({ each: true }) @Type(() => ProcessDto) processes!: ProcessDto[];
  @ApiPropertyOptional() @IsOptional() @IsObject() techniques?: Record<string, unknown>;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) seed?: number;
}

export class UpdateVmDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 100) name?: string;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(16) vcpus?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(65536) memoryMiB?: number;
  @ApiPropertyOptional({ type: [ProcessDto] }) @IsOptional() @IsArray() @ArrayMinSize(1) @ArrayMaxSize(64) @ValidateNested({ each: true }) @Type(() => ProcessDto) processes?: ProcessDto[];
  @ApiPropertyOptional() @IsOptional() @IsObject() techniques?: Record<string, unknown>;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) seed?: number;
}

export const vmView = (v: VmEntity) => ({
  id: v.id, name: v.name, hostId: v.hostId, vcpus: v.vcpus, memoryMiB: v.memoryMiB, processes: v.processes,
  techniques: v.techniques, seed: Number(v.seed), state: v.state, stateReason: v.stateReason,
  createdAt: v.createdAt.toISOString(), updatedAt: v.updatedAt.toISOString(),
});

@Injectable()
export class VmsService {
  constructor(private readonly ds: DataSource, private readonly events: EventsService) {}

  /** Checks that every image exists for the tenant; records the VM's image references. */
  private async linkImages(m: EntityManager, tenantId: string, vmId: string, processes: ProcessSpec[]) {
    const ids = [...new Set(processes.map((p) => p.imageId))];
    const found = await m.find(ImageEntity, { where: { tenantId, id: In(ids) }, select: { id: true } });
    const missing = ids.filter((id) => !found.some((f) => f.id === id));
    if (missing.length) throw new ProblemError(422, 'Unprocessable Content', `unknown image(s): ${missing.join(', ')}`, { imageIds: missing });
    await m.query('DELETE FROM vm_images WHERE vm_id = $1', [vmId]);
    for (const id of ids) await m.query('INSERT INTO vm_images (vm_id, image_id) VALUES ($1, $2)', [vmId, id]);
  }

  /** Host with the most free (uncommitted) memory that fits `memoryMiB`, or the given one if it fits. */
  private async place(m: EntityManager, tenantId: string, memoryMiB: number, hostId?: string, excludeVm?: string): Promise<string> {
    const hosts = await m.find(HostEntity, { where: hostId ? { tenantId, id: hostId } : { tenantId } });
    if (hostId && hosts.length === 0) throw notFound('host', hostId);
    const committed: Array<{ host_id: string; mib: string }> = await m.query(
      'SELECT host_id, SUM(memory_mib) AS mib FROM vms WHERE tenant_id = $1 AND id <> $2 GROUP BY host_id', [tenantId, excludeVm ?? '00000000-0000-0000-0000-000000000000']);
    const free = hosts.filter((h) => h.state === 'ready').map((h) => ({ h, free: h.memoryMiB - Number(committed.find((c) => c.host_id === h.id)?.mib ?? 0) }));
    const fits = free.filter((f) => f.free >= memoryMiB).sort((a, b) => b.free - a.free);
    if (fits.length === 0) {
      throw conflict(hosts.length === 0 ? 'no host: create a host first' : `no ready host has ${memoryMiB} MiB free`,
        { requestedMiB: memoryMiB, hosts: free.map((f) => ({ id: f.h.id, state: f.h.state, freeMiB: f.free })) });
    }
    return fits[0].h.id;
  }

  async create(tenantId: string, dto: CreateVmDto) {
    try {
      return await this.events.tx(async (m) => {
        const hostId = await this.place(m, tenantId, dto.memoryMiB, dto.hostId);
        const vm = await m.save(m.create(VmEntity, {
          tenantId, hostId, name: dto.name, vcpus: dto.vcpus, memoryMiB: dto.memoryMiB, processes: dto.processes.map((p) => ({ ...p })),
          techniques: dto.techniques ?? {}, seed: String(dto.seed ?? 0), state: 'created', stateReason: null,
        }));
        await this.linkImages(m, tenantId, vm.id, vm.processes);
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

  /** Edits a definition. Raises 409 unless the VM is created, stopped or crashed. */
  async update(tenantId: string, id: string, dto: UpdateVmDto) {
    try {
      return await this.events.tx(async (m) => {
        const v = await m.findOneBy(VmEntity, { id, tenantId });
        if (!v) throw notFound('vm', id);
        if (!isQuiescent(v.state as VmState)) throw conflict(`VM ${id} is ${v.state}; stop it before editing`, { state: v.state });
        if (dto.memoryMiB !== undefined && dto.memoryMiB > v.memoryMiB) await this.place(m, tenantId, dto.memoryMiB, v.hostId, v.id);
        Object.assign(v, { ...dto, seed: dto.seed !== undefined ? String(dto.seed) : v.seed });
        const saved = await m.save(v);
        if (dto.processes) await this.linkImages(m, tenantId, id, saved.processes);
        await this.events.append(m, tenantId, 'vm.updated', `vm:${id}`, { changes: { ...dto } });
        return vmView(saved);
      });
    } catch (e) {
      if (uniqueViolation(e)) throw conflict(`a VM named '${dto.name}' already exists`);
      throw e;
    }
  }

  async remove(tenantId: string, id: string) {
    await this.events.tx(async (m) => {
      const v = await m.findOneBy(VmEntity, { id, tenantId });
      if (!v) throw notFound('vm', id);
      if (!isQuiescent(v.state as VmState)) throw conflict(`VM ${id} is ${v.state}; stop it before deleting`, { state: v.state });
      await m.delete(VmEntity, { id });
      await this.events.append(m, tenantId, 'vm.deleted', `vm:${id}`, { name: v.name });
    });
  }

  /**
   * A lifecycle action. The transition is checked first (409 with the current state); `reset`
   * is carried out; actions that need the VM runtime answer 501 until VM execution is wired.
   */
  async action(tenantId: string, id: string, action: VmAction) {
    return this.events.tx(async (m) => {
      const v = await m.findOne(VmEntity, { where: { id, tenantId }, lock: { mode: 'pessimistic_write' } });
      if (!v) throw notFound('vm', id);
      let to: VmState;
      try { to = transition(v.state as VmState, action); } catch (e) {
        if (e instanceof TransitionError) throw conflict(e.message, { state: v.state });
        throw e;
      }
      if (action !== 'reset') {
        throw new ProblemError(501, 'Not Implemented', `VM execution is not available yet: '${action}' needs the VM runtime (see README, Status)`, { state: v.state });
      }
      const from = v.state;
      v.state = to;
      v.stateReason = null;
      const saved = await m.save(v);
      await this.events.append(m, tenantId, 'vm.state', `vm:${id}`, { from, to, action });
      return vmView(saved);
    });
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

  @Get(':id')
  async get(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return vmView(await this.vms.get(t, id)); }

  @Patch(':id')
  update(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Body() dto: UpdateVmDto) { return this.vms.update(t, id, dto); }

  @Delete(':id') @HttpCode(204)
  remove(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.remove(t, id); }

  @Post(':id/start') start(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.action(t, id, 'start'); }
  @Post(':id/pause') pause(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.action(t, id, 'pause'); }
  @Post(':id/resume') resume(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.action(t, id, 'resume'); }
  @Post(':id/stop') stop(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.action(t, id, 'stop'); }
  @Post(':id/reset') @HttpCode(200) reset(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.vms.action(t, id, 'reset'); }
}
