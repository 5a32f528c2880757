#include "render/cell.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "render/datetime.h"
#include "render/javanum.h"
#include "render/table.h"
#include "render/unicode.h"
#include "render/variant.h"

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

/* Spark's JSON text of a VARIANT; a malformed encoding (Spark would fail the query) shows as the
 * struct of its two binaries instead. */
static int put_variant(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i) {
    const kl_arrow_array *value = NULL, *meta = NULL;
    for (size_t k = 0; k < a->n_children; k++) {
        const kl_arrow_field *f = a->children[k].field;
        if (f->name_len == 5 && memcmp(f->name, "value", 5) == 0) value = &a->children[k];
        if (f->name_len == 8 && memcmp(f->name, "metadata", 8) == 0) meta = &a->children[k];
    }
    if (value && meta) {
        kl_arrow_bytes v = kl_arrow_get_bytes(value, a->offset + i);
        kl_arrow_bytes m = kl_arrow_get_bytes(meta, a->offset + i);
        size_t start = b->len;
        size_t room = c->limit == (size_t)-1 ? 0 : c->limit > start ? c->limit - start + 4 : 4;
        bool capped = false;
        int rc = kl_variant_to_json(b, v.ptr, v.len, m.ptr, m.len, room, &capped);
        if (rc == 0) {
            if (capped) c->capped = true;
            return 0;
        }
        kl_render_buf_truncate(b, start);
        if (rc == -ENOMEM) return 0; /* b->failed tells */
    }
    return put_struct(c, b, a, i);
}

static const char *const dt_names[] = {"DAY", "HOUR", "MINUTE", "SECOND"};

/* IntervalUtils.toYearMonthIntervalString, ANSI style, for fields start..end (0 YEAR, 1 MONTH). */
static size_t year_month_text(int32_t months, int start, int end, char *buf) {
    int64_t abs = months < 0 ? -(int64_t)months : months;
    const char *sign = months < 0 ? "-" : "";
    if (start == end && start == 0)
        return (size_t)sprintf(buf, "INTERVAL '%s%lld' YEAR", sign, (long long)(abs / 12));
    if (start == end) return (size_t)sprintf(buf, "INTERVAL '%d' MONTH", (int)months);
    return (size_t)sprintf(buf, "INTERVAL '%s%lld-%lld' YEAR TO MONTH", sign, (long long)(abs / 12),
                           (long long)(abs % 12));
}

/* Seconds with microseconds as BigDecimal.valueOf(us, 6).stripTrailingZeros().toPlainString(),
 * zero-padded to two integer digits. */
static size_t seconds_text(int64_t us, char *buf) {
    size_t n = (size_t)sprintf(buf, "%s%lld", us < 10000000 ? "0" : "", (long long)(us / 1000000));
    int64_t frac = us % 1000000;
    if (frac) {
        n += (size_t)sprintf(buf + n, ".%06lld", (long long)frac);
        while (buf[n - 1] == '0') n--;
        buf[n] = '\0';
    }
    return n;
}

/* IntervalUtils.toDayTimeIntervalString, ANSI style, for fields start..end (0 DAY, 1 HOUR,
 * 2 MINUTE, 3 SECOND): the leading field holds everything above it ("INTERVAL '100' HOUR"). */
static size_t day_time_text(int64_t us, int start, int end, char *buf) {
    static const int64_t unit[] = {86400000000LL, 3600000000LL, 60000000LL, 1000000LL};
    size_t n = (size_t)sprintf(buf, "INTERVAL '");
    if (us == INT64_MIN) {
        /* -us overflows; Spark spells this one out from its own digits. */
        static const char *const first[] = {"-106751991", "-2562047788", "-153722867280",
                                            "-9223372036854.775808"};
        static const char base[] = "-106751991 04:00:54.775808000";
        static const int from[] = {10, 13, 16}, to[] = {0, 13, 16, 26};
        n += (size_t)sprintf(buf + n, "%s", first[start]);
        if (start != end)
            n += (size_t)sprintf(buf + n, "%.*s", to[end] - from[start], base + from[start]);
    } else {
        int64_t rest = us < 0 ? -us : us;
        if (us < 0) buf[n++] = '-';
        if (start == 3) {
            n += seconds_text(rest, buf + n);
        } else {
            n += (size_t)sprintf(buf + n, start == 0 ? "%lld" : "%02lld",
                                 (long long)(rest / unit[start]));
            rest %= unit[start];
        }
        for (int f = start + 1; f <= end; f++) {
            if (f == 3) {
                buf[n++] = ':';
                n += seconds_text(rest, buf + n);
            } else {
                n += (size_t)sprintf(buf + n, "%c%02lld", f == 1 ? ' ' : ':',
                                     (long long)(rest / unit[f]));
                rest %= unit[f];
            }
        }
    }
    n += (size_t)sprintf(buf + n, "' %s", dt_names[start]);
    if (end != start) n += (size_t)sprintf(buf + n, " TO %s", dt_names[end]);
    return n;
}

static size_t interval_text(const kl_arrow_field *f, int64_t v, char *buf) {
    bool ym = f->type == KL_ARROW_INTERVAL;
    kl_spark_hint h = kl_table_field_hint(f);
    int start = 0, end = ym ? 1 : 3; /* Arrow alone: the full range */
    if (h.kind == (ym ? KL_SPARK_HINT_YEAR_MONTH : KL_SPARK_HINT_DAY_TIME)) {
        start = h.start;
        end = h.end;
    }
    return ym ? year_month_text((int32_t)v, start, end, buf) : day_time_text(v, start, end, buf);
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
        n = interval_text(f, to_micros(kl_arrow_get_int(a, i), f->time_unit), tmp);
        kl_render_buf_append(b, tmp, n);
        return 0;
    case KL_ARROW_INTERVAL:
        if (f->interval_unit == KL_ARROW_YEAR_MONTH) {
            n = interval_text(f, kl_arrow_get_int(a, i), tmp);
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
        return kl_table_field_is_variant(f) ? put_variant(c, b, a, i) : put_struct(c, b, a, i);
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
