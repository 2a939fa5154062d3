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
 */
import { INSNS, Format } from '../isa/table.js';
import { decode, expandCompressed } from '../isa/decode.js';
import { SEMANTICS, EXTRA_CYCLES } from './semantics.js';
import { IMM_EXPR, runInterpreter } from './interp.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import { STOP, StopReason, TRAP } from './hart.js';
import type { Hart } from './hart.js';

/** Instructions per block at most. */
export const MAX_BLOCK = 64;
/** Runs after which a basic block ending with a two-way branch becomes a trace (if any branch is biased); runs a basic block needs before its direction is trusted. */
const HOT = 32;
const WARM = 8;
/** Translated blocks kept at most before the cache is evicted. */
export const DEFAULT_BLOCK_CAP = 16384;

/** System instructions: they end a block and its chain (they may change the mode, satp, interrupts). */
const SYSTEM = new Set(['ecall', 'ebreak', 'fence.i', 'csrrw', 'csrrs', 'csrrc', 'csrrwi', 'csrrsi', 'csrrci', 'sret', 'mret', 'wfi',
  'sfence.vma', 'hfence.vvma', 'hfence.gvma']);
/** Jumps, branches and system instructions end a block. */
const ENDS_BLOCK = new Set(['jal', 'jalr', 'beq', 'bne', 'blt', 'bge', 'bltu', 'bgeu', ...SYSTEM]);
const STORES = new Set(['sb', 'sh', 'sw', 'sc.w', 'amoswap.w', 'amoadd.w', 'amoxor.w', 'amoand.w', 'amoor.w',
  'amomin.w', 'amomax.w', 'amominu.w', 'amomaxu.w', 'hsv.b', 'hsv.h', 'hsv.w']);

/**
 * A translated block. It runs only if the run's instruction limit (`h.jitLimit`) holds all of it,
 * sets `h.pc` to the next pc, and returns the successor block when it can be chained, else null.
 */
type BlockFn = (h: Hart, x: Int32Array, ctr: Float64Array) => Block | null;

/** What a block's inline memory fast paths read: the hart's TLB arrays and RAM views. */
interface Views { ltag: Int32Array; lpage: Int32Array; sfast: Int32Array; spage: Int32Array; u8: Uint8Array; u16: Uint16Array; i32: Int32Array }

/** The valid blocks of one physical page, by (start offset / 2); a block looks its same-page successors up here. */
type Slots = (Block | undefined)[];

/** A block as translated, before compilation: its instructions' code and accounting. */
interface BlockIR {
  parts: string[];
  /** Static cycles of the first i instructions. */
  prefix: number[];
  pcs: number[];
  used: Set<number>;
  /** Registers the block writes (only these are written back). */
  written: Set<number>;
  /** Access groups (locals g<k>, g<k>d: see Group). */
  groups: number;
  fallthrough: number;
  selfLoop: boolean;
  /** Ends with a system instruction: its chain ends with it. */
  system: boolean;
  /** Ends with a conditional branch (a basic block that counts its directions). */
  branch: boolean;
  /** Goes on through branches or jumps (a trace). */
  trace: boolean;
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
}

/** What an invalidated block runs: nothing, back to the dispatcher. */
const STALE: BlockFn = () => null;

/** Per-hart translation state. */
export class Jit {
  readonly blocks = new Map<number, Block>();
  private readonly byPage = new Map<number, Block[]>();
  private readonly slots = new Map<number, Slots>();
  readonly stats = { translations: 0, evictions: 0, invalidations: 0, chains: 0, chained: 0, traces: 0 };

  /** The hart's RAM views and TLB arrays (fixed for its life), handed to every block it compiles. */
  private readonly views: Views;

  constructor(private readonly h: Hart, readonly cap = DEFAULT_BLOCK_CAP) {
    const [, load, store] = h.mmu.tlb;
    this.views = { ltag: load.tag, lpage: load.page, sfast: store.fast, spage: store.page, u8: h.mem.u8, u16: h.mem.u16, i32: h.mem.i32 };
    h.codePages = new Uint8Array(Math.ceil(h.mem.size / 4096));
    h.onCodeWrite = (pa) => (pa < 0 ? this.flush() : this.invalidatePage(pa >>> 12));
  }

