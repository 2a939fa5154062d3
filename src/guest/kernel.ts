/**
 * The guest OS personality: a Linux-RV32-compatible kernel running in VS mode. Its trap entry
 * and syscall dispatch are the RV32 kernel text (kernel-text.ts); the bodies of its handlers are
 * the native methods here, reached when a vCPU fetches from the gate page (StopReason.Gate).
 *
 * Memory: the kernel region (first 4 MiB of guest RAM) holds text, gates, the syscall table,
 * per-CPU areas and console rings; every other guest page is in the kernel's page pool and goes
 * to page tables and process memory. The kernel reaches guest RAM as a guest kernel would (its
 * stores to unbacked pages are gstage-fault exits), through the KHV's guest-RAM accessors.
 *
 * Processes are scheduled round-robin on the VM's vCPUs, preempted at a timer tick (TICK_CYCLES).
 * A user fault outside the process's regions kills only that process (SIGSEGV, SIGILL, ...); the
 * VM powers off through the power device when the last process has exited.
 */
import { ElfImage } from '../isa/elf.js';
import { PRIV_S, PRIV_U } from '../cpu/hart.js';
import { MS } from '../cpu/csr.js';
import { CAUSE, PTE } from '../mmu/mmu.js';
import { PAGE_SIZE, pageBase } from '../mmu/phys.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import { Khv, Vcpu } from '../hypervisor/khv.js';
import { GuestMemoryError, VmFault } from '../hypervisor/exits.js';
import { CONSOLE_PORTS, RAM_BASE, RING_DATA, RING_HEADER, ringGpa } from '../hypervisor/platform.js';
import { buildInitialStack } from './initial-stack.js';
import { buildKernelText, KernelText, SpectreV2Mitigation } from './kernel-text.js';
import { DEVICE_GPA, GATE, K, KERNEL_REGION, KERNEL_VA, DEVICE_VA, MAX_VCPUS, NR_MAX, PERCPU, kgpa, kva } from './layout.js';
import { MMAP_BASE, PROT, Process, ProcessStatus, Region, SIG, STACK_SIZE, STACK_TOP } from './process.js';
import { SeededRandom } from './random.js';
import { ENOSYS, SYSCALL_BY_NR, SyscallRow } from './syscalls.js';
import { LookaheadScanner } from './lookahead.js';
import { resolveTechniques, TechniqueSettings } from '../techniques/catalogue.js';

/** Preemption tick: 4 ms of virtual time (Linux HZ=250). */
export const TICK_CYCLES = 4_000_000;

/** The page address of a `Process.pages` entry (GPA + permission bits). */
const pageOf = pageBase;


export interface ProcessSpec {
  elf: ElfImage;
  name: string;
  argv: string[];
  env: string[];
  stdin: Uint8Array;
}

export interface KernelOptions {
  mitigation: SpectreV2Mitigation;
  seed: number;
  ramBytes: number;
  /** Effective technique settings (catalogue defaults when absent). */
  techniques?: TechniqueSettings;
}

/** Counters of syscall lookahead (technique 3). */
export interface LookaheadStats {
  syscallsMerged: number;
  crossingsAvoided: number;
  instructionsEmulated: number;
  instructionsScanned: number;
  chainEnds: Record<string, number>;
}

/** Per-vCPU kernel state. */
interface Cpu {
  vcpu: Vcpu;
  current: Process | null;
  /** The per-CPU area (saved x0..x31, PENDING, CONTINUE) as a view of host memory (backed at boot, never moves). */
  frame: Int32Array;
  /** Set by a handler that replaced the saved frame (context switch). */
  switched: boolean;
}

/** A syscall in progress: handlers get this and return a0. */
export interface SyscallCall {
  readonly cpu: Cpu;
  readonly p: Process;
  readonly a: Int32Array;
  /** Bytes copied, for the modelled cost. */
  copied: number;
}

/** The guest OS's state outside guest RAM (GuestKernel.exportState), JSON-safe. */
export interface GuestOsState {
  processes: Array<{
    pid: number; name: string; stdin: string; regs: number[]; pc: number; root: number; satp: number;
    pages: Array<[number, number]>; tables: Array<[number, number]>; regions: Region[]; brkStart: number; brk: number;
    stdinPos: number; state: Process['state']; wakeAt: number; writeDone: number;
    exitCode: number | null; signal: number | null; faultPc: number | null; faultAddress: number | null;
  }>;
  runQueue: number[];
  cpus: Array<number | null>;
  syscallCounts: Array<[string, number]>;
  enosys: Array<[number, number]>;
  freePages: number[];
  badPages: number[];
  nextPage: number;
  idleSatp: number;
  techniques: TechniqueSettings;
  lookahead: LookaheadStats;
  random: number[];
}

