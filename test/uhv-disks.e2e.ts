/**
 * Technique 5 over REST (its maps as validated technique configuration, visible in GET, changed
 * live) and VM disks (validation, GET /v1/vms/{id}/disks/{n} with ranges while the VM runs).
 */
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { assemble } from '../src/isa/assembler.js';

/** getpid in a loop of `n`, then exit 0: runs long enough to look at. */
const loop = (n: number) => Buffer.from(assemble(`
.globl _start
.text
_start:
  li s0, ${n}
1:
  li a7, 172
  ecall
  addi s0, s0, -1
  bnez s0, 1b
  li a0, 0
  li a7, 93
  ecall
`).elf);

describe.each(BACKENDS)('technique 5 and disks on $name', (backend) => {
  const session = useTenantSession(backend, 'uhv');
  const api = () => session.api();
  let auth: Record<string, string>;
  beforeAll(() => { auth = session.auth; });

  test('the maps are technique configuration: 400 naming the field, visible in GET, changed live and merged by key; disks are validated and downloaded with ranges while the VM runs', async () => {
    const t5 = (await api().get('/v1/techniques/uhvDirectTransitions').set(auth).expect(200)).body;
    expect(t5).toMatchObject({ support: 'implemented', live: true, appliesAt: 'the next exit' });
    expect(t5.parameters.find((p: { name: string }) => p.name === 'exitRouting')).toMatchObject({ type: 'map', keys: ['mmio.console', 'mmio.power', 'mmio.block', 'hypercall'], values: ['uhv', 'khv'] });
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'uhv-host', cpus: 1, memoryMiB: 128 }).expect(201)).body;
    const img = (await api().post('/v1/images?name=uhv-loop').set(auth).set('Content-Type', 'application/octet-stream').send(loop(2_000_000)).expect(201)).body;
    const base = { hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] };
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ techniques: { uhvDirectTransitions: { fieldAccess: { gstageRoot: 'rw' } } } }, /techniques\.uhvDirectTransitions\.fieldAccess\.gstageRoot/],
      [{ techniques: { uhvDirectTransitions: { exitRouting: { 'mmio.console': 'guest' } } } }, /techniques\.uhvDirectTransitions\.exitRouting\.mmio\.console must be one of/],
      [{ disks: [{}] }, /disks\[0\] must be exactly one of/],
      [{ disks: [{ sizeMiB: 1 }, { sizeMiB: 1, imageId: img.id }] }, /disks\[1\] must be exactly one of/],
      [{ disks: [{ sizeMiB: 0 }] }, /sizeMiB/],
    ];
    for (const [extra, detail] of bad) {
      const r = await api().post('/v1/vms').set(auth).send({ name: `bad-${Math.random()}`, ...base, ...extra }).expect(400);
      expect(r.body.detail ?? JSON.stringify(r.body)).toMatch(detail);
    }
    await api().post('/v1/vms').set(auth).send({ name: 'no-image', ...base, disks: [{ imageId: '00000000-0000-4000-8000-000000000000' }] }).expect(422);

    const vm = (await api().post('/v1/vms').set(auth).send({
      name: 'uhv', ...base, disks: [{ sizeMiB: 1 }, { imageId: img.id }],
      techniques: { uhvDirectTransitions: { enabled: true, exitRouting: { hypercall: 'khv' } } },
    }).expect(201)).body;
    expect(vm.disks).toEqual([{ sizeMiB: 1 }, { imageId: img.id }]);
    expect((await api().get(`/v1/vms/${vm.id}`).set(auth).expect(200)).body.techniques).toEqual({ uhvDirectTransitions: { enabled: true, exitRouting: { hypercall: 'khv' } } });
    await api().get(`/v1/vms/${vm.id}/disks/0`).set(auth).expect(409);
    await api().post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    await until('running', async () => (await api().get(`/v1/vms/${vm.id}`).set(auth)).body.state === 'running');

    const raw = (r: { body: unknown }) => r.body as Buffer;
    const bin = (path: string, range?: string) => {
      const q = api().get(path).set(auth);
      if (range) q.set('Range', range);
      return q.buffer(true).parse((res, cb) => { const parts: Buffer[] = []; res.on('data', (c: Buffer) => parts.push(c)); res.on('end', () => cb(null, Buffer.concat(parts))); });
    };
    const empty = await bin(`/v1/vms/${vm.id}/disks/0`).expect(200);
    expect(empty.headers['content-type']).toBe('application/octet-stream');
    expect(raw(empty).length).toBe(1 << 20);
    expect(raw(empty).every((b) => b === 0)).toBe(true);
    const whole = await bin(`/v1/vms/${vm.id}/disks/1`).expect(200);
    const elf = loop(2_000_000);
    expect(raw(whole).length).toBe(Math.ceil(elf.length / 512) * 512);
    expect(raw(whole).subarray(0, elf.length).equals(elf)).toBe(true);
    const part = await bin(`/v1/vms/${vm.id}/disks/1`, 'bytes=1-4').expect(206);
    expect(part.headers['content-range']).toBe(`bytes 1-4/${raw(whole).length}`);
    expect(raw(part).equals(elf.subarray(1, 5))).toBe(true);
    await bin(`/v1/vms/${vm.id}/disks/1`, `bytes=${raw(whole).length + 10}-`).expect(416);
    await api().get(`/v1/vms/${vm.id}/disks/2`).set(auth).expect(404);

    const patched = await api().patch(`/v1/vms/${vm.id}`).set(auth).send({ techniques: { uhvDirectTransitions: { exitRouting: { 'mmio.console': 'khv' } } } }).expect(200);
    expect(patched.body.techniques.uhvDirectTransitions).toEqual({ enabled: true, exitRouting: { 'mmio.console': 'khv' } });
    await api().patch(`/v1/vms/${vm.id}`).set(auth).send({ techniques: { uhvDirectTransitions: { fieldAccess: { exitRoutingMap: 'w' } } } }).expect(400);
    await api().patch(`/v1/vms/${vm.id}`).set(auth).send({ disks: [] }).expect(409);
    const c = (await api().get(`/v1/vms/${vm.id}/counters`).set(auth).expect(200)).body;
    expect(Object.keys(c.uhv.transitionsByEdge)).toEqual(['guest->khv', 'khv->guest', 'khv->uhv', 'uhv->khv', 'guest->uhv', 'uhv->guest']);
    expect(c.uhv.block).toHaveLength(2);
    await api().post(`/v1/vms/${vm.id}/stop`).set(auth).expect(202);
    await until('stopped', async () => (await api().get(`/v1/vms/${vm.id}`).set(auth)).body.state === 'stopped');
    await api().get(`/v1/vms/${vm.id}/disks/0`).set(auth).expect(409);
  }, 120_000);
});
