/**
 * Experiments over REST: a workload (an image of the tenant, or a built-in workload) run on a
 * fresh VM per variant, in worker threads on a host runtime of the experiment's own (so it never
 * competes with the tenant's hosts), as an Operation with progress. Every run is an
 * `experiment.variant` event; the comparison (runtime/experiment.ts `compare`) is the result.
 */
import { Body, Controller, Get, HttpCode, Injectable, Param, ParseUUIDPipe, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsInt, IsObject, IsOptional, IsString, IsUUID, Length, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { DataSource } from 'typeorm';
import { TenantId } from './auth.js';
import { notFound, ProblemError } from './errors.js';
import { EventsService } from './events.service.js';
import { OperationsService } from './operations.js';
import { checkTechniques } from './techniques.js';
import { listPage, PageQuery } from './pagination.js';
import { ExperimentEntity, ImageEntity } from '../persistence/entities.js';
import { compare, Variant, VariantRun, variantSettings } from '../runtime/experiment.js';
import { MITIGATIONS, type SpectreV2Mitigation } from '../guest/kernel-text.js';
import { HostRuntime } from '../runtime/host-runtime.js';
import { domainsMiB, hostMiBFor } from '../runtime/run-program.js';
import { keystoreDomain } from '../runtime/keystore.js';
import { DomainSpec, MAX_DOMAIN_KIB, MAX_DOMAINS, validateDomain } from '../hypervisor/domains.js';
import { builtinElf, WORKLOADS } from '../runtime/workloads.js';
import { DEFAULT_SPEC, ProcessImage, VmSpec } from '../runtime/vm.js';
import { MIGRATION_DEFAULTS } from './migrations.js';
import type { VmRunner } from '../runtime/vm-runner.js';
import type { MigrationOutcome } from '../migration/source.js';
import { migrateVm } from '../runtime/live-migration.js';

/** A protection domain of the experiment's VM (technique 7): the built-in key-store, or an image of the tenant. */
export class ExperimentDomainDto {
  @ApiPropertyOptional({ enum: ['keystore'], description: 'the built-in key-store domain (gates ks_seal, ks_unseal, ks_sign)' }) @IsOptional() @IsIn(['keystore']) builtin?: 'keystore';
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 64) name?: string;
  @ApiPropertyOptional() @IsOptional() @IsUUID() imageId?: string;
  @ApiPropertyOptional({ type: [String] }) @IsOptional() @IsArray() @ArrayMinSize(1) @ArrayMaxSize(64) @IsString({ each: true }) entryPoints?: string[];
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(32) @Max(MAX_DOMAIN_KIB) memoryKiB?: number;
}

export class ExperimentWorkloadDto {
  @ApiPropertyOptional() @IsOptional() @IsUUID() imageId?: string;
  @ApiPropertyOptional({ description: 'a built-in workload: hello, cpu, syscalls, memtouch, mix' }) @IsOptional() @IsString() builtin?: string;
  @ApiPropertyOptional({ type: [String] }) @IsOptional() @IsArray() @ArrayMaxSize(64) @IsString({ each: true }) argv?: string[];
  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(1 << 20) stdin?: string;
  @ApiPropertyOptional({ type: [ExperimentDomainDto] }) @IsOptional() @IsArray() @ArrayMaxSize(MAX_DOMAINS) @ValidateNested({ each: true }) @Type(() => ExperimentDomainDto) domains?: ExperimentDomainDto[];
}

export class ExperimentVmDto {
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(16) vcpus?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(8) @Max(2047) memoryMiB?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(4294967295) seed?: number;
  @ApiPropertyOptional({ enum: ['interp', 'jit'] }) @IsOptional() @IsIn(['interp', 'jit']) engine?: 'interp' | 'jit';
  @ApiPropertyOptional({ enum: ['none', 'retpoline'] }) @IsOptional() @IsIn(['none', 'retpoline']) spectreV2Mitigation?: 'none' | 'retpoline';
  @ApiPropertyOptional({ enum: ['none', 'kpti'] }) @IsOptional() @IsIn(['none', 'kpti']) crossingPreset?: 'none' | 'kpti';
}

export class ExperimentMigrationDto {
  /** Virtual time (ms) at which round 1 starts; the same in every run, so rounds and pages repeat. */
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(600000) atVirtualMs?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(60000) maxDowntimeMs?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(65536) maxBandwidthMiBps?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(1000) maxRounds?: number;
}

export class VariantDto {
  @ApiProperty() @IsString() @Length(1, 64) name!: string;
  @ApiProperty() @IsObject() techniques!: Record<string, unknown>;
  /** This variant's VM runs under this mitigation (default: the experiment's `vm.spectreV2Mitigation`). */
  @ApiPropertyOptional({ enum: MITIGATIONS }) @IsOptional() @IsIn(MITIGATIONS) spectreV2Mitigation?: SpectreV2Mitigation;
}

