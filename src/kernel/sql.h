/* SQL cells on Spark Connect: which endpoint (--spark-remote, SPARK_REMOTE, or an embedded local
 * server), a Spark session per tenant, running a cell's statements one by one, and publishing
 * their rows rendered as text, HTML and a data-resource table. */
#ifndef KL_KERNEL_SQL_H
#define KL_KERNEL_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "kernel/execute.h"
#include "spark/grpc.h"

#define KL_SQL_DEFAULT_DISPLAY_LIMIT 1000

typedef struct kl_sql kl_sql;

/* How results are shown: a table (text/plain like show(), text/html, data-resource JSON), JSON
 * records (application/json), or CSV (text/csv) -- Toree's %%DataFrame --output. */
typedef enum { KL_SQL_OUT_TABLE = 0, KL_SQL_OUT_JSON, KL_SQL_OUT_CSV } kl_sql_output;

/* Picks the endpoint and, for the embedded default, starts the local server in the background.
 * Never fails the kernel: a bad URL or a missing Spark becomes the error every SQL cell reports,
 * so magics keep working. Loop thread, before or while the loop runs. */
kl_sql *kl_sql_new(kl_kernel *k, const char *remote_option, int64_t display_limit);
/* Coroutine, at shutdown: releases the tenants' Spark sessions and stops the local server. */
void kl_sql_shutdown(kl_sql *s);
/* After the loop has ended. */
void kl_sql_free(kl_sql *s);

/* Coroutine: runs the SQL statements of code on the tenant's Spark session, publishing each
 * result (the last as execute_result, earlier ones as display_data). limit <= 0 uses the kernel's
 * display limit. Returns 0, or -1 with the error recorded in c. */
int kl_sql_run(kl_magic_ctx *c, const char *code, size_t len, int64_t limit, kl_sql_output out);

/* Coroutine: the connection's Spark session, waiting for the embedded server on first use; NULL
 * with the error recorded in c. */
struct kl_spark_client *kl_sql_client(kl_magic_ctx *c);
/* Records a failed Spark call as the cell's error: the Spark error class as its name, the
 * message, SQLSTATE and (with stmt) the failing fragment. Returns -1. */
int kl_sql_report(kl_magic_ctx *c, const kl_grpc_status *st, const char *stmt);

/* Frees the tenant's Spark client (the session itself is released by kl_sql_shutdown). */
void kl_sql_tenant_free(kl_tenant *t);

#endif
