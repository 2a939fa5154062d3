/**
 * Branch target injection against the guest kernel's syscall dispatch: an attacker process trains
 * the BTB entry that aliases the kernel's `call_site` with the address of a gadget in kernel text;
 * the victim's next syscall is then predicted to the gadget (a speculative gadget reach) with no
 * mitigation, never with the retpoline, and never with the trampolines (direct calls).
 */
import { HostMemory } from '../hypervisor/host-memory.js';
import { hostMiBFor, runProgram } from '../runtime/run-program.js';
import { DEFAULT_SPEC, GadgetReach, Vm } from '../runtime/vm.js';
import { builtinElf, builtinSource, WORKLOADS } from '../runtime/workloads.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { btiAttacker, btiAttackerSource, getpidsThenPrint } from '../testing/guest-programs.js';

const btiVictim = (n: number) => getpidsThenPrint(n, 'victim ok\n', 0);
import { buildKernelText, SpectreV2Mitigation } from './kernel-text.js';

function attack(mitigation: SpectreV2Mitigation, techniques = resolveTechniques()) {
  const text = buildKernelText(mitigation);
  const { elf } = btiAttacker(text.symbols.get('call_site')!, text.symbols.get('gadget')!);
  const r = runProgram(elf, { spectreV2Mitigation: mitigation, techniques }, [btiVictim(50)]);
  expect(r.vm.processes().map((p) => p.status)).toEqual([139, 0]); // the attacker dies fetching the gadget; the victim is unharmed
  expect(r.stdout.toString()).toBe('victim ok\n');
  return r.counters.speculativeGadgetReaches;
}

describe('branch target injection on the syscall dispatch', () => {
  test('mitigation none: the victim\'s kernel indirect call is speculated to the gadget', () => {
    expect(attack('none')).toBe(1);
  });

  test('retpoline: the BTB is never consulted, no gadget reach', () => {
    expect(attack('retpoline')).toBe(0);
  });

  test('trampolines (retpoline with techniques 2 and 4): direct calls, no gadget reach', () => {
    expect(attack('retpoline', resolveTechniques({ callTableInlining: { enabled: true, relearnInterval: 10 }, instanceCallInlining: { enabled: true } }))).toBe(0);
  });

  test('without an attacker nothing reaches the gadget', () => {
    expect(runProgram(btiVictim(50), {}).counters.speculativeGadgetReaches).toBe(0);
  });
});

describe('the built-in attack (workload bti: btiattacker then btivictim) through the VM runtime', () => {
  const TRAMPOLINES = resolveTechniques({ callTableInlining: { enabled: true, relearnInterval: 10 }, instanceCallInlining: { enabled: true } });

  function run(mitigation: SpectreV2Mitigation, techniques = resolveTechniques()) {
    const w = WORKLOADS.find((x) => x.name === 'bti')!;
    const vm = new Vm({
      ...DEFAULT_SPEC, vcpus: w.vcpus, memoryMiB: 16, spectreV2Mitigation: mitigation, techniques,
      processes: w.processes.map((p) => ({ name: p.image, elf: builtinElf(p.image), argv: p.argv, env: [], stdin: new Uint8Array() })),
    }, HostMemory.create(hostMiBFor(16)), 1);
    const events: GadgetReach[] = [];
    const out: string[] = [];
    vm.onGadgetReach((e) => events.push(e));
    vm.onConsole((_p, b) => out.push(Buffer.from(b).toString()));
    expect(vm.runToCompletion()).toBe('stopped');
    expect(vm.processes().map((p) => p.status)).toEqual([139, 0]);
    expect(out.join('')).toBe('victim ok\n');
    return { events, counters: vm.counters() };
  }

  test('the committed attacker aims at this kernel text: its jump aliases call_site, its target is the gadget', () => {
    const text = buildKernelText('none');
    expect(builtinSource('btiattacker')).toContain(btiAttackerSource(text.symbols.get('call_site')!, text.symbols.get('gadget')!));
    expect(buildKernelText('retpoline').symbols.get('call_site')).toBe(text.symbols.get('call_site'));
  });

  test('mitigation none: one reach, reported as an event naming the site, and BTB-predicted kernel calls counted', () => {
    const text = buildKernelText('none');
    const r = run('none');
    expect(r.counters.speculativeGadgetReaches).toBe(1);
    expect(r.events).toEqual([{ vcpu: 0, reaches: 1, site: 'call_site', gadget: text.symbols.get('gadget')! >>> 0, mitigation: 'none', virtualTimeNs: expect.any(Number) }]);
    expect(r.counters.btbPredictedKernelCalls).toBeGreaterThanOrEqual(51); // the victim's 50 getpid and its write, at least
  });

  test.each([['retpoline', resolveTechniques()], ['trampolines', TRAMPOLINES]] as const)('%s: no reach, no event; the only BTB-predicted kernel call is the trap entry\'s to the trap gate', (_name, techniques) => {
    const r = run('retpoline', techniques);
    expect(r.counters.speculativeGadgetReaches).toBe(0);
    expect(r.events).toEqual([]);
    expect(r.counters.btbPredictedKernelCalls).toBe(1); // `exception: li t2, <trap gate>; jalr ra, 0(t2)`, once, for the attacker's fault
  });
});
