#include "render/variant.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render/datetime.h"
#include "render/javanum.h"
#include "render/unicode.h"
#include "spark/arrow.h"

/* Basic types (low two bits of a value's first byte). */
enum { BT_PRIMITIVE = 0, BT_SHORT_STRING = 1, BT_OBJECT = 2, BT_ARRAY = 3 };

/* Primitive type ids (the upper six bits when the basic type is 0). */
enum {
    PT_NULL = 0,
    PT_TRUE = 1,
    PT_FALSE = 2,
    PT_INT8 = 3,
    PT_INT16 = 4,
    PT_INT32 = 5,
    PT_INT64 = 6,
    PT_DOUBLE = 7,
    PT_DECIMAL4 = 8,
    PT_DECIMAL8 = 9,
    PT_DECIMAL16 = 10,
    PT_DATE = 11,
    PT_TIMESTAMP = 12,
    PT_TIMESTAMP_NTZ = 13,
    PT_FLOAT = 14,
    PT_BINARY = 15,
    PT_STRING = 16,
    PT_TIME_NTZ = 17,
    PT_TIMESTAMP_NANOS = 18,
    PT_TIMESTAMP_NTZ_NANOS = 19,
    PT_UUID = 20,
};

/* One open object or array while the tree is walked without recursion. */
typedef struct frame {
    bool object;
    uint32_t size, next; /* elements, and the next one to print */
    unsigned id_size, off_size;
    size_t ids, offsets, data; /* positions in the value */
} frame;

typedef struct vwalk {
    const uint8_t *v, *m;
    size_t vlen, mlen;
    unsigned key_off_size; /* metadata: bytes per dictionary size and offset */
    size_t n_keys, keys_at;
    kl_render_buf *b;
    size_t stop;   /* b->len at which output stops (SIZE_MAX: never) */
    bool capped;   /* stopped there */
    size_t budget; /* value bytes still allowed, against offsets that share subtrees */
    frame *stack;
    size_t depth, cap;
} vwalk;

/* Little-endian unsigned of n (1-4 or 8) bytes at p, if it lies inside len. */
static bool read_le(const uint8_t *s, size_t len, size_t pos, unsigned n, uint64_t *out) {
    if (pos > len || n > len - pos) return false;
    uint64_t x = 0;
    for (unsigned k = 0; k < n; k++) x |= (uint64_t)s[pos + k] << (8 * k);
    *out = x;
    return true;
}

static bool vread(const vwalk *w, size_t pos, unsigned n, uint64_t *out) {
    return read_le(w->v, w->vlen, pos, n, out);
}

static bool full(vwalk *w) {
    if (w->b->failed || w->capped) return true;
    if (w->b->len >= w->stop) {
        w->capped = true;
        return true;
    }
    return false;
}

/* Each value costs a byte of the budget, and strings and binaries their length: a well-formed
 * value pays at most its own size. */
static bool charge(vwalk *w, size_t n) {
    if (n > w->budget) return false;
    w->budget -= n;
    return true;
}

/* Room left before the stop, plus a little so a cut can end on a character. */
static size_t room(const vwalk *w) {
    if (w->stop == SIZE_MAX) return SIZE_MAX;
    return (w->stop > w->b->len ? w->stop - w->b->len : 0) + 4;
}

/* ---- metadata -------------------------------------------------------------------------------- */

static int parse_metadata(vwalk *w) {
    if (w->mlen < 1 || (w->m[0] & 0x0F) != 1) return -EINVAL; /* version 1 only */
    w->key_off_size = ((w->m[0] >> 6) & 3) + 1;
    uint64_t n;
    if (!read_le(w->m, w->mlen, 1, w->key_off_size, &n)) return -EINVAL;
    /* n + 1 offsets must fit, which also bounds n by the length. */
    size_t offs = 1 + w->key_off_size;
    if (n + 1 > (w->mlen - offs) / w->key_off_size) return -EINVAL;
    w->n_keys = (size_t)n;
    w->keys_at = offs;
    return 0;
}

static int key_bytes(const vwalk *w, uint64_t id, const uint8_t **p, size_t *n) {
    if (id >= w->n_keys) return -EINVAL;
    size_t bytes = w->keys_at + (w->n_keys + 1) * w->key_off_size;
    uint64_t a, b;
    if (!read_le(w->m, w->mlen, w->keys_at + (size_t)id * w->key_off_size, w->key_off_size, &a) ||
        !read_le(w->m, w->mlen, w->keys_at + ((size_t)id + 1) * w->key_off_size, w->key_off_size,
                 &b) ||
        a > b || b > w->mlen - bytes)
        return -EINVAL;
    *p = w->m + bytes + a;
    *n = (size_t)(b - a);
    return 0;
}

