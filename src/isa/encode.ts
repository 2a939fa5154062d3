/**
 * Encoder of 32-bit instructions, driven by the table: a row's fixed bits come from its
 * pattern, its operand fields from its format. The assembler, the guest kernel's code
 * generator and the tests all encode through here.
 */
import * as F from './fields.js';
import { IMM, immRange, place } from './imm.js';
import { Format, INSNS, InsnRow, maskMatch } from './table.js';

/** Operands of one instruction; which fields are used depends on the row's format. */
export interface Operands {
  rd?: number;
  rs1?: number;
  rs2?: number;
  /** Immediate: a value for I/IL/S/CSRI/Ishift, a byte offset for B/J, the 20-bit value for U. */
  imm?: number;
  csr?: number;
  aq?: number;
  rl?: number;
  pred?: number;
  succ?: number;
}

export class EncodeError extends Error {}

const FIXED = INSNS.map((r) => maskMatch(r.pattern).match);

const reg = (v: number | undefined, what: string, row: InsnRow): number => {
  const r = v ?? 0;
  if (!Number.isInteger(r) || r < 0 || r > 31) throw new EncodeError(`${row.name}: ${what} must be a register 0-31`);
  return r;
};

function checkRange(row: InsnRow, v: number, lo: number, hi: number, what: string, align = 1): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new EncodeError(`${row.name}: ${what} ${v} out of range [${lo}, ${hi}]`);
  }
  if (v % align !== 0) throw new EncodeError(`${row.name}: ${what} ${v} is not a multiple of ${align}`);
  return v;
}

/** Immediate ranges of each format, for the assembler's messages and for range checks. */
export const IMM_RANGE: Partial<Record<Format, [number, number, number]>> = {
  I: immRange(IMM.I), IL: immRange(IMM.I), JALR: immRange(IMM.I), S: immRange(IMM.S),
  Ishift: immRange(IMM.Ishift), B: immRange(IMM.B), J: immRange(IMM.J),
  // The assembler's U operand is the 20-bit value (lui x1, 0x12345); CSRI's sits in the rs1 field.
  U: [0, 0xfffff, 1], CSRI: [0, 31, 1],
};

/**
 * Encodes row `id` with `ops`.
 * Raises: EncodeError when a register or immediate is out of range for the format.
 */
export function encode(id: number, ops: Operands): number {
  const row = INSNS[id];
  let w = FIXED[id];
  const f = row.format;
  const range = IMM_RANGE[f];
  const imm = range ? checkRange(row, ops.imm ?? 0, range[0], range[1], 'immediate', range[2]) : 0;
  switch (f) {
    case 'R':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) | (reg(ops.rs2, 'rs2', row) << 20);
      break;
    case 'I': case 'IL': case 'JALR':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) | place(IMM.I, imm);
      break;
    case 'Ishift':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) | place(IMM.Ishift, imm);
      break;
    case 'S':
      w |= (reg(ops.rs1, 'rs1', row) << 15) | (reg(ops.rs2, 'rs2', row) << 20) | place(IMM.S, imm);
      break;
    case 'B':
      w |= (reg(ops.rs1, 'rs1', row) << 15) | (reg(ops.rs2, 'rs2', row) << 20) | place(IMM.B, imm);
      break;
    case 'U':
      w |= (reg(ops.rd, 'rd', row) << 7) | place(IMM.U, imm << 12);
      break;
    case 'J':
      w |= (reg(ops.rd, 'rd', row) << 7) | place(IMM.J, imm);
      break;
    case 'CSR':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) |
        place(IMM.CSR, checkRange(row, ops.csr ?? 0, 0, 0xfff, 'csr'));
      break;
    case 'CSRI':
      w |= (reg(ops.rd, 'rd', row) << 7) | (imm << 15) | place(IMM.CSR, checkRange(row, ops.csr ?? 0, 0, 0xfff, 'csr'));
      break;
    case 'AMO':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) | (reg(ops.rs2, 'rs2', row) << 20) |
        ((ops.aq ?? 0) & 1) << 26 | ((ops.rl ?? 0) & 1) << 25;
      break;
    case 'LR':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) |
        ((ops.aq ?? 0) & 1) << 26 | ((ops.rl ?? 0) & 1) << 25;
      break;
    case 'FENCE':
      w |= (checkRange(row, ops.pred ?? 15, 0, 15, 'pred') << 24) | (checkRange(row, ops.succ ?? 15, 0, 15, 'succ') << 20);
      break;
    case 'SFENCE':
      w |= (reg(ops.rs1, 'rs1', row) << 15) | (reg(ops.rs2, 'rs2', row) << 20);
      break;
    case 'HLV':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15);
      break;
    case 'HSV':
      w |= (reg(ops.rs1, 'rs1', row) << 15) | (reg(ops.rs2, 'rs2', row) << 20);
      break;
    case 'NONE': case 'FENCEI':
      break;
  }
  return w >>> 0;
}

/**
 * The operands of word `w` decoded as row `id`: the inverse of encode. For every format but
 * FENCE (fm, rs1, rd) and FENCEI (imm, rs1, rd), whose reserved fields encode leaves 0,
 * encode(id, operands(id, w)) === w.
 */
export function operands(id: number, w: number): Operands {
  const f = INSNS[id].format;
  const o: Operands = {};
  switch (f) {
    case 'R': case 'AMO': case 'LR': case 'SFENCE': case 'HLV': case 'HSV':
      o.rd = F.rd(w); o.rs1 = F.rs1(w); o.rs2 = F.rs2(w); o.aq = F.aq(w); o.rl = F.rl(w);
      break;
    case 'I': case 'IL': case 'JALR': o.rd = F.rd(w); o.rs1 = F.rs1(w); o.imm = F.immI(w); break;
    case 'Ishift': o.rd = F.rd(w); o.rs1 = F.rs1(w); o.imm = F.shamt(w); break;
    case 'S': o.rs1 = F.rs1(w); o.rs2 = F.rs2(w); o.imm = F.immS(w); break;
    case 'B': o.rs1 = F.rs1(w); o.rs2 = F.rs2(w); o.imm = F.immB(w); break;
    case 'U': o.rd = F.rd(w); o.imm = F.immU(w) >>> 12; break;
    case 'J': o.rd = F.rd(w); o.imm = F.immJ(w); break;
    case 'CSR': o.rd = F.rd(w); o.rs1 = F.rs1(w); o.csr = F.csr(w); break;
    case 'CSRI': o.rd = F.rd(w); o.imm = F.rs1(w); o.csr = F.csr(w); break;
    case 'FENCE': o.pred = F.fencePred(w); o.succ = F.fenceSucc(w); break;
    case 'FENCEI': case 'NONE': break;
  }
  return o;
}
