#include "hv.h"
int main(int argc, char **argv) { char *start = (char *)sys_brk(0); char *end = (char *)sys_brk(start + 300000);
  if (end != start + 300000) { eputs("brk failed\n"); return 2; }
  for (u32 i = 0; i < 300000; i += 4096) start[i] = (char)(i >> 12);
  u32 s = 0; for (u32 i = 0; i < 300000; i += 4096) s += (unsigned char)start[i];
  puts_("brk sum "); putu(s); puts_("\n"); return 0; }
