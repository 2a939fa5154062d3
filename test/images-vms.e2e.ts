import request from 'supertest';
import { ADMIN, BACKENDS, startTestService } from './support/service.js';
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
  const api = () => request(svc.url);

  beforeAll(async () => {
    svc = await startTestService(backend);
    for (const [i, n] of ['a', 'b'].entries()) {
      const t = await api().post('/v1/tenants').set('Authorization', `Bearer ${ADMIN}`).send({ name: n }).expect(201);
      if (i === 0) auth = { Authorization: `Bearer ${t.body.token}` }; else other = { Authorization: `Bearer ${t.body.token}` };
    }
  }, 300_000); // starting or stopping a service on a busy machine

  afterAll(async () => {
    await svc?.close();
    await svc?.dropSchema();
  });

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
    expect(r.body.items.map((i: { name: string }) => i.name).sort()).toEqual(['console', 'cpu', 'filewrites', 'hello', 'memtouch', 'pipereader', 'pipewriter', 'pmcounter', 'skewedmix', 'syscalls']);
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
    const img = await api().post('/v1/images?name=vmimg').set(auth).set('Content-Type', 'application/octet-stream').send(Buffer.from(assemble(HELLO.replace('li a0, 0', 'li a0, 9')).elf)).expect(201);
    await api().post('/v1/vms').set(auth).send({ name: 'v0', vcpus: 1, memoryMiB: 32, processes: [{ imageId: img.body.id }] }).expect(409); // no host yet
    const small = await api().post('/v1/hosts').set(auth).send({ name: 'small', cpus: 2, memoryMiB: 64 }).expect(201);
    const big = await api().post('/v1/hosts').set(auth).send({ name: 'big', cpus: 8, memoryMiB: 1024 }).expect(201);
    const vm = await api().post('/v1/vms').set(auth).send({ name: 'v1', vcpus: 2, memoryMiB: 128, processes: [{ imageId: img.body.id, argv: ['x'] }], seed: 7 }).expect(201);
    expect(vm.body).toMatchObject({ hostId: big.body.id, state: 'created', seed: 7 });
    const pinned = await api().post('/v1/vms').set(auth).send({ name: 'v2', hostId: small.body.id, vcpus: 1, memoryMiB: 64, processes: [{ imageId: img.body.id }] }).expect(201);
    const full = await api().post('/v1/vms').set(auth).send({ name: 'v3', hostId: small.body.id, vcpus: 1, memoryMiB: 128, processes: [{ imageId: img.body.id }] }).expect(409);
    expect(full.body.hosts[0].freeMiB).toBe(64);
    expect(full.body.requestedMiB).toBe(128);
    const badImage = await api().post('/v1/vms').set(auth).send({ name: 'v4', vcpus: 1, memoryMiB: 16, processes: [{ imageId: '00000000-0000-4000-8000-000000000000' }] }).expect(422);
    expect(badImage.body.imageIds).toHaveLength(1);
    const invalid = await api().post('/v1/vms').set(auth).send({ name: 'v5', vcpus: 0, memoryMiB: 16, processes: [{ imageId: 'nope' }] }).expect(400);
    expect(invalid.body.detail).toMatch(/vcpus/);
    expect(invalid.body.detail).toMatch(/imageId/);

    const paused = await api().post(`/v1/vms/${vm.body.id}/pause`).set(auth).expect(409);
    expect(paused.body).toMatchObject({ state: 'created', detail: 'cannot pause a VM that is created' });
    await api().post(`/v1/vms/${vm.body.id}/reset`).set(auth).expect(409);
    await api().post(`/v1/vms/${vm.body.id}/stop`).set(auth).expect(409);

    const edited = await api().patch(`/v1/vms/${vm.body.id}`).set(auth).send({ vcpus: 4 }).expect(200);
    expect(edited.body.vcpus).toBe(4);
    await api().delete(`/v1/images/${img.body.id}`).set(auth).expect(409);
    await api().delete(`/v1/hosts/${small.body.id}`).set(auth).expect(409);
    await api().get(`/v1/vms/${vm.body.id}`).set(other).expect(404);
    await api().delete(`/v1/vms/${pinned.body.id}`).set(auth).expect(204);
    await api().delete(`/v1/vms/${vm.body.id}`).set(auth).expect(204);
    await api().delete(`/v1/images/${img.body.id}`).set(auth).expect(204);
    await api().delete(`/v1/hosts/${small.body.id}`).set(auth).expect(204);
    const ev = await api().get(`/v1/events?subject=vm:${vm.body.id}`).set(auth).expect(200);
    expect(ev.body.items.map((e: { type: string }) => e.type)).toEqual(['vm.created', 'vm.updated', 'vm.deleted']);
  });

  test('operations: unknown ids are 404, listing works', async () => {
    await api().get('/v1/operations/00000000-0000-4000-8000-000000000000').set(auth).expect(404);
    await api().post('/v1/operations/00000000-0000-4000-8000-000000000000/cancel').set(auth).expect(404);
    const list = await api().get('/v1/operations').set(auth).expect(200);
    expect(list.body.items).toEqual([]);
  });
});

