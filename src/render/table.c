#include "render/table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct chunk {
    const kl_arrow_batch *batch;
    int64_t rows;
} chunk;

struct kl_table {
    int64_t keep; /* < 0: all */
    int64_t seen, kept;
    bool more;
    kl_arrow_stream **streams; /* owned: the first (it holds the schema) and those with kept rows */
    size_t n_streams, cap_streams;
    chunk *chunks;
    size_t n_chunks, cap_chunks;
};

void kl_render_options_init(kl_render_options *o) {
    memset(o, 0, sizeof *o);
    o->max_rows = KL_RENDER_DEFAULT_ROWS;
    o->truncate = KL_RENDER_DEFAULT_TRUNCATE;
    o->max_cell_bytes = KL_RENDER_DEFAULT_CELL_BYTES;
    o->width = KL_WIDTH_SPARK;
}

kl_table *kl_table_new(int64_t keep_rows) {
    kl_table *t = calloc(1, sizeof *t);
    if (t) t->keep = keep_rows;
    return t;
}

void kl_table_free(kl_table *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_streams; i++) kl_arrow_stream_free(t->streams[i]);
    free(t->streams);
    free(t->chunks);
    free(t);
}

static bool same_type(const kl_arrow_field *a, const kl_arrow_field *b) {
    if (a->type != b->type || a->bit_width != b->bit_width || a->is_signed != b->is_signed ||
        a->precision != b->precision || a->scale != b->scale || a->fixed_size != b->fixed_size ||
        a->n_children != b->n_children)
        return false;
    switch (a->type) {
    case KL_ARROW_DATE:
        if (a->date_unit != b->date_unit) return false;
        break;
    case KL_ARROW_TIMESTAMP:
        if ((a->timezone == NULL) != (b->timezone == NULL) ||
            (a->timezone && strcmp(a->timezone, b->timezone) != 0))
            return false;
        /* fall through */
    case KL_ARROW_TIME:
    case KL_ARROW_DURATION:
        if (a->time_unit != b->time_unit) return false;
        break;
    case KL_ARROW_INTERVAL:
        if (a->interval_unit != b->interval_unit) return false;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < a->n_children; i++)
        if (!same_type(&a->children[i], &b->children[i])) return false;
    return true;
}

static bool grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return true;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * size);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

int kl_table_add(kl_table *t, kl_arrow_stream *s, char err[KL_RENDER_ERRLEN]) {
    if (t->n_streams > 0) {
        const kl_arrow_schema *a = &t->streams[0]->schema, *b = &s->schema;
        bool same = a->n_fields == b->n_fields;
        for (size_t i = 0; same && i < a->n_fields; i++)
            same = same_type(&a->fields[i], &b->fields[i]);
        if (!same) {
            snprintf(err, KL_RENDER_ERRLEN, "batch %zu has a different schema than the first",
                     t->n_streams);
            kl_arrow_stream_free(s);
            return -EINVAL;
        }
    }
    int64_t rows = 0;
    for (size_t i = 0; i < s->n_batches; i++) rows += s->batches[i].length;
    size_t new_chunks = 0;
    int64_t room = t->keep < 0 ? INT64_MAX : t->keep - t->kept;
    int64_t left = room;
    for (size_t i = 0; i < s->n_batches && left > 0; i++) {
        if (s->batches[i].length == 0) continue;
        new_chunks++;
        left -= s->batches[i].length;
    }
    bool keep_stream = t->n_streams == 0 || new_chunks > 0;
    if (!grow((void **)&t->chunks, &t->cap_chunks, t->n_chunks + new_chunks, sizeof(chunk)) ||
        (keep_stream &&
         !grow((void **)&t->streams, &t->cap_streams, t->n_streams + 1, sizeof(*t->streams)))) {
        snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        kl_arrow_stream_free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->n_batches && room > 0; i++) {
        int64_t n = s->batches[i].length;
        if (n == 0) continue;
        if (n > room) n = room;
        t->chunks[t->n_chunks++] = (chunk){&s->batches[i], n};
        t->kept += n;
        room -= n;
    }
    t->seen += rows;
    if (keep_stream)
        t->streams[t->n_streams++] = s;
    else
        kl_arrow_stream_free(s);
    return 0;
}

