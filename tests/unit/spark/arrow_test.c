/* The Arrow decoder against streams pyarrow wrote (tests/data/gen_arrow.py renders what it wrote
 * into NAME.expected; we render our decoding the same way and compare), plus truncated and
 * corrupted input, limits, and the accessors and decimal text on their own. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spark/arrow.h"

#define DATA_DIR KL_TEST_DATA "/arrow"

/* ---- growable text ---- */

typedef struct text {
    char *p;
    size_t len, cap;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        cr_assert_not_null(t->p);
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static unsigned char *read_stream(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.arrows", DATA_DIR, name);
    unsigned char *b = read_file(path, len);
    cr_assert_not_null(b, "cannot read %s (run tests/data/gen_arrow.py)", path);
    return b;
}

/* ---- canonical rendering, the same as gen_arrow.py's ---- */

static void put_bytes(text *t, const uint8_t *p, size_t n) {
    if (n > 64) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
        put(t, "len=%zu,fnv=%016llx", n, (unsigned long long)h);
        return;
    }
    bool plain = true;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\') plain = false;
    if (plain) {
        put(t, "\"%.*s\"", (int)n, (const char *)p);
        return;
    }
    put(t, "x\"");
    for (size_t i = 0; i < n; i++) put(t, "%02x", p[i]);
    put(t, "\"");
}

static const char *unit_name(kl_arrow_time_unit u) {
    static const char *names[] = {"s", "ms", "us", "ns"};
    return names[u];
}

static void put_type(text *t, const kl_arrow_field *f) {
    switch (f->type) {
    case KL_ARROW_INT:
        put(t, "%sint%d", f->is_signed ? "" : "u", f->bit_width);
        return;
    case KL_ARROW_FLOAT:
        put(t, "float%d", f->bit_width);
        return;
    case KL_ARROW_DECIMAL:
        put(t, "decimal%d(%d,%d)", f->bit_width, f->precision, f->scale);
        return;
    case KL_ARROW_FIXED_SIZE_BINARY:
        put(t, "fixed_size_binary(%d)", f->fixed_size);
        return;
    case KL_ARROW_FIXED_SIZE_LIST:
        put(t, "fixed_size_list(%d)", f->fixed_size);
        return;
    case KL_ARROW_DATE:
        put(t, "date%d", f->date_unit == KL_ARROW_DATE_DAY ? 32 : 64);
        return;
    case KL_ARROW_TIME:
        put(t, "time%d(%s)", f->bit_width, unit_name(f->time_unit));
        return;
    case KL_ARROW_TIMESTAMP:
        if (f->timezone)
            put(t, "timestamp(%s,%s)", unit_name(f->time_unit), f->timezone);
        else
            put(t, "timestamp(%s)", unit_name(f->time_unit));
        return;
    case KL_ARROW_DURATION:
        put(t, "duration(%s)", unit_name(f->time_unit));
        return;
    case KL_ARROW_INTERVAL: {
        static const char *names[] = {"year_month", "day_time", "month_day_nano"};
        put(t, "interval(%s)", names[f->interval_unit]);
        return;
    }
    case KL_ARROW_MAP:
        put(t, f->keys_sorted ? "map(sorted)" : "map");
        return;
    default:
        put(t, "%s", kl_arrow_type_name(f->type));
        return;
    }
}

static void put_fields(text *t, const kl_arrow_field *fields, size_t n, int depth) {
    for (size_t i = 0; i < n; i++) {
        const kl_arrow_field *f = &fields[i];
        put(t, "field %d ", depth);
        put_bytes(t, (const uint8_t *)f->name, f->name_len);
        put(t, " ");
        put_type(t, f);
        put(t, " %s\n", f->nullable ? "nullable" : "not_null");
        put_fields(t, f->children, f->n_children, depth + 1);
    }
}

