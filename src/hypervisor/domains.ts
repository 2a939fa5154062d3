/**
 * Secure protection domains inside a VM (technique 7, after US20160299851A1; anchors: Hyper-V VSM
 * VTLs, VMFUNC EPTP switching as in SkyBridge). The KHV builds, per secure domain:
 *
 *   - private memory: `memoryKiB` of host frames, eagerly allocated, at the guest-physical window
 *     domainWindow(i) = DOMAIN_BASE + i * DOMAIN_STRIDE (outside guest RAM and the device region).
 *     The root domain's G-stage table never maps a window: every access to it from the root
 *     domain is a G-stage fault that the KHV blocks and reports.
 *   - its own G-stage table: the root table's RAM entries (shared leaf tables, so demand backing,
 *     corruption and dirty logging apply to both) plus its private window.
 *   - its own guest page table (Sv32), in its private memory: the domain image's segments at their
 *     ELF addresses, a stack below DOMAIN_STACK_TOP, and the shared buffer page at DOMAIN_SHARED_VA
 *     once the root registered one.
 *   - gates: one per entry point (an ELF symbol), numbered in registration order across domains.
 *
 * Transitions (cpu/domain-gate.ts): `dgate rs1` calls gate x[rs1] or returns (DGATE_RETURN). With
 * the fast gate the hart switches by itself; otherwise each dgate exits and `handleExit` performs
 * the same switch (reason 'domain-switch', COSTS.domainSwitchExit).
 *
 * Attacks and what they meet (each counted and reported through `onEvent`):
 *   - the root domain (user or kernel code, any page table) touching a window: G-stage fault,
 *     'domain-blocked' exit; the access faults in the guest as an access fault (its kernel kills the
 *     process with SIGSEGV; a kernel-mode access is the guest kernel's own fatal fault).
 *   - native code of the KHV, the UHV's devices (DMA-like) or the guest kernel's copies reading or
 *     writing a window through GuestRam: DomainAccessError (the kernel kills the calling process).
 *   - dgate to an unregistered gate, from VS mode, or a return from the root: 'domain-violation',
 *     an illegal-instruction fault in the guest (SIGILL).
 *   - jumping into domain code without a gate: the root page tables cannot reach it (see above).
 *   - an exception inside a secure domain (a bad pointer, ecall, a nested call): 'domain-fault',
 *     the call is abandoned and returns -EFAULT to the caller.
 * The VM's memory listing and migration source see only guest RAM: a window is never listed or
 * sent (a VM with domains refuses to migrate: docs/decisions.md).
 */
import { createHash } from 'node:crypto';
import { ElfImage, parseElf32 } from '../isa/elf.js';
import { decode } from '../isa/decode.js';
import { opId } from '../isa/table.js';
import { rs1 as fieldRs1 } from '../isa/fields.js';
import { CAUSE, PTE } from '../mmu/mmu.js';
import { PAGE_SIZE, PhysMem } from '../mmu/phys.js';
import { Hart, TRAP } from '../cpu/hart.js';
import { DGATE_RETURN, DGATE_SHARE, DomainCtr, DomainGates } from '../cpu/domain-gate.js';
import { FrameState, HostMemory } from './host-memory.js';
import type { GStage } from './gstage.js';
import { DomainAccessError, GuestMemoryError } from './exits.js';

/** Guest-physical windows of secure domains: domain i's private memory starts at domainWindow(i). */
export const DOMAIN_BASE = 0x4000_0000;
export const DOMAIN_STRIDE = 0x0100_0000;
export const MAX_DOMAINS = 8;
export const MAX_DOMAIN_KIB = DOMAIN_STRIDE / 1024;
export const domainWindow = (i: number): number => DOMAIN_BASE + i * DOMAIN_STRIDE;

/** A domain's virtual layout: its image below DOMAIN_STACK_TOP - DOMAIN_STACK_SIZE, its stack, then the shared page. */
export const DOMAIN_VA_LIMIT = 0x0040_0000;
export const DOMAIN_SHARED_VA = 0x003f_f000;
export const DOMAIN_STACK_TOP = DOMAIN_SHARED_VA;
export const DOMAIN_STACK_SIZE = 0x4000;
/** ELF symbol of a 32-byte slot the KHV fills with the domain's secret (derived from the VM seed). */
export const SECRET_SYMBOL = 'domain_secret';
export const SECRET_BYTES = 32;

