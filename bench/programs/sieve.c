#include "../../test/corpus/hv.h"
#ifndef SCALE
#define SCALE 1 /* repetitions: bench:cpu builds each kernel with its own -DSCALE */
#endif
static unsigned char comp[200000];
int main(int argc, char **argv) { u32 count = 0;
  for (int r = 0; r < 8 * SCALE; r++) { memset(comp, 0, sizeof comp); count = 0;
    for (u32 i = 2; i < sizeof comp; i++) { if (comp[i]) continue; count++; for (u32 j = i * 2; j < sizeof comp; j += i) comp[j] = 1; } }
  puts_("primes "); putu(count); puts_("\n"); return 0; }