/* ---- scalars -------------------------------------------------------------------------------- */

/* Jackson's escaping: quote, backslash and the C0 controls; everything else as it is, with
 * ill-formed UTF-8 replaced (Java decodes the bytes into a String first). */
static void put_json_string(vwalk *w, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    kl_render_buf *b = w->b;
    size_t r = room(w);
    if (n > r) {
        n = r;
        w->capped = true;
    }
    kl_render_buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        kl_unicode_append_repaired(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            kl_render_buf_append(b, esc, 6);
            continue;
        }
        kl_render_buf_append(b, esc, 2);
    }
    kl_unicode_append_repaired(b, s + run, n - run);
    kl_render_buf_putc(b, '"');
}

static void put_base64(vwalk *w, const uint8_t *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t r = room(w);
    if (r != SIZE_MAX && n / 3 * 4 > r) {
        n = r / 4 * 3;
        w->capped = true;
    }
    kl_render_buf_putc(w->b, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16;
        if (i + 1 < n) x |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) x |= p[i + 2];
        char o[4] = {tab[x >> 18], tab[(x >> 12) & 63], i + 1 < n ? tab[(x >> 6) & 63] : '=',
                     i + 2 < n ? tab[x & 63] : '='};
        kl_render_buf_append(w->b, o, 4);
    }
    kl_render_buf_putc(w->b, '"');
}

/* Java prints NaN and the infinities; toJson quotes them so the text stays JSON. */
static void put_floating(vwalk *w, double d, bool single) {
    char t[KL_JAVANUM_LEN];
    size_t n = single ? kl_javanum_float((float)d, t) : kl_javanum_double(d, t);
    bool quote = isnan(d) || isinf(d);
    if (quote) kl_render_buf_putc(w->b, '"');
    kl_render_buf_append(w->b, t, n);
    if (quote) kl_render_buf_putc(w->b, '"');
}

/* BigDecimal.stripTrailingZeros().toPlainString(): the exact value, no fractional zeros. */
static int put_decimal(vwalk *w, size_t pos, unsigned width) {
    static const unsigned max_digits[] = {9, 18, 38}; /* decimal4, decimal8, decimal16 */
    unsigned digits = max_digits[width == 4 ? 0 : width == 8 ? 1 : 2];
    uint64_t scale, lo = 0, hi = 0;
    if (!vread(w, pos, 1, &scale) || scale > digits) return -EINVAL;
    if (width <= 8) {
        if (!vread(w, pos + 1, width, &lo)) return -EINVAL;
        if (width == 4) lo = (uint64_t)(int64_t)(int32_t)(uint32_t)lo;
        hi = (int64_t)lo < 0 ? UINT64_MAX : 0;
    } else if (!vread(w, pos + 1, 8, &lo) || !vread(w, pos + 9, 8, &hi)) {
        return -EINVAL;
    }
    kl_arrow_decimal128 v = {lo, (int64_t)hi};
    char t[KL_ARROW_DECIMAL_STRLEN];
    size_t n = kl_arrow_decimal128_to_string(v, (int32_t)scale, t, sizeof t);
    if (n >= sizeof t) return -EINVAL;
    /* Spark refuses unscaled values with more digits than the physical type holds. */
    size_t sig = 0;
    for (size_t i = 0; i < n; i++) sig += t[i] >= '0' && t[i] <= '9';
    size_t lead = 0; /* leading zeros, "0.00" of "0.005" */
    for (size_t i = 0; i < n && (t[i] < '1' || t[i] > '9'); i++) lead += t[i] == '0';
    if (sig - lead > digits) return -EINVAL;
    if (memchr(t, '.', n)) {
        while (t[n - 1] == '0') n--;
        if (t[n - 1] == '.') n--;
    }
    kl_render_buf_append(w->b, t, n);
    return 0;
}

static void put_quoted(vwalk *w, const char *s, size_t n) {
    kl_render_buf_putc(w->b, '"');
    kl_render_buf_append(w->b, s, n);
    kl_render_buf_putc(w->b, '"');
}

