/**
 * The guest kernel's file layer (VFS): per-process fd tables, open-file objects with an operations
 * table, and the file kinds (console, stdin, /dev/null, /dev/zero, pipes). Everything a guest
 * kernel would keep in its own memory is in guest kernel memory (K.* in layout.ts), so the kernel
 * text can dispatch read/write itself: it loads the fd's open-file object from the current fd
 * table (PERCPU.FDS), the method from the object's operations table, and makes a real RV32 `jalr`
 * through it (kernel-text.ts, `sys_rw`). That call's target depends on what the calling process's
 * fd refers to: the instance-dependent indirect call of US11016767B2 (technique 2).
 *
 * In guest kernel memory:
 *   fd table (one per process, FD_MAX words): open-file object VA | FD_CLOEXEC bit, or 0
 *   open-file object (FILE_SIZE bytes): OPS (VA of the kind's operations table), REFS (fd slots
 *     referring to it), FLAGS (open flags: access mode, O_APPEND, O_NONBLOCK), ARG (kind's: console
 *     port, pipe index, pid of the stdin owner), POS (file position)
 *   operations table (one per kind, 16 bytes): read method, write method (gate addresses)
 *   pipe (PIPE_HEADER bytes): HEAD, TAIL (buffers filled / drained, mod 2^32), READERS, WRITERS,
 *     then PIPE_SLOTS buffer descriptors (offset, length); buffer k is the page k of the pipe's
 *     PIPE_CAPACITY bytes at K.PIPE_BUFFERS + index * PIPE_CAPACITY. Linux's page-buffer model,
 *     so partial and non-blocking writes take exactly as many bytes as under Linux
 * Outside guest memory (native, per process): the stdin bytes of the spec and their position,
 * a blocked process's pipe (Process.waitPipe).
 *
 * Adding a file kind (a block device, say): append a row to FILE_KINDS with its read and write
 * methods (and fstat mode, rdev, seekability); give it a path in DEVICE_PATHS if openat should
 * find it. Its methods get the open-file object (`FileRef`) and may keep their state in its ARG
 * and POS words or in memory of their own; the kernel text and the fd tables need no change
 * (the kind's operations table and method gates are laid out at boot from the row's index).
 */
import type { Khv } from '../hypervisor/khv.js';
import { PAGE_SIZE } from '../mmu/phys.js';
import { PROT } from './address-space.js';
import { AGAIN, BlockDriver, Result, Segments } from './block.js';
import { ConsoleDriver } from './console.js';
import { ERRNO } from './errno.js';
import { GATE, K, kgpa, kva, PERCPU } from './layout.js';
import type { Process } from './process.js';
import type { Scheduler } from './scheduler.js';
import type { SyscallCall } from './syscall-abi.js';

const { EAGAIN, EBADF, EFAULT, EINVAL, EMFILE, ENFILE, ENOENT, ENOTTY, ENXIO, EPIPE, ESPIPE, ENOTDIR } = ERRNO;

/** Descriptors per process (Linux's default RLIMIT_NOFILE is 1024; 128 is this kernel's limit: -EMFILE). */
export const FD_MAX = 128;
/** Processes with an fd table (fd table slot = pid - 1). */
export const FD_SLOTS = 64;
export const FILE_SIZE = 32;
export const MAX_FILES = 1024;
/** Linux's default pipe capacity: 16 page-sized buffers. */
export const PIPE_SLOTS = 16;
export const PIPE_HEADER = 256;
export const PIPE_CAPACITY = PIPE_SLOTS * PAGE_SIZE;
export const MAX_PIPES = 60;
/** Writes of at most this many bytes to a pipe are atomic (POSIX PIPE_BUF). */
export const PIPE_BUF = 4096;

/** Word offsets of an open-file object. */
export const F = { OPS: 0, REFS: 4, FLAGS: 8, ARG: 12, POS: 16 } as const;
/** Pipe header: buffer counters (head: next to fill, tail: next to drain), ends, then PIPE_SLOTS buffers (offset, length) of a page each. */
const P = { HEAD: 0, TAIL: 4, READERS: 8, WRITERS: 12, SLOTS: 16 } as const;

/** Open flags (asm-generic). */
export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, ACCMODE: 3, CREAT: 0x40, EXCL: 0x80, NOCTTY: 0x100, TRUNC: 0x200,
  APPEND: 0x400, NONBLOCK: 0x800, LARGEFILE: 0x8000, DIRECTORY: 0x1_0000, NOFOLLOW: 0x2_0000, CLOEXEC: 0x8_0000,
} as const;
/** Flags kept in the open-file object (F_GETFL shows them); F_SETFL may change the second set. */
const KEPT = O.ACCMODE | O.APPEND | O.NONBLOCK | O.LARGEFILE | O.DIRECTORY | O.NOFOLLOW;
const SETTABLE = O.APPEND | O.NONBLOCK;
const FD_CLOEXEC = 1;
const AT_FDCWD = -100;
export const SIGPIPE = 13;

/** What a method may ask of the generic read/write path when it took less than it was offered. */
export const Then = { Done: 0, Flush: 1, Block: 2 } as const;
export type Then = (typeof Then)[keyof typeof Then];

/** An open-file object: its kernel VA and guest-physical address. */
export interface FileRef { va: number; gpa: number }

