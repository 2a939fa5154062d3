/**
 * Block translator: guest basic blocks become JavaScript functions (`new Function`) built from
 * the same semantics templates as the interpreter, with operand fields as constants and the
 * guest registers the block uses held in locals (written back on every exit).
 *
 * Invariants (docs/engine.md):
 * - A block lies within one 4 KiB physical page and is keyed by its physical start address;
 *   its code depends only on the instruction bytes (privilege and translation checks happen at
 *   run time inside the hart's methods), so virtual remappings never stale it.
 * - Blocks end after a branch, jump, system instruction, or MAX_BLOCK instructions, and before an
 *   instruction that crosses the page end.
 * - Every exit (normal, early after a store into a code page, or a trap) leaves exactly the
 *   interpreter's architectural state: registers, pc, instret and cycles of the instructions
 *   that retired. A trapping instruction has no effect.
 * - A store into a page holding translated code invalidates that page's blocks and ends the
 *   running block after the store, so modified code is never executed stale.
 * - Regions: once a block has run HOT times on its own, the warm blocks of its (physical page,
 *   virtual page) pair are compiled together into one function that jumps from block to block with
 *   a `switch` on the pc, registers staying in locals (tight self-loops and CSR blocks stay on
 *   their own). A region runs only blocks of its own page (so the fetch translation the dispatcher
 *   checked at entry holds throughout), leaves after any system instruction, before a block the
 *   budget cannot hold, after a store into code, and on a trap, with the same state as the blocks
 *   run one by one.
 */
import { INSNS, Format } from '../isa/table.js';
import { decode, expandCompressed } from '../isa/decode.js';
import { SEMANTICS, EXTRA_CYCLES, TAKEN_CODE } from './semantics.js';
import { IMM_EXPR, runInterpreter } from './interp.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import { STOP, StopReason, TRAP } from './hart.js';
import type { Hart } from './hart.js';

/** Instructions per block at most. */
export const MAX_BLOCK = 64;
/** Blocks and instructions per region at most (keeps region functions small enough for the optimizing compiler). */
export const MAX_REGION_BLOCKS = 24;
export const MAX_REGION_INSNS = 256;
/** Recompilations of one region at most (each time it learns new entry points); later blocks run on their own. */
export const MAX_REGION_COMPILES = 8;
/** Runs on its own before a block makes its page's region (re)compile, and before it is taken into one. */
export const HOT = 50;
const WARM = 8;
/** Translated blocks kept at most before the cache is evicted. */
export const DEFAULT_BLOCK_CAP = 16384;

/** System instructions: they end a block, and a region is left after one (they may change the mode, satp, interrupts). */
const SYSTEM = new Set(['ecall', 'ebreak', 'fence.i', 'csrrw', 'csrrs', 'csrrc', 'csrrwi', 'csrrsi', 'csrrci', 'sret', 'mret', 'wfi',
  'sfence.vma', 'hfence.vvma', 'hfence.gvma']);
/** Jumps, branches and system instructions end a block. */
const ENDS_BLOCK = new Set(['jal', 'jalr', 'beq', 'bne', 'blt', 'bge', 'bltu', 'bgeu', ...SYSTEM]);
const STORES = new Set(['sb', 'sh', 'sw', 'sc.w', 'amoswap.w', 'amoadd.w', 'amoxor.w', 'amoand.w', 'amoor.w',
  'amomin.w', 'amomax.w', 'amominu.w', 'amomaxu.w', 'hsv.b', 'hsv.h', 'hsv.w']);

/** A translated block; `budget` is how many instructions it may retire (at least its length). */
type BlockFn = (h: Hart, x: Int32Array, ctr: Float64Array, budget: number) => number;
/** A translated region, entered at block `pc`; `budget` as for a block; returns the next pc. */
type RegionFn = (h: Hart, x: Int32Array, ctr: Float64Array, budget: number, pc: number) => number;

