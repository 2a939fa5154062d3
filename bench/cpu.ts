/**
 * CPU benchmark: integer kernels (bench/programs/*.c) built with Debian's riscv64-unknown-elf-gcc,
 * run under qemu-riscv32 and under both hvsim engines in the same run. Prints instructions,
 * median wall time and MIPS for each (the jit's first, cold run of each program separately), the ratios jit/qemu and jit/interp, and their geometric
 * means; writes the same table to bench/results/cpu.md.
 *
 * hvsim runs the compiled engine from dist/ (npm run bench:cpu builds first), through the same
 * in-process VM path (`runProgram`: guest OS, KHV, console device) that `hvsim run` and the differential tests use. Each side's start-up (qemu's process start,
 * hvsim's machine set-up) is measured on a program that exits at once and subtracted.
 *
 * Usage: npm run bench:cpu [-- --runs N] [-- PROGRAM ...]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, join } from 'node:path';
import type * as RunProgram from '../src/runtime/run-program.js';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { runProgram } = (await import(join(root, 'dist/runtime/run-program.js'))) as typeof RunProgram;

const args = process.argv.slice(2);
const runsIdx = args.indexOf('--runs');
const RUNS = runsIdx >= 0 ? Number(args.splice(runsIdx, 2)[1]) : 5;
if (!Number.isInteger(RUNS) || RUNS < 2) {
  process.stderr.write('bench:cpu: --runs must be an integer of at least 2\n');
  process.exit(2);
}
const only = new Set(args);

for (const [bin, pkg] of [['riscv64-unknown-elf-gcc', 'gcc-riscv64-unknown-elf'], ['qemu-riscv32', 'qemu-user']]) {
  if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) {
    process.stderr.write(`bench:cpu needs ${bin}: apt-get install ${pkg}\n`);
    process.exit(2);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const build = join(root, 'bench/build');
mkdirSync(build, { recursive: true });

function gcc(src: string, out: string, scale = 1) {
  execFileSync('riscv64-unknown-elf-gcc', ['-march=rv32imac', '-mabi=ilp32', '-O2', '-nostdlib', '-static', '-fno-builtin', `-DSCALE=${scale}`, '-o', out, src, '-lgcc']);
}

/**
 * Repetitions each kernel is built with (-DSCALE), so that every one retires 55-80 million
 * instructions: qemu-riscv32 then runs each for 25-80 ms, well above its own start-up (about
 * 7 ms, subtracted) and its noise; at one repetition some ran for 2 ms and their qemu figures
 * were mostly noise.
 */
const SCALES: Record<string, number> = { coremark: 6, crc32: 3, fib: 12, fnptr: 2, matmul: 8, memcpy: 15, qsort: 6, sieve: 2 };
/** The interpreter runs each kernel at most this many times (it is the slow side: about 3 s a run). */
const INTERP_RUNS = 3;

function qemuMs(elf: string): { ms: number; stdout: Buffer } {
  const t = process.hrtime.bigint();
  const r = spawnSync('qemu-riscv32', [elf]);
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, stdout: r.stdout };
}

// Start-up cost of qemu-riscv32 itself.
const emptySrc = join(build, 'empty.c');
writeFileSync(emptySrc, '#include "../../test/corpus/hv.h"\nint main(int argc, char **argv) { return 0; }\n');
gcc(emptySrc, join(build, 'empty.elf'));
const startup = median(Array.from({ length: 9 }, () => qemuMs(join(build, 'empty.elf')).ms));
// hvsim's own set-up (host memory, VM boot, kernel text, page tables, stack) is excluded the same way.
const emptyBytes = new Uint8Array(readFileSync(join(build, 'empty.elf')));
const hvStartupOf = (engine: 'interp' | 'jit') => median(Array.from({ length: 9 }, () => {
  const t = process.hrtime.bigint();
  runProgram(emptyBytes, { engine });
  return Number(process.hrtime.bigint() - t) / 1e6;
}));
const hvStartup = { interp: hvStartupOf('interp'), jit: hvStartupOf('jit') };

