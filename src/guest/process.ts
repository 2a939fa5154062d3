/**
 * A guest process: its saved user registers, its Sv32 page table (in guest RAM, built by the
 * kernel), the regions of its address space, and its exit status.
 */
import { PTE } from '../mmu/mmu.js';

/** Region and page permissions, as the PTE bits they become. */
export const PROT = { R: PTE.R, W: PTE.W, X: PTE.X } as const;

export const SIG = { SIGILL: 4, SIGTRAP: 5, SIGBUS: 7, SIGKILL: 9, SIGSEGV: 11 } as const;

export const STACK_TOP = 0x8000_0000;
export const STACK_SIZE = 8 * 1024 * 1024;
export const MMAP_BASE = 0x4000_0000;
/** User addresses end where the kernel half (KERNEL_VA) begins. */
export const USER_END = 0xc000_0000;

export type RegionKind = 'elf' | 'stack' | 'heap' | 'mmap';
export interface Region { start: number; end: number; perms: number; kind: RegionKind }

export type ProcessState = 'runnable' | 'running' | 'sleeping' | 'exited';

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
  /** Guest-physical address of the root page table, and the satp value selecting it. */
  root = 0;
  satp = 0;
  /** Mapped user pages: vpn -> guest-physical page address + PTE permission bits. */
  readonly pages = new Map<number, number>();
  /** Leaf page tables: root index -> guest-physical address. */
  readonly tables = new Map<number, number>();
  readonly regions: Region[] = [];
  brkStart = 0;
  brk = 0;
  stdinPos = 0;
  state: ProcessState = 'runnable';
  /** Virtual time at which a sleeping process becomes runnable. */
  wakeAt = 0;
  /** Bytes of the current write() already queued (a write larger than the console ring). */
  writeDone = 0;
  exitCode?: number;
  signal?: number;
  faultPc?: number;
  faultAddress?: number;

  constructor(readonly pid: number, readonly name: string, readonly stdin: Uint8Array) {}

  region(va: number): Region | undefined {
    for (const r of this.regions) if (va >= r.start && va < r.end) return r;
    return undefined;
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
