/**
 * Live migration over REST between two hosts of a real server: progress over Socket.IO in order,
 * the VM finishes on the destination with the undisturbed run's output except for the processes
 * whose pages were poisoned (SIGBUS there, when they touch them); the technique off refuses known
 * poison (409) and panics the host on latent poison; injected faults fail cleanly and lose nothing.
 */
import type { Socket } from 'socket.io-client';
import type { HvsimClient } from '../src/client/index.js';
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { answered, consoleOf, refused, sdk } from './support/sdk.js';
import { builtinElf } from '../src/runtime/workloads.js';
import { HostMemory } from '../src/hypervisor/host-memory.js';
import { DEFAULT_SPEC, Vm } from '../src/runtime/vm.js';

interface Ev { seq: number; type: string; subject: string; data: Record<string, unknown> }

const MMAP_BASE = 0x4000_0000;
/**
 * p1 keeps dirtying 2 MiB (`rounds` passes: 2000 are about 0.5 s of virtual time and several
 * seconds of wall time, long enough to migrate while it runs); p2 and p3 touch 1 MiB once, sleep
 * 2 s of virtual time, then touch it twice more.
 */
const argvs = (rounds = 2000) => [['memtouch', '2', String(rounds)], ['memtouch', '1', '3', '2000'], ['memtouch', '1', '3', '2000']];
const ARGV = argvs();

/** stdout lines of an undisturbed run (sorted: how lines of different processes interleave depends on timing). */
function referenceLines(): string[] {
  const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 32, processes: ARGV.map((argv) => ({ name: 'memtouch', elf: builtinElf('memtouch'), argv, env: [], stdin: new Uint8Array() })) }, HostMemory.create(64), 1);
  let out = '';
  vm.onConsole((_p, b) => { out += Buffer.from(b).toString(); });
  vm.runToCompletion();
  return out.split('\n').filter(Boolean).sort();
}

