/**
 * The kernel-level hypervisor of one VM: configures its vCPUs for V=1 execution, owns the G-stage
 * table, and handles every trap that leaves the guest (a VM exit): demand allocation of guest
 * RAM, dirty logging, memory errors and idle itself; MMIO and SBI hypercalls go to the UHV's
 * device models. Each exit is counted by reason and charged per DESIGN.md section 6; unsupported
 * exits raise VmFault.
 *
 * Exit path (baseline): guest -> KHV (trap into HS, hart.run returns StopReason.Trap) -> [UHV ->
 * KHV] -> guest (sret with hstatus.SPV = 1). With technique 5 on, an exit the exit-routing map
 * sends to the UHV is guest -> UHV -> guest (exit-routing.ts). `edges` counts each arrow.
 */
import { Hart, NATIVE_HS, NATIVE_M, PRIV_S, PRIV_U, TRAP } from '../cpu/hart.js';
import { PMRET_WORD } from '../cpu/hart-core.js';
import { MS } from '../cpu/csr.js';
import { IRQ } from '../cpu/csr.js';
import { CAUSE } from '../mmu/mmu.js';
import { PAGE_SIZE, PhysMem, pageBase } from '../mmu/phys.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import { INSNS } from '../isa/table.js';
import { decode } from '../isa/decode.js';
import { FACTS } from '../isa/facts.js';
import { fetchInsn, insnLen, insnWord } from '../isa/fetch.js';
import { rd as fieldRd, rs2 as fieldRs2 } from '../isa/fields.js';
import { GuestMemoryError, VmFault } from './exits.js';
import { deviceRoute, EDGE, EDGE_NAMES, ROUTE, routingBits } from './exit-routing.js';
import { EXIT_CODE, VmControl } from './vm-control.js';
import { fieldAccessBits } from './vmcs-fields.js';
import { GStage } from './gstage.js';
import { HostMemory } from './host-memory.js';
import { DEVICE_BASE, DEVICE_SIZE, PM_DOORBELL_OFFSET, RAM_BASE, SBI, SBI_ERR_ALREADY_STARTED } from './platform.js';
import { PrivilegedMode } from './privileged-mode.js';
import { GuestRam, Uhv } from './uhv.js';
import type { ExitSink, ProtectionDomains } from './domains.js';

/** Exceptions the guest kernel handles itself (hedeleg): misaligned, access faults, illegal, breakpoint, ecall from VU, page faults. */
const HEDELEG = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 12) | (1 << 13) | (1 << 15);
/** Everything delegable goes from M to HS: the KHV is the machine's HS-mode software. */
const MEDELEG = 0xf0b7ff;
const VS_IRQS = (1 << IRQ.VSSI) | (1 << IRQ.VSTI) | (1 << IRQ.VSEI);


/** One virtual CPU: its hart plus the KHV's per-vCPU state. */
export class Vcpu {
  /** Virtual time (cycles) at which the guest asked for a timer interrupt; Infinity = none. */
  deadline = Infinity;
  /** Halted in wfi until an interrupt. */
  halted = false;
  constructor(readonly id: number, readonly hart: Hart) {}
}

/** How an exit travels (Khv.exit). */
const PATH_KHV = 0, PATH_UHV_VIA_KHV = 1, PATH_UHV_DIRECT = 2;

/** Technique 5 as the KHV applies it: on/off and its two maps (catalogue setting `uhvDirectTransitions`). */
export interface UhvDirectSetting { enabled: boolean; fieldAccess?: Readonly<Record<string, string>>; exitRouting?: Readonly<Record<string, string>> }

export class Khv implements GuestRam {
  readonly gstage: GStage;
  readonly exits = new Map<string, number>();
  /** Cycles charged for exits, by reason (exit cost plus the UHV's field accesses). */
  readonly exitCycles = new Map<string, number>();
  /** Transitions by edge (exit-routing.ts EDGE). */
  readonly edges = new Float64Array(EDGE_NAMES.length);
  /** The access API the UHV's device models use; its maps are set by the KHV only. */
  readonly control: VmControl;
  /** Exit-routing map bits by routing key (1 = straight to the UHV); used while `control.direct`. */
  private routing: Uint8Array;
  /**
   * Set by the VM: the guest kernel's memory-failure handler for an access from vCPU `v` to the
   * corrupted page `gpa` (guest virtual `va`, at `pc`, from user mode or not). It leaves the vCPU
   * in the state to resume (another process, idle, or power-off); it may raise VmFault.
   */
  onMemoryFailure: ((v: Vcpu, gpa: number, va: number, pc: number, fromUser: boolean) => void) | null = null;
  /** Flushes the TLBs of every vCPU (after a G-stage change that others may have cached). */
  flushAll: () => void = () => {};

