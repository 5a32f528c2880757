/* Cursor-aware completion: what kind of name the cursor expects (a keyword, a table after FROM, a
 * column after `alias.`, a magic after %, one of a magic's options...), and the matches, with
 * catalog names coming from a source (kernel/catalog.c backs it with the connection's Spark
 * session; unit tests give fixed lists). */
#ifndef KL_KERNEL_COMPLETE_H
#define KL_KERNEL_COMPLETE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kernel/magic.h"

/* ---- what the cursor expects ---------------------------------------------------------------- */

typedef enum {
    KL_NAMES_DATABASES,
    KL_NAMES_TABLES,    /* tables and views of db (NULL: the current database) */
    KL_NAMES_COLUMNS,   /* columns of table in db (NULL: the current database) */
    KL_NAMES_FUNCTIONS, /* functions callable by a bare name */
} kl_names_kind;

typedef struct kl_names_query {
    kl_names_kind kind;
    char *db;    /* owned; NULL when not given */
    char *table; /* owned; KL_NAMES_COLUMNS only */
} kl_names_query;

#define KL_COMPLETE_MAX_QUERIES 8

typedef struct kl_complete_ctx {
    size_t start, end;               /* bytes a match replaces */
    size_t prefix_start, prefix_len; /* bytes of the name typed so far (no backtick, no %) */
    bool quoted;                     /* the name opened with a backtick */
    bool keywords;                   /* SQL keywords */
    int magic_kind;                  /* KL_MAGIC_LINE or KL_MAGIC_CELL: magic names; 0: none */
    bool magic_bare;                 /* magic names without % (the argument of %help) */
    const char *const *values;       /* NULL-terminated fixed words (options, modes), or NULL */
    kl_names_query queries[KL_COMPLETE_MAX_QUERIES];
    size_t nqueries;
} kl_complete_ctx;

/* Works out what the cursor (a byte offset into code) expects: inside a magic's line, its name,
 * options or arguments; in SQL (a plain cell, the body of %%sql, the query of %explain), the
 * statement around the cursor decides -- keywords at its start; tables, views and databases
 * after FROM, JOIN, INTO, TABLE, UPDATE, DESCRIBE; databases after USE or SHOW TABLES IN;
 * functions after FUNCTION; after `q.` the columns of the table or alias q (or the tables of
 * database q); elsewhere keywords, functions and the columns of the tables its FROM clauses
 * name. Nothing inside strings and comments. magics (may be NULL) tells which magics exist.
 * Returns 0, or -1 when out of memory; clear ctx with kl_complete_ctx_clear either way. */
int kl_complete_analyze(const char *code, size_t cursor, const kl_magic_registry *magics,
                        kl_complete_ctx *ctx);
void kl_complete_ctx_clear(kl_complete_ctx *ctx);

/* ---- catalog names ----------------------------------------------------------------------------
 */

typedef struct kl_complete_sink kl_complete_sink;
/* Offers a name of the given type ("database", "table", "view", "column", "function"); it becomes
 * a match when it starts with the typed prefix (case-insensitively). */
void kl_complete_offer(kl_complete_sink *s, const char *name, const char *type);

typedef struct kl_complete_source {
    void *arg;
    /* Called twice per query: first with sink NULL (start fetching, do not wait), then with a
     * sink to offer the names (waiting, within the source's own deadline, for a fetch under
     * way). Runs in the requesting coroutine. */
    void (*names)(void *arg, const kl_names_query *q, kl_complete_sink *sink);
} kl_complete_source;

/* Builds a complete_reply content object (status, matches, cursor_start, cursor_end, metadata
 * with _jupyter_types_experimental {start, end, text, type} per match) for code with the cursor
 * at cursor_pos, counted in Unicode code points as the protocol says. Keywords and functions
 * take the case the user typed (upper unless the prefix is all lower case); catalog names keep
 * theirs, in backticks when they need quoting. Matches are ordered columns, tables and views,
 * databases, functions, keywords, each alphabetically. src may be NULL (keywords, magics and
 * options only). New reference; NULL when out of memory. */
json_t *kl_complete_with(const char *code, size_t cursor_pos, const kl_magic_registry *magics,
                         const kl_complete_source *src);
json_t *kl_complete(const char *code, size_t cursor_pos, const kl_magic_registry *magics);

/* The token around a cursor (letters, digits, _, and a leading % or %%), as byte offsets. */
void kl_complete_token(const char *code, size_t cursor_byte, size_t *start, size_t *end);

/* Byte offset of code point cp in a UTF-8 string (clamped to the length), and the reverse. */
size_t kl_utf8_cp_to_byte(const char *s, size_t cp);
size_t kl_utf8_byte_to_cp(const char *s, size_t byte);

#endif
