/* printf, malloc and string work: builds records with snprintf, keeps them in a hash table of
   malloc'd nodes, looks them up, splits and joins them, frees them; prints a digest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SCALE
#define SCALE 1
#endif

struct node { char *key; char *value; struct node *next; };
#define BUCKETS 1024
static struct node *table[BUCKETS];

static unsigned hash(const char *s) { unsigned h = 2166136261u; while (*s) h = (h ^ (unsigned char)*s++) * 16777619u; return h; }

static void put(const char *k, const char *v) {
  unsigned b = hash(k) % BUCKETS;
  for (struct node *n = table[b]; n; n = n->next)
    if (strcmp(n->key, k) == 0) { free(n->value); n->value = strdup(v); return; }
  struct node *n = malloc(sizeof *n);
  n->key = strdup(k); n->value = strdup(v); n->next = table[b]; table[b] = n;
}

static const char *get(const char *k) {
  for (struct node *n = table[hash(k) % BUCKETS]; n; n = n->next) if (strcmp(n->key, k) == 0) return n->value;
  return NULL;
}

static void clear(void) {
  for (int b = 0; b < BUCKETS; b++) {
    struct node *n = table[b];
    while (n) { struct node *next = n->next; free(n->key); free(n->value); free(n); n = next; }
    table[b] = NULL;
  }
}

static const char *words[] = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet" };

int main(void) {
  unsigned digest = 0;
  char key[64], val[160], joined[512];
  for (int round = 0; round < SCALE; round++) {
    for (int i = 0; i < 300; i++) {
      snprintf(key, sizeof key, "%s-%04d-%x", words[i % 10], i, (unsigned)(i * 2654435761u) >> 20);
      snprintf(val, sizeof val, "%s|%d|%s|%08x|%-6s|%+d", words[(i * 7) % 10], i * round, words[(i + round) % 10], hash(key), "pad", -i);
      put(key, val);
    }
    for (int i = 0; i < 300; i += 3) {
      snprintf(key, sizeof key, "%s-%04d-%x", words[i % 10], i, (unsigned)(i * 2654435761u) >> 20);
      const char *v = get(key);
      if (!v) { printf("missing %s\n", key); return 1; }
      /* Split on '|' and join the fields reversed. */
      char copy[160];
      strcpy(copy, v);
      char *fields[8]; int nf = 0;
      for (char *t = strtok(copy, "|"); t && nf < 8; t = strtok(NULL, "|")) fields[nf++] = t;
      joined[0] = 0;
      for (int f = nf - 1; f >= 0; f--) { strcat(joined, fields[f]); if (f) strcat(joined, ","); }
      digest = digest * 31 + hash(joined) + (unsigned)strlen(joined);
      if (strstr(joined, "echo")) digest ^= (unsigned)atoi(fields[1]);
    }
    clear();
  }
  printf("strings: digest %08x\n", digest);
  return 0;
}
