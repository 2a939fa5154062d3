import { assemble } from '../isa/assembler.js';
import { HostMemory } from '../hypervisor/host-memory.js';
import { buildKernelText } from '../guest/kernel-text.js';
import { runProgram } from './run-program.js';
import { getpidsThenPrint } from '../testing/guest-programs.js';
import { DEFAULT_SPEC, Vm, VmSpec } from './vm.js';
import { compileStats } from '../cpu/wasm/engine.js';

const asm = (src: string) => assemble(`.globl _start\n.text\n${src}`).elf;

/** n getpid calls in a loop, one write of "ok\n", exit(7). */
const getpids = (n: number) => getpidsThenPrint(n);

const spec = (elf: Uint8Array, over: Partial<VmSpec> = {}): VmSpec => ({
  ...DEFAULT_SPEC, ...over,
  processes: [{ name: 'p', elf, argv: ['p'], env: [], stdin: new Uint8Array() }],
});

/** Retired kernel-text instructions of one plain syscall round trip (no doorbell), from the symbols. */
function stubLength(mitigation: 'none' | 'retpoline'): number {
  const t = buildKernelText(mitigation);
  const at = (s: string) => t.symbols.get(s)! >>> 0;
  const sret = at('idle') - 4;
  const toCall = (at('after_call') - at('trap_entry')) / 4; // entry, dispatch and the call itself
  const thunk = mitigation === 'retpoline' ? 3 : 0; // jal t0 / mv / jalr
  return toCall + thunk + 3 /* sw a0; lw pending; beqz */ + (sret - at('restore')) / 4 + 1;
}

