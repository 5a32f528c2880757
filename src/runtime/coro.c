/* Stackful coroutines.
 *
 * Switch: on x86_64 a hand-written swap (callee-saved registers, rsp, x87 control word, MXCSR);
 * elsewhere, and whenever KL_CORO_UCONTEXT is defined, makecontext/swapcontext. Measured with
 * test_runtime_coro (coro::switch_cost: 10^6 resume+yield pairs), RelWithDebInfo, gcc 12, x86_64,
 * 2-vCPU VM:
 *   assembly swap:  11-13 ns per switch
 *   ucontext:      230-240 ns per switch (glibc's swapcontext makes a sigprocmask syscall)
 * so the assembly swap is the default. aarch64 falls back to ucontext: no aarch64 machine was
 * available to test a hand-written switch there.
 *
 * Coroutines are asymmetric: resume always runs on the scheduler's stack and yield always returns
 * to it, so each thread needs one saved scheduler context and nothing else.
 */
#include "runtime/coro.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(KL_CORO_UCONTEXT) && !defined(__x86_64__)
#define KL_CORO_UCONTEXT 1
#endif

#ifdef KL_CORO_UCONTEXT
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define KL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KL_ASAN 1
#endif
#endif

#ifdef KL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

struct kl_coro {
#ifdef KL_CORO_UCONTEXT
    ucontext_t ctx;
#else
    void *sp; /* saved stack pointer while suspended */
#endif
    kl_coro_fn fn;
    void *arg;
    void *user;
    void *map; /* guard page + stack */
    size_t map_len;
    char *stack_lo; /* lowest usable byte, just above the guard page */
    size_t stack_len;
    bool finished;
    kl_coro *next_free; /* in the thread's cache of finished stacks */
    bool canaries_set;  /* kl_coro_set_canaries ran since the stack's deep pages were dropped */
#ifdef KL_ASAN
    void *fake_stack; /* ASan's fake stack of this coroutine while it is suspended */
#endif
};

static _Thread_local kl_coro *tls_current;
#ifdef KL_CORO_UCONTEXT
static _Thread_local ucontext_t tls_sched_ctx;
#else
static _Thread_local void *tls_sched_sp;
#endif
#ifdef KL_ASAN
/* Bounds of the scheduler's stack, learnt when a coroutine first starts, so yields can tell ASan
 * which stack they go back to. */
static _Thread_local const void *tls_sched_bottom;
static _Thread_local size_t tls_sched_size;
static _Thread_local void *tls_sched_fake_stack;
#endif

/* Global (hidden) rather than static so the assembly below can call it by its exact name. */
__attribute__((visibility("hidden"), noreturn)) void kl_coro_main(kl_coro *co);

#ifndef KL_CORO_UCONTEXT
/* void kl_coro_swap(void **save_sp, void *load_sp): pushes the callee-saved state on the current
 * stack, stores rsp in *save_sp, loads load_sp and pops the state saved there. The frame layout
 * (low to high) is: MXCSR (4 bytes), x87 CW (2 bytes, padded to 8), r15, r14, r13, r12, rbx, rbp,
 * return address. kl_coro_create builds the same frame for a new coroutine, returning into
 * kl_coro_entry with the coroutine in r12. */
void kl_coro_swap(void **save_sp, void *load_sp);
void kl_coro_entry(void);
__asm__(".pushsection .text\n"
        ".globl kl_coro_swap\n"
        ".hidden kl_coro_swap\n"
        ".type kl_coro_swap,@function\n"
        "kl_coro_swap:\n"
        "    .cfi_startproc\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size kl_coro_swap,.-kl_coro_swap\n"
        "\n"
        ".globl kl_coro_entry\n"
        ".hidden kl_coro_entry\n"
        ".type kl_coro_entry,@function\n"
        "kl_coro_entry:\n"
        "    .cfi_startproc\n"
        "    .cfi_undefined %rip\n" /* outermost frame: debuggers stop unwinding here */
        "    movq %r12, %rdi\n"
        "    call kl_coro_main\n"
        "    ud2\n"
        "    .cfi_endproc\n"
        ".size kl_coro_entry,.-kl_coro_entry\n"
        ".popsection\n");
