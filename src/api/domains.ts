/**
 * Secure protection domains of a VM definition (technique 7): /v1/vms/{id}/domains. A domain is
 * an image (RV32 ELF with its entry symbols), the symbols that become its gates, and the size of
 * its private memory. Domains are part of the VM definition (the `domains` column, in gate order:
 * a VM's gates are numbered across its domains in that order) and can change only while the VM
 * is `created` (409 once it has started). The definition is checked against the image when it is
 * added (422 naming the problem), so a VM whose domains were accepted builds them at start.
 */
import { Body, Controller, Delete, Get, HttpCode, Injectable, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiTags } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsInt, IsString, IsUUID, Length, Matches, Max, Min } from 'class-validator';
import { DataSource } from 'typeorm';
import { TenantId } from './auth.js';
import { conflict, notFound, ProblemError } from './errors.js';
import { EventsService } from './events.service.js';
import { RuntimeService } from './runtime.service.js';
import { VmsService } from './vms.js';
import { DomainDef, ImageEntity, VmEntity } from '../persistence/entities.js';
import { MAX_DOMAIN_KIB, MAX_DOMAINS, validateDomain } from '../hypervisor/domains.js';

export class CreateDomainDto implements DomainDef {
  @ApiProperty() @IsString() @Length(1, 64) @Matches(/^[A-Za-z0-9_.-]+$/) name!: string;
  @ApiProperty() @IsUUID() imageId!: string;
  @ApiProperty({ type: [String] }) @IsArray() @ArrayMinSize(1) @ArrayMaxSize(64) @IsString({ each: true }) @Length(1, 128, { each: true }) entryPoints!: string[];
  @ApiProperty() @IsInt() @Min(32) @Max(MAX_DOMAIN_KIB) memoryKiB!: number;
}

/** A domain as the API shows it, with the gate numbers its entry points have in the VM. */
const domainView = (all: DomainDef[], i: number) => {
  const first = all.slice(0, i).reduce((n, d) => n + d.entryPoints.length, 0);
  const d = all[i];
  return { name: d.name, imageId: d.imageId, entryPoints: d.entryPoints, memoryKiB: d.memoryKiB, gates: d.entryPoints.map((e, k) => ({ entryPoint: e, gate: first + k })) };
};

@Injectable()
export class DomainsService {
  constructor(private readonly ds: DataSource, private readonly events: EventsService, private readonly runtime: RuntimeService, private readonly vms: VmsService) {}

  async list(tenantId: string, vmId: string) {
    const all = await this.definition(tenantId, vmId);
    return all.map((_, i) => domainView(all, i));
  }

  async get(tenantId: string, vmId: string, name: string) {
    const all = await this.definition(tenantId, vmId);
    const i = all.findIndex((d) => d.name === name);
    if (i < 0) throw notFound(`protection domain ${name} of VM`, vmId);
    return domainView(all, i);
  }

  private async definition(tenantId: string, vmId: string): Promise<DomainDef[]> {
    const v = await this.ds.getRepository(VmEntity).findOneBy({ id: vmId, tenantId });
    if (!v) throw notFound('VM', vmId);
    return v.domains ?? [];
  }

  /**
   * Adds a domain to a VM that has not started. Raises 404 (VM), 409 (VM not `created`, a domain
   * of that name, MAX_DOMAINS reached, a VM with more than one vCPU), 422 (unknown image, or an
   * image and entry points that do not make a domain: the reason is named).
   */
  async add(tenantId: string, vmId: string, dto: CreateDomainDto) {
    return this.runtime.serial(vmId, () => this.events.tx(async (m) => {
      const v = await m.findOne(VmEntity, { where: { id: vmId, tenantId }, lock: { mode: 'pessimistic_write' } });
      if (!v) throw notFound('VM', vmId);
      if (v.state !== 'created') throw conflict(`protection domains can change only before the VM starts; it is ${v.state}`, { state: v.state });
      const all = v.domains ?? [];
      if (all.some((d) => d.name === dto.name)) throw conflict(`VM ${vmId} already has a protection domain ${dto.name}`);
      if (all.length >= MAX_DOMAINS) throw conflict(`a VM has at most ${MAX_DOMAINS} protection domains`);
      if (v.vcpus !== 1) throw conflict(`protection domains need a VM with one vCPU; it has ${v.vcpus}`, { vcpus: v.vcpus });
      const img = await m.getRepository(ImageEntity).createQueryBuilder('i').addSelect('i.content')
        .where('i.tenant_id = :tenantId AND i.id = :id', { tenantId, id: dto.imageId }).getOne();
      if (!img) throw new ProblemError(422, 'Unprocessable Content', `unknown image: ${dto.imageId}`, { imageIds: [dto.imageId] });
      const def: DomainDef = { name: dto.name, imageId: dto.imageId, entryPoints: [...dto.entryPoints], memoryKiB: dto.memoryKiB };
      try {
        validateDomain({ ...def, elf: new Uint8Array(img.content) });
      } catch (e) {
        throw new ProblemError(422, 'Unprocessable Content', `image ${img.name} cannot be protection domain ${dto.name}: ${(e as Error).message}`);
      }
      v.domains = [...all, def];
      await m.save(v);
      await this.vms.linkImages(m, tenantId, vmId, [...v.processes, ...v.domains], v.disks ?? []);
      const view = domainView(v.domains, v.domains.length - 1);
      await this.events.append(m, tenantId, 'vm.domain-added', `vm:${vmId}`, view);
      return view;
    }));
  }

  /** Removes a domain of a VM that has not started. Raises 404 (VM, domain), 409 (VM not `created`). */
  async remove(tenantId: string, vmId: string, name: string) {
    await this.runtime.serial(vmId, () => this.events.tx(async (m) => {
      const v = await m.findOne(VmEntity, { where: { id: vmId, tenantId }, lock: { mode: 'pessimistic_write' } });
      if (!v) throw notFound('VM', vmId);
      const all = v.domains ?? [];
      if (!all.some((d) => d.name === name)) throw notFound(`protection domain ${name} of VM`, vmId);
      if (v.state !== 'created') throw conflict(`protection domains can change only before the VM starts; it is ${v.state}`, { state: v.state });
      v.domains = all.filter((d) => d.name !== name);
      await m.save(v);
      await this.vms.linkImages(m, tenantId, vmId, [...v.processes, ...v.domains], v.disks ?? []);
      await this.events.append(m, tenantId, 'vm.domain-removed', `vm:${vmId}`, { name });
    }));
  }
}

@ApiTags('vms')
@ApiBearerAuth()
@Controller('v1/vms/:id/domains')
export class DomainsController {
  constructor(private readonly domains: DomainsService) {}

  @Post() @HttpCode(201)
  add(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Body() dto: CreateDomainDto) { return this.domains.add(t, id, dto); }

  @Get()
  list(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.domains.list(t, id); }

  @Get(':name')
  get(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Param('name') name: string) { return this.domains.get(t, id, name); }

  @Delete(':name') @HttpCode(204)
  remove(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Param('name') name: string) { return this.domains.remove(t, id, name); }
}
