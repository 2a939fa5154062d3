/**
 * The JIT's compiled forms: a translated block (jit-translate.ts) compiled to a function, and the
 * hot blocks of a page compiled together into a region; the factory cache they share.
 */
import { Ctr, COSTS } from '../uarch/costs.js';
import { TRAP } from './trap.js';
import type { HartCore } from './hart-core.js';
import type { BlockIR } from './jit-translate.js';

/** Runs after which a basic block ending with a two-way branch becomes a trace (if any branch is biased); runs a basic block needs before its direction is trusted. */
const HOT = 32;
export const WARM = 8;

/**
 * A translated block. It runs only if the run's instruction limit (`Views.limit`) holds all of it,
 * sets `h.pc` to the next pc, and returns the successor block when it can be chained, else null.
 */
export type BlockFn = (h: HartCore, x: Int32Array, ctr: Float64Array) => Block | null;

/**
 * What compiled code reads besides the hart: its TLB arrays and RAM views (for the inline memory
 * fast paths), the run's instruction limit (the instruction count a run must not pass; blocks
 * check it before they start) and the code-dirty flag (set when a store hit a page holding
 * translated code: the running block must end).
 */
export interface Views {
  ltag: Int32Array; lpage: Int32Array; sfast: Int32Array; spage: Int32Array; u8: Uint8Array; u16: Uint16Array; i32: Int32Array;
  limit: number; dirty: boolean;
  /** The fetch TLB's tags and pages, and the slot table of every physical page with blocks (by page number): a successor in another page (see NEXT). */
  ftag: Int32Array; fpage: Int32Array; pages: (Slots | undefined)[];
}

/**
 * The chaining step every compiled form ends with: the block translated for virtual pc `npc` when
 * it can run next without the dispatcher, else null. In the page the chain is in (`vpage`), the
 * page's slot table (`slots`); in another page, the fetch TLB must hit for it in the current mode
 * (exactly the dispatcher's check before a chain, which the interpreter's fetch would make, with
 * no side effect on a hit), and the slot table of the physical page it maps to must hold a block
 * translated for `npc`. One shared function, so that every block's exit has the same feedback.
 */
export const NEXT = new Function('return function next(h, M, slots, vpage, npc) {' + `
  if ((npc >>> 12) === vpage) {
    const t = slots[(npc & 0xfff) >>> 1];
    return t !== undefined && t.vpc === npc ? t : null;
  }
  const vpn = npc >>> 12;
  if ((npc & 1) !== 0 || M.ftag[vpn & 255] !== ((vpn << 3) | (h.priv | (h.virt << 2)))) return null;
  const pa = M.fpage[vpn & 255] + (npc & 0xfff);
  const other = M.pages[pa >>> 12];
  if (other === undefined) return null;
  const t = other[(pa & 0xfff) >>> 1];
  return t !== undefined && t.vpc === npc ? t : null;
}`)() as (h: HartCore, views: Views, slots: Slots, vpage: number, npc: number) => Block | null;

/** The valid blocks of one physical page, by (start offset / 2); a block looks its same-page successors up here. */
export type Slots = (Block | undefined)[];

export interface Block {
  pa: number;
  /** Virtual pc the block was translated for (pc-relative values are baked in). */
  vpc: number;
  ir: BlockIR;
  fn: BlockFn;
  /** Number of instructions. */
  n: number;
  valid: boolean;
  /** Runs and taken branches of a basic block ending with a conditional branch, counted up to HOT runs. */
  hits: number;
  taken: number;
  /** Runs on its own (not inside a region). */
  runs: number;
  /** Runs at which it next asks for its page's region (Jit.region, which may move it on). */
  regionAt: number;
  /** Its function's source (the key of its factory in FACTORIES). */
  key: string;
  /** The block's own compiled function; `fn` is its region's entry while it belongs to one. */
  solo: BlockFn;
}

/**
 * What an invalidated block runs: nothing, back to the dispatcher. Like a region's entries, made
 * by `new Function` as the blocks are, so every Block.fn holds the same kind of function and V8
 * keeps one shape for Block (an arrow function here would change the field's type and deoptimize
 * every compiled function that reads a Block).
 */
export const STALE = new Function('return function stale() { return null; }')() as BlockFn;
/** Entries into a region after which its entries judge whether it pays (RegionState.probe). */
export const REGION_PROBE = 4096;