describe('VM: guest OS on the hypervisor path', () => {
  test.each(['interp', 'jit', 'wasm'] as const)('counters are exact for a known program (%s)', (engine) => {
    const [a, b] = [10, 30].map((n) => runProgram(getpids(n), { engine }));
    expect(a.stdout.toString()).toBe('ok\n');
    expect(a.status).toBe(7);
    expect(b.counters.syscalls).toEqual({ exit: 1, getpid: 30, write: 1 });
    // Two crossings per syscall round trip (exit's return goes to the kernel's power-off path).
    expect(b.counters.crossings).toBe(2 * 32);
    // One doorbell exit for the write, one power-off: both MMIO exits through the UHV (4 transitions each).
    expect(b.counters.exits.mmio).toBe(2);
    expect(b.counters.doorbells).toBe(1);
    expect(b.counters.transitions - a.counters.transitions).toBe(0);
    // 20 more loop iterations: 3 user instructions (the ecall traps, it does not retire) + the stub.
    expect(b.counters.instructions - a.counters.instructions).toBe(20 * (3 + stubLength('none')));
    expect(b.counters.crossings - a.counters.crossings).toBe(40);
  });

  test('retpoline kernel text retires more instructions and cycles and prints the same bytes', () => {
    const plain = runProgram(getpids(50), {});
    const retp = runProgram(getpids(50), { spectreV2Mitigation: 'retpoline' });
    expect(retp.stdout).toEqual(plain.stdout);
    expect(retp.status).toBe(plain.status);
    // 52 syscalls through the table's call, and the write's file method call through the thunk too.
    expect(retp.counters.instructions - plain.counters.instructions).toBe((52 + 1) * 3);
    expect(stubLength('retpoline') - stubLength('none')).toBe(3);
    expect(retp.counters.cycles).toBeGreaterThan(plain.counters.cycles);
    // Every retpoline call is one RSB mispredict; the plain indirect call is BTB-predicted once warm.
    expect(retp.counters.branchMispredicts).toBeGreaterThanOrEqual(52);
    expect(plain.counters.branchMispredicts).toBeLessThan(10);
  });

  test('kpti crossing preset charges more per crossing, same instructions', () => {
    const none = runProgram(getpids(20), {});
    const kpti = runProgram(getpids(20), { crossingPreset: 'kpti' });
    expect(kpti.counters.instructions).toBe(none.counters.instructions);
    expect(kpti.counters.cycles - none.counters.cycles).toBe(none.counters.crossings * (350 - 150));
  });

  test('a user jump to a gate address is a SIGSEGV (status 139), not a kernel entry', () => {
    const r = runProgram(asm(`
_start:
  li t0, 0xc0002000
  jalr ra, 0(t0)
  li a7, 93
  ecall
`));
    expect(r.status).toBe(139);
    expect(r.vm.processes()[0]).toMatchObject({ signal: 11, faultPc: 0xc0002000, faultAddress: 0xc0002000 });
    expect(r.vm.state).toBe('stopped');
    expect(r.counters.syscalls).toEqual({});
  });

  test('an illegal instruction is SIGILL (132); unknown syscalls are -ENOSYS and counted per number', () => {
    const r = runProgram(asm(`
_start:
  li a7, 999
  ecall
  mv s1, a0
  li a7, 300
  ecall
  add s1, s1, a0
  li a7, 300
  ecall
  add s1, s1, a0
  li t0, -114
  bne s1, t0, bad
  .word 0
bad:
  li a0, 1
  li a7, 93
  ecall
`));
    expect(r.status).toBe(132);
    expect(r.counters.enosys).toEqual({ 300: 2, 999: 1 });
  });

  test('a write larger than the console ring is split into several doorbells and arrives whole', () => {
    const size = 200_000;
    const r = runProgram(asm(`
_start:
  li a0, 0
  li a7, 214
  ecall
  mv s0, a0
  li t0, ${size}
  add a0, a0, t0
  li a7, 214
  ecall
  mv a0, s0
  li t0, 0
  li t1, ${size}
1:
  add t2, a0, t0
  andi t3, t0, 63
  addi t3, t3, 48
  sb t3, 0(t2)
  addi t0, t0, 1
  bne t0, t1, 1b
  mv a1, a0
  li a0, 1
  li a2, ${size}
  li a7, 64
  ecall
  li t0, ${size}
  sub a0, a0, t0
  li a7, 93
  ecall
`));
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBe(size);
    expect([...r.stdout.subarray(0, 66)].map((c) => String.fromCharCode(c)).join('')).toBe('0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmno01');
    expect(r.counters.doorbells).toBe(Math.ceil(size / 65520));
    expect(r.counters.syscalls.write).toBe(1);
  });

  test('a bad image is refused before anything is allocated', () => {
    const host = HostMemory.create(16);
    expect(() => new Vm(spec(new Uint8Array([1, 2, 3, 4])), host, 1)).toThrow(/ELF|magic/);
    expect(host.usage().free).toBe(host.frames);
  });

  test('a process that exhausts host memory crashes only its VM, with out-of-host-memory; the host takes its frames back', () => {
    const host = HostMemory.create(24);
    const hog = asm(`
_start:
  li a0, 0
  li a7, 214
  ecall
  mv s0, a0
  li t0, 0x3000000
  add a0, a0, t0
  li a7, 214
  ecall
1:
  sb zero, 0(s0)
  li t0, 4096
  add s0, s0, t0
  j 1b
`);
    const bystander = new Vm(spec(getpids(3), { memoryMiB: 8 }), host, 2);
    const vm = new Vm(spec(hog, { memoryMiB: 64 }), host, 1);
    expect(vm.runToCompletion()).toBe('crashed');
    expect(vm.reason).toMatch(/^out-of-host-memory/);
    expect(host.usage().byOwner[1]).toBeUndefined();
    const out: number[] = [];
    bystander.onConsole((_p, b) => out.push(...b));
    expect(bystander.runToCompletion()).toBe('stopped');
    expect(Buffer.from(out).toString()).toBe('ok\n');
    expect(host.usage().free).toBe(host.frames);
  });

  test('a guest that loops forever keeps running until stopped from outside; stop frees its memory', () => {
    const host = HostMemory.create(16);
    const vm = new Vm(spec(asm('_start:\n  j _start\n'), { memoryMiB: 8 }), host, 1);
    expect(vm.run(50)).toBe('running');
    expect(vm.counters().instructions).toBeGreaterThan(1_000_000);
    vm.stop();
    expect(vm.state).toBe('stopped');
    expect(host.usage().free).toBe(host.frames);
  });
});

