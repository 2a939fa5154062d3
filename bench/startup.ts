/**
 * Start-up benchmark: what a user waits for, whole process, median of several runs.
 *
 *   service  `node dist/main.js` (what `npm start` execs) with an existing data dir, from spawn
 *            until GET /healthz answers 200, split by the phases the service prints
 *            ("hvsim: PHASE (N ms, main thread CPU M ms)"; N counts from the start of
 *            runServiceFromEnv, after Node itself booted and loaded the entry module; M is the
 *            main thread's CPU time since the process began), the embedded database's own
 *            thread's CPU time to open, and the CPU time of the whole process (every thread:
 *            V8's compiler and GC helpers too). Once with the bundle (dist/bundle/, the default)
 *            and once with HVSIM_NO_BUNDLE=1 (the separate modules of dist/), alternating.
 *   cli      `hvsim run` of an empty program (li a0, 0; ecall exit), from spawn to exit, next to
 *            its peers measured in the same run: `node -e ''` (Node's own start), `hvsim --version`
 *            (commander and the command table, no emulator) and qemu-riscv32 on the same ELF
 *
 * Wall time depends on what else the machine runs; CPU time (user + system) much less so, and is
 * printed beside it.
 *
 * The machine's load average is printed with the results: on a busy machine every figure grows.
 * Usage: npm run bench:startup [-- --runs N]      Writes bench/results/startup.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 7;
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const ms = (x: number) => (Number.isNaN(x) ? '–' : `${Math.round(x)}`);

interface ServiceRun { healthz: number; phases: Map<string, { ms: number; cpu: number }>; firstLine: number; cpu: number; dbCpu: number }

/** CPU time (user + system) a live process has used so far, in ms (Linux /proc; NaN elsewhere). */
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch { return NaN; }
}