/**
 * The entry of a region at its k-th block: runs the region, then returns the block at the pc it
 * stopped at if that can be chained (in the same page, translated for the same virtual page).
 * When the region left before an instruction its fast paths could not run (how = 2) and a
 * block starts there, that block runs on its own first (its slow path), since its region entry
 * would only leave again.
 * The region's first entry (its first call, when V8 compiles it) is timed into `cost`.
 * The successor lookup lives here, in code every region shares, rather than on each region's
 * rarely run exit path, where V8 would have no type feedback for it and would deoptimize the
 * whole region on its first exits.
 */
export const ENTRY = new Function('R', 'k', 'SLOTS', 'VPAGE', 'M', 'NEXT', 'S', 'C', `return function entry(h, x, ctr) {
  const i0 = ctr[${Ctr.Instructions}];
  const first = S.entries === 0, t0 = first ? performance.now() : 0;
  const how = R(h, x, ctr, k);
  if (first) { C.firstCallMs += performance.now() - t0; C.firstCalls++; }
  S.insns += ctr[${Ctr.Instructions}] - i0;
  if (++S.entries === ${REGION_PROBE}) S.probe();
  if (how === 0) return null;
  const t = NEXT(h, M, SLOTS, VPAGE, h.pc | 0);
  if (t === null) return null;
  return how === 1 ? t : t.solo(h, x, ctr);
}`) as (r: RegionFn, k: number, slots: Slots, vpage: number, views: Views, next: typeof NEXT, state: RegionState, cost: FirstCallCost) => BlockFn;


/**
 * What a region's entries count: its entries and the instructions retired inside it; `probe`
 * runs once, at REGION_PROBE entries (Jit.region: a region left after a few instructions on
 * average, as calls into a page of library code are, costs more in its entry and register loads
 * than it saves, and goes back to blocks).
 */
export interface RegionState { entries: number; insns: number; probe: () => void }

/** Register locals, the memory prologue (only code with inline accesses, `mem`, pays for it) and the store prologue of some code. */
function prologue(hasMem: boolean, used: Set<number>, written: Set<number>) {
  const regs = [...used].sort((a, b) => a - b);
  const mem = hasMem
    ? `, _a = 0, _v = 0;
    const mode = h.priv | (h.virt << 2), ltag = M.ltag, lpage = M.lpage, sfast = M.sfast, spage = M.spage, u8 = M.u8, u16 = M.u16, i32 = M.i32;`
    : ';';
  return {
    load: regs.map((r) => `r${r} = x[${r}]`).join(', '),
    mem,
    store: regs.filter((r) => written.has(r)).map((r) => `x[${r}] = r${r};`).join(' '),
  };
}

/**
 * A block's run inside a compiled function: its instructions (iterating inside while the budget
 * allows when it branches back to its own start, a tight loop) and the expressions of what it
 * retired and what that cost when it ends normally (as constants where it cannot end early or
 * take a branch). `done` is the expression of the instructions the enclosing function has already
 * retired before this block, `left` of its budget; `prefix` names the block's prefix-cycle table.
 * On its own a block counts its taken branches in `cyc` and `tb`; inside a region (`regionParts`),
 * `tk` holds the taken branches so far of the current pass through the block, a constant at each
 * site, so that no rarely run path does arithmetic (see compileRegion).
 */
function blockRun(b: Block, done: string, left: string, prefix: string, region: boolean) {
  const { selfLoop, fallthrough } = b.ir;
  const n = b.n;
  const parts = region ? b.ir.regionParts() : b.ir.parts;
  const taken = b.ir.taken;
  const blk = `blk: {
        ${parts.join('\n        ')}
        ip = ${n};
      }`;
  const early = selfLoop || (region ? b.ir.earlyInRegion : b.ir.early);
  const tk = COSTS.takenBranch === 1 ? 'tk' : `tk * ${COSTS.takenBranch}`;
  const run = selfLoop ? `for (;;) {
        npc = ${fallthrough};
        ${blk}
        if (ip !== ${n} || npc !== ${b.vpc} || ${done}doneI + ${2 * n} > ${left}) break;
        doneI += ${n}; doneC += ${b.ir.prefix[n]}${region ? ` + ${tk}; rtb += tk; tk = 0` : ' + cyc; cyc = 0'};
      }` : blk;
  const extra = taken ? (region ? ` + ${tk}` : ' + cyc') : '';
  return {
    blk, run, taken,
    retired: selfLoop ? 'doneI + ip' : early ? 'ip' : String(n),
    cycles: (selfLoop ? `doneC + ${prefix}[ip]` : early ? `${prefix}[ip]` : String(b.ir.prefix[n])) + extra,
  };
}

