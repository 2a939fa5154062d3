/**
 * The guest OS personality: a Linux-RV32-compatible kernel running in VS mode. Its trap entry
 * and syscall dispatch are the RV32 kernel text (kernel-text.ts); the bodies of its handlers are
 * native, reached when a vCPU fetches from the gate page (StopReason.Gate).
 *
 * This module builds the kernel from its parts and is its gate dispatcher:
 *   page-pool.ts       guest pages above the kernel region (free list, bad pages)
 *   address-space.ts   one per process: page table, regions, brk, mmap, copyIn/copyOut
 *   process.ts         a process (registers, address space, status); processes.ts the table of them
 *   scheduler.ts       run queue, per-CPU state, context switches, sleep, the timer tick
 *   syscall-abi.ts     the contract with the syscall table, which the kernel is given (syscalls.ts)
 *   syscall-chain.ts   technique 3's chain of syscalls after a handler
 *   memory-failure.ts  memory errors: the owning process gets SIGBUS
 *   console.ts         the console driver (rings + doorbell)
 *   vfs.ts             the file layer: fd tables, open-file objects, file kinds, pipes
 *   search-trampoline.ts  technique 4's search trampoline for the syscall table's call
 *   instance-trampolines.ts  technique 2's per-process trampolines for the file method call
 *
 * Memory: the kernel region (first 4 MiB of guest RAM) holds text, gates, the syscall table,
 * per-CPU areas and the console rings; every other guest page is in the page pool. The kernel
 * reaches guest RAM as a guest kernel would (its stores to unbacked pages are gstage-fault
 * exits), through the KHV's guest-RAM accessors.
 *
 * A user fault outside the process's regions kills only that process (SIGSEGV, SIGILL, ...); the
 * VM powers off through the power device when the last process has exited.
 */
import { MS } from '../cpu/csr.js';
import { CAUSE } from '../mmu/mmu.js';
import { PAGE_SIZE, pageBase } from '../mmu/phys.js';
import { COSTS, Ctr } from '../uarch/costs.js';
import type { Khv, Vcpu } from '../hypervisor/khv.js';
import { DomainAccessError, GuestMemoryError, VmFault } from '../hypervisor/exits.js';
import { RAM_BASE } from '../hypervisor/platform.js';
import { resolveTechniques, TechniqueSettings } from '../techniques/catalogue.js';
import { AddressSpace, AddressSpaceState, MemoryContext, PROT, writeKernelMappings } from './address-space.js';
import { ConsoleDriver } from './console.js';
import { ERRNO } from './errno.js';
import { buildKernelText, KernelText, SpectreV2Mitigation } from './kernel-text.js';
import { GATE, K, KERNEL_REGION, MAX_VCPUS, NR_MAX, NR_PM, NR_PM_DOORBELL, NR_PM_PROBE, PERCPU, kgpa, kva } from './layout.js';
import { MemoryFailure, MemoryFailureReport } from './memory-failure.js';
import { PagePool } from './page-pool.js';
import { Process, ProcessStatus, SIG } from './process.js';
import { GuestPageOwner, ProcessSpec, ProcessTable } from './processes.js';
import { SeededRandom } from './random.js';
import { Cpu, Scheduler, TICK_CYCLES } from './scheduler.js';
import { LookaheadStats, SyscallChain } from './syscall-chain.js';
import type { SyscallCall, SyscallKernel, SyscallRow, SyscallTable } from './syscall-abi.js';
import { Vfs } from './vfs.js';
import { BlockDriver } from './block.js';
import { CallTableState, CallTableStats, SearchTrampoline } from './search-trampoline.js';
import { InstanceCallOptions, InstanceCallState, InstanceCallStats, InstanceTrampolines } from './instance-trampolines.js';

export interface KernelOptions {
  mitigation: SpectreV2Mitigation;
  seed: number;
  ramBytes: number;
  /** The syscall table the kernel dispatches through (syscalls.ts's SYSCALLS for the Linux personality). */
  syscalls: SyscallTable;
  /** Effective technique settings (catalogue defaults when absent). */
  techniques?: TechniqueSettings;
  /** How many virtio-mmio block devices the platform has (its device tree's): /dev/vda... (none when absent). */
  disks?: number;
}

