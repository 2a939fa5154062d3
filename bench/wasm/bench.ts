/**
 * The WebAssembly backend measured against the JavaScript block translator (`npm run bench:wasm`):
 * the eight kernels of bench/programs and the real programs of bench/real, each run in a fresh
 * process per engine (so the first run pays every compile), `--runs` times in that process.
 * Engines: `jit` (src/cpu, the default engine), `wasm` (src/cpu/wasm, the opt-in engine; V8's default dynamic tiering,
 * Liftoff then TurboFan), `wasm-liftoff` (`--liftoff-only`) and `wasm-turbofan` (`--no-liftoff`),
 * plus qemu-riscv32 on the same ELF. Prints CPU time (user + system) of each whole process and of
 * each run in it, in-engine MIPS first and warm, compile CPU time per compiled unit, and checks
 * that every engine prints qemu's bytes and that the wasm engine's VM counters (instructions,
 * cycles, TLB misses, mispredicts, ...) equal the jit's, which equal the interpreter's
 * (src/cpu/engines.spec.ts; src/cpu/wasm/engine.spec.ts checks wasm against the interpreter).
 *
 * Writes the tables to bench/results/wasm.md.
 *
 * Usage: npm run bench:wasm [-- --runs N] [-- --no-real] [-- --no-kernels] [-- PROGRAM ...]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { REAL_PROGRAMS, buildReal, havePicolibc } from '../real/build.js';
import type * as RunProgram from '../../src/runtime/run-program.js';
import type * as WasmEngine from '../../src/cpu/wasm/engine.js';

const here = import.meta.dirname ?? new URL('.', import.meta.url).pathname;
const root = join(here, '../..');

/** Kernel repetitions (-DSCALE): a third of bench/cpu.ts's, 20-30 million instructions each. */
const SCALES: Record<string, number> = { coremark: 2, crc32: 1, fib: 4, fnptr: 1, matmul: 3, memcpy: 5, qsort: 2, sieve: 1 };

interface RunFigures { cpuMs: number; wallMs: number; instructions: number }
interface ChildResult {
  runs: RunFigures[]; counters: string; stdout: string; status: number;
  wasm: { modules: number; cached: number; bytes: number; insns: number; blocks: number; generateUs: number; moduleUs: number; instantiateUs: number; calls: number; runInsns: number };
  js: { functions: number; cpuUs: number };
}

async function child(engine: string, elf: string, runs: number): Promise<void> {
  // Time every `new Function` (the JS translator compiles its blocks and regions with it).
  const js = { functions: 0, cpuUs: 0 };
  const F = globalThis.Function;
  globalThis.Function = new Proxy(F, {
    construct(target, args) {
      const c0 = process.cpuUsage();
      const f = Reflect.construct(target, args) as object;
      const c = process.cpuUsage(c0);
      js.functions++;
      js.cpuUs += c.user + c.system;
      return f;
    },
  });
  // The compiled engines from dist/ (npm run bench:wasm builds first), as bench:cpu measures them:
  // under tsx every imported binding is a getter call, which slows hot JavaScript noticeably.
  const { compileStats } = (await import(join(root, 'dist/cpu/wasm/engine.js'))) as typeof WasmEngine;
  const { runProgram } = (await import(join(root, 'dist/runtime/run-program.js'))) as typeof RunProgram;
  const bytes = new Uint8Array(readFileSync(elf));
  const figures: RunFigures[] = [];
  let last: ReturnType<typeof runProgram> | null = null;
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage(), t0 = performance.now();
    last = runProgram(bytes, { engine: engine.startsWith('wasm') ? 'wasm' : 'jit', argv: [elf] });
    const c = process.cpuUsage(c0);
    figures.push({ cpuMs: (c.user + c.system) / 1000, wallMs: performance.now() - t0, instructions: last.counters.instructions });
  }
  const r: ChildResult = {
    runs: figures, counters: JSON.stringify(last!.counters), stdout: last!.stdout.toString('base64'), status: last!.status,
    wasm: compileStats, js,
  };
  process.stdout.write('@@' + JSON.stringify(r) + '\n');
}

