/**
 * The WebAssembly engine (`Hart.engine = 'wasm'`, `hvsim run --engine wasm`): hot guest pages
 * compiled to wasm functions (codegen.ts), cold code in the interpreter. Opt-in; measured against
 * the block translator in docs/engine.md ("WebAssembly backend: measured").
 *
 * Memory: guest RAM must be the buffer of a shared `WebAssembly.Memory` made by `createWasmDram`
 * (HostMemory.create(mib, { wasm: true }) does), 256 KiB larger than the RAM asked for: that top
 * part, which no frame covers and so no guest can reach, holds each hart's scratch
 * area (codegen.ts SCRATCH): its register file, the TLBs' arrays and the entry cache, moved there when the
 * engine first runs the hart (the hart's `x` and Tlb arrays become views of it), so generated
 * code reads them directly and its loads and stores inline the TLB fast path.
 *
 * Dispatcher: like runJit's, it translates pc through the fetch TLB (a miss goes to the
 * interpreter, which fills it exactly as always), looks up the function compiled for the
 * (physical page, virtual page), notes it in the entry cache (pc, page, table slot, block index)
 * and calls the dispatcher in wasm (codegen.ts generateDispatcher), which runs it and then, as
 * long as the entry cache and the fetch TLB (both in the scratch area) know the next pc, the next
 * page's function through one table of page functions, without coming back to JavaScript (v86
 * keeps calls between its compiled pages in wasm the same way); code without a function runs
 * in the interpreter to its block end (`runInterpreterToBlockEnd`), counting arrivals per start:
 * at `tuning.translateAt` the page's hot starts (and their static successors in the page) are
 * compiled into one function, rebuilt when a start it lacks gets as hot (at most REBUILDS).
 * Counters are the interpreter's exactly (see codegen.ts). Stores into a frame holding compiled
 * code go through the hart (the frame is marked in `codePages`) and drop that frame's functions.
 */
import type { HartCore } from '../hart-core.js';
import { runInterpreterToBlockEnd } from '../interp.js';
import { StopReason } from '../trap.js';
import { decode } from '../../isa/decode.js';
import { FACTS } from '../../isa/facts.js';
import { insnWord } from '../../isa/fetch.js';
import { INSNS } from '../../isa/table.js';
import { IMM_OF } from '../template.js';
import { Ctr } from '../../uarch/costs.js';
import { ENTRY_CACHE, Insn, SCRATCH, WBlock, generate, generateDispatcher, supported } from './codegen.js';

/** The part of the WebAssembly JS API used here (the project's lib settings carry no DOM or wasm types). */
declare namespace WebAssembly {
  class Memory { constructor(d: { initial: number; maximum: number; shared: boolean }); readonly buffer: ArrayBufferLike }
  class Module { constructor(bytes: Uint8Array) }
  class Instance { constructor(m: Module, imports: object); readonly exports: Record<string, unknown> }
  class Table { constructor(d: { initial: number; element: 'anyfunc' }); readonly length: number; grow(n: number): number; set(i: number, f: unknown): void }
}

/**
 * Arrivals at a block start before its page is compiled; tests lower it. 1,024: at 256 a large
 * program of cold code (bench/real's statemachine) compiled 46 pages that never paid back and ran
 * at 0.7x the interpreter; at 1,024 it compiles 2 and the other real programs and CoreMark measured
 * the same (docs/engine.md, "The CLI's default engine").
 */
export const tuning = { translateAt: 1024 };
/** Times one page's function is rebuilt for starts it lacked. */
export const REBUILDS = 8;
/** Instructions of one function at most (bounds compile time). */
export const MAX_INSNS = 2048;
const MAX_BLOCK = 64;

interface Wasm { memory: WebAssembly.Memory; pages: number; scratch: number }
const memories = new WeakMap<ArrayBufferLike, Wasm>();

