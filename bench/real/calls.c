/* Call-heavy recursive code across many pages: a recursive-descent parser and evaluator of
   generated arithmetic expressions, a binary tree built and walked recursively, and mutual
   recursion; the functions are page-aligned so that nearly every call and return crosses a
   page. */
#include <stdio.h>
#include <stdlib.h>

#ifndef SCALE
#define SCALE 1
#endif

#define PAGE __attribute__((noinline, aligned(4096)))

static const char *p;
static unsigned seed = 99;
static unsigned rnd(void) { seed = seed * 1103515245u + 12345u; return seed >> 10; }

PAGE static int expr(void);
PAGE static int atom(void) {
  if (*p == '(') { p++; int v = expr(); p++; return v; }
  int v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
  return v;
}
PAGE static int term(void) {
  int v = atom();
  while (*p == '*' || *p == '%') { char op = *p++; int r = atom(); v = op == '*' ? v * r : (r ? v % r : v); }
  return v;
}
PAGE static int expr(void) {
  int v = term();
  while (*p == '+' || *p == '-') { char op = *p++; int r = term(); v = op == '+' ? v + r : v - r; }
  return v;
}

static char buf[1 << 16];
static int pos;
PAGE static void gen(int depth) {
  if (depth == 0 || rnd() % 4 == 0) { pos += sprintf(buf + pos, "%u", rnd() % 100); return; }
  buf[pos++] = '(';
  gen(depth - 1);
  buf[pos++] = "+-*%"[rnd() % 4];
  gen(depth - 1);
  buf[pos++] = ')';
}

struct tree { int v; struct tree *l, *r; };
PAGE static struct tree *build(int depth, int v) {
  if (depth == 0) return NULL;
  struct tree *t = malloc(sizeof *t);
  t->v = v; t->l = build(depth - 1, v * 2); t->r = build(depth - 1, v * 2 + 1);
  return t;
}
PAGE static long walk(struct tree *t, int d) { return t ? t->v * (long)d + walk(t->l, d + 1) - walk(t->r, d + 1) : 0; }
PAGE static void release(struct tree *t) { if (t) { release(t->l); release(t->r); free(t); } }

PAGE static int odd(unsigned n);
PAGE static int even(unsigned n) { return n == 0 ? 1 : odd(n - 1); }
PAGE static int odd(unsigned n) { return n == 0 ? 0 : even(n - 1); }

int main(void) {
  long acc = 0;
  for (int round = 0; round < 3 * SCALE; round++) {
    pos = 0;
    gen(12);
    buf[pos] = 0;
    p = buf;
    acc = acc * 7 + expr();
    struct tree *t = build(12, 1);
    acc += walk(t, 0);
    release(t);
    acc += even(1000 + round) * 3 + odd(777);
  }
  printf("calls: %ld\n", acc);
  return 0;
}
