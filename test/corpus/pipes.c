#include "hv.h"
#include "files.h"
/* A pipe between two of the process's own fds: small and large writes, partial reads, EOF, EAGAIN, EPIPE. */
static char big[20000];
int main(int argc, char **argv) {
  int p[2]; char buf[64];
  show("pipe2", sys_pipe2(p, 0));
  show("fds", p[0] * 10 + p[1]);
  show("write", sys_write(p[1], "hello, pipe", 11));
  show("read 5", sys_read(p[0], buf, 5));
  sys_write(1, buf, 5); puts_("\n");
  show("read rest", sys_read(p[0], buf, sizeof buf));
  sys_write(1, buf, 6); puts_("\n");
  for (int i = 0; i < (int)sizeof big; i++) big[i] = (char)('a' + i % 26);
  show("write big", sys_write(p[1], big, sizeof big));
  u32 sum = 0, got = 0; long n;
  while (got < sizeof big && (n = sys_read(p[0], buf, sizeof buf)) > 0) { for (long i = 0; i < n; i++) sum = sum * 31 + (unsigned char)buf[i]; got += (u32)n; }
  show("got", (long)got); puthex(sum); puts_("\n");
  show("getfl r", sys_fcntl(p[0], 3, 0));
  show("getfl w", sys_fcntl(p[1], 3, 0));
  show("setfl nonblock", sys_fcntl(p[0], 4, 0x800));
  show("read empty nonblock", sys_read(p[0], buf, 4));
  show("lseek pipe", sys_llseek(p[0], 0, 0, 0, 0));
  show("ioctl TCGETS", sys_ioctl(p[0], 0x5401, buf));
  show("close w", sys_close(p[1]));
  show("read eof", sys_read(p[0], buf, 4));
  show("close w again", sys_close(p[1]));
  int q[2];
  show("pipe2 nonblock", sys_pipe2(q, 0x800));
  show("getfl q", sys_fcntl(q[1], 3, 0));
  long total = 0;
  while ((n = sys_write(q[1], big, sizeof big)) > 0) total += n;
  show("filled", total); show("then", n);
  show("close r", sys_close(q[0]));
  show("read bad fd", sys_read(42, buf, 1));
  show("write to pipe with no reader", sys_write(q[1], "x", 1));
  puts_("not reached\n");
  return 0;
}