describe.each(BACKENDS)('live migration on $name', (backend) => {
  const session = useTenantSession(backend, 'migration');
  /** Raw HTTP only for malformed migration requests (values the SDK's types forbid); the typed SDK (T) for the rest. */
  const api = () => session.api();
  const auth = () => session.auth;
  let T: HvsimClient;
  beforeAll(() => { T = sdk(session.svc.url, session.token); });
  const at = (id: string) => ({ params: { path: { id } } });
  const subscribe = (s: Socket, req: unknown) => new Promise<{ subscribed: string[] }>((r) => s.emit('subscribe', req, r));
  const vmState = async (id: string) => await answered(T.GET('/v1/vms/{id}', at(id)), 200) as Record<string, any>;
  const hostState = async (id: string) => answered(T.GET('/v1/hosts/{id}', at(id)), 200);
  const host = async (name: string) => answered(T.POST('/v1/hosts', { body: { name, cpus: 2, memoryMiB: 128 } }), 201);
  let memtouch = '';

  async function runningVm(hostId: string, name: string, techniques?: Record<string, unknown>, argv = ARGV) {
    if (!memtouch) memtouch = (await answered(T.GET('/v1/images', { params: { query: { builtin: 'true' } } }), 200)).items.find((i: { name: string }) => i.name === 'memtouch')!.id;
    const vm = await answered(T.POST('/v1/vms', { body: { name, hostId, vcpus: 1, memoryMiB: 32, processes: argv.map((a) => ({ imageId: memtouch, argv: a })), ...(techniques ? { techniques } : {}) } }), 201);
    await answered(T.POST('/v1/vms/{id}/start', at(vm.id)), 202);
    // p2 and p3 have run their first pass (their buffers are backed) and sleep.
    await until('p2 and p3 asleep', async () => {
      const v = await vmState(vm.id);
      return v.state === 'running' && v.run?.processes?.[1]?.state === 'sleeping' && v.run?.processes?.[2]?.state === 'sleeping';
    });
    return vm;
  }

  const inject = (hostId: string, vmId: string, pid: number, page: number, latent: boolean) =>
    answered(T.POST('/v1/hosts/{id}/memory-errors', { ...at(hostId), body: { vmId, pid, guestVirtualAddress: MMAP_BASE + page * 4096, kind: 'uncorrectable', latent } }), 201);
  const migrate = (vmId: string, body: Record<string, unknown>) =>
    T.POST('/v1/vms/{id}/migrations', { ...at(vmId), body: { mode: 'precopy', ...body } as { destinationHostId: string; mode: 'precopy' } });
  /** Loosely typed: `stats` is null until the migration has copied (the checks read it after it ended). */
  const migration = async (id: string) => await answered(T.GET('/v1/migrations/{id}', at(id)), 200) as Record<string, any>;

  const finished = (migrationId: string) => until('the migration to end', async () => {
    const m = await migration(migrationId);
    return ['completed', 'failed', 'cancelled'].includes(m.phase) ? m : undefined;
  }, 300_000);

  test('technique on: known and latent poison travel as metadata; the VM finishes on the destination; only the poisoned processes die (SIGBUS, after the switch-over)', async () => {
    const [a, b] = [await host('src'), await host('dst')];
    const vm = await runningVm(a.id, 'mover');
    await inject(a.id, vm.id, 2, 5, false);
    await inject(a.id, vm.id, 3, 9, true);
    const sock = await session.connect();
    const events: Ev[] = [];
    sock.on('event', (e: Ev, ack: () => void) => { events.push(e); ack(); });
    expect((await subscribe(sock, { subjects: [`vm:${vm.id}`] })).subscribed).toEqual([`vm:${vm.id}`]);

    const r = await answered(migrate(vm.id, { destinationHostId: b.id, maxDowntimeMs: 1, maxRounds: 6 }), 202);
    expect(r.migration).toMatchObject({ phase: 'pending', sourceHostId: a.id, destinationHostId: b.id, params: { umeAwareMigration: true } });
    const m = await finished(r.migration.id);
    expect(m).toMatchObject({ phase: 'completed', failureReason: null });
    expect(m.stats.errorPages).toBe(2);
    expect(m.stats.round).toBeGreaterThan(1);
    expect(m.stats.dirtyLogExits).toBeGreaterThan(0);
    expect(m.stats.destinationDigest).toBe(m.stats.sourceDigest);
    expect((await vmState(vm.id)).hostId).toBe(b.id);

    const final = await until('the VM to stop', async () => { const v = await vmState(vm.id); return v.state === 'stopped' ? v : undefined; }, 300_000);
    expect(final.run.processes.map((p: { status: number }) => p.status)).toEqual([0, 135, 135]);
    expect(final.run.processes[1].faultAddress).toBe(MMAP_BASE + 5 * 4096);
    expect(final.run.processes[2].faultAddress).toBe(MMAP_BASE + 9 * 4096);
    const out = (await consoleOf(T, vm.id)).stdout.split('\n').filter(Boolean).sort();
    const ref = referenceLines();
    // Everything of the undisturbed run, less the second and third pass of p2 and p3.
    expect(ref.length - out.length).toBe(4);
    const rest = [...ref];
    for (const l of out) { const i = rest.indexOf(l); expect(i).toBeGreaterThanOrEqual(0); rest.splice(i, 1); }

    await until('the stop to arrive over Socket.IO', () => events.some((e) => e.type === 'vm.state' && e.data.to === 'stopped'));
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    const phases = events.filter((e) => e.type === 'migration.phase').map((e) => e.data.to);
    expect(phases).toEqual(['pending', 'preparing-target', 'target-ready', 'running', 'completed']);
    const rounds = events.filter((e) => e.type === 'migration.progress').map((e) => e.data.round);
    expect(rounds).toEqual(rounds.map((_r, i) => i + 1));
    const found = events.find((e) => e.type === 'vm.memory-failure' && e.data.foundBy === 'migration-copy');
    expect(found?.data).toMatchObject({ recipient: 'hypervisor', action: 'ignore' });
    const completedAt = events.findIndex((e) => e.type === 'migration.phase' && e.data.to === 'completed');
    const sigbus = events.filter((e) => e.type === 'vm.memory-failure' && e.data.recipient === 'guest');
    expect(sigbus.map((e) => e.data.pid).sort()).toEqual([2, 3]);
    for (const e of sigbus) expect(events.indexOf(e)).toBeGreaterThan(completedAt);
    // The source's frames are free again, except the two poisoned ones, which never go back.
    const src = (await hostState(a.id)).memory;
    expect(src.framesByVm).toEqual({});
    expect(src.poisonedFrames).toBe(2);
    const errors = (await answered(T.GET('/v1/hosts/{id}/memory-errors', at(a.id)), 200)).items;
    expect(errors.map((e: { state: string }) => e.state)).toEqual(['known', 'known']);
  }, 600_000);

  test('technique off: known poison is refused with the pages named; a latent poison read by the copy panics the source host', async () => {
    const [a, b] = [await host('off-src'), await host('off-dst')];
    const off = { umeAwareMigration: { enabled: false } };
    const vm1 = await runningVm(a.id, 'known', off);
    await inject(a.id, vm1.id, 2, 5, false);
    const poisoned = await refused(migrate(vm1.id, { destinationHostId: b.id }), 409) as Record<string, unknown>;
    expect(poisoned.poisonedGuestPhysicalAddresses).toHaveLength(1);
    expect((await vmState(vm1.id)).state).toBe('running');
    await answered(T.POST('/v1/vms/{id}/stop', at(vm1.id)), 202);
    await until('vm1 stopped', async () => (await vmState(vm1.id)).state === 'stopped');

    const vm2 = await runningVm(a.id, 'latent', off);
    await inject(a.id, vm2.id, 3, 9, true);
    const r = await answered(migrate(vm2.id, { destinationHostId: b.id }), 202);
    const m = await finished(r.migration.id);
    expect(m.phase).toBe('failed');
    expect(m.failureReason).toMatch(/host-panic/);
    const v = await until('vm2 crashed', async () => { const x = await vmState(vm2.id); return x.state === 'crashed' ? x : undefined; });
    expect(v.stateReason).toBe('host-panic');
    expect((await hostState(a.id)).state).toBe('failed');
    expect((await hostState(b.id)).memory.framesByVm).toEqual({});
  }, 600_000);

  test('an experiment migrates every run at the same virtual time: the same rounds and pages each repetition, the same output as without', async () => {
    const r = await answered(T.POST('/v1/experiments', { body: {
      workload: { builtin: 'memtouch', argv: ['memtouch', '4', '60'] }, vm: { memoryMiB: 32 }, repetitions: 2,
      migration: { atVirtualMs: 5, maxDowntimeMs: 1, maxRounds: 5 },
      variants: [{ name: 'ume', techniques: {} }, { name: 'baseline', techniques: { umeAwareMigration: { enabled: false } } }],
    } }), 202);
    const exp = await until('the experiment', async () => {
      const e = await answered(T.GET('/v1/experiments/{id}', at(r.id)), 200) as Record<string, any>;
      return e.state === 'succeeded' || e.state === 'failed' ? e : undefined;
    }, 600_000);
    expect(exp.state).toBe('succeeded');
    expect(exp.spec.migration).toEqual({ atVirtualMs: 5, maxDowntimeMs: 1, maxRounds: 5, maxBandwidthMiBps: 1024 });
    for (const v of exp.result.variants) {
      expect(v.diverged).toBe(false);
      expect(v.statuses).toEqual([0]);
      const [m1, m2] = v.migrations;
      expect(m1.failed).toBeUndefined();
      expect(m1.round).toBe(5); // memtouch dirties faster than the link carries: the round limit ends pre-copy
      expect(m1.destinationDigest).toBe(m1.sourceDigest);
      const det = (m: Record<string, number>) => [m.round, m.pagesSent, m.zeroPages, m.transferred, m.dirtyLogExits, m.downtimeVirtualMs];
      expect(m2.failed).toBeUndefined();
      expect(det(m2)).toEqual(det(m1));
    }
  }, 600_000);

  test('bad requests change nothing; injected faults and a cancel fail cleanly with the VM running on the source; then it migrates', async () => {
    const [a, b] = [await host('f-src'), await host('f-dst')];
    const vm = await runningVm(a.id, 'faulty', undefined, argvs(1_000_000)); // runs until stopped
    /** Malformed on purpose (values outside the request's enums): raw HTTP. */
    const raw = (body: Record<string, unknown>) => api().post(`/v1/vms/${vm.id}/migrations`).set(auth()).send({ destinationHostId: b.id, mode: 'precopy', ...body });
    const post = (body: Record<string, unknown>) => migrate(vm.id, { destinationHostId: b.id, ...body });
    await raw({ mode: 'postcopy' }).expect(400);
    await refused(post({ destinationHostId: a.id }), 400);
    await refused(post({ destinationHostId: '00000000-0000-4000-8000-000000000000' }), 404);
    await raw({ faults: { destinationFailsAt: 'completed' } }).expect(400);
    for (const faults of [{ dropConnectionAfterPages: 50 }, { destinationFailsAt: 'preparing-target' }, { destinationFailsAt: 'target-ready' }, { destinationFailsAt: 'running' }]) {
      const r = await answered(post({ faults }), 202);
      const m = await finished(r.migration.id);
      expect([JSON.stringify(faults), m.phase]).toEqual([JSON.stringify(faults), 'failed']);
      const v = await until('the VM back to running', async () => { const x = await vmState(vm.id); return x.state === 'running' ? x : undefined; });
      expect(v.hostId).toBe(a.id);
      expect((await hostState(b.id)).memory.framesByVm).toEqual({});
    }
    const slow = await answered(post({ faults: { bandwidthMiBps: 1 } }), 202);
    await until('running phase', async () => (await migration(slow.migration.id)).phase === 'running');
    await answered(T.POST('/v1/migrations/{id}/cancel', at(slow.migration.id)), 201);
    expect((await finished(slow.migration.id)).phase).toBe('cancelled');
    await until('running again', async () => (await vmState(vm.id)).state === 'running');
    const ok = await answered(post({ maxDowntimeMs: 5 }), 202);
    expect((await finished(ok.migration.id)).phase).toBe('completed');
    const list = (await answered(T.GET('/v1/vms/{id}/migrations', at(vm.id)), 200)).items;
    expect(list.map((x: { phase: string }) => x.phase)).toEqual(['failed', 'failed', 'failed', 'failed', 'cancelled', 'completed']);
    const moved = await until('running on the destination', async () => { const v = await vmState(vm.id); return v.state === 'running' ? v : undefined; });
    expect(moved.hostId).toBe(b.id);
    expect(moved.run.processes.map((p: { state: string }) => p.state).filter((s: string) => s === 'exited')).toEqual([]);
    await answered(T.POST('/v1/vms/{id}/stop', at(vm.id)), 202);
    await until('the VM to stop', async () => (await vmState(vm.id)).state === 'stopped');
    expect((await hostState(b.id)).memory.framesByVm).toEqual({});
  }, 600_000);
});
