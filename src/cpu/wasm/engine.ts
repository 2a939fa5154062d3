/**
 * The WebAssembly engine (`Hart.engine = 'wasm'`, `hvsim run --engine wasm`): hot guest pages
 * compiled to wasm functions (codegen.ts), cold code in the interpreter. Opt-in; measured against
 * the block translator in docs/engine.md ("WebAssembly backend: measured").
 *
 * Memory: guest RAM must be the buffer of a shared `WebAssembly.Memory` made by `createWasmDram`
 * (HostMemory.create(mib, { wasm: true }) does), 128 KiB larger than the RAM asked for: that top
 * part, which no frame covers and so no guest can reach, holds each hart's scratch
 * area (codegen.ts SCRATCH): its register file and the data TLBs' arrays, moved there when the
 * engine first runs the hart (the hart's `x` and Tlb arrays become views of it), so generated
 * code reads them directly and its loads and stores inline the TLB fast path.
 *
 * Dispatcher: like runJit's, it translates pc through the fetch TLB (a miss goes to the
 * interpreter, which fills it exactly as always), looks up the function compiled for the
 * (physical page, virtual page) and calls it at the block's index; code without a function runs
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
import { Insn, SCRATCH, WBlock, generate, supported } from './codegen.js';

/** The part of the WebAssembly JS API used here (the project's lib settings carry no DOM or wasm types). */
declare namespace WebAssembly {
  class Memory { constructor(d: { initial: number; maximum: number; shared: boolean }); readonly buffer: ArrayBufferLike }
  class Module { constructor(bytes: Uint8Array) }
  class Instance { constructor(m: Module, imports: object); readonly exports: Record<string, unknown> }
}

/** Arrivals at a block start before its page is compiled (the JavaScript translator's TRANSLATE_AT, 256); tests lower it. */
export const tuning = { translateAt: 256 };
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
  /** CPU µs generating modules (codegen.ts, JavaScript), in new WebAssembly.Module (lazy by default: validation only), in instantiation. */
  generateUs: 0, moduleUs: 0, instantiateUs: 0,
  /** Calls of compiled functions, and the instructions they retired. */
  calls: 0, runInsns: 0,
};
const cpuUs = (since: NodeJS.CpuUsage): number => { const c = process.cpuUsage(since); return c.user + c.system; };
/** Modules by their bytes, shared by every VM of the process (as the JS translator shares its factories). */
const moduleCache = new Map<string, WebAssembly.Module>();

/** Bytes above the RAM of a wasm DRAM buffer: two wasm pages of scratch areas, one per hart (16, the most vCPUs a VM has). */
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

interface PageFn { run: (entry: number, mode: number, left: number) => void; index: Int16Array; starts: Set<number>; builds: number; vpn: number }

class WasmEngine {
  private readonly w: Wasm;
  private readonly base: number;
  private readonly out: Int32Array;
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
    const [, load, store] = h.mmu.tlb;
    Object.defineProperty(h, 'x', { value: view(SCRATCH.regs, h.x) });
    Object.defineProperty(load, 'tag', { value: view(SCRATCH.loadTag, load.tag) });
    Object.defineProperty(load, 'page', { value: view(SCRATCH.loadPage, load.page) });
    Object.defineProperty(store, 'tag', { value: view(SCRATCH.storeTag, store.tag) });
    Object.defineProperty(store, 'page', { value: view(SCRATCH.storePage, store.page) });
    Object.defineProperty(store, 'fast', { value: view(SCRATCH.storeFast, store.fast) });
    this.out = new Int32Array(buf, this.base + SCRATCH.outPc, 4);
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
          f!.run(k, mode, left);
          const n = out[1];
          compileStats.calls++;
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
          if (heat >= tuning.translateAt && (f === undefined || f.builds < REBUILDS)) this.build(pa >>> 12, vpn, pc, f);
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
    let c0 = process.cpuUsage();
    const g = generate(list, this.base, this.w.pages, starts);
    const key = Buffer.from(g.bytes).toString('latin1');
    compileStats.generateUs += cpuUs(c0);
    let mod = moduleCache.get(key);
    if (mod === undefined) {
      c0 = process.cpuUsage();
      if (moduleCache.size >= MODULE_CACHE) moduleCache.clear();
      mod = new WebAssembly.Module(g.bytes);
      compileStats.moduleUs += cpuUs(c0);
      moduleCache.set(key, mod);
      compileStats.modules++;
      compileStats.bytes += g.bytes.length;
      compileStats.insns += insns;
      compileStats.blocks += list.length;
    } else compileStats.cached++;
    c0 = process.cpuUsage();
    const inst = new WebAssembly.Instance(mod, this.imports);
    compileStats.instantiateUs += cpuUs(c0);
    const index = new Int16Array(2048);
    for (const [s, k] of g.entries) index[(s & 0xfff) >>> 1] = k + 1;
    const fn: PageFn = { run: inst.exports.run as PageFn['run'], index, starts, builds: (old?.builds ?? 0) + 1, vpn };
    const fnsHere = this.fns.get(ppage) ?? [];
    const at = old === undefined ? -1 : fnsHere.indexOf(old);
    if (at >= 0) fnsHere[at] = fn; else fnsHere.push(fn);
    this.fns.set(ppage, fnsHere);
    this.protect(ppage);
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
    if (pa < 0) this.fns.clear(); else this.fns.delete(pa >>> 12);
  }
}
