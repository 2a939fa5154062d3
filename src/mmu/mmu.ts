/**
 * Address translation: Sv32 (S/U and the VS-stage) and Sv32x4 (the G-stage), with per-access-kind
 * TLBs. The hart owns one Mmu; the Mmu reads the hart's translation CSRs through `MmuHost`.
 *
 * Two-stage order follows the privileged spec: with V=1 every VS-stage PTE address is itself a
 * guest-physical address translated by the G-stage before it is read, and the final GPA is then
 * translated by the G-stage.
 */
import { PAGE_SIZE, PhysMem } from './phys.js';

export const ACC_FETCH = 0;
export const ACC_LOAD = 1;
export const ACC_STORE = 2;

/** Exception causes raised by translation and physical access. */
export const CAUSE = {
  fetchMisaligned: 0, fetchAccess: 1, illegal: 2, breakpoint: 3, loadMisaligned: 4, loadAccess: 5,
  storeMisaligned: 6, storeAccess: 7, ecallU: 8, ecallHS: 9, ecallVS: 10, ecallM: 11,
  fetchPage: 12, loadPage: 13, storePage: 15, hardwareError: 19,
  fetchGuestPage: 20, loadGuestPage: 21, virtualInstruction: 22, storeGuestPage: 23,
} as const;

const PAGE_FAULT = [CAUSE.fetchPage, CAUSE.loadPage, CAUSE.storePage];
const GUEST_PAGE_FAULT = [CAUSE.fetchGuestPage, CAUSE.loadGuestPage, CAUSE.storeGuestPage];
export const ACCESS_FAULT = [CAUSE.fetchAccess, CAUSE.loadAccess, CAUSE.storeAccess];

/** Sv32 / Sv32x4 page-table entry bits. */
export const PTE = { V: 1, R: 2, W: 4, X: 8, U: 16, G: 32, A: 64, D: 128 } as const;
const PTE_V = PTE.V, PTE_R = PTE.R, PTE_W = PTE.W, PTE_X = PTE.X, PTE_U = PTE.U, PTE_A = PTE.A, PTE_D = PTE.D;
const MSTATUS_SUM = 1 << 18;
const MSTATUS_MXR = 1 << 19;

/** What the MMU needs from the hart. */
export interface MmuHost {
  mem: PhysMem;
  satp: number;
  vsatp: number;
  hgatp: number;
  mstatus: number;
  vsstatus: number;
  /** Counts one TLB miss and `refs` walk memory references (charged by the cost model). */
  chargeWalk(refs: number): void;
  /**
   * Raises a synchronous exception. Never returns (throws the hart's trap sentinel).
   * tval2 is the guest-physical address >> 2 for guest-page faults (htval/mtval2), else 0;
   * gva says whether tval is a guest virtual address.
   */
  raise(cause: number, tval: number, tval2: number, gva: boolean): never;
}

/**
 * Per-kind direct-mapped TLB. A tag combines the virtual page number with the translation mode
 * (privilege and V), so a privilege change needs no flush; CSR writes that change translation
 * flush. Entries never cache MMIO, poisoned or gate pages, so the fast path needs no checks.
 */
export class Tlb {
  static readonly ENTRIES = 256;
  readonly tag = new Int32Array(Tlb.ENTRIES).fill(-1);
  readonly page = new Int32Array(Tlb.ENTRIES);
  /**
   * Store TLB only: the tags translated code may store through with no bookkeeping, that is the
   * entries whose frame holds no translated code, and none while an LR reservation is held
   * (maintained by the hart; a subset of `tag`, so it never changes what the TLB caches or counts).
   */
  readonly fast = new Int32Array(Tlb.ENTRIES).fill(-1);
  flush(): void { this.tag.fill(-1); this.fast.fill(-1); }
}

export class Mmu {
  readonly tlb = [new Tlb(), new Tlb(), new Tlb()];
  /** Walk references of the translation in progress. */
  private refs = 0;

  constructor(private readonly h: MmuHost) {}

  flushAll(): void {
    this.tlb[0].flush();
    this.tlb[1].flush();
    this.tlb[2].flush();
  }

  /**
   * Translates `va` for an access of kind `acc` at effective privilege `priv` (0 U, 1 S, 3 M)
   * and virtualization `virt`. Returns the physical address (may exceed RAM: callers check).
   * `hlvx`: the access is an HLVX (needs execute, not read, permission).
   * Raises: page fault (12/13/15) from the S or VS stage, guest-page fault (20/21/23) with
   * htval = GPA >> 2 from the G-stage (including for the VS-stage's own PTE reads), access fault
   * when a PTE lies outside RAM.
   */
  translate(va: number, acc: number, priv: number, virt: number, hlvx: boolean): number {
    va >>>= 0;
    this.refs = 0;
    const h = this.h;
    let pa: number;
    if (virt) {
      const mxr = ((h.vsstatus | h.mstatus) & MSTATUS_MXR) !== 0;
      const gpa = this.stage1(va, acc, priv, h.vsatp, (h.vsstatus & MSTATUS_SUM) !== 0, mxr, true, hlvx);
      pa = this.gstage(gpa, acc, va, hlvx);
    } else if (priv === 3 || (h.satp >>> 31) === 0) {
      pa = va;
    } else {
      pa = this.stage1(va, acc, priv, h.satp, (h.mstatus & MSTATUS_SUM) !== 0, (h.mstatus & MSTATUS_MXR) !== 0, false, hlvx);
    }
    if (this.refs) h.chargeWalk(this.refs);
    return pa;
  }