export class GuestKernel {
  readonly processes: Process[] = [];
  private readonly runQueue: Process[] = [];
  private readonly cpus: Cpu[];
  readonly text: KernelText;
  readonly random: SeededRandom;
  /** Syscalls by name, and unsupported (ENOSYS) syscalls by number. */
  readonly syscallCounts = new Map<string, number>();
  readonly enosys = new Map<number, number>();
  private readonly freePages: number[] = [];
  /** Guest pages with a memory error: never handed out again (Linux's HWPoison pages). */
  readonly badPages = new Set<number>();
  /** Called when a memory error killed a process or was found in a free page. */
  onMemoryFailure: ((e: { gpa: number; pid: number | null; va: number | null; owner: 'process' | 'free' }) => void) | null = null;
  private nextPage: number;
  private readonly endPage: number;
  private idleSatp = 0;
  private readonly args = new Int32Array(6);
  /** Technique settings; changing them takes effect at the next syscall. */
  techniques: TechniqueSettings;
  readonly lookahead: LookaheadStats = { syscallsMerged: 0, crossingsAvoided: 0, instructionsEmulated: 0, instructionsScanned: 0, chainEnds: {} };
  private readonly scanner = new LookaheadScanner();
  /** The user registers a lookahead chain works on, and their a0-a5 as syscall arguments. */
  private readonly chainRegs = new Int32Array(32);
  private readonly chainArgs = this.chainRegs.subarray(10, 16);

  constructor(readonly khv: Khv, vcpus: Vcpu[], readonly opts: KernelOptions) {
    if (vcpus.length < 1 || vcpus.length > MAX_VCPUS) throw new RangeError(`vcpus must be 1-${MAX_VCPUS}`);
    if (opts.ramBytes < 2 * KERNEL_REGION) throw new RangeError(`guest memory must be at least ${(2 * KERNEL_REGION) >> 20} MiB`);
    this.text = buildKernelText(opts.mitigation);
    this.random = new SeededRandom(opts.seed);
    this.nextPage = RAM_BASE + KERNEL_REGION;
    this.endPage = RAM_BASE + opts.ramBytes;
    this.cpus = vcpus.map((vcpu) => ({ vcpu, current: null, frame: new Int32Array(0), switched: false }));
    this.techniques = opts.techniques ?? resolveTechniques();
  }

  /**
   * Boots: writes the kernel text, syscall table, idle page table; creates every process and
   * puts the first ones on the vCPUs. Raises: OutOfHostMemory; Error when a process does not fit.
   */
  boot(specs: ProcessSpec[]): void {
    const khv = this.khv;
    khv.writeBytes(kgpa(K.TEXT), this.text.bytes);
    const gateHpa = khv.hpaOf(kgpa(K.GATES));
    for (let nr = 0; nr < NR_MAX; nr++) {
      khv.write32(kgpa(K.SYSCALL_TABLE) + 4 * nr, this.gateVa(SYSCALL_BY_NR.get(nr) ? nr : GATE.NI));
    }
    this.writeKernelMappings(kgpa(K.IDLE_ROOT));
    this.idleSatp = (0x80000000 | (kgpa(K.IDLE_ROOT) / PAGE_SIZE)) | 0;
    for (let port = 0; port < CONSOLE_PORTS; port++) khv.fill(ringGpa(port), RING_HEADER, 0);
    const entry = this.text.symbols.get('trap_entry')!;
    this.attachCpus(gateHpa);
    this.cpus.forEach((c, i) => {
      const h = c.vcpu.hart;
      h.vstvec = entry;
      h.scounteren = 7; // user programs may read cycle/time/instret, as under Linux
      h.vsscratch = kva(K.PERCPU + i * K.PERCPU_SIZE) | 0;
      c.vcpu.deadline = TICK_CYCLES;
    });
    specs.forEach((s, i) => this.spawn(i + 1, s));
    for (const c of this.cpus) this.enterDirect(c, this.runQueue.shift() ?? null);
  }

  /**
   * Everything the guest OS holds outside guest RAM, as JSON-safe data (the GUEST_OS record of a
   * live migration). Call between slices (no syscall in progress).
   */
  exportState(): GuestOsState {
    return {
      processes: this.processes.map((p) => ({
        pid: p.pid, name: p.name, stdin: Buffer.from(p.stdin).toString('base64'), regs: [...p.regs], pc: p.pc, root: p.root, satp: p.satp,
        pages: [...p.pages], tables: [...p.tables], regions: p.regions.map((r) => ({ ...r })), brkStart: p.brkStart, brk: p.brk,
        stdinPos: p.stdinPos, state: p.state, wakeAt: p.wakeAt, writeDone: p.writeDone,
        exitCode: p.exitCode ?? null, signal: p.signal ?? null, faultPc: p.faultPc ?? null, faultAddress: p.faultAddress ?? null,
      })),
      runQueue: this.runQueue.map((p) => p.pid),
      cpus: this.cpus.map((c) => (c.current ? c.current.pid : null)),
      syscallCounts: [...this.syscallCounts], enosys: [...this.enosys], freePages: [...this.freePages], badPages: [...this.badPages],
      nextPage: this.nextPage, idleSatp: this.idleSatp, techniques: this.techniques, lookahead: this.lookahead, random: this.random.state,
    };
  }

