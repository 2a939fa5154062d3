#include "../../test/corpus/hv.h"
#ifndef SCALE
#define SCALE 1 /* repetitions: bench:cpu builds each kernel with its own -DSCALE */
#endif
#define N 64
static i32 A[N][N], B[N][N], C[N][N];
int main(int argc, char **argv) { for (int i = 0; i < N; i++) for (int j = 0; j < N; j++) { A[i][j] = i + 2 * j; B[i][j] = i - j; }
  for (int r = 0; r < 4 * SCALE; r++) for (int i = 0; i < N; i++) for (int j = 0; j < N; j++) { i32 s = 0; for (int k = 0; k < N; k++) s += A[i][k] * B[k][j]; C[i][j] = s + r; }
  i64 t = 0; for (int i = 0; i < N; i++) t += C[i][i]; puts_("trace "); puti(t); puts_("\n"); return 0; }
