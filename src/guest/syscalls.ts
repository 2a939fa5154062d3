/**
 * The guest kernel's syscall table as data (gVisor style): Linux RV32 asm-generic numbers, name,
 * support level, and the native handler. Numbers not in the table dispatch to the "not
 * implemented" gate: -ENOSYS, counted per number. docs/guest-os.md is generated from this table's
 * content by reading it; a unit test walks it.
 *
 * Handlers get the call (process, vCPU, a0-a5) and return a0 (a negative errno on error); they
 * reach the kernel through the SyscallKernel contract (syscall-abi.ts) and the process's memory
 * through its address space (`c.p.mm`). The kernel is given this table when it is built
 * (runtime/vm.ts): the table does not import the kernel, nor the kernel the table.
 */
import type { SyscallCall, SyscallKernel, SyscallTable } from './syscall-abi.js';
import { PROT, USER_END } from './address-space.js';
import { ERRNO } from './errno.js';

const { EBADF, EFAULT, EINVAL } = ERRNO;

const MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20;
const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
const TIMER_ABSTIME = 1;
const CLOCKS = new Set([0, 1, 2, 3, 4, 5, 6, 7]);

/** The bytes of `struct new_utsname` (six 65-byte fields). */
function utsname(): Uint8Array {
  const fields = ['Linux', 'hvsim', '6.1.0-hvsim', '#1 SMP hvsim', 'riscv32', '(none)'];
  const out = new Uint8Array(6 * 65);
  fields.forEach((f, i) => out.set(new TextEncoder().encode(f), i * 65));
  return out;
}

function timespec(ns: number): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setBigInt64(0, BigInt(Math.floor(ns / 1e9)), true);
  dv.setBigInt64(8, BigInt(ns % 1e9), true);
  return b;
}

function write(k: SyscallKernel, c: SyscallCall): number {
  const [fd, buf, len] = [c.a[0], c.a[1] >>> 0, c.a[2] >>> 0];
  if (fd !== 1 && fd !== 2) { c.p.writeDone = 0; return -EBADF; }
  const done = c.p.writeDone;
  const r = k.consoleWrite(c, fd - 1, (buf + done) >>> 0, len - done);
  if (r < 0) { c.p.writeDone = 0; return done > 0 ? done : r; }
  if (done + r < len && r > 0) {
    // The ring is full: flush it and come back for the rest (the stub re-dispatches).
    c.p.writeDone = done + r;
    k.continueAfterFlush(c);
    return fd;
  }
  c.p.writeDone = 0;
  return done + r;
}

function read(_k: SyscallKernel, c: SyscallCall): number {
  const [fd, buf, len] = [c.a[0], c.a[1] >>> 0, c.a[2] >>> 0];
  if (fd !== 0) return -EBADF;
  const p = c.p;
  const n = Math.min(len, p.stdin.length - p.stdinPos);
  const copied = p.mm.copyOut(buf, p.stdin.subarray(p.stdinPos, p.stdinPos + n));
  if (copied === 0 && n > 0) return -EFAULT;
  p.stdinPos += copied;
  c.copied += copied;
  return copied;
}

function mmap2(_k: SyscallKernel, c: SyscallCall): number {
  const [addr, len, prot, flags] = [c.a[0] >>> 0, c.a[1] >>> 0, c.a[2], c.a[3]];
  if (!(flags & MAP_ANONYMOUS)) return -EBADF;
  if (len === 0 || len > USER_END) return -EINVAL;
  const perms = ((prot & PROT_READ) ? PROT.R : 0) | ((prot & PROT_WRITE) ? PROT.W | PROT.R : 0) | ((prot & PROT_EXEC) ? PROT.X : 0);
  if (flags & MAP_FIXED) {
    if (addr & 0xfff || addr + len > 0x8000_0000 - 8 * 1024 * 1024 || addr < 0x1000) return -EINVAL;
    return c.p.mm.mmap(len, perms, addr);
  }
  return c.p.mm.mmap(len, perms, null);
}