/** Compile and run statistics of the process (all harts), for the benchmark and tests. */
export const compileStats = {
  modules: 0, cached: 0, bytes: 0, insns: 0, blocks: 0,
  /**
   * µs generating modules (codegen.ts, JavaScript), in new WebAssembly.Module (lazy by default:
   * validation only), in instantiation: main-thread wall time (performance.now), as
   * process.cpuUsage cost 2.5 µs a call on a quiet machine and up to about 300 µs under load and
   * the profiler, a third of what it timed.
   */
  generateUs: 0, moduleUs: 0, instantiateUs: 0,
  /** Calls from JavaScript into the wasm dispatcher, the page functions it called, and the instructions they retired. */
  calls: 0, pageCalls: 0, runInsns: 0,
};
const usSince = (t0: number): number => 1000 * (performance.now() - t0);
/** Modules by their bytes, shared by every VM of the process (as the JS translator shares its factories). */
const moduleCache = new Map<string, WebAssembly.Module>();

/** Bytes above the RAM of a wasm DRAM buffer: four wasm pages of scratch areas, one per hart (16, the most vCPUs a VM has). */
export const SCRATCH_BYTES = 16 * SCRATCH.bytes;
/** Distinct modules kept for reuse by later VMs of the process; the cache starts over beyond this. */
const MODULE_CACHE = 4096;

/**
 * A SharedArrayBuffer of `ramBytes` (a multiple of 64 KiB) plus SCRATCH_BYTES, the buffer of a
 * shared WebAssembly.Memory, for guest RAM the wasm engine can run on. PhysMem over it spans the
 * scratch area too; callers hand out only the first `ramBytes` (HostMemory's frames).
 */
export function createWasmDram(ramBytes: number): SharedArrayBuffer {
  if (ramBytes % 65536 !== 0) throw new RangeError('wasm DRAM must be a multiple of 64 KiB');
  const pages = (ramBytes + SCRATCH_BYTES) / 65536;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  memories.set(memory.buffer, { memory, pages, scratch: ramBytes });
  return memory.buffer as unknown as SharedArrayBuffer;
}

/**
 * The frames holding compiled code of a set of harts sharing guest RAM (a VM's vCPUs), and the
 * broadcast that drops them: a store by any hart, or a native write by the hypervisor (Khv's
 * `codePages` and `onCodeWrite`, wired by the VM as for the jit's shared translations), into a
 * frame one hart compiled drops that frame's functions in every hart's engine.
 */
export class WasmCodeWatch {
  /** 1 for a frame some engine compiled (HartCore.codePages of every hart here, and the Khv's). */
  readonly codePages: Uint8Array;
  private readonly engines: WasmEngine[] = [];

  constructor(ramBytes: number) { this.codePages = new Uint8Array(Math.ceil(ramBytes / 4096)); }

  add(e: WasmEngine): void { this.engines.push(e); }

  /** Frame `frame` holds compiled code now: no hart's compiled stores may bypass the watch. */
  protect(frame: number): void {
    if (this.codePages[frame]) return;
    this.codePages[frame] = 1;
    for (const e of this.engines) e.unfast(frame);
  }

  /** A write into the frame of physical `pa` (or fence.i, pa < 0): every engine drops its functions there. */
  readonly invalidate = (pa: number): void => {
    for (const e of this.engines) e.invalidate(pa);
    if (pa < 0) this.codePages.fill(0); else this.codePages[pa >>> 12] = 0;
  };
}
const watches = new WeakMap<HartCore, WasmCodeWatch>();

/**
 * One code watch for `harts` (all on the same RAM), for their wasm engines whenever they start.
 * Returns it, for the hypervisor's native writes (Khv.codePages/onCodeWrite).
 */
export function shareWasmCode(harts: HartCore[]): WasmCodeWatch {
  const w = new WasmCodeWatch(harts[0].mem.size);
  for (const h of harts) watches.set(h, w);
  return w;
}

