/**
 * Issue 23, item 14: the event log and a VM's telemetry stay bounded. A chatty guest's console is
 * kept up to HVSIM_CONSOLE_BYTES (newest bytes, the rest counted as truncated); counters are
 * sampled into a bounded in-memory history and become an event only every HVSIM_COUNTERS_EVERY_S;
 * the event log keeps each tenant's newest HVSIM_EVENT_RETENTION events and answers `410 Gone`
 * (REST) or `gone` (Socket.IO) for a `since` that was pruned.
 */
import request from 'supertest';
import { io } from 'socket.io-client';
import type { HvsimClient } from '../src/client/index.js';
import { assemble } from '../src/isa/assembler.js';
import { EventsService } from '../src/api/events.service.js';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';
import { answered, consoleOf, refused, sdk } from './support/sdk.js';

const LINE = 'chatty guest line: 0123456789abcdefghijklmnopqrstuvwxyz....\n';
const CHATTY = Buffer.from(assemble(`.globl _start\n.text\n_start:\n  la a1, msg\n1:\n  li a0, 1\n  li a2, ${LINE.length}\n  li a7, 64\n  ecall\n  j 1b\n.data\nmsg: .ascii "${LINE.replace('\n', '\\n')}"\n`).elf);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(BACKENDS)('retention on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let tenantId: string;
  let auth: Record<string, string>;
  let token: string;
  /** Raw HTTP only for the raw-bytes image upload; the typed SDK (T) for the rest; Socket.IO raw (its `gone` acknowledgement is the protocol under test). */
  const api = () => request(svc.url);
  let T: HvsimClient;
  const at = (id: string) => ({ params: { path: { id } } });

  beforeAll(async () => {
    svc = await startTestService(backend, { HVSIM_EVENT_RETENTION: '1000', HVSIM_CONSOLE_BYTES: '4096', HVSIM_COUNTERS_EVERY_S: '2' });
    const t = await answered(sdk(svc.url, ADMIN).POST('/v1/tenants', { body: { name: 'retention' } }), 201);
    tenantId = t.id;
    token = t.token;
    auth = { Authorization: `Bearer ${token}` };
    T = sdk(svc.url, token);
  }, 300_000);
  afterAll(async () => { await svc?.close(); await svc?.dropSchema(); }, 300_000);

  test('a chatty guest: console kept up to HVSIM_CONSOLE_BYTES and flagged truncated; counters events every HVSIM_COUNTERS_EVERY_S, not every sample', async () => {
    const hostId = (await answered(T.POST('/v1/hosts', { body: { name: 'r', cpus: 1, memoryMiB: 64 } }), 201)).id;
    const imageId = (await api().post('/v1/images?name=chatty').set(auth).set('Content-Type', 'application/octet-stream').send(CHATTY).expect(201)).body.id;
    const id = (await answered(T.POST('/v1/vms', { body: { name: 'chatty', hostId, vcpus: 1, memoryMiB: 8, processes: [{ imageId }] } }), 201)).id;
    const t0 = Date.now();
    await answered(T.POST('/v1/vms/{id}/start', at(id)), 202);
    const end = Date.now() + 120_000;
    // Runs until it has printed well past the console's 4 KiB and at least 5 s have passed.
    while ((await answered(T.GET('/v1/vms/{id}', at(id)), 200)).state !== 'running' || Date.now() - t0 < 5000) {
      if (Date.now() > end) throw new Error('the VM did not run');
      await sleep(250);
    }
    const live = await answered(T.GET('/v1/vms/{id}/counters', at(id)), 200) as Record<string, any>;
    expect(live.history.points.length).toBeLessThanOrEqual(257);
    const stopOp = (await answered(T.POST('/v1/vms/{id}/stop', at(id)), 202)).id;
    while ((await answered(T.GET('/v1/operations/{id}', at(stopOp)), 200)).state !== 'succeeded') {
      if (Date.now() > end) throw new Error('the stop did not succeed');
      await sleep(250);
    }
    const wallS = (Date.now() - t0) / 1000;
    const con = await consoleOf(T, id);
    expect(con.bytes.stdout).toBeLessThanOrEqual(4096);
    expect(con.bytes.stdout).toBeGreaterThan(4096 - LINE.length);
    expect(con.truncated).toBe(true);
    expect(con.stdout.endsWith(LINE)).toBe(true);
    const events = (await answered(T.GET('/v1/events', { params: { query: { subject: `vm:${id}`, limit: 1000 } } }), 200)).items as unknown as Array<{ type: string; data: { final?: boolean } }>;
    const counters = events.filter((e) => e.type === 'vm.counters');
    // One every 2 s while it ran (not one per 250 ms sample), plus the final one.
    expect(counters.filter((e) => e.data.final)).toHaveLength(1);
    expect(counters.length).toBeLessThanOrEqual(Math.ceil(wallS / 2) + 1);
    expect(counters.length).toBeLessThan(wallS * 4);
  }, 600_000);

  test('the event log keeps the newest HVSIM_EVENT_RETENTION events; a pruned since is 410 Gone over REST and gone over Socket.IO', async () => {
    const events = svc.app.get(EventsService);
    await events.tx(async (m) => { for (let i = 0; i < 1200; i++) await events.append(m, tenantId, 'test.filler', `tenant:${tenantId}`, { i }); });
    // The service prunes every 30 s; pruning now does not wait for it (it may have run already).
    await events.prune();
    const gone = await refused(T.GET('/v1/events', { params: { query: { since: 0 } } }), 410) as { oldestSeq?: number };
    const oldest = gone.oldestSeq as number;
    expect(oldest).toBeGreaterThan(1);
    // From just before the oldest kept event on, the log answers, in order, with nothing missing.
    const page = (await answered(T.GET('/v1/events', { params: { query: { since: oldest - 1, limit: 10 } } }), 200)).items;
    expect(page.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => oldest + i));
    // The tenant keeps at most 1000 events.
    const all = (await answered(T.GET('/v1/events', { params: { query: { since: oldest - 1, limit: 1000 } } }), 200)).items;
    expect(all.length).toBeLessThanOrEqual(1000);

    // Socket.IO: a subscription from a pruned sinceSeq is acknowledged with gone (410 and the oldest seq) and follows live events.
    const hostId = (await answered(T.POST('/v1/hosts', { body: { name: 'watched', cpus: 1, memoryMiB: 32 } }), 201)).id;
    const sock = io(`${svc.url}/events`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
    try {
      await new Promise<void>((resolve, reject) => { sock.on('connect', () => resolve()); sock.on('connect_error', reject); });
      const seen: Array<{ type: string }> = [];
      sock.on('event', (e: { type: string }, ack?: () => void) => { seen.push(e); ack?.(); });
      const ack = await new Promise<{ gone?: { status: number; oldestSeq: number } }>((r) => sock.emit('subscribe', { subjects: [`host:${hostId}`], sinceSeq: 0 }, r));
      expect(ack.gone).toMatchObject({ status: 410, oldestSeq: oldest });
      await answered(T.PATCH('/v1/hosts/{id}', { ...at(hostId), body: { name: 'renamed' } }), 200);
      const end = Date.now() + 60_000;
      while (!seen.some((e) => e.type.startsWith('host.'))) {
        if (Date.now() > end) throw new Error('no live event after gone');
        await sleep(50);
      }
    } finally {
      sock.disconnect();
    }
  }, 600_000);
});
