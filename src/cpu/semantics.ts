/**
 * Instruction semantics, written ONCE per mnemonic as JavaScript code templates. The interpreter
 * (interp.ts) is generated from these with `new Function`; a block translator can splice the
 * same templates with operand fields as constants.
 *
 * Template vocabulary (replaced by the code generator):
 *   RD RS1 RS2     register numbers          IMM     the row format's immediate (CSR: address)
 *   PC             address of this instruction (int32)
 *   LEN            instruction length in bytes (2 or 4)
 *   x              the Int32Array of registers (writes to x[0] are undone after each instruction)
 *   npc            next pc; jumps and taken branches assign it
 *   h              the Hart (memory access, CSRs, traps, counters)
 *   cyc            local cycle accumulator (the base cost is added by the loop)
 *   TAKEN          taken-branch bookkeeping (extra cycle, taken-branch counter)
 *
 * Instructions that can trap call h methods that throw the TRAP sentinel before any
 * architectural state changes, so a trapping instruction has no effect.
 */
import { COSTS, Ctr } from '../uarch/costs.js';

const branch = (cond: string) => `if (${cond}) { npc = (PC + IMM) | 0; TAKEN }`;

export const SEMANTICS: Record<string, string> = {
  // RV32I
  lui: 'x[RD] = IMM;',
  auipc: 'x[RD] = (PC + IMM) | 0;',
  jal: 'npc = (PC + IMM) | 0; h.linkJal(RD, PC, LEN); x[RD] = (PC + LEN) | 0; TAKEN',
  jalr: 'npc = h.linkJalr(RD, RS1, (x[RS1] + IMM) & ~1, PC, LEN); x[RD] = (PC + LEN) | 0; TAKEN',
  beq: branch('x[RS1] === x[RS2]'),
  bne: branch('x[RS1] !== x[RS2]'),
  blt: branch('x[RS1] < x[RS2]'),
  bge: branch('x[RS1] >= x[RS2]'),
  bltu: branch('(x[RS1] >>> 0) < (x[RS2] >>> 0)'),
  bgeu: branch('(x[RS1] >>> 0) >= (x[RS2] >>> 0)'),
  lb: 'x[RD] = (h.load8((x[RS1] + IMM) | 0) << 24) >> 24;',
  lh: 'x[RD] = (h.load16((x[RS1] + IMM) | 0) << 16) >> 16;',
  lw: 'x[RD] = h.load32((x[RS1] + IMM) | 0);',
  lbu: 'x[RD] = h.load8((x[RS1] + IMM) | 0);',
  lhu: 'x[RD] = h.load16((x[RS1] + IMM) | 0);',
  sb: 'h.store8((x[RS1] + IMM) | 0, x[RS2]);',
  sh: 'h.store16((x[RS1] + IMM) | 0, x[RS2]);',
  sw: 'h.store32((x[RS1] + IMM) | 0, x[RS2]);',
  addi: 'x[RD] = (x[RS1] + IMM) | 0;',
  slti: 'x[RD] = x[RS1] < IMM ? 1 : 0;',
  sltiu: 'x[RD] = (x[RS1] >>> 0) < (IMM >>> 0) ? 1 : 0;',
  xori: 'x[RD] = x[RS1] ^ IMM;',
  ori: 'x[RD] = x[RS1] | IMM;',
  andi: 'x[RD] = x[RS1] & IMM;',
  slli: 'x[RD] = x[RS1] << IMM;',
  srli: 'x[RD] = x[RS1] >>> IMM;',
  srai: 'x[RD] = x[RS1] >> IMM;',
  add: 'x[RD] = (x[RS1] + x[RS2]) | 0;',
  sub: 'x[RD] = (x[RS1] - x[RS2]) | 0;',
  sll: 'x[RD] = x[RS1] << (x[RS2] & 31);',
  slt: 'x[RD] = x[RS1] < x[RS2] ? 1 : 0;',
  sltu: 'x[RD] = (x[RS1] >>> 0) < (x[RS2] >>> 0) ? 1 : 0;',
  xor: 'x[RD] = x[RS1] ^ x[RS2];',
  srl: 'x[RD] = x[RS1] >>> (x[RS2] & 31);',
  sra: 'x[RD] = x[RS1] >> (x[RS2] & 31);',
  or: 'x[RD] = x[RS1] | x[RS2];',
  and: 'x[RD] = x[RS1] & x[RS2];',
  fence: '',
  ecall: 'h.ecall();',
  ebreak: 'h.breakpoint(PC);',
  // Zifencei
  'fence.i': 'h.fenceI();',
  // Zicsr: h.csrOp(op, csr, value, write, read) returns the old value; traps before any change.
  csrrw: 'x[RD] = h.csrOp(0, IMM, x[RS1], true, RD !== 0);',
  csrrs: 'x[RD] = h.csrOp(1, IMM, x[RS1], RS1 !== 0, true);',
  csrrc: 'x[RD] = h.csrOp(2, IMM, x[RS1], RS1 !== 0, true);',
  csrrwi: 'x[RD] = h.csrOp(0, IMM, RS1, true, RD !== 0);',
  csrrsi: 'x[RD] = h.csrOp(1, IMM, RS1, RS1 !== 0, true);',
  csrrci: 'x[RD] = h.csrOp(2, IMM, RS1, RS1 !== 0, true);',
  // RV32M
  mul: 'x[RD] = Math.imul(x[RS1], x[RS2]);',
  mulh: 'x[RD] = h.mulh(x[RS1], x[RS2]);',
  mulhsu: 'x[RD] = h.mulhsu(x[RS1], x[RS2]);',
  mulhu: 'x[RD] = h.mulhu(x[RS1], x[RS2]);',
  div: 'x[RD] = x[RS2] === 0 ? -1 : (x[RS1] === -2147483648 && x[RS2] === -1) ? x[RS1] : (x[RS1] / x[RS2]) | 0;',
  divu: 'x[RD] = x[RS2] === 0 ? -1 : ((x[RS1] >>> 0) / (x[RS2] >>> 0)) | 0;',
  rem: 'x[RD] = x[RS2] === 0 ? x[RS1] : (x[RS1] === -2147483648 && x[RS2] === -1) ? 0 : (x[RS1] % x[RS2]) | 0;',
  remu: 'x[RD] = x[RS2] === 0 ? x[RS1] : ((x[RS1] >>> 0) % (x[RS2] >>> 0)) | 0;',
  // RV32A
  'lr.w': 'x[RD] = h.loadReserved(x[RS1]);',
  'sc.w': 'x[RD] = h.storeConditional(x[RS1], x[RS2]);',
  'amoswap.w': 'x[RD] = h.amo(0, x[RS1], x[RS2]);',
  'amoadd.w': 'x[RD] = h.amo(1, x[RS1], x[RS2]);',
  'amoxor.w': 'x[RD] = h.amo(2, x[RS1], x[RS2]);',
  'amoand.w': 'x[RD] = h.amo(3, x[RS1], x[RS2]);',
  'amoor.w': 'x[RD] = h.amo(4, x[RS1], x[RS2]);',
  'amomin.w': 'x[RD] = h.amo(5, x[RS1], x[RS2]);',
  'amomax.w': 'x[RD] = h.amo(6, x[RS1], x[RS2]);',
  'amominu.w': 'x[RD] = h.amo(7, x[RS1], x[RS2]);',
  'amomaxu.w': 'x[RD] = h.amo(8, x[RS1], x[RS2]);',
  // Privileged: xRET returns the next pc.
  sret: 'npc = h.sret();',
  mret: 'npc = h.mret();',
  wfi: 'h.wfi();',
  'sfence.vma': 'h.sfenceVma();',
  // Hypervisor extension
  'hfence.vvma': 'h.hfence(false);',
  'hfence.gvma': 'h.hfence(true);',
  'hlv.b': 'x[RD] = (h.hlv(x[RS1], 1, false) << 24) >> 24;',
  'hlv.bu': 'x[RD] = h.hlv(x[RS1], 1, false);',
  'hlv.h': 'x[RD] = (h.hlv(x[RS1], 2, false) << 16) >> 16;',
  'hlv.hu': 'x[RD] = h.hlv(x[RS1], 2, false);',
  'hlvx.hu': 'x[RD] = h.hlv(x[RS1], 2, true);',
  'hlv.w': 'x[RD] = h.hlv(x[RS1], 4, false);',
  'hlvx.wu': 'x[RD] = h.hlv(x[RS1], 4, true);',
  'hsv.b': 'h.hsv(x[RS1], x[RS2], 1);',
  'hsv.h': 'h.hsv(x[RS1], x[RS2], 2);',
  'hsv.w': 'h.hsv(x[RS1], x[RS2], 4);',
  // Xhvpm: the hart has no privileged mode of its own; the hypervisor emulates pmret.
  pmret: 'h.pmret();',
};

/** Extra cycles beyond the base cost, by mnemonic (DESIGN.md section 6). */
export const EXTRA_CYCLES: Record<string, number> = {
  mul: COSTS.mul, mulh: COSTS.mul, mulhsu: COSTS.mul, mulhu: COSTS.mul,
  div: COSTS.div, divu: COSTS.div, rem: COSTS.div, remu: COSTS.div,
};

export const TAKEN_CODE = `cyc += ${COSTS.takenBranch}; h.ctr[${Ctr.TakenBranches}]++;`;
