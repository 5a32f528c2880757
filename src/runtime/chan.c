/* Bounded ring of pointers shared between the loop thread and other threads.
 *
 * Loop-thread waiters are coroutines queued FIFO and resumed with kl_loop_wake; other threads
 * block on a condvar and reach the loop through the channel's own uv_async (which, unlike
 * kl_loop_post, is cancelled by uv_close, so nothing queued can outlive the channel). The loop
 * thread is the thread that created the channel. A capacity of 0 is treated as 1. */
#include "runtime/chan.h"
#include "runtime/waitq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct kl_chan {
    kl_loop *loop;
    pthread_t owner;
    uv_async_t async;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t not_full;
    void **buf;
    size_t cap, head, len;
    bool closed;
    size_t foreign_blocked; /* other threads waiting on not_full */
    kl_waitq recvq, sendq;
};

/* Loop thread, lock held. Wakes up to n waiters of q, oldest first. */
static void kl_chan_wake_n(kl_chan *ch, kl_waitq *q, size_t n) {
    while (n-- > 0 && q->head) {
        kl_waiter *w = q->head;
        kl_waitq_remove(q, w);
        kl_loop_wake(ch->loop, w->co);
    }
}

static bool kl_chan_on_loop_thread(const kl_chan *ch) {
    return pthread_equal(pthread_self(), ch->owner);
}

/* Loop thread, lock held: resume as many waiters as the state can satisfy. Woken coroutines
 * re-check, so waking one too many is harmless while waking one too few would stall. */
static void kl_chan_wake_locked(kl_chan *ch) {
    if (ch->closed) {
        kl_chan_wake_n(ch, &ch->recvq, SIZE_MAX);
        kl_chan_wake_n(ch, &ch->sendq, SIZE_MAX);
        return;
    }
    kl_chan_wake_n(ch, &ch->recvq, ch->len);
    kl_chan_wake_n(ch, &ch->sendq, ch->cap - ch->len);
}

/* Lock held: after a state change, let the side that can now make progress know. */
static void kl_chan_notify_locked(kl_chan *ch) {
    if (ch->foreign_blocked > 0) {
        if (ch->closed)
            pthread_cond_broadcast(&ch->not_full);
        else if (ch->len < ch->cap)
            pthread_cond_signal(&ch->not_full);
    }
    if (!ch->recvq.head && !ch->sendq.head) return;
    if (kl_chan_on_loop_thread(ch))
        kl_chan_wake_locked(ch);
    else
        uv_async_send(&ch->async);
}

static void kl_chan_on_async(uv_async_t *h) {
    kl_chan *ch = h->data;
    pthread_mutex_lock(&ch->mu);
    kl_chan_wake_locked(ch);
    pthread_mutex_unlock(&ch->mu);
}

kl_chan *kl_chan_new(kl_loop *loop, size_t capacity) {
    if (capacity == 0) capacity = 1;
    kl_chan *ch = calloc(1, sizeof(*ch));
    if (!ch) return NULL;
    ch->buf = calloc(capacity, sizeof(void *));
    if (!ch->buf) {
        free(ch);
        errno = ENOMEM;
        return NULL;
    }
    int rc = uv_async_init(kl_loop_uv(loop), &ch->async, kl_chan_on_async);
    if (rc < 0) {
        free(ch->buf);
        free(ch);
        errno = -rc;
        return NULL;
    }
    /* Waiting coroutines keep the loop alive; an idle channel should not. */
    uv_unref((uv_handle_t *)&ch->async);
    ch->async.data = ch;
    ch->loop = loop;
    ch->owner = pthread_self();
    ch->cap = capacity;
    pthread_mutex_init(&ch->mu, NULL);
    pthread_cond_init(&ch->not_full, NULL);
    return ch;
}

static void kl_chan_on_closed(uv_handle_t *h) {
    kl_chan *ch = h->data;
    pthread_mutex_destroy(&ch->mu);
    pthread_cond_destroy(&ch->not_full);
    free(ch->buf);
    free(ch);
}

