/* The loop: a private uv_loop_t, a FIFO run queue of coroutines, and a uv_async for posts.
 *
 * Liveness: while any spawned coroutine is alive the post async is referenced, so kl_loop_run keeps
 * waiting for wake-ups from sockets, pools, channels and other threads; it returns once every
 * coroutine has finished and no other handle is active (or on kl_loop_stop). A set of coroutines
 * parked on nothing therefore shows up as a hang, not as a silent early return.
 *
 * Runnable coroutines are resumed from a uv_idle handle that is active only while the queue is
 * non-empty: an active idle handle makes libuv poll without blocking, an inactive one lets it
 * sleep.
 */
#include "runtime/loop.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "runtime/log.h"

typedef struct kl_task kl_task;
struct kl_task {
    kl_loop *loop;
    kl_coro *co;
    kl_task *next_run;            /* run queue link */
    kl_task *prev_all, *next_all; /* every live task, so kl_loop_free can reclaim leftovers */
    bool queued;                  /* in the run queue */
    bool parked;                  /* suspended in kl_loop_park */
    bool wake_pending;            /* woken while not parked: the next park returns at once */
    bool yielding;                /* queued by kl_loop_yield rather than by a wake */
    bool timer_init;
    bool timer_fired;
    uv_timer_t timer; /* kl_loop_sleep; closed (asynchronously) when the task dies */
};

typedef struct kl_post {
    void (*fn)(void *arg);
    void *arg;
    struct kl_post *next;
} kl_post;

struct kl_loop {
    uv_loop_t uv;
    uv_idle_t idle;
    uv_async_t async;
    kl_task *run_head, *run_tail;
    kl_task *yield_head, *yield_tail; /* yielded during the current pass: run from the next */
    kl_task *all;
    size_t ncoros;
    pthread_mutex_t post_mu;
    kl_post *post_head, *post_tail;
};

static void kl_loop_on_idle(uv_idle_t *h);
static void kl_loop_on_async(uv_async_t *h);

kl_loop *kl_loop_new(void) {
    kl_loop *loop = calloc(1, sizeof(*loop));
    if (!loop) return NULL;
    int rc = uv_loop_init(&loop->uv);
    if (rc < 0) {
        free(loop);
        errno = -rc;
        return NULL;
    }
    loop->uv.data = loop;
    uv_idle_init(&loop->uv, &loop->idle);
    loop->idle.data = loop;
    rc = uv_async_init(&loop->uv, &loop->async, kl_loop_on_async);
    if (rc < 0) {
        uv_close((uv_handle_t *)&loop->idle, NULL);
        uv_run(&loop->uv, UV_RUN_DEFAULT);
        uv_loop_close(&loop->uv);
        free(loop);
        errno = -rc;
        return NULL;
    }
    loop->async.data = loop;
    uv_unref((uv_handle_t *)&loop->async);
    pthread_mutex_init(&loop->post_mu, NULL);
    return loop;
}

uv_loop_t *kl_loop_uv(kl_loop *loop) {
    return &loop->uv;
}

int kl_loop_run(kl_loop *loop) {
    return uv_run(&loop->uv, UV_RUN_DEFAULT);
}

void kl_loop_stop(kl_loop *loop) {
    uv_stop(&loop->uv);
}

size_t kl_loop_coro_count(const kl_loop *loop) {
    return loop->ncoros;
}

/* Appends t to the list head..tail and makes sure the run queue gets its pass. */
static void kl_loop_append(kl_loop *loop, kl_task **head, kl_task **tail, kl_task *t) {
    assert(!t->queued);
    t->queued = true;
    t->next_run = NULL;
    if (*tail)
        (*tail)->next_run = t;
    else
        *head = t;
    *tail = t;
    uv_idle_start(&loop->idle, kl_loop_on_idle);
}

static void kl_loop_enqueue(kl_loop *loop, kl_task *t) {
    kl_loop_append(loop, &loop->run_head, &loop->run_tail, t);
}

static void kl_loop_on_task_closed(uv_handle_t *h) {
    free(h->data);
}

/* Frees t; its timer memory lives inside t, so a used timer delays the free to its close. */
static void kl_loop_task_free(kl_task *t) {
    kl_loop *loop = t->loop;
    if (t->prev_all)
        t->prev_all->next_all = t->next_all;
    else
        loop->all = t->next_all;
    if (t->next_all) t->next_all->prev_all = t->prev_all;
    kl_coro_destroy(t->co);
    t->co = NULL;
    if (--loop->ncoros == 0) uv_unref((uv_handle_t *)&loop->async);
    if (t->timer_init) {
        t->timer.data = t;
        uv_close((uv_handle_t *)&t->timer, kl_loop_on_task_closed);
    } else {
        free(t);
    }
}

/* Resumes per pass of the run queue: enough for a reader and the coroutines it feeds to hand
 * work along within one turn, few enough that socket events are looked at every few ms. */
#define KL_LOOP_PASS_BUDGET 512

