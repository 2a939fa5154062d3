/**
 * The architectural state and memory access of one RV32IMAC + Zicsr + Zifencei hart with M/S/U
 * modes and the H extension (V=1 VS/VU modes, two-stage translation). It executes nothing itself:
 * the engines (interp.ts, the JIT) run instructions against it, and hart.ts's Hart adds the
 * engine choice. Nothing here imports an engine.
 *
 * Hot-path rules: registers in an Int32Array, int32 arithmetic, counters in a Float64Array, no
 * allocation per instruction. Synchronous exceptions are raised by throwing the TRAP sentinel
 * (never a fresh object) after recording cause/tval; the run loop catches it, performs the
 * architectural trap and goes on, or stops when the trap lands in a mode the host handles
 * natively (see `nativeTraps`).
 */
import { PhysMem, PAGE_SIZE } from '../mmu/phys.js';
import { ACC_FETCH, ACC_LOAD, ACC_STORE, ACCESS_FAULT, CAUSE, Mmu, MmuHost } from '../mmu/mmu.js';
import { Btb, COSTS, Ctr, Rsb } from '../uarch/costs.js';
import { compileFetch } from '../isa/fetch.js';
import { CsrRowOf, HS, IRQ, MS, MSH } from './csr-bits.js';
import { STOP, StopReason, TRAP } from './trap.js';
import { DGATE_RETURN, DomainGates, dgateWord } from './domain-gate.js';
import type { DecodeCache } from './decode-cache.js';

export const PRIV_U = 0;
export const PRIV_S = 1;
export const PRIV_M = 3;

/** Bits of Hart.nativeTraps. */
export const NATIVE_M = 1;
export const NATIVE_HS = 2;
export const NATIVE_VS = 4;

const LINK = (r: number) => r === 1 || r === 5;
/** The encoding of pmret (isa/table.ts, Xhvpm). */
export const PMRET_WORD = 0x0000100b;

/** The fetch-and-expand step (isa/fetch.ts) compiled for the hart's reader: 16 bits through fetchPa. */
const FETCH = compileFetch<HartCore>((h, a) => `${h}.mem.u16[${h}.fetchPa(${a}) >>> 1]`);

export abstract class HartCore implements MmuHost {
  /** The CSR file (csr.ts), by address: supplied by Hart, so that this module does not import the table written against it. */
  protected abstract readonly csrs: ReadonlyArray<CsrRowOf<HartCore> | undefined>;

  readonly x = new Int32Array(32);
  pc = 0;
  /** 0 = U, 1 = S, 3 = M. */
  priv = PRIV_M;
  /** Virtualization mode: 1 in VS/VU. */
  virt = 0;
  readonly mmu: Mmu;
  /** Counters, indexed by Ctr (Float64 so cycle counts do not wrap). */
  readonly ctr: Float64Array;
  readonly btb = new Btb();
  readonly rsb = new Rsb();
  /** Per-crossing cost of trap entry and xRET (the crossing preset of DESIGN.md section 6). */
  crossingCost: number = COSTS.crossing.none;

  // CSR state
  mstatus = 0; mstatush = 0; medeleg = 0; mideleg = 0; mie = 0; mip = 0;
  mtvec = 0; mepc = 0; mcause = 0; mtval = 0; mtval2 = 0; mtinst = 0; mscratch = 0; mcounteren = 0;
  stvec = 0; sepc = 0; scause = 0; stval = 0; sscratch = 0; satp = 0; scounteren = 0;
  hstatus = 0; hedeleg = 0; hideleg = 0; hgatp = 0; htval = 0; htinst = 0; hcounteren = 0; htimedelta = 0;
  vsstatus = 0; vstvec = 0; vsscratch = 0; vsepc = 0; vscause = 0; vstval = 0; vsatp = 0;

  /** Which trap targets stop the run loop (NATIVE_M | NATIVE_HS | NATIVE_VS). */
  nativeTraps = 0;
  /** Physical range whose instruction fetch stops the loop with StopReason.Gate. */
  /**
   * A code address whose speculative execution would leak (the guest kernel's gadget; 0: none):
   * an indirect jump mispredicted to it counts a speculative gadget reach (Ctr.GadgetReaches: the
   * transient window of branch target injection; nothing architectural happens). Kernel indirect
   * calls the BTB predicted count in Ctr.KernelBtbCalls; both are counters, so they migrate.
   */
  gadget = 0;
  /** The pc of the indirect jump whose misprediction last reached the gadget. */
  gadgetReachPc = 0;
  gateBase = -1;
  gateEnd = -1;

