#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime/freelist.h"

static void fresh(void) {
    kl_freelist_flush();
}

TestSuite(freelist, .init = fresh, .fini = fresh);

Test(freelist, blocks_hold_what_was_asked) {
    for (size_t n = 0; n <= 700; n++) {
        unsigned char *p = kl_freelist_alloc(n);
        cr_assert_not_null(p);
        cr_assert_geq(malloc_usable_size(p), n, "%zu bytes asked", n);
        for (size_t i = 0; i < n; i++) p[i] = (unsigned char)i;
        kl_freelist_free(p);
    }
}

Test(freelist, a_freed_block_is_handed_out_again_for_its_size) {
    if (!kl_freelist_caching()) cr_skip_test("sanitizer build: nothing is cached");
    void *a = kl_freelist_alloc(40);
    kl_freelist_free(a);
    cr_assert_eq(kl_freelist_cached(), 1);
    void *b = kl_freelist_alloc(36);
    cr_assert_eq(b, a, "same size class, same block");
    cr_assert_eq(kl_freelist_cached(), 0);
    void *c = kl_freelist_alloc(40);
    cr_assert_neq(c, a, "nothing cached: a new block");
    kl_freelist_free(b);
    kl_freelist_free(c);
}

Test(freelist, a_small_block_never_serves_a_larger_request) {
    if (!kl_freelist_caching()) cr_skip_test("sanitizer build: nothing is cached");
    void *small = kl_freelist_alloc(16);
    kl_freelist_free(small);
    unsigned char *big = kl_freelist_alloc(200);
    cr_assert_neq(big, small);
    cr_assert_geq(malloc_usable_size(big), 200);
    kl_freelist_free(big);
}

Test(freelist, takes_plain_malloc_blocks_and_gives_blocks_free_accepts) {
    if (!kl_freelist_caching()) cr_skip_test("sanitizer build: nothing is cached");
    void *m = malloc(100);
    kl_freelist_free(m);
    cr_assert_eq(kl_freelist_cached(), 1, "a malloc'd block joins the cache");
    void *p = kl_freelist_alloc(90);
    cr_assert_eq(p, m);
    free(p); /* a cached block is an ordinary malloc chunk */
    cr_assert_eq(kl_freelist_cached(), 0);
}

Test(freelist, large_blocks_go_back_to_malloc) {
    void *p = kl_freelist_alloc(4096);
    cr_assert_not_null(p);
    kl_freelist_free(p);
    cr_assert_eq(kl_freelist_cached(), 0);
    kl_freelist_free(NULL);
    cr_assert_eq(kl_freelist_cached(), 0);
}

Test(freelist, a_thread_keeps_a_bounded_number_per_size) {
    if (!kl_freelist_caching()) cr_skip_test("sanitizer build: nothing is cached");
    enum { N = 20000 };
    void **v = malloc(N * sizeof *v);
    for (size_t i = 0; i < N; i++) v[i] = kl_freelist_alloc(16);
    for (size_t i = 0; i < N; i++) kl_freelist_free(v[i]);
    size_t kept = kl_freelist_cached();
    cr_assert_gt(kept, 100);
    cr_assert_lt(kept, N, "the rest went back to malloc");
    kl_freelist_flush();
    cr_assert_eq(kl_freelist_cached(), 0);
    free(v);
}

/* Each thread has its own lists: what another thread frees does not show up here, and a thread
 * that exits hands its blocks back (LeakSanitizer would report them otherwise). */
static void *free_in_thread(void *arg) {
    void **blocks = arg;
    for (int i = 0; i < 64; i++) kl_freelist_free(blocks[i]);
    return (void *)(uintptr_t)kl_freelist_cached();
}

Test(freelist, lists_are_per_thread) {
    void *blocks[64];
    for (int i = 0; i < 64; i++) blocks[i] = kl_freelist_alloc(48);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_in_thread, blocks), 0);
    void *cached_there;
    pthread_join(t, &cached_there);
    if (kl_freelist_caching()) cr_assert_eq((uintptr_t)cached_there, 64);
    cr_assert_eq(kl_freelist_cached(), 0, "the other thread's frees stay out of this one's lists");
}