/**
 * Node flags per engine. `wasm`: V8's defaults (lazy compilation: a function is compiled by Liftoff
 * at its first call, and hot ones again by TurboFan in the background). The two others compile
 * eagerly in `new WebAssembly.Module`, so its time is the compiler's: Liftoff only, or TurboFan only.
 */
const FLAGS: Record<string, string[]> = {
  jit: [], wasm: [],
  'wasm-liftoff': ['--liftoff-only', '--no-wasm-lazy-compilation'],
  'wasm-turbofan': ['--no-liftoff', '--no-wasm-lazy-compilation'],
};

/** A whole process under bash's `time`: CPU ms (user + system), wall ms, stdout. */
function timed(cmd: string[]): { cpuMs: number; wallMs: number; stdout: Buffer } {
  const r = spawnSync('bash', ['-c', 'TIMEFORMAT="@@T %R %U %S"; time "$@"', 'bash', ...cmd], { maxBuffer: 64 << 20 });
  const m = /@@T ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr.toString());
  if (r.status !== 0 && !m) throw new Error(`${cmd.join(' ')}: status ${r.status}: ${r.stderr.toString().slice(-500)}`);
  return { wallMs: 1000 * Number(m![1]), cpuMs: 1000 * (Number(m![2]) + Number(m![3])), stdout: r.stdout };
}