/** A block as translated, before compilation: its instructions' code and accounting. */
interface BlockIR {
  parts: string[];
  /** Static cycles of the first i instructions. */
  prefix: number[];
  pcs: number[];
  used: Set<number>;
  fallthrough: number;
  selfLoop: boolean;
  /** Ends with a system instruction. */
  system: boolean;
  /** Starts with a CSR instruction: it may read instret/cycle, which a region only brings up to date when it returns, so it runs on its own. */
  csr: boolean;
}

export interface Block {
  pa: number;
  /** Virtual pc the block was translated for (pc-relative values are baked in). */
  vpc: number;
  ir: BlockIR;
  /** The block compiled on its own (lazily: blocks inside a region usually never need it). */
  fn: BlockFn | null;
  /** Number of instructions. */
  n: number;
  valid: boolean;
  /** Chained successors (last two distinct next blocks). */
  next1: Block | null;
  next2: Block | null;
  /** Times run on its own (a block joins its page's region once it is hot). */
  hits: number;
}

/** The blocks of one physical page translated for one virtual page, compiled together. */
export interface Region {
  vpage: number;
  blocks: Block[];
  /** Entry pcs (block starts) of the compiled function and their block lengths. */
  starts: Map<number, number>;
  fn: RegionFn | null;
  insns: number;
  compiles: number;
}

/** Per-hart translation state. */
export class Jit {
  readonly blocks = new Map<number, Block>();
  private readonly byPage = new Map<number, Block[]>();
  readonly regions = new Map<number, Region>();
  readonly stats = { translations: 0, evictions: 0, invalidations: 0, blocksExecuted: 0, regionsEntered: 0, regionCompiles: 0 };

  constructor(private readonly h: Hart, readonly cap = DEFAULT_BLOCK_CAP) {
    h.codePages = new Uint8Array(Math.ceil(h.mem.size / 4096));
    h.onCodeWrite = (pa) => (pa < 0 ? this.flush() : this.invalidatePage(pa >>> 12));
  }

  /** Drops every block (fence.i, or the cache cap). */
  flush(): void {
    for (const b of this.blocks.values()) b.valid = false;
    this.blocks.clear();
    this.byPage.clear();
    this.regions.clear();
    this.h.codePages!.fill(0);
  }

  invalidatePage(page: number): void {
    const list = this.byPage.get(page);
    this.h.codePages![page] = 0;
    this.h.codeDirty = true;
    this.regions.delete(page);
    if (!list) return;
    for (const b of list) { b.valid = false; if (this.blocks.get(b.pa) === b) this.blocks.delete(b.pa); }
    this.stats.invalidations += list.length;
    this.byPage.delete(page);
  }

  /**
   * Block for virtual pc h.pc at physical address pa, translating it if needed. Keyed by the
   * physical address (a small integer, so the map needs no boxing); the same code reached through
   * another virtual address is retranslated, since pc-relative values are baked into blocks.
   */
  lookup(pa: number): Block | null {
    const vpc = this.h.pc | 0;
    const b = this.blocks.get(pa);
    if (b && b.vpc === vpc) return b;
    if (b) { b.valid = false; this.blocks.delete(pa); }
    if (this.blocks.size >= this.cap) {
      this.stats.evictions += this.blocks.size;
      this.flush();
    }
    return this.add(pa, vpc);
  }

  private add(pa: number, vpc: number): Block | null {
    const ir = translate(this.h, pa, vpc);
    if (!ir) return null;
    const t: Block = { pa, vpc, ir, fn: null, n: ir.pcs.length, valid: true, next1: null, next2: null, hits: 0 };
    this.stats.translations++;
    this.blocks.set(pa, t);
    const page = pa >>> 12;
    (this.byPage.get(page) ?? this.byPage.set(page, []).get(page)!).push(t);
    this.h.codePages![page] = 1;
    return t;
  }

  /** The block's own function, compiled on first use. */
  blockFn(b: Block): BlockFn {
    return b.fn ??= compileBlock(b);
  }

