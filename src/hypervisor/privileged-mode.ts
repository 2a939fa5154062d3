/**
 * Technique 6 (US10678909B2): a privileged CPU mode on a multi-vCPU VM with a single, global
 * view of memory. The KHV owns one of these per VM.
 *
 * The mode is SMM-like: a vCPU enters it on the privileged-mode interrupt (from the doorbell
 * device register, an SBI.PMODE hypercall, or the service's REST API), runs the handler held in
 * the privileged-mode region (privileged-handler.ts) and leaves it with `pmret`, which traps to
 * the KHV (a virtual-instruction exit) like RSM in a KVM guest.
 *
 * Two views of memory, chosen by the technique's `enabled` setting:
 * - global (the patent; technique on): ONE G-stage table for the VM. Entry protocol for vCPU A:
 *     1. if a vCPU is in the mode, queue A's request (one pending request per vCPU, FIFO);
 *     2. map the region into the VM's G-stage table;
 *     3. signal every other vCPU to enter the stop state: halted, still accepting the
 *        privileged-mode interrupt (a request for a stopped vCPU is queued);
 *     4. wait until all have stopped (each stops at its current instruction boundary: the worker
 *        runs one vCPU at a time, so every other vCPU is between two instructions); A's clock
 *        advances by the rendezvous cost of the cost table (stop-the-world IPI rendezvous: base +
 *        per extra vCPU) or to the latest clock of the others, whichever is later;
 *     5. enter.
 *   On pmret: unmap the region, flush every vCPU's TLB and the translated code of the region,
 *   release the others (a stopped vCPU's clock moves to the release time; the difference is its
 *   stopped time), then serve queued requests one at a time.
 *   Invariant: while the region is mapped, no vCPU but the one in the mode runs.
 * - per-vcpu (the baseline, as KVM gives each vCPU an SMM address space; technique off): each
 *   vCPU that enters gets a G-stage table of its own (a copy of the VM's root plus a leaf table
 *   mapping the region) and switches to it; the others keep running on the VM's table, which
 *   never maps the region. No rendezvous, but memory for the extra tables and a G-stage root
 *   switch (COSTS.domainSwitchExit) plus a TLB flush on every entry and exit.
 *
 * Outside the mode, the region is mapped in no table a running vCPU uses: every access is a
 * G-stage fault, which the KHV reports here (regionFault) and completes as an open-bus access
 * (reads all ones, writes dropped), as x86 does for SMRAM outside SMM.
 */
import type { Hart } from '../cpu/hart.js';
import { PRIV_S } from '../cpu/hart-core.js';
import { MS } from '../cpu/csr.js';
import { PTE } from '../mmu/mmu.js';
import { PAGE_SIZE, PhysMem } from '../mmu/phys.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import { FrameState, HostMemory } from './host-memory.js';
import { PM_REGION_BASE, PM_REGION_PAGES } from './platform.js';
import { DATA, DATA_GPA, PM_SOURCE, PmSource, SAVE, SAVE_AREAS, handlerBytes, saveArea } from './privileged-handler.js';

export type { PmSource } from './privileged-handler.js';

export type PmView = 'global' | 'per-vcpu';
export type PmPhase = 'queued' | 'coalesced' | 'dropped' | 'rendezvous' | 'entered' | 'exited' | 'region-fault';

/** What the VM reports as `vm.privileged-mode` events. */
export interface PmEvent {
  vcpu: number;
  phase: PmPhase;
  source?: PmSource;
  /** rendezvous: its latency in cycles; exited: cycles spent in the mode. */
  cycles?: number;
  /** region-fault: the guest-physical address accessed. */
  gpa?: number;
  virtualTimeNs: number;
}

/** The vCPU as this module needs it (khv.ts's Vcpu). */
export interface PmVcpu {
  readonly id: number;
  readonly hart: Hart;
  halted: boolean;
}