/** The wasm engine of `h`, created at its first run. Raises: Error when its RAM is not a wasm DRAM buffer. */
export function runWasm(h: HartCore, max: number): number {
  let e = engines.get(h);
  if (e === undefined) { e = new WasmEngine(h); engines.set(h, e); }
  return e.run(max);
}
const engines = new WeakMap<HartCore, WasmEngine>();

/** A compiled page: its function (also in the dispatcher's table at `slot`), block index + 1 by page offset / 2, the starts it was built for. */
interface PageFn { run: (entry: number, mode: number, left: number) => void; slot: number; index: Int16Array; starts: Set<number>; builds: number; vpn: number }
type Run = (pc: number, mode: number, left: number) => void;

class WasmEngine {
  private readonly w: Wasm;
  private readonly base: number;
  private readonly out: Int32Array;
  /** The dispatcher's entry cache (codegen.ts generateDispatcher), 4 words an entry. */
  private readonly entries: Int32Array;
  private readonly table = new WebAssembly.Table({ initial: 64, element: 'anyfunc' });
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private readonly dispatch: Run;
  /** Functions by physical page (small integers as keys: no boxing on the hot path), one per virtual page it was reached at. */
  private readonly fns = new Map<number, PageFn[]>();
  private readonly heat = new Map<number, number>();
  private readonly imports: { e: Record<string, unknown> };
  private readonly watch: WasmCodeWatch;

  constructor(private readonly h: HartCore) {
    const w = memories.get(h.mem.buffer);
    if (w === undefined) throw new Error("engine 'wasm' needs guest RAM in a WebAssembly.Memory (createWasmDram; HostMemory.create(mib, { wasm: true }))");
    this.w = w;
    this.base = w.scratch + h.hartId * SCRATCH.bytes;
    if (this.base + SCRATCH.bytes > w.pages * 65536) throw new Error('wasm engine: too many harts for the scratch area');
    const buf = w.memory.buffer;
    const view = (at: number, from: Int32Array): Int32Array => { const v = new Int32Array(buf, this.base + at, from.length); v.set(from); return v; };
    const [fetch, load, store] = h.mmu.tlb;
    Object.defineProperty(h, 'x', { value: view(SCRATCH.regs, h.x) });
    Object.defineProperty(fetch, 'tag', { value: view(SCRATCH.fetchTag, fetch.tag) });
    Object.defineProperty(fetch, 'page', { value: view(SCRATCH.fetchPage, fetch.page) });
    Object.defineProperty(load, 'tag', { value: view(SCRATCH.loadTag, load.tag) });
    Object.defineProperty(load, 'page', { value: view(SCRATCH.loadPage, load.page) });
    Object.defineProperty(store, 'tag', { value: view(SCRATCH.storeTag, store.tag) });
    Object.defineProperty(store, 'page', { value: view(SCRATCH.storePage, store.page) });
    Object.defineProperty(store, 'fast', { value: view(SCRATCH.storeFast, store.fast) });
    this.out = new Int32Array(buf, this.base + SCRATCH.outPc, 5);
    this.entries = new Int32Array(buf, this.base + SCRATCH.entries, 4 * ENTRY_CACHE).fill(-1);
    this.watch = watches.get(h) ?? new WasmCodeWatch(h.mem.size);
    this.watch.add(this);
    h.codePages = this.watch.codePages;
    h.onCodeWrite = this.watch.invalidate;
    this.imports = {
      e: {
        mem: w.memory,
        linkJal: (rd: number, pc: number, len: number) => h.linkJal(rd, pc, len),
        linkJalr: (rd: number, rs1: number, target: number, pc: number, len: number) => h.linkJalr(rd, rs1, target, pc, len),
      },
    };
    this.dispatch = new WebAssembly.Instance(this.module(generateDispatcher(this.base, w.pages)), { e: { mem: w.memory, tbl: this.table } }).exports.run as Run;
  }