  /** Protection-domain gate tables set by the KHV (technique 7), or null when the VM has no domains. */
  domainGates: DomainGates | null = null;

  /** LR/SC reservation: physical address, or -1, and the virtual address LR used. */
  reservation = -1;
  reservationVa = 0;
  /** Set when interrupt state may have changed; the loop then checks for a pending interrupt. */
  irqDirty = true;
  /** The interpreter's predecode cache (decode-cache.ts), created on the interpreter's first run; it needs no invalidation. */
  decodeCache: DecodeCache | null = null;
  /** Called on fence.i, and on stores into pages marked as holding code (for translators). */
  onCodeWrite: ((pa: number) => void) | null = null;

  // Pending exception (set by raise, consumed by the loop)
  private pCause = 0;
  private pTval = 0;
  private pTval2 = 0;
  private pGva = false;
  /** Stop reason set by a STOP throw. */
  stopReason: number = StopReason.Budget;
  /** Cause of the last trap taken (interrupts have bit 31 set). */
  lastCause = 0;
  /** Physical address of the last access that hit a poisoned frame (what a machine-check bank reports). */
  poisonPa = -1;

  constructor(readonly mem: PhysMem, readonly hartId = 0, counters?: Float64Array) {
    this.mmu = new Mmu(this);
    this.ctr = counters ?? new Float64Array(Ctr.Count);
  }

  /** Virtual time in ns (1 cycle = 1 ns at the nominal 1 GHz), plus htimedelta when V=1. */
  time(): number {
    return this.ctr[Ctr.Cycles] + (this.virt ? this.htimedelta : 0);
  }

  // *** exceptions ***

  raise(cause: number, tval: number, tval2 = 0, gva = false): never {
    this.pCause = cause;
    this.pTval = tval | 0;
    this.pTval2 = tval2 | 0;
    this.pGva = gva;
    throw TRAP;
  }

  illegal(w: number): never { return this.raise(CAUSE.illegal, w); }
  virtualInstruction(w: number): never { return this.raise(CAUSE.virtualInstruction, w); }

  /** Counts and charges one privilege crossing (trap entry or xRET within a machine). */
  private crossing(): void {
    this.ctr[Ctr.Crossings]++;
    this.ctr[Ctr.Cycles] += this.crossingCost;
  }

  chargeWalk(refs: number): void {
    this.ctr[Ctr.TlbMisses]++;
    this.ctr[Ctr.WalkRefs] += refs;
    this.ctr[Ctr.Cycles] += refs * COSTS.walkReference;
  }

