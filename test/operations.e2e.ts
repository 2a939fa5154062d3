import request from 'supertest';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';
import { OperationsService } from '../src/api/operations.js';

const until = async (f: () => Promise<boolean>) => {
  for (let i = 0; i < 200; i++) { if (await f()) return; await new Promise((r) => setTimeout(r, 20)); }
  throw new Error('condition not reached');
};

describe.each(BACKENDS)('operations on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let tenantId: string;
  let auth: Record<string, string>;
  let ops: OperationsService;

  beforeAll(async () => {
    svc = await startTestService(backend);
    const t = await request(svc.url).post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: 'ops' }).expect(201);
    tenantId = t.body.id;
    auth = { Authorization: `Bearer ${t.body.token}` };
    ops = svc.app.get(OperationsService);
  }, 300_000); // starting or stopping a service on a busy machine

  afterAll(async () => {
    await svc?.close();
    await svc?.dropSchema();
  });

  const get = async (id: string) => (await request(svc.url).get(`/v1/operations/${id}`).set(auth).expect(200)).body;

  test('a runner that reports progress and succeeds: pending -> running -> succeeded with its result and events', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const op = await ops.start(tenantId, 'test.work', `tenant:${tenantId}`, async (ctx) => {
      await ctx.progress(0.5);
      await gate;
      return { answer: 42 };
    });
    expect(op.state).toBe('pending');
    await until(async () => (await get(op.id)).progress === 0.5);
    expect((await get(op.id)).state).toBe('running');
    release();
    await until(async () => (await get(op.id)).state === 'succeeded');
    expect(await get(op.id)).toMatchObject({ progress: 1, result: { answer: 42 }, error: null });
    const ev = await request(svc.url).get(`/v1/events?subject=operation:${op.id}`).set(auth).expect(200);
    expect(ev.body.items.map((e: { type: string }) => e.type)).toEqual(['operation.created', 'operation.succeeded']);
    await request(svc.url).post(`/v1/operations/${op.id}/cancel`).set(auth).expect(409);
  });

  test('a failing runner ends failed with its error; cancel aborts a running one', async () => {
    const bad = await ops.start(tenantId, 'test.fail', `tenant:${tenantId}`, async () => { throw new Error('boom'); });
    await until(async () => (await get(bad.id)).state === 'failed');
    expect((await get(bad.id)).error).toEqual({ message: 'boom' });

    const slow = await ops.start(tenantId, 'test.slow', `tenant:${tenantId}`, (ctx) => new Promise((_, reject) => {
      ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
    }));
    await until(async () => (await get(slow.id)).state === 'running');
    const c = await request(svc.url).post(`/v1/operations/${slow.id}/cancel`).set(auth).expect(202);
    expect(c.body.cancelRequested).toBe(true);
    await until(async () => (await get(slow.id)).state === 'cancelled');
    const list = await request(svc.url).get('/v1/operations?pageSize=2').set(auth).expect(200);
    expect(list.body.items).toHaveLength(2);
    expect(list.body.nextPageToken).toBeDefined();
  });
});
