/* Minimal runtime for the differential corpus: Linux RV32 syscalls, no libc. */
typedef unsigned int u32; typedef int i32; typedef unsigned long long u64; typedef long long i64;
static inline long sys3(long n, long a, long b, long c) {
  register long a7 asm("a7") = n; register long a0 asm("a0") = a;
  register long a1 asm("a1") = b; register long a2 asm("a2") = c;
  asm volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2) : "memory");
  return a0;
}
static inline long sys_write(int fd, const void *p, u32 n) { return sys3(64, fd, (long)p, n); }
static inline long sys_read(int fd, void *p, u32 n) { return sys3(63, fd, (long)p, n); }
static inline void sys_exit(int code) { sys3(93, code, 0, 0); for (;;) {} }
static inline long sys_brk(void *p) { return sys3(214, (long)p, 0, 0); }
static u32 slen(const char *s) { u32 n = 0; while (s[n]) n++; return n; }
static void puts_(const char *s) { sys_write(1, s, slen(s)); }
static void eputs(const char *s) { sys_write(2, s, slen(s)); }
static void putu(u64 v) { char b[24]; int i = 23; b[i] = 0; do { b[--i] = '0' + (char)(v % 10); v /= 10; } while (v); puts_(b + i); }
static void puti(i64 v) { if (v < 0) { puts_("-"); putu((u64)(-v)); } else putu((u64)v); }
static void puthex(u32 v) { char b[11]; b[0] = '0'; b[1] = 'x'; for (int i = 0; i < 8; i++) b[2 + i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15]; b[10] = 0; puts_(b); }
int main(int argc, char **argv);
void *memset(void *d, int c, u32 n) { unsigned char *p = d; while (n--) *p++ = (unsigned char)c; return d; }
void *memcpy(void *d, const void *s, u32 n) { unsigned char *p = d; const unsigned char *q = s; while (n--) *p++ = *q++; return d; }
__attribute__((naked, section(".text.start"))) void _start(void) {
  asm volatile(".option push\n .option norelax\n la gp, __global_pointer$\n .option pop\n"
               "lw a0, 0(sp)\n addi a1, sp, 4\n call main\n li a7, 93\n ecall\n");
}
