/**
 * The kernel-level hypervisor of one VM: configures its vCPUs for V=1 execution, owns the G-stage
 * table, and handles every trap that leaves the guest (a VM exit): demand allocation of guest
 * RAM, MMIO forwarded to the UHV, SBI hypercalls (timer, reset), and idle. Each exit is counted by
 * reason and charged per DESIGN.md section 6; unsupported exits raise VmFault.
 *
 * Exit path (baseline): guest -> KHV (trap into HS, hart.run returns StopReason.Trap) -> [UHV ->
 * KHV] -> guest (sret with hstatus.SPV = 1). `transitions` counts each arrow.
 */
import { Hart, NATIVE_HS, NATIVE_M, PRIV_U, TRAP } from '../cpu/hart.js';
import { IRQ } from '../cpu/csr.js';
import { CAUSE } from '../mmu/mmu.js';
import { PAGE_SIZE, PhysMem, pageBase } from '../mmu/phys.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import { INSNS } from '../isa/table.js';
import { decode } from '../isa/decode.js';
import { FACTS } from '../isa/facts.js';
import { fetchInsn, insnLen, insnWord } from '../isa/fetch.js';
import { rd as fieldRd, rs2 as fieldRs2 } from '../isa/fields.js';
import { EXIT_BY_NAME, GuestMemoryError, VmFault } from './exits.js';
import { GStage } from './gstage.js';
import { HostMemory } from './host-memory.js';
import { DEVICE_BASE, DEVICE_SIZE, RAM_BASE, SBI, SBI_ERR_NOT_SUPPORTED } from './platform.js';
import { GuestRam, Uhv } from './uhv.js';

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

export class Khv implements GuestRam {
  readonly gstage: GStage;
  readonly exits = new Map<string, number>();
  transitions = 0;
  /**
   * Set by the VM: the guest kernel's memory-failure handler for an access from vCPU `v` to the
   * corrupted page `gpa` (guest virtual `va`, at `pc`, from user mode or not). It leaves the vCPU
   * in the state to resume (another process, idle, or power-off); it may raise VmFault.
   */
  onMemoryFailure: ((v: Vcpu, gpa: number, va: number, pc: number, fromUser: boolean) => void) | null = null;
  /** Flushes the TLBs of every vCPU (after a G-stage change that others may have cached). */
  flushAll: () => void = () => {};

  /** The hart whose exit is being handled (cycles of native work are charged to it). */
  private current: Hart | null = null;

  /** Raises: OutOfHostMemory when the host cannot hold the G-stage root. */
  constructor(readonly host: HostMemory, readonly mem: PhysMem, readonly owner: number, ramBytes: number, readonly uhv: (ram: GuestRam) => Uhv) {
    this.gstage = new GStage(host, mem, owner, ramBytes);
    this.device = uhv(this);
  }
  readonly device: Uhv;

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

  /** Counts one exit and charges it to `h`: VM exit + entry, plus the UHV round trip. */
  private exit(h: Hart, name: string): void {
    this.exits.set(name, (this.exits.get(name) ?? 0) + 1);
    this.onExit?.(name, h);
    const uhv = EXIT_BY_NAME.get(name)!.handledBy === 'uhv';
    this.transitions += uhv ? 4 : 2;
    h.ctr[Ctr.Cycles] += COSTS.vmExit + (uhv ? COSTS.khvUhvRoundTrip : 0);
  }

  private fail(h: Hart, name: string, detail: string): never {
    this.exits.set(name, (this.exits.get(name) ?? 0) + 1);
    throw new VmFault(name, `${detail} (pc 0x${(h.sepc >>> 0).toString(16)})`);
  }