/** The locals every compiled form declares for the access groups of its blocks. */
const groupLocals = (groups: number) => Array.from({ length: groups }, (_, k) => `g${k} = false, g${k}d = 0, `).join('');

/**
 * A block compiled to its function (the BlockFn contract). A successor in the same page,
 * translated for the same virtual page (its vpc is the next pc), is returned from the page's slot
 * table: the dispatcher's chain loop calls it without a lookup, and registers pass through the
 * register file between blocks. Every block counts its runs (a hot page becomes a region, see
 * Jit.region); a basic block ending with a two-way branch also counts its taken branches until it
 * is hot (see Jit.retrace).
 */
export function compileBlock(b: Block, slots: Slots, views: Views, hot: Hot, cost: CompileCost): BlockFn {
  const { used, fallthrough, system, selfLoop } = b.ir;
  const n = b.n, vpc0 = b.vpc;
  const r = blockRun(b, '', 'lim - ctr0', 'PREFIX', false);
  const count = b.ir.branch && !b.ir.trace && !selfLoop ? `
    COUNT2(B, HOT, npc !== ${fallthrough});` : `
    COUNT(B, HOT);`;
  const p = prologue(b.ir.mem, used, b.ir.written);
  const next = system ? 'return null;' : `return NEXT(h, M, SLOTS, ${vpc0 >>> 12}, npc);`;
  const src = `
    const lim = M.limit, ctr0 = ctr[${Ctr.Instructions}];
    if (ctr0 + ${n} > lim) return null;
    let ${p.load ? p.load + ', ' : ''}${groupLocals(b.ir.groups)}_z = 0, ip = 0, npc = ${fallthrough}, cyc = 0, tb = 0, doneI = 0, doneC = 0${p.mem}
    try {
      ${r.run}
    } catch (e) {
      ${p.store}
      if (e === TRAP) { ctr[${Ctr.Instructions}] += doneI + ip; ctr[${Ctr.Cycles}] += doneC + PREFIX[ip] + cyc; ctr[${Ctr.TakenBranches}] += tb; h.pc = PCS[ip]; }
      throw e;
    }
    ${p.store}
    ctr[${Ctr.Instructions}] += ${r.retired};
    ctr[${Ctr.Cycles}] += ${r.cycles};${r.taken ? `
    ctr[${Ctr.TakenBranches}] += tb;` : ''}
    h.pc = npc;${count}
    ${next}`;
  b.key = src;
  return factory(src, 'TRAP, PREFIX, PCS, SLOTS, M, B, HOT, NEXT, COUNT, COUNT2', 'block(h, x, ctr)', cost)(
    TRAP, Int32Array.from(b.ir.prefix), Int32Array.from(b.ir.pcs), slots, views, b, hot, NEXT, COUNT, COUNT2) as BlockFn;
}

/** What a block's counts trigger (Jit): its page's region (`region`), or its trace. */
export type Hot = (b: Block, region: boolean) => void;

/**
 * The counting every block does after a run: its runs (asking for its page's region at
 * `regionAt`) and, for a basic block ending with a two-way branch (COUNT2), its taken branches
 * until it has run HOT times (then asking for its trace). Shared functions rather than code in
 * each block: the calls into Jit happen once per block, mostly after V8 optimized the block, and
 * a call site that has never run deoptimizes the optimized function that reaches it; here the call
 * sites' feedback is shared by all blocks.
 */
export const COUNT = new Function(`return function count(B, HOT) {
  if (++B.runs === B.regionAt) HOT(B, true);
}`)() as (b: Block, hot: Hot) => void;
export const COUNT2 = new Function(`return function count2(B, HOT, taken) {
  if (++B.runs === B.regionAt) HOT(B, true);
  if (B.hits < ${HOT}) { B.hits++; if (taken) B.taken++; if (B.hits === ${HOT}) HOT(B, false); }
}`)() as (b: Block, hot: Hot, taken: boolean) => void;