export interface PmStats {
  view: PmView;
  entries: number;
  entriesBySource: Record<PmSource, number>;
  /** Requests that waited in the queue; coalesced: a request for a vCPU already pending or in the mode. */
  queued: number;
  coalesced: number;
  /** Requests refused because the queue was full (maxQueued). */
  dropped: number;
  /**
   * Rendezvous (global view only): count, cycles (= virtual ns at 1 GHz) from the request to the
   * entry, the longest and the last. Of the total, `protocolCycles` is the cost table's IPI
   * rendezvous and `skewCycles` the wait for vCPUs whose clocks were ahead (they ran further in
   * their quantum, as a descheduled vCPU thread delays a real rendezvous).
   */
  rendezvous: { count: number; totalCycles: number; maxCycles: number; lastCycles: number; totalNs: number; protocolCycles: number; skewCycles: number };
  /** Cycles charged for G-stage root switches (per-vcpu view: COSTS.domainSwitchExit on entry and exit). */
  switchCycles: number;
  /** Cycles each vCPU spent in the stop state. */
  stoppedCycles: number[];
  /** Cycles spent in the mode, over all entries. */
  inModeCycles: number;
  /** Accesses to the region outside the mode (each a G-stage fault, reported), in total and per vCPU. */
  regionFaults: number;
  regionFaultsByVcpu: number[];
  /** The vCPUs in the mode now. */
  inMode: number[];
  /** Host frames holding G-stage tables for the mode: the region's leaf table (global) or each vCPU's root + leaf (per-vcpu). */
  viewFrames: number;
  viewBytes: number;
  /** G-stage root switches (per-vcpu view). */
  viewSwitches: number;
}

/** Per-vCPU state the KHV keeps (not guest-visible) while a vCPU is in the mode. */
interface Saved { priv: number; vsstatus: number; vsatp: number; halted: boolean; since: number }

const REGION_L1 = PM_REGION_BASE >>> 22;
const G_LEAF = PTE.V | PTE.R | PTE.W | PTE.X | PTE.U | PTE.A | PTE.D;

export interface PrivilegedModeSettings {
  view: PmView;
  /** Requests that may wait at once (beyond: dropped). */
  maxQueued: number;
}

export interface PrivilegedModeOptions {
  /** The live settings (the technique's), read at every request: a view change applies when no vCPU is in the mode. */
  settings: () => PrivilegedModeSettings;
  /** Seeds the sealed key. */
  seed: number;
}

export class PrivilegedMode {
  /** Told about every phase (the VM turns them into `vm.privileged-mode` events). */
  onEvent: ((e: PmEvent) => void) | null = null;
  /** Flushes every vCPU's TLB (set by the KHV's owner). */
  flushAll: () => void = () => {};
  /** Drops translated code of the frame holding `hpa` (set when a translating engine runs). */
  invalidateCode: (hpa: number) => void = () => {};

  view: PmView;
  private readonly settings: () => PrivilegedModeSettings;
  private readonly seed: number;
  /** The region's frames and the leaf table of the VM's G-stage table that maps it, made at the first entry (-1 before). */
  private codeFrame = -1;
  private dataFrame = -1;
  private globalLeaf = -1;
  private readonly stopped: Uint8Array;
  private readonly stopSince: Float64Array;
  private readonly pending: Uint8Array;
  private readonly queue: Array<{ vcpu: number; source: PmSource }> = [];
  private readonly saved: Array<Saved | null>;
  /** Per-vcpu view: each vCPU's own root (4 frames) and region leaf table, made on its first entry. */
  private readonly own: Array<{ root: number; leaf: number } | null>;
  /** Requests made while the KHV handles an exit, served once the vCPU is back in the guest. */
  private readonly deferred: Array<{ vcpu: number; source: PmSource }> = [];
  /** The KHV is handling an exit (between beginExit and endExit): requests go to `deferred`. */
  private deferring = false;
  private readonly stats: PmStats;

