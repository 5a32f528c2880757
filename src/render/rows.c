#include "render/rows.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/cell.h"
#include "render/datetime.h"
#include "render/javanum.h"
#include "render/unicode.h"

typedef struct rctx {
    kl_cell_ctx cell;
    kl_render_buf tmp;
    int rc; /* first failure: -EINVAL (zone) or -ENOMEM */
} rctx;

static void rctx_init(rctx *r, const kl_rows_options *o, char *err) {
    memset(r, 0, sizeof *r);
    kl_cell_ctx_init(&r->cell, o ? o->time_zone : NULL, 0, err);
    kl_render_buf_init(&r->tmp);
}

static void fail(rctx *r, int rc) {
    if (r->rc == 0) r->rc = rc;
}

static bool is_string_type(const kl_arrow_field *f) {
    return f->type == KL_ARROW_UTF8 || f->type == KL_ARROW_LARGE_UTF8;
}

static int64_t unit_per_second(kl_arrow_time_unit u) {
    switch (u) {
    case KL_ARROW_SECOND:
        return 1;
    case KL_ARROW_MILLISECOND:
        return 1000;
    case KL_ARROW_MICROSECOND:
        return 1000000;
    default:
        return 1000000000;
    }
}

/* Text of a value into r->tmp: Spark's show() text, or (timestamps, dates) ISO 8601. Returns false
 * on failure (recorded in r). */
static bool text_of(rctx *r, const kl_arrow_array *a, int64_t i) {
    kl_render_buf_truncate(&r->tmp, 0);
    const kl_arrow_field *f = a->field;
    if (f->type == KL_ARROW_TIMESTAMP) {
        char buf[KL_DATETIME_LEN];
        int n = kl_cell_timestamp(&r->cell, a, i, true, buf);
        if (n < 0) {
            fail(r, n);
            return false;
        }
        kl_render_buf_append(&r->tmp, buf, (size_t)n);
    } else if (f->type == KL_ARROW_UTF8 || f->type == KL_ARROW_LARGE_UTF8) {
        kl_arrow_bytes v = kl_arrow_get_bytes(a, i);
        kl_unicode_append_repaired(&r->tmp, v.ptr, v.len);
    } else if (f->type == KL_ARROW_DECIMAL) {
        char buf[KL_ARROW_DECIMAL_STRLEN];
        if (f->bit_width <= 128)
            kl_arrow_decimal128_to_string(kl_arrow_get_decimal128(a, i), f->scale, buf, sizeof buf);
        else
            kl_arrow_decimal256_to_string(kl_arrow_get_decimal256(a, i), f->scale, buf, sizeof buf);
        kl_render_buf_puts(&r->tmp, buf);
    } else {
        int rc = kl_cell_text(&r->cell, &r->tmp, a, i, NULL);
        if (rc != 0) {
            fail(r, rc);
            return false;
        }
    }
    if (r->tmp.failed) {
        fail(r, -ENOMEM);
        return false;
    }
    return true;
}

void kl_rows_base64(kl_render_buf *b, const uint8_t *p, size_t n) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char quad[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        quad[0] = alphabet[(v >> 18) & 63];
        quad[1] = alphabet[(v >> 12) & 63];
        quad[2] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        quad[3] = i + 2 < n ? alphabet[v & 63] : '=';
        kl_render_buf_append(b, quad, 4);
    }
}

/* ---- JSON --------------------------------------------------------------------------------- */

static json_t *jvalue(rctx *r, const kl_arrow_array *a, int64_t i);

static json_t *jtext(rctx *r, const kl_arrow_array *a, int64_t i) {
    if (!text_of(r, a, i)) return NULL;
    return json_stringn(r->tmp.len ? r->tmp.data : "", r->tmp.len);
}

static json_t *jfloat(const kl_arrow_field *f, double v) {
    if (isnan(v)) return json_string("NaN");
    if (isinf(v)) return json_string(v > 0 ? "Infinity" : "-Infinity");
    if (f->bit_width == 64) return json_real(v);
    /* A float's shortest decimal digits, so 0.1f arrives as 0.1 and not 0.10000000149011612. */
    char buf[64];
    kl_javanum_float((float)v, buf);
    return json_real(strtod(buf, NULL));
}

