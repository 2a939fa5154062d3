#include "hv.h"
static void rev(char *s, u32 n) { for (u32 i = 0; i < n / 2; i++) { char t = s[i]; s[i] = s[n - 1 - i]; s[n - 1 - i] = t; } }
int main(int argc, char **argv) { char buf[64]; const char *w = "the quick brown fox jumps over the lazy dog"; u32 n = slen(w);
  memcpy(buf, w, n + 1); rev(buf, n); puts_(buf); puts_("\n"); u32 counts[26] = {0};
  for (u32 i = 0; i < n; i++) if (w[i] >= 'a' && w[i] <= 'z') counts[w[i] - 'a']++;
  for (int i = 0; i < 26; i++) { char c[2] = { (char)('a' + i), 0 }; puts_(c); putu(counts[i]); } puts_("\n"); return 0; }
