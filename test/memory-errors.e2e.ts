/**
 * Memory errors over REST: a latent uncorrectable error in a process's page kills only that
 * process with SIGBUS when it touches the page; free frames are retired; corrected errors are only
 * counted; an error in hypervisor memory panics the host.
 */
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { must, refused, sdk } from './support/sdk.js';
import { pageToucher } from '../src/testing/guest-programs.js';

interface Ev { type: string; subject: string; data: Record<string, unknown> }

const toucher = (tag: string, n: number) => Buffer.from(pageToucher(tag, n));

describe.each(BACKENDS)('memory errors on $name', (backend) => {
  const session = useTenantSession(backend, 'ume');
  const api = () => sdk(session.svc.url, session.token);
  const id = (i: string) => ({ params: { path: { id: i } } });

  const upload = async (name: string, elf: Buffer) => (await must(api().POST('/v1/images', { body: { name, format: 'elf', content: elf.toString('base64') } }))).id;
  const vmState = async (i: string) => must(api().GET('/v1/vms/{id}', id(i)));

  test('a latent error in a process page: SIGBUS (135) for its owner only when it touches it; the VM goes on; libvirt-shaped events', async () => {
    const host = await must(api().POST('/v1/hosts', { body: { name: 'h-ume', cpus: 2, memoryMiB: 64 } }));
    const victim = await upload('victim', toucher('v', 1_000_000)); // runs until the memory error kills it
    const bystander = await upload('bystander', toucher('b', 30));
    const vm = await must(api().POST('/v1/vms', { body: { name: 'ume', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: victim }, { imageId: bystander }] } }));
    await must(api().POST('/v1/vms/{id}/start', id(vm.id)));
    await until('running', async () => (await vmState(vm.id)).state === 'running');
    const pages = await until('the victim buffer page', async () => {
      const r = (await must(api().GET('/v1/vms/{id}/memory', { params: { path: { id: vm.id }, query: { owner: 'process:1', pageSize: 100 } } }))).items;
      return r.find((p) => p.guestVirtualAddress === 0x12000) ? r : undefined;
    });
    expect(pages.every((p) => p.owner === 'process:1')).toBe(true);
    const kernel = (await must(api().GET('/v1/vms/{id}/memory', { params: { path: { id: vm.id }, query: { owner: 'kernel' } } }))).items;
    expect(kernel.length).toBeGreaterThan(0);

    const inject = (hostId: string, body: object) => api().POST('/v1/hosts/{id}/memory-errors', { params: { path: { id: hostId } }, body: body as never });
    await refused(inject(host.id, { kind: 'uncorrectable' }), 400);
    await refused(inject(host.id, { kind: 'uncorrectable', vmId: vm.id, guestPhysicalAddress: 0x8000_0000, pid: 1, guestVirtualAddress: 0x12000 }), 400);
    const err = await must(inject(host.id, { vmId: vm.id, pid: 1, guestVirtualAddress: 0x12000, kind: 'uncorrectable', latent: true }));
    expect(err).toMatchObject({ kind: 'uncorrectable', latent: true, state: 'latent', hit: { type: 'vm', vmId: vm.id, owner: { kind: 'process', pid: 1, va: 0x12000 } } });
    const final = await until('the VM to stop', async () => { const v = await vmState(vm.id); return v.state === 'stopped' ? v : undefined; });
    expect(final.run?.processes?.[0]).toMatchObject({ pid: 1, signal: 7, status: 135, faultAddress: 0x12000 });
    expect(final.run?.processes?.[1]).toMatchObject({ pid: 2, status: 0 });
    const console = await must(api().GET('/v1/vms/{id}/console', id(vm.id))) as { stdout: string };
    expect(console.stdout.split('b').length - 1).toBe(30);
    const ev = (await must(api().GET('/v1/events', { params: { query: { subject: `vm:${vm.id}`, limit: 1000 } } }))).items as Ev[];
    expect(ev.find((e) => e.type === 'vm.memory-failure')?.data).toMatchObject({ recipient: 'guest', action: 'inject', actionRequired: true, pid: 1, guestVirtualAddress: 0x12000 });
    const injected = ev.findIndex((e) => e.type === 'vm.memory-error');
    expect(ev[injected].data).toMatchObject({ id: err.id, state: 'latent', hit: { virtualTimeNs: expect.any(Number) } });
    expect(injected).toBeLessThan(ev.findIndex((e) => e.type === 'vm.memory-failure'));
    const list = (await must(api().GET('/v1/hosts/{id}/memory-errors', id(host.id)))).items;
    expect(list.map((e) => e.id)).toEqual([err.id]);
    // The poisoned frame stays out of circulation after the VM is gone; retiring it is allowed now.
    const map = await must(api().GET('/v1/hosts/{id}/memory-map', id(host.id)));
    expect((map.runs as Array<[string, number]>).filter(([s]) => s === 'poisoned').map(([, n]) => n)).toEqual([1]);
    await must(api().DELETE('/v1/hosts/{id}/memory-errors/{errorId}', { params: { path: { id: host.id, errorId: err.id } } }));
    expect((await must(api().GET('/v1/hosts/{id}', id(host.id)))).memory).toMatchObject({ retiredFrames: 1, framesByVm: {} });
  }, 300_000);

  test('free frames are retired, corrected errors only counted, a repeat is a 409', async () => {
    const host = await must(api().POST('/v1/hosts', { body: { name: 'h-free', cpus: 1, memoryMiB: 16 } }));
    const inject = (body: object) => api().POST('/v1/hosts/{id}/memory-errors', { params: { path: { id: host.id } }, body: body as never });
    const last = 16 * 1024 * 1024 - 4096;
    const free = await must(inject({ hostPhysicalAddress: last, kind: 'uncorrectable' }));
    expect(free).toMatchObject({ state: 'retired', hit: { type: 'free' }, frame: 4095 });
    await refused(inject({ hostPhysicalAddress: last, kind: 'uncorrectable' }), 409);
    expect((await must(inject({ hostPhysicalAddress: 0, kind: 'corrected' }))).state).toBe('corrected');
    await refused(inject({ hostPhysicalAddress: 64 << 20, kind: 'uncorrectable' }), 400);
    expect((await must(api().GET('/v1/hosts/{id}/memory-map', id(host.id)))).runs).toEqual([['free', 4095], ['retired', 1]]);
    const ev = (await must(api().GET('/v1/events', { params: { query: { subject: `host:${host.id}` } } }))).items as Ev[];
    expect(ev.filter((e) => e.type === 'host.memory-error').map((e) => [e.data.action, e.data.recipient])).toEqual([['ignore', 'hypervisor'], ['ignore', 'hypervisor']]);
  });

  test('an error in hypervisor memory (a G-stage table) panics the host: its VMs crash with host-panic, the host fails', async () => {
    const host = await must(api().POST('/v1/hosts', { body: { name: 'h-panic', cpus: 1, memoryMiB: 32 } }));
    const img = await upload('spin', toucher('s', 100000));
    const vm = await must(api().POST('/v1/vms', { body: { name: 'doomed', hostId: host.id, vcpus: 1, memoryMiB: 16, processes: [{ imageId: img }] } }));
    await must(api().POST('/v1/vms/{id}/start', id(vm.id)));
    await until('running', async () => (await vmState(vm.id)).state === 'running');
    const map = await must(api().GET('/v1/hosts/{id}/memory-map', id(host.id)));
    let frame = 0;
    for (const [state, n] of map.runs as Array<[string, number]>) { if (state === 'hypervisor') break; frame += n; }
    expect(frame).toBeLessThan(map.frames);
    const err = await must(api().POST('/v1/hosts/{id}/memory-errors', { params: { path: { id: host.id } }, body: { hostPhysicalAddress: frame * 4096, kind: 'uncorrectable' } }));
    expect(err).toMatchObject({ state: 'fatal', hit: { type: 'hypervisor', vmId: vm.id } });
    const crashed = await until('the VM to crash', async () => { const v = await vmState(vm.id); return v.state === 'crashed' ? v : undefined; });
    expect(crashed.stateReason).toBe('host-panic');
    expect((await must(api().GET('/v1/hosts/{id}', id(host.id)))).state).toBe('failed');
    await must(api().POST('/v1/vms/{id}/reset', id(vm.id)));
    await refused(api().POST('/v1/vms/{id}/start', id(vm.id)), 409);
  }, 300_000);
});
