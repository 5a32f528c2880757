#include "runtime/sem.h"

#include <errno.h>

/* The waiter on the parked coroutine's stack; granted tells a wake by release from any other. */
typedef struct sem_waiter {
    kl_waiter w; /* first, so a kl_waiter * is a sem_waiter * */
    bool granted;
} sem_waiter;

void kl_sem_init(kl_sem *s, kl_loop *loop, long max) {
    *s = (kl_sem){.loop = loop, .max = max};
}

bool kl_sem_busy(const kl_sem *s) {
    return s->max > 0 && s->held >= s->max;
}

int kl_sem_acquire(kl_sem *s, const bool *cancel) {
    if (!kl_sem_busy(s) && !s->q.head) {
        s->held++;
        return 0;
    }
    sem_waiter me = {.w = {.co = kl_coro_current()}};
    kl_waitq_push(&s->q, &me.w);
    s->waiting++;
    for (;;) {
        kl_loop_park(s->loop);
        /* A granted unit is kept even when cancelled at the same moment: the caller sees its
         * interrupt on its next check and releases as usual. */
        if (me.granted) return 0;
        if (cancel && *cancel) {
            kl_waitq_remove(&s->q, &me.w);
            s->waiting--;
            return -ECANCELED;
        }
    }
}

void kl_sem_release(kl_sem *s) {
    kl_waiter *head = s->q.head;
    if (!head) {
        if (s->held > 0) s->held--;
        return;
    }
    /* Direct hand-off: the unit never looks free, so a newcomer cannot overtake the queue. */
    kl_waitq_remove(&s->q, head);
    s->waiting--;
    ((sem_waiter *)head)->granted = true;
    kl_loop_wake(s->loop, head->co);
}
