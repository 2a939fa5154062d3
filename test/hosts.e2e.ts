import request from 'supertest';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';

describe.each(BACKENDS)('tenants, auth, hosts and events on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let tokenA: string;
  let tokenB: string;
  const api = () => request(svc.url);

  beforeAll(async () => {
    svc = await startTestService(backend);
    const a = await api().post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: 'alpha' }).expect(201);
    const b = await api().post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: 'beta' }).expect(201);
    tokenA = a.body.token;
    tokenB = b.body.token;
  }, 300_000); // starting or stopping a service on a busy machine

  afterAll(async () => {
    await svc?.close();
    await svc?.dropSchema();
  });

  test('metrics count requests by route pattern; responses carry a request id', async () => {
    const r = await api().get('/v1/hosts').set('Authorization', `Bearer ${tokenA}`).set('X-Request-Id', 'trace-123').expect(200);
    expect(r.headers['x-request-id']).toBe('trace-123');
    expect((await api().get('/healthz')).headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const m = await api().get('/metrics').set('Authorization', `Bearer ${ADMIN}`).expect(200);
    expect(m.text).toMatch(/hvsim_http_requests_total\{method="GET",route="\/v1\/hosts",status="200"\} [1-9]/);
    expect(m.text).toMatch(/hvsim_http_request_duration_seconds_bucket/);
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
    const auth = { Authorization: `Bearer ${tokenA}` };
    const created = await api().post('/v1/hosts').set(auth).send({ name: 'h1', cpus: 4, memoryMiB: 256 }).expect(201);
    expect(created.body).toMatchObject({ name: 'h1', cpus: 4, memoryMiB: 256, state: 'ready', techniques: {} });
    const id = created.body.id;
    await api().get(`/v1/hosts/${id}`).set(auth).expect(200);
    await api().post('/v1/hosts').set(auth).send({ name: 'h1', cpus: 1, memoryMiB: 16 }).expect(409);
    // A host's DRAM is real memory of this service: sizes it cannot hold are refused, and nothing is created.
    const huge = await api().post('/v1/hosts').set(auth).send({ name: 'huge', cpus: 1, memoryMiB: 65536 }).expect(400);
    expect(huge.body.detail).toMatch(/memoryMiB/);
    expect((await api().get('/v1/hosts?pageSize=100').set(auth).expect(200)).body.items.some((h: { name: string }) => h.name === 'huge')).toBe(false);
    for (const n of ['h2', 'h3']) await api().post('/v1/hosts').set(auth).send({ name: n, cpus: 1, memoryMiB: 16 }).expect(201);
    const p1 = await api().get('/v1/hosts?pageSize=2').set(auth).expect(200);
    expect(p1.body.items.map((h: { name: string }) => h.name)).toEqual(['h1', 'h2']);
    const p2 = await api().get(`/v1/hosts?pageSize=2&pageToken=${p1.body.nextPageToken}`).set(auth).expect(200);
    expect(p2.body.items.map((h: { name: string }) => h.name)).toEqual(['h3']);
    expect(p2.body.nextPageToken).toBeUndefined();
    const patched = await api().patch(`/v1/hosts/${id}`).set(auth).send({ cpus: 8 }).expect(200);
    expect(patched.body.cpus).toBe(8);
    await api().delete(`/v1/hosts/${id}`).set(auth).expect(204);
    await api().get(`/v1/hosts/${id}`).set(auth).expect(404);
    const ev = await api().get(`/v1/events?subject=host:${id}`).set(auth).expect(200);
    expect(ev.body.items.map((e: { type: string }) => e.type)).toEqual(['host.created', 'host.updated', 'host.deleted']);
    const all = await api().get('/v1/events').set(auth).expect(200);
    const seqs = all.body.items.map((e: { seq: number }) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    const since = await api().get(`/v1/events?since=${seqs[2]}`).set(auth).expect(200);
    expect(since.body.items[0].seq).toBe(seqs[3]);
  });

  test('another tenant gets 404 for hosts it does not own and sees none of their events', async () => {
    const h = await api().post('/v1/hosts').set('Authorization', `Bearer ${tokenA}`).send({ name: 'private', cpus: 2, memoryMiB: 64 }).expect(201);
    const b = { Authorization: `Bearer ${tokenB}` };
    await api().get(`/v1/hosts/${h.body.id}`).set(b).expect(404);
    await api().patch(`/v1/hosts/${h.body.id}`).set(b).send({ cpus: 2 }).expect(404);
    await api().delete(`/v1/hosts/${h.body.id}`).set(b).expect(404);
    const ev = await api().get('/v1/events').set(b).expect(200);
    expect(ev.body.items.every((e: { tenantId: string; type: string }) => e.type === 'tenant.created')).toBe(true);
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
    const auth = { Authorization: `Bearer ${tokenA}`, 'Idempotency-Key': 'create-idem-1' };
    const first = await api().post('/v1/hosts').set(auth).send({ name: 'idem', cpus: 1, memoryMiB: 16 }).expect(201);
    const again = await api().post('/v1/hosts').set(auth).send({ name: 'idem', cpus: 1, memoryMiB: 16 }).expect(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const other = await api().post('/v1/hosts').set(auth).send({ name: 'idem2', cpus: 1, memoryMiB: 16 }).expect(422);
    expect(other.body.detail).toMatch(/different request/);
    // Keys are per tenant.
    await api().post('/v1/hosts').set({ Authorization: `Bearer ${tokenB}`, 'Idempotency-Key': 'create-idem-1' }).send({ name: 'idem2', cpus: 1, memoryMiB: 16 }).expect(201);
  });

  test('concurrent writers of one tenant get unique, gap-free event seqs', async () => {
    const auth = { Authorization: `Bearer ${tokenB}` };
    const before = (await api().get('/v1/events').set(auth).expect(200)).body.items as Array<{ seq: number }>;
    const last = before.length ? before[before.length - 1].seq : 0;
    await Promise.all(Array.from({ length: 20 }, (_, i) => api().post('/v1/hosts').set(auth).send({ name: `par-${i}`, cpus: 1, memoryMiB: 16 }).expect(201)));
    const after = (await api().get(`/v1/events?since=${last}`).set(auth).expect(200)).body.items as Array<{ seq: number }>;
    expect(after.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => last + 1 + i));
  });
});
