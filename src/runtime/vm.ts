/**
 * One running VM, in the current thread: its vCPUs (harts in V=1), KHV, UHV and guest kernel.
 * The VM worker (vm-worker.ts) runs one of these; `hvsim run` runs one in-process.
 *
 * Determinism: vCPUs are interleaved in fixed quanta of simulated time (QUANTUM_CYCLES): in each
 * quantum, vCPU 0 runs until its clock passes the quantum's end, then vCPU 1, and so on. Nothing
 * else (wall time, message timing, host load) influences the guest, so the same spec and seed
 * give the same console bytes and counters.
 */
import { Engine, Hart, StopReason } from '../cpu/hart.js';
import { Jit } from '../cpu/jit.js';
import { shareWasmCode } from '../cpu/wasm/engine.js';
import { IRQ } from '../cpu/csr.js';
import { parseElf32 } from '../isa/elf.js';
import { COSTS, Ctr, CrossingPreset } from '../uarch/costs.js';
import { HostMemory, OutOfHostMemory } from '../hypervisor/host-memory.js';
import { Khv, Vcpu } from '../hypervisor/khv.js';
import { Uhv } from '../hypervisor/uhv.js';
import { PmEvent, PmStats, PrivilegedMode } from '../hypervisor/privileged-mode.js';
import { Disk, WrittenChunks } from '../hypervisor/disk.js';
import { BlockCounters, VirtioBlk } from '../hypervisor/virtio-blk.js';
import type { UhvDirectSetting } from '../hypervisor/khv.js';
import type { FieldFault } from '../hypervisor/vm-control.js';
import { EDGE_NAMES } from '../hypervisor/exit-routing.js';
import { GuestMemoryError, VmFault } from '../hypervisor/exits.js';
import { FrameState, POISON } from '../hypervisor/host-memory.js';
import { CONSOLE_PORTS, CONSOLE_RING_BASE, MAX_DISKS, RAM_BASE, ringGpa } from '../hypervisor/platform.js';
import { PAGE_SIZE, PhysMem, pageBase } from '../mmu/phys.js';
import { GuestKernel } from '../guest/kernel.js';
import { SpectreV2Mitigation } from '../guest/kernel-text.js';
import { ProcessStatus } from '../guest/process.js';
import type { LookaheadStats } from '../guest/syscall-chain.js';
import type { CallTableStats } from '../guest/search-trampoline.js';
import type { InstanceCallStats } from '../guest/instance-trampolines.js';
import { SYSCALLS } from '../guest/syscalls.js';
import { resolveTechniques, TechniqueSettings } from '../techniques/catalogue.js';
import { captureVcpu, restoreVcpu } from '../migration/machine-state.js';
import type { MachineState, Migratable, MigrationTarget, PageRead } from '../migration/migratable.js';
import { CORRUPTED } from '../hypervisor/gstage.js';
import type { GuestOsState } from '../guest/kernel.js';
import { DomainCounters, DomainEvent, DomainSpec, ProtectionDomains } from '../hypervisor/domains.js';

/** Technique 5's setting for the KHV (catalogue defaults when absent). */
const uhvSetting = (t: TechniqueSettings | undefined): UhvDirectSetting => (t ?? resolveTechniques()).uhvDirectTransitions as unknown as UhvDirectSetting;

/** Simulated time each vCPU runs before the next one gets its turn (100 µs at 1 GHz). */
export const QUANTUM_CYCLES = 100_000;

export interface ProcessImage {
  name: string;
  /** A static RV32 ELF. */
  elf: Uint8Array;
  argv: string[];
  env: string[];
  stdin: Uint8Array;
  /** fd 0 reads the named pipe (written by another process's stdout) instead of `stdin`. */
  stdinPipe?: string;
  /** fd 1 writes the named pipe instead of the console. */
  stdoutPipe?: string;
}

/** Everything a VM's behaviour depends on (structured-clone friendly, for the worker protocol). */
export interface VmSpec {
  vcpus: number;
  memoryMiB: number;
  seed: number;
  processes: ProcessImage[];
  spectreV2Mitigation: SpectreV2Mitigation;
  crossingPreset: CrossingPreset;
  engine: Engine;
  /** Effective technique settings (resolveTechniques); catalogue defaults when absent. */
  techniques?: TechniqueSettings;
  /** Secure protection domains (technique 7, hypervisor/domains.ts); none when absent. */
  domains?: DomainSpec[];
  /** Disks, one virtio block device each (disk n at BLOCK_OFFSET + n * BLOCK_STRIDE): empty, or over an image's bytes (copy-on-write). */
  disks?: DiskSpec[];
}

