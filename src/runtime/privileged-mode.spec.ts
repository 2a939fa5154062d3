/**
 * Technique 6 on whole VMs: the rendezvous invariants under random interrupt storms (fast-check,
 * fixed seed), the handler ABI, pmret outside the mode, and both views.
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { assemble } from '../isa/assembler.js';
import { HostMemory } from '../hypervisor/host-memory.js';
import { PmEvent } from '../hypervisor/privileged-mode.js';
import { sealMac } from '../hypervisor/privileged-handler.js';
import { RAM_BASE } from '../hypervisor/platform.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { Ctr } from '../uarch/costs.js';
import { Engine } from '../cpu/hart.js';
import { builtinElf } from './workloads.js';
import { DEFAULT_SPEC, Vm } from './vm.js';

type Op = { kind: 'alu'; n: number } | { kind: 'pm' } | { kind: 'doorbell'; vcpu: number } | { kind: 'probe' } | { kind: 'yield' };

/** A user program doing `ops`; it exits with the number of checks that failed (counter not increasing, a probe that read the key). */
function program(ops: Op[]): Uint8Array {
  const body = ops.map((o) => {
    switch (o.kind) {
      case 'alu': return `  li t0, ${o.n}\n1:\n  addi t0, t0, -1\n  bnez t0, 1b`;
      case 'pm': return '  li a0, 0\n  li a1, 0\n  li a7, 500\n  ecall\n  bltu s1, a0, 1f\n  addi s2, s2, 1\n1:\n  mv s1, a0';
      case 'doorbell': return `  li a0, ${o.vcpu}\n  li a7, 502\n  ecall`;
      case 'probe': return '  li a7, 501\n  ecall\n  li t1, -1\n  beq a0, t1, 1f\n  addi s2, s2, 1\n1:';
      case 'yield': return '  li a7, 124\n  ecall';
    }
  }).join('\n');
  return assemble(`.globl _start\n.text\n_start:\n  li s1, 0\n  li s2, 0\n${body}\n  mv a0, s2\n  li a7, 93\n  ecall\n`).elf;
}

interface Case { vcpus: number; global: boolean; programs: Op[][]; external: Array<{ afterQuanta: number; vcpu: number }> }

interface Outcome {
  console: string; statuses: unknown[]; events: PmEvent[]; counters: unknown; violations: string[]; requests: number; probes: number;
}

