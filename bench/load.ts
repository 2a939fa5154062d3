/**
 * Load benchmark (not a test): the compiled service (dist/main.js, embedded database in memory) in
 * a child process, driven over loopback.
 *
 *   1. create+start to running: N clients at once (1, 50, 200) each POST /v1/vms then
 *      /v1/vms/{id}/start; the time until the service publishes the VM's `vm.state` event to
 *      `running` (its worker has booted the VM and the guest's first slice is scheduled), p50/p99.
 *   2. /healthz latency while 10 chatty guests (issue 23's loop printing a 60-byte line) run:
 *      200 sequential requests, p50/p99/max, and the same with no guest running.
 *
 * Writes bench/results/load.md. Usage: npm run bench:load [-- --concurrency 1,50,200]
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { io, Socket } from 'socket.io-client';
import type * as AsmMod from '../src/isa/assembler.js';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { assemble } = (await import(join(root, 'dist/isa/assembler.js'))) as typeof AsmMod;

const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
});
const port = await freePort();
const admin = 'bench-load-admin-token-0123456789';
const child = spawn(process.execPath, [join(root, 'dist/main.js')], {
  env: { ...process.env, PORT: String(port), HVSIM_DB: 'memory', HVSIM_ADMIN_TOKEN: admin, HVSIM_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise<void>((resolve, reject) => {
  child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve(); });
  child.once('exit', (code) => reject(new Error(`service exited with ${code}`)));
});
const url = `http://127.0.0.1:${port}`;

async function call(method: string, path: string, token: string, body?: unknown, type = 'application/json'): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url + path, {
    method, headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': type } : {}) },
    body: body === undefined ? undefined : type === 'application/json' ? JSON.stringify(body) : (body as Buffer),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
}

const token = (await call('POST', '/v1/tenants', admin, { name: 'bench' })).body.token as string;
const hostId = (await call('POST', '/v1/hosts', token, { name: 'h', cpus: 8, memoryMiB: 2047 })).body.id as string;
const elf = (src: string) => Buffer.from(assemble(`.globl _start\n.text\n${src}`).elf);
const LINE = 'chatty guest line: 0123456789abcdefghijklmnopqrstuvwxyz....\n';
const images = {
  spin: (await call('POST', '/v1/images?name=spin', token, elf('_start:\n  wfi\n  j _start\n'), 'application/octet-stream')).body.id as string,
  chatty: (await call('POST', '/v1/images?name=chatty', token, elf(`_start:\n  la a1, msg\n1:\n  li a0, 1\n  li a2, ${LINE.length}\n  li a7, 64\n  ecall\n  j 1b\n.data\nmsg: .ascii "${LINE.replace('\n', '\\n')}"\n`), 'application/octet-stream')).body.id as string,
};

const socket: Socket = io(`${url}/events`, { auth: { token }, transports: ['websocket'], reconnection: false });
await new Promise<void>((r, j) => { socket.on('connect', () => r()); socket.on('connect_error', j); });
const running = new Map<string, () => void>();
socket.on('event', (e: { type: string; subject: string; data: { to?: string } }, ack?: () => void) => {
  ack?.();
  if (e.type === 'vm.state' && e.data.to === 'running') running.get(e.subject.slice(3))?.();
});

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
let seq = 0;

async function startOne(image: string): Promise<{ id: string; ms: number }> {
  const t0 = performance.now();
  const vm = await call('POST', '/v1/vms', token, { name: `vm-${seq++}`, hostId, vcpus: 1, memoryMiB: 8, processes: [{ imageId: image }] });
  if (vm.status !== 201) throw new Error(`create: ${vm.status} ${JSON.stringify(vm.body)}`);
  const id = vm.body.id as string;
  const up = new Promise<void>((r) => running.set(id, r));
  await new Promise<unknown>((r) => socket.emit('subscribe', { subjects: [`vm:${id}`] }, r));
  const st = await call('POST', `/v1/vms/${id}/start`, token);
  if (st.status !== 202) throw new Error(`start: ${st.status} ${JSON.stringify(st.body)}`);
  await up;
  return { id, ms: performance.now() - t0 };
}

async function stopAll(ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => call('POST', `/v1/vms/${id}/stop`, token)));
  for (const id of ids) {
    for (;;) {
      const v = await call('GET', `/v1/vms/${id}`, token);
      if (v.body.state === 'stopped' || v.body.state === 'crashed') break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const rows: string[] = [];
const arg = process.argv.indexOf('--concurrency');
const levels = arg > 0 ? process.argv[arg + 1].split(',').map(Number) : [1, 50, 200];
for (const n of levels) {
  const t = performance.now();
  const res = await Promise.all(Array.from({ length: n }, () => startOne(images.spin)));
  const ms = res.map((r) => r.ms);
  rows.push(`| ${n} | ${pct(ms, 50).toFixed(0)} | ${pct(ms, 99).toFixed(0)} | ${Math.max(...ms).toFixed(0)} | ${((performance.now() - t) / 1000).toFixed(1)} |`);
  console.log(rows[rows.length - 1]);
  await stopAll(res.map((r) => r.id));
}

async function healthz(count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    const r = await fetch(`${url}/healthz`);
    await r.text();
    out.push(performance.now() - t);
    await new Promise((res) => setTimeout(res, 20));
  }
  return out;
}
const idle = await healthz(200);
const chatty = await Promise.all(Array.from({ length: 10 }, () => startOne(images.chatty)));
await new Promise((r) => setTimeout(r, 2000));
const busy = await healthz(200);
await stopAll(chatty.map((c) => c.id));
const hrow = (what: string, xs: number[]) => `| ${what} | ${pct(xs, 50).toFixed(1)} | ${pct(xs, 99).toFixed(1)} | ${Math.max(...xs).toFixed(1)} |`;

const md = `# Load benchmark

\`npm run bench:load\` (bench/load.ts), the compiled service with the embedded database in memory,
over loopback, on ${cpus().length} CPU(s) (${cpus()[0]?.model ?? 'unknown'}), ${new Date().toISOString().slice(0, 10)}.
**The machine was shared with about six other engineers' builds and tests while this ran**: the
figures are an order of magnitude, not a baseline to compare tenths against.

## Create + start to running

N clients at once, each: POST /v1/vms, subscribe, POST /v1/vms/{id}/start, until the \`vm.state\`
event to \`running\` arrives (the worker has booted the VM; the guest's first slice is next).
Boots run 8 at a time (MAX_CONCURRENT_BOOTS), so at 50 and 200 most of the time is the queue.

| concurrent | p50 ms | p99 ms | max ms | all running after s |
|---|---|---|---|---|
${rows.join('\n')}

## /healthz while 10 chatty guests run

200 sequential GET /healthz, 20 ms apart. The chatty guest is issue 23's loop writing a 60-byte
line; before the backpressure of this change, one such guest stalled /healthz for seconds.

| condition | p50 ms | p99 ms | max ms |
|---|---|---|---|
${hrow('no guest running', idle)}
${hrow('10 chatty guests', busy)}
`;
writeFileSync(join(root, 'bench/results/load.md'), md);
console.log(md);
socket.disconnect();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
