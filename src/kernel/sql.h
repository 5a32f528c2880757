/* SQL cells on Spark Connect: which endpoint (--spark-remote, SPARK_REMOTE, or an embedded local
 * server, or the connection's own after %connect), a Spark session per tenant, running a cell's
 * statements one by one with their parameters bound as named arguments, a live progress display
 * while they run, and publishing their rows rendered as text, HTML and a data-resource table. */
#ifndef KL_KERNEL_SQL_H
#define KL_KERNEL_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "kernel/execute.h"
#include "runtime/strmap.h"
#include "spark/grpc.h"

#define KL_SQL_DEFAULT_DISPLAY_LIMIT 1000

typedef struct kl_sql kl_sql;

/* How results are shown: a table (text/plain like show(), text/html, data-resource JSON), JSON
 * records (application/json), CSV (text/csv), or HTML alone (text/html with the text/plain
 * table, no data grid) -- Toree's %%DataFrame --output. */
typedef enum {
    KL_SQL_OUT_TABLE = 0,
    KL_SQL_OUT_JSON,
    KL_SQL_OUT_CSV,
    KL_SQL_OUT_HTML
} kl_sql_output;

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

typedef struct kl_sql_run_opts {
    int64_t limit; /* <= 0: the kernel's display limit */
    kl_sql_output output;
    /* This cell's parameters (%%sql --param): name -> value text as written; they win over the
     * connection's (%set). Borrowed; NULL for none. */
    const kl_strmap *params;
} kl_sql_run_opts;
/* Coroutine: kl_sql_run with every option. Each statement's `:name` markers (and Toree's
 * `${name}`, rewritten to `:name` outside literals and comments) are bound from the cell's and
 * the connection's parameters as named arguments of the SQL command, typed by
 * kl_cellparam_parse_value; only the parameters a statement uses are sent. */
int kl_sql_run_with(kl_magic_ctx *c, const char *code, size_t len, const kl_sql_run_opts *o);

/* Parses the options of a SQL cell magic (%%sql, %%dataframe): --limit N (1-10000000),
 * --output table|html|json|csv (html means html_kind), --param name=value (repeatable; a value
 * may be quoted and hold blanks), each also written --option=value. Options not given keep o's
 * values; --param fills *params with a new map (free with kl_sql_params_free). 0, or -1 with a
 * UsageError quoting usage recorded in c. */
int kl_sql_cell_options(kl_magic_ctx *c, const char *args, const char *usage,
                        kl_sql_output html_kind, kl_sql_run_opts *o, kl_strmap **params);
/* Frees a parameter map: name -> malloc'd value text. */
void kl_sql_params_free(kl_strmap *params);
/* Sets name (a valid parameter name) to a copy of value in *params, creating the map on first
 * use. 0 or -1 when out of memory. */
int kl_sql_params_set(kl_strmap **params, const char *name, const char *value);

/* Coroutine, %connect: switches this connection's endpoint to url (an sc:// URL without a token;
 * with ask_token, the token is asked for over stdin as a password), checks it at once with
 * AnalyzePlan spark_version, and only then releases the old Spark session and reports
 * "Connected to sc://host:port (Spark x.y.z)". url "local" returns to the kernel's endpoint.
 * On failure the connection stays where it was. 0 or -1 (error recorded). */
int kl_sql_connect(kl_magic_ctx *c, const char *url, bool ask_token);
/* This connection's endpoint for messages, secrets redacted, e.g. "sc://h:15002/;token=<redacted>
 * (set by %connect)". malloc'd. */
char *kl_sql_endpoint_describe(kl_magic_ctx *c);

/* Coroutine: the connection's Spark session, waiting for the embedded server on first use; NULL
 * with the error recorded in c. */
struct kl_spark_client *kl_sql_client(kl_magic_ctx *c);
/* Records a failed Spark call as the cell's error: the Spark error class as its name, the
 * message, SQLSTATE and (with stmt) the failing fragment. Returns -1. */
int kl_sql_report(kl_magic_ctx *c, const kl_grpc_status *st, const char *stmt);

/* Frees the tenant's Spark client (the session itself is released by kl_sql_shutdown), its
 * parameters and its %connect endpoint. */
void kl_sql_tenant_free(kl_tenant *t);
/* Coroutine: ReleaseSession for the Spark session the tenant owns, so the server drops it now
 * rather than at its own idle timeout. Nothing for a subshell (the session is its parent's).
 * Best effort: a 3.5 server answers UNIMPLEMENTED. */
void kl_sql_tenant_release(kl_tenant *t);

#endif