/* ISO local date-time in UTC from ticks of 1/unit s, with "+00:00" when zoned. */
static void put_timestamp(vwalk *w, int64_t ticks, int64_t unit, bool zoned) {
    char t[KL_DATETIME_LEN + 8];
    int64_t sec;
    int32_t ns;
    kl_datetime_split(ticks, unit, &sec, &ns);
    size_t n = kl_datetime_local(sec, ns, 0, t);
    if (zoned) {
        memcpy(t + n, "+00:00", 6);
        n += 6;
    }
    put_quoted(w, t, n);
}

static int put_primitive(vwalk *w, size_t pos, unsigned type) {
    uint64_t x, len;
    char t[KL_DATETIME_LEN];
    size_t at = pos + 1; /* the value after the header byte */
    switch (type) {
    case PT_NULL:
        kl_render_buf_puts(w->b, "null");
        return 0;
    case PT_TRUE:
        kl_render_buf_puts(w->b, "true");
        return 0;
    case PT_FALSE:
        kl_render_buf_puts(w->b, "false");
        return 0;
    case PT_INT8:
    case PT_INT16:
    case PT_INT32:
    case PT_INT64: {
        unsigned n = 1u << (type - PT_INT8);
        if (!vread(w, at, n, &x)) return -EINVAL;
        int64_t v = n == 8   ? (int64_t)x
                    : n == 4 ? (int32_t)(uint32_t)x
                    : n == 2 ? (int16_t)(uint16_t)x
                             : (int8_t)(uint8_t)x;
        kl_render_buf_printf(w->b, "%lld", (long long)v);
        return 0;
    }
    case PT_DOUBLE: {
        double d;
        if (!vread(w, at, 8, &x)) return -EINVAL;
        memcpy(&d, &x, sizeof d);
        put_floating(w, d, false);
        return 0;
    }
    case PT_FLOAT: {
        float f;
        uint32_t y;
        if (!vread(w, at, 4, &x)) return -EINVAL;
        y = (uint32_t)x;
        memcpy(&f, &y, sizeof f);
        put_floating(w, f, true);
        return 0;
    }
    case PT_DECIMAL4:
        return put_decimal(w, at, 4);
    case PT_DECIMAL8:
        return put_decimal(w, at, 8);
    case PT_DECIMAL16:
        return put_decimal(w, at, 16);
    case PT_DATE:
        if (!vread(w, at, 4, &x)) return -EINVAL;
        put_quoted(w, t, kl_datetime_date((int32_t)(uint32_t)x, t));
        return 0;
    case PT_TIMESTAMP:
    case PT_TIMESTAMP_NTZ:
    case PT_TIMESTAMP_NANOS:
    case PT_TIMESTAMP_NTZ_NANOS:
        if (!vread(w, at, 8, &x)) return -EINVAL;
        put_timestamp(w, (int64_t)x, type >= PT_TIMESTAMP_NANOS ? 1000000000 : 1000000,
                      type == PT_TIMESTAMP || type == PT_TIMESTAMP_NANOS);
        return 0;
    case PT_TIME_NTZ:
        if (!vread(w, at, 8, &x) || (int64_t)x < 0 || (int64_t)x >= 86400000000LL) return -EINVAL;
        put_quoted(w, t, kl_datetime_time_of_day((int64_t)x * 1000, t));
        return 0;
    case PT_BINARY:
    case PT_STRING:
        if (!vread(w, at, 4, &len) || len > w->vlen - at - 4 || !charge(w, (size_t)len))
            return -EINVAL;
        if (type == PT_STRING)
            put_json_string(w, w->v + at + 4, (size_t)len);
        else
            put_base64(w, w->v + at + 4, (size_t)len);
        return 0;
    case PT_UUID: {
        if (at > w->vlen || w->vlen - at < 16) return -EINVAL;
        static const char hex[] = "0123456789abcdef";
        size_t n = 0;
        for (int k = 0; k < 16; k++) {
            if (k == 4 || k == 6 || k == 8 || k == 10) t[n++] = '-';
            t[n++] = hex[w->v[at + k] >> 4];
            t[n++] = hex[w->v[at + k] & 15];
        }
        put_quoted(w, t, n);
        return 0;
    }
    default:
        return -EINVAL; /* a type this renderer does not know (Spark fails on it too) */
    }
}

/* ---- containers ----------------------------------------------------------------------------- */