const EFAULT = -14;
const EINVAL = -22;

/** What a VM spec says of a secure domain. */
export interface DomainSpec {
  name: string;
  /** A static RV32 ELF linked below DOMAIN_VA_LIMIT (its code and data). */
  elf: Uint8Array;
  /** ELF symbols that become gates, in order. */
  entryPoints: string[];
  memoryKiB: number;
}


export type DomainEventKind = 'blocked-access' | 'gate-violation' | 'domain-fault';
/** A reported attack or fault. `source`: who tried (guest code, native kernel copy, or a device). */
export interface DomainEvent {
  kind: DomainEventKind;
  domain: string | null;
  source: 'guest-user' | 'guest-kernel' | 'native' | 'device' | 'domain';
  gpa: number | null;
  pc: number | null;
  vcpu: number | null;
  detail: string;
}

/** Counters of the technique (aggregated over vCPUs). */
export interface DomainCounters {
  domains: number;
  gates: number;
  switches: { gate: number; exit: number };
  /** Cycles charged for switches (cost table), and per switch. */
  switchCycles: number;
  cyclesPerSwitch: number;
  sharedPages: number;
  blockedAccesses: number;
  gateViolations: number;
  domainFaults: number;
}

/** A built domain: its window, frames and tables. */
interface Domain {
  index: number;
  spec: DomainSpec;
  window: number;
  frames: Int32Array;
  hgatp: number;
  vsatp: number;
  /** Host address of the leaf PTE mapping DOMAIN_SHARED_VA in its guest page table. */
  sharedPte: number;
  gates: number[];
}

/** The exit bookkeeping the KHV offers (its exit table and costs). */
export interface ExitSink {
  exit(h: Hart, reason: string, charge: boolean): void;
  read32(gpa: number): number;
}

const DGATE = opId('dgate');
const LEAF_U = PTE.V | PTE.U | PTE.A | PTE.D;

/** Where a domain's image goes: user pages (va -> PTE permissions) in order, gate entry addresses, the secret's address. */
interface DomainPlan { pages: Map<number, number>; entries: number[]; secret: number | null }

/**
 * Checks a domain spec against its parsed image and lays it out (nothing is allocated).
 * Raises: RangeError naming the problem (memory size, segments outside the domain's image range,
 * a missing or non-executable entry symbol, a secret slot outside the image, too little memory).
 */
function planDomain(spec: DomainSpec, elf: ElfImage): DomainPlan {
  const where = `domain ${spec.name}`;
  if (!Number.isInteger(spec.memoryKiB) || spec.memoryKiB < 32 || spec.memoryKiB > MAX_DOMAIN_KIB || spec.memoryKiB % 4) throw new RangeError(`${where}: memoryKiB must be a multiple of 4 in 32-${MAX_DOMAIN_KIB}, got ${spec.memoryKiB}`);
  if (spec.entryPoints.length === 0 || spec.entryPoints.length > 64) throw new RangeError(`${where}: needs 1-64 entry points`);
  const pages = new Map<number, number>();
  const imageEnd = DOMAIN_STACK_TOP - DOMAIN_STACK_SIZE;
  for (const seg of elf.segments) {
    if (seg.memsz === 0) continue;
    if (seg.vaddr < PAGE_SIZE || seg.vaddr + seg.memsz > imageEnd) throw new RangeError(`${where}: segment at 0x${seg.vaddr.toString(16)} lies outside 0x1000-0x${imageEnd.toString(16)}`);
    const perms = (seg.readable ? PTE.R : 0) | (seg.writable ? PTE.W | PTE.R : 0) | (seg.executable ? PTE.X : 0);
    for (let va = seg.vaddr & ~0xfff; va < seg.vaddr + seg.memsz; va += PAGE_SIZE) pages.set(va, (pages.get(va) ?? 0) | perms);
  }
  for (let va = imageEnd; va < DOMAIN_STACK_TOP; va += PAGE_SIZE) pages.set(va, PTE.R | PTE.W);
  if (2 + pages.size > spec.memoryKiB / 4) throw new RangeError(`${where}: ${spec.memoryKiB} KiB cannot hold its page tables, image and stack (${(2 + pages.size) * 4} KiB)`);
  const entries = spec.entryPoints.map((sym) => {
    const entry = elf.symbols.get(sym);
    if (entry === undefined) throw new RangeError(`${where}: no entry symbol ${sym}`);
    if (!elf.segments.some((s) => s.executable && entry >= s.vaddr && entry < s.vaddr + s.memsz)) throw new RangeError(`${where}: entry ${sym} is not in executable code`);
    return entry;
  });
  const secret = elf.symbols.get(SECRET_SYMBOL) ?? null;
  if (secret !== null && !elf.segments.some((s) => s.writable && secret >= s.vaddr && secret + SECRET_BYTES <= s.vaddr + s.memsz)) throw new RangeError(`${where}: ${SECRET_SYMBOL} is not ${SECRET_BYTES} bytes of a writable segment`);
  return { pages, entries, secret };
}

