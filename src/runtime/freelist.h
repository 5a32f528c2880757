/* Per-thread free lists of small blocks in front of malloc, for allocation-heavy code on the loop
 * thread (jansson's trees of every request and reply).
 *
 * Blocks are ordinary malloc chunks: kl_freelist_free takes any pointer malloc returned, and a
 * block from kl_freelist_alloc may be released with free(). A freed small block goes onto the
 * calling thread's list for its size, up to a bound per size, and is handed out again without
 * touching the allocator's arena, whose lock the loop thread would otherwise share with the
 * ZeroMQ I/O thread that frees every sent frame into it. */
#ifndef KL_RUNTIME_FREELIST_H
#define KL_RUNTIME_FREELIST_H

#include <stdbool.h>
#include <stddef.h>

/* Like malloc. */
void *kl_freelist_alloc(size_t n);
/* Like free: NULL is ignored. */
void kl_freelist_free(void *p);
/* Returns the calling thread's cached blocks to malloc (also done when a thread exits). */
void kl_freelist_flush(void);
/* Blocks cached by the calling thread, for tests. */
size_t kl_freelist_cached(void);
/* False in sanitizer builds, where every block goes straight back to free() so that
 * use-after-free stays detectable. */
bool kl_freelist_caching(void);

#endif
