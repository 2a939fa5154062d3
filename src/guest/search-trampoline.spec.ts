/**
 * Technique 4: the search trampoline is real code that dispatches exactly as the table does,
 * takes the hot numbers off the retpoline, is regenerated when the distribution changes, and is
 * patched safely (never over a buffer a vCPU is executing) on 1 and 2 vCPUs.
 */
import fc from 'fast-check';
import { disassembleRange } from '../isa/disasm.js';
import { HostMemory } from '../hypervisor/host-memory.js';
import { hostMiBFor, runProgram } from '../runtime/run-program.js';
import { DEFAULT_SPEC, Vm } from '../runtime/vm.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { syscallMix } from '../testing/guest-programs.js';
import { PRIV_S } from '../cpu/hart-core.js';
import { assembleRaw } from '../isa/assembler.js';
import { TECHNIQUES } from '../techniques/catalogue.js';
import { K, kgpa, kva, NR_MAX, PERCPU } from './layout.js';
import { SearchTrampoline, TRAMPOLINE_BYTES, trampolineSource } from './search-trampoline.js';

const LINKS = { retpoline: 0xc000_1000, restore: 0xc000_0180, afterPending: 0xc000_0100, table: kva(K.SYSCALL_TABLE) };
const t4 = (over: Record<string, unknown> = {}) => resolveTechniques({ callTableInlining: { enabled: true, ...over } });

