/**
 * The template toolkit: what the interpreter, the JIT and the lookahead emulator share to turn a
 * row's semantics (semantics.ts) into code. Immediate expressions come from the one declaration
 * of each format's immediate (isa/imm.ts).
 */
import { IMM, immExpr } from '../isa/imm.js';
import { Format } from '../isa/table.js';
import { SEMANTICS, TAKEN_CODE } from './semantics.js';

/** Expression of a format's immediate in terms of the instruction word `w` ('0' when it has none). */
export const IMM_EXPR: Record<Format, string> = {
  R: '0', I: immExpr(IMM.I), IL: immExpr(IMM.I), JALR: immExpr(IMM.I), Ishift: immExpr(IMM.Ishift),
  S: immExpr(IMM.S), B: immExpr(IMM.B), U: immExpr(IMM.U), J: immExpr(IMM.J),
  CSR: immExpr(IMM.CSR), CSRI: immExpr(IMM.CSR), AMO: '0', LR: '0', FENCE: '0', FENCEI: '0', NONE: '0',
  SFENCE: '0', HLV: '0', HSV: '0',
};

/** Immediate decoders per format, compiled once from IMM_EXPR. */
export const IMM_OF = Object.fromEntries(Object.entries(IMM_EXPR).map(([f, e]) => [f, new Function('w', `return (${e}) | 0;`) as (w: number) => number])) as Record<Format, (w: number) => number>;

/** Splices a row's template: operand placeholders become expressions over `w`. */
export function expandTemplate(name: string, format: Format, fields: { rd: string; rs1: string; rs2: string; imm: string; pc: string; len: string }): string {
  const t = SEMANTICS[name];
  if (t === undefined) throw new Error(`no semantics for ${name}`);
  return t
    .replace(/\bRD\b/g, fields.rd).replace(/\bRS1\b/g, fields.rs1).replace(/\bRS2\b/g, fields.rs2)
    .replace(/\bIMM\b/g, fields.imm).replace(/\bPC\b/g, fields.pc).replace(/\bLEN\b/g, fields.len)
    .replace(/\bTAKEN\b/g, TAKEN_CODE);
}
