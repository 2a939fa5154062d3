/**
 * The reference interpreter, generated once from the instruction table and the semantics
 * templates: one `switch` over op ids with literal case labels, each case the row's template
 * with operand fields extracted from the instruction word.
 */
import { INSNS, Format } from '../isa/table.js';
import { decode, expandCompressed } from '../isa/decode.js';
import { EXTRA_CYCLES, SEMANTICS, TAKEN_CODE } from './semantics.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import type { Hart } from './hart.js';
import { STOP, StopReason, TRAP } from './hart.js';

/** Expression of a format's immediate in terms of the instruction word `w`. */
export const IMM_EXPR: Record<Format, string> = {
  R: '0', I: '(w >> 20)', IL: '(w >> 20)', JALR: '(w >> 20)', Ishift: '((w >>> 20) & 31)',
  S: '(((w >> 25) << 5) | ((w >>> 7) & 31))',
  B: '(((w >> 31) << 12) | (((w >>> 7) & 1) << 11) | (((w >>> 25) & 0x3f) << 5) | (((w >>> 8) & 0xf) << 1))',
  U: '(w & 0xfffff000)',
  J: '(((w >> 31) << 20) | (w & 0xff000) | (((w >>> 20) & 1) << 11) | (((w >>> 21) & 0x3ff) << 1))',
  CSR: '(w >>> 20)', CSRI: '(w >>> 20)', AMO: '0', LR: '0', FENCE: '0', FENCEI: '0', NONE: '0',
  SFENCE: '0', HLV: '0', HSV: '0',
};

/** Splices a row's template: operand placeholders become expressions over `w`. */
export function expandTemplate(name: string, format: Format, fields: { rd: string; rs1: string; rs2: string; imm: string; pc: string; len: string }): string {
  const t = SEMANTICS[name];
  if (t === undefined) throw new Error(`no semantics for ${name}`);
  return t
    .replace(/\bRD\b/g, fields.rd).replace(/\bRS1\b/g, fields.rs1).replace(/\bRS2\b/g, fields.rs2)
    .replace(/\bIMM\b/g, fields.imm).replace(/\bPC\b/g, fields.pc).replace(/\bLEN\b/g, fields.len)
    .replace(/\bTAKEN\b/g, TAKEN_CODE);
}

function generate(): (h: Hart, max: number, decode: (w: number) => number, expand: (h: number) => number) => number {
  const cases = INSNS.map((row, id) => {
    const body = expandTemplate(row.name, row.format, {
      rd: '((w >>> 7) & 31)', rs1: '((w >>> 15) & 31)', rs2: '((w >>> 20) & 31)',
      imm: IMM_EXPR[row.format], pc: 'pc', len: 'len',
    });
    const extra = EXTRA_CYCLES[row.name] ?? 0;
    return `case ${id}: { ${body} ${extra ? `cyc += ${extra};` : ''} break; } // ${row.name}`;
  }).join('\n');
  const src = `
    const x = h.x, ctr = h.ctr;
    let pc = h.pc | 0, n = 0, w = 0, len = 4, npc = 0, cyc = 0, raw = 0;
    h.stopReason = ${StopReason.Budget};
    for (;;) {
      try {
        while (n < max) {
          if (h.irqDirty) {
            h.irqDirty = false;
            const irq = h.pendingInterrupt();
            if (irq >= 0) {
              h.wfiPending = false;
              pc = h.takeTrap(pc, irq);
              if (h.stopReason !== ${StopReason.Budget}) { h.pc = pc; return h.stopReason; }
            }
          }
          raw = h.fetch(pc);
          if ((raw & 3) === 3) { w = raw; len = 4; }
          else { w = expand(raw & 0xffff); len = 2; if (w === 0) h.illegal(raw & 0xffff); }
          npc = (pc + len) | 0;
          cyc = ${COSTS.base};
          switch (decode(w)) {
            ${cases}
            default: h.illegal(w);
          }
          x[0] = 0;
          pc = npc;
          n++;
          ctr[${Ctr.Instructions}]++;
          ctr[${Ctr.Cycles}] += cyc;
          if (h.wfiPending) { h.wfiPending = false; h.pc = pc; return ${StopReason.Wfi}; }
        }
        h.pc = pc;
        return ${StopReason.Budget};
      } catch (e) {
        if (e === ${'STOP_SENTINEL'}) { h.pc = pc; return h.stopReason; }
        if (e !== ${'TRAP_SENTINEL'}) throw e;
        x[0] = 0;
        pc = h.takeTrap(pc);
        if (h.stopReason !== ${StopReason.Budget}) { h.pc = pc; return h.stopReason; }
      }
    }`;
  const f = new Function('TRAP_SENTINEL', 'STOP_SENTINEL', `return function interpret(h, max, decode, expand) { ${src} }`);
  return f(TRAP, STOP);
}

let interpret: ReturnType<typeof generate> | null = null;

/** Runs the hart for at most `max` instructions with the reference interpreter. */
export function runInterpreter(h: Hart, max: number): number {
  interpret ??= generate();
  return interpret(h, max, decode, expandCompressed);
}