  /**
   * Block `b` has become hot: its page's region is rebuilt from every hot block of the page
   * (translated for the same virtual page) and recompiled. Returns the region, or null when `b`
   * cannot join (a CSR block, the region is full or has been recompiled too often).
   */
  admit(b: Block): Region | null {
    const page = b.pa >>> 12, vpage = b.vpc >>> 12;
    let r = this.regions.get(page);
    if (!r || r.vpage !== vpage) { r = { vpage, blocks: [], starts: new Map(), fn: null, insns: 0, compiles: 0 }; this.regions.set(page, r); }
    if (b.ir.csr || b.ir.selfLoop || r.compiles >= MAX_REGION_COMPILES || r.starts.has(b.vpc) || !this.fits(r, b)) return null;
    for (const c of this.byPage.get(page) ?? []) {
      if (c.valid && !c.ir.csr && !c.ir.selfLoop && c.vpc >>> 12 === vpage && (c === b || c.hits >= WARM) && !r.blocks.includes(c) && this.fits(r, c)) {
        r.blocks.push(c);
        r.insns += c.n;
      }
    }
    r.fn = compileRegion(r.blocks);
    r.starts = new Map(r.blocks.map((x) => [x.vpc, x.n]));
    r.compiles++;
    this.stats.regionCompiles++;
    return r;
  }

  private fits(r: Region, b: Block): boolean {
    return r.blocks.length < MAX_REGION_BLOCKS && r.insns + b.n <= MAX_REGION_INSNS;
  }
}

/**
 * Inlines the TLB fast path of plain loads and stores: a tag compare and a host offset into the
 * RAM views; misses, misaligned and page-crossing accesses, MMIO, poisoned and gate pages (which
 * the TLB never caches) go through the hart's slow path, which charges exactly what the
 * interpreter charges.
 */
function inlineMemory(t: string): string {
  const ea = '(x[RS1] + IMM) | 0';
  const hit = (tag: string, mask: number) => `(_a = ${ea}, _v = _a >>> 12, ${tag}[_v & 255] === ((_v << 3) | mode) && (_a & ${mask}) === 0)`;
  const load = (n: number, view: string, shift: string, mask: number) =>
    [`h.load${n}(${ea})`, `(${hit('ltag', mask)} ? ${view}[(lpage[_v & 255] + (_a & 0xfff))${shift}] : h.load${n}(_a))`] as const;
  for (const [from, to] of [load(8, 'u8', '', 0), load(16, 'u16', ' >>> 1', 1), load(32, 'i32', ' >>> 2', 3)]) t = t.replace(from, to);
  const store = (n: number, view: string, shift: string, mask: number) => [`h.store${n}(${ea}, x[RS2]);`,
    `if (${hit('stag', mask)}) { _p = spage[_v & 255] + (_a & 0xfff); ${view}[_p${shift}] = x[RS2]; if (codePages[_p >>> 12] !== 0 || h.reservation >= 0) h.noteStore(_p); } else h.store${n}(_a, x[RS2]);`] as const;
  for (const [from, to] of [store(8, 'u8', '', 0), store(16, 'u16', ' >>> 1', 1), store(32, 'i32', ' >>> 2', 3)]) t = t.replace(from, to);
  return t;
}

/** Immediate decoders per format, compiled once from the interpreter's expressions. */
const IMM_OF = Object.fromEntries(Object.entries(IMM_EXPR).map(([f, e]) => [f, new Function('w', `return (${e}) | 0;`) as (w: number) => number])) as Record<Format, (w: number) => number>;

/** Splices a template with constant fields and register locals. */
function splice(name: string, format: Format, w: number, pc: number, len: number, used: Set<number>): string {
  const rd = (w >>> 7) & 31, rs1 = (w >>> 15) & 31, rs2 = (w >>> 20) & 31;
  const imm = IMM_OF[format](w);
  const src = (r: number) => { if (r) used.add(r); return r ? `r${r}` : '0'; };
  let t = inlineMemory(SEMANTICS[name]);
  // Locals are plain numbers, not Int32Array elements: truncate every result to int32 as the
  // register file would (e.g. `>>>` yields an unsigned value).
  t = t.replace(/x\[RD\] = ([^;]+);/g, (_, e: string) => { if (rd) used.add(rd); return `${rd ? `r${rd}` : '_z'} = (${e}) | 0;`; });
  t = t.replace(/x\[RS1\]/g, () => src(rs1)).replace(/x\[RS2\]/g, () => src(rs2));
  return t.replace(/\bRD\b/g, String(rd)).replace(/\bRS1\b/g, String(rs1)).replace(/\bRS2\b/g, String(rs2))
    .replace(/\bIMM\b/g, `(${imm})`).replace(/\bPC\b/g, `(${pc | 0})`).replace(/\bLEN\b/g, String(len))
    .replace(/\bTAKEN\b/g, TAKEN_CODE);
}

