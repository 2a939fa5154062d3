/**
 * Technique 3 (US20240028336A1), the kernel side: after a syscall, scan the user instructions
 * that follow the `ecall` for the next `ecall` and decide whether everything before it can be
 * emulated safely. The scan is a dry run on a copy of the user's registers with a store buffer:
 * nothing is committed unless the next `ecall` is reached, so a chain that ends early leaves the
 * process exactly as it was (it then runs those instructions itself, faults included).
 *
 * Instruction semantics come from the same templates as the interpreter and the jit
 * (cpu/semantics.ts), through a generated switch over the viable op ids; memory goes through the
 * process's page table and the G-stage with user-mode permission checks (Mmu.translate at U), as
 * the hardware would, and is read from guest memory itself, so code modified by the program is
 * seen as it is now.
 */
import { INSNS, Kind, opId } from '../isa/table.js';
import { decode } from '../isa/decode.js';
import { FACTS } from '../isa/facts.js';
import { compileFetch, insnLen, insnWord } from '../isa/fetch.js';
import { immB } from '../isa/fields.js';
import { expand, wordSlots } from '../cpu/template.js';
import type { HartCore } from '../cpu/hart-core.js';
import { PRIV_U } from '../cpu/hart-core.js';
import { TRAP } from '../cpu/trap.js';
import { ACC_FETCH, ACC_LOAD, ACC_STORE } from '../mmu/mmu.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import { Ctr } from '../uarch/costs.js';

/**
 * The policy, by instruction kind (isa/facts.ts): the class a chain end reports
 * (`notViable.<class>`), and which classes the kernel may emulate: computation, plain loads and
 * stores (through the store buffer), and forward branches inside the window. Jumps, atomics,
 * CSR accesses, fences and system instructions end the chain: their effects (linking and
 * prediction state, reservations, privileged state) cannot be buffered and undone.
 */
const CLASS_OF_KIND: Record<Kind, string> = {
  alu: 'alu', mul: 'alu', div: 'alu', load: 'load', store: 'store', branch: 'branch', jal: 'jump', jalr: 'jump',
  csr: 'csr', fence: 'fence', fencei: 'fence', lr: 'atomic', sc: 'atomic', amo: 'atomic', system: 'system', hlv: 'system', hsv: 'system',
};
const EMULATED = new Set(['alu', 'load', 'store', 'branch']);
/** Class by op id. */
const CLASS = FACTS.map((f) => CLASS_OF_KIND[f.kind]);

/** Memory as the emulated instructions see it (the templates call h.load8 ... h.store32, h.mulh ...). */
interface EmuMem {
  load8(va: number): number; load16(va: number): number; load32(va: number): number;
  store8(va: number, v: number): void; store16(va: number, v: number): void; store32(va: number, v: number): void;
  mulh(a: number, b: number): number; mulhsu(a: number, b: number): number; mulhu(a: number, b: number): number;
  /** Counters the templates touch (taken branches); emulated instructions do not count as retired, so these are scratch. */
  readonly ctr: Float64Array;
}
type EmulateFn = (op: number, w: number, x: Int32Array, h: EmuMem, pc: number, len: number) => number;

/**
 * One generated function: a switch over the emulable op ids, each case the row's template. Returns
 * the next pc. Generated on first use (the technique is off by default; generating it at import
 * cost ~1.5 ms of every `hvsim run`'s start-up).
 */
let emulate: EmulateFn | null = null;
function generateEmulate(): EmulateFn {
  const cases = INSNS.map((_, id) => {
    if (!EMULATED.has(CLASS[id])) return '';
    return `case ${id}: { ${expand(id, wordSlots(id))} break; }`;
  }).join('\n');
  return new Function('op', 'w', 'x', 'h', 'pc', 'len', `let npc = (pc + len) | 0; let cyc = 0; switch (op) { ${cases} } x[0] = 0; return npc;`) as EmulateFn;
}

const ECALL = opId('ecall');

/** The fetch-and-expand step (isa/fetch.ts) compiled for the scanner's reader (user-mode fetch through the TLB). */
const FETCH = compileFetch<LookaheadScanner>((s, a) => `${s}.fetch16(${a})`);

/** TLB tag mode of VU (priv U, V=1), as Hart.mode() computes it. */
const VU_MODE = PRIV_U | (1 << 2);

/** Thrown (as this object) when an access would fault or is not plain RAM. */
const FAULT_RISK = { faultRisk: true } as const;

export type ChainEnd = 'noEcallInWindow' | 'faultRisk' | `notViable.${string}`;

export interface ScanResult {
  /** The next ecall's address, or null when the chain ends. */
  ecallPc: number | null;
  end: ChainEnd | null;
  scanned: number;
  emulated: number;
}

