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
import { INSNS, Format } from '../isa/table.js';
import { decode } from '../isa/decode.js';
import { FACTS } from '../isa/facts.js';
import { fetchInsn, insnLen, insnWord } from '../isa/fetch.js';
import { ACC_STORE } from '../mmu/mmu.js';
import { Slots as TemplateSlots, signExtend } from './semantics.js';
import { EXTRA_CYCLES, IMM_OF, expand } from './template.js';
import { runInterpreter } from './interp.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import { STOP, StopReason, TRAP } from './trap.js';
import type { HartCore } from './hart-core.js';

/** Instructions per block at most. */
export const MAX_BLOCK = 64;
/** Runs after which a basic block ending with a two-way branch becomes a trace (if any branch is biased); runs a basic block needs before its direction is trusted. */
const HOT = 32;
const WARM = 8;
/** Translated blocks kept at most before the cache is evicted. */
export const DEFAULT_BLOCK_CAP = 16384;

/**
 * A translated block. It runs only if the run's instruction limit (`Views.limit`) holds all of it,
 * sets `h.pc` to the next pc, and returns the successor block when it can be chained, else null.
 */
type BlockFn = (h: HartCore, x: Int32Array, ctr: Float64Array) => Block | null;

/**
 * What compiled code reads besides the hart: its TLB arrays and RAM views (for the inline memory
 * fast paths), the run's instruction limit (the instruction count a run must not pass; blocks
 * check it before they start) and the code-dirty flag (set when a store hit a page holding
 * translated code: the running block must end).
 */
interface Views {
  ltag: Int32Array; lpage: Int32Array; sfast: Int32Array; spage: Int32Array; u8: Uint8Array; u16: Uint16Array; i32: Int32Array;
  limit: number; dirty: boolean;
}

/** The valid blocks of one physical page, by (start offset / 2); a block looks its same-page successors up here. */
type Slots = (Block | undefined)[];

/** A block as translated, before compilation: its instructions' code and accounting. */
interface BlockIR {
  parts: string[];
  /** The same instructions as compiled inside a region (see compileRegion), made on first use. */
  regionParts: () => string[];
  /** Static cycles of the first i instructions. */
  prefix: number[];
  pcs: number[];
  used: Set<number>;
  /** Registers the block writes (only these are written back). */
  written: Set<number>;
  /** Access groups (locals g<k>, g<k>d: see Group). */
  groups: number;
  fallthrough: number;
  /** Where the last instruction goes when it branches or jumps, if that is a constant. */
  target: number | null;
  /** Ends with an indirect jump (jalr). */
  indirect: boolean;
  selfLoop: boolean;
  /** Ends with a system instruction: its chain ends with it. */
  system: boolean;
  /** Ends with a conditional branch (a basic block that counts its directions). */
  branch: boolean;
  /** Goes on through branches or jumps (a trace). */
  trace: boolean;
  /** Has inline memory accesses (plain loads or stores). */
  mem: boolean;
  /** Has a branch or jump (counts taken branches). */
  taken: boolean;
  /** Its run may end before its last instruction: on its own (`early`), inside a region (`earlyInRegion`). */
  early: boolean;
  earlyInRegion: boolean;
}

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
  /** The block's own compiled function; `fn` is its region's entry while it belongs to one. */
  solo: BlockFn;
}

/**
 * What an invalidated block runs: nothing, back to the dispatcher. Like a region's entries, made
 * by `new Function` as the blocks are, so every Block.fn holds the same kind of function and V8
 * keeps one shape for Block (an arrow function here would change the field's type and deoptimize
 * every compiled function that reads a Block).
 */
const STALE = new Function('return function stale() { return null; }')() as BlockFn;
/**
 * The entry of a region at its k-th block: runs the region, then returns the block at the pc it
 * stopped at if that can be chained (in the same page, translated for the same virtual page).
 * When the region left before an instruction its fast paths could not run (how = 2) and a
 * block starts there, that block runs on its own first (its slow path), since its region entry
 * would only leave again.
 * The successor lookup lives here, in code every region shares, rather than on each region's
 * rarely run exit path, where V8 would have no type feedback for it and would deoptimize the
 * whole region on its first exits.
 */
