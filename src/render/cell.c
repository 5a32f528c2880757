#include "render/cell.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "render/datetime.h"
#include "render/javanum.h"
#include "render/table.h"
#include "render/unicode.h"

void kl_cell_ctx_init(kl_cell_ctx *c, const char *zone, size_t max_bytes, char *err) {
    memset(c, 0, sizeof *c);
    c->zone = zone;
    c->max_bytes = max_bytes;
    c->err = err;
}

int kl_cell_zone(kl_cell_ctx *c, const kl_arrow_field *f, const kl_tz **out) {
    *out = NULL;
    if (!f->timezone) return 0;
    const char *id = c->zone ? c->zone : f->timezone;
    if (c->cached_id && strcmp(c->cached_id, id) == 0) {
        *out = c->cached_tz;
        return 0;
    }
    int rc = kl_tz_get(id, out);
    if (rc != 0) {
        snprintf(c->err, KL_RENDER_ERRLEN, "cannot use time zone '%s': %s", id,
                 rc == -ENOENT ? "not in the zoneinfo database" : strerror(-rc));
        return -EINVAL;
    }
    c->cached_id = id;
    c->cached_tz = *out;
    return 0;
}

static int64_t per_second(kl_arrow_time_unit u) {
    return u == KL_ARROW_SECOND        ? 1
           : u == KL_ARROW_MILLISECOND ? 1000
           : u == KL_ARROW_MICROSECOND ? 1000000
                                       : 1000000000;
}

int kl_cell_timestamp(kl_cell_ctx *c, const kl_arrow_array *a, int64_t i, bool iso, char *buf) {
    const kl_tz *tz;
    int rc = kl_cell_zone(c, a->field, &tz);
    if (rc != 0) return rc;
    int64_t sec;
    int32_t ns;
    kl_datetime_split(kl_arrow_get_int(a, i), per_second(a->field->time_unit), &sec, &ns);
    int32_t off = tz ? kl_tz_offset(tz, sec) : 0;
    /* Only a seconds-unit value near the int64 limits could overflow; clamp it there. */
    int64_t local = off > 0 && sec > INT64_MAX - off   ? INT64_MAX
                    : off < 0 && sec < INT64_MIN - off ? INT64_MIN
                                                       : sec + off;
    size_t n = kl_datetime_local(local, ns, iso, buf);
    if (iso && tz) n += kl_datetime_offset(off, buf + n);
    return (int)n;
}

/* Saturating: values far beyond Spark's range (Arrow allows them) stay ordered, never overflow. */
static int64_t mul_sat(int64_t v, int64_t m) {
    if (v > INT64_MAX / m) return INT64_MAX;
    if (v < INT64_MIN / m) return INT64_MIN;
    return v * m;
}

static int64_t to_micros(int64_t v, kl_arrow_time_unit u) {
    if (u == KL_ARROW_NANOSECOND) return v / 1000;
    return mul_sat(v, u == KL_ARROW_SECOND ? 1000000 : u == KL_ARROW_MILLISECOND ? 1000 : 1);
}

/* Past the cap nothing more is produced; the caller cuts and marks the cell. */
static bool full(kl_cell_ctx *c, kl_render_buf *b) {
    if (b->failed || b->len >= c->limit) {
        c->capped = true;
        return true;
    }
    return false;
}

static int put_value(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i);

static void put_bytes_hex(kl_cell_ctx *c, kl_render_buf *b, kl_arrow_bytes v) {
    static const char hex[] = "0123456789ABCDEF";
    kl_render_buf_putc(b, '[');
    for (size_t k = 0; k < v.len; k++) {
        if (full(c, b)) return;
        char x[3] = {' ', hex[v.ptr[k] >> 4], hex[v.ptr[k] & 15]};
        kl_render_buf_append(b, k ? x : x + 1, k ? 3 : 2);
    }
    kl_render_buf_putc(b, ']');
}

static void put_string(kl_cell_ctx *c, kl_render_buf *b, kl_arrow_bytes v) {
    size_t room = c->limit > b->len ? c->limit - b->len : 0;
    if (v.len > room) { /* a few bytes more, so the cut lands on a character */
        if (v.len - room > 4) v.len = room + 4;
        c->capped = true;
    }
    kl_unicode_append_repaired(b, v.ptr, v.len);
}

/* Spark's separator between elements: "," then " NULL" or " value". */
static int put_child(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i,
                     bool first) {
    if (!first) kl_render_buf_puts(b, ", ");
    return put_value(c, b, a, i);
}

static int put_list(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i) {
    int64_t s, e;
    kl_arrow_get_range(a, i, &s, &e);
    kl_render_buf_putc(b, '[');
    for (int64_t k = s; k < e && a->n_children == 1; k++) {
        if (full(c, b)) return 0;
        int rc = put_child(c, b, &a->children[0], k, k == s);
        if (rc) return rc;
    }
    kl_render_buf_putc(b, ']');
    return 0;
}

static int put_struct(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i) {
    kl_render_buf_putc(b, '{');
    for (size_t k = 0; k < a->n_children; k++) {
        if (full(c, b)) return 0;
        int rc = put_child(c, b, &a->children[k], a->offset + i, k == 0);
        if (rc) return rc;
    }
    kl_render_buf_putc(b, '}');
    return 0;
}

