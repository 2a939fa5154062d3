import type { HvsimClient } from '../src/client/index.js';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';
import { answered, must, refused, sdk } from './support/sdk.js';
import { OperationsService } from '../src/api/operations.js';

const until = async (f: () => Promise<boolean>) => {
  for (let i = 0; i < 200; i++) { if (await f()) return; await new Promise((r) => setTimeout(r, 20)); }
  throw new Error('condition not reached');
};

describe.each(BACKENDS)('operations on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let tenantId: string;
  let T: HvsimClient;
  let ops: OperationsService;

  beforeAll(async () => {
    svc = await startTestService(backend);
    const t = await answered(sdk(svc.url, ADMIN).POST('/v1/tenants', { body: { name: 'ops' } }), 201);
    tenantId = t.id;
    T = sdk(svc.url, t.token);
    ops = svc.app.get(OperationsService);
  }, 300_000);

  afterAll(async () => {
    await svc?.close();
    await svc?.dropSchema();
  }, 300_000);

  const get = async (id: string) => answered(T.GET('/v1/operations/{id}', { params: { path: { id } } }), 200);

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
    const ev = await answered(T.GET('/v1/events', { params: { query: { subject: `operation:${op.id}` } } }), 200);
    expect(ev.items.map((e) => e.type)).toEqual(['operation.created', 'operation.succeeded']);
    await refused(T.POST('/v1/operations/{id}/cancel', { params: { path: { id: op.id } } }), 409);
  });

  test('a failing runner ends failed with its error; cancel aborts a running one', async () => {
    const bad = await ops.start(tenantId, 'test.fail', `tenant:${tenantId}`, async () => { throw new Error('boom'); });
    await until(async () => (await get(bad.id)).state === 'failed');
    expect((await get(bad.id)).error).toEqual({ message: 'boom' });

    const slow = await ops.start(tenantId, 'test.slow', `tenant:${tenantId}`, (ctx) => new Promise((_, reject) => {
      ctx.signal.addEventListener('abort', () => reject(new Error('aborted')));
    }));
    await until(async () => (await get(slow.id)).state === 'running');
    const c = await answered(T.POST('/v1/operations/{id}/cancel', { params: { path: { id: slow.id } } }), 202);
    expect(c.cancelRequested).toBe(true);
    await until(async () => (await get(slow.id)).state === 'cancelled');
    const list = await answered(T.GET('/v1/operations', { params: { query: { pageSize: 2 } } }), 200);
    expect(list.items).toHaveLength(2);
    expect(list.nextPageToken).toBeDefined();
  });
});
