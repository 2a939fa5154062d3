/**
 * The WebAssembly code generator: the hot blocks of one guest page become one wasm function, in
 * the shape v86 uses for its hot pages: a `loop` around a `br_table` over the page's block
 * entries, each block's code after its label, and every jump to another block of the function a
 * `br` back to the loop with the block's index. Guest registers live in wasm locals, loaded from
 * the register file (in the hart's scratch area, see engine.ts) at entry and stored back at the one
 * exit; guest RAM is the same shared `WebAssembly.Memory`, so plain loads and stores inline the
 * TLB fast path (tag compare against the hart's TLB arrays, also in the scratch area).
 *
 * What it covers: RV32I ALU, loads and stores (plain), branches, jal/jalr, RV32M, fence, all in
 * their compressed forms too (the decoder expands them). Anything else (CSR, system, AMO, LR/SC,
 * H loads) ends the block before it: the function exits with pc at that instruction and the
 * interpreter runs it. A TLB miss, an access crossing a page and a store to a page without a
 * `fast` store tag (code frames, a held reservation) also exit before the instruction, so the
 * interpreter's slow path charges it exactly; nothing in wasm can trap.
 *
 * Accounting is the interpreter's, counter for counter: instructions and base + extra cycles as
 * constants per block (prefix sums at a side exit), a taken branch adds one cycle and one
 * TakenBranches; jal/jalr call the hart's linkJal/linkJalr (RSB, BTB, mispredict cycles).
 */
import { FACTS } from '../../isa/facts.js';
import { INSNS } from '../../isa/table.js';
import { COSTS } from '../../uarch/costs.js';
import { EXTRA_CYCLES, IMM_OF } from '../../cpu/template.js';
import { Body, I32, OP, VOID, encodeModule } from './writer.js';

/**
 * Byte offsets inside a hart's scratch area (engine.ts allocates it, codegen bakes in its base):
 * the register file, a run's results (next pc, instructions, cycles, taken branches, page
 * functions the dispatcher called), the TLBs' arrays (256 Int32 each) and the dispatcher's
 * entry cache (see generateDispatcher).
 */
export const SCRATCH = {
  regs: 0, outPc: 128, outInsns: 132, outCycles: 136, outTaken: 140, outCalls: 144,
  loadTag: 1024, loadPage: 2048, storeFast: 3072, storePage: 4096, storeTag: 5120, fetchTag: 6144, fetchPage: 7168,
  entries: 8192,
  bytes: 16384,
} as const;
/** Entries of the dispatcher's entry cache, 16 bytes each: virtual pc (-1: none), physical page base, table slot, block index. */
export const ENTRY_CACHE = 512;

/** One decoded instruction of a block: op id, 32-bit word (compressed ones expanded), pc, length. */
export interface Insn { id: number; w: number; pc: number; len: number }

/** A block: consecutive instructions from `start`; after the last one control goes to `next` unless it transfers. */
export interface WBlock { start: number; insns: Insn[]; next: number }