/** The guest OS's state outside guest RAM (GuestKernel.exportState), JSON-safe: the GUEST_OS record of a live migration. */
export interface GuestOsState {
  processes: Array<AddressSpaceState & {
    pid: number; name: string; stdin: string; regs: number[]; pc: number;
    stdinPos: number; state: Process['state']; wakeAt: number; writeDone: number;
    fdTable: number; waitPipe: number; restart: boolean; pendingSignal: number;
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
  /** Technique 4's trampoline state (absent from states exported before it existed). */
  callTable?: CallTableState;
  /** Technique 2's learning state (absent from states exported before it was carried: the destination then re-learns). */
  instanceCalls?: InstanceCallState;
}

/** Signals whose default action is to ignore them, and the stop signals (not modelled). */
const IGNORED_SIGNALS = new Set([17, 18, 23, 28]);
const STOP_SIGNALS = new Set([19, 20, 21, 22]);

export class GuestKernel implements SyscallKernel {
  readonly text: KernelText;
  readonly random: SeededRandom;
  /** Syscalls by name, and unsupported (ENOSYS) syscalls by number. */
  readonly syscallCounts = new Map<string, number>();
  readonly enosys = new Map<number, number>();
  /** Called when a memory error killed a process. */
  onMemoryFailure: ((e: MemoryFailureReport) => void) | null = null;
  /** Called when a process has exited (normally or by a signal). */
  onProcessExit: ((s: ProcessStatus) => void) | null = null;
  /** Technique settings; changing them takes effect at the next syscall. */
  techniques: TechniqueSettings;

  private readonly pool: PagePool;
  private readonly mem: MemoryContext;
  private readonly sched: Scheduler;
  private readonly procs: ProcessTable;
  private readonly console: ConsoleDriver;
  private readonly failure: MemoryFailure;
  private readonly chain: SyscallChain;
  readonly files: Vfs;
  /** The virtio-blk driver behind /dev/vda... */
  readonly block: BlockDriver;
  private readonly callTable: SearchTrampoline;
  private readonly instanceCalls: InstanceTrampolines;
  /** The syscall table by number (undefined: not implemented). */
  private readonly byNr: Array<SyscallRow | undefined> = new Array(NR_MAX).fill(undefined);
  private readonly args = new Int32Array(6);

  /** Raises: RangeError for a bad vCPU count or too little guest RAM; Error for a bad syscall table. */
  constructor(readonly khv: Khv, vcpus: Vcpu[], readonly opts: KernelOptions) {
    if (vcpus.length < 1 || vcpus.length > MAX_VCPUS) throw new RangeError(`vcpus must be 1-${MAX_VCPUS}`);
    if (opts.ramBytes < 2 * KERNEL_REGION) throw new RangeError(`guest memory must be at least ${(2 * KERNEL_REGION) >> 20} MiB`);
    for (const row of opts.syscalls) {
      if (!(row.nr >= 0 && row.nr < NR_MAX) || this.byNr[row.nr]) throw new Error(`syscall table: number ${row.nr} (${row.name}) is out of range or repeated`);
      this.byNr[row.nr] = row;
    }
    this.text = buildKernelText(opts.mitigation);
    this.random = new SeededRandom(opts.seed);
    this.techniques = opts.techniques ?? resolveTechniques();
    this.pool = new PagePool(khv, RAM_BASE + KERNEL_REGION, RAM_BASE + opts.ramBytes);
    const processes: Process[] = [];
    this.sched = new Scheduler(vcpus, processes, { idle: this.text.symbols.get('idle')!, poweroff: this.text.symbols.get('poweroff')! });
    this.mem = { khv, pool: this.pool, flushTlbs: () => this.sched.flushTlbs() };
    this.procs = new ProcessTable(this.mem, this.sched, this.random, (s) => this.onProcessExit?.(s), processes, (p) => this.files.closeAll(p));
    this.console = new ConsoleDriver(khv);
    this.block = new BlockDriver(khv, this.pool, opts.disks ?? 0, (cpu) => this.sched.cpus[cpu]?.current?.pid ?? -1);
    this.files = new Vfs(khv, this.console, this.block, processes, this.sched, (call, sig) => this.signal(call.cpu, call.p, sig));
    this.failure = new MemoryFailure(this.pool, this.procs, this.sched, (e) => this.onMemoryFailure?.(e));
    this.chain = new SyscallChain(khv, (call, nr) => this.dispatch(call, nr));
    this.callTable = new SearchTrampoline(khv, this.text, (nr) => this.tableSlot(nr), vcpus.map((v) => v.hart));
    this.instanceCalls = new InstanceTrampolines(khv, this.text, this.sched.cpus, processes);
  }