interface Row { name: string; instructions: number; qemuMs: number; interpMs: number; jitMs: number; jitFirstMs: number }
const rows: Row[] = [];
const programs = readdirSync(join(root, 'bench/programs')).filter((f) => f.endsWith('.c') && (only.size === 0 || only.has(basename(f, '.c')))).sort();
for (const file of programs) {
  const name = basename(file, '.c');
  const elf = join(build, `${name}.elf`);
  gcc(join(root, 'bench/programs', file), elf, SCALES[name] ?? 1);
  const bytes = new Uint8Array(readFileSync(elf));
  const q = Array.from({ length: RUNS }, () => qemuMs(elf));
  const time = (engine: 'interp' | 'jit', runs: number) => Array.from({ length: runs }, () => {
    const t = process.hrtime.bigint();
    const r = runProgram(bytes, { engine });
    const ms = Math.max(0.1, Number(process.hrtime.bigint() - t) / 1e6 - hvStartup[engine]);
    if (!r.stdout.equals(q[0].stdout)) throw new Error(`${name}: ${engine} output differs from qemu-riscv32`);
    return { ms, instructions: r.counters.instructions };
  });
  const jit = time('jit', RUNS);
  const interp = time('interp', Math.min(RUNS, INTERP_RUNS));
  const row = {
    name, instructions: jit[0].instructions, qemuMs: Math.max(0.1, median(q.map((x) => x.ms)) - startup),
    // The jit's first run translates and warms V8 up; later runs (new VMs on the same image) reuse
    // the thread's compiled blocks. Both are reported.
    interpMs: median(interp.map((x) => x.ms)), jitMs: median(jit.slice(1).map((x) => x.ms)), jitFirstMs: jit[0].ms,
  };
  rows.push(row);
  process.stderr.write(`${name}: done\n`);
}

const mips = (n: number, ms: number) => n / ms / 1000;
const geo = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
const f1 = (v: number) => v.toFixed(1);
const f2 = (v: number) => v.toFixed(2);
const g = (f: (r: Row) => number) => geo(rows.map(f));
const lines = [
  '| program | instructions | qemu ms | interp ms | jit ms | jit 1st ms | qemu MIPS | interp MIPS | jit MIPS | jit 1st MIPS | jit/qemu | jit/interp | jit 1st/qemu | jit 1st/interp |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${r.instructions} | ${f1(r.qemuMs)} | ${f1(r.interpMs)} | ${f1(r.jitMs)} | ${f1(r.jitFirstMs)} | ${f1(mips(r.instructions, r.qemuMs))} | ${f1(mips(r.instructions, r.interpMs))} | ${f1(mips(r.instructions, r.jitMs))} | ${f1(mips(r.instructions, r.jitFirstMs))} | ${f2(r.qemuMs / r.jitMs)} | ${f2(r.interpMs / r.jitMs)} | ${f2(r.qemuMs / r.jitFirstMs)} | ${f2(r.interpMs / r.jitFirstMs)} |`),
  `| **geometric mean** | | | | | | ${f1(g((r) => mips(r.instructions, r.qemuMs)))} | ${f1(g((r) => mips(r.instructions, r.interpMs)))} | ${f1(g((r) => mips(r.instructions, r.jitMs)))} | ${f1(g((r) => mips(r.instructions, r.jitFirstMs)))} | ${f2(g((r) => r.qemuMs / r.jitMs))} | ${f2(g((r) => r.interpMs / r.jitMs))} | ${f2(g((r) => r.qemuMs / r.jitFirstMs))} | ${f2(g((r) => r.interpMs / r.jitFirstMs))} |`,
];
const table = lines.join('\n');
process.stdout.write(table + '\n');
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/cpu.md'), `# CPU benchmark

Generated by \`npm run bench:cpu\` on ${new Date().toISOString().slice(0, 10)}: ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node},
Each kernel is built with the repetition count in \`SCALES\` (bench/cpu.ts). ${RUNS} runs of each on
qemu and the jit and ${Math.min(RUNS, INTERP_RUNS)} on the interpreter, each on a fresh VM. qemu and interp: median of all runs.
jit: median of runs 2 to ${RUNS}, where the VM reuses the blocks the thread compiled for the same image
(within one thread, as here; a service VM has a worker of its own and reaches this speed once V8
has compiled its hot code, within the first seconds of its run), and \`jit 1st\`: the first run, which translates everything
and waits for V8 to optimize it. Instruction counts are hvsim's (the same ELF retires the same
instructions under qemu). Start-up is excluded for all, measured on an empty program in the same run:
qemu ${f1(startup)} ms, hvsim ${f1(hvStartup.interp)} ms (interp) and ${f1(hvStartup.jit)} ms (jit), allocating and setting up the 64 MiB machine.
The ratios are speed ratios (higher is better for the jit).

${table}
`);