/** The services a file kind's methods get. */
export interface FileContext {
  readonly khv: Khv;
  readonly console: ConsoleDriver;
  /** The virtio-blk driver (block.ts). */
  readonly block: BlockDriver;
  word(f: FileRef, off: number): number;
  setWord(f: FileRef, off: number, v: number): void;
  /** The process whose stdin the file reads (ARG = pid). */
  process(pid: number): Process | undefined;
  /** The method took less than offered: flush the console and re-dispatch, or block until the pipe changes. */
  then(t: typeof Then.Flush | typeof Then.Block, pipe?: number): void;
  pipeGpa(i: number): number;
  wakePipe(i: number): void;
  /** Ends the calling process with a signal (SIGPIPE). */
  signalSelf(call: SyscallCall, sig: number): void;
}

export interface FileKind {
  readonly name: string;
  /** st_mode and st_rdev for fstat. */
  readonly mode: number;
  readonly rdev: number;
  /**
   * lseek: 'zero' always lands at 0 (character devices as /dev/null); 'none' is -ESPIPE (pipes,
   * consoles); 'size' moves the position within [0, size] (a block device; -EINVAL past it).
   */
  readonly seek: 'zero' | 'none' | 'size';
  /** Reads at most `max` bytes: the bytes, or a negative errno (-EAGAIN after `then(Block)`). */
  read(x: FileContext, call: SyscallCall, f: FileRef, max: number): Uint8Array | number;
  /**
   * Writes `bytes`: how many it took (fewer only after `then(...)`), or a negative errno. `fresh`
   * is false when the bytes are the rest of a call that flushed or blocked.
   */
  write(x: FileContext, call: SyscallCall, f: FileRef, bytes: Uint8Array, fresh: boolean): number;
  /** The last fd referring to the object was closed. */
  release?(x: FileContext, f: FileRef): void;
  /**
   * A kind that moves the bytes itself (a block device: its requests go through guest pages, and
   * a call may take several trips through the kernel text): read or write the user `segs` at
   * byte `pos`. Returns the bytes moved, a negative errno, or AGAIN (the call is dispatched again).
   * When present, `read` and `write` are not called.
   */
  io?(x: FileContext, call: SyscallCall, f: FileRef, reading: boolean, segs: Segments, pos: number): Result;
  /** fsync/fdatasync (absent: -EINVAL, as Linux for pipes, terminals and /dev/null). */
  sync?(x: FileContext, call: SyscallCall, f: FileRef): Result;
  /** The size lseek and fstat see ('size' kinds). */
  size?(x: FileContext, f: FileRef): number;
}

const S_IFCHR = 0o020000, S_IFIFO = 0o010000, S_IFBLK = 0o060000;
/** virtio-blk's block major (Linux allocates it dynamically; 254 is what a small VM gets); 16 minors per disk. */
export const VIRTBLK_MAJOR = 254;
const EMPTY = new Uint8Array(0);
const ebadf = (): number => -EBADF;

function pipeAccount(x: FileContext, f: FileRef, delta: number): void {
  const g = x.pipeGpa(x.word(f, F.ARG));
  const off = (x.word(f, F.FLAGS) & O.ACCMODE) === O.RDONLY ? P.READERS : P.WRITERS;
  x.khv.write32(g + off, x.khv.read32(g + off) + delta);
}

/**
 * More stdin once a process's preloaded stdin is used up: up to `max` bytes, blocking until some
 * arrive; empty at end of file. `hvsim run` streams the host's stdin through it, so a guest blocks
 * in read() until data or EOF as under qemu-user. Unset (the service): preloaded stdin only.
 */
export type StdinFeed = (max: number) => Uint8Array;
let stdinFeed: StdinFeed | null = null;
export function setStdinFeed(feed: StdinFeed | null): void { stdinFeed = feed; }

