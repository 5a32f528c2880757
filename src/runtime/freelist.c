/* Per-thread free lists of small malloc chunks. */
#include "runtime/freelist.h"

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define KL_FREELIST_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KL_FREELIST_OFF 1
#endif
#endif
/* A constant rather than #if around the code, so both builds compile all of it. */
#ifdef KL_FREELIST_OFF
#define CACHING false
#else
#define CACHING true
#endif

/* Class c holds blocks whose usable size is at least (c + 1) * STEP. Sizes come from the chunk
 * itself (malloc_usable_size), so any malloc'd pointer can be cached and any cached block is a
 * plain malloc chunk. */
#define STEP   16
#define NCLASS 32 /* up to 512 bytes: jansson's nodes, strings and hash buckets */
/* Bound on what one thread keeps per class: a burst of requests' worth, not a memory sink for
 * a thread that frees what others allocate. */
#define CLASS_BYTES (128 * 1024)

typedef struct block {
    struct block *next;
} block;

typedef struct cache {
    block *head[NCLASS];
    unsigned count[NCLASS];
    bool registered;
} cache;

static _Thread_local cache tls;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void on_thread_exit(void *arg) {
    (void)arg;
    kl_freelist_flush();
    tls.registered = false; /* a later destructor's free registers again */
}

static void make_key(void) {
    (void)pthread_key_create(&exit_key, on_thread_exit);
}

void *kl_freelist_alloc(size_t n) {
    if (CACHING && n <= NCLASS * STEP) {
        size_t c = n == 0 ? 0 : (n + STEP - 1) / STEP - 1;
        block *b = tls.head[c];
        if (b) {
            tls.head[c] = b->next;
            tls.count[c]--;
            return b;
        }
        return malloc((c + 1) * STEP);
    }
    return malloc(n);
}

void kl_freelist_free(void *p) {
    if (!p) return;
    size_t u = CACHING ? malloc_usable_size(p) : 0;
    if (u >= STEP) {
        size_t c = u / STEP - 1;
        if (c < NCLASS && tls.count[c] < CLASS_BYTES / ((c + 1) * STEP)) {
            if (!tls.registered) {
                /* Without the key a pool thread that exits would leak what it cached. */
                pthread_once(&exit_once, make_key);
                if (pthread_setspecific(exit_key, &tls) != 0) {
                    free(p);
                    return;
                }
                tls.registered = true;
            }
            block *b = p;
            b->next = tls.head[c];
            tls.head[c] = b;
            tls.count[c]++;
            return;
        }
    }
    free(p);
}

void kl_freelist_flush(void) {
    for (size_t c = 0; c < NCLASS; c++) {
        while (tls.head[c]) {
            block *b = tls.head[c];
            tls.head[c] = b->next;
            free(b);
        }
        tls.count[c] = 0;
    }
}

size_t kl_freelist_cached(void) {
    size_t n = 0;
    for (size_t c = 0; c < NCLASS; c++) n += tls.count[c];
    return n;
}

bool kl_freelist_caching(void) {
    return CACHING;
}
