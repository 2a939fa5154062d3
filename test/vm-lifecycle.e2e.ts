/**
 * VMs defined over REST really run: lifecycle through Operations, live telemetry over Socket.IO,
 * console and counters through REST, host memory accounting, exit streams for slow consumers.
 */
import type { Socket } from 'socket.io-client';
import type { HvsimClient } from '../src/client/index.js';
import { ADMIN, BACKENDS, TenantSession, until, useTenantSession } from './support/service.js';
import { answered, consoleOf, refused, sdk } from './support/sdk.js';
import { assemble } from '../src/isa/assembler.js';
import { runProgram } from '../src/runtime/run-program.js';
import { EventsGateway, EXIT_QUEUE } from '../src/api/events.gateway.js';

interface Ev { seq: number; type: string; subject: string; data: Record<string, unknown> }

/** Prints "<tag> <i>\n" `n` times with `busy` loop iterations before each line; exits with `code`. */
const printer = (tag: string, n: number, busy: number, code: number) => Buffer.from(assemble(`
.globl _start
.text
_start:
  li s2, 0
1:
  li t0, ${busy}
2:
  addi t0, t0, -1
  bnez t0, 2b
  la a1, msg
  addi t1, s2, 48
  sb t1, ${tag.length + 1}(a1)
  li a0, 1
  li a2, ${tag.length + 3}
  li a7, 64
  ecall
  addi s2, s2, 1
  li t0, ${n}
  bne s2, t0, 1b
  li a0, ${code}
  li a7, 93
  ecall
.data
msg: .ascii "${tag} ?\\n"
`).elf);
const FOREVER = Buffer.from(assemble('.globl _start\n.text\n_start:\n  addi t0, t0, 1\n  j _start\n').elf);
/**
 * Grows the heap by `bytes` and writes one word per page of it, from s0 up to s1; then `after`.
 * HOG (100 MiB, then spin) fills host memory; EXITER (4 MiB, re-touching forever with a getpid
 * per round) makes a steady stream of exits.
 */
const toucher = (bytes: number, after: string) => Buffer.from(assemble(`
.globl _start
.text
_start:
  li a0, 0
  li a7, 214
  ecall
  mv s0, a0
  mv s2, a0
  li t0, ${bytes}
  add s1, a0, t0
  mv a0, s1
  li a7, 214
  ecall
1:
  sw zero, 0(s0)
  li t0, 4096
  add s0, s0, t0
  bltu s0, s1, 1b
${after}
`).elf);
const HOG = toucher(100 << 20, '2:\n  j 2b');
const EXITER = toucher(4 << 20, '  li a7, 172\n  ecall\n  mv s0, s2\n  j 1b');

