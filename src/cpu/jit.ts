/**
 * Block translator: the translation cache (blocks by physical address, their page slot tables and
 * chaining, invalidation, the triggers of traces and regions) and the dispatcher (runJit). The
 * translation itself is in jit-translate.ts, the compiled forms (blocks, regions) in
 * jit-compile.ts.
 *
 * Guest basic blocks become JavaScript functions (`new Function`) built from
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
 * - Chaining: a block returns its successor when that is already translated in the same physical
 *   page for the same virtual page (found in the page's slot table; the fetch translation checked
 *   when the chain began still holds), and the dispatcher's chain loop calls it without a lookup.
 *   Chains end after a system instruction, at a successor in another page or not yet translated,
 *   after a store into code, on a trap, or at a block the run's limit cannot hold.
 * - Traces: a hot basic block ending with a biased two-way branch is replaced by a trace through
 *   the page that follows the usual directions; the other directions are side exits that leave
 *   the same state as the basic blocks would.
 * - Access groups: loads (or stores) sharing a base register share one TLB check, redone after any
 *   slow path, so TLB misses and walk cycles are exactly the interpreter's.
 * - Regions: once a block of a page has run often, the page's blocks that have run become one
 *   function with registers in locals across blocks; it leaves before any instruction that needs
 *   a slow path, with exactly the state the blocks would have left there.
 */
import { ACC_STORE } from '../mmu/mmu.js';
import { runInterpreter, runInterpreterToBlockEnd } from './interp.js';
import { Ctr } from '../uarch/costs.js';
import { STOP, StopReason, TRAP } from './trap.js';
import type { HartCore } from './hart-core.js';
import { BlockIR, Follow, translate } from './jit-translate.js';
import { Block, ENTRY, Hot, NEXT, RegionState, STALE, Slots, Views, WARM, compileBlock, compileRegion, placeRegion, timeFirstCall } from './jit-compile.js';


/** Translated blocks kept at most before the cache is evicted. */
export const DEFAULT_BLOCK_CAP = 16384;

/**
 * Runs of one block on its own after which its page's blocks become a region, and builds of one
 * page's region at most (a block left out of the region that becomes as hot triggers a rebuild
 * with it; each build is one large function that V8 takes 50-190 ms to optimize); instructions in
 * a region at most. docs/engine.md has the measurements behind all three.
 */
const REGION_AT = 2048;
/**
 * Times the dispatcher reaches a block start before it is translated; until then the interpreter
 * runs it (to its block end). Translating a block and V8 compiling it (bytecode at its first call,
 * TurboFan later, on another thread but on the same CPUs) cost about as much as interpreting it
 * hundreds to thousands of times (docs/engine.md): translating after about that many arrivals
 * bounds what code run only that often loses against the interpreter (the ski-rental rule). With
 * the predecoding interpreter (about twice as fast as the one 1,024 was chosen against), 16,384
 * beat 1,024 and 4,096 on the real programs' first runs (docs/engine.md, "Tiers").
 */
export const TRANSLATE_AT = 16384;
const REGION_BUILDS = 4;
/**
 * Instructions the blocks of a page (for one virtual page) must have retired on their own before
 * the page becomes a region, checked every REGION_AT runs of a block; a block whose code was in a
 * region this thread built before (the same image in another VM) needs only REGION_AT runs. A
 * region costs 50-1,000 ms of TurboFan time and deoptimizations; on CoreMark's first run (616
 * million instructions) regions built after 1, 5, 20 and 100 million instructions per page all
 * made the run slower than none (docs/engine.md), so first runs of programs this size use blocks.
 */
const REGION_INSNS_AT = 200_000_000;
const REGION_INSNS = 512;
/**
 * Instructions a region must retire per entry on average (over its first REGION_PROBE entries)
 * to stay: on real programs (string, soft-float and sorting code calling across pages), regions
 * entered for a few instructions at a time made the jit slower than the interpreter; the
 * kernels' loops retire hundreds per entry.
 */
