#include "hv.h"
typedef i32 (*op_fn)(i32, i32);
static i32 add(i32 a, i32 b) { return a + b; } static i32 sub(i32 a, i32 b) { return a - b; }
static i32 mul(i32 a, i32 b) { return a * b; } static i32 dvd(i32 a, i32 b) { return b ? a / b : -1; }
static i32 xr(i32 a, i32 b) { return a ^ b; }
static op_fn ops[] = { add, sub, mul, dvd, xr };
int main(int argc, char **argv) { i32 acc = 7; u32 s = 99;
  for (int i = 0; i < 5000; i++) { s = s * 1664525u + 1013904223u; acc = ops[(s >> 24) % 5](acc, (i32)(s & 0xfff) - 0x800); }
  puts_("acc "); puti(acc); puts_("\n"); return 0; }
