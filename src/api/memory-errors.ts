/**
 * Memory errors over REST (technique 1's fault model): inject into a host frame, addressed by
 * host-physical address, by a VM's guest-physical address, or by a process's user address; list
 * them; retire frames; show the host's frame map; list a VM's backed pages.
 *
 * Consequences by what the frame holds (events in libvirt's memory-failure shape):
 *   free frame        retired at once                       {recipient: hypervisor, action: ignore}
 *   a VM's guest page  poisoned; the VM's worker applies it at a slice boundary; the first access
 *                      kills the owning process (vm.memory-failure {recipient: guest, action: inject})
 *   hypervisor data    host panic: every VM on the host crashes (host-panic), the host is failed
 *                      {recipient: hypervisor, action: fatal}
 *   corrected          counted and reported only           {recipient: hypervisor, action: ignore}
 */
import { Body, Controller, Delete, Get, HttpCode, Injectable, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, IsUUID, Matches, Max, Min } from 'class-validator';
import { DataSource } from 'typeorm';
import { TenantId } from './auth.js';
import { conflict, notFound, ProblemError } from './errors.js';
import { EventsService } from './events.service.js';
import { RuntimeService } from './runtime.service.js';
import { listPage, PageQuery, pageOffset, nextToken } from './pagination.js';
import { HostEntity, MemoryErrorEntity, VmEntity } from '../persistence/entities.js';
import { FrameState } from '../hypervisor/host-memory.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import type { PageOwner } from '../runtime/vm.js';

export class InjectMemoryErrorDto {
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) hostPhysicalAddress?: number;
  @ApiPropertyOptional() @IsOptional() @IsUUID() vmId?: string;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(2 ** 34 - 1) guestPhysicalAddress?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) pid?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(0xffffffff) guestVirtualAddress?: number;
  @ApiProperty({ enum: ['uncorrectable', 'corrected'] }) @IsIn(['uncorrectable', 'corrected']) kind!: 'uncorrectable' | 'corrected';
  /** The host has not noticed it yet: it is found on the next read (a machine check). */
  @ApiPropertyOptional() @IsOptional() @IsBoolean() latent?: boolean;
}

export class VmMemoryQuery extends PageQuery {
  /** process:PID, kernel or device. */
  @ApiPropertyOptional() @IsOptional() @IsString() @Matches(/^(process:\d+|kernel|device)$/) owner?: string;
}

export const memoryErrorView = (e: MemoryErrorEntity) => ({
  id: e.id, hostId: e.hostId, hostPhysicalAddress: e.frame * PAGE_SIZE, frame: e.frame, kind: e.kind, latent: e.latent,
  state: e.state, hit: e.hit, createdAt: e.createdAt.toISOString(), updatedAt: e.updatedAt.toISOString(),
});

const STATE_NAMES = ['free', 'guest', 'hypervisor', 'poisoned', 'retired'];
const bad = (detail: string) => new ProblemError(400, 'Bad Request', detail);

@Injectable()
export class MemoryErrorsService {
  constructor(private readonly ds: DataSource, private readonly events: EventsService, private readonly runtime: RuntimeService) {}

  private async host(tenantId: string, id: string): Promise<HostEntity> {
    const h = await this.ds.getRepository(HostEntity).findOneBy({ id, tenantId });
    if (!h) throw notFound('host', id);
    return h;
  }

