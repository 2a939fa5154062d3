/**
 * The reference interpreter, generated once from the instruction table and the semantics
 * templates: one `switch` over op ids with literal case labels, each case the row's template
 * with operand fields extracted from the instruction word.
 */
import { INSNS } from '../isa/table.js';
import { FACTS } from '../isa/facts.js';
import { decode } from '../isa/decode.js';
import { insnLen, insnWord } from '../isa/fetch.js';
import { EXTRA_CYCLES, expand, wordSlots } from './template.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import type { HartCore } from './hart-core.js';
import { STOP, StopReason, TRAP } from './trap.js';

type Helper = (w: number) => number;

/**
 * The interpreter's function. `toBlockEnd`: the variant that also returns (with the budget
 * reason) right after an instruction that ends a block (isa/facts.ts `endsBlock`), which the JIT
 * runs on code that is not hot yet (see Jit.lookup).
 */
function generate(toBlockEnd: boolean): (h: HartCore, max: number, decode: Helper, word: Helper, length: Helper) => number {
  const cases = INSNS.map((row, id) => {
    const body = expand(id, wordSlots(id));
    const extra = EXTRA_CYCLES[id];
    const end = toBlockEnd && FACTS[id].endsBlock ? ' end = true;' : '';
    return `case ${id}: { ${body} ${extra ? `cyc += ${extra};` : ''}${end} break; } // ${row.name}`;
  }).join('\n');
  const src = `
    const x = h.x, ctr = h.ctr;
    let pc = h.pc | 0, n = 0, w = 0, len = 4, npc = 0, cyc = 0, raw = 0${toBlockEnd ? ', end = false' : ''};
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
          w = word(raw);
          len = length(raw);
          if (w === 0) h.illegal(raw & 0xffff);
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
          if (h.wfiPending) { h.wfiPending = false; h.pc = pc; return ${StopReason.Wfi}; }${toBlockEnd ? `
          if (end) break;` : ''}
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
  const f = new Function('TRAP_SENTINEL', 'STOP_SENTINEL', `return function interpret(h, max, decode, word, length) { ${src} }`);
  return f(TRAP, STOP);
}

let interpret: ReturnType<typeof generate> | null = null;
let interpretBlock: ReturnType<typeof generate> | null = null;

/** Runs the hart for at most `max` instructions with the reference interpreter. */
export function runInterpreter(h: HartCore, max: number): number {
  interpret ??= generate(false);
  return interpret(h, max, decode, insnWord, insnLen);
}

/**
 * As runInterpreter, but returns (StopReason.Budget) right after the first instruction that ends
 * a block, if that comes before `max` instructions or a stop: the JIT's cold tier.
 */
export function runInterpreterToBlockEnd(h: HartCore, max: number): number {
  interpretBlock ??= generate(true);
  return interpretBlock(h, max, decode, insnWord, insnLen);
}