/* max_items bounds list elements and is how corrupted-but-valid streams stay quick to walk. */
static void put_value(text *t, const kl_arrow_array *a, int64_t i, int64_t max_items) {
    const kl_arrow_field *f = a->field;
    if (kl_arrow_is_null(a, i)) {
        put(t, "null");
        return;
    }
    switch (f->type) {
    case KL_ARROW_NULL:
        put(t, "null");
        return;
    case KL_ARROW_BOOL:
        put(t, kl_arrow_get_bool(a, i) ? "true" : "false");
        return;
    case KL_ARROW_INT:
        if (f->is_signed)
            put(t, "%lld", (long long)kl_arrow_get_int(a, i));
        else
            put(t, "%llu", (unsigned long long)kl_arrow_get_uint(a, i));
        return;
    case KL_ARROW_FLOAT:
        put(t, "%.17g", kl_arrow_get_float(a, i));
        return;
    case KL_ARROW_DECIMAL: {
        char buf[KL_ARROW_DECIMAL_STRLEN];
        size_t n =
            kl_arrow_decimal256_to_string(kl_arrow_get_decimal256(a, i), f->scale, buf, sizeof buf);
        cr_assert_lt(n, sizeof buf);
        if (f->bit_width <= 128) { /* the 128-bit entry point must agree */
            char b128[KL_ARROW_DECIMAL_STRLEN];
            kl_arrow_decimal128_to_string(kl_arrow_get_decimal128(a, i), f->scale, b128,
                                          sizeof b128);
            cr_assert_str_eq(b128, buf);
        }
        put(t, "%s", buf);
        return;
    }
    case KL_ARROW_UTF8:
    case KL_ARROW_LARGE_UTF8:
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_BINARY:
    case KL_ARROW_FIXED_SIZE_BINARY: {
        kl_arrow_bytes b = kl_arrow_get_bytes(a, i);
        put_bytes(t, b.ptr, b.len);
        return;
    }
    case KL_ARROW_DATE:
    case KL_ARROW_TIME:
    case KL_ARROW_TIMESTAMP:
    case KL_ARROW_DURATION:
        put(t, "%lld", (long long)kl_arrow_get_int(a, i));
        return;
    case KL_ARROW_INTERVAL:
        if (f->interval_unit == KL_ARROW_YEAR_MONTH) {
            put(t, "%lld", (long long)kl_arrow_get_int(a, i));
        } else if (f->interval_unit == KL_ARROW_DAY_TIME) {
            kl_arrow_day_time v = kl_arrow_get_day_time(a, i);
            put(t, "dt(%d,%d)", v.days, v.milliseconds);
        } else {
            kl_arrow_month_day_nano v = kl_arrow_get_month_day_nano(a, i);
            put(t, "mdn(%d,%d,%lld)", v.months, v.days, (long long)v.nanoseconds);
        }
        return;
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
    case KL_ARROW_MAP: {
        int64_t s, e;
        kl_arrow_get_range(a, i, &s, &e);
        const kl_arrow_array *c = &a->children[0];
        cr_assert(s <= e && e <= c->length, "range [%lld, %lld) outside %lld child rows",
                  (long long)s, (long long)e, (long long)c->length);
        if (e - s > max_items) e = s + max_items;
        put(t, f->type == KL_ARROW_MAP ? "map{" : "[");
        for (int64_t j = s; j < e; j++) {
            if (j > s) put(t, ", ");
            if (f->type == KL_ARROW_MAP) {
                put_value(t, &c->children[0], c->offset + j, max_items);
                put(t, ": ");
                put_value(t, &c->children[1], c->offset + j, max_items);
            } else {
                put_value(t, c, j, max_items);
            }
        }
        put(t, f->type == KL_ARROW_MAP ? "}" : "]");
        return;
    }
    case KL_ARROW_STRUCT:
        put(t, "{");
        for (size_t k = 0; k < a->n_children; k++) {
            if (k) put(t, ", ");
            put_value(t, &a->children[k], a->offset + i, max_items);
        }
        put(t, "}");
        return;
    }
    cr_assert_fail("type %d not rendered", f->type);
}

static void render(text *t, const kl_arrow_stream *s, int64_t max_rows) {
    put_fields(t, s->schema.fields, s->schema.n_fields, 0);
    for (size_t b = 0; b < s->n_batches; b++) {
        const kl_arrow_batch *batch = &s->batches[b];
        put(t, "batch %lld\n", (long long)batch->length);
        cr_assert_eq(batch->n_columns, s->schema.n_fields);
        int64_t rows = batch->length < max_rows ? batch->length : max_rows;
        for (int64_t i = 0; i < rows; i++) {
            put(t, "row ");
            for (size_t c = 0; c < batch->n_columns; c++) {
                cr_assert_eq(batch->columns[c].field, &s->schema.fields[c]);
                if (c) put(t, " | ");
                put_value(t, &batch->columns[c], i, max_rows);
            }
            put(t, "\n");
        }
    }
}