  /**
   * Takes the pending synchronous exception (or the interrupt `irq` when >= 0) at `pc`:
   * chooses M, HS or VS by medeleg/mideleg and hedeleg/hideleg, writes that mode's cause, epc,
   * tval (and htval/mtval2, GVA), pushes the interrupt-enable stack and returns the handler pc.
   */
  takeTrap(pc: number, irq = -1): number {
    const interrupt = irq >= 0;
    const cause = interrupt ? irq : this.pCause;
    const bit = 1 << cause;
    const fromPriv = this.priv;
    const fromVirt = this.virt;
    this.lastCause = interrupt ? (cause | 0x80000000) : cause;
    this.ctr[interrupt ? Ctr.Interrupts : Ctr.Traps]++;
    this.reservation = -1;
    const delegS = fromPriv !== PRIV_M && ((interrupt ? this.mideleg | 0x444 : this.medeleg) & bit) !== 0;
    const delegVS = delegS && fromVirt === 1 && ((interrupt ? this.hideleg : this.hedeleg) & bit) !== 0;
    // A trap out of V=1 into HS or M is a VM exit: the hypervisor charges it (COSTS.vmExit).
    if (fromVirt === 0 || delegVS) this.crossing();
    const tval = interrupt ? 0 : this.pTval;
    const gva = !interrupt && this.pGva;
    if (delegVS) {
      // VS-level interrupts are presented to the guest as their S-level numbers.
      const vcause = interrupt && (cause === IRQ.VSSI || cause === IRQ.VSTI || cause === IRQ.VSEI) ? cause - 1 : cause;
      this.vscause = interrupt ? (vcause | 0x80000000) : vcause;
      this.vsepc = pc;
      this.vstval = tval;
      const s = this.vsstatus;
      this.vsstatus = (s & ~(MS.SPIE | MS.SPP | MS.SIE)) | ((s & MS.SIE) ? MS.SPIE : 0) | (fromPriv === PRIV_S ? MS.SPP : 0);
      this.priv = PRIV_S;
      this.virt = 1;
      this.irqDirty = true;
      if (this.nativeTraps & NATIVE_VS) this.stopReason = StopReason.Trap;
      return this.vector(this.vstvec, interrupt, vcause);
    }
    if (delegS) {
      this.scause = interrupt ? (cause | 0x80000000) : cause;
      this.sepc = pc;
      this.stval = tval;
      this.htval = interrupt ? 0 : this.pTval2;
      this.htinst = 0;
      const s = this.mstatus;
      this.setMstatusRaw((s & ~(MS.SPIE | MS.SPP | MS.SIE)) | ((s & MS.SIE) ? MS.SPIE : 0) | (fromPriv === PRIV_S ? MS.SPP : 0));
      let hs = this.hstatus & ~(HS.SPV | HS.GVA);
      if (fromVirt) hs = (hs & ~HS.SPVP) | HS.SPV | (fromPriv === PRIV_S ? HS.SPVP : 0);
      if (gva) hs |= HS.GVA;
      this.hstatus = hs;
      this.priv = PRIV_S;
      this.virt = 0;
      this.irqDirty = true;
      if (this.nativeTraps & NATIVE_HS) this.stopReason = StopReason.Trap;
      return this.vector(this.stvec, interrupt, cause);
    }
    this.mcause = interrupt ? (cause | 0x80000000) : cause;
    this.mepc = pc;
    this.mtval = tval;
    this.mtval2 = interrupt ? 0 : this.pTval2;
    this.mtinst = 0;
    const s = this.mstatus;
    this.setMstatusRaw((s & ~(MS.MPIE | MS.MPP | MS.MIE)) | ((s & MS.MIE) ? MS.MPIE : 0) | (fromPriv << 11));
    this.mstatush = (this.mstatush & ~(MSH.MPV | MSH.GVA)) | (fromVirt ? MSH.MPV : 0) | (gva ? MSH.GVA : 0);
    this.priv = PRIV_M;
    this.virt = 0;
    this.irqDirty = true;
    if (this.nativeTraps & NATIVE_M) this.stopReason = StopReason.Trap;
    return this.vector(this.mtvec, interrupt, cause);
  }

  private vector(tvec: number, interrupt: boolean, cause: number): number {
    const base = tvec & ~3;
    return (interrupt && (tvec & 3) === 1 ? base + 4 * cause : base) | 0;
  }

  /**
   * The highest-priority pending and enabled interrupt, or -1. Priority: MEI, MSI, MTI, SEI,
   * SSI, STI, VSEI, VSSI, VSTI (privileged spec 3.1.9 and the H extension).
   */
  pendingInterrupt(): number {
    const pending = this.mip & this.mie;
    if (pending === 0) return -1;
    const deleg = this.mideleg | 0x444;
    const mEnabled = this.priv < PRIV_M || (this.mstatus & MS.MIE) !== 0;
    const m = pending & ~deleg;
    const sEnabled = this.virt === 1 || this.priv < PRIV_S || (this.priv === PRIV_S && (this.mstatus & MS.SIE) !== 0);
    const s = pending & deleg & ~this.hideleg;
    const vsEnabled = this.virt === 1 && (this.priv === PRIV_U || (this.vsstatus & MS.SIE) !== 0);
    const vs = pending & this.hideleg;
    const order = [IRQ.MEI, IRQ.MSI, IRQ.MTI, IRQ.SEI, IRQ.SSI, IRQ.STI, IRQ.VSEI, IRQ.VSSI, IRQ.VSTI];
    for (const i of order) {
      const b = 1 << i;
      if ((m & b) && mEnabled) return i;
      if ((s & b) && sEnabled) return i;
      if ((vs & b) && vsEnabled) return i;
    }
    return -1;
  }

