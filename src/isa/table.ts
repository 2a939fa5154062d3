/**
 * The RV32 instruction table: one row per instruction, grouped by extension, in the style of
 * QEMU's insn32.decode. The decoder, disassembler, assembler and interpreter are all driven by
 * these rows; a row's index in INSNS is its op id.
 *
 * Patterns are written MSB first, 32 (or 16 for compressed rows) characters of '0', '1' or '.',
 * with spaces allowed between fields for readability.
 */

import { CIMM, IMM, extractor, place } from './imm.js';

export type Extension = 'I' | 'M' | 'A' | 'C' | 'Zicsr' | 'Zifencei' | 'Priv' | 'H';

/**
 * Operand formats of 32-bit instructions. They decide how the assembler parses operands and how
 * the disassembler prints them.
 *   R       rd, rs1, rs2          I       rd, rs1, imm12        IL     rd, imm12(rs1)  (loads)
 *   Ishift  rd, rs1, shamt        S       rs2, imm12(rs1)       B      rs1, rs2, offset
 *   U       rd, imm20             J       rd, offset            JALR   rd, imm12(rs1)
 *   CSR     rd, csr, rs1          CSRI    rd, csr, uimm5        AMO    rd, rs2, (rs1)
 *   LR      rd, (rs1)             FENCE   pred, succ            NONE   (no operands)
 *   SFENCE  rs1, rs2              HLV     rd, (rs1)             HSV    rs2, (rs1)
 *   FENCEI  (no operands; imm/rs1/rd fields are reserved and ignored)
 */
export type Format =
  | 'R' | 'I' | 'IL' | 'Ishift' | 'S' | 'B' | 'U' | 'J' | 'JALR'
  | 'CSR' | 'CSRI' | 'AMO' | 'LR' | 'FENCE' | 'FENCEI' | 'NONE' | 'SFENCE' | 'HLV' | 'HSV';

/**
 * What an instruction does, as the engines need to know it. facts.ts derives every other fact
 * (ends a block, may trap, writes memory, ...) from the kind and is the contract to read.
 *   alu     integer computation (RV32I register-register/immediate, lui, auipc)
 *   mul     RV32M multiplies            div     RV32M divides and remainders
 *   load    plain load (lb ... lhu)     store   plain store (sb sh sw)
 *   lr      load-reserved               sc      store-conditional     amo   atomic read-modify-write
 *   branch  conditional branch          jal     direct jump           jalr  indirect jump
 *   csr     Zicsr access                fence   memory ordering       fencei  instruction-fetch fence
 *   system  ecall, ebreak, xRET, wfi, sfence.vma, hfence.*
 *   hlv     hypervisor virtual-machine load (hlv, hlvx)      hsv   hypervisor virtual-machine store
 */
export type Kind =
  | 'alu' | 'mul' | 'div' | 'load' | 'store' | 'lr' | 'sc' | 'amo' | 'branch' | 'jal' | 'jalr'
  | 'csr' | 'fence' | 'fencei' | 'system' | 'hlv' | 'hsv';

export interface InsnRow {
  /** GNU mnemonic. */
  readonly name: string;
  /** 32 characters of '0' '1' '.', MSB first (spaces ignored). */
  readonly pattern: string;
  readonly format: Format;
  readonly ext: Extension;
  readonly kind: Kind;
  /** Bytes of memory accessed (0 for none). */
  readonly size: 0 | 1 | 2 | 4;
  /** A load's value is sign-extended from `size` bytes. */
  readonly signed: boolean;
}

/** The kind a row has unless it says otherwise: its format's. */
const FORMAT_KIND: Record<Format, Kind> = {
  R: 'alu', I: 'alu', Ishift: 'alu', U: 'alu', IL: 'load', S: 'store', B: 'branch', J: 'jal', JALR: 'jalr',
  CSR: 'csr', CSRI: 'csr', AMO: 'amo', LR: 'lr', FENCE: 'fence', FENCEI: 'fencei', NONE: 'system', SFENCE: 'system',
  HLV: 'hlv', HSV: 'hsv',
};

/** A row's kind and memory access, when not its format's kind and no memory. */
interface RowFacts { kind?: Kind; size?: 0 | 1 | 2 | 4; signed?: boolean }