/* Returns NULL when the stream decodes to exactly the expected text, else a description. */
static char *check_stream(const char *name, const kl_arrow_options *opt) {
    static char why[1024];
    char path[512];
    size_t len, elen;
    unsigned char *data = read_stream(name, &len);
    snprintf(path, sizeof path, "%s/%s.expected", DATA_DIR, name);
    char *expected = (char *)read_file(path, &elen);
    cr_assert_not_null(expected, "no %s", path);
    expected = realloc(expected, elen + 1);
    expected[elen] = 0;

    kl_arrow_stream *s = NULL;
    char err[KL_ARROW_ERRLEN];
    int rc = kl_arrow_decode(data, len, opt, &s, err);
    if (opt && opt->copy_input) { /* the stream must not need the input any more */
        memset(data, 0xAB, len);
        free(data);
        data = NULL;
    }
    char *result = NULL;
    if (strncmp(expected, "error ", 6) == 0) {
        expected[strcspn(expected, "\n")] = 0;
        if (rc == 0)
            snprintf(why, sizeof why, "%s: decoded, but expected an error with '%s'", name,
                     expected + 6);
        else if (!strstr(err, expected + 6))
            snprintf(why, sizeof why, "%s: error '%s' lacks '%s'", name, err, expected + 6);
        else
            cr_assert_null(s);
        result = rc == 0 || !strstr(err, expected + 6) ? why : NULL;
    } else if (rc != 0) {
        snprintf(why, sizeof why, "%s: %s (rc %d)", name, err, rc);
        result = why;
    } else {
        text t = {0};
        render(&t, s, INT64_MAX);
        if (!t.p || strcmp(t.p, expected) != 0) {
            const char *got = t.p ? t.p : "";
            size_t k = 0, line = 1;
            while (got[k] && got[k] == expected[k]) k++;
            while (k > 0 && got[k - 1] != '\n') k--;
            for (size_t j = 0; j < k; j++) line += got[j] == '\n';
            snprintf(why, sizeof why, "%s: line %zu differs:\n  got      %.*s\n  expected %.*s",
                     name, line, (int)strcspn(got + k, "\n"), got + k,
                     (int)strcspn(expected + k, "\n"), expected + k);
            result = why;
        }
        free(t.p);
    }
    kl_arrow_stream_free(s);
    free(data);
    free(expected);
    return result;
}

Test(arrow_files, every_stream_matches_what_pyarrow_wrote) {
    DIR *dir = opendir(DATA_DIR);
    cr_assert_not_null(dir, "no %s", DATA_DIR);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 8 || strcmp(e->d_name + n - 7, ".arrows") != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n - 7), e->d_name);
        char *why = check_stream(name, NULL);
        cr_expect_null(why, "%s", why);
        files++;
    }
    closedir(dir);
    cr_assert_geq(files, 20, "only %d streams found", files);
}

Test(arrow_files, copied_input_outlives_the_caller_buffer) {
    kl_arrow_options opt = {.copy_input = true};
    const char *names[] = {"nested", "strings", "lz4_partly_raw"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char *why = check_stream(names[i], &opt);
        cr_expect_null(why, "%s", why);
    }
}

Test(arrow_files, schema_details) {
    size_t len;
    unsigned char *data = read_stream("temporal", &len);
    kl_arrow_stream *s;
    char err[KL_ARROW_ERRLEN];
    cr_assert_eq(kl_arrow_decode(data, len, NULL, &s, err), 0, "%s", err);
    const kl_arrow_field *ny = NULL, *naive = NULL;
    for (size_t i = 0; i < s->schema.n_fields; i++) {
        if (!strcmp(s->schema.fields[i].name, "ts_ny")) ny = &s->schema.fields[i];
        if (!strcmp(s->schema.fields[i].name, "ts_us")) naive = &s->schema.fields[i];
    }
    cr_assert(ny && naive);
    cr_assert_eq(ny->type, KL_ARROW_TIMESTAMP);
    cr_assert_eq(ny->time_unit, KL_ARROW_MICROSECOND);
    cr_assert_str_eq(ny->timezone, "America/New_York");
    cr_assert_null(naive->timezone);
    cr_assert_eq(s->n_batches, 1);
    /* zero-copy: values point into the caller's buffer */
    const kl_arrow_array *col = &s->batches[0].columns[0];
    cr_assert(col->values >= data && col->values < data + len);
    kl_arrow_stream_free(s);
    free(data);
}

