#include "hv.h"
/* Anonymous mmap2 / munmap and brk together; exits with a checksum. */
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long a7 asm("a7") = n; register long a0 asm("a0") = a; register long a1 asm("a1") = b;
  register long a2 asm("a2") = c; register long a3 asm("a3") = d; register long a4 asm("a4") = e; register long a5 asm("a5") = f;
  asm volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5) : "memory");
  return a0;
}
int main(int argc, char **argv) {
  u32 *a = (u32 *)sys6(222, 0, 200000, 3, 0x22, -1, 0);
  u32 *b = (u32 *)sys6(222, 0, 8192, 3, 0x22, -1, 0);
  if ((long)a < 0 || (long)b < 0 || a == b) { eputs("mmap failed\n"); return 2; }
  for (u32 i = 0; i < 50000; i += 97) a[i] = i * 2654435761u;
  u32 s = 0; for (u32 i = 0; i < 50000; i += 97) s ^= a[i] + b[i % 2048];
  if (sys6(215, (long)a, 200000, 0, 0, 0, 0) != 0) return 4;
  char *brk0 = (char *)sys_brk(0); sys_brk(brk0 + 10000); brk0[9999] = 7; s += (u32)brk0[9999];
  if (sys6(222, 0, 4096, 3, 0x02, 5, 0) >= 0) return 5; /* file mapping of a bad fd fails */
  eputs("mmap ok\n"); puts_("sum "); puthex(s); puts_("\n");
  return (int)(s & 0x7f);
}