int kl_table_add_ipc(kl_table *t, const void *data, size_t len, char err[KL_RENDER_ERRLEN]) {
    kl_arrow_options opt = {.copy_input = true};
    kl_arrow_stream *s;
    char aerr[KL_ARROW_ERRLEN];
    int rc = kl_arrow_decode(data, len, &opt, &s, aerr);
    if (rc != 0) {
        snprintf(err, KL_RENDER_ERRLEN, "%s", aerr);
        return rc;
    }
    return kl_table_add(t, s, err);
}

void kl_table_set_more(kl_table *t) {
    t->more = true;
}

const kl_arrow_schema *kl_table_schema(const kl_table *t) {
    return t->n_streams ? &t->streams[0]->schema : NULL;
}

int64_t kl_table_rows_seen(const kl_table *t) {
    return t->seen;
}

int64_t kl_table_rows_kept(const kl_table *t) {
    return t->kept;
}

bool kl_table_has_more(const kl_table *t, int64_t n) {
    return t->more || t->seen > n;
}

bool kl_table_more_flag(const kl_table *t) {
    return t->more;
}

size_t kl_table_chunks(const kl_table *t) {
    return t->n_chunks;
}

const kl_arrow_batch *kl_table_chunk(const kl_table *t, size_t i, int64_t *rows) {
    if (i >= t->n_chunks) {
        *rows = 0;
        return NULL;
    }
    *rows = t->chunks[i].rows;
    return t->chunks[i].batch;
}

void kl_table_type_name(kl_render_buf *b, const kl_arrow_field *f) {
    switch (f->type) {
    case KL_ARROW_NULL:
        kl_render_buf_puts(b, "void");
        return;
    case KL_ARROW_BOOL:
        kl_render_buf_puts(b, "boolean");
        return;
    case KL_ARROW_INT:
        if (!f->is_signed) {
            kl_render_buf_printf(b, "uint%d", f->bit_width);
            return;
        }
        kl_render_buf_puts(b, f->bit_width == 8    ? "tinyint"
                              : f->bit_width == 16 ? "smallint"
                              : f->bit_width == 32 ? "int"
                                                   : "bigint");
        return;
    case KL_ARROW_FLOAT:
        kl_render_buf_puts(b, f->bit_width == 64 ? "double" : "float");
        return;
    case KL_ARROW_DECIMAL:
        kl_render_buf_printf(b, "decimal(%d,%d)", (int)f->precision, (int)f->scale);
        return;
    case KL_ARROW_UTF8:
    case KL_ARROW_LARGE_UTF8:
        kl_render_buf_puts(b, "string");
        return;
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_BINARY:
    case KL_ARROW_FIXED_SIZE_BINARY:
        kl_render_buf_puts(b, "binary");
        return;
    case KL_ARROW_DATE:
        kl_render_buf_puts(b, "date");
        return;
    case KL_ARROW_TIME:
        kl_render_buf_puts(b, "time(6)");
        return;
    case KL_ARROW_TIMESTAMP:
        kl_render_buf_puts(b, f->timezone ? "timestamp" : "timestamp_ntz");
        return;
    case KL_ARROW_DURATION:
        kl_render_buf_puts(b, "interval day to second");
        return;
    case KL_ARROW_INTERVAL:
        kl_render_buf_puts(b, f->interval_unit == KL_ARROW_YEAR_MONTH ? "interval year to month"
                                                                      : "interval");
        return;
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
        kl_render_buf_puts(b, "array<");
        if (f->n_children == 1) kl_table_type_name(b, &f->children[0]);
        kl_render_buf_putc(b, '>');
        return;
    case KL_ARROW_MAP: {
        kl_render_buf_puts(b, "map<");
        const kl_arrow_field *e = f->n_children == 1 ? &f->children[0] : NULL;
        if (e && e->n_children == 2) {
            kl_table_type_name(b, &e->children[0]);
            kl_render_buf_putc(b, ',');
            kl_table_type_name(b, &e->children[1]);
        }
        kl_render_buf_putc(b, '>');
        return;
    }
    case KL_ARROW_STRUCT:
        kl_render_buf_puts(b, "struct<");
        for (size_t i = 0; i < f->n_children; i++) {
            if (i) kl_render_buf_putc(b, ',');
            kl_unicode_append_repaired(b, (const uint8_t *)f->children[i].name,
                                       f->children[i].name_len);
            kl_render_buf_putc(b, ':');
            kl_table_type_name(b, &f->children[i]);
        }
        kl_render_buf_putc(b, '>');
        return;
    }
    kl_render_buf_puts(b, kl_arrow_type_name(f->type));
}