/* ---- broken input ---- */

static int decode_quiet(const void *p, size_t n, const kl_arrow_options *opt, char *err) {
    kl_arrow_stream *s = NULL;
    int rc = kl_arrow_decode(p, n, opt, &s, err);
    if (rc == 0) {
        text t = {0};
        render(&t, s, 64); /* walk every accessor the renderer would use */
        free(t.p);
        kl_arrow_stream_free(s);
    } else {
        cr_assert_null(s);
        cr_assert(rc == -EINVAL || rc == -E2BIG, "rc %d: %s", rc, err);
        cr_assert(strncmp(err, "arrow stream, byte ", 19) == 0, "message '%s'", err);
    }
    return rc;
}

static const char *small_streams[] = {"primitives", "nested",         "intervals",
                                      "legacy_v4",  "lz4_partly_raw", "zstd_nested",
                                      "decimals",   "empty",          "zstd_large_buffer"};

Test(arrow_broken, every_truncation_is_an_error) {
    for (size_t k = 0; k < sizeof small_streams / sizeof *small_streams; k++) {
        size_t len;
        unsigned char *data = read_stream(small_streams[k], &len);
        char err[KL_ARROW_ERRLEN];
        cr_assert_eq(decode_quiet(data, len, NULL, err), 0, "%s: %s", small_streams[k], err);
        for (size_t n = 0; n < len; n++) {
            /* a fresh allocation of exactly n bytes lets ASan catch any read past the end */
            unsigned char *cut = malloc(n ? n : 1);
            memcpy(cut, data, n);
            cr_assert_neq(decode_quiet(cut, n, NULL, err), 0, "%s cut to %zu bytes decoded",
                          small_streams[k], n);
            free(cut);
        }
        free(data);
    }
}

Test(arrow_broken, flipped_bytes_fail_cleanly_or_decode_safely) {
    static const uint8_t masks[] = {0xff, 0x01, 0x80, 0x10};
    int errors = 0, decoded = 0;
    for (size_t k = 0; k < sizeof small_streams / sizeof *small_streams; k++) {
        size_t len;
        unsigned char *data = read_stream(small_streams[k], &len);
        unsigned char *copy = malloc(len);
        char err[KL_ARROW_ERRLEN];
        for (size_t pos = 0; pos < len; pos++) {
            for (size_t m = 0; m < sizeof masks; m++) {
                memcpy(copy, data, len);
                copy[pos] ^= masks[m];
                if (decode_quiet(copy, len, NULL, err) == 0)
                    decoded++;
                else
                    errors++;
            }
        }
        free(copy);
        free(data);
    }
    /* Both outcomes must occur: values can change harmlessly, framing cannot. */
    cr_assert_gt(errors, 1000);
    cr_assert_gt(decoded, 1000);
}

Test(arrow_broken, framing_errors_name_the_problem) {
    char err[KL_ARROW_ERRLEN];
    kl_arrow_stream *s;
    cr_assert_eq(kl_arrow_decode("", 0, NULL, &s, err), -EINVAL);
    cr_assert(strstr(err, "empty input"), "%s", err);

    static const uint8_t eos[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    cr_assert_eq(kl_arrow_decode(eos, sizeof eos, NULL, &s, err), -EINVAL);
    cr_assert(strstr(err, "no schema"), "%s", err);

    static const uint8_t negative[] = {0xff, 0xff, 0xff, 0xff, 0xf0, 0xff, 0xff, 0xff};
    cr_assert_eq(kl_arrow_decode(negative, sizeof negative, NULL, &s, err), -EINVAL);
    cr_assert(strstr(err, "byte 0: negative message length"), "%s", err);

    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4};
    cr_assert_eq(kl_arrow_decode(huge, sizeof huge, NULL, &s, err), -EINVAL);
    cr_assert(strstr(err, "overruns"), "%s", err);

    size_t len;
    unsigned char *data = read_stream("primitives", &len);
    unsigned char *more = malloc(len + 8);
    memcpy(more, data, len);
    memset(more + len, 0, 8);
    cr_assert_eq(kl_arrow_decode(more, len + 8, NULL, &s, err), -EINVAL);
    char want[64];
    snprintf(want, sizeof want, "byte %zu: 8 bytes after the end-of-stream", len);
    cr_assert(strstr(err, want), "%s", err);
    /* a stream cut right before its end-of-stream marker */
    cr_assert_eq(kl_arrow_decode(data, len - 8, NULL, &s, err), -EINVAL);
    cr_assert(strstr(err, "without the end-of-stream marker"), "%s", err);
    free(more);
    free(data);
}