function main(): void {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args.splice(runsAt, 2)[1]) : 3;
  if (!Number.isInteger(runs) || runs < 2) { process.stderr.write('bench:wasm: --runs must be an integer of at least 2\n'); process.exit(2); }
  const flag = (f: string) => { const i = args.indexOf(f); if (i >= 0) args.splice(i, 1); return i >= 0; };
  const noReal = flag('--no-real'), noKernels = flag('--no-kernels');
  const only = new Set(args);
  const build = join(root, 'bench/build');
  mkdirSync(build, { recursive: true });
  const programs: [string, string][] = [];
  if (!noKernels) for (const [name, scale] of Object.entries(SCALES)) {
    if (only.size && !only.has(name)) continue;
    const elf = join(build, `wasm-${name}.elf`);
    execFileSync('riscv64-unknown-elf-gcc', ['-march=rv32imac', '-mabi=ilp32', '-O2', '-nostdlib', '-static', '-fno-builtin', `-DSCALE=${scale}`, '-o', elf, join(root, 'bench/programs', `${name}.c`), '-lgcc']);
    programs.push([name, elf]);
  }
  if (!noReal && havePicolibc()) for (const p of REAL_PROGRAMS) if (!only.size || only.has(p.name)) programs.push([p.name, buildReal(p.name, build, p.scale)]);

  const engines = Object.keys(FLAGS);
  const rows: string[] = [], compileRows: string[] = [];
  const geo: Record<string, { first: number[]; warm: number[]; proc: number[] }> = Object.fromEntries(engines.map((e) => [e, { first: [], warm: [], proc: [] }]));
  const f0 = (v: number) => v.toFixed(0);
  for (const [name, elf] of programs) {
    const q = timed(['qemu-riscv32', elf]);
    const res: Record<string, ChildResult & { procCpuMs: number }> = {};
    for (const e of engines) {
      const t = timed([process.execPath, ...FLAGS[e], '--import', 'tsx', join(here, 'bench.ts'), '--child', e, elf, String(runs)]);
      const line = t.stdout.toString().split('\n').find((l) => l.startsWith('@@'));
      if (!line) throw new Error(`${name}/${e}: no result`);
      const r = JSON.parse(line.slice(2)) as ChildResult;
      if (!Buffer.from(r.stdout, 'base64').equals(q.stdout)) throw new Error(`${name}/${e}: output differs from qemu-riscv32`);
      res[e] = { ...r, procCpuMs: t.cpuMs };
    }
    for (const e of engines) if (res[e].counters !== res.jit.counters) throw new Error(`${name}: ${e} counters differ from jit:\n${res[e].counters}\n${res.jit.counters}`);
    const n = res.jit.runs[0].instructions;
    const mips = (ms: number) => n / ms / 1000;
    const warmMs = (r: ChildResult) => Math.min(...r.runs.slice(1).map((x) => x.cpuMs));
    rows.push(`| ${name} | ${(n / 1e6).toFixed(1)} M | ${f0(q.cpuMs)} | ${engines.map((e) => {
      const r = res[e];
      geo[e].first.push(mips(r.runs[0].cpuMs)); geo[e].warm.push(mips(warmMs(r))); geo[e].proc.push(q.cpuMs / r.procCpuMs);
      return `${f0(r.procCpuMs)} | ${f0(mips(r.runs[0].cpuMs))} / ${f0(mips(warmMs(r)))}`;
    }).join(' | ')} |`);
    const w = res.wasm.wasm, per = (us: number) => f0(us / Math.max(1, w.modules));
    compileRows.push(`| ${name} | ${res.jit.js.functions} × ${f0(res.jit.js.cpuUs / Math.max(1, res.jit.js.functions))} | ${w.modules} (${w.insns} insns, ${(w.bytes / 1024).toFixed(0)} KiB) | ${per(w.generateUs)} | ${per(w.moduleUs)} | ${per(res['wasm-liftoff'].wasm.moduleUs)} | ${per(res['wasm-turbofan'].wasm.moduleUs)} | ${per(w.instantiateUs)} | ${(100 * w.runInsns / n / runs).toFixed(1)}% in ${(w.calls / runs / 1e3).toFixed(0)} k calls |`);
    process.stderr.write(`${name}: done (load ${loadavg()[0].toFixed(1)})\n`);
  }
  const g = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
  const report = [
    `Load average (1 min) at the end: ${loadavg()[0].toFixed(1)} on ${spawnSync('nproc').stdout.toString().trim()} cores; ${runs} runs per process (MIPS 1st = run 1, warm = best of runs 2-${runs}); CPU time = user + system of the process (V8's compiler threads included); process CPU includes Node and tsx start-up.`,
    '',
    `| program | instructions | qemu CPU ms | ${engines.map((e) => `${e} process CPU ms | ${e} MIPS 1st / warm`).join(' | ')} |`,
    `|---|---:|---:|${engines.map(() => '---:|---:|').join('')}`,
    ...rows,
    `| **geometric mean** | | | ${engines.map((e) => `qemu/${e} ${g(geo[e].proc).toFixed(3)} | ${f0(g(geo[e].first))} / ${f0(g(geo[e].warm))}`).join(' | ')} |`,
    '',
    'Compile cost per unit (µs). jit: `new Function` calls × CPU µs each (blocks, traces, regions; their lazy first-call compile and TurboFan are not separable and are in the run times).',
    'wasm (main-thread wall µs): modules (one per hot page, built in run 1 and shared by the later runs) and their JavaScript generation, `new WebAssembly.Module` under the default lazy compilation (validation only), eager Liftoff, eager TurboFan, and instantiation; share of instructions run in wasm and calls into it per run.',
    '',
    '| program | jit units × µs | wasm modules | generate µs | Module (lazy) µs | Liftoff µs | TurboFan µs | instantiate µs | in wasm |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...compileRows,
  ].join('\n') + '\n';
  process.stdout.write(report);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/wasm.md'), `# WebAssembly backend against the JavaScript translator

Generated by \`npm run bench:wasm\` (bench/wasm/bench.ts) on ${new Date().toISOString().slice(0, 10)}: ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.versions.node}.
See docs/engine.md, "WebAssembly backend: measured".

${report}`);
}

const ci = process.argv.indexOf('--child');
if (ci >= 0) await child(process.argv[ci + 1], process.argv[ci + 2], Number(process.argv[ci + 3]));
else main();
