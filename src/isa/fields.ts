/**
 * Field extractors for 32-bit instruction words. Pure int32 arithmetic, no allocation: these
 * sit on the interpreter's and translator's hot paths.
 */
import { IMM, extractor } from './imm.js';

export const opcode = (w: number): number => w & 0x7f;
export const rd = (w: number): number => (w >>> 7) & 31;
export const rs1 = (w: number): number => (w >>> 15) & 31;
export const rs2 = (w: number): number => (w >>> 20) & 31;
export const funct3 = (w: number): number => (w >>> 12) & 7;
export const funct7 = (w: number): number => w >>> 25;
/** Immediates, compiled from their one declaration (imm.ts). I-type, sign-extended. */
export const immI: (w: number) => number = extractor(IMM.I);
/** S-type immediate, sign-extended. */
export const immS: (w: number) => number = extractor(IMM.S);
/** B-type branch offset, sign-extended (even). */
export const immB: (w: number) => number = extractor(IMM.B);
/** U-type immediate, already shifted into bits 31:12. */
export const immU: (w: number) => number = extractor(IMM.U);
/** J-type jump offset, sign-extended (even). */
export const immJ: (w: number) => number = extractor(IMM.J);
/** 12-bit CSR address. */
export const csr: (w: number) => number = extractor(IMM.CSR);
/** Shift amount of slli/srli/srai (5 bits on RV32). */
export const shamt: (w: number) => number = extractor(IMM.Ishift);
/** Acquire / release bits of A-extension instructions. */
export const aq = (w: number): number => (w >>> 26) & 1;
export const rl = (w: number): number => (w >>> 25) & 1;
/** FENCE predecessor and successor sets (bits: i o r w, MSB first) and the fm field. */
export const fencePred = (w: number): number => (w >>> 24) & 0xf;
export const fenceSucc = (w: number): number => (w >>> 20) & 0xf;
export const fenceFm = (w: number): number => w >>> 28;
