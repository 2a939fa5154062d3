/**
 * The interpreter, generated once from the instruction table and the semantics templates: one
 * `switch` over op ids with literal case labels, each case the row's template with operand fields
 * read from the hart's predecode cache (decode-cache.ts) instead of decoded at run time.
 *
 * The loop translates pc through the fetch TLB inline (a miss, a fault or a gate goes through
 * Hart.fetchPa, which charges and raises exactly as Hart.fetch does) once per run of instructions
 * in one virtual page: the answer, the privilege mode and the frame's cache entries stay in locals
 * (`fvpn` is the page they hold, -1 when none) until something could change them, where it sets
 * fvpn = -1: a slow-path load or store, a rare instruction, a trap, an interrupt, a fetch
 * straddling a page end. Interrupts and wfi are checked at the same points, the only places where
 * `irqDirty` or `wfiPending` can have been set during a run. Per instruction it reads the raw
 * instruction bits (the second halfword of one straddling a page end through fetchPa, as before)
 * and uses the cached decode of that physical address when its key equals those bits, decoding
 * afresh otherwise. Counters, traps and stops are those of decoding every instruction
 * (testing/reference-interpreter.ts, the specs' oracle).
 */
import { INSNS, Kind } from '../isa/table.js';
import { EXTRA_CYCLES, expand, runTimeSlots } from './template.js';
import { FACTS } from '../isa/facts.js';
import { Slots, signExtend } from './semantics.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import type { HartCore } from './hart-core.js';
import { STOP, StopReason, TRAP } from './trap.js';
import { DecodeCache, ENDS_BLOCK, OP_ILLEGAL } from './decode-cache.js';

/** Where the cases find their fields: the predecoded entry's info word and immediate (see DecodeCache). */
const FIELDS = { rd: '((info >>> 9) & 31)', rs1: '((info >>> 14) & 31)', rs2: '((info >>> 19) & 31)', imm: 'imm' };

/**
 * Kinds of instruction (isa/table.ts) whose cases are in the interpreter's loop; the others
 * (CSR, atomic, fence, system and hypervisor instructions) are in one function it calls, `rare`.
 * Measured (docs/engine.md): V8 compiles the loop once per case that is first reached after it
 * was optimized (a deoptimization for missing type feedback), 150-550 ms of compiler time for the
 * loop with every case inline; with the rare cases out, the loop is a third smaller and a rare
 * instruction reached late costs a recompile of `rare` only.
 */
const LOOP_KINDS: ReadonlySet<Kind> = new Set<Kind>(['alu', 'mul', 'div', 'load', 'store', 'branch', 'jal', 'jalr']);

/**
 * The slots of the interpreter's cases: fields from the predecoded entry, and plain loads and
 * stores with the TLB's fast path inline (a tag compare against the loop's `mode` and an offset
 * into the RAM views). Misses, misaligned accesses, MMIO, poisoned and gate pages (which the TLB
 * never caches) take the hart's own h.loadN/h.storeN, which charge and raise as always; stores
 * compare the store TLB's `fast` tags, which exclude frames holding translated code and all
 * frames while an LR reservation is held, so a fast store needs none of h.stored's bookkeeping.
 */
function slotsOf(id: number): Slots {
  const slots = runTimeSlots(id, FIELDS), { size, signed } = FACTS[id];
  if (!FACTS[id].plain) return slots;
  const view = size === 1 ? 'u8' : size === 2 ? 'u16' : 'i32', shift = size === 1 ? '' : size === 2 ? ' >>> 1' : ' >>> 2';
  const hit = (tag: string) => `(_a = (${slots.r1} + imm) | 0, _v = _a >>> 12, ${tag}[_v & 255] === ((_v << 3) | mode) && (_a & ${size - 1}) === 0)`;
  const at = (page: string) => `${view}[(${page}[_v & 255] + (_a & 0xfff))${shift}]`;
  return {
    ...slots,
    load: () => signExtend(`(${hit('ltag')} ? ${at('lpage')} : (fvpn = -1, h.load${8 * size}(_a)))`, size, signed),
    store: () => `if (${hit('sfast')}) ${at('spage')} = ${slots.r2}; else { fvpn = -1; h.store${8 * size}(_a, ${slots.r2}); }`,
  };
}

const caseOf = (id: number): string => {
  const extra = EXTRA_CYCLES[id];
  return `case ${id}: { ${expand(id, slotsOf(id))} ${extra ? `cyc += ${extra};` : ''} break; } // ${INSNS[id].name}`;
};

type Rare = (h: HartCore, x: Int32Array, op: number, info: number, imm: number, pc: number, len: number) => number;

/**
 * The rare instructions' cases: returns the next pc. Raises (throws TRAP or STOP) as the
 * instruction does. Their templates touch no cycle accumulator (checked here), so the loop adds
 * only the base cost for them.
 */
function generateRare(): Rare {
  const ids = INSNS.map((_, id) => id).filter((id) => !LOOP_KINDS.has(INSNS[id].kind));
  const cases = ids.map((id) => {
    const c = caseOf(id);
    if (c.includes('cyc')) throw new Error(`${INSNS[id].name}: a rare instruction's case may not charge cycles`);
    return c;
  }).join('\n');
  return new Function(`return function rare(h, x, op, info, imm, pc, len) { let npc = (pc + len) | 0; switch (op) {\n${cases}\n} return npc; }`)() as Rare;
}

