#include "../../test/corpus/hv.h"
#ifndef SCALE
#define SCALE 1 /* repetitions: bench:cpu builds each kernel with its own -DSCALE */
#endif
/* A CoreMark-style mix: linked-list walk, matrix, state machine and CRC over the results. */
typedef struct node { struct node *next; i32 v; } node;
static node pool[1000];
static u32 crc16(u32 crc, u32 data) { for (int i = 0; i < 16; i++) { u32 x = (data ^ crc) & 1; data >>= 1; crc = x ? ((crc >> 1) ^ 0xa001) : crc >> 1; } return crc & 0xffff; }
static int state(const char *s) { int st = 0, n = 0; for (; *s; s++) { char c = *s; if (c >= '0' && c <= '9') st = st == 0 ? 1 : st; else if (c == '.') st = st == 1 ? 2 : 3; else st = 3; n += st; } return n; }
int main(int argc, char **argv) { u32 crc = 0; i32 m[16][16];
  for (int i = 0; i < 1000; i++) { pool[i].next = &pool[(i * 7 + 1) % 1000]; pool[i].v = i * 31 - 500; }
  for (int it = 0; it < 1500 * SCALE; it++) {
    node *p = &pool[it % 1000]; i32 sum = 0; for (int k = 0; k < 1000; k++) { sum += p->v; if (p->v < 0) p->v = -p->v; p = p->next; }
    for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) m[i][j] = (i * j + it) ^ sum;
    i32 t = 0; for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) t += m[i][j] * m[j][i];
    crc = crc16(crc, (u32)sum); crc = crc16(crc, (u32)t); crc = crc16(crc, (u32)state("123.45e6x0.1"));
  }
  puts_("crc "); puthex(crc); puts_("\n"); return 0; }
