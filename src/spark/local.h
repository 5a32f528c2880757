/* The embedded local Spark Connect server: when no remote is configured (or "local"), the kernel
 * runs `spark-submit --class org.apache.spark.sql.connect.service.SparkConnectServer` itself,
 * bound to 127.0.0.1 on a free port, and stops it again.
 *
 * Where things come from:
 *   Spark: $SPARK_HOME (must hold bin/spark-submit; a bad SPARK_HOME is an error, never skipped),
 *          else the pyspark package in $VIRTUAL_ENV (lib/python3.<minor>/site-packages), else the
 * one `python3` on PATH imports. It must bundle the server (jars/spark-connect_*.jar: 4.0+). Java:
 * $JAVA_HOME/bin/java, else `java` on PATH; the server gets the matching JAVA_HOME. Everything the
 * server writes (log, warehouse, Derby home, spark.local.dir, java.io.tmpdir, its working
 * directory) lives in one private directory, $TMPDIR/kindling-local-XXXXXX (mode 0700), removed
 * when the server is stopped. It also holds server.pid (the server's process id, which is also its
 * process-group id), kernel.pid (the kernel that started it) and server.port.
 *
 * Stopping: kl_spark_local_stop (SIGTERM to the process group, SIGKILL after a grace period).
 * A kernel that exits through exit() or a return from main stops its servers in an atexit handler;
 * a fatal-signal handler can call kl_spark_local_kill_all. A kernel killed with SIGKILL cannot stop
 * anything: the server then keeps running, detached. To find such orphans:
 *   for d in ${TMPDIR:-/tmp}/kindling-local-*; do
 *     kill -0 "$(cat $d/kernel.pid)" 2>/dev/null || { kill -TERM -- -"$(cat $d/server.pid)"; rm -rf
 * "$d"; } done
 *
 * Threads: every function is for the loop thread; blocking work (file system, python3, log
 * reading, directory removal) runs on the pool. Functions that say "from a coroutine" park the
 * calling coroutine; any number of coroutines may wait at once. */
#ifndef KL_SPARK_LOCAL_H
#define KL_SPARK_LOCAL_H

#include <stdbool.h>

#include "runtime/loop.h"
#include "runtime/pool.h"

#define KL_SPARK_LOCAL_DEFAULT_DRIVER_MEMORY "1g"
#define KL_SPARK_LOCAL_DEFAULT_START_MS      180000u
#define KL_SPARK_LOCAL_DEFAULT_GRACE_MS      10000u
#define KL_SPARK_LOCAL_PROBE_MS              250u /* between TCP connect attempts */

typedef struct kl_spark_local kl_spark_local;

typedef enum {
    KL_SPARK_LOCAL_FINDING,  /* looking for Spark and Java */
    KL_SPARK_LOCAL_STARTING, /* spawned, waiting for the port to accept connections */
    KL_SPARK_LOCAL_READY,
    KL_SPARK_LOCAL_FAILED, /* see kl_spark_local_error; still needs kl_spark_local_stop */
    KL_SPARK_LOCAL_STOPPING,
    KL_SPARK_LOCAL_STOPPED,
} kl_spark_local_state;

/* Every field may be left zero/NULL for its default. Strings are copied by kl_spark_local_start. */
typedef struct kl_spark_local_opts {
    const char *master;        /* default KL_SC_DEFAULT_LOCAL_MASTER, "local[*]" */
    const char *driver_memory; /* default KL_SPARK_LOCAL_DEFAULT_DRIVER_MEMORY */
    int port;                  /* default: a free loopback port */
    unsigned start_timeout_ms; /* default KL_SPARK_LOCAL_DEFAULT_START_MS */
    unsigned stop_grace_ms;    /* SIGTERM -> SIGKILL; default KL_SPARK_LOCAL_DEFAULT_GRACE_MS */
    const char *tmp_dir;       /* parent of the private directory; default $TMPDIR, else /tmp */
    const char *const *conf;   /* NULL-terminated extra "key=value" Spark settings, or NULL */
    /* Called on the loop thread after every state change (e.g. to refresh a progress line). */
    void (*on_change)(kl_spark_local *l, void *user);
    void *user;
} kl_spark_local_opts;

/* Starts finding, spawning and probing in the background and returns at once. Returns 0 with a
 * new server in *out (the caller owns it: kl_spark_local_stop, then kl_spark_local_free), or
 * -errno when nothing could be started. Problems found later (no Spark, no Java, a crash at
 * start-up, a timeout) move the server to KL_SPARK_LOCAL_FAILED. */
int kl_spark_local_start(kl_loop *loop, kl_pool *pool, const kl_spark_local_opts *opts,
                         kl_spark_local **out);

/* From a coroutine: parks until the server is ready (returns 0) or failed or stopped (returns -1;
 * kl_spark_local_error says why). Waits through a restart. */
int kl_spark_local_wait(kl_spark_local *l);

/* Asks the server to stop and returns at once (fit for a signal watcher or a shutdown path that
 * is not a coroutine). Idempotent. Cancels a start in progress. */
void kl_spark_local_request_stop(kl_spark_local *l);
/* From a coroutine: stops the server (request_stop) and parks until the process group is gone,
 * the process reaped and the private directory removed. Needed after a failed start too. */
void kl_spark_local_stop(kl_spark_local *l);
/* Stops the server if it runs, then starts it again on the same port; returns at once
 * (kl_spark_local_wait waits for the new server). Returns 0 or -errno. */
int kl_spark_local_restart(kl_spark_local *l);

/* Frees a stopped server (or one whose start failed before anything was spawned). Freeing a live
 * one kills its process group with SIGKILL and leaves its directory behind. */
void kl_spark_local_free(kl_spark_local *l);

/* Synchronous, for exit paths after the loop has stopped: stops every server this process started
 * (SIGTERM, grace period, SIGKILL), reaps them and removes their directories. Registered with
 * atexit on the first start. */
void kl_spark_local_stop_all_now(void);
/* Async-signal-safe: SIGKILL to every server's process group; nothing is reaped or removed. */
void kl_spark_local_kill_all(void);

/* Accessors; returned strings are owned by l and valid until its next state change. */
kl_spark_local_state kl_spark_local_state_of(const kl_spark_local *l);
const char *kl_spark_local_state_name(kl_spark_local_state s);
/* One line for the user, e.g. "starting local Spark Connect server (Spark 4.0.1 from /p) …". */
const char *kl_spark_local_status(const kl_spark_local *l);
/* Why the last start failed (kept through the stop that follows), or why kl_spark_local_wait
 * returned -1; NULL while starting or ready. */
const char *kl_spark_local_error(const kl_spark_local *l);
const char *kl_spark_local_url(const kl_spark_local *l); /* "sc://127.0.0.1:<port>" or NULL */
int kl_spark_local_port(const kl_spark_local *l);        /* 0 before one is chosen */
int kl_spark_local_pid(const kl_spark_local *l);         /* = process group; 0 if none */
const char *kl_spark_local_dir(const kl_spark_local *l); /* private directory or NULL */
const char *kl_spark_local_spark_home(const kl_spark_local *l);
const char *kl_spark_local_spark_version(const kl_spark_local *l);

#endif
