/* Fuzzes kl_arrow_decode on arbitrary bytes taken as one IPC stream. A stream that decodes is
 * walked through every accessor the renderer uses, so that a validation gap shows up as a read
 * outside a buffer under ASan rather than going unnoticed. The walk has a budget of values, since
 * a valid stream may declare millions of null rows in a few bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spark/arrow.h"

static volatile uint64_t sink;
static long budget;

static void walk(const kl_arrow_array *a, int64_t i) {
    if (--budget < 0) return;
    const kl_arrow_field *f = a->field;
    if (kl_arrow_is_null(a, i)) return;
    switch (f->type) {
    case KL_ARROW_NULL:
        abort(); /* is_null must say so */
    case KL_ARROW_BOOL:
        sink += kl_arrow_get_bool(a, i);
        break;
    case KL_ARROW_INT:
    case KL_ARROW_DATE:
    case KL_ARROW_TIME:
    case KL_ARROW_TIMESTAMP:
    case KL_ARROW_DURATION:
        sink += (uint64_t)kl_arrow_get_int(a, i) + kl_arrow_get_uint(a, i);
        break;
    case KL_ARROW_FLOAT:
        sink += (uint64_t)(kl_arrow_get_float(a, i) != 0);
        break;
    case KL_ARROW_DECIMAL: {
        char buf[KL_ARROW_DECIMAL_STRLEN];
        size_t n =
            kl_arrow_decimal256_to_string(kl_arrow_get_decimal256(a, i), f->scale, buf, sizeof buf);
        if (n >= sizeof buf || strlen(buf) != n) abort(); /* the documented bound must hold */
        sink += n;
        break;
    }
    case KL_ARROW_UTF8:
    case KL_ARROW_LARGE_UTF8:
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_BINARY:
    case KL_ARROW_FIXED_SIZE_BINARY: {
        kl_arrow_bytes b = kl_arrow_get_bytes(a, i);
        if (b.len) sink += b.ptr[0] + b.ptr[b.len - 1];
        break;
    }
    case KL_ARROW_INTERVAL: {
        kl_arrow_day_time dt = kl_arrow_get_day_time(a, i);
        kl_arrow_month_day_nano mdn = kl_arrow_get_month_day_nano(a, i);
        sink += (uint64_t)kl_arrow_get_int(a, i) + (uint64_t)dt.days + (uint64_t)mdn.nanoseconds;
        break;
    }
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
    case KL_ARROW_MAP: {
        int64_t s, e;
        kl_arrow_get_range(a, i, &s, &e);
        const kl_arrow_array *c = &a->children[0];
        if (s < 0 || s > e || e > c->length) abort(); /* validation promised this */
        for (int64_t j = s; j < e && budget > 0; j++) walk(c, j);
        break;
    }
    case KL_ARROW_STRUCT:
        for (size_t k = 0; k < a->n_children; k++) {
            if (a->children[k].length < a->offset + a->length) abort();
            walk(&a->children[k], a->offset + i);
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kl_arrow_options opt = {.max_decompressed = 64u << 20};
    kl_arrow_stream *s = NULL;
    char err[KL_ARROW_ERRLEN];
    int rc = kl_arrow_decode(data, size, &opt, &s, err);
    if (rc != 0) {
        if (s || strncmp(err, "arrow stream, byte ", 19) != 0) abort();
        return 0;
    }
    budget = 200000;
    for (size_t b = 0; b < s->n_batches; b++) {
        const kl_arrow_batch *batch = &s->batches[b];
        if (batch->n_columns != s->schema.n_fields) abort();
        for (size_t c = 0; c < batch->n_columns; c++)
            for (int64_t i = 0; i < batch->length && budget > 0; i++) walk(&batch->columns[c], i);
    }
    kl_arrow_stream_free(s);
    return 0;
}
