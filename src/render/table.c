#include "render/table.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spark/proto/kindling_spark_connect.pb-c.h"

typedef struct chunk {
    const kl_arrow_batch *batch;
    int64_t rows;
} chunk;

/* The part of a Spark DataType that Arrow lacks, in the shape of the Arrow field tree: arrays
 * have one child, maps one "entries" child with key and value, structs one per field. */
typedef enum shape { SHAPE_LEAF, SHAPE_STRUCT, SHAPE_LIST, SHAPE_MAP, SHAPE_ENTRIES } shape;

typedef struct hint_node {
    shape shape;
    kl_spark_hint hint;
    size_t n;
    struct hint_node *children;
} hint_node;

struct kl_table {
    int64_t keep; /* < 0: all */
    int64_t seen, kept;
    bool more;
    kl_arrow_stream **streams; /* owned: the first (it holds the schema) and those with kept rows */
    size_t n_streams, cap_streams;
    chunk *chunks;
    size_t n_chunks, cap_chunks;
    hint_node *spark;              /* attached schema, or NULL */
    const kl_arrow_field **hinted; /* fields registered in the hint map, to drop them at free */
    size_t n_hinted, cap_hinted;
};

static void hints_forget(kl_table *t);
static int hints_register_stream(kl_table *t, const kl_arrow_stream *s);
static void hint_tree_free(hint_node *n);

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
    hints_forget(t);
    if (t->spark) hint_tree_free(t->spark);
    free(t->spark);
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
    if (keep_stream && t->spark && hints_register_stream(t, s) != 0) {
        snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        return -ENOMEM;
    }
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

static const char *const ym_fields[] = {"year", "month"};
static const char *const dt_fields[] = {"day", "hour", "minute", "second"};

/* Spark's typeName: "interval year", "interval day to second"; the full range without a schema. */
static void interval_type_name(kl_render_buf *b, const kl_arrow_field *f) {
    if (f->type == KL_ARROW_INTERVAL && f->interval_unit != KL_ARROW_YEAR_MONTH) {
        kl_render_buf_puts(b, "interval");
        return;
    }
    bool ym = f->type == KL_ARROW_INTERVAL;
    kl_spark_hint h = kl_table_field_hint(f);
    int start = 0, end = ym ? 1 : 3;
    if (h.kind == (ym ? KL_SPARK_HINT_YEAR_MONTH : KL_SPARK_HINT_DAY_TIME)) {
        start = h.start;
        end = h.end;
    }
    const char *const *names = ym ? ym_fields : dt_fields;
    kl_render_buf_printf(b, "interval %s", names[start]);
    if (end != start) kl_render_buf_printf(b, " to %s", names[end]);
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
    case KL_ARROW_INTERVAL:
        interval_type_name(b, f);
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
        if (kl_table_field_is_variant(f)) {
            kl_render_buf_puts(b, "variant");
            return;
        }
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

/* ---- Spark schema hints --------------------------------------------------------------------
 * Renderers see only Arrow fields (kl_cell_text, kl_table_type_name), so what the Spark schema
 * adds is found from the field's address: a process-wide map from field to hint, filled for the
 * fields of a table's kept streams and emptied when the table is freed. Only fields Arrow leaves
 * ambiguous are entered (intervals, structs shaped like a variant), so the map stays small; with
 * no table holding a schema, lookups skip the lock. */

typedef struct hint_slot {
    const kl_arrow_field *key; /* NULL: empty */
    kl_spark_hint hint;
} hint_slot;

static pthread_rwlock_t hints_lock = PTHREAD_RWLOCK_INITIALIZER;
static hint_slot *hints;          /* open addressing, linear probing, power-of-two size */
static size_t hints_cap, hints_n; /* under hints_lock */
static atomic_size_t hints_live;  /* hints_n, readable without the lock */

static size_t slot_of(const kl_arrow_field *f, size_t cap) {
    uintptr_t x = (uintptr_t)f;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 7) & (cap - 1);
}

