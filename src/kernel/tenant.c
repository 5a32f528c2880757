#include "kernel/tenant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/comm.h"
#include "kernel/dispatch.h"
#include "kernel/execute.h"
#include "kernel/sql.h"
#include "runtime/freelist.h"
#include "runtime/log.h"

/* Deep enough that a burst of requests from a fast client is queued without parking the shell
 * reader, small enough that one flooding client cannot take unbounded memory. The ring starts at
 * QUEUE_MIN entries only when something arrives and is freed when it empties: most connections
 * are idle most of the time, and an idle one should cost no queue memory. */
#define QUEUE_MAX 4096
#define QUEUE_MIN 4

void kl_msg_free(kl_msg *m) {
    if (!m) return;
    kl_msg_clear(m);
    kl_freelist_free(m); /* from kl_freelist_alloc or malloc: both are malloc chunks */
}

/* The history session is owned by the username of the tenant's first request. */
typedef struct history_begin_job {
    kl_tenant *t;
    const char *user; /* borrowed from the queued request, which stays queued until it is done */
} history_begin_job;

static void history_begin(void *arg) {
    history_begin_job *j = arg;
    kl_tenant *t = j->t;
    kl_history *h = t->k->history;
    if (!h || kl_history_session_begin(h, j->user, t->session, &t->history_session) != 0)
        t->history_session = 0;
}

struct kl_queued {
    kl_msg *msg;
    bool abort; /* answer "aborted" instead of running it (stop_on_error) */
};

static struct kl_queued *queue_at(kl_tenant *t, size_t i) {
    return &t->queue[(t->qhead + i) % t->qcap];
}

static int queue_push(kl_tenant *t, kl_msg *m) {
    if (t->qlen == t->qcap) {
        size_t cap = t->qcap ? t->qcap * 2 : QUEUE_MIN;
        struct kl_queued *q = kl_freelist_alloc(cap * sizeof *q);
        if (!q) return -ENOMEM;
        for (size_t i = 0; i < t->qlen; i++) q[i] = *queue_at(t, i);
        kl_freelist_free(t->queue);
        t->queue = q;
        t->qcap = cap;
        t->qhead = 0;
    }
    *queue_at(t, t->qlen++) = (struct kl_queued){m, false};
    return 0;
}

/* Undoes the last queue_push. */
static void queue_unpush(kl_tenant *t) {
    t->qlen--;
}

static void wake_senders(kl_tenant *t, size_t n) {
    while (n-- > 0 && t->senders.head) {
        kl_waiter *w = t->senders.head;
        kl_waitq_remove(&t->senders, w);
        kl_loop_wake(t->k->loop, w->co);
    }
}

static kl_msg *next_request(kl_tenant *t, bool *abort) {
    *abort = false;
    if (!t->qlen) return NULL;
    struct kl_queued q = *queue_at(t, 0);
    t->qhead = (t->qhead + 1) % t->qcap;
    if (--t->qlen == 0) {
        kl_freelist_free(t->queue);
        t->queue = NULL;
        t->qcap = t->qhead = 0;
    }
    wake_senders(t, 1);
    *abort = q.abort;
    return q.msg;
}

static uint64_t now_ms(kl_kernel *k) {
    return uv_now(kl_loop_uv(k->loop));
}

/* Coroutine, as a connection ends: the server may drop its Spark session at once rather than
 * keep it until its own idle timeout. A subshell's session is its parent's, and a shared session
 * outlives every connection. */
static void release_spark_session(kl_tenant *t) {
    /* At shutdown kl_sql_shutdown has released every session already. */
    if (t->k->opts.shared_session || t->k->shutting_down) return;
    kl_sql_tenant_release(t);
}

static void tenant_free(kl_tenant *t) {
    kl_kernel *k = t->k;
    if (kl_strmap_get(k->tenants, t->key) == t) kl_strmap_del(k->tenants, t->key);
    if (!t->parent) kl_comm_close_session(k, t->session);
    release_spark_session(t);
    /* A sender parked on the full queue still holds t: let it see the tenant closed first. */
    while (t->nsenders > 0) {
        wake_senders(t, SIZE_MAX);
        kl_loop_park(k->loop);
    }
    kl_catalog_tenant_free(t);
    kl_sql_tenant_free(t);
    kl_freelist_free(t->queue);
    free(t->session);
    free(t->subshell_id);
    free(t->key);
    free(t);
}

/* The tenant's coroutine: runs while there are requests, then returns, so an idle connection
 * holds no stack; kl_tenant_deliver starts a new one for the next request. A closing tenant's
 * coroutine finishes what is queued and frees the tenant. */