  // *** privileged instructions ***

  ecall(): never {
    const cause = this.priv === PRIV_M ? CAUSE.ecallM : this.priv === PRIV_S ? (this.virt ? CAUSE.ecallVS : CAUSE.ecallHS) : CAUSE.ecallU;
    return this.raise(cause, 0);
  }

  breakpoint(pc: number): never { return this.raise(CAUSE.breakpoint, pc); }

  mret(): number {
    if (this.priv !== PRIV_M) this.illegal(0x30200073);
    const s = this.mstatus;
    const mpp = (s >> 11) & 3;
    if (!(mpp !== PRIV_M && (this.mstatush & MSH.MPV))) this.crossing();
    this.setMstatusRaw((s & ~(MS.MIE | MS.MPP | (mpp !== PRIV_M ? MS.MPRV : 0))) | ((s & MS.MPIE) ? MS.MIE : 0) | MS.MPIE);
    this.virt = mpp !== PRIV_M && (this.mstatush & MSH.MPV) ? 1 : 0;
    this.mstatush &= ~MSH.MPV;
    this.priv = mpp;
    this.irqDirty = true;
    this.reservation = -1;
    return this.mepc;
  }

  sret(): number {
    if (this.priv === PRIV_U) (this.virt ? this.virtualInstruction(0x10200073) : this.illegal(0x10200073));
    if (this.virt || !(this.hstatus & HS.SPV)) this.crossing();
    this.reservation = -1;
    this.irqDirty = true;
    if (this.virt) {
      if (this.hstatus & HS.VTSR) this.virtualInstruction(0x10200073);
      const s = this.vsstatus;
      this.priv = (s & MS.SPP) ? PRIV_S : PRIV_U;
      this.vsstatus = (s & ~(MS.SIE | MS.SPP)) | ((s & MS.SPIE) ? MS.SIE : 0) | MS.SPIE;
      return this.vsepc;
    }
    if (this.priv === PRIV_S && (this.mstatus & MS.TSR)) this.illegal(0x10200073);
    const s = this.mstatus;
    this.setMstatusRaw((s & ~(MS.SIE | MS.SPP | ((s & MS.SPP) ? 0 : MS.MPRV))) | ((s & MS.SPIE) ? MS.SIE : 0) | MS.SPIE);
    this.priv = (s & MS.SPP) ? PRIV_S : PRIV_U;
    this.virt = (this.hstatus & HS.SPV) ? 1 : 0;
    this.hstatus &= ~HS.SPV;
    return this.sepc;
  }

  /**
   * dgate rs1 (Xdomain, see domain-gate.ts) with x[rs1] = `id`: a permitted call or return under
   * the fast gate switches here and returns the next pc. Raises: illegal instruction when V=0;
   * virtual instruction (an exit to the KHV) for everything the hart does not perform itself.
   */
  dgate(id: number, rs1: number, pc: number, len: number): number {
    const g = this.domainGates;
    if (!this.virt) this.illegal(dgateWord(rs1));
    if (g === null || !g.fast || !g.permits(this.priv, id)) this.virtualInstruction(dgateWord(rs1));
    return id === DGATE_RETURN ? g.leave(this, false) : g.enter(this, id, (pc + len) | 0, false);
  }

  wfi(): void {
    if (this.virt && (this.priv === PRIV_U || (this.hstatus & HS.VTW))) this.virtualInstruction(0x10500073);
    if (this.priv === PRIV_U || (this.priv < PRIV_M && (this.mstatus & MS.TW))) this.illegal(0x10500073);
    if (this.pendingInterrupt() < 0 && (this.mip & this.mie) === 0) {
      this.stopReason = StopReason.Wfi;
      this.wfiPending = true;
    }
  }
  /** Set by wfi: the loop stops after retiring it. */
  wfiPending = false;

  sfenceVma(): void {
    if (this.virt) {
      if (this.priv === PRIV_U || (this.hstatus & HS.VTVM)) this.virtualInstruction(0x12000073);
    } else if (this.priv === PRIV_U || (this.priv === PRIV_S && (this.mstatus & MS.TVM))) {
      this.illegal(0x12000073);
    }
    this.mmu.flushAll();
  }

