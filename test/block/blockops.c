/*
 * Block operations from stdin, for the driver's property test (src/guest/block.spec.ts): each
 * 9-byte record is an op ('w' write, 'r' read, 'W' pwrite, 'R' pread, 's' lseek SEEK_SET), a
 * 32-bit little-endian offset and length. Written bytes are byte i = (offset + i) * 7 + length;
 * for each op it prints the result and, for reads, an FNV-1a hash of the bytes read.
 */
#include "../corpus/hv.h"
#include "../corpus/files.h"

static unsigned char buf[70000];
static u32 le(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }

int main(int argc, char **argv) {
  (void)argc; (void)argv;
  int fd = (int)sys_open("/dev/vda", 2);
  if (fd < 0) { show("open", fd); return 1; }
  unsigned char rec[9];
  for (;;) {
    long n = sys_read(0, rec, 9);
    if (n != 9) break;
    u32 off = le(rec + 1), len = le(rec + 5);
    if (len > sizeof buf) len = sizeof buf;
    long r;
    if (rec[0] == 'w' || rec[0] == 'W') {
      for (u32 i = 0; i < len; i++) buf[i] = (unsigned char)((off + i) * 7 + len);
      r = rec[0] == 'w' ? sys_write(fd, buf, len) : sys6(68, fd, (long)buf, len, off, 0);
    } else if (rec[0] == 'r' || rec[0] == 'R') {
      r = rec[0] == 'r' ? sys_read(fd, buf, len) : sys6(67, fd, (long)buf, len, off, 0);
    } else {
      i64 pos = -1;
      r = sys_llseek(fd, 0, off, &pos, 0);
      if (r == 0) r = (long)pos;
    }
    puti(r);
    if ((rec[0] == 'r' || rec[0] == 'R') && r > 0) {
      u32 h = 2166136261u;
      for (long i = 0; i < r; i++) { h ^= buf[i]; h *= 16777619u; }
      puts_(" "); puthex(h);
    }
    puts_("\n");
  }
  return 0;
}
