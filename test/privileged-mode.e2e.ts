/**
 * Technique 6 over REST: the privileged-mode interrupt to one vCPU of a running VM
 * (POST /v1/vms/{id}/vcpus/{n}/interrupts), its validation, the counters and the
 * vm.privileged-mode events of the pmcounter workload on several vCPUs.
 */
import { BACKENDS, until, useTenantSession } from './support/service.js';

interface Ev { seq: number; type: string; subject: string; data: Record<string, unknown> }

describe.each(BACKENDS)('technique 6 (privileged mode) on $name', (backend) => {
  const session = useTenantSession(backend, 'pm');
  const api = () => session.api();
  let auth: Record<string, string>;
  beforeAll(() => { auth = session.auth; });

  test('interrupts to a vCPU enter the mode (or queue); bad input is a problem and changes nothing; counters and events report it', async () => {
    const host = (await api().post('/v1/hosts').set(auth).send({ name: 'pm-host', cpus: 4, memoryMiB: 256 }).expect(201)).body;
    const images = (await api().get('/v1/images?builtin=true').set(auth).expect(200)).body.items as Array<{ id: string; name: string }>;
    const pm = images.find((i) => i.name === 'pmcounter')!;
    const vm = (await api().post('/v1/vms').set(auth).send({
      name: 'pm-vm', hostId: host.id, vcpus: 3, memoryMiB: 32,
      processes: [{ imageId: pm.id, argv: ['pmcounter', '200000'] }, { imageId: pm.id, argv: ['pmcounter', '200000'] }],
      techniques: { privilegedModeRendezvous: { enabled: true, maxQueued: 4 } },
    }).expect(201)).body;
    const url = `/v1/vms/${vm.id}/vcpus`;
    await api().post(`${url}/0/interrupts`).set(auth).send({ type: 'privileged-mode' }).expect(409);
    await api().post(`/v1/vms/${vm.id}/start`).set(auth).expect(202);
    await until('running', async () => (await api().get(`/v1/vms/${vm.id}`).set(auth)).body.state === 'running');

    const bad = await api().post(`${url}/0/interrupts`).set(auth).send({ type: 'nmi' }).expect(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    await api().post(`${url}/3/interrupts`).set(auth).send({ type: 'privileged-mode' }).expect(404);
    await api().post(`${url}/x/interrupts`).set(auth).send({ type: 'privileged-mode' }).expect(400);
    const before = (await api().get(`/v1/vms/${vm.id}/counters`).set(auth).expect(200)).body.privilegedMode;
    expect(before.entriesBySource.external).toBe(0);

    const r = await api().post(`${url}/2/interrupts`).set(auth).send({ type: 'privileged-mode' }).expect(200);
    expect(r.body).toMatchObject({ vmId: vm.id, vcpu: 2, type: 'privileged-mode' });
    expect(['entered', 'queued', 'coalesced']).toContain(r.body.outcome);
    const c = await until('the external entry counted', async () => {
      const x = (await api().get(`/v1/vms/${vm.id}/counters`).set(auth).expect(200)).body.privilegedMode;
      return x.entriesBySource.external + x.coalesced > 0 && x.entriesBySource.hypercall > 0 ? x : undefined;
    });
    expect(c.view).toBe('global');
    expect(c.rendezvous.count).toBeGreaterThan(0);
    expect(c.rendezvous.totalCycles).toBeGreaterThanOrEqual(c.rendezvous.count * (4000 + 2 * 600));
    const ev = await until('vm.privileged-mode events', async () => {
      const items = (await api().get(`/v1/events?subject=vm:${vm.id}&limit=1000`).set(auth).expect(200)).body.items as Ev[];
      const pmEv = items.filter((e) => e.type === 'vm.privileged-mode');
      return pmEv.some((e) => e.data.phase === 'entered') && pmEv.some((e) => e.data.phase === 'exited') ? pmEv : undefined;
    });
    expect(ev[0].data).toEqual(expect.objectContaining({ vcpu: expect.any(Number), phase: expect.any(String), virtualTimeNs: expect.any(Number) }));
    await api().post(`/v1/vms/${vm.id}/stop`).set(auth).expect(202);
    await until('stopped', async () => (await api().get(`/v1/vms/${vm.id}`).set(auth)).body.state === 'stopped');
    await api().post(`${url}/0/interrupts`).set(auth).send({ type: 'privileged-mode' }).expect(409);
  }, 300_000); // generous: it shares the machine with the stress suite in CI
});