/** The file kinds; a kind's index is its operations table and method gates (GATE.METHOD + 2 * index). */
export const FILE_KINDS: readonly FileKind[] = [
  {
    name: 'stdin', mode: S_IFIFO | 0o600, rdev: 0, seek: 'none',
    read(x, _call, f, max) {
      const p = x.process(x.word(f, F.ARG));
      if (!p) return EMPTY;
      if (stdinFeed && p.stdinPos === p.stdin.length && max > 0) return stdinFeed(max);
      const n = Math.min(max, p.stdin.length - p.stdinPos);
      p.stdinPos += n;
      return p.stdin.subarray(p.stdinPos - n, p.stdinPos);
    },
    write: ebadf,
  },
  {
    name: 'console', mode: S_IFCHR | 0o620, rdev: (136 << 8) | 0, seek: 'none',
    read: ebadf,
    write(x, call, f, bytes) {
      const n = x.console.queue(call, x.word(f, F.ARG), bytes);
      if (n < bytes.length) x.then(Then.Flush);
      return n;
    },
  },
  {
    name: 'null', mode: S_IFCHR | 0o666, rdev: (1 << 8) | 3, seek: 'zero',
    read: () => EMPTY,
    write: (_x, _c, _f, bytes) => bytes.length,
  },
  {
    name: 'zero', mode: S_IFCHR | 0o666, rdev: (1 << 8) | 5, seek: 'zero',
    read: (_x, _c, _f, max) => new Uint8Array(Math.min(max, 1 << 20)),
    write: (_x, _c, _f, bytes) => bytes.length,
  },
  {
    name: 'pipe', mode: S_IFIFO | 0o600, rdev: 0, seek: 'none',
    read(x, _call, f, max) {
      const i = x.word(f, F.ARG), g = x.pipeGpa(i), khv = x.khv, ring = pipeRing(i);
      let tail = khv.read32(g + P.TAIL);
      const head = khv.read32(g + P.HEAD);
      if (head === tail) {
        if (khv.read32(g + P.WRITERS) === 0) return EMPTY;
        x.then(Then.Block, i);
        return -EAGAIN;
      }
      // As Linux's pipe_read: drain buffers from the tail until `max` bytes or the pipe is empty.
      const out = new Uint8Array(max);
      let n = 0;
      while (n < max && tail !== head) {
        const slot = g + P.SLOTS + 8 * (tail & (PIPE_SLOTS - 1));
        const off = khv.read32(slot), len = khv.read32(slot + 4);
        const k = Math.min(len, max - n);
        out.set(khv.readBytes(ring + (tail & (PIPE_SLOTS - 1)) * PAGE_SIZE + off, k), n);
        n += k;
        khv.write32(slot, off + k);
        khv.write32(slot + 4, len - k);
        if (len - k === 0) tail = (tail + 1) | 0;
      }
      khv.write32(g + P.TAIL, tail);
      x.wakePipe(i);
      return out.subarray(0, n);
    },
    write(x, call, f, bytes, fresh) {
      const i = x.word(f, F.ARG), g = x.pipeGpa(i), khv = x.khv, ring = pipeRing(i);
      if (khv.read32(g + P.READERS) === 0) { x.signalSelf(call, SIGPIPE); return -EPIPE; }
      let head = khv.read32(g + P.HEAD);
      const tail = khv.read32(g + P.TAIL);
      let n = 0;
      // As Linux's pipe_write: a fresh write first merges its sub-page remainder into the last
      // buffer if it fits there, then fills one new page-sized buffer after another (so a write
      // of at most a page is all or nothing).
      const chars = bytes.length & (PAGE_SIZE - 1);
      if (fresh && chars !== 0 && head !== tail) {
        const last = (head - 1) & (PIPE_SLOTS - 1);
        const slot = g + P.SLOTS + 8 * last;
        const end = khv.read32(slot) + khv.read32(slot + 4);
        if (end + chars <= PAGE_SIZE) {
          khv.writeBytes(ring + last * PAGE_SIZE + end, bytes.subarray(0, chars));
          khv.write32(slot + 4, khv.read32(slot + 4) + chars);
          n = chars;
        }
      }
      while (n < bytes.length && ((head - tail) >>> 0) < PIPE_SLOTS) {
        const k = Math.min(PAGE_SIZE, bytes.length - n);
        const s = head & (PIPE_SLOTS - 1);
        khv.writeBytes(ring + s * PAGE_SIZE, bytes.subarray(n, n + k));
        khv.write32(g + P.SLOTS + 8 * s, 0);
        khv.write32(g + P.SLOTS + 8 * s + 4, k);
        head = (head + 1) | 0;
        n += k;
      }
      khv.write32(g + P.HEAD, head);
      if (n > 0) x.wakePipe(i);
      if (n < bytes.length) x.then(Then.Block, i);
      return n;
    },
    release(x, f) {
      pipeAccount(x, f, -1);
      x.wakePipe(x.word(f, F.ARG));
    },
  },
  {
    // A virtio-blk disk (ARG = disk index; the position in POS: disks are at most 1 GiB).
    name: 'block', mode: S_IFBLK | 0o660, rdev: VIRTBLK_MAJOR << 8, seek: 'size',
    read: ebadf,
    write: ebadf,
    io: (x, call, f, reading, segs, pos) => x.block.io(call, x.word(f, F.ARG), reading, segs, pos),
    sync: (x, call, f) => x.block.flush(call, x.word(f, F.ARG)),
    size: (x, f) => x.block.sizeBytes(x.word(f, F.ARG)),
  },
];

export const KIND = { stdin: 0, console: 1, null: 2, zero: 3, pipe: 4, block: 5 } as const;

/** Paths openat finds, with the kind and its ARG (every other path is -ENOENT: there is no file system besides these devices). */
export const DEVICE_PATHS: ReadonlyMap<string, { kind: number; arg: number }> = new Map<string, { kind: number; arg: number }>([
  ['/dev/null', { kind: KIND.null, arg: 0 }], ['/dev/zero', { kind: KIND.zero, arg: 0 }],
  // The VM's disks, in spec order: /dev/vda is disk 0 (-ENOENT past the VM's disks).
  ...'abcdefgh'.split('').map((l, i) => [`/dev/vd${l}`, { kind: KIND.block, arg: i }] as const),
]);

const pipeRing = (i: number): number => kgpa(K.PIPE_BUFFERS + i * PIPE_CAPACITY);
const fdTableOff = (slot: number): number => K.FD_TABLES + slot * FD_MAX * 4;

/** What a process's fd 0 and fd 1 are at boot: the spec's bytes and console port 0, or an end of a named pipe. */
export interface StdioSpec { stdinPipe?: string; stdoutPipe?: string }

