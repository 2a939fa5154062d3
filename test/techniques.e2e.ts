/**
 * Techniques as resources: the catalogue, configuration validation on hosts and VMs, a live
 * change on a running VM, and an experiment run from REST with its events over Socket.IO.
 */
import { BACKENDS, until, useTenantSession } from './support/service.js';
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
  const api = () => session.api();
  let auth: Record<string, string>;
  beforeAll(() => { auth = session.auth; });

  test('the catalogue lists all seven techniques with their support level; one by name; unknown is 404', async () => {
    const list = (await api().get('/v1/techniques').set(auth).expect(200)).body.items;
    expect(list.map((t: { number: number }) => t.number)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const la = (await api().get('/v1/techniques/syscallLookahead').set(auth).expect(200)).body;
    expect(la).toMatchObject({ patent: 'US20240028336A1', support: 'implemented', live: true, appliesAt: 'the next syscall' });
    expect(la.parameters.find((p: { name: string }) => p.name === 'window')).toMatchObject({ type: 'integer', default: 32, min: 1, max: 1024 });
    expect(list.filter((t: { support: string }) => t.support === 'implemented').map((t: { name: string }) => t.name)).toEqual(['umeAwareMigration', 'instanceCallInlining', 'syscallLookahead', 'callTableInlining']);
    await api().get('/v1/techniques/warpDrive').set(auth).expect(404);
  });

  test('configuration is validated against the catalogue on hosts and VMs (400 naming it, 501 when not implemented)', async () => {
    const cases: Array<[unknown, number, RegExp]> = [
      [{ warpDrive: { enabled: true } }, 400, /unknown technique 'warpDrive'/],
      [{ syscallLookahead: { windw: 3 } }, 400, /no parameter 'windw'/],
      [{ syscallLookahead: { window: 0 } }, 400, /window must be an integer from 1 to 1024/],
      [{ syscallLookahead: { enabled: 'yes' } }, 400, /enabled must be a boolean/],
      [{ protectionDomains: { enabled: true } }, 501, /not implemented/],
    ];
    for (const [techniques, status, detail] of cases) {
      const r = await api().post('/v1/hosts').set(auth).send({ name: `bad-${status}-${Math.random()}`, cpus: 1, memoryMiB: 64, techniques }).expect(status);
      expect(r.body.detail).toMatch(detail);
    }
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'tech-host', cpus: 1, memoryMiB: 128, techniques: { syscallLookahead: { window: 16 } } }).expect(201)).body;
    const img = (await api().post('/v1/images?name=loop').set(auth).set('Content-Type', 'application/octet-stream').send(syscallLoop(10)).expect(201)).body;
    await api().post('/v1/vms').set(auth).send({ name: 'v-bad', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }], techniques: { syscallLookahead: { maxChain: -1 } } }).expect(400);
  });

  test('a live change on a running VM takes effect at the next syscall and is an event; other changes are 409', async () => {
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'live-host', cpus: 1, memoryMiB: 128 }).expect(201)).body;
    const img = (await api().post('/v1/images?name=long').set(auth).set('Content-Type', 'application/octet-stream').send(syscallLoop(400_000)).expect(201)).body;
    const vm = (await api().post('/v1/vms').set(auth).send({ name: 'live', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img.id }] }).expect(201)).body;
    await api().post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    await until('running', async () => (await api().get(`/v1/vms/${vm.id}`).set(auth)).body.state === 'running');
    const before = (await api().get(`/v1/vms/${vm.id}/counters`).set(auth).expect(200)).body;
    expect(before.syscallLookahead.syscallsMerged).toBe(0);
    const patched = await api().patch(`/v1/vms/${vm.id}`).set(auth).send({ techniques: { syscallLookahead: { enabled: true } } }).expect(200);
    expect(patched.body.techniques).toEqual({ syscallLookahead: { enabled: true } });
    await until('merged syscalls', async () => {
      const c = (await api().get(`/v1/vms/${vm.id}/counters`).set(auth).expect(200)).body;
      return c.syscallLookahead.syscallsMerged > 0 ? c : undefined;
    });
    await api().patch(`/v1/vms/${vm.id}`).set(auth).send({ vcpus: 2 }).expect(409);
    await api().patch(`/v1/vms/${vm.id}`).set(auth).send({ techniques: { syscallLookahead: { window: 5000 } } }).expect(400);
    const ev = (await api().get(`/v1/events?subject=vm:${vm.id}`).set(auth).expect(200)).body.items as Ev[];
    expect(ev.find((e) => e.type === 'vm.techniques')?.data).toEqual({ changes: { syscallLookahead: { enabled: true } }, appliesAt: { syscallLookahead: 'the next syscall' } });
    await api().post(`/v1/vms/${vm.id}/stop`).set(auth).expect(202);
  }, 60_000);

  test('an experiment from REST: progress events over Socket.IO, ratios against the baseline, no divergence, persisted', async () => {
    const bad = await api().post('/v1/experiments').set(auth).send({ workload: { builtin: 'syscalls' }, variants: [{ name: 'a', techniques: {} }, { name: 'a', techniques: {} }] }).expect(400);
    expect(bad.body.detail).toMatch(/unique/);
    await api().post('/v1/experiments').set(auth).send({ workload: { builtin: 'nope' }, variants: [{ name: 'a', techniques: {} }] }).expect(400);
    const r = await api().post('/v1/experiments').set(auth).send({
      workload: { builtin: 'syscalls', argv: ['syscalls', '300'] }, vm: { memoryMiB: 16, crossingPreset: 'kpti' },
      variants: [{ name: 'off', techniques: {} }, { name: 'on', techniques: { syscallLookahead: { enabled: true } } }, { name: 'w4', techniques: { syscallLookahead: { enabled: true, window: 4 } } }],
    }).expect(202);
    const s = await session.connect();
    const events: Ev[] = [];
    s.on('event', (e: Ev, ack: () => void) => { events.push(e); ack(); });
    await new Promise((res) => s.emit('subscribe', { subjects: [`experiment:${r.body.id}`], sinceSeq: 0 }, res));
    await until('the experiment', () => events.some((e) => e.type === 'experiment.succeeded'));
    const variantEvents = events.filter((e) => e.type === 'experiment.variant');
    expect(variantEvents.map((e) => e.data.variant)).toEqual(['off', 'on', 'w4']);
    expect(variantEvents.map((e) => e.data.done)).toEqual([1, 2, 3]);
    const exp = (await api().get(`/v1/experiments/${r.body.id}`).set(auth).expect(200)).body;
    expect(exp.state).toBe('succeeded');
    const [off, on] = exp.result.variants;
    expect(off.ratios).toEqual({ cycles: 1, crossings: 1, exits: 1, instructions: 1 });
    expect(on.consoleSha256).toBe(off.consoleSha256);
    expect(exp.result.variants.every((v: { diverged: boolean }) => !v.diverged)).toBe(true);
    expect(on.ratios.crossings).toBeLessThan(1);
    expect(on.ratios.cycles).toBeLessThan(1);
    expect((await api().get('/v1/experiments').set(auth).expect(200)).body.items.map((e: { id: string }) => e.id)).toContain(r.body.id);
    expect((await api().get(`/v1/operations/${exp.operationId}`).set(auth).expect(200)).body).toMatchObject({ state: 'succeeded', progress: 1 });
  }, 90_000);
});
