/**
 * The guest kernel's memory layout. The first 4 MiB of guest RAM are the kernel region, mapped
 * (supervisor-only, one Sv32 megapage) at KERNEL_VA in every process's page table; the device
 * region is mapped at DEVICE_VA the same way. Everything above the kernel region is the page pool
 * the kernel hands to processes and page tables.
 */
import { RAM_BASE, DEVICE_BASE, CONSOLE_OFFSET, CONSOLE_RING_BASE, POWER_OFFSET, PM_DOORBELL_OFFSET, PM_REGION_BASE } from '../hypervisor/platform.js';

export const KERNEL_VA = 0xc000_0000;
export const DEVICE_VA = 0xc040_0000;
/**
 * Technique 6's privileged-mode region, mapped (supervisor-only, read-only, one megapage) at
 * PM_VA in every page table as the device region is: outside the mode the G-stage maps nothing
 * there, so a kernel access is a reported region fault (syscall NR_PM_PROBE tries one).
 */
export const PM_VA = 0xc080_0000;
export const KERNEL_REGION = 0x40_0000;

/** Offsets inside the kernel region (VA = KERNEL_VA + off, GPA = RAM_BASE + off). */
export const K = {
  TEXT: 0x0000,
  TEXT_MAX: 0x2000,
  GATES: 0x2000,
  SYSCALL_TABLE: 0x3000,
  PERCPU: 0x4000,
  PERCPU_SIZE: 0x100,
  IDLE_ROOT: 0x5000,
  /** The VFS (vfs.ts): the operations tables of the file kinds, 16 bytes each (read, write methods). */
  FILE_OPS: 0x6000,
  /** Technique 4's two search-trampoline buffers (search-trampoline.ts), TRAMPOLINE_BYTES each. */
  TRAMPOLINES: 0x7000,
  /** Per-process fd tables: FD_MAX words each (open-file object VA | close-on-exec bit, or 0). */
  FD_TABLES: 0x8000,
  /** Open-file objects, FILE_SIZE bytes each (ops, refs, flags, arg, pos). */
  FILES: 0x3_0000,
  /** Pipe headers (buffer counters, ends, buffer descriptors), PIPE_HEADER bytes each. */
  PIPES: 0x3_8000,
  /**
   * The virtio-blk driver (block.ts): per-disk state (queue addresses, capacity, the used ring's
   * consumer index), per-vCPU request state and the guest pages each vCPU uses as request buffers.
   */
  BLOCK: 0x3_c000,
  BLOCK_SIZE: 0x800,
  /** Pipe ring buffers, PIPE_CAPACITY bytes each. */
  PIPE_BUFFERS: 0x4_0000,
  /** The console rings (the platform fixes where: hypervisor/platform.ts). */
  RING: CONSOLE_RING_BASE - RAM_BASE,
} as const;

/** Per-CPU area: saved x0..x31 at 4*i, then these words. */
export const PERCPU = {
  /** Console ports to flush (bit p), rung by the entry stub after a handler. */
  PENDING: 128,
  /** Non-zero: re-dispatch the same syscall after the flush (a write larger than the ring). */
  CONTINUE: 132,
  /** Kernel VA of the current process's fd table (the VFS's read/write dispatch in the kernel text loads it). */
  FDS: 136,
  /**
   * Device register accesses for the stub to make after the handler, when PENDING has bit 31
   * (IO_PENDING): IO_COUNT of them, IO_LIST holding (register VA | 1 for a read, value) pairs;
   * a read's value replaces the pair's second word. The virtio-blk driver's notify and setup.
   */
  IO_COUNT: 140,
  IO_LIST: 144,
} as const;
/** Entries of PERCPU.IO_LIST (to the end of the 256-byte per-CPU area). */
export const IO_MAX = 14;
/** PERCPU.PENDING's bit that asks the stub to run the IO list (the console's ports are the low bits). */
export const IO_PENDING = 0x8000_0000 | 0;

export const MAX_VCPUS = 16;
export const NR_MAX = 512;
/**
 * hvsim's own syscalls (above Linux's asm-generic numbers), served by kernel text instead of a
 * gate: NR_PM(function, argument) makes the SBI.PMODE hypercall (the privileged mode's built-in
 * handler, PM_FN) and returns its value, or the negative SBI error; NR_PM_PROBE reads the first
 * word of the sealed key through PM_VA, which outside the mode faults (reads all ones).
 * NR_PM_DOORBELL(n) writes n to the privileged-mode doorbell (the interrupt to vCPU n).
 */
export const NR_PM = 500;
export const NR_PM_PROBE = 501;
export const NR_PM_DOORBELL = 502;
/** Gate indices past the syscall numbers. */
export const GATE = { NI: 512, TRAP: 513, IRQ: 514, /** File methods: METHOD + 2 * kind + (0 read, 1 write). */ METHOD: 520 } as const;

export const kva = (off: number): number => (KERNEL_VA + off) >>> 0;
export const kgpa = (off: number): number => RAM_BASE + off;
export const DOORBELL_VA = (DEVICE_VA + CONSOLE_OFFSET) >>> 0;
export const POWER_VA = (DEVICE_VA + POWER_OFFSET) >>> 0;
export const PM_DOORBELL_VA = (DEVICE_VA + PM_DOORBELL_OFFSET) >>> 0;
export const PM_GPA = PM_REGION_BASE;
export const DEVICE_GPA = DEVICE_BASE;