  /** Finds the frame the request addresses. Raises 400 (no or two targets, unbacked page), 404, 409 (VM not running here). */
  private async frame(tenantId: string, h: HostEntity, dto: InjectMemoryErrorDto): Promise<number> {
    const frames = this.runtime.ensureHost(h).memory.frames;
    if (dto.hostPhysicalAddress !== undefined) {
      if (dto.vmId !== undefined) throw bad('give either hostPhysicalAddress or vmId, not both');
      const f = Math.floor(dto.hostPhysicalAddress / PAGE_SIZE);
      if (f >= frames) throw bad(`hostPhysicalAddress 0x${dto.hostPhysicalAddress.toString(16)} is beyond the host's ${h.memoryMiB} MiB`);
      return f;
    }
    if (dto.vmId === undefined) throw bad('give hostPhysicalAddress, {vmId, guestPhysicalAddress} or {vmId, pid, guestVirtualAddress}');
    const vm = await this.ds.getRepository(VmEntity).findOneBy({ id: dto.vmId, tenantId });
    if (!vm) throw notFound('vm', dto.vmId);
    if (vm.hostId !== h.id) throw bad(`VM ${vm.id} is not on host ${h.id}`);
    const runner = this.runtime.runner(vm.id);
    if (!runner) throw conflict(`VM ${vm.id} is ${vm.state}: only a running VM's pages have host frames`, { state: vm.state });
    const byGpa = dto.guestPhysicalAddress !== undefined;
    if (byGpa === (dto.pid !== undefined && dto.guestVirtualAddress !== undefined)) throw bad('with vmId give either guestPhysicalAddress or pid and guestVirtualAddress');
    const f = await runner.ask({ type: 'resolve-frame', target: byGpa ? { gpa: dto.guestPhysicalAddress! } : { pid: dto.pid!, va: dto.guestVirtualAddress! } });
    if (f < 0) throw bad('that address is not backed by a host frame (never touched, or not mapped)');
    return f;
  }

  async inject(tenantId: string, hostId: string, dto: InjectMemoryErrorDto) {
    const h = await this.host(tenantId, hostId);
    if (h.state === 'failed') throw conflict(`host ${hostId} has failed`, { state: h.state });
    const frame = await this.frame(tenantId, h, dto);
    const mem = this.runtime.ensureHost(h).memory;
    const latent = dto.latent ?? false;
    const record = async (state: string, hit: Record<string, unknown>, event: Record<string, unknown>) => this.events.tx(async (m) => {
      const e = await m.save(m.create(MemoryErrorEntity, { tenantId, hostId, frame, kind: dto.kind, latent, state, hit }));
      const data = { id: e.id, frame, hostPhysicalAddress: frame * PAGE_SIZE, kind: dto.kind, latent, state, hit, ...event };
      await this.events.append(m, tenantId, 'host.memory-error', `host:${hostId}`, data);
      // An error in a VM's page is also part of that VM's event sequence (with its virtual time).
      if (hit.type === 'vm') await this.events.append(m, tenantId, 'vm.memory-error', `vm:${hit.vmId as string}`, data);
      return memoryErrorView(e);
    });
    if (dto.kind === 'corrected') return record('corrected', { type: STATE_NAMES[mem.state[frame]] }, { recipient: 'hypervisor', action: 'ignore', actionRequired: false });
    const s = mem.state[frame];
    if (s === FrameState.Poisoned || s === FrameState.Retired || mem.poison[frame]) throw conflict(`frame ${frame} already has an uncorrectable error`, { frame });
    if (s === FrameState.Free) {
      mem.poisonFrame(frame);
      return record('retired', { type: 'free' }, { recipient: 'hypervisor', action: 'ignore', actionRequired: false });
    }
    const vmId = this.runtime.vmOfSlot(h.id, mem.owner[frame]);
    if (s === FrameState.Hypervisor) {
      const view = await record('fatal', { type: 'hypervisor', vmId: vmId ?? null }, { recipient: 'hypervisor', action: 'fatal', actionRequired: true });
      Atomics.store(mem.poison, frame, 1);
      await this.runtime.panicHost(tenantId, h);
      return view;
    }
    const runner = vmId ? this.runtime.runner(vmId) : undefined;
    if (!runner) throw conflict(`frame ${frame} belongs to no running VM`, { frame });
    // On the VM's own event queue: a latent error the guest touches at once is recorded
    // (vm.memory-error) before the vm.memory-failure the runtime appends on that queue.
    return this.runtime.serial(vmId!, async () => {
      const r = await runner.ask({ type: 'inject-memory-error', frame, latent });
      return record(latent ? 'latent' : 'known', { type: 'vm', vmId, guestPhysicalAddress: r.gpa, owner: r.owner, virtualTimeNs: r.virtualTimeNs }, {});
    });
  }

  async list(tenantId: string, hostId: string, q: PageQuery) {
    await this.host(tenantId, hostId);
    return listPage(this.ds.getRepository(MemoryErrorEntity), tenantId, q, memoryErrorView, { hostId });
  }

