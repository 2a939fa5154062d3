import request from 'supertest';
import { io, Socket } from 'socket.io-client';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';

interface Ev { seq: number; type: string; subject: string; tenantId: string }

describe.each(BACKENDS)('events over Socket.IO on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let tokenA: string;
  let tokenB: string;
  const sockets: Socket[] = [];
  const api = () => request(svc.url);

  const connect = (token: string) => new Promise<Socket>((resolve, reject) => {
    const s = io(`${svc.url}/events`, { auth: { token }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    s.on('connect', () => resolve(s));
    s.on('connect_error', reject);
  });
  const subscribe = (s: Socket, req: unknown) => new Promise<{ subscribed: string[]; rejected: Array<{ subject: string; reason: string }> }>((r) => s.emit('subscribe', req, r));

  beforeAll(async () => {
    svc = await startTestService(backend, { HVSIM_EVENTS_IN_FLIGHT: '2', HVSIM_EVENTS_QUEUE: '3' });
    tokenA = (await api().post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: 'a' }).expect(201)).body.token;
    tokenB = (await api().post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: 'b' }).expect(201)).body.token;
  }, 300_000); // starting or stopping a service on a busy machine

  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await svc?.close();
    await svc?.dropSchema();
  });

  test('a bad token is refused at the handshake', async () => {
    await expect(connect('wrong')).rejects.toThrow(/invalid token/);
  });

  test('replay from a seq, then live events, in order; other tenants\' subjects are rejected', async () => {
    const auth = { Authorization: `Bearer ${tokenA}` };
    const host = await api().post('/v1/hosts').set(auth).send({ name: 'h', cpus: 1, memoryMiB: 64 }).expect(201);
    await api().patch(`/v1/hosts/${host.body.id}`).set(auth).send({ cpus: 2 }).expect(200);
    const hostB = await api().post('/v1/hosts').set({ Authorization: `Bearer ${tokenB}` }).send({ name: 'hb', cpus: 1, memoryMiB: 64 }).expect(201);
    const all = (await api().get(`/v1/events?subject=host:${host.body.id}`).set(auth).expect(200)).body.items as Ev[];
    const s = await connect(tokenA);
    const got: Ev[] = [];
    s.on('event', (e: Ev, ack: () => void) => { got.push(e); ack(); });
    const errors: unknown[] = [];
    s.on('error-event', (e: unknown) => errors.push(e));
    const sub = await subscribe(s, { subjects: [`host:${host.body.id}`, `host:${hostB.body.id}`, 'vm:nonsense'], sinceSeq: all[0].seq });
    expect(sub.subscribed).toEqual([`host:${host.body.id}`]);
    expect(sub.rejected.map((r) => r.reason)).toEqual(['not found', 'malformed subject (want KIND:UUID)']);
    await api().patch(`/v1/hosts/${host.body.id}`).set(auth).send({ cpus: 3 }).expect(200);
    await api().patch(`/v1/hosts/${hostB.body.id}`).set({ Authorization: `Bearer ${tokenB}` }).send({ cpus: 3 }).expect(200);
    for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got.map((e) => e.type)).toEqual(['host.updated', 'host.updated']);
    expect(got[0].seq).toBe(all[1].seq);
    expect(got[1].seq).toBeGreaterThan(got[0].seq);
    expect(got.every((e) => e.tenantId === got[0].tenantId && e.subject === `host:${host.body.id}`)).toBe(true);
    expect(errors).toHaveLength(2);
  });

  test('a slow consumer gets a bounded stream and a lagged message naming the dropped range', async () => {
    const auth = { Authorization: `Bearer ${tokenA}` };
    const host = await api().post('/v1/hosts').set(auth).send({ name: 'busy', cpus: 1, memoryMiB: 64 }).expect(201);
    const s = await connect(tokenA);
    const got: Ev[] = [];
    const acks: Array<() => void> = [];
    s.on('event', (e: Ev, ack: () => void) => { got.push(e); acks.push(ack); }); // acknowledges nothing yet
    let lagged: { droppedFrom: number; droppedTo: number } | null = null;
    s.on('lagged', (l: typeof lagged) => { lagged = l; });
    await subscribe(s, { subjects: [`host:${host.body.id}`] });
    for (let i = 0; i < 10; i++) await api().patch(`/v1/hosts/${host.body.id}`).set(auth).send({ cpus: 1 + (i % 4) }).expect(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toHaveLength(2); // in flight; 3 more queued; 5 dropped
    while (acks.length) { acks.shift()!(); await new Promise((r) => setTimeout(r, 20)); }
    for (let i = 0; i < 50 && !lagged; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got).toHaveLength(5);
    expect(lagged).not.toBeNull();
    const { droppedFrom, droppedTo } = lagged!;
    expect(droppedTo - droppedFrom).toBe(4);
    const refetched = (await api().get(`/v1/events?since=${droppedFrom - 1}&subject=host:${host.body.id}&limit=5`).set(auth).expect(200)).body.items as Ev[];
    expect(refetched.map((e) => e.seq)).toEqual([droppedFrom, droppedFrom + 1, droppedFrom + 2, droppedFrom + 3, droppedTo].filter((x) => x <= droppedTo));
  });
});