  /** Technique 6's privileged mode and its rendezvous (set by the VM, which owns the vCPUs). */
  pm: PrivilegedMode | null = null;

  /** The hart whose exit is being handled (cycles of native work are charged to it). */
  private current: Hart | null = null;
  /** Trap handlers by scause (HS-mode traps out of the guest; true: the vCPU was resumed already); absent: the 'unknown' exit. */
  private readonly byCause: Array<((v: Vcpu) => boolean) | undefined> = [];

  /** Raises: OutOfHostMemory when the host cannot hold the G-stage root. */
  constructor(readonly host: HostMemory, readonly mem: PhysMem, readonly owner: number, ramBytes: number, readonly uhv: (ram: GuestRam) => Uhv) {
    this.gstage = new GStage(host, mem, owner, ramBytes);
    this.control = new VmControl(fieldAccessBits(undefined), this.edges);
    this.routing = routingBits(undefined);
    this.device = uhv(this);
    const guestPage = (v: Vcpu) => this.guestPageFault(v);
    this.byCause[CAUSE.fetchGuestPage] = guestPage;
    this.byCause[CAUSE.loadGuestPage] = guestPage;
    this.byCause[CAUSE.storeGuestPage] = guestPage;
    this.byCause[CAUSE.ecallVS] = (v) => (this.pm !== null && v.hart.x[17] === SBI.PMODE ? this.pmodeHypercall(v) : this.uhvExit(v, 'hypercall', EXIT_CODE.Hypercall, ROUTE.hypercall));
    this.byCause[CAUSE.virtualInstruction] = (v) => {
      const h = v.hart;
      if ((h.stval >>> 0) === PMRET_WORD && this.pm) {
        this.exit(h, 'privileged-mode');
        // Outside the mode pmret is an illegal instruction for the guest (as RSM outside SMM is #UD).
        if (!this.pm.leave(v.id)) this.injectVs(h, CAUSE.illegal, PMRET_WORD);
        return false;
      }
      this.fail(h, 'virtual-instruction', `instruction 0x${(h.stval >>> 0).toString(16)}`);
    };
  }
  readonly device: Uhv;

  /** Total transitions (every edge). */
  get transitions(): number {
    let n = 0;
    for (let i = 0; i < this.edges.length; i++) n += this.edges[i];
    return n;
  }

  /**
   * Applies technique 5's setting: on/off, the field access map, the exit-routing map. Only the
   * KHV calls this (the UHV holds no reference to the maps' owner). Takes effect at the next exit.
   * Raises: RangeError for a map naming a field or exit it cannot grant or route (the catalogue
   * validates first, so this is a programming error).
   */
  setUhvDirect(s: UhvDirectSetting): void {
    const bits = fieldAccessBits(s.fieldAccess);
    const routing = routingBits(s.exitRouting);
    this.control.bits = bits;
    this.routing = routing;
    this.control.direct = s.enabled;
  }

  /** Puts a fresh hart into the state the KHV runs guests in (V=1, HS-level delegation). */
  configure(h: Hart): void {
    h.hgatp = this.gstage.hgatp;
    h.medeleg = MEDELEG;
    h.mideleg = 0x222 | VS_IRQS;
    h.hedeleg = HEDELEG;
    h.hideleg = VS_IRQS;
    h.mie |= 1 << IRQ.VSTI;
    h.mcounteren = 7;
    h.hcounteren = 7;
    h.nativeTraps = NATIVE_HS | NATIVE_M;
    h.virt = 1;
    h.priv = PRIV_U;
    h.irqDirty = true;
  }

  /** When set, told about every exit (reason, hart, guest pc, virtual time); for exit tracing. */
  onExit: ((reason: string, h: Hart) => void) | null = null;