#endif

static void kl_coro_asan_enter_coro(kl_coro *co) {
#ifdef KL_ASAN
    __sanitizer_start_switch_fiber(&tls_sched_fake_stack, co->stack_lo, co->stack_len);
#else
    (void)co;
#endif
}

static void kl_coro_asan_back_in_sched(void) {
#ifdef KL_ASAN
    __sanitizer_finish_switch_fiber(tls_sched_fake_stack, NULL, NULL);
#endif
}

/* dying: the coroutine will never run again, so ASan may drop its fake stack. */
static void kl_coro_asan_leave_coro(kl_coro *co, bool dying) {
#ifdef KL_ASAN
    __sanitizer_start_switch_fiber(dying ? NULL : &co->fake_stack, tls_sched_bottom,
                                   tls_sched_size);
#else
    (void)co;
    (void)dying;
#endif
}

static void kl_coro_asan_back_in_coro(kl_coro *co) {
#ifdef KL_ASAN
    __sanitizer_finish_switch_fiber(co->fake_stack, &tls_sched_bottom, &tls_sched_size);
#else
    (void)co;
#endif
}

static void kl_coro_to_sched(kl_coro *co) {
#ifdef KL_CORO_UCONTEXT
    swapcontext(&co->ctx, &tls_sched_ctx);
#else
    kl_coro_swap(&co->sp, tls_sched_sp);
#endif
}

void kl_coro_main(kl_coro *co) {
    kl_coro_asan_back_in_coro(co);
    co->fn(co->arg);
    co->finished = true;
    kl_coro_asan_leave_coro(co, true);
    kl_coro_to_sched(co);
    abort(); /* a finished coroutine is never resumed */
}

#ifdef KL_CORO_UCONTEXT
/* makecontext passes only ints, so the pointer travels in two halves. */
static void kl_coro_uctx_entry(unsigned int lo, unsigned int hi) {
    uintptr_t p = ((uintptr_t)hi << 16 << 16) | (uintptr_t)lo;
    kl_coro_main((kl_coro *)p);
}

/* Kept out of kl_coro_create: getcontext returns twice, which makes its caller's locals suspect. */
__attribute__((noinline)) static int kl_coro_uctx_init(kl_coro *co) {
    if (getcontext(&co->ctx) != 0) return -1;
    co->ctx.uc_stack.ss_sp = co->stack_lo;
    co->ctx.uc_stack.ss_size = co->stack_len;
    co->ctx.uc_link = NULL;
    uintptr_t p = (uintptr_t)co;
    makecontext(&co->ctx, (void (*)(void))kl_coro_uctx_entry, 2, (unsigned int)(p & 0xffffffffu),
                (unsigned int)(p >> 16 >> 16));
    return 0;
}
#endif

/* ---- stacks and the per-thread cache of finished ones ---- */

static _Thread_local kl_coro *tls_cache; /* linked through next_free */
static _Thread_local size_t tls_ncache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static bool cache_key_ok;

static size_t kl_coro_page(void) {
    return (size_t)sysconf(_SC_PAGESIZE);
}

static void kl_coro_unmap(kl_coro *co) {
#ifdef KL_ASAN
    /* Frames that never returned (kl_coro_main's, or all of an unfinished coroutine's) leave
     * poisoned shadow behind; clear it before the range can be reused. */
    ASAN_UNPOISON_MEMORY_REGION(co->stack_lo, co->stack_len);
#endif
    munmap(co->map, co->map_len);
    free(co);
}

void kl_coro_cache_clear(void) {
    while (tls_cache) {
        kl_coro *co = tls_cache;
        tls_cache = co->next_free;
        kl_coro_unmap(co);
    }
    tls_ncache = 0;
}

size_t kl_coro_cache_len(void) {
    return tls_ncache;
}