export interface DiskSpec {
  /** A positive multiple of 512. */
  sizeBytes: number;
  /** The base image (shared, never written); absent: an empty disk. */
  image?: Uint8Array;
  /** What an earlier run of the VM wrote over the base (kept when it stopped): its chunks start as these. */
  written?: WrittenChunks;
}

export const DEFAULT_SPEC: Omit<VmSpec, 'processes'> = {
  vcpus: 1, memoryMiB: 64, seed: 1, spectreV2Mitigation: 'none', crossingPreset: 'none', engine: 'jit',
};

export type VmRunState = 'running' | 'stopped' | 'crashed';

export interface VcpuCounters {
  instructions: number;
  cycles: number;
  idleCycles: number;
  crossings: number;
  tlbMisses: number;
  branchMispredicts: number;
  interrupts: number;
}

export interface VmCounters extends VcpuCounters {
  transitions: number;
  exits: Record<string, number>;
  syscalls: Record<string, number>;
  /** Unsupported syscalls by number (each returned -ENOSYS). */
  enosys: Record<string, number>;
  doorbells: number;
  /** Virtual time of the VM: the furthest vCPU clock, in ns. */
  virtualTimeNs: number;
  /** Guest RAM pages backed by host frames. */
  backedPages: number;
  /** Technique counters. */
  syscallLookahead: LookaheadStats;
  /** Technique 7's counters; null when the VM has no protection domains. */
  protectionDomains: DomainCounters | null;
  privilegedMode: PmStats;
  /** Technique 5 (uhvDirectTransitions) and the UHV's devices. */
  uhv: UhvCounters;
  callTableInlining: CallTableStats;
  instanceCallInlining: InstanceCallStats;
  /** Indirect jumps mispredicted to the guest kernel's gadget (branch target injection's transient window). */
  speculativeGadgetReaches: number;
  /** Indirect calls in the guest kernel whose target the BTB predicted (the ones branch target injection can steer; 0 under the retpoline and for calls the trampolines made direct). */
  btbPredictedKernelCalls: number;
  perVcpu: VcpuCounters[];
}

export interface UhvCounters {
  transitionsByEdge: Record<string, number>;
  fieldAccesses: { direct: number; mediated: number; refused: number };
  /** Per exit reason: exits, cycles charged for them (exit cost plus field accesses), and their ratio. */
  exitCycles: Record<string, { exits: number; cycles: number; perExit: number }>;
  /** Per disk. */
  block: BlockCounters[];
}

export type ConsoleListener = (port: number, bytes: Uint8Array) => void;

/**
 * Speculative gadget reaches of one vCPU during one `run` call (coalesced: one report a vCPU a
 * run at most): indirect jumps the BTB mispredicted to the guest kernel's gadget.
 */
export interface GadgetReach {
  vcpu: number;
  /** Reaches since the previous report of this vCPU. */
  reaches: number;
  /** The kernel text's symbol at the mispredicted jump (`call_site`, `method_site`, ...), or its address in hex. */
  site: string;
  /** The gadget's address. */
  gadget: number;
  mitigation: SpectreV2Mitigation;
  virtualTimeNs: number;
}

/** Who a guest page belongs to: a process (mapped at `va`, or null for its page tables), the kernel, the console rings, or nobody. */
export type PageOwner = { kind: 'process'; pid: number; va: number | null } | { kind: 'kernel' } | { kind: 'device' } | { kind: 'free' };

export class Vm implements Migratable, MigrationTarget {
  readonly vcpus: Vcpu[] = [];
  readonly khv: Khv;
  /** The VM's disks (the UHV's block devices serve them). */
  readonly disks: Disk[];
  private readonly fieldFaultListeners: Array<(f: FieldFault) => void> = [];
  readonly kernel: GuestKernel;
  /** Secure protection domains (technique 7); with none defined, every dgate is a gate violation (SIGILL). */
  readonly domains: ProtectionDomains;
  state: VmRunState = 'running';
  /** Why the VM stopped or crashed ('poweroff', 'out-of-host-memory', an exit reason, ...). */
  reason: string | null = null;
  private quantumEnd = 0;
  private readonly idle: number[];
  private readonly listeners: ConsoleListener[] = [];

