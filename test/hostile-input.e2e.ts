/**
 * Issue 23, items 6 and 7: input a hostile tenant sends gets a 4xx naming the problem, never a 500,
 * and changes nothing.
 */
import request from 'supertest';
import { BACKENDS, useTenantSession } from './support/service.js';

describe.each(BACKENDS)('hostile input on $name', (backend) => {
  const s = useTenantSession(backend, 'mallory');
  let imageId: string;

  /** Sends `raw` (a JSON text, not re-encoded) as the body. */
  const postRaw = (path: string, raw: string | Buffer) =>
    s.api().post(path).set(s.auth).set('Content-Type', 'application/json').send(raw);

  beforeAll(async () => {
    const imgs = await s.api().get('/v1/images?builtin=true').set(s.auth).expect(200);
    imageId = imgs.body.items.find((i: { name: string }) => i.name === 'hello').id;
    await s.api().post('/v1/hosts').set(s.auth).send({ name: 'h0', cpus: 2, memoryMiB: 256 }).expect(201);
  }, 300_000);

  test('a 2048 MiB host has all its DRAM; 4096 MiB is a 400 stating the limit (item 6)', async () => {
    const h = await s.api().post('/v1/hosts').set(s.auth).send({ name: 'big', cpus: 1, memoryMiB: 2048 }).expect(201);
    expect(h.body.memory).toMatchObject({ frames: 2048 * 256, freeFrames: 2048 * 256, freeMiB: 2048 });
    for (const memoryMiB of [4096, 5000]) {
      const r = await s.api().post('/v1/hosts').set(s.auth).send({ name: `huge-${memoryMiB}`, cpus: 1, memoryMiB }).expect(400);
      expect(r.body.detail).toMatch(/memoryMiB must not be greater than 2048/);
    }
    await s.api().patch(`/v1/hosts/${h.body.id}`).set(s.auth).send({ memoryMiB: 4096 }).expect(400);
    await s.api().delete(`/v1/hosts/${h.body.id}`).set(s.auth).expect(204);
  });

  test('NUL and lone surrogates in stored strings are a 400 naming the field', async () => {
    const cases: Array<[string, string, string]> = [
      ['/v1/hosts', '{"name":"a\\u0000b","cpus":1,"memoryMiB":64}', 'name'],
      ['/v1/hosts', '{"name":"a\\ud800b","cpus":1,"memoryMiB":64}', 'name'],
      ['/v1/hosts', '{"name":"ok","cpus":1,"memoryMiB":64,"techniques":{"a\\udc00":1}}', 'techniques'],
      ['/v1/vms', `{"name":"v","vcpus":1,"memoryMiB":16,"processes":[{"imageId":"IMG","argv":["x","a\\u0000"]}]}`, 'processes[0].argv[1]'],
      ['/v1/vms', `{"name":"v","vcpus":1,"memoryMiB":16,"processes":[{"imageId":"IMG","env":["A=\\udbff"]}]}`, 'processes[0].env[0]'],
      ['/v1/vms', `{"name":"v","vcpus":1,"memoryMiB":16,"processes":[{"imageId":"IMG","stdin":"\\u0000"}]}`, 'processes[0].stdin'],
      ['/v1/images', '{"name":"a","format":"asm","content":"_start: nop # \\u0000\\n"}', 'content'],
    ];
    for (const [path, body, field] of cases) {
      const r = await postRaw(path, body.replace('IMG', imageId)).expect(400);
      expect(r.body.errors).toEqual([expect.objectContaining({ field })]);
      expect(r.body.detail).toMatch(/NUL character|unpaired surrogate/);
    }
    const q = await s.api().post('/v1/images?name=a%00b').set(s.auth).set('Content-Type', 'application/octet-stream').send(Buffer.from('x')).expect(400);
    expect(q.body.errors).toEqual([expect.objectContaining({ field: 'name' })]);
    expect((await s.api().get('/v1/hosts').set(s.auth).expect(200)).body.items.map((h: { name: string }) => h.name)).toEqual(['h0']);
  });

  test('invalid UTF-8 in a JSON body is a 400, not U+FFFD', async () => {
    const body = Buffer.concat([Buffer.from('{"name":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('","cpus":1,"memoryMiB":64}')]);
    // fetch sends the bytes as they are (supertest would serialize a Buffer as JSON).
    const r = await fetch(`${s.svc.url}/v1/hosts`, { method: 'POST', headers: { ...s.auth, 'Content-Type': 'application/json' }, body });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { detail: string }).detail).toMatch(/not valid UTF-8/);
  });

  test('numeric query parameters are bounded', async () => {
    for (const q of ['since=1e20', 'since=-1', 'since=9007199254740993', 'limit=1e9', 'since=abc']) {
      await s.api().get(`/v1/events?${q}`).set(s.auth).expect(400);
    }
    await s.api().get('/v1/hosts?pageSize=1e20').set(s.auth).expect(400);
    await s.api().get(`/v1/events?since=${Number.MAX_SAFE_INTEGER}`).set(s.auth).expect(200);
  });

  test('JSON nesting is bounded before validation (5,000 deep techniques)', async () => {
    const deep = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000);
    const r = await postRaw('/v1/hosts', `{"name":"deep","cpus":1,"memoryMiB":64,"techniques":${deep}}`).expect(400);
    expect(r.body.detail).toMatch(/nested deeper than 32/);
    await postRaw('/v1/hosts', `${'['.repeat(100_000)}${']'.repeat(100_000)}`).expect(400);
  });

  test('__proto__, constructor and prototype fields are rejected like other unknown fields', async () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const r = await postRaw('/v1/hosts', `{"name":"p","cpus":1,"memoryMiB":64,"${key}":{"x":1}}`).expect(400);
      expect(r.body.detail).toContain(`property ${key} should not exist`);
      await postRaw('/v1/hosts', `{"name":"p","cpus":1,"memoryMiB":64,"techniques":{"${key}":{"x":1}}}`).expect(400);
    }
  });

  test('assembly: 100,000 nested parentheses and an unterminated .ascii are 422 assembly errors', async () => {
    const deep = `.globl _start\n_start: li a0, ${'('.repeat(100_000)}1${')'.repeat(100_000)}\n`;
    const r = await s.api().post('/v1/images').set(s.auth).send({ name: 'deep', format: 'asm', content: deep }).expect(422);
    expect(r.body.errors[0].message).toMatch(/longer than 1024/);
    const u = await s.api().post('/v1/images').set(s.auth).send({ name: 'u', format: 'asm', content: '_start: nop\n.data\n.ascii "abc\n' }).expect(422);
    expect(u.body.errors[0].message).toMatch(/unterminated string/);
  }, 300_000);

  test('ids are lowercase UUIDs over REST as over Socket.IO: an uppercase id is a 400', async () => {
    const h = (await s.api().get('/v1/hosts').set(s.auth).expect(200)).body.items[0];
    await s.api().get(`/v1/hosts/${h.id}`).set(s.auth).expect(200);
    const r = await s.api().get(`/v1/hosts/${h.id.toUpperCase()}`).set(s.auth).expect(400);
    expect(r.body.detail).toMatch(/lowercase/);
    const b = await s.api().post('/v1/vms').set(s.auth).send({ name: 'up', hostId: h.id.toUpperCase(), vcpus: 1, memoryMiB: 16, processes: [{ imageId: imageId.toUpperCase() }] }).expect(400);
    expect(b.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['hostId', 'processes[0].imageId']);
    const sock = await s.connect();
    const ack = await sock.emitWithAck('subscribe', { subjects: [`host:${h.id.toUpperCase()}`] });
    expect(ack.subscribed).toEqual([]);
  });
});
