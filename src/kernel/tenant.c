#include "kernel/tenant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/dispatch.h"
#include "kernel/sql.h"
#include "spark/client.h"
#include "runtime/log.h"

/* Deep enough that a burst of requests from a fast client is queued without parking the shell
 * reader, small enough that one flooding client cannot take unbounded memory. */
#define INBOX_CAPACITY 4096

void kl_msg_free(kl_msg *m) {
    if (!m) return;
    kl_msg_clear(m);
    free(m);
}

static void history_begin(void *arg) {
    kl_tenant *t = arg;
    kl_history *h = t->k->history;
    if (!h || kl_history_session_begin(h, &t->history_session) != 0) t->history_session = 0;
}

struct kl_queued {
    kl_msg *msg;
    bool abort;
};

static kl_msg *next_request(kl_tenant *t, bool *abort) {
    *abort = false;
    if (t->nfront) {
        struct kl_queued q = t->front[0];
        memmove(t->front, t->front + 1, --t->nfront * sizeof *t->front);
        *abort = q.abort;
        return q.msg;
    }
    void *item;
    return kl_chan_recv(t->inbox, &item) == 0 ? item : NULL;
}

static void tenant_main(void *arg) {
    kl_tenant *t = arg;
    kl_kernel *k = t->k;
    kl_kernel_history_run(k, history_begin, t);
    kl_msg *m;
    bool abort;
    while ((m = next_request(t, &abort))) {
        t->busy = true;
        t->interrupted = false;
        if (abort)
            kl_dispatch_abort(k, t, m);
        else
            kl_dispatch_shell(k, t, m);
        t->busy = false;
        t->interrupted = false;
        kl_msg_free(m);
    }
    kl_strmap_del(k->tenants, t->session);
    kl_catalog_tenant_free(t);
    kl_sql_tenant_free(t);
    kl_chan_free(t->inbox);
    free(t->front);
    free(t->session);
    free(t);
}

kl_tenant *kl_tenant_get(kl_kernel *k, const char *session) {
    kl_tenant *t = kl_strmap_get(k->tenants, session);
    if (t) return t;
    t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->k = k;
    t->session = strdup(session);
    t->inbox = kl_chan_new(k->loop, INBOX_CAPACITY);
    t->truncation = true;
    t->showoutput = true;
    if (!t->session || !t->inbox || kl_strmap_put(k->tenants, session, t) != 0) goto fail;
    t->coro = kl_loop_spawn(k->loop, tenant_main, t, 0);
    if (!t->coro) {
        kl_strmap_del(k->tenants, session);
        goto fail;
    }
    KL_DEBUG("tenant", "new client session %s", session);
    return t;
fail:
    if (t->inbox) kl_chan_free(t->inbox);
    free(t->session);
    free(t);
    return NULL;
}

int kl_tenant_deliver(kl_tenant *t, kl_msg *msg) {
    return kl_chan_send(t->inbox, msg);
}

static void close_one(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    kl_chan_close(((kl_tenant *)value)->inbox);
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

static int push_front(kl_tenant *t, kl_msg *m, bool abort) {
    if (t->nfront == t->capfront) {
        size_t cap = t->capfront ? t->capfront * 2 : 8;
        struct kl_queued *v = realloc(t->front, cap * sizeof *v);
        if (!v) return -ENOMEM;
        t->front = v;
        t->capfront = cap;
    }
    t->front[t->nfront++] = (struct kl_queued){m, abort};
    return 0;
}

void kl_tenant_abort_queued(kl_tenant *t) {
    /* Requests the client sent right behind the failing one may still sit in the socket: one
     * short turn of the loop lets the shell reader route them into the inbox. */
    kl_loop_sleep(t->k->loop, 1);
    for (size_t i = 0; i < t->nfront; i++)
        if (strcmp(kl_msg_type(t->front[i].msg), "execute_request") == 0) t->front[i].abort = true;
    void *item;
    while (kl_chan_try_recv(t->inbox, &item) == 0) {
        kl_msg *m = item;
        if (push_front(t, m, strcmp(kl_msg_type(m), "execute_request") == 0) != 0) {
            /* Out of memory: answering it as aborted now keeps the client from waiting forever. */
            kl_dispatch_abort(t->k, t, m);
            kl_msg_free(m);
        }
    }
}