  get processes(): readonly Process[] { return this.procs.list; }
  /** Guest pages with a memory error: never handed out again (Linux's HWPoison pages). */
  get badPages(): ReadonlySet<number> { return this.pool.bad; }
  /** Technique 3's counters. */
  get lookahead(): LookaheadStats { return this.chain.stats; }
  /** Technique 4's counters. */
  get callTableStats(): CallTableStats { return this.callTable.stats; }
  /** Technique 2's counters. */
  get instanceCallStats(): InstanceCallStats { return this.instanceCalls.stats; }

  /**
   * Boots: writes the kernel text, syscall table, idle page table; creates every process and
   * puts the first ones on the vCPUs. Raises: OutOfHostMemory; Error when a process does not fit.
   */
  boot(specs: ProcessSpec[]): void {
    const khv = this.khv;
    khv.writeBytes(kgpa(K.TEXT), this.text.bytes);
    const gateHpa = khv.hpaOf(kgpa(K.GATES));
    for (let nr = 0; nr < NR_MAX; nr++) khv.write32(kgpa(K.SYSCALL_TABLE) + 4 * nr, this.tableSlot(nr));
    this.files.writeOpsTables((i) => this.gateVa(i));
    writeKernelMappings(khv, kgpa(K.IDLE_ROOT));
    this.sched.idleSatp = (0x80000000 | (kgpa(K.IDLE_ROOT) / PAGE_SIZE)) | 0;
    this.console.reset();
    const entry = this.text.symbols.get('trap_entry')!;
    this.attachCpus(gateHpa);
    this.sched.cpus.forEach((c, i) => {
      const h = c.vcpu.hart;
      h.vstvec = entry;
      h.scounteren = 7; // user programs may read cycle/time/instret, as under Linux
      h.vsscratch = kva(K.PERCPU + i * K.PERCPU_SIZE) | 0;
      c.vcpu.deadline = TICK_CYCLES;
    });
    const pipes = this.files.createPipes(specs);
    specs.forEach((s, i) => this.files.setupProcess(this.procs.spawn(i + 1, s), s, pipes));
    for (const c of this.sched.cpus) this.sched.enterDirect(c, this.sched.next());
  }

