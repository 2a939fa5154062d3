/**
 * The contract between the guest kernel and its syscall table: what a handler is given (the
 * call), what it may ask of the kernel, and the shape of a table row. The kernel is built with a
 * table (KernelOptions.syscalls) and knows no handler; the table (syscalls.ts) knows only this
 * contract, so neither imports the other.
 */
import type { Process } from './process.js';
import type { SeededRandom } from './random.js';
import type { Cpu } from './scheduler.js';

/** A syscall in progress: handlers get this and return a0 (a negative errno on error). */
export interface SyscallCall {
  readonly cpu: Cpu;
  readonly p: Process;
  /** a0..a5. */
  readonly a: Int32Array;
  /** Bytes copied, for the modelled cost. */
  copied: number;
}

/**
 * The kernel services a handler may use besides the process's own address space (`call.p.mm`).
 * A service that switches the vCPU to another context (exit, yield, sleep) says so to the gate,
 * and the handler's return value then belongs to the process that was switched out.
 */
export interface SyscallKernel {
  readonly random: SeededRandom;
  /** Virtual time (ns since boot) on the calling vCPU. */
  now(call: SyscallCall): number;
  /** Ends the calling process with `code`; the vCPU goes to the next runnable one. */
  exit(call: SyscallCall, code: number): void;
  /** Gives the vCPU to another runnable process, if any. */
  yield(call: SyscallCall): void;
  /** Sleeps until virtual time `wakeAt` (ns since boot). */
  sleepUntil(call: SyscallCall, wakeAt: number): void;
  /** Queues user bytes [va, va + len) on console port `port`; returns the bytes queued, or -EFAULT when none could be read. */
  consoleWrite(call: SyscallCall, port: number, va: number, len: number): number;
  /** Asks the entry stub to flush the console and dispatch the same syscall again (a write larger than the ring). */
  continueAfterFlush(call: SyscallCall): void;
}

/** full: as Linux; partial: as Linux for what `note` says, the rest returns an error. */
export type SyscallSupport = 'full' | 'partial';

export interface SyscallRow {
  readonly nr: number;
  readonly name: string;
  readonly support: SyscallSupport;
  /** What 'partial' leaves out. */
  readonly note?: string;
  handler(k: SyscallKernel, c: SyscallCall): number;
}

/** A syscall table: rows with distinct numbers below NR_MAX. */
export type SyscallTable = readonly SyscallRow[];