/** What is wrong with the named pipes of a VM's processes: each needs a writer (stdout) and a reader (stdin); at most MAX_PIPES. */
export function pipeWiringProblems(specs: readonly StdioSpec[]): string[] {
  const names = new Set<string>();
  for (const s of specs) for (const n of [s.stdoutPipe, s.stdinPipe]) if (n !== undefined) names.add(n);
  const out: string[] = [];
  for (const n of names) {
    if (!specs.some((s) => s.stdoutPipe === n) || !specs.some((s) => s.stdinPipe === n)) out.push(`pipe "${n}" needs a process writing it (stdout) and one reading it (stdin)`);
  }
  if (names.size > MAX_PIPES) out.push(`at most ${MAX_PIPES} pipes`);
  return out;
}

/** The VFS's native state (the rest is in guest memory): which pipe each blocked process waits on is on Process. */
export class Vfs implements FileContext {
  private next: Then = Then.Done;
  private nextPipe = -1;

  /**
   * `block(c)` parks the process on `c` (state 'blocked'), `wake(p)` makes a blocked one runnable,
   * `kill(call, sig)` ends the calling process with a signal.
   */
  constructor(readonly khv: Khv, readonly console: ConsoleDriver, readonly block: BlockDriver, private readonly procs: readonly Process[],
    private readonly sched: Scheduler, private readonly kill: (call: SyscallCall, sig: number) => void) {}

  // *** FileContext ***

  word(f: FileRef, off: number): number { return this.khv.read32(f.gpa + off); }
  setWord(f: FileRef, off: number, v: number): void { this.khv.write32(f.gpa + off, v); }
  process(pid: number): Process | undefined { return this.procs.find((p) => p.pid === pid); }
  then(t: typeof Then.Flush | typeof Then.Block, pipe = -1): void { this.next = t; this.nextPipe = pipe; }
  pipeGpa(i: number): number { return kgpa(K.PIPES + i * PIPE_HEADER); }
  signalSelf(call: SyscallCall, sig: number): void { this.kill(call, sig); }

  wakePipe(i: number): void {
    for (const p of this.procs) if (p.state === 'blocked' && p.waitPipe === i) { p.waitPipe = -1; this.sched.wake(p); }
  }

  // *** boot ***

  /** Writes the kinds' operations tables (at boot). */
  writeOpsTables(gateVa: (index: number) => number): void {
    FILE_KINDS.forEach((_k, i) => {
      this.khv.write32(kgpa(K.FILE_OPS + 16 * i), gateVa(GATE.METHOD + 2 * i));
      this.khv.write32(kgpa(K.FILE_OPS + 16 * i + 4), gateVa(GATE.METHOD + 2 * i + 1));
    });
  }

  /** Number of file kinds (their method gates are GATE.METHOD .. GATE.METHOD + 2 * kinds). */
  get kinds(): number { return FILE_KINDS.length; }

  /**
   * Creates the named pipes of a VM's processes (at boot). Raises: Error when a pipe has no
   * writer or no reader, or there are more than MAX_PIPES.
   */
  createPipes(specs: readonly StdioSpec[]): Map<string, number> {
    const problems = pipeWiringProblems(specs);
    if (problems.length > 0) throw new Error(problems.join('; '));
    const names = new Map<string, number>();
    for (const s of specs) for (const n of [s.stdoutPipe, s.stdinPipe]) if (n !== undefined) names.set(n, -1);
    for (const [n] of names) {
      const i = this.allocPipe();
      if (i < 0) throw new Error(`more than ${MAX_PIPES} pipes`);
      names.set(n, i);
    }
    return names;
  }

  /** Gives process `p` (fd table slot pid - 1) fd 0, 1 and 2. Raises: Error past FD_SLOTS processes or MAX_FILES files. */
  setupProcess(p: Process, stdio: StdioSpec, pipes: Map<string, number>): void {
    const slot = p.pid - 1;
    if (slot < 0 || slot >= FD_SLOTS) throw new Error(`at most ${FD_SLOTS} processes`);
    p.fdTable = kva(fdTableOff(slot));
    this.khv.fill(kgpa(fdTableOff(slot)), FD_MAX * 4, 0);
    const open = (kind: number, flags: number, arg: number): number => {
      const f = this.newFile(kind, flags, arg);
      if (!f) throw new Error(`more than ${MAX_FILES} open files`);
      return f.va;
    };
    const pipeEnd = (name: string, flags: number): number => {
      const i = pipes.get(name)!;
      const g = this.pipeGpa(i) + ((flags & O.ACCMODE) === O.RDONLY ? P.READERS : P.WRITERS);
      this.khv.write32(g, this.khv.read32(g) + 1);
      return open(KIND.pipe, flags, i);
    };
    this.setFd(p, 0, stdio.stdinPipe !== undefined ? pipeEnd(stdio.stdinPipe, O.RDONLY) : open(KIND.stdin, O.RDONLY, p.pid));
    this.setFd(p, 1, stdio.stdoutPipe !== undefined ? pipeEnd(stdio.stdoutPipe, O.WRONLY) : open(KIND.console, O.WRONLY, 0));
    this.setFd(p, 2, open(KIND.console, O.WRONLY, 1));
  }

  /** Closes every fd of a process that ended (waking whoever waits on its pipes). */
  closeAll(p: Process): void {
    if (p.fdTable === 0) return;
    for (let fd = 0; fd < FD_MAX; fd++) this.closeFd(p, fd);
  }

