#include "hv.h"
static u32 crc(const unsigned char *p, u32 n) { u32 c = 0xffffffffu; while (n--) { c ^= *p++; for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1)); } return ~c; }
int main(int argc, char **argv) { static unsigned char buf[4096]; for (u32 i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 7 + (i >> 3));
  puts_("crc32 "); puthex(crc(buf, sizeof buf)); puts_("\ncrc32(\"123456789\") "); puthex(crc((const unsigned char *)"123456789", 9)); puts_("\n"); return 0; }