describe('technique 4: search trampoline for the syscall table', () => {
  test('the generated code is a search tree: the heaviest number first, direct calls to the targets, the table through the retpoline for a miss', () => {
    const base = kva(K.TRAMPOLINES);
    const src = trampolineSource(base, [63, 64, 172, 178], [15, 25, 40, 10], (nr) => 0xc000_2000 + 4 * nr, LINKS);
    const lines = src.split('\n');
    expect(lines[2]).toBe('  li t4, 172');
    expect(lines[4]).toBe(`  jal ra, start + ${0xc000_2000 + 4 * 172 - base}`);
    // When the handler returns: after_call's head, then restore (or after_pending when something is pending).
    expect(lines.slice(5, 9)).toEqual(['  sw a0, 40(sp)', `  lw t0, ${PERCPU.PENDING}(sp)`, '  bnez t0, pend', `  jal x0, start + ${0xc000_0180 - base}`]);
    expect(src.match(/jal ra, start \+ -?\d+/g)!.length).toBe(5); // four hits and the miss's retpoline call
    expect(src.slice(src.indexOf('miss:'))).toBe(`miss:\n  slli t1, a7, 2\n  li t2, ${LINKS.table | 0}\n  add t1, t1, t2\n  lw t2, 0(t1)\n  jal ra, start + ${0xc000_1000 - base}\n`
      + `  sw a0, 40(sp)\n  lw t0, ${PERCPU.PENDING}(sp)\n  bnez t0, pend\n  jal x0, start + ${0xc000_0180 - base}\npend:\n  jal x0, start + ${0xc000_0100 - base}\n`);
  });

  test('the trampoline for the most entries the catalogue allows fits its buffer, whatever the distribution', () => {
    const max = TECHNIQUES.find((t) => t.name === 'callTableInlining')!.params.find((p) => p.name === 'maxEntries')!.max!;
    const keys = Array.from({ length: max }, (_, i) => 3 * i);
    for (const weights of [keys.map(() => 1), keys.map((_, i) => 2 ** (max - i))]) {
      const freq = [...keys.map((k, i) => [k, weights[i]] as const), [NR_MAX - 1, 2 ** 60] as const]; // misses heavier than all
      const base = kva(K.TRAMPOLINES);
      expect(assembleRaw(trampolineSource(base, keys, weights, (nr) => kva(K.GATES + 4 * nr), LINKS, freq), { base }).bytes.length).toBeLessThanOrEqual(TRAMPOLINE_BYTES);
    }
  });

  test('a skewed distribution gets a chain of equality tests, hottest first (cheaper than a tree in modelled cycles); equal weights a tree', () => {
    const src = trampolineSource(kva(K.TRAMPOLINES), [63, 64, 172, 178], [15, 25, 400, 10], (nr) => 0xc000_2000 + 4 * nr, LINKS);
    const tests = src.split('\n').filter((l) => l.startsWith('  li t4,'));
    expect(tests).toEqual(['  li t4, 172', '  li t4, 64', '  li t4, 63', '  li t4, 178']);
    expect(src).not.toContain('bltu');
    const balanced = trampolineSource(kva(K.TRAMPOLINES), [1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 1, 1, 1, 1], (nr) => 0xc000_2000 + 4 * nr, LINKS);
    expect(balanced).toContain('bltu'); // equal weights: a search tree
  });

  test.each(['none', 'retpoline'] as const)('skewed mix under %s: same output, >= 90 %% hits, and with retpoline fewer cycles than the table call', (mitigation) => {
    const elf = syscallMix(300);
    const off = runProgram(elf, { spectreV2Mitigation: mitigation });
    const on = runProgram(elf, { spectreV2Mitigation: mitigation, techniques: t4({ relearnInterval: 200 }) });
    expect(on.stdout.toString()).toBe(off.stdout.toString());
    expect(on.status).toBe(0);
    expect(on.counters.syscalls).toEqual(off.counters.syscalls);
    const s = on.counters.callTableInlining;
    expect(s.regenerations).toBeGreaterThanOrEqual(1);
    // Only numbers the program calls (the mix, and openat of its start-up; the hot four always), sorted.
    const mix = [25, 29, 56, 62, 63, 64, 80, 96, 124, 160, 172, 178, 214, 278, 403];
    expect(s.entries).toEqual(mix.filter((nr) => s.entries.includes(nr)));
    expect(s.entries).toEqual(expect.arrayContaining([63, 64, 172, 178]));
    expect(s.perSite.call_site).toEqual({ hits: s.hits, misses: s.misses });
    expect(s.perProcess[1]).toEqual({ hits: s.hits, misses: s.misses });
    expect(s.hits / (s.hits + s.misses)).toBeGreaterThanOrEqual(0.9);
    expect(off.counters.callTableInlining).toEqual({ hits: 0, misses: 0, compares: 0, regenerations: 0, postponed: 0, entries: [], perProcess: {}, perSite: { call_site: { hits: 0, misses: 0 } } });
    if (mitigation === 'retpoline') expect(on.counters.cycles).toBeLessThan(off.counters.cycles);
  }, 300_000);

  test('the trampoline follows a changing distribution: regenerated when the hot set changes, not when it stays', () => {
    const vm = new Vm({ ...DEFAULT_SPEC, memoryMiB: 16, processes: [{ name: 'a', elf: syscallMix(1, [['getpid', 1]]), argv: ['a'], env: [], stdin: new Uint8Array() }] }, HostMemory.create(hostMiBFor(16)), 1);
    const t = new SearchTrampoline(vm.khv, vm.kernel.text, (nr) => kva(K.GATES + 4 * nr), vm.vcpus.map((v) => v.hart));
    const o = { maxEntries: 1, relearnInterval: 10 };
    for (let i = 0; i < 50; i++) t.onCall(172, 1, true, o);
    expect(t.stats).toMatchObject({ regenerations: 1, entries: [172], hits: 42, misses: 0 }); // the first relearn after 8 passes without a trampoline (the learning window)
    for (let i = 0; i < 50; i++) t.onCall(178, 1, true, o); // the halved counts of 172 are overtaken within a relearn or two
    expect(t.stats.entries).toEqual([178]);
    expect(t.stats.regenerations).toBe(2);
  });

  test('engines agree counter for counter with the trampoline live', () => {
    const elf = syscallMix(50);
    const [a, b] = (['interp', 'jit'] as const).map((engine) => runProgram(elf, { engine, techniques: t4({ relearnInterval: 100 }) }));
    expect(b.counters).toEqual(a.counters);
  }, 300_000);

  test('the call site is patched while the technique is on and gets the table call back when it is turned off', () => {
    const elf = syscallMix(40, [['getpid', 30], ['gettid', 2], ['uname', 1]]);
    const r = runProgram(elf, { techniques: t4({ maxEntries: 1, relearnInterval: 10 }) });
    expect(r.counters.callTableInlining.entries).toEqual([172]);
    const spec = { ...DEFAULT_SPEC, memoryMiB: 16, processes: [{ name: 'a', elf, argv: ['a'], env: [], stdin: new Uint8Array() }], techniques: t4({ maxEntries: 1, relearnInterval: 10 }) };
    const vm = new Vm(spec, HostMemory.create(hostMiBFor(16)), 1);
    const site = vm.kernel.text.symbols.get('table_load')! >>> 0;
    const word = () => vm.khv.read32(kgpa(site - kva(0)));
    const original = word();
    vm.run(5);
    expect(word()).not.toBe(original); // patched to jal x0, <trampoline>
    expect(disassembleRange(vm.khv.readBytes(kgpa(site - kva(0)), 4), site)[0].text).toMatch(/^j\s/);
    vm.kernel.techniques = resolveTechniques({ callTableInlining: { enabled: false } });
    vm.runToCompletion();
    expect(word()).toBe(original);
  });

  test('a buffer a vCPU is executing is never rewritten: the regeneration is postponed', () => {
    const elf = syscallMix(1, [['getpid', 1]]);
    const spec = { ...DEFAULT_SPEC, vcpus: 2, memoryMiB: 16, processes: [{ name: 'a', elf, argv: ['a'], env: [], stdin: new Uint8Array() }] };
    const vm = new Vm(spec, HostMemory.create(hostMiBFor(16)), 1);
    const harts = vm.vcpus.map((v) => v.hart);
    const t = new SearchTrampoline(vm.khv, vm.kernel.text, (nr) => kva(K.GATES + 4 * nr), harts);
    const buffer0 = kva(K.TRAMPOLINES);
    const saved = harts[1].pc;
    harts[1].pc = (buffer0 + 8) | 0;
    for (let i = 0; i < 10; i++) t.onCall(172, 1, true, { maxEntries: 4, relearnInterval: 10 });
    expect(t.stats).toMatchObject({ regenerations: 0, postponed: 1 });
    harts[1].pc = saved;
    // In S-mode, a return address into the buffer (ra, or s1 where sys_rw keeps it) postpones too.
    const priv = harts[1].priv;
    harts[1].priv = PRIV_S;
    for (const r of [1, 9]) {
      const keep = harts[1].x[r];
      harts[1].x[r] = (buffer0 + 12) | 0;
      for (let i = 0; i < 10; i++) t.onCall(172, 1, true, { maxEntries: 4, relearnInterval: 10 });
      harts[1].x[r] = keep;
    }
    expect(t.stats).toMatchObject({ regenerations: 0, postponed: 3 });
    harts[1].priv = priv;
    for (let i = 0; i < 10; i++) t.onCall(172, 1, true, { maxEntries: 4, relearnInterval: 10 });
    expect(t.stats).toMatchObject({ regenerations: 1, postponed: 3, entries: [172] });
    const code = vm.khv.readBytes(kgpa(K.TRAMPOLINES), 16);
    expect(disassembleRange(code, buffer0).map((l) => l.text).join('; ')).toMatch(/^li\s+t4,172; bne\s+a7,t4,/);
    // The next generation goes to the other buffer; the first stays as it was.
    for (let i = 0; i < 10; i++) t.onCall(178, 1, true, { maxEntries: 4, relearnInterval: 10 });
    expect(t.stats.regenerations).toBe(2);
    expect(vm.khv.readBytes(kgpa(K.TRAMPOLINES), 16)).toEqual(code);
    expect(vm.khv.readBytes(kgpa(K.TRAMPOLINES + TRAMPOLINE_BYTES), 4)).not.toEqual(new Uint8Array(4));
  });

  test('property (fixed seed): random mixes with learning and regeneration mid-run never change the output, on 1 and 2 vCPUs', () => {
    const names = ['getpid', 'gettid', 'writeZero', 'readZero', 'uname', 'fstat', 'fcntl', 'clock'] as const;
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.constantFrom(...names), fc.integer({ min: 1, max: 12 })), { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 1, max: 6 }), fc.integer({ min: 10, max: 60 }), fc.constantFrom(1, 2), fc.constantFrom('none', 'retpoline'),
      (mix, maxEntries, relearnInterval, vcpus, mitigation) => {
        const elf = syscallMix(20, mix as Array<[typeof names[number], number]>);
        const more = vcpus === 2 ? [syscallMix(25, [...mix].reverse() as Array<[typeof names[number], number]>)] : [];
        const base = runProgram(elf, { vcpus, spectreV2Mitigation: mitigation as 'none' | 'retpoline' }, more);
        const with4 = runProgram(elf, { vcpus, spectreV2Mitigation: mitigation as 'none' | 'retpoline', techniques: t4({ maxEntries, relearnInterval }) }, more);
        expect(with4.stdout.toString()).toBe(base.stdout.toString());
        expect(with4.vm.processes().map((p) => p.status)).toEqual(base.vm.processes().map((p) => p.status));
        expect(with4.counters.syscalls).toEqual(base.counters.syscalls);
      }), { seed: 2424, numRuns: 25 });
  }, 300_000);
});
