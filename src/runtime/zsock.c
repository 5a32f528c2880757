/* ZeroMQ sockets driven by coroutines on the loop thread.
 *
 * ZMQ_FD only says "ZMQ_EVENTS may have changed", and any zmq call on the socket may consume that
 * signal. So ZMQ_EVENTS is read after every poll wake-up, and once more before the loop next
 * sleeps whenever a send or receive happened since the last reading, and whatever it allows is
 * handed to the parked coroutines; a coroutine always tries the operation before it parks, so
 * readiness seen while nobody waits is never lost. The reading is deferred to a uv_prepare (run
 * just before libuv polls) rather than done after every call because each reading costs ZeroMQ
 * two system calls (getpid and poll of its mailbox): with many requests per loop turn, one
 * reading covers them all. A receive that fails with EAGAIN has just drained the mailbox itself,
 * so it leaves nothing to read unless a sender waits for POLLOUT.
 *
 * ROUTER (with ZMQ_ROUTER_MANDATORY) and XPUB (with ZMQ_XPUB_NODROP) report POLLOUT even while
 * the pipe they would use is full, so a blocked sender is retried on every event and also on a
 * short backoff timer: no busy loop, and no stall if the event that frees the pipe is missed.
 */
#include "runtime/zsock.h"

#include "runtime/freelist.h"
#include "runtime/waitq.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define KL_ZSOCK_RETRY_MIN_MS 1
#define KL_ZSOCK_RETRY_MAX_MS 64

/* ---- frames ---- */

void kl_frames_init(kl_frames *f) {
    f->v = NULL;
    f->n = f->cap = 0;
}

void kl_frames_clear(kl_frames *f) {
    for (size_t i = 0; i < f->n; i++) zmq_msg_close(&f->v[i]);
    kl_freelist_free(f->v);
    kl_frames_init(f);
}

/* zmq_msg_t must not be copied bytewise, so growing moves every frame with zmq_msg_move. */
int kl_frames_reserve(kl_frames *f, size_t cap) {
    if (cap <= f->cap) return 0;
    /* Every message sent or received has one of these arrays: the free lists keep them off the
     * allocator's arena that the ZeroMQ I/O thread contends for. */
    zmq_msg_t *v = kl_freelist_alloc(cap * sizeof(*v));
    if (!v) return -ENOMEM;
    for (size_t i = 0; i < f->n; i++) {
        zmq_msg_init(&v[i]);
        zmq_msg_move(&v[i], &f->v[i]);
        zmq_msg_close(&f->v[i]);
    }
    kl_freelist_free(f->v);
    f->v = v;
    f->cap = cap;
    return 0;
}

static int kl_frames_reserve_one(kl_frames *f) {
    if (f->n < f->cap) return 0;
    return kl_frames_reserve(f, f->cap ? f->cap * 2 : 4);
}

int kl_frames_add(kl_frames *f, const void *data, size_t len) {
    if (kl_frames_reserve_one(f) < 0) return -ENOMEM;
    if (zmq_msg_init_size(&f->v[f->n], len) != 0) return -ENOMEM;
    if (len > 0) memcpy(zmq_msg_data(&f->v[f->n]), data, len);
    f->n++;
    return 0;
}

int kl_frames_add_msg(kl_frames *f, zmq_msg_t *msg) {
    if (kl_frames_reserve_one(f) < 0) return -ENOMEM;
    zmq_msg_init(&f->v[f->n]);
    zmq_msg_move(&f->v[f->n], msg);
    f->n++;
    return 0;
}

const void *kl_frames_data(const kl_frames *f, size_t i) {
    return zmq_msg_data((zmq_msg_t *)&f->v[i]);
}

size_t kl_frames_size(const kl_frames *f, size_t i) {
    return zmq_msg_size((zmq_msg_t *)&f->v[i]);
}

/* ---- sockets ---- */

struct kl_zsock {
    kl_loop *loop;
    void *sock;
    uv_poll_t poll;
    uv_timer_t retry;
    uv_prepare_t recheck; /* active while dirty: reads ZMQ_EVENTS before the loop sleeps */
    bool dirty;           /* a zmq call since the last ZMQ_EVENTS reading may have eaten ZMQ_FD */
    kl_waitq readers;     /* parked in kl_zsock_recv, waiting for POLLIN */
    kl_waitq senders;     /* parked in kl_zsock_send, waiting for slot_holder to be them */
    kl_coro *blocked_sender; /* owns the send slot, waiting for POLLOUT or the retry timer */
    unsigned retry_ms;
    kl_coro *slot_holder; /* the coroutine sending a message; others queue in senders */
    bool closing;
    int open_handles;          /* uv handles not yet closed */
    int busy;                  /* coroutines inside recv/send; they still read zs after a close */
    kl_zsock_answer_fn answer; /* answers input a send finds waiting, while input is expected */
    void *answer_arg;
    unsigned expected;     /* input messages announced by kl_zsock_expect_input, not yet read */
    uint64_t expect_until; /* loop clock (ms) after which the announcement lapses */
};

