/**
 * Technique 2: per-process trampolines for the file method call. Same output as without them,
 * learned targets per process, the retpoline avoided on hits, fallback and use modes, the page at
 * TRAMPOLINE_VA out of user reach, and a fixed-seed property with learning and regeneration
 * mid-run on 1 and 2 vCPUs.
 */
import fc from 'fast-check';
import { disassembleRange } from '../isa/disasm.js';
import { assemble } from '../isa/assembler.js';
import { HostMemory } from '../hypervisor/host-memory.js';
import { hostMiBFor, runProgram } from '../runtime/run-program.js';
import { DEFAULT_SPEC, Vm } from '../runtime/vm.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { pipeConsumer, pipeProducer, syscallMix } from '../testing/guest-programs.js';
import { secondTrampolineSource, TRAMPOLINE_VA } from './instance-trampolines.js';
import { GATE, K, kva } from './layout.js';
import { KIND } from './vfs.js';

const t2 = (over: Record<string, unknown> = {}) => resolveTechniques({ instanceCallInlining: { enabled: true, updateIntervalUs: 50, ...over } });
const method = (kind: number, op: 0 | 1) => (kva(K.GATES) + 4 * (GATE.METHOD + 2 * kind + op)) >>> 0;
type Mix = Parameters<typeof syscallMix>[1];

