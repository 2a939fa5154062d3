#include "hv.h"
int main(int argc, char **argv) { puts_("argc "); putu((u32)argc); puts_("\n");
  for (int i = 0; i < argc; i++) { puts_("argv: "); puts_(argv[i]); puts_("\n"); }
  char **envp = argv + argc + 1; while (*envp) envp++; u32 *aux = (u32 *)(envp + 1); u32 pagesz = 0, hasrand = 0;
  for (; aux[0]; aux += 2) { if (aux[0] == 6) pagesz = aux[1]; if (aux[0] == 25) hasrand = aux[1] != 0; }
  puts_("pagesz "); putu(pagesz); puts_(" random "); putu(hasrand); puts_("\n"); eputs("to stderr\n"); return argc; }