  run(max: number): number {
    const h = this.h, ctr = h.ctr, ft = h.mmu.tlb[0], out = this.out;
    let left = max;
    h.stopReason = StopReason.Budget;
    while (left > 0) {
      const pc = h.pc, vpn = pc >>> 12, mode = h.priv | (h.virt << 2);
      if (!h.irqDirty && (pc & 1) === 0 && ft.tag[vpn & 255] === ((vpn << 3) | mode)) {
        const pa = ft.page[vpn & 255] + (pc & 0xfff);
        const list = this.fns.get(pa >>> 12);
        let f: PageFn | undefined;
        if (list !== undefined) for (let i = 0; i < list.length; i++) if (list[i].vpn === vpn) { f = list[i]; break; }
        const k = f === undefined ? -1 : f.index[(pc & 0xfff) >>> 1] - 1;
        if (k >= 0) {
          const e = ((pc >>> 1) & (ENTRY_CACHE - 1)) << 2, entries = this.entries;
          entries[e] = pc; entries[e + 1] = ft.page[vpn & 255]; entries[e + 2] = f!.slot; entries[e + 3] = k;
          this.dispatch(pc, mode, left);
          const n = out[1];
          compileStats.calls++;
          compileStats.pageCalls += out[4];
          if (n > 0) {
            compileStats.runInsns += n;
            h.pc = out[0];
            ctr[Ctr.Instructions] += n;
            ctr[Ctr.Cycles] += out[2];
            ctr[Ctr.TakenBranches] += out[3];
            left -= n;
            continue;
          }
        } else {
          const heat = (this.heat.get(pa) ?? 0) + 1;
          this.heat.set(pa, heat);
          // A start the function has but no block for (its first instruction is one wasm leaves to the interpreter) is not rebuilt for.
          if (heat >= tuning.translateAt && (f === undefined || (f.builds < REBUILDS && !f.starts.has(pc)))) this.build(pa >>> 12, vpn, pc, f);
        }
      }
      const before = ctr[Ctr.Instructions];
      const r = runInterpreterToBlockEnd(h, left);
      left -= ctr[Ctr.Instructions] - before;
      if (r !== StopReason.Budget) return r;
    }
    return StopReason.Budget;
  }

  /** Decodes the block at virtual `pc` of virtual page `vpn`, mapped to physical page `ppage`. */
  private block(ppage: number, vpn: number, pc: number): WBlock {
    const u16 = this.h.mem.u16, insns: Insn[] = [];
    let a = pc;
    while (insns.length < MAX_BLOCK && (a >>> 12) === vpn) {
      const at = ppage * 4096 + (a & 0xfff);
      let raw = u16[at >>> 1];
      if ((raw & 3) === 3) {
        if ((a & 0xfff) > 0xffc) break;
        raw = raw | (u16[(at + 2) >>> 1] << 16);
      }
      const w = insnWord(raw);
      const id = w === 0 ? -1 : decode(w);
      if (id < 0 || !supported(id)) break;
      const len = (raw & 3) === 3 ? 4 : 2;
      insns.push({ id, w, pc: a, len });
      a = (a + len) | 0;
      if (FACTS[id].endsBlock) break;
    }
    return { start: pc, insns, next: a };
  }