/**
 * The interpreter's function. `toBlockEnd`: the variant that also returns (with the budget
 * reason) right after an instruction that ends a block (isa/facts.ts `endsBlock`), which the JIT
 * runs on code that is not hot yet (see Jit.lookup).
 */
function generate(toBlockEnd: boolean): (h: HartCore, max: number, dc: DecodeCache, rare: Rare) => number {
  const cases = INSNS.map((_, id) => id).filter((id) => LOOP_KINDS.has(INSNS[id].kind)).map(caseOf).join('\n');
  const src = `
    const x = h.x, ctr = h.ctr, u8 = h.mem.u8, u16 = h.mem.u16, i32 = h.mem.i32, frames = dc.frames;
    const [fetchTlb, loadTlb, storeTlb] = h.mmu.tlb;
    const ftag = fetchTlb.tag, fpage = fetchTlb.page, ltag = loadTlb.tag, lpage = loadTlb.page, sfast = storeTlb.fast, spage = storeTlb.page;
    let dec = dc.dec;
    let pc = h.pc | 0, n = 0, len = 4, npc = 0, cyc = 0, raw = 0, pa = 0, vpn = 0, e = 0, info = 0, imm = 0, op = 0, mode = 0, _a = 0, _v = 0, fvpn = -1, fbase = 0, fe = 0;
    h.stopReason = ${StopReason.Budget};
    for (;;) {
      try {
        while (n < max) {
          if ((pc >>> 12) !== fvpn) {
            if (h.irqDirty) {
              h.irqDirty = false;
              const irq = h.pendingInterrupt();
              if (irq >= 0) {
                h.wfiPending = false;
                pc = h.takeTrap(pc, irq);
                if (h.stopReason !== ${StopReason.Budget}) { h.pc = pc; return h.stopReason; }
              }
            }
            vpn = pc >>> 12;
            mode = h.priv | (h.virt << 2);
            pa = (pc & 1) === 0 && ftag[vpn & 255] === ((vpn << 3) | mode) ? fpage[vpn & 255] + (pc & 0xfff) : h.fetchPa(pc);
            fbase = pa - (pc & 0xfff);
            fe = frames[pa >>> 12];
            if (fe < 0) { fe = dc.page(pa >>> 12); dec = dc.dec; }
            fvpn = vpn;
          } else pa = fbase + (pc & 0xfff);
          raw = u16[pa >>> 1];
          if ((raw & 3) === 3) {
            if ((pa & 0xfff) !== 0xffe) raw |= u16[(pa >>> 1) + 1] << 16;
            else { fvpn = -1; raw |= u16[h.fetchPa((pc + 2) | 0) >>> 1] << 16; }
          }
          e = fe + ((pa & 0xffe) << 1);
          if (dec[e] !== raw) dc.fill(e, raw);
          info = dec[e + 1];
          imm = dec[e + 2];
          len = (info >>> 24) & 7;
          npc = (pc + len) | 0;
          cyc = ${COSTS.base};
          op = info & ${OP_ILLEGAL};
          switch (op) {
            ${cases}
            case ${OP_ILLEGAL}: h.illegal(dec[e + 3]);
            default: fvpn = -1; npc = rare(h, x, op, info, imm, pc, len);
          }
          x[0] = 0;
          pc = npc;
          n++;
          ctr[${Ctr.Instructions}]++;
          ctr[${Ctr.Cycles}] += cyc;
          if (fvpn === -1 && h.wfiPending) { h.wfiPending = false; h.pc = pc; return ${StopReason.Wfi}; }${toBlockEnd ? `
          if ((info & ${ENDS_BLOCK}) !== 0) break;` : ''}
        }
        h.pc = pc;
        return ${StopReason.Budget};
      } catch (e) {
        if (e === ${'STOP_SENTINEL'}) { h.pc = pc; return h.stopReason; }
        if (e !== ${'TRAP_SENTINEL'}) throw e;
        fvpn = -1;
        x[0] = 0;
        pc = h.takeTrap(pc);
        if (h.stopReason !== ${StopReason.Budget}) { h.pc = pc; return h.stopReason; }
      }
    }`;
  const f = new Function('TRAP_SENTINEL', 'STOP_SENTINEL', `return function interpret(h, max, dc, rare) { ${src} }`);
  return f(TRAP, STOP);
}

let interpret: ReturnType<typeof generate> | null = null;
let interpretBlock: ReturnType<typeof generate> | null = null;
let rare: Rare | null = null;

/** Runs the hart for at most `max` instructions with the interpreter. */
export function runInterpreter(h: HartCore, max: number): number {
  interpret ??= generate(false);
  rare ??= generateRare();
  return interpret(h, max, h.decodeCache ??= new DecodeCache(h.mem.size), rare);
}

/**
 * As runInterpreter, but returns (StopReason.Budget) right after the first instruction that ends
 * a block, if that comes before `max` instructions or a stop: the JIT's cold tier.
 */
export function runInterpreterToBlockEnd(h: HartCore, max: number): number {
  interpretBlock ??= generate(true);
  rare ??= generateRare();
  return interpretBlock(h, max, h.decodeCache ??= new DecodeCache(h.mem.size), rare);
}
