/* Stackful coroutines on mmap'ed stacks with a guard page below each stack.
 * A coroutine is resumed from the scheduler's own stack (never from another coroutine) and runs
 * until it yields or returns. Not thread-safe: a coroutine lives and dies on one thread. */
#ifndef KL_RUNTIME_CORO_H
#define KL_RUNTIME_CORO_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kl_coro kl_coro;
typedef void (*kl_coro_fn)(void *arg);

/* Virtual size: only the pages a coroutine touches become resident, so headroom for recursive
 * work (JSON of KL_MSG_MAX_DEPTH levels is parsed, copied and freed recursively) costs no memory
 * until used. */
#define KL_CORO_DEFAULT_STACK (256 * 1024)

/* Returns a new coroutine that will call fn(arg) on first resume, or NULL (errno set).
 * stack_size 0 means KL_CORO_DEFAULT_STACK; it is rounded up to whole pages. The caller owns the
 * coroutine and frees it with kl_coro_destroy once it has finished (or was never started). */
kl_coro *kl_coro_create(kl_coro_fn fn, void *arg, size_t stack_size);
/* Hands the stack to the calling thread's cache of finished stacks, or unmaps it when the cache is
 * full. */
void kl_coro_destroy(kl_coro *co);

/* Finished stacks are kept per thread for reuse, so a short-lived coroutine (one per request of an
 * otherwise idle connection) costs no mmap, mprotect, munmap and first-touch page faults. The cache
 * is bounded, and a cached stack keeps only its top KL_CORO_CACHE_KEEP bytes resident (the rest is
 * given back with MADV_DONTNEED), so it holds at most KL_CORO_CACHE_MAX * KL_CORO_CACHE_KEEP bytes
 * (4 MiB; a request touches 4-8 KiB of stack, so 1-2 MiB in practice). The cap is sized for as
 * many requests in flight at once: with 100 clients and a cap of 32, 60% of the requests missed
 * the cache and paid ~10 us of system calls each. */
#define KL_CORO_CACHE_MAX  256
#define KL_CORO_CACHE_KEEP (16 * 1024)
/* Stacks in the calling thread's cache. */
size_t kl_coro_cache_len(void);
/* Unmaps the calling thread's cached stacks; a thread's cache is also unmapped when it exits. */
void kl_coro_cache_clear(void);

/* Switches into co until it yields or finishes. Must not be called from inside a coroutine. */
void kl_coro_resume(kl_coro *co);
/* Switches back to whoever resumed the current coroutine. Only from inside a coroutine. */
void kl_coro_yield(void);
/* The running coroutine, or NULL on the scheduler's stack. */
kl_coro *kl_coro_current(void);
bool kl_coro_finished(const kl_coro *co);

/* Opaque per-coroutine pointer for the scheduler's bookkeeping. */
void *kl_coro_user(const kl_coro *co);
void kl_coro_set_user(kl_coro *co, void *user);

#endif