/** Instruction bodies that only compute rd from registers and constants (op ids by mnemonic). */
type Alu = (g: Gen, i: Insn, imm: number) => void;
const rr = (op: number): Alu => (g, i) => { g.reg(rs1(i.w)); g.reg(rs2(i.w)); g.b.op(op); };
const ri = (op: number): Alu => (g, i, imm) => { g.reg(rs1(i.w)); g.b.i32(imm); g.b.op(op); };
/** High word of a 64-bit product; `sa`/`sb`: sign-extend operand a/b. */
const mulHigh = (sa: boolean, sb: boolean): Alu => (g, i) => {
  g.reg(rs1(i.w)); g.b.op(sa ? OP.i64ExtendI32S : OP.i64ExtendI32U);
  g.reg(rs2(i.w)); g.b.op(sb ? OP.i64ExtendI32S : OP.i64ExtendI32U);
  g.b.op(OP.i64Mul, OP.i64Const, 32, OP.i64ShrU, OP.i32WrapI64);
};
/** RISC-V division: by zero gives `zero(r1)`; signed overflow gives `overflow`; wasm's own op otherwise. */
const divide = (op: number, signed: boolean, byZeroIsR1: boolean, overflowIsR1: boolean): Alu => (g, i) => {
  const a = rs1(i.w), c = rs2(i.w);
  g.reg(c); g.b.op(OP.i32Eqz, OP.if, I32);
  if (byZeroIsR1) g.reg(a); else g.b.i32(-1);
  g.b.op(OP.else);
  if (signed) {
    g.reg(a); g.b.i32(-2147483648).op(OP.i32Eq); g.reg(c); g.b.i32(-1).op(OP.i32Eq, OP.i32And, OP.if, I32);
    if (overflowIsR1) g.reg(a); else g.b.i32(0);
    g.b.op(OP.else); g.reg(a); g.reg(c); g.b.op(op, OP.end);
  } else { g.reg(a); g.reg(c); g.b.op(op); }
  g.b.op(OP.end);
};

/** The wasm semantics of the rows this backend compiles, by mnemonic (the rest end the block). */
const ALU: Record<string, Alu> = {
  lui: (g, _i, imm) => g.b.i32(imm),
  auipc: (g, i, imm) => g.b.i32((i.pc + imm) | 0),
  addi: ri(OP.i32Add), slti: ri(OP.i32LtS), sltiu: ri(OP.i32LtU), xori: ri(OP.i32Xor), ori: ri(OP.i32Or), andi: ri(OP.i32And),
  slli: ri(OP.i32Shl), srli: ri(OP.i32ShrU), srai: ri(OP.i32ShrS),
  add: rr(OP.i32Add), sub: rr(OP.i32Sub), sll: rr(OP.i32Shl), slt: rr(OP.i32LtS), sltu: rr(OP.i32LtU), xor: rr(OP.i32Xor),
  srl: rr(OP.i32ShrU), sra: rr(OP.i32ShrS), or: rr(OP.i32Or), and: rr(OP.i32And),
  mul: rr(OP.i32Mul), mulh: mulHigh(true, true), mulhsu: mulHigh(true, false), mulhu: mulHigh(false, false),
  div: divide(OP.i32DivS, true, false, true), divu: divide(OP.i32DivU, false, false, false),
  rem: divide(OP.i32RemS, true, true, false), remu: divide(OP.i32RemU, false, true, false),
};
/** Branch conditions (wasm comparison of r1, r2). */
const COND: Record<string, number> = { beq: OP.i32Eq, bne: OP.i32Ne, blt: OP.i32LtS, bge: OP.i32GeS, bltu: OP.i32LtU, bgeu: OP.i32GeU };

const rd = (w: number) => (w >>> 7) & 31;
const rs1 = (w: number) => (w >>> 15) & 31;
const rs2 = (w: number) => (w >>> 20) & 31;

/** True when this backend compiles the row `id` (others end a block before them). */
export function supported(id: number): boolean {
  const r = INSNS[id], f = FACTS[id];
  return f.plain || r.name in ALU || r.name in COND || r.kind === 'jal' || r.kind === 'jalr' || r.kind === 'fence';
}

const LINK = (r: number) => r === 1 || r === 5;
/** Targets a jalr compares before leaving its function (see Gen.indirect). */
const MAX_INDIRECT = 32;

/** Imported functions, by index. */
const IMPORT = { linkJal: 0, linkJalr: 1 } as const;
const PARAMS = { entry: 0, mode: 1, left: 2 } as const;

