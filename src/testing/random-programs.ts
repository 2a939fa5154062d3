/**
 * Random straight-line RV32IMAC programs for differential testing against qemu-riscv32.
 *
 * Each program seeds x1..x30 (except sp) with random values, runs a random mix of ALU, M,
 * shift, load/store (every width, in a scratch buffer), AMO, LR/SC and short forward-branch
 * instructions, then writes all registers and the scratch buffer to stdout and exits with a
 * status derived from a register. GNU as compresses eligible instructions (the C extension is
 * in -march), so compressed forms are exercised too.
 */
import fc from 'fast-check';
import { INSNS, InsnRow } from '../isa/table.js';

/** Registers the generated code may use: everything but zero, sp and t6 (the buffer base). */
const REGS = ['ra', 'gp', 'tp', 't0', 't1', 't2', 's0', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5',
  'a6', 'a7', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9', 's10', 's11', 't3', 't4', 't5'];
/** Registers that compressed forms can name (x8-x15), weighted up so compression happens. */
const CREGS = ['s0', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5'];
const BUF = 256;

const reg = fc.oneof({ arbitrary: fc.constantFrom(...REGS), weight: 2 }, { arbitrary: fc.constantFrom(...CREGS), weight: 3 }, fc.constant('zero'));
const dst = fc.oneof({ arbitrary: fc.constantFrom(...REGS), weight: 2 }, { arbitrary: fc.constantFrom(...CREGS), weight: 3 });
const interesting = fc.constantFrom(0, 1, -1, 2, 0x7fffffff, -0x80000000, 0x80000000, 31, 32, 0xffff, 0x8000);
const value = fc.oneof(fc.integer({ min: -0x80000000, max: 0x7fffffff }), interesting, fc.integer({ min: -40, max: 40 }));
const imm12 = fc.oneof(fc.integer({ min: -2048, max: 2047 }), fc.constantFrom(0, 1, -1, 2047, -2048));

// Instruction classes from the instruction facts (isa/facts.ts), in table order (loads by size).
const names = (keep: (r: InsnRow) => boolean) => INSNS.filter(keep).map((r) => r.name);
const R_OPS = names((r) => r.format === 'R' && (r.ext === 'I' || r.ext === 'M'));
const I_OPS = names((r) => r.format === 'I');
const SH_OPS = names((r) => r.format === 'Ishift');
const LOADS: Array<[string, number]> = INSNS.filter((r) => r.kind === 'load').sort((a, b) => a.size - b.size).map((r) => [r.name, r.size]);
const STORES: Array<[string, number]> = INSNS.filter((r) => r.kind === 'store').map((r) => [r.name, r.size]);
const AMOS = names((r) => r.kind === 'amo');
const BRANCHES = names((r) => r.kind === 'branch');

const offset = (align: number) => fc.integer({ min: 0, max: BUF / align - 1 }).map((i) => i * align);

export const straight: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom(...R_OPS), dst, reg, reg).map(([op, d, a, b]) => `${op} ${d}, ${a}, ${b}`),
  fc.tuple(fc.constantFrom(...I_OPS), dst, reg, imm12).map(([op, d, a, i]) => `${op} ${d}, ${a}, ${i}`),
  fc.tuple(fc.constantFrom(...SH_OPS), dst, reg, fc.integer({ min: 0, max: 31 })).map(([op, d, a, i]) => `${op} ${d}, ${a}, ${i}`),
  fc.tuple(dst, fc.integer({ min: 0, max: 0xfffff })).map(([d, i]) => `lui ${d}, ${i}`),
  fc.tuple(dst, value).map(([d, v]) => `li ${d}, ${v}`),
  fc.tuple(fc.constantFrom(...LOADS), dst).chain(([[op, w], d]) => offset(w).map((o) => `${op} ${d}, ${o}(t6)`)),
  fc.tuple(fc.constantFrom(...STORES), reg).chain(([[op, w], s]) => offset(w).map((o) => `${op} ${s}, ${o}(t6)`)),
  fc.tuple(fc.constantFrom(...AMOS), dst, reg, offset(4)).map(([op, d, s, o]) => `addi t5, t6, ${o}\n  ${op} ${d}, ${s}, (t5)`),
  fc.tuple(dst, reg, offset(4), fc.boolean()).map(([d, s, o, pair]) =>
    pair ? `addi t5, t6, ${o}\n  lr.w ${d}, (t5)\n  sc.w ${d}, ${s}, (t5)` : `addi t5, t6, ${o}\n  sc.w ${d}, ${s}, (t5)`),
);

/** One program's body: straight-line code with short forward branches. */
export const programBody: fc.Arbitrary<string[]> = fc.array(
  fc.oneof(
    { arbitrary: straight, weight: 8 },
    {
      arbitrary: fc.tuple(fc.constantFrom(...BRANCHES), reg, reg, fc.array(straight, { minLength: 1, maxLength: 3 }))
        .map(([op, a, b, skipped]) => `${op} ${a}, ${b}, 1f\n  ${skipped.join('\n  ')}\n1:`),
      weight: 1,
    },
  ),
  { minLength: 20, maxLength: 80 },
);

export const programInit: fc.Arbitrary<number[]> = fc.array(value, { minLength: REGS.length, maxLength: REGS.length });

/** GNU-as source of a complete program. */
export function programSource(init: number[], body: string[]): string {
  const seed = REGS.map((r, i) => `  li ${r}, ${init[i]}`).join('\n');
  const dump = REGS.map((r, i) => `  sw ${r}, ${4 * i}(t6)`).join('\n');
  return `  .text
  .globl _start
_start:
  la t6, buf
${seed}
  ${body.join('\n  ')}
  la t6, dump
${dump}
  li a7, 64
  li a0, 1
  la a1, dump
  li a2, ${4 * REGS.length + BUF}
  ecall
  lw a0, 0(t6)
  andi a0, a0, 0x7f
  li a7, 93
  ecall
  .data
  .balign 4
dump: .space ${4 * REGS.length}
buf:
${Array.from({ length: BUF / 4 }, (_, i) => `  .word ${(Math.imul(i + 1, 0x9e3779b1) >>> 0)}`).join('\n')}
`;
}

/** The n programs of a fixed-seed run. */
export function samplePrograms(n: number, seed: number): string[] {
  return fc.sample(fc.tuple(programInit, programBody), { seed, numRuns: n }).map(([i, b]) => programSource(i, b));
}