  /**
   * Everything the guest OS holds outside guest RAM, as JSON-safe data (the GUEST_OS record of a
   * live migration). Call between slices (no syscall in progress).
   */
  exportState(): GuestOsState {
    return {
      processes: this.procs.list.map((p) => ({
        pid: p.pid, name: p.name, stdin: Buffer.from(p.stdin).toString('base64'), regs: [...p.regs], pc: p.pc, ...p.mm.export(),
        stdinPos: p.stdinPos, state: p.state, wakeAt: p.wakeAt, writeDone: p.writeDone,
        fdTable: p.fdTable, waitPipe: p.waitPipe, restart: p.restart, pendingSignal: p.pendingSignal,
        exitCode: p.exitCode ?? null, signal: p.signal ?? null, faultPc: p.faultPc ?? null, faultAddress: p.faultAddress ?? null,
      })),
      runQueue: this.sched.runQueue.map((p) => p.pid),
      cpus: this.sched.cpus.map((c) => (c.current ? c.current.pid : null)),
      syscallCounts: [...this.syscallCounts], enosys: [...this.enosys], freePages: [...this.pool.free], badPages: [...this.pool.bad],
      nextPage: this.pool.next, idleSatp: this.sched.idleSatp, techniques: this.techniques, lookahead: this.chain.stats, random: this.random.state,
      callTable: this.callTable.exportState(),
      instanceCalls: this.instanceCalls.exportState(),
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
      const p = new Process(q.pid, q.name, new Uint8Array(Buffer.from(q.stdin, 'base64')), AddressSpace.restore(this.mem, q));
      p.regs.set(q.regs);
      p.pc = q.pc; p.stdinPos = q.stdinPos; p.state = q.state; p.wakeAt = q.wakeAt; p.writeDone = q.writeDone;
      p.fdTable = q.fdTable; p.waitPipe = q.waitPipe; p.restart = q.restart; p.pendingSignal = q.pendingSignal;
      if (q.exitCode !== null) p.exitCode = q.exitCode;
      if (q.signal !== null) { p.signal = q.signal; p.faultPc = q.faultPc ?? 0; p.faultAddress = q.faultAddress ?? 0; }
      this.procs.list.push(p);
      byPid.set(p.pid, p);
    }
    const find = (pid: number): Process => {
      const p = byPid.get(pid);
      if (!p) throw new Error(`guest OS state names unknown pid ${pid}`);
      return p;
    };
    this.sched.runQueue.push(...st.runQueue.map(find));
    const cpus = this.sched.cpus;
    if (st.cpus.length !== cpus.length) throw new Error(`guest OS state has ${st.cpus.length} CPUs, this VM ${cpus.length}`);
    for (const [k, v] of st.syscallCounts) this.syscallCounts.set(k, v);
    for (const [k, v] of st.enosys) this.enosys.set(k, v);
    this.pool.free.push(...st.freePages);
    for (const g of st.badPages) this.pool.bad.add(g);
    this.pool.next = st.nextPage;
    this.sched.idleSatp = st.idleSatp;
    this.techniques = st.techniques;
    Object.assign(this.chain.stats, st.lookahead);
    if (st.callTable) this.callTable.importState(st.callTable);
    if (st.instanceCalls) this.instanceCalls.importState(st.instanceCalls);
    this.random.state = st.random;
    cpus.forEach((c, i) => { c.current = st.cpus[i] === null ? null : find(st.cpus[i]!); });
    this.attachCpus(this.khv.hpaOf(kgpa(K.GATES)));
  }

  /** Configures every vCPU for this KHV and points the per-CPU views and gate range at this host's frames. */
  private attachCpus(gateHpa: number): void {
    const khv = this.khv;
    this.sched.cpus.forEach((c, i) => {
      const frameHpa = khv.hpaOf(kgpa(K.PERCPU + i * K.PERCPU_SIZE));
      c.frame = khv.mem.i32.subarray(frameHpa >>> 2, (frameHpa + K.PERCPU_SIZE) >>> 2);
      const h = c.vcpu.hart;
      khv.configure(h);
      h.gateBase = gateHpa;
      h.gadget = this.text.symbols.get('gadget')! | 0;
      h.gateEnd = gateHpa + PAGE_SIZE;
    });
  }

  /** Guest pages the kernel writes through host-memory views rather than the KHV (the per-CPU areas): a migration always sends them at switch-over. */
  viewPages(): number[] {
    return [...new Set(this.sched.cpus.map((_c, i) => pageBase(kgpa(K.PERCPU + i * K.PERCPU_SIZE))))];
  }

  private gateVa(index: number): number { return (kva(K.GATES) + 4 * index) | 0; }

  /** What syscall table slot `nr` points at: the row's kernel-text entry, its gate, or the not-implemented gate. */
  private tableSlot(nr: number): number {
    const row = this.byNr[nr];
    // hvsim's privileged-mode syscalls are kernel text, not gates (layout.ts NR_PM*).
    const pm = nr === NR_PM ? 'pm_call' : nr === NR_PM_PROBE ? 'pm_probe' : nr === NR_PM_DOORBELL ? 'pm_doorbell' : null;
    if (!row && pm !== null) return this.text.symbols.get(pm)! | 0;
    if (!row) return this.gateVa(GATE.NI);
    if (row.entry === undefined) return this.gateVa(nr);
    const at = this.text.symbols.get(row.entry);
    if (at === undefined) throw new Error(`syscall table: ${row.name}'s entry ${row.entry} is not in the kernel text`);
    return at | 0;
  }

  /** Who owns guest page `gpa`: a process (and the user address it is mapped at), the kernel, or nobody. */
  ownerOf(gpa: number): GuestPageOwner { return this.procs.ownerOf(gpa); }