describe.each(BACKENDS)('VM lifecycle and telemetry on $name', (backend) => {
  const session = useTenantSession(backend, 'lifecycle');
  /** Raw HTTP only for the console's raw bytes and the Prometheus text of /metrics; the typed SDK (T) for the rest. */
  const api = () => session.api();
  const connect = () => session.connect();
  const sockets = session.sockets;
  let auth: Record<string, string>;
  let svc: TenantSession['svc'];
  let T: HvsimClient;
  beforeAll(() => { auth = session.auth; svc = session.svc; T = sdk(svc.url, session.token); });
  const subscribe = (s: Socket, req: unknown) => new Promise<{ subscribed: string[]; rejected: unknown[] }>((r) => s.emit('subscribe', req, r));
  const upload = async (name: string, elf: Buffer) => {
    const r = await T.POST('/v1/images', { body: { name, format: 'elf', content: elf.toString('base64') } });
    expect([200, 201]).toContain(r.response.status);
    return r.data!.id;
  };
  const vmPath = (id: string) => ({ params: { path: { id } } });
  const vmState = async (id: string) => answered(T.GET('/v1/vms/{id}', vmPath(id)), 200);
  const counters = async (id: string) => answered(T.GET('/v1/vms/{id}/counters', vmPath(id)), 200);
  const hostMemory = async (id: string) => (await answered(T.GET('/v1/hosts/{id}', vmPath(id)), 200)).memory;
  const newHost = async (name: string, cpus: number, memoryMiB: number) => answered(T.POST('/v1/hosts', { body: { name, cpus, memoryMiB } }), 201);
  const newVm = async (name: string, hostId: string, memoryMiB: number, imageId: string) =>
    answered(T.POST('/v1/vms', { body: { name, hostId, vcpus: 1, memoryMiB, processes: [{ imageId }] } }), 201);
  const act = (verb: 'start' | 'pause' | 'resume' | 'stop', id: string) => T.POST(`/v1/vms/{id}/${verb}`, vmPath(id));
  const opDone = (opId: string) => until(`operation ${opId}`, async () => {
    const o = await answered(T.GET('/v1/operations/{id}', vmPath(opId)), 200);
    return o.state === 'succeeded' || o.state === 'failed' ? o : undefined;
  });

  test('upload, create, subscribe, start: state, console and counters events; the VM stops by itself; REST shows the same bytes', async () => {
    const elf = printer('hello', 6, 3_000_000, 3);
    const want = runProgram(new Uint8Array(elf), { memoryMiB: 32 });
    const image = await upload('hello', elf);
    const host = await newHost('h1', 2, 256);
    expect(host.memory).toMatchObject({ frames: 65536, freeFrames: 65536, framesByVm: {} });
    const vm = await newVm('hello-vm', host.id, 32, image);
    const s = await connect();
    const events: Ev[] = [];
    s.on('event', (e: Ev, ack: () => void) => { events.push(e); ack(); });
    expect((await subscribe(s, { subjects: [`vm:${vm.id}`] })).subscribed).toEqual([`vm:${vm.id}`]);

    const op = await answered(act('start', vm.id), 202);
    expect(op).toMatchObject({ kind: 'vm.start', subject: `vm:${vm.id}` });
    await until('the VM to stop', () => events.find((e) => e.type === 'vm.state' && e.data.to === 'stopped'));
    expect((await opDone(op.id)).state).toBe('succeeded');

    const states = events.filter((e) => e.type === 'vm.state').map((e) => e.data.to);
    expect(states[0]).toBe('starting');
    expect(states.at(-1)).toBe('stopped');
    // The final counters (an earlier sample may predate the first console write, so only the final one must show MMIO exits).
    const final = await until('the final counters', () => events.find((e) => e.type === 'vm.counters' && e.data.final === true));
    expect(final.data.exits).toMatchObject({ mmio: expect.any(Number) });
    const consoleText = events.filter((e) => e.type === 'vm.console').map((e) => e.data.text).join('');
    expect(consoleText).toBe(want.stdout.toString());
    expect(events.find((e) => e.type === 'vm.process')?.data).toMatchObject({ pid: 1, exitCode: 3, status: 3 });
    const seqs = events.map((e) => e.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);

    const got = await vmState(vm.id);
    expect(got).toMatchObject({ state: 'stopped', stateReason: 'poweroff' });
    expect(got.run?.processes).toEqual([{ pid: 1, name: 'hello', state: 'exited', exitCode: 3, status: 3 }]);
    expect(got.run?.uptime.virtualNs).toBeGreaterThan(0);
    expect(got.run?.vcpus).toHaveLength(1);
    const c = await consoleOf(T, vm.id);
    expect(c).toMatchObject({ stdout: want.stdout.toString(), stderr: '', truncated: false });
    const raw = await api().get(`/v1/vms/${vm.id}/console?format=raw&stream=stdout`).set(auth).buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = []; res.on('data', (d: Buffer) => chunks.push(d)); res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    expect(Buffer.from(raw.body).equals(want.stdout)).toBe(true);
    const cs = await counters(vm.id);
    expect(cs).toMatchObject({ live: false, instructions: want.counters.instructions, cycles: want.counters.cycles, syscalls: { exit: 1, write: 6 } });
    expect(cs.perVcpu).toHaveLength(1);
    const metrics = (await api().get('/metrics').set('Authorization', `Bearer ${ADMIN}`).expect(200)).text;
    expect(metrics).toContain(`hvsim_vm_instructions{vm="${vm.id}",host="${host.id}"} ${want.counters.instructions}`);
    expect(metrics).toMatch(new RegExp(`hvsim_vm_exits\\{vm="${vm.id}",host="${host.id}",reason="mmio"\\} \\d+`));
    expect(await hostMemory(host.id)).toMatchObject({ freeFrames: 65536, framesByVm: {} });
    // Starting again works from stopped.
    await refused(act('pause', vm.id), 409);
  }, 600_000);

  test('ten VMs on one host at once: each prints its own output; the memory accounting returns to zero', async () => {
    const host = await newHost('h10', 4, 512);
    const vms = await Promise.all(Array.from({ length: 10 }, async (_, i) => newVm(`ten-${i}`, host.id, 16, await upload(`p${i}`, printer(`vm${i}`, 3, 200_000 * (i + 1), i)))));
    await Promise.all(vms.map((v) => answered(act('start', v.id), 202)));
    for (const [i, v] of vms.entries()) {
      const s = await until(`vm ${i}`, async () => { const b = await vmState(v.id); return b.state === 'stopped' ? b : undefined; });
      expect(s.run?.processes?.[0].status).toBe(i);
      const c = await consoleOf(T, v.id);
      expect(c.stdout).toBe([0, 1, 2].map((k) => `vm${i} ${k}\n`).join(''));
    }
    const mem = await hostMemory(host.id);
    expect(mem).toMatchObject({ freeFrames: mem.frames, framesByVm: {} });
  }, 300_000); // ten VMs of CPU work: minutes on a busy 2-core machine (90 s ran out at a load of 30)

  test('pause and resume keep the guest exact; stop of a looping guest ends it (state polled, no time limit asserted); admission is real', async () => {
    const host = await newHost('hp', 2, 128);
    const elf = printer('tick', 8, 60_000_000, 0); // long enough (about a second) to be paused while it runs
    const want = runProgram(new Uint8Array(elf), { memoryMiB: 16 });
    const image = await upload('tick', elf);
    const vm = await newVm('pausable', host.id, 16, image);
    await answered(act('start', vm.id), 202);
    await until('running', async () => (await vmState(vm.id)).state === 'running');
    const p = await answered(act('pause', vm.id), 202);
    expect((await opDone(p.id)).state).toBe('succeeded');
    expect((await vmState(vm.id)).state).toBe('paused');
    const a = (await counters(vm.id)).instructions;
    expect(a).toBeLessThan(want.counters.instructions);
    await new Promise((r) => setTimeout(r, 150));
    expect((await counters(vm.id)).instructions).toBe(a);
    await refused(act('pause', vm.id), 409);
    expect((await opDone((await answered(act('resume', vm.id), 202)).id)).state).toBe('succeeded');
    await until('stopped', async () => (await vmState(vm.id)).state === 'stopped');
    expect((await consoleOf(T, vm.id)).stdout).toBe(want.stdout.toString());
    expect((await counters(vm.id)).instructions).toBe(want.counters.instructions);

    const loopImg = await upload('forever', FOREVER);
    const loop = await newVm('loop', host.id, 16, loopImg);
    await answered(act('start', loop.id), 202);
    await until('loop running', async () => (await vmState(loop.id)).state === 'running');
    // Definitions may overcommit; a VM that no longer fits in the host's real free memory is refused with the numbers.
    const big = await newVm('too-big', host.id, 64, loopImg);
    const hog = await newVm('hog', host.id, 112, await upload('hog', HOG));
    await answered(act('start', hog.id), 202);
    await until('the hog to fill its memory', async () => {
      const m = await hostMemory(host.id);
      return (m.framesByVm[hog.id] ?? 0) > 100 * 256 || undefined;
    });
    const full = await refused(act('start', big.id), 409) as Record<string, any>;
    expect(full).toMatchObject({ requestedMiB: 64, hostId: host.id });
    expect(full.freeMiB).toBeLessThan(64);
    expect((await vmState(big.id)).state).toBe('created');
    await opDone((await answered(act('stop', hog.id), 202)).id);
    const stop = await answered(act('stop', loop.id), 202);
    await opDone(stop.id);
    // The state is recorded as the runner reports it: poll for it rather than read it once.
    await until('the looping VM to be stopped', async () => (await vmState(loop.id)).state === 'stopped', 300_000);
    expect(await vmState(loop.id)).toMatchObject({ state: 'stopped', stateReason: 'stopped' });
  }, 600_000);

  test('a slow consumer of a busy VM\'s exit stream gets sampled batches and `lagged`; queues stay bounded', async () => {
    const host = await newHost('hx', 2, 128);
    const vm = await newVm('exiter', host.id, 16, await upload('exiter', EXITER));
    const fast = await connect();
    const slow = await connect();
    const fastBatches: Array<{ vmId: string; records: Array<{ reason: string }> }> = [];
    fast.on('exits', (b: { vmId: string; records: Array<{ reason: string }> }, ack: () => void) => { fastBatches.push(b); ack(); });
    let slowBatches = 0;
    let stalled = true;
    const lagged: unknown[] = [];
    const unacked: Array<() => void> = [];
    slow.on('exits', (_b: unknown, ack: () => void) => { slowBatches++; if (stalled) unacked.push(ack); else ack(); });
    slow.on('lagged', (l: unknown) => lagged.push(l));
    expect((await subscribe(fast, { subjects: [`vm:${vm.id}`], exits: { sample: 10, maxPerSecond: 100000 } })).subscribed).toHaveLength(1);
    expect((await subscribe(slow, { subjects: [`vm:${vm.id}`], exits: { sample: 1, maxPerSecond: 100000 } })).subscribed).toHaveLength(1);
    expect((await subscribe(slow, { subjects: [`vm:${vm.id}`], exits: { sample: 0 } })).rejected).toHaveLength(1);
    await answered(act('start', vm.id), 202);
    const gateway = svc.app.get(EventsGateway);
    let maxQueued = 0;
    await until('exit batches', async () => {
      maxQueued = Math.max(maxQueued, gateway.queuedExitBatches());
      return fastBatches.length >= 20 || undefined;
    });
    expect(fastBatches.every((b) => b.vmId === vm.id && b.records.length > 0)).toBe(true);
    expect(new Set(fastBatches.flatMap((b) => b.records.map((r) => r.reason)))).toContain('gstage-fault');
    expect(slowBatches).toBe(8); // EXIT_IN_FLIGHT batches, never acknowledged
    expect(maxQueued).toBeLessThanOrEqual(EXIT_QUEUE * sockets.length);
    stalled = false;
    for (const ack of unacked.splice(0)) ack();
    await until('lagged', () => lagged.length > 0 || undefined);
    expect(lagged[0]).toMatchObject({ stream: 'exits', vmId: vm.id });
    await opDone((await answered(act('stop', vm.id), 202)).id);
  }, 600_000);
});