/* A thread that ran coroutines must not leave its cached stacks mapped when it ends. */
static void kl_coro_cache_on_thread_exit(void *unused) {
    (void)unused;
    kl_coro_cache_clear();
}

static void kl_coro_cache_key_init(void) {
    cache_key_ok = pthread_key_create(&cache_key, kl_coro_cache_on_thread_exit) == 0;
}

/* A cached coroutine with exactly this stack size, or NULL. */
static kl_coro *kl_coro_cache_take(size_t stack_len) {
    for (kl_coro **p = &tls_cache; *p; p = &(*p)->next_free) {
        kl_coro *co = *p;
        if (co->stack_len != stack_len) continue;
        *p = co->next_free;
        tls_ncache--;
        return co;
    }
    return NULL;
}

/* Bytes at the top of a cached stack that stay resident, in whole pages. */
static size_t kl_coro_keep(void) {
    size_t page = kl_coro_page();
    return (KL_CORO_CACHE_KEEP + page - 1) / page * page;
}

/* Canaries spread over the lowest page the cache keeps resident. madvise costs more than the
 * rest of a short coroutine's life (measured: 2-3 us per call on a VM, against ~150 ns for a
 * create+run+destroy from the cache), so only a stack that went below the kept top pays it; a
 * coroutine that did so almost surely overwrote a canary on the way down, since frames are written
 * as the stack grows. One that slipped past them all (a frame with a large unwritten buffer just
 * there) merely keeps its pages while cached, which the cache's size bounds. */
#define KL_CORO_CANARY  0x6b6c636f726f2121ull
#define KL_CORO_NCANARY 16

static uint64_t *kl_coro_canaries(kl_coro *co, size_t *stride) {
    *stride = kl_coro_page() / sizeof(uint64_t) / KL_CORO_NCANARY;
    return (uint64_t *)(co->stack_lo + co->stack_len - kl_coro_keep());
}

static bool kl_coro_went_deep(kl_coro *co) {
    if (!co->canaries_set) return true; /* never measured: assume the worst once */
    size_t stride;
    const uint64_t *c = kl_coro_canaries(co, &stride);
    for (size_t i = 0; i < KL_CORO_NCANARY; i++)
        if (c[i * stride] != KL_CORO_CANARY) return true;
    return false;
}

static void kl_coro_set_canaries(kl_coro *co) {
    size_t stride;
    uint64_t *c = kl_coro_canaries(co, &stride);
    for (size_t i = 0; i < KL_CORO_NCANARY; i++) c[i * stride] = KL_CORO_CANARY;
    co->canaries_set = true;
}

/* False when the cache is full or the pages could not be given back: then the caller unmaps. */
static bool kl_coro_cache_put(kl_coro *co) {
    if (tls_ncache >= KL_CORO_CACHE_MAX) return false;
    pthread_once(&cache_once, kl_coro_cache_key_init);
    if (!cache_key_ok) return false;
#ifdef KL_ASAN
    /* Before the canaries are read: a frame that never returned left its redzones poisoned. */
    ASAN_UNPOISON_MEMORY_REGION(co->stack_lo, co->stack_len);
#endif
    size_t keep = kl_coro_keep();
    if (co->stack_len > keep && kl_coro_went_deep(co)) {
        /* Stacks grow down: the top is what the next coroutine touches first, so it stays;
         * whatever a deep call touched below it goes back to the system. */
        if (madvise(co->stack_lo, co->stack_len - keep, MADV_DONTNEED) != 0) return false;
        kl_coro_set_canaries(co);
    }
    if (!tls_cache && pthread_setspecific(cache_key, &tls_cache) != 0) return false;
    co->next_free = tls_cache;
    tls_cache = co;
    tls_ncache++;
    return true;
}