  /**
   * Counts one exit and charges it to `h` by its path: a KHV exit is guest -> KHV -> guest
   * (COSTS.vmExit); a UHV exit through the KHV adds KHV -> UHV -> KHV (COSTS.khvUhvRoundTrip); a
   * direct one is guest -> UHV -> guest (COSTS.vmExit: the hardware's exit and entry, no KHV).
   * `charge` false: the caller charges its own cost (transitions are still counted).
   */
  private exit(h: Hart, name: string, charge = true, path = PATH_KHV): void {
    this.exits.set(name, (this.exits.get(name) ?? 0) + 1);
    this.onExit?.(name, h);
    const e = this.edges;
    let cost = COSTS.vmExit;
    if (path === PATH_UHV_DIRECT) { e[EDGE.GuestUhv]++; e[EDGE.UhvGuest]++; } else {
      e[EDGE.GuestKhv]++; e[EDGE.KhvGuest]++;
      if (path === PATH_UHV_VIA_KHV) { e[EDGE.KhvUhv]++; e[EDGE.UhvKhv]++; cost += COSTS.khvUhvRoundTrip; }
    }
    if (!charge) return;
    h.ctr[Ctr.Cycles] += cost;
    this.exitCycles.set(name, (this.exitCycles.get(name) ?? 0) + cost);
  }

  /** Secure protection domains of this VM (technique 7; set by the VM), or null. */
  domains: ProtectionDomains | null = null;
  private readonly sink: ExitSink = { exit: (h, name, charge) => this.exit(h, name, charge), read32: (gpa) => this.read32(gpa) };

  private fail(h: Hart, name: string, detail: string): never {
    this.exits.set(name, (this.exits.get(name) ?? 0) + 1);
    throw new VmFault(name, `${detail} (pc 0x${(h.sepc >>> 0).toString(16)})`);
  }

  /**
   * Handles the trap a hart stopped on (StopReason.Trap) and re-enters the guest. The handler is
   * looked up by cause (byCause); exits the UHV handles go the path the exit-routing map says.
   * Raises: VmFault for unsupported exits; OutOfHostMemory when a demand allocation fails.
   */
  handleExit(v: Vcpu): void {
    const pm = this.pm;
    // Privileged-mode requests made while handling the exit are served once the vCPU is back in
    // the guest at an instruction boundary (privileged-mode.ts).
    pm?.beginExit();
    let done = false;
    try {
      this.route(v);
      done = true;
    } finally {
      pm?.endExit(done);
    }
  }

  private route(v: Vcpu): void {
    const h = v.hart;
    this.current = h;
    if (h.priv === 3) {
      const cause = h.mcause;
      if (cause !== CAUSE.hardwareError) this.fail(h, 'unknown', `trap cause ${cause} into M mode`);
      const frame = Math.floor(h.poisonPa / PAGE_SIZE);
      const gpa = this.gstage.gpaOf.get(frame);
      if (gpa === undefined) this.fail(h, 'memory-error-unowned', `machine check on host frame ${frame}`);
      this.memoryFailure(v, gpa + (h.poisonPa & 0xfff), h.mtval >>> 0, h.mepc, ((h.mstatus >> 11) & 3) === PRIV_U);
      return;
    }
    if (this.domains !== null && this.domains.handleExit(h, this.sink)) {
      this.current = null;
      return;
    }
    const handler = this.byCause[h.scause];
    if (handler === undefined) this.fail(h, 'unknown', `trap cause ${h.scause} into HS mode`);
    // A memory failure ends in the guest kernel's handler, which resumes the vCPU itself.
    if (handler(v)) return;
    h.pc = h.sret();
    this.current = null;
  }