const row = (ext: Extension) => (name: string, pattern: string, format: Format, f: RowFacts = {}): InsnRow =>
  ({ name, pattern, format, ext, kind: f.kind ?? FORMAT_KIND[format], size: f.size ?? 0, signed: f.signed ?? false });

/** Memory facts of loads (`s`: sign-extending) and stores. */
const ld = (size: 1 | 2 | 4, signed: boolean): RowFacts => ({ size, signed });
const st = (size: 1 | 2 | 4): RowFacts => ({ size });
const W: RowFacts = { size: 4 };

const I = row('I');
const M = row('M');
const A = row('A');
const Z = row('Zicsr');
const F = row('Zifencei');
const P = row('Priv');
const H = row('H');

/** AMOs: funct5, then aq/rl as operand bits. */
const amo = (name: string, funct5: string, kind: Kind = 'amo'): InsnRow =>
  A(name, `${funct5} . . ..... ..... 010 ..... 0101111`, 'AMO', { ...W, kind });

export const INSNS: readonly InsnRow[] = [
  // *** RV32I base ***
  I('lui',    '.................... ..... 0110111', 'U'),
  I('auipc',  '.................... ..... 0010111', 'U'),
  I('jal',    '.................... ..... 1101111', 'J'),
  I('jalr',   '............ ..... 000 ..... 1100111', 'JALR'),
  I('beq',    '....... ..... ..... 000 ..... 1100011', 'B'),
  I('bne',    '....... ..... ..... 001 ..... 1100011', 'B'),
  I('blt',    '....... ..... ..... 100 ..... 1100011', 'B'),
  I('bge',    '....... ..... ..... 101 ..... 1100011', 'B'),
  I('bltu',   '....... ..... ..... 110 ..... 1100011', 'B'),
  I('bgeu',   '....... ..... ..... 111 ..... 1100011', 'B'),
  I('lb',     '............ ..... 000 ..... 0000011', 'IL', ld(1, true)),
  I('lh',     '............ ..... 001 ..... 0000011', 'IL', ld(2, true)),
  I('lw',     '............ ..... 010 ..... 0000011', 'IL', ld(4, true)),
  I('lbu',    '............ ..... 100 ..... 0000011', 'IL', ld(1, false)),
  I('lhu',    '............ ..... 101 ..... 0000011', 'IL', ld(2, false)),
  I('sb',     '....... ..... ..... 000 ..... 0100011', 'S', st(1)),
  I('sh',     '....... ..... ..... 001 ..... 0100011', 'S', st(2)),
  I('sw',     '....... ..... ..... 010 ..... 0100011', 'S', st(4)),
  I('addi',   '............ ..... 000 ..... 0010011', 'I'),
  I('slti',   '............ ..... 010 ..... 0010011', 'I'),
  I('sltiu',  '............ ..... 011 ..... 0010011', 'I'),
  I('xori',   '............ ..... 100 ..... 0010011', 'I'),
  I('ori',    '............ ..... 110 ..... 0010011', 'I'),
  I('andi',   '............ ..... 111 ..... 0010011', 'I'),
  I('slli',   '0000000 ..... ..... 001 ..... 0010011', 'Ishift'),
  I('srli',   '0000000 ..... ..... 101 ..... 0010011', 'Ishift'),
  I('srai',   '0100000 ..... ..... 101 ..... 0010011', 'Ishift'),
  I('add',    '0000000 ..... ..... 000 ..... 0110011', 'R'),
  I('sub',    '0100000 ..... ..... 000 ..... 0110011', 'R'),
  I('sll',    '0000000 ..... ..... 001 ..... 0110011', 'R'),
  I('slt',    '0000000 ..... ..... 010 ..... 0110011', 'R'),
  I('sltu',   '0000000 ..... ..... 011 ..... 0110011', 'R'),
  I('xor',    '0000000 ..... ..... 100 ..... 0110011', 'R'),
  I('srl',    '0000000 ..... ..... 101 ..... 0110011', 'R'),
  I('sra',    '0100000 ..... ..... 101 ..... 0110011', 'R'),
  I('or',     '0000000 ..... ..... 110 ..... 0110011', 'R'),
  I('and',    '0000000 ..... ..... 111 ..... 0110011', 'R'),
  I('fence',  '.... .... .... ..... 000 ..... 0001111', 'FENCE'),
  I('ecall',  '000000000000 00000 000 00000 1110011', 'NONE'),
  I('ebreak', '000000000001 00000 000 00000 1110011', 'NONE'),

  // *** Zifencei ***
  F('fence.i', '............ ..... 001 ..... 0001111', 'FENCEI'),

  // *** Zicsr ***
  Z('csrrw',  '............ ..... 001 ..... 1110011', 'CSR'),
  Z('csrrs',  '............ ..... 010 ..... 1110011', 'CSR'),
  Z('csrrc',  '............ ..... 011 ..... 1110011', 'CSR'),
  Z('csrrwi', '............ ..... 101 ..... 1110011', 'CSRI'),
  Z('csrrsi', '............ ..... 110 ..... 1110011', 'CSRI'),
  Z('csrrci', '............ ..... 111 ..... 1110011', 'CSRI'),

  // *** RV32M ***
  M('mul',    '0000001 ..... ..... 000 ..... 0110011', 'R', { kind: 'mul' }),
  M('mulh',   '0000001 ..... ..... 001 ..... 0110011', 'R', { kind: 'mul' }),
  M('mulhsu', '0000001 ..... ..... 010 ..... 0110011', 'R', { kind: 'mul' }),
  M('mulhu',  '0000001 ..... ..... 011 ..... 0110011', 'R', { kind: 'mul' }),
  M('div',    '0000001 ..... ..... 100 ..... 0110011', 'R', { kind: 'div' }),
  M('divu',   '0000001 ..... ..... 101 ..... 0110011', 'R', { kind: 'div' }),
  M('rem',    '0000001 ..... ..... 110 ..... 0110011', 'R', { kind: 'div' }),
  M('remu',   '0000001 ..... ..... 111 ..... 0110011', 'R', { kind: 'div' }),

  // *** RV32A ***
  A('lr.w',   '00010 . . 00000 ..... 010 ..... 0101111', 'LR', W),
  amo('sc.w',      '00011', 'sc'),
  amo('amoswap.w', '00001'),
  amo('amoadd.w',  '00000'),
  amo('amoxor.w',  '00100'),
  amo('amoand.w',  '01100'),
  amo('amoor.w',   '01000'),
  amo('amomin.w',  '10000'),
  amo('amomax.w',  '10100'),
  amo('amominu.w', '11000'),
  amo('amomaxu.w', '11100'),

  // *** Privileged ***
  P('sret',       '0001000 00010 00000 000 00000 1110011', 'NONE'),
  P('mret',       '0011000 00010 00000 000 00000 1110011', 'NONE'),
  P('wfi',        '0001000 00101 00000 000 00000 1110011', 'NONE'),
  P('sfence.vma', '0001001 ..... ..... 000 00000 1110011', 'SFENCE'),

  // *** Hypervisor extension ***
  H('hfence.vvma', '0010001 ..... ..... 000 00000 1110011', 'SFENCE'),
  H('hfence.gvma', '0110001 ..... ..... 000 00000 1110011', 'SFENCE'),
  H('hlv.b',       '0110000 00000 ..... 100 ..... 1110011', 'HLV', ld(1, true)),
  H('hlv.bu',      '0110000 00001 ..... 100 ..... 1110011', 'HLV', ld(1, false)),
  H('hlv.h',       '0110010 00000 ..... 100 ..... 1110011', 'HLV', ld(2, true)),
  H('hlv.hu',      '0110010 00001 ..... 100 ..... 1110011', 'HLV', ld(2, false)),
  H('hlvx.hu',     '0110010 00011 ..... 100 ..... 1110011', 'HLV', ld(2, false)),
  H('hlv.w',       '0110100 00000 ..... 100 ..... 1110011', 'HLV', ld(4, true)),
  H('hlvx.wu',     '0110100 00011 ..... 100 ..... 1110011', 'HLV', ld(4, false)),
  H('hsv.b',       '0110001 ..... ..... 100 00000 1110011', 'HSV', st(1)),
  H('hsv.h',       '0110011 ..... ..... 100 00000 1110011', 'HSV', st(2)),
  H('hsv.w',       '0110101 ..... ..... 100 00000 1110011', 'HSV', st(4)),
];