  /**
   * The KHV's memory-error injection: an access from vCPU `v` met the corrupted page `gpa` (see
   * MemoryFailure.onAccess). Raises: VmFault('guest-kernel-panic') when the page belongs to the kernel.
   */
  memoryFailureTrap(v: Vcpu, gpa: number, va: number, pc: number, fromUser: boolean): void {
    this.failure.onAccess(v, gpa, va, pc, fromUser);
  }

  statuses(): ProcessStatus[] { return this.procs.statuses(); }

  // *** the services syscall handlers use (SyscallKernel) ***

  now(call: SyscallCall): number { return this.sched.now(call.cpu); }
  exit(call: SyscallCall, code: number): void { this.procs.exit(call.cpu, call.p, code); }
  yield(call: SyscallCall): void { this.sched.yield(call.cpu); }
  sleepUntil(call: SyscallCall, wakeAt: number): void { this.sched.sleepUntil(call.cpu, wakeAt); }

  kill(call: SyscallCall, pid: number, sig: number): number {
    if (sig < 0 || sig > 64) return -ERRNO.EINVAL;
    if (pid <= 0) return -ERRNO.ENOSYS; // process groups are not modelled
    const p = this.procs.list.find((q) => q.pid === pid && q.state !== 'exited');
    if (!p) return -ERRNO.ESRCH;
    if (sig === 0 || IGNORED_SIGNALS.has(sig)) return 0;
    if (STOP_SIGNALS.has(sig)) return -ERRNO.ENOSYS;
    if (p === call.p) { this.signal(call.cpu, p, sig); return 0; }
    if (p.state === 'running') p.pendingSignal = sig; // on another vCPU: delivered at its next kernel entry
    else this.procs.kill(p, { sig, pc: p.pc, addr: 0 });
    return 0;
  }

  /** Ends `p`, the process on `c`, with a signal's default action (termination). */
  private signal(c: Cpu, p: Process, sig: number): void {
    this.procs.exit(c, p, null, { sig, pc: (c.vcpu.hart.vsepc - 4) | 0, addr: 0 });
  }

  // *** gates ***