/**
 * Checks a domain definition without building it (for the API, before it is stored).
 * Raises: ElfError for a bad image; RangeError as planDomain.
 */
export function validateDomain(spec: DomainSpec): void {
  planDomain(spec, parseElf32(spec.elf));
}

export class ProtectionDomains {
  readonly domains: Domain[] = [];
  /** Per vCPU hart: its gate hardware. */
  private readonly units: DomainGates[] = [];
  private gateCount = 0;
  private readonly gateDomain: number[] = [];
  private readonly gateEntry: number[] = [];
  readonly gateNames: string[] = [];
  blocked = 0;
  violations = 0;
  faults = 0;
  sharedPages = 0;
  onEvent: (e: DomainEvent) => void = () => {};

  /**
   * Builds every domain's memory and tables for a VM with root G-stage `root`, and the gate
   * hardware of `harts` (`fast`: the fast gate is on).
   * Raises: RangeError for a bad spec (too many or too big domains, a missing entry symbol, an
   * image outside the domain's address range or bigger than its memory); ElfError for a bad
   * image; OutOfHostMemory.
   */
  constructor(private readonly host: HostMemory, private readonly mem: PhysMem, private readonly owner: number,
    private readonly root: GStage, specs: DomainSpec[], harts: Hart[], fast: boolean, seed: number) {
    if (specs.length > MAX_DOMAINS) throw new RangeError(`at most ${MAX_DOMAINS} protection domains, got ${specs.length}`);
    if (specs.length > 0 && harts.length !== 1) throw new RangeError('protection domains need a VM with one vCPU');
    const names = new Set<string>();
    const elfs = specs.map((s) => {
      if (names.has(s.name)) throw new RangeError(`two protection domains are named ${s.name}`);
      names.add(s.name);
      return parseElf32(s.elf);
    });
    const ramEntries = specs.length ? root.ramRootEntries() : [];
    specs.forEach((s, i) => this.build(i, s, elfs[i], ramEntries, seed));
    for (const h of harts) {
      const u = new DomainGates(this.gateCount, this.domains.length);
      u.gateDomain.set(this.gateDomain);
      u.gateEntry.set(this.gateEntry);
      u.hgatpOf[0] = root.hgatp;
      for (const d of this.domains) { u.hgatpOf[d.index + 1] = d.hgatp; u.vsatpOf[d.index + 1] = d.vsatp; }
      u.fast = fast;
      h.domainGates = u;
      this.units.push(u);
    }
  }

