/* The Linux RV32 glue picolibc needs, for hvsim's real-program benchmark: stdio over write(2)
   (line-buffered), _exit, sbrk over brk, clock_gettime over clock_gettime64, tp set to a zeroed
   TLS block. */
#include <stdio.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include <errno.h>

static long sc(long n, long a, long b, long c) {
  register long a0 asm("a0") = a, a1 asm("a1") = b, a2 asm("a2") = c, a7 asm("a7") = n;
  asm volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
  return a0;
}

static char obuf[4096];
static int olen;
static void flush(void) { if (olen) { sc(64, 1, (long)obuf, olen); olen = 0; } }
static int put(char c, FILE *f) {
  (void)f;
  obuf[olen++] = c;
  if (olen == sizeof obuf || c == '\n') flush();
  return (unsigned char)c;
}
static FILE stdio_ = FDEV_SETUP_STREAM(put, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &stdio_;
FILE *const stderr = &stdio_;
FILE *const stdin = &stdio_;

void _exit(int s) { flush(); for (;;) sc(94, s, 0, 0); }

void *sbrk(ptrdiff_t inc) {
  static uintptr_t cur;
  if (!cur) cur = sc(214, 0, 0, 0);
  uintptr_t old = cur, nw = sc(214, cur + inc, 0, 0);
  if (nw != old + inc) { errno = ENOMEM; return (void *)-1; }
  cur = nw;
  return (void *)old;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
  struct { long long s; long ns; long pad; } t;
  long r = sc(403, id, (long)&t, 0);
  if (r) { errno = -r; return -1; }
  ts->tv_sec = t.s;
  ts->tv_nsec = t.ns;
  return 0;
}

static char tls[256] __attribute__((aligned(16)));
extern int main(int, char **);
extern void exit(int);
void __start_c(int argc, char **argv) {
  asm volatile("mv tp, %0" :: "r"(tls));
  exit(main(argc, argv));
}