  /** A guest-page fault: corrupted page, dirty log, demand allocation, or MMIO. Returns true when the vCPU was already resumed. */
  private guestPageFault(v: Vcpu): boolean {
    const h = v.hart, cause = h.scause;
    const gpa = (h.htval >>> 0) * 4 + (h.stval & 3);
    if (this.pm && PrivilegedMode.inRegion(gpa)) {
      // Outside the mode the region is mapped in no table this vCPU uses: reported, and
      // completed as an open-bus access (reads all ones, writes dropped); a fetch is fatal.
      this.pm.regionFault(v.id, gpa);
      if (cause === CAUSE.fetchGuestPage) this.fail(h, 'privileged-region-fetch', `fetch from the privileged-mode region at 0x${gpa.toString(16)} outside the mode`);
      this.emulateAccess(h, 'privileged-region', cause === CAUSE.storeGuestPage, () => -1);
      return false;
    }
    if (this.gstage.isRam(gpa) && this.gstage.frameOf[(gpa - RAM_BASE) >>> 12] >= 0 && this.pm?.refreshView(v.id, gpa)) {
      this.exit(h, 'gstage-fault');
      return false;
    }
    if (this.gstage.isRam(gpa) && this.gstage.isCorrupted(gpa)) {
      this.memoryFailure(v, gpa, h.stval >>> 0, h.sepc, (h.mstatus & (1 << 8)) === 0);
      return true;
    }
    if (cause === CAUSE.storeGuestPage && this.gstage.isRam(gpa) && this.gstage.logStore((gpa - RAM_BASE) >>> 12)) {
      this.exit(h, 'dirty-log');
      h.mmu.flushAll();
      return false;
    }
    if (this.gstage.isRam(gpa)) {
      this.exit(h, 'gstage-fault');
      this.gstage.back(gpa);
      h.mmu.flushAll();
      return false;
    }
    if (cause !== CAUSE.fetchGuestPage && gpa >= DEVICE_BASE && gpa < DEVICE_BASE + DEVICE_SIZE) {
      const offset = gpa - DEVICE_BASE, pm = this.pm;
      if (offset === PM_DOORBELL_OFFSET && pm) {
        // The privileged-mode doorbell (an in-KHV device, like KVM's in-kernel APIC).
        this.emulateAccess(h, 'privileged-mode', cause === CAUSE.storeGuestPage, (_o, _s, write, value) => {
          if (!write) return pm.doorbellValue();
          if (value >>> 0 < this.vcpuCount) pm.request(value >>> 0, 'device');
          return 0;
        });
        return false;
      }
      this.decodeMmio(h, offset, cause === CAUSE.storeGuestPage);
      return this.uhvExit(v, 'mmio', EXIT_CODE.Mmio, deviceRoute(offset));
    }
    this.fail(h, 'gstage-fault-outside-ram', `guest-physical address 0x${gpa.toString(16)} is neither RAM nor a device`);
  }

  /**
   * An exit the UHV handles: straight to it when technique 5 is on and the exit-routing map says
   * so for `route` (-1: no routing key, always through the KHV), otherwise through the KHV. The
   * device models reach the vCPU only through `control`; the pc advances by what they asked.
   */
  private uhvExit(v: Vcpu, name: string, code: number, route: number): false {
    const h = v.hart, c = this.control;
    const direct = c.direct && route >= 0 && this.routing[route] === 1;
    this.exit(h, name, true, direct ? PATH_UHV_DIRECT : PATH_UHV_VIA_KHV);
    c.begin(h, v, code);
    try {
      this.device.handleExit(c);
    } finally {
      this.exitCycles.set(name, this.exitCycles.get(name)! + c.cycles);
      c.end();
    }
    h.sepc = (h.sepc + c.advance) | 0;
    return false;
  }

  /**
   * The SBI PMODE hypercall (technique 6), handled by the KHV itself: enters the privileged mode
   * once this exit is over; the handler reads the arguments and answers in the saved a0/a1.
   */
  private pmodeHypercall(v: Vcpu): false {
    const h = v.hart, x = h.x;
    this.exit(h, 'hypercall');
    if (this.pm!.inMode(v.id)) { x[10] = SBI_ERR_ALREADY_STARTED; x[11] = 0; } else this.pm!.request(v.id, 'hypercall');
    h.sepc = (h.sepc + 4) | 0;
    return false;
  }

  /** vCPUs of the VM (the doorbell's range); set by the VM. */
  vcpuCount = 1;

