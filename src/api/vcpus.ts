/**
 * Interrupts to one vCPU of a running VM: `POST /v1/vms/{id}/vcpus/{n}/interrupts`
 * `{type: "privileged-mode"}` raises technique 6's privileged-mode interrupt on vCPU n
 * (docs/techniques/global-view.md). The VM's worker delivers it between two slices, at an
 * instruction boundary of every vCPU; the reply says what became of it.
 */
import { Body, Controller, HttpCode, Injectable, Param, ParseIntPipe, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiParam, ApiProperty, ApiTags } from '@nestjs/swagger';
import { IsIn } from 'class-validator';
import { DataSource } from 'typeorm';
import { TenantId } from './auth.js';
import { conflict, notFound } from './errors.js';
import { RuntimeService } from './runtime.service.js';
import { VmEntity } from '../persistence/entities.js';
import { VmActionError } from '../runtime/vm-runner.js';

export const INTERRUPT_TYPES = ['privileged-mode'] as const;

export class InterruptDto {
  @ApiProperty({ enum: INTERRUPT_TYPES }) @IsIn(INTERRUPT_TYPES) type!: (typeof INTERRUPT_TYPES)[number];
}

@Injectable()
export class VcpusService {
  constructor(private readonly ds: DataSource, private readonly runtime: RuntimeService) {}

  /**
   * Raises 404 for an unknown VM or vCPU; 409 when the VM is not running or paused.
   * Returns `{vmId, vcpu, type, outcome}`: outcome is entered, queued, coalesced or dropped.
   */
  async interrupt(tenantId: string, vmId: string, vcpu: number, dto: InterruptDto) {
    const vm = await this.ds.getRepository(VmEntity).findOneBy({ id: vmId, tenantId });
    if (!vm) throw notFound('vm', vmId);
    if (vcpu < 0 || vcpu >= vm.vcpus) throw notFound(`vCPU ${vcpu} of vm`, vmId);
    const runner = this.runtime.runner(vmId);
    if (!runner) throw conflict(`VM ${vmId} is ${vm.state}: interrupts need a running or paused VM`, { state: vm.state });
    try {
      const r = await runner.ask({ type: 'inject-privileged-mode', vcpu });
      return { vmId, vcpu, type: dto.type, outcome: r.outcome };
    } catch (e) {
      if (e instanceof VmActionError) throw conflict(e.message, { state: vm.state });
      throw e;
    }
  }
}

@ApiTags('vms')
@ApiBearerAuth()
@Controller('v1/vms')
export class VcpusController {
  constructor(private readonly vcpus: VcpusService) {}

  /** Raises an interrupt on vCPU n: `{type: "privileged-mode"}` (technique 6). */
  @Post(':id/vcpus/:n/interrupts') @HttpCode(200) @ApiParam({ name: 'n', type: 'integer', description: 'the vCPU index, from 0' })
  interrupt(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string, @Param('n', ParseIntPipe) n: number, @Body() dto: InterruptDto) {
    return this.vcpus.interrupt(t, id, n, dto);
  }
}
