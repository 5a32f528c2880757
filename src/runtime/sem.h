/* A counting semaphore for coroutines: at most max holders at once, the others parked in arrival
 * order. It caps how many Spark operations a kernel runs at once across all its connections.
 * Loop thread only. */
#ifndef KL_RUNTIME_SEM_H
#define KL_RUNTIME_SEM_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/loop.h"
#include "runtime/waitq.h"

typedef struct kl_sem {
    kl_loop *loop;
    long max; /* <= 0: no limit */
    long held;
    size_t waiting;
    kl_waitq q;
} kl_sem;

void kl_sem_init(kl_sem *s, kl_loop *loop, long max);
/* True when an acquire now would park. */
bool kl_sem_busy(const kl_sem *s);
/* Coroutine: takes one unit, parking FIFO while none is free. Whoever wakes the coroutine for
 * another reason (an interrupt) sets *cancel first; the waiter then leaves the queue and returns
 * -ECANCELED. 0 once the unit is held: release it with kl_sem_release. cancel may be NULL. */
int kl_sem_acquire(kl_sem *s, const bool *cancel);
/* Hands the unit to the longest waiter, or returns it. */
void kl_sem_release(kl_sem *s);

#endif
