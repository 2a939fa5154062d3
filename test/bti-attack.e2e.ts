/**
 * Branch target injection over REST: the built-in attacker/victim pair (workload `bti`) in one VM
 * on one vCPU. With spectreV2Mitigation none the victim's first syscall is speculated to the
 * guest kernel's gadget: the VM's counters say so and the event log has a
 * vm.speculative-gadget-reach event; with the retpoline, and with the retpoline and the
 * trampolines (techniques 2 and 4), neither. The victim prints and exits normally in every case.
 */
import { BACKENDS, until, useTenantSession } from './support/service.js';
import { answered, consoleOf, sdk } from './support/sdk.js';

type Ev = { type: string; data: Record<string, unknown> };

describe.each(BACKENDS)('branch target injection on $name', (backend) => {
  const session = useTenantSession(backend, 'bti');
  /** The typed SDK as the session's tenant. */
  const T = () => sdk(session.svc.url, session.token);

  test('a gadget reach (counter and event) with mitigation none only', async () => {
    const host = await answered(T().POST('/v1/hosts', { body: { name: 'hb', cpus: 1, memoryMiB: 128 } }), 201);
    const images = (await answered(T().GET('/v1/images', { params: { query: { builtin: 'true' } } }), 200)).items;
    const id = (name: string) => images.find((i) => i.name === name)!.id;
    const variants = [
      { name: 'none', spectreV2Mitigation: 'none' as const, techniques: {}, reaches: 1 },
      { name: 'retpoline', spectreV2Mitigation: 'retpoline' as const, techniques: {}, reaches: 0 },
      { name: 'trampolines', spectreV2Mitigation: 'retpoline' as const, techniques: { callTableInlining: { enabled: true, relearnInterval: 10 }, instanceCallInlining: { enabled: true } }, reaches: 0 },
    ];
    for (const v of variants) {
      const vm = await answered(T().POST('/v1/vms', { body: {
        name: `bti-${v.name}`, hostId: host.id, vcpus: 1, memoryMiB: 16, spectreV2Mitigation: v.spectreV2Mitigation, techniques: v.techniques,
        processes: [{ imageId: id('btiattacker') }, { imageId: id('btivictim') }],
      } }), 201);
      const path = { params: { path: { id: vm.id } } };
      await answered(T().POST('/v1/vms/{id}/start', path), 202);
      await until(`the ${v.name} VM to stop`, async () => (await answered(T().GET('/v1/vms/{id}', path), 200)).state === 'stopped', 240_000);
      const d = await answered(T().GET('/v1/vms/{id}', path), 200);
      expect(d.run?.processes?.map((p) => p.status)).toEqual([139, 0]);
      expect((await consoleOf(T(), vm.id)).stdout).toBe('victim ok\n');
      const c = await answered(T().GET('/v1/vms/{id}/counters', path), 200);
      expect(c.speculativeGadgetReaches).toBe(v.reaches);
      expect(c.btbPredictedKernelCalls).toBeGreaterThan(0);
      const events = async () => (await answered(T().GET('/v1/events', { params: { query: { subject: `vm:${vm.id}` } } }), 200)).items as Ev[];
      const reachEvents = async () => (await events()).filter((e) => e.type === 'vm.speculative-gadget-reach');
      if (v.reaches > 0) await until(`the ${v.name} VM's gadget-reach event`, async () => (await reachEvents()).length > 0, 240_000);
      const reaches = await reachEvents();
      if (v.reaches === 0) expect(reaches).toEqual([]);
      else {
        expect(reaches).toHaveLength(1);
        expect(reaches[0].data).toMatchObject({ reaches: 1, vcpus: [0], sites: ['call_site'], mitigation: 'none', reports: 1 });
      }
    }
  }, 300_000);
});
