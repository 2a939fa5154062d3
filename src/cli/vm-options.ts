/**
 * What `hvsim run` and `hvsim experiment` share once they run: the VM spec from the options,
 * technique assignments and the program file. Every bad value is a CliError (one line, status 2).
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { assemble, AsmError } from '../isa/assembler.js';
import { ElfError, parseElf32 } from '../isa/elf.js';
import { DEFAULT_SPEC, VmSpec } from '../runtime/vm.js';
import { MAX_DISKS } from '../hypervisor/platform.js';
import { TECHNIQUE_BY_NAME, TechniqueConfigError, validateTechniques } from '../techniques/catalogue.js';
import { CliError } from './cli-error.js';
import type { VmOptions } from './options.js';
import { DomainSpec, validateDomain } from '../hypervisor/domains.js';
import { keystoreDomain } from '../runtime/keystore.js';

/**
 * The engine of `hvsim run` and `hvsim experiment` when --engine is not given: wasm (hot pages
 * compiled to WebAssembly, V8's Liftoff only), measured fastest on whole-process runs of real
 * programs and never below the interpreter (docs/engine.md, "The CLI's default engine"). The
 * service's VMs keep DEFAULT_SPEC's engine (jit): their workers do not yet get host memory as a
 * WebAssembly.Memory.
 */
export const CLI_ENGINE: VmSpec['engine'] = 'wasm';

/** The VM spec of the options, defaults for what they leave out. */
export function vmSpec(o: VmOptions): Omit<VmSpec, 'processes' | 'techniques'> {
  if ((o.disk?.length ?? 0) > MAX_DISKS) throw new CliError(`at most ${MAX_DISKS} --disk options`);
  return {
    ...DEFAULT_SPEC,
    vcpus: o.vcpus ?? DEFAULT_SPEC.vcpus,
    memoryMiB: o.memoryMib ?? DEFAULT_SPEC.memoryMiB,
    seed: o.seed ?? DEFAULT_SPEC.seed,
    engine: o.engine ?? CLI_ENGINE,
    spectreV2Mitigation: o.spectreV2 ?? DEFAULT_SPEC.spectreV2Mitigation,
    crossingPreset: o.crossing ?? DEFAULT_SPEC.crossingPreset,
    ...(o.disk?.length ? { disks: o.disk.map((mib) => ({ sizeBytes: mib << 20 })) } : {}),
  };
}

/**
 * Readies this process for the spec's engine. `wasm`: V8 compiles WebAssembly with Liftoff only,
 * before the first module: its TurboFan recompiles of hvsim's large page functions cost more CPU
 * than a whole run of most real programs (docs/decisions.md, "Liftoff only for the CLI's wasm
 * engine"). Only the CLI does this: its process runs one program and nothing else (the service's
 * processes also run PGlite's wasm). HVSIM_WASM_TURBOFAN=1 keeps V8's default tiering.
 */
export function prepareEngine(engine: VmSpec['engine']): void {
  if (engine === 'wasm' && !process.env.HVSIM_WASM_TURBOFAN) setFlagsFromString('--liftoff-only');
}

/**
 * Technique assignments `NAME=on|off` and `NAME.PARAM=VALUE` into a configuration object,
 * validated against the catalogue. Raises: CliError naming the problem.
 */
export function parseTechniqueAssignments(cmd: string, items: string[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const item of items) {
    // NAME.PARAM.KEY=VALUE sets one key of a map parameter (KEY may hold dots; VALUE may be empty).
    const m = /^([A-Za-z0-9]+)(?:\.([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?)?=(.*)$/.exec(item);
    if (!m || (m[3] === undefined && m[4] === '')) throw new CliError(`${cmd}: technique settings are NAME=on|off, NAME.PARAM=VALUE or NAME.MAP.KEY=VALUE, got ${item || 'nothing'}`);
    const [, name, param, key, raw] = m;
    if (!TECHNIQUE_BY_NAME.has(name)) throw new CliError(`${cmd}: unknown technique ${name} (known: ${[...TECHNIQUE_BY_NAME.keys()].join(', ')})`);
    if (key !== undefined) {
      const map = ((out[name] ??= {})[param!] ??= {}) as Record<string, unknown>;
      if (typeof map !== 'object') throw new CliError(`${cmd}: ${name}.${param} is set both whole and by key`);
      map[key] = raw;
      continue;
    }
    const value = raw === 'on' || raw === 'true' ? true : raw === 'off' || raw === 'false' ? false : /^-?\d+$/.test(raw) ? Number(raw) : raw;
    (out[name] ??= {})[param ?? 'enabled'] = value;
  }
  try { validateTechniques(out); } catch (e) {
    if (e instanceof TechniqueConfigError) throw new CliError(`${cmd}: ${e.message}`);
    throw e;
  }
  return out;
}

/** Reads FILE as an ELF (assembling .s/.S first) and validates it. Raises: CliError. */
export function loadProgram(cmd: string, file: string): Uint8Array {
  let bytes: Uint8Array;
  try { bytes = new Uint8Array(readFileSync(file)); } catch (e) { throw new CliError(`${cmd}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
  if (/\.[sS]$/.test(file)) {
    try { bytes = assemble(new TextDecoder().decode(bytes), { fileName: file }).elf; } catch (e) {
      if (e instanceof AsmError) throw new CliError(e.message.split('\n')[0]);
      throw e;
    }
  }
  try { parseElf32(bytes); } catch (e) {
    if (e instanceof ElfError) throw new CliError(`${cmd}: ${file}: ${e.message}`);
    throw e;
  }
  return bytes;
}

/**
 * `--domain` values into protection domains (technique 7): `keystore` is the built-in key-store
 * domain; otherwise NAME=FILE:ENTRIES[:KIB] with FILE an ELF or .s/.S source, ENTRIES its entry
 * symbols (the gates, numbered in order across domains) and KIB its private memory (default 64).
 * Raises: CliError naming the problem.
 */
export function parseDomains(cmd: string, items: string[], vcpus: number): DomainSpec[] {
  if (items.length > 0 && vcpus !== 1) throw new CliError(`${cmd}: protection domains need a VM with one vCPU (--vcpus 1), got ${vcpus}`);
  return items.map((item) => {
    if (item === 'keystore') return keystoreDomain();
    const m = /^([A-Za-z0-9_.-]+)=([^:]+):([^:]+)(?::(\d+))?$/.exec(item);
    if (!m) throw new CliError(`${cmd}: --domain needs keystore or NAME=FILE:ENTRY[,ENTRY...][:KIB], got ${item}`);
    const spec: DomainSpec = { name: m[1], elf: loadProgram(cmd, m[2]), entryPoints: m[3].split(','), memoryKiB: m[4] === undefined ? 64 : Number(m[4]) };
    try { validateDomain(spec); } catch (e) { throw new CliError(`${cmd}: ${(e as Error).message}`); }
    return spec;
  });
}
