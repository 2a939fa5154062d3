#include "hv.h"
static u32 fib(u32 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(int argc, char **argv) { for (u32 i = 0; i < 25; i += 3) { puts_("fib("); putu(i); puts_(") = "); putu(fib(i)); puts_("\n"); } return 0; }