static void kl_zsock_wake_first(kl_zsock *zs, kl_waitq *q) {
    kl_waiter *w = q->head;
    if (!w) return;
    kl_waitq_remove(q, w);
    kl_loop_wake(zs->loop, w->co);
}

static void kl_zsock_wake_all(kl_zsock *zs) {
    while (zs->readers.head) kl_zsock_wake_first(zs, &zs->readers);
    while (zs->senders.head) kl_zsock_wake_first(zs, &zs->senders);
    if (zs->blocked_sender) {
        kl_loop_wake(zs->loop, zs->blocked_sender);
        zs->blocked_sender = NULL;
    }
}

/* Reads ZMQ_EVENTS (which also clears ZMQ_FD) and resumes whoever can now make progress. One
 * reader at a time: after its receive it calls this again, which wakes the next if more is queued.
 * Returns the events, so a caller that is not parked yet can act on what it just consumed. */
static int kl_zsock_update(kl_zsock *zs) {
    if (zs->closing) return 0;
    if (zs->dirty) {
        zs->dirty = false;
        uv_prepare_stop(&zs->recheck);
    }
    int ev = 0;
    size_t len = sizeof(ev);
    if (zmq_getsockopt(zs->sock, ZMQ_EVENTS, &ev, &len) != 0) {
        /* e.g. ETERM: let everybody retry and see the error themselves */
        kl_zsock_wake_all(zs);
        return 0;
    }
    if (ev & ZMQ_POLLIN) kl_zsock_wake_first(zs, &zs->readers);
    if ((ev & ZMQ_POLLOUT) && zs->blocked_sender) {
        kl_loop_wake(zs->loop, zs->blocked_sender);
        zs->blocked_sender = NULL;
    }
    return ev;
}

static void kl_zsock_on_recheck(uv_prepare_t *h) {
    kl_zsock_update(h->data);
}

/* After a zmq call: ZMQ_EVENTS is read before the loop next sleeps. */
static void kl_zsock_mark_dirty(kl_zsock *zs) {
    if (zs->dirty || zs->closing) return;
    zs->dirty = true;
    uv_prepare_start(&zs->recheck, kl_zsock_on_recheck);
}

static void kl_zsock_on_poll(uv_poll_t *h, int status, int events) {
    (void)events;
    kl_zsock *zs = h->data;
    if (status < 0) kl_zsock_wake_all(zs);
    kl_zsock_update(zs);
}

static void kl_zsock_on_retry(uv_timer_t *h) {
    kl_zsock *zs = h->data;
    if (zs->blocked_sender) {
        kl_loop_wake(zs->loop, zs->blocked_sender);
        zs->blocked_sender = NULL;
    }
}

kl_zsock *kl_zsock_new(kl_loop *loop, void *zctx, int type) {
    void *sock = zmq_socket(zctx, type);
    if (!sock) return NULL;
    int fd = -1;
    size_t len = sizeof(fd);
    kl_zsock *zs = NULL;
    int rc;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0) goto fail;
    zs = calloc(1, sizeof(*zs));
    if (!zs) {
        errno = ENOMEM;
        goto fail;
    }
    zs->loop = loop;
    zs->sock = sock;
    zs->retry_ms = KL_ZSOCK_RETRY_MIN_MS;
    rc = uv_poll_init_socket(kl_loop_uv(loop), &zs->poll, fd);
    if (rc < 0) {
        errno = -rc;
        goto fail;
    }
    zs->poll.data = zs;
    uv_timer_init(kl_loop_uv(loop), &zs->retry);
    zs->retry.data = zs;
    uv_prepare_init(kl_loop_uv(loop), &zs->recheck);
    zs->recheck.data = zs;
    /* Only coroutines parked on the socket should keep the loop alive. */
    uv_unref((uv_handle_t *)&zs->recheck);
    zs->open_handles = 3;
    rc = uv_poll_start(&zs->poll, UV_READABLE, kl_zsock_on_poll);
    if (rc < 0) {
        kl_zsock_close(zs);
        errno = -rc;
        return NULL;
    }
    /* The coroutines that wait on a socket keep the loop alive; an idle socket should not. */
    uv_unref((uv_handle_t *)&zs->poll);
    return zs;
fail : {
    int e = errno;
    free(zs);
    zmq_close(sock);
    errno = e;
    return NULL;
}
}

