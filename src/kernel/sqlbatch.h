/* Many calls of one kindling.sql statement as one Spark query (docs/comm.md, "Batching").
 *
 * The statement's markers become columns of an inline table that holds every waiting call's
 * values, one row per call with its index, joined LATERAL to the statement:
 *
 *   SELECT __kl_p.__kl_i, __kl_q.* FROM VALUES (0, ?, ?), (1, ?, ?) AS __kl_p(__kl_i, __kl_v0,
 *   __kl_v1) JOIN LATERAL (<statement, each marker replaced by __kl_p.__kl_vN>) AS __kl_q
 *
 * The values stay typed literals bound as positional arguments (never SQL text); only the call
 * indices, our own integers, are written into the text. The rows that come back are split by
 * their first column into one answer per call. */
#ifndef KL_KERNEL_SQLBATCH_H
#define KL_KERNEL_SQLBATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/sqlparams.h"
#include "render/buf.h"
#include "spark/arrow.h"

typedef struct kl_sqlbatch {
    bool ok;         /* the statement may be batched */
    const char *why; /* when not, the rule it breaks (static text) */
    char *inner;     /* the statement with each marker replaced by a column of __kl_p */
    size_t ncols;    /* parameter columns: distinct named markers, or '?' markers */
} kl_sqlbatch;

/* Decides whether stmt may be batched and prepares its rewritten form. 0, or -ENOMEM. */
int kl_sqlbatch_prepare(const kl_sqlstmt *stmt, kl_sqlbatch *out);
void kl_sqlbatch_free(kl_sqlbatch *b);

/* True when every parameter of a and b is a literal of the same type: an inline table column has
 * one type, so only such calls share a query (a NULL is a type of its own, void). */
bool kl_sqlbatch_same_types(const kl_sqlstmt *stmt, kl_sqlbind *a, kl_sqlbind *b);

/* The SQL relation of one batched query over binds[0..n), which it borrows (they must outlive
 * it). NULL on ENOMEM. */
typedef struct kl_sqlbatch_rel kl_sqlbatch_rel;
kl_sqlbatch_rel *kl_sqlbatch_relation_new(const kl_sqlbatch *b, const kl_sqlstmt *stmt,
                                          kl_sqlbind *const *binds, size_t n);
Spark__Connect__Relation *kl_sqlbatch_relation(kl_sqlbatch_rel *r);
void kl_sqlbatch_relation_free(kl_sqlbatch_rel *r);

/* True when a batched result's schema answers each call as the statement alone would: the call
 * index first, and no column named after a parameter column (an unnamed expression of a marker,
 * "SELECT :x + 1", is named after its value when run alone, which a batch cannot reproduce). */
bool kl_sqlbatch_schema_ok(const kl_arrow_schema *s);

/* Splits a batched result rendered as JSON rows ([index, values...] each, as kl_rows_json gives
 * them; stolen) into out[0..n) (new arrays), keeping at most limit rows per call (limit < 0: all)
 * and setting truncated[i] when call i had more. 0, -EINVAL (an index out of range) or -ENOMEM. */
int kl_sqlbatch_split_json(json_t *rows, size_t n, int64_t limit, json_t **out, bool *truncated);

/* The same for a batched result rendered as one msgpack document (kl_rows_msgpack: columns, rows,
 * truncated): out[i] (initialised by the caller) receives call i's own document, without the index
 * column; nrows[i] and truncated[i] are set. 0, -EINVAL (not such a document) or -ENOMEM. */
int kl_sqlbatch_split_msgpack(const void *doc, size_t len, size_t n, int64_t limit,
                              kl_render_buf *out, int64_t *nrows, bool *truncated);

#endif