  /**
   * Delivers exception `cause` (with `tval`) to the guest kernel as if the hart had raised it
   * in the guest, from the HS trap the KHV is handling: VS trap CSRs, then the KHV's sret lands
   * at vstvec in VS mode.
   */
  private injectVs(h: Hart, cause: number, tval: number): void {
    const fromPriv = (h.mstatus & MS.SPP) ? PRIV_S : PRIV_U;
    h.vscause = cause;
    h.vsepc = h.sepc;
    h.vstval = tval;
    const s = h.vsstatus;
    h.vsstatus = (s & ~(MS.SPIE | MS.SPP | MS.SIE)) | ((s & MS.SIE) ? MS.SPIE : 0) | (fromPriv === PRIV_S ? MS.SPP : 0);
    h.mstatus |= MS.SPP;
    h.sepc = h.vstvec & ~3;
  }

  /**
   * Completes the trapping load/store at sepc against a device the KHV itself emulates (technique
   * 6's doorbell and region), counting exit `exitName`; decoded as the UHV's MMIO exits are.
   */
  private emulateAccess(h: Hart, exitName: string, isStore: boolean, access: (offset: number, size: number, write: boolean, value: number) => number, offset = 0): void {
    this.exit(h, exitName);
    this.decodeMmio(h, offset, isStore);
    const s = this.control.syndrome, size = s.size;
    if (s.write) {
      access(offset, size, true, h.x[s.reg] & (size === 4 ? -1 : (1 << (size * 8)) - 1));
    } else {
      let value = access(offset, size, false, 0);
      if (size < 4) value = s.signed ? (value << (32 - size * 8)) >> (32 - size * 8) : value & ((1 << (size * 8)) - 1);
      if (s.reg !== 0) h.x[s.reg] = value;
    }
    h.sepc = (h.sepc + s.length) | 0;
  }

  /**
   * The hardware's MMIO syndrome (exitQualification): reads the trapping instruction at sepc
   * through the guest's translation (htinst is 0 in this hart) and decodes its size, direction,
   * register and sign, as ARM's ISV syndrome gives them. Only plain loads and stores
   * (isa/facts.ts) have one; anything else is the unsupported exit mmio-unsupported-instruction.
   */
  private decodeMmio(h: Hart, offset: number, isStore: boolean): void {
    let raw: number;
    try {
      raw = fetchInsn((va) => h.hlv(va, 2, true), h.sepc);
    } catch (e) {
      if (e !== TRAP) throw e;
      this.fail(h, 'mmio-unsupported-instruction', 'the instruction that accessed the device cannot be read');
    }
    const word = insnWord(raw), len = insnLen(raw);
    const op = word === 0 ? -1 : decode(word);
    const name = op >= 0 ? INSNS[op].name : '?';
    const facts = op >= 0 && FACTS[op].plain ? FACTS[op] : null;
    if (!(isStore ? facts?.writesMem : facts?.readsMem)) this.fail(h, 'mmio-unsupported-instruction', `${name} cannot access a device`);
    const s = this.control.syndrome;
    s.offset = offset;
    s.size = facts!.size;
    s.write = isStore;
    s.reg = isStore ? fieldRs2(word) : fieldRd(word);
    s.signed = facts!.signed === true;
    s.length = len;
  }

  /**
   * A guest access consumed an uncorrectable error (machine check) or touched a page already
   * found corrupted: unmap the page for good and let the guest kernel deal with it (Linux's
   * memory_failure: the owning process gets SIGBUS).
   */
  private memoryFailure(v: Vcpu, gpa: number, va: number, pc: number, fromUser: boolean): void {
    this.exit(v.hart, 'memory-error');
    this.corrupt(gpa);
    if (!this.onMemoryFailure) throw new VmFault('memory-error', `guest page 0x${gpa.toString(16)} is corrupted`);
    this.onMemoryFailure(v, pageBase(gpa), va, pc, fromUser);
  }

  /** Marks the guest page of `gpa` corrupted (unmapped, never backed again) and flushes every vCPU's TLB. */
  corrupt(gpa: number): void {
    if (this.gstage.isCorrupted(gpa)) return;
    this.gstage.corrupt(gpa);
    this.corruptedPages.push(pageBase(gpa));
    this.flushAll();
  }
  /** Guest pages found corrupted, in order. */
  readonly corruptedPages: number[] = [];

  /** The vCPU executed wfi with nothing pending: it idles until its timer fires. */
  idle(v: Vcpu): void {
    this.exit(v.hart, 'wfi');
    v.halted = true;
  }