Test(arrow_broken, legacy_stream_has_no_continuation_markers) {
    size_t len;
    unsigned char *data = read_stream("legacy_v4", &len);
    cr_assert_neq(memcmp(data, "\xff\xff\xff\xff", 4), 0);
    cr_assert_eq(memcmp(data + len - 4, "\0\0\0\0", 4), 0);
    free(data);
}

Test(arrow_limits, decompression_limit_refuses_a_bomb) {
    size_t len;
    unsigned char *data = read_stream("zstd", &len);
    kl_arrow_options opt = {.max_decompressed = 1000};
    kl_arrow_stream *s;
    char err[KL_ARROW_ERRLEN];
    cr_assert_eq(kl_arrow_decode(data, len, &opt, &s, err), -E2BIG);
    cr_assert(strstr(err, "1000-byte decompression limit"), "%s", err);
    cr_assert_null(s);
    opt.max_decompressed = 0; /* default */
    cr_assert_eq(kl_arrow_decode(data, len, &opt, &s, err), 0, "%s", err);
    kl_arrow_stream_free(s);
    free(data);
}

Test(arrow_limits, field_limit) {
    size_t len;
    unsigned char *data = read_stream("nested", &len);
    kl_arrow_options opt = {.max_fields = 10};
    kl_arrow_stream *s;
    char err[KL_ARROW_ERRLEN];
    cr_assert_eq(kl_arrow_decode(data, len, &opt, &s, err), -E2BIG);
    cr_assert(strstr(err, "more than 10 fields"), "%s", err);
    free(data);
}

/* ---- accessors on hand-built arrays ---- */

Test(arrow_accessors, offsets_bounds_and_wrong_types) {
    kl_arrow_field bool_f = {.name = "b", .type = KL_ARROW_BOOL, .bit_width = 1};
    kl_arrow_field i16_f = {.name = "i", .type = KL_ARROW_INT, .bit_width = 16, .is_signed = true};
    kl_arrow_field u16_f = {.name = "u", .type = KL_ARROW_INT, .bit_width = 16};
    kl_arrow_field str_f = {.name = "s", .type = KL_ARROW_UTF8};
    static const uint8_t bits[] = {0xAA, 0x0F}; /* slots 1,3,5,7,8,9,10,11 set */
    static const uint8_t valid[] = {0xFF, 0xFE};
    kl_arrow_array b = {.field = &bool_f,
                        .length = 6,
                        .offset = 5,
                        .values = bits,
                        .validity = valid,
                        .null_count = 1,
                        .values_len = 2};
    cr_assert_eq(kl_arrow_get_bool(&b, 0), true);  /* slot 5 */
    cr_assert_eq(kl_arrow_get_bool(&b, 1), false); /* slot 6 */
    cr_assert_eq(kl_arrow_get_bool(&b, 3), true);  /* slot 8 */
    cr_assert(kl_arrow_is_null(&b, 3));            /* validity slot 8 clear */
    cr_assert(!kl_arrow_is_null(&b, 4));
    cr_assert(kl_arrow_is_null(&b, 6)); /* out of range reads as null */
    cr_assert(kl_arrow_is_null(&b, -1));
    cr_assert_eq(kl_arrow_get_bool(&b, 6), false);

    static const uint8_t shorts[] = {0x01, 0x00, 0xff, 0xff, 0x00, 0x80};
    kl_arrow_array i = {.field = &i16_f, .length = 2, .offset = 1, .values = shorts};
    cr_assert_eq(kl_arrow_get_int(&i, 0), -1);
    cr_assert_eq(kl_arrow_get_int(&i, 1), -32768);
    cr_assert_eq(kl_arrow_get_int(&i, 2), 0);
    cr_assert_eq(kl_arrow_get_float(&i, 0), 0.0); /* wrong type */
    kl_arrow_array u = i;
    u.field = &u16_f;
    cr_assert_eq(kl_arrow_get_uint(&u, 0), 65535);
    cr_assert_eq(kl_arrow_get_int(&u, 1), 32768);

    static const uint8_t offs[] = {0, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0};
    kl_arrow_array s = {.field = &str_f,
                        .length = 1,
                        .offset = 1,
                        .offsets = offs,
                        .values = (const uint8_t *)"abcde",
                        .values_len = 5};
    kl_arrow_bytes v = kl_arrow_get_bytes(&s, 0);
    cr_assert_eq(v.len, 3);
    cr_assert_eq(memcmp(v.ptr, "cde", 3), 0);
    cr_assert_eq(kl_arrow_get_bytes(&s, 1).len, 0);
    int64_t st, en;
    kl_arrow_get_range(&s, 0, &st, &en); /* not a list */
    cr_assert_eq(st, 0);
    cr_assert_eq(en, 0);
}

