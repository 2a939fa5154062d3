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
 * Real programs (bench/real, built with picolibc) run as a user runs them: each a whole process
 * (`hvsim run`, start-up included) beside `qemu-riscv32`, wall and CPU time (user + system, from
 * bash's `time`), in-engine MIPS from `--stats`; the jit's warm figure is in-process (runs 2 and 3
 * on fresh VMs of one thread). `--elf PATH` adds an ELF built elsewhere (a public program measured
 * in session, never committed: CoreMark, for instance) to that table.
 *
 * Usage: npm run bench:cpu [-- --runs N] [-- --elf PATH ...] [-- --no-kernels] [-- PROGRAM ...]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, join } from 'node:path';
import type * as RunProgram from '../src/runtime/run-program.js';
import { REAL_PROGRAMS, buildReal, havePicolibc } from './real/build.js';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { runProgram } = (await import(join(root, 'dist/runtime/run-program.js'))) as typeof RunProgram;

/** The machine's 1-minute load average at the start of the run (written beside the results with the one at the end). */
const loadAtStart = loadavg()[0];
const args = process.argv.slice(2);
const runsIdx = args.indexOf('--runs');
const RUNS = runsIdx >= 0 ? Number(args.splice(runsIdx, 2)[1]) : 5;
if (!Number.isInteger(RUNS) || RUNS < 2) {
  process.stderr.write('bench:cpu: --runs must be an integer of at least 2\n');
  process.exit(2);
}
const extraElfs: string[] = [];
for (let i = args.indexOf('--elf'); i >= 0; i = args.indexOf('--elf')) extraElfs.push(...args.splice(i, 2).slice(1));
const noKernels = args.includes('--no-kernels');
if (noKernels) args.splice(args.indexOf('--no-kernels'), 1);
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
const programs = noKernels ? [] : readdirSync(join(root, 'bench/programs')).filter((f) => f.endsWith('.c') && (only.size === 0 || only.has(basename(f, '.c')))).sort();
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

/** A whole process: wall and CPU time (user + system, bash's `time`), its stdout. */
function processTimes(cmd: string[]): { wallMs: number; cpuMs: number; stdout: Buffer } {
  const r = spawnSync('bash', ['-c', 'TIMEFORMAT="@@ %R %U %S"; time "$@" 2>/dev/null', 'bash', ...cmd], { maxBuffer: 64 << 20 });
  const m = /@@ ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr.toString());
  if (r.status !== 0 || !m) throw new Error(`${cmd.join(' ')}: status ${r.status}: ${r.stderr.toString().slice(-300)}`);
  return { wallMs: 1000 * Number(m[1]), cpuMs: 1000 * (Number(m[2]) + Number(m[3])), stdout: r.stdout };
}

