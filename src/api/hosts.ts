/**
 * Hosts: simulated physical machines of a tenant. Controllers parse and forward; the rules
 * (uniqueness, existence per tenant, events) live in HostsService.
 */
import { Body, Controller, Delete, Get, HttpCode, Injectable, Param, ParseUUIDPipe, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags, ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsObject, IsOptional, IsString, Length, Max, Min } from 'class-validator';
import { DataSource } from 'typeorm';
import { TenantId } from './auth.js';
import { Idempotent } from './idempotency.js';
import { conflict, notFound, ProblemError } from './errors.js';
import { listPage, PageQuery } from './pagination.js';
import { EventsService } from './events.service.js';
import { HostEntity } from '../persistence/entities.js';
import { RuntimeService } from './runtime.service.js';
import { checkTechniques } from './techniques.js';
import { MAX_HOST_MIB } from '../hypervisor/host-memory.js';
import { ClusterService } from '../cluster/cluster.service.js';

const HOST_MIB_LIMIT = `memoryMiB must not be greater than ${MAX_HOST_MIB} (the largest host this service simulates: host-physical addresses are 31-bit)`;

export class CreateHostDto {
  @ApiProperty() @IsString() @Length(1, 100) name!: string;
  @ApiProperty() @IsInt() @Min(1) @Max(64) cpus!: number;
  /** Host DRAM is allocated (as lazily committed shared memory) by this service: at most 2048 MiB per host. */
  @ApiProperty({ minimum: 16, maximum: MAX_HOST_MIB }) @IsInt() @Min(16) @Max(MAX_HOST_MIB, { message: HOST_MIB_LIMIT }) memoryMiB!: number;
  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'technique settings by name (GET /v1/techniques)' }) @IsOptional() @IsObject() techniques?: Record<string, unknown>;
}

export class UpdateHostDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 100) name?: string;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(64) cpus?: number;
  @ApiPropertyOptional({ minimum: 16, maximum: MAX_HOST_MIB }) @IsOptional() @IsInt() @Min(16) @Max(MAX_HOST_MIB, { message: HOST_MIB_LIMIT }) memoryMiB?: number;
  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'technique settings by name (GET /v1/techniques)' }) @IsOptional() @IsObject() techniques?: Record<string, unknown>;
  @ApiPropertyOptional() @IsOptional() @IsIn(['ready', 'maintenance']) state?: string;
}

export const hostView = (h: HostEntity) => ({
  id: h.id, name: h.name, cpus: h.cpus, memoryMiB: h.memoryMiB, techniques: h.techniques, state: h.state,
  createdAt: h.createdAt.toISOString(), updatedAt: h.updatedAt.toISOString(),
});

/** A host with the live memory accounting of its runtime (4 KiB frames). */
const hostWithMemory = (h: HostEntity, runtime: RuntimeService) => {
  const u = runtime.hostUsage(h);
  return { ...hostView(h), memory: { frames: u.frames, freeFrames: u.free, freeMiB: u.freeMiB, poisonedFrames: u.poisoned, retiredFrames: u.retired, framesByVm: u.byVm } };
};

export const uniqueViolation = (e: unknown) => (e as { code?: string; driverError?: { code?: string } }).driverError?.code === '23505';

@Injectable()
export class HostsService {
  constructor(private readonly ds: DataSource, private readonly events: EventsService, private readonly runtime: RuntimeService,
    private readonly cluster: ClusterService) {}

  /**
   * Raises 400/501 for techniques the catalogue does not allow. In cluster mode the host goes to
   * the live node with the most free capacity, which allocates its DRAM when it takes the host.
   */
  async create(tenantId: string, dto: CreateHostDto) {
    if (dto.techniques) checkTechniques(dto.techniques);
    try {
      const h = await this.events.tx(async (m) => {
        const ownerNodeId = this.cluster.enabled ? await this.cluster.placeNew(m, dto.memoryMiB) : null;
        const h = await m.save(m.create(HostEntity, { ...dto, techniques: dto.techniques ?? {}, tenantId, state: 'ready', ownerNodeId }));
        if (!this.cluster.enabled) this.allocate(h);
        await this.events.append(m, tenantId, 'host.created', `host:${h.id}`, hostView(h));
        return h;
      });
      await this.cluster.claim(h);
      return hostWithMemory(h, this.runtime);
    } catch (e) {
      if (uniqueViolation(e)) throw conflict(`a host named '${dto.name}' already exists`);
      throw e;
    }
  }