  /**
   * Handles the trap a hart stopped on (StopReason.Trap) and re-enters the guest.
   * Raises: VmFault for unsupported exits; OutOfHostMemory when a demand allocation fails.
   */
  handleExit(v: Vcpu): void {
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
    const cause = h.scause;
    switch (cause) {
      case CAUSE.fetchGuestPage: case CAUSE.loadGuestPage: case CAUSE.storeGuestPage: {
        const gpa = (h.htval >>> 0) * 4 + (h.stval & 3);
        if (this.gstage.isRam(gpa) && this.gstage.isCorrupted(gpa)) {
          this.memoryFailure(v, gpa, h.stval >>> 0, h.sepc, (h.mstatus & (1 << 8)) === 0);
          return;
        }
        if (cause === CAUSE.storeGuestPage && this.gstage.isRam(gpa) && this.gstage.logStore((gpa - RAM_BASE) >>> 12)) {
          this.exit(h, 'dirty-log');
          h.mmu.flushAll();
          break;
        }
        if (this.gstage.isRam(gpa)) {
          this.exit(h, 'gstage-fault');
          this.gstage.back(gpa);
          h.mmu.flushAll();
          break;
        }
        if (cause !== CAUSE.fetchGuestPage && gpa >= DEVICE_BASE && gpa < DEVICE_BASE + DEVICE_SIZE) {
          this.mmio(h, gpa - DEVICE_BASE, cause === CAUSE.storeGuestPage);
          break;
        }
        this.fail(h, 'gstage-fault-outside-ram', `guest-physical address 0x${gpa.toString(16)} is neither RAM nor a device`);
        break;
      }
      case CAUSE.ecallVS:
        this.exit(h, 'hypercall');
        this.hypercall(v);
        h.sepc = (h.sepc + 4) | 0;
        break;
      case CAUSE.virtualInstruction:
        this.fail(h, 'virtual-instruction', `instruction 0x${(h.stval >>> 0).toString(16)}`);
        break;
      default:
        this.fail(h, 'unknown', `trap cause ${cause} into HS mode`);
    }
    h.pc = h.sret();
    this.current = null;
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

  private hypercall(v: Vcpu): void {
    const x = v.hart.x;
    const eid = x[17], fid = x[16];
    if (eid === SBI.TIME && fid === 0) {
      v.deadline = (x[11] >>> 0) * 2 ** 32 + (x[10] >>> 0);
      v.hart.mip &= ~(1 << IRQ.VSTI);
      v.hart.irqDirty = true;
      x[10] = 0;
    } else if (eid === SBI.SRST && fid === 0) {
      this.device.power = x[11] === 0 ? 'off' : 'fail';
      x[10] = 0;
    } else {
      x[10] = SBI_ERR_NOT_SUPPORTED;
    }
    x[11] = 0;
  }

  /** Decodes the trapping load/store at sepc (read through the guest's translation) and forwards it to the UHV. */
  private mmio(h: Hart, offset: number, isStore: boolean): void {
    this.exit(h, 'mmio');
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
    // Only plain loads and stores (isa/facts.ts) are emulated against a device.
    const facts = op >= 0 && FACTS[op].plain ? FACTS[op] : null;
    if (isStore && facts?.writesMem) {
      const size = facts.size;
      const value = h.x[fieldRs2(word)] & (size === 4 ? -1 : (1 << (size * 8)) - 1);
      this.device.access(offset, size, true, value);
    } else if (!isStore && facts?.readsMem) {
      const { size, signed } = facts;
      let value = this.device.access(offset, size, false, 0);
      if (size < 4) value = signed ? (value << (32 - size * 8)) >> (32 - size * 8) : value & ((1 << (size * 8)) - 1);
      const rd = fieldRd(word);
      if (rd !== 0) h.x[rd] = value;
    } else {
      this.fail(h, 'mmio-unsupported-instruction', `${name} cannot access a device`);
    }
    h.sepc = (h.sepc + len) | 0;
  }

  // *** guest RAM as the hypervisor sees it (GuestRam); backing on demand counts a gstage-fault exit ***

  /**
   * Host address of guest RAM byte `gpa`, backing its page first when needed. A read (`consume`)
   * of a poisoned frame consumes the error.
   * Raises: OutOfHostMemory; GuestMemoryError for a corrupted page, or a poisoned one when reading.
   */
  hpaOf(gpa: number, consume = false): number {
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
