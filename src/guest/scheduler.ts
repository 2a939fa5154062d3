/**
 * The guest kernel's scheduler: one run queue, round-robin over the VM's vCPUs, preempted at a
 * timer tick (TICK_CYCLES); sleeping in virtual time; and the per-CPU state (the process a vCPU
 * runs, its per-CPU area). A vCPU with nothing to run parks in the idle loop, or at power-off once
 * every process has exited.
 *
 * Two ways onto a vCPU: `enterDirect` when the vCPU is outside the kernel (boot, after a machine
 * check), and `switchTo` from inside a gate, which rewrites the saved frame the entry stub
 * restores (a context switch).
 */
import { PRIV_S, PRIV_U } from '../cpu/hart.js';
import { MS } from '../cpu/csr.js';
import { Ctr } from '../uarch/costs.js';
import type { Vcpu } from '../hypervisor/khv.js';
import { PERCPU } from './layout.js';
import type { Process } from './process.js';

/** Preemption tick: 4 ms of virtual time (Linux HZ=250). */
export const TICK_CYCLES = 4_000_000;

/** Per-vCPU kernel state. */
export interface Cpu {
  readonly vcpu: Vcpu;
  current: Process | null;
  /** The per-CPU area (saved x0..x31, PENDING, CONTINUE) as a view of host memory (set at boot, never moves). */
  frame: Int32Array;
  /** Set by a handler that replaced the saved frame (context switch). */
  switched: boolean;
}

/** Where a vCPU with no process goes: kernel-text addresses. */
export interface ParkingPcs { idle: number; poweroff: number }

export class Scheduler {
  readonly runQueue: Process[] = [];
  readonly cpus: Cpu[];
  /** satp of the kernel-only address space idle vCPUs run in. */
  idleSatp = 0;

  constructor(vcpus: readonly Vcpu[], private readonly processes: readonly Process[], private readonly park: ParkingPcs) {
    this.cpus = vcpus.map((vcpu) => ({ vcpu, current: null, frame: new Int32Array(0), switched: false }));
  }

  /** Virtual time on `c` (cycles since boot, 1 GHz). */
  now(c: Cpu): number { return c.vcpu.hart.ctr[Ctr.Cycles]; }

  /** The next runnable process, off the queue, or null. */
  next(): Process | null { return this.runQueue.shift() ?? null; }

  enqueue(p: Process): void { this.runQueue.push(p); }

  /** Takes `p` off the run queue (it ended while not running). */
  dequeue(p: Process): void {
    const q = this.runQueue.indexOf(p);
    if (q >= 0) this.runQueue.splice(q, 1);
  }

  flushTlbs(): void {
    for (const c of this.cpus) c.vcpu.hart.mmu.flushAll();
  }

  /** Puts a vCPU that is not inside the kernel (at boot, after a machine check) on `p`, or idle / power-off. */
  enterDirect(c: Cpu, p: Process | null): void {
    const h = c.vcpu.hart;
    h.virt = 1;
    if (p) {
      h.x.set(p.regs);
      h.pc = p.pc;
      h.priv = PRIV_U;
      h.vsatp = p.mm.satp;
      c.frame[PERCPU.FDS >> 2] = p.fdTable;
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
    return this.processes.every((q) => q.state === 'exited') ? this.park.poweroff : this.park.idle;
  }

  /** Saves the interrupted user context of `p` from the per-CPU frame. */
  private save(c: Cpu, p: Process): void {
    p.regs.set(c.frame.subarray(0, 32));
    p.regs[0] = 0;
    p.pc = c.vcpu.hart.vsepc;
  }

  /** From inside a gate: makes the stub return to `p`, or to the idle loop / power-off when p is null. */
  switchTo(c: Cpu, p: Process | null): void {
    const h = c.vcpu.hart;
    c.switched = true;
    c.current = p;
    if (p) {
      c.frame.set(p.regs);
      h.vsepc = p.pc;
      h.vsstatus = (h.vsstatus & ~MS.SPP) | MS.SPIE;
      h.vsatp = p.mm.satp;
      c.frame[PERCPU.FDS >> 2] = p.fdTable;
      p.state = 'running';
    } else {
      h.vsepc = this.parkPc();
      h.vsstatus |= MS.SPP | MS.SPIE;
      h.vsatp = this.idleSatp;
    }
    h.mmu.flushAll();
  }

  /** The current process gives up its vCPU (yield, sleep, preemption); the next runnable one gets it. */
  private reschedule(c: Cpu, requeue: boolean): void {
    const p = c.current!;
    this.save(c, p);
    if (requeue) { p.state = 'runnable'; this.runQueue.push(p); }
    this.switchTo(c, this.next());
  }

  /** sched_yield of the process on `c`: another runnable process gets the vCPU; the yielder's call returns 0. */
  yield(c: Cpu): void {
    if (this.runQueue.length === 0) return;
    const p = c.current!;
    this.reschedule(c, true);
    p.regs[10] = 0;
  }

  /** The process on `c` sleeps until virtual time `wakeAt` (no-op when it has passed); its call returns 0. */
  sleepUntil(c: Cpu, wakeAt: number): void {
    if (wakeAt <= this.now(c)) return;
    const p = c.current!;
    p.state = 'sleeping';
    p.wakeAt = wakeAt;
    this.reschedule(c, false);
    p.regs[10] = 0;
  }

  /** The process on `c` waits (state 'blocked') until `wake`; the vCPU goes to the next runnable one. */
  block(c: Cpu): void {
    const p = c.current!;
    p.state = 'blocked';
    this.reschedule(c, false);
  }

  /** A blocked process becomes runnable (queued). */
  wake(p: Process): void {
    if (p.state !== 'blocked') return;
    p.state = 'runnable';
    this.runQueue.push(p);
  }

  /** Timer tick on `c`: wakes sleepers, preempts, and returns the next deadline. */
  tick(c: Cpu): number {
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
}
