/* A tenant is one client connection (one Jupyter client session id): its own request queue and
 * coroutine, execution count, history session and display options. Requests of one tenant run in
 * order; tenants run concurrently with each other. */
#ifndef KL_KERNEL_TENANT_H
#define KL_KERNEL_TENANT_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/kernel.h"
#include "runtime/chan.h"
#include "runtime/strmap.h"

struct kl_tenant {
    kl_kernel *k;
    char *session;  /* owned: the client's header.session */
    kl_chan *inbox; /* kl_msg * (owned by the channel until received) */
    kl_coro *coro;
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
    /* Requests taken out of the inbox when a cell failed with stop_on_error: they are handled
     * before the inbox, and those marked aborted are answered "aborted" instead of run. */
    struct kl_queued *front;
    size_t nfront, capfront;
};

/* The tenant for a client session, created (with its coroutine) on first use. NULL on ENOMEM. */
kl_tenant *kl_tenant_get(kl_kernel *k, const char *session);
/* Coroutine: queues msg (taken) for the tenant; parks while its inbox is full. */
int kl_tenant_deliver(kl_tenant *t, kl_msg *msg);
/* Closes every inbox: each tenant coroutine finishes what it runs, then frees itself. */
void kl_tenant_close_all(kl_kernel *k);
/* True while any tenant is handling a request. */
bool kl_tenant_any_busy(kl_kernel *k);
/* Coroutine, called when a cell fails with stop_on_error, before its reply goes out: every
 * execute_request the client had sent by then is marked to be answered "aborted" once the failing
 * request is finished. Requests sent after the client saw the error run normally. */
void kl_tenant_abort_queued(kl_tenant *t);

/* Frees a message taken from an inbox. */
void kl_msg_free(kl_msg *m);

#endif