/* Caller holds the write lock. */
static bool hints_grow(void) {
    if ((hints_n + 1) * 2 <= hints_cap) return true;
    size_t cap = hints_cap ? hints_cap * 2 : 64;
    hint_slot *v = calloc(cap, sizeof *v);
    if (!v) return false;
    for (size_t i = 0; i < hints_cap; i++) {
        if (!hints[i].key) continue;
        size_t j = slot_of(hints[i].key, cap);
        while (v[j].key) j = (j + 1) & (cap - 1);
        v[j] = hints[i];
    }
    free(hints);
    hints = v;
    hints_cap = cap;
    return true;
}

static int hints_put(kl_table *t, const kl_arrow_field *f, kl_spark_hint h) {
    if (!grow((void **)&t->hinted, &t->cap_hinted, t->n_hinted + 1, sizeof *t->hinted))
        return -ENOMEM;
    pthread_rwlock_wrlock(&hints_lock);
    if (!hints_grow()) {
        pthread_rwlock_unlock(&hints_lock);
        return -ENOMEM;
    }
    size_t j = slot_of(f, hints_cap);
    while (hints[j].key && hints[j].key != f) j = (j + 1) & (hints_cap - 1);
    if (!hints[j].key) {
        hints_n++;
        t->hinted[t->n_hinted++] = f;
    }
    hints[j] = (hint_slot){f, h};
    atomic_store(&hints_live, hints_n);
    pthread_rwlock_unlock(&hints_lock);
    return 0;
}

/* Caller holds the write lock. Backward-shift deletion keeps every probe chain unbroken. */
static void hints_del(const kl_arrow_field *f) {
    if (!hints_cap) return;
    size_t mask = hints_cap - 1, j = slot_of(f, hints_cap);
    while (hints[j].key && hints[j].key != f) j = (j + 1) & mask;
    if (!hints[j].key) return;
    hints[j].key = NULL;
    hints_n--;
    for (size_t k = (j + 1) & mask; hints[k].key; k = (k + 1) & mask) {
        size_t home = slot_of(hints[k].key, hints_cap);
        /* Move k back to the hole when its home is not cyclically within (j, k]. */
        bool stays = j <= k ? (home > j && home <= k) : (home > j || home <= k);
        if (stays) continue;
        hints[j] = hints[k];
        hints[k].key = NULL;
        j = k;
    }
}

static void hints_forget(kl_table *t) {
    if (t->n_hinted) {
        pthread_rwlock_wrlock(&hints_lock);
        for (size_t i = 0; i < t->n_hinted; i++) hints_del(t->hinted[i]);
        atomic_store(&hints_live, hints_n);
        pthread_rwlock_unlock(&hints_lock);
    }
    free(t->hinted);
    t->hinted = NULL;
    t->n_hinted = t->cap_hinted = 0;
}

kl_spark_hint kl_table_field_hint(const kl_arrow_field *f) {
    kl_spark_hint h = {KL_SPARK_HINT_NONE, 0, 0};
    if (!f || atomic_load(&hints_live) == 0) return h;
    pthread_rwlock_rdlock(&hints_lock);
    if (hints_cap) {
        size_t j = slot_of(f, hints_cap);
        while (hints[j].key && hints[j].key != f) j = (j + 1) & (hints_cap - 1);
        if (hints[j].key) h = hints[j].hint;
    }
    pthread_rwlock_unlock(&hints_lock);
    return h;
}

static bool is_binary(const kl_arrow_field *f) {
    return f->type == KL_ARROW_BINARY || f->type == KL_ARROW_LARGE_BINARY;
}

static bool named(const kl_arrow_field *f, const char *name) {
    size_t n = strlen(name);
    return f->name_len == n && memcmp(f->name, name, n) == 0;
}

