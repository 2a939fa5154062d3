#include "hv.h"
int main(int argc, char **argv) { u64 a = 0x123456789abcdefull; i64 b = -987654321012345ll;
  for (int i = 1; i < 12; i++) { u64 d = (u64)i * 1000003ull; puts_("q "); putu(a / d); puts_(" r "); putu(a % d);
    puts_(" s "); puti(b / (i64)(i * 7)); puts_(" m "); puti(b % (i64)(i * 7)); puts_(" p "); putu(a * (u64)i); puts_("\n"); }
  puti((i64)(-2147483647 - 1) / -1); puts_("\n"); return 0; }