/**
 * Translates the block starting at physical address `pa` for virtual pc `vpc0`. Returns null when
 * not even one instruction can be translated (illegal, or crossing the page end): the caller
 * then interprets one instruction, which raises whatever the hardware would.
 */
function translate(h: Hart, pa: number, vpc0: number): BlockIR | null {
  const mem = h.mem;
  const pageEnd = (pa | 0xfff) + 1;
  const parts: string[] = [];
  const pcs: number[] = [];
  const prefix: number[] = [0];
  const used = new Set<number>();
  let off = 0;
  let n = 0;
  let fallthrough = vpc0;
  let lastWord = 0;
  let lastRow: (typeof INSNS)[number] | null = null;
  let firstCsr = false;
  while (n < MAX_BLOCK) {
    const a = pa + off;
    if (a + 2 > pageEnd) break;
    const lo = mem.u16[a >>> 1];
    let w: number, len: number;
    if ((lo & 3) === 3) {
      if (a + 4 > pageEnd) break;
      w = (lo | (mem.u16[(a + 2) >>> 1] << 16)) >>> 0;
      len = 4;
    } else {
      w = expandCompressed(lo);
      len = 2;
      if (w === 0) break;
    }
    const id = decode(w);
    if (id < 0) break;
    const row = INSNS[id];
    // CSR instructions may read instret/cycle/time: they start a block of their own, so the
    // counters are exact when they run.
    if (n > 0 && row.format.startsWith('CSR')) break;
    if (n === 0) firstCsr = row.format.startsWith('CSR');
    const vpc = (vpc0 + off) | 0;
    const next = (vpc + len) | 0;
    lastWord = w;
    lastRow = row;
    const body = splice(row.name, row.format, w, vpc, len, used);
    const cost = COSTS.base + (EXTRA_CYCLES[row.name] ?? 0);
    const store = STORES.has(row.name);
    parts.push(`ip = ${n}; npc = ${next}; ${body}` + (store ? ` if (h.codeDirty) { ip = ${n + 1}; break blk; }` : ''));
    pcs.push(vpc);
    prefix.push(prefix[n] + cost);
    n++;
    off += len;
    fallthrough = next;
    if (ENDS_BLOCK.has(row.name)) break;
  }
  if (n === 0) return null;
  const last = lastRow!;
  const target = last.format === 'B' || last.name === 'jal' ? (pcs[n - 1] + IMM_OF[last.format](lastWord)) | 0 : null;
  return { parts, prefix, pcs, used, fallthrough, selfLoop: target === vpc0, system: SYSTEM.has(last.name), csr: firstCsr };
}

/** Register locals, the memory prologue (only blocks that touch memory pay for it) and the store prologue of some code. */
function prologue(body: string, used: Set<number>) {
  const regs = [...used].sort((a, b) => a - b);
  const mem = /ltag|stag/.test(body)
    ? `, _a = 0, _v = 0, _p = 0;
    const mode = h.priv | (h.virt << 2), tlb = h.mmu.tlb, ltag = tlb[1].tag, lpage = tlb[1].page, stag = tlb[2].tag, spage = tlb[2].page;
    const mem = h.mem, u8 = mem.u8, u16 = mem.u16, i32 = mem.i32, codePages = h.codePages;`
    : ';';
  return {
    load: regs.map((r) => `r${r} = x[${r}]`).join(', '),
    mem,
    watch: /codeDirty/.test(body) ? 'h.codeDirty = false;' : '',
    store: regs.map((r) => `x[${r}] = r${r};`).join(' '),
  };
}

