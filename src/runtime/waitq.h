/* A FIFO of coroutines parked on one condition (a channel's receivers, a socket's senders).
 * Waiters live on the parked coroutine's stack, so the queue never allocates. Loop thread only. */
#ifndef KL_RUNTIME_WAITQ_H
#define KL_RUNTIME_WAITQ_H

#include <stdbool.h>

#include "runtime/coro.h"

typedef struct kl_waiter {
    kl_coro *co;
    struct kl_waiter *prev, *next;
    bool linked;
} kl_waiter;

typedef struct kl_waitq {
    kl_waiter *head, *tail;
} kl_waitq;

void kl_waitq_push(kl_waitq *q, kl_waiter *w);
/* Unlinks w if it is queued; a no-op otherwise, so a woken waiter may call it unconditionally. */
void kl_waitq_remove(kl_waitq *q, kl_waiter *w);

#endif
