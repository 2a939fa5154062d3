/**
 * Instruction semantics, written ONCE per mnemonic as code templates with explicit placeholders.
 * A template is a function of the slots (Slots) that each consumer fills its own way: the
 * interpreter (template.ts runTimeSlots: fields from its predecode cache) and the lookahead
 * emulator (wordSlots: fields extracted from the instruction word `w` at run time), the JIT's
 * blocks, traces and regions (jit-translate.ts: fields as constants, registers in locals, loads
 * and stores inlined, branches that a trace follows or leaves). No consumer reads the rendered text back.
 *
 * Besides the slots, templates use:
 *   x      the Int32Array of registers (reads go through r1/r2 and writes through writeRd)
 *   npc    next pc (xRET assigns it; jumps and branches go through jump/branch)
 *   h      the hart: its methods do memory access, CSRs, traps and counters. Which instructions
 *          call into the hart and may trap is a fact of the instruction (isa/facts.ts), not of
 *          the text.
 *   cyc    local cycle accumulator (the base cost is added by the loop)
 *
 * Instructions that can trap call h methods that throw the TRAP sentinel before any
 * architectural state changes, so a trapping instruction has no effect.
 */
import { COSTS, Ctr } from '../uarch/costs.js';
import { Kind } from '../isa/table.js';

/** The placeholders of a template. Code fragments are JavaScript source. */
export interface Slots {
  /** Register numbers (as code). */
  readonly rd: string;
  readonly rs1: string;
  readonly rs2: string;
  /** The values of rs1 and rs2 (int32). */
  readonly r1: string;
  readonly r2: string;
  /** The row format's immediate (CSR: the CSR address). */
  readonly imm: string;
  /** Address of this instruction (int32) and its length in bytes (2 or 4). */
  readonly pc: string;
  readonly len: string;
  /** WRITE_RD(value): the statement that writes `value` (int32) to rd. */
  writeRd(value: string): string;
  /** LOAD: the expression of the row's plain load (size and sign from its facts) at rs1 + imm. */
  load(): string;
  /** STORE: the statement of the row's plain store of rs2 at rs1 + imm. */
  store(): string;
  /** BRANCH(cond): the statement of a conditional branch to pc + imm, taken when `cond`. */
  branch(cond: string): string;
  /** JUMP(target): the statement of an unconditional jump to `target` (taken-jump bookkeeping included). */
  jump(target: string): string;
}

export type Template = (s: Slots) => string;

const LOAD: Template = (s) => s.writeRd(s.load());
const STORE: Template = (s) => s.store();

/** The sign extension of a loaded value of `size` bytes, as code (used by every LOAD expansion). */
export const signExtend = (value: string, size: number, signed: boolean): string =>
  signed && size < 4 ? `(${value} << ${32 - 8 * size}) >> ${32 - 8 * size}` : value;