  // *** fd tables and objects ***

  private fdGpa(p: Process, fd: number): number { return kgpa(p.fdTable - kva(0) + 4 * fd); }

  /** The open-file object of `fd`, or null (not open / out of range). */
  file(p: Process, fd: number): FileRef | null {
    if (!(fd >= 0 && fd < FD_MAX)) return null;
    const va = this.khv.read32(this.fdGpa(p, fd)) & ~FD_CLOEXEC;
    return va === 0 ? null : { va: va >>> 0, gpa: kgpa((va >>> 0) - kva(0)) };
  }

  private setFd(p: Process, fd: number, va: number, cloexec = false): void {
    this.khv.write32(this.fdGpa(p, fd), va | (cloexec ? FD_CLOEXEC : 0));
  }

  private kindOf(f: FileRef): FileKind { return FILE_KINDS[(this.word(f, F.OPS) - kva(K.FILE_OPS)) >>> 4]; }

  private newFile(kind: number, flags: number, arg: number): FileRef | null {
    for (let i = 0; i < MAX_FILES; i++) {
      const off = K.FILES + i * FILE_SIZE;
      const f = { va: kva(off), gpa: kgpa(off) };
      if (this.word(f, F.OPS) !== 0) continue;
      this.setWord(f, F.OPS, kva(K.FILE_OPS + 16 * kind));
      this.setWord(f, F.REFS, 1);
      this.setWord(f, F.FLAGS, flags & KEPT);
      this.setWord(f, F.ARG, arg);
      this.setWord(f, F.POS, 0);
      return f;
    }
    return null;
  }

  private allocPipe(): number {
    for (let i = 0; i < MAX_PIPES; i++) {
      const g = this.pipeGpa(i);
      if (this.khv.read32(g + P.READERS) === 0 && this.khv.read32(g + P.WRITERS) === 0) {
        this.khv.fill(g, PIPE_HEADER, 0);
        return i;
      }
    }
    return -1;
  }

  private lowestFreeFd(p: Process, from: number): number {
    for (let fd = from; fd < FD_MAX; fd++) if (this.khv.read32(this.fdGpa(p, fd)) === 0) return fd;
    return -1;
  }

  /** Drops fd's reference to its object; the last reference releases it. Returns false when fd was not open. */
  private closeFd(p: Process, fd: number): boolean {
    const f = this.file(p, fd);
    if (!f) return false;
    this.setFd(p, fd, 0);
    const refs = this.word(f, F.REFS) - 1;
    this.setWord(f, F.REFS, refs);
    if (refs === 0) {
      this.kindOf(f).release?.(this, f);
      this.setWord(f, F.OPS, 0);
    }
    return true;
  }

  private ref(f: FileRef): void { this.setWord(f, F.REFS, this.word(f, F.REFS) + 1); }

  // *** read and write (the methods the kernel text calls, and the native path) ***

  /**
   * A method gate (`GATE.METHOD + 2 * kind + op`) was reached from the kernel text's `sys_rw`
   * with the open-file object in t3: runs the object's read or write for syscall `nr` (read,
   * write, readv, writev) with the caller's arguments. Returns a0.
   */
  method(call: SyscallCall, nr: number, fileVa: number): number {
    const f = { va: fileVa >>> 0, gpa: kgpa((fileVa >>> 0) - kva(0)) };
    return this.rw(call, nr, f);
  }

  /** Whether `index` is a method gate. */
  isMethodGate(index: number): boolean { return index >= GATE.METHOD && index < GATE.METHOD + 2 * FILE_KINDS.length; }

  /** read/write/readv/writev natively (the syscall rows: a bad fd from the kernel text, and technique 3's chain). */
  syscall(call: SyscallCall, nr: number): number {
    const f = this.file(call.p, call.a[0]);
    if (!f) { call.p.writeDone = 0; return -EBADF; }
    return this.rw(call, nr, f);
  }

  private rw(call: SyscallCall, nr: number, f: FileRef): number {
    const vector = nr === NR.readv || nr === NR.writev;
    const reading = nr === NR.read || nr === NR.readv;
    const flags = this.word(f, F.FLAGS);
    const acc = flags & O.ACCMODE;
    if (reading ? acc === O.WRONLY : acc === O.RDONLY) { call.p.writeDone = 0; return -EBADF; }
    const segs = vector ? this.iovecs(call, call.a[1] >>> 0, call.a[2]) : [call.a[1] >>> 0, call.a[2] >>> 0];
    if (typeof segs === 'number') { call.p.writeDone = 0; return segs; }
    const kind = this.kindOf(f);
    if (kind.io) {
      const r = kind.io(this, call, f, reading, segs, this.word(f, F.POS));
      if (r === AGAIN) return call.a[0];
      if (r > 0) this.setWord(f, F.POS, this.word(f, F.POS) + r);
      return r;
    }
    this.next = Then.Done;
    return reading ? this.read(call, f, flags, segs) : this.write(call, f, flags, segs);
  }

