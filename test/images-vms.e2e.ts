import request from 'supertest';
import type { HvsimClient } from '../src/client/index.js';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';
import { must, refused, sdk } from './support/sdk.js';
import { builtinElf } from '../src/runtime/workloads.js';
import { assemble } from '../src/isa/assembler.js';

const HELLO = `
  .globl _start
_start:
  li a0, 1
  la a1, msg
  li a2, 6
  li a7, 64
  ecall
  li a0, 0
  li a7, 93
  ecall
  .rodata
msg: .ascii "hello\\n"
`;
const ELF = Buffer.from(assemble(HELLO).elf);

describe.each(BACKENDS)('images, VM definitions and operations on $name', (backend) => {
  let svc: Awaited<ReturnType<typeof startTestService>>;
  let auth: Record<string, string>;
  let other: Record<string, string>;
  /** Raw HTTP for uploads and downloads as bytes and for malformed input; the typed SDK (A, B) for the rest. */
  const api = () => request(svc.url);
  let A: HvsimClient, B: HvsimClient;

  beforeAll(async () => {
    svc = await startTestService(backend);
    const admin = sdk(svc.url, ADMIN);
    const [a, b] = [(await must(admin.POST('/v1/tenants', { body: { name: 'a' } }))).token, (await must(admin.POST('/v1/tenants', { body: { name: 'b' } }))).token];
    auth = { Authorization: `Bearer ${a}` };
    other = { Authorization: `Bearer ${b}` };
    A = sdk(svc.url, a);
    B = sdk(svc.url, b);
  }, 300_000);

  afterAll(async () => {
    await svc?.close();
    await svc?.dropSchema();
  }, 300_000);

  test('ELF upload as bytes: metadata, same bytes return the same image, content round-trips', async () => {
    const r = await api().post('/v1/images?name=hello').set(auth).set('Content-Type', 'application/octet-stream').send(ELF).expect(201);
    expect(r.body).toMatchObject({ name: 'hello', format: 'elf', sizeBytes: ELF.length, entry: 0x10000 });
    expect(r.body.sha256).toMatch(/^[0-9a-f]{64}$/);
    const again = await api().post('/v1/images?name=again').set(auth).set('Content-Type', 'application/octet-stream').send(ELF).expect(200);
    expect(again.body.id).toBe(r.body.id);
    const content = await api().get(`/v1/images/${r.body.id}/content`).set(auth).buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    expect(Buffer.compare(content.body, ELF)).toBe(0);
    await api().get(`/v1/images/${r.body.id}`).set(other).expect(404);
  });

  test('JSON uploads: base64 ELF and assembly source (assembled on upload)', async () => {
    const asm = await api().post('/v1/images').set(auth).send({ name: 'src', format: 'asm', content: HELLO.replace('li a2, 6', 'li a2, 5') }).expect(201);
    expect(asm.body.format).toBe('asm');
    const bad = await api().post('/v1/images').set(auth).send({ name: 'bad', format: 'asm', content: '_start:\n  frob a0\n' }).expect(422);
    expect(bad.body.errors[0]).toMatchObject({ line: 2, column: 3 });
    const b64 = await api().post('/v1/images').set(auth).send({ name: 'b64', format: 'elf', content: Buffer.from(assemble(HELLO.replace('li a0, 0', 'li a0, 3')).elf).toString('base64') }).expect(201);
    expect(b64.body.format).toBe('elf');
    await api().post('/v1/images').set(auth).send({ name: 'x', format: 'elf', content: 'AAAA', extra: 1 }).expect(400);
  });

  test('malformed ELFs are 422 naming the problem and the offset', async () => {
    const post = (b: Buffer) => api().post('/v1/images').set(auth).set('Content-Type', 'application/octet-stream').send(b).expect(422);
    const trunc = await post(ELF.subarray(0, 30));
    expect(trunc.body).toMatchObject({ status: 422, offset: 30 });
    expect(trunc.body.detail).toMatch(/too short/);
    const garbage = await post(Buffer.from('this is not an ELF file at all, it is text....................'));
    expect(garbage.body.detail).toMatch(/magic/);
    const x86 = Buffer.from(ELF); x86.writeUInt16LE(62, 18);
    expect((await post(x86)).body).toMatchObject({ offset: 18, detail: expect.stringMatching(/RISC-V/) });
  });

  test('built-in workload images are listed with ?builtin=true, materialized once per tenant', async () => {
    const r = await api().get('/v1/images?builtin=true').set(auth).expect(200);
    expect(r.body.items.map((i: { name: string }) => i.name).sort()).toEqual(['blockio', 'btiattacker', 'btivictim', 'console', 'cpu', 'filewrites', 'hello', 'memtouch', 'pipereader', 'pipewriter', 'pmcounter', 'skewedmix', 'syscalls']);
    expect(r.body.items.every((i: { builtin: boolean; description: string }) => i.builtin && i.description.length > 0)).toBe(true);
    const again = await api().get('/v1/images?builtin=true').set(auth).expect(200);
    expect(again.body.items.map((i: { id: string }) => i.id)).toEqual(r.body.items.map((i: { id: string }) => i.id));
    const uploads = await api().get('/v1/images?builtin=false&pageSize=100').set(auth).expect(200);
    expect(uploads.body.items.some((i: { builtin: boolean }) => i.builtin)).toBe(false);
    const hello = r.body.items.find((i: { name: string }) => i.name === 'hello');
    const bytes = await api().get(`/v1/images/${hello.id}/content`).set(auth).buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = []; res.on('data', (c: Buffer) => chunks.push(c)); res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    expect(Buffer.from(bytes.body).equals(Buffer.from(builtinElf('hello')))).toBe(true);
    await api().get('/v1/images?builtin=maybe').set(auth).expect(400);
  });

  test('uploads over the size limit are 413', async () => {
    const r = await api().post('/v1/images').set(auth).set('Content-Type', 'application/octet-stream').send(Buffer.alloc((16 << 20) + 10)).expect(413);
    expect(r.headers['content-type']).toMatch(/problem\+json/);
  });

  test('VM definitions: placement, validation, state machine, edit rules, image and host references', async () => {
    const img = await must(A.POST('/v1/images', { body: { name: 'vmimg', format: 'elf', content: Buffer.from(assemble(HELLO.replace('li a0, 0', 'li a0, 9')).elf).toString('base64') } }));
    const vmBody = (name: string, o: object) => ({ body: { name, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }], ...o } as never });
    await refused(A.POST('/v1/vms', vmBody('v0', { memoryMiB: 32 })), 409); // no host yet
    const small = await must(A.POST('/v1/hosts', { body: { name: 'small', cpus: 2, memoryMiB: 64 } }));
    const big = await must(A.POST('/v1/hosts', { body: { name: 'big', cpus: 8, memoryMiB: 1024 } }));
    const vm = await must(A.POST('/v1/vms', vmBody('v1', { vcpus: 2, memoryMiB: 128, processes: [{ imageId: img.id, argv: ['x'] }], seed: 7 })));
    expect(vm).toMatchObject({ hostId: big.id, state: 'created', seed: 7 });
    const pinned = await must(A.POST('/v1/vms', vmBody('v2', { hostId: small.id, memoryMiB: 64 })));
    const full = await refused(A.POST('/v1/vms', vmBody('v3', { hostId: small.id, memoryMiB: 128 })), 409) as Record<string, any>;
    expect(full.hosts[0].freeMiB).toBe(64);
    expect(full.requestedMiB).toBe(128);
    const badImage = await refused(A.POST('/v1/vms', vmBody('v4', { processes: [{ imageId: '00000000-0000-4000-8000-000000000000' }] })), 422) as Record<string, any>;
    expect(badImage.imageIds).toHaveLength(1);
    const invalid = await refused(A.POST('/v1/vms', vmBody('v5', { vcpus: 0, processes: [{ imageId: 'nope' }] })), 400);
    expect(invalid.detail).toMatch(/vcpus/);
    expect(invalid.detail).toMatch(/imageId/);

    const id = (i: string) => ({ params: { path: { id: i } } });
    expect(await refused(A.POST('/v1/vms/{id}/pause', id(vm.id)), 409)).toMatchObject({ state: 'created', detail: 'cannot pause a VM that is created' });
    await refused(A.POST('/v1/vms/{id}/reset', id(vm.id)), 409);
    await refused(A.POST('/v1/vms/{id}/stop', id(vm.id)), 409);

    expect((await must(A.PATCH('/v1/vms/{id}', { ...id(vm.id), body: { vcpus: 4 } }))).vcpus).toBe(4);
    await refused(A.DELETE('/v1/images/{id}', id(img.id)), 409);
    await refused(A.DELETE('/v1/hosts/{id}', id(small.id)), 409);
    await refused(B.GET('/v1/vms/{id}', id(vm.id)), 404);
    await must(A.DELETE('/v1/vms/{id}', id(pinned.id)));
    await must(A.DELETE('/v1/vms/{id}', id(vm.id)));
    await must(A.DELETE('/v1/images/{id}', id(img.id)));
    await must(A.DELETE('/v1/hosts/{id}', id(small.id)));
    const ev = await must(A.GET('/v1/events', { params: { query: { subject: `vm:${vm.id}` } } }));
    expect(ev.items.map((e) => e.type)).toEqual(['vm.created', 'vm.updated', 'vm.deleted']);
  });

  test('operations: unknown ids are 404, listing works', async () => {
    const none = { params: { path: { id: '00000000-0000-4000-8000-000000000000' } } };
    await refused(A.GET('/v1/operations/{id}', none), 404);
    await refused(A.POST('/v1/operations/{id}/cancel', none), 404);
    expect((await must(A.GET('/v1/operations', {}))).items).toEqual([]);
  });
});