  /**
   * Runs the native handler of the gate the vCPU stopped at, then returns to `ra` as the
   * handler's `ret` would (through the return-stack predictor).
   * Raises: VmFault('guest-kernel-panic') for a fault inside the kernel; OutOfHostMemory.
   */
  gate(v: Vcpu): void {
    const h = v.hart;
    const c = this.sched.cpus[v.id];
    const index = ((h.pc >>> 0) - kva(K.GATES)) >>> 2;
    this.khv.runningOn(h);
    c.switched = false;
    let cost = COSTS.gateBase;
    const method = this.files.isMethodGate(index);
    const pending = c.current?.pendingSignal ?? 0;
    if (pending !== 0 && index !== GATE.IRQ) {
      // Killed by another process while it ran: the signal takes effect at this kernel entry.
      this.signal(c, c.current!, pending);
      h.x[10] = c.frame[10];
    } else if (index < NR_MAX || index === GATE.NI || method) {
      if (!c.current) throw new VmFault('guest-kernel-panic', 'syscall gate reached with no current process');
      for (let i = 0; i < 6; i++) this.args[i] = h.x[10 + i];
      const call: SyscallCall = { cpu: c, p: c.current, a: this.args, copied: 0 };
      const nr = h.x[17];
      if (method) {
        const t2 = this.techniques.instanceCallInlining;
        this.instanceCalls.onCall(call.p, this.gateVa(index), this.sched.now(c), t2?.enabled === true, t2 as unknown as InstanceCallOptions);
      }
      let r = method ? this.dispatchMethod(call, nr, h.x[28]) : this.dispatch(call, nr);
      cost += Math.ceil(call.copied / COSTS.gateBytesPerCycle);
      const la = this.techniques.syscallLookahead;
      if (la?.enabled && !c.switched && c.frame[PERCPU.CONTINUE >> 2] === 0) {
        const chained = this.chain.run(c, call.p, r, la.window as number, la.allowForwardBranches as boolean, la.maxChain as number);
        r = chained.result;
        cost += chained.cost;
      }
      h.x[10] = c.switched ? c.frame[10] : r;
      if (index !== GATE.NI || (nr >>> 0) < NR_MAX) { // every gate reached through the table's call site
        const t4 = this.techniques.callTableInlining;
        this.callTable.onCall(nr, call.p.pid, t4?.enabled === true, t4 as unknown as { maxEntries: number; relearnInterval: number });
      }
    } else if (index === GATE.TRAP) {
      this.userTrap(c);
    } else if (index === GATE.IRQ) {
      if (pending !== 0) this.signal(c, c.current!, pending);
      const next = this.sched.tick(c);
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
   * memory error met while copying guest memory becomes the page owner's SIGBUS (-EFAULT here); a
   * copy the hypervisor refused (DomainAccessError: a protection domain's memory) kills the caller (SIGSEGV).
   */
  private dispatch(call: SyscallCall, nr: number): number {
    const row = nr >= 0 && nr < NR_MAX ? this.byNr[nr] : undefined;
    try {
      if (!row) {
        this.enosys.set(nr >>> 0, (this.enosys.get(nr >>> 0) ?? 0) + 1);
        return -ERRNO.ENOSYS;
      }
      this.count(call.p, row);
      return row.handler(this, call);
    } catch (e) {
      return this.memoryErrorInSyscall(call, e);
    }
  }

  /** A file method gate reached from the kernel text's `sys_rw` for syscall `nr`, with the open-file object at `fileVa`. */
  private dispatchMethod(call: SyscallCall, nr: number, fileVa: number): number {
    try {
      this.count(call.p, this.byNr[nr]!);
      return this.files.method(call, nr, fileVa);
    } catch (e) {
      return this.memoryErrorInSyscall(call, e);
    }
  }

  /** Counts a syscall by name, once: not again when a write continues after a flush or a blocked call runs again. */
  private count(p: Process, row: SyscallRow): void {
    if (p.restart) { p.restart = false; return; }
    if (p.writeDone === 0) this.syscallCounts.set(row.name, (this.syscallCounts.get(row.name) ?? 0) + 1);
  }

  /**
   * A memory error met while copying guest memory becomes the page owner's SIGBUS (-EFAULT here);
   * a copy the hypervisor refused because it touched a secure protection domain's memory kills
   * the caller (SIGSEGV); anything else is rethrown.
   */
  private memoryErrorInSyscall(call: SyscallCall, e: unknown): number {
    if (e instanceof DomainAccessError) {
      this.procs.exit(call.cpu, call.p, null, { sig: SIG.SIGSEGV, pc: call.cpu.vcpu.hart.vsepc - 4, addr: 0 });
      return -ERRNO.EFAULT;
    }
    if (!(e instanceof GuestMemoryError)) throw e;
    this.failure.inSyscall(call.cpu, e);
    return -ERRNO.EFAULT;
  }

  /** An exception from user mode (scause != ecall): demand paging, or a fatal signal. */
  private userTrap(c: Cpu): void {
    const h = c.vcpu.hart;
    const p = c.current;
    const cause = h.vscause, addr = h.vstval >>> 0, pc = h.vsepc;
    if (!p || (h.vsstatus & MS.SPP)) throw new VmFault('guest-kernel-panic', `kernel trap cause ${cause} at 0x${(pc >>> 0).toString(16)} (address 0x${addr.toString(16)})`);
    if (cause === CAUSE.fetchPage || cause === CAUSE.loadPage || cause === CAUSE.storePage) {
      const need = cause === CAUSE.fetchPage ? PROT.X : cause === CAUSE.loadPage ? PROT.R : PROT.W;
      const r = p.mm.region(addr);
      if (r && (r.perms & need) && !p.mm.pages.has(addr >>> 12)) {
        if (p.mm.map(addr & ~0xfff, r.perms) < 0) this.procs.exit(c, p, null, { sig: SIG.SIGKILL, pc, addr });
        return;
      }
      this.procs.exit(c, p, null, { sig: SIG.SIGSEGV, pc, addr });
      return;
    }
    const sig = cause === CAUSE.illegal ? SIG.SIGILL
      : cause === CAUSE.breakpoint ? SIG.SIGTRAP
      : cause === CAUSE.fetchMisaligned || cause === CAUSE.loadMisaligned || cause === CAUSE.storeMisaligned ? SIG.SIGBUS
      : SIG.SIGSEGV;
    this.procs.exit(c, p, null, { sig, pc, addr });
  }
}