  private build(i: number, spec: DomainSpec, elf: ElfImage, ramEntries: Array<[number, number]>, seed: number): void {
    const plan = planDomain(spec, elf);
    const window = domainWindow(i);
    const pages = spec.memoryKiB / 4;
    const frames = new Int32Array(pages);
    for (let k = 0; k < pages; k++) frames[k] = this.host.alloc(this.owner, FrameState.Hypervisor);
    const hpa = (gpa: number): number => frames[(gpa - window) / PAGE_SIZE] * PAGE_SIZE + (gpa & 0xfff);
    // G-stage: a 16 KiB root with the RAM entries shared, and leaf tables for the window.
    const gRoot = this.host.allocAligned(this.owner, 4) * PAGE_SIZE;
    for (const [idx, pte] of ramEntries) this.mem.write32(gRoot + idx * 4, pte);
    for (let k = 0; k < pages; k++) {
      const gpn = window / PAGE_SIZE + k;
      const l1 = gRoot + Math.floor(gpn / 1024) * 4;
      if ((this.mem.read32(l1) & PTE.V) === 0) this.mem.write32(l1, (this.host.alloc(this.owner, FrameState.Hypervisor) << 10) | PTE.V);
      const leaf = (this.mem.read32(l1) >>> 10) * PAGE_SIZE + (gpn % 1024) * 4;
      this.mem.write32(leaf, (frames[k] << 10) | PTE.V | PTE.R | PTE.W | PTE.X | PTE.U | PTE.A | PTE.D);
    }
    // Guest page table in private memory: page 0 the Sv32 root, page 1 the leaf table for [0, 4 MiB),
    // then the image's pages and the stack's, in plan order.
    const ptRoot = window, pt0 = window + PAGE_SIZE;
    this.mem.write32(hpa(ptRoot), ((pt0 / PAGE_SIZE) << 10) | PTE.V);
    const gpaOf = new Map<number, number>();
    let next = 2;
    for (const [va, perms] of plan.pages) {
      const gpa = window + PAGE_SIZE * next++;
      gpaOf.set(va, gpa);
      this.mem.write32(hpa(pt0) + (va >>> 12) * 4, ((gpa / PAGE_SIZE) << 10) | LEAF_U | perms);
    }
    const byteAt = (va: number): number => hpa(gpaOf.get(va & ~0xfff)!) + (va & 0xfff);
    for (const seg of elf.segments) for (let b = 0; b < seg.filesz; b++) this.mem.u8[byteAt(seg.vaddr + b)] = elf.bytes[seg.offset + b];
    // The secret: derived from the VM seed and the domain's name, written only here.
    if (plan.secret !== null) {
      const secret = createHash('sha256').update(`hvsim-domain-secret:${seed}:${spec.name}`).digest();
      for (let b = 0; b < SECRET_BYTES; b++) this.mem.u8[byteAt(plan.secret + b)] = secret[b];
      secret.fill(0);
    }
    const gates: number[] = [];
    plan.entries.forEach((entry, k) => {
      gates.push(this.gateCount++);
      this.gateDomain.push(i + 1);
      this.gateEntry.push(entry | 0);
      this.gateNames.push(`${spec.name}.${spec.entryPoints[k]}`);
    });
    this.domains.push({
      index: i, spec, window, frames, gates, hgatp: (0x80000000 | (gRoot / PAGE_SIZE)) | 0,
      vsatp: (0x80000000 | (ptRoot / PAGE_SIZE)) | 0, sharedPte: hpa(pt0) + (DOMAIN_SHARED_VA >>> 12) * 4,
    });
  }

  /** The domain whose window holds guest-physical `gpa`, or null. */
  windowOf(gpa: number): Domain | null {
    const i = Math.floor((gpa - DOMAIN_BASE) / DOMAIN_STRIDE);
    const d = i >= 0 && i < this.domains.length ? this.domains[i] : null;
    return d !== null && gpa < d.window + d.spec.memoryKiB * 1024 ? d : null;
  }

  /**
   * Native code (`h` the hart it runs for, or null for a device) touched `gpa` in a domain window:
   * counts, reports and raises. Raises: DomainAccessError, always.
   */
  nativeAccess(gpa: number, h: Hart | null): never {
    const d = this.windowOf(gpa)!;
    this.report({ kind: 'blocked-access', domain: d.spec.name, source: h ? 'native' : 'device', gpa, pc: h ? h.sepc : null, vcpu: h ? h.hartId : null, detail: h ? 'guest kernel or hypervisor copy' : 'device (DMA) access' });
    throw new DomainAccessError(gpa, d.spec.name);
  }