  hfence(gvma: boolean): void {
    if (this.virt) this.virtualInstruction(gvma ? 0x62000073 : 0x22000073);
    if (this.priv === PRIV_U || (gvma && this.priv === PRIV_S && (this.mstatus & MS.TVM))) this.illegal(0x62000073);
    this.mmu.flushAll();
  }

  /**
   * pmret (Xhvpm, technique 6): the return from the privileged mode. The mode is the
   * hypervisor's (hypervisor/privileged-mode.ts), so the hart always traps: V=1 raises a
   * virtual-instruction exception (the KHV emulates it, or reflects an illegal instruction to the
   * guest when the vCPU is not in the mode); V=0 raises an illegal-instruction exception.
   */
  pmret(): never {
    return this.virt ? this.virtualInstruction(PMRET_WORD) : this.illegal(PMRET_WORD);
  }

  fenceI(): void {
    this.onCodeWrite?.(-1);
  }

  /** Writes mstatus and flushes translations when SUM, MXR or MPRV change. */
  setMstatus(v: number): void {
    this.setMstatusRaw(v);
    this.irqDirty = true;
  }

  private setMstatusRaw(v: number): void {
    const changed = (this.mstatus ^ v) & (MS.SUM | MS.MXR | MS.MPRV | MS.MPP);
    this.mstatus = v;
    if (changed) this.mmu.flushAll();
  }

  // *** CSRs ***

  /**
   * Executes a CSR instruction: op 0 = write, 1 = set, 2 = clear. Returns the old value.
   * Raises: illegal instruction for an unimplemented CSR, insufficient privilege or a write to a
   * read-only CSR; virtual instruction for an access from V=1 that HS-mode would be allowed.
   */
  csrOp(op: number, addr: number, value: number, write: boolean, read: boolean): number {
    const insn = (addr << 20) | 0x73;
    const level = (addr >> 8) & 3;
    if (this.virt) {
      if (level === 3) this.illegal(insn);
      if (level === 2 || (level === 1 && this.priv === PRIV_U)) {
        if (this.csrs[addr]) this.virtualInstruction(insn);
        this.illegal(insn);
      }
      if (level === 1 && (addr & 0xf00) === 0x100) addr = addr + 0x100; // sstatus -> vsstatus, etc.
    } else if (level > this.priv && !(level === 2 && this.priv === PRIV_S)) {
      this.illegal(insn);
    }
    if (addr === 0x180 && !this.virt && this.priv === PRIV_S && (this.mstatus & MS.TVM)) this.illegal(insn);
    if (addr === 0x280 && this.virt && (this.hstatus & HS.VTVM)) this.virtualInstruction(insn);
    const row = this.csrs[addr];
    if (!row) this.illegal(insn);
    if (write && (addr >> 10) === 3) this.illegal(insn);
    if (addr >= 0xc00 && addr <= 0xc82 && !this.counterAllowed(addr & 31, insn)) this.illegal(insn);
    const old = row.read(this);
    if (write) {
      const v = op === 0 ? value : op === 1 ? old | value : old & ~value;
      row.write(this, v | 0);
      this.irqDirty = true;
    }
    return read ? old | 0 : 0;
  }

  /** Counter access rules of mcounteren / hcounteren / scounteren. */
  private counterAllowed(i: number, insn: number): boolean {
    const bit = 1 << i;
    if (this.priv === PRIV_M) return true;
    if (!(this.mcounteren & bit)) return false;
    if (this.virt && !(this.hcounteren & bit)) this.virtualInstruction(insn);
    if (this.priv === PRIV_U && !(this.scounteren & bit)) {
      if (this.virt) this.virtualInstruction(insn);
      return false;
    }
    return true;
  }

  // *** multiply high ***

  /** High 32 bits of the unsigned 64-bit product, from 16-bit partial products (exact in doubles). */
  mulhu(a: number, b: number): number {
    const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
    const p01 = a0 * b1, p10 = a1 * b0;
    const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
  }
  mulh(a: number, b: number): number { return (this.mulhu(a, b) - (a < 0 ? b : 0) - (b < 0 ? a : 0)) | 0; }
  mulhsu(a: number, b: number): number { return (this.mulhu(a, b) - (a < 0 ? b : 0)) | 0; }

  // *** branches: prediction and cost ***

