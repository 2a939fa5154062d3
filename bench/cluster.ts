/**
 * Cluster benchmark (not a test): VM starts per second and event delivery latency on one node
 * against three nodes (docs/cluster.md), each configuration in a fresh schema of the Postgres
 * server at TEST_DATABASE_URL (or DATABASE_URL):
 *
 *   single     HVSIM_CLUSTER off (today's service on Postgres), one process
 *   cluster-1  HVSIM_CLUSTER=on, one node
 *   cluster-3  HVSIM_CLUSTER=on, three nodes (child processes on loopback ports)
 *
 * Each run: 3 hosts (placed over the nodes), VMS VMs of the built-in `hello` (16 MiB), started
 * through the nodes in turn, CONCURRENCY requests at once, until every start Operation has
 * succeeded. Reported: starts per second (wall), the nodes' CPU time (user+sys, /proc) per start,
 * and the delivery latency of every lifecycle event to a Socket.IO client on the first node
 * (receive time - the event's `time`, which the appending node stamps; one machine, one clock),
 * p50/p99, and the NOTIFYs on the event channel (a LISTENing connection of the benchmark counts
 * them; the adapter's own heartbeats included) per second and per start.
 *
 * Writes bench/results/cluster.md. Usage: npm run bench:cluster [-- --vms 60 --concurrency 8]
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { io, Socket } from 'socket.io-client';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const DB = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
if (!DB) { process.stderr.write('bench:cluster needs TEST_DATABASE_URL (or DATABASE_URL): a Postgres server\n'); process.exit(2); }
const arg = (name: string, def: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : def; };
const VMS = arg('vms', 60);
const CONCURRENCY = arg('concurrency', 8);
const ADMIN = `bench-cluster-${randomBytes(8).toString('hex')}`;
const TICKS = 100; // USER_HZ on Linux

interface Node { id: string; child: ChildProcess; url: string }
interface Result { name: string; nodes: number; failed: number; startsPerS: number; wallS: number; cpuMsPerStart: number; p50: number; p99: number; events: number; notifies: number; notifyPerS: number; load: string }

const cpuMs = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS; // utime, stime
};
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN; };

async function startNode(schema: string, id: string, cluster: boolean): Promise<Node> {
  const child = spawn(process.execPath, [join(root, 'dist/main.js')], {
    env: {
      ...process.env, DATABASE_URL: DB, HVSIM_DB_SCHEMA: schema, HVSIM_ADMIN_TOKEN: ADMIN, HVSIM_LOG_LEVEL: 'silent', HOST: '127.0.0.1', PORT: '0',
      ...(cluster ? { HVSIM_CLUSTER: 'on', HVSIM_NODE_ID: id, HVSIM_NODE_CAPACITY_MIB: '2048' } : {}),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); const m = /listening on (http:\/\/\S+)/.exec(out); if (m) resolve(m[1]); });
    child.once('exit', (code) => reject(new Error(`node ${id} exited with ${code}`)));
  });
  return { id, child, url };
}

async function call(url: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  for (;;) {
    const r = await fetch(url + path, { method, headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    if (r.status === 503) { await new Promise((res) => setTimeout(res, 200)); continue; } // a host being taken on: retry, as a client would
    return { status: r.status, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
  }
}

async function run(name: string, n: number, cluster: boolean): Promise<Result> {
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  const nodes: Node[] = [await startNode(schema, `${name}-0`, cluster)];
  for (let i = 1; i < n; i++) nodes.push(await startNode(schema, `${name}-${i}`, cluster));
  const listen = new pg.Client({ connectionString: DB });
  await listen.connect();
  let notifies = 0;
  listen.on('notification', () => { notifies++; });
  await listen.query(`LISTEN "hvsim_${schema}#/events"`);
  try {
    const url0 = nodes[0].url;
    const token = (await call(url0, 'POST', '/v1/tenants', ADMIN, { name: 'bench' })).body.token as string;
    const hosts: string[] = [];
    for (let i = 0; i < 3; i++) hosts.push((await call(nodes[i % n].url, 'POST', '/v1/hosts', token, { name: `h${i}`, cpus: 8, memoryMiB: 512 })).body.id as string);
    const hello = ((await call(url0, 'GET', '/v1/images?builtin=true', token)).body.items as Array<{ id: string; name: string }>).find((i) => i.name === 'hello')!.id;
    const vms: string[] = [];
    for (let i = 0; i < VMS; i++) {
      vms.push((await call(nodes[i % n].url, 'POST', '/v1/vms', token, { name: `vm${i}`, hostId: hosts[i % 3], vcpus: 1, memoryMiB: 16, processes: [{ imageId: hello }] })).body.id as string);
    }
    // Let every node take its hosts (a start on a host not yet taken answers 503, retried above).
    await new Promise((r) => setTimeout(r, 4000));
    const socket: Socket = io(`${url0}/events`, { auth: { token }, transports: ['websocket'], reconnection: false });
    await new Promise<void>((r, j) => { socket.on('connect', () => r()); socket.on('connect_error', j); });
    const lat: number[] = [];
    const stopped = new Set<string>();
    socket.on('event', (e: { type: string; time: string; subject: string; data: { to?: string } }, ack?: () => void) => {
      ack?.();
      lat.push(Date.now() - Date.parse(e.time));
      if (e.type === 'vm.state' && e.data.to === 'stopped') stopped.add(e.subject);
    });
    await new Promise((r) => socket.emit('subscribe', { subjects: vms.map((id) => `vm:${id}`) }, r));
    notifies = 0;
    const cpu0 = nodes.reduce((s, x) => s + cpuMs(x.child.pid!), 0);
    const t0 = performance.now();
    let next = 0;
    const ops: string[] = [];
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < VMS; i = next++) ops.push((await call(nodes[i % n].url, 'POST', `/v1/vms/${vms[i]}/start`, token)).body.id as string);
    }));
    // A start that fails (e.g. a statement timeout on the tenant's event counter under load) is counted, not retried.
    let failed = 0;
    for (const op of ops) {
      if (!op) { failed++; continue; }
      for (;;) {
        const o = (await call(url0, 'GET', `/v1/operations/${op}`, token)).body;
        if (o.state === 'succeeded') break;
        if (o.state === 'failed' || o.state === 'cancelled') { failed++; process.stderr.write(`${name}: a start failed: ${JSON.stringify(o.error)}\n`); break; }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const wallS = (performance.now() - t0) / 1000;
    const cpu = nodes.reduce((s, x) => s + cpuMs(x.child.pid!), 0) - cpu0;
    const notified = notifies;
    // Every VM's stop reaches the client on node 0 (hello ends by itself).
    const end = Date.now() + 120_000;
    while (stopped.size < VMS - failed && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    socket.disconnect();
    return {
      name, nodes: n, failed, startsPerS: (VMS - failed) / wallS, wallS, cpuMsPerStart: cpu / VMS, p50: pct(lat, 50), p99: pct(lat, 99), events: lat.length,
      notifies: notified, notifyPerS: notified / wallS, load: loadavg().map((x) => x.toFixed(1)).join(' '),
    };
  } finally {
    await listen.end();
    for (const x of nodes) x.child.kill('SIGTERM');
    await Promise.all(nodes.map((x) => new Promise((r) => (x.child.exitCode !== null ? r(null) : x.child.once('exit', r)))));
    const c = new pg.Client({ connectionString: DB });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  }
}

const results: Result[] = [];
for (const [name, n, cluster] of [['single', 1, false], ['cluster-1', 1, true], ['cluster-3', 3, true]] as const) {
  const r = await run(name, n, cluster);
  results.push(r);
  process.stdout.write(`${r.name}: ${r.startsPerS.toFixed(1)} starts/s, ${r.cpuMsPerStart.toFixed(0)} ms CPU a start, events p50 ${r.p50} ms p99 ${r.p99} ms (${r.events}), NOTIFY ${r.notifyPerS.toFixed(1)}/s (load ${r.load})\n`);
}
const base = results[0];
const md = `# Cluster benchmark

\`npm run bench:cluster\` (bench/cluster.ts), ${new Date().toISOString().slice(0, 10)}, ${VMS} VMs of the built-in \`hello\`
(16 MiB) on 3 hosts, started ${CONCURRENCY} requests at a time through the nodes in turn, Postgres 15 on the same machine
(2 cores shared with other work: the load average is beside each row). Starts per second: wall time from the first
start request until every start Operation succeeded. CPU: user+sys of all node processes over that span, per start.
Latency: event \`time\` (stamped by the appending node) to arrival at a Socket.IO client on the first node, every
event of the VMs (vm.state, vm.process, vm.console, vm.counters, ...). NOTIFY: notifications on the event channel
(\`hvsim_<schema>#/events\`) during the starts, counted by a LISTENing connection (the adapter's heartbeats included).

| run | nodes | failed starts | starts/s | vs single | CPU ms a start | events | p50 ms | p99 ms | NOTIFY | NOTIFY/s | load (1, 5, 15 min) |
|---|---|---|---|---|---|---|---|---|---|---|---|
${results.map((r) => `| ${r.name} | ${r.nodes} | ${r.failed} | ${r.startsPerS.toFixed(1)} | ${(r.startsPerS / base.startsPerS).toFixed(2)}× | ${r.cpuMsPerStart.toFixed(0)} | ${r.events} | ${r.p50} | ${r.p99} | ${r.notifies} | ${r.notifyPerS.toFixed(1)} | ${r.load} |`).join('\n')}

What it says: see docs/cluster.md ("Numbers").
`;
writeFileSync(join(root, 'bench/results/cluster.md'), md);
process.stdout.write('wrote bench/results/cluster.md\n');