void *kl_zsock_raw(kl_zsock *zs) {
    return zs->sock;
}

int kl_zsock_bind(kl_zsock *zs, const char *endpoint) {
    return zmq_bind(zs->sock, endpoint) == 0 ? 0 : -errno;
}

int kl_zsock_connect(kl_zsock *zs, const char *endpoint) {
    return zmq_connect(zs->sock, endpoint) == 0 ? 0 : -errno;
}

int kl_zsock_last_endpoint(kl_zsock *zs, char *buf, size_t len) {
    size_t n = len;
    if (zmq_getsockopt(zs->sock, ZMQ_LAST_ENDPOINT, buf, &n) != 0) return -errno;
    return 0;
}

static void kl_zsock_maybe_free(kl_zsock *zs) {
    if (zs->closing && zs->open_handles == 0 && zs->busy == 0) free(zs);
}

/* Receives the parts of one message without waiting. 0, -EAGAIN, or -errno. */
static int kl_zsock_try_recv(kl_zsock *zs, kl_frames *out) {
    /* A Jupyter message is seven frames with one identity: one allocation holds it. Failing here
     * is not fatal: each frame tries to grow the array again. */
    (void)kl_frames_reserve(out, out->n + 8);
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = 0;
    bool first = true;
    for (;;) {
        if (zmq_msg_recv(&m, zs->sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            if (e == EINTR) continue;
            /* ZeroMQ delivers multipart messages atomically, so EAGAIN after the first part
             * would mean a broken invariant rather than "try later". */
            rc = first ? -e : (e == EAGAIN ? -EPROTO : -e);
            break;
        }
        if (first && zs->expected) zs->expected--;
        first = false;
        bool more = zmq_msg_more(&m);
        /* Out of memory: keep reading so the rest of this message cannot pose as the next. */
        if (rc == 0 && kl_frames_add_msg(out, &m) < 0) rc = -ENOMEM;
        if (!more) break;
    }
    zmq_msg_close(&m);
    /* EAGAIN: ZeroMQ processed its pending commands and still found no message, so nothing that
     * arrived so far is waiting unannounced; only a blocked sender may have lost its POLLOUT. */
    if (rc == -EAGAIN && !zs->blocked_sender) {
        if (zs->dirty) {
            zs->dirty = false;
            uv_prepare_stop(&zs->recheck);
        }
    } else {
        kl_zsock_mark_dirty(zs);
    }
    return rc;
}

int kl_zsock_recv(kl_zsock *zs, kl_frames *out) {
    kl_coro *co = kl_coro_current();
    assert(co != NULL);
    kl_waiter w = {.co = co};
    int rc;
    zs->busy++;
    for (;;) {
        if (zs->closing) {
            rc = -ECANCELED;
            break;
        }
        rc = kl_zsock_try_recv(zs, out);
        if (rc != -EAGAIN) break;
        kl_waitq_push(&zs->readers, &w);
        kl_loop_park(zs->loop);
        kl_waitq_remove(&zs->readers, &w);
    }
    zs->busy--;
    kl_zsock_maybe_free(zs);
    return rc;
}

/* Slot owner, after EAGAIN: park until POLLOUT shows up on an event or the backoff timer fires. */
static void kl_zsock_wait_writable(kl_zsock *zs, kl_coro *co) {
    zs->blocked_sender = co;
    uv_timer_start(&zs->retry, kl_zsock_on_retry, zs->retry_ms, 0);
    kl_loop_park(zs->loop);
    if (zs->blocked_sender == co) zs->blocked_sender = NULL;
    if (!zs->closing) uv_timer_stop(&zs->retry);
    if (zs->retry_ms < KL_ZSOCK_RETRY_MAX_MS) zs->retry_ms *= 2;
}

/* Slot owner: sends every frame of f, parking on EAGAIN. 0 or -errno. */
static int kl_zsock_send_held(kl_zsock *zs, kl_coro *co, kl_frames *f) {
    int rc = 0;
    zs->retry_ms = KL_ZSOCK_RETRY_MIN_MS;
    for (size_t i = 0; i < f->n && rc == 0; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < f->n ? ZMQ_SNDMORE : 0);
        bool retried = false;
        for (;;) {
            if (zs->closing) {
                rc = -ECANCELED;
                break;
            }
            if (zmq_msg_send(&f->v[i], zs->sock, flags) >= 0) break;
            int e = errno;
            if (e == EINTR) continue;
            if (e != EAGAIN) {
                /* EHOSTUNREACH (ROUTER_MANDATORY, peer gone) ends here too: message dropped. */
                rc = -e;
                break;
            }
            /* The failed call may have eaten an fd signal; whatever it announced is acted on
             * here. POLLOUT is retried at once, but only once per wait: ROUTER and XPUB report
             * it even while the pipe they need is full. */
            int ev = kl_zsock_update(zs);
            if ((ev & ZMQ_POLLOUT) && !retried) {
                retried = true;
                continue;
            }
            kl_zsock_wait_writable(zs, co);
            retried = false;
        }
    }
    return rc;
}

