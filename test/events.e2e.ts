import { io, Socket } from 'socket.io-client';
import type { HvsimClient } from '../src/client/index.js';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';
import { answered, sdk } from './support/sdk.js';

interface Ev { seq: number; type: string; subject: string; tenantId: string }

describe.each(BACKENDS)('events over Socket.IO on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let tokenA: string;
  let tokenB: string;
  const sockets: Socket[] = [];
  /** The typed SDK as tenants a and b; the Socket.IO protocol itself is tested on raw socket.io-client. */
  let A: HvsimClient, B: HvsimClient;

  const connect = (token: string) => new Promise<Socket>((resolve, reject) => {
    const s = io(`${svc.url}/events`, { auth: { token }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    s.on('connect', () => resolve(s));
    s.on('connect_error', reject);
  });
  const subscribe = (s: Socket, req: unknown) => new Promise<{ subscribed: string[]; rejected: Array<{ subject: string; reason: string }> }>((r) => s.emit('subscribe', req, r));

  beforeAll(async () => {
    svc = await startTestService(backend, { HVSIM_EVENTS_IN_FLIGHT: '2', HVSIM_EVENTS_QUEUE: '3' });
    const admin = sdk(svc.url, ADMIN);
    tokenA = (await answered(admin.POST('/v1/tenants', { body: { name: 'a' } }), 201)).token;
    tokenB = (await answered(admin.POST('/v1/tenants', { body: { name: 'b' } }), 201)).token;
    A = sdk(svc.url, tokenA);
    B = sdk(svc.url, tokenB);
  }, 300_000);

  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await svc?.close();
    await svc?.dropSchema();
  }, 300_000);

  test('a bad token is refused at the handshake', async () => {
    await expect(connect('wrong')).rejects.toThrow(/invalid token/);
  });

  test('replay from a seq, then live events, in order; other tenants\' subjects are rejected', async () => {
    const host = await answered(A.POST('/v1/hosts', { body: { name: 'h', cpus: 1, memoryMiB: 64 } }), 201);
    await answered(A.PATCH('/v1/hosts/{id}', { params: { path: { id: host.id } }, body: { cpus: 2 } }), 200);
    const hostB = await answered(B.POST('/v1/hosts', { body: { name: 'hb', cpus: 1, memoryMiB: 64 } }), 201);
    const all = (await answered(A.GET('/v1/events', { params: { query: { subject: `host:${host.id}` } } }), 200)).items;
    const s = await connect(tokenA);
    const got: Ev[] = [];
    s.on('event', (e: Ev, ack: () => void) => { got.push(e); ack(); });
    const errors: unknown[] = [];
    s.on('error-event', (e: unknown) => errors.push(e));
    const sub = await subscribe(s, { subjects: [`host:${host.id}`, `host:${hostB.id}`, 'vm:nonsense'], sinceSeq: all[0].seq });
    expect(sub.subscribed).toEqual([`host:${host.id}`]);
    expect(sub.rejected.map((r) => r.reason)).toEqual(['not found', 'malformed subject (want KIND:UUID)']);
    await answered(A.PATCH('/v1/hosts/{id}', { params: { path: { id: host.id } }, body: { cpus: 3 } }), 200);
    await answered(B.PATCH('/v1/hosts/{id}', { params: { path: { id: hostB.id } }, body: { cpus: 3 } }), 200);
    for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got.map((e) => e.type)).toEqual(['host.updated', 'host.updated']);
    expect(got[0].seq).toBe(all[1].seq);
    expect(got[1].seq).toBeGreaterThan(got[0].seq);
    expect(got.every((e) => e.tenantId === got[0].tenantId && e.subject === `host:${host.id}`)).toBe(true);
    expect(errors).toHaveLength(2);
  });

  test('a slow consumer gets a bounded stream and a lagged message naming the dropped range', async () => {
    const host = await answered(A.POST('/v1/hosts', { body: { name: 'busy', cpus: 1, memoryMiB: 64 } }), 201);
    const s = await connect(tokenA);
    const got: Ev[] = [];
    const acks: Array<() => void> = [];
    s.on('event', (e: Ev, ack: () => void) => { got.push(e); acks.push(ack); }); // acknowledges nothing yet
    let lagged: { droppedFrom: number; droppedTo: number } | null = null;
    s.on('lagged', (l: typeof lagged) => { lagged = l; });
    await subscribe(s, { subjects: [`host:${host.id}`] });
    for (let i = 0; i < 10; i++) await answered(A.PATCH('/v1/hosts/{id}', { params: { path: { id: host.id } }, body: { cpus: 1 + (i % 4) } }), 200);
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toHaveLength(2); // in flight; 3 more queued; 5 dropped
    while (acks.length) { acks.shift()!(); await new Promise((r) => setTimeout(r, 20)); }
    for (let i = 0; i < 50 && !lagged; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got).toHaveLength(5);
    expect(lagged).not.toBeNull();
    const { droppedFrom, droppedTo } = lagged!;
    expect(droppedTo - droppedFrom).toBe(4);
    const refetched = (await answered(A.GET('/v1/events', { params: { query: { since: droppedFrom - 1, subject: `host:${host.id}`, limit: 5 } } }), 200)).items;
    expect(refetched.map((e) => e.seq)).toEqual([droppedFrom, droppedFrom + 1, droppedFrom + 2, droppedFrom + 3, droppedTo].filter((x) => x <= droppedTo));
  });
});
