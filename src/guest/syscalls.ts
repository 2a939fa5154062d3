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

const rw = (k: SyscallKernel, c: SyscallCall, nr: number): number => k.files.syscall(c, nr);

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
  { nr: 23, name: 'dup', support: 'full', handler: (k, c) => k.files.dup(c) },
  { nr: 24, name: 'dup3', support: 'full', handler: (k, c) => k.files.dup3(c) },
  { nr: 25, name: 'fcntl64', support: 'partial', note: 'F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL (O_APPEND, O_NONBLOCK); locks and the rest -EINVAL', handler: (k, c) => k.files.fcntl(c) },
  { nr: 29, name: 'ioctl', support: 'partial', note: 'no file here is a terminal: -ENOTTY for every request on an open fd, except BLKGETSIZE64, BLKGETSIZE and BLKSSZGET on a disk', handler: (k, c) => k.files.ioctl(c) },
  { nr: 56, name: 'openat', support: 'partial', note: '/dev/null, /dev/zero and the VM\'s disks /dev/vda../dev/vdh; every other path -ENOENT (there is no file system)', handler: (k, c) => k.files.openat(c) },
  { nr: 57, name: 'close', support: 'full', handler: (k, c) => k.files.close(c) },
  { nr: 59, name: 'pipe2', support: 'partial', note: 'O_NONBLOCK, O_CLOEXEC; O_DIRECT (packet mode) -EINVAL', handler: (k, c) => k.files.pipe2(c) },
  { nr: 62, name: 'llseek', support: 'full', note: 'pipes and consoles -ESPIPE; /dev/null and /dev/zero stay at 0; a disk within [0, size] (-EINVAL past it)', handler: (k, c) => k.files.llseek(c) },
  { nr: 63, name: 'read', support: 'full', note: 'through the fd\'s read method, called from the kernel text', entry: 'sys_rw', handler: (k, c) => rw(k, c, 63) },
  { nr: 64, name: 'write', support: 'full', note: 'through the fd\'s write method, called from the kernel text', entry: 'sys_rw', handler: (k, c) => rw(k, c, 64) },
  { nr: 65, name: 'readv', support: 'full', note: 'as read', entry: 'sys_rw', handler: (k, c) => rw(k, c, 65) },
  { nr: 66, name: 'writev', support: 'full', note: 'as write', entry: 'sys_rw', handler: (k, c) => rw(k, c, 66) },
  { nr: 67, name: 'pread64', support: 'full', note: 'offset in a3 (low) and a4 (high); pipes and consoles -ESPIPE', handler: (k, c) => k.files.pio(c, true) },
  { nr: 68, name: 'pwrite64', support: 'full', note: 'as pread64', handler: (k, c) => k.files.pio(c, false) },
  { nr: 80, name: 'fstat', support: 'partial', note: 'type, device numbers, link count and block size (a disk: its size and blocks too); owner and times are 0', handler: (k, c) => k.files.fstat(c) },
  { nr: 82, name: 'fsync', support: 'full', note: 'a disk: one virtio FLUSH request; other files -EINVAL, as Linux', handler: (k, c) => k.files.fsync(c) },
  { nr: 83, name: 'fdatasync', support: 'full', note: 'as fsync', handler: (k, c) => k.files.fsync(c) },
  { nr: 93, name: 'exit', support: 'full', handler: (k, c) => { k.exit(c, c.a[0]); return 0; } },
  { nr: 94, name: 'exit_group', support: 'full', handler: (k, c) => { k.exit(c, c.a[0]); return 0; } },
  { nr: 96, name: 'set_tid_address', support: 'full', handler: (_k, c) => c.p.pid },
  { nr: 124, name: 'sched_yield', support: 'full', handler: (k, c) => { k.yield(c); return 0; } },
  { nr: 129, name: 'kill', support: 'partial', note: 'signals take their default action (no handlers): terminate, or ignore (SIGCHLD, SIGURG, SIGWINCH, SIGCONT); stop signals -ENOSYS', handler: (k, c) => k.kill(c, c.a[0], c.a[1]) },
  { nr: 131, name: 'tgkill', support: 'partial', note: 'as kill; tgid and tid are both the pid', handler: (k, c) => (c.a[0] === c.a[1] ? k.kill(c, c.a[1], c.a[2]) : -ERRNO.ESRCH) },
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