  /** Drops every block (fence.i, or the cache cap). */
  flush(): void {
    for (const b of this.blocks.values()) drop(b);
    this.blocks.clear();
    this.byPage.clear();
    for (const t of this.slots.values()) t.fill(undefined);
    this.h.codePages!.fill(0);
  }

  invalidatePage(page: number): void {
    const list = this.byPage.get(page);
    this.h.codePages![page] = 0;
    this.h.codeDirty = true;
    if (!list) return;
    for (const b of list) { drop(b); if (this.blocks.get(b.pa) === b) this.blocks.delete(b.pa); }
    this.slots.get(page)?.fill(undefined);
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
    const t: Block = { pa: b.pa, vpc: b.vpc, ir, fn: STALE, n: ir.pcs.length, valid: true, hits: 0, taken: 0 };
    t.fn = compileBlock(t, slots, this.views, this.retraceFn);
    slots[(b.pa & 0xfff) >>> 1] = t;
    this.blocks.set(b.pa, t);
    this.byPage.get(b.pa >>> 12)!.push(t);
    drop(b);
    this.stats.traces++;
  }

  private readonly retraceFn = (b: Block): void => this.retrace(b);

  private add(pa: number, vpc: number): Block | null {
    const ir = translate(this.h, pa, vpc);
    if (!ir) return null;
    const page = pa >>> 12;
    let slots = this.slots.get(page);
    if (slots === undefined) this.slots.set(page, slots = new Array<Block | undefined>(2048).fill(undefined));
    const t: Block = { pa, vpc, ir, fn: STALE, n: ir.pcs.length, valid: true, hits: 0, taken: 0 };
    t.fn = compileBlock(t, slots, this.views, this.retraceFn);
    slots[(pa & 0xfff) >>> 1] = t;
    this.stats.translations++;
    this.blocks.set(pa, t);
    (this.byPage.get(page) ?? this.byPage.set(page, []).get(page)!).push(t);
    if (this.h.codePages![page] === 0) {
      this.h.codePages![page] = 1;
      this.h.protectCode(page);
    }
    return t;
  }
}

/** Invalidates a block: it no longer runs (its slot is cleared by the caller). */
function drop(b: Block): void {
  b.valid = false;
  b.fn = STALE;
}

/**
 * Inlines the TLB fast path of plain loads and stores: a tag compare and a host offset into the
 * RAM views; misses, misaligned and page-crossing accesses, MMIO, poisoned and gate pages (which
 * the TLB never caches) go through the hart's slow path, which charges exactly what the
 * interpreter charges. Stores compare the store TLB's `fast` tags, which exclude frames holding
 * translated code and everything while an LR reservation is held, so the fast path needs no
 * bookkeeping; a slow-path store clears `h.codeDirty` first, and `IF_CODE_DIRTY` after it ends the
 * block when it wrote into code.
 */
