/**
 * Technique 3 must never change what a program computes: random programs mixing syscalls with
 * ALU, loads/stores and branches run with syscall lookahead off and on and must print the same
 * bytes (registers and memory are dumped at the end) and exit the same, faults included.
 */
import fc from 'fast-check';
import { assemble } from '../isa/assembler.js';
import { programInit, programSource, straight } from '../testing/random-programs.js';
import { runProgram } from '../runtime/run-program.js';
import { resolveTechniques } from '../techniques/catalogue.js';

const SYSCALLS = [
  'li a7, 172\n  ecall',                                   // getpid
  'li a7, 124\n  ecall',                                   // sched_yield
  'li a0, 0\n  li a7, 214\n  ecall',                       // brk(0)
  'li a0, 1\n  addi a1, t6, 256\n  li a7, 403\n  ecall',   // clock_gettime64 into memory the dump does not cover
  'li a0, 1\n  mv a1, t6\n  li a2, 24\n  li a7, 64\n  ecall', // write 24 bytes of the buffer
  'li a7, 999\n  ecall',                                   // unknown: -ENOSYS
];
const syscall = fc.constantFrom(...SYSCALLS);
/** A load right after a syscall that faults (address 0): the fault must happen in user mode, where it would. */
const faulting = fc.constant('li a7, 172\n  ecall\n  lw a0, 0(zero)');
const branchy = fc.tuple(fc.constantFrom('beq', 'bne', 'blt', 'bgeu'), fc.constantFrom('a0', 's0', 'a3', 'zero'), fc.constantFrom('a1', 's1', 'zero'), fc.array(fc.oneof(straight, syscall), { minLength: 1, maxLength: 3 }))
  .map(([op, a, b, skipped]) => `${op} ${a}, ${b}, 1f\n  ${skipped.join('\n  ')}\n1:`);
const body = fc.array(fc.oneof({ arbitrary: straight, weight: 120 }, { arbitrary: syscall, weight: 80 }, { arbitrary: branchy, weight: 20 }, { arbitrary: faulting, weight: 1 }), { minLength: 10, maxLength: 60 });

const ON = resolveTechniques({ syscallLookahead: { enabled: true } });
const run = (elf: Uint8Array, techniques?: typeof ON) => runProgram(elf, { memoryMiB: 8, techniques, maxInstructions: 1e7 });

describe('syscall lookahead: plain-execution semantics', () => {
  test(`random syscall-heavy programs behave identically with lookahead off and on (${process.env.CI ? 300 : 120} cases)`, () => {
    let merged = 0;
    fc.assert(fc.property(programInit, body, fc.integer({ min: 1, max: 64 }), (init, b, window) => {
      const elf = assemble(programSource(init, b)).elf;
      const off = run(elf);
      const on = run(elf, resolveTechniques({ syscallLookahead: { enabled: true, window } }));
      expect(on.stdout.equals(off.stdout)).toBe(true);
      expect(on.stderr.equals(off.stderr)).toBe(true);
      expect(on.status).toBe(off.status);
      expect(on.counters.syscalls).toEqual(off.counters.syscalls);
      expect(on.counters.enosys).toEqual(off.counters.enosys);
      expect(on.counters.crossings).toBe(off.counters.crossings - on.counters.syscallLookahead.crossingsAvoided);
      merged += on.counters.syscallLookahead.syscallsMerged;
    }), { seed: 20261124, numRuns: process.env.CI ? 300 : 120 });
    expect(merged).toBeGreaterThan(100);
  });

  test('code modified after an ecall is seen as it is now (self-modifying code in an RWX mapping)', () => {
    // Copy a 4-instruction routine into an RWX mmap, patch the instruction after its first ecall
    // (addi s1, s1, 1 -> addi s1, s1, 5), fence.i, call it twice with a patch in between.
    const src = `
.globl _start
.text
_start:
  li a0, 0
  li a1, 4096
  li a2, 7
  li a3, 0x22
  li a4, -1
  li a5, 0
  li a7, 222
  ecall
  mv s0, a0
  la t0, routine
  lw t1, 0(t0)
  sw t1, 0(s0)
  lw t1, 4(t0)
  sw t1, 4(s0)
  lw t1, 8(t0)
  sw t1, 8(s0)
  lw t1, 12(t0)
  sw t1, 12(s0)
  lw t1, 16(t0)
  sw t1, 16(s0)
  fence.i
  li s1, 0
  jalr ra, 0(s0)
  la t0, patched
  lw t1, 0(t0)
  sw t1, 8(s0)
  fence.i
  jalr ra, 0(s0)
  mv a0, s1
  li a7, 93
  ecall
routine:
  li a7, 172
  ecall
  addi s1, s1, 1
  li a7, 172
  ecall
  ret
patched:
  addi s1, s1, 5
`;
    const fixed = src.replace('  sw t1, 16(s0)\n', '  sw t1, 16(s0)\n  lw t1, 20(t0)\n  sw t1, 20(s0)\n');
    const elf = assemble(fixed).elf;
    const off = run(elf);
    const on = run(elf, ON);
    expect(off.status).toBe(6);
    expect(on.status).toBe(6);
    expect(on.counters.syscallLookahead.syscallsMerged).toBeGreaterThanOrEqual(2);
  });

  test('effect on the syscall-heavy workload: fewer crossings and cycles; none on a CPU-bound one beyond the scan', async () => {
    const { builtinElf } = await import('../runtime/workloads.js');
    const sys = builtinElf('syscalls');
    const [off, on] = [undefined, ON].map((t) => runProgram(sys, { argv: ['syscalls', '500'], techniques: t }));
    expect(on.stdout.equals(off.stdout)).toBe(true);
    expect(on.counters.crossings).toBeLessThan(off.counters.crossings);
    expect(on.counters.cycles).toBeLessThan(off.counters.cycles);
    expect(on.counters.syscallLookahead.syscallsMerged).toBeGreaterThan(500);
    const cpu = builtinElf('cpu');
    const [coff, con] = [undefined, ON].map((t) => runProgram(cpu, { argv: ['cpu', '1'], techniques: t }));
    expect(con.counters.crossings).toBe(coff.counters.crossings);
    expect(con.counters.cycles).toBeGreaterThanOrEqual(coff.counters.cycles);
  });
});
