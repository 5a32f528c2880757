/* String-keyed hash map of pointers. Keys are copied; values are borrowed. Not thread-safe. */
#ifndef KL_RUNTIME_STRMAP_H
#define KL_RUNTIME_STRMAP_H

#include <stddef.h>

typedef struct kl_strmap kl_strmap;

kl_strmap *kl_strmap_new(void);
/* Frees the map and its key copies, not the values. */
void kl_strmap_free(kl_strmap *m);
/* Inserts or replaces. 0 or -ENOMEM. */
int kl_strmap_put(kl_strmap *m, const char *key, void *value);
void *kl_strmap_get(const kl_strmap *m, const char *key);
/* Removes key; returns its value or NULL. */
void *kl_strmap_del(kl_strmap *m, const char *key);
size_t kl_strmap_len(const kl_strmap *m);
/* Visits every entry; fn must not change the map. */
void kl_strmap_foreach(const kl_strmap *m, void (*fn)(const char *key, void *value, void *arg),
                       void *arg);

#endif
