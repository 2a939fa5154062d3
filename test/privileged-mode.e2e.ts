/**
 * Technique 6 over REST: the privileged-mode interrupt to one vCPU of a running VM
 * (POST /v1/vms/{id}/vcpus/{n}/interrupts), its validation, the counters and the
 * vm.privileged-mode events of the pmcounter workload on several vCPUs.
 */
import type { HvsimClient } from '../src/client/index.js';
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { answered, must, refused, sdk } from './support/sdk.js';

interface Ev { seq: number; type: string; subject: string; data: Record<string, unknown> }

describe.each(BACKENDS)('technique 6 (privileged mode) on $name', (backend) => {
  const session = useTenantSession(backend, 'pm');
  /** Raw HTTP only for malformed input the SDK's types forbid (an unknown interrupt type, a vCPU that is not a number). */
  const api = () => session.api();
  let auth: Record<string, string>;
  let T: HvsimClient;
  beforeAll(() => { auth = session.auth; T = sdk(session.svc.url, session.token); });
  /** The counters' privilegedMode block: the OpenAPI document's Counters schema does not name it (only `[key: string]: unknown`). */
  interface PmCounters { view: string; coalesced: number; entriesBySource: Record<string, number>; rendezvous: { count: number; totalCycles: number } }

  test('interrupts to a vCPU enter the mode (or queue); bad input is a problem and changes nothing; counters and events report it', async () => {
    const host = await answered(T.POST('/v1/hosts', { body: { name: 'pm-host', cpus: 4, memoryMiB: 256 } }), 201);
    const images = (await answered(T.GET('/v1/images', { params: { query: { builtin: 'true' } } }), 200)).items;
    const pm = images.find((i) => i.name === 'pmcounter')!;
    const vm = await answered(T.POST('/v1/vms', { body: {
      name: 'pm-vm', hostId: host.id, vcpus: 3, memoryMiB: 32,
      processes: [{ imageId: pm.id, argv: ['pmcounter', '200000'] }, { imageId: pm.id, argv: ['pmcounter', '200000'] }],
      techniques: { privilegedModeRendezvous: { enabled: true, maxQueued: 4 } },
    } }), 201);
    const path = { params: { path: { id: vm.id } } };
    const interrupt = (n: number) => T.POST('/v1/vms/{id}/vcpus/{n}/interrupts', { params: { path: { id: vm.id, n } }, body: { type: 'privileged-mode' } });
    const pmCounters = async () => (await answered(T.GET('/v1/vms/{id}/counters', path), 200)).privilegedMode as unknown as PmCounters;
    const url = `/v1/vms/${vm.id}/vcpus`;
    await refused(interrupt(0), 409);
    await answered(T.POST('/v1/vms/{id}/start', path), 202);
    await until('running', async () => (await must(T.GET('/v1/vms/{id}', path))).state === 'running');

    const bad = await api().post(`${url}/0/interrupts`).set(auth).send({ type: 'nmi' }).expect(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    await refused(interrupt(3), 404);
    await api().post(`${url}/x/interrupts`).set(auth).send({ type: 'privileged-mode' }).expect(400);
    const before = await pmCounters();
    expect(before.entriesBySource.external).toBe(0);

    const r = await answered(interrupt(2), 200);
    expect(r).toMatchObject({ vmId: vm.id, vcpu: 2, type: 'privileged-mode' });
    expect(['entered', 'queued', 'coalesced']).toContain(r.outcome);
    const c = await until('the external entry counted', async () => {
      const x = await pmCounters();
      return x.entriesBySource.external + x.coalesced > 0 && x.entriesBySource.hypercall > 0 ? x : undefined;
    });
    expect(c.view).toBe('global');
    expect(c.rendezvous.count).toBeGreaterThan(0);
    expect(c.rendezvous.totalCycles).toBeGreaterThanOrEqual(c.rendezvous.count * (4000 + 2 * 600));
    const ev = await until('vm.privileged-mode events', async () => {
      const items = (await answered(T.GET('/v1/events', { params: { query: { subject: `vm:${vm.id}`, limit: 1000 } } }), 200)).items as Ev[];
      const pmEv = items.filter((e) => e.type === 'vm.privileged-mode');
      return pmEv.some((e) => e.data.phase === 'entered') && pmEv.some((e) => e.data.phase === 'exited') ? pmEv : undefined;
    });
    expect(ev[0].data).toEqual(expect.objectContaining({ vcpu: expect.any(Number), phase: expect.any(String), virtualTimeNs: expect.any(Number) }));
    await answered(T.POST('/v1/vms/{id}/stop', path), 202);
    await until('stopped', async () => (await must(T.GET('/v1/vms/{id}', path))).state === 'stopped');
    await refused(interrupt(0), 409);
  }, 300_000); // generous: it shares the machine with the stress suite in CI
});