/** Prints "p<pid>\n" `iters` times with busy work, a yield and (optionally) a 1 ms sleep in between. */
const chatty = (iters: number, busy: number, sleep: boolean) => asm(`
_start:
  li a7, 172
  ecall
  mv s1, a0
  li s2, ${iters}
loop:
  li t0, ${busy}
1:
  addi t0, t0, -1
  bnez t0, 1b
  addi t3, s1, 48
  la a1, buf
  sb t3, 1(a1)
  li a0, 1
  li a2, 3
  li a7, 64
  ecall
  li a7, 124
  ecall
${sleep ? `  li a0, 1
  li a1, 0
  la a2, ts
  li a3, 0
  li a7, 407
  ecall` : ''}
  addi s2, s2, -1
  bnez s2, loop
  li a0, 0
  li a7, 93
  ecall
.data
buf: .ascii "p?\\n"
.align 3
ts: .word 0, 0, 1000000, 0
`);

const segfaulter = asm(`
_start:
  li t0, 2000000
1:
  addi t0, t0, -1
  bnez t0, 1b
  lw a0, 0(zero)
`);

function multiSpec(seed: number): VmSpec {
  const p = (name: string, elf: Uint8Array) => ({ name, elf, argv: [name], env: [], stdin: new Uint8Array() });
  return {
    ...DEFAULT_SPEC, vcpus: 2, memoryMiB: 16, seed,
    processes: [p('a', chatty(6, 300_000, false)), p('b', chatty(5, 500_000, true)), p('c', chatty(4, 200_000, true)), p('d', segfaulter)],
  };
}

function runSpec(s: VmSpec) {
  const host = HostMemory.create(64, { wasm: s.engine === 'wasm' });
  const vm = new Vm(s, host, 1);
  const out: number[] = [];
  vm.onConsole((port, b) => out.push(port, ...b));
  vm.runToCompletion();
  return { vm, console: Buffer.from(out), counters: vm.counters(), free: host.usage().free === host.frames };
}