/* Slot owner, before its own message: input that arrived so far may already have changed what the
 * socket does with that message (an XPUB applies a subscription as soon as it sees it), so each
 * waiting message is answered first. 0, or -errno from sending an answer. */
static int kl_zsock_answer_waiting(kl_zsock *zs, kl_coro *co) {
    /* The read costs ZeroMQ a system call or two even when nothing is there: only while input is
     * on its way. */
    if (!zs->answer || !zs->expected) return 0;
    if (uv_now(kl_loop_uv(zs->loop)) > zs->expect_until) {
        zs->expected = 0;
        return 0;
    }
    for (;;) {
        kl_frames in, reply;
        kl_frames_init(&in);
        kl_frames_init(&reply);
        int rc = kl_zsock_try_recv(zs, &in);
        if (rc == 0) zs->answer(zs->answer_arg, &in, &reply);
        kl_frames_clear(&in);
        /* Input that cannot be read is the reader's to report; this send goes ahead. */
        if (rc != 0) return 0;
        rc = reply.n ? kl_zsock_send_held(zs, co, &reply) : 0;
        kl_frames_clear(&reply);
        if (rc != 0) return rc;
    }
}

int kl_zsock_send(kl_zsock *zs, kl_frames *f) {
    kl_coro *co = kl_coro_current();
    assert(co != NULL);
    kl_waiter w = {.co = co};
    int rc = 0;
    zs->busy++;
    if (!zs->slot_holder && !zs->closing) {
        zs->slot_holder = co;
    } else {
        /* The releasing sender hands the slot over directly, so the queue order is kept even
         * if a newcomer calls send before the woken coroutine gets to run. */
        kl_waitq_push(&zs->senders, &w);
        while (zs->slot_holder != co && !zs->closing) kl_loop_park(zs->loop);
        kl_waitq_remove(&zs->senders, &w);
    }
    if (zs->closing) {
        rc = -ECANCELED;
        goto out;
    }
    rc = kl_zsock_answer_waiting(zs, co);
    if (rc == 0) rc = kl_zsock_send_held(zs, co, f);
    kl_zsock_mark_dirty(zs);
    zs->slot_holder = NULL;
    if (!zs->closing && zs->senders.head) {
        zs->slot_holder = zs->senders.head->co;
        kl_zsock_wake_first(zs, &zs->senders);
    }
out:
    kl_frames_clear(f);
    zs->busy--;
    kl_zsock_maybe_free(zs);
    return rc;
}

static void kl_zsock_on_closed(uv_handle_t *h) {
    kl_zsock *zs = h->data;
    if (--zs->open_handles > 0) return;
    /* Only now: libuv no longer watches the fd, which belongs to the ZeroMQ socket. */
    zmq_close(zs->sock);
    zs->sock = NULL;
    kl_zsock_maybe_free(zs);
}

void kl_zsock_answer_input(kl_zsock *zs, kl_zsock_answer_fn fn, void *arg) {
    zs->answer = fn;
    zs->answer_arg = arg;
}

void kl_zsock_expect_input(kl_zsock *zs, unsigned n, uint64_t ms) {
    zs->expected += n;
    zs->expect_until = uv_now(kl_loop_uv(zs->loop)) + ms;
}

void kl_zsock_close(kl_zsock *zs) {
    if (!zs || zs->closing) return;
    int linger = 0;
    size_t len = sizeof(linger);
    /* -1 is ZeroMQ's default: a pending message would block zmq_ctx_term forever. */
    if (zmq_getsockopt(zs->sock, ZMQ_LINGER, &linger, &len) == 0 && linger < 0) {
        linger = 0;
        zmq_setsockopt(zs->sock, ZMQ_LINGER, &linger, sizeof(linger));
    }
    kl_zsock_wake_all(zs);
    zs->closing = true;
    uv_poll_stop(&zs->poll);
    uv_timer_stop(&zs->retry);
    uv_prepare_stop(&zs->recheck);
    zs->dirty = false;
    uv_close((uv_handle_t *)&zs->poll, kl_zsock_on_closed);
    uv_close((uv_handle_t *)&zs->retry, kl_zsock_on_closed);
    uv_close((uv_handle_t *)&zs->recheck, kl_zsock_on_closed);
}