  /**
   * Boots a VM on `host` as frame owner `owner`.
   * Raises: ElfError for a bad image; RangeError for a bad spec; OutOfHostMemory when the host
   * cannot hold the kernel; Error when guest memory cannot hold the processes.
   */
  constructor(readonly spec: VmSpec, readonly host: HostMemory, readonly owner: number, opts: { incoming?: boolean } = {}) {
    const elfs = spec.processes.map((p) => parseElf32(p.elf));
    if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 8 || spec.memoryMiB > 2047) throw new RangeError(`memoryMiB must be 8-2047, got ${spec.memoryMiB}`);
    if (spec.processes.length === 0) throw new RangeError('a VM needs at least one process');
    const mem = new PhysMem(host.buffers.dram, host.poison);
    if ((spec.disks?.length ?? 0) > MAX_DISKS) throw new RangeError(`a VM has at most ${MAX_DISKS} disks`);
    this.disks = (spec.disks ?? []).map((d) => {
      const disk = new Disk(d.sizeBytes, d.image ?? null);
      if (d.written && !opts.incoming) disk.importWritten(d.written);
      return disk;
    });
    this.khv = new Khv(host, mem, owner, spec.memoryMiB << 20, (ram) => new Uhv(ram, (port, bytes) => this.emit(port, bytes),
      this.disks.map((d, i) => new VirtioBlk(ram, d, `hvsim-disk-${i}`))));
    this.khv.setUhvDirect(uhvSetting(spec.techniques));
    this.khv.control.onFault = (f) => { for (const l of this.fieldFaultListeners) l(f); };
    for (let i = 0; i < spec.vcpus; i++) {
      const h = new Hart(mem, i);
      h.engine = spec.engine;
      h.crossingCost = COSTS.crossing[spec.crossingPreset];
      this.vcpus.push(new Vcpu(i, h));
    }
    this.idle = this.vcpus.map(() => 0);
    if (spec.engine === 'jit') this.shareTranslations(mem);
    else if (spec.engine === 'wasm') this.shareWasmCode();
    this.khv.flushAll = () => { for (const v of this.vcpus) v.hart.mmu.flushAll(); };
    this.kernel = new GuestKernel(this.khv, this.vcpus, {
      mitigation: spec.spectreV2Mitigation, seed: spec.seed, ramBytes: spec.memoryMiB << 20, syscalls: SYSCALLS, techniques: spec.techniques ?? resolveTechniques(),
      disks: this.disks.length,
    });
    this.khv.onMemoryFailure = (v, gpa, va, pc, fromUser) => this.kernel.memoryFailureTrap(v, gpa, va, pc, fromUser);
    try {
      this.domains = this.khv.domains = this.buildDomains(opts.incoming ? [] : spec.domains ?? []);
    } catch (e) {
      this.khv.release();
      throw e;
    }
    this.pm = this.privilegedMode(mem);
    if (this.codeInvalidate) this.pm.invalidateCode = this.codeInvalidate;
    if (opts.incoming) return;
    try {
      this.kernel.boot(spec.processes.map((p, i) => ({
        elf: elfs[i], name: p.name, argv: p.argv, env: p.env, stdin: p.stdin, stdinPipe: p.stdinPipe, stdoutPipe: p.stdoutPipe,
      })));
    } catch (e) {
      this.khv.release();
      throw e;
    }
  }

  /**
   * Technique 7: the domains' memory, G-stage and guest page tables, gates on every vCPU.
   * Raises: RangeError when the technique is off or a domain is bad; ElfError; OutOfHostMemory.
   */
  private buildDomains(specs: DomainSpec[]): ProtectionDomains {
    const t = (this.spec.techniques ?? resolveTechniques()).protectionDomains;
    if (specs.length && !t?.enabled) throw new RangeError('the VM defines protection domains but technique protectionDomains is off');
    const d = new ProtectionDomains(this.host, this.khv.mem, this.owner, this.khv.gstage, specs, this.vcpus.map((v) => v.hart), t.fastGate !== false, this.spec.seed);
    d.onEvent = (e) => { for (const l of this.domainListeners) l(e); };
    return d;
  }
  private readonly domainListeners: Array<(e: DomainEvent) => void> = [];
  /** Tells `l` about every blocked access, gate violation and domain fault (technique 7). */
  onDomainEvent(l: (e: DomainEvent) => void): void { this.domainListeners.push(l); }

  /** Why this VM cannot be migrated, or null: a secure domain's memory never leaves the host (docs/decisions.md). */
  migrationBlocker(): string | null {
    return this.domains.domains.length ? `the VM has ${this.domains.domains.length} protection domain(s), whose memory is never sent: protection-domain VMs cannot be migrated` : null;
  }

  /**
   * A VM that arrives by live migration: its G-stage, vCPUs and guest kernel exist but nothing is
   * booted; the migration copies RAM in and then calls `importState`. Raises: as the constructor.
   */
  static incoming(spec: VmSpec, host: HostMemory, owner: number): Vm {
    return new Vm(spec, host, owner, { incoming: true });
  }

  // *** the migration seam (migration/migratable.ts) ***

  get ramBytes(): number { return this.spec.memoryMiB << 20; }
  get vcpuCount(): number { return this.vcpus.length; }
  get counterCount(): number { return this.vcpus[0].hart.ctr.length; }

  *backedPages(): Generator<number> {
    const f = this.khv.gstage.frameOf;
    for (let i = 0; i < f.length; i++) if (f[i] >= 0) yield i;
  }

  readPage(gpn: number): PageRead {
    const f = this.khv.gstage.frameOf[gpn];
    if (f === CORRUPTED) return { kind: 'corrupted' };
    if (f < 0) return { kind: 'unbacked' };
    const poison = Atomics.load(this.host.poison, f);
    if (poison !== POISON.None) return { kind: 'poisoned', frame: f, known: poison === POISON.Known };
    return { kind: 'data', bytes: this.khv.mem.u8.subarray(f * PAGE_SIZE, (f + 1) * PAGE_SIZE) };
  }

  frameBytes(gpn: number): Uint8Array | null {
    const f = this.khv.gstage.frameOf[gpn];
    return f >= 0 ? this.khv.mem.u8.subarray(f * PAGE_SIZE, (f + 1) * PAGE_SIZE) : null;
  }

  notePoisonKnown(gpn: number): void {
    const f = this.khv.gstage.frameOf[gpn];
    if (f >= 0) Atomics.store(this.host.poison, f, POISON.Known);
  }

  startDirtyLog(): void {
    for (const d of this.disks) d.startDirtyLog();
    this.khv.gstage.startDirtyLog();
    this.khv.flushAll();
  }

  takeDirtyPages(): number[] {
    const d = this.khv.gstage.takeDirty();
    this.khv.flushAll();
    return d;
  }

  stopDirtyLog(): void {
    for (const d of this.disks) d.stopDirtyLog();
    if (this.khv.gstage.dirty === null) return;
    this.khv.gstage.stopDirtyLog();
    this.khv.flushAll();
  }

  get diskCount(): number { return this.disks.length; }

  diskChunks(n: number, all: boolean): number[] {
    const d = this.disks[n], dirty = d.takeDirty();
    return all ? d.writtenChunks() : dirty;
  }

  diskChunk(n: number, c: number): Uint8Array { return this.disks[n].chunk(c); }

  writeDiskChunk(n: number, c: number, bytes: Uint8Array): void {
    if (!(n >= 0 && n < this.disks.length)) throw new RangeError(`disk ${n}: the VM has ${this.disks.length} disks`);
    this.disks[n].setChunk(c, bytes);
  }

  dirtyLogExits(): number { return this.khv.exits.get('dirty-log') ?? 0; }

  corruptedPages(): number[] { return this.khv.corruptedPages.map((g) => (g - RAM_BASE) >>> 12); }

  untrackedPages(): number[] { return this.kernel.viewPages().map((g) => (g - RAM_BASE) >>> 12); }

  writePage(gpn: number, bytes: Uint8Array | null): void {
    const gs = this.khv.gstage, gpa = RAM_BASE + gpn * PAGE_SIZE;
    if (gs.isCorrupted(gpa)) throw new Error(`guest page ${gpn} is corrupted`);
    let f = gs.frameOf[gpn];
    if (f < 0) f = gs.back(gpa);
    const u8 = this.khv.mem.u8;
    if (bytes) u8.set(bytes, f * PAGE_SIZE); else u8.fill(0, f * PAGE_SIZE, (f + 1) * PAGE_SIZE);
  }

  markCorrupted(gpn: number): void { this.khv.corrupt(RAM_BASE + gpn * PAGE_SIZE); }

  isCorrupted(gpn: number): boolean { return this.khv.gstage.isCorrupted(RAM_BASE + gpn * PAGE_SIZE); }

  discard(reason: string): void { this.stop(reason); }

  /**
   * Everything besides guest RAM that a migration carries. Call between `run` calls.
   * Raises: Error while a vCPU is in technique 6's privileged mode (its region does not migrate).
   */
  exportState(): MachineState & { guestOs: GuestOsState } {
    if (this.pm.busy()) throw new Error('a vCPU is in the privileged mode: its region does not migrate');
    const d = this.khv.device;
    return {
      vcpus: this.vcpus.map((v, i) => captureVcpu(v, this.idle[i])),
      device: {
        quantumEnd: this.quantumEnd, exits: [...this.khv.exits], transitions: this.khv.transitions, power: d.power,
        doorbells: d.counters.doorbells, consoleBytes: [d.counters.consoleBytes[0], d.counters.consoleBytes[1]],
        uhv: {
          edges: [...this.khv.edges], exitCycles: [...this.khv.exitCycles], fieldAccesses: { ...this.khv.control.accesses },
          blocks: d.blocks.map((b) => b.exportState()),
        },
      },
      guestOs: this.kernel.exportState(),
    };
  }

  /**
   * Completes an incoming VM (guest RAM already copied) from `exportState` of its source.
   * Raises: Error for a state that does not fit this VM; GuestMemoryError; OutOfHostMemory.
   */
  importState(st: MachineState): void {
    if (st.vcpus.length !== this.vcpus.length) throw new Error(`state has ${st.vcpus.length} vCPUs, the VM ${this.vcpus.length}`);
    this.kernel.importState(st.guestOs as GuestOsState);
    st.vcpus.forEach((s, i) => { this.idle[i] = restoreVcpu(this.vcpus[i], s); });
    // The counters came along; the source reported the gadget reaches among them already.
    this.vcpus.forEach((v, i) => { this.gadgetReported[i] = v.hart.ctr[Ctr.GadgetReaches]; });
    const d = { ...st.device, blocks: this.khv.device.blocks };
    this.quantumEnd = d.quantumEnd;
    for (const [k, n] of d.exits) this.khv.exits.set(k, n);
    if (d.uhv) {
      this.khv.edges.set(d.uhv.edges);
      for (const [k, n] of d.uhv.exitCycles) this.khv.exitCycles.set(k, n);
      Object.assign(this.khv.control.accesses, d.uhv.fieldAccesses);
      if (d.uhv.blocks.length !== d.blocks.length) throw new Error(`state has ${d.uhv.blocks.length} block devices, the VM ${d.blocks.length}`);
      d.uhv.blocks.forEach((b, i) => d.blocks[i].importState(b));
    }
    this.khv.device.power = d.power;
    this.khv.device.counters.doorbells = d.doorbells;
    this.khv.device.counters.consoleBytes = [...d.consoleBytes];
  }

  /** Technique 6's privileged mode: its view and queue depth follow the live technique settings. */
  readonly pm: PrivilegedMode;
  private privilegedMode(mem: PhysMem): PrivilegedMode {
    const settings = () => {
      const t = this.kernel.techniques.privilegedModeRendezvous;
      return { view: t?.enabled ? 'global' as const : 'per-vcpu' as const, maxQueued: Number(t?.maxQueued ?? 16) };
    };
    const pm = new PrivilegedMode(this.vcpus, this.host, mem, this.owner, this.khv.gstage.hgatp, { settings, seed: this.spec.seed });
    pm.flushAll = () => this.khv.flushAll();
    pm.onEvent = (e) => { for (const l of this.pmListeners) l(e); };
    this.khv.pm = pm;
    this.khv.vcpuCount = this.vcpus.length;
    return pm;
  }
  private readonly pmListeners: Array<(e: PmEvent) => void> = [];
  /** Told about every privileged-mode phase (the `vm.privileged-mode` events). */
  onPrivilegedMode(l: (e: PmEvent) => void): void { this.pmListeners.push(l); }

  /**
   * The privileged-mode interrupt for vCPU `vcpu` from outside (REST), between `run` calls.
   * Returns what became of the request (PrivilegedMode.request).
   * Raises: RangeError for a vCPU that does not exist; Error when the VM is not running.
   */
  interruptPrivilegedMode(vcpu: number): string {
    if (this.state !== 'running') throw new Error(`the VM is ${this.state}`);
    return this.pm.request(vcpu, 'external');
  }

  /**
   * One "has code" map for all vCPUs, and invalidation broadcast to every translation cache, so a
   * store by one vCPU (or by the kernel's native code) into code another vCPU translated is seen.
   */
  private shareTranslations(mem: PhysMem): void {
    const codePages = new Uint8Array(Math.ceil(mem.size / 4096));
    const jits = this.vcpus.map((v) => { const j = new Jit(v.hart); v.hart.jit = j; v.hart.codePages = codePages; return j; });
    const invalidate = (pa: number): void => { for (const j of jits) (pa < 0 ? j.flush() : j.invalidatePage(pa >>> 12)); };
    // A hart's store (at most 4 bytes) invalidates only if it hits translated instructions; a native write, the whole frame.
    const store = (pa: number): void => { for (const j of jits) (pa < 0 ? j.flush() : j.codeStore(pa)); };
    for (const v of this.vcpus) v.hart.onCodeWrite = store;
    this.khv.codePages = codePages;
    this.khv.onCodeWrite = invalidate;
    this.codeInvalidate = invalidate;
  }

  /** The wasm engine's counterpart: one code watch for all vCPUs, told about native writes too. */
  private shareWasmCode(): void {
    const w = shareWasmCode(this.vcpus.map((v) => v.hart));
    this.khv.codePages = w.codePages;
    this.khv.onCodeWrite = w.invalidate;
    this.codeInvalidate = w.invalidate;
  }

  private codeInvalidate: ((pa: number) => void) | null = null;

  onConsole(l: ConsoleListener): void { this.listeners.push(l); }
  /** Told after each `run` about the speculative gadget reaches of each vCPU in it (branch target injection's transient window). */
  onGadgetReach(l: (e: GadgetReach) => void): void { this.gadgetListeners.push(l); }
  private readonly gadgetListeners: Array<(e: GadgetReach) => void> = [];
  /** Per vCPU, the reaches already reported. */
  private readonly gadgetReported: number[] = [];

  private reportGadgetReaches(): void {
    this.vcpus.forEach((v, i) => {
      const h = v.hart;
      const reaches = h.ctr[Ctr.GadgetReaches];
      const d = reaches - (this.gadgetReported[i] ?? 0);
      if (d <= 0) return;
      this.gadgetReported[i] = reaches;
      let site = `0x${(h.gadgetReachPc >>> 0).toString(16)}`;
      for (const [name, at] of this.kernel.text.symbols) if ((at >>> 0) === (h.gadgetReachPc >>> 0)) { site = name; break; }
      const e: GadgetReach = { vcpu: i, reaches: d, site, gadget: h.gadget >>> 0, mitigation: this.spec.spectreV2Mitigation, virtualTimeNs: this.virtualTimeNs() };
      for (const l of this.gadgetListeners) l(e);
    });
  }
  /** Told about every UHV access to a field reserved to the KHV (refused; nothing changed). */
  onFieldFault(l: (f: FieldFault) => void): void { this.fieldFaultListeners.push(l); }

  /** New technique settings: the guest kernel's apply at the next syscall, technique 5's at the next exit. */
  setTechniques(t: TechniqueSettings): void {
    this.kernel.techniques = t;
    this.khv.setUhvDirect(uhvSetting(t));
  }
  private emit(port: number, bytes: Uint8Array): void { for (const l of this.listeners) l(port, bytes); }

  /**
   * Runs up to `quanta` quanta (all vCPUs each). Returns the state afterwards. Never throws for
   * anything the guest does: faults end the VM as `crashed` with a reason.
   */
  run(quanta: number): VmRunState {
    for (let q = 0; q < quanta && this.state === 'running'; q++) {
      this.quantumEnd += QUANTUM_CYCLES;
      try {
        for (const v of this.vcpus) {
          this.runVcpu(v, this.quantumEnd);
          if (this.state !== 'running') break;
        }
      } catch (e) {
        this.crash(e);
      }
    }
    if (this.gadgetListeners.length > 0) this.reportGadgetReaches();
    if (this.state !== 'running') this.release();
    return this.state;
  }

  /** Runs until the VM stops or crashes, or `maxInstructions` retire (then it is stopped as 'instruction-limit'). */
  runToCompletion(maxInstructions = Infinity): VmRunState {
    while (this.run(16) === 'running') {
      if (this.instructions() > maxInstructions) this.stop('instruction-limit');
    }
    return this.state;
  }

  /** Stops a running VM from outside (its frames go back to the host). */
  stop(reason = 'stopped'): void {
    if (this.state !== 'running') return;
    this.state = 'stopped';
    this.reason = reason;
    this.release();
  }

  private released = false;
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.khv.release();
  }

  private crash(e: unknown): void {
    this.state = 'crashed';
    if (e instanceof VmFault) this.reason = e.message;
    else if (e instanceof GuestMemoryError) this.reason = `guest-kernel-panic: ${e.message} in kernel memory`;
    else if (e instanceof OutOfHostMemory) this.reason = e.message;
    else this.reason = `internal-error: ${(e as Error)?.stack ?? String(e)}`;
  }

  private runVcpu(v: Vcpu, end: number): void {
    const h = v.hart;
    const ctr = h.ctr;
    while (ctr[Ctr.Cycles] < end) {
      // The stop state of technique 6's rendezvous: not run until the vCPU in the mode leaves it.
      if (this.pm.isStopped(v.id)) return;
      this.khv.tick(v);
      if (v.halted) {
        // Idle: the clock jumps to the next timer deadline (or the quantum's end).
        const t = Math.min(v.deadline, end);
        if (t > ctr[Ctr.Cycles]) { this.idle[v.id] += t - ctr[Ctr.Cycles]; ctr[Ctr.Cycles] = t; }
        if (ctr[Ctr.Cycles] < v.deadline) return;
        continue;
      }
      const timerPending = (h.mip & (1 << IRQ.VSTI)) !== 0;
      const stopAt = timerPending ? end : Math.min(end, v.deadline);
      const r = h.run(Math.max(1, Math.ceil(stopAt - ctr[Ctr.Cycles])));
      if (r === StopReason.Gate) this.kernel.gate(v);
      else if (r === StopReason.Trap) this.khv.handleExit(v);
      else if (r === StopReason.Wfi) this.khv.idle(v);
      const power = this.khv.device.power;
      if (power !== 'on') {
        this.state = power === 'off' ? 'stopped' : 'crashed';
        this.reason = power === 'off' ? 'poweroff' : 'guest-reported-failure';
        return;
      }
    }
  }

  /**
   * Injects an uncorrectable error into host frame `frame`, which this VM owns as guest RAM. Call
   * between `run` calls (the worker does, at a slice boundary), so the moment is deterministic in
   * simulated time. The error stays latent until something reads the page.
   * `latent`: the host has not noticed the error (POISON.Latent); otherwise it knows (POISON.Known),
   * which only hypervisor code that checks (a UME-aware migration) tells apart.
   * Returns the guest page and its owner. Raises: RangeError when the VM does not own the frame as guest RAM.
   */
  injectMemoryError(frame: number, latent = true): { gpa: number; owner: PageOwner; virtualTimeNs: number } {
    const gpa = this.khv.gstage.gpaOf.get(frame);
    if (gpa === undefined || this.host.state[frame] !== FrameState.Guest || this.host.owner[frame] !== this.owner) throw new RangeError(`frame ${frame} is not guest memory of this VM`);
    Atomics.store(this.host.poison, frame, latent ? POISON.Latent : POISON.Known);
    this.khv.flushAll();
    return { gpa, owner: this.pageOwner(gpa), virtualTimeNs: this.virtualTimeNs() };
  }

  /** The host frame backing guest page `gpa`, or of user address `va` of process `pid`; -1 when unbacked. */
  frameOf(target: { gpa: number } | { pid: number; va: number }): number {
    let gpa: number;
    if ('gpa' in target) gpa = target.gpa;
    else {
      const p = this.kernel.processes.find((x) => x.pid === target.pid && x.state !== 'exited');
      const e = p?.mm.pages.get(target.va >>> 12);
      if (e === undefined) return -1;
      gpa = pageBase(e);
    }
    if (!this.khv.gstage.isRam(gpa)) return -1;
    const f = this.khv.gstage.frameOf[(gpa - RAM_BASE) >>> 12];
    return f >= 0 ? f : -1;
  }

  private pageOwner(gpa: number): PageOwner {
    const o = this.kernel.ownerOf(pageBase(gpa));
    if (o.kind === 'process') return { kind: 'process', pid: o.p.pid, va: o.va };
    if (o.kind === 'kernel') return { kind: gpa >= CONSOLE_RING_BASE && gpa < ringGpa(CONSOLE_PORTS) ? 'device' : 'kernel' };
    return { kind: 'free' };
  }

  /** Every backed guest page with its host frame and owner (for GET /v1/vms/{id}/memory). */
  memoryPages(): Array<{ gpa: number; hpa: number; owner: PageOwner; corrupted: boolean }> {
    const out: Array<{ gpa: number; hpa: number; owner: PageOwner; corrupted: boolean }> = [];
    for (const { gpa, frame } of this.khv.gstage.backed()) out.push({ gpa, hpa: frame * PAGE_SIZE, owner: this.pageOwner(gpa), corrupted: false });
    for (const gpa of this.khv.corruptedPages) out.push({ gpa, hpa: -1, owner: this.pageOwner(gpa), corrupted: true });
    return out.sort((a, b) => a.gpa - b.gpa);
  }

  /** Virtual time of the VM (the furthest vCPU clock), ns. */
  virtualTimeNs(): number {
    let t = 0;
    for (const v of this.vcpus) t = Math.max(t, v.hart.ctr[Ctr.Cycles]);
    return t;
  }

  instructions(): number {
    let n = 0;
    for (const v of this.vcpus) n += v.hart.ctr[Ctr.Instructions];
    return n;
  }

  processes(): ProcessStatus[] { return this.kernel.statuses(); }

  private uhvCounters(): UhvCounters {
    const k = this.khv;
    return {
      transitionsByEdge: Object.fromEntries(EDGE_NAMES.map((n, i) => [n, k.edges[i]])),
      fieldAccesses: { ...k.control.accesses },
      exitCycles: Object.fromEntries([...k.exitCycles].sort().map(([r, cycles]) => {
        const exits = k.exits.get(r) ?? 0;
        return [r, { exits, cycles, perExit: exits ? cycles / exits : 0 }];
      })),
      block: k.device.blocks.map((b) => ({ ...b.counters })),
    };
  }

  /**
   * The block translators' counts and costs (Jit.stats), summed over the vCPUs; null while no vCPU
   * ran the jit. Not part of counters(): its times differ from run to run, and counters are
   * deterministic for a spec and seed.
   */
  jitStats(): Jit['stats'] | null {
    let sum: Jit['stats'] | null = null;
    for (const v of this.vcpus) {
      const s = v.hart.jit?.stats;
      if (!s) continue;
      if (!sum) sum = { ...s };
      else for (const k of Object.keys(s) as (keyof Jit['stats'])[]) sum[k] += s[k];
    }
    return sum;
  }

  counters(): VmCounters {
    const pm = this.pm.counters();
    const perVcpu = this.vcpus.map((v, i): VcpuCounters => {
      const c = v.hart.ctr;
      return {
        instructions: c[Ctr.Instructions], cycles: c[Ctr.Cycles] - this.idle[i] - pm.stoppedCycles[i], idleCycles: this.idle[i],
        crossings: c[Ctr.Crossings], tlbMisses: c[Ctr.TlbMisses], branchMispredicts: c[Ctr.BranchMispredicts],
        interrupts: c[Ctr.Interrupts],
      };
    });
    const sum = (k: keyof VcpuCounters) => perVcpu.reduce((n, c) => n + c[k], 0);
    return {
      instructions: sum('instructions'), cycles: sum('cycles'), idleCycles: sum('idleCycles'), crossings: sum('crossings'),
      tlbMisses: sum('tlbMisses'), branchMispredicts: sum('branchMispredicts'), interrupts: sum('interrupts'),
      transitions: this.khv.transitions,
      exits: Object.fromEntries([...this.khv.exits].sort()),
      syscalls: Object.fromEntries([...this.kernel.syscallCounts].sort()),
      enosys: Object.fromEntries([...this.kernel.enosys].sort((a, b) => a[0] - b[0])),
      doorbells: this.khv.device.counters.doorbells,
      virtualTimeNs: this.virtualTimeNs(),
      backedPages: this.khv.gstage.backedPages,
      syscallLookahead: structuredClone(this.kernel.lookahead),
      protectionDomains: this.domains.domains.length ? this.domains.counters() : null,
      privilegedMode: pm,
      uhv: this.uhvCounters(),
      callTableInlining: structuredClone(this.kernel.callTableStats),
      instanceCallInlining: structuredClone(this.kernel.instanceCallStats),
      speculativeGadgetReaches: this.vcpus.reduce((n, v) => n + v.hart.ctr[Ctr.GadgetReaches], 0),
      btbPredictedKernelCalls: this.vcpus.reduce((n, v) => n + v.hart.ctr[Ctr.KernelBtbCalls], 0),
      perVcpu,
    };
  }
}
