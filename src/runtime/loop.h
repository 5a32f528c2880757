/* The event loop: a libuv loop plus a run queue of coroutines.
 * Everything here is for the loop thread only, except kl_loop_post. */
#ifndef KL_RUNTIME_LOOP_H
#define KL_RUNTIME_LOOP_H

#include <stdint.h>
#include <uv.h>

#include "runtime/coro.h"

typedef struct kl_loop kl_loop;

kl_loop *kl_loop_new(void);
/* Frees the loop; every coroutine must have finished and every handle been closed. */
void kl_loop_free(kl_loop *loop);
uv_loop_t *kl_loop_uv(kl_loop *loop);

/* Runs until kl_loop_stop or until nothing is left to do. */
int kl_loop_run(kl_loop *loop);
void kl_loop_stop(kl_loop *loop);

/* Starts fn(arg) in a new coroutine on the next turn of the loop; the loop frees the coroutine when
 * it returns. Returns the coroutine (borrowed; valid until it returns) or NULL. */
kl_coro *kl_loop_spawn(kl_loop *loop, kl_coro_fn fn, void *arg, size_t stack_size);
/* Number of spawned coroutines that have not returned yet. */
size_t kl_loop_coro_count(const kl_loop *loop);

/* Makes co runnable. A wake that arrives before the coroutine parks is remembered, so a waiter
 * that registers itself, then parks, never misses a wake-up. */
void kl_loop_wake(kl_loop *loop, kl_coro *co);
/* From a coroutine: yield until kl_loop_wake(co). */
void kl_loop_park(kl_loop *loop);
/* From a coroutine: let every coroutine already runnable, and the I/O callbacks of one loop turn,
 * run before this one continues. A wake that arrives meanwhile is kept for the next park. */
void kl_loop_yield(kl_loop *loop);
/* From a coroutine: park for ms milliseconds (other wakes also end the sleep early; returns 0 when
 * the timer fired, 1 when woken by something else). */
int kl_loop_sleep(kl_loop *loop, uint64_t ms);

/* Any thread: run fn(arg) on the loop thread soon (through uv_async). Returns 0 or -errno. */
int kl_loop_post(kl_loop *loop, void (*fn)(void *arg), void *arg);

#endif
