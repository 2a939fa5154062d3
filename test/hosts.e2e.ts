import request from 'supertest';
import type { HvsimClient } from '../src/client/index.js';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';
import { must, refused, sdk } from './support/sdk.js';

describe.each(BACKENDS)('tenants, auth, hosts and events on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let tokenA: string;
  let tokenB: string;
  /** Raw HTTP, for what the SDK's types cannot express (headers, bad input, other tokens' kinds). */
  const api = () => request(svc.url);
  /** The typed SDK as tenants alpha and beta. */
  let A: HvsimClient, B: HvsimClient;

  beforeAll(async () => {
    svc = await startTestService(backend);
    const admin = sdk(svc.url, ADMIN);
    tokenA = (await must(admin.POST('/v1/tenants', { body: { name: 'alpha' } }))).token;
    tokenB = (await must(admin.POST('/v1/tenants', { body: { name: 'beta' } }))).token;
    A = sdk(svc.url, tokenA);
    B = sdk(svc.url, tokenB);
  }, 300_000);

  afterAll(async () => {
    await svc?.close();
    await svc?.dropSchema();
  }, 300_000);

  test('metrics count requests by route pattern; responses carry a request id', async () => {
    const r = await api().get('/v1/hosts').set('Authorization', `Bearer ${tokenA}`).set('X-Request-Id', 'trace-123').expect(200);
    expect(r.headers['x-request-id']).toBe('trace-123');
    expect((await api().get('/healthz')).headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const m = await api().get('/metrics').set('Authorization', `Bearer ${ADMIN}`).expect(200);
    expect(m.text).toMatch(/hvsim_http_requests_total\{method="GET",route="\/v1\/hosts",status="200"\} [1-9]/);
    expect(m.text).toMatch(/hvsim_http_request_duration_seconds_bucket/);
  });

  test('idle keep-alive connections outlive a client\'s idle timeout (undici closes first, so no request meets a closing socket)', async () => {
    const r = await fetch(`${svc.url}/healthz`);
    expect(r.headers.get('keep-alive')).toBe('timeout=65');
  });

  test('health and readiness need no token', async () => {
    await api().get('/healthz').expect(200, { status: 'ok' });
    const r = await api().get('/readyz').expect(200);
    expect(r.body.info.database.status).toBe('up');
  });

  test('requests without a token, with a wrong token, or with the wrong kind of token are refused as problem+json', async () => {
    const none = await api().get('/v1/hosts').expect(401);
    expect(none.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(none.body).toMatchObject({ status: 401, title: 'Unauthorized', type: expect.stringContaining('unauthorized') });
    await api().get('/v1/hosts').set('Authorization', 'Bearer nope').expect(401);
    await api().get('/v1/hosts').set('Authorization', `Bearer ${ADMIN}`).expect(403);
    await api().post('/v1/tenants').set('Authorization', `Bearer ${tokenA}`).send({ name: 'x' }).expect(403);
  });

  test('host lifecycle: create, get, list with pagination, patch, delete, with events in order', async () => {
    const created = await must(A.POST('/v1/hosts', { body: { name: 'h1', cpus: 4, memoryMiB: 256 } }));
    expect(created).toMatchObject({ name: 'h1', cpus: 4, memoryMiB: 256, state: 'ready', techniques: {} });
    const path = { params: { path: { id: created.id } } };
    await must(A.GET('/v1/hosts/{id}', path));
    await refused(A.POST('/v1/hosts', { body: { name: 'h1', cpus: 1, memoryMiB: 16 } }), 409);
    // A host's DRAM is real memory of this service: sizes it cannot hold are refused, and nothing is created.
    expect((await refused(A.POST('/v1/hosts', { body: { name: 'huge', cpus: 1, memoryMiB: 65536 } }), 400)).detail).toMatch(/memoryMiB/);
    expect((await must(A.GET('/v1/hosts', { params: { query: { pageSize: 100 } } }))).items.some((h) => h.name === 'huge')).toBe(false);
    for (const n of ['h2', 'h3']) await must(A.POST('/v1/hosts', { body: { name: n, cpus: 1, memoryMiB: 16 } }));
    const p1 = await must(A.GET('/v1/hosts', { params: { query: { pageSize: 2 } } }));
    expect(p1.items.map((h) => h.name)).toEqual(['h1', 'h2']);
    const p2 = await must(A.GET('/v1/hosts', { params: { query: { pageSize: 2, pageToken: p1.nextPageToken } } }));
    expect(p2.items.map((h) => h.name)).toEqual(['h3']);
    expect(p2.nextPageToken).toBeUndefined();
    expect((await must(A.PATCH('/v1/hosts/{id}', { ...path, body: { cpus: 8 } }))).cpus).toBe(8);
    await must(A.DELETE('/v1/hosts/{id}', path));
    await refused(A.GET('/v1/hosts/{id}', path), 404);
    const ev = await must(A.GET('/v1/events', { params: { query: { subject: `host:${created.id}` } } }));
    expect(ev.items.map((e) => e.type)).toEqual(['host.created', 'host.updated', 'host.deleted']);
    const seqs = (await must(A.GET('/v1/events', {}))).items.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    const since = await must(A.GET('/v1/events', { params: { query: { since: seqs[2] } } }));
    expect(since.items[0].seq).toBe(seqs[3]);
  });

  test('another tenant gets 404 for hosts it does not own and sees none of their events', async () => {
    const h = await must(A.POST('/v1/hosts', { body: { name: 'private', cpus: 2, memoryMiB: 64 } }));
    const path = { params: { path: { id: h.id } } };
    await refused(B.GET('/v1/hosts/{id}', path), 404);
    await refused(B.PATCH('/v1/hosts/{id}', { ...path, body: { cpus: 2 } }), 404);
    await refused(B.DELETE('/v1/hosts/{id}', path), 404);
    const ev = await must(B.GET('/v1/events', {}));
    expect(ev.items.every((e) => e.type === 'tenant.created')).toBe(true);
  });

  test('validation errors are 400 problem+json naming the fields, and unknown fields are rejected', async () => {
    const auth = { Authorization: `Bearer ${tokenA}` };
    const r = await api().post('/v1/hosts').set(auth).send({ name: '', cpus: 100, memoryMiB: 8 }).expect(400);
    expect(r.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['cpus', 'memoryMiB', 'name']);
    const u = await api().post('/v1/hosts').set(auth).send({ name: 'x', cpus: 1, memoryMiB: 16, colour: 'red' }).expect(400);
    expect(u.body.detail).toMatch(/colour should not exist/);
    await api().get('/v1/hosts/not-a-uuid').set(auth).expect(400);
    await api().get('/v1/hosts?pageToken=@@@').set(auth).expect(400);
  });
  test('Idempotency-Key: the same request returns the first result, a different one is 422', async () => {
    const key = { params: { header: { 'Idempotency-Key': 'create-idem-1' } } };
    const first = await A.POST('/v1/hosts', { ...key, body: { name: 'idem', cpus: 1, memoryMiB: 16 } });
    const again = await A.POST('/v1/hosts', { ...key, body: { name: 'idem', cpus: 1, memoryMiB: 16 } });
    expect([first.response.status, again.response.status]).toEqual([201, 201]);
    expect(again.data).toEqual(first.data);
    expect(again.response.headers.get('idempotent-replayed')).toBe('true');
    expect((await refused(A.POST('/v1/hosts', { ...key, body: { name: 'idem2', cpus: 1, memoryMiB: 16 } }), 422)).detail).toMatch(/different request/);
    // Keys are per tenant.
    await must(B.POST('/v1/hosts', { ...key, body: { name: 'idem2', cpus: 1, memoryMiB: 16 } }));
  });

  test('concurrent writers of one tenant get unique, gap-free event seqs', async () => {
    const before = (await must(B.GET('/v1/events', {}))).items;
    const last = before.length ? before[before.length - 1].seq : 0;
    await Promise.all(Array.from({ length: 20 }, (_, i) => must(B.POST('/v1/hosts', { body: { name: `par-${i}`, cpus: 1, memoryMiB: 16 } }))));
    const after = (await must(B.GET('/v1/events', { params: { query: { since: last } } }))).items;
    expect(after.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => last + 1 + i));
  });
});