const ENTRY = new Function('R', 'k', 'SLOTS', 'VPAGE', `return function entry(h, x, ctr) {
  const how = R(h, x, ctr, k);
  if (how === 0) return null;
  const npc = h.pc | 0;
  if ((npc >>> 12) !== VPAGE) return null;
  const t = SLOTS[(npc & 0xfff) >>> 1];
  if (t === undefined || t.vpc !== npc) return null;
  return how === 1 ? t : t.solo(h, x, ctr);
}`) as (r: RegionFn, k: number, slots: Slots, vpage: number) => BlockFn;

/**
 * Runs of one block on its own after which its page's blocks become a region, and builds of one
 * page's region at most (a block left out of the region that becomes as hot triggers a rebuild
 * with it; each build is one large function that V8 takes 50-190 ms to optimize); instructions in
 * a region at most. docs/engine.md has the measurements behind all three.
 */
const REGION_AT = 2048;
const REGION_BUILDS = 4;
const REGION_INSNS = 512;

/** Per-hart translation state. */
export class Jit {
  readonly blocks = new Map<number, Block>();
  private readonly byPage = new Map<number, Block[]>();
  private readonly slots = new Map<number, Slots>();
  readonly stats = { translations: 0, evictions: 0, invalidations: 0, chains: 0, chained: 0, traces: 0, regions: 0 };
  /** Region builds per page (see region). */
  private readonly builds = new Map<number, number>();

  /** The hart's RAM views and TLB arrays (fixed for its life), the run's limit and code-dirty flag, handed to every block it compiles. */
  readonly views: Views;

  /** `regionAt`: runs of a block after which its page becomes a region (lower in tests, to reach regions quickly). */
  constructor(private readonly h: HartCore, readonly cap = DEFAULT_BLOCK_CAP, private readonly regionAt = REGION_AT) {
    const [, load, store] = h.mmu.tlb;
    this.views = { ltag: load.tag, lpage: load.page, sfast: store.fast, spage: store.page, u8: h.mem.u8, u16: h.mem.u16, i32: h.mem.i32, limit: 0, dirty: false };
    h.codePages = new Uint8Array(Math.ceil(h.mem.size / 4096));
    h.onCodeWrite = (pa) => (pa < 0 ? this.flush() : this.invalidatePage(pa >>> 12));
  }

  /** Drops every block (fence.i, or the cache cap). */
  flush(): void {
    for (const b of this.blocks.values()) drop(b);
    this.blocks.clear();
    this.byPage.clear();
    for (const t of this.slots.values()) t.fill(undefined);
    this.builds.clear();
    this.h.codePages!.fill(0);
  }

  invalidatePage(page: number): void {
    const list = this.byPage.get(page);
    this.h.codePages![page] = 0;
    this.views.dirty = true;
    if (!list) return;
    for (const b of list) { drop(b); if (this.blocks.get(b.pa) === b) this.blocks.delete(b.pa); }
    this.slots.get(page)?.fill(undefined);
    this.builds.delete(page);
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
    if (b !== undefined && b.vpc === vpc) return b;
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
    const ir = translate(this.h, b.pa, b.vpc, follow);
    if (ir === null || !ir.trace) return;
    const t: Block = { pa: b.pa, vpc: b.vpc, ir, fn: STALE, solo: STALE, n: ir.pcs.length, valid: true, hits: 0, taken: 0, runs: 0 };
    t.fn = t.solo = compileBlock(t, slots, this.views, this.hotFn, this.regionAt);
    slots[(b.pa & 0xfff) >>> 1] = t;
    this.blocks.set(b.pa, t);
    this.byPage.get(b.pa >>> 12)!.push(t);
    drop(b);
    this.stats.traces++;
  }