  linkJal(rd: number, pc: number, len: number): void {
    if (LINK(rd)) this.rsb.push((pc + len) | 0);
  }

  /** Predicts a jalr (RSB for returns, BTB for other indirect jumps), charges a mispredict. */
  linkJalr(rd: number, rs1: number, target: number, pc: number, len: number): number {
    const isReturn = LINK(rs1) && !(LINK(rd) && rd === rs1);
    if (isReturn) {
      if (!this.rsb.pop(target)) {
        this.ctr[Ctr.ReturnMispredicts]++;
        this.ctr[Ctr.BranchMispredicts]++;
        this.ctr[Ctr.Cycles] += COSTS.returnMispredict;
      }
    } else {
      if (LINK(rd) && this.virt === 1 && this.priv === PRIV_S) this.ctr[Ctr.KernelBtbCalls]++;
      if (!this.btb.predict(pc, target)) {
        this.ctr[Ctr.BranchMispredicts]++;
        this.ctr[Ctr.Cycles] += COSTS.indirectMispredict;
        if (this.btb.wrongTarget === this.gadget && this.gadget !== 0) { this.ctr[Ctr.GadgetReaches]++; this.gadgetReachPc = pc; }
      }
    }
    if (LINK(rd)) this.rsb.push((pc + len) | 0);
    return target;
  }

  // *** memory ***

  private mode(): number { return this.priv | (this.virt << 2); }

  /** Effective privilege/virtualization for loads and stores (MPRV in M-mode). */
  private dataPriv(): number {
    if (this.priv === PRIV_M && (this.mstatus & MS.MPRV)) return (this.mstatus >> 11) & 3;
    return this.priv;
  }

  /** Translates a data or fetch access, filling the TLB when the page may be cached. */
  private fill(va: number, acc: number): number {
    let priv = this.priv;
    let virt = this.virt;
    const mprv = acc !== ACC_FETCH && priv === PRIV_M && (this.mstatus & MS.MPRV) !== 0;
    if (mprv) {
      priv = this.dataPriv();
      virt = priv !== PRIV_M && (this.mstatush & MSH.MPV) ? 1 : 0;
    }
    const pa = this.mmu.translate(va, acc, priv, virt, false);
    return this.checkPhys(pa, va, acc, virt, !mprv);
  }

  /** Checks a physical address (RAM/MMIO, poison, gate) and caches RAM pages in the TLB. */
  private checkPhys(pa: number, va: number, acc: number, virt: number, cache: boolean): number {
    const mem = this.mem;
    if (pa >= mem.size) {
      if (acc !== ACC_FETCH && mem.region(pa)) return pa;
      this.raise(ACCESS_FAULT[acc], va, 0, virt === 1);
    }
    if (mem.poison !== null && mem.poison[Math.floor(pa / PAGE_SIZE)] !== 0) {
      this.poisonPa = pa;
      this.raise(CAUSE.hardwareError, va, 0, virt === 1);
    }
    if (acc === ACC_FETCH && pa >= this.gateBase && pa < this.gateEnd) return pa;
    if (cache) {
      const vpn = va >>> 12;
      const t = this.mmu.tlb[acc];
      const tag = (vpn << 3) | this.mode();
      t.tag[vpn & 255] = tag;
      t.page[vpn & 255] = pa - (va & 0xfff);
      if (acc === ACC_STORE) t.fast[vpn & 255] = this.fastTag(tag, pa >>> 12);
    }
    return pa;
  }

  /** Physical address of a data access, through the TLB. */
  private pa(va: number, acc: number): number {
    const vpn = va >>> 12;
    const t = this.mmu.tlb[acc];
    if (t.tag[vpn & 255] === ((vpn << 3) | this.mode())) return t.page[vpn & 255] + (va & 0xfff);
    return this.fill(va, acc);
  }

  load8(va: number): number {
    const pa = this.pa(va, ACC_LOAD);
    return pa < this.mem.size ? this.mem.u8[pa] : this.mmioRead(pa, 1) & 0xff;
  }

  load16(va: number): number {
    if ((va & 0xfff) === 0xfff) return this.load8(va) | (this.load8((va + 1) | 0) << 8);
    const pa = this.pa(va, ACC_LOAD);
    return pa < this.mem.size ? this.mem.read16(pa) : this.mmioRead(pa, 2) & 0xffff;
  }

