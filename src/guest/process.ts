/**
 * A guest process: its saved user registers, its address space (address-space.ts), its standard
 * input, its scheduling state and its exit status.
 */
import type { AddressSpace } from './address-space.js';

export const SIG = { SIGILL: 4, SIGTRAP: 5, SIGBUS: 7, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13 } as const;

/** A signal that ends a process, with the pc and address of the access that raised it. */
export interface Fatal { sig: number; pc: number; addr: number }

/** 'blocked': waiting for a pipe (Process.waitPipe), woken by the other end. */
export type ProcessState = 'runnable' | 'running' | 'sleeping' | 'blocked' | 'exited';

/** What GET /v1/vms/{id} and `hvsim run` report about a process. */
export interface ProcessStatus {
  pid: number;
  name: string;
  state: ProcessState;
  exitCode?: number;
  signal?: number;
  /** pc and faulting address of the access that killed it (signals only). */
  faultPc?: number;
  faultAddress?: number;
  /** The status a shell reports: the exit code, or 128 + signal. */
  status?: number;
}

export class Process {
  readonly regs = new Int32Array(32);
  pc = 0;
  stdinPos = 0;
  state: ProcessState = 'runnable';
  /** Virtual time at which a sleeping process becomes runnable. */
  wakeAt = 0;
  /** Bytes of the current write() already queued (a write larger than the console ring). */
  writeDone = 0;
  /** Kernel VA of its fd table (vfs.ts); 0 before the VFS set it up. */
  fdTable = 0;
  /** The pipe a blocked process waits on, or -1. */
  waitPipe = -1;
  /** Its next syscall re-runs one that blocked (not counted again). */
  restart = false;
  /** A fatal signal sent by another process while this one ran on another vCPU: delivered at its next kernel entry. */
  pendingSignal = 0;
  exitCode?: number;
  signal?: number;
  faultPc?: number;
  faultAddress?: number;

  constructor(readonly pid: number, readonly name: string, readonly stdin: Uint8Array, readonly mm: AddressSpace) {}

  /** Records how the process ended: an exit code, or a fatal signal. */
  end(code: number | null, fatal?: Fatal): void {
    if (code !== null) this.exitCode = code & 0xff;
    if (fatal) { this.signal = fatal.sig; this.faultPc = fatal.pc >>> 0; this.faultAddress = fatal.addr >>> 0; }
    this.state = 'exited';
  }

  status(): ProcessStatus {
    const s: ProcessStatus = { pid: this.pid, name: this.name, state: this.state };
    if (this.exitCode !== undefined) { s.exitCode = this.exitCode; s.status = this.exitCode; }
    if (this.signal !== undefined) {
      s.signal = this.signal; s.status = 128 + this.signal;
      s.faultPc = this.faultPc; s.faultAddress = this.faultAddress;
    }
    return s;
  }
}
