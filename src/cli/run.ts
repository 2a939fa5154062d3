/**
 * `hvsim run FILE [options] [-- ARGS...]` (DESIGN.md section 7): runs FILE as the single process
 * of a fresh in-process VM, with no server or database. Guest stdout/stderr go byte for byte to
 * ours, guest stdin is ours (read to the end first; empty when stdin is a terminal), and the exit
 * status is the guest's, or 128 + signal. A VM that crashes exits 70 with one line saying why; one
 * stopped by --max-instructions exits 124.
 */
import { readFileSync, writeFileSync, writeSync, fstatSync } from 'node:fs';
import { assemble, AsmError } from '../isa/assembler.js';
import { ElfError, parseElf32 } from '../isa/elf.js';
import { runProgram } from '../runtime/run-program.js';
import { DEFAULT_SPEC } from '../runtime/vm.js';
import { CliError, Command } from './cli-error.js';

const USAGE = 'hvsim run FILE [--vcpus N] [--memory-mib M] [--technique NAME=on|off ...] [--stats FILE.json] [--engine interp|jit] [--seed N] [--spectre-v2 none|retpoline] [--crossing none|kpti] [--max-instructions N] [-- ARGS...]';

/** Techniques `--technique` accepts; empty until the technique catalogue exists (docs/guest-os.md). */
const TECHNIQUES: readonly string[] = [];

function intOption(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min || n > max) throw new CliError(`run: ${name} needs an integer from ${min} to ${max}, got ${v ?? 'nothing'}`);
  return n;
}

function choice<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) throw new CliError(`run: ${name} must be one of ${allowed.join(', ')}, got ${v ?? 'nothing'}`);
  return v as T;
}

function readStdin(): Uint8Array {
  try {
    if (fstatSync(0).isCharacterDevice()) return new Uint8Array();
    return new Uint8Array(readFileSync(0));
  } catch {
    return new Uint8Array();
  }
}

export const runCommand: Command = {
  name: 'run',
  summary: 'run a static RV32 ELF (or .s/.S assembly) as the only process of an in-process VM, like qemu-riscv32',
  usage: USAGE,
  async run(args) {
    const o = { ...DEFAULT_SPEC };
    let file: string | undefined;
    let stats: string | undefined;
    let maxInstructions: number | undefined;
    let guestArgs: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (a === '--') { guestArgs = args.slice(i + 1); break; }
      if (file !== undefined && !a.startsWith('--')) { guestArgs = args.slice(i); break; }
      switch (a) {
        case '--vcpus': o.vcpus = intOption(a, args[++i], 1, 16); break;
        case '--memory-mib': o.memoryMiB = intOption(a, args[++i], 8, 2047); break;
        case '--seed': o.seed = intOption(a, args[++i], 0, 2 ** 32 - 1); break;
        case '--engine': o.engine = choice(a, args[++i], ['interp', 'jit'] as const); break;
        case '--spectre-v2': o.spectreV2Mitigation = choice(a, args[++i], ['none', 'retpoline'] as const); break;
        case '--crossing': o.crossingPreset = choice(a, args[++i], ['none', 'kpti'] as const); break;
        case '--max-instructions': maxInstructions = intOption(a, args[++i], 1, Number.MAX_SAFE_INTEGER); break;
        case '--stats': stats = args[++i]; if (!stats) throw new CliError('run: --stats needs a file name'); break;
        case '--technique': {
          const t = args[++i] ?? '';
          const m = /^([A-Za-z0-9-]+)=(on|off)$/.exec(t);
          if (!m) throw new CliError(`run: --technique needs NAME=on|off, got ${t || 'nothing'}`);
          if (!TECHNIQUES.includes(m[1])) throw new CliError(`run: unknown technique ${m[1]} (no techniques are implemented yet)`);
          break;
        }
        default:
          if (a.startsWith('-')) throw new CliError(`run: unknown option ${a} (usage: ${USAGE})`);
          file = a;
      }
    }
    if (!file) throw new CliError(`usage: ${USAGE}`);
    let bytes: Uint8Array;
    try { bytes = new Uint8Array(readFileSync(file)); } catch (e) { throw new CliError(`run: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
    if (/\.[sS]$/.test(file)) {
      try { bytes = assemble(new TextDecoder().decode(bytes), { fileName: file }).elf; } catch (e) {
        if (e instanceof AsmError) throw new CliError(e.message.split('\n')[0]);
        throw e;
      }
    }
    try { parseElf32(bytes); } catch (e) {
      if (e instanceof ElfError) throw new CliError(`run: ${file}: ${e.message}`);
      throw e;
    }
    const r = runProgram(bytes, {
      ...o, argv: [file, ...guestArgs], env: Object.entries(process.env).map(([k, v]) => `${k}=${v}`), stdin: readStdin(), maxInstructions,
      onOutput: (port, b) => { writeSync(port === 0 ? 1 : 2, b); },
    });
    if (stats) {
      const c = r.counters;
      writeFileSync(stats, JSON.stringify({
        instructions: c.instructions, cycles: c.cycles, crossings: c.crossings, exits: c.exits, syscalls: c.syscalls,
        tlbMisses: c.tlbMisses, branchMispredicts: c.branchMispredicts, wallMs: Math.round(r.wallMs * 1000) / 1000,
        transitions: c.transitions, enosys: c.enosys, doorbells: c.doorbells, virtualTimeNs: c.virtualTimeNs, perVcpu: c.perVcpu,
        state: r.vm.state, reason: r.vm.reason, processes: r.vm.processes(),
      }, null, 2) + '\n');
    }
    if (r.vm.state === 'crashed') {
      process.stderr.write(`hvsim: VM crashed: ${(r.vm.reason ?? '').split('\n')[0]}\n`);
      return 70;
    }
    if (r.vm.reason === 'instruction-limit') {
      process.stderr.write(`hvsim: stopped after --max-instructions ${maxInstructions}\n`);
      return 124;
    }
    return r.status;
  },
};
