#include "../../test/corpus/hv.h"
#ifndef SCALE
#define SCALE 1 /* repetitions: bench:cpu builds each kernel with its own -DSCALE */
#endif
static i32 a[60000];
static void qs(i32 *v, int lo, int hi) { while (lo < hi) { i32 p = v[(lo + hi) / 2]; int i = lo, j = hi;
  while (i <= j) { while (v[i] < p) i++; while (v[j] > p) j--; if (i <= j) { i32 t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; } }
  if (j - lo < hi - i) { qs(v, lo, j); lo = i; } else { qs(v, i, hi); hi = j; } } }
int main(int argc, char **argv) { u32 s = 1, h = 0;
  for (int rep = 0; rep < SCALE; rep++) { for (int i = 0; i < 60000; i++) { s = s * 1103515245u + 12345u; a[i] = (i32)(s >> 1); }
    qs(a, 0, 59999); for (int i = 0; i < 60000; i++) h = h * 31 + (u32)a[i]; } puts_("hash "); puthex(h); puts_("\n"); return 0; }