const REGION_MIN_RUN = 64;

/** Per-hart translation state. */
export class Jit {
  readonly blocks = new Map<number, Block>();
  private readonly byPage = new Map<number, Block[]>();
  private readonly slots = new Map<number, Slots>();
  /**
   * Counts (translations: blocks translated; traces, regions built; demoted: regions gone back to
   * blocks; cold: dispatcher arrivals at code not translated yet, run by the interpreter; chains:
   * dispatcher passes that ran a block; chained: blocks run without the dispatcher) and what each
   * tier costs: `translateMs` decoding and splicing blocks and traces, `compileMs` building their
   * functions and regions (source, `new Function`), `sourceBytes` and `parsed` of sources new to the
   * thread (`reused`: found compiled), `firstCallMs` the first calls of blocks and first entries of
   * regions (`firstCalls` of them), where V8 compiles their bytecode. Times in milliseconds.
   */
  readonly stats = {
    translations: 0, evictions: 0, invalidations: 0, chains: 0, chained: 0, traces: 0, regions: 0, demoted: 0, cold: 0,
    translateMs: 0, compileMs: 0, sourceBytes: 0, parsed: 0, reused: 0, firstCallMs: 0, firstCalls: 0,
  };
  /** Dispatcher arrivals at block starts not translated yet, per physical page (by offset / 2). */
  private readonly heat = new Map<number, Uint16Array>();
  /** Region builds per page (see region), and the page's current region's counts. */
  private readonly builds = new Map<number, number>();
  private readonly live = new Map<number, RegionState>();

  /** The hart's RAM views and TLB arrays (fixed for its life), the run's limit and code-dirty flag, handed to every block it compiles. */
  readonly views: Views;

  /**
   * `regionAt`: runs of a block after which its page may become a region, `regionInsns`:
   * instructions its page's blocks must have retired for that (see REGION_INSNS_AT); `translateAt`:
   * arrivals at a block start before it is translated (all lower in tests, to reach the tiers
   * quickly).
   */
  constructor(
    private readonly h: HartCore, readonly cap = DEFAULT_BLOCK_CAP, private readonly regionAt = REGION_AT, private readonly translateAt = TRANSLATE_AT,
    private readonly regionInsns = REGION_INSNS_AT,
  ) {
    const [, load, store] = h.mmu.tlb;
    const [fetch] = h.mmu.tlb;
    this.views = {
      ltag: load.tag, lpage: load.page, sfast: store.fast, spage: store.page, u8: h.mem.u8, u16: h.mem.u16, i32: h.mem.i32, limit: 0, dirty: false,
      ftag: fetch.tag, fpage: fetch.page, pages: new Array<Slots | undefined>(Math.ceil(h.mem.size / 4096)).fill(undefined),
    };
    h.codePages = new Uint8Array(Math.ceil(h.mem.size / 4096));
    this.lines = new Uint8Array(Math.ceil(h.mem.size / 64));
    h.onCodeWrite = (pa) => (pa < 0 ? this.flush() : this.codeStore(pa));
  }

  /**
   * 64-byte lines of physical memory that hold translated instructions (marked as blocks are
   * translated, cleared with their page): a store into a code page that misses them (data sharing
   * a page with code, as a program's last text page and its first data do) leaves the page's
   * blocks alone.
   */
  private readonly lines: Uint8Array;

  /**
   * A hart stored at most 4 bytes at physical `pa` in a page holding translated code: the blocks of
   * the page (and of the next, for a store across the page end) are invalidated if it hit a line
   * holding translated instructions. Native writes of larger ranges use invalidatePage.
   */
  codeStore(pa: number): void {
    const a = pa >>> 6, b = (pa + 3) >>> 6;
    if (this.lines[a] !== 0) this.invalidatePage(pa >>> 12);
    if (b !== a && b < this.lines.length && this.lines[b] !== 0) this.invalidatePage(b >>> 6);
  }