class Gen {
  readonly b = new Body(3);
  readonly L: number[] = [];
  readonly ic: number; readonly cy: number; readonly tk: number; readonly next: number; readonly pc: number;
  readonly a: number; readonly vpn: number; readonly idx: number;
  /**
   * Likely targets of this function's indirect jumps, with their block indexes: the starts the
   * dispatcher found hot (reached from outside, often through a jalr), return points (after a
   * linking jal/jalr), jal targets and the code after a return (function entries) among its
   * blocks, at most MAX_INDIRECT;
   * a jalr goes to the indirect case (indirectCase), which compares its target with each before it leaves.
   */
  readonly indirect: [number, number][] = [];
  /** Structured-control nesting inside the current block's code (each `if` adds one). */
  nest = 0;
  /** Index of the block being emitted, and the function's block count. */
  k = 0;

  constructor(readonly blocks: WBlock[], readonly entries: Map<number, number>, readonly base: number, used: boolean[], hot: Iterable<number>) {
    for (let r = 1; r < 32; r++) if (used[r]) this.L[r] = this.b.local(I32);
    this.ic = this.b.local(I32); this.cy = this.b.local(I32); this.tk = this.b.local(I32);
    this.next = this.b.local(I32); this.pc = this.b.local(I32);
    this.a = this.b.local(I32); this.vpn = this.b.local(I32); this.idx = this.b.local(I32);
    const likely = new Set<number>(hot);
    for (const blk of blocks) {
      const t = blk.insns[blk.insns.length - 1], row = INSNS[t.id];
      if ((row.kind === 'jal' || row.kind === 'jalr') && LINK(rd(t.w))) likely.add((t.pc + t.len) | 0);
      if (row.kind === 'jal') likely.add((t.pc + IMM_OF[row.format](t.w)) | 0);
      // Code right after a return or tail jump is usually a function's entry (reached by pointer).
      if ((row.kind === 'jal' || row.kind === 'jalr') && !LINK(rd(t.w))) likely.add(blk.next);
    }
    for (const pc of likely) {
      const k = entries.get(pc);
      if (k !== undefined && this.indirect.length < MAX_INDIRECT) this.indirect.push([pc, k]);
    }
  }

  reg(r: number): void { if (r === 0) this.b.i32(0); else this.b.get(this.L[r]); }
  /** Stores the value on the stack to rd (dropped for x0). */
  setRd(r: number): void { if (r === 0) this.b.op(OP.drop); else this.b.set(this.L[r]); }
  add(l: number, v: number): void { if (v !== 0) this.b.get(l).i32(v).op(OP.i32Add).set(l); }
  /** Cases of the br_table: the blocks, then the indirect-jump case when there are targets to compare. */
  get cases(): number { return this.blocks.length + (this.indirect.length > 0 ? 1 : 0); }
  depthTop(): number { return this.cases - 1 - this.k + this.nest; }
  depthOut(): number { return this.cases - this.k + this.nest; }

  /** Leaves the function at constant `pc`, after `insns` more instructions and `cycles` more cycles. */
  exit(pc: number, insns: number, cycles: number): void {
    this.add(this.ic, insns); this.add(this.cy, cycles);
    this.b.i32(pc).set(this.pc).br(this.depthOut());
  }

  /** Continues at `pc`: the block of this function that starts there, or an exit. */
  goto(pc: number): void {
    const k = this.entries.get(pc);
    if (k === undefined) { this.exit(pc, 0, 0); return; }
    this.b.i32(k).set(this.next).br(this.depthTop());
  }

  taken(): void { this.add(this.tk, 1); this.add(this.cy, COSTS.takenBranch); }

