/**
 * The test oracle of the interpreter's predecode cache (cpu/interp.ts): the interpreter as it was
 * before the cache, which fetches every instruction through Hart.fetch and decodes it with the
 * table decoder each time it runs. Nothing is cached, so it cannot run stale code; the specs
 * compare the cached interpreter with it stop by stop (registers, pc, counters, memory).
 */
import { INSNS } from '../isa/table.js';
import { FACTS } from '../isa/facts.js';
import { decode } from '../isa/decode.js';
import { insnLen, insnWord } from '../isa/fetch.js';
import { EXTRA_CYCLES, expand, wordSlots } from '../cpu/template.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import type { HartCore } from '../cpu/hart-core.js';
import { STOP, StopReason, TRAP } from '../cpu/trap.js';

type Helper = (w: number) => number;
type Interpret = (h: HartCore, max: number, decode: Helper, word: Helper, length: Helper) => number;

function generate(toBlockEnd: boolean): Interpret {
  const cases = INSNS.map((row, id) => {
    const extra = EXTRA_CYCLES[id];
    const end = toBlockEnd && FACTS[id].endsBlock ? ' end = true;' : '';
    return `case ${id}: { ${expand(id, wordSlots(id))} ${extra ? `cyc += ${extra};` : ''}${end} break; } // ${row.name}`;
  }).join('\n');
  const src = `
    const x = h.x, ctr = h.ctr;
    let pc = h.pc | 0, n = 0, w = 0, len = 4, npc = 0, cyc = 0, raw = 0, end = false;
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
          if (h.wfiPending) { h.wfiPending = false; h.pc = pc; return ${StopReason.Wfi}; }
          if (end) break;
        }
        h.pc = pc;
        return ${StopReason.Budget};
      } catch (e) {
        if (e === STOP_SENTINEL) { h.pc = pc; return h.stopReason; }
        if (e !== TRAP_SENTINEL) throw e;
        x[0] = 0;
        pc = h.takeTrap(pc);
        if (h.stopReason !== ${StopReason.Budget}) { h.pc = pc; return h.stopReason; }
      }
    }`;
  return new Function('TRAP_SENTINEL', 'STOP_SENTINEL', `return function interpret(h, max, decode, word, length) { ${src} }`)(TRAP, STOP) as Interpret;
}

let interpret: Interpret | null = null;
let interpretBlock: Interpret | null = null;

/** Runs `h` for at most `max` instructions, decoding every instruction afresh (see cpu/interp.ts runInterpreter). */
export function referenceInterpreter(h: HartCore, max: number): number {
  interpret ??= generate(false);
  return interpret(h, max, decode, insnWord, insnLen);
}

/** As referenceInterpreter, returning after the first instruction that ends a block (cpu/interp.ts runInterpreterToBlockEnd). */
export function referenceInterpreterToBlockEnd(h: HartCore, max: number): number {
  interpretBlock ??= generate(true);
  return interpretBlock(h, max, decode, insnWord, insnLen);
}
