#include "runtime/waitq.h"

#include <stddef.h>

void kl_waitq_push(kl_waitq *q, kl_waiter *w) {
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = true;
}

void kl_waitq_remove(kl_waitq *q, kl_waiter *w) {
    if (!w->linked) return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
}