  /** Raises: OutOfHostMemory when the host cannot hold the region. */
  constructor(private readonly vcpus: readonly PmVcpu[], private readonly host: HostMemory, private readonly mem: PhysMem,
    private readonly owner: number, private readonly hgatp: number, opts: PrivilegedModeOptions) {
    this.settings = opts.settings;
    this.seed = opts.seed;
    this.view = opts.settings().view;
    const n = vcpus.length;
    if (n > SAVE_AREAS) throw new RangeError(`the privileged-mode region has save areas for ${SAVE_AREAS} vCPUs, not ${n}`);
    this.stopped = new Uint8Array(n);
    this.stopSince = new Float64Array(n);
    this.pending = new Uint8Array(n);
    this.saved = vcpus.map(() => null);
    this.own = vcpus.map(() => null);
    this.stats = {
      view: this.view, entries: 0, entriesBySource: { hypercall: 0, device: 0, external: 0 }, queued: 0, coalesced: 0, dropped: 0,
      rendezvous: { count: 0, totalCycles: 0, maxCycles: 0, lastCycles: 0, totalNs: 0, protocolCycles: 0, skewCycles: 0 },
      switchCycles: 0,
      stoppedCycles: vcpus.map(() => 0), inModeCycles: 0, regionFaults: 0, regionFaultsByVcpu: vcpus.map(() => 0),
      inMode: [], viewFrames: 0, viewBytes: 0, viewSwitches: 0,
    };
  }

  /**
   * Makes the region on first use: the handler's code, the data page with the sealed key (from
   * the VM seed), and the region's leaf table, which hangs in the VM's root for good (its PTEs
   * are set only while the region is mapped). Raises: OutOfHostMemory.
   */
  private ensureRegion(): void {
    if (this.codeFrame >= 0) return;
    const { host, owner, mem } = this;
    this.codeFrame = host.alloc(owner, FrameState.Hypervisor);
    this.dataFrame = host.alloc(owner, FrameState.Hypervisor);
    this.globalLeaf = host.alloc(owner, FrameState.Hypervisor);
    mem.u8.set(handlerBytes(), this.codeFrame * PAGE_SIZE);
    let k = (this.seed ^ 0x5eed6) | 0;
    for (let i = 0; i < 4; i++) {
      k = (Math.imul(k ^ (k >>> 16), 0x45d9f3b) + 0x6b43a9b5) | 0;
      mem.write32(this.dataFrame * PAGE_SIZE + DATA.KEY + 4 * i, k);
    }
    mem.write32(this.rootPa(this.hgatp) + 4 * REGION_L1, (this.globalLeaf << 10) | PTE.V);
    this.stats.viewFrames += 1;
    this.stats.viewBytes += PAGE_SIZE;
  }

  /** True when `gpa` lies in the privileged-mode region. */
  static inRegion(gpa: number): boolean {
    return gpa >= PM_REGION_BASE && gpa < PM_REGION_BASE + PM_REGION_PAGES * PAGE_SIZE;
  }

  /** vCPU `id` is in the stop state: the scheduler must not run it. */
  isStopped(id: number): boolean { return this.stopped[id] !== 0; }

  /** A vCPU is in the mode (and, in the global view, the others are stopped). */
  busy(): boolean { return this.saved.some((s) => s !== null); }

  /** vCPU `id` is in the privileged mode. */
  inMode(id: number): boolean { return this.saved[id] !== null; }

  /** 1 + the vCPU in the mode (the lowest, in the per-vcpu view), or 0: the doorbell register's read value. */
  doorbellValue(): number {
    const i = this.saved.findIndex((s) => s !== null);
    return i + 1;
  }

