/**
 * Memory errors over REST: a latent uncorrectable error in a process's page kills only that
 * process with SIGBUS when it touches the page; free frames are retired; corrected errors are only
 * counted; an error in hypervisor memory panics the host.
 */
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { pageToucher } from '../src/testing/guest-programs.js';

interface Ev { type: string; subject: string; data: Record<string, unknown> }

const toucher = (tag: string, n: number) => Buffer.from(pageToucher(tag, n));

describe.each(BACKENDS)('memory errors on $name', (backend) => {
  const session = useTenantSession(backend, 'ume');
  const api = () => session.api();

  const upload = async (name: string, elf: Buffer) => (await api().post(`/v1/images?name=${name}`).set(session.auth).set('Content-Type', 'application/octet-stream').send(elf)).body.id as string;
  const vmState = async (id: string) => (await api().get(`/v1/vms/${id}`).set(session.auth).expect(200)).body;

  test('a latent error in a process page: SIGBUS (135) for its owner only when it touches it; the VM goes on; libvirt-shaped events', async () => {
    const auth = session.auth;
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'h-ume', cpus: 2, memoryMiB: 64 }).expect(201)).body;
    const victim = await upload('victim', toucher('v', 1_000_000)); // runs until the memory error kills it
    const bystander = await upload('bystander', toucher('b', 30));
    const vm = (await api().post('/v1/vms').set(auth).send({ name: 'ume', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: victim }, { imageId: bystander }] }).expect(201)).body;
    await api().post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    await until('running', async () => (await vmState(vm.id)).state === 'running');
    const pages = await until('the victim buffer page', async () => {
      const r = (await api().get(`/v1/vms/${vm.id}/memory?owner=process:1&pageSize=100`).set(auth).expect(200)).body.items;
      return r.find((p: { guestVirtualAddress?: number }) => p.guestVirtualAddress === 0x12000) ? r : undefined;
    });
    expect(pages.every((p: { owner: string }) => p.owner === 'process:1')).toBe(true);
    const kernel = (await api().get(`/v1/vms/${vm.id}/memory?owner=kernel`).set(auth).expect(200)).body.items;
    expect(kernel.length).toBeGreaterThan(0);

    await api().post(`/v1/hosts/${host.id}/memory-errors`).set(auth).send({ kind: 'uncorrectable' }).expect(400);
    await api().post(`/v1/hosts/${host.id}/memory-errors`).set(auth).send({ kind: 'uncorrectable', vmId: vm.id, guestPhysicalAddress: 0x8000_0000, pid: 1, guestVirtualAddress: 0x12000 }).expect(400);
    const err = (await api().post(`/v1/hosts/${host.id}/memory-errors`).set(auth).send({ vmId: vm.id, pid: 1, guestVirtualAddress: 0x12000, kind: 'uncorrectable', latent: true }).expect(201)).body;
    expect(err).toMatchObject({ kind: 'uncorrectable', latent: true, state: 'latent', hit: { type: 'vm', vmId: vm.id, owner: { kind: 'process', pid: 1, va: 0x12000 } } });
    const final = await until('the VM to stop', async () => { const v = await vmState(vm.id); return v.state === 'stopped' ? v : undefined; });
    expect(final.run.processes[0]).toMatchObject({ pid: 1, signal: 7, status: 135, faultAddress: 0x12000 });
    expect(final.run.processes[1]).toMatchObject({ pid: 2, status: 0 });
    expect((await api().get(`/v1/vms/${vm.id}/console`).set(auth).expect(200)).body.stdout.split('b').length - 1).toBe(30);
    const ev = (await api().get(`/v1/events?subject=vm:${vm.id}&limit=1000`).set(auth).expect(200)).body.items as Ev[];
    expect(ev.find((e) => e.type === 'vm.memory-failure')?.data).toMatchObject({ recipient: 'guest', action: 'inject', actionRequired: true, pid: 1, guestVirtualAddress: 0x12000 });
    const injected = ev.findIndex((e) => e.type === 'vm.memory-error');
    expect(ev[injected].data).toMatchObject({ id: err.id, state: 'latent', hit: { virtualTimeNs: expect.any(Number) } });
    expect(injected).toBeLessThan(ev.findIndex((e) => e.type === 'vm.memory-failure'));
    const list = (await api().get(`/v1/hosts/${host.id}/memory-errors`).set(auth).expect(200)).body.items;
    expect(list.map((e: { id: string }) => e.id)).toEqual([err.id]);
    // The poisoned frame stays out of circulation after the VM is gone; retiring it is allowed now.
    const map = (await api().get(`/v1/hosts/${host.id}/memory-map`).set(auth).expect(200)).body;
    expect(map.runs.filter(([s]: [string]) => s === 'poisoned').map(([, n]: [string, number]) => n)).toEqual([1]);
    await api().delete(`/v1/hosts/${host.id}/memory-errors/${err.id}`).set(auth).expect(204);
    expect((await api().get(`/v1/hosts/${host.id}`).set(auth).expect(200)).body.memory).toMatchObject({ retiredFrames: 1, framesByVm: {} });
  }, 60_000);

  test('free frames are retired, corrected errors only counted, a repeat is a 409', async () => {
    const auth = session.auth;
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'h-free', cpus: 1, memoryMiB: 16 }).expect(201)).body;
    const last = 16 * 1024 * 1024 - 4096;
    const free = (await api().post(`/v1/hosts/${host.id}/memory-errors`).set(auth).send({ hostPhysicalAddress: last, kind: 'uncorrectable' }).expect(201)).body;
    expect(free).toMatchObject({ state: 'retired', hit: { type: 'free' }, frame: 4095 });
    await api().post(`/v1/hosts/${host.id}/memory-errors`).set(auth).send({ hostPhysicalAddress: last, kind: 'uncorrectable' }).expect(409);
    const corrected = (await api().post(`/v1/hosts/${host.id}/memory-errors`).set(auth).send({ hostPhysicalAddress: 0, kind: 'corrected' }).expect(201)).body;
    expect(corrected.state).toBe('corrected');
    await api().post(`/v1/hosts/${host.id}/memory-errors`).set(auth).send({ hostPhysicalAddress: 64 << 20, kind: 'uncorrectable' }).expect(400);
    const map = (await api().get(`/v1/hosts/${host.id}/memory-map`).set(auth).expect(200)).body;
    expect(map.runs).toEqual([['free', 4095], ['retired', 1]]);
    const ev = (await api().get(`/v1/events?subject=host:${host.id}`).set(auth).expect(200)).body.items as Ev[];
    expect(ev.filter((e) => e.type === 'host.memory-error').map((e) => [e.data.action, e.data.recipient])).toEqual([['ignore', 'hypervisor'], ['ignore', 'hypervisor']]);
  });

  test('an error in hypervisor memory (a G-stage table) panics the host: its VMs crash with host-panic, the host fails', async () => {
    const auth = session.auth;
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'h-panic', cpus: 1, memoryMiB: 32 }).expect(201)).body;
    const img = await upload('spin', toucher('s', 100000));
    const vm = (await api().post('/v1/vms').set(auth).send({ name: 'doomed', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img }] }).expect(201)).body;
    await api().post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    await until('running', async () => (await vmState(vm.id)).state === 'running');
    const map = (await api().get(`/v1/hosts/${host.id}/memory-map`).set(auth).expect(200)).body;
    let frame = 0;
    for (const [state, n] of map.runs as Array<[string, number]>) { if (state === 'hypervisor') break; frame += n; }
    expect(frame).toBeLessThan(map.frames);
    const err = (await api().post(`/v1/hosts/${host.id}/memory-errors`).set(auth).send({ hostPhysicalAddress: frame * 4096, kind: 'uncorrectable' }).expect(201)).body;
    expect(err).toMatchObject({ state: 'fatal', hit: { type: 'hypervisor', vmId: vm.id } });
    const crashed = await until('the VM to crash', async () => { const v = await vmState(vm.id); return v.state === 'crashed' ? v : undefined; });
    expect(crashed.stateReason).toBe('host-panic');
    expect((await api().get(`/v1/hosts/${host.id}`).set(auth).expect(200)).body.state).toBe('failed');
    await api().post(`/v1/vms/${vm.id}/reset`).set(auth).expect(200);
    await api().post(`/v1/vms/${vm.id}/start`).set(auth).expect(409);
  }, 60_000);
});
