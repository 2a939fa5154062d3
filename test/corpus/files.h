/* File-layer syscalls for the differential corpus (Linux RV32 numbers). */
static inline long sys6(long n, long a, long b, long c, long d, long e) {
  register long a7 asm("a7") = n; register long a0 asm("a0") = a;
  register long a1 asm("a1") = b; register long a2 asm("a2") = c; register long a3 asm("a3") = d; register long a4 asm("a4") = e;
  asm volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2), "r"(a3), "r"(a4) : "memory");
  return a0;
}
struct iovec { void *base; u32 len; };
static long sys_dup(int fd) { return sys6(23, fd, 0, 0, 0, 0); }
static long sys_dup3(int a, int b, int f) { return sys6(24, a, b, f, 0, 0); }
static long sys_fcntl(int fd, int cmd, long arg) { return sys6(25, fd, cmd, arg, 0, 0); }
static long sys_ioctl(int fd, u32 req, void *arg) { return sys6(29, fd, (long)req, (long)arg, 0, 0); }
static long sys_open(const char *path, int flags) { return sys6(56, -100, (long)path, flags, 0, 0); }
static long sys_close(int fd) { return sys6(57, fd, 0, 0, 0, 0); }
static long sys_pipe2(int *fds, int flags) { return sys6(59, (long)fds, flags, 0, 0, 0); }
static long sys_llseek(int fd, long hi, long lo, i64 *res, int whence) { return sys6(62, fd, hi, lo, (long)res, whence); }
static long sys_readv(int fd, struct iovec *v, int n) { return sys6(65, fd, (long)v, n, 0, 0); }
static long sys_writev(int fd, struct iovec *v, int n) { return sys6(66, fd, (long)v, n, 0, 0); }
static long sys_fstat(int fd, void *st) { return sys6(80, fd, (long)st, 0, 0, 0); }
static long sys_kill(int pid, int sig) { return sys6(129, pid, sig, 0, 0, 0); }
static long sys_getpid(void) { return sys6(172, 0, 0, 0, 0, 0); }
static void show(const char *what, long v) { puts_(what); puts_(" "); puti(v); puts_("\n"); }