  load32(va: number): number {
    if ((va & 0xfff) > 0xffc) {
      return this.load8(va) | (this.load8((va + 1) | 0) << 8) | (this.load8((va + 2) | 0) << 16) | (this.load8((va + 3) | 0) << 24);
    }
    const pa = this.pa(va, ACC_LOAD);
    return pa < this.mem.size ? this.mem.read32(pa) : this.mmioRead(pa, 4);
  }

  store8(va: number, v: number): void {
    const pa = this.pa(va, ACC_STORE);
    if (pa < this.mem.size) { this.mem.u8[pa] = v; this.stored(pa); } else this.mmioWrite(pa, 1, v & 0xff);
  }

  store16(va: number, v: number): void {
    if ((va & 0xfff) === 0xfff) {
      // Translate both pages before writing either, so a fault leaves memory unchanged.
      this.pa(va, ACC_STORE); this.pa((va + 1) | 0, ACC_STORE);
      this.store8(va, v); this.store8((va + 1) | 0, v >> 8);
      return;
    }
    const pa = this.pa(va, ACC_STORE);
    if (pa < this.mem.size) { this.mem.write16(pa, v); this.stored(pa); } else this.mmioWrite(pa, 2, v & 0xffff);
  }

  store32(va: number, v: number): void {
    if ((va & 0xfff) > 0xffc) {
      this.pa(va, ACC_STORE); this.pa((va + 3) | 0, ACC_STORE);
      for (let i = 0; i < 4; i++) this.store8((va + i) | 0, v >> (8 * i));
      return;
    }
    const pa = this.pa(va, ACC_STORE);
    if (pa < this.mem.size) { this.mem.write32(pa, v); this.stored(pa); } else this.mmioWrite(pa, 4, v);
  }

  /** Store bookkeeping: breaks a matching LR reservation; notifies code-page watchers. */
  private stored(pa: number): void {
    if (this.reservation >= 0 && (pa & ~3) === this.reservation) { this.reservation = -1; this.refreshFastStores(); }
    if (this.codePages !== null && this.codePages[pa >>> 12] !== 0) this.onCodeWrite?.(pa);
  }

  /** The reservation is gone: translated code may store without bookkeeping again, except to code frames. */
  private refreshFastStores(): void {
    const t = this.mmu.tlb[ACC_STORE];
    for (let i = 0; i < 256; i++) t.fast[i] = this.fastTag(t.tag[i], t.page[i] >>> 12);
  }

  /** The store TLB's `fast` tag for an entry with tag `tag` mapping frame `frame` (see Tlb.fast). */
  private fastTag(tag: number, frame: number): number {
    return this.reservation < 0 && (this.codePages === null || this.codePages[frame] === 0) ? tag : -1;
  }

  /**
   * The store watch: per-frame "holds translated code" marks (owned by a block translator), or
   * null. A store into a marked frame calls onCodeWrite, and the store TLB's `fast` tags exclude
   * marked frames (see fastTag), so translated code's inline stores never write one.
   */
  codePages: Uint8Array | null = null;

  private mmioRead(pa: number, size: number): number {
    const r = this.mem.region(pa)!;
    return r.device.read(pa - r.base, size) | 0;
  }

  private mmioWrite(pa: number, size: number, v: number): void {
    const r = this.mem.region(pa)!;
    r.device.write(pa - r.base, size, v);
  }

  /** Physical address for an atomic: aligned, RAM only, store permission. */
  private atomicPa(va: number): number {
    if (va & 3) this.raise(CAUSE.storeMisaligned, va);
    const pa = this.pa(va, ACC_STORE);
    if (pa >= this.mem.size) this.raise(CAUSE.storeAccess, va, 0, this.virt === 1);
    return pa;
  }

  loadReserved(va: number): number {
    if (va & 3) this.raise(CAUSE.loadMisaligned, va);
    const pa = this.pa(va, ACC_LOAD);
    if (pa >= this.mem.size) this.raise(CAUSE.loadAccess, va, 0, this.virt === 1);
    this.reservation = pa;
    this.reservationVa = va;
    this.mmu.tlb[ACC_STORE].fast.fill(-1);
    return this.mem.read32(pa);
  }

