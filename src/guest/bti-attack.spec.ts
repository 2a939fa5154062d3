/**
 * Branch target injection against the guest kernel's syscall dispatch: an attacker process trains
 * the BTB entry that aliases the kernel's `call_site` with the address of a gadget in kernel text;
 * the victim's next syscall is then predicted to the gadget (a speculative gadget reach) with no
 * mitigation, never with the retpoline, and never with the trampolines (direct calls).
 */
import { runProgram } from '../runtime/run-program.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { btiAttacker, getpidsThenPrint } from '../testing/guest-programs.js';

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