  /** The iovec array as [base, len, ...]; -EINVAL / -EFAULT as Linux. */
  private iovecs(call: SyscallCall, va: number, count: number): number[] | number {
    if (count < 0 || count > 1024) return -EINVAL;
    if (count === 0) return [];
    const raw = call.p.mm.copyIn(va, 8 * count);
    if (!raw) return -EFAULT;
    const dv = new DataView(raw.buffer);
    const segs: number[] = [];
    let total = 0;
    for (let i = 0; i < count; i++) {
      const base = dv.getUint32(8 * i, true), len = dv.getUint32(8 * i + 4, true);
      total += len;
      if (len > 0x7fff_ffff || total > 0x7fff_ffff) return -EINVAL;
      segs.push(base, len);
    }
    return segs;
  }

  private read(call: SyscallCall, f: FileRef, flags: number, segs: number[]): number {
    const mm = call.p.mm;
    let room = 0, total = 0;
    for (let s = 0; s < segs.length; s += 2) {
      total += segs[s + 1];
      const ok = mm.userSpans(segs[s], segs[s + 1], PROT.W, () => {});
      room += ok;
      if (ok < segs[s + 1]) break;
    }
    if (total === 0) return 0;
    if (room === 0) return -EFAULT;
    const kind = this.kindOf(f);
    const r = kind.read(this, call, f, room);
    if (typeof r === 'number') {
      if (r === -EAGAIN && this.next === Then.Block && !(flags & O.NONBLOCK)) return this.park(call, this.nextPipe);
      return r;
    }
    let i = 0;
    for (let s = 0; s < segs.length && i < r.length; s += 2) {
      const n = Math.min(segs[s + 1], r.length - i);
      mm.copyOut(segs[s], r.subarray(i, i + n));
      i += n;
    }
    call.copied += r.length;
    return r.length;
  }

  private write(call: SyscallCall, f: FileRef, flags: number, segs: number[]): number {
    const p = call.p, mm = p.mm, khv = this.khv;
    let total = 0;
    for (let s = 1; s < segs.length; s += 2) total += segs[s];
    const done = p.writeDone;
    p.writeDone = 0;
    // Gather the bytes not yet written, up to the first fault.
    const bytes = new Uint8Array(total - done);
    let got = 0, skip = done;
    for (let s = 0; s < segs.length; s += 2) {
      let va = segs[s], len = segs[s + 1];
      if (skip >= len) { skip -= len; continue; }
      va = (va + skip) >>> 0; len -= skip; skip = 0;
      const ok = mm.userSpans(va, len, PROT.R, (gpa, i, n) => bytes.set(khv.readBytes(gpa, n), got + i));
      got += ok;
      if (ok < len) break;
    }
    if (total - done === 0) return done;
    if (got === 0) return done > 0 ? done : -EFAULT;
    const r = this.kindOf(f).write(this, call, f, bytes.subarray(0, got), done === 0);
    if (r < 0) return done > 0 ? done : r;
    call.copied += r;
    const now = done + r;
    if (now < total && r < got) {
      if (this.next === Then.Flush) { p.writeDone = now; call.cpu.frame[PERCPU.CONTINUE >> 2] = 1; return call.a[0]; }
      if (this.next === Then.Block) {
        if (flags & O.NONBLOCK) return now > 0 ? now : -EAGAIN;
        p.writeDone = now;
        return this.park(call, this.nextPipe);
      }
    }
    return now;
  }

  /** Parks the calling process until pipe `i` changes; its ecall runs again when it wakes (a restart, not a second syscall). */
  private park(call: SyscallCall, pipe: number): number {
    const p = call.p;
    p.waitPipe = pipe;
    p.restart = true;
    this.sched.block(call.cpu);
    p.pc = (p.pc - 4) | 0;
    return 0;
  }

  // *** the other file syscalls ***

  openat(call: SyscallCall): number {
    const [dirfd, pathVa, flags] = [call.a[0], call.a[1] >>> 0, call.a[2]];
    const path = this.userPath(call, pathVa);
    if (typeof path === 'number') return path;
    if (!path.startsWith('/') && dirfd !== AT_FDCWD && !this.file(call.p, dirfd)) return -EBADF;
    const dev = DEVICE_PATHS.get(path);
    if (dev === undefined || (dev.kind === KIND.block && !this.block.exists(dev.arg))) return -ENOENT;
    if (flags & O.DIRECTORY) return -ENOTDIR;
    const fd = this.lowestFreeFd(call.p, 0);
    if (fd < 0) return -EMFILE;
    if (dev.kind === KIND.block) {
      // The first open sets the device up (register accesses from the kernel text: the call comes back).
      const r = this.block.open(call, dev.arg);
      if (r === AGAIN) return call.a[0];
      if (r < 0) return r;
    }
    const f = this.newFile(dev.kind, flags, dev.arg);
    if (!f) return -ENFILE;
    this.setFd(call.p, fd, f.va, (flags & O.CLOEXEC) !== 0);
    return fd;
  }

  /** A NUL-terminated path from user memory (at most 4096 bytes with the NUL, as PATH_MAX). */
  private userPath(call: SyscallCall, va: number): string | number {
    const bytes: number[] = [];
    for (let page = 0; bytes.length < 4096; page++) {
      const start = (va + bytes.length) >>> 0;
      const n = Math.min(4096 - bytes.length, PAGE_SIZE - (start & 0xfff));
      const chunk = call.p.mm.copyIn(start, n);
      if (!chunk) return -EFAULT;
      const z = chunk.indexOf(0);
      if (z >= 0) { for (let i = 0; i < z; i++) bytes.push(chunk[i]); return Buffer.from(bytes).toString('latin1'); }
      for (const b of chunk) bytes.push(b);
    }
    return -ERRNO.ENAMETOOLONG;
  }