export const SEMANTICS: Record<string, Template> = {
  // RV32I
  lui: (s) => s.writeRd(`${s.imm}`),
  auipc: (s) => s.writeRd(`(${s.pc} + ${s.imm}) | 0`),
  jal: (s) => `${s.jump(`(${s.pc} + ${s.imm}) | 0`)} h.linkJal(${s.rd}, ${s.pc}, ${s.len}); ${s.writeRd(`(${s.pc} + ${s.len}) | 0`)}`,
  jalr: (s) => `${s.jump(`h.linkJalr(${s.rd}, ${s.rs1}, (${s.r1} + ${s.imm}) & ~1, ${s.pc}, ${s.len})`)} ${s.writeRd(`(${s.pc} + ${s.len}) | 0`)}`,
  beq: (s) => s.branch(`${s.r1} === ${s.r2}`),
  bne: (s) => s.branch(`${s.r1} !== ${s.r2}`),
  blt: (s) => s.branch(`${s.r1} < ${s.r2}`),
  bge: (s) => s.branch(`${s.r1} >= ${s.r2}`),
  bltu: (s) => s.branch(`(${s.r1} >>> 0) < (${s.r2} >>> 0)`),
  bgeu: (s) => s.branch(`(${s.r1} >>> 0) >= (${s.r2} >>> 0)`),
  lb: LOAD,
  lh: LOAD,
  lw: LOAD,
  lbu: LOAD,
  lhu: LOAD,
  sb: STORE,
  sh: STORE,
  sw: STORE,
  addi: (s) => s.writeRd(`(${s.r1} + ${s.imm}) | 0`),
  slti: (s) => s.writeRd(`${s.r1} < ${s.imm} ? 1 : 0`),
  sltiu: (s) => s.writeRd(`(${s.r1} >>> 0) < (${s.imm} >>> 0) ? 1 : 0`),
  xori: (s) => s.writeRd(`${s.r1} ^ ${s.imm}`),
  ori: (s) => s.writeRd(`${s.r1} | ${s.imm}`),
  andi: (s) => s.writeRd(`${s.r1} & ${s.imm}`),
  slli: (s) => s.writeRd(`${s.r1} << ${s.imm}`),
  srli: (s) => s.writeRd(`${s.r1} >>> ${s.imm}`),
  srai: (s) => s.writeRd(`${s.r1} >> ${s.imm}`),
  add: (s) => s.writeRd(`(${s.r1} + ${s.r2}) | 0`),
  sub: (s) => s.writeRd(`(${s.r1} - ${s.r2}) | 0`),
  sll: (s) => s.writeRd(`${s.r1} << (${s.r2} & 31)`),
  slt: (s) => s.writeRd(`${s.r1} < ${s.r2} ? 1 : 0`),
  sltu: (s) => s.writeRd(`(${s.r1} >>> 0) < (${s.r2} >>> 0) ? 1 : 0`),
  xor: (s) => s.writeRd(`${s.r1} ^ ${s.r2}`),
  srl: (s) => s.writeRd(`${s.r1} >>> (${s.r2} & 31)`),
  sra: (s) => s.writeRd(`${s.r1} >> (${s.r2} & 31)`),
  or: (s) => s.writeRd(`${s.r1} | ${s.r2}`),
  and: (s) => s.writeRd(`${s.r1} & ${s.r2}`),
  fence: () => '',
  ecall: () => 'h.ecall();',
  ebreak: (s) => `h.breakpoint(${s.pc});`,
  // Zifencei
  'fence.i': () => 'h.fenceI();',
  // Zicsr: h.csrOp(op, csr, value, write, read) returns the old value; traps before any change.
  csrrw: (s) => s.writeRd(`h.csrOp(0, ${s.imm}, ${s.r1}, true, ${s.rd} !== 0)`),
  csrrs: (s) => s.writeRd(`h.csrOp(1, ${s.imm}, ${s.r1}, ${s.rs1} !== 0, true)`),
  csrrc: (s) => s.writeRd(`h.csrOp(2, ${s.imm}, ${s.r1}, ${s.rs1} !== 0, true)`),
  csrrwi: (s) => s.writeRd(`h.csrOp(0, ${s.imm}, ${s.rs1}, true, ${s.rd} !== 0)`),
  csrrsi: (s) => s.writeRd(`h.csrOp(1, ${s.imm}, ${s.rs1}, ${s.rs1} !== 0, true)`),
  csrrci: (s) => s.writeRd(`h.csrOp(2, ${s.imm}, ${s.rs1}, ${s.rs1} !== 0, true)`),
  // RV32M
  mul: (s) => s.writeRd(`Math.imul(${s.r1}, ${s.r2})`),
  mulh: (s) => s.writeRd(`h.mulh(${s.r1}, ${s.r2})`),
  mulhsu: (s) => s.writeRd(`h.mulhsu(${s.r1}, ${s.r2})`),
  mulhu: (s) => s.writeRd(`h.mulhu(${s.r1}, ${s.r2})`),
  div: (s) => s.writeRd(`${s.r2} === 0 ? -1 : (${s.r1} === -2147483648 && ${s.r2} === -1) ? ${s.r1} : (${s.r1} / ${s.r2}) | 0`),
  divu: (s) => s.writeRd(`${s.r2} === 0 ? -1 : ((${s.r1} >>> 0) / (${s.r2} >>> 0)) | 0`),
  rem: (s) => s.writeRd(`${s.r2} === 0 ? ${s.r1} : (${s.r1} === -2147483648 && ${s.r2} === -1) ? 0 : (${s.r1} % ${s.r2}) | 0`),
  remu: (s) => s.writeRd(`${s.r2} === 0 ? ${s.r1} : ((${s.r1} >>> 0) % (${s.r2} >>> 0)) | 0`),
  // RV32A
  'lr.w': (s) => s.writeRd(`h.loadReserved(${s.r1})`),
  'sc.w': (s) => s.writeRd(`h.storeConditional(${s.r1}, ${s.r2})`),
  'amoswap.w': (s) => s.writeRd(`h.amo(0, ${s.r1}, ${s.r2})`),
  'amoadd.w': (s) => s.writeRd(`h.amo(1, ${s.r1}, ${s.r2})`),
  'amoxor.w': (s) => s.writeRd(`h.amo(2, ${s.r1}, ${s.r2})`),
  'amoand.w': (s) => s.writeRd(`h.amo(3, ${s.r1}, ${s.r2})`),
  'amoor.w': (s) => s.writeRd(`h.amo(4, ${s.r1}, ${s.r2})`),
  'amomin.w': (s) => s.writeRd(`h.amo(5, ${s.r1}, ${s.r2})`),
  'amomax.w': (s) => s.writeRd(`h.amo(6, ${s.r1}, ${s.r2})`),
  'amominu.w': (s) => s.writeRd(`h.amo(7, ${s.r1}, ${s.r2})`),
  'amomaxu.w': (s) => s.writeRd(`h.amo(8, ${s.r1}, ${s.r2})`),
  // Privileged: xRET returns the next pc.
  sret: () => 'npc = h.sret();',
  mret: () => 'npc = h.mret();',
  wfi: () => 'h.wfi();',
  'sfence.vma': () => 'h.sfenceVma();',
  // Hypervisor extension
  'hfence.vvma': () => 'h.hfence(false);',
  'hfence.gvma': () => 'h.hfence(true);',
  'hlv.b': (s) => s.writeRd(`(h.hlv(${s.r1}, 1, false) << 24) >> 24`),
  'hlv.bu': (s) => s.writeRd(`h.hlv(${s.r1}, 1, false)`),
  'hlv.h': (s) => s.writeRd(`(h.hlv(${s.r1}, 2, false) << 16) >> 16`),
  'hlv.hu': (s) => s.writeRd(`h.hlv(${s.r1}, 2, false)`),
  'hlvx.hu': (s) => s.writeRd(`h.hlv(${s.r1}, 2, true)`),
  'hlv.w': (s) => s.writeRd(`h.hlv(${s.r1}, 4, false)`),
  'hlvx.wu': (s) => s.writeRd(`h.hlv(${s.r1}, 4, true)`),
  'hsv.b': (s) => `h.hsv(${s.r1}, ${s.r2}, 1);`,
  'hsv.h': (s) => `h.hsv(${s.r1}, ${s.r2}, 2);`,
  'hsv.w': (s) => `h.hsv(${s.r1}, ${s.r2}, 4);`,
  // Xdomain: a protection-domain gate; returns the next pc (the entry, or the caller's return address).
  dgate: (s) => `npc = h.dgate(${s.r1}, ${s.rs1}, ${s.pc}, ${s.len});`,
  // Xhvpm: the hart has no privileged mode of its own; the hypervisor emulates pmret.
  pmret: () => 'h.pmret();',

};

/** Extra cycles beyond the base cost, by kind (DESIGN.md section 6). */
export const EXTRA_CYCLES_OF_KIND: Partial<Record<Kind, number>> = { mul: COSTS.mul, div: COSTS.div };

/** Taken-branch bookkeeping of the interpreter (and the lookahead's scratch counters). */
export const TAKEN_CODE = `cyc += ${COSTS.takenBranch}; h.ctr[${Ctr.TakenBranches}]++;`;