/** Mask/match pair of a pattern. */
export function maskMatch(pattern: string): { mask: number; match: number; bits: number } {
  const p = pattern.replace(/ /g, '');
  let mask = 0;
  let match = 0;
  for (const ch of p) {
    mask = (mask << 1) | (ch === '.' ? 0 : 1);
    match = (match << 1) | (ch === '1' ? 1 : 0);
  }
  return { mask: mask >>> 0, match: match >>> 0, bits: p.length };
}

const OP_IDS = new Map(INSNS.map((r, i) => [r.name, i]));

/** The op id (row index) of a mnemonic. Raises: Error for an unknown name. */
export function opId(name: string): number {
  const id = OP_IDS.get(name);
  if (id === undefined) throw new Error(`unknown instruction ${name}`);
  return id;
}

// *** RV32C: every RV32 compressed form (the F/D load/store forms are not modelled) ***

/** Compressed formats as in the ISA manual's table 16.1. */
export type CFormat = 'CR' | 'CI' | 'CSS' | 'CIW' | 'CL' | 'CS' | 'CA' | 'CB' | 'CJ';

export interface CInsnRow {
  readonly name: string;
  /** 16 characters, MSB first. */
  readonly pattern: string;
  readonly format: CFormat;
  readonly ext: 'C';
  /**
   * Extra condition on fields the pattern cannot express (rd != 0 and the like). Rows whose
   * patterns overlap are told apart by their guards; a test checks that every halfword matches
   * at most one row.
   */
  readonly guard?: (h: number) => boolean;
  /** The equivalent 32-bit instruction word, or 0 when the encoding is reserved. */
  readonly expand: (h: number) => number;
}

