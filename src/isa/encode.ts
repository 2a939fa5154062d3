/**
 * Encoder of 32-bit instructions, driven by the table: a row's fixed bits come from its
 * pattern, its operand fields from its format. The assembler, the guest kernel's code
 * generator and the tests all encode through here.
 */
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
  I: [-2048, 2047, 1], IL: [-2048, 2047, 1], JALR: [-2048, 2047, 1], S: [-2048, 2047, 1],
  Ishift: [0, 31, 1], B: [-4096, 4094, 2], J: [-1048576, 1048574, 2], U: [0, 0xfffff, 1], CSRI: [0, 31, 1],
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
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) | ((imm & 0xfff) << 20);
      break;
    case 'Ishift':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) | (imm << 20);
      break;
    case 'S':
      w |= (reg(ops.rs1, 'rs1', row) << 15) | (reg(ops.rs2, 'rs2', row) << 20) |
        ((imm & 0x1f) << 7) | (((imm >> 5) & 0x7f) << 25);
      break;
    case 'B':
      w |= (reg(ops.rs1, 'rs1', row) << 15) | (reg(ops.rs2, 'rs2', row) << 20) |
        (((imm >> 11) & 1) << 7) | (((imm >> 1) & 0xf) << 8) | (((imm >> 5) & 0x3f) << 25) | (((imm >> 12) & 1) << 31);
      break;
    case 'U':
      w |= (reg(ops.rd, 'rd', row) << 7) | (imm << 12);
      break;
    case 'J':
      w |= (reg(ops.rd, 'rd', row) << 7) | (((imm >> 12) & 0xff) << 12) | (((imm >> 11) & 1) << 20) |
        (((imm >> 1) & 0x3ff) << 21) | (((imm >> 20) & 1) << 31);
      break;
    case 'CSR':
      w |= (reg(ops.rd, 'rd', row) << 7) | (reg(ops.rs1, 'rs1', row) << 15) |
        (checkRange(row, ops.csr ?? 0, 0, 0xfff, 'csr') << 20);
      break;
    case 'CSRI':
      w |= (reg(ops.rd, 'rd', row) << 7) | (imm << 15) | (checkRange(row, ops.csr ?? 0, 0, 0xfff, 'csr') << 20);
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