/** One start of the service on `dataDir`: spawn to /healthz, the phase times, then SIGTERM. */
async function serviceRun(dataDir: string, bundle = true): Promise<ServiceRun> {
  const t0 = performance.now();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HVSIM_DATA_DIR: dataDir, HVSIM_LOG_LEVEL: 'warn' };
  if (bundle) delete env.HVSIM_NO_BUNDLE; else env.HVSIM_NO_BUNDLE = '1';
  const child = spawn(process.execPath, [join(root, 'dist/main.js')], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let firstLine = -1;
  child.stdout.on('data', (d: Buffer) => { if (firstLine < 0) firstLine = performance.now() - t0; out += d.toString(); });
  let url: string | undefined;
  while (!(url = /listening on (http:\/\/\S+)/.exec(out)?.[1])) {
    if (child.exitCode !== null) throw new Error(`service exited: ${out}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  for (;;) {
    const ok = await fetch(`${url}/healthz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const healthz = performance.now() - t0;
  const cpu = cpuMs(child.pid!);
  const phases = new Map<string, { ms: number; cpu: number }>();
  for (const m of out.matchAll(/^hvsim: (.+) \((\d+) ms(?:, main thread CPU (\d+) ms)?\)$/gm)) {
    phases.set(m[1].replace(/ \(.*\)$/, ''), { ms: Number(m[2]), cpu: m[3] === undefined ? NaN : Number(m[3]) });
  }
  phases.set('listening', { ms: Number(/after (\d+) ms/.exec(out)?.[1] ?? NaN), cpu: NaN });
  const dbCpu = Number(/its thread used (\d+) ms of CPU/.exec(out)?.[1] ?? NaN);
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  return { healthz, phases, firstLine, cpu, dbCpu };
}

const TIME = spawnSync('/usr/bin/time', ['-f', '%U %S', 'true']).status === 0;

/** Whole-process wall time of a command and its CPU time (user + system, NaN without /usr/bin/time), in ms. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { wall: number; cpu: number } {
  const t = performance.now();
  const r = TIME ? spawnSync('/usr/bin/time', ['-f', '%U %S', cmd, ...args], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' })
    : spawnSync(cmd, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const wall = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: status ${r.status} ${r.stderr}`);
  const m = TIME ? /([\d.]+) ([\d.]+)\s*$/.exec(r.stderr) : null;
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN };
}

/**
 * Spawn to listening on a quiet machine of 2+ cores, estimated from CPU times alone. The main
 * thread's CPU at 'starting the application' is its work before it needs the database (Node's
 * boot, module loading: it is idle while it waits); the database thread starts when the main
 * thread's CPU is that of 'opening the embedded database' and needs its own CPU time beside it;
 * then the main thread works from 'starting the application' to 'opening the HTTP port'
 * (migrations, Nest init; the listen itself is small). Assumes V8's helper threads (WebAssembly
 * compilation, GC) fit on the other core and no thread waits for I/O.
 */
function quietEstimate(s: ServiceRun): number {
  const at = (prefix: string) => [...s.phases.entries()].find(([k]) => k.startsWith(prefix))?.[1].cpu ?? NaN;
  const starting = at('starting the application');
  const dbOpen = Number.isNaN(s.dbCpu) ? 0 : at('opening the embedded database') + s.dbCpu;
  return Math.max(starting, dbOpen) + (at('opening the HTTP port') - starting);
}

const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const loadBefore = load();
const dataDir = mkdtempSync(join(tmpdir(), 'hvsim-bench-'));
const lines: string[] = [];
const row = (label: string, xs: number[], bold = false) => {
  const b = bold ? '**' : '';
  return `| ${label} | ${b}${ms(median(xs))}${b} | ${ms(Math.min(...xs))} | ${ms(Math.max(...xs))} |`;
};
try {
  await serviceRun(dataDir); // creates the data dir (initdb, migrations): not measured
  const runs: Record<'bundle' | 'modules', ServiceRun[]> = { bundle: [], modules: [] };
  for (let i = 0; i < RUNS; i++) {
    runs.bundle.push(await serviceRun(dataDir, true));
    runs.modules.push(await serviceRun(dataDir, false));
  }
  const dir = mkdtempSync(join(tmpdir(), 'hvsim-bench-cli-'));
  writeFileSync(join(dir, 'empty.s'), '.globl _start\n_start:\n  li a0, 0\n  li a7, 93\n  ecall\n');
  const elf = join(dir, 'empty.elf');
  spawnSync(process.execPath, [join(root, 'bin/hvsim.js'), 'asm', join(dir, 'empty.s'), '-o', elf]);
  const noBundle = { ...process.env, HVSIM_NO_BUNDLE: '1' };
  const cli: Record<string, Array<{ wall: number; cpu: number }>> = {
    "node -e ''": [], 'hvsim --version': [], 'hvsim run empty.elf': [], 'hvsim run empty.elf (HVSIM_NO_BUNDLE=1)': [], 'qemu-riscv32 empty.elf': [],
  };
  const qemu = spawnSync('qemu-riscv32', [elf]).status === 0;
  for (let i = 0; i < RUNS * 2; i++) {
    cli["node -e ''"].push(timed(process.execPath, ['-e', '']));
    cli['hvsim --version'].push(timed(process.execPath, [join(root, 'bin/hvsim.js'), '--version']));
    cli['hvsim run empty.elf'].push(timed(process.execPath, [join(root, 'bin/hvsim.js'), 'run', elf]));
    cli['hvsim run empty.elf (HVSIM_NO_BUNDLE=1)'].push(timed(process.execPath, [join(root, 'bin/hvsim.js'), 'run', elf], noBundle));
    if (qemu) cli['qemu-riscv32 empty.elf'].push(timed('qemu-riscv32', [elf]));
  }
  rmSync(dir, { recursive: true, force: true });

  lines.push('# Start-up', '', `Measured by \`npm run bench:startup\` (bench/startup.ts): ${RUNS} service starts of each kind and ${RUNS * 2} runs of each command, medians,`,
    `on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, load average ${loadBefore} when the run began and ${load()} when it ended.`,
    'Wall times grow with the load of the machine; CPU times much less so.', '');
  for (const [kind, svc] of Object.entries(runs)) {
    lines.push(`## Service${kind === 'bundle' ? '' : ' without the bundle (HVSIM_NO_BUNDLE=1)'}: \`node dist/main.js\` with an existing data dir, spawn to GET /healthz = 200`, '',
      '| phase (as the service prints it) | starts at, ms since start-up began | main thread CPU ms since the process began |', '|---|---|---|');
    for (const n of svc[0].phases.keys()) {
      lines.push(`| ${n} | ${ms(median(svc.map((s) => s.phases.get(n)?.ms ?? NaN)))} | ${ms(median(svc.map((s) => s.phases.get(n)?.cpu ?? NaN)))} |`);
    }
    lines.push('', '| whole process | ms (median) | min | max |', '|---|---|---|---|',
      row('spawn to the first line (Node boot, config)', svc.map((s) => s.firstLine)),
      row('spawn to /healthz', svc.map((s) => s.healthz), true),
      row('CPU time of the embedded database\'s thread to open it', svc.map((s) => s.dbCpu)),
      row('CPU time (user + system) of the service until /healthz, every thread', svc.map((s) => s.cpu)),
      row('estimated spawn to listening on a quiet machine (see below)', svc.map(quietEstimate)), '');
  }
  lines.push('## CLI: whole process, spawn to exit', '', '| command | wall ms (median) | min | max | CPU ms, user + system (median) |', '|---|---|---|---|---|');
  for (const [k, v] of Object.entries(cli)) {
    if (!v.length) continue;
    const w = v.map((x) => x.wall);
    lines.push(`| ${k} | ${ms(median(w))} | ${ms(Math.min(...w))} | ${ms(Math.max(...w))} | ${ms(median(v.map((x) => x.cpu)))} |`);
  }
  lines.push('', '## Reading these figures on a shared machine', '',
    '- The estimate for a quiet machine takes CPU times only: the main thread\'s CPU at "starting the application" (Node\'s boot and',
    '  module loading; it is idle while it waits for the database) beside the database thread\'s (which starts at the main thread\'s',
    '  CPU of "opening the embedded database"), whichever ends later, plus the main thread\'s CPU from "starting the application" to',
    '  "opening the HTTP port" (Nest\'s init, the migration check). It assumes V8\'s helper threads (GC, optimizing compiler) fit on',
    '  the second core and nothing waits for the disk; /healthz adds one request.',
    '- `hvsim run` is one thread doing CPU work (no waiting on I/O for an empty program), so on a quiet machine its wall time is close',
    '  to its CPU time.',
    '- CPU times are in 10 ms ticks (Linux /proc) for the service, and from /usr/bin/time for the commands.', '');
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
const text = lines.join('\n');
process.stdout.write(text + '\n');
writeFileSync(join(root, 'bench/results/startup.md'), text + '\n');