static kl_coro *kl_coro_map(size_t stack_size) {
    size_t page = kl_coro_page();
    kl_coro *co = calloc(1, sizeof(*co));
    if (!co) return NULL;
    co->map_len = stack_size + page;
    co->map = mmap(NULL, co->map_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (co->map == MAP_FAILED) {
        free(co);
        return NULL;
    }
    /* The guard page turns a stack overflow into SIGSEGV instead of silent heap corruption. */
    if (mprotect(co->map, page, PROT_NONE) != 0) {
        int e = errno;
        munmap(co->map, co->map_len);
        free(co);
        errno = e;
        return NULL;
    }
    co->stack_lo = (char *)co->map + page;
    co->stack_len = stack_size;
#ifdef KL_ASAN
    /* The kernel may hand back an address range whose shadow still holds a dead stack's poison. */
    ASAN_UNPOISON_MEMORY_REGION(co->stack_lo, co->stack_len);
#endif
    return co;
}

kl_coro *kl_coro_create(kl_coro_fn fn, void *arg, size_t stack_size) {
    size_t page = kl_coro_page();
    if (stack_size == 0) stack_size = KL_CORO_DEFAULT_STACK;
    stack_size = (stack_size + page - 1) / page * page;

    kl_coro *co = kl_coro_cache_take(stack_size);
    if (co) {
        /* Everything but the mapping starts afresh (ASan's fake stack included). */
        kl_coro keep = {.map = co->map,
                        .map_len = co->map_len,
                        .stack_lo = co->stack_lo,
                        .stack_len = co->stack_len,
                        .canaries_set = co->canaries_set};
        *co = keep;
    } else {
        co = kl_coro_map(stack_size);
        if (!co) return NULL;
    }
    co->fn = fn;
    co->arg = arg;

#ifdef KL_CORO_UCONTEXT
    if (kl_coro_uctx_init(co) != 0) {
        int e = errno;
        kl_coro_unmap(co);
        errno = e;
        return NULL;
    }
#else
    uintptr_t top = ((uintptr_t)co->stack_lo + co->stack_len) & ~(uintptr_t)15;
    /* After kl_coro_swap's ret, rsp must be 16-byte aligned so that kl_coro_entry's call leaves
     * kl_coro_main with the ABI's entry alignment; two zero words above keep unwinders in bounds.
     */
    uint64_t *frame = (uint64_t *)(top - 24 - 7 * 8);
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    frame[0] = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
    frame[1] = 0;                                  /* r15 */
    frame[2] = 0;                                  /* r14 */
    frame[3] = 0;                                  /* r13 */
    frame[4] = (uint64_t)(uintptr_t)co;            /* r12 */
    frame[5] = 0;                                  /* rbx */
    frame[6] = 0;                                  /* rbp: ends frame-pointer chains */
    frame[7] = (uint64_t)(uintptr_t)kl_coro_entry; /* return address */
    frame[8] = 0;
    frame[9] = 0;
    co->sp = frame;
#endif
    return co;
}

void kl_coro_destroy(kl_coro *co) {
    if (!co) return;
    assert(co != tls_current);
    if (!kl_coro_cache_put(co)) kl_coro_unmap(co);
}

void kl_coro_resume(kl_coro *co) {
    assert(tls_current == NULL);
    assert(!co->finished);
    tls_current = co;
    kl_coro_asan_enter_coro(co);
#ifdef KL_CORO_UCONTEXT
    swapcontext(&tls_sched_ctx, &co->ctx);
#else
    kl_coro_swap(&tls_sched_sp, co->sp);
#endif
    kl_coro_asan_back_in_sched();
    tls_current = NULL;
}

void kl_coro_yield(void) {
    kl_coro *co = tls_current;
    assert(co != NULL);
    kl_coro_asan_leave_coro(co, false);
    kl_coro_to_sched(co);
    kl_coro_asan_back_in_coro(co);
}

kl_coro *kl_coro_current(void) {
    return tls_current;
}

bool kl_coro_finished(const kl_coro *co) {
    return co->finished;
}

void *kl_coro_user(const kl_coro *co) {
    return co->user;
}

void kl_coro_set_user(kl_coro *co, void *user) {
    co->user = user;
}
