/**
 * The guest kernel's memory_failure (as Linux's mm/memory-failure.c): a guest page with an
 * uncorrectable error is never handed out again, and the process that owns it dies with SIGBUS;
 * an error in the kernel's own memory or in a page table is a kernel panic. Two ways in: the KHV
 * injects a memory error a vCPU's access met (a machine check, `onAccess`), or the kernel meets
 * one itself while copying guest memory in a syscall (`inSyscall`).
 */
import type { Vcpu } from '../hypervisor/khv.js';
import { GuestMemoryError, VmFault } from '../hypervisor/exits.js';
import { pageBase } from '../mmu/phys.js';
import type { PagePool } from './page-pool.js';
import { SIG } from './process.js';
import type { ProcessTable } from './processes.js';
import type { Cpu, Scheduler } from './scheduler.js';

/** What the kernel reports of a memory error that killed a process. */
export interface MemoryFailureReport { gpa: number; pid: number | null; va: number | null; owner: 'process' | 'free' }

export class MemoryFailure {
  constructor(private readonly pool: PagePool, private readonly procs: ProcessTable, private readonly sched: Scheduler,
    private readonly report: (e: MemoryFailureReport) => void) {}

  /**
   * An access from vCPU `v` met the corrupted page `gpa` (the hart is in the hypervisor, after
   * the machine check): the owner dies with SIGBUS and the vCPU resumes with the next runnable
   * process, idles, or powers off.
   * Raises: VmFault('guest-kernel-panic') when the page belongs to the kernel or a page table, or the access was the kernel's.
   */
  onAccess(v: Vcpu, gpa: number, va: number, pc: number, fromUser: boolean): void {
    const c = this.sched.cpus[v.id];
    this.pool.bad.add(gpa);
    const owner = this.procs.ownerOf(gpa);
    if (!fromUser || owner.kind !== 'process') {
      throw new VmFault('guest-kernel-panic', `memory error in ${owner.kind === 'process' ? 'a page table' : owner.kind} memory at guest-physical 0x${gpa.toString(16)} (pc 0x${(pc >>> 0).toString(16)})`);
    }
    const p = owner.p;
    this.procs.kill(p, { sig: SIG.SIGBUS, pc, addr: va });
    this.report({ gpa, pid: p.pid, va, owner: 'process' });
    if (c.current === p) {
      c.current = null;
      this.sched.enterDirect(c, this.sched.next());
    }
  }

  /** A memory error the kernel met in its own copy of guest memory during a syscall on `c`: the page's owner gets SIGBUS. Raises: VmFault('guest-kernel-panic') when the page is not a process's. */
  inSyscall(c: Cpu, e: GuestMemoryError): void {
    const gpa = pageBase(e.gpa);
    this.pool.bad.add(gpa);
    const owner = this.procs.ownerOf(gpa);
    if (owner.kind !== 'process') throw new VmFault('guest-kernel-panic', `memory error in ${owner.kind} memory at guest-physical 0x${gpa.toString(16)}`);
    this.report({ gpa, pid: owner.p.pid, va: owner.va, owner: 'process' });
    if (owner.p === c.current) this.procs.exit(c, owner.p, null, { sig: SIG.SIGBUS, pc: c.vcpu.hart.vsepc - 4, addr: owner.va ?? 0 });
    else this.procs.kill(owner.p, { sig: SIG.SIGBUS, pc: 0, addr: owner.va ?? 0 });
  }
}