function inlineMemory(t: string, g: Group | null): string {
  const ea = '(x[RS1] + IMM) | 0';
  const hit = (tag: string, mask: number) => `(_a = ${ea}, _v = _a >>> 12, ${tag}[_v & 255] === ((_v << 3) | mode) && (_a & ${mask}) === 0)`;
  // A group member whose group check passed accesses RAM directly: base register + offset + the group's host delta.
  const direct = (view: string, shift: string) => `${view}[((g${g?.id}d + x[RS1] + IMM) | 0)${shift}]`;
  const check = (tag: string, page: string) => g?.first ? `_a = (x[RS1] + ${g.first.min}) | 0; _v = _a >>> 12; ` +
    `g${g.id} = ${tag}[_v & 255] === ((_v << 3) | mode) && ((((x[RS1] + ${g.first.maxEnd}) | 0) ^ _a) >>> 12) === 0 && (x[RS1] & ${g.first.mask}) === 0; ` +
    `g${g.id}d = (${page}[_v & 255] - (_v << 12)) | 0; ` : '';
  const load = (n: number, view: string, shift: string, mask: number) => {
    const generic = `(${hit('ltag', mask)} ? ${view}[(lpage[_v & 255] + (_a & 0xfff))${shift}] : (G_CLOBBER, h.load${n}(_a)))`;
    return [`h.load${n}(${ea})`, g ? `(g${g.id} ? ${direct(view, shift)} : ${generic})` : generic, check('ltag', 'lpage')] as const;
  };
  const store = (n: number, view: string, shift: string, mask: number) => {
    const generic = `if (${hit('sfast', mask)}) ${view}[(spage[_v & 255] + (_a & 0xfff))${shift}] = x[RS2]; else { G_CLOBBER; h.codeDirty = false; h.store${n}(_a, x[RS2]); IF_CODE_DIRTY }`;
    return [`h.store${n}(${ea}, x[RS2]);`, g ? `if (g${g.id}) ${direct(view, shift)} = x[RS2]; else ${generic}` : generic, check('sfast', 'spage')] as const;
  };
  for (const [from, to, pre] of [load(8, 'u8', '', 0), load(16, 'u16', ' >>> 1', 1), load(32, 'i32', ' >>> 2', 3),
    store(8, 'u8', '', 0), store(16, 'u16', ' >>> 1', 1), store(32, 'i32', ' >>> 2', 3)]) {
    if (t.includes(from)) return pre + t.replace(from, to);
  }
  return t;
}

/**
 * Plain loads (or stores) of one block with the same base register, not written in between, share
 * one TLB check at the first of them: all their bytes in one page that hits the TLB, base aligned
 * for every size (each offset is a multiple of its size). The others then access RAM directly,
 * unless any slow path ran in between (it may have refilled the TLB; `G_CLOBBER` clears every
 * group's flag), so TLB misses and walk cycles stay exactly the interpreter's.
 */
interface Group {
  id: number;
  /** Set on the first member: the check's offset range and alignment mask. */
  first: { min: number; maxEnd: number; mask: number } | null;
}

/** Formats whose bits 7-11 are not a destination register. */
const NO_RD = new Set<Format>(['S', 'B', 'FENCE', 'FENCEI', 'NONE', 'SFENCE', 'HSV']);
const MEM_SIZE: Record<string, number> = { lb: 1, lbu: 1, lh: 2, lhu: 2, lw: 4, sb: 1, sh: 2, sw: 4 };