  /**
   * The privileged-mode interrupt for vCPU `target` from `source`. Enters at once when allowed
   * (the target is at an instruction boundary: the caller runs between instructions), otherwise
   * queues it. While the KHV handles an exit (beginExit), the request waits until it ends.
   * Returns what became of it: 'entered', 'queued', 'coalesced' (already pending or in the mode),
   * 'dropped' (the queue is full) or 'deferred' (during an exit).
   * Raises: RangeError for a vCPU that does not exist.
   */
  request(target: number, source: PmSource): PmPhase | 'deferred' {
    if (!Number.isInteger(target) || target < 0 || target >= this.vcpus.length) throw new RangeError(`no vCPU ${target}`);
    if (this.deferring) { this.deferred.push({ vcpu: target, source }); return 'deferred'; }
    if (this.pending[target] !== 0 || this.inMode(target)) { this.stats.coalesced++; this.event(target, 'coalesced', { source }); return 'coalesced'; }
    if (this.mustWait(target)) {
      if (this.queue.length >= this.settings().maxQueued) { this.stats.dropped++; this.event(target, 'dropped', { source }); return 'dropped'; }
      this.pending[target] = 1;
      this.queue.push({ vcpu: target, source });
      this.stats.queued++;
      this.event(target, 'queued', { source });
      return 'queued';
    }
    this.enter(target, source);
    return 'entered';
  }

  /** The KHV is handling an exit: requests made now are served by `endExit`, after the vCPU re-entered the guest. */
  beginExit(): void { this.deferring = true; }

  /** The exit is over (`handled`: the vCPU is back in the guest; otherwise the VM is failing and the requests are dropped). */
  endExit(handled: boolean): void {
    this.deferring = false;
    if (this.deferred.length === 0) return;
    const d = this.deferred.splice(0);
    if (handled) for (const r of d) this.request(r.vcpu, r.source);
  }

  private mustWait(target: number): boolean {
    if (this.view === 'per-vcpu') return false;
    return this.saved.some((s) => s !== null) || this.stopped[target] !== 0;
  }

  private enter(id: number, source: PmSource): void {
    this.applyView();
    this.ensureRegion();
    const v = this.vcpus[id];
    const h = v.hart;
    const t0 = h.ctr[Ctr.Cycles];
    if (this.view === 'global') {
      this.mapRegion(this.globalLeaf);
      const others = this.vcpus.length - 1;
      const protocol = others > 0 ? COSTS.rendezvousBase + COSTS.rendezvousPerVcpu * others : 0;
      let t = t0 + protocol;
      for (const o of this.vcpus) {
        if (o.id === id) continue;
        const c = o.hart.ctr[Ctr.Cycles];
        this.stopped[o.id] = 1;
        this.stopSince[o.id] = Math.max(c, t0);
        if (c > t) t = c;
      }
      h.ctr[Ctr.Cycles] = t;
      const r = this.stats.rendezvous;
      r.count++; r.totalCycles += t - t0; r.totalNs += t - t0; r.protocolCycles += protocol; r.skewCycles += t - t0 - protocol; r.lastCycles = t - t0; r.maxCycles = Math.max(r.maxCycles, t - t0);
      this.event(id, 'rendezvous', { source, cycles: t - t0 });
    } else {
      h.hgatp = this.ownView(id);
      this.chargeSwitch(h);
    }
    // The state save, as SMM saves into SMRAM: registers and pc in the guest-visible save area.
    const save = this.saveHpa(id);
    for (let i = 0; i < 32; i++) this.mem.write32(save + 4 * i, h.x[i]);
    this.mem.write32(save + SAVE.PC, h.pc);
    this.saved[id] = { priv: h.priv, vsstatus: h.vsstatus, vsatp: h.vsatp, halted: v.halted, since: h.ctr[Ctr.Cycles] };
    h.priv = PRIV_S;
    h.vsstatus &= ~MS.SIE;
    h.vsatp = 0;
    h.reservation = -1;
    h.x[10] = saveArea(id); h.x[11] = id; h.x[12] = PM_SOURCE[source];
    h.pc = PM_REGION_BASE;
    h.irqDirty = true;
    h.mmu.flushAll();
    v.halted = false;
    this.stats.entries++;
    this.stats.entriesBySource[source]++;
    this.event(id, 'entered', { source });
  }