  /**
   * Takes over a guest OS from `exportState` of another VM whose RAM has already been copied into
   * this one (instead of `boot`): configures the vCPUs for this KHV and points the per-CPU and
   * gate views at this host's frames. Raises: Error (a bad state), GuestMemoryError, OutOfHostMemory.
   */
  importState(st: GuestOsState): void {
    const byPid = new Map<number, Process>();
    for (const q of st.processes) {
      const p = new Process(q.pid, q.name, new Uint8Array(Buffer.from(q.stdin, 'base64')));
      p.regs.set(q.regs);
      p.pc = q.pc; p.root = q.root; p.satp = q.satp;
      for (const [k, v] of q.pages) p.pages.set(k, v);
      for (const [k, v] of q.tables) p.tables.set(k, v);
      p.regions.push(...q.regions);
      p.brkStart = q.brkStart; p.brk = q.brk; p.stdinPos = q.stdinPos; p.state = q.state; p.wakeAt = q.wakeAt; p.writeDone = q.writeDone;
      if (q.exitCode !== null) p.exitCode = q.exitCode;
      if (q.signal !== null) { p.signal = q.signal; p.faultPc = q.faultPc ?? 0; p.faultAddress = q.faultAddress ?? 0; }
      this.processes.push(p);
      byPid.set(p.pid, p);
    }
    const find = (pid: number): Process => {
      const p = byPid.get(pid);
      if (!p) throw new Error(`guest OS state names unknown pid ${pid}`);
      return p;
    };
    this.runQueue.push(...st.runQueue.map(find));
    if (st.cpus.length !== this.cpus.length) throw new Error(`guest OS state has ${st.cpus.length} CPUs, this VM ${this.cpus.length}`);
    for (const [k, v] of st.syscallCounts) this.syscallCounts.set(k, v);
    for (const [k, v] of st.enosys) this.enosys.set(k, v);
    this.freePages.push(...st.freePages);
    for (const g of st.badPages) this.badPages.add(g);
    this.nextPage = st.nextPage;
    this.idleSatp = st.idleSatp;
    this.techniques = st.techniques;
    Object.assign(this.lookahead, st.lookahead);
    this.random.state = st.random;
    this.cpus.forEach((c, i) => { c.current = st.cpus[i] === null ? null : find(st.cpus[i]!); });
    this.attachCpus(this.khv.hpaOf(kgpa(K.GATES)));
  }

  /** Configures every vCPU for this KHV and points the per-CPU views and gate range at this host's frames. */
  private attachCpus(gateHpa: number): void {
    const khv = this.khv;
    this.cpus.forEach((c, i) => {
      const frameHpa = khv.hpaOf(kgpa(K.PERCPU + i * K.PERCPU_SIZE));
      c.frame = khv.mem.i32.subarray(frameHpa >>> 2, (frameHpa + K.PERCPU_SIZE) >>> 2);
      const h = c.vcpu.hart;
      khv.configure(h);
      h.gateBase = gateHpa;
      h.gateEnd = gateHpa + PAGE_SIZE;
    });
  }

  /** Guest pages the kernel writes through host-memory views rather than the KHV (the per-CPU areas): a migration always sends them at switch-over. */
  viewPages(): number[] {
    return [...new Set(this.cpus.map((_c, i) => pageBase(kgpa(K.PERCPU + i * K.PERCPU_SIZE))))];
  }

  private gateVa(index: number): number { return (kva(K.GATES) + 4 * index) | 0; }

  /** Root entries every address space shares: the kernel region and the device region. */
  private writeKernelMappings(root: number): void {
    const k = (((RAM_BASE / PAGE_SIZE) << 10) | PTE.V | PTE.R | PTE.W | PTE.X | PTE.G | PTE.A | PTE.D) | 0;
    const d = (((DEVICE_GPA / PAGE_SIZE) << 10) | PTE.V | PTE.R | PTE.W | PTE.G | PTE.A | PTE.D) | 0;
    this.khv.write32(root + 4 * (KERNEL_VA >>> 22), k);
    this.khv.write32(root + 4 * (DEVICE_VA >>> 22), d);
  }

  // *** guest page pool ***

  /** A free guest page (zeroed), or -1 when guest RAM is exhausted. */
  private allocPage(): number {
    let gpa: number;
    if (this.freePages.length) gpa = this.freePages.pop()!;
    else if (this.nextPage < this.endPage) { gpa = this.nextPage; this.nextPage += PAGE_SIZE; }
    else return -1;
    this.khv.fill(gpa, PAGE_SIZE, 0);
    return gpa;
  }

