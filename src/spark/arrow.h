/* Arrow IPC stream decoder. Spark Connect sends every ArrowBatch.data as one complete IPC stream
 * (Schema message, RecordBatch messages, end-of-stream marker); kl_arrow_decode turns such a
 * stream into a schema and a list of record batches of columnar arrays, which src/render/ reads
 * through the accessors below.
 *
 * Everything is validated while decoding (flatbuffer offsets, buffer bounds, offsets, bitmaps,
 * child lengths), so the accessors never read outside a buffer, whatever the input was.
 * Uncompressed buffers are zero-copy views into the input; decompressed ones belong to the stream.
 * All multi-byte values are little-endian and may sit at any alignment: read them only through
 * the accessors. A decoded stream is immutable and may be read from several threads at once. */
#ifndef KL_SPARK_ARROW_H
#define KL_SPARK_ARROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KL_ARROW_ERRLEN    256
#define KL_ARROW_MAX_DEPTH 64 /* nesting levels a schema may have (a top-level column is 1) */

typedef enum kl_arrow_type {
    KL_ARROW_NULL,
    KL_ARROW_BOOL,
    KL_ARROW_INT,   /* bit_width 8/16/32/64, is_signed */
    KL_ARROW_FLOAT, /* bit_width 16/32/64 */
    KL_ARROW_DECIMAL,
    KL_ARROW_UTF8, /* bytes are not checked for valid UTF-8: Spark strings need not be */
    KL_ARROW_LARGE_UTF8,
    KL_ARROW_BINARY,
    KL_ARROW_LARGE_BINARY,
    KL_ARROW_FIXED_SIZE_BINARY, /* fixed_size bytes per value */
    KL_ARROW_DATE,              /* date_unit: days (32-bit) or milliseconds (64-bit) since 1970 */
    KL_ARROW_TIME,              /* time_unit since midnight; 32-bit for s/ms, 64-bit for us/ns */
    KL_ARROW_TIMESTAMP,         /* time_unit since 1970-01-01 UTC; timezone or NULL (naive) */
    KL_ARROW_DURATION,          /* time_unit */
    KL_ARROW_INTERVAL,          /* interval_unit */
    KL_ARROW_LIST,              /* one child; 32-bit offsets */
    KL_ARROW_LARGE_LIST,        /* one child; 64-bit offsets */
    KL_ARROW_FIXED_SIZE_LIST,   /* one child; fixed_size child rows per row */
    KL_ARROW_STRUCT,            /* any number of children */
    KL_ARROW_MAP, /* one STRUCT child ("entries") whose children are key and value; 32-bit offsets
                   */
} kl_arrow_type;

typedef enum kl_arrow_time_unit {
    KL_ARROW_SECOND,
    KL_ARROW_MILLISECOND,
    KL_ARROW_MICROSECOND,
    KL_ARROW_NANOSECOND,
} kl_arrow_time_unit;

typedef enum kl_arrow_date_unit { KL_ARROW_DATE_DAY, KL_ARROW_DATE_MILLISECOND } kl_arrow_date_unit;

typedef enum kl_arrow_interval_unit {
    KL_ARROW_YEAR_MONTH,    /* int32 months */
    KL_ARROW_DAY_TIME,      /* int32 days, int32 milliseconds */
    KL_ARROW_MONTH_DAY_NANO /* int32 months, int32 days, int64 nanoseconds */
} kl_arrow_interval_unit;

/* One column or nested child. Owned by the stream; every string is NUL-terminated. */
typedef struct kl_arrow_field {
    const char *name; /* "" when absent; may hold any bytes, name_len of them */
    size_t name_len;
    kl_arrow_type type;
    bool nullable;
    /* Bits per value of the fixed-width types (BOOL 1, INT, FLOAT, DECIMAL 32/64/128/256, DATE,
     * TIME, TIMESTAMP and DURATION 64, INTERVAL 32/64/128, FIXED_SIZE_BINARY 8*fixed_size);
     * 0 for the others. */
    int bit_width;
    bool is_signed;                       /* INT */
    int32_t precision, scale;             /* DECIMAL; -76 <= scale <= 76 */
    int32_t fixed_size;                   /* FIXED_SIZE_BINARY bytes, FIXED_SIZE_LIST child rows */
    kl_arrow_time_unit time_unit;         /* TIME, TIMESTAMP, DURATION */
    kl_arrow_date_unit date_unit;         /* DATE */
    kl_arrow_interval_unit interval_unit; /* INTERVAL */
    const char *timezone;                 /* TIMESTAMP: Olson name or "+hh:mm"; NULL when naive */
    bool keys_sorted;                     /* MAP */
    size_t n_children;
    const struct kl_arrow_field *children;
} kl_arrow_field;

typedef struct kl_arrow_schema {
    size_t n_fields;
    const kl_arrow_field *fields;
} kl_arrow_schema;

/* A column (or nested child) of one batch. Row i of the array is slot offset + i of its buffers;
 * decoded arrays have offset 0, but code that builds or slices arrays may set it. Row i of a
 * STRUCT is row offset + i of each child (children have offsets of their own); LIST-like rows name
 * child rows through kl_arrow_get_range. */
typedef struct kl_arrow_array {
    const kl_arrow_field *field; /* the schema's field, owned by the stream */
    int64_t length;
    int64_t null_count; /* exact; validity is NULL when it is 0 */
    int64_t offset;
    const uint8_t *validity; /* bit (offset+i) set = row i valid (LSB first); NULL = all valid */
    const uint8_t *offsets;  /* offset+length+1 int32 or int64 (LARGE_*) entries; NULL if empty */
    const uint8_t *values;   /* fixed-width values, packed bools, or the bytes offsets index */
    size_t values_len;       /* bytes at values */
    size_t n_children;
    const struct kl_arrow_array *children;
} kl_arrow_array;

