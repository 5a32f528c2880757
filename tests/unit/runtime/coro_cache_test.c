/* The per-thread cache of finished coroutine stacks: reuse, bounds, memory given back, and a
 * reused stack that behaves like a new one (fresh state, guard page, no stale ASan poison). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "runtime/coro.h"

static uintptr_t page_size(void) {
    return (uintptr_t)sysconf(_SC_PAGESIZE);
}

/* 1 resident, 0 mapped but not resident, -1 not mapped at all. */
static int page_state(uintptr_t addr) {
    unsigned char v = 0;
    void *p = (void *)(addr & ~(page_size() - 1));
    if (mincore(p, page_size(), &v) != 0) return errno == ENOMEM ? -1 : -2;
    return v & 1;
}

static void init(void) {
    kl_coro_cache_clear();
}

TestSuite(coro_cache, .init = init);

/* Records where its frame is: the same address in two coroutines means the same stack. */
static void where_fn(void *arg) {
    *(uintptr_t *)arg = (uintptr_t)__builtin_frame_address(0);
}

static uintptr_t run_where(size_t stack_size) {
    uintptr_t at = 0;
    kl_coro *co = kl_coro_create(where_fn, &at, stack_size);
    cr_assert_not_null(co);
    kl_coro_resume(co);
    cr_assert(kl_coro_finished(co));
    kl_coro_destroy(co);
    return at;
}

Test(coro_cache, a_finished_stack_is_reused, .timeout = 10) {
    cr_assert_eq(kl_coro_cache_len(), 0);
    uintptr_t first = run_where(0);
    cr_assert_eq(kl_coro_cache_len(), 1, "the finished stack went to the cache");
    cr_assert_eq(page_state(first), 1, "the top of a cached stack stays resident");
    uintptr_t second = run_where(0);
    cr_assert_eq(second, first, "the second coroutine ran on the cached stack");
    cr_assert_eq(kl_coro_cache_len(), 1);
}

Test(coro_cache, stacks_of_another_size_are_not_taken, .timeout = 10) {
    uintptr_t small = run_where(64 * 1024);
    cr_assert_eq(kl_coro_cache_len(), 1);
    uintptr_t big = run_where(0);
    cr_assert_neq(big, small, "a default-size coroutine must not run on a 64 KiB stack");
    cr_assert_eq(kl_coro_cache_len(), 2, "both stacks are cached now");
    cr_assert_eq(run_where(64 * 1024), small);
    cr_assert_eq(run_where(0), big);
}

typedef struct {
    int steps;
    kl_coro *self;
    bool self_ok;
} fresh_arg;

static void yield_twice_fn(void *arg) {
    fresh_arg *a = arg;
    a->self_ok = kl_coro_current() == a->self;
    for (int i = 0; i < 2; i++) {
        a->steps++;
        kl_coro_yield();
    }
    a->steps = 100;
}

static void park_forever_fn(void *arg) {
    (void)arg;
    for (;;) kl_coro_yield();
}

Test(coro_cache, a_reused_coroutine_starts_afresh, .timeout = 10) {
    /* Destroyed while suspended in the middle of its function, with a user pointer set. */
    int dummy;
    kl_coro *old = kl_coro_create(park_forever_fn, NULL, 0);
    kl_coro_set_user(old, &dummy);
    kl_coro_resume(old);
    kl_coro_resume(old);
    cr_assert_not(kl_coro_finished(old));
    kl_coro_destroy(old);
    cr_assert_eq(kl_coro_cache_len(), 1);

    fresh_arg a = {0};
    kl_coro *co = kl_coro_create(yield_twice_fn, &a, 0);
    cr_assert_eq(kl_coro_cache_len(), 0, "the new coroutine took the cached stack");
    a.self = co;
    cr_assert_null(kl_coro_user(co), "no user pointer left from the previous coroutine");
    cr_assert_not(kl_coro_finished(co));
    cr_assert_eq(a.steps, 0, "nothing runs before the first resume");
    kl_coro_resume(co);
    cr_assert_eq(a.steps, 1, "the new function runs from its start");
    kl_coro_resume(co);
    cr_assert_eq(a.steps, 2);
    kl_coro_resume(co);
    cr_assert_eq(a.steps, 100);
    cr_assert(kl_coro_finished(co));
    cr_assert(a.self_ok);
    kl_coro_destroy(co);
}

/* Touches `depth` bytes of its own stack below the current frame, as a deep call would. */
typedef struct {
    size_t depth;
    uintptr_t top, low;
} deep_arg;