describe('VM: processes, scheduling and determinism', () => {
  test('a multi-process, multi-vCPU VM gives identical console bytes and counters on every run', () => {
    const a = runSpec(multiSpec(42));
    const b = runSpec(multiSpec(42));
    expect(a.vm.state).toBe('stopped');
    expect(a.console.equals(b.console)).toBe(true);
    expect(b.counters).toEqual(a.counters);
    expect(a.free && b.free).toBe(true);
    const text = a.console.toString('latin1').replace(/\0/g, '');
    expect(text.match(/p1/g)).toHaveLength(6);
    expect(text.match(/p2/g)).toHaveLength(5);
    expect(text.match(/p3/g)).toHaveLength(4);
    // Every process ran; the segfaulting one died alone.
    expect(a.vm.processes().map((p) => p.status)).toEqual([0, 0, 0, 139]);
    // Both vCPUs did work, the timer preempted, and sleepers were woken by ticks.
    expect(a.counters.perVcpu.every((v) => v.instructions > 1_000_000)).toBe(true);
    expect(a.counters.interrupts).toBeGreaterThan(0);
    expect(a.counters.syscalls.clock_nanosleep_time64).toBe(9);
    expect(a.counters.exits.hypercall).toBe(a.counters.interrupts);
  });

  test('engines agree on a multi-process VM, counter for counter', () => {
    const jit = runSpec(multiSpec(7));
    const interp = runSpec({ ...multiSpec(7), engine: 'interp' });
    expect(interp.console.equals(jit.console)).toBe(true);
    expect(interp.counters).toEqual(jit.counters);
    // The wasm engine too: two vCPUs sharing one code watch, processes at the same virtual
    // addresses in different frames (the dispatcher in wasm checks an entry's physical page).
    const calls = compileStats.pageCalls;
    const wasm = runSpec({ ...multiSpec(7), engine: 'wasm' });
    expect(compileStats.pageCalls).toBeGreaterThan(calls);
    expect(wasm.console.equals(jit.console)).toBe(true);
    expect(wasm.counters).toEqual(jit.counters);
  });

  test('wasm: two processes with different code at the same addresses, on one vCPU, each run their own (the dispatcher in wasm checks the physical page)', () => {
    // f, a page away from the loop, returns n; the loop leaves with status 1 as soon as it does not.
    const prog = (n: number) => asm([
      '_start:', '  li s0, 2000000',
      'loop:', '  call f', `  li t0, ${n}`, '  bne a0, t0, bad', '  addi s0, s0, -1', '  bnez s0, loop',
      '  li a0, 0', '  li a7, 93', '  ecall',
      'bad:', '  li a0, 1', '  li a7, 93', '  ecall',
      '.balign 4096', 'f:', `  li a0, ${n}`, '  ret',
    ].join('\n'));
    const p = (name: string, elf: Uint8Array) => ({ name, elf, argv: [name], env: [], stdin: new Uint8Array() });
    const calls = compileStats.pageCalls;
    const r = runSpec({ ...DEFAULT_SPEC, engine: 'wasm', vcpus: 1, memoryMiB: 16, processes: [p('one', prog(1)), p('two', prog(2))] });
    expect(compileStats.pageCalls - calls).toBeGreaterThan(100_000);
    expect(r.counters.interrupts).toBeGreaterThan(4);
    expect(r.vm.processes().map((x) => x.status)).toEqual([0, 0]);
  });

  test('getrandom and AT_RANDOM follow the seed', () => {
    const rnd = asm(`
_start:
  la a0, buf
  li a1, 16
  li a2, 0
  li a7, 278
  ecall
  li a0, 1
  la a1, buf
  li a2, 16
  li a7, 64
  ecall
  li a0, 0
  li a7, 93
  ecall
.data
buf: .space 16
`);
    const [a, b, c] = [1, 1, 2].map((seed) => runProgram(rnd, { seed }).stdout);
    expect(a.length).toBe(16);
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });
});

describe('VM: native writes into code a translating engine compiled', () => {
  // The guest calls f until it returns 2; f returns 1 until the hypervisor (the test, standing in
  // for the KHV's loader or page pool) rewrites its first instruction in guest RAM.
  const prog = assemble([
    '.globl _start', '.text', '_start:',
    'loop: call f', '  li t0, 2', '  bne a0, t0, loop', '  li a0, 42', '  li a7, 93', '  ecall',
    'f: addi a0, zero, 1', '  ret',
  ].join('\n'));
  const patch = assemble('.globl _start\n.text\n_start: addi a0, zero, 2\n').sections.find((s) => s.name === '.text')!.bytes;

  test.each(['jit', 'wasm'] as const)('a KHV write into a hot code frame drops its translations (%s): the guest runs the new code', (engine) => {
    const host = HostMemory.create(16, { wasm: engine === 'wasm' });
    const vm = new Vm(spec(prog.elf, { memoryMiB: 8, engine }), host, 1);
    const ran = compileStats.runInsns;
    expect(vm.run(4)).toBe('running');
    if (engine === 'wasm') expect(compileStats.runInsns).toBeGreaterThan(ran);
    else expect(vm.jitStats()!.translations).toBeGreaterThan(0);
    const f = prog.symbols.get('f')!;
    const p = vm.kernel.processes[0];
    const gpa = (p.mm.pages.get(f >>> 12)! & ~0xfff) + (f & 0xfff);
    vm.khv.writeBytes(gpa, patch);
    // One more quantum (100,000 cycles) is ample for the next call of f, the exit and the power-off.
    expect(vm.run(1)).toBe('stopped');
    expect(vm.processes()[0].status).toBe(42);
  });
});