static void tenant_main(void *arg) {
    kl_tenant *t = arg;
    kl_kernel *k = t->k;
    if (!t->history_begun && t->qlen) {
        t->history_begun = true;
        history_begin_job j = {t, kl_msg_username(queue_at(t, 0)->msg)};
        kl_kernel_history_run(k, history_begin, &j);
    }
    kl_msg *m;
    bool abort;
    while ((m = next_request(t, &abort))) {
        t->busy = true;
        t->interrupted = false;
        /* Shutting down: requests queued before it are answered, executions as aborted. */
        if (abort || (k->shutting_down && strcmp(kl_msg_type(m), "execute_request") == 0))
            kl_dispatch_abort(k, t, m);
        else
            kl_dispatch_shell(k, t, m);
        t->busy = false;
        t->interrupted = false;
        t->last_active_ms = now_ms(k);
        kl_msg_free(m);
    }
    if (!t->closing) {
        t->coro = NULL; /* nothing parks between the empty queue and here */
        return;
    }
    tenant_free(t);
}

static int start_coroutine(kl_tenant *t) {
    t->coro = kl_loop_spawn(t->k->loop, tenant_main, t, 0);
    return t->coro ? 0 : -ENOMEM;
}

static kl_tenant *tenant_new(kl_kernel *k, const char *session, kl_tenant *parent,
                             const char *subshell_id) {
    kl_tenant *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->k = k;
    t->parent = parent;
    t->session = strdup(session);
    t->subshell_id = subshell_id ? strdup(subshell_id) : NULL;
    if (subshell_id) {
        if (asprintf(&t->key, "%s/%s", session, subshell_id) < 0) t->key = NULL;
    } else {
        t->key = strdup(session);
    }
    t->truncation = parent ? parent->truncation : true;
    t->showtypes = parent ? parent->showtypes : false;
    t->showoutput = parent ? parent->showoutput : true;
    t->progress = parent ? parent->progress : true;
    t->last_active_ms = now_ms(k);
    if (parent)
        memcpy(t->spark_session_id, parent->spark_session_id, sizeof t->spark_session_id);
    else if (k->opts.shared_session)
        memcpy(t->spark_session_id, k->shared_spark_session, sizeof t->spark_session_id);
    else if (kl_uuid_v4(t->spark_session_id) != 0)
        goto fail;
    if (!t->session || !t->key || (subshell_id && !t->subshell_id) ||
        kl_strmap_put(k->tenants, t->key, t) != 0)
        goto fail;
    return t;
fail:
    free(t->session);
    free(t->subshell_id);
    free(t->key);
    free(t);
    return NULL;
}

kl_tenant *kl_tenant_get(kl_kernel *k, const char *session) {
    kl_tenant *t = kl_strmap_get(k->tenants, session);
    if (t) return t;
    if (k->opts.max_connections > 0 &&
        kl_tenant_connections(k) >= (size_t)k->opts.max_connections) {
        errno = EMFILE;
        return NULL;
    }
    t = tenant_new(k, session, NULL, NULL);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    KL_DEBUG("tenant", "new client session %s", session);
    return t;
}

kl_tenant *kl_tenant_new_subshell(kl_tenant *parent) {
    char id[KL_UUID_STRLEN];
    if (kl_uuid_v4(id) != 0) return NULL;
    kl_tenant *t = tenant_new(parent->k, parent->session, parent, id);
    if (t) KL_DEBUG("tenant", "new subshell %s of client session %s", id, parent->session);
    return t;
}

kl_tenant *kl_tenant_find_subshell(kl_kernel *k, const char *session, const char *subshell_id) {
    char *key;
    if (asprintf(&key, "%s/%s", session, subshell_id) < 0) return NULL;
    kl_tenant *t = kl_strmap_get(k->tenants, key);
    free(key);
    return t && !t->closing ? t : NULL;
}

int kl_tenant_deliver(kl_tenant *t, kl_msg *msg) {
    t->last_active_ms = now_ms(t->k);
    kl_waiter w = {.co = kl_coro_current()};
    while (!t->closing && t->qlen >= QUEUE_MAX) {
        if (!w.co) return -EAGAIN; /* the scheduler's stack cannot wait */
        kl_waitq_push(&t->senders, &w);
        t->nsenders++;
        kl_loop_park(t->k->loop);
        kl_waitq_remove(&t->senders, &w);
        /* The last sender out lets a closing tenant's coroutine free it. */
        if (--t->nsenders == 0 && t->closing && t->coro) kl_loop_wake(t->k->loop, t->coro);
    }
    if (t->closing) return -EPIPE;
    if (queue_push(t, msg) != 0) return -ENOMEM;
    if (!t->coro && start_coroutine(t) != 0) {
        queue_unpush(t);
        return -ENOMEM;
    }
    return 0;
}