  /**
   * The inline TLB check of a plain access of `size` bytes at rs1 + imm (address left in `a`):
   * exits before the instruction (j-th of the block, `cyc` cycles so far) unless the TLB entry
   * (`tagAt`) matches and the access stays in the page; leaves the physical address on the stack.
   */
  access(i: Insn, imm: number, size: number, tagAt: number, pageAt: number, j: number, cyc: number): void {
    const b = this.b;
    this.reg(rs1(i.w)); if (imm !== 0) b.i32(imm).op(OP.i32Add); b.set(this.a);
    b.get(this.a).i32(12).op(OP.i32ShrU).set(this.vpn);
    b.get(this.vpn).i32(255).op(OP.i32And).i32(2).op(OP.i32Shl).set(this.idx);
    b.get(this.idx).mem(OP.i32Load, this.base + tagAt);
    b.get(this.vpn).i32(3).op(OP.i32Shl).get(PARAMS.mode).op(OP.i32Or, OP.i32Ne);
    if (size > 1) b.get(this.a).i32(0xfff).op(OP.i32And).i32(4096 - size).op(OP.i32GtU, OP.i32Or);
    b.op(OP.if, VOID); this.nest++; this.exit(i.pc, j, cyc); this.nest--; b.op(OP.end);
    b.get(this.idx).mem(OP.i32Load, this.base + pageAt).get(this.a).i32(0xfff).op(OP.i32And, OP.i32Add);
  }

  block(blk: WBlock): void {
    const b = this.b, n = blk.insns.length;
    // The run's instruction limit must hold the whole block, as in the JavaScript blocks.
    b.get(PARAMS.left).i32(n).op(OP.i32LtS, OP.if, VOID); this.nest++; this.exit(blk.start, 0, 0); this.nest--; b.op(OP.end);
    b.get(PARAMS.left).i32(n).op(OP.i32Sub).set(PARAMS.left);
    let cyc = 0;
    let last: Insn | null = null;
    for (let j = 0; j < n; j++) {
      const i = blk.insns[j];
      const row = INSNS[i.id], f = FACTS[i.id], imm = IMM_OF[row.format](i.w);
      if (f.plain && f.readsMem) {
        this.access(i, imm, f.size, SCRATCH.loadTag, SCRATCH.loadPage, j, cyc);
        b.mem(f.size === 4 ? OP.i32Load : f.size === 2 ? (f.signed ? OP.i32Load16S : OP.i32Load16U) : (f.signed ? OP.i32Load8S : OP.i32Load8U));
        this.setRd(rd(i.w));
      } else if (f.plain) {
        this.access(i, imm, f.size, SCRATCH.storeFast, SCRATCH.storePage, j, cyc);
        this.reg(rs2(i.w));
        b.mem(f.size === 4 ? OP.i32Store : f.size === 2 ? OP.i32Store16 : OP.i32Store8);
      } else if (row.name in ALU) {
        if (rd(i.w) !== 0) { ALU[row.name](this, i, imm); this.setRd(rd(i.w)); }
      } else if (f.transfers) {
        last = i;
      }
      cyc += COSTS.base + EXTRA_CYCLES[i.id];
    }
    this.add(this.ic, n); this.add(this.cy, cyc);
    const t: Insn | null = last;
    if (t === null) { this.goto(blk.next); return; }
    const row = INSNS[t.id], imm = IMM_OF[row.format](t.w);
    const fall = (t.pc + t.len) | 0;
    if (row.kind === 'branch') {
      this.reg(rs1(t.w)); this.reg(rs2(t.w)); b.op(COND[row.name], OP.if, VOID);
      this.nest++; this.taken(); this.goto((t.pc + imm) | 0); this.nest--;
      b.op(OP.end);
      this.goto(fall);
    } else if (row.kind === 'jal') {
      if (LINK(rd(t.w))) b.i32(rd(t.w)).i32(t.pc).i32(t.len).call(IMPORT.linkJal);
      if (rd(t.w) !== 0) { b.i32(fall); this.setRd(rd(t.w)); }
      this.taken();
      this.goto((t.pc + imm) | 0);
    } else {
      b.i32(rd(t.w)).i32(rs1(t.w)); this.reg(rs1(t.w)); b.i32(imm).op(OP.i32Add).i32(-2).op(OP.i32And);
      b.i32(t.pc).i32(t.len).call(IMPORT.linkJalr).set(this.pc);
      if (rd(t.w) !== 0) { b.i32(fall); this.setRd(rd(t.w)); }
      this.taken();
      // Returns and calls through pointers to a block of this function stay in it (see indirectCase).
      if (this.indirect.length > 0) b.i32(this.blocks.length).set(this.next).br(this.depthTop());
      else b.br(this.depthOut());
    }
  }