function run(c: Case, engine: Engine): Outcome {
  const host = HostMemory.create(128);
  const vm = new Vm({
    ...DEFAULT_SPEC, engine, vcpus: c.vcpus, memoryMiB: 16, seed: 7,
    techniques: resolveTechniques({ privilegedModeRendezvous: { enabled: c.global, maxQueued: 4 } }),
    processes: c.programs.map((ops, i) => ({ name: `p${i}`, elf: program(ops), argv: [`p${i}`], env: [], stdin: new Uint8Array() })),
  }, host, 1);
  let console = '';
  vm.onConsole((_p, b) => { console += Buffer.from(b).toString(); });
  const events: PmEvent[] = [];
  const violations: string[] = [];
  const inMode = new Set<number>();
  let snapshot: number[] = [];
  const instructions = () => vm.vcpus.map((v) => v.hart.ctr[Ctr.Instructions]);
  vm.onPrivilegedMode((e) => {
    events.push(e);
    if (e.phase === 'entered') {
      if (c.global && inMode.size > 0) violations.push(`vCPU ${e.vcpu} entered while ${[...inMode]} in the mode`);
      inMode.add(e.vcpu);
      if (c.global) {
        if (!vm.pm.regionMapped()) violations.push('entered without the region mapped');
        for (const v of vm.vcpus) if (v.id !== e.vcpu && !vm.pm.isStopped(v.id)) violations.push(`vCPU ${v.id} not stopped when ${e.vcpu} entered`);
        snapshot = instructions();
      }
    } else if (e.phase === 'exited') {
      inMode.delete(e.vcpu);
      if (c.global) {
        const now = instructions();
        vm.vcpus.forEach((v) => { if (v.id !== e.vcpu && now[v.id] !== snapshot[v.id]) violations.push(`vCPU ${v.id} retired ${now[v.id] - snapshot[v.id]} instructions while ${e.vcpu} was in the mode`); });
        if (vm.pm.regionMapped()) violations.push('region still mapped after exit');
      } else if (vm.pm.regionMapped()) violations.push('the per-vcpu view mapped the region in the VM\'s table');
    }
  });
  let quanta = 0, requests = 0;
  const external = [...c.external].sort((a, b) => a.afterQuanta - b.afterQuanta);
  for (let guard = 0; vm.state === 'running' && guard < 20_000; guard++) {
    while (external.length > 0 && external[0].afterQuanta <= quanta) {
      vm.interruptPrivilegedMode(external.shift()!.vcpu % c.vcpus);
      requests++;
    }
    vm.run(1);
    quanta++;
    if (vm.state === 'running' && inMode.size === 0 && vm.pm.regionMapped()) violations.push('region mapped with nobody in the mode');
  }
  const pm = vm.counters().privilegedMode;
  for (const p of c.programs) for (const o of p) if (o.kind === 'pm' || o.kind === 'doorbell') requests++;
  const probes = c.programs.flat().filter((o) => o.kind === 'probe').length;
  if (vm.state !== 'stopped' || vm.reason !== 'poweroff') violations.push(`VM ${vm.state} (${vm.reason})`);
  // (In the per-vCPU view the others keep running, so the guest may power off while a vCPU is in the mode.)
  if ((c.global && pm.inMode.length !== 0) || vm.vcpus.some((v) => vm.pm.isStopped(v.id))) violations.push('a vCPU never resumed');
  if (pm.regionFaults !== probes) violations.push(`${pm.regionFaults} region faults reported for ${probes} probes`);
  if (pm.entries + pm.coalesced + pm.dropped !== requests) violations.push(`${requests} requests but ${pm.entries} entries + ${pm.coalesced} coalesced + ${pm.dropped} dropped`);
  return { console, statuses: vm.processes().map((p) => p.status), events, counters: vm.counters(), violations, requests, probes };
}

const op = (vcpus: number): fc.Arbitrary<Op> => fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 400 }).map((n): Op => ({ kind: 'alu', n })), weight: 3 },
  { arbitrary: fc.constant<Op>({ kind: 'pm' }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: vcpus - 1 }).map((vcpu): Op => ({ kind: 'doorbell', vcpu })), weight: 2 },
  { arbitrary: fc.constant<Op>({ kind: 'probe' }), weight: 1 },
  { arbitrary: fc.constant<Op>({ kind: 'yield' }), weight: 1 },
);

const storm: fc.Arbitrary<Case> = fc.integer({ min: 2, max: 8 }).chain((vcpus) => fc.record({
  vcpus: fc.constant(vcpus),
  global: fc.boolean(),
  programs: fc.array(fc.array(op(vcpus), { minLength: 1, maxLength: 24 }), { minLength: 1, maxLength: vcpus }),
  external: fc.array(fc.record({ afterQuanta: fc.integer({ min: 0, max: 40 }), vcpu: fc.integer({ min: 0, max: 7 }) }), { maxLength: 12 }),
}));