  /** Raises the VS timer interrupt when the deadline has passed. */
  tick(v: Vcpu): void {
    if (v.hart.ctr[Ctr.Cycles] >= v.deadline) {
      v.hart.mip |= 1 << IRQ.VSTI;
      v.hart.irqDirty = true;
      v.halted = false;
    }
  }

  // *** guest RAM as the hypervisor sees it (GuestRam); backing on demand counts a gstage-fault exit ***

  /**
   * Host address of guest RAM byte `gpa`, backing its page first when needed. A read (`consume`)
   * of a poisoned frame consumes the error.
   * Raises: OutOfHostMemory; GuestMemoryError for a corrupted page, or a poisoned one when reading;
   * DomainAccessError for an address in a secure protection domain's memory (domains.ts).
   */
  hpaOf(gpa: number, consume = false): number {
    if (this.domains !== null && !this.gstage.isRam(gpa) && this.domains.windowOf(gpa) !== null) this.domains.nativeAccess(gpa, this.current);
    if (this.gstage.isCorrupted(gpa)) throw new GuestMemoryError(gpa);
    let pa = this.gstage.hpa(gpa);
    if (pa >= 0 && consume && this.mem.isPoisoned(pa)) {
      this.corrupt(gpa);
      throw new GuestMemoryError(gpa);
    }
    if (pa < 0) {
      if (this.current) this.exit(this.current, 'gstage-fault');
      this.gstage.back(gpa);
      pa = this.gstage.hpa(gpa);
    }
    return pa;
  }

  /** Native guest code (the kernel's handlers) runs on behalf of `h` from now on. */
  runningOn(h: Hart | null): void { this.current = h; }

  /**
   * Per-frame "holds translated code" marks shared by the VM's harts, and the callback that
   * invalidates translations of a frame (set by the VM runtime when a translating engine runs).
   */
  codePages: Uint8Array | null = null;
  onCodeWrite: (hpa: number) => void = () => {};

  /**
   * Native code (the KHV, UHV or guest kernel) wrote into the frame holding `hpa`, or freed it:
   * drop stale translations, and log the page dirty while migration tracks dirty pages. Every
   * native write to guest RAM goes through here.
   */
  nativeWrite(hpa: number): void {
    if (this.codePages !== null && this.codePages[hpa >>> 12] !== 0) this.onCodeWrite(hpa);
    this.gstage.markFrameDirty(hpa >>> 12);
  }

  isRamRange(gpa: number, len: number): boolean {
    return len >= 0 && this.gstage.isRam(gpa) && (len === 0 || this.gstage.isRam(gpa + len - 1));
  }

  read32(gpa: number): number { return this.mem.read32(this.hpaOf(gpa, true)); }
  write32(gpa: number, v: number): void {
    const pa = this.hpaOf(gpa);
    this.mem.write32(pa, v);
    this.nativeWrite(pa);
  }

  /** Calls `fn(hpa, offset, n)` for each page-bounded piece of guest RAM [gpa, gpa + len). */
  private spans(gpa: number, len: number, consume: boolean, fn: (pa: number, offset: number, n: number) => void): void {
    for (let i = 0; i < len;) {
      const n = Math.min(len - i, PAGE_SIZE - ((gpa + i) & 0xfff));
      fn(this.hpaOf(gpa + i, consume), i, n);
      i += n;
    }
  }

  readBytes(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.spans(gpa, len, true, (pa, i, n) => out.set(this.mem.u8.subarray(pa, pa + n), i));
    return out;
  }

  /** Writes bytes into guest RAM (dropping translations of code they overwrite). */
  writeBytes(gpa: number, bytes: Uint8Array): void {
    this.spans(gpa, bytes.length, false, (pa, i, n) => { this.mem.u8.set(bytes.subarray(i, i + n), pa); this.nativeWrite(pa); });
  }

  fill(gpa: number, len: number, value: number): void {
    this.spans(gpa, len, false, (pa, _i, n) => { this.mem.u8.fill(value, pa, pa + n); this.nativeWrite(pa); });
  }

  /** Frames of this VM go back to the host. */
  release(): number {
    return this.host.releaseOwner(this.owner);
  }
}