  /**
   * The br_table's last case, shared by every jalr of the function (one copy of the compares, not
   * one per jalr): continues at the block of `pc` if it is one of the likely targets, else leaves.
   */
  indirectCase(): void {
    const b = this.b;
    for (const [target, k] of this.indirect) {
      b.get(this.pc).i32(target).op(OP.i32Eq, OP.if, VOID);
      this.nest++; b.i32(k).set(this.next).br(this.depthTop()); this.nest--;
      b.op(OP.end);
    }
    b.br(this.depthOut());
  }
}

/** Registers a block set reads or writes (index 1-31), and those it writes. */
function registers(blocks: WBlock[]): { used: boolean[]; written: boolean[] } {
  const used = new Array<boolean>(32).fill(false), written = new Array<boolean>(32).fill(false);
  for (const blk of blocks) for (const i of blk.insns) {
    const f = FACTS[i.id], fmt = INSNS[i.id].format;
    if (fmt !== 'U' && fmt !== 'J') used[rs1(i.w)] = true;
    if (fmt === 'R' || fmt === 'S' || fmt === 'B') used[rs2(i.w)] = true;
    if (f.writesRd && rd(i.w) !== 0) { used[rd(i.w)] = true; written[rd(i.w)] = true; }
  }
  used[0] = written[0] = false;
  return { used, written };
}

export interface Generated { bytes: Uint8Array; entries: Map<number, number> }

/**
 * One wasm module for `blocks` (all of one virtual page, translated for their virtual pcs),
 * with the hart's scratch area at `base` in a shared memory of `memoryPages` pages. Its function
 * `run(entry, mode, left)` starts at block `entry`, runs at most `left` instructions in whole
 * blocks and stores registers, next pc and its counters (SCRATCH.out*) to the scratch area.
 * `hot`: the starts the dispatcher has seen hot (see Gen.indirect).
 */
export function generate(blocks: WBlock[], base: number, memoryPages: number, hot: Iterable<number> = []): Generated {
  const entries = new Map(blocks.map((blk, k) => [blk.start, k]));
  const { used, written } = registers(blocks);
  const g = new Gen(blocks, entries, base, used, hot);
  const b = g.b;
  for (let r = 1; r < 32; r++) if (used[r]) b.i32(0).mem(OP.i32Load, base + SCRATCH.regs + 4 * r).set(g.L[r]);
  b.get(PARAMS.entry).set(g.next);
  b.op(OP.block, VOID, OP.loop, VOID);
  const cases = g.cases;
  for (let k = cases - 1; k >= 0; k--) b.op(OP.block, VOID);
  b.get(g.next).brTable(Array.from({ length: cases }, (_, k) => k), cases + 1);
  blocks.forEach((blk, k) => {
    b.op(OP.end);
    g.k = k;
    g.block(blk);
  });
  if (cases > blocks.length) {
    b.op(OP.end);
    g.k = blocks.length;
    g.indirectCase();
  }
  b.op(OP.end, OP.end);
  for (let r = 1; r < 32; r++) if (written[r]) b.i32(0).get(g.L[r]).mem(OP.i32Store, base + SCRATCH.regs + 4 * r);
  b.i32(0).get(g.pc).mem(OP.i32Store, base + SCRATCH.outPc);
  b.i32(0).get(g.ic).mem(OP.i32Store, base + SCRATCH.outInsns);
  b.i32(0).get(g.cy).mem(OP.i32Store, base + SCRATCH.outCycles);
  b.i32(0).get(g.tk).mem(OP.i32Store, base + SCRATCH.outTaken);
  const bytes = encodeModule({
    imports: [
      { name: 'linkJal', type: { params: [I32, I32, I32], results: [] } },
      { name: 'linkJalr', type: { params: [I32, I32, I32, I32, I32], results: [I32] } },
    ],
    memoryPages, type: { params: [I32, I32, I32], results: [] }, body: b,
  });
  return { bytes, entries };
}