/** A block's instructions in the labelled statement every compiled form runs them in (`break blk` ends it early; `ip` counts the ones retired). */
const blockBody = (b: Block): string => `blk: {
        ${b.ir.parts.join('\n        ')}
        ip = ${b.n};
      }`;

/** A block compiled on its own. A block whose last instruction branches back to its own start (a tight loop) iterates inside its function while the budget allows. */
function compileBlock(b: Block): BlockFn {
  const { prefix, pcs, used, fallthrough, selfLoop } = b.ir;
  const n = b.n, vpc0 = b.vpc;
  const blk = blockBody(b);
  const p = prologue(blk, used);
  const src = selfLoop ? `
    let ${p.load ? p.load + ', ' : ''}_z = 0, ip = 0, npc = ${fallthrough}, cyc = 0, doneI = 0, doneC = 0${p.mem}
    ${p.watch}
    try {
      for (;;) {
        ${blk}
        if (ip !== ${n} || npc !== ${vpc0} || doneI + ${2 * n} > budget) break;
        doneI += ${n}; doneC += ${prefix[n]} + cyc; cyc = 0;
      }
    } catch (e) {
      ${p.store}
      if (e === TRAP) { ctr[${Ctr.Instructions}] += doneI + ip; ctr[${Ctr.Cycles}] += doneC + PREFIX[ip]; h.pc = PCS[ip]; }
      throw e;
    }
    ${p.store}
    ctr[${Ctr.Instructions}] += doneI + ip;
    ctr[${Ctr.Cycles}] += doneC + PREFIX[ip] + cyc;
    return npc;` : `
    let ${p.load ? p.load + ', ' : ''}_z = 0, ip = 0, npc = ${fallthrough}, cyc = 0${p.mem}
    ${p.watch}
    try {
      ${blk}
    } catch (e) {
      ${p.store}
      if (e === TRAP) { ctr[${Ctr.Instructions}] += ip; ctr[${Ctr.Cycles}] += PREFIX[ip]; h.pc = PCS[ip]; }
      throw e;
    }
    ${p.store}
    ctr[${Ctr.Instructions}] += ip;
    ctr[${Ctr.Cycles}] += PREFIX[ip] + cyc;
    return npc;`;
  return new Function('TRAP', 'PREFIX', 'PCS', `return function block_${b.pa.toString(16)}(h, x, ctr, budget) { ${src} }`)(TRAP, Int32Array.from(prefix), Int32Array.from(pcs)) as BlockFn;
}

/**
 * The blocks of a region compiled into one function: a loop over `switch (npc)` with one case per
 * block; each case checks the budget, runs the block and accounts for it. It returns when the
 * next pc is not one of its blocks, after a system instruction, after a store into code, or when
 * the budget cannot hold the next block; a trap leaves the state a lone block would.
 */
function compileRegion(blocks: Block[]): RegionFn {
  const used = new Set<number>();
  for (const b of blocks) for (const r of b.ir.used) used.add(r);
  const cases = blocks.map((b, k) => {
    const { parts, prefix, system } = b.ir;
    const n = b.n;
    const stores = parts.some((x) => x.includes('codeDirty'));
    return `case ${b.vpc}: bi = ${k};
          if (doneI + ${n} > budget) break run;
          ${blockBody(b)}
          if (ip !== ${n}${stores ? ' || h.codeDirty' : ''}) { doneI += ip; doneC += PREFIXES[${k}][ip] + cyc; cyc = 0; break run; }
          doneI += ${n}; doneC += ${prefix[n]} + cyc; cyc = 0;${system ? '\n          break run;' : ''}
          continue;`;
  });
  const body = cases.join('\n        ');
  const p = prologue(body, used);
  const src = `
    let ${p.load ? p.load + ', ' : ''}_z = 0, ip = 0, npc = pc, cyc = 0, doneI = 0, doneC = 0, bi = 0${p.mem}
    ${p.watch}
    try {
      run: for (;;) {
        switch (npc) {
        ${body}
        }
        break;
      }
    } catch (e) {
      ${p.store}
      if (e === TRAP) { ctr[${Ctr.Instructions}] += doneI + ip; ctr[${Ctr.Cycles}] += doneC + PREFIXES[bi][ip]; h.pc = PCSS[bi][ip]; }
      throw e;
    }
    ${p.store}
    ctr[${Ctr.Instructions}] += doneI;
    ctr[${Ctr.Cycles}] += doneC;
    return npc;`;
  const name = `region_${(blocks[0].pa >>> 12).toString(16)}`;
  return new Function('TRAP', 'PREFIXES', 'PCSS', `return function ${name}(h, x, ctr, budget, pc) { ${src} }`)(
    TRAP, blocks.map((b) => Int32Array.from(b.ir.prefix)), blocks.map((b) => Int32Array.from(b.ir.pcs))) as RegionFn;
}