  close(call: SyscallCall): number { return this.closeFd(call.p, call.a[0]) ? 0 : -EBADF; }

  pipe2(call: SyscallCall): number {
    const [va, flags] = [call.a[0] >>> 0, call.a[1]];
    if (flags & ~(O.NONBLOCK | O.CLOEXEC | 0x4000 /* O_DIRECT */)) return -EINVAL;
    if (flags & 0x4000) return -EINVAL; // packet mode is not modelled
    const p = call.p;
    const rfd = this.lowestFreeFd(p, 0);
    if (rfd < 0) return -EMFILE;
    this.setFd(p, rfd, 1); // reserve it while the second is found
    const wfd = this.lowestFreeFd(p, 0);
    this.setFd(p, rfd, 0);
    if (wfd < 0) return -EMFILE;
    const i = this.allocPipe();
    if (i < 0) return -ENFILE;
    const r = this.newFile(KIND.pipe, O.RDONLY | (flags & O.NONBLOCK), i);
    const w = r && this.newFile(KIND.pipe, O.WRONLY | (flags & O.NONBLOCK), i);
    if (!r || !w) { if (r) this.setWord(r, F.OPS, 0); return -ENFILE; }
    const out = new Uint8Array(8);
    new DataView(out.buffer).setInt32(0, rfd, true);
    new DataView(out.buffer).setInt32(4, wfd, true);
    if (p.mm.copyOut(va, out) !== 8) { this.setWord(r, F.OPS, 0); this.setWord(w, F.OPS, 0); return -EFAULT; }
    const g = this.pipeGpa(i);
    this.khv.write32(g + P.READERS, 1);
    this.khv.write32(g + P.WRITERS, 1);
    const cloexec = (flags & O.CLOEXEC) !== 0;
    this.setFd(p, rfd, r.va, cloexec);
    this.setFd(p, wfd, w.va, cloexec);
    return 0;
  }

  dup(call: SyscallCall): number {
    const f = this.file(call.p, call.a[0]);
    if (!f) return -EBADF;
    return this.dupTo(call.p, f, this.lowestFreeFd(call.p, 0), false);
  }

  dup3(call: SyscallCall): number {
    const [oldfd, newfd, flags] = [call.a[0], call.a[1], call.a[2]];
    if (flags & ~O.CLOEXEC) return -EINVAL;
    const f = this.file(call.p, oldfd);
    if (!f) return -EBADF;
    if (oldfd === newfd) return -EINVAL;
    if (!(newfd >= 0 && newfd < FD_MAX)) return -EBADF;
    this.ref(f); // newfd may hold the last other reference to f's pipe end
    this.closeFd(call.p, newfd);
    this.setWord(f, F.REFS, this.word(f, F.REFS) - 1);
    return this.dupTo(call.p, f, newfd, (flags & O.CLOEXEC) !== 0);
  }

  private dupTo(p: Process, f: FileRef, fd: number, cloexec: boolean): number {
    if (fd < 0) return -EMFILE;
    this.ref(f);
    this.setFd(p, fd, f.va, cloexec);
    return fd;
  }

  /**
   * _llseek(fd, offset_high, offset_low, result*, whence): pipes and consoles are not seekable,
   * character devices land at 0, a block device moves within [0, size] as Linux's
   * fixed_size_llseek (SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE; -EINVAL outside,
   * -ENXIO for SEEK_DATA/SEEK_HOLE at or past the end).
   */
  llseek(call: SyscallCall): number {
    const [fd, hi, lo, resultVa, whence] = [call.a[0], call.a[1], call.a[2] >>> 0, call.a[3] >>> 0, call.a[4]];
    const f = this.file(call.p, fd);
    if (!f) return -EBADF;
    const kind = this.kindOf(f);
    if (kind.seek === 'none') return -ESPIPE;
    if (whence < 0 || whence > 4) return -EINVAL;
    const off = hi * 2 ** 32 + lo;
    if (whence === 0 && off < 0) return -EINVAL;
    let to = 0;
    if (kind.seek === 'size') {
      const size = kind.size!(this, f), cur = this.word(f, F.POS);
      if (whence === 3 || whence === 4) {
        if (off < 0 || off >= size) return -ENXIO;
        to = whence === 3 ? off : size;
      } else {
        to = off + (whence === 1 ? cur : whence === 2 ? size : 0);
      }
      if (to < 0 || to > size) return -EINVAL;
    }
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigInt64(0, BigInt(to), true);
    if (call.p.mm.copyOut(resultVa, out) !== 8) return -EFAULT;
    if (kind.seek === 'size') this.setWord(f, F.POS, to);
    return 0;
  }

  /**
   * pread64/pwrite64(fd, buf, count, offset_lo, offset_hi): at an offset, leaving the position
   * alone. Pipes and consoles -ESPIPE; a negative offset -EINVAL.
   */
  pio(call: SyscallCall, reading: boolean): number {
    const f = this.file(call.p, call.a[0]);
    if (!f) return -EBADF;
    const acc = this.word(f, F.FLAGS) & O.ACCMODE;
    if (reading ? acc === O.WRONLY : acc === O.RDONLY) return -EBADF;
    const kind = this.kindOf(f);
    if (kind.seek === 'none') return -ESPIPE;
    const pos = call.a[4] * 2 ** 32 + (call.a[3] >>> 0);
    if (pos < 0) return -EINVAL;
    if ((call.a[2] >>> 0) > 0x7fff_ffff) return -EINVAL;
    const segs = [call.a[1] >>> 0, call.a[2] >>> 0];
    if (kind.io) {
      const r = kind.io(this, call, f, reading, segs, pos);
      return r === AGAIN ? call.a[0] : r;
    }
    return reading ? this.read(call, f, 0, segs) : this.write(call, f, 0, segs);
  }

