#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "runtime/coro.h"

typedef struct {
    int in;    /* set by the scheduler before each resume */
    int out;   /* set by the coroutine before each yield */
    int steps; /* how many times the coroutine has run */
    kl_coro *self;
    bool self_ok;
} pingpong;

static void pingpong_fn(void *arg) {
    pingpong *p = arg;
    p->self_ok = kl_coro_current() == p->self;
    for (int i = 0; i < 5; i++) {
        p->steps++;
        p->out = p->in * 10;
        kl_coro_yield();
        if (kl_coro_current() != p->self) p->self_ok = false;
    }
    p->out = -1;
}

Test(coro, switches_back_and_forth_passing_values, .timeout = 10) {
    pingpong p = {0};
    kl_coro *co = kl_coro_create(pingpong_fn, &p, 0);
    cr_assert_not_null(co);
    p.self = co;
    cr_assert_null(kl_coro_current());
    for (int i = 1; i <= 5; i++) {
        p.in = i;
        kl_coro_resume(co);
        cr_assert_null(kl_coro_current(), "back on the scheduler's stack");
        cr_assert_eq(p.out, i * 10);
        cr_assert_eq(p.steps, i);
        cr_assert_not(kl_coro_finished(co));
    }
    kl_coro_resume(co);
    cr_assert_eq(p.out, -1);
    cr_assert(kl_coro_finished(co));
    cr_assert(p.self_ok, "kl_coro_current() inside the coroutine is the coroutine");
    kl_coro_destroy(co);
}

static void return_at_once(void *arg) {
    *(int *)arg = 42;
}

Test(coro, returning_marks_finished, .timeout = 10) {
    int v = 0;
    kl_coro *co = kl_coro_create(return_at_once, &v, 16 * 1024);
    cr_assert_not_null(co);
    cr_assert_not(kl_coro_finished(co));
    cr_assert_eq(v, 0, "nothing runs before the first resume");
    kl_coro_resume(co);
    cr_assert_eq(v, 42);
    cr_assert(kl_coro_finished(co));
    kl_coro_destroy(co);
}

Test(coro, user_pointer_round_trips) {
    int v = 0;
    kl_coro *co = kl_coro_create(return_at_once, &v, 0);
    cr_assert_null(kl_coro_user(co));
    kl_coro_set_user(co, &v);
    cr_assert_eq(kl_coro_user(co), &v);
    kl_coro_destroy(co); /* never started: destroying is allowed */
}

typedef struct {
    int id;
    int count;
    int *log; /* order in which coroutines ran in each round */
    int *log_len;
} many_arg;

static void many_fn(void *arg) {
    many_arg *a = arg;
    for (int i = 0; i < 10; i++) {
        a->count++;
        a->log[(*a->log_len)++] = a->id;
        kl_coro_yield();
    }
}

Test(coro, many_coroutines_interleave, .timeout = 10) {
    enum { N = 500 };
    static kl_coro *cos[N];
    static many_arg args[N];
    static int log[N * 10];
    int log_len = 0;
    for (int i = 0; i < N; i++) {
        args[i] = (many_arg){.id = i, .log = log, .log_len = &log_len};
        cos[i] = kl_coro_create(many_fn, &args[i], 32 * 1024);
        cr_assert_not_null(cos[i]);
    }
    int live = N;
    while (live > 0) {
        for (int i = 0; i < N; i++) {
            if (!cos[i]) continue;
            kl_coro_resume(cos[i]);
            if (kl_coro_finished(cos[i])) {
                kl_coro_destroy(cos[i]);
                cos[i] = NULL;
                live--;
            }
        }
    }
    cr_assert_eq(log_len, N * 10);
    for (int i = 0; i < N; i++) cr_assert_eq(args[i].count, 10);
    /* round robin: every round visits the coroutines in creation order */
    for (int k = 0; k < N * 10; k++) cr_assert_eq(log[k], k % N);
}

static void alignment_fn(void *arg) {
    _Alignas(16) volatile char buf[16];
    buf[0] = 1;
    *(uintptr_t *)arg = (uintptr_t)buf;
    /* a varargs call with a double uses aligned SSE stores in most libcs */
    char out[32];
    snprintf(out, sizeof(out), "%.3f", 3.25 + buf[0]);
    if (out[0] != '4') *(uintptr_t *)arg = 1;
}

Test(coro, stack_is_abi_aligned, .timeout = 10) {
    uintptr_t addr = 0;
    kl_coro *co = kl_coro_create(alignment_fn, &addr, 0);
    kl_coro_resume(co);
    cr_assert(kl_coro_finished(co));
    cr_assert_neq(addr, 0);
    cr_assert_neq(addr, 1, "formatting a double on the coroutine stack went wrong");
    cr_assert_eq(addr % 16, 0, "16-byte aligned local at %#lx", (unsigned long)addr);
    kl_coro_destroy(co);
}