/** A region's function: runs the region from its k-th block (see compileRegion); 0 when it stopped, 1 when its next pc may be chained, 2 when it left before an instruction it could not run. */
export type RegionFn = (h: HartCore, x: Int32Array, ctr: Float64Array, k: number) => 0 | 1 | 2;

/**
 * The hot blocks of one page, for one virtual page, compiled into one function: a loop over a
 * switch on the block's index, registers in locals for the whole run, so going from one block to
 * the next costs an index lookup and a jump instead of a call, a register write-back and reload
 * and the counters' update; a block's usual successor is placed right after it and reached by
 * falling into its case. It keeps the BlockFn contract as a whole: it runs a block only if the
 * budget holds all of it, stops after a system instruction (0), goes on to a pc outside its blocks
 * by returning (1, the entry then chains a same-page successor as a block would), and a trap in any
 * block leaves exactly the state that block would leave running alone.
 *
 * A region has no slow paths: a load or store whose TLB fast path does not apply, and a store
 * into code, leave the region before (or, for the store, after) that instruction with every
 * earlier one retired (2; the entry runs the block there on its own, slow path included). Rarely
 * run paths inside it are only such exits, constant assignments and `break`s (taken-branch
 * counts are constants per site, in `tk`), because V8 deoptimizes a function the first time it
 * runs an operation it has no type feedback for, and for a function this large each
 * reoptimization costs 50-150 ms (docs/engine.md).
 */
export function compileRegion(members: Block[], views: Views, cost: CompileCost): RegionFn {
  const vpage = members[0].vpc >>> 12;
  const used = new Set<number>(), written = new Set<number>();
  let groups = 0;
  const cases = members.map((b, k) => {
    b.ir.used.forEach((r) => used.add(r));
    b.ir.written.forEach((r) => written.add(r));
    groups = Math.max(groups, b.ir.groups);
    const r = blockRun(b, 'ri + ', 'left', `PX[${k}]`, true);
    const dispatch = `if ((npc >>> 12) !== ${vpage}) break run;
          k = IDX[(npc & 0xfff) >>> 1];
          if (k < 0) break run;
          continue;`;
    // The usual successor is placed next (see placeRegion): going there falls into its case.
    const next = b.ir.system ? 'how = 0; break run;'
      : k + 1 < members.length && likelySuccessor(b) === members[k + 1].vpc ? `if (npc === ${members[k + 1].vpc}) k = ${k + 1}; else {
          ${dispatch}
          }` : dispatch;
    // A CSR access may read instret or cycle: the counters are brought up to date before it.
    const sync = b.ir.startsBlock ? `
          ctr[${Ctr.Instructions}] += ri; ctr[${Ctr.Cycles}] += rc; ctr[${Ctr.TakenBranches}] += rtb; left -= ri; ri = 0; rc = 0; rtb = 0;` : '';
    return `case ${k}: {
          if (ri + ${b.n} > left) { npc = ${b.vpc}; how = 0; break run; }${sync}
          npc = ${b.ir.fallthrough};
          ${r.run}
          ri += ${r.retired}; rc += ${r.cycles};${r.taken ? ' rtb += tk; tk = 0;' : ''}${b.ir.selfLoop ? ' doneI = 0; doneC = 0;' : ''}
          ${next}
        }`;
  });
  const tk = COSTS.takenBranch === 1 ? 'tk' : `tk * ${COSTS.takenBranch}`;
  const p = prologue(members.some((b) => b.ir.mem), used, written);
  const src = `
    let left = M.limit - ctr[${Ctr.Instructions}];
    let ${p.load ? p.load + ', ' : ''}${groupLocals(groups)}_z = 0, ip = 0, npc = 0, tk = 0, doneI = 0, doneC = 0, ri = 0, rc = 0, rtb = 0, how = 1${p.mem}
    try {
      run: for (;;) {
        switch (k) {
        ${cases.join('\n        ')}
        }
      }
    } catch (e) {
      if (e !== TRAP) { ${p.store} throw e; }
      how = 3; // a trap: accounted like a leave (2), then rethrown
    }
    ${p.store}
    if (how >= 2) {
      ctr[${Ctr.Instructions}] += ri + doneI + ip;
      ctr[${Ctr.Cycles}] += rc + doneC + PX[k][ip] + ${tk};
      ctr[${Ctr.TakenBranches}] += rtb + tk;
      h.pc = PC[k][ip];
      if (how === 3) throw TRAP;
      return 2;
    }
    ctr[${Ctr.Instructions}] += ri;
    ctr[${Ctr.Cycles}] += rc;
    ctr[${Ctr.TakenBranches}] += rtb;
    h.pc = npc;
    return how;`;
  const idx = new Int16Array(2048).fill(-1);
  members.forEach((b, k) => { idx[(b.vpc & 0xfff) >>> 1] = k; });
  // A region's pc table has one more entry than the block: where a block left after its last instruction (a store into code) goes on.
  return factory(src, 'TRAP, PX, PC, M, IDX', 'region(h, x, ctr, k)', cost)(TRAP, members.map((b) => Int32Array.from(b.ir.prefix)),
    members.map((b) => Int32Array.from([...b.ir.pcs, b.ir.fallthrough])), views, idx) as RegionFn;
}

