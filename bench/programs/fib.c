#include "../../test/corpus/hv.h"
#ifndef SCALE
#define SCALE 1 /* repetitions: bench:cpu builds each kernel with its own -DSCALE */
#endif
static u32 fib(u32 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(int argc, char **argv) { u32 s = 0; volatile u32 n = 27; for (int r = 0; r < SCALE; r++) s += fib(n);
  puts_("fib(27) x "); putu(SCALE); puts_(" = "); putu(s); puts_("\n"); return 0; }
