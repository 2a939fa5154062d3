/**
 * Issue 23, items 5, 10, 11, 12 and 13: the limiter never locks out a valid token, /metrics is
 * the operator's, idempotency is race-free, bodies are not parsed before authentication, and
 * heavy uploads are bounded in output and run off the main thread.
 */
import { request as httpRequest } from 'node:http';
import { threadId } from 'node:worker_threads';
import { ADMIN, BACKENDS, until, useTenantSession } from './support/service.js';
import { ImagesService } from '../src/api/images.js';

describe.each(BACKENDS)('limits on $name', (backend) => {
  const s = useTenantSession(backend, 'limits');
  const admin = { Authorization: `Bearer ${ADMIN}` };

  test('21 bad-token requests from one address do not lock out the admin or a tenant token (item 10)', async () => {
    for (let i = 0; i < 21; i++) await s.api().get('/v1/hosts').set('Authorization', 'Bearer same-wrong-token').expect(i < 20 ? 401 : 429);
    await s.api().post('/v1/tenants').set(admin).send({ name: 'after-lockout' }).expect(201);
    await s.api().get('/v1/hosts').set(s.auth).expect(200);
    // The limiter keys on the failing token: another bad token still gets its own budget.
    await s.api().get('/v1/hosts').set('Authorization', 'Bearer another-wrong-token').expect(401);
  });

  test('/metrics needs the admin token; route labels are templates; deleted VMs leave no series (item 11)', async () => {
    await s.api().get('/metrics').expect(401);
    await s.api().get('/metrics').set(s.auth).expect(403);
    for (let i = 0; i < 50; i++) await s.api().get(`/v1/junk-${i}/x`).set(s.auth).expect(404);
    for (let i = 0; i < 5; i++) await s.api().get(`/v1/hosts/00000000-0000-4000-8000-00000000000${i}`).set(s.auth).expect(404);
    await s.api().post(`/v1/junk-body-${Date.now()}`).set(s.auth).set('Content-Type', 'application/json').send('{bad').expect(400);
    const text = (await s.api().get('/metrics').set(admin).expect(200)).text;
    const routes = new Set([...text.matchAll(/hvsim_http_requests_total\{[^}]*route="([^"]*)"/g)].map((m) => m[1]));
    expect([...routes].filter((r) => /junk/.test(r))).toEqual([]);
    expect(routes).toContain('/v1/hosts/:id');
    expect(routes).toContain('unmatched');

    await s.api().post('/v1/hosts').set(s.auth).send({ name: 'mh', cpus: 1, memoryMiB: 64 }).expect(201);
    const img = (await s.api().get('/v1/images?builtin=true').set(s.auth).expect(200)).body.items.find((i: { name: string }) => i.name === 'hello');
    const vm = (await s.api().post('/v1/vms').set(s.auth).send({ name: 'mv', vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] }).expect(201)).body;
    await s.api().post(`/v1/vms/${vm.id}/start`).set(s.auth).expect(202);
    await until('the VM to stop', async () => (await s.api().get(`/v1/vms/${vm.id}`).set(s.auth)).body.state === 'stopped');
    await until('its series', async () => (await s.api().get('/metrics').set(admin)).text.includes(`vm="${vm.id}"`));
    await s.api().delete(`/v1/vms/${vm.id}`).set(s.auth).expect(204);
    await until('its series to go', async () => !(await s.api().get('/metrics').set(admin)).text.includes(vm.id));
  }, 300_000);

  test('10 concurrent identical requests with one Idempotency-Key: 1 created, 9 replays (item 12)', async () => {
    const send = () => s.api().post('/v1/hosts').set(s.auth).set('Idempotency-Key', 'race-1').send({ name: 'raced', cpus: 1, memoryMiB: 32 });
    const rs = await Promise.all(Array.from({ length: 10 }, send));
    expect(rs.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(rs.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(9);
    expect(new Set(rs.map((r) => r.body.id)).size).toBe(1);
    const hosts = (await s.api().get('/v1/hosts?pageSize=100').set(s.auth).expect(200)).body.items;
    expect(hosts.filter((h: { name: string }) => h.name === 'raced')).toHaveLength(1);
    // A failed request does not hold its key: the same key can be used again.
    await s.api().post('/v1/hosts').set(s.auth).set('Idempotency-Key', 'race-2').send({ name: 'raced', cpus: 1, memoryMiB: 32 }).expect(409);
    await s.api().post('/v1/hosts').set(s.auth).set('Idempotency-Key', 'race-2').send({ name: 'raced-2', cpus: 1, memoryMiB: 32 }).expect(201);
  }, 300_000);

  test('bodies are not parsed before authentication (item 13)', async () => {
    // Malformed JSON with a bad token: a 401, not a parse error (it was parsed first).
    await s.api().post('/v1/hosts').set('Authorization', 'Bearer nope-13').set('Content-Type', 'application/json').send('{bad').expect(401);
    // 23 MB announced with a bad token: the 401 comes after 1 KiB of it was sent (the parser would wait for all of it).
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${s.svc.url}/v1/hosts`, {
        method: 'POST', headers: { Authorization: 'Bearer nope-13b', 'Content-Type': 'application/json', 'Content-Length': String(23 << 20) },
      }, (res) => { resolve(res.statusCode ?? 0); res.resume(); req.destroy(); });
      req.on('error', reject);
      req.write(Buffer.alloc(1024, 0x20));
    });
    expect(status).toBe(401);
    await s.api().get('/healthz').expect(200);
    // Authenticated, the same malformed body is a 400.
    await s.api().post('/v1/hosts').set(s.auth).set('Content-Type', 'application/json').send('{bad').expect(400);
  }, 300_000);

  test('an 81-byte .space 67108864 upload is a 422 before any output is produced, and other requests are served meanwhile (item 5)', async () => {
    const src = '.globl _start\n.text\n_start: j _start\n.data\n.space 67108864\n';
    const [up, health] = await Promise.all([
      s.api().post('/v1/images').set(s.auth).send({ name: 'space', format: 'asm', content: src }),
      s.api().get('/healthz'),
    ]);
    expect(health.status).toBe(200);
    expect(up.status).toBe(422);
    expect(up.body.errors[0].message).toMatch(/limit is 16777216/);
    const images = (await s.api().get('/v1/images?builtin=false').set(s.auth).expect(200)).body.items;
    expect(images.filter((i: { name: string }) => i.name === 'space')).toEqual([]);
    // Within the limit it works, assembled off the main thread.
    const ok = await s.api().post('/v1/images').set(s.auth).send({ name: 'space1m', format: 'asm', content: src.replace('67108864', '1048576') }).expect(201);
    expect(ok.body.sizeBytes).toBeGreaterThan(1 << 20);
    const pool = (s.svc.app.get(ImagesService) as unknown as { pool: { completed: number; threads: Array<{ threadId: number }> } }).pool;
    expect(pool.completed).toBeGreaterThanOrEqual(2);
    expect(pool.threads.every((t) => t.threadId !== threadId)).toBe(true);
  }, 300_000);

  test('an uploaded ELF is still validated (off the main thread): garbage is a 422', async () => {
    const r = await s.api().post('/v1/images?name=junk').set(s.auth).set('Content-Type', 'application/octet-stream').send(Buffer.alloc(4096, 7)).expect(422);
    expect(r.body.detail).toMatch(/not a valid static RV32 executable/);
  });
});