  /** Marks the lines of a translated block's instructions (all in the page of `pa`). */
  private markLines(pa: number, ir: BlockIR): void {
    const base = pa & ~0xfff;
    for (const pc of ir.pcs) {
      const at = base + (pc & 0xfff);
      this.lines[at >>> 6] = 1;
      if (((at + 3) & 0xfff) > (at & 0xfff)) this.lines[(at + 3) >>> 6] = 1;
    }
  }

  /** Drops every block (fence.i, or the cache cap). */
  flush(): void {
    for (const b of this.blocks.values()) drop(b);
    this.blocks.clear();
    this.byPage.clear();
    for (const t of this.slots.values()) t.fill(undefined);
    this.builds.clear();
    this.live.clear();
    this.heat.clear();
    this.lines.fill(0);
    this.h.codePages!.fill(0);
  }

  invalidatePage(page: number): void {
    const list = this.byPage.get(page);
    this.h.codePages![page] = 0;
    this.lines.fill(0, page << 6, (page + 1) << 6);
    this.views.dirty = true;
    if (!list) return;
    for (const b of list) { drop(b); if (this.blocks.get(b.pa) === b) this.blocks.delete(b.pa); }
    this.slots.get(page)?.fill(undefined);
    this.builds.delete(page);
    this.live.delete(page);
    this.stats.invalidations += list.length;
    this.byPage.delete(page);
  }

  /**
   * Block for virtual pc h.pc at physical address pa, translating it once the dispatcher has
   * reached it `translateAt` times; null while it is cold (or cannot be translated): the
   * interpreter then runs to its block end. Keyed by the physical address (a small integer, so the
   * map needs no boxing); the same code reached through another virtual address is retranslated,
   * since pc-relative values are baked into blocks.
   */
  lookup(pa: number): Block | null {
    const vpc = this.h.pc | 0;
    const b = this.blocks.get(pa);
    if (b !== undefined && b.vpc === vpc) return b;
    if (this.translateAt > 1) {
      const page = pa >>> 12;
      let heat = this.heat.get(page);
      if (heat === undefined) this.heat.set(page, heat = new Uint16Array(2048));
      const at = (pa & 0xfff) >>> 1;
      if (++heat[at] < this.translateAt) { this.stats.cold++; return null; }
      heat[at] = 0;
    }
    if (b !== undefined) { drop(b); this.blocks.delete(pa); this.slots.get(pa >>> 12)![(pa & 0xfff) >>> 1] = undefined; }
    if (this.blocks.size >= this.cap) {
      this.stats.evictions += this.blocks.size;
      this.flush();
    }
    return this.add(pa, vpc);
  }

  /**
   * A basic block ending with a conditional branch has run HOT times: it is replaced (in its slot
   * and the block map) by a trace from its start that follows each branch, its own and those of
   * the basic blocks it reaches, in the direction that basic block took at least 90% of the time,
   * as far as such directions are known (see translate). Nothing happens when no branch is biased.
   */
  private retrace(b: Block): void {
    if (!b.valid || this.blocks.get(b.pa) !== b) return;
    const slots = this.slots.get(b.pa >>> 12)!;
    const follow: Follow = (vpc) => {
      const s = slots[(vpc & 0xfff) >>> 1];
      if (s === undefined || s.vpc !== vpc || !s.ir.branch || s.ir.trace || s.hits < WARM) return null;
      return s.taken * 10 >= s.hits * 9 ? true : s.taken * 10 <= s.hits ? false : null;
    };
    const t0 = performance.now();
    const ir = translate(this.h, b.pa, b.vpc, follow);
    const t1 = performance.now();
    this.stats.translateMs += t1 - t0;
    if (ir === null || !ir.trace) return;
    const t = this.compile(b.pa, b.vpc, ir, slots, t1);
    slots[(b.pa & 0xfff) >>> 1] = t;
    this.markLines(b.pa, ir);
    this.blocks.set(b.pa, t);
    this.byPage.get(b.pa >>> 12)!.push(t);
    drop(b);
    this.stats.traces++;
  }