void kl_chan_free(kl_chan *ch) {
    if (!ch) return;
    uv_close((uv_handle_t *)&ch->async, kl_chan_on_closed);
}

static void kl_chan_push_locked(kl_chan *ch, void *item) {
    ch->buf[(ch->head + ch->len) % ch->cap] = item;
    ch->len++;
}

static void *kl_chan_pop_locked(kl_chan *ch) {
    void *item = ch->buf[ch->head];
    ch->head = (ch->head + 1) % ch->cap;
    ch->len--;
    return item;
}

int kl_chan_try_send(kl_chan *ch, void *item) {
    pthread_mutex_lock(&ch->mu);
    int rc = 0;
    if (ch->closed)
        rc = -EPIPE;
    else if (ch->len == ch->cap)
        rc = -EAGAIN;
    else {
        kl_chan_push_locked(ch, item);
        kl_chan_notify_locked(ch);
    }
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

int kl_chan_send(kl_chan *ch, void *item) {
    bool loop_side = kl_chan_on_loop_thread(ch);
    kl_coro *co = loop_side ? kl_coro_current() : NULL;
    kl_waiter w = {.co = co};
    pthread_mutex_lock(&ch->mu);
    int rc;
    for (;;) {
        kl_waitq_remove(&ch->sendq, &w);
        if (ch->closed) {
            rc = -EPIPE;
            break;
        }
        if (ch->len < ch->cap) {
            kl_chan_push_locked(ch, item);
            kl_chan_notify_locked(ch);
            rc = 0;
            break;
        }
        if (loop_side && !co) { /* the scheduler's stack cannot wait */
            rc = -EAGAIN;
            break;
        }
        if (co) {
            kl_waitq_push(&ch->sendq, &w);
            pthread_mutex_unlock(&ch->mu);
            kl_loop_park(ch->loop);
            pthread_mutex_lock(&ch->mu);
        } else {
            ch->foreign_blocked++;
            pthread_cond_wait(&ch->not_full, &ch->mu);
            ch->foreign_blocked--;
        }
    }
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

int kl_chan_try_recv(kl_chan *ch, void **item) {
    pthread_mutex_lock(&ch->mu);
    int rc = 0;
    if (ch->len > 0) {
        *item = kl_chan_pop_locked(ch);
        kl_chan_notify_locked(ch);
    } else {
        rc = ch->closed ? -EPIPE : -EAGAIN;
    }
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

int kl_chan_recv(kl_chan *ch, void **item) {
    kl_coro *co = kl_chan_on_loop_thread(ch) ? kl_coro_current() : NULL;
    if (!co) return kl_chan_try_recv(ch, item);
    kl_waiter w = {.co = co};
    pthread_mutex_lock(&ch->mu);
    int rc;
    for (;;) {
        kl_waitq_remove(&ch->recvq, &w);
        if (ch->len > 0) {
            *item = kl_chan_pop_locked(ch);
            kl_chan_notify_locked(ch);
            rc = 0;
            break;
        }
        if (ch->closed) {
            rc = -EPIPE;
            break;
        }
        kl_waitq_push(&ch->recvq, &w);
        pthread_mutex_unlock(&ch->mu);
        kl_loop_park(ch->loop);
        pthread_mutex_lock(&ch->mu);
    }
    pthread_mutex_unlock(&ch->mu);
    return rc;
}

void kl_chan_close(kl_chan *ch) {
    pthread_mutex_lock(&ch->mu);
    ch->closed = true;
    kl_chan_notify_locked(ch);
    pthread_mutex_unlock(&ch->mu);
}

size_t kl_chan_len(kl_chan *ch) {
    pthread_mutex_lock(&ch->mu);
    size_t n = ch->len;
    pthread_mutex_unlock(&ch->mu);
    return n;
}
