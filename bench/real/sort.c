/* Sorting: records sorted with the library's qsort through a comparator (by key, then by name),
   a top-down merge sort of integers and an insertion sort of short runs; each result checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SCALE
#define SCALE 1
#endif

struct rec { unsigned key; char name[12]; };
#define NREC 1200
#define NINT 4000
static struct rec recs[NREC];
static int ints[NINT], tmp[NINT];
static unsigned seed = 12345;
static unsigned rnd(void) { seed = seed * 1103515245u + 12345u; return seed >> 8; }

static int cmp(const void *a, const void *b) {
  const struct rec *p = a, *q = b;
  if (p->key != q->key) return p->key < q->key ? -1 : 1;
  return strcmp(p->name, q->name);
}

static void msort(int *a, int n) {
  if (n < 16) {
    for (int i = 1; i < n; i++) { int v = a[i], j = i; while (j > 0 && a[j - 1] > v) { a[j] = a[j - 1]; j--; } a[j] = v; }
    return;
  }
  int h = n / 2;
  msort(a, h); msort(a + h, n - h);
  int i = 0, j = h, k = 0;
  while (i < h && j < n) tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
  while (i < h) tmp[k++] = a[i++];
  while (j < n) tmp[k++] = a[j++];
  memcpy(a, tmp, n * sizeof *a);
}

int main(void) {
  unsigned digest = 0;
  for (int round = 0; round < SCALE; round++) {
    for (int i = 0; i < NREC; i++) {
      recs[i].key = rnd() % 1000;
      for (int c = 0; c < 11; c++) recs[i].name[c] = 'a' + rnd() % 26;
      recs[i].name[11] = 0;
    }
    qsort(recs, NREC, sizeof recs[0], cmp);
    for (int i = 1; i < NREC; i++) if (cmp(&recs[i - 1], &recs[i]) > 0) { printf("sort: qsort out of order at %d\n", i); return 1; }
    for (int i = 0; i < NINT; i++) ints[i] = (int)(rnd() % 100000) - 50000;
    msort(ints, NINT);
    for (int i = 1; i < NINT; i++) if (ints[i - 1] > ints[i]) { printf("sort: msort out of order at %d\n", i); return 1; }
    digest = digest * 33 + recs[NREC / 2].key + (unsigned)ints[NINT / 3] + recs[7].name[3];
  }
  printf("sort: digest %08x\n", digest);
  return 0;
}