/** The pc a block most likely goes on to: its taken direction, counted, when it ends with a branch; null if unknown. */
function likelySuccessor(b: Block): number | null {
  const { ir } = b;
  if (ir.system) return null;
  if (ir.branch) return ir.selfLoop || ir.trace || b.taken * 2 <= b.hits ? ir.fallthrough : ir.target;
  return ir.indirect ? null : ir.target ?? ir.fallthrough;
}

/**
 * Orders a region's blocks so that each is followed, where possible, by its likely successor
 * (chains grown from the most run block first): that transition then falls into the next case
 * instead of going round the dispatch switch.
 */
export function placeRegion(blocks: Block[]): Block[] {
  const byVpc = new Map(blocks.map((b) => [b.vpc, b]));
  const placed = new Set<Block>();
  const out: Block[] = [];
  for (const first of blocks) {
    for (let b: Block | undefined = first; b !== undefined && !placed.has(b); b = byVpc.get(likelySuccessor(b) ?? NaN)) {
      placed.add(b);
      out.push(b);
    }
  }
  return out;
}

/**
 * What one hart's compiles cost (Jit.stats): milliseconds spent making functions (building the
 * source, `new Function`, and the factory's closure), the bytes of source handed to V8, and how
 * many sources were new to the thread (`parsed`) or found in FACTORIES (`reused`).
 */
export interface CompileCost { compileMs: number; sourceBytes: number; parsed: number; reused: number }

/** The factory compiled from a function's source (shared through FACTORIES); counts the source into `cost`. */
function factory(src: string, params: string, signature: string, cost: CompileCost): (...args: unknown[]) => unknown {
  const key = signature + src;
  let f = FACTORIES.get(key);
  if (f === undefined) {
    if (FACTORIES.size >= FACTORY_CAP) FACTORIES.clear();
    f = new Function(...params.split(', '), `return function ${signature} { ${src} }`) as (...args: unknown[]) => unknown;
    FACTORIES.set(key, f);
    cost.parsed++;
    cost.sourceBytes += key.length;
  } else cost.reused++;
  return f;
}

/**
 * What the first calls of compiled functions cost (Jit.stats): V8 compiles a function's bytecode
 * lazily, at its first call, so the first call's time is mostly that compile (plus one run of a
 * block, or one entry of a region).
 */
export interface FirstCallCost { firstCallMs: number; firstCalls: number }

/**
 * `fn` wrapped so that its first call through `b.fn` is timed into `cost`, after which `b.fn` is
 * `fn` itself (unless something else, a region entry, took the field meanwhile). Made by
 * `new Function` like the blocks, so Block.fn keeps one kind of function (see STALE).
 */
export const timeFirstCall = new Function('now', `return function timeFirstCall(b, fn, cost) {
  const w = function first(h, x, ctr) {
    if (b.fn === w) b.fn = fn;
    const t0 = now();
    try { return fn(h, x, ctr); } finally { cost.firstCallMs += now() - t0; cost.firstCalls++; }
  };
  return w;
}`)(() => performance.now()) as (b: Block, fn: BlockFn, cost: FirstCallCost) => BlockFn;


/**
 * Compiled blocks by source text, shared by every hart and VM of the thread. A block's source
 * determines its behaviour (instructions, pcs and costs are constants in it), so the same code
 * at the same address, in any VM, reuses one factory: no new parse, and its closures share
 * V8's feedback and optimized code, so a VM running an image another VM has run starts warm.
 * Bounded: cleared when full.
 */
const FACTORIES = new Map<string, (...args: unknown[]) => unknown>();
const FACTORY_CAP = 8192;