  private freePage(gpa: number): void {
    if (this.badPages.has(gpa)) return;
    const hpa = this.khv.gstage.hpa(gpa);
    if (hpa >= 0) this.khv.nativeWrite(hpa);
    this.freePages.push(gpa);
  }

  /** Who owns guest page `gpa`: a process (and the user address it is mapped at), the kernel, or nobody. */
  ownerOf(gpa: number): { kind: 'process'; p: Process; va: number | null } | { kind: 'kernel' } | { kind: 'free' } {
    if (gpa < RAM_BASE + KERNEL_REGION) return { kind: 'kernel' };
    for (const p of this.processes) {
      if (p.state === 'exited') continue;
      for (const [vpn, e] of p.pages) if (pageOf(e) === gpa) return { kind: 'process', p, va: vpn * PAGE_SIZE };
      if (p.root === gpa || [...p.tables.values()].includes(gpa)) return { kind: 'process', p, va: null };
    }
    return { kind: 'free' };
  }

  /**
   * Linux memory_failure for a corrupted guest page hit by an access from vCPU `v` (the hart is
   * in the hypervisor, after the machine check): the owning process dies with SIGBUS and the page
   * is never reused; the vCPU resumes with the next runnable process, idles, or powers off.
   * Raises: VmFault('guest-kernel-panic') when the page belongs to the kernel.
   */
  memoryFailureTrap(v: Vcpu, gpa: number, va: number, pc: number, fromUser: boolean): void {
    const c = this.cpus[v.id];
    this.badPages.add(gpa);
    const owner = this.ownerOf(gpa);
    if (!fromUser || owner.kind !== 'process') {
      throw new VmFault('guest-kernel-panic', `memory error in ${owner.kind === 'process' ? 'a page table' : owner.kind} memory at guest-physical 0x${gpa.toString(16)} (pc 0x${(pc >>> 0).toString(16)})`);
    }
    const p = owner.p;
    this.kill(p, { sig: SIG.SIGBUS, pc, addr: va });
    this.onMemoryFailure?.({ gpa, pid: p.pid, va, owner: 'process' });
    if (c.current === p) {
      c.current = null;
      this.enterDirect(c, this.runQueue.shift() ?? null);
    }
  }

  /** A memory error the guest kernel met in its own copy of guest memory (in a syscall): the page's owner gets SIGBUS. */
  private memoryFailureInKernel(c: Cpu, e: GuestMemoryError): void {
    const gpa = pageBase(e.gpa);
    this.badPages.add(gpa);
    const owner = this.ownerOf(gpa);
    if (owner.kind !== 'process') throw new VmFault('guest-kernel-panic', `memory error in ${owner.kind} memory at guest-physical 0x${gpa.toString(16)}`);
    this.onMemoryFailure?.({ gpa, pid: owner.p.pid, va: owner.va, owner: 'process' });
    if (owner.p === c.current) this.exit(c, owner.p, null, { sig: SIG.SIGBUS, pc: c.vcpu.hart.vsepc - 4, addr: owner.va ?? 0 });
    else this.kill(owner.p, { sig: SIG.SIGBUS, pc: 0, addr: owner.va ?? 0 });
  }

  /** Ends a process that is not running on the calling path (it may be runnable or sleeping). */
  private kill(p: Process, signal: { sig: number; pc: number; addr: number }): void {
    p.signal = signal.sig; p.faultPc = signal.pc >>> 0; p.faultAddress = signal.addr >>> 0;
    p.state = 'exited';
    const q = this.runQueue.indexOf(p);
    if (q >= 0) this.runQueue.splice(q, 1);
    this.onProcessExit?.(p.status());
    this.teardown(p);
  }

  // *** address spaces ***

  /** Maps user page `va` with `perms`; returns the page's GPA, or -1 when guest RAM is exhausted. */
  private map(p: Process, va: number, perms: number): number {
    const vpn = va >>> 12;
    const have = p.pages.get(vpn);
    if (have !== undefined) return pageOf(have);
    const l1 = vpn >>> 10;
    let table = p.tables.get(l1);
    if (table === undefined) {
      table = this.allocPage();
      if (table < 0) return -1;
      p.tables.set(l1, table);
      this.khv.write32(p.root + 4 * l1, ((table / PAGE_SIZE) << 10) | PTE.V);
    }
    const gpa = this.allocPage();
    if (gpa < 0) return -1;
    this.khv.write32(table + 4 * (vpn & 0x3ff), ((gpa / PAGE_SIZE) << 10) | perms | PTE.U | PTE.V | PTE.A | PTE.D);
    p.pages.set(vpn, gpa + perms);
    return gpa;
  }