interface RealRow {
  name: string; instructions: number;
  qemu: { wallMs: number; cpuMs: number }; jit: { wallMs: number; cpuMs: number; engineMs: number }; interp: { wallMs: number; cpuMs: number; engineMs: number };
  wasm: { wallMs: number; cpuMs: number; engineMs: number };
  jitWarmMs: number;
}
const realRows: RealRow[] = [];
const REAL_RUNS = 3;
const realElfs: [string, string][] = [];
if (havePicolibc()) {
  for (const p of REAL_PROGRAMS) if (only.size === 0 || only.has(p.name)) realElfs.push([p.name, buildReal(p.name, build, p.scale)]);
} else process.stderr.write('bench:cpu: no picolibc (apt-get install picolibc-riscv64-unknown-elf): real programs skipped\n');
for (const elf of extraElfs) realElfs.push([basename(elf).replace(/\.elf$/, ''), elf]);
/** Programs given with --elf may print timings (CoreMark does): for them only the exit status (0) is compared. */
const ours = new Set<string>(REAL_PROGRAMS.map((p) => p.name));
const hvsimBin = join(root, 'bin/hvsim.js');
for (const [name, elf] of realElfs) {
  const med = <T extends object>(xs: T[], k: keyof T) => median(xs.map((x) => x[k] as number));
  const q = Array.from({ length: REAL_RUNS }, () => processTimes(['qemu-riscv32', elf]));
  const hv = (engine: 'interp' | 'jit' | 'wasm', runs: number) => Array.from({ length: runs }, () => {
    const stats = join(build, `${name}.${engine}.stats.json`);
    const t = processTimes([process.execPath, hvsimBin, 'run', elf, '--engine', engine, '--stats', stats]);
    if (ours.has(name) && !t.stdout.equals(q[0].stdout)) throw new Error(`${name}: hvsim run --engine ${engine} output differs from qemu-riscv32`);
    const s = JSON.parse(readFileSync(stats, 'utf8')) as { instructions: number; wallMs: number };
    return { ...t, engineMs: s.wallMs, instructions: s.instructions };
  });
  const jit = hv('jit', REAL_RUNS), wasm = hv('wasm', REAL_RUNS), interp = hv('interp', 1);
  // Warm: fresh VMs in this process after a first run compiled the image's blocks.
  const bytes = new Uint8Array(readFileSync(elf));
  const warm = Array.from({ length: 3 }, () => runProgram(bytes, { engine: 'jit', argv: [elf] }).wallMs).slice(1);
  realRows.push({
    name, instructions: jit[0].instructions,
    qemu: { wallMs: med(q, 'wallMs'), cpuMs: med(q, 'cpuMs') },
    jit: { wallMs: med(jit, 'wallMs'), cpuMs: med(jit, 'cpuMs'), engineMs: med(jit, 'engineMs') },
    interp: { wallMs: interp[0].wallMs, cpuMs: interp[0].cpuMs, engineMs: interp[0].engineMs },
    wasm: { wallMs: med(wasm, 'wallMs'), cpuMs: med(wasm, 'cpuMs'), engineMs: med(wasm, 'engineMs') },
    jitWarmMs: median(warm),
  });
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
const table = rows.length ? lines.join('\n') : '(kernels not run)';
const gr = (f: (r: RealRow) => number) => geo(realRows.map(f));
const realLines = [
  '| program | instructions | qemu CPU ms | wasm CPU ms | jit CPU ms | interp CPU ms | qemu wall ms | wasm wall ms | jit wall ms | wasm MIPS (in engine) | jit MIPS (in engine) | interp MIPS | jit MIPS warm | qemu/wasm CPU | qemu/jit CPU | qemu/wasm wall | interp/wasm CPU | interp/jit CPU |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...realRows.map((r) => `| ${r.name} | ${r.instructions} | ${f1(r.qemu.cpuMs)} | ${f1(r.wasm.cpuMs)} | ${f1(r.jit.cpuMs)} | ${f1(r.interp.cpuMs)} | ${f1(r.qemu.wallMs)} | ${f1(r.wasm.wallMs)} | ${f1(r.jit.wallMs)} | ${f1(mips(r.instructions, r.wasm.engineMs))} | ${f1(mips(r.instructions, r.jit.engineMs))} | ${f1(mips(r.instructions, r.interp.engineMs))} | ${f1(mips(r.instructions, r.jitWarmMs))} | ${f2(r.qemu.cpuMs / r.wasm.cpuMs)} | ${f2(r.qemu.cpuMs / r.jit.cpuMs)} | ${f2(r.qemu.wallMs / r.wasm.wallMs)} | ${f2(r.interp.cpuMs / r.wasm.cpuMs)} | ${f2(r.interp.cpuMs / r.jit.cpuMs)} |`),
  `| **geometric mean** | | | | | | | | | ${f1(gr((r) => mips(r.instructions, r.wasm.engineMs)))} | ${f1(gr((r) => mips(r.instructions, r.jit.engineMs)))} | ${f1(gr((r) => mips(r.instructions, r.interp.engineMs)))} | ${f1(gr((r) => mips(r.instructions, r.jitWarmMs)))} | ${f2(gr((r) => r.qemu.cpuMs / r.wasm.cpuMs))} | ${f2(gr((r) => r.qemu.cpuMs / r.jit.cpuMs))} | ${f2(gr((r) => r.qemu.wallMs / r.wasm.wallMs))} | ${f2(gr((r) => r.interp.cpuMs / r.wasm.cpuMs))} | ${f2(gr((r) => r.interp.cpuMs / r.jit.cpuMs))} |`,
];
const realTable = realRows.length ? realLines.join('\n') : '(real programs not run)';
process.stdout.write(table + '\n\n' + realTable + '\n');
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/cpu.md'), `# CPU benchmark

Generated by \`npm run bench:cpu\` on ${new Date().toISOString().slice(0, 10)}: ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node},
machine load (1-minute average) ${f1(loadAtStart)} at the start and ${f1(loadavg()[0])} at the end of the run (${cpus().length} CPUs; compare ratios measured in the same run).
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

## Real programs, whole process

The programs of bench/real (each built with the \`scale\` in bench/real/build.ts) and any \`--elf\`
given, each run as a whole process, start-up included, as a user runs it: \`qemu-riscv32 X.elf\`
and \`hvsim run X.elf --engine wasm|jit|interp --stats\` (wasm is the CLI's default; every hvsim
process is a first run: it compiles everything it runs). Wall and CPU (user + system) time are
medians of ${REAL_RUNS} runs (interp: 1). In-engine MIPS: instructions over the run's time inside the
engine (\`--stats\` wallMs); jit warm: fresh VMs in one process after a first run (runs 2 and 3).
Ratios are speed ratios (qemu/wasm: 1 would be qemu's speed).

${realTable}
`);