static int put_map(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i) {
    int64_t s, e;
    kl_arrow_get_range(a, i, &s, &e);
    const kl_arrow_array *ent = a->n_children == 1 ? &a->children[0] : NULL;
    kl_render_buf_putc(b, '{');
    for (int64_t k = s; k < e && ent && ent->n_children == 2; k++) {
        if (full(c, b)) return 0;
        if (k > s) kl_render_buf_puts(b, ", ");
        int rc = put_value(c, b, &ent->children[0], ent->offset + k);
        if (rc) return rc;
        kl_render_buf_puts(b, " -> ");
        if ((rc = put_value(c, b, &ent->children[1], ent->offset + k))) return rc;
    }
    kl_render_buf_putc(b, '}');
    return 0;
}

static int put_value(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i) {
    if (full(c, b)) return 0;
    if (kl_arrow_is_null(a, i)) {
        kl_render_buf_puts(b, "NULL");
        return 0;
    }
    const kl_arrow_field *f = a->field;
    char tmp[KL_ARROW_DECIMAL_STRLEN > KL_DATETIME_LEN ? KL_ARROW_DECIMAL_STRLEN : KL_DATETIME_LEN];
    size_t n;
    switch (f->type) {
    case KL_ARROW_NULL:
        kl_render_buf_puts(b, "NULL");
        return 0;
    case KL_ARROW_BOOL:
        kl_render_buf_puts(b, kl_arrow_get_bool(a, i) ? "true" : "false");
        return 0;
    case KL_ARROW_INT:
        if (f->is_signed)
            kl_render_buf_printf(b, "%lld", (long long)kl_arrow_get_int(a, i));
        else
            kl_render_buf_printf(b, "%llu", (unsigned long long)kl_arrow_get_uint(a, i));
        return 0;
    case KL_ARROW_FLOAT:
        n = f->bit_width == 64 ? kl_javanum_double(kl_arrow_get_float(a, i), tmp)
                               : kl_javanum_float((float)kl_arrow_get_float(a, i), tmp);
        kl_render_buf_append(b, tmp, n);
        return 0;
    case KL_ARROW_DECIMAL:
        n = f->bit_width <= 128 ? kl_arrow_decimal128_to_string(kl_arrow_get_decimal128(a, i),
                                                                f->scale, tmp, sizeof tmp)
                                : kl_arrow_decimal256_to_string(kl_arrow_get_decimal256(a, i),
                                                                f->scale, tmp, sizeof tmp);
        kl_render_buf_append(b, tmp, n < sizeof tmp ? n : sizeof tmp - 1);
        return 0;
    case KL_ARROW_UTF8:
    case KL_ARROW_LARGE_UTF8:
        put_string(c, b, kl_arrow_get_bytes(a, i));
        return 0;
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_BINARY:
    case KL_ARROW_FIXED_SIZE_BINARY:
        put_bytes_hex(c, b, kl_arrow_get_bytes(a, i));
        return 0;
    case KL_ARROW_DATE: {
        int64_t v = kl_arrow_get_int(a, i);
        if (f->date_unit == KL_ARROW_DATE_MILLISECOND)
            v = v / 86400000 - (v % 86400000 < 0); /* floor */
        kl_render_buf_append(b, tmp, kl_datetime_date(v, tmp));
        return 0;
    }
    case KL_ARROW_TIME: {
        int64_t v = kl_arrow_get_int(a, i);
        int64_t ns = mul_sat(v, 1000000000 / per_second(f->time_unit));
        kl_render_buf_append(b, tmp, kl_datetime_time_of_day(ns, tmp));
        return 0;
    }
    case KL_ARROW_TIMESTAMP: {
        int rc = kl_cell_timestamp(c, a, i, false, tmp);
        if (rc < 0) return rc;
        kl_render_buf_append(b, tmp, (size_t)rc);
        return 0;
    }
    case KL_ARROW_DURATION:
        n = kl_datetime_day_time(to_micros(kl_arrow_get_int(a, i), f->time_unit), tmp);
        kl_render_buf_append(b, tmp, n);
        return 0;
    case KL_ARROW_INTERVAL:
        if (f->interval_unit == KL_ARROW_YEAR_MONTH) {
            n = kl_datetime_year_month((int32_t)kl_arrow_get_int(a, i), tmp);
        } else if (f->interval_unit == KL_ARROW_DAY_TIME) {
            kl_arrow_day_time v = kl_arrow_get_day_time(a, i);
            n = kl_datetime_calendar(0, v.days, (int64_t)v.milliseconds * 1000, tmp);
        } else {
            kl_arrow_month_day_nano v = kl_arrow_get_month_day_nano(a, i);
            n = kl_datetime_calendar(v.months, v.days, v.nanoseconds / 1000, tmp);
        }
        kl_render_buf_append(b, tmp, n);
        return 0;
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
        return put_list(c, b, a, i);
    case KL_ARROW_STRUCT:
        return put_struct(c, b, a, i);
    case KL_ARROW_MAP:
        return put_map(c, b, a, i);
    }
    return 0;
}

int kl_cell_text(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i,
                 bool *capped) {
    size_t start = b->len;
    c->limit =
        c->max_bytes && c->max_bytes < (size_t)-1 - start ? start + c->max_bytes : (size_t)-1;
    c->capped = false;
    int rc = put_value(c, b, a, i);
    bool cut = c->capped || b->len - start > c->max_bytes;
    if (c->max_bytes == 0 || b->failed) cut = false;
    if (cut) {
        kl_render_buf_truncate(
            b, start + kl_unicode_prefix(b->data + start, b->len - start, c->max_bytes));
        kl_render_buf_puts(b, "...");
    }
    if (capped) *capped = cut;
    return rc;
}
