/* The model every renderer reads: a query result as decoded Arrow batches, with how many rows the
 * source produced and whether it had more than were kept. Spark Connect sends one IPC stream per
 * batch (each repeating the schema); kl_table_add takes them in order, keeps the batches that hold
 * the first keep_rows rows, frees the rest at once and only counts them, so a huge result costs
 * no more memory than the rows that will be shown.
 *
 * A table is filled by one thread; once filled, any number of threads may render it. */
#ifndef KL_RENDER_TABLE_H
#define KL_RENDER_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "render/buf.h"
#include "render/unicode.h"
#include "spark/arrow.h"

#define KL_RENDER_ERRLEN             256
#define KL_RENDER_DEFAULT_ROWS       20 /* Dataset.show() */
#define KL_RENDER_DEFAULT_TRUNCATE   20 /* Dataset.show() */
#define KL_RENDER_DEFAULT_CELL_BYTES (64 * 1024)

/* What the three renderers (text.h, html.h, json.h) are asked for. */
typedef struct kl_render_options {
    /* Data rows rendered at most (show's numRows); 0 renders the header only. */
    int64_t max_rows;
    /* show's truncate, for text/plain and text/html: a cell longer than this is cut to
     * truncate - 3 characters plus "..." (to truncate characters when it is below 4) and cells
     * are right-aligned; 0 keeps cells whole and left-aligns them. */
    int32_t truncate;
    /* Bytes of UTF-8 one cell may produce in any representation before it is cut and marked
     * with "...", whatever truncate says: a guard against multi-megabyte values. 0 = no cap. */
    size_t max_cell_bytes;
    /* text/plain and text/html also show each column's Spark type (see text.h and html.h). */
    bool show_types;
    /* How text/plain measures cells; KL_WIDTH_SPARK is Spark's own (see unicode.h). */
    kl_width_mode width;
    /* Session time zone for timestamps that have one (Spark's spark.sql.session.timeZone, see
     * tz.h for the accepted ids); NULL uses each column's Arrow time zone, which Spark sets to
     * the session zone. Timestamps without a zone (timestamp_ntz) are never converted. */
    const char *time_zone;
} kl_render_options;

/* Defaults: 20 rows, truncate 20, 64 KiB cells, no types, Spark widths, columns' own zones. */
void kl_render_options_init(kl_render_options *o);

typedef struct kl_table kl_table;

/* A table keeping the first keep_rows rows (a negative value keeps all); NULL on ENOMEM. */
kl_table *kl_table_new(int64_t keep_rows);
void kl_table_free(kl_table *t);

/* Appends a decoded stream. The table owns s from this call on, also when it fails; s must not
 * borrow input bytes that die before the table (decode with copy_input, or use
 * kl_table_add_ipc). Every stream after the first must have the same column types. Returns 0,
 * -EINVAL (schema differs) or -ENOMEM, with a message in err. */
int kl_table_add(kl_table *t, kl_arrow_stream *s, char err[KL_RENDER_ERRLEN]);
/* Decodes one IPC stream (copying what it needs) and appends it. Same returns as
 * kl_arrow_decode and kl_table_add. */
int kl_table_add_ipc(kl_table *t, const void *data, size_t len, char err[KL_RENDER_ERRLEN]);
/* Records that the source had rows beyond those added (a LIMIT n+1 probe answered, a stream cut
 * short): the table then counts as truncated even if all added rows were kept. */
void kl_table_set_more(kl_table *t);

/* NULL until a stream was added: a table without a schema renders as zero columns. */
const kl_arrow_schema *kl_table_schema(const kl_table *t);
int64_t kl_table_rows_seen(const kl_table *t); /* rows in every stream added */
int64_t kl_table_rows_kept(const kl_table *t);
/* True when rows exist beyond the first n kept ones: more were seen or the source had more. */
bool kl_table_has_more(const kl_table *t, int64_t n);
bool kl_table_more_flag(const kl_table *t); /* kl_table_set_more was called */

/* Kept rows batch by batch: chunk i is a batch whose first *rows rows are kept. */
size_t kl_table_chunks(const kl_table *t);
const kl_arrow_batch *kl_table_chunk(const kl_table *t, size_t i, int64_t *rows);

/* Appends the Spark SQL name of a column's type ("int", "decimal(10,2)", "array<string>",
 * "map<string,int>", "struct<a:int,b:string>", "timestamp_ntz", "interval day to second"), as
 * derived from its Arrow type (see docs spark-connect.md section 12) and the Spark schema when
 * one is attached ("interval year", "interval hour to minute", "variant"). */
void kl_table_type_name(kl_render_buf *b, const kl_arrow_field *f);

/* ---- Spark's schema ------------------------------------------------------------------------
 * Arrow loses part of Spark's types: the fields of an interval (INTERVAL YEAR and INTERVAL YEAR
 * TO MONTH are both Interval(YEAR_MONTH); every day-time interval is Duration(us)) and VARIANT,
 * which travels as struct<value: binary, metadata: binary>. The Spark schema of the result
 * (ExecutePlanResponse.schema) has them; attached to a table, it reaches the cells of every
 * renderer through the Arrow fields themselves (kl_table_field_hint), so renderers need no other
 * parameter. */

struct Spark__Connect__DataType;

typedef enum kl_spark_hint_kind {
    KL_SPARK_HINT_NONE,       /* nothing attached: the Arrow type decides */
    KL_SPARK_HINT_YEAR_MONTH, /* an Interval(YEAR_MONTH) field; start/end: 0 YEAR, 1 MONTH */
    KL_SPARK_HINT_DAY_TIME,   /* a Duration field; start/end: 0 DAY, 1 HOUR, 2 MINUTE, 3 SECOND */
    KL_SPARK_HINT_VARIANT,    /* a STRUCT field that holds VARIANT values */
    KL_SPARK_HINT_STRUCT,     /* a STRUCT field that is a struct, whatever its shape */
} kl_spark_hint_kind;

typedef struct kl_spark_hint {
    kl_spark_hint_kind kind;
    int start, end; /* interval fields, start <= end */
} kl_spark_hint;

/* Attaches schema, a STRUCT DataType with one field per column (the table copies what it needs;
 * schema may be freed afterwards). Call it once, before or after the streams are added. Where the
 * Spark type does not fit the Arrow field (the schema of another result) the field is left as
 * Arrow says. Returns 0, -EINVAL (schema is not a STRUCT) or -ENOMEM. */
int kl_table_apply_spark_schema(kl_table *t, const struct Spark__Connect__DataType *schema);

/* What an attached schema says about f, a field of a table's stream; KL_SPARK_HINT_NONE when
 * nothing is attached. Any thread, while the table lives. */
kl_spark_hint kl_table_field_hint(const kl_arrow_field *f);

/* f holds VARIANT values: the attached schema says so, or, with no schema attached, f has the
 * shape Spark gives VARIANT in Arrow (a struct of exactly two binaries, "value" and
 * "metadata"). */
bool kl_table_field_is_variant(const kl_arrow_field *f);

#endif