  /** Retires the error's frame for good. Raises 409 while a running VM still holds it. */
  async retire(tenantId: string, hostId: string, id: string) {
    const h = await this.host(tenantId, hostId);
    const e = await this.ds.getRepository(MemoryErrorEntity).findOneBy({ id, tenantId, hostId });
    if (!e) throw notFound('memory error', id);
    if (!this.runtime.ensureHost(h).memory.retire(e.frame)) throw conflict(`frame ${e.frame} is still in use by a VM; stop it first`, { frame: e.frame });
    await this.events.tx(async (m) => {
      await m.update(MemoryErrorEntity, { id }, { state: 'retired' });
      await this.events.append(m, tenantId, 'host.frame-retired', `host:${hostId}`, { frame: e.frame, memoryErrorId: id });
    });
  }

  /** The host's frames as runs of equal state, for a heat map: {frames, pageSize, runs: [[state, count], ...]}. */
  async memoryMap(tenantId: string, hostId: string) {
    const h = await this.host(tenantId, hostId);
    const mem = this.runtime.ensureHost(h).memory;
    const runs: Array<[string, number]> = [];
    for (let f = 0; f < mem.frames; f++) {
      const name = mem.poison[f] && mem.state[f] !== FrameState.Retired && mem.state[f] !== FrameState.Poisoned ? `${STATE_NAMES[mem.state[f]]}-poisoned` : STATE_NAMES[mem.state[f]];
      if (runs.length && runs[runs.length - 1][0] === name) runs[runs.length - 1][1]++; else runs.push([name, 1]);
    }
    return { frames: mem.frames, pageSize: PAGE_SIZE, runs };
  }

  /** A running VM's backed guest pages (gpa, hpa, owner), optionally by owner, paginated. */
  async vmMemory(tenantId: string, vmId: string, q: VmMemoryQuery) {
    const vm = await this.ds.getRepository(VmEntity).findOneBy({ id: vmId, tenantId });
    if (!vm) throw notFound('vm', vmId);
    const runner = this.runtime.runner(vmId);
    if (!runner) throw conflict(`VM ${vmId} is ${vm.state}: it has no memory to list`, { state: vm.state });
    let pages = await runner.ask({ type: 'memory-map' });
    if (q.owner) {
      const [kind, pid] = q.owner.split(':');
      pages = pages.filter((p) => p.owner.kind === kind && (kind !== 'process' || (p.owner as { pid: number }).pid === Number(pid)));
    }
    const size = q.pageSize ?? 20;
    const offset = pageOffset(q.pageToken);
    const items = pages.slice(offset, offset + size).map((p) => ({
      guestPhysicalAddress: p.gpa, hostPhysicalAddress: p.hpa < 0 ? null : p.hpa, corrupted: p.corrupted,
      owner: p.owner.kind === 'process' ? `process:${p.owner.pid}` : p.owner.kind,
      ...(p.owner.kind === 'process' && p.owner.va !== null ? { guestVirtualAddress: p.owner.va } : {}),
    }));
    return { items, nextPageToken: nextToken(offset, items.length, size) };
  }
}

@ApiTags('memory-errors')
@ApiBearerAuth()
@Controller('v1')
export class MemoryErrorsController {
  constructor(private readonly errors: MemoryErrorsService) {}

  /** Injects a memory error: `{hostPhysicalAddress | {vmId, guestPhysicalAddress} | {vmId, pid, guestVirtualAddress}, kind, latent?}`. */
  @Post('hosts/:id/memory-errors') @HttpCode(201)
  inject(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Body() dto: InjectMemoryErrorDto) { return this.errors.inject(t, id, dto); }

  @Get('hosts/:id/memory-errors')
  list(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Query() q: PageQuery) { return this.errors.list(t, id, q); }

  /** Retires the frame of a memory error (never handed out again). */
  @Delete('hosts/:id/memory-errors/:errorId') @HttpCode(204)
  retire(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Param('errorId', ParseUUIDPipe) errorId: string) { return this.errors.retire(t, id, errorId); }

  /** The host's frame states as runs (free, guest, hypervisor, poisoned, retired, and *-poisoned for frames in use with an error). */
  @Get('hosts/:id/memory-map')
  memoryMap(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.errors.memoryMap(t, id); }

  /** A running VM's backed guest pages: guest-physical and host-physical address, owner (process:PID with its user address, kernel, device). */
  @Get('vms/:id/memory')
  vmMemory(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Query() q: VmMemoryQuery) { return this.errors.vmMemory(t, id, q); }
}

