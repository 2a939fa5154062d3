/**
 * Whole-process start-up of `hvsim run` against qemu-riscv32, as a user runs them: an empty
 * program (li a0, 0; exit), and any ELFs given, each command spawned RUNS times in turn
 * (alternating, so a change of the machine's load reaches every command alike), medians of CPU
 * time (every thread, user + system) and wall time.
 *
 *   node -e ''                      Node's own start-up: the floor of any Node CLI
 *   hvsim --version                 Node + the CLI's ES module bundle + commander, no emulator
 *   hvsim run (warm code cache)     what a user gets from the second run on (src/cli/code-cache.ts)
 *   hvsim run (HVSIM_NO_CODE_CACHE) compiled from source, no cache read or written (a first run also writes it)
 *   hvsim run (HVSIM_NO_BUNDLE)     dist/'s separate ES modules
 *   BASELINE hvsim run              with --baseline DIR: another checkout's bin/hvsim.js (built), e.g. before a change
 *   qemu-riscv32                    when installed
 *
 * CPU and wall come from `perf stat -e task-clock,duration_time` when perf works (sub-ms), else
 * from /usr/bin/time (10 ms steps). The load average is printed: compare figures of one sitting.
 * Usage: npm run bench:cli-startup [-- --runs N] [--baseline DIR] [--elf FILE]... [--out FILE.md]
 *   (or npx tsx bench/cli-startup.ts ... without the build)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const args = process.argv.slice(2);
const opt = (name: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const RUNS = Number(opt('--runs') ?? 20);
const baseline = opt('--baseline');
const elfs = args.flatMap((a, i) => (args[i - 1] === '--elf' ? [resolve(a)] : []));
const out = opt('--out');

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const PERF = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock,duration_time', 'true'], { encoding: 'utf8' });
const usePerf = PERF.status === 0 && /task-clock/.test(PERF.stderr) && /duration_time/.test(PERF.stderr);

/** One run of `cmd`: CPU ms (user + system, every thread) and wall ms. Output goes to /dev/null. */
function measure(cmd: string[], env: NodeJS.ProcessEnv): { cpu: number; wall: number } {
  if (usePerf) {
    const r = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock,duration_time', '--', ...cmd], { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    const value = (ev: string) => Number(r.stderr.split('\n').find((l) => l.includes(`,${ev}`))?.split(',')[0]);
    return { cpu: value('task-clock'), wall: value('duration_time') / 1e6 };
  }
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', ...cmd], { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const wall = performance.now() - t;
  const m = /([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  return { cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN, wall };
}

const dir = mkdtempSync(join(tmpdir(), 'hvsim-cli-startup-'));
const cache = join(dir, 'cache');
const env: NodeJS.ProcessEnv = { ...process.env, HVSIM_CACHE_DIR: cache };
delete env.HVSIM_NO_BUNDLE;
delete env.HVSIM_NO_CODE_CACHE;
try {
  writeFileSync(join(dir, 'empty.s'), '.globl _start\n_start:\n  li a0, 0\n  li a7, 93\n  ecall\n');
  const empty = join(dir, 'empty.elf');
  const hvsim = join(root, 'bin/hvsim.js');
  const asm = spawnSync(process.execPath, [hvsim, 'asm', join(dir, 'empty.s'), '-o', empty], { env, encoding: 'utf8' });
  if (asm.status !== 0) throw new Error(`hvsim asm: ${asm.stderr}`);
  const qemu = spawnSync('qemu-riscv32', [empty]).status === 0;

  type Row = { label: string; cmd: string[]; env: NodeJS.ProcessEnv; runs: Array<{ cpu: number; wall: number }> };
  const rows: Row[] = [
    { label: "node -e ''", cmd: [process.execPath, '-e', ''], env, runs: [] },
    { label: 'hvsim --version', cmd: [process.execPath, hvsim, '--version'], env, runs: [] },
  ];
  for (const elf of [empty, ...elfs]) {
    const name = basename(elf);
    rows.push({ label: `hvsim run ${name}`, cmd: [process.execPath, hvsim, 'run', elf], env, runs: [] });
    rows.push({ label: `hvsim run ${name} (HVSIM_NO_CODE_CACHE=1: compiled from source)`, cmd: [process.execPath, hvsim, 'run', elf], env: { ...env, HVSIM_NO_CODE_CACHE: '1' }, runs: [] });
    rows.push({ label: `hvsim run ${name} (HVSIM_NO_BUNDLE=1)`, cmd: [process.execPath, hvsim, 'run', elf], env: { ...env, HVSIM_NO_BUNDLE: '1' }, runs: [] });
    if (baseline) rows.push({ label: `baseline (${baseline}) hvsim run ${name}`, cmd: [process.execPath, join(resolve(baseline), 'bin/hvsim.js'), 'run', elf], env, runs: [] });
    if (qemu) rows.push({ label: `qemu-riscv32 ${name}`, cmd: ['qemu-riscv32', elf], env, runs: [] });
  }
  // prime the code cache (the first run writes it), then alternate
  for (const r of rows) spawnSync(r.cmd[0], r.cmd.slice(1), { env: r.env, stdio: 'ignore' });
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
  for (let i = 0; i < RUNS; i++) for (const r of rows) r.runs.push(measure(r.cmd, r.env));
  const loadAfter = loadavg().map((x) => x.toFixed(2)).join(' ');

  const qemuOf = (label: string) => rows.find((r) => r.label === `qemu-riscv32 ${label.replace(/^.*hvsim run (\S+).*$/, '$1')}`);
  const f = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(1));
  const lines = [
    `# hvsim run start-up (bench/cli-startup.ts)`, '',
    `${RUNS} runs of each command, alternating, medians; ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version};`,
    `load average ${loadBefore} at the start, ${loadAfter} at the end; CPU and wall from ${usePerf ? 'perf stat (task-clock, duration_time)' : '/usr/bin/time (10 ms steps)'}.`, '',
    '| command | CPU ms (median) | min | max | wall ms (median) | CPU / qemu\'s |', '|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const cpu = r.runs.map((x) => x.cpu);
    const q = r.label.includes('hvsim run') ? qemuOf(r.label) : undefined;
    const ratio = q ? `${(median(cpu) / median(q.runs.map((x) => x.cpu))).toFixed(1)}x` : '';
    lines.push(`| ${r.label} | ${f(median(cpu))} | ${f(Math.min(...cpu))} | ${f(Math.max(...cpu))} | ${f(median(r.runs.map((x) => x.wall)))} | ${ratio} |`);
  }
  const text = lines.join('\n') + '\n';
  process.stdout.write(text);
  if (out) writeFileSync(out, text);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