describe('technique 6: privileged mode on multi-vCPU VMs', () => {
  test('random interrupt storms on 2-8 vCPUs: one vCPU in the mode, no other runs while the region is mapped, region accesses outside fault and are reported, all resume; the same on both engines', () => {
    fc.assert(fc.property(storm, (c) => {
      const a = run(c, 'interp');
      expect(a.violations).toEqual([]);
      expect(a.statuses.every((s) => s === 0)).toBe(true);
      const b = run(c, 'jit');
      expect(b.violations).toEqual([]);
      expect(b.console).toBe(a.console);
      expect(b.events).toEqual(a.events);
      expect(b.counters).toEqual(a.counters);
      // The same seed, the same outcome on a second run.
      expect(run(c, 'jit').events).toEqual(a.events);
    }), { seed: 1906, numRuns: 30 });
  }, 600_000);

  test('the privileged workload: every vCPU uses the mode; the counter counts every increment; global view stops the others, per-vCPU views pay tables and switches', () => {
    const stats = [true, false].map((global) => {
      const host = HostMemory.create(128);
      const elf = builtinElf('pmcounter');
      const vm = new Vm({
        ...DEFAULT_SPEC, vcpus: 4, memoryMiB: 16,
        techniques: resolveTechniques({ privilegedModeRendezvous: { enabled: global } }),
        processes: [0, 1, 2, 3].map(() => ({ name: 'pmcounter', elf, argv: ['pmcounter', '30'], env: [], stdin: new Uint8Array() })),
      }, host, 1);
      let out = '';
      vm.onConsole((_p, b) => { out += Buffer.from(b).toString(); });
      expect(vm.runToCompletion(1e8)).toBe('stopped');
      expect(vm.processes().map((p) => p.status)).toEqual([0, 0, 0, 0]);
      expect(out).toBe('0000001e\n00000000\nffffffff\n'.repeat(4));
      expect(vm.pm.counter()).toBe(4 * 30);
      return vm.counters().privilegedMode;
    });
    const [g, p] = stats;
    expect([g.view, g.entries, g.regionFaults, g.viewFrames, g.viewSwitches]).toEqual(['global', 4 * 31, 4, 1, 0]);
    expect(g.rendezvous.count).toBe(g.entries);
    expect(g.rendezvous.totalCycles).toBeGreaterThanOrEqual(g.entries * (4000 + 3 * 600));
    expect(g.stoppedCycles.every((n) => n > 0)).toBe(true);
    expect([p.view, p.entries, p.regionFaults, p.viewFrames, p.viewSwitches, p.rendezvous.count]).toEqual(['per-vcpu', 4 * 31, 4, 1 + 4 * 5, 2 * 4 * 31, 0]);
    expect(p.stoppedCycles).toEqual([0, 0, 0, 0]);
  }, 120_000);

  test('the view follows a live technique change at the next entry when no vCPU is in the mode', () => {
    const elf = builtinElf('pmcounter');
    const vm = new Vm({
      ...DEFAULT_SPEC, vcpus: 2, memoryMiB: 16,
      techniques: resolveTechniques({ privilegedModeRendezvous: { enabled: true } }),
      processes: [0, 1].map(() => ({ name: 'pmcounter', elf, argv: ['pmcounter', '400'], env: [], stdin: new Uint8Array() })),
    }, HostMemory.create(64), 1);
    while (vm.counters().privilegedMode.entries < 20) vm.run(1);
    const before = vm.counters().privilegedMode;
    expect([before.view, before.viewSwitches]).toEqual(['global', 0]);
    vm.kernel.techniques = resolveTechniques({ privilegedModeRendezvous: { enabled: false } });
    expect(vm.runToCompletion(1e8)).toBe('stopped');
    const after = vm.counters().privilegedMode;
    expect(after.view).toBe('per-vcpu');
    expect(after.rendezvous.count).toBeGreaterThanOrEqual(before.rendezvous.count);
    expect(after.rendezvous.count).toBeLessThanOrEqual(before.rendezvous.count + 1);
    expect(after.viewSwitches).toBe(2 * (after.entries - after.rendezvous.count));
    expect(vm.pm.counter()).toBe(800);
  }, 300_000);

  test('a per-vCPU view whose root copy predates a RAM leaf table is refreshed once; other faults are not its business', () => {
    const vm = new Vm({
      ...DEFAULT_SPEC, vcpus: 2, memoryMiB: 16, techniques: resolveTechniques({ privilegedModeRendezvous: { enabled: false } }),
      processes: [{ name: 'pmcounter', elf: builtinElf('pmcounter'), argv: ['pmcounter', '1'], env: [], stdin: new Uint8Array() }],
    }, HostMemory.create(64), 1);
    expect(vm.interruptPrivilegedMode(1)).toBe('entered');
    const gpa = RAM_BASE + 12 * 1024 * 1024;
    expect(vm.pm.refreshView(1, gpa)).toBe(false);
    vm.khv.gstage.back(gpa);
    expect(vm.pm.refreshView(1, gpa)).toBe(true);
    expect(vm.pm.refreshView(1, gpa)).toBe(false);
    expect(vm.pm.refreshView(0, gpa)).toBe(false);
  }, 300_000);

  test('the handler ABI: SEAL is a MAC under the sealed key, which only the mode can read; an unknown function is SBI_ERR_NOT_SUPPORTED', () => {
    const elf = assemble(`.globl _start
.text
_start:
  li a0, 2
  li a1, 0x12345678
  li a7, 500
  ecall
  call print_hex
  li a0, 9
  li a7, 500
  ecall
  call print_hex
  li a0, 0
  j exit
${readFileSync('workloads/lib.s', 'utf8')}`).elf;
    const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 16, processes: [{ name: 'abi', elf, argv: ['abi'], env: [], stdin: new Uint8Array() }] }, HostMemory.create(64), 1);
    let out = '';
    vm.onConsole((_p, b) => { out += Buffer.from(b).toString(); });
    expect(vm.runToCompletion(1e7)).toBe('stopped');
    const hex = (n: number) => (n >>> 0).toString(16).padStart(8, '0');
    expect(out).toBe(`${hex(sealMac(vm.pm.sealedKey(), 0x12345678))}\n${hex(-2)}\n`);
  }, 300_000);

  test('pmret outside the mode is an illegal instruction for the guest (SIGILL), and changes nothing', () => {
    const elf = assemble('.globl _start\n.text\n_start:\n  pmret\n  li a0, 0\n  li a7, 93\n  ecall\n').elf;
    const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 16, processes: [{ name: 'rsm', elf, argv: ['rsm'], env: [], stdin: new Uint8Array() }] }, HostMemory.create(64), 1);
    expect(vm.runToCompletion(1e7)).toBe('stopped');
    expect(vm.processes()[0]).toMatchObject({ signal: 4 });
    expect(vm.counters().privilegedMode.entries).toBe(0);
  }, 300_000);

  test('a request for a stopped vCPU is queued and served after the exit; a full queue drops, counted', () => {
    const elf = builtinElf('pmcounter');
    const vm = new Vm({
      ...DEFAULT_SPEC, vcpus: 3, memoryMiB: 16,
      techniques: resolveTechniques({ privilegedModeRendezvous: { enabled: true, maxQueued: 1 } }),
      processes: [{ name: 'pmcounter', elf, argv: ['pmcounter', '1'], env: [], stdin: new Uint8Array() }],
    }, HostMemory.create(64), 1);
    const phases: string[] = [];
    vm.onPrivilegedMode((e) => phases.push(`${e.vcpu}:${e.phase}`));
    vm.interruptPrivilegedMode(1);
    vm.interruptPrivilegedMode(2);
    vm.interruptPrivilegedMode(0);
    vm.interruptPrivilegedMode(1);
    expect(phases).toEqual(['1:rendezvous', '1:entered', '2:queued', '0:dropped', '1:coalesced']);
    // A migration cannot move a vCPU in the mode (the region stays behind): the export refuses.
    expect(() => vm.exportState()).toThrow(/privileged mode/);
    expect(vm.runToCompletion(1e7)).toBe('stopped');
    expect(phases.slice(5, 9)).toEqual(['1:exited', '2:rendezvous', '2:entered', '2:exited']);
    expect(vm.pm.servedInterrupts()).toBe(2);
    expect(() => vm.interruptPrivilegedMode(0)).toThrow(/stopped/);
  }, 300_000);
});