typedef struct kl_arrow_batch {
    int64_t length; /* rows; every column has this length */
    size_t n_columns;
    const kl_arrow_array *columns; /* one per schema field, same order */
} kl_arrow_batch;

typedef struct kl_arrow_stream {
    kl_arrow_schema schema;
    size_t n_batches;
    const kl_arrow_batch *batches;
    struct kl_arrow_arena *arena; /* private: owns everything above */
} kl_arrow_stream;

typedef struct kl_arrow_options {
    /* Bytes that the compressed buffers of one stream may inflate to in total (a defence against
     * decompression bombs). 0 = 1 GiB. Exceeding it fails with -E2BIG. */
    size_t max_decompressed;
    /* Fields (counting nested ones) a schema may have; 0 = 65536. */
    size_t max_fields;
    /* Copy the input into the stream instead of borrowing it. */
    bool copy_input;
} kl_arrow_options;

/* Decodes one complete IPC stream (with or without the 0xFFFFFFFF continuation markers) that
 * must end with the end-of-stream marker and nothing after it. opt may be NULL for defaults.
 * Unless opt->copy_input is set, *out borrows data: keep it alive and unchanged until
 * kl_arrow_stream_free. Returns 0 with *out set (free it with kl_arrow_stream_free), or -EINVAL
 * (malformed or unsupported input), -E2BIG (a limit exceeded) or -ENOMEM with *out NULL and a
 * message naming the problem and its byte offset in err. */
int kl_arrow_decode(const void *data, size_t len, const kl_arrow_options *opt,
                    kl_arrow_stream **out, char err[KL_ARROW_ERRLEN]);
void kl_arrow_stream_free(kl_arrow_stream *s);

/* Accessors. Row i counts from 0 within the array (its offset is added for you). An index out of
 * [0, length) or an array of another type reads as null / zero / empty, never out of bounds. */
bool kl_arrow_is_null(const kl_arrow_array *a, int64_t i); /* always true for NULL arrays */
bool kl_arrow_get_bool(const kl_arrow_array *a, int64_t i);
/* INT (unsigned 64-bit values above INT64_MAX wrap), DATE, TIME, TIMESTAMP, DURATION and
 * YEAR_MONTH INTERVAL. */
int64_t kl_arrow_get_int(const kl_arrow_array *a, int64_t i);
uint64_t kl_arrow_get_uint(const kl_arrow_array *a, int64_t i); /* INT, zero-extended */
double kl_arrow_get_float(const kl_arrow_array *a, int64_t i);  /* FLOAT of any width */

typedef struct kl_arrow_bytes {
    const uint8_t *ptr; /* borrowed from the stream; not NUL-terminated */
    size_t len;
} kl_arrow_bytes;
/* UTF8, LARGE_UTF8, BINARY, LARGE_BINARY, FIXED_SIZE_BINARY. */
kl_arrow_bytes kl_arrow_get_bytes(const kl_arrow_array *a, int64_t i);

/* LIST, LARGE_LIST, MAP, FIXED_SIZE_LIST: row i holds child rows [*start, *end). */
void kl_arrow_get_range(const kl_arrow_array *a, int64_t i, int64_t *start, int64_t *end);

typedef struct kl_arrow_day_time {
    int32_t days, milliseconds;
} kl_arrow_day_time;
typedef struct kl_arrow_month_day_nano {
    int32_t months, days;
    int64_t nanoseconds;
} kl_arrow_month_day_nano;
kl_arrow_day_time kl_arrow_get_day_time(const kl_arrow_array *a, int64_t i);
kl_arrow_month_day_nano kl_arrow_get_month_day_nano(const kl_arrow_array *a, int64_t i);

/* Unscaled decimal values in two's complement. */
typedef struct kl_arrow_decimal128 {
    uint64_t lo;
    int64_t hi;
} kl_arrow_decimal128;
typedef struct kl_arrow_decimal256 {
    uint64_t w[4]; /* least significant word first */
} kl_arrow_decimal256;
/* DECIMAL of width <= 128 (sign-extended); a 256-bit value is truncated to its low 128 bits. */
kl_arrow_decimal128 kl_arrow_get_decimal128(const kl_arrow_array *a, int64_t i);
kl_arrow_decimal256 kl_arrow_get_decimal256(const kl_arrow_array *a, int64_t i); /* any width */

/* Writes value * 10^-scale exactly in plain notation ("-12.30", "0.005", "1200" for scale -2)
 * into buf (NUL-terminated, truncated to cap - 1 chars) and returns the length the whole string
 * needs, like snprintf. KL_ARROW_DECIMAL_STRLEN bytes always suffice when |scale| <= 76, which
 * holds for every decoded field (the decoder refuses wider scales). */
#define KL_ARROW_DECIMAL_STRLEN 160
size_t kl_arrow_decimal128_to_string(kl_arrow_decimal128 value, int32_t scale, char *buf,
                                     size_t cap);
size_t kl_arrow_decimal256_to_string(kl_arrow_decimal256 value, int32_t scale, char *buf,
                                     size_t cap);

/* Static lower-case name of a type ("int", "large_utf8", ...). */
const char *kl_arrow_type_name(kl_arrow_type t);

#endif
