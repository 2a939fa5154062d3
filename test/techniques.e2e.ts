/**
 * Techniques as resources: the catalogue, configuration validation on hosts and VMs, a live
 * change on a running VM, and an experiment run from REST with its events over Socket.IO;
 * technique 5's maps as configuration and VM disks (GET /v1/vms/{id}/disks/{n} with ranges).
 */
import type { HvsimClient, Schemas } from '../src/client/index.js';
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { answered, refused, sdk } from './support/sdk.js';
import { assemble } from '../src/isa/assembler.js';

interface Ev { seq: number; type: string; subject: string; data: Record<string, unknown> }

/** getpid in a loop of `n`, with a little ALU work between syscalls, then exit 0. */
const syscallLoop = (n: number) => Buffer.from(assemble(`
.globl _start
.text
_start:
  li s0, ${n}
1:
  li a7, 172
  ecall
  addi s1, s1, 3
  xor s2, s2, s1
  li a7, 124
  ecall
  addi s0, s0, -1
  bnez s0, 1b
  li a0, 0
  li a7, 93
  ecall
`).elf);

describe.each(BACKENDS)('techniques and experiments on $name', (backend) => {
  const session = useTenantSession(backend, 'tech');
  /** Raw HTTP only for raw-bytes image uploads and the disks' raw bytes with Range headers; the typed SDK (T) for the rest. */
  const api = () => session.api();
  let auth: Record<string, string>;
  let T: HvsimClient;
  beforeAll(() => { auth = session.auth; T = sdk(session.svc.url, session.token); });
  const at = (id: string) => ({ params: { path: { id } } });
  const vmOf = async (id: string) => await answered(T.GET('/v1/vms/{id}', at(id)), 200) as Record<string, any>;
  const stateOf = async (id: string) => (await T.GET('/v1/vms/{id}', at(id))).data?.state;
  const countersOf = async (id: string) => await answered(T.GET('/v1/vms/{id}/counters', at(id)), 200) as Record<string, any>;
  const patchVm = (id: string, body: Schemas['UpdateVmDto']) => T.PATCH('/v1/vms/{id}', { ...at(id), body });
  const act = (a: 'start' | 'stop' | 'pause' | 'resume', id: string) => answered(T.POST(`/v1/vms/{id}/${a}`, at(id)), 202);
  const newHost = (body: { name: string; cpus: number; memoryMiB: number; techniques?: Record<string, unknown> }) => answered(T.POST('/v1/hosts', { body }), 201);
  const newVm = (body: Record<string, unknown>) => T.POST('/v1/vms', { body: body as any });

  test('the catalogue lists all seven techniques with their support level; one by name; unknown is 404', async () => {
    const list = (await answered(T.GET('/v1/techniques', {}), 200)).items;
    expect(list.map((t: { number: number }) => t.number)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const la = await answered(T.GET('/v1/techniques/{name}', { params: { path: { name: 'syscallLookahead' } } }), 200) as Record<string, any>;
    expect(la).toMatchObject({ patent: 'US20240028336A1', support: 'implemented', live: true, appliesAt: 'the next syscall' });
    expect(la.parameters.find((p: { name: string }) => p.name === 'window')).toMatchObject({ type: 'integer', default: 32, min: 1, max: 1024 });
    expect(list.filter((t: { support: string }) => t.support === 'implemented').map((t: { name: string }) => t.name)).toEqual(['umeAwareMigration', 'instanceCallInlining', 'syscallLookahead', 'callTableInlining', 'uhvDirectTransitions', 'privilegedModeRendezvous', 'protectionDomains']);
    await refused(T.GET('/v1/techniques/{name}', { params: { path: { name: 'warpDrive' } } }), 404);
  });

  test('configuration is validated against the catalogue on hosts and VMs (400 naming it)', async () => {
    const cases: Array<[Record<string, unknown>, number, RegExp]> = [
      [{ warpDrive: { enabled: true } }, 400, /unknown technique 'warpDrive'/],
      [{ syscallLookahead: { windw: 3 } }, 400, /no parameter 'windw'/],
      [{ syscallLookahead: { window: 0 } }, 400, /window must be an integer from 1 to 1024/],
      [{ syscallLookahead: { enabled: 'yes' } }, 400, /enabled must be a boolean/],
    ];
    for (const [techniques, status, detail] of cases) {
      const r = await refused(T.POST('/v1/hosts', { body: { name: `bad-${status}-${Math.random()}`, cpus: 1, memoryMiB: 64, techniques } }), status);
      expect(r.detail).toMatch(detail);
    }
    const host = await newHost({ name: 'tech-host', cpus: 1, memoryMiB: 128, techniques: { syscallLookahead: { window: 16 } } });
    const img = (await api().post('/v1/images?name=loop').set(auth).set('Content-Type', 'application/octet-stream').send(syscallLoop(10)).expect(201)).body;
    await refused(newVm({ name: 'v-bad', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }], techniques: { syscallLookahead: { maxChain: -1 } } }), 400);
  });

  test('a live change on a running VM takes effect at the next syscall and is an event; other changes are 409', async () => {
    const host = await newHost({ name: 'live-host', cpus: 1, memoryMiB: 128 });
    const img = (await api().post('/v1/images?name=long').set(auth).set('Content-Type', 'application/octet-stream').send(syscallLoop(400_000)).expect(201)).body;
    const vm = await answered(newVm({ name: 'live', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] }), 201);
    await act('start', vm.id);
    await until('running', async () => (await stateOf(vm.id)) === 'running');
    const before = await countersOf(vm.id);
    expect(before.syscallLookahead.syscallsMerged).toBe(0);
    const patched = await answered(patchVm(vm.id, { techniques: { syscallLookahead: { enabled: true } } }), 200);
    expect(patched.techniques).toEqual({ syscallLookahead: { enabled: true } });
    await until('merged syscalls', async () => {
      const c = await countersOf(vm.id);
      return c.syscallLookahead.syscallsMerged > 0 ? c : undefined;
    });
    await refused(patchVm(vm.id, { vcpus: 2 }), 409);
    await refused(patchVm(vm.id, { techniques: { syscallLookahead: { window: 5000 } } }), 400);
    const ev = (await answered(T.GET('/v1/events', { params: { query: { subject: `vm:${vm.id}` } } }), 200)).items as Ev[];
    expect(ev.find((e) => e.type === 'vm.techniques')?.data).toEqual({ changes: { syscallLookahead: { enabled: true } }, appliesAt: { syscallLookahead: 'the next syscall' } });
    await act('stop', vm.id);
  }, 300_000);

  test('an experiment from REST: progress events over Socket.IO, ratios against the baseline, no divergence, persisted', async () => {
    const bad = await refused(T.POST('/v1/experiments', { body: { workload: { builtin: 'syscalls' }, variants: [{ name: 'a', techniques: {} }, { name: 'a', techniques: {} }] } }), 400);
    expect(bad.detail).toMatch(/unique/);
    await refused(T.POST('/v1/experiments', { body: { workload: { builtin: 'nope' }, variants: [{ name: 'a', techniques: {} }] } }), 400);
    const r = await answered(T.POST('/v1/experiments', { body: {
      workload: { builtin: 'syscalls', argv: ['syscalls', '300'] }, vm: { memoryMiB: 16, crossingPreset: 'kpti' },
      variants: [{ name: 'off', techniques: {} }, { name: 'on', techniques: { syscallLookahead: { enabled: true } } }, { name: 'w4', techniques: { syscallLookahead: { enabled: true, window: 4 } } }],
    } }), 202);
    const s = await session.connect();
    const events: Ev[] = [];
    s.on('event', (e: Ev, ack: () => void) => { events.push(e); ack(); });
    await new Promise((res) => s.emit('subscribe', { subjects: [`experiment:${r.id}`], sinceSeq: 0 }, res));
    await until('the experiment', () => events.some((e) => e.type === 'experiment.succeeded'));
    const variantEvents = events.filter((e) => e.type === 'experiment.variant');
    expect(variantEvents.map((e) => e.data.variant)).toEqual(['off', 'on', 'w4']);
    expect(variantEvents.map((e) => e.data.done)).toEqual([1, 2, 3]);
    const exp = await answered(T.GET('/v1/experiments/{id}', at(r.id)), 200) as Record<string, any>;
    expect(exp.state).toBe('succeeded');
    const [off, on] = exp.result.variants;
    expect(off.ratios).toEqual({ cycles: 1, crossings: 1, exits: 1, transitions: 1, instructions: 1 });
    expect(on.consoleSha256).toBe(off.consoleSha256);
    expect(exp.result.variants.every((v: { diverged: boolean }) => !v.diverged)).toBe(true);
    expect(on.ratios.crossings).toBeLessThan(1);
    expect(on.ratios.cycles).toBeLessThan(1);
    expect((await answered(T.GET('/v1/experiments', {}), 200)).items.map((e: { id: string }) => e.id)).toContain(r.id);
    expect(await answered(T.GET('/v1/operations/{id}', at(exp.operationId)), 200)).toMatchObject({ state: 'succeeded', progress: 1 });
  }, 600_000);

  test('the maps are technique configuration: 400 naming the field, visible in GET, changed live and merged by key; disks are validated and downloaded with ranges while the VM runs', async () => {
    const t5 = await answered(T.GET('/v1/techniques/{name}', { params: { path: { name: 'uhvDirectTransitions' } } }), 200) as Record<string, any>;
    expect(t5).toMatchObject({ support: 'implemented', live: true, appliesAt: 'the next exit' });
    expect(t5.parameters.find((p: { name: string }) => p.name === 'exitRouting')).toMatchObject({ type: 'map', keys: ['mmio.console', 'mmio.power', 'mmio.block', 'hypercall'], values: ['uhv', 'khv'] });
    const host = await newHost({ name: 'uhv-host', cpus: 1, memoryMiB: 128 });
    const img = (await api().post('/v1/images?name=uhv-loop').set(auth).set('Content-Type', 'application/octet-stream').send(syscallLoop(1_000_000)).expect(201)).body;
    const base = { hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] };
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ techniques: { uhvDirectTransitions: { fieldAccess: { gstageRoot: 'rw' } } } }, /techniques\.uhvDirectTransitions\.fieldAccess\.gstageRoot/],
      [{ techniques: { uhvDirectTransitions: { exitRouting: { 'mmio.console': 'guest' } } } }, /techniques\.uhvDirectTransitions\.exitRouting\.mmio\.console must be one of/],
      [{ disks: [{}] }, /disks\[0\] must be exactly one of/],
      [{ disks: [{ sizeMiB: 1 }, { sizeMiB: 1, imageId: img.id }] }, /disks\[1\] must be exactly one of/],
      [{ disks: [{ sizeMiB: 0 }] }, /sizeMiB/],
    ];
    for (const [extra, detail] of bad) {
      const r = await refused(newVm({ name: `bad-${Math.random()}`, ...base, ...extra }), 400);
      expect(r.detail ?? JSON.stringify(r)).toMatch(detail);
    }
    await refused(newVm({ name: 'no-image', ...base, disks: [{ imageId: '00000000-0000-4000-8000-000000000000' }] }), 422);

    const vm = await answered(newVm({
      name: 'uhv', ...base, disks: [{ sizeMiB: 1 }, { imageId: img.id }],
      techniques: { uhvDirectTransitions: { enabled: true, exitRouting: { hypercall: 'khv' } } },
    }), 201);
    expect(vm.disks).toEqual([{ sizeMiB: 1 }, { imageId: img.id }]);
    expect((await vmOf(vm.id)).techniques).toEqual({ uhvDirectTransitions: { enabled: true, exitRouting: { hypercall: 'khv' } } });
    const raw = (r: { body: unknown }) => r.body as Buffer;
    const bin = (path: string, range?: string) => {
      const q = api().get(path).set(auth);
      if (range) q.set('Range', range);
      return q.buffer(true).parse((res, cb) => { const parts: Buffer[] = []; res.on('data', (c: Buffer) => parts.push(c)); res.on('end', () => cb(null, Buffer.concat(parts))); });
    };
    // Before its first run, a disk is its base.
    expect(raw(await bin(`/v1/vms/${vm.id}/disks/0`).expect(200)).equals(Buffer.alloc(1 << 20))).toBe(true);
    await act('start', vm.id);
    await until('running', async () => (await stateOf(vm.id)) === 'running');

    const empty = await bin(`/v1/vms/${vm.id}/disks/0`).expect(200);
    expect(empty.headers['content-type']).toBe('application/octet-stream');
    expect(raw(empty).length).toBe(1 << 20);
    expect(raw(empty).every((b) => b === 0)).toBe(true);
    const whole = await bin(`/v1/vms/${vm.id}/disks/1`).expect(200);
    const elf = syscallLoop(1_000_000);
    expect(raw(whole).length).toBe(Math.ceil(elf.length / 512) * 512);
    expect(raw(whole).subarray(0, elf.length).equals(elf)).toBe(true);
    const part = await bin(`/v1/vms/${vm.id}/disks/1`, 'bytes=1-4').expect(206);
    expect(part.headers['content-range']).toBe(`bytes 1-4/${raw(whole).length}`);
    expect(raw(part).equals(elf.subarray(1, 5))).toBe(true);
    const unsatisfiable = await bin(`/v1/vms/${vm.id}/disks/1`, `bytes=${raw(whole).length + 10}-`).expect(416);
    expect(unsatisfiable.headers['content-range']).toBe(`bytes */${raw(whole).length}`);
    await refused(T.GET('/v1/vms/{id}/disks/{n}', { params: { path: { id: vm.id, n: 2 } } }), 404);
    // Paused, the disk is still there, unchanged; resumed, too.
    await act('pause', vm.id);
    await until('paused', async () => (await stateOf(vm.id)) === 'paused');
    expect(raw(await bin(`/v1/vms/${vm.id}/disks/1`).expect(200)).equals(raw(whole))).toBe(true);
    await act('resume', vm.id);
    await until('resumed', async () => (await stateOf(vm.id)) === 'running');
    expect(raw(await bin(`/v1/vms/${vm.id}/disks/1`).expect(200)).equals(raw(whole))).toBe(true);

    const patched = await answered(patchVm(vm.id, { techniques: { uhvDirectTransitions: { exitRouting: { 'mmio.console': 'khv' } } } }), 200);
    expect(patched.techniques.uhvDirectTransitions).toEqual({ enabled: true, exitRouting: { 'mmio.console': 'khv' } });
    await refused(patchVm(vm.id, { techniques: { uhvDirectTransitions: { fieldAccess: { exitRoutingMap: 'w' } } } }), 400);
    await refused(patchVm(vm.id, { disks: [] }), 409);
    const c = await countersOf(vm.id);
    expect(Object.keys(c.uhv.transitionsByEdge)).toEqual(['guest->khv', 'khv->guest', 'khv->uhv', 'uhv->khv', 'guest->uhv', 'uhv->guest']);
    expect(c.uhv.block).toHaveLength(2);
    await act('stop', vm.id);
    await until('stopped', async () => (await stateOf(vm.id)) === 'stopped');
    // Stopped, the disk is kept (test/block-device.e2e.ts checks content a guest wrote).
    expect(raw(await bin(`/v1/vms/${vm.id}/disks/1`).expect(200)).equals(raw(whole))).toBe(true);
  }, 600_000);
});