  private readPte(pa: number, acc: number, va: number, virt: boolean): number {
    this.refs++;
    if (!this.h.mem.isRam(pa, 4)) this.h.raise(ACCESS_FAULT[acc], va, 0, virt);
    return this.h.mem.read32(pa);
  }

  /** Sv32 walk of the S-stage or VS-stage. Returns a (guest-)physical address up to 34 bits. */
  private stage1(va: number, acc: number, priv: number, atp: number, sum: boolean, mxr: boolean, vs: boolean, hlvx: boolean): number {
    if ((atp >>> 31) === 0) return va;
    let base = (atp & 0x3fffff) * PAGE_SIZE;
    for (let level = 1; level >= 0; level--) {
      const vpn = level === 1 ? va >>> 22 : (va >>> 12) & 0x3ff;
      const pteGpa = base + vpn * 4;
      const ptePa = vs ? this.gstage(pteGpa, acc, va, false) : pteGpa;
      let pte = this.readPte(ptePa, acc, va, vs);
      if ((pte & PTE_V) === 0 || ((pte & PTE_R) === 0 && (pte & PTE_W) !== 0)) this.h.raise(PAGE_FAULT[acc], va, 0, vs);
      const ppn = pte >>> 10;
      if ((pte & (PTE_R | PTE_X)) === 0) {
        if (level === 0) this.h.raise(PAGE_FAULT[acc], va, 0, vs);
        base = ppn * PAGE_SIZE;
        continue;
      }
      // Leaf: permissions.
      const user = (pte & PTE_U) !== 0;
      let ok: boolean;
      if (acc === ACC_FETCH) ok = (pte & PTE_X) !== 0 && (priv === 0 ? user : !user);
      else {
        const readable = hlvx ? (pte & PTE_X) !== 0 : (pte & PTE_R) !== 0 || (mxr && (pte & PTE_X) !== 0);
        ok = (acc === ACC_LOAD ? readable : (pte & PTE_W) !== 0) && (priv === 0 ? user : !user || sum);
      }
      if (!ok) this.h.raise(PAGE_FAULT[acc], va, 0, vs);
      if (level === 1 && (ppn & 0x3ff) !== 0) this.h.raise(PAGE_FAULT[acc], va, 0, vs); // misaligned superpage
      // Hardware A/D update (Svadu behaviour), as an implicit store to the PTE.
      const need = PTE_A | (acc === ACC_STORE ? PTE_D : 0);
      if ((pte & need) !== need) {
        if (vs) this.gstage(pteGpa, ACC_STORE, va, false);
        pte |= need;
        this.h.mem.write32(ptePa, pte);
      }
      return level === 1 ? (ppn >>> 10) * 0x400000 + (va & 0x3fffff) : ppn * PAGE_SIZE + (va & 0xfff);
    }
    return this.h.raise(PAGE_FAULT[acc], va, 0, vs);
  }

  /**
   * Sv32x4 G-stage walk of a guest-physical address (up to 34 bits). Every G-stage access is
   * treated as a U-mode access; faults are guest-page faults of the original access kind with
   * stval = the guest virtual address and htval = gpa >> 2.
   */
  gstage(gpa: number, acc: number, gva: number, hlvx: boolean): number {
    const h = this.h;
    if ((h.hgatp >>> 31) === 0) return gpa;
    const fault = (): never => h.raise(GUEST_PAGE_FAULT[acc], gva, Math.floor(gpa / 4), true);
    if (gpa >= 2 ** 34) fault();
    let base = (h.hgatp & 0x3ffffc) * PAGE_SIZE;
    const pageNo = Math.floor(gpa / PAGE_SIZE);
    for (let level = 1; level >= 0; level--) {
      const vpn = level === 1 ? Math.floor(pageNo / 1024) : pageNo % 1024;
      const ptePa = base + vpn * 4;
      let pte = this.readPte(ptePa, acc, gva, true);
      if ((pte & PTE_V) === 0 || ((pte & PTE_R) === 0 && (pte & PTE_W) !== 0)) fault();
      const ppn = pte >>> 10;
      if ((pte & (PTE_R | PTE_X)) === 0) {
        if (level === 0) fault();
        base = ppn * PAGE_SIZE;
        continue;
      }
      const mxr = (h.mstatus & MSTATUS_MXR) !== 0;
      let ok = (pte & PTE_U) !== 0;
      if (acc === ACC_FETCH) ok &&= (pte & PTE_X) !== 0;
      else if (acc === ACC_LOAD) ok &&= hlvx ? (pte & PTE_X) !== 0 : (pte & PTE_R) !== 0 || (mxr && (pte & PTE_X) !== 0);
      else ok &&= (pte & PTE_W) !== 0;
      if (!ok) fault();
      if (level === 1 && (ppn & 0x3ff) !== 0) fault();
      const need = PTE_A | (acc === ACC_STORE ? PTE_D : 0);
      if ((pte & need) !== need) {
        pte |= need;
        h.mem.write32(ptePa, pte);
      }
      return level === 1 ? (ppn >>> 10) * 0x400000 + (gpa % 0x400000) : ppn * PAGE_SIZE + (gpa % PAGE_SIZE);
    }
    return fault();
  }
}
