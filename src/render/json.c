#include "render/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/cell.h"
#include "render/datetime.h"
#include "render/javanum.h"
#include "render/unicode.h"

#define MAX_SAFE_INTEGER 9007199254740992LL /* 2^53: larger integers lose digits in JavaScript */
#define MAX_EXACT_DIGITS 15                 /* any 15-digit decimal survives a double */

typedef struct jctx {
    kl_cell_ctx cell;
    size_t budget; /* bytes the current cell may still produce */
    kl_render_buf tmp;
    int rc;
} jctx;

static const char *schema_type(const kl_arrow_field *f) {
    switch (f->type) {
    case KL_ARROW_NULL:
        return "any";
    case KL_ARROW_BOOL:
        return "boolean";
    case KL_ARROW_INT:
        return "integer";
    case KL_ARROW_FLOAT:
    case KL_ARROW_DECIMAL:
        return "number";
    case KL_ARROW_DATE:
        return "date";
    case KL_ARROW_TIME:
        return "time";
    case KL_ARROW_TIMESTAMP:
        return "datetime";
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
        return "array";
    case KL_ARROW_STRUCT:
    case KL_ARROW_MAP:
        return "object";
    default:
        return "string";
    }
}

static void charge(jctx *j, size_t n) {
    j->budget = n < j->budget ? j->budget - n : 0;
}

/* A string from text already valid UTF-8, cut to the budget. */
static json_t *text(jctx *j, const char *s, size_t n) {
    if (n > j->budget) {
        size_t keep = kl_unicode_prefix(s, n, j->budget);
        kl_render_buf_truncate(&j->tmp, 0);
        kl_render_buf_append(&j->tmp, s, keep);
        kl_render_buf_puts(&j->tmp, "...");
        j->budget = 0;
        return j->tmp.failed ? NULL : json_stringn(j->tmp.data, j->tmp.len);
    }
    charge(j, n + 2);
    return json_stringn(n ? s : "", n);
}

/* The text/plain text of a value, cut to the budget. */
static json_t *cell_text(jctx *j, const kl_arrow_array *a, int64_t i) {
    kl_render_buf_truncate(&j->tmp, 0);
    j->cell.max_bytes = j->budget ? j->budget : 1;
    int rc = kl_cell_text(&j->cell, &j->tmp, a, i, NULL);
    if (rc != 0) {
        j->rc = rc;
        return NULL;
    }
    if (j->tmp.failed) return NULL;
    charge(j, j->tmp.len + 2);
    return json_stringn(j->tmp.len ? j->tmp.data : "", j->tmp.len);
}

static json_t *number_text(jctx *j, const char *s) {
    charge(j, strlen(s));
    return json_real(strtod(s, NULL));
}

static json_t *value(jctx *j, const kl_arrow_array *a, int64_t i);

/* Writes into out a key that obj does not have yet: key itself, else key_2, key_3, ... */
static int unique_key(const json_t *obj, const char *key, size_t n, kl_render_buf *out) {
    kl_render_buf_truncate(out, 0);
    kl_render_buf_append(out, key, n);
    for (int k = 2; !out->failed && json_object_getn(obj, out->data, out->len); k++) {
        kl_render_buf_truncate(out, 0);
        kl_render_buf_append(out, key, n);
        kl_render_buf_printf(out, "_%d", k);
    }
    return out->failed ? -1 : 0;
}

/* The budget ran out inside a container: say so with a last "..." element. */
static bool out_of_budget(jctx *j, json_t *container) {
    if (j->budget > 0) return false;
    if (json_is_array(container))
        json_array_append_new(container, json_string("..."));
    else
        json_object_set_new(container, "...", json_string("..."));
    return true;
}