  /** (Re)compiles the function of (ppage, vpn) with the start `pc` added. */
  private build(ppage: number, vpn: number, pc: number, old: PageFn | undefined): void {
    const starts = new Set(old?.starts ?? []);
    starts.add(pc);
    const blocks = new Map<number, WBlock>();
    const work = [...starts];
    let insns = 0;
    while (work.length > 0 && insns < MAX_INSNS) {
      const s = work.shift()!;
      if (blocks.has(s)) continue;
      const b = this.block(ppage, vpn, s);
      if (b.insns.length === 0) continue;
      blocks.set(s, b);
      insns += b.insns.length;
      const t = b.insns[b.insns.length - 1];
      const succ = [b.next];
      if (FACTS[t.id].kind === 'branch' || FACTS[t.id].kind === 'jal') succ.push((t.pc + IMM_OF[INSNS[t.id].format](t.w)) | 0);
      for (const p of succ) if ((p >>> 12) === vpn && !blocks.has(p)) work.push(p);
    }
    if (blocks.size === 0) return;
    const list = [...blocks.values()];
    let t0 = performance.now();
    const g = generate(list, this.base, this.w.pages, starts);
    compileStats.generateUs += usSince(t0);
    const fresh = compileStats.modules;
    const mod = this.module(g.bytes);
    if (compileStats.modules > fresh) {
      compileStats.insns += insns;
      compileStats.blocks += list.length;
    }
    t0 = performance.now();
    const inst = new WebAssembly.Instance(mod, this.imports);
    compileStats.instantiateUs += usSince(t0);
    const index = new Int16Array(2048);
    for (const [s, k] of g.entries) index[(s & 0xfff) >>> 1] = k + 1;
    const run = inst.exports.run as PageFn['run'];
    // A rebuilt function takes its predecessor's slot (whose cache entries name old block indices).
    let slot: number;
    if (old !== undefined) { slot = old.slot; this.forget(slot); } else slot = this.slot();
    this.table.set(slot, run);
    const fn: PageFn = { run, slot, index, starts, builds: (old?.builds ?? 0) + 1, vpn };
    const fnsHere = this.fns.get(ppage) ?? [];
    const at = old === undefined ? -1 : fnsHere.indexOf(old);
    if (at >= 0) fnsHere[at] = fn; else fnsHere.push(fn);
    this.fns.set(ppage, fnsHere);
    this.protect(ppage);
  }

  /** The module of `bytes`, compiled or from the process's cache. */
  private module(bytes: Uint8Array): WebAssembly.Module {
    const key = Buffer.from(bytes).toString('latin1');
    let mod = moduleCache.get(key);
    if (mod !== undefined) { compileStats.cached++; return mod; }
    const t0 = performance.now();
    if (moduleCache.size >= MODULE_CACHE) moduleCache.clear();
    mod = new WebAssembly.Module(bytes);
    compileStats.moduleUs += usSince(t0);
    moduleCache.set(key, mod);
    compileStats.modules++;
    compileStats.bytes += bytes.length;
    return mod;
  }

  /** A free slot of the dispatcher's table (grown when none is). */
  private slot(): number {
    const s = this.freeSlots.pop();
    if (s !== undefined) return s;
    if (this.nextSlot === this.table.length) this.table.grow(this.table.length);
    return this.nextSlot++;
  }

  /** Drops the entry cache's entries for table slot `slot`. */
  private forget(slot: number): void {
    const en = this.entries;
    for (let e = 0; e < en.length; e += 4) if (en[e + 2] === slot) en[e] = -1;
  }

  /** Marks a frame as holding compiled code: stores to it go through the hart (and reach invalidate). */
  private protect(ppage: number): void { this.watch.protect(ppage); }

  /** Frame `ppage` holds compiled code (of this hart or another): this hart's stores to it take the slow path. */
  unfast(ppage: number): void {
    const st = this.h.mmu.tlb[2];
    for (let i = 0; i < 256; i++) if ((st.page[i] >>> 12) === ppage) st.fast[i] = -1;
  }

  /** A write into a code frame (or fence.i, pa < 0): drops the functions compiled from it (the watch clears its mark). */
  invalidate(pa: number): void {
    const frames = pa < 0 ? [...this.fns.keys()] : [pa >>> 12];
    for (const fr of frames) {
      const list = this.fns.get(fr);
      if (list === undefined) continue;
      for (const f of list) { this.forget(f.slot); this.table.set(f.slot, null); this.freeSlots.push(f.slot); }
      this.fns.delete(fr);
    }
  }
}