  /** Unmaps user pages in [start, end) and returns them to the pool. */
  unmapRange(p: Process, start: number, end: number): void {
    let any = false;
    for (let va = start; va < end; va += PAGE_SIZE) {
      const vpn = va >>> 12;
      const e = p.pages.get(vpn);
      if (e === undefined) continue;
      this.khv.write32(p.tables.get(vpn >>> 10)! + 4 * (vpn & 0x3ff), 0);
      p.pages.delete(vpn);
      this.freePage(pageOf(e));
      any = true;
    }
    if (any) this.flushTlbs();
  }

  private flushTlbs(): void {
    for (const c of this.cpus) c.vcpu.hart.mmu.flushAll();
  }

  /**
   * GPA of user byte `va` for an access needing `perm` (PROT bits; 0 = any mapped page), mapping
   * it on demand when a region allows it (as a page fault taken in copy_from_user would); -1 = EFAULT.
   */
  private userGpa(p: Process, va: number, perm: number): number {
    if (va < 0 || va >= 0xc000_0000) return -1;
    const e = p.pages.get(va >>> 12);
    if (e !== undefined) return perm === 0 || (e & perm) ? pageOf(e) + (va & 0xfff) : -1;
    const r = p.region(va);
    if (!r || !(r.perms & perm)) return -1;
    const gpa = this.map(p, va & ~0xfff, r.perms);
    return gpa < 0 ? -1 : gpa + (va & 0xfff);
  }

  /**
   * Calls `fn(gpa, offset, n)` for each page-bounded piece of user memory [va, va + len) that
   * allows `perm`; stops at the first that does not. Returns the bytes covered.
   */
  private userSpans(p: Process, va: number, len: number, perm: number, fn: (gpa: number, offset: number, n: number) => void): number {
    for (let i = 0; i < len;) {
      const a = (va + i) >>> 0;
      const n = Math.min(len - i, PAGE_SIZE - (a & 0xfff));
      const gpa = this.userGpa(p, a, perm);
      if (gpa < 0) return i;
      fn(gpa, i, n);
      i += n;
    }
    return len;
  }

  /** Copies user memory out; returns null on EFAULT. */
  copyIn(p: Process, va: number, len: number): Uint8Array | null {
    const out = new Uint8Array(len);
    const done = this.userSpans(p, va, len, PROT.R, (gpa, i, n) => out.set(this.khv.readBytes(gpa, n), i));
    return done === len ? out : null;
  }

  /** Copies into user memory (needing write permission, or none with `anyPage`); returns the bytes copied before a fault. */
  copyOut(p: Process, va: number, bytes: Uint8Array, anyPage = false): number {
    return this.userSpans(p, va, bytes.length, anyPage ? 0 : PROT.W, (gpa, i, n) => this.khv.writeBytes(gpa, bytes.subarray(i, i + n)));
  }

  // *** processes ***

  /** Creates a process from an ELF: page table, segments, initial stack. Raises: Error when guest RAM is too small. */
  private spawn(pid: number, s: ProcessSpec): Process {
    const p = new Process(pid, s.name, s.stdin);
    const root = this.allocPage();
    if (root < 0) throw new Error('guest memory is too small for the processes');
    p.root = root;
    p.satp = (0x80000000 | (root / PAGE_SIZE)) | 0;
    this.writeKernelMappings(root);
    let end = 0;
    for (const seg of s.elf.segments) {
      const perms = (seg.readable ? PROT.R : 0) | (seg.writable ? PROT.W : 0) | (seg.executable ? PROT.X : 0);
      const start = seg.vaddr & ~0xfff, stop = (seg.vaddr + seg.memsz + 0xfff) & ~0xfff;
      if (stop > STACK_TOP - STACK_SIZE) throw new Error(`segment at 0x${seg.vaddr.toString(16)} overlaps the stack`);
      p.regions.push({ start, end: stop, perms, kind: 'elf' });
      for (let a = start; a < stop; a += PAGE_SIZE) if (this.map(p, a, perms) < 0) throw new Error('guest memory is too small for the processes');
      this.copyOut(p, seg.vaddr, s.elf.bytes.subarray(seg.offset, seg.offset + seg.filesz), true);
      end = Math.max(end, stop);
    }
    p.brkStart = p.brk = end;
    p.regions.push({ start: end, end, perms: PROT.R | PROT.W, kind: 'heap' });
    p.regions.push({ start: STACK_TOP - STACK_SIZE, end: STACK_TOP, perms: PROT.R | PROT.W, kind: 'stack' });
    const stack = buildInitialStack(s.elf, s.argv, s.env, this.random.bytes(16), STACK_TOP);
    if (this.copyOut(p, stack.sp, stack.bytes) !== stack.bytes.length) throw new Error('guest memory is too small for the processes');
    p.pc = s.elf.entry;
    p.regs[2] = stack.sp;
    this.processes.push(p);
    this.runQueue.push(p);
    return p;
  }

  private heapRegion(p: Process): Region { return p.regions.find((r) => r.kind === 'heap')!; }