  /**
   * pmret from vCPU `id` trapped to the KHV. Returns false when the vCPU is not in the mode (the
   * KHV then reflects an illegal instruction). Otherwise restores the saved state for the KHV's
   * return to the guest (registers and, through sepc/SPP, pc and privilege), unmaps the region,
   * flushes, releases the other vCPUs and serves the queue (after the exit, see beginExit).
   * Precondition: the hart is in HS mode, trapped from V=1.
   */
  leave(id: number): boolean {
    const s = this.saved[id];
    if (!s) return false;
    const v = this.vcpus[id];
    const h = v.hart;
    const save = this.saveHpa(id);
    for (let i = 1; i < 32; i++) h.x[i] = this.mem.read32(save + 4 * i);
    h.sepc = this.mem.read32(save + SAVE.PC);
    h.mstatus = (h.mstatus & ~MS.SPP) | (s.priv === PRIV_S ? MS.SPP : 0);
    h.vsstatus = s.vsstatus;
    h.vsatp = s.vsatp;
    v.halted = s.halted;
    this.saved[id] = null;
    const t = h.ctr[Ctr.Cycles];
    this.stats.inModeCycles += t - s.since;
    if (this.view === 'global') {
      this.unmapRegion(this.globalLeaf);
      this.flushAll();
      for (const o of this.vcpus) {
        if (!this.stopped[o.id]) continue;
        const c = o.hart.ctr[Ctr.Cycles];
        if (t > this.stopSince[o.id]) this.stats.stoppedCycles[o.id] += t - this.stopSince[o.id];
        if (t > c) o.hart.ctr[Ctr.Cycles] = t;
        this.stopped[o.id] = 0;
      }
    } else {
      h.hgatp = this.hgatp;
      this.chargeSwitch(h);
      h.mmu.flushAll();
    }
    this.invalidateCode(this.codeFrame * PAGE_SIZE);
    this.event(id, 'exited', { cycles: t - s.since });
    // Queued requests, one at a time: the first enters (after this exit); the rest wait for it.
    const next = this.queue.shift();
    if (next) {
      this.pending[next.vcpu] = 0;
      if (this.deferring) this.deferred.unshift(next); else this.request(next.vcpu, next.source);
    }
    this.applyView();
    return true;
  }

  /** vCPU `id` accessed the region at `gpa` outside the mode (a G-stage fault): counted and reported. */
  regionFault(id: number, gpa: number): void {
    this.stats.regionFaults++;
    this.stats.regionFaultsByVcpu[id]++;
    this.event(id, 'region-fault', { gpa });
  }

  /** The region is mapped in the VM's (global) G-stage table now. */
  regionMapped(): boolean {
    return this.globalLeaf >= 0 && this.mem.read32(this.globalLeaf * PAGE_SIZE + 4 * ((PM_REGION_BASE >>> 12) & 0x3ff)) !== 0;
  }

  /** The protected counter (for reports; only the handler writes it). */
  counter(): number { return this.dataFrame < 0 ? 0 : this.mem.read32(this.dataFrame * PAGE_SIZE + DATA.COUNTER) >>> 0; }

  /** Asynchronous entries the handler served. */
  servedInterrupts(): number { return this.dataFrame < 0 ? 0 : this.mem.read32(this.dataFrame * PAGE_SIZE + DATA.INTERRUPTS) >>> 0; }

  /** The sealed key (for tests: the guest can read it only in the mode). */
  sealedKey(): number[] {
    this.ensureRegion();
    return [0, 1, 2, 3].map((i) => this.mem.read32(this.dataFrame * PAGE_SIZE + DATA.KEY + 4 * i));
  }