/**
 * The dry run over one window. Owns the store buffer of the run in progress; `commit` writes it
 * to memory (through `write`, which must also drop stale translations).
 */
export class LookaheadScanner implements EmuMem {
  private h!: HartCore;
  private readonly stores = new Map<number, number>();
  readonly ctr = new Float64Array(Ctr.Count);

  /**
   * Scans from `pc` with the user registers `regs` (updated in place). Preconditions: the hart
   * is in the process's address space (vsatp) with V=1.
   */
  scan(h: HartCore, regs: Int32Array, pc: number, window: number, allowForwardBranches: boolean): ScanResult {
    this.h = h;
    this.stores.clear();
    const limit = (pc + 4 * window) >>> 0;
    let scanned = 0, emulated = 0;
    try {
      while (scanned < window) {
        const raw = FETCH(this, pc);
        const w = insnWord(raw), len = insnLen(raw);
        scanned++;
        const op = w === 0 ? -1 : decode(w);
        if (op === ECALL && len === 4) return { ecallPc: pc, end: null, scanned, emulated };
        const cls = op >= 0 ? CLASS[op] : 'unknown';
        if (!EMULATED.has(cls)) return { ecallPc: null, end: `notViable.${cls}`, scanned, emulated };
        if (cls === 'branch') {
          if (!allowForwardBranches) return { ecallPc: null, end: 'notViable.branch', scanned, emulated };
          const off = immB(w);
          if (off <= 0) return { ecallPc: null, end: 'notViable.backwardBranch', scanned, emulated };
          if (((pc + off) >>> 0) >= limit) return { ecallPc: null, end: 'notViable.branchOutOfWindow', scanned, emulated };
        }
        pc = (emulate ??= generateEmulate())(op, w, regs, this, pc, len);
        emulated++;
      }
    } catch (e) {
      if (e !== FAULT_RISK) throw e;
      return { ecallPc: null, end: 'faultRisk', scanned, emulated };
    }
    return { ecallPc: null, end: 'noEcallInWindow', scanned, emulated };
  }

  /** Writes the buffered stores of the last successful scan. */
  commit(write: (hpa: number, byte: number) => void): void {
    for (const [pa, v] of this.stores) write(pa, v);
    this.stores.clear();
  }

  /**
   * Host-physical address of user `va` for an access of kind `acc`, as U mode would see it:
   * through the hart's TLB for VU mode (filling it on a miss, with the walk charged), as the
   * kernel's own access to user memory would.
   */
  private pa(va: number, acc: number): number {
    const h = this.h;
    const vpn = va >>> 12;
    const t = h.mmu.tlb[acc];
    const tag = (vpn << 3) | VU_MODE;
    let base: number;
    if (t.tag[vpn & 255] === tag) base = t.page[vpn & 255];
    else {
      try {
        base = h.mmu.translate(va & ~0xfff, acc, PRIV_U, 1, false);
      } catch (e) {
        if (e === TRAP) throw FAULT_RISK;
        throw e;
      }
      if (base >= h.mem.size || h.mem.isPoisoned(base) || (acc === ACC_FETCH && base >= h.gateBase && base < h.gateEnd)) throw FAULT_RISK;
      t.tag[vpn & 255] = tag;
      t.page[vpn & 255] = base;
    }
    return base + (va & (PAGE_SIZE - 1));
  }

  /** The 16-bit reader of FETCH. */
  fetch16(va: number): number {
    if (va & 1) throw FAULT_RISK;
    const pa = this.pa(va, ACC_FETCH);
    return this.h.mem.u16[pa >>> 1];
  }

  load8(va: number): number {
    const pa = this.pa(va, ACC_LOAD);
    const s = this.stores.get(pa);
    return s !== undefined ? s : this.h.mem.u8[pa];
  }
  load16(va: number): number { return this.load8(va) | (this.load8((va + 1) | 0) << 8); }
  load32(va: number): number { return this.load8(va) | (this.load8((va + 1) | 0) << 8) | (this.load8((va + 2) | 0) << 16) | (this.load8((va + 3) | 0) << 24); }
  store8(va: number, v: number): void { this.stores.set(this.pa(va, ACC_STORE), v & 0xff); }
  store16(va: number, v: number): void { this.pa(va, ACC_STORE); this.pa((va + 1) | 0, ACC_STORE); this.store8(va, v); this.store8((va + 1) | 0, v >> 8); }
  store32(va: number, v: number): void {
    this.pa(va, ACC_STORE); this.pa((va + 3) | 0, ACC_STORE);
    for (let i = 0; i < 4; i++) this.store8((va + i) | 0, v >> (8 * i));
  }
  mulh(a: number, b: number): number { return this.h.mulh(a, b); }
  mulhsu(a: number, b: number): number { return this.h.mulhsu(a, b); }
  mulhu(a: number, b: number): number { return this.h.mulhu(a, b); }
}