static int push(vwalk *w, size_t pos, bool object, unsigned vh) {
    if (w->depth >= KL_VARIANT_MAX_DEPTH) return -EINVAL;
    if (w->depth == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        frame *s = realloc(w->stack, cap * sizeof *s);
        if (!s) {
            w->b->failed = true;
            return -ENOMEM;
        }
        w->stack = s;
        w->cap = cap;
    }
    frame f = {.object = object};
    bool large = object ? (vh >> 4) & 1 : (vh >> 2) & 1;
    f.off_size = (vh & 3) + 1;
    f.id_size = object ? ((vh >> 2) & 3) + 1 : 0;
    unsigned count_size = large ? 4 : 1;
    uint64_t size;
    if (!vread(w, pos + 1, count_size, &size)) return -EINVAL;
    f.size = (uint32_t)size;
    f.ids = pos + 1 + count_size;
    /* size ids and size + 1 offsets must fit in what follows; checked before multiplying. */
    size_t rest = w->vlen - f.ids;
    if (size > rest / (f.id_size + f.off_size)) return -EINVAL;
    f.offsets = f.ids + (size_t)size * f.id_size;
    if (f.off_size > w->vlen - f.offsets - (size_t)size * f.off_size) return -EINVAL;
    f.data = f.offsets + ((size_t)size + 1) * f.off_size;
    w->stack[w->depth++] = f;
    kl_render_buf_putc(w->b, object ? '{' : '[');
    return 0;
}

/* Prints the value at pos, or opens it when it is a container. */
static int visit(vwalk *w, size_t pos) {
    if (!charge(w, 1)) return -EINVAL;
    if (pos >= w->vlen) return -EINVAL;
    uint8_t h = w->v[pos];
    unsigned vh = h >> 2;
    switch (h & 3) {
    case BT_PRIMITIVE:
        return put_primitive(w, pos, vh);
    case BT_SHORT_STRING:
        if (vh > w->vlen - pos - 1 || !charge(w, vh)) return -EINVAL;
        put_json_string(w, w->v + pos + 1, vh);
        return 0;
    case BT_OBJECT:
        return push(w, pos, true, vh);
    default:
        return push(w, pos, false, vh);
    }
}

static int walk(vwalk *w) {
    int rc = visit(w, 0);
    while (rc == 0 && w->depth > 0 && !full(w)) {
        frame *f = &w->stack[w->depth - 1];
        if (f->next == f->size) {
            kl_render_buf_putc(w->b, f->object ? '}' : ']');
            w->depth--;
            continue;
        }
        uint32_t i = f->next++;
        if (i) kl_render_buf_putc(w->b, ',');
        if (f->object) {
            uint64_t id;
            const uint8_t *k;
            size_t kn;
            if (!vread(w, f->ids + (size_t)i * f->id_size, f->id_size, &id) ||
                key_bytes(w, id, &k, &kn) != 0)
                return -EINVAL;
            put_json_string(w, k, kn);
            if (w->capped) break; /* a cut key ends the text */
            kl_render_buf_putc(w->b, ':');
        }
        uint64_t off;
        if (!vread(w, f->offsets + (size_t)i * f->off_size, f->off_size, &off) ||
            off >= w->vlen - f->data)
            return -EINVAL;
        rc = visit(w, f->data + (size_t)off);
    }
    return w->b->failed ? -ENOMEM : rc;
}

int kl_variant_to_json(kl_render_buf *b, const uint8_t *value, size_t value_len,
                       const uint8_t *metadata, size_t metadata_len, size_t max_bytes,
                       bool *capped) {
    vwalk w = {
        .v = value,
        .m = metadata,
        .vlen = value ? value_len : 0,
        .mlen = metadata ? metadata_len : 0,
        .b = b,
        .stop = max_bytes && max_bytes < SIZE_MAX - b->len ? b->len + max_bytes : SIZE_MAX,
        /* Offsets may point at one subtree many times: a few kilobytes could otherwise print
         * gigabytes. A well-formed value never needs more than its own size (see charge). */
        .budget = value_len < SIZE_MAX / 2 - 16 ? 2 * value_len + 16 : SIZE_MAX,
    };
    int rc = parse_metadata(&w);
    if (rc == 0) rc = walk(&w);
    free(w.stack);
    if (capped) *capped = rc == 0 && w.capped;
    return rc;
}