  /** fsync/fdatasync(fd): a block device flushes its write cache; other kinds -EINVAL, as Linux. */
  fsync(call: SyscallCall): number {
    const f = this.file(call.p, call.a[0]);
    if (!f) return -EBADF;
    const kind = this.kindOf(f);
    if (!kind.sync) return -EINVAL;
    const r = kind.sync(this, call, f);
    return r === AGAIN ? call.a[0] : r;
  }

  /** fstat(fd, struct stat*) in asm-generic's 128-byte layout. */
  fstat(call: SyscallCall): number {
    const f = this.file(call.p, call.a[0]);
    if (!f) return -EBADF;
    const kind = this.kindOf(f);
    const st = new Uint8Array(128);
    const dv = new DataView(st.buffer);
    dv.setUint32(0, kind.name === 'pipe' ? 0xf : 6, true);                       // st_dev
    dv.setUint32(8, kind.name === 'pipe' ? 0x1000 + this.word(f, F.ARG) : (kind.rdev & 0xff) + 1, true); // st_ino
    const block = kind.name === 'block', disk = block ? this.word(f, F.ARG) : 0;
    if (block) dv.setUint32(8, 0x2000 + disk, true);
    dv.setUint32(16, kind.mode, true);
    dv.setUint32(20, 1, true);                                                     // st_nlink
    dv.setUint32(32, kind.rdev + 16 * disk, true);
    if (block) dv.setBigInt64(48, BigInt(kind.size!(this, f)), true);             // st_size: the disk's capacity
    dv.setInt32(56, kind.name === 'pipe' || block ? PAGE_SIZE : 1024, true);       // st_blksize
    if (block) dv.setBigInt64(64, BigInt(kind.size!(this, f) / 512), true);      // st_blocks
    call.copied += 128;
    return call.p.mm.copyOut(call.a[1] >>> 0, st) === 128 ? 0 : -EFAULT;
  }

  /** No file is a terminal: -ENOTTY, except a block device's size requests (BLKGETSIZE64, BLKGETSIZE, BLKSSZGET). */
  ioctl(call: SyscallCall): number {
    const f = this.file(call.p, call.a[0]);
    if (!f) return -EBADF;
    const kind = this.kindOf(f);
    if (kind.name !== 'block') return -ENOTTY;
    const req = call.a[1] >>> 0, size = kind.size!(this, f);
    const out = new Uint8Array(req === BLK_IOCTL.GETSIZE64 ? 8 : 4);
    const dv = new DataView(out.buffer);
    if (req === BLK_IOCTL.GETSIZE64) dv.setBigUint64(0, BigInt(size), true);
    else if (req === BLK_IOCTL.GETSIZE) dv.setUint32(0, size / 512, true);
    else if (req === BLK_IOCTL.SSZGET) dv.setUint32(0, 512, true);
    else return -ENOTTY;
    return call.p.mm.copyOut(call.a[2] >>> 0, out) === out.length ? 0 : -EFAULT;
  }

  fcntl(call: SyscallCall): number {
    const [fd, cmd, arg] = [call.a[0], call.a[1], call.a[2]];
    const p = call.p;
    const f = this.file(p, fd);
    if (!f) return -EBADF;
    switch (cmd) {
      case FCNTL.DUPFD: case FCNTL.DUPFD_CLOEXEC:
        if (!(arg >= 0 && arg < FD_MAX)) return -EINVAL;
        return this.dupTo(p, f, this.lowestFreeFd(p, arg), cmd === FCNTL.DUPFD_CLOEXEC);
      case FCNTL.GETFD: return this.khv.read32(this.fdGpa(p, fd)) & FD_CLOEXEC;
      case FCNTL.SETFD: this.setFd(p, fd, f.va, (arg & FD_CLOEXEC) !== 0); return 0;
      case FCNTL.GETFL: return this.word(f, F.FLAGS);
      case FCNTL.SETFL: this.setWord(f, F.FLAGS, (this.word(f, F.FLAGS) & ~SETTABLE) | (arg & SETTABLE)); return 0;
      default: return -EINVAL;
    }
  }
}

/** The syscalls whose table slots point at the kernel text's `sys_rw` (their fd's method is called from guest code). */
export const NR = { read: 63, write: 64, readv: 65, writev: 66 } as const;
/** Block device ioctls (linux/fs.h, 32-bit size_t): BLKGETSIZE64, BLKGETSIZE, BLKSSZGET. */
export const BLK_IOCTL = { GETSIZE64: 0x8004_1272, GETSIZE: 0x1260, SSZGET: 0x1268 } as const;
export const FCNTL = { DUPFD: 0, GETFD: 1, SETFD: 2, GETFL: 3, SETFL: 4, DUPFD_CLOEXEC: 1030 } as const;