/* Spark's Arrow form of VARIANT (ArrowUtils): struct<value: binary, metadata: binary>. */
static bool variant_shaped(const kl_arrow_field *f) {
    if (f->type != KL_ARROW_STRUCT || f->n_children != 2) return false;
    const kl_arrow_field *a = &f->children[0], *b = &f->children[1];
    return is_binary(a) && is_binary(b) &&
           ((named(a, "value") && named(b, "metadata")) ||
            (named(a, "metadata") && named(b, "value")));
}

bool kl_table_field_is_variant(const kl_arrow_field *f) {
    if (!variant_shaped(f)) return false;
    kl_spark_hint h = kl_table_field_hint(f);
    return h.kind == KL_SPARK_HINT_VARIANT || h.kind == KL_SPARK_HINT_NONE;
}

static void hint_tree_free(hint_node *n) {
    for (size_t i = 0; i < n->n; i++) hint_tree_free(&n->children[i]);
    free(n->children);
}

static bool valid_range(const Spark__Connect__DataType *dt, int max, int *start, int *end) {
    int s = 0, e = max;
    if (dt->kind_case == SPARK__CONNECT__DATA_TYPE__KIND_YEAR_MONTH_INTERVAL &&
        dt->year_month_interval) {
        if (dt->year_month_interval->has_start_field) s = dt->year_month_interval->start_field;
        if (dt->year_month_interval->has_end_field) e = dt->year_month_interval->end_field;
    } else if (dt->kind_case == SPARK__CONNECT__DATA_TYPE__KIND_DAY_TIME_INTERVAL &&
               dt->day_time_interval) {
        if (dt->day_time_interval->has_start_field) s = dt->day_time_interval->start_field;
        if (dt->day_time_interval->has_end_field) e = dt->day_time_interval->end_field;
    }
    if (s < 0 || e > max || s > e) return false; /* not a type Spark makes: keep the full form */
    *start = s;
    *end = e;
    return true;
}

static int hint_children(hint_node *n, size_t count) {
    n->children = calloc(count ? count : 1, sizeof *n->children);
    if (!n->children) return -ENOMEM;
    n->n = count;
    return 0;
}

/* Converts a DataType (depth levels at most, like the Arrow decoder) into n. */
static int hint_build(hint_node *n, const Spark__Connect__DataType *dt, int depth) {
    memset(n, 0, sizeof *n);
    if (!dt || depth > KL_ARROW_MAX_DEPTH) return 0;
    int rc = 0;
    switch (dt->kind_case) {
    case SPARK__CONNECT__DATA_TYPE__KIND_YEAR_MONTH_INTERVAL:
        if (valid_range(dt, 1, &n->hint.start, &n->hint.end))
            n->hint.kind = KL_SPARK_HINT_YEAR_MONTH;
        return 0;
    case SPARK__CONNECT__DATA_TYPE__KIND_DAY_TIME_INTERVAL:
        if (valid_range(dt, 3, &n->hint.start, &n->hint.end)) n->hint.kind = KL_SPARK_HINT_DAY_TIME;
        return 0;
    case SPARK__CONNECT__DATA_TYPE__KIND_VARIANT:
        n->hint.kind = KL_SPARK_HINT_VARIANT;
        return 0;
    case SPARK__CONNECT__DATA_TYPE__KIND_UDT:
        return dt->udt ? hint_build(n, dt->udt->sql_type, depth) : 0;
    case SPARK__CONNECT__DATA_TYPE__KIND_ARRAY:
        n->shape = SHAPE_LIST;
        if (!dt->array || (rc = hint_children(n, 1)) != 0) return rc;
        return hint_build(&n->children[0], dt->array->element_type, depth + 1);
    case SPARK__CONNECT__DATA_TYPE__KIND_MAP:
        n->shape = SHAPE_MAP;
        if (!dt->map || (rc = hint_children(n, 1)) != 0) return rc;
        n->children[0].shape = SHAPE_ENTRIES;
        if ((rc = hint_children(&n->children[0], 2)) != 0) return rc;
        hint_node *kv = n->children[0].children;
        if ((rc = hint_build(&kv[0], dt->map->key_type, depth + 2)) != 0) return rc;
        return hint_build(&kv[1], dt->map->value_type, depth + 2);
    case SPARK__CONNECT__DATA_TYPE__KIND_STRUCT:
        n->shape = SHAPE_STRUCT;
        n->hint.kind = KL_SPARK_HINT_STRUCT;
        if (!dt->struct_ || (rc = hint_children(n, dt->struct_->n_fields)) != 0) return rc;
        for (size_t i = 0; i < n->n && rc == 0; i++) {
            const Spark__Connect__DataType__StructField *sf = dt->struct_->fields[i];
            rc = hint_build(&n->children[i], sf ? sf->data_type : NULL, depth + 1);
        }
        return rc;
    default:
        return 0;
    }
}