function munmap(_k: SyscallKernel, c: SyscallCall): number {
  const [addr, len] = [c.a[0] >>> 0, c.a[1] >>> 0];
  if (addr & 0xfff || len === 0) return -EINVAL;
  c.p.mm.munmap(addr, len);
  return 0;
}

function clockGettime(k: SyscallKernel, c: SyscallCall): number {
  if (!CLOCKS.has(c.a[0])) return -EINVAL;
  const n = c.p.mm.copyOut(c.a[1] >>> 0, timespec(k.now(c)));
  c.copied += 16;
  return n === 16 ? 0 : -EFAULT;
}

function clockNanosleep(k: SyscallKernel, c: SyscallCall): number {
  if (!CLOCKS.has(c.a[0])) return -EINVAL;
  const req = c.p.mm.copyIn(c.a[2] >>> 0, 16);
  if (!req) return -EFAULT;
  const dv = new DataView(req.buffer);
  const sec = Number(dv.getBigInt64(0, true)), nsec = Number(dv.getBigInt64(8, true));
  if (sec < 0 || nsec < 0 || nsec >= 1e9) return -EINVAL;
  const ns = sec * 1e9 + nsec;
  const wake = (c.a[1] & TIMER_ABSTIME) ? ns : k.now(c) + ns;
  k.sleepUntil(c, wake);
  return 0;
}

function getrandom(k: SyscallKernel, c: SyscallCall): number {
  const len = Math.min(c.a[1] >>> 0, 1 << 25);
  const n = c.p.mm.copyOut(c.a[0] >>> 0, k.random.bytes(len));
  c.copied += n;
  return n === 0 && len > 0 ? -EFAULT : n;
}

/** The Linux RV32 (asm-generic) syscalls this kernel implements. */
export const SYSCALLS: SyscallTable = [
  { nr: 63, name: 'read', support: 'partial', note: 'fd 0 only, from the process spec\'s stdin; other fds -EBADF', handler: read },
  { nr: 64, name: 'write', support: 'partial', note: 'fd 1 and 2 only (console ports 0 and 1); other fds -EBADF', handler: write },
  { nr: 93, name: 'exit', support: 'full', handler: (k, c) => { k.exit(c, c.a[0]); return 0; } },
  { nr: 94, name: 'exit_group', support: 'full', handler: (k, c) => { k.exit(c, c.a[0]); return 0; } },
  { nr: 96, name: 'set_tid_address', support: 'full', handler: (_k, c) => c.p.pid },
  { nr: 124, name: 'sched_yield', support: 'full', handler: (k, c) => { k.yield(c); return 0; } },
  { nr: 160, name: 'uname', support: 'full', handler: (_k, c) => { c.copied += 390; return c.p.mm.copyOut(c.a[0] >>> 0, utsname()) === 390 ? 0 : -EFAULT; } },
  { nr: 172, name: 'getpid', support: 'full', handler: (_k, c) => c.p.pid },
  { nr: 178, name: 'gettid', support: 'full', handler: (_k, c) => c.p.pid },
  { nr: 214, name: 'brk', support: 'full', handler: (_k, c) => c.p.mm.setBrk(c.a[0] >>> 0) },
  { nr: 215, name: 'munmap', support: 'full', handler: munmap },
  { nr: 222, name: 'mmap2', support: 'partial', note: 'anonymous private mappings only; file mappings -EBADF', handler: mmap2 },
  { nr: 278, name: 'getrandom', support: 'full', note: 'bytes from the VM seed', handler: getrandom },
  { nr: 403, name: 'clock_gettime64', support: 'full', note: 'every clock reads virtual time (cycles at 1 GHz) since boot', handler: clockGettime },
  { nr: 407, name: 'clock_nanosleep_time64', support: 'partial', note: 'sleeps in virtual time, woken at the next timer tick; rem is not written', handler: clockNanosleep },
];