static json_t *jlist(rctx *r, const kl_arrow_array *a, int64_t i) {
    int64_t s, e;
    kl_arrow_get_range(a, i, &s, &e);
    json_t *arr = json_array();
    for (int64_t k = s; arr && k < e && a->n_children == 1; k++) {
        json_t *v = jvalue(r, &a->children[0], k);
        if (!v || json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *jstruct(rctx *r, const kl_arrow_array *a, int64_t i) {
    json_t *obj = json_object();
    kl_render_buf name;
    kl_render_buf_init(&name);
    for (size_t k = 0; obj && k < a->n_children; k++) {
        const kl_arrow_field *f = a->children[k].field;
        kl_render_buf_truncate(&name, 0);
        kl_unicode_append_repaired(&name, (const uint8_t *)f->name, f->name_len);
        json_t *v = name.failed ? NULL : jvalue(r, &a->children[k], a->offset + i);
        if (!v || json_object_setn_new(obj, name.len ? name.data : "", name.len, v) != 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    kl_render_buf_free(&name);
    return obj;
}

static json_t *jmap(rctx *r, const kl_arrow_array *a, int64_t i) {
    int64_t s, e;
    kl_arrow_get_range(a, i, &s, &e);
    const kl_arrow_array *ent = a->n_children == 1 ? &a->children[0] : NULL;
    if (!ent || ent->n_children != 2) return json_object();
    const kl_arrow_array *keys = &ent->children[0], *vals = &ent->children[1];
    /* JSON object keys are text: string keys map naturally; others would lose their type, so
     * such maps become [key, value] pairs. */
    bool as_object = is_string_type(keys->field);
    json_t *out = as_object ? json_object() : json_array();
    for (int64_t k = s; out && k < e; k++) {
        int64_t row = ent->offset + k;
        json_t *v = jvalue(r, vals, row);
        bool ok = v != NULL;
        if (ok && as_object) {
            ok = text_of(r, keys, row);
            if (ok)
                ok = json_object_setn_new(out, r->tmp.len ? r->tmp.data : "", r->tmp.len, v) == 0;
            else
                json_decref(v);
        } else if (ok) {
            json_t *key = jvalue(r, keys, row);
            ok = key != NULL;
            if (ok)
                ok = json_array_append_new(out, json_pack("[oo]", key, v)) == 0;
            else
                json_decref(v);
        }
        if (!ok) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

static json_t *jvalue(rctx *r, const kl_arrow_array *a, int64_t i) {
    if (kl_arrow_is_null(a, i)) return json_null();
    const kl_arrow_field *f = a->field;
    switch (f->type) {
    case KL_ARROW_NULL:
        return json_null();
    case KL_ARROW_BOOL:
        return json_boolean(kl_arrow_get_bool(a, i));
    case KL_ARROW_INT:
        if (f->is_signed || kl_arrow_get_uint(a, i) <= (uint64_t)INT64_MAX)
            return json_integer(kl_arrow_get_int(a, i));
        return jtext(r, a, i); /* beyond json_int_t: the exact digits */
    case KL_ARROW_FLOAT:
        return jfloat(f, kl_arrow_get_float(a, i));
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_BINARY:
    case KL_ARROW_FIXED_SIZE_BINARY: {
        kl_arrow_bytes v = kl_arrow_get_bytes(a, i);
        kl_render_buf_truncate(&r->tmp, 0);
        kl_rows_base64(&r->tmp, v.ptr, v.len);
        if (r->tmp.failed) return NULL;
        return json_stringn(r->tmp.len ? r->tmp.data : "", r->tmp.len);
    }
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
        return jlist(r, a, i);
    case KL_ARROW_STRUCT:
        return jstruct(r, a, i);
    case KL_ARROW_MAP:
        return jmap(r, a, i);
    default: /* decimal, strings, dates, timestamps, times, intervals */
        return jtext(r, a, i);
    }
}

json_t *kl_rows_columns(const kl_table *t) {
    const kl_arrow_schema *schema = kl_table_schema(t);
    json_t *cols = json_array();
    kl_render_buf name, type;
    kl_render_buf_init(&name);
    kl_render_buf_init(&type);
    for (size_t c = 0; cols && schema && c < schema->n_fields; c++) {
        const kl_arrow_field *f = &schema->fields[c];
        kl_render_buf_truncate(&name, 0);
        kl_render_buf_truncate(&type, 0);
        kl_unicode_append_repaired(&name, (const uint8_t *)f->name, f->name_len);
        kl_table_type_name(&type, f);
        json_t *col = name.failed || type.failed
                          ? NULL
                          : json_pack("{s:s%, s:s%}", "name", name.len ? name.data : "", name.len,
                                      "type", type.len ? type.data : "", type.len);
        if (!col || json_array_append_new(cols, col) != 0) {
            json_decref(cols);
            cols = NULL;
        }
    }
    kl_render_buf_free(&name);
    kl_render_buf_free(&type);
    return cols;
}

int kl_rows_json(const kl_table *t, const kl_rows_options *o, json_t **out,
                 char err[KL_RENDER_ERRLEN]) {
    rctx r;
    rctx_init(&r, o, err);
    int64_t want = o && o->max_rows >= 0 ? o->max_rows : INT64_MAX, done = 0;
    const kl_arrow_schema *schema = kl_table_schema(t);
    size_t cols = schema ? schema->n_fields : 0;
    json_t *rows = json_array();
    bool ok = rows != NULL;
    for (size_t ch = 0; ok && ch < kl_table_chunks(t) && done < want; ch++) {
        int64_t n;
        const kl_arrow_batch *batch = kl_table_chunk(t, ch, &n);
        for (int64_t i = 0; ok && i < n && done < want; i++, done++) {
            json_t *row = json_array();
            ok = row != NULL;
            for (size_t c = 0; ok && c < cols && c < batch->n_columns; c++) {
                json_t *v = jvalue(&r, &batch->columns[c], i);
                ok = v && json_array_append_new(row, v) == 0;
            }
            if (ok)
                ok = json_array_append_new(rows, row) == 0;
            else
                json_decref(row);
        }
    }
    kl_render_buf_free(&r.tmp);
    if (!ok) {
        json_decref(rows);
        int rc = r.rc ? r.rc : -ENOMEM;
        if (rc == -ENOMEM) snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        *out = NULL;
        return rc;
    }
    *out = rows;
    return 0;
}

/* ---- msgpack ------------------------------------------------------------------------------ */

static int to_buf(void *data, const char *p, size_t n) {
    kl_render_buf *b = data;
    kl_render_buf_append(b, p, n);
    return b->failed ? -1 : 0;
}

typedef struct mctx {
    rctx r;
    msgpack_packer pk;
    kl_render_buf *out;
} mctx;

static void mvalue(mctx *m, const kl_arrow_array *a, int64_t i);

static void mstr(mctx *m, const char *s, size_t n) {
    msgpack_pack_str_with_body(&m->pk, s, n);
}

static void mtext(mctx *m, const kl_arrow_array *a, int64_t i) {
    if (text_of(&m->r, a, i))
        mstr(m, m->r.tmp.data ? m->r.tmp.data : "", m->r.tmp.len);
    else
        msgpack_pack_nil(&m->pk); /* keeps the document well formed; the call fails anyway */
}

static void mtimestamp(mctx *m, const kl_arrow_array *a, int64_t i) {
    const kl_arrow_field *f = a->field;
    if (!f->timezone) { /* wall-clock time: no instant to encode */
        mtext(m, a, i);
        return;
    }
    int64_t sec;
    int32_t nanos;
    kl_datetime_split(kl_arrow_get_int(a, i), unit_per_second(f->time_unit), &sec, &nanos);
    msgpack_timestamp ts = {.tv_sec = sec, .tv_nsec = (uint32_t)nanos};
    msgpack_pack_timestamp(&m->pk, &ts);
}

static void mlist(mctx *m, const kl_arrow_array *a, int64_t i) {
    int64_t s, e;
    kl_arrow_get_range(a, i, &s, &e);
    if (a->n_children != 1) e = s;
    msgpack_pack_array(&m->pk, (size_t)(e - s));
    for (int64_t k = s; k < e; k++) mvalue(m, &a->children[0], k);
}

static void mstruct(mctx *m, const kl_arrow_array *a, int64_t i) {
    msgpack_pack_map(&m->pk, a->n_children);
    for (size_t k = 0; k < a->n_children; k++) {
        const kl_arrow_field *f = a->children[k].field;
        kl_render_buf_truncate(&m->r.tmp, 0);
        kl_unicode_append_repaired(&m->r.tmp, (const uint8_t *)f->name, f->name_len);
        mstr(m, m->r.tmp.data ? m->r.tmp.data : "", m->r.tmp.len);
        mvalue(m, &a->children[k], a->offset + i);
    }
}

static void mmap(mctx *m, const kl_arrow_array *a, int64_t i) {
    int64_t s, e;
    kl_arrow_get_range(a, i, &s, &e);
    const kl_arrow_array *ent = a->n_children == 1 ? &a->children[0] : NULL;
    if (!ent || ent->n_children != 2) e = s;
    msgpack_pack_map(&m->pk, (size_t)(e - s));
    for (int64_t k = s; k < e; k++) {
        mvalue(m, &ent->children[0], ent->offset + k);
        mvalue(m, &ent->children[1], ent->offset + k);
    }
}

static void mvalue(mctx *m, const kl_arrow_array *a, int64_t i) {
    const kl_arrow_field *f = a->field;
    if (kl_arrow_is_null(a, i) || f->type == KL_ARROW_NULL) {
        msgpack_pack_nil(&m->pk);
        return;
    }
    switch (f->type) {
    case KL_ARROW_BOOL:
        if (kl_arrow_get_bool(a, i))
            msgpack_pack_true(&m->pk);
        else
            msgpack_pack_false(&m->pk);
        break;
    case KL_ARROW_INT:
        if (f->is_signed)
            msgpack_pack_int64(&m->pk, kl_arrow_get_int(a, i));
        else
            msgpack_pack_uint64(&m->pk, kl_arrow_get_uint(a, i));
        break;
    case KL_ARROW_FLOAT:
        if (f->bit_width == 64)
            msgpack_pack_double(&m->pk, kl_arrow_get_float(a, i));
        else
            msgpack_pack_float(&m->pk, (float)kl_arrow_get_float(a, i));
        break;
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_BINARY:
    case KL_ARROW_FIXED_SIZE_BINARY: {
        kl_arrow_bytes v = kl_arrow_get_bytes(a, i);
        msgpack_pack_bin_with_body(&m->pk, v.len ? (const void *)v.ptr : "", v.len);
        break;
    }
    case KL_ARROW_TIMESTAMP:
        mtimestamp(m, a, i);
        break;
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
        mlist(m, a, i);
        break;
    case KL_ARROW_STRUCT:
        mstruct(m, a, i);
        break;
    case KL_ARROW_MAP:
        mmap(m, a, i);
        break;
    default: /* decimal, strings, dates, times, intervals */
        mtext(m, a, i);
        break;
    }
}

int kl_rows_msgpack(const kl_table *t, const kl_rows_options *o, bool truncated, kl_render_buf *out,
                    char err[KL_RENDER_ERRLEN]) {
    mctx m;
    rctx_init(&m.r, o, err);
    m.out = out;
    msgpack_packer_init(&m.pk, out, to_buf);
    const kl_arrow_schema *schema = kl_table_schema(t);
    size_t cols = schema ? schema->n_fields : 0;

    msgpack_pack_map(&m.pk, 3);
    mstr(&m, "columns", 7);
    msgpack_pack_array(&m.pk, cols);
    kl_render_buf type;
    kl_render_buf_init(&type);
    for (size_t c = 0; c < cols; c++) {
        const kl_arrow_field *f = &schema->fields[c];
        msgpack_pack_map(&m.pk, 2);
        mstr(&m, "name", 4);
        kl_render_buf_truncate(&m.r.tmp, 0);
        kl_unicode_append_repaired(&m.r.tmp, (const uint8_t *)f->name, f->name_len);
        mstr(&m, m.r.tmp.data ? m.r.tmp.data : "", m.r.tmp.len);
        mstr(&m, "type", 4);
        kl_render_buf_truncate(&type, 0);
        kl_table_type_name(&type, f);
        mstr(&m, type.data ? type.data : "", type.len);
    }
    if (type.failed) fail(&m.r, -ENOMEM);
    kl_render_buf_free(&type);

    /* The row count comes first in msgpack: count the rows that will be written. */
    int64_t want = o && o->max_rows >= 0 ? o->max_rows : INT64_MAX, total = 0;
    for (size_t ch = 0; ch < kl_table_chunks(t) && total < want; ch++) {
        int64_t n;
        kl_table_chunk(t, ch, &n);
        total += n < want - total ? n : want - total;
    }
    mstr(&m, "rows", 4);
    msgpack_pack_array(&m.pk, (size_t)total);
    int64_t done = 0;
    for (size_t ch = 0; ch < kl_table_chunks(t) && done < total; ch++) {
        int64_t n;
        const kl_arrow_batch *batch = kl_table_chunk(t, ch, &n);
        for (int64_t i = 0; i < n && done < total; i++, done++) {
            msgpack_pack_array(&m.pk, cols);
            for (size_t c = 0; c < cols; c++) {
                if (c < batch->n_columns)
                    mvalue(&m, &batch->columns[c], i);
                else
                    msgpack_pack_nil(&m.pk);
            }
        }
    }
    mstr(&m, "truncated", 9);
    if (truncated)
        msgpack_pack_true(&m.pk);
    else
        msgpack_pack_false(&m.pk);
    kl_render_buf_free(&m.r.tmp);
    if (out->failed) fail(&m.r, -ENOMEM);
    if (m.r.rc == -ENOMEM) snprintf(err, KL_RENDER_ERRLEN, "out of memory");
    return m.r.rc;
}