/** Groups the plain memory accesses of a decoded block (see Group); null for the others. */
function groupAccesses(insns: { name: string; w: number; format: Format }[]): (Group | null)[] {
  const version = new Array<number>(32).fill(0);
  const members = new Map<string, { i: number; off: number; size: number }[]>();
  insns.forEach(({ name, w, format }, i) => {
    const size = MEM_SIZE[name], rs1 = (w >>> 15) & 31;
    if (size !== undefined && rs1 !== 0) {
      const off = IMM_OF[format](w);
      if (off % size === 0) {
        const key = `${STORES.has(name)}:${rs1}:${version[rs1]}`;
        (members.get(key) ?? members.set(key, []).get(key)!).push({ i, off, size });
      }
    }
    if (!NO_RD.has(format)) version[(w >>> 7) & 31]++;
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

/** Immediate decoders per format, compiled once from the interpreter's expressions. */
const IMM_OF = Object.fromEntries(Object.entries(IMM_EXPR).map(([f, e]) => [f, new Function('w', `return (${e}) | 0;`) as (w: number) => number])) as Record<Format, (w: number) => number>;

/** Splices a template with constant fields and register locals. */
function splice(name: string, format: Format, w: number, pc: number, len: number, used: Set<number>, written: Set<number>, group: Group | null): string {
  const rd = (w >>> 7) & 31, rs1 = (w >>> 15) & 31, rs2 = (w >>> 20) & 31;
  const imm = IMM_OF[format](w);
  const src = (r: number) => { if (r) used.add(r); return r ? `r${r}` : '0'; };
  let t = inlineMemory(SEMANTICS[name], group);
  // Locals are plain numbers, not Int32Array elements: truncate every result to int32 as the
  // register file would (e.g. `>>>` yields an unsigned value).
  t = t.replace(/x\[RD\] = ([^;]+);/g, (_, e: string) => { if (rd) { used.add(rd); written.add(rd); } return `${rd ? `r${rd}` : '_z'} = (${e}) | 0;`; });
  t = t.replace(/x\[RS1\]/g, () => src(rs1)).replace(/x\[RS2\]/g, () => src(rs2));
  return t.replace(/\bRD\b/g, String(rd)).replace(/\bRS1\b/g, String(rs1)).replace(/\bRS2\b/g, String(rs2))
    .replace(/\bIMM\b/g, `(${imm})`).replace(/\bPC\b/g, `(${pc | 0})`).replace(/\bLEN\b/g, String(len))
    .replace(/\bTAKEN\b/g, `cyc += ${COSTS.takenBranch}; tb++;`);
}

/**
 * Translates the block starting at physical address `pa` for virtual pc `vpc0`. Returns null when
 * not even one instruction can be translated (illegal, or crossing the page end): the caller
 * then interprets one instruction, which raises whatever the hardware would.
 */
function translate(h: Hart, pa: number, vpc0: number, follow: Follow | null = null): BlockIR | null {
  const mem = h.mem;
  const pageBase = pa & ~0xfff, pageEnd = pageBase + 4096;
  const insns: { name: string; format: Format; w: number; len: number; vpc: number; on?: boolean }[] = [];
  let a = pa, vpc = vpc0, segment = vpc0;
  while (insns.length < MAX_BLOCK) {
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
    const { name, format } = INSNS[id];
    // CSR instructions may read instret/cycle/time: they start a block of their own, so the
    // counters are exact when they run.
    if (insns.length > 0 && format.startsWith('CSR')) break;
    const insn: (typeof insns)[number] = { name, format, w, len, vpc };
    insns.push(insn);
    const next = (vpc + len) | 0;
    // A trace goes on through a conditional branch in the direction its basic block mostly took,
    // and through a plain jump, within the page, to code it has not visited (the other direction
    // becomes a side exit); a branch back to the trace's start closes a loop and ends it.
    const target = format === 'B' || (name === 'jal' && ((w >>> 7) & 31) === 0) ? (vpc + IMM_OF[format](w)) | 0 : null;
    const dir = follow === null || target === null || insns.length >= MAX_BLOCK ? null : format === 'B' ? follow(segment) : true;
    const to = dir === true ? target! : dir === false ? next : null;
    if (to === null || to === vpc0 || (to ^ vpc0) >>> 12 !== 0 || insns.some((x) => x.vpc === to)) {
      if (ENDS_BLOCK.has(name)) break;
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
  const parts: string[] = [];
  const prefix: number[] = [0];
  const used = new Set<number>(), written = new Set<number>();
  insns.forEach(({ name, format, w, len, vpc, on }, i) => {
    const next = (vpc + len) | 0;
    let body = splice(name, format, w, vpc, len, used, written, groups[i]);
    if (on !== undefined) body = onTrace(body, format === 'B', on, next, i + 1);
    // A slow path may refill the TLB: later group members check again (see Group).
    if (groupCount && /\bh\./.test(body) && !body.includes('G_CLOBBER')) body = `G_CLOBBER; ${body}`;
    body = body.replaceAll('G_CLOBBER', clobber);
    // A store into code ends the block after it (slow-path stores only: the fast path never writes code).
    const exit = `if (h.codeDirty) { ip = ${i + 1}; npc = ${next}; break blk; }`;
    const code = body.includes('IF_CODE_DIRTY') ? body.replace('IF_CODE_DIRTY', exit) : STORES.has(name) ? `h.codeDirty = false; ${body} ${exit}` : body;
    // Only an instruction that calls into the hart can trap: it records its index for the handler.
    parts.push(/\bh\./.test(code) ? `ip = ${i}; ${code}` : code);
    prefix.push(prefix[i] + COSTS.base + (EXTRA_CYCLES[name] ?? 0));
  });
  const last = insns[n - 1];
  const target = last.format === 'B' || last.name === 'jal' ? (last.vpc + IMM_OF[last.format](last.w)) | 0 : null;
  return {
    parts, prefix, pcs: insns.map((x) => x.vpc), used, written, groups: groupCount, fallthrough: (last.vpc + last.len) | 0,
    selfLoop: target === vpc0, system: SYSTEM.has(last.name), branch: last.format === 'B',
    trace: insns.some((x) => x.on !== undefined),
  };
}

/**
 * A trace's branch or jump (spliced code; branch templates are semantics.ts's `branch`) followed in direction `taken`: it leaves the trace,
 * with `ip` instructions retired, when it goes the other way; a followed jump just goes on.
 */
function onTrace(code: string, branch: boolean, taken: boolean, next: number, ip: number): string {
  if (!branch) return code.replace(/^npc = [^;]+; /, ''); // jal x0: no link, so nothing else to do
  const m = /^if \((.*)\) \{ npc = ([^;]+); (cyc [^}]*)\}$/s.exec(code);
  if (m === null) throw new Error(`jit: a branch template no longer has the shape traces expect: ${code}`);
  const [, cond, to, counted] = m;
  return taken ? `if (${cond}) { ${counted}} else { npc = ${next}; ip = ${ip}; break blk; }`
    : `if (${cond}) { npc = ${to}; ${counted}ip = ${ip}; break blk; }`;
}

/** Which way the conditional branch ending the basic block at `vpc` mostly went: taken, not taken, or unknown or mixed (null). */
type Follow = (vpc: number) => boolean | null;

/** Register locals, the memory prologue (only blocks that touch memory pay for it) and the store prologue of some code. */
function prologue(body: string, used: Set<number>, written: Set<number>) {
  const regs = [...used].sort((a, b) => a - b);
  const mem = /ltag|sfast/.test(body)
    ? `, _a = 0, _v = 0;
    const mode = h.priv | (h.virt << 2), ltag = M.ltag, lpage = M.lpage, sfast = M.sfast, spage = M.spage, u8 = M.u8, u16 = M.u16, i32 = M.i32;`
    : ';';
  return {
    load: regs.map((r) => `r${r} = x[${r}]`).join(', '),
    mem,
    store: regs.filter((r) => written.has(r)).map((r) => `x[${r}] = r${r};`).join(' '),
  };
}

/** A block's instructions in the labelled statement every compiled form runs them in (`break blk` ends it early; `ip` counts the ones retired). */
const blockBody = (b: Block): string => `blk: {
        ${b.ir.parts.join('\n        ')}
        ip = ${b.n};
      }`;

/**
 * A block compiled to its function (the BlockFn contract). A block whose last instruction branches
 * back to its own start (a tight loop) iterates inside its function while the limit allows.
 * A successor in the same page, translated for the same virtual page (its vpc is the next pc), is
 * returned from the page's slot table: the dispatcher's chain loop calls it without a lookup, and
 * registers pass through the register file between blocks.
 */
function compileBlock(b: Block, slots: Slots, views: Views, retrace: (b: Block) => void): BlockFn {
  const { prefix, pcs, used, fallthrough, selfLoop, system, parts } = b.ir;
  const n = b.n, vpc0 = b.vpc;
  const blk = blockBody(b);
  // The normal exit's accounting, as constants where the block cannot end early or take a branch.
  const early = selfLoop || parts.some((x) => x.includes('break blk'));
  const taken = parts.some((x) => x.includes('tb++'));
  const retired = early ? 'doneI + ip' : String(n);
  const cycles = (early ? 'doneC + PREFIX[ip]' : String(prefix[n])) + (taken ? ' + cyc' : '');
  // A basic block ending with a two-way branch counts its runs and taken branches until it is hot (see Jit.retrace).
  const count = b.ir.branch && !b.ir.trace && !selfLoop ? `
    if (B.hits < ${HOT}) { B.hits++; if (npc !== ${fallthrough}) B.taken++; if (B.hits === ${HOT}) RETRACE(B); }` : '';
  const groupLocals = Array.from({ length: b.ir.groups }, (_, k) => `g${k} = false, g${k}d = 0, `).join('');
  const p = prologue(blk, used, b.ir.written);
  const run = selfLoop ? `for (;;) {
        npc = ${fallthrough};
        ${blk}
        if (ip !== ${n} || npc !== ${vpc0} || ctr0 + doneI + ${2 * n} > lim) break;
        doneI += ${n}; doneC += ${prefix[n]} + cyc; cyc = 0;
      }` : blk;
  const next = system ? 'return null;' : `if ((npc ^ ${vpc0}) >>> 12 === 0) {
      const t = SLOTS[(npc & 0xfff) >>> 1];
      if (t !== undefined && t.vpc === npc) return t;
    }
    return null;`;
  const src = `
    const lim = h.jitLimit, ctr0 = ctr[${Ctr.Instructions}];
    if (ctr0 + ${n} > lim) return null;
    let ${p.load ? p.load + ', ' : ''}${groupLocals}_z = 0, ip = 0, npc = ${fallthrough}, cyc = 0, tb = 0, doneI = 0, doneC = 0${p.mem}
    try {
      ${run}
    } catch (e) {
      ${p.store}
      if (e === TRAP) { ctr[${Ctr.Instructions}] += doneI + ip; ctr[${Ctr.Cycles}] += doneC + PREFIX[ip] + cyc; ctr[${Ctr.TakenBranches}] += tb; h.pc = PCS[ip]; }
      throw e;
    }
    ${p.store}
    ctr[${Ctr.Instructions}] += ${retired};
    ctr[${Ctr.Cycles}] += ${cycles};${taken ? `
    ctr[${Ctr.TakenBranches}] += tb;` : ''}
    h.pc = npc;${count}
    ${next}`;
  let factory = FACTORIES.get(src);
  if (factory === undefined) {
    if (FACTORIES.size >= FACTORY_CAP) FACTORIES.clear();
    factory = new Function('TRAP', 'PREFIX', 'PCS', 'SLOTS', 'M', 'B', 'RETRACE', `return function block(h, x, ctr) { ${src} }`) as BlockFactory;
    FACTORIES.set(src, factory);
  }
  return factory(TRAP, Int32Array.from(prefix), Int32Array.from(pcs), slots, views, b, retrace);
}

type BlockFactory = (trap: unknown, prefix: Int32Array, pcs: Int32Array, slots: Slots, views: Views, b: Block, retrace: (b: Block) => void) => BlockFn;
/**
 * Compiled blocks by source text, shared by every hart and VM of the thread. A block's source
 * determines its behaviour (instructions, pcs and costs are constants in it), so the same code
 * at the same address, in any VM, reuses one factory: no new parse, and its closures share
 * V8's feedback and optimized code, so a VM running an image another VM has run starts warm.
 * Bounded: cleared when full.
 */
const FACTORIES = new Map<string, BlockFactory>();
const FACTORY_CAP = 8192;

/**
 * Runs at most `max` instructions with translated blocks; same contract as the interpreter
 * (Hart.run). Each pass translates pc through the fetch TLB (as the interpreter's fetch does),
 * finds the block and runs its chain of successors until a block returns null: the next pc is
 * not translated yet or in another page, after a system instruction or a store into code, or the limit
 * cannot hold the next block. When fewer instructions remain than a block holds, the interpreter
 * runs the remainder, so budgets end at exact instruction counts.
 */
export function runJit(h: Hart, jit: Jit, max: number): number {
  const x = h.x, ctr = h.ctr;
  const ftag = h.mmu.tlb[0].tag, fpage = h.mmu.tlb[0].page;
  const start = ctr[Ctr.Instructions];
  const stats = jit.stats;
  h.jitLimit = start + max;
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
