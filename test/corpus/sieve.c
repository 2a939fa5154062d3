#include "hv.h"
static unsigned char comp[20000];
int main(int argc, char **argv) { u32 count = 0, last = 0;
  for (u32 i = 2; i < sizeof comp; i++) { if (comp[i]) continue; count++; last = i; for (u32 j = i * i; j < sizeof comp; j += i) comp[j] = 1; }
  puts_("primes: "); putu(count); puts_(" last: "); putu(last); puts_("\n"); return 3; }