static void deep_fn(void *arg) {
    deep_arg *a = arg;
    volatile char *sp = (volatile char *)__builtin_frame_address(0);
    a->top = (uintptr_t)sp;
    /* Below the frame (and its red zone) the stack is unused: writing every word there is what
     * a chain of callees would do, without depending on how the compiler lays out a recursion. */
    for (size_t off = 1024; off < a->depth; off += sizeof(uint64_t)) sp[-(ptrdiff_t)off] = 1;
    a->low = (uintptr_t)(sp - a->depth + 512);
}

Test(coro_cache, a_cached_stack_gives_its_deep_pages_back, .timeout = 10) {
    deep_arg a = {.depth = 200 * 1024};
    kl_coro *co = kl_coro_create(deep_fn, &a, 0);
    kl_coro_resume(co);
    cr_assert(kl_coro_finished(co));
    /* Before the cache takes it, every page the coroutine wrote is resident. */
    for (uintptr_t p = a.low; p < a.top - 4096; p += page_size())
        cr_assert_eq(page_state(p), 1, "page %#lx resident while running", (unsigned long)p);
    kl_coro_destroy(co);
    cr_assert_eq(kl_coro_cache_len(), 1);
    uintptr_t keep_lo = a.top - KL_CORO_CACHE_KEEP;
    size_t kept = 0, resident_deep = 0;
    for (uintptr_t p = a.low; p < a.top; p += page_size()) {
        int s = page_state(p);
        cr_assert_neq(s, -1, "the cached stack is still mapped");
        if (p + page_size() <= keep_lo)
            resident_deep += s == 1;
        else
            kept += s == 1;
    }
    cr_assert_eq(resident_deep, 0, "%zu deep pages of a cached stack are still resident",
                 resident_deep);
    cr_assert_gt(kept, 0, "the top of the stack stays resident for the next coroutine");
    /* And the stack is still usable, deep pages included (they come back zero-filled). */
    deep_arg b = {.depth = 200 * 1024};
    co = kl_coro_create(deep_fn, &b, 0);
    kl_coro_resume(co);
    cr_assert(kl_coro_finished(co));
    cr_assert_eq(b.top, a.top, "the same stack was reused");
    kl_coro_destroy(co);
    size_t again = 0;
    for (uintptr_t p = a.low; p + page_size() <= keep_lo; p += page_size())
        again += page_state(p) == 1;
    cr_assert_eq(again, 0, "a second deep run's pages are given back too (%zu resident)", again);
}

Test(coro_cache, a_shallow_coroutine_does_not_pay_for_releasing_pages, .timeout = 10) {
    deep_arg a = {.depth = 64 * 1024};
    kl_coro *co = kl_coro_create(deep_fn, &a, 0);
    kl_coro_resume(co);
    kl_coro_destroy(co); /* deep: pages dropped, the stack now measured */
    /* Dirty a deep page behind the coroutines' back: only a madvise would drop it again. */
    volatile char *deep = (volatile char *)(a.top - 48 * 1024);
    *deep = 1;
    cr_assert_eq(page_state((uintptr_t)deep), 1);
    uintptr_t at = run_where(0);
    cr_assert_eq(at, a.top, "the shallow coroutine reused the same stack");
    cr_assert_eq(page_state((uintptr_t)deep), 1,
                 "a coroutine that stayed in the kept top is cached without a madvise");
}

Test(coro_cache, the_cache_is_bounded_and_the_rest_unmapped, .timeout = 10) {
    enum { EXTRA = 4, N = KL_CORO_CACHE_MAX + EXTRA };
    static kl_coro *cos[N];
    static uintptr_t at[N];
    for (int i = 0; i < N; i++) {
        cos[i] = kl_coro_create(where_fn, &at[i], 0);
        cr_assert_not_null(cos[i]);
    }
    for (int i = 0; i < N; i++) kl_coro_resume(cos[i]);
    for (int i = 0; i < N; i++) kl_coro_destroy(cos[i]);
    cr_assert_eq(kl_coro_cache_len(), KL_CORO_CACHE_MAX);
    for (int i = 0; i < N; i++)
        cr_assert_eq(page_state(at[i]), i < KL_CORO_CACHE_MAX ? 1 : -1,
                     "stack %d: cached ones stay mapped, the ones beyond the cap are unmapped", i);
    kl_coro_cache_clear();
    cr_assert_eq(kl_coro_cache_len(), 0);
    for (int i = 0; i < KL_CORO_CACHE_MAX; i++)
        cr_assert_eq(page_state(at[i]), -1, "stack %d unmapped by kl_coro_cache_clear", i);
}