  /**
   * SC.W. Like QEMU, a store-conditional whose address differs from the reserved one fails
   * (returns 1) before any alignment or translation check.
   */
  storeConditional(va: number, v: number): number {
    if (this.reservation < 0 || va !== this.reservationVa) {
      this.reservation = -1;
      return 1;
    }
    const pa = this.atomicPa(va);
    const ok = this.reservation === pa;
    this.reservation = -1;
    this.refreshFastStores();
    if (!ok) return 1;
    this.mem.write32(pa, v);
    this.stored(pa);
    return 0;
  }

  amo(op: number, va: number, v: number): number {
    const pa = this.atomicPa(va);
    const old = this.mem.read32(pa);
    let r: number;
    switch (op) {
      case 0: r = v; break;
      case 1: r = (old + v) | 0; break;
      case 2: r = old ^ v; break;
      case 3: r = old & v; break;
      case 4: r = old | v; break;
      case 5: r = old < v ? old : v; break;
      case 6: r = old > v ? old : v; break;
      case 7: r = (old >>> 0) < (v >>> 0) ? old : v; break;
      default: r = (old >>> 0) > (v >>> 0) ? old : v; break;
    }
    this.mem.write32(pa, r);
    this.stored(pa);
    return old;
  }

  /** Checks that HLV/HSV may execute here (HS/M, or U with hstatus.HU). */
  private checkHypervisorAccess(insn: number): void {
    if (this.virt) this.virtualInstruction(insn);
    if (this.priv === PRIV_U && !(this.hstatus & HS.HU)) this.illegal(insn);
  }

  /** HLV/HLVX: a load as if from VS/VU mode (privilege hstatus.SPVP) with two-stage translation. */
  hlv(va: number, size: number, hlvx: boolean): number {
    this.checkHypervisorAccess(0x60000073);
    const priv = (this.hstatus & HS.SPVP) ? PRIV_S : PRIV_U;
    let v = 0;
    for (let i = 0; i < size; i++) {
      const a = (va + i) | 0;
      const pa = this.checkPhys(this.mmu.translate(a, ACC_LOAD, priv, 1, hlvx), a, ACC_LOAD, 1, false);
      v |= (pa < this.mem.size ? this.mem.u8[pa] : this.mmioRead(pa, 1) & 0xff) << (8 * i);
    }
    return v;
  }

  /** HSV: a store as if from VS/VU mode. Translates every byte before writing any. */
  hsv(va: number, v: number, size: number): void {
    this.checkHypervisorAccess(0x62000073);
    const priv = (this.hstatus & HS.SPVP) ? PRIV_S : PRIV_U;
    const pas: number[] = [];
    for (let i = 0; i < size; i++) {
      const a = (va + i) | 0;
      pas.push(this.checkPhys(this.mmu.translate(a, ACC_STORE, priv, 1, false), a, ACC_STORE, 1, false));
    }
    pas.forEach((pa, i) => {
      if (pa < this.mem.size) { this.mem.u8[pa] = v >> (8 * i); this.stored(pa); } else this.mmioWrite(pa, 1, (v >> (8 * i)) & 0xff);
    });
  }

  /**
   * Fetches the raw instruction at pc (isa/fetch.ts: a halfword when compressed, else the 32-bit
   * word). Raises fetch faults; throws STOP at a gate.
   */
  fetch(pc: number): number {
    if (pc & 1) this.raise(CAUSE.fetchMisaligned, pc);
    return FETCH(this, pc);
  }

  /**
   * Physical address of the instruction at virtual `pc`, through the fetch TLB (charging a walk
   * on a miss, exactly as the interpreter's fetch does). Raises fetch faults; throws STOP when pc
   * lies in the gate range.
   */
  fetchPa(pc: number): number {
    if (pc & 1) this.raise(CAUSE.fetchMisaligned, pc);
    const vpn = pc >>> 12;
    const t = this.mmu.tlb[ACC_FETCH];
    if (t.tag[vpn & 255] === ((vpn << 3) | this.mode())) return t.page[vpn & 255] + (pc & 0xfff);
    const pa = this.fill(pc, ACC_FETCH);
    if (pa >= this.gateBase && pa < this.gateEnd) {
      this.stopReason = StopReason.Gate;
      throw STOP;
    }
    return pa;
  }
}
