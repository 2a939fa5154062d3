#include "hv.h"
/* Reads all of stdin in small chunks, echoes it upper-cased to stdout and a byte count to stderr. */
int main(int argc, char **argv) {
  char buf[7]; u32 total = 0; long n;
  while ((n = sys_read(0, buf, sizeof buf)) > 0) {
    for (long i = 0; i < n; i++) if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] -= 32;
    sys_write(1, buf, (u32)n); total += (u32)n;
  }
  eputs("read "); { char b[12]; int i = 11; b[i] = 0; do { b[--i] = '0' + (char)(total % 10); total /= 10; } while (total); eputs(b + i); } eputs(" bytes\n");
  if (sys_read(7, buf, 1) != -9) return 3; /* EBADF */
  return n == 0 ? 0 : 1;
}