  private report(e: DomainEvent): void {
    if (e.kind === 'blocked-access') this.blocked++;
    else if (e.kind === 'gate-violation') this.violations++;
    else this.faults++;
    this.onEvent(e);
  }

  /**
   * An exit of hart `h` (in HS mode after a trap from V=1, not a machine check): handles it when it
   * is a domain's business (a dgate, any trap inside a secure domain except demand backing of
   * guest RAM, a G-stage fault in a domain window) and re-enters the guest; returns false otherwise.
   * Raises: OutOfHostMemory (never for an attack).
   */
  handleExit(h: Hart, sink: ExitSink): boolean {
    const unit = h.domainGates;
    if (unit === null) return false;
    const cause = h.scause;
    const inDomain = unit.current !== 0;
    if (cause === CAUSE.virtualInstruction && decode(h.stval >>> 0) === DGATE) {
      this.gate(h, unit, h.x[fieldRs1(h.stval >>> 0)], sink);
      return true;
    }
    const gpa = (h.htval >>> 0) * 4 + (h.stval & 3);
    const gFault = cause === CAUSE.fetchGuestPage || cause === CAUSE.loadGuestPage || cause === CAUSE.storeGuestPage;
    if (gFault && !inDomain && this.windowOf(gpa) !== null) {
      const fromUser = (h.mstatus & (1 << 8)) === 0;
      sink.exit(h, 'domain-blocked', true);
      this.report({ kind: 'blocked-access', domain: this.windowOf(gpa)!.spec.name, source: fromUser ? 'guest-user' : 'guest-kernel', gpa, pc: h.sepc, vcpu: h.hartId, detail: `${cause === CAUSE.fetchGuestPage ? 'fetch' : cause === CAUSE.loadGuestPage ? 'load' : 'store'} at 0x${(h.stval >>> 0).toString(16)}` });
      const access = cause === CAUSE.fetchGuestPage ? CAUSE.fetchAccess : cause === CAUSE.loadGuestPage ? CAUSE.loadAccess : CAUSE.storeAccess;
      this.inject(h, access, h.stval);
      return true;
    }
    if (!inDomain) return false;
    // Inside a secure domain: demand backing of guest RAM (and dirty logging) is the KHV's as usual.
    if (gFault && this.root.isRam(gpa)) return false;
    const d = this.domains[unit.current - 1];
    sink.exit(h, 'domain-fault', true);
    this.report({ kind: 'domain-fault', domain: d.spec.name, source: 'domain', gpa: gFault ? gpa : null, pc: h.sepc, vcpu: h.hartId, detail: `trap cause ${cause} (tval 0x${(h.stval >>> 0).toString(16)}): the call is abandoned` });
    h.sepc = unit.leave(h, true);
    h.x[10] = EFAULT;
    h.pc = h.sret();
    return true;
  }

  private gate(h: Hart, unit: DomainGates, id: number, sink: ExitSink): void {
    const fromUser = (h.mstatus & (1 << 8)) === 0;
    const next = (h.sepc + 4) | 0;
    if (unit.permits(fromUser ? 0 : 1, id)) {
      sink.exit(h, 'domain-switch', false);
      h.sepc = id === DGATE_RETURN ? unit.leave(h, true) : unit.enter(h, id, next, true);
      h.pc = h.sret();
      return;
    }
    if (unit.current === 0 && id === DGATE_SHARE && fromUser) {
      sink.exit(h, 'domain-share', true);
      h.x[10] = this.share(h, h.x[10], h.x[11], sink);
      h.sepc = next;
      h.pc = h.sret();
      return;
    }
    if (unit.current !== 0) {
      // A secure domain misusing the gate (a nested call): the call is abandoned like any fault.
      const d = this.domains[unit.current - 1];
      sink.exit(h, 'domain-fault', true);
      this.report({ kind: 'domain-fault', domain: d.spec.name, source: 'domain', gpa: null, pc: h.sepc, vcpu: h.hartId, detail: `dgate ${id} inside the domain: the call is abandoned` });
      h.sepc = unit.leave(h, true);
      h.x[10] = EFAULT;
      h.pc = h.sret();
      return;
    }
    sink.exit(h, 'domain-violation', true);
    const why = !fromUser ? 'dgate from guest kernel mode' : id === DGATE_RETURN ? 'return outside a domain' : `gate ${id} is not registered`;
    this.report({ kind: 'gate-violation', domain: null, source: fromUser ? 'guest-user' : 'guest-kernel', gpa: null, pc: h.sepc, vcpu: h.hartId, detail: why });
    this.inject(h, CAUSE.illegal, h.stval);
  }

