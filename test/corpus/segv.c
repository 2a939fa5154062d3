#include "hv.h"
int main(int argc, char **argv) { puts_("before\n"); volatile int *p = (int *)0x10; *p = 1; puts_("after\n"); return 0; }