static void kl_loop_on_idle(uv_idle_t *h) {
    kl_loop *loop = h->data;
    /* A coroutine woken during the pass runs in it: going round the loop once per hand-over (a
     * request read, then the tenant that runs it) cost a poll of every socket each time. One
     * that yields during the pass waits in the yield list for the next, after I/O, as
     * kl_loop_yield promises. */
    for (unsigned budget = KL_LOOP_PASS_BUDGET; loop->run_head && budget > 0; budget--) {
        kl_task *t = loop->run_head;
        loop->run_head = t->next_run;
        if (!loop->run_head) loop->run_tail = NULL;
        t->next_run = NULL;
        t->queued = false;
        t->yielding = false;
        kl_coro_resume(t->co);
        if (kl_coro_finished(t->co)) kl_loop_task_free(t);
    }
    if (loop->yield_head) {
        if (loop->run_tail)
            loop->run_tail->next_run = loop->yield_head;
        else
            loop->run_head = loop->yield_head;
        loop->run_tail = loop->yield_tail;
        loop->yield_head = loop->yield_tail = NULL;
    }
    if (!loop->run_head) uv_idle_stop(h);
}

kl_coro *kl_loop_spawn(kl_loop *loop, kl_coro_fn fn, void *arg, size_t stack_size) {
    kl_task *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    kl_coro *co = kl_coro_create(fn, arg, stack_size);
    if (!co) {
        free(t);
        return NULL;
    }
    t->loop = loop;
    t->co = co;
    kl_coro_set_user(co, t);
    t->next_all = loop->all;
    if (loop->all) loop->all->prev_all = t;
    loop->all = t;
    if (loop->ncoros++ == 0) uv_ref((uv_handle_t *)&loop->async);
    kl_loop_enqueue(loop, t);
    return co;
}

void kl_loop_wake(kl_loop *loop, kl_coro *co) {
    kl_task *t = kl_coro_user(co);
    assert(t && t->loop == loop);
    if (t->queued) {
        /* Queued by its own yield: this wake is for a park still to come. */
        if (t->yielding) t->wake_pending = true;
        return;
    }
    if (t->parked) {
        t->parked = false;
        kl_loop_enqueue(loop, t);
    } else {
        t->wake_pending = true;
    }
}

void kl_loop_park(kl_loop *loop) {
    kl_coro *co = kl_coro_current();
    assert(co != NULL);
    kl_task *t = kl_coro_user(co);
    assert(t && t->loop == loop);
    (void)loop;
    if (t->wake_pending) {
        t->wake_pending = false;
        return;
    }
    t->parked = true;
    kl_coro_yield();
    t->parked = false;
}

void kl_loop_yield(kl_loop *loop) {
    kl_coro *co = kl_coro_current();
    assert(co != NULL);
    kl_task *t = kl_coro_user(co);
    assert(t && t->loop == loop && !t->queued);
    t->yielding = true;
    kl_loop_append(loop, &loop->yield_head, &loop->yield_tail, t);
    kl_coro_yield();
}

static void kl_loop_on_sleep_timer(uv_timer_t *h) {
    kl_task *t = h->data;
    t->timer_fired = true;
    kl_loop_wake(t->loop, t->co);
}

int kl_loop_sleep(kl_loop *loop, uint64_t ms) {
    kl_coro *co = kl_coro_current();
    assert(co != NULL);
    kl_task *t = kl_coro_user(co);
    if (!t->timer_init) {
        uv_timer_init(&loop->uv, &t->timer);
        t->timer_init = true;
    }
    t->timer.data = t;
    t->timer_fired = false;
    uv_timer_start(&t->timer, kl_loop_on_sleep_timer, ms, 0);
    kl_loop_park(loop);
    uv_timer_stop(&t->timer);
    return t->timer_fired ? 0 : 1;
}

int kl_loop_post(kl_loop *loop, void (*fn)(void *arg), void *arg) {
    kl_post *p = malloc(sizeof(*p));
    if (!p) return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&loop->post_mu);
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    pthread_mutex_unlock(&loop->post_mu);
    int rc = uv_async_send(&loop->async);
    return rc < 0 ? rc : 0;
}

static void kl_loop_on_async(uv_async_t *h) {
    kl_loop *loop = h->data;
    /* uv_async coalesces sends, so one callback must run every post queued so far. */
    pthread_mutex_lock(&loop->post_mu);
    kl_post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_mu);
    while (p) {
        kl_post *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
}

static void kl_loop_close_leftover(uv_handle_t *h, void *arg) {
    (void)arg;
    if (uv_is_closing(h)) return;
    KL_WARN("loop", "closing a handle left open (type %s)", uv_handle_type_name(h->type));
    uv_close(h, NULL);
}

void kl_loop_free(kl_loop *loop) {
    if (!loop) return;
    while (loop->all) {
        KL_WARN("loop", "freeing a coroutine that never finished");
        kl_loop_task_free(loop->all);
    }
    loop->run_head = loop->run_tail = loop->yield_head = loop->yield_tail = NULL;
    uv_close((uv_handle_t *)&loop->idle, NULL);
    uv_close((uv_handle_t *)&loop->async, NULL);
    /* Close callbacks of ours and of handles our users closed last run here. */
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop->uv) == UV_EBUSY) {
        uv_walk(&loop->uv, kl_loop_close_leftover, NULL);
        uv_run(&loop->uv, UV_RUN_DEFAULT);
        uv_loop_close(&loop->uv);
    }
    kl_post *p = loop->post_head;
    while (p) {
        kl_post *next = p->next;
        free(p);
        p = next;
    }
    pthread_mutex_destroy(&loop->post_mu);
    free(loop);
}