  /**
   * A block has run `regionAt` times on its own (again): unless its code was in a region this
   * thread built before, nothing happens until the page's blocks have retired `regionInsns`
   * instructions on their own (the block asks again `regionAt` runs later). Then the page's valid blocks for its virtual page that
   * have run, the most run first, up to REGION_INSNS instructions, become its region (see
   * compileRegion), whose entry each of them runs from then on; the others run on their own, and
   * one of them becoming as hot rebuilds the region, up to REGION_BUILDS times a page (counted
   * until the page's blocks are invalidated or flushed).
   */
  private region(b: Block): void {
    if (!b.valid || this.blocks.get(b.pa) !== b) return;
    const page = b.pa >>> 12, built = this.builds.get(page) ?? 0;
    if (built >= REGION_BUILDS) return;
    const vpage = b.vpc >>> 12;
    if (!REGION_SEEDS.has(b.key)) {
      let retired = 0;
      for (const m of this.byPage.get(page)!) if (m.valid && m.vpc >>> 12 === vpage) retired += m.runs * m.n;
      if (retired < this.regionInsns) { b.regionAt = b.runs + this.regionAt; return; }
    }
    const candidates = this.byPage.get(page)!.filter((m) => m.valid && m.runs > 0 && m.vpc >>> 12 === vpage && this.blocks.get(m.pa) === m)
      .sort((p, q) => q.runs - p.runs);
    const members: Block[] = [];
    let size = 0;
    for (const m of candidates) if (size + m.n <= REGION_INSNS) { members.push(m); size += m.n; }
    if (members.length < 2) return;
    this.builds.set(page, built + 1);
    const placed = placeRegion(members);
    const t0 = performance.now();
    const fn = compileRegion(placed, this.views, this.stats);
    this.stats.compileMs += performance.now() - t0;
    for (const m of this.byPage.get(page)!) m.fn = m.solo;
    const state: RegionState = {
      entries: 0, insns: 0,
      probe: () => {
        if (this.live.get(page) !== state || state.insns >= REGION_MIN_RUN * state.entries) return;
        // Back to blocks for good (until the page is invalidated or flushed).
        for (const m of placed) if (m.valid) m.fn = m.solo;
        if (this.builds.has(page)) this.builds.set(page, REGION_BUILDS);
        this.stats.demoted++;
      },
    };
    this.live.set(page, state);
    if (REGION_SEEDS.size >= 8192) REGION_SEEDS.clear();
    for (const m of placed) REGION_SEEDS.add(m.key);
    placed.forEach((m, k) => { m.fn = ENTRY(fn, k, this.slots.get(page)!, vpage, this.views, NEXT, state, this.stats); });
    this.stats.regions++;
  }

  private readonly hotFn: Hot = (b, region) => (region ? this.region(b) : this.retrace(b));

  /** A block for `ir` compiled (time counted from `t0`), its first call timed (Jit.stats). */
  private compile(pa: number, vpc: number, ir: BlockIR, slots: Slots, t0: number): Block {
    const t: Block = { pa, vpc, ir, fn: STALE, solo: STALE, n: ir.pcs.length, valid: true, hits: 0, taken: 0, runs: 0, regionAt: this.regionAt, key: '' };
    t.solo = compileBlock(t, slots, this.views, this.hotFn, this.stats);
    t.fn = timeFirstCall(t, t.solo, this.stats);
    this.stats.compileMs += performance.now() - t0;
    return t;
  }