// Encoders of 32-bit words, used by the compressed expansions; immediates placed by their layouts (imm.ts).
const encR = (f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number) =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const encI = (imm: number, rs1: number, f3: number, rd: number, op: number) =>
  (place(IMM.I, imm) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const encS = (imm: number, rs2: number, rs1: number, f3: number, op: number) =>
  (place(IMM.S, imm) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | op) >>> 0;
const encB = (imm: number, rs2: number, rs1: number, f3: number) =>
  (place(IMM.B, imm) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | 0x63) >>> 0;
const encJ = (imm: number, rd: number) => (place(IMM.J, imm) | (rd << 7) | 0x6f) >>> 0;
const encU = (imm: number, rd: number, op: number) => (place(IMM.U, imm) | (rd << 7) | op) >>> 0;

const bits = (h: number, hi: number, lo: number) => (h >> lo) & ((1 << (hi - lo + 1)) - 1);
/** Register fields. */
export const cRd = (h: number) => bits(h, 11, 7);
export const cRs2 = (h: number) => bits(h, 6, 2);
export const cRdP = (h: number) => bits(h, 4, 2) + 8;
export const cRs1P = (h: number) => bits(h, 9, 7) + 8;
/** Immediates of the compressed formats (byte offsets / values, sign-extended where signed): layouts in imm.ts (CIMM). */
export const cImm6 = extractor(CIMM.imm6);
export const cUimm6 = extractor(CIMM.uimm6);
export const cAddi4spnImm = extractor(CIMM.addi4spn);
export const cLwImm = extractor(CIMM.lw);
export const cJImm = extractor(CIMM.j);
export const cAddi16spImm = extractor(CIMM.addi16sp);
export const cLuiImm = extractor(CIMM.lui);
export const cBImm = extractor(CIMM.b);
export const cLwspImm = extractor(CIMM.lwsp);
export const cSwspImm = extractor(CIMM.swsp);

const C = (
  name: string, pattern: string, format: CFormat, expand: (h: number) => number,
  guard?: (h: number) => boolean,
): CInsnRow => ({ name, pattern, format, ext: 'C', expand, guard });

export const CINSNS: readonly CInsnRow[] = [
  // Quadrant 0
  C('c.addi4spn', '000 ........ ... 00', 'CIW',
    (h) => (cAddi4spnImm(h) === 0 ? 0 : encI(cAddi4spnImm(h), 2, 0, cRdP(h), 0x13))),
  C('c.lw', '010 ... ... .. ... 00', 'CL', (h) => encI(cLwImm(h), cRs1P(h), 2, cRdP(h), 0x03)),
  C('c.sw', '110 ... ... .. ... 00', 'CS', (h) => encS(cLwImm(h), cRdP(h), cRs1P(h), 2, 0x23)),
  // Quadrant 1
  C('c.nop', '000 . 00000 ..... 01', 'CI', (h) => encI(cImm6(h), 0, 0, 0, 0x13)),
  C('c.addi', '000 . ..... ..... 01', 'CI', (h) => encI(cImm6(h), cRd(h), 0, cRd(h), 0x13), (h) => cRd(h) !== 0),
  C('c.jal', '001 ........... 01', 'CJ', (h) => encJ(cJImm(h), 1)),
  C('c.li', '010 . ..... ..... 01', 'CI', (h) => encI(cImm6(h), 0, 0, cRd(h), 0x13)),
  C('c.addi16sp', '011 . 00010 ..... 01', 'CI',
    (h) => (cAddi16spImm(h) === 0 ? 0 : encI(cAddi16spImm(h), 2, 0, 2, 0x13))),
  C('c.lui', '011 . ..... ..... 01', 'CI',
    (h) => (cLuiImm(h) === 0 ? 0 : encU(cLuiImm(h), cRd(h), 0x37)), (h) => cRd(h) !== 2),
  C('c.srli', '100 0 00 ... ..... 01', 'CB', (h) => encR(0, cUimm6(h), cRs1P(h), 5, cRs1P(h), 0x13)),
  C('c.srai', '100 0 01 ... ..... 01', 'CB', (h) => encR(0x20, cUimm6(h), cRs1P(h), 5, cRs1P(h), 0x13)),
  C('c.andi', '100 . 10 ... ..... 01', 'CB', (h) => encI(cImm6(h), cRs1P(h), 7, cRs1P(h), 0x13)),
  C('c.sub', '100 0 11 ... 00 ... 01', 'CA', (h) => encR(0x20, cRdP(h), cRs1P(h), 0, cRs1P(h), 0x33)),
  C('c.xor', '100 0 11 ... 01 ... 01', 'CA', (h) => encR(0, cRdP(h), cRs1P(h), 4, cRs1P(h), 0x33)),
  C('c.or', '100 0 11 ... 10 ... 01', 'CA', (h) => encR(0, cRdP(h), cRs1P(h), 6, cRs1P(h), 0x33)),
  C('c.and', '100 0 11 ... 11 ... 01', 'CA', (h) => encR(0, cRdP(h), cRs1P(h), 7, cRs1P(h), 0x33)),
  C('c.j', '101 ........... 01', 'CJ', (h) => encJ(cJImm(h), 0)),
  C('c.beqz', '110 ... ... ..... 01', 'CB', (h) => encB(cBImm(h), 0, cRs1P(h), 0)),
  C('c.bnez', '111 ... ... ..... 01', 'CB', (h) => encB(cBImm(h), 0, cRs1P(h), 1)),
  // Quadrant 2
  C('c.slli', '000 0 ..... ..... 10', 'CI', (h) => encR(0, cUimm6(h), cRd(h), 1, cRd(h), 0x13)),
  C('c.lwsp', '010 . ..... ..... 10', 'CI',
    (h) => (cRd(h) === 0 ? 0 : encI(cLwspImm(h), 2, 2, cRd(h), 0x03))),
  C('c.jr', '100 0 ..... 00000 10', 'CR', (h) => (cRd(h) === 0 ? 0 : encI(0, cRd(h), 0, 0, 0x67))),
  C('c.mv', '100 0 ..... ..... 10', 'CR', (h) => encR(0, cRs2(h), 0, 0, cRd(h), 0x33), (h) => cRs2(h) !== 0),
  C('c.ebreak', '100 1 00000 00000 10', 'CR', () => 0x00100073),
  C('c.jalr', '100 1 ..... 00000 10', 'CR', (h) => encI(0, cRd(h), 0, 1, 0x67), (h) => cRd(h) !== 0),
  C('c.add', '100 1 ..... ..... 10', 'CR', (h) => encR(0, cRs2(h), cRd(h), 0, cRd(h), 0x33), (h) => cRs2(h) !== 0),
  C('c.swsp', '110 . ..... ..... 10', 'CSS', (h) => encS(cSwspImm(h), cRs2(h), 2, 2, 0x23)),
];
