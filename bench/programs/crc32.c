#include "../../test/corpus/hv.h"
#ifndef SCALE
#define SCALE 1 /* repetitions: bench:cpu builds each kernel with its own -DSCALE */
#endif
static unsigned char buf[65536];
static u32 table[256];
int main(int argc, char **argv) {
  for (u32 i = 0; i < 256; i++) { u32 c = i; for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1)); table[i] = c; }
  for (u32 i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 131 + (i >> 7));
  u32 c = 0xffffffffu;
  for (int r = 0; r < 40 * SCALE; r++) for (u32 i = 0; i < sizeof buf; i++) c = table[(c ^ buf[i]) & 0xff] ^ (c >> 8);
  puts_("crc "); puthex(~c); puts_("\n"); return 0; }
