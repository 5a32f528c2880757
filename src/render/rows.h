/* Query results as typed rows for programs rather than people (the kindling.sql comm): a list of
 * columns {name, type} and rows as arrays of values, either as jansson values or as one msgpack
 * document. Values keep their type as far as the format allows; docs/comm.md lists every mapping:
 *
 *   Spark type          JSON                              msgpack
 *   boolean             true / false                      bool
 *   tinyint..bigint     number (exact, any magnitude)     int (smallest encoding)
 *   float, double       number; "NaN", "Infinity",        float 32 / float 64 (NaN, inf native)
 *                       "-Infinity" as strings
 *   decimal(p,s)        string, plain notation            str
 *   string              string (ill-formed UTF-8 repaired with U+FFFD, both formats)
 *   binary              string, base64                    bin
 *   date                "yyyy-MM-dd"                      str "yyyy-MM-dd"
 *   timestamp           ISO 8601 with the UTC offset      ext -1 (the msgpack timestamp
 *                       in the session zone                extension: the instant)
 *   timestamp_ntz       ISO 8601 without offset           str ISO 8601 without offset
 *   intervals, time     Spark's text ("INTERVAL '1-2' YEAR TO MONTH")
 *   array               array                             array
 *   struct              object {field: value}             map {field: value}
 *   map                 object keyed by the key's text    map with typed keys
 *                       when keys are strings, else an
 *                       array of [key, value] pairs
 *   NULL at any level   null                              nil
 *
 * Not thread-safe per call, but calls on one table may run on several threads at once. */
#ifndef KL_RENDER_ROWS_H
#define KL_RENDER_ROWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "render/buf.h"
#include "render/table.h"

typedef struct kl_rows_options {
    int64_t max_rows;      /* rows written at most; negative: every kept row */
    const char *time_zone; /* as kl_render_options.time_zone; NULL: each column's own */
} kl_rows_options;

/* [{"name": ..., "type": Spark SQL type name}, ...] of t's columns (empty when t has no schema).
 * New reference, or NULL on ENOMEM. */
json_t *kl_rows_columns(const kl_table *t);

/* The rows as a JSON array of arrays. 0 with *out (new reference), or -EINVAL (a time zone could
 * not be resolved) or -ENOMEM with a message in err. */
int kl_rows_json(const kl_table *t, const kl_rows_options *o, json_t **out,
                 char err[KL_RENDER_ERRLEN]);

/* Appends to out one msgpack map {"columns": [{"name", "type"}...], "rows": [[...]...],
 * "truncated": truncated}. Same returns as kl_rows_json. */
int kl_rows_msgpack(const kl_table *t, const kl_rows_options *o, bool truncated, kl_render_buf *out,
                    char err[KL_RENDER_ERRLEN]);

/* Appends the standard base64 (RFC 4648, padded) of n bytes. */
void kl_rows_base64(kl_render_buf *b, const uint8_t *p, size_t n);

#endif
