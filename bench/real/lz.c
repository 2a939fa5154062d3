/* A small LZ77 compressor: generated text (words from a dictionary with a skewed choice)
   compressed with a hash-chain match finder into literal/match tokens, decompressed and
   compared; prints the ratio and a checksum. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#ifndef SCALE
#define SCALE 1
#endif

#define SIZE 16384
#define WINDOW 4096
#define HBITS 12
static unsigned char in[SIZE], out[SIZE * 2], back[SIZE];
static int head[1 << HBITS], prev[SIZE];
static unsigned seed = 7;
static unsigned rnd(void) { seed = seed * 1664525u + 1013904223u; return seed >> 9; }
static const char *dict[] = { "the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog ", "and ", "runs ",
  "compress ", "window ", "match ", "literal ", "token ", "\n" };

static unsigned h3(const unsigned char *p) { return ((p[0] << 8) ^ (p[1] << 4) ^ p[2]) & ((1 << HBITS) - 1); }

static int compress(const unsigned char *src, int n, unsigned char *dst) {
  int o = 0, i = 0;
  for (int k = 0; k < (1 << HBITS); k++) head[k] = -1;
  while (i < n) {
    int best = 0, dist = 0;
    if (i + 3 <= n) {
      unsigned h = h3(src + i);
      int tries = 16;
      for (int c = head[h]; c >= 0 && i - c <= WINDOW && tries--; c = prev[c]) {
        int l = 0;
        while (i + l < n && l < 130 && src[c + l] == src[i + l]) l++;
        if (l > best) { best = l; dist = i - c; }
      }
    }
    int take = best >= 3 ? best : 1;
    for (int k = 0; k < take; k++) {
      if (i + k + 3 <= n) { unsigned h = h3(src + i + k); prev[i + k] = head[h]; head[h] = i + k; }
    }
    if (best >= 3) { dst[o++] = 0x80 | (best - 3); dst[o++] = dist >> 8; dst[o++] = dist & 255; }
    else { dst[o++] = src[i] & 0x7f; }
    i += take;
  }
  return o;
}

static int decompress(const unsigned char *src, int n, unsigned char *dst) {
  int o = 0;
  for (int i = 0; i < n;) {
    unsigned char t = src[i++];
    if (t & 0x80) { int len = (t & 0x7f) + 3, dist = (src[i] << 8) | src[i + 1]; i += 2; while (len--) { dst[o] = dst[o - dist]; o++; } }
    else dst[o++] = t;
  }
  return o;
}

int main(void) {
  unsigned sum = 0;
  long total = 0, packed = 0;
  for (int round = 0; round < SCALE; round++) {
    int n = 0;
    while (n < SIZE - 16) {
      unsigned r = rnd() % 100;
      const char *w = dict[r < 50 ? r % 4 : r % 16];
      int l = strlen(w);
      memcpy(in + n, w, l); n += l;
    }
    int c = compress(in, n, out);
    int d = decompress(out, c, back);
    if (d != n || memcmp(in, back, n) != 0) { printf("lz: round trip failed\n"); return 1; }
    for (int k = 0; k < c; k++) sum = sum * 131 + out[k];
    total += n; packed += c;
  }
  printf("lz: %ld -> %ld bytes (%.1f%%), checksum %08x\n", total, packed, 100.0 * packed / total, sum);
  return 0;
}