  private add(pa: number, vpc: number): Block | null {
    const t0 = performance.now();
    const ir = translate(this.h, pa, vpc);
    const t1 = performance.now();
    this.stats.translateMs += t1 - t0;
    if (!ir) return null;
    const page = pa >>> 12;
    let slots = this.slots.get(page);
    if (slots === undefined) this.slots.set(page, this.views.pages[page] = slots = new Array<Block | undefined>(2048).fill(undefined));
    const t = this.compile(pa, vpc, ir, slots, t1);
    slots[(pa & 0xfff) >>> 1] = t;
    this.markLines(pa, ir);
    this.stats.translations++;
    this.blocks.set(pa, t);
    (this.byPage.get(page) ?? this.byPage.set(page, []).get(page)!).push(t);
    if (this.h.codePages![page] === 0) {
      this.h.codePages![page] = 1;
      this.protectCode(page);
    }
    return t;
  }

  /** Frame `frame` now holds translated code: translated code's stores to it must take the slow path (the store watch, HartCore.codePages). */
  private protectCode(frame: number): void {
    const t = this.h.mmu.tlb[ACC_STORE];
    for (let i = 0; i < 256; i++) if (t.page[i] >>> 12 === frame) t.fast[i] = -1;
  }
}

/**
 * Sources of the blocks that were in regions built by this thread (bounded: cleared when full): a
 * block among them asks for its region after REGION_AT runs, any other only after
 * REGION_INSNS_AT instructions (see Jit.region).
 */
const REGION_SEEDS = new Set<string>();

/** Invalidates a block: it no longer runs (its slot is cleared by the caller). */
function drop(b: Block): void {
  b.valid = false;
  b.fn = b.solo = STALE;
}

/**
 * Runs at most `max` instructions with translated blocks; same contract as the interpreter
 * (Hart.run). Each pass translates pc through the fetch TLB (as the interpreter's fetch does),
 * finds the block and runs its chain of successors until a block returns null: the next pc is
 * not translated yet or in another page, after a system instruction or a store into code, or the limit
 * cannot hold the next block. When fewer instructions remain than a block holds, the interpreter
 * runs the remainder, so budgets end at exact instruction counts.
 */
export function runJit(h: HartCore, jit: Jit, max: number): number {
  const x = h.x, ctr = h.ctr;
  const ftag = h.mmu.tlb[0].tag, fpage = h.mmu.tlb[0].page;
  const start = ctr[Ctr.Instructions];
  const stats = jit.stats;
  jit.views.limit = start + max;
  h.stopReason = StopReason.Budget;
  for (;;) {
    const done = ctr[Ctr.Instructions] - start;
    if (done >= max) return StopReason.Budget;
    // Blocks chained in this pass (kept outside the try, so a chain ending in a trap is counted too).
    let k = 0;
    try {
      if (h.irqDirty) {
        h.irqDirty = false;
        const irq = h.pendingInterrupt();
        if (irq >= 0) {
          h.wfiPending = false;
          h.pc = h.takeTrap(h.pc, irq);
          if (h.stopReason !== StopReason.Budget) return h.stopReason;
        }
      }
      const pc = h.pc | 0;
      const vpn = pc >>> 12;
      const pa = (pc & 1) === 0 && ftag[vpn & 255] === ((vpn << 3) | (h.priv | (h.virt << 2)))
        ? fpage[vpn & 255] + (pc & 0xfff) : h.fetchPa(pc);
      const b = jit.lookup(pa);
      if (b === null || b.n > max - done) {
        const s = b === null ? runInterpreterToBlockEnd(h, max - done) : runInterpreter(h, max - done);
        if (s !== StopReason.Budget) return s;
        continue;
      }
      stats.chains++;
      let cur = b.fn(h, x, ctr);
      while (cur !== null) { cur = cur.fn(h, x, ctr); k++; }
      stats.chained += k;
      if (h.wfiPending) { h.wfiPending = false; return StopReason.Wfi; }
    } catch (e) {
      stats.chained += k;
      if (e === STOP) return h.stopReason;
      if (e !== TRAP) throw e;
      h.pc = h.takeTrap(h.pc);
      if (h.stopReason !== StopReason.Budget) return h.stopReason;
    }
  }
}
