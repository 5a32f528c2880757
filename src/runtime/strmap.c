#include "runtime/strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *key;
    void *value;
    uint64_t hash;
    struct entry *next;
} entry;

struct kl_strmap {
    entry **buckets;
    size_t nbuckets, len;
};

/* FNV-1a: keys are short ids (UUIDs, names); collisions are chained. */
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

kl_strmap *kl_strmap_new(void) {
    kl_strmap *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

void kl_strmap_free(kl_strmap *m) {
    if (!m) return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static entry **find(const kl_strmap *m, const char *key, uint64_t h) {
    entry **p = &m->buckets[h & (m->nbuckets - 1)];
    while (*p && ((*p)->hash != h || strcmp((*p)->key, key) != 0)) p = &(*p)->next;
    return p;
}

static int grow(kl_strmap *m) {
    size_t n = m->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b) return -ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

int kl_strmap_put(kl_strmap *m, const char *key, void *value) {
    uint64_t h = hash_str(key);
    entry **p = find(m, key, h);
    if (*p) {
        (*p)->value = value;
        return 0;
    }
    if (m->len + 1 > m->nbuckets && grow(m) == 0) p = find(m, key, h);
    entry *e = malloc(sizeof *e);
    char *k = strdup(key);
    if (!e || !k) {
        free(e);
        free(k);
        return -ENOMEM;
    }
    *e = (entry){.key = k, .value = value, .hash = h, .next = NULL};
    *p = e;
    m->len++;
    return 0;
}

void *kl_strmap_get(const kl_strmap *m, const char *key) {
    entry *e = *find(m, key, hash_str(key));
    return e ? e->value : NULL;
}

void *kl_strmap_del(kl_strmap *m, const char *key) {
    entry **p = find(m, key, hash_str(key));
    entry *e = *p;
    if (!e) return NULL;
    void *v = e->value;
    *p = e->next;
    free(e->key);
    free(e);
    m->len--;
    return v;
}

size_t kl_strmap_len(const kl_strmap *m) {
    return m->len;
}

void kl_strmap_foreach(const kl_strmap *m, void (*fn)(const char *key, void *value, void *arg),
                       void *arg) {
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry *e = m->buckets[i]; e; e = e->next) fn(e->key, e->value, arg);
}