  async get(tenantId: string, id: string): Promise<HostEntity> {
    const h = await this.ds.getRepository(HostEntity).findOneBy({ id, tenantId });
    if (!h) throw notFound('host', id);
    return h;
  }

  view(h: HostEntity) { return hostWithMemory(h, this.runtime); }

  /** Creates the host's runtime (its DRAM). Raises 507 when this service cannot allocate it (the transaction then rolls back). */
  private allocate(h: HostEntity): void {
    try { this.runtime.ensureHost(h); } catch (e) {
      if (e instanceof RangeError) throw new ProblemError(507, 'Insufficient Storage', `this service cannot allocate ${h.memoryMiB} MiB of host DRAM: ${e.message}`, { memoryMiB: h.memoryMiB });
      throw e;
    }
  }

  list(tenantId: string, q: PageQuery) {
    return listPage(this.ds.getRepository(HostEntity), tenantId, q, (h) => this.view(h));
  }

  /** Edits a host. Raises 409 when memoryMiB changes while VMs run on it (its DRAM is in use). */
  async update(tenantId: string, id: string, dto: UpdateHostDto) {
    if (dto.techniques) checkTechniques(dto.techniques);
    try {
      const saved = await this.events.tx(async (m) => {
        const h = await m.findOneBy(HostEntity, { id, tenantId });
        if (!h) throw notFound('host', id);
        const resize = dto.memoryMiB !== undefined && dto.memoryMiB !== h.memoryMiB;
        if (resize) {
          const running = Object.keys(this.runtime.hostUsage(h).byVm).length;
          if (running > 0) throw conflict(`host ${id} has ${running} running VM(s); stop them before changing its memory`, { runningVms: running });
        }
        Object.assign(h, dto);
        const saved = await m.save(h);
        await this.events.append(m, tenantId, 'host.updated', `host:${id}`, { changes: { ...dto } });
        if (resize) { await this.runtime.dropHost(id); this.allocate(saved); }
        return saved;
      });
      return hostWithMemory(saved, this.runtime);
    } catch (e) {
      if (uniqueViolation(e)) throw conflict(`a host named '${dto.name}' already exists`);
      throw e;
    }
  }

  async remove(tenantId: string, id: string) {
    await this.events.tx(async (m) => {
      const h = await m.findOneBy(HostEntity, { id, tenantId });
      if (!h) throw notFound('host', id);
      const vms: Array<{ n: string }> = await m.query('SELECT COUNT(*) AS n FROM vms WHERE host_id = $1', [id]);
      if (Number(vms[0].n) > 0) throw conflict(`host ${id} still has ${vms[0].n} VM(s); delete or move them first`, { vmCount: Number(vms[0].n) });
      await m.delete(HostEntity, { id });
      await this.events.append(m, tenantId, 'host.deleted', `host:${id}`, { name: h.name });
    });
    await this.runtime.dropHost(id);
  }
}

@ApiTags('hosts')
@ApiBearerAuth()
@Controller('v1/hosts')
export class HostsController {
  constructor(private readonly hosts: HostsService) {}

  @Post() @Idempotent() @HttpCode(201)
  create(@TenantId() t: string, @Body() dto: CreateHostDto) { return this.hosts.create(t, dto); }

  @Get()
  list(@TenantId() t: string, @Query() q: PageQuery) { return this.hosts.list(t, q); }

  /** The host with its memory accounting: frames free, poisoned, retired, and used by each running VM. */
  @Get(':id')
  async get(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.hosts.view(await this.hosts.get(t, id)); }

  @Patch(':id')
  update(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Body() dto: UpdateHostDto) { return this.hosts.update(t, id, dto); }

  @Delete(':id') @HttpCode(204)
  remove(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.hosts.remove(t, id); }
}