/**
 * The dispatcher in wasm (v86's shape: page functions called through one table), for the hart
 * whose scratch area is at `base`: `run(pc, mode, left)` calls the page function of `pc` through
 * table 0 while the entry cache (SCRATCH.entries, filled by engine.ts) knows pc, the fetch TLB
 * maps pc's page in `mode` to the page the entry was made for, and the budget lasts; so a jump
 * from one compiled page to another (a call, a return) stays in wasm. It stops at a pc the cache
 * does not know, at a function that ran nothing (a side exit at its first instruction: the
 * interpreter's turn), or at the budget, and stores the sums of the functions' results (and the
 * count of functions called) to the SCRATCH.out* words.
 */
export function generateDispatcher(base: number, memoryPages: number): Uint8Array {
  const b = new Body(3);
  const P = { pc: 0, mode: 1, left: 2 };
  const n = b.local(I32), ic = b.local(I32), cy = b.local(I32), tk = b.local(I32), calls = b.local(I32), e = b.local(I32), vpn = b.local(I32), t = b.local(I32);
  const word = (at: number): Body => b.i32(0).mem(OP.i32Load, base + at);
  b.op(OP.block, VOID, OP.loop, VOID);
  // e: the cache entry's offset; leave unless it holds pc.
  b.get(P.pc).i32(1).op(OP.i32ShrU).i32(ENTRY_CACHE - 1).op(OP.i32And).i32(4).op(OP.i32Shl).set(e);
  b.get(e).mem(OP.i32Load, base + SCRATCH.entries).get(P.pc).op(OP.i32Ne).brIf(1);
  // The fetch TLB maps pc's page, in this mode, to the entry's physical page.
  b.get(P.pc).i32(12).op(OP.i32ShrU).set(vpn);
  b.get(vpn).i32(255).op(OP.i32And).i32(2).op(OP.i32Shl).set(t);
  b.get(t).mem(OP.i32Load, base + SCRATCH.fetchTag).get(vpn).i32(3).op(OP.i32Shl).get(P.mode).op(OP.i32Or, OP.i32Ne).brIf(1);
  b.get(t).mem(OP.i32Load, base + SCRATCH.fetchPage).get(e).mem(OP.i32Load, base + SCRATCH.entries + 4).op(OP.i32Ne).brIf(1);
  b.get(e).mem(OP.i32Load, base + SCRATCH.entries + 12).get(P.mode).get(P.left);
  b.get(e).mem(OP.i32Load, base + SCRATCH.entries + 8).callIndirect(0);
  b.get(calls).i32(1).op(OP.i32Add).set(calls);
  word(SCRATCH.outInsns).tee(n).op(OP.i32Eqz).brIf(1);
  b.get(ic).get(n).op(OP.i32Add).set(ic);
  b.get(cy); word(SCRATCH.outCycles); b.op(OP.i32Add).set(cy);
  b.get(tk); word(SCRATCH.outTaken); b.op(OP.i32Add).set(tk);
  word(SCRATCH.outPc).set(P.pc);
  b.get(P.left).get(n).op(OP.i32Sub).tee(P.left).i32(0).op(OP.i32GtS).brIf(0);
  b.op(OP.end, OP.end);
  for (const [at, l] of [[SCRATCH.outPc, P.pc], [SCRATCH.outInsns, ic], [SCRATCH.outCycles, cy], [SCRATCH.outTaken, tk], [SCRATCH.outCalls, calls]]) {
    b.i32(0).get(l).mem(OP.i32Store, base + at);
  }
  return encodeModule({ imports: [], memoryPages, table: 1, type: { params: [I32, I32, I32], results: [] }, body: b });
}
