/**
 * The typed SDK (src/client) against a real service: its types are current with openapi.yaml,
 * REST calls return typed data or raise ApiError with the problem details, and the events client
 * replays from a seq, acknowledges, and recovers the events a `lagged` notice names.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ADMIN, BACKENDS, startTestService, until } from './support/service.js';
import { ApiError, EventsClient, hvsimClient, must, type HvEvent } from '../src/client/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));

test('src/client/schema.ts is what openapi-typescript generates from openapi.yaml (run `npm run openapi`)', async () => {
  await promisify(execFile)(process.execPath, ['scripts/sdk.mjs', '--check'], { cwd: root });
}, 600_000);

describe.each(BACKENDS)('the SDK on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let token = '';
  const clients: EventsClient[] = [];
  // A small event window, so a slow consumer lags after a few events.
  beforeAll(async () => {
    svc = await startTestService(backend, { HVSIM_EVENTS_IN_FLIGHT: '2', HVSIM_EVENTS_QUEUE: '3' });
    const admin = hvsimClient({ url: svc.url, token: ADMIN });
    token = (await must(admin.POST('/v1/tenants', { body: { name: 'sdk' } }))).token;
  }, 300_000); // starting or stopping a service on a busy machine
  afterAll(async () => {
    for (const c of clients) c.close();
    await svc?.close();
    await svc?.dropSchema();
  }, 300_000); // starting or stopping a service on a busy machine
  const connect = async () => { const c = await EventsClient.connect(svc.url, token, { reconnection: false }); clients.push(c); return c; };

  test('REST calls are typed and errors carry problem details', async () => {
    const api = hvsimClient({ url: svc.url, token });
    const host = await must(api.POST('/v1/hosts', { body: { name: 'sdk-host', cpus: 1, memoryMiB: 32 } }));
    expect(host.memory.freeMiB).toBe(32);
    const image = await must(api.POST('/v1/images', { body: { name: 'hi', format: 'asm', content: '.globl _start\n_start:\n li a0, 7\n li a7, 93\n ecall\n' } }));
    const vm = await must(api.POST('/v1/vms', { body: { name: 'sdk-vm', hostId: host.id, vcpus: 1, memoryMiB: 8, processes: [{ imageId: image.id }] } }));
    const op = await must(api.POST('/v1/vms/{id}/start', { params: { path: { id: vm.id } } }));
    expect(op.kind).toBe('vm.start');
    const done = await until('process exited', async () => {
      const v = await must(api.GET('/v1/vms/{id}', { params: { path: { id: vm.id } } }));
      return v.run?.processes?.[0]?.status !== undefined ? v : undefined;
    });
    expect(done.run!.processes![0].status).toBe(7);
    const err = await must(api.GET('/v1/hosts/{id}', { params: { path: { id: '00000000-0000-4000-8000-000000000000' } } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
    expect((err as ApiError).problem.detail).toMatch(/does not exist/);
    const unauthorized = await must(hvsimClient({ url: svc.url, token: 'wrong' }).GET('/v1/hosts')).then(() => null, (e: unknown) => e as ApiError);
    if (!unauthorized) throw new Error('a wrong token was accepted');
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.message).not.toContain('wrong');
  }, 300_000);

  test('events: replay from a seq, in order, and a lagging consumer gets every event through GET /v1/events', async () => {
    const api = hvsimClient({ url: svc.url, token });
    const host = await must(api.POST('/v1/hosts', { body: { name: 'busy', cpus: 1, memoryMiB: 16 } }));
    const subject = `host:${host.id}`;

    // Replay: a client subscribing with sinceSeq 0 first gets host.created.
    const replay = await connect();
    const replayed: HvEvent[] = [];
    replay.onEvent((e) => { replayed.push(e); });
    expect(await replay.subscribe([subject, 'host:00000000-0000-4000-8000-000000000000'], { sinceSeq: 0 })).toEqual({
      subscribed: [subject], rejected: [{ subject: 'host:00000000-0000-4000-8000-000000000000', reason: 'not found' }],
    });
    await until('host.created replayed', () => replayed.some((e) => e.type === 'host.created'));
    const created = replayed.find((e) => e.type === 'host.created')!;

    // A slow consumer (each handler waits) with 2 in flight and 3 queued: 12 updates overflow it.
    const slow = await connect();
    const got: HvEvent[] = [];
    let lagged = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => { release = r; });
    slow.onEvent(async (e) => { got.push(e); await gate; });
    slow.onLagged(() => { lagged++; });
    await slow.subscribe([subject], { sinceSeq: created.seq });
    for (let i = 0; i < 12; i++) await must(api.PATCH('/v1/hosts/{id}', { params: { path: { id: host.id } }, body: { cpus: 1 + (i % 4) } }));
    release();
    await until('every update delivered', () => got.length >= 12, 200_000);
    expect(lagged).toBeGreaterThan(0);
    expect(got.map((e) => e.type)).toEqual(Array(12).fill('host.updated'));
    const seqs = got.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(12);
    expect(slow.lastSeq).toBe(seqs[11]);
  }, 300_000);
});
