/**
 * Branch target injection over REST: the built-in attacker/victim pair (workload `bti`) in one VM
 * on one vCPU. With spectreV2Mitigation none the victim's first syscall is speculated to the
 * guest kernel's gadget: the VM's counters say so and the event log has a
 * vm.speculative-gadget-reach event; with the retpoline, and with the retpoline and the
 * trampolines (techniques 2 and 4), neither. The victim prints and exits normally in every case.
 */
import { BACKENDS, until, useTenantSession } from './support/service.js';

type Ev = { type: string; data: Record<string, unknown> };

describe.each(BACKENDS)('branch target injection on $name', (backend) => {
  const session = useTenantSession(backend, 'bti');
  const api = () => session.api();

  test('a gadget reach (counter and event) with mitigation none only', async () => {
    const host = (await api().post('/v1/hosts').set(session.auth).send({ name: 'hb', cpus: 1, memoryMiB: 128 }).expect(201)).body;
    const images = (await api().get('/v1/images?builtin=true').set(session.auth).expect(200)).body.items as Array<{ id: string; name: string }>;
    const id = (name: string) => images.find((i) => i.name === name)!.id;
    const variants = [
      { name: 'none', spectreV2Mitigation: 'none', techniques: {}, reaches: 1 },
      { name: 'retpoline', spectreV2Mitigation: 'retpoline', techniques: {}, reaches: 0 },
      { name: 'trampolines', spectreV2Mitigation: 'retpoline', techniques: { callTableInlining: { enabled: true, relearnInterval: 10 }, instanceCallInlining: { enabled: true } }, reaches: 0 },
    ];
    for (const v of variants) {
      const vm = (await api().post('/v1/vms').set(session.auth).send({
        name: `bti-${v.name}`, hostId: host.id, vcpus: 1, memoryMiB: 16, spectreV2Mitigation: v.spectreV2Mitigation, techniques: v.techniques,
        processes: [{ imageId: id('btiattacker') }, { imageId: id('btivictim') }],
      }).expect(201)).body;
      await api().post(`/v1/vms/${vm.id}/start`).set(session.auth).expect(202);
      await until(`the ${v.name} VM to stop`, async () => (await api().get(`/v1/vms/${vm.id}`).set(session.auth).expect(200)).body.state === 'stopped', 240_000);
      const d = (await api().get(`/v1/vms/${vm.id}`).set(session.auth).expect(200)).body;
      expect(d.run.processes.map((p: { status: number }) => p.status)).toEqual([139, 0]);
      expect((await api().get(`/v1/vms/${vm.id}/console`).set(session.auth).expect(200)).body.stdout).toBe('victim ok\n');
      const c = (await api().get(`/v1/vms/${vm.id}/counters`).set(session.auth).expect(200)).body;
      expect(c.speculativeGadgetReaches).toBe(v.reaches);
      expect(c.btbPredictedKernelCalls).toBeGreaterThan(0);
      const events = async () => (await api().get(`/v1/events?subject=vm:${vm.id}`).set(session.auth).expect(200)).body.items as Ev[];
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
