#include "hv.h"
static u32 fnv1a(const char *s) { u32 h = 2166136261u; while (*s) { h ^= (unsigned char)*s++; h *= 16777619u; } return h; }
static u64 fnv64(const char *s) { u64 h = 14695981039346656037ull; while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ull; } return h; }
int main(int argc, char **argv) { const char *w[] = { "", "a", "hypervisor", "RISC-V", "qemu-riscv32" };
  for (int i = 0; i < 5; i++) { puthex(fnv1a(w[i])); puts_(" "); putu(fnv64(w[i])); puts_("\n"); } return 0; }