  /** brk(2): moves the break within [brkStart, mmap base); returns the (new) break. */
  setBrk(p: Process, want: number): number {
    if (want < p.brkStart || want >= MMAP_BASE) return p.brk;
    const heap = this.heapRegion(p);
    const oldEnd = heap.end, newEnd = (want + 0xfff) & ~0xfff;
    if (newEnd < oldEnd) this.unmapRange(p, newEnd, oldEnd);
    heap.end = newEnd;
    p.brk = want;
    return p.brk;
  }

  /** mmap2 of anonymous memory: a free range of `len` bytes (or exactly `fixed`); -ENOMEM as -12. */
  mmap(p: Process, len: number, perms: number, fixed: number | null): number {
    const size = (len + 0xfff) & ~0xfff;
    let start = fixed;
    if (start === null) {
      start = MMAP_BASE;
      const taken = p.regions.filter((r) => r.kind === 'mmap').sort((a, b) => a.start - b.start);
      for (const r of taken) { if (start + size <= r.start) break; start = Math.max(start, r.end); }
      if (start + size > STACK_TOP - STACK_SIZE) return -12;
    } else {
      this.munmap(p, start, size);
    }
    p.regions.push({ start, end: start + size, perms, kind: 'mmap' });
    return start;
  }

  /** munmap: drops mmap regions (or parts of them) in [start, start+len). */
  munmap(p: Process, start: number, len: number): void {
    const end = start + ((len + 0xfff) & ~0xfff);
    for (const r of [...p.regions]) {
      if (r.kind !== 'mmap' || r.end <= start || r.start >= end) continue;
      p.regions.splice(p.regions.indexOf(r), 1);
      if (r.start < start) p.regions.push({ ...r, end: start });
      if (r.end > end) p.regions.push({ ...r, start: end });
    }
    this.unmapRange(p, start, end);
  }

  /** Frees everything a process holds. */
  private teardown(p: Process): void {
    for (const e of p.pages.values()) this.freePage(pageOf(e));
    for (const t of p.tables.values()) this.freePage(t);
    this.freePage(p.root);
    p.pages.clear();
    p.tables.clear();
    this.flushTlbs();
  }

  // *** scheduling ***

  /** Puts a vCPU that is not inside the kernel (at boot, after a machine check) on `p`, or idle / power-off. */
  private enterDirect(c: Cpu, p: Process | null): void {
    const h = c.vcpu.hart;
    h.virt = 1;
    if (p) {
      h.x.set(p.regs);
      h.pc = p.pc;
      h.priv = PRIV_U;
      h.vsatp = p.satp;
      p.state = 'running';
    } else {
      h.pc = this.parkPc();
      h.priv = PRIV_S;
      h.vsatp = this.idleSatp;
      h.vsstatus |= MS.SIE;
    }
    h.irqDirty = true;
    c.current = p;
    h.mmu.flushAll();
  }

  /** Where a vCPU with no process goes: the idle loop, or power-off once every process has exited. */
  private parkPc(): number {
    return this.text.symbols.get(this.processes.every((q) => q.state === 'exited') ? 'poweroff' : 'idle')!;
  }

  /** Saves the interrupted user context of `c.current` from the per-CPU frame. */
  private save(c: Cpu, p: Process): void {
    p.regs.set(c.frame.subarray(0, 32));
    p.regs[0] = 0;
    p.pc = c.vcpu.hart.vsepc;
  }

  /** Makes the stub return to `p`, or to the idle loop / power-off when p is null. */
  private switchTo(c: Cpu, p: Process | null): void {
    const h = c.vcpu.hart;
    c.switched = true;
    c.current = p;
    if (p) {
      c.frame.set(p.regs);
      h.vsepc = p.pc;
      h.vsstatus = (h.vsstatus & ~MS.SPP) | MS.SPIE;
      h.vsatp = p.satp;
      p.state = 'running';
    } else {
      h.vsepc = this.parkPc();
      h.vsstatus |= MS.SPP | MS.SPIE;
      h.vsatp = this.idleSatp;
    }
    h.mmu.flushAll();
  }

  /** The current process gives up its vCPU (yield, sleep); the next runnable one gets it. */
  private reschedule(c: Cpu, requeue: boolean): void {
    const p = c.current!;
    this.save(c, p);
    if (requeue) { p.state = 'runnable'; this.runQueue.push(p); }
    this.switchTo(c, this.runQueue.shift() ?? null);
  }

  yield(call: SyscallCall): number {
    if (this.runQueue.length === 0) return 0;
    this.reschedule(call.cpu, true);
    call.p.regs[10] = 0;
    return 0;
  }

  sleepUntil(call: SyscallCall, wakeAt: number): number {
    if (wakeAt <= this.now(call.cpu)) return 0;
    const p = call.p;
    p.state = 'sleeping';
    p.wakeAt = wakeAt;
    this.reschedule(call.cpu, false);
    p.regs[10] = 0;
    return 0;
  }

