/* The kernel: binds the Jupyter sockets, routes requests to per-client tenants, and runs until a
 * shutdown request or SIGTERM. */
#ifndef KL_KERNEL_KERNEL_H
#define KL_KERNEL_KERNEL_H

#include <jansson.h>
#include <stdbool.h>

#include "jupyter/connection.h"
#include "jupyter/message.h"
#include "jupyter/wire.h"
#include "kernel/history.h"
#include "kernel/magic.h"
#include "runtime/loop.h"
#include "runtime/pool.h"
#include "runtime/sem.h"
#include "runtime/strmap.h"
#include "runtime/uuid.h"
#include "runtime/zsock.h"

typedef struct kl_kernel_options {
    const char *connection_file;
    const char *history_file;   /* NULL: the default location; "" : no history on disk */
    const char *spark_remote;   /* sc:// URL or "local"; NULL: $SPARK_REMOTE, else local */
    int pool_threads;           /* 0: default */
    long display_limit;         /* rows shown per result; 0: KL_SQL_DEFAULT_DISPLAY_LIMIT */
    const char **magic_plugins; /* --magic-plugin paths, loaded at start (borrowed) */
    int n_magic_plugins;
    const char *plugin_dir; /* NULL: $KINDLING_PLUGIN_DIR, else none */
    bool allow_shell;       /* %sh / %%sh enabled */
    long shell_timeout;     /* seconds a %sh command may run; 0: the default */
    long max_connections;   /* client sessions served at once; 0: KL_DEFAULT_MAX_CONNECTIONS */
    long cull_idle;         /* seconds after which an idle connection is closed; 0: never */
    bool shared_session;    /* one Spark session for every connection (Toree's behaviour) */
    long max_spark_ops;     /* Spark operations running at once, kernel-wide; 0: the default */
    long max_result_bytes;  /* result bytes a connection buffers per statement; 0: the default */
} kl_kernel_options;

#define KL_DEFAULT_MAX_CONNECTIONS  4096
#define KL_DEFAULT_MAX_SPARK_OPS    64
#define KL_DEFAULT_MAX_RESULT_BYTES (256L << 20)

typedef struct kl_comm_manager kl_comm_manager;
typedef struct kl_tenant kl_tenant;

typedef struct kl_kernel {
    kl_kernel_options opts;
    kl_loop *loop;
    kl_pool *pool;
    kl_pool *history_pool; /* one thread, so history jobs run in submission order */
    void *zctx;
    kl_connection_info info;
    kl_signer signer;
    kl_zsock *shell, *control, *stdin_sock, *iopub;
    kl_zsock *zap; /* ZeroMQ's authentication handler: how the kernel learns of new connections */
    struct kl_heartbeat *heartbeat;
    char kernel_id[KL_UUID_STRLEN];
    char session[KL_UUID_STRLEN]; /* header.session of messages the kernel originates */
    kl_magic_registry *magics;
    char *history_path; /* NULL when history is off */
    /* Written and read only on the history thread (NULL when off or failed to open). */
    kl_history *history;
    unsigned long bad_messages;
    json_t *info_content; /* kernel_info_reply content, the same for every request */
    kl_strmap *tenants;   /* client session id (or session/subshell id) -> kl_tenant */
    char shared_spark_session[KL_UUID_STRLEN]; /* with --shared-session */
    uv_timer_t cull_timer;
    kl_sem spark_ops; /* --max-spark-ops: statements beyond it wait, shown as queued */
    kl_comm_manager *comms;
    struct kl_sql *sql;
    struct kl_input_wait *inputs; /* pending input_requests */
    uv_signal_t sigint, sigterm;
    bool shutting_down;
    bool restart_requested;
    int exit_code;
} kl_kernel;

/* Runs a kernel until it is shut down; returns the process exit code. */
int kl_kernel_main(const kl_kernel_options *opts);

/* Coroutine: publishes msg_type with content (stolen) on IOPub as a child of parent (may be NULL).
 * Parks while IOPub applies backpressure. */
int kl_kernel_publish(kl_kernel *k, const kl_msg *parent, const char *msg_type, json_t *content);
/* Same, with raw buffers (consumed; may be NULL). */
int kl_kernel_publish_buffers(kl_kernel *k, const kl_msg *parent, const char *msg_type,
                              json_t *content, kl_frames *buffers);
/* Coroutine: sends msg_type with content (stolen) on sock to parent's identities. */
int kl_kernel_reply(kl_kernel *k, kl_zsock *sock, const kl_msg *parent, const char *msg_type,
                    json_t *content);
/* Starts an orderly shutdown: running cells are interrupted and given a moment to reply, then
 * sockets close and the loop ends. */
void kl_kernel_begin_shutdown(kl_kernel *k, bool restart);
/* An interrupt_request: stops the running cell of the client session that sent it; when that
 * session runs nothing here (a notebook server interrupting on behalf of its front ends, with a
 * session of its own), every running cell, as a signal would. */
void kl_kernel_interrupt_session(kl_kernel *k, const char *session);
/* Marks every running cell interrupted and wakes those waiting interruptibly. */
void kl_kernel_interrupt_all(kl_kernel *k);
/* kernel_info_reply content (a new reference to one shared object: send it, never modify it). */
json_t *kl_kernel_info_content(const kl_kernel *k);
/* Coroutine: runs fn(arg) on the history thread when history is enabled; returns -1 otherwise. */
int kl_kernel_history_run(kl_kernel *k, void (*fn)(void *arg), void *arg);

/* Coroutine: sends an input_request to the client of parent over stdin and parks until its
 * input_reply (0, *value malloc'd: caller frees), an interrupt (-EINTR) or shutdown (-ECANCELED).
 */
int kl_kernel_input(kl_kernel *k, kl_tenant *t, const kl_msg *parent, const char *prompt,
                    bool password, char **value);

#endif