  /**
   * A block has run `regionAt` times on its own: the page's valid blocks for its virtual page that
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
    const candidates = this.byPage.get(page)!.filter((m) => m.valid && m.runs > 0 && m.vpc >>> 12 === vpage && this.blocks.get(m.pa) === m)
      .sort((p, q) => q.runs - p.runs);
    const members: Block[] = [];
    let size = 0;
    for (const m of candidates) if (size + m.n <= REGION_INSNS) { members.push(m); size += m.n; }
    if (members.length < 2) return;
    this.builds.set(page, built + 1);
    const placed = placeRegion(members);
    const fn = compileRegion(placed, this.views);
    for (const m of this.byPage.get(page)!) m.fn = m.solo;
    placed.forEach((m, k) => { m.fn = ENTRY(fn, k, this.slots.get(page)!, vpage); });
    this.stats.regions++;
  }

  private readonly hotFn = (b: Block, region: boolean): void => (region ? this.region(b) : this.retrace(b));

  private add(pa: number, vpc: number): Block | null {
    const ir = translate(this.h, pa, vpc);
    if (!ir) return null;
    const page = pa >>> 12;
    let slots = this.slots.get(page);
    if (slots === undefined) this.slots.set(page, slots = new Array<Block | undefined>(2048).fill(undefined));
    const t: Block = { pa, vpc, ir, fn: STALE, solo: STALE, n: ir.pcs.length, valid: true, hits: 0, taken: 0, runs: 0 };
    t.fn = t.solo = compileBlock(t, slots, this.views, this.hotFn, this.regionAt);
    slots[(pa & 0xfff) >>> 1] = t;
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

/** Invalidates a block: it no longer runs (its slot is cleared by the caller). */
function drop(b: Block): void {
  b.valid = false;
  b.fn = b.solo = STALE;
}

/**
 * The TLB fast path of a plain load or store (isa/facts.ts `plain`), inlined: a tag compare and a
 * host offset into the RAM views; misses, misaligned and page-crossing accesses, MMIO, poisoned
 * and gate pages (which the TLB never caches) go through the hart's slow path, which charges
 * exactly what the interpreter charges. Stores compare the store TLB's `fast` tags, which exclude
 * frames holding translated code and everything while an LR reservation is held, so the fast path
 * needs no bookkeeping; a slow-path store clears `M.dirty` first and after it ends the block
 * (`exit`) when it wrote into code.
 *
 * Inside a region the access checks first and leaves the region before the instruction when the
 * fast path does not apply (see compileRegion); the access itself is then direct.
 *
 * Returns the statements to run before the instruction (`pre`: a group's check, a region's guard)
 * and the access: the loaded value's expression, or the store statement.
 */
function inlineAccess(
  size: 1 | 2 | 4, store: boolean, base: string, imm: string, value: string,
  g: Group | null, region: boolean, clobber: string, ip: number, exit: string,
): { pre: string; access: string } {
  const view = size === 1 ? 'u8' : size === 2 ? 'u16' : 'i32';
  const shift = size === 1 ? '' : size === 2 ? ' >>> 1' : ' >>> 2';
  const mask = size - 1, n = 8 * size;
  const [tag, page] = store ? ['sfast', 'spage'] : ['ltag', 'lpage'];
  const ea = `(${base} + ${imm}) | 0`;
  // A group member whose group check passed accesses RAM directly: base register + offset + the group's host delta.
  const direct = `${view}[((g${g?.id}d + ${base} + ${imm}) | 0)${shift}]`;
  const check = g?.first ? `_a = (${base} + ${g.first.min}) | 0; _v = _a >>> 12; ` +
    `g${g.id} = ${tag}[_v & 255] === ((_v << 3) | mode) && ((((${base} + ${g.first.maxEnd}) | 0) ^ _a) >>> 12) === 0 && (${base} & ${g.first.mask}) === 0; ` +
    `g${g.id}d = (${page}[_v & 255] - (_v << 12)) | 0; ` : '';
  if (region) {
    const leave = `{ ip = ${ip}; how = 2; break run; } `;
    const pre = g === null
      ? `_a = ${ea}; _v = _a >>> 12; if (${tag}[_v & 255] !== ((_v << 3) | mode) || (_a & ${mask}) !== 0) ${leave}`
      : `${check}if (!g${g.id}) ${leave}`;
    const at = g === null ? `${view}[(${page}[_v & 255] + (_a & 0xfff))${shift}]` : direct;
    return { pre, access: store ? `${at} = ${value};` : at };
  }
  const hit = `(_a = ${ea}, _v = _a >>> 12, ${tag}[_v & 255] === ((_v << 3) | mode) && (_a & ${mask}) === 0)`;
  const at = `${view}[(${page}[_v & 255] + (_a & 0xfff))${shift}]`;
  if (store) {
    const generic = `if (${hit}) ${at} = ${value}; else { ${clobber}; M.dirty = false; h.store${n}(_a, ${value}); ${exit} }`;
    return { pre: check, access: g ? `if (g${g.id}) ${direct} = ${value}; else ${generic}` : generic };
  }
  const generic = `(${hit} ? ${at} : (${clobber}, h.load${n}(_a)))`;
  return { pre: check, access: g ? `(g${g.id} ? ${direct} : ${generic})` : generic };
}

/**
 * Plain loads (or stores) of one block with the same base register, not written in between, share
 * one TLB check at the first of them: all their bytes in one page that hits the TLB, base aligned
 * for every size (each offset is a multiple of its size). The others then access RAM directly,
 * unless any slow path ran in between (it may have refilled the TLB; the clobber expression
 * clears every group's flag), so TLB misses and walk cycles stay exactly the interpreter's.
 */
interface Group {
  id: number;
  /** Set on the first member: the check's offset range and alignment mask. */
  first: { min: number; maxEnd: number; mask: number } | null;
}

/** Groups the plain memory accesses of a decoded block (see Group); null for the others. */
function groupAccesses(insns: { id: number; w: number; format: Format }[]): (Group | null)[] {
  const version = new Array<number>(32).fill(0);
  const members = new Map<string, { i: number; off: number; size: number }[]>();
  insns.forEach(({ id, w, format }, i) => {
    const { plain, size, writesMem, writesRd } = FACTS[id], rs1 = (w >>> 15) & 31;
    if (plain && rs1 !== 0) {
      const off = IMM_OF[format](w);
      if (off % size === 0) {
        const key = `${writesMem}:${rs1}:${version[rs1]}`;
        (members.get(key) ?? members.set(key, []).get(key)!).push({ i, off, size });
      }
    }
    if (writesRd) version[(w >>> 7) & 31]++;
  });
  const out = new Array<Group | null>(insns.length).fill(null);
  let id = 0;
  for (const list of members.values()) {
    if (list.length < 2) continue;
    const first = {
      min: Math.min(...list.map((m) => m.off)),
      maxEnd: Math.max(...list.map((m) => m.off + m.size - 1)),
      mask: Math.max(...list.map((m) => m.size - 1)),
    };
    list.forEach((m, k) => { out[m.i] = { id, first: k === 0 ? first : null }; });
    id++;
  }
  return out;
}

/** A taken branch's bookkeeping in a block: its extra cycles (in `cyc`) and the taken-branch counter (in `tb`). */
const TAKEN_CODE = `cyc += ${COSTS.takenBranch}; tb++;`;

/** One decoded instruction of a block being translated; `on`: the direction a trace follows its branch or jump in. */
interface Insn { id: number; format: Format; w: number; len: number; vpc: number; on?: boolean }

/** What splicing one instruction needs to know about its place in the block. */
interface Place {
  /** Index in the block, and the taken branches the trace followed before it. */
  i: number;
  takenBefore: number;
  group: Group | null;
  /** Clears every access group's flag (an expression). */
  clobber: string;
  region: boolean;
  used: Set<number>;
  written: Set<number>;
}

/**
 * The code of one instruction in a block (or, `region`, in a region): the row's template expanded
 * with the JIT's slots (semantics.ts): fields as constants, registers in locals, plain loads and
 * stores inlined, a branch or jump a trace follows going on in the trace (the other direction a
 * side exit that leaves with `ip` instructions retired), and, read from the instruction's facts,
 * the trap index (only an instruction that may trap records it, for the handler), the group
 * clobber after a slow path, and the end of the block after a store into code.
 */
function splice(insn: Insn, p: Place): string {
  const { id, format, w, len, vpc, on } = insn;
  const { i, group, clobber, region, used, written } = p;
  const f = FACTS[id];
  const rd = (w >>> 7) & 31, rs1 = (w >>> 15) & 31, rs2 = (w >>> 20) & 31;
  const imm = `(${IMM_OF[format](w)})`;
  const next = (vpc + len) | 0;
  const reg = (r: number) => { if (r) used.add(r); return r ? `r${r}` : '0'; };
  const taken = region ? `tk = ${p.takenBefore + 1};` : TAKEN_CODE;
  // A store into code ends the block after it (slow-path stores only: the fast path never
  // writes code); inside a region, it leaves the region.
  const exit = region ? `if (M.dirty) { ip = ${i + 1}; how = 2; break run; }` : `if (M.dirty) { ip = ${i + 1}; npc = ${next}; break blk; }`;
  let pre = '';
  const access = (store: boolean) => {
    const a = inlineAccess(f.size as 1 | 2 | 4, store, reg(rs1), imm, store ? reg(rs2) : '', group, region, clobber, i, exit);
    pre = a.pre;
    return a.access;
  };
  const slots: TemplateSlots = {
    rd: String(rd), rs1: String(rs1), rs2: String(rs2),
    get r1() { return reg(rs1); },
    get r2() { return reg(rs2); },
    imm, pc: `(${vpc | 0})`, len: String(len),
    // Locals are plain numbers, not Int32Array elements: truncate every result to int32 as the
    // register file would (e.g. `>>>` yields an unsigned value).
    writeRd: (v) => { if (rd) { used.add(rd); written.add(rd); } return `${rd ? `r${rd}` : '_z'} = (${v}) | 0;`; },
    load: () => signExtend(access(false), f.size, f.signed),
    store: () => access(true),
    branch: (cond) => {
      const to = `(${(vpc + IMM_OF[format](w)) | 0})`;
      if (on === undefined) return `if (${cond}) { npc = ${to}; ${taken} }`;
      return on ? `if (${cond}) { ${taken} } else { npc = ${next}; ip = ${i + 1}; break blk; }`
        : `if (${cond}) { npc = ${to}; ${taken} ip = ${i + 1}; break blk; }`;
    },
    // A followed jump (jal x0: no link) just goes on.
    jump: (target) => (on === undefined ? `npc = ${target}; ${taken}` : taken),
  };
  const code = expand(id, slots);
  let body = pre + code; // pre is set while expanding (by load/store)
  // A slow path may refill the TLB: later group members check again (see Group). Plain accesses clobber on their own slow path.
  if (clobber !== '0' && f.mayTrap && !f.plain) body = `${clobber}; ${body}`;
  if (f.writesMem && !f.plain) body = `M.dirty = false; ${body} ${exit}`;
  return f.mayTrap && !(f.plain && region) ? `ip = ${i}; ${body}` : body;
}

/**
 * Translates the block starting at physical address `pa` for virtual pc `vpc0`. Returns null when
 * not even one instruction can be translated (illegal, or crossing the page end): the caller
 * then interprets one instruction, which raises whatever the hardware would.
 */
function translate(h: HartCore, pa: number, vpc0: number, follow: Follow | null = null): BlockIR | null {
  const u16 = h.mem.u16;
  // Beyond the end of RAM the reader gives 0 (undefined | 0); the length check below stops there.
  const read16 = (at: number) => u16[at >>> 1] | 0;
  const pageBase = pa & ~0xfff, pageEnd = pageBase + 4096;
  const insns: Insn[] = [];
  let a = pa, vpc = vpc0, segment = vpc0;
  while (insns.length < MAX_BLOCK) {
    if (a + 2 > pageEnd) break;
    const raw = fetchInsn(read16, a);
    const len = insnLen(raw), w = insnWord(raw) >>> 0;
    if (a + len > pageEnd || w === 0) break;
    const id = decode(w);
    if (id < 0) break;
    const { format } = INSNS[id];
    const facts = FACTS[id];
    // CSR instructions may read instret/cycle/time: they start a block of their own, so the
    // counters are exact when they run.
    if (insns.length > 0 && facts.startsBlock) break;
    const insn: Insn = { id, format, w, len, vpc };
    insns.push(insn);
    const next = (vpc + len) | 0;
    // A trace goes on through a conditional branch in the direction its basic block mostly took,
    // and through a plain jump, within the page, to code it has not visited (the other direction
    // becomes a side exit); a branch back to the trace's start closes a loop and ends it.
    const target = facts.kind === 'branch' || (facts.kind === 'jal' && ((w >>> 7) & 31) === 0) ? (vpc + IMM_OF[format](w)) | 0 : null;
    const dir = follow === null || target === null || insns.length >= MAX_BLOCK ? null : facts.kind === 'branch' ? follow(segment) : true;
    const to = dir === true ? target! : dir === false ? next : null;
    if (to === null || to === vpc0 || (to ^ vpc0) >>> 12 !== 0 || insns.some((x) => x.vpc === to)) {
      if (facts.endsBlock) break;
      a += len;
      vpc = next;
      continue;
    }
    insn.on = dir!;
    a = pageBase + (to & 0xfff);
    vpc = segment = to;
  }
  const n = insns.length;
  if (n === 0) return null;
  const groups = groupAccesses(insns);
  const groupCount = groups.reduce((k, g) => Math.max(k, g ? g.id + 1 : 0), 0);
  const clobber = groupCount ? `(${Array.from({ length: groupCount }, (_, k) => `g${k}`).join(' = ')} = false)` : '0';
  const prefix: number[] = [0];
  const used = new Set<number>(), written = new Set<number>();
  // Taken branches and jumps the trace follows before each instruction (every later instruction of it ran after them).
  const takenBefore: number[] = [];
  insns.forEach(({ id }, i) => {
    takenBefore.push(i === 0 ? 0 : takenBefore[i - 1] + (insns[i - 1].on === true ? 1 : 0));
    prefix.push(prefix[i] + COSTS.base + EXTRA_CYCLES[id]);
  });
  const code = (i: number, region: boolean) =>
    splice(insns[i], { i, takenBefore: takenBefore[i], group: groups[i], clobber, region, used, written });
  const parts = insns.map((_, i) => code(i, false));
  // The region form is spliced only for blocks that join a region, once.
  let rparts: string[] | null = null;
  const last = insns[n - 1], lastFacts = FACTS[last.id];
  const target = lastFacts.kind === 'branch' || lastFacts.kind === 'jal' ? (last.vpc + IMM_OF[last.format](last.w)) | 0 : null;
  return {
    parts, regionParts: () => (rparts ??= insns.map((_, i) => code(i, true))), prefix, pcs: insns.map((x) => x.vpc), used, written, groups: groupCount, fallthrough: (last.vpc + last.len) | 0,
    target, indirect: lastFacts.kind === 'jalr', selfLoop: target === vpc0, system: lastFacts.endsChain, branch: lastFacts.kind === 'branch',
    trace: insns.some((x) => x.on !== undefined),
    mem: insns.some((x) => FACTS[x.id].plain),
    taken: insns.some((x) => FACTS[x.id].transfers),
    // A block's run ends early (break blk) at a store (into code), and in a trace at a side exit;
    // a region's, at a side exit only (it leaves the region at the others).
    early: insns.some((x) => FACTS[x.id].writesMem || (x.on !== undefined && FACTS[x.id].kind === 'branch')),
    earlyInRegion: insns.some((x) => x.on !== undefined && FACTS[x.id].kind === 'branch'),
  };
}

/** Which way the conditional branch ending the basic block at `vpc` mostly went: taken, not taken, or unknown or mixed (null). */
type Follow = (vpc: number) => boolean | null;

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
function compileBlock(b: Block, slots: Slots, views: Views, hot: (b: Block, region: boolean) => void, regionAt: number): BlockFn {
  const { used, fallthrough, system, selfLoop } = b.ir;
  const n = b.n, vpc0 = b.vpc;
  const r = blockRun(b, '', 'lim - ctr0', 'PREFIX', false);
  const count = `
    if (++B.runs === ${regionAt}) HOT(B, true);${b.ir.branch && !b.ir.trace && !selfLoop ? `
    if (B.hits < ${HOT}) { B.hits++; if (npc !== ${fallthrough}) B.taken++; if (B.hits === ${HOT}) HOT(B, false); }` : ''}`;
  const p = prologue(b.ir.mem, used, b.ir.written);
  const next = system ? 'return null;' : `if ((npc ^ ${vpc0}) >>> 12 === 0) {
      const t = SLOTS[(npc & 0xfff) >>> 1];
      if (t !== undefined && t.vpc === npc) return t;
    }
    return null;`;
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
  return factory(src, 'TRAP, PREFIX, PCS, SLOTS, M, B, HOT', 'block(h, x, ctr)')(TRAP, Int32Array.from(b.ir.prefix), Int32Array.from(b.ir.pcs), slots, views, b, hot) as BlockFn;
}

/** A region's function: runs the region from its k-th block (see compileRegion); 0 when it stopped, 1 when its next pc may be chained, 2 when it left before an instruction it could not run. */
type RegionFn = (h: HartCore, x: Int32Array, ctr: Float64Array, k: number) => 0 | 1 | 2;

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
function compileRegion(members: Block[], views: Views): RegionFn {
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
    return `case ${k}: {
          if (ri + ${b.n} > left) { npc = ${b.vpc}; how = 0; break run; }
          npc = ${b.ir.fallthrough};
          ${r.run}
          ri += ${r.retired}; rc += ${r.cycles};${r.taken ? ' rtb += tk; tk = 0;' : ''}${b.ir.selfLoop ? ' doneI = 0; doneC = 0;' : ''}
          ${next}
        }`;
  });
  const tk = COSTS.takenBranch === 1 ? 'tk' : `tk * ${COSTS.takenBranch}`;
  const p = prologue(members.some((b) => b.ir.mem), used, written);
  const src = `
    const left = M.limit - ctr[${Ctr.Instructions}];
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
  return factory(src, 'TRAP, PX, PC, M, IDX', 'region(h, x, ctr, k)')(TRAP, members.map((b) => Int32Array.from(b.ir.prefix)),
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
function placeRegion(blocks: Block[]): Block[] {
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

/** The factory compiled from a function's source (shared through FACTORIES). */
function factory(src: string, params: string, signature: string): (...args: unknown[]) => unknown {
  const key = signature + src;
  let f = FACTORIES.get(key);
  if (f === undefined) {
    if (FACTORIES.size >= FACTORY_CAP) FACTORIES.clear();
    f = new Function(...params.split(', '), `return function ${signature} { ${src} }`) as (...args: unknown[]) => unknown;
    FACTORIES.set(key, f);
  }
  return f;
}

/**
 * Compiled blocks by source text, shared by every hart and VM of the thread. A block's source
 * determines its behaviour (instructions, pcs and costs are constants in it), so the same code
 * at the same address, in any VM, reuses one factory: no new parse, and its closures share
 * V8's feedback and optimized code, so a VM running an image another VM has run starts warm.
 * Bounded: cleared when full.
 */
const FACTORIES = new Map<string, (...args: unknown[]) => unknown>();
const FACTORY_CAP = 8192;

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
        const s = runInterpreter(h, b === null ? 1 : max - done);
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