export class CreateExperimentDto {
  @ApiProperty() @ValidateNested() @Type(() => ExperimentWorkloadDto) workload!: ExperimentWorkloadDto;
  @ApiPropertyOptional() @IsOptional() @ValidateNested() @Type(() => ExperimentVmDto) vm?: ExperimentVmDto;
  @ApiProperty({ type: [VariantDto] }) @IsArray() @ArrayMinSize(1) @ArrayMaxSize(16) @ValidateNested({ each: true }) @Type(() => VariantDto) variants!: VariantDto[];
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(10) repetitions?: number;
  /** Live-migrate every run to a second private host at `atVirtualMs` (pre-copy; each variant's umeAwareMigration applies). */
  @ApiPropertyOptional({ type: ExperimentMigrationDto }) @IsOptional() @ValidateNested() @Type(() => ExperimentMigrationDto) migration?: ExperimentMigrationDto;
}

export const experimentView = (e: ExperimentEntity) => ({
  id: e.id, operationId: e.operationId, spec: e.spec, state: e.state, result: e.result, error: e.error,
  createdAt: e.createdAt.toISOString(), updatedAt: e.updatedAt.toISOString(),
});

const bad = (detail: string) => new ProblemError(400, 'Bad Request', detail);

@Injectable()
export class ExperimentsService {
  constructor(private readonly ds: DataSource, private readonly events: EventsService, private readonly ops: OperationsService) {}

  /** Validates and starts an experiment. Raises 400 (bad variants or workload), 404 (unknown image), 501 (technique not implemented). */
  async create(tenantId: string, dto: CreateExperimentDto) {
    const names = new Set<string>();
    for (const v of dto.variants) {
      if (names.has(v.name)) throw bad(`variant names must be unique: '${v.name}' appears twice`);
      names.add(v.name);
      checkTechniques(v.techniques, `variants.${v.name}.techniques`);
    }
    if ((dto.workload.imageId === undefined) === (dto.workload.builtin === undefined)) throw bad('workload needs exactly one of imageId and builtin');
    const processes = await this.processes(tenantId, dto.workload);
    const domains = await this.domains(tenantId, dto.workload.domains ?? []);
    const workload = dto.workload.builtin ? WORKLOADS.find((w) => w.name === dto.workload.builtin) : undefined;
    const spec: Omit<VmSpec, 'processes' | 'techniques'> = {
      ...DEFAULT_SPEC, vcpus: dto.vm?.vcpus ?? workload?.vcpus ?? 1, memoryMiB: dto.vm?.memoryMiB ?? DEFAULT_SPEC.memoryMiB, seed: dto.vm?.seed ?? DEFAULT_SPEC.seed,
      engine: dto.vm?.engine ?? 'jit', spectreV2Mitigation: dto.vm?.spectreV2Mitigation ?? 'none', crossingPreset: dto.vm?.crossingPreset ?? 'none',
      ...(workload?.disks ? { disks: workload.disks.map((mib) => ({ sizeBytes: mib << 20 })) } : {}),
    };
    const variants: Variant[] = dto.variants.map((v) => ({ name: v.name, techniques: v.techniques, ...(v.spectreV2Mitigation ? { spectreV2Mitigation: v.spectreV2Mitigation } : {}) }));
    const repetitions = dto.repetitions ?? 1;
    const migration = dto.migration ? {
      atVirtualMs: dto.migration.atVirtualMs ?? 10, maxDowntimeMs: dto.migration.maxDowntimeMs ?? MIGRATION_DEFAULTS.maxDowntimeMs,
      maxBandwidthMiBps: dto.migration.maxBandwidthMiBps ?? MIGRATION_DEFAULTS.maxBandwidthMiBps, maxRounds: dto.migration.maxRounds ?? MIGRATION_DEFAULTS.maxRounds,
    } : null;
    if (domains.length && spec.vcpus !== 1) throw bad('protection domains need a VM with one vCPU');
    if (domains.length && migration) throw bad('a VM with protection domains cannot be migrated');
    const stored = { workload: dto.workload, vm: spec, variants, repetitions, ...(migration ? { migration } : {}) };
    const exp = await this.events.tx(async (m) => {
      const e = await m.save(m.create(ExperimentEntity, { tenantId, spec: stored, state: 'pending', result: null, error: null, operationId: null }));
      await this.events.append(m, tenantId, 'experiment.created', `experiment:${e.id}`, { variants: variants.map((v) => v.name), repetitions });
      return e;
    });
    const op = await this.ops.start(tenantId, 'experiment.run', `experiment:${exp.id}`, async (ctx) => {
      try {
        const result = await this.run(tenantId, exp.id, { ...spec, domains }, processes, variants, repetitions, migration, ctx.progress, ctx.signal);
        await this.finish(tenantId, exp.id, { state: 'succeeded', result }, 'experiment.succeeded', { diverged: result.variants.filter((v) => v.diverged).map((v) => v.name) });
        return { experimentId: exp.id };
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        await this.finish(tenantId, exp.id, { state: ctx.signal.aborted ? 'cancelled' : 'failed', error }, 'experiment.failed', { error });
        throw e;
      }
    });
    await this.ds.getRepository(ExperimentEntity).update({ id: exp.id }, { operationId: op.id });
    return { ...experimentView({ ...exp, operationId: op.id }), operation: op };
  }

