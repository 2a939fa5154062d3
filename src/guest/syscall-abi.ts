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
  /** The file layer (vfs.ts). */
  readonly files: FileSyscalls;
  /** Sends signal `sig` to process `pid` (0 only checks it exists); -ESRCH, -EINVAL, -ENOSYS as the table says. */
  kill(call: SyscallCall, pid: number, sig: number): number;
}

/** The file layer's syscalls: each takes the call (its a0-a5 as Linux's arguments) and returns a0. */
export interface FileSyscalls {
  /** read, write, readv, writev by number, through the fd's open-file object. */
  syscall(call: SyscallCall, nr: number): number;
  openat(call: SyscallCall): number;
  close(call: SyscallCall): number;
  pipe2(call: SyscallCall): number;
  dup(call: SyscallCall): number;
  dup3(call: SyscallCall): number;
  llseek(call: SyscallCall): number;
  fstat(call: SyscallCall): number;
  ioctl(call: SyscallCall): number;
  fcntl(call: SyscallCall): number;
  /** pread64 (reading) / pwrite64 at the offset in a3 (low) and a4 (high). */
  pio(call: SyscallCall, reading: boolean): number;
  /** fsync / fdatasync. */
  fsync(call: SyscallCall): number;
}

/** full: as Linux; partial: as Linux for what `note` says, the rest returns an error. */
export type SyscallSupport = 'full' | 'partial';

export interface SyscallRow {
  readonly nr: number;
  readonly name: string;
  readonly support: SyscallSupport;
  /** What 'partial' leaves out. */
  readonly note?: string;
  /**
   * The kernel-text symbol the table slot points at instead of the handler's gate (read/write:
   * `sys_rw`, which calls the fd's method from guest code); the handler still serves the
   * native paths (a bad fd, technique 3's chain).
   */
  readonly entry?: string;
  handler(k: SyscallKernel, c: SyscallCall): number;
}

/** A syscall table: rows with distinct numbers below NR_MAX. */
export type SyscallTable = readonly SyscallRow[];