  /**
   * DGATE_SHARE: maps the caller's page at user address `va` (page-aligned, mapped readable and
   * writable in its page table, in guest RAM) as the shared page of gate `gate`'s domain.
   * Returns 0, -EINVAL (bad gate or address) or -EFAULT (not mapped so).
   */
  private share(h: Hart, gate: number, va: number, sink: ExitSink): number {
    if (gate < 0 || gate >= this.gateCount || (va & 0xfff) !== 0) return EINVAL;
    const gpa = this.walk(h.vsatp, va >>> 0, sink);
    if (gpa < 0 || !this.root.isRam(gpa)) return EFAULT;
    const d = this.domains[this.gateDomain[gate] - 1];
    this.mem.write32(d.sharedPte, ((gpa / PAGE_SIZE) << 10) | LEAF_U | PTE.R | PTE.W);
    this.sharedPages++;
    h.mmu.flushAll();
    return 0;
  }

  /** Guest-physical page of user page `va` in the Sv32 table of `vsatp` when it is a valid U, R and W leaf; else -1. */
  private walk(vsatp: number, va: number, sink: ExitSink): number {
    if ((vsatp >>> 31) === 0) return -1;
    try {
      let table = (vsatp & 0x3fffff) * PAGE_SIZE;
      for (let level = 1; level >= 0; level--) {
        if (!this.root.isRam(table)) return -1;
        const pte = sink.read32(table + ((va >>> (12 + 10 * level)) & 0x3ff) * 4);
        if ((pte & PTE.V) === 0) return -1;
        if (pte & (PTE.R | PTE.X)) {
          const need = PTE.U | PTE.R | PTE.W;
          if ((pte & need) !== need) return -1;
          const base = (pte >>> 10) * PAGE_SIZE;
          return level === 1 ? base + (va & 0x3ff000) : base;
        }
        table = (pte >>> 10) * PAGE_SIZE;
      }
      return -1;
    } catch (e) {
      if (e instanceof GuestMemoryError) return -1;
      throw e;
    }
  }

  /**
   * Re-enters the guest at the faulting instruction and takes exception `cause` there, as the
   * guest's own (an access fault or illegal instruction its kernel handles).
   */
  private inject(h: Hart, cause: number, tval: number): void {
    const pc = h.sret();
    try { h.raise(cause, tval); } catch (e) { if (e !== TRAP) throw e; }
    h.pc = h.takeTrap(pc);
  }

  counters(): DomainCounters {
    let gate = 0, exit = 0, cycles = 0;
    for (const u of this.units) { gate += u.ctr[DomainCtr.GateSwitches]; exit += u.ctr[DomainCtr.ExitSwitches]; cycles += u.ctr[DomainCtr.SwitchCycles]; }
    const n = gate + exit;
    return {
      domains: this.domains.length, gates: this.gateCount, switches: { gate, exit }, switchCycles: cycles,
      cyclesPerSwitch: n ? cycles / n : 0, sharedPages: this.sharedPages, blockedAccesses: this.blocked,
      gateViolations: this.violations, domainFaults: this.faults,
    };
  }

  /** Every byte of every domain's private memory, for tests that check nothing leaks (a copy). */
  privateBytes(i: number): Uint8Array {
    const d = this.domains[i];
    const out = new Uint8Array(d.frames.length * PAGE_SIZE);
    d.frames.forEach((f, k) => out.set(this.mem.u8.subarray(f * PAGE_SIZE, (f + 1) * PAGE_SIZE), k * PAGE_SIZE));
    return out;
  }
}
