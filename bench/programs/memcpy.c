#include "../../test/corpus/hv.h"
#ifndef SCALE
#define SCALE 1 /* repetitions: bench:cpu builds each kernel with its own -DSCALE */
#endif
static u32 src[16384], dst[16384];
static void copy_words(u32 *d, const u32 *s, u32 n) { while (n >= 4) { d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; d[3] = s[3]; d += 4; s += 4; n -= 4; } while (n--) *d++ = *s++; }
int main(int argc, char **argv) { for (u32 i = 0; i < 16384; i++) src[i] = i * 2654435761u;
  u32 h = 0; for (int rep = 0; rep < SCALE; rep++) for (int r = 0; r < 60; r++) { copy_words(dst, src, 16384 - r); memcpy((char *)src + 1, (char *)dst, 4096); h += dst[r * 7] ^ src[r]; }
  puts_("mix "); puthex(h); puts_("\n"); return 0; }
