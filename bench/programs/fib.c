#include "../../test/corpus/hv.h"
static u32 fib(u32 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(int argc, char **argv) { puts_("fib(27) = "); putu(fib(27)); puts_("\n"); return 0; }