static json_t *list(jctx *j, const kl_arrow_array *a, int64_t i) {
    int64_t s, e;
    kl_arrow_get_range(a, i, &s, &e);
    json_t *arr = json_array();
    charge(j, 2);
    for (int64_t k = s; arr && k < e && a->n_children == 1; k++) {
        if (out_of_budget(j, arr)) break;
        json_t *v = value(j, &a->children[0], k);
        if (!v || json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *structure(jctx *j, const kl_arrow_array *a, int64_t i) {
    json_t *obj = json_object();
    kl_render_buf name, key;
    kl_render_buf_init(&name);
    kl_render_buf_init(&key);
    charge(j, 2);
    for (size_t k = 0; obj && k < a->n_children; k++) {
        if (out_of_budget(j, obj)) break;
        const kl_arrow_field *f = a->children[k].field;
        kl_render_buf_truncate(&name, 0);
        kl_unicode_append_repaired(&name, (const uint8_t *)f->name, f->name_len);
        charge(j, name.len + 3);
        json_t *v = value(j, &a->children[k], a->offset + i);
        if (!v || name.failed || unique_key(obj, name.data ? name.data : "", name.len, &key) ||
            json_object_setn_new(obj, key.data, key.len, v)) {
            if (v && (name.failed || key.failed)) json_decref(v);
            json_decref(obj);
            obj = NULL;
        }
    }
    kl_render_buf_free(&name);
    kl_render_buf_free(&key);
    return obj;
}

static json_t *map(jctx *j, const kl_arrow_array *a, int64_t i) {
    int64_t s, e;
    kl_arrow_get_range(a, i, &s, &e);
    const kl_arrow_array *ent = a->n_children == 1 ? &a->children[0] : NULL;
    json_t *obj = json_object();
    charge(j, 2);
    for (int64_t k = s; obj && ent && ent->n_children == 2 && k < e; k++) {
        if (out_of_budget(j, obj)) break;
        json_t *key = cell_text(j, &ent->children[0], ent->offset + k);
        json_t *v = key ? value(j, &ent->children[1], ent->offset + k) : NULL;
        if (!v || json_object_setn_new(obj, json_string_value(key), json_string_length(key), v)) {
            json_decref(key);
            json_decref(obj);
            return NULL;
        }
        json_decref(key);
    }
    return obj;
}

static json_t *value(jctx *j, const kl_arrow_array *a, int64_t i) {
    if (kl_arrow_is_null(a, i)) {
        charge(j, 4);
        return json_null();
    }
    const kl_arrow_field *f = a->field;
    char buf[KL_ARROW_DECIMAL_STRLEN > KL_DATETIME_LEN ? KL_ARROW_DECIMAL_STRLEN : KL_DATETIME_LEN];
    switch (f->type) {
    case KL_ARROW_NULL:
        charge(j, 4);
        return json_null();
    case KL_ARROW_BOOL:
        charge(j, 5);
        return json_boolean(kl_arrow_get_bool(a, i));
    case KL_ARROW_INT:
        charge(j, 8);
        if (f->is_signed) {
            int64_t v = kl_arrow_get_int(a, i);
            if (v >= -MAX_SAFE_INTEGER && v <= MAX_SAFE_INTEGER) return json_integer(v);
            snprintf(buf, sizeof buf, "%lld", (long long)v);
        } else {
            uint64_t v = kl_arrow_get_uint(a, i);
            if (v <= (uint64_t)MAX_SAFE_INTEGER) return json_integer((json_int_t)v);
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
        }
        return json_string(buf);
    case KL_ARROW_FLOAT: {
        double v = kl_arrow_get_float(a, i);
        if (f->bit_width == 64)
            kl_javanum_double(v, buf);
        else
            kl_javanum_float((float)v, buf);
        if (isfinite(v)) return number_text(j, buf);
        charge(j, 4); /* Table Schema's lexical forms; JSON has no such numbers */
        return json_string(isnan(v) ? "NaN" : v > 0 ? "INF" : "-INF");
    }
    case KL_ARROW_DECIMAL: {
        if (f->bit_width <= 128)
            kl_arrow_decimal128_to_string(kl_arrow_get_decimal128(a, i), f->scale, buf, sizeof buf);
        else
            kl_arrow_decimal256_to_string(kl_arrow_get_decimal256(a, i), f->scale, buf, sizeof buf);
        int digits = 0;
        bool lead = true;
        for (const char *p = buf; *p; p++) {
            if (*p < '0' || *p > '9' || (lead && *p == '0')) continue;
            lead = false;
            digits++;
        }
        if (digits <= MAX_EXACT_DIGITS) return number_text(j, buf);
        return text(j, buf, strlen(buf));
    }
    case KL_ARROW_UTF8:
    case KL_ARROW_LARGE_UTF8: {
        kl_arrow_bytes v = kl_arrow_get_bytes(a, i);
        if (v.len > 4 && v.len - 4 > j->budget) v.len = j->budget + 4; /* cut on a char */
        kl_render_buf str;
        kl_render_buf_init(&str);
        kl_unicode_append_repaired(&str, v.ptr, v.len);
        json_t *r = str.failed ? NULL : text(j, str.len ? str.data : "", str.len);
        kl_render_buf_free(&str);
        return r;
    }
    case KL_ARROW_DATE:
    case KL_ARROW_TIME:
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_BINARY:
    case KL_ARROW_FIXED_SIZE_BINARY:
    case KL_ARROW_DURATION:
    case KL_ARROW_INTERVAL:
        return cell_text(j, a, i);
    case KL_ARROW_TIMESTAMP: {
        int n = kl_cell_timestamp(&j->cell, a, i, true, buf);
        if (n < 0) {
            j->rc = n;
            return NULL;
        }
        return text(j, buf, (size_t)n);
    }
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
        return list(j, a, i);
    case KL_ARROW_STRUCT:
        return structure(j, a, i);
    case KL_ARROW_MAP:
        return map(j, a, i);
    }
    return json_null();
}

static json_t *field_json(const char *name, size_t name_len, const kl_arrow_field *f,
                          kl_render_buf *type) {
    kl_render_buf_truncate(type, 0);
    kl_table_type_name(type, f);
    json_t *o = json_object();
    if (!o || type->failed || json_object_set_new(o, "name", json_stringn(name, name_len)) ||
        json_object_set_new(o, "type", json_string(schema_type(f))) ||
        json_object_set_new(o, "sparkType", json_stringn(type->data, type->len))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int kl_json_render(const kl_table *t, const kl_render_options *o, json_t **out,
                   char err[KL_RENDER_ERRLEN]) {
    *out = NULL;
    jctx j;
    memset(&j, 0, sizeof j);
    kl_cell_ctx_init(&j.cell, o->time_zone, o->max_cell_bytes, err);
    kl_render_buf_init(&j.tmp);
    const kl_arrow_schema *schema = kl_table_schema(t);
    size_t cols = schema ? schema->n_fields : 0;

    json_t *root = json_object(), *schema_obj = json_object(), *fields = json_array();
    json_t *data = json_array(), *names = json_array(), *seen = json_object();
    kl_render_buf key, type;
    kl_render_buf_init(&key);
    kl_render_buf_init(&type);
    bool ok = root && schema_obj && fields && data && names && seen;
    for (size_t c = 0; ok && c < cols; c++) { /* rows are objects: names must be unique */
        const kl_arrow_field *f = &schema->fields[c];
        kl_render_buf_truncate(&j.tmp, 0);
        kl_unicode_append_repaired(&j.tmp, (const uint8_t *)f->name, f->name_len);
        ok = !j.tmp.failed && unique_key(seen, j.tmp.data ? j.tmp.data : "", j.tmp.len, &key) == 0;
        json_t *field = ok ? field_json(key.data, key.len, f, &type) : NULL;
        ok = field && json_array_append_new(fields, field) == 0 &&
             json_object_setn_new(seen, key.data, key.len, json_null()) == 0 &&
             json_array_append_new(names, json_stringn(key.data, key.len)) == 0;
    }

    int64_t want = o->max_rows < 0 ? 0 : o->max_rows, done = 0;
    for (size_t ch = 0; ok && ch < kl_table_chunks(t) && done < want; ch++) {
        int64_t n;
        const kl_arrow_batch *batch = kl_table_chunk(t, ch, &n);
        for (int64_t i = 0; ok && i < n && done < want; i++, done++) {
            json_t *row = json_object();
            ok = row != NULL;
            for (size_t c = 0; ok && c < cols && c < batch->n_columns; c++) {
                j.budget = o->max_cell_bytes ? o->max_cell_bytes : (size_t)-1;
                json_t *v = value(&j, &batch->columns[c], i);
                json_t *name = json_array_get(names, c);
                ok = v && json_object_setn_new(row, json_string_value(name),
                                               json_string_length(name), v) == 0;
            }
            if (ok)
                ok = json_array_append_new(data, row) == 0;
            else
                json_decref(row);
        }
    }
    if (ok) ok = json_object_set(schema_obj, "fields", fields) == 0;
    if (ok) ok = json_object_set(root, "schema", schema_obj) == 0;
    if (ok) ok = json_object_set(root, "data", data) == 0;
    json_decref(schema_obj);
    json_decref(fields);
    json_decref(data);
    json_decref(names);
    json_decref(seen);
    kl_render_buf_free(&key);
    kl_render_buf_free(&type);
    kl_render_buf_free(&j.tmp);
    if (!ok) {
        json_decref(root);
        if (j.rc) return j.rc; /* err already names the zone */
        snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        return -ENOMEM;
    }
    *out = root;
    return 0;
}
