/**
 * `hvsim run FILE [options] [-- ARGS...]` (README.md, "The hvsim command"): runs FILE as the single process
 * of a fresh in-process VM, with no server or database. Guest stdout/stderr go byte for byte to
 * ours, guest stdin is ours (read as the guest reads: it blocks until data or EOF), and the exit
 * status is the guest's, or 128 + signal. A VM that crashes exits 70 with one line saying why; one
 * stopped by --max-instructions exits 124.
 */
import { accessSync, constants, readFileSync, readSync, statSync, writeFileSync, writeSync, fstatSync } from 'node:fs';
import { setStdinFeed, StdinFeed } from '../guest/vfs.js';
import { dirname, resolve } from 'node:path';
import { RunResult, runProgram } from '../runtime/run-program.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { CliError } from './cli-error.js';
import type { VmOptions } from './options.js';
import { compileStats } from '../cpu/wasm/engine.js';
import { loadProgram, parseDomains, parseTechniqueAssignments, prepareEngine, vmSpec } from './vm-options.js';

/**
 * Our stdin as the guest reads it: up to `max` bytes per read, blocking until some arrive (a
 * terminal or pipe gives what it has; a file gives min(max, what is left), so runs on a file are
 * deterministic); empty at end of file, and from then on.
 */
export function streamedStdin(): StdinFeed {
  const buf = Buffer.alloc(1 << 16);
  const empty = new Uint8Array(0);
  let eof = false;
  return (max) => {
    while (!eof) {
      try {
        const n = readSync(0, buf, 0, Math.min(max, buf.length), null);
        if (n === 0) eof = true;
        return buf.subarray(0, n);
      } catch (e) {
        // A non-blocking stdin with nothing in it yet: wait a little and try again.
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); continue; }
        eof = true;
      }
    }
    return empty;
  };
}

/** The whole of our stdin (for `hvsim experiment`, which gives every variant the same input); empty when stdin is a terminal. */
export function readStdin(): Uint8Array {
  try {
    if (fstatSync(0).isCharacterDevice()) return new Uint8Array();
    return new Uint8Array(readFileSync(0));
  } catch {
    return new Uint8Array();
  }
}

export interface RunOptions extends VmOptions {
  technique: string[];
  stats?: string;
  maxInstructions?: number;
}

/**
 * Fails unless `path` can be written (an existing writable file, or a new one in a writable
 * directory): checked before a run, not after it. Raises: CliError.
 */
export function checkWritable(cmd: string, option: string, path: string): void {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    if (st?.isDirectory()) throw new CliError(`${cmd}: ${option} ${path} is a directory`);
    accessSync(st ? path : dirname(resolve(path)), constants.W_OK);
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`${cmd}: cannot write ${option} ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}

/** 128 + SIGPIPE: how a shell reports a process killed by writing to a pipe nobody reads. */
const KILLED_BY_SIGPIPE = 128 + 13;

/**
 * Writes guest console bytes to the host fd. When the reader is gone (EPIPE), the process ends as
 * qemu-riscv32's does: the host SIGPIPE reaches the guest, whose default action kills it, so
 * nothing more is written (not even --stats) and the status is 141.
 */
function writeOutput(fd: number, bytes: Uint8Array): void {
  try {
    writeSync(fd, bytes);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') process.exit(KILLED_BY_SIGPIPE);
    throw e;
  }
}

/** The jit's counts and per-tier costs for --stats (times rounded to microseconds); null under the interpreter. */
function jitStats(vm: RunResult['vm']): Record<string, number> | null {
  const s = vm.jitStats();
  return s && Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k.endsWith('Ms') ? Math.round(v * 1000) / 1000 : v]));
}

/** The wasm engine's compile and run counts of this run (they are the process's, which may run several). */
function wasmStats(before: typeof compileStats): Record<string, number> {
  return Object.fromEntries(Object.entries(compileStats).map(([k, v]) => [k, k.endsWith('Us') ? Math.round(v - before[k as keyof typeof compileStats]) : v - before[k as keyof typeof compileStats]]));
}

/** `hvsim run FILE [options] [-- ARGS...]`; resolves to the exit status. Raises: CliError. */
export async function runFile(file: string, guestArgs: string[], o: RunOptions): Promise<number> {
  const techniques = resolveTechniques(parseTechniqueAssignments('run', o.technique));
  if (o.stats !== undefined) checkWritable('run', '--stats', o.stats);
  const spec = vmSpec(o);
  prepareEngine(spec.engine);
  const domains = parseDomains('run', o.domain ?? [], spec.vcpus);
  const bytes = loadProgram('run', file);
  const stats = o.stats;
  const maxInstructions = o.maxInstructions;
  setStdinFeed(streamedStdin());
  const wasmBefore = { ...compileStats };
  const r = runProgram(bytes, {
    ...spec, techniques, domains, argv: [file, ...guestArgs], env: Object.entries(process.env).map(([k, v]) => `${k}=${v}`), maxInstructions,
    onOutput: (port, b) => { writeOutput(port === 0 ? 1 : 2, b); },
  });
  setStdinFeed(null);
  if (stats) {
    const c = r.counters;
    writeFileSync(stats, JSON.stringify({
      instructions: c.instructions, cycles: c.cycles, crossings: c.crossings, exits: c.exits, syscalls: c.syscalls,
      tlbMisses: c.tlbMisses, branchMispredicts: c.branchMispredicts, wallMs: Math.round(r.wallMs * 1000) / 1000,
      transitions: c.transitions, enosys: c.enosys, doorbells: c.doorbells, virtualTimeNs: c.virtualTimeNs, syscallLookahead: c.syscallLookahead, protectionDomains: c.protectionDomains, privilegedMode: c.privilegedMode, uhv: c.uhv, callTableInlining: c.callTableInlining, instanceCallInlining: c.instanceCallInlining, speculativeGadgetReaches: c.speculativeGadgetReaches, btbPredictedKernelCalls: c.btbPredictedKernelCalls, perVcpu: c.perVcpu,
      state: r.vm.state, reason: r.vm.reason, processes: r.vm.processes(), engine: spec.engine, jit: jitStats(r.vm),
      wasm: spec.engine === 'wasm' ? wasmStats(wasmBefore) : null,
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
}