  /** The workload's protection domains, checked. Raises 400 (incomplete or bad definition), 404 (image). */
  private async domains(tenantId: string, defs: ExperimentDomainDto[]): Promise<DomainSpec[]> {
    const out: DomainSpec[] = [];
    for (const d of defs) {
      if (d.builtin === 'keystore') { out.push(keystoreDomain(d.name)); continue; }
      if (d.name === undefined || d.imageId === undefined || d.entryPoints === undefined) throw bad('a domain needs builtin, or name, imageId and entryPoints');
      const img = await this.ds.getRepository(ImageEntity).createQueryBuilder('i').addSelect('i.content')
        .where('i.id = :id AND i.tenant_id = :tenantId', { id: d.imageId, tenantId }).getOne();
      if (!img) throw notFound('image', d.imageId);
      const spec: DomainSpec = { name: d.name, elf: new Uint8Array(img.content), entryPoints: d.entryPoints, memoryKiB: d.memoryKiB ?? 64 };
      try { validateDomain(spec); } catch (e) { throw bad(`domain ${d.name}: ${(e as Error).message}`); }
      out.push(spec);
    }
    if (new Set(out.map((d) => d.name)).size !== out.length) throw bad('protection domain names must be unique');
    return out;
  }

  private async processes(tenantId: string, w: ExperimentWorkloadDto): Promise<ProcessImage[]> {
    const stdin = new TextEncoder().encode(w.stdin ?? '');
    if (w.builtin !== undefined) {
      const wl = WORKLOADS.find((x) => x.name === w.builtin);
      if (!wl) throw bad(`unknown built-in workload '${w.builtin}' (known: ${WORKLOADS.map((x) => x.name).join(', ')})`);
      return wl.processes.map((p, i) => ({ name: p.image, elf: builtinElf(p.image), argv: i === 0 && w.argv ? w.argv : p.argv, env: [], stdin, stdinPipe: p.stdinPipe, stdoutPipe: p.stdoutPipe }));
    }
    const img = await this.ds.getRepository(ImageEntity).createQueryBuilder('i').addSelect('i.content')
      .where('i.id = :id AND i.tenant_id = :tenantId', { id: w.imageId, tenantId }).getOne();
    if (!img) throw notFound('image', w.imageId!);
    return [{ name: img.name, elf: new Uint8Array(img.content), argv: w.argv ?? [img.name], env: [], stdin }];
  }

