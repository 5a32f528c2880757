/* The catalog as completion and inspection see it: per connection, a cache of what its Spark
 * session lists (databases, tables and views, columns, functions) and describes (DESCRIBE TABLE /
 * FUNCTION EXTENDED), filled by Spark calls that run in coroutines of their own.
 *
 * A request that needs a name waits for it only until its own deadline; a fetch still under way
 * then goes on in the background and fills the cache for the next request. Entries expire after
 * KL_CATALOG_TTL_MS (other connections may change the catalog) and are dropped at once when this
 * connection runs a statement that can change names (kl_catalog_statement_done). Loop thread
 * only; the functions that wait run in the tenant's coroutine. */
#ifndef KL_KERNEL_CATALOG_H
#define KL_KERNEL_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/complete.h"
#include "kernel/execute.h"

/* How long a complete_request waits for catalog names, an inspect_request for a description. */
#define KL_CATALOG_COMPLETE_WAIT_MS 500
#define KL_CATALOG_INSPECT_WAIT_MS  3000
/* The deadline of one background Spark call: generous, since nobody waits on it. */
#define KL_CATALOG_FETCH_TIMEOUT_MS 20000
/* How long a listing is trusted, and how long a failure is remembered before trying again. */
#define KL_CATALOG_TTL_MS        60000
#define KL_CATALOG_FAILED_TTL_MS 5000

/* Rows of a SHOW/DESCRIBE/catalog listing as text: cells[row * ncols + col], NULL for SQL NULL.
 * Reference-counted, so a request may keep rows that a refresh replaces meanwhile. */
typedef struct kl_catalog_rows {
    int refs;
    size_t ncols, nrows;
    char **names; /* column names */
    char **cells;
} kl_catalog_rows;

const char *kl_catalog_cell(const kl_catalog_rows *r, size_t row, size_t col);
/* Index of the column called name (case-insensitive), or -1. */
int kl_catalog_column(const kl_catalog_rows *r, const char *name);
void kl_catalog_rows_unref(kl_catalog_rows *r);

typedef enum {
    KL_CATALOG_DATABASES,     /* SHOW DATABASES */
    KL_CATALOG_TABLES,        /* Catalog.listTables(db) */
    KL_CATALOG_COLUMNS,       /* Catalog.listColumns(db.name) */
    KL_CATALOG_FUNCTIONS,     /* SHOW FUNCTIONS */
    KL_CATALOG_DESCRIBE,      /* DESCRIBE TABLE EXTENDED db.name */
    KL_CATALOG_DESCRIBE_FUNC, /* DESCRIBE FUNCTION EXTENDED name */
} kl_catalog_kind;

/* Coroutine (the tenant's): the rows of (kind, db, name), from the cache or from a fetch, waiting
 * for one under way until deadline (milliseconds on the uv_hrtime clock, see kl_catalog_now).
 * Returns a reference (kl_catalog_rows_unref), or NULL when nothing is known by then; *failed
 * (may be NULL) is set when the last fetch failed (no such table...). parent is the request
 * being answered: a first Spark session is made for its user when the connection has none yet
 * and making one cannot wait (never for an embedded server still starting). */
kl_catalog_rows *kl_catalog_get(kl_tenant *t, const kl_msg *parent, kl_catalog_kind kind,
                                const char *db, const char *name, uint64_t deadline, bool *failed);
uint64_t kl_catalog_now(void);

/* A completion source over kl_catalog_get, waiting until deadline. The struct holds what the
 * source needs; keep it alive while the source is used. */
typedef struct kl_catalog_source {
    kl_complete_source source;
    kl_tenant *t;
    const kl_msg *parent;
    uint64_t deadline;
} kl_catalog_source;
void kl_catalog_source_init(kl_catalog_source *s, kl_tenant *t, const kl_msg *parent,
                            uint64_t deadline);

/* Coroutine (the tenant's): the complete_reply content for msg, with catalog names waited for at
 * most KL_CATALOG_COMPLETE_WAIT_MS. New reference. */
json_t *kl_catalog_complete(kl_kernel *k, kl_tenant *t, const kl_msg *msg);

/* Drops every cached name of the connection (fetches under way are discarded when they end). */
void kl_catalog_invalidate(kl_tenant *t);
/* True for statements that may create, drop, rename or re-point names: CREATE, DROP, ALTER, USE,
 * CACHE TABLE, MSCK, REFRESH, ADD JAR, SET CATALOG/NAMESPACE... */
bool kl_catalog_is_ddl(const char *stmt);
/* Called by the SQL layer after each statement a connection ran (whatever its outcome):
 * invalidates the connection's cache when the statement may have changed names. */
void kl_catalog_statement_done(kl_tenant *t, const char *stmt);

/* Coroutine: runs one SQL command (SHOW, DESCRIBE, EXPLAIN...) on the cell's Spark session and
 * collects its rows as text. 0 with *out (kl_catalog_rows_unref), or -1 with the error recorded in
 * c (a Spark error through kl_sql_report, naming stmt). Interruptible. */
int kl_catalog_query(kl_magic_ctx *c, const char *stmt, kl_catalog_rows **out);

#endif
