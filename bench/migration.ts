/**
 * Live-migration benchmark: a 64 MiB VM with a light and a heavy dirtying workload migrates
 * between two hosts through the service's own path (VM workers, the TCP wire format, pre-copy
 * with dirty-page tracking). Prints rounds, pages sent, bytes on the wire, total time, downtime
 * (virtual and wall) and throughput in MiB/s of wall time, the median of several runs, next to
 * the peer measured in the same run: raw loopback TCP throughput between two threads of this
 * process moving the same number of bytes. Writes the table to bench/results/migration.md.
 *
 *   light  memtouch 32 MiB touched once, then asleep (the resident set), plus `cpu` (CRC loops: little dirtying)
 *   heavy  the same resident 32 MiB, plus memtouch dirtying 16 MiB without pause
 *
 * Parameters: 1024 MiB/s of virtual-time bandwidth (the default), maxDowntimeMs 5 (tighter than
 * the 300 ms default, so the heavy VM cannot converge and runs into maxRounds 30).
 *
 * Usage: npm run bench:migration [-- --runs N]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type * as HostRuntimeMod from '../src/runtime/host-runtime.js';
import type * as WorkloadsMod from '../src/runtime/workloads.js';
import type * as VmMod from '../src/runtime/vm.js';
import type * as LiveMigrationMod from '../src/runtime/live-migration.js';
import type { MigrationOutcome } from '../src/migration/source.js';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { HostRuntime } = (await import(join(root, 'dist/runtime/host-runtime.js'))) as typeof HostRuntimeMod;
const { builtinElf } = (await import(join(root, 'dist/runtime/workloads.js'))) as typeof WorkloadsMod;
const { DEFAULT_SPEC } = (await import(join(root, 'dist/runtime/vm.js'))) as typeof VmMod;
const { migrateVm } = (await import(join(root, 'dist/runtime/live-migration.js'))) as typeof LiveMigrationMod;

const args = process.argv.slice(2);
const runsIdx = args.indexOf('--runs');
const RUNS = runsIdx >= 0 ? Number(args[runsIdx + 1]) : 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const proc = (image: string, argv: string[]) => ({ name: image, elf: builtinElf(image), argv: [image, ...argv], env: [], stdin: new Uint8Array() });

const WORKLOADS = {
  light: [proc('memtouch', ['32', '2', '100000']), proc('cpu', ['1000000'])],
  heavy: [proc('memtouch', ['32', '2', '100000']), proc('memtouch', ['16', '1000000'])],
};
const PARAMS = { maxDowntimeMs: 5, bandwidthMiBps: 1024, maxRounds: 30, timeoutS: 300, technique: true };

async function migrateOnce(processes: VmMod.ProcessImage[]): Promise<MigrationOutcome & { totalWallMs: number }> {
  const spec = { ...DEFAULT_SPEC, memoryMiB: 64, processes };
  const a = new HostRuntime(256), b = new HostRuntime(256);
  try {
    // Migrate at 40 ms of virtual time, once memtouch has filled its 32 MiB resident set.
    const src = await a.startVm('bench', spec, { pauseAtVirtualNs: 40e6 });
    while (src.state !== 'paused') await new Promise((r) => setTimeout(r, 5));
    let t0 = 0;
    const r = await migrateVm(src, b, 'bench', { migrationId: 'bench', ...PARAMS }, null, { phase: async (p) => { if (p === 'running') t0 = performance.now(); } });
    if (!r.ok) throw new Error(`migration failed: ${r.reason}`);
    const totalWallMs = performance.now() - t0;
    await r.target.stop();
    return { ...r.outcome, totalWallMs };
  } finally {
    await a.shutdown();
    await b.shutdown();
  }
}

/** The peer: MiB/s of a plain loopback TCP stream of `bytes` from a worker thread to this one. */
async function rawTcpMiBps(bytes: number): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const received = new Promise<number>((resolve) => server.once('connection', (s) => {
    let n = 0;
    const t0 = performance.now();
    s.on('data', (c: Buffer) => { n += c.length; if (n >= bytes) resolve(performance.now() - t0); });
  }));
  const w = new Worker(`
    const { connect } = require('node:net');
    const { workerData } = require('node:worker_threads');
    const s = connect(workerData.port, '127.0.0.1', async () => {
      const chunk = Buffer.alloc(1 << 20, 7);
      for (let sent = 0; sent < workerData.bytes; sent += chunk.length) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
      s.end();
    });`, { eval: true, workerData: { port, bytes } });
  const ms = await received;
  await w.terminate();
  server.close();
  return bytes / 1048576 / (ms / 1000);
}

const rows: string[] = [];
for (const [name, processes] of Object.entries(WORKLOADS)) {
  const runs: Array<MigrationOutcome & { totalWallMs: number }> = [];
  for (let i = 0; i < RUNS; i++) runs.push(await migrateOnce(processes));
  const mid = runs.sort((x, y) => x.totalWallMs - y.totalWallMs)[Math.floor(runs.length / 2)];
  const mib = mid.transferred / 1048576;
  const throughput = mib / (mid.totalWallMs / 1000);
  const raw: number[] = [];
  for (let i = 0; i < 3; i++) raw.push(await rawTcpMiBps(mid.transferred));
  rows.push(`| ${name} | ${mid.round} | ${mid.pagesSent} / ${mid.zeroPages} / ${mid.errorPages} | ${mib.toFixed(1)} MiB | ${mid.totalWallMs.toFixed(0)} ms | ${mid.elapsedVirtualMs.toFixed(1)} ms | ${mid.downtimeVirtualMs.toFixed(2)} ms | ${mid.downtimeWallMs} ms | ${mid.dirtyLogExits} | ${throughput.toFixed(0)} MiB/s | ${median(raw).toFixed(0)} MiB/s | ${(throughput / median(raw)).toFixed(2)} |`);
  process.stdout.write(`${rows[rows.length - 1]}\n`);
}

const table = `| workload | rounds | pages sent (data / zero / error) | bytes on the wire | total (wall) | total (virtual) | downtime (virtual) | downtime (wall) | dirty-log exits | throughput (wall) | raw loopback TCP | ratio |
|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}`;
writeFileSync(join(root, 'bench/results/migration.md'), `# Migration benchmark

\`npm run bench:migration\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}; median (by total wall time) of ${RUNS} runs.
64 MiB VM, 1024 MiB/s of virtual-time bandwidth, maxDowntimeMs 5, maxRounds 30, umeAwareMigration on. "raw loopback TCP" is
the peer measured in the same run: a plain stream of the same number of bytes between two threads; "ratio" is throughput / raw.

${table}
`);
process.stdout.write('\nwritten to bench/results/migration.md\n');