  /** Runs every variant × repetition in a worker on a private host and compares them. */
  private async run(tenantId: string, id: string, spec: Omit<VmSpec, 'processes' | 'techniques'>, processes: ProcessImage[], variants: Variant[],
    repetitions: number, migration: ExperimentMigration | null, progress: (p: number) => Promise<void>, signal: AbortSignal) {
    await this.ds.getRepository(ExperimentEntity).update({ id }, { state: 'running' });
    const host = new HostRuntime(hostMiBFor(spec.memoryMiB) + domainsMiB(spec.domains));
    const target = migration ? new HostRuntime(hostMiBFor(spec.memoryMiB)) : null;
    const runs: VariantRun[][] = [];
    const total = variants.length * repetitions;
    let done = 0;
    for (const v of variants) {
      const reps: VariantRun[] = [];
      for (let k = 0; k < repetitions; k++) {
        if (signal.aborted) throw new Error('cancelled');
        const started = performance.now();
        const vmSpec: VmSpec = { ...spec, processes, techniques: variantSettings(v), spectreV2Mitigation: v.spectreV2Mitigation ?? spec.spectreV2Mitigation };
        let runner = await host.startVm(`${id}:${v.name}:${k}`, vmSpec, migration ? { pauseAtVirtualNs: migration.atVirtualMs * 1e6 } : {});
        let onAbort = () => { void runner.stop(); };
        signal.addEventListener('abort', onAbort);
        let moved: MigrationOutcome | { failed: string } | undefined;
        if (migration && target) {
          const r = await migrateRun(runner, target, `${id}:${v.name}:${k}`, vmSpec, migration);
          moved = r.outcome;
          if (r.runner !== runner) {
            signal.removeEventListener('abort', onAbort);
            runner = r.runner;
            onAbort = () => { void runner.stop(); };
            signal.addEventListener('abort', onAbort);
          }
        }
        const final = await runner.done;
        signal.removeEventListener('abort', onAbort);
        if (!final.counters) throw new Error(`variant ${v.name} produced no counters (${final.reason})`);
        const run: VariantRun = {
          counters: final.counters, stdout: runner.console.bytes(0), stderr: runner.console.bytes(1),
          statuses: final.processes.map((p) => p.status ?? -1), state: final.state, reason: final.reason, wallMs: performance.now() - started,
          ...(moved ? { migration: moved } : {}),
        };
        reps.push(run);
        done++;
        await progress(done / total);
        await this.events.tx((m) => this.events.append(m, tenantId, 'experiment.variant', `experiment:${id}`, {
          variant: v.name, repetition: k, done, total, statuses: run.statuses, instructions: run.counters.instructions,
          cycles: run.counters.cycles, crossings: run.counters.crossings, wallMs: Math.round(run.wallMs),
        }));
      }
      runs.push(reps);
    }
    await target?.shutdown();
    return { variants: compare(variants, runs) };
  }

  private finish(tenantId: string, id: string, patch: Partial<ExperimentEntity>, type: string, data: Record<string, unknown>) {
    return this.events.tx(async (m) => {
      await m.update(ExperimentEntity, { id }, patch as never);
      await this.events.append(m, tenantId, type, `experiment:${id}`, data);
    });
  }

  async get(tenantId: string, id: string) {
    const e = await this.ds.getRepository(ExperimentEntity).findOneBy({ id, tenantId });
    if (!e) throw notFound('experiment', id);
    return experimentView(e);
  }

  list(tenantId: string, q: PageQuery) {
    return listPage(this.ds.getRepository(ExperimentEntity), tenantId, q, experimentView);
  }
}

type ExperimentMigration = { atVirtualMs: number; maxDowntimeMs: number; maxBandwidthMiBps: number; maxRounds: number };

/**
 * Migrates a run's VM (started to pause itself at `atVirtualMs`) to host `target` once it has
 * paused, so round 1 starts at the same virtual moment in every run. Resolves with the runner the
 * VM ends in (the destination's, resumed, when the migration completed) and the outcome.
 */
async function migrateRun(src: VmRunner, target: HostRuntime, key: string, spec: VmSpec, m: ExperimentMigration): Promise<{ runner: VmRunner; outcome: MigrationOutcome | { failed: string } }> {
  const paused = await new Promise<boolean>((resolve) => {
    if (src.state === 'paused') { resolve(true); return; }
    const onState = (s: { state: string }) => { if (s.state === 'paused') { src.off('state', onState); resolve(true); } };
    src.on('state', onState);
    void src.done.then(() => resolve(false));
  });
  if (!paused) return { runner: src, outcome: { failed: `the VM ended before ${m.atVirtualMs} ms of virtual time` } };
  const r = await migrateVm(src, target, key, {
    migrationId: key, maxDowntimeMs: m.maxDowntimeMs, bandwidthMiBps: m.maxBandwidthMiBps, maxRounds: m.maxRounds, timeoutS: 600,
    technique: spec.techniques?.umeAwareMigration?.enabled === true,
  }, null);
  if (!r.ok) return { runner: src, outcome: { failed: r.reason } };
  r.target.adoptConsole(src.console);
  await r.target.resume();
  return { runner: r.target, outcome: r.outcome };
}

@ApiTags('experiments')
@ApiBearerAuth()
@Controller('v1/experiments')
export class ExperimentsController {
  constructor(private readonly experiments: ExperimentsService) {}

  /**
   * Starts an experiment: `{workload: {imageId | builtin, argv?, stdin?}, vm?: {vcpus, memoryMiB, seed, ...}, variants: [{name, techniques}], repetitions?}`.
   * 202 with the experiment and its Operation; results (ratios against the first variant, `diverged`) arrive in `result`.
   */
  @Post() @HttpCode(202)
  create(@TenantId() t: string, @Body() dto: CreateExperimentDto) { return this.experiments.create(t, dto); }

  @Get()
  list(@TenantId() t: string, @Query() q: PageQuery) { return this.experiments.list(t, q); }

  @Get(':id')
  get(@TenantId() t: string, @Param('id', ParseUUIDPipe) id: string) { return this.experiments.get(t, id); }
}