  /** Called when a process has exited (normally or by a signal). */
  onProcessExit: ((s: ProcessStatus) => void) | null = null;

  /** Ends the current process with an exit code or a signal, then schedules the next one. */
  exit(c: Cpu, p: Process, code: number | null, signal?: { sig: number; pc: number; addr: number }): void {
    if (code !== null) p.exitCode = code & 0xff;
    if (signal) { p.signal = signal.sig; p.faultPc = signal.pc >>> 0; p.faultAddress = signal.addr >>> 0; }
    p.state = 'exited';
    this.onProcessExit?.(p.status());
    this.teardown(p);
    this.switchTo(c, this.runQueue.shift() ?? null);
  }

  now(c: Cpu): number { return c.vcpu.hart.ctr[Ctr.Cycles]; }

  // *** gates ***

  /**
   * Runs the native handler of the gate the vCPU stopped at, then returns to `ra` as the
   * handler's `ret` would (through the return-stack predictor).
   * Raises: VmFault('guest-kernel-panic') for a fault inside the kernel; OutOfHostMemory.
   */
  gate(v: Vcpu): void {
    const h = v.hart;
    const c = this.cpus[v.id];
    const index = ((h.pc >>> 0) - kva(K.GATES)) >>> 2;
    this.khv.runningOn(h);
    c.switched = false;
    let cost = COSTS.gateBase;
    if (index < NR_MAX || index === GATE.NI) {
      if (!c.current) throw new VmFault('guest-kernel-panic', 'syscall gate reached with no current process');
      for (let i = 0; i < 6; i++) this.args[i] = h.x[10 + i];
      const call: SyscallCall = { cpu: c, p: c.current, a: this.args, copied: 0 };
      let r = this.dispatch(call, h.x[17]);
      cost += Math.ceil(call.copied / COSTS.gateBytesPerCycle);
      const la = this.techniques.syscallLookahead;
      if (la?.enabled && !c.switched && c.frame[PERCPU.CONTINUE >> 2] === 0) {
        const chained = this.chain(c, call.p, r, la.window as number, la.allowForwardBranches as boolean, la.maxChain as number);
        r = chained.result;
        cost += chained.cost;
      }
      h.x[10] = c.switched ? c.frame[10] : r;
    } else if (index === GATE.TRAP) {
      this.trap(c);
    } else if (index === GATE.IRQ) {
      const next = this.irq(c);
      h.x[10] = next % 2 ** 32 | 0;
      h.x[11] = Math.floor(next / 2 ** 32);
    } else {
      throw new VmFault('guest-kernel-panic', `jump to unused gate ${index}`);
    }
    h.ctr[Ctr.Cycles] += cost;
    const ra = h.x[1];
    h.linkJalr(0, 1, ra, h.pc, 4);
    h.pc = ra;
    this.khv.runningOn(null);
  }

  /**
   * Runs syscall `nr` natively (its handler, or -ENOSYS counted per number) and returns a0. A
   * memory error met while copying guest memory becomes the page owner's SIGBUS (-EFAULT here).
   */
  private dispatch(call: SyscallCall, nr: number): number {
    const row = nr >= 0 && nr < NR_MAX ? SYSCALL_BY_NR.get(nr) : undefined;
    try {
      if (!row) {
        this.enosys.set(nr >>> 0, (this.enosys.get(nr >>> 0) ?? 0) + 1);
        return -ENOSYS;
      }
      if (call.p.writeDone === 0) this.count(row); // a write continued after a flush is one syscall
      return row.handler(this, call);
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e;
      this.memoryFailureInKernel(call.cpu, e);
      return -14;
    }
  }

  /**
   * Syscall lookahead: while the next ecall is within `window` instructions and everything before
   * it is viable, emulate those instructions on the saved user registers, handle that syscall here,
   * and go on. Returns the user's a0 and the cycles the scans, emulation and handlers cost.
   */
  private chain(c: Cpu, p: Process, result: number, window: number, allowForwardBranches: boolean, maxChain: number): { result: number; cost: number } {
    const h = c.vcpu.hart;
    const f = c.frame;
    const stats = this.lookahead;
    const end = (why: string) => { stats.chainEnds[why] = (stats.chainEnds[why] ?? 0) + 1; };
    const regs = this.chainRegs;
    let cost = 0;
    for (let merged = 0; ; merged++) {
      if (merged >= maxChain) { end('maxChain'); break; }
      regs.set(f.subarray(0, 32));
      regs[0] = 0;
      regs[10] = result;
      const scan = this.scanner.scan(h, regs, h.vsepc, window, allowForwardBranches);
      stats.instructionsScanned += scan.scanned;
      cost += scan.scanned * COSTS.lookaheadDecode;
      if (scan.ecallPc === null) { end(scan.end!); break; }
      // Commit: the emulated instructions' stores, registers and pc become the process's state.
      this.scanner.commit((pa, byte) => { h.mem.u8[pa] = byte; this.khv.nativeWrite(pa); });
      f.set(regs.subarray(1), 1);
      h.vsepc = (scan.ecallPc + 4) | 0;
      stats.instructionsEmulated += scan.emulated;
      cost += scan.emulated * COSTS.lookaheadEmulate;
      stats.syscallsMerged++;
      stats.crossingsAvoided += 2;
      const call: SyscallCall = { cpu: c, p, a: this.chainArgs, copied: 0 };
      result = this.dispatch(call, regs[17]);
      cost += COSTS.gateBase + Math.ceil(call.copied / COSTS.gateBytesPerCycle);
      if (c.switched) { end('contextSwitch'); break; }
      if (f[PERCPU.CONTINUE >> 2] !== 0) { end('continuedWrite'); break; }
    }
    return { result, cost };
  }