#if defined(__x86_64__)
static unsigned read_mxcsr(void) {
    unsigned v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static void write_mxcsr(unsigned v) {
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static void fp_fn(void *arg) {
    unsigned *seen = arg;
    /* rounding mode "toward zero" lives only in this coroutine */
    write_mxcsr((read_mxcsr() & ~0x6000u) | 0x6000u);
    kl_coro_yield();
    *seen = read_mxcsr();
}

Test(coro, floating_point_control_is_per_context, .timeout = 10) {
    unsigned before = read_mxcsr(), seen = 0;
    kl_coro *co = kl_coro_create(fp_fn, &seen, 0);
    kl_coro_resume(co);
    cr_assert_eq(read_mxcsr(), before, "the coroutine's MXCSR leaked into the scheduler");
    kl_coro_resume(co);
    cr_assert_eq(seen & 0x6000u, 0x6000u, "the coroutine's MXCSR survived the yield");
    cr_assert(kl_coro_finished(co));
    kl_coro_destroy(co);
}
#endif

/* ---- AddressSanitizer must know which stack a coroutine runs on ---- */

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#include <setjmp.h>

static jmp_buf asan_jb;

__attribute__((noinline)) static void poison_and_jump(void) {
    volatile char big[512]; /* its redzones are poisoned while this frame is live */
    big[0] = 1;
    if (big[0]) longjmp(asan_jb, 1);
}

static void longjmp_fn(void *arg) {
    const void **left_poisoned = arg;
    if (setjmp(asan_jb) == 0) poison_and_jump();
    /* longjmp unpoisons the abandoned frames only if ASan knows this stack's bounds, which is
     * what the fiber-switch annotations tell it; otherwise stale redzones cause false reports. */
    char *sp;
#if defined(__x86_64__)
    __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
#else
    sp = (char *)__builtin_frame_address(0) - 256;
#endif
    *left_poisoned = __asan_region_is_poisoned(sp - 2048, 2048);
}

Test(coro, asan_unpoisons_frames_abandoned_by_longjmp, .timeout = 10) {
    const void *left_poisoned = (const void *)1;
    kl_coro *co = kl_coro_create(longjmp_fn, &left_poisoned, 0);
    kl_coro_resume(co);
    cr_assert(kl_coro_finished(co));
    cr_assert_null(left_poisoned, "stale poison at %p on the coroutine stack", left_poisoned);
    kl_coro_destroy(co);
}
#endif

/* ---- guard page ---- */

static volatile int g_depth_limit = 1 << 30;
static volatile uintptr_t g_stack_top;
static const size_t guard_stack = 64 * 1024;

static int recurse(int depth) {
    volatile char buf[256];
    buf[0] = (char)depth;
    if (depth > g_depth_limit) return buf[0];
    return recurse(depth + 1) + buf[0];
}

static void overflow_fn(void *arg) {
    volatile char here = 0;
    /* the real frame, even when ASan moves locals to a fake stack */
    g_stack_top = (uintptr_t)__builtin_frame_address(0);
    *(int *)arg = recurse(0) + here;
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    uintptr_t a = (uintptr_t)si->si_addr;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    /* The fault must land just below the stack: in the guard page, not somewhere random. */
    uintptr_t lo = g_stack_top - guard_stack - 2 * page;
    uintptr_t hi = g_stack_top - guard_stack + page;
    if (a < lo || a >= hi) _exit(3);
    /* SA_RESETHAND restored the default action: returning re-faults and kills us by SIGSEGV. */
}

Test(coro, stack_overflow_hits_guard_page, .signal = SIGSEGV, .timeout = 10) {
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
    cr_assert_not_null(co);
    kl_coro_resume(co);
    cr_assert_fail("the coroutine overflowed its stack without a fault");
}

/* ---- cost of a switch (prints, asserts only that the work was done) ---- */

enum { ROUNDS = 1000000 };

static void spin_fn(void *arg) {
    long *n = arg;
    for (int i = 0; i < ROUNDS; i++) {
        (*n)++;
        kl_coro_yield();
    }
}

Test(coro, switch_cost, .timeout = 10) {
    long n = 0;
    kl_coro *co = kl_coro_create(spin_fn, &n, 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < ROUNDS; i++) kl_coro_resume(co);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert_eq(n, ROUNDS);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    fprintf(stderr, "coro switch (%s): %.1f ns per switch\n",
#if defined(KL_CORO_UCONTEXT) || !defined(__x86_64__)
            "ucontext",
#else
            "assembly",
#endif
            ns / (2.0 * ROUNDS));
    kl_coro_resume(co);
    cr_assert(kl_coro_finished(co));
    kl_coro_destroy(co);
}
