/*
 * Block device I/O for the /dev/vda checks: writes, seeks, reads back and fsyncs through the file
 * named by argv[1], printing what it sees. Under hvsim argv[1] is /dev/vda (a disk of SIZE
 * bytes); under qemu-riscv32 a regular file of the same size, the oracle: both print the same
 * bytes and leave the same content. argv[2] (optional): "verify" only reads the content back
 * and prints its checksums (a second boot, or after a migration).
 */
#include "../corpus/hv.h"
#include "../corpus/files.h"

#define SIZE (1024 * 1024)
static long sys_pread(int fd, void *p, u32 n, u32 off) { return sys6(67, fd, (long)p, n, off, 0); }
static long sys_pwrite(int fd, const void *p, u32 n, u32 off) { return sys6(68, fd, (long)p, n, off, 0); }
static long sys_fsync(int fd) { return sys6(82, fd, 0, 0, 0, 0); }
static long sys_fdatasync(int fd) { return sys6(83, fd, 0, 0, 0, 0); }
static long seek(int fd, long off, int whence) { i64 r = -1; long e = sys_llseek(fd, off < 0 ? -1 : 0, off, &r, whence); return e < 0 ? e : (long)r; }

static unsigned char buf[200000], back[200000];
static u32 fnv(const unsigned char *p, u32 n) { u32 h = 2166136261u; while (n--) { h ^= *p++; h *= 16777619u; } return h; }
static u32 rng = 12345;
static unsigned char next8(void) { rng = rng * 1103515245u + 12345u; return (unsigned char)(rng >> 16); }

/* Checksums of the whole device, read in uneven chunks. */
static void digest(int fd) {
  show("seek0", seek(fd, 0, 0));
  u32 h = 2166136261u, total = 0;
  for (u32 chunk = 777;; chunk = chunk * 3 % 65521 + 1000) {
    long n = sys_read(fd, back, chunk);
    if (n <= 0) { show("read-end", n); break; }
    for (long i = 0; i < n; i++) { h ^= back[i]; h *= 16777619u; }
    total += (u32)n;
  }
  show("total", total);
  puts_("digest "); puthex(h); puts_("\n");
}

int main(int argc, char **argv) {
  if (argc < 2) { eputs("usage: blockio PATH [verify]\n"); return 2; }
  int fd = (int)sys_open(argv[1], 2 /* O_RDWR */);
  show("open", fd < 0 ? fd : 3);
  if (fd < 0) return 1;
  if (argc > 2) { digest(fd); return 0; }
  u32 st[32];
  show("fstat", sys_fstat(fd, st));
  show("size", (long)st[12]);
  show("end", seek(fd, 0, 2));
  for (u32 i = 0; i < sizeof buf; i++) buf[i] = next8();
  /* Aligned and unaligned writes, one larger than a request's 32 KiB. */
  show("seek-set", seek(fd, 0, 0));
  show("write-big", sys_write(fd, buf, 100000));
  show("cur", seek(fd, 0, 1));
  show("write-odd", sys_write(fd, buf + 5, 3001));
  show("cur", seek(fd, 0, 1));
  show("pwrite", sys_pwrite(fd, buf + 7, 5000, 77777));
  show("pwrite-tail", sys_pwrite(fd, buf + 11, 70000, SIZE - 70000 - 3));
  show("pwrite-1", sys_pwrite(fd, "Z", 1, 511));
  show("cur-unchanged", seek(fd, 0, 1));
  show("fsync", sys_fsync(fd));
  show("fdatasync", sys_fdatasync(fd));
  /* Read back: whole, unaligned, vectored, positioned. */
  show("seek-set", seek(fd, 0, 0));
  show("read-big", sys_read(fd, back, 120000));
  puts_("fnv "); puthex(fnv(back, 120000)); puts_("\n");
  show("seek-odd", seek(fd, 99999, 0));
  show("read-odd", sys_read(fd, back, 4000));
  puts_("fnv "); puthex(fnv(back, 4000)); puts_("\n");
  show("pread", sys_pread(fd, back, 6000, 77000));
  puts_("fnv "); puthex(fnv(back, 6000)); puts_("\n");
  struct iovec v[3] = { { back, 100 }, { back + 1000, 513 }, { back + 5000, 9000 } };
  show("seek-cur", seek(fd, -1000, 1));
  show("readv", sys_readv(fd, v, 3));
  puts_("fnv "); puthex(fnv(back, 14000)); puts_("\n");
  struct iovec w[2] = { { buf + 100, 700 }, { buf + 9000, 40000 } };
  show("writev", sys_writev(fd, w, 2));
  show("cur", seek(fd, 0, 1));
  /* At and near the end. */
  show("seek-end", seek(fd, -100, 2));
  show("read-short", sys_read(fd, back, 4096));
  show("read-at-end", sys_read(fd, back, 4096));
  show("pread-end", sys_pread(fd, back, 10, SIZE));
  show("pread-short", sys_pread(fd, back, 300, SIZE - 17));
  show("seek-end", seek(fd, 0, 2));
  show("zero-read", sys_read(fd, back, 0));
  show("zero-write", sys_write(fd, back, 0));
  show("close", sys_close(fd));
  fd = (int)sys_open(argv[1], 0 /* O_RDONLY */);
  show("reopen", fd < 0 ? fd : 3);
  show("write-rdonly", sys_write(fd, buf, 10));
  digest(fd);
  return 0;
}
