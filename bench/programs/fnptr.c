#include "../../test/corpus/hv.h"
#ifndef SCALE
#define SCALE 1 /* repetitions: bench:cpu builds each kernel with its own -DSCALE */
#endif
/* A tiny bytecode interpreter dispatching through a table of function pointers. */
typedef struct { i32 acc; u32 pc; } vm_t;
typedef void (*op_t)(vm_t *, u32);
static void op_add(vm_t *v, u32 a) { v->acc += (i32)a; v->pc++; }
static void op_mul(vm_t *v, u32 a) { v->acc *= (i32)(a | 1); v->pc++; }
static void op_xor(vm_t *v, u32 a) { v->acc ^= (i32)(a * 2654435761u); v->pc++; }
static void op_shr(vm_t *v, u32 a) { v->acc = (i32)((u32)v->acc >> (a & 7)); v->pc++; }
static void op_jnz(vm_t *v, u32 a) { v->pc = (v->acc & 1) ? v->pc + 1 : v->pc + 1 + (a & 1); }
static const op_t ops[] = { op_add, op_mul, op_xor, op_shr, op_jnz };
int main(int argc, char **argv) { static unsigned char code[256]; u32 s = 7;
  for (int i = 0; i < 256; i++) { s = s * 1664525u + 1013904223u; code[i] = (unsigned char)(s >> 24); }
  vm_t v = { 1, 0 }; for (u32 step = 0; step < 1500000u * SCALE; step++) { unsigned char c = code[v.pc & 255]; ops[c % 5](&v, c); }
  puts_("acc "); puti(v.acc); puts_("\n"); return 0; }
