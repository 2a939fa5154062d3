/**
 * Command-line options shared by `hvsim run` and `hvsim experiment`: the VM spec (vCPUs, memory,
 * seed, engine, Spectre-v2 mitigation, crossing preset), technique assignments, the program file
 * and the guest's arguments after `--`. Every bad value is a CliError (one line, status 2).
 */
import { readFileSync } from 'node:fs';
import { assemble, AsmError } from '../isa/assembler.js';
import { ElfError, parseElf32 } from '../isa/elf.js';
import { DEFAULT_SPEC, VmSpec } from '../runtime/vm.js';
import { TECHNIQUE_BY_NAME, TechniqueConfigError, validateTechniques } from '../techniques/catalogue.js';
import { CliError } from './cli-error.js';

export const VM_OPTIONS_USAGE = '[--vcpus N] [--memory-mib M] [--seed N] [--engine interp|jit] [--spectre-v2 none|retpoline] [--crossing none|kpti]';

export interface ParsedVmOptions {
  spec: Omit<VmSpec, 'processes' | 'techniques'>;
  file: string | undefined;
  guestArgs: string[];
  /** Options this parser did not know, with their value, for the command to handle. */
  rest: Array<[string, string | undefined]>;
}

function intOption(cmd: string, name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min || n > max) throw new CliError(`${cmd}: ${name} needs an integer from ${min} to ${max}, got ${v ?? 'nothing'}`);
  return n;
}

function choice<T extends string>(cmd: string, name: string, v: string | undefined, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) throw new CliError(`${cmd}: ${name} must be one of ${allowed.join(', ')}, got ${v ?? 'nothing'}`);
  return v as T;
}

/** Parses `args`; options in `valued` take a value, `flags` do not; anything else starting with - is an error. */
export function parseVmOptions(cmd: string, usage: string, args: string[], valued: string[], flags: string[] = []): ParsedVmOptions {
  const spec = { ...DEFAULT_SPEC };
  let file: string | undefined;
  let guestArgs: string[] = [];
  const rest: Array<[string, string | undefined]> = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') { guestArgs = args.slice(i + 1); break; }
    if (file !== undefined && !a.startsWith('-')) { guestArgs = args.slice(i); break; }
    switch (a) {
      case '--vcpus': spec.vcpus = intOption(cmd, a, args[++i], 1, 16); break;
      case '--memory-mib': spec.memoryMiB = intOption(cmd, a, args[++i], 8, 2047); break;
      case '--seed': spec.seed = intOption(cmd, a, args[++i], 0, 2 ** 32 - 1); break;
      case '--engine': spec.engine = choice(cmd, a, args[++i], ['interp', 'jit'] as const); break;
      case '--spectre-v2': spec.spectreV2Mitigation = choice(cmd, a, args[++i], ['none', 'retpoline'] as const); break;
      case '--crossing': spec.crossingPreset = choice(cmd, a, args[++i], ['none', 'kpti'] as const); break;
      default:
        if (valued.includes(a)) { const v = args[++i]; if (v === undefined) throw new CliError(`${cmd}: ${a} needs a value`); rest.push([a, v]); } else if (flags.includes(a)) rest.push([a, undefined]); else if (a.startsWith('-')) throw new CliError(`${cmd}: unknown option ${a} (usage: ${usage})`); else file = a;
    }
  }
  if (!file) throw new CliError(`usage: ${usage}`);
  return { spec, file, guestArgs, rest };
}

export const intArg = intOption;

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