  private count(row: SyscallRow): void {
    this.syscallCounts.set(row.name, (this.syscallCounts.get(row.name) ?? 0) + 1);
  }

  /** An exception from user mode (scause != ecall): demand paging, or a signal. */
  private trap(c: Cpu): void {
    const h = c.vcpu.hart;
    const p = c.current;
    const cause = h.vscause, addr = h.vstval >>> 0, pc = h.vsepc;
    if (!p || (h.vsstatus & MS.SPP)) throw new VmFault('guest-kernel-panic', `kernel trap cause ${cause} at 0x${(pc >>> 0).toString(16)} (address 0x${addr.toString(16)})`);
    if (cause === CAUSE.fetchPage || cause === CAUSE.loadPage || cause === CAUSE.storePage) {
      const need = cause === CAUSE.fetchPage ? PROT.X : cause === CAUSE.loadPage ? PROT.R : PROT.W;
      const r = p.region(addr);
      if (r && (r.perms & need) && !p.pages.has(addr >>> 12)) {
        if (this.map(p, addr & ~0xfff, r.perms) < 0) this.exit(c, p, null, { sig: SIG.SIGKILL, pc, addr });
        return;
      }
      this.exit(c, p, null, { sig: SIG.SIGSEGV, pc, addr });
      return;
    }
    const sig = cause === CAUSE.illegal ? SIG.SIGILL
      : cause === CAUSE.breakpoint ? SIG.SIGTRAP
      : cause === CAUSE.fetchMisaligned || cause === CAUSE.loadMisaligned || cause === CAUSE.storeMisaligned ? SIG.SIGBUS
      : SIG.SIGSEGV;
    this.exit(c, p, null, { sig, pc, addr });
  }

  /** Timer tick: wake sleepers, preempt, and return the next deadline. */
  private irq(c: Cpu): number {
    const now = this.now(c);
    let next = now + TICK_CYCLES;
    for (const p of this.processes) {
      if (p.state !== 'sleeping') continue;
      if (p.wakeAt <= now) { p.state = 'runnable'; this.runQueue.push(p); } else next = Math.min(next, p.wakeAt);
    }
    if (this.runQueue.length > 0) {
      if (c.current) this.reschedule(c, true);
      else this.switchTo(c, this.runQueue.shift()!);
    }
    return next;
  }

  // *** console ***

  /**
   * Queues user bytes on a console port's ring and asks the stub to ring the doorbell. Returns
   * the number of bytes queued (at most what the ring holds); -14 (EFAULT) when nothing could be read.
   */
  consoleWrite(call: SyscallCall, port: number, va: number, len: number): number {
    const base = ringGpa(port);
    const head = this.khv.read32(base) >>> 0, tail = this.khv.read32(base + 4) >>> 0;
    const room = RING_DATA - ((head - tail) >>> 0);
    const done = this.userSpans(call.p, va, Math.min(len, room), PROT.R, (gpa, i, chunk) => {
      const bytes = this.khv.readBytes(gpa, chunk);
      const pos = (head + i) % RING_DATA;
      const first = Math.min(chunk, RING_DATA - pos);
      this.khv.writeBytes(base + RING_HEADER + pos, bytes.subarray(0, first));
      if (first < chunk) this.khv.writeBytes(base + RING_HEADER, bytes.subarray(first));
    });
    if (done === 0 && len > 0) return -14;
    this.khv.write32(base, (head + done) | 0);
    call.copied += done;
    call.cpu.frame[PERCPU.PENDING >> 2] |= 1 << port;
    return done;
  }

  /** Asks the stub to dispatch the same syscall again after the doorbell (CONTINUE). */
  continueAfterFlush(call: SyscallCall): void {
    call.cpu.frame[PERCPU.CONTINUE >> 2] = 1;
  }

  // *** reporting ***

  statuses(): ProcessStatus[] { return this.processes.map((p) => p.status()); }
}
