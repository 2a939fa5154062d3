/*
 * What only a block device does (hvsim only: qemu-riscv32 has no /dev/vda): its type and size,
 * writes at the end (-ENOSPC), seeks outside it (-EINVAL, -ENXIO), its size ioctls, a missing
 * disk (-ENOENT), and the calls other files refuse (pread on a pipe, fsync on the console).
 */
#include "../corpus/hv.h"
#include "../corpus/files.h"

static long sys_pread(int fd, void *p, u32 n, u32 off) { return sys6(67, fd, (long)p, n, off, 0); }
static long sys_pwrite(int fd, const void *p, u32 n, u32 off) { return sys6(68, fd, (long)p, n, off, 0); }
static long sys_fsync(int fd) { return sys6(82, fd, 0, 0, 0, 0); }
static long seek(int fd, long off, int whence) { i64 r = -1; long e = sys_llseek(fd, off < 0 ? -1 : 0, off, &r, whence); return e < 0 ? e : (long)r; }

int main(int argc, char **argv) {
  (void)argc; (void)argv;
  unsigned char b[600];
  for (int i = 0; i < 600; i++) b[i] = (unsigned char)i;
  int fd = (int)sys_open("/dev/vda", 2);
  show("open", fd);
  u32 st[32];
  show("fstat", sys_fstat(fd, st));
  puts_("mode "); puthex(st[4]); puts_("\n");
  puts_("rdev "); puthex(st[8]); puts_("\n");
  show("size", (long)st[12]);
  show("blksize", (long)st[14]);
  u32 sz[2] = { 0, 0 };
  show("BLKGETSIZE64", sys_ioctl(fd, 0x80041272, sz));
  show("bytes", (long)sz[0]);
  show("BLKGETSIZE", sys_ioctl(fd, 0x1260, sz));
  show("sectors", (long)sz[0]);
  show("BLKSSZGET", sys_ioctl(fd, 0x1268, sz));
  show("sector", (long)sz[0]);
  show("TCGETS", sys_ioctl(fd, 0x5401, sz));
  show("seek-past-end", seek(fd, 65537, 0));
  show("seek-negative", seek(fd, -1, 0));
  show("seek-data", seek(fd, 100, 3));
  show("seek-hole", seek(fd, 100, 4));
  show("seek-data-end", seek(fd, 65536, 3));
  show("seek-end", seek(fd, 0, 2));
  show("write-at-end", sys_write(fd, b, 10));
  show("pwrite-at-end", sys_pwrite(fd, b, 10, 65536));
  show("pwrite-across-end", sys_pwrite(fd, b, 600, 65536 - 300));
  show("pread-across-end", sys_pread(fd, b, 600, 65536 - 299));
  show("first", b[0]);
  show("pread-fault", sys_pread(fd, (void *)16, 512, 0));
  show("pwrite-fault", sys_pwrite(fd, (void *)16, 512, 0));
  show("vdb", sys_open("/dev/vdb", 2));
  show("vdz", sys_open("/dev/vdz", 2));
  int p[2];
  show("pipe", sys_pipe2(p, 0));
  show("pread-pipe", sys_pread(p[0], b, 1, 0));
  show("pwrite-pipe", sys_pwrite(p[1], b, 1, 0));
  show("fsync-pipe", sys_fsync(p[1]));
  show("fsync-stdout", sys_fsync(1));
  int z = (int)sys_open("/dev/zero", 0);
  b[0] = 7;
  show("pread-zero", sys_pread(z, b, 10, 12345));
  show("b0", b[0]);
  show("fsync-bad", sys_fsync(99));
  show("rdonly-pwrite", sys_pwrite(z, b, 1, 0));
  return 0;
}