static void *thread_main(void *arg) {
    *(uintptr_t *)arg = run_where(0);
    return kl_coro_cache_len() == 1 ? arg : NULL;
}

Test(coro_cache, a_thread_unmaps_its_cache_when_it_exits, .timeout = 10) {
    uintptr_t at = 0;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_main, &at), 0);
    void *ret = NULL;
    cr_assert_eq(pthread_join(th, &ret), 0);
    cr_assert_eq(ret, &at, "the thread cached its stack");
    cr_assert_eq(page_state(at), -1, "the exited thread's cached stack is unmapped");
    cr_assert_eq(kl_coro_cache_len(), 0, "caches are per thread");
}

/* ---- a reused stack keeps its guard page ---- */

static const size_t guard_stack = 64 * 1024;
static volatile uintptr_t g_stack_top;
static volatile int g_depth_limit = 1 << 30;

static int recurse(int depth) {
    volatile char buf[256];
    buf[0] = (char)depth;
    if (depth > g_depth_limit) return buf[0];
    return recurse(depth + 1) + buf[0];
}

static void overflow_fn(void *arg) {
    g_stack_top = (uintptr_t)__builtin_frame_address(0);
    *(int *)arg = recurse(0);
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    uintptr_t a = (uintptr_t)si->si_addr;
    uintptr_t lo = g_stack_top - guard_stack - 2 * page_size();
    uintptr_t hi = g_stack_top - guard_stack + page_size();
    if (a < lo || a >= hi) _exit(3); /* a fault elsewhere: not the guard page */
}

Test(coro_cache, a_reused_stack_still_has_its_guard_page, .signal = SIGSEGV, .timeout = 10) {
    uintptr_t first = run_where(guard_stack);
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
    cr_assert_eq(sigaltstack(&ss, NULL), 0);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
    int out = 0;
    kl_coro *co = kl_coro_create(overflow_fn, &out, guard_stack);
    cr_assert_eq(kl_coro_cache_len(), 0, "the overflowing coroutine reuses the cached stack");
    (void)first;
    kl_coro_resume(co);
    cr_assert_fail("the coroutine overflowed its stack without a fault");
}

/* ---- AddressSanitizer: a reused stack carries no poison from the coroutine before ---- */

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>

__attribute__((noinline)) static void yield_with_big_frame(void) {
    volatile char big[4096]; /* redzones around it are poisoned while the frame is live */
    big[0] = 1;
    kl_coro_yield();
    big[1] = big[0];
}

static void suspended_fn(void *arg) {
    (void)arg;
    yield_with_big_frame();
}

static void check_clean_fn(void *arg) {
    const void **poisoned = arg;
    char *sp;
#if defined(__x86_64__)
    __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
#else
    sp = (char *)__builtin_frame_address(0) - 256;
#endif
    *poisoned = __asan_region_is_poisoned(sp - 16 * 1024, 16 * 1024 - 256);
}

Test(coro_cache, asan_a_reused_stack_has_no_stale_poison, .timeout = 10) {
    kl_coro *old = kl_coro_create(suspended_fn, NULL, 0);
    kl_coro_resume(old); /* suspended with its big frame's redzones poisoned */
    kl_coro_destroy(old);
    const void *poisoned = (const void *)1;
    kl_coro *co = kl_coro_create(check_clean_fn, &poisoned, 0);
    cr_assert_eq(kl_coro_cache_len(), 0, "reused the suspended coroutine's stack");
    kl_coro_resume(co);
    cr_assert(kl_coro_finished(co));
    cr_assert_null(poisoned, "stale poison at %p on a reused stack", poisoned);
    kl_coro_destroy(co);
}
#endif

/* ---- cost of a short-lived coroutine (prints; asserts only that the work was done) ---- */

static void count_fn(void *arg) {
    (*(long *)arg)++;
}

Test(coro_cache, create_run_destroy_cost, .timeout = 10) {
    enum { ROUNDS = 200000 };
    long n = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < ROUNDS; i++) {
        kl_coro *co = kl_coro_create(count_fn, &n, 0);
        kl_coro_resume(co);
        kl_coro_destroy(co);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert_eq(n, ROUNDS);
    cr_assert_eq(kl_coro_cache_len(), 1);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    fprintf(stderr, "coroutine create+run+destroy from the cache: %.0f ns\n", ns / ROUNDS);
}