static bool shape_fits(const hint_node *n, const kl_arrow_field *f) {
    switch (n->shape) {
    case SHAPE_STRUCT:
    case SHAPE_ENTRIES:
        return f->type == KL_ARROW_STRUCT;
    case SHAPE_LIST:
        return f->type == KL_ARROW_LIST || f->type == KL_ARROW_LARGE_LIST ||
               f->type == KL_ARROW_FIXED_SIZE_LIST;
    case SHAPE_MAP:
        return f->type == KL_ARROW_MAP;
    case SHAPE_LEAF:
        return true;
    }
    return false;
}

static int hints_walk(kl_table *t, const kl_arrow_field *f, const hint_node *n) {
    if (!shape_fits(n, f)) return 0;
    kl_spark_hint h = n->hint;
    bool enter = (h.kind == KL_SPARK_HINT_YEAR_MONTH && f->type == KL_ARROW_INTERVAL &&
                  f->interval_unit == KL_ARROW_YEAR_MONTH) ||
                 (h.kind == KL_SPARK_HINT_DAY_TIME && f->type == KL_ARROW_DURATION) ||
                 (h.kind == KL_SPARK_HINT_VARIANT && f->type == KL_ARROW_STRUCT) ||
                 /* a real struct only needs saying when it could pass for a variant */
                 (h.kind == KL_SPARK_HINT_STRUCT && variant_shaped(f));
    if (enter) {
        int rc = hints_put(t, f, h);
        if (rc != 0) return rc;
    }
    if (h.kind == KL_SPARK_HINT_VARIANT) return 0;
    size_t k = n->n < f->n_children ? n->n : f->n_children;
    for (size_t i = 0; i < k; i++) {
        int rc = hints_walk(t, &f->children[i], &n->children[i]);
        if (rc != 0) return rc;
    }
    return 0;
}

static int hints_register_stream(kl_table *t, const kl_arrow_stream *s) {
    const hint_node *top = t->spark;
    size_t k = top->n < s->schema.n_fields ? top->n : s->schema.n_fields;
    for (size_t i = 0; i < k; i++) {
        int rc = hints_walk(t, &s->schema.fields[i], &top->children[i]);
        if (rc != 0) return rc;
    }
    return 0;
}

int kl_table_apply_spark_schema(kl_table *t, const struct Spark__Connect__DataType *schema) {
    if (!schema || schema->kind_case != SPARK__CONNECT__DATA_TYPE__KIND_STRUCT || !schema->struct_)
        return -EINVAL;
    if (t->spark) { /* a second schema replaces the first */
        hints_forget(t);
        hint_tree_free(t->spark);
        free(t->spark);
        t->spark = NULL;
    }
    hint_node *top = calloc(1, sizeof *top);
    if (!top) return -ENOMEM;
    int rc = hint_build(top, schema, 0);
    if (rc != 0) {
        hint_tree_free(top);
        free(top);
        return rc;
    }
    t->spark = top;
    for (size_t i = 0; i < t->n_streams && rc == 0; i++)
        rc = hints_register_stream(t, t->streams[i]);
    return rc;
}
