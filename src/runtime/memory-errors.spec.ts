/**
 * Uncorrectable memory errors inside a VM (technique 1's first half): a process that touches a
 * poisoned page dies with SIGBUS and nothing else does; the page is never used again; errors in
 * kernel memory panic the guest; frames with errors never go back to the host's free pool.
 */
import { FrameState, HostMemory } from '../hypervisor/host-memory.js';
import { ringGpa } from '../hypervisor/platform.js';
import { assemble } from '../isa/assembler.js';
import { resolveTechniques } from '../techniques/catalogue.js';
import { pageToucher } from '../testing/guest-programs.js';
import { DEFAULT_SPEC, Vm, VmSpec } from './vm.js';


const toucher = pageToucher;

function twoProcessVm(host: HostMemory): Vm {
  const p = (name: string, elf: Uint8Array) => ({ name, elf, argv: [name], env: [], stdin: new Uint8Array() });
  const spec: VmSpec = { ...DEFAULT_SPEC, vcpus: 1, memoryMiB: 16, processes: [p('victim', toucher('v', 50)), p('bystander', toucher('b', 8))] };
  return new Vm(spec, host, 1);
}

describe('memory errors in a VM', () => {
  test('a process that touches a poisoned page dies with SIGBUS (135); the other finishes; the page is never reused', () => {
    const host = HostMemory.create(32);
    const vm = twoProcessVm(host);
    const out: string[] = [];
    vm.onConsole((_p, b) => out.push(Buffer.from(b).toString()));
    const failures: unknown[] = [];
    vm.kernel.onMemoryFailure = (e) => failures.push(e);
    vm.run(20);
    const bssVa = 0x12000;
    const frame = vm.frameOf({ pid: 1, va: bssVa });
    expect(frame).toBeGreaterThanOrEqual(0);
    const hit = vm.injectMemoryError(frame);
    expect(hit.owner).toEqual({ kind: 'process', pid: 1, va: bssVa });
    expect(vm.runToCompletion()).toBe('stopped');
    const [victim, bystander] = vm.processes();
    expect(victim).toMatchObject({ state: 'exited', signal: 7, status: 135, faultAddress: bssVa });
    expect(bystander).toMatchObject({ status: 0 });
    expect(out.join('').split('b').length - 1).toBe(8);
    expect(failures).toEqual([{ gpa: hit.gpa, pid: 1, va: bssVa, owner: 'process' }]);
    expect(vm.counters().exits['memory-error']).toBe(1);
    expect(vm.kernel.badPages.has(hit.gpa)).toBe(true);
    expect(vm.memoryPages().find((p) => p.gpa === hit.gpa)).toMatchObject({ corrupted: true });
    // The poisoned frame is not returned to the host's free pool.
    expect(host.state[frame]).toBe(FrameState.Poisoned);
    expect(host.usage().free).toBe(host.frames - 1);
  });

  test('injection is deterministic in simulated time: two runs give the same console, statuses and counters', () => {
    const once = () => {
      const host = HostMemory.create(32);
      const vm = twoProcessVm(host);
      const out: number[] = [];
      vm.onConsole((_p, b) => out.push(...b));
      vm.run(20);
      vm.injectMemoryError(vm.frameOf({ pid: 1, va: 0x12000 }));
      vm.runToCompletion();
      return { out: Buffer.from(out).toString(), processes: vm.processes(), counters: vm.counters() };
    };
    expect(once()).toEqual(once());
  });

  test('an error in kernel memory (the console ring) panics the guest: the VM crashes with the reason', () => {
    const host = HostMemory.create(32);
    const vm = twoProcessVm(host);
    vm.run(5);
    vm.injectMemoryError(vm.frameOf({ gpa: ringGpa(0) }));
    expect(vm.runToCompletion()).toBe('crashed');
    expect(vm.reason).toMatch(/^guest-kernel-panic: memory error in kernel memory/);
    expect(host.usage().free).toBe(host.frames - 1);
  });

  test('a frame the VM does not own cannot be injected through it; a free frame poisoned on the host is retired', () => {
    const host = HostMemory.create(32);
    const vm = twoProcessVm(host);
    expect(() => vm.injectMemoryError(host.frames - 1)).toThrow(RangeError);
    expect(host.poisonFrame(host.frames - 1)).toBe(FrameState.Free);
    expect(host.state[host.frames - 1]).toBe(FrameState.Retired);
    expect(vm.runToCompletion()).toBe('stopped');
  });

  test('a memory error met by a syscall merged by lookahead kills the owner with SIGBUS, not the VM (regression)', () => {
    const r = assemble(`.globl _start
.text
_start:
  la t0, buf
  li t1, 0x0a41
  sh t1, 0(t0)
1:
  li a7, 172
  ecall
  li a0, 1
  la a1, buf
  li a2, 2
  li a7, 64
  ecall
  li t0, 20000
2:
  addi t0, t0, -1
  bnez t0, 2b
  j 1b
.bss
.align 12
buf: .space 4096
`);
    const host = HostMemory.create(32);
    const spec: VmSpec = {
      ...DEFAULT_SPEC, memoryMiB: 16, techniques: resolveTechniques({ syscallLookahead: { enabled: true } }),
      processes: [{ name: 'writer', elf: r.elf, argv: ['writer'], env: [], stdin: new Uint8Array() }],
    };
    const vm = new Vm(spec, host, 1);
    vm.run(10);
    expect(vm.counters().syscallLookahead.syscallsMerged).toBeGreaterThan(0);
    vm.injectMemoryError(vm.frameOf({ pid: 1, va: r.symbols.get('buf')! }));
    expect(vm.runToCompletion()).toBe('stopped');
    expect(vm.processes()[0]).toMatchObject({ signal: 7, status: 135 });
  });
});
