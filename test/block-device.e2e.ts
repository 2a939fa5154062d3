/**
 * The guest's block device over REST (technique 5's virtio-blk and the guest driver behind
 * /dev/vda): a C program that writes, seeks, reads back and fsyncs prints what qemu-riscv32
 * prints for a regular file of the disk's size; the disk downloaded after the VM stopped equals
 * the file qemu left; a restart boots from the kept disk; a long block workload paused in the
 * middle, its exit routing changed while it runs, resumed, ends with the bytes it wrote.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HvsimClient, Schemas } from '../src/client/index.js';
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { answered, consoleOf, sdk } from './support/sdk.js';
import { gccBuild, qemuRun, tempDir, toolsAvailable } from '../src/testing/toolchain.js';

const TOOLS = toolsAvailable('gcc', 'qemu');
const MIB = 1 << 20;

(TOOLS ? describe.each(BACKENDS) : describe.skip.each(BACKENDS))('the block device over REST on $name', (backend) => {
  const session = useTenantSession(backend, 'blockdev');
  /** Raw HTTP only for raw-bytes image uploads and the disks' raw bytes; the typed SDK (T) for the rest. */
  const api = () => session.api();
  const auth = () => session.auth;
  let T: HvsimClient;
  beforeAll(() => { T = sdk(session.svc.url, session.token); });
  const at = (id: string) => ({ params: { path: { id } } });
  const vmOf = async (id: string) => await answered(T.GET('/v1/vms/{id}', at(id)), 200) as Record<string, any>;
  const countersOf = async (id: string) => await answered(T.GET('/v1/vms/{id}/counters', at(id)), 200) as Record<string, any>;
  const patchVm = async (id: string, body: Schemas['UpdateVmDto']) => await answered(T.PATCH('/v1/vms/{id}', { ...at(id), body }), 200) as Record<string, any>;
  const act = (a: 'start' | 'pause' | 'resume', id: string) => answered(T.POST(`/v1/vms/{id}/${a}`, at(id)), 202);
  const newHost = (name: string) => answered(T.POST('/v1/hosts', { body: { name, cpus: 1, memoryMiB: 128 } }), 201);
  const newVm = (body: Record<string, unknown>) => answered(T.POST('/v1/vms', { body: body as any }), 201);
  const upload = async (name: string, elf: Uint8Array) =>
    (await api().post(`/v1/images?name=${name}`).set(auth()).set('Content-Type', 'application/octet-stream').send(Buffer.from(elf))
      .expect((r) => expect([200, 201]).toContain(r.status))).body.id as string;
  const bin = (path: string) => api().get(path).set(auth()).buffer(true)
    .parse((res, cb) => { const parts: Buffer[] = []; res.on('data', (c: Buffer) => parts.push(c)); res.on('end', () => cb(null, Buffer.concat(parts))); });
  const state = async (id: string) => (await vmOf(id)).state as string;
  const stdout = async (id: string) => (await consoleOf(T, id)).stdout;
  const dir = tempDir();

  test('the C program prints what qemu-riscv32 prints on a regular file; the stopped VM\'s disk is what qemu left; a restart sees it', async () => {
    const elf = gccBuild([join(process.cwd(), 'test/block/blockio.c')], join(dir, 'blockio.elf'));
    const file = join(dir, 'disk.img');
    writeFileSync(file, Buffer.alloc(MIB));
    const want = qemuRun(join(dir, 'blockio.elf'), [file]);
    const verify = qemuRun(join(dir, 'blockio.elf'), [file, 'verify']);
    expect(want.status).toBe(0);

    const host = await newHost('blk');
    const img = await upload('blockio-c', elf);
    const vm = await newVm({
      name: 'blockio', hostId: host.id, vcpus: 1, memoryMiB: 32, disks: [{ sizeMiB: 1 }],
      processes: [{ imageId: img, argv: ['blockio', '/dev/vda'] }], techniques: { uhvDirectTransitions: { enabled: true } },
    });
    await act('start', vm.id);
    await until('the program to end', async () => (await state(vm.id)) === 'stopped', 300_000);
    expect(await stdout(vm.id)).toBe(want.stdout.toString());
    const d = await vmOf(vm.id);
    expect(d.run.processes.map((p: { status: number }) => p.status)).toEqual([0]);
    const disk = (await bin(`/v1/vms/${vm.id}/disks/0`).expect(200)).body as Buffer;
    expect(disk.equals(readFileSync(file))).toBe(true);
    const c = await countersOf(vm.id);
    expect(c.uhv.block[0].errors).toBe(0);
    expect(c.uhv.block[0].flushes).toBe(2);
    expect(c.syscalls.pwrite64).toBe(3);

    // The next run boots from the kept disk: reading it back gives qemu's digest of the file.
    await patchVm(vm.id, { processes: [{ imageId: img, argv: ['blockio', '/dev/vda', 'verify'] }] });
    await act('start', vm.id);
    await until('the verifying run to end', async () => (await state(vm.id)) === 'stopped', 300_000);
    expect(await stdout(vm.id)).toBe(verify.stdout.toString());
    expect(((await bin(`/v1/vms/${vm.id}/disks/0`).expect(200)).body as Buffer).equals(readFileSync(file))).toBe(true);
    // New disks start from their bases: what the old ones kept is dropped.
    await patchVm(vm.id, { disks: [{ sizeMiB: 1 }] });
    expect(((await bin(`/v1/vms/${vm.id}/disks/0`).expect(200)).body as Buffer).equals(Buffer.alloc(MIB))).toBe(true);
  }, 600_000);

  test('the built-in block workload as an experiment from REST gets its disk: same output, fewer transitions with technique 5', async () => {
    const r = await answered(T.POST('/v1/experiments', { body: {
      workload: { builtin: 'blockio', argv: ['blockio', '1'] }, vm: { memoryMiB: 16 },
      variants: [{ name: 'off', techniques: {} }, { name: 'on', techniques: { uhvDirectTransitions: { enabled: true } } }],
    } }), 202);
    const experiment = async () => await answered(T.GET('/v1/experiments/{id}', at(r.id)), 200) as Record<string, any>;
    await until('the experiment', async () => ['succeeded', 'failed'].includes((await experiment()).state), 300_000);
    const exp = await experiment();
    expect(exp.state).toBe('succeeded');
    const [off, on] = exp.result.variants;
    expect(on.diverged).toBe(false);
    expect(off.statuses).toEqual([0]);
    expect(off.counters.uhv.block[0]).toMatchObject({ bytesWritten: MIB, bytesRead: MIB, errors: 0 });
    expect(on.ratios.transitions).toBeLessThan(0.5);
  }, 300_000);

  test('a long block workload paused in the middle and its block exits rerouted while it runs ends with the bytes it wrote', async () => {
    const mib = 24;
    const elf = new Uint8Array(readFileSync(join(process.cwd(), 'workloads/bin/blockio.elf')));
    const file = join(dir, 'long.img');
    writeFileSync(file, Buffer.alloc(mib * MIB));
    const want = qemuRun(join(process.cwd(), 'workloads/bin/blockio.elf'), [String(mib), file]);
    expect(want.stdout.toString()).toMatch(/mismatches 00000000/);

    const host = await newHost('blk-long');
    const img = await upload('blockio', elf);
    const vm = await newVm({
      name: 'blockio-long', hostId: host.id, vcpus: 1, memoryMiB: 32, disks: [{ sizeMiB: mib }],
      processes: [{ imageId: img, argv: ['blockio', String(mib)] }], techniques: { uhvDirectTransitions: { enabled: true } },
    });
    await act('start', vm.id);
    await until('running', async () => (await state(vm.id)) === 'running');
    // 24 MiB through the disk takes seconds of the emulator's time: the pause lands in the middle.
    await act('pause', vm.id);
    await until('paused', async () => (await state(vm.id)) === 'paused');
    const mid = (await bin(`/v1/vms/${vm.id}/disks/0`).expect(200)).body as Buffer;
    expect(mid.length).toBe(mib * MIB);
    await act('resume', vm.id);
    await until('resumed', async () => (await state(vm.id)) !== 'paused');
    // The catalogue says the maps change live, at the next exit: block exits go through the KHV from here on.
    const live = await patchVm(vm.id, { techniques: { uhvDirectTransitions: { exitRouting: { 'mmio.block': 'khv' } } } });
    expect(live.techniques.uhvDirectTransitions).toEqual({ enabled: true, exitRouting: { 'mmio.block': 'khv' } });
    expect(await state(vm.id)).toBe('running');
    await until('the workload to end', async () => (await state(vm.id)) === 'stopped', 300_000);
    expect(await stdout(vm.id)).toBe(want.stdout.toString());
    expect(((await bin(`/v1/vms/${vm.id}/disks/0`).expect(200)).body as Buffer).equals(readFileSync(file))).toBe(true);
    const e = (await countersOf(vm.id)).uhv.transitionsByEdge;
    expect(e['guest->uhv']).toBeGreaterThan(0);
    expect(e['khv->uhv']).toBeGreaterThan(0);
  }, 600_000);
});
