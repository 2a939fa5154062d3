/**
 * The template toolkit: what the interpreter, the JIT and the lookahead emulator share to turn a
 * row's semantics (semantics.ts) into code. Immediate expressions come from the one declaration
 * of each format's immediate (isa/imm.ts); memory sizes, signs and costs from the row's facts.
 */
import { FACTS } from '../isa/facts.js';
import { IMM, immExpr } from '../isa/imm.js';
import { Format, INSNS } from '../isa/table.js';
import { EXTRA_CYCLES_OF_KIND, SEMANTICS, Slots, TAKEN_CODE, signExtend } from './semantics.js';

/** Expression of a format's immediate in terms of the instruction word `w` ('0' when it has none). */
export const IMM_EXPR: Record<Format, string> = {
  R: '0', I: immExpr(IMM.I), IL: immExpr(IMM.I), JALR: immExpr(IMM.I), Ishift: immExpr(IMM.Ishift),
  S: immExpr(IMM.S), B: immExpr(IMM.B), U: immExpr(IMM.U), J: immExpr(IMM.J),
  CSR: immExpr(IMM.CSR), CSRI: immExpr(IMM.CSR), AMO: '0', LR: '0', FENCE: '0', FENCEI: '0', NONE: '0',
  SFENCE: '0', HLV: '0', HSV: '0',
};

/** Immediate decoders per format, compiled once from IMM_EXPR. */
export const IMM_OF = Object.fromEntries(Object.entries(IMM_EXPR).map(([f, e]) => [f, new Function('w', `return (${e}) | 0;`) as (w: number) => number])) as Record<Format, (w: number) => number>;

/** Extra cycles beyond the base cost of each row, by op id. */
export const EXTRA_CYCLES: readonly number[] = INSNS.map((r) => EXTRA_CYCLES_OF_KIND[r.kind] ?? 0);

/** The row's template expanded with `slots`. Raises: Error for a row without semantics. */
export function expand(id: number, slots: Slots): string {
  const t = SEMANTICS[INSNS[id].name];
  if (t === undefined) throw new Error(`no semantics for ${INSNS[id].name}`);
  return t(slots);
}

/** Where a run-time decoding consumer finds an instruction's fields: code for rd, rs1, rs2 and the immediate. */
export interface FieldCode {
  readonly rd: string;
  readonly rs1: string;
  readonly rs2: string;
  readonly imm: string;
}

/**
 * The slots of code that decodes at run time (the interpreter, the lookahead emulator): fields
 * from `fields`, registers in `x`, memory through h.load8 ... h.store32, `pc` and `len` locals,
 * taken branches counted in `cyc` and h.ctr.
 */
export function runTimeSlots(id: number, fields: FieldCode): Slots {
  const f = FACTS[id];
  const { rd, rs1, rs2, imm } = fields;
  const r1 = `x[${rs1}]`, r2 = `x[${rs2}]`;
  const ea = `(${r1} + ${imm}) | 0`;
  return {
    rd, rs1, rs2, r1, r2, imm, pc: 'pc', len: 'len',
    writeRd: (v) => `x[${rd}] = ${v};`,
    load: () => signExtend(`h.load${8 * f.size}(${ea})`, f.size, f.signed),
    store: () => `h.store${8 * f.size}(${ea}, ${r2});`,
    branch: (cond) => `if (${cond}) { npc = (pc + ${imm}) | 0; ${TAKEN_CODE} }`,
    jump: (target) => `npc = ${target}; ${TAKEN_CODE}`,
  };
}

/** runTimeSlots with the fields extracted from the instruction word `w` (the lookahead emulator). */
export function wordSlots(id: number): Slots {
  return runTimeSlots(id, { rd: '((w >>> 7) & 31)', rs1: '((w >>> 15) & 31)', rs2: '((w >>> 20) & 31)', imm: IMM_EXPR[INSNS[id].format] });
}