typedef struct visit {
    kl_kernel *k;
    const char *session;
    uint64_t idle_ms, now;
    size_t count;
    kl_tenant **found;
    size_t nfound, capfound;
} visit;

static void collect(visit *v, kl_tenant *t) {
    if (v->nfound == v->capfound) {
        size_t cap = v->capfound ? v->capfound * 2 : 16;
        kl_tenant **p = realloc(v->found, cap * sizeof *p);
        if (!p) return;
        v->found = p;
        v->capfound = cap;
    }
    v->found[v->nfound++] = t;
}

static void count_connection(const char *key, void *value, void *arg) {
    (void)key;
    if (!((kl_tenant *)value)->parent) ((visit *)arg)->count++;
}

size_t kl_tenant_connections(kl_kernel *k) {
    visit v = {.k = k};
    kl_strmap_foreach(k->tenants, count_connection, &v);
    return v.count;
}

static void find_family(const char *key, void *value, void *arg) {
    (void)key;
    visit *v = arg;
    kl_tenant *t = value;
    if (strcmp(t->session, v->session) == 0) collect(v, t);
}

/* Marks t closing; an idle tenant gets a coroutine again, only to free it (ending a connection
 * may park: ReleaseSession). Does not change the tenant map. */
static void mark_closing(kl_tenant *t) {
    if (t->closing) return;
    t->closing = true;
    wake_senders(t, SIZE_MAX);
    if (!t->coro && start_coroutine(t) != 0)
        KL_WARN("tenant", "out of memory: client session %s stays allocated", t->session);
}

/* Unlinked at once, so a client that comes back right away gets a new tenant instead of the
 * closing one. */
static void close_one_tenant(kl_tenant *t) {
    mark_closing(t);
    if (kl_strmap_get(t->k->tenants, t->key) == t) kl_strmap_del(t->k->tenants, t->key);
}

void kl_tenant_close(kl_tenant *t) {
    if (t->parent) {
        close_one_tenant(t);
        return;
    }
    /* Collected first: closing never changes the map during its walk, but a tenant coroutine may
     * run and unlink itself as soon as this one parks. */
    visit v = {.k = t->k, .session = t->session};
    kl_strmap_foreach(t->k->tenants, find_family, &v);
    for (size_t i = 0; i < v.nfound; i++) close_one_tenant(v.found[i]);
    free(v.found);
}

static bool family_idle(kl_kernel *k, kl_tenant *t, uint64_t now, uint64_t idle_ms) {
    visit v = {.k = k, .session = t->session};
    kl_strmap_foreach(k->tenants, find_family, &v);
    bool idle = true;
    for (size_t i = 0; i < v.nfound && idle; i++) {
        kl_tenant *x = v.found[i];
        if (x->busy || x->qlen || now - x->last_active_ms < idle_ms) idle = false;
    }
    free(v.found);
    return idle;
}

static void find_idle(const char *key, void *value, void *arg) {
    (void)key;
    visit *v = arg;
    kl_tenant *t = value;
    if (!t->parent && family_idle(v->k, t, v->now, v->idle_ms)) collect(v, t);
}

size_t kl_tenant_cull(kl_kernel *k, uint64_t idle_ms) {
    visit v = {.k = k, .idle_ms = idle_ms, .now = now_ms(k)};
    kl_strmap_foreach(k->tenants, find_idle, &v);
    for (size_t i = 0; i < v.nfound; i++) {
        KL_INFO("tenant", "closing client session %s: idle for %llu s or more", v.found[i]->session,
                (unsigned long long)(idle_ms / 1000));
        kl_tenant_close(v.found[i]);
    }
    free(v.found);
    return v.nfound;
}

static void close_one(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    mark_closing(value);
}

void kl_tenant_close_all(kl_kernel *k) {
    kl_strmap_foreach(k->tenants, close_one, NULL);
}

static void any_busy(const char *key, void *value, void *arg) {
    (void)key;
    if (((kl_tenant *)value)->busy) *(bool *)arg = true;
}

bool kl_tenant_any_busy(kl_kernel *k) {
    bool busy = false;
    kl_strmap_foreach(k->tenants, any_busy, &busy);
    return busy;
}

void kl_tenant_abort_queued(kl_tenant *t) {
    /* Requests the client sent right behind the failing one may still sit in the socket: one
     * short turn of the loop lets the shell reader route them into the queue. */
    kl_loop_sleep(t->k->loop, 1);
    for (size_t i = 0; i < t->qlen; i++) {
        struct kl_queued *q = queue_at(t, i);
        if (strcmp(kl_msg_type(q->msg), "execute_request") == 0) q->abort = true;
    }
}