  counters(): PmStats {
    const s = structuredClone(this.stats);
    s.view = this.view;
    s.inMode = this.vcpus.filter((v) => this.inMode(v.id)).map((v) => v.id);
    return s;
  }

  /** Takes the configured view when no vCPU is in the mode. */
  private applyView(): void {
    if (this.saved.some((s) => s !== null)) return;
    this.view = this.settings().view;
  }

  /** A G-stage root switch from the KHV (per-vcpu view), charged as the cost table's domain switch through an exit. */
  private chargeSwitch(h: Hart): void {
    h.ctr[Ctr.Cycles] += COSTS.domainSwitchExit;
    this.stats.viewSwitches++;
    this.stats.switchCycles += COSTS.domainSwitchExit;
  }

  /** Host address of vCPU `id`'s save area. */
  private saveHpa(id: number): number { return this.dataFrame * PAGE_SIZE + (saveArea(id) - DATA_GPA); }

  private rootPa(hgatp: number): number { return (hgatp & 0x3fffff) * PAGE_SIZE; }

  private mapRegion(leaf: number): void {
    this.mem.write32(leaf * PAGE_SIZE + 4 * ((PM_REGION_BASE >>> 12) & 0x3ff), (this.codeFrame << 10) | G_LEAF);
    this.mem.write32(leaf * PAGE_SIZE + 4 * (((PM_REGION_BASE >>> 12) + 1) & 0x3ff), (this.dataFrame << 10) | G_LEAF);
  }

  private unmapRegion(leaf: number): void {
    for (let i = 0; i < PM_REGION_PAGES; i++) this.mem.write32(leaf * PAGE_SIZE + 4 * (((PM_REGION_BASE >>> 12) + i) & 0x3ff), 0);
  }

  /**
   * The per-vcpu view of vCPU `id`: its own root (a copy of the VM's, refreshed at each entry so
   * RAM backed since is seen) whose region entry points at its own leaf table mapping the region.
   * Returns its hgatp. Raises: OutOfHostMemory on the first entry when the host is full.
   */
  private ownView(id: number): number {
    let o = this.own[id];
    if (!o) {
      o = { root: this.host.allocAligned(this.owner, 4), leaf: this.host.alloc(this.owner, FrameState.Hypervisor) };
      this.own[id] = o;
      this.mapRegion(o.leaf);
      this.stats.viewFrames += 5;
      this.stats.viewBytes += 5 * PAGE_SIZE;
    }
    const from = this.rootPa(this.hgatp), to = o.root * PAGE_SIZE;
    this.mem.u8.copyWithin(to, from, from + 4 * PAGE_SIZE);
    this.mem.write32(to + 4 * REGION_L1, (o.leaf << 10) | PTE.V);
    return (0x80000000 | o.root) | 0;
  }

  /**
   * A G-stage fault at `gpa`, RAM that is backed in the VM's table, from a vCPU on its own view:
   * when the view's root copy predates the leaf table that maps it, refreshes the copy and returns
   * true (the KHV retries). Otherwise (e.g. a dirty-log write protection) returns false.
   */
  refreshView(id: number, gpa: number): boolean {
    if (this.view !== 'per-vcpu' || !this.inMode(id)) return false;
    const o = this.own[id]!, l1 = 4 * Math.floor(gpa / (4 * 1024 * 1024));
    if (this.mem.read32(o.root * PAGE_SIZE + l1) === this.mem.read32(this.rootPa(this.hgatp) + l1)) return false;
    this.vcpus[id].hart.hgatp = this.ownView(id);
    this.vcpus[id].hart.mmu.flushAll();
    return true;
  }

  private event(vcpu: number, phase: PmPhase, extra: Partial<PmEvent>): void {
    if (!this.onEvent) return;
    this.onEvent({ vcpu, phase, ...extra, virtualTimeNs: this.vcpus[vcpu].hart.ctr[Ctr.Cycles] });
  }
}