/**
 * Runs at most `max` instructions with translated blocks; same contract as the interpreter
 * (Hart.run). When fewer instructions remain than the next block holds, the interpreter runs
 * the remainder, so budgets end at exact instruction counts.
 */
export function runJit(h: Hart, jit: Jit, max: number): number {
  const x = h.x, ctr = h.ctr;
  const ftag = h.mmu.tlb[0].tag, fpage = h.mmu.tlb[0].page;
  const regions = jit.regions;
  const start = ctr[Ctr.Instructions];
  h.stopReason = StopReason.Budget;
  let prev = null as Block | null;
  for (;;) {
    const done = ctr[Ctr.Instructions] - start;
    if (done >= max) return StopReason.Budget;
    try {
      if (h.irqDirty) {
        h.irqDirty = false;
        const irq = h.pendingInterrupt();
        if (irq >= 0) {
          h.wfiPending = false;
          prev = null;
          h.pc = h.takeTrap(h.pc, irq);
          if (h.stopReason !== StopReason.Budget) return h.stopReason;
        }
      }
      const pc = h.pc | 0;
      const vpn = pc >>> 12;
      const pa = (pc & 1) === 0 && ftag[vpn & 255] === ((vpn << 3) | (h.priv | (h.virt << 2)))
        ? fpage[vpn & 255] + (pc & 0xfff) : h.fetchPa(pc);
      const r = regions.get(pa >>> 12);
      if (r !== undefined && r.vpage === vpn) {
        const n = r.starts.get(pc);
        if (n !== undefined) {
          prev = null;
          if (n > max - done) {
            const s = runInterpreter(h, max - done);
            if (s !== StopReason.Budget) return s;
            continue;
          }
          jit.stats.regionsEntered++;
          h.pc = r.fn!(h, x, ctr, max - done, pc);
          if (h.wfiPending) { h.wfiPending = false; return StopReason.Wfi; }
          continue;
        }
      }
      const n1: Block | null = prev ? prev.next1 : null, n2: Block | null = prev ? prev.next2 : null;
      const b: Block | null = n1 && n1.pa === pa && n1.vpc === pc && n1.valid ? n1
        : n2 && n2.pa === pa && n2.vpc === pc && n2.valid ? n2 : jit.lookup(pa);
      if (b && prev && prev.valid && prev.next1 !== b) { prev.next2 = prev.next1; prev.next1 = b; }
      if (b !== null && ++b.hits === HOT && jit.admit(b) !== null) { prev = null; continue; }
      if (b === null || b.n > max - done) {
        const s = runInterpreter(h, b === null ? 1 : max - done);
        prev = null;
        if (s !== StopReason.Budget) return s;
        continue;
      }
      jit.stats.blocksExecuted++;
      h.pc = jit.blockFn(b)(h, x, ctr, max - done);
      prev = b;
      if (h.wfiPending) { h.wfiPending = false; return StopReason.Wfi; }
    } catch (e) {
      prev = null;
      if (e === STOP) return h.stopReason;
      if (e !== TRAP) throw e;
      h.pc = h.takeTrap(h.pc);
      if (h.stopReason !== StopReason.Budget) return h.stopReason;
    }
  }
}
