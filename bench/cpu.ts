/**
 * CPU benchmark: integer kernels (bench/programs/*.c) built with Debian's riscv64-unknown-elf-gcc,
 * run under qemu-riscv32 and under both hvsim engines in the same run. Prints instructions,
 * median wall time and MIPS for each, the ratios jit/qemu and jit/interp, and their geometric
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
const RUNS = runsIdx >= 0 ? Number(args.splice(runsIdx, 2)[1]) : 3;
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

function gcc(src: string, out: string) {
  execFileSync('riscv64-unknown-elf-gcc', ['-march=rv32imac', '-mabi=ilp32', '-O2', '-nostdlib', '-static', '-fno-builtin', '-o', out, src, '-lgcc']);
}

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
const hvStartup = median(Array.from({ length: 9 }, () => {
  const t = process.hrtime.bigint();
  runProgram(emptyBytes, { engine: 'interp' });
  return Number(process.hrtime.bigint() - t) / 1e6;
}));

interface Row { name: string; instructions: number; qemuMs: number; interpMs: number; jitMs: number }
const rows: Row[] = [];
const programs = readdirSync(join(root, 'bench/programs')).filter((f) => f.endsWith('.c') && (only.size === 0 || only.has(basename(f, '.c')))).sort();
for (const file of programs) {
  const name = basename(file, '.c');
  const elf = join(build, `${name}.elf`);
  gcc(join(root, 'bench/programs', file), elf);
  const bytes = new Uint8Array(readFileSync(elf));
  const q = Array.from({ length: RUNS }, () => qemuMs(elf));
  const time = (engine: 'interp' | 'jit') => Array.from({ length: RUNS }, () => {
    const t = process.hrtime.bigint();
    const r = runProgram(bytes, { engine });
    const ms = Math.max(0.1, Number(process.hrtime.bigint() - t) / 1e6 - hvStartup);
    if (!r.stdout.equals(q[0].stdout)) throw new Error(`${name}: ${engine} output differs from qemu-riscv32`);
    return { ms, instructions: r.counters.instructions };
  });
  const jit = time('jit');
  const interp = time('interp');
  const row = {
    name, instructions: jit[0].instructions, qemuMs: Math.max(0.1, median(q.map((x) => x.ms)) - startup),
    interpMs: median(interp.map((x) => x.ms)), jitMs: median(jit.map((x) => x.ms)),
  };
  rows.push(row);
  process.stderr.write(`${name}: done\n`);
}

const mips = (n: number, ms: number) => n / ms / 1000;
const geo = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
const f1 = (v: number) => v.toFixed(1);
const f2 = (v: number) => v.toFixed(2);
const lines = [
  '| program | instructions | qemu ms | interp ms | jit ms | qemu MIPS | interp MIPS | jit MIPS | jit/qemu | jit/interp |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${r.instructions} | ${f1(r.qemuMs)} | ${f1(r.interpMs)} | ${f1(r.jitMs)} | ${f1(mips(r.instructions, r.qemuMs))} | ${f1(mips(r.instructions, r.interpMs))} | ${f1(mips(r.instructions, r.jitMs))} | ${f2(r.qemuMs / r.jitMs)} | ${f2(r.interpMs / r.jitMs)} |`),
  `| **geometric mean** | | | | | ${f1(geo(rows.map((r) => mips(r.instructions, r.qemuMs))))} | ${f1(geo(rows.map((r) => mips(r.instructions, r.interpMs))))} | ${f1(geo(rows.map((r) => mips(r.instructions, r.jitMs))))} | ${f2(geo(rows.map((r) => r.qemuMs / r.jitMs)))} | ${f2(geo(rows.map((r) => r.interpMs / r.jitMs)))} |`,
];
const table = lines.join('\n');
process.stdout.write(table + '\n');
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/cpu.md'), `# CPU benchmark

Generated by \`npm run bench:cpu\` on ${new Date().toISOString().slice(0, 10)}: ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node},
median of ${RUNS} runs. Instruction counts are hvsim's (the same ELF retires the same instructions under
qemu). Start-up is excluded for both, measured on an empty program in the same run: qemu ${f1(startup)} ms,
hvsim ${f1(hvStartup)} ms (allocating and setting up the 64 MiB machine).
jit/qemu and jit/interp are speed ratios (higher is better for the jit).

${table}
`);