describe('technique 2: per-process trampolines for the file method call', () => {
  test('the second trampoline materializes the first target with li and each next one with one addi from the previous', () => {
    const src = secondTrampolineSource(TRAMPOLINE_VA + 0x100, [method(1, 1), method(1, 0), method(0, 1)], 0xc000_1000);
    expect(src.split('\n').filter((l) => /^ {2}(li|addi) t4/.test(l))).toEqual([`  li t4, ${method(1, 1) | 0}`, '  addi t4, t4, -4', `  addi t4, t4, ${method(0, 1) - method(1, 0)}`]);
  });

  test('the first trampoline falls through into the live second one at TRAMPOLINE_VA; a regeneration switches through the spare copy', () => {
    const elf = syscallMix(400, [['writeZero', 3], ['writeErr', 1]]);
    const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 16, spectreV2Mitigation: 'retpoline', techniques: t2(), processes: [{ name: 'a', elf, argv: ['a'], env: [], stdin: new Uint8Array() }] }, HostMemory.create(hostMiBFor(16)), 1);
    const p = vm.kernel.processes[0];
    const code = (off = 0) => disassembleRange(vm.khv.readBytes(p.mm.kernelPages.get(TRAMPOLINE_VA >>> 12)! + off, 32), TRAMPOLINE_VA + off).map((l) => l.text.replace(/\s+/, ' ').replace(/,(?! )/g, ', '));
    while (vm.counters().instanceCallInlining.regenerations === 0) expect(vm.run(1)).toBe('running');
    // The word at TRAMPOLINE_VA is the live code's first instruction (lui of the first target), not a jump.
    const first = code();
    expect(first[0]).toMatch(/^lui t4, /);
    expect(first.slice(0, 4).join(';')).toMatch(/^lui t4, \S+;addi? t4, t4, \S+;bne t2, t4, \S+;j c000/);
    // The spare copy the switch went through holds the same code, placed at its own address.
    expect(code(0x800).slice(0, 3).map((l) => l.split(' ')[0])).toEqual(first.slice(0, 3).map((l) => l.split(' ')[0]));
    expect(vm.runToCompletion()).toBe('stopped');
    expect(vm.counters().instanceCallInlining.perProcess[1].hits).toBeGreaterThan(0);
  });

  test('each process learns its own targets; hits skip the retpoline; output and syscalls unchanged', () => {
    const a = syscallMix(200, [['writeZero', 6], ['getpid', 2], ['writeErr', 1]]);
    const b = syscallMix(200, [['readZero', 6], ['getpid', 2], ['writeErr', 1]]);
    const off = runProgram(a, { spectreV2Mitigation: 'retpoline' }, [b]);
    const on = runProgram(a, { spectreV2Mitigation: 'retpoline', techniques: t2() }, [b]);
    expect(on.stdout.toString()).toBe(off.stdout.toString());
    expect(on.stderr.toString()).toBe(off.stderr.toString());
    expect(on.counters.syscalls).toEqual(off.counters.syscalls);
    const s = on.counters.instanceCallInlining;
    expect(s.perProcess['1'].targets[0]).toBe(method(KIND.zero, 1));
    expect(s.perProcess['2'].targets[0]).toBe(method(KIND.zero, 0));
    expect(s.perProcess['1'].targets).toContain(method(KIND.console, 1));
    expect(s.hits / (s.hits + s.misses + s.fallbacks)).toBeGreaterThan(0.9);
    expect(on.counters.cycles).toBeLessThan(off.counters.cycles);
    expect(off.counters.instanceCallInlining.hits + off.counters.instanceCallInlining.fallbacks).toBe(0);
  }, 300_000);

  test('fallback mode sends every call through the outline trampoline; with learning off nothing is learned', () => {
    const elf = syscallMix(50, [['writeZero', 3], ['readZero', 1]]);
    const fb = runProgram(elf, { techniques: t2({ fallbackOnly: true }) }).counters.instanceCallInlining;
    expect(fb.hits + fb.misses).toBe(0);
    expect(fb.fallbacks).toBeGreaterThan(150);
    const use = runProgram(elf, { techniques: t2({ learning: false }) }).counters.instanceCallInlining;
    expect(use.regenerations).toBe(0);
    expect(use.perProcess['1'].targets).toEqual([]);
  }, 300_000);

  test('a pipeline: the writer and the reader each inline their own end of the pipe, beating one shared trampoline', () => {
    const procs = [
      { name: 'producer', elf: pipeProducer(2000), argv: ['producer'], env: [], stdin: new Uint8Array(), stdoutPipe: 'p' },
      { name: 'consumer', elf: pipeConsumer, argv: ['consumer'], env: [], stdin: new Uint8Array(), stdinPipe: 'p' },
    ];
    const run = (techniques?: ReturnType<typeof t2>) => {
      const vm = new Vm({ ...DEFAULT_SPEC, spectreV2Mitigation: 'retpoline', memoryMiB: 32, processes: procs, techniques }, HostMemory.create(hostMiBFor(32)), 1);
      const out: Buffer[] = [];
      vm.onConsole((port, bytes) => { if (port === 0) out.push(Buffer.from(bytes)); });
      vm.runToCompletion();
      return { out: Buffer.concat(out).toString(), c: vm.counters() };
    };
    const [off, on, shared] = [run(), run(t2({ maxTargets: 1 })), run(t2({ maxTargets: 1, shared: true }))];
    expect(on.out).toBe(off.out);
    expect(shared.out).toBe(off.out);
    const s = on.c.instanceCallInlining;
    expect(s.perProcess['1'].targets).toEqual([method(KIND.pipe, 1)]);
    expect(s.perProcess['2'].targets).toEqual([method(KIND.pipe, 0)]);
    expect(on.c.cycles).toBeLessThan(off.c.cycles);
    // One shared trampoline learns one process's hot target for both: the other misses.
    const sh = shared.c.instanceCallInlining;
    expect(sh.misses).toBeGreaterThan(s.misses);
    expect(on.c.cycles).toBeLessThan(shared.c.cycles);
  }, 300_000);

  test('a user program cannot reach the trampoline page (supervisor-only): SIGSEGV', () => {
    const elf = assemble(`.globl _start\n.text\n_start:\n  li t0, ${TRAMPOLINE_VA | 0}\n  lw t1, 0(t0)\n  li a7, 93\n  ecall\n`).elf;
    const r = runProgram(syscallMix(5, [['writeZero', 1]]), { techniques: t2() }, [elf]);
    expect(r.vm.processes()[1].status).toBe(139);
  });

  test('property (fixed seed): random per-process target mixes, learning and regeneration mid-run, 1 and 2 vCPUs: output never changes', () => {
    const names = ['writeZero', 'readZero', 'readvZero', 'writeErr', 'getpid'] as const;
    const mixArb = fc.array(fc.tuple(fc.constantFrom(...names), fc.integer({ min: 1, max: 8 })), { minLength: 1, maxLength: 5 });
    // How often the runs really regenerated mid-run (a process's trampoline replaced after its first), by vCPU count.
    const regenerated = { 1: 0, 2: 0 };
    fc.assert(fc.property(mixArb, mixArb, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 200 }), fc.constantFrom(1, 2), fc.constantFrom('none', 'retpoline'),
      (m1, m2, maxTargets, updateIntervalUs, vcpus, mitigation) => {
        const [a, b] = [syscallMix(30, m1 as Mix), syscallMix(30, m2 as Mix)];
        const opts = { vcpus, spectreV2Mitigation: mitigation as 'none' | 'retpoline' };
        const base = runProgram(a, opts, [b]);
        const with2 = runProgram(a, { ...opts, techniques: resolveTechniques({ instanceCallInlining: { enabled: true, maxTargets, updateIntervalUs }, callTableInlining: { enabled: true, relearnInterval: 20 } }) }, [b]);
        expect(with2.stdout.toString()).toBe(base.stdout.toString());
        expect(with2.stderr.toString()).toBe(base.stderr.toString());
        expect(with2.vm.processes().map((p) => p.status)).toEqual(base.vm.processes().map((p) => p.status));
        expect(with2.counters.syscalls).toEqual(base.counters.syscalls);
        if (Object.values(with2.counters.instanceCallInlining.perProcess).some((q) => q.regenerations >= 2)) regenerated[vcpus as 1 | 2]++;
      }), { seed: 1717, numRuns: 25 });
    expect(regenerated[1]).toBeGreaterThan(0);
    expect(regenerated[2]).toBeGreaterThan(0);
  }, 300_000);
});
