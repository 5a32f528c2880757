/* A tenant is one client connection (one Jupyter client session id): its own request queue,
 * execution count, history session and display options. Requests of one tenant run in order, in a
 * coroutine that exists only while the tenant has requests (an idle connection holds no stack);
 * tenants run concurrently with each other. A subshell (JEP 91) is a tenant of its own with
 * a parent: it keeps its own queue, execution count and history, and shares the parent's Spark
 * session. */
#ifndef KL_KERNEL_TENANT_H
#define KL_KERNEL_TENANT_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/kernel.h"
#include "runtime/chan.h"
#include "runtime/strmap.h"
#include "runtime/uuid.h"
#include "runtime/waitq.h"

struct kl_tenant {
    kl_kernel *k;
    char *session;     /* owned: the client's header.session */
    char *key;         /* owned: the key in k->tenants (the session, or session/subshell id) */
    kl_tenant *parent; /* the connection a subshell belongs to; NULL for a connection */
    char *subshell_id; /* owned; NULL for a connection */
    /* The Spark session this tenant's client uses: its own, the parent's for a subshell, or the
     * kernel's one shared session with --shared-session. */
    char spark_session_id[KL_UUID_STRLEN];
    uint64_t last_active_ms; /* loop time of the last request handled or queued */
    bool closing;            /* closed: finishing what it runs, then gone; takes no requests */
    /* Requests not yet handled, a ring that grows on demand and is freed whenever it empties;
     * each kl_msg is owned by the queue until taken. */
    struct kl_queued *queue;
    size_t qhead, qlen, qcap;
    kl_waitq senders; /* coroutines parked in kl_tenant_deliver while the queue is full */
    size_t nsenders;
    /* The coroutine handling this tenant's requests (or ending it); NULL while it is idle. */
    kl_coro *coro;
    bool history_begun;
    int execution_count;
    int64_t history_session; /* 0 until the history thread has begun one */
    /* Display options, per tenant so one client's %truncation never changes another's. */
    bool truncation, showtypes, showoutput;
    bool busy;               /* handling a request */
    bool interrupted;        /* an interrupt arrived while busy */
    bool interruptible_wait; /* parked where an interrupt may wake it */
    /* Set while the tenant waits on something an interrupt must cut short (a Spark stream):
     * called with interrupt_arg when an interrupt arrives. Any thread may be blocked elsewhere;
     * the hook runs on the loop thread. */
    void (*interrupt_hook)(void *arg);
    void *interrupt_arg;
    struct kl_spark_client *spark; /* this connection's Spark session, made on first use */
    /* SQL parameters (%set name=value): name -> malloc'd value text, bound as named arguments.
     * Owned by the tenant; the SQL module fills and frees it (kl_sql_tenant_free). */
    kl_strmap *params;
    bool progress; /* %progress: live ExecutionProgress display while a query runs */
    /* %connect: this connection's own endpoint, replacing the kernel's (NULL: the kernel's).
     * Owned and freed by the SQL module. */
    struct kl_tenant_remote *remote;
    /* Catalog names cached for completion and inspection; owned by the catalog module
     * (kl_catalog_tenant_free). */
    struct kl_catalog *catalog;
};

/* The tenant for a client session, created on first use. NULL on ENOMEM, or
 * with errno EMFILE when the kernel already serves --max-connections connections. */
kl_tenant *kl_tenant_get(kl_kernel *k, const char *session);
/* A new subshell of parent with a fresh id. NULL on ENOMEM. */
kl_tenant *kl_tenant_new_subshell(kl_tenant *parent);
/* The subshell with this id that belongs to session, or NULL. */
kl_tenant *kl_tenant_find_subshell(kl_kernel *k, const char *session, const char *subshell_id);
/* Ends a tenant: it takes no more requests, finishes those it has, then frees itself (with a
 * connection, its subshells end too). */
void kl_tenant_close(kl_tenant *t);
/* Connections (not counting subshells) the kernel serves now. */
size_t kl_tenant_connections(kl_kernel *k);
/* Closes the connections idle (nothing running or queued) for at least idle_ms. Returns how many.
 */
size_t kl_tenant_cull(kl_kernel *k, uint64_t idle_ms);
/* Coroutine: queues msg (taken on success) for the tenant, starting its coroutine if it is idle;
 * parks while the queue is full. 0, -EPIPE once the tenant is closing, or -ENOMEM. */
int kl_tenant_deliver(kl_tenant *t, kl_msg *msg);
/* Closes every tenant: each finishes what it has queued, then frees itself. */
void kl_tenant_close_all(kl_kernel *k);
/* True while any tenant is handling a request. */
bool kl_tenant_any_busy(kl_kernel *k);
/* Coroutine, called when a cell fails with stop_on_error, before its reply goes out: every
 * execute_request the client had sent by then is marked to be answered "aborted" once the failing
 * request is finished. Requests sent after the client saw the error run normally. */
void kl_tenant_abort_queued(kl_tenant *t);

/* Frees a message taken from a tenant's queue. */
void kl_msg_free(kl_msg *m);

#endif