Test(arrow_accessors, float16_conversion) {
    kl_arrow_field f = {.name = "h", .type = KL_ARROW_FLOAT, .bit_width = 16};
    static const uint8_t h[] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0xff, 0x7b, 0x00, 0x7c};
    kl_arrow_array a = {.field = &f, .length = 5, .values = h};
    cr_assert_eq(kl_arrow_get_float(&a, 0), 1.0);
    cr_assert_eq(kl_arrow_get_float(&a, 1), -2.0);
    cr_assert_eq(kl_arrow_get_float(&a, 2), 5.9604644775390625e-08); /* smallest subnormal */
    cr_assert_eq(kl_arrow_get_float(&a, 3), 65504.0);
    cr_assert(kl_arrow_get_float(&a, 4) > 1e308); /* +inf */
}

/* ---- decimal text ---- */

static const char *dec128(int64_t hi, uint64_t lo, int32_t scale) {
    static char buf[KL_ARROW_DECIMAL_STRLEN];
    kl_arrow_decimal128 v = {lo, hi};
    size_t n = kl_arrow_decimal128_to_string(v, scale, buf, sizeof buf);
    cr_assert_eq(n, strlen(buf));
    return buf;
}

Test(arrow_decimal, plain_notation_exact) {
    cr_assert_str_eq(dec128(0, 0, 0), "0");
    cr_assert_str_eq(dec128(0, 0, 3), "0.000");
    cr_assert_str_eq(dec128(0, 0, -3), "0");
    cr_assert_str_eq(dec128(0, 1230, 2), "12.30");
    cr_assert_str_eq(dec128(-1, (uint64_t)-5, 3), "-0.005");
    cr_assert_str_eq(dec128(0, 123, -2), "12300");
    cr_assert_str_eq(dec128(-1, (uint64_t)-123, -2), "-12300");
    cr_assert_str_eq(dec128(0, 1000000000, 0), "1000000000");
    cr_assert_str_eq(dec128(0, 1000000000, 9), "1.000000000");
    cr_assert_str_eq(dec128(INT64_MIN, 0, 0), "-170141183460469231731687303715884105728");
    cr_assert_str_eq(dec128(INT64_MAX, UINT64_MAX, 38), "1.70141183460469231731687303715884105727");
    cr_assert_str_eq(dec128(0, UINT64_MAX, 20), "0.18446744073709551615");
}

Test(arrow_decimal, decimal256_extremes_and_truncation) {
    kl_arrow_decimal256 min = {{0, 0, 0, (uint64_t)1 << 63}};
    char buf[KL_ARROW_DECIMAL_STRLEN];
    size_t n = kl_arrow_decimal256_to_string(min, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "-5789604461865809771178549250434395392663499233282028201972879200395656"
                          "4819968");
    cr_assert_eq(n, strlen(buf));
    n = kl_arrow_decimal256_to_string(min, -76, buf, sizeof buf); /* the documented worst case */
    cr_assert_lt(n, sizeof buf);
    char small[6];
    kl_arrow_decimal128 v = {1234567, 0};
    n = kl_arrow_decimal128_to_string(v, 2, small, sizeof small);
    cr_assert_eq(n, 8); /* "12345.67" */
    cr_assert_str_eq(small, "12345");
}
