/* Arrow IPC stream decoder. The flatbuffer metadata (Message.fbs, Schema.fbs of the Arrow format)
 * is read by hand: every table, vtable, vector and string offset is bounds-checked against the
 * message it sits in before it is followed, and every value is loaded with memcpy, so neither a
 * corrupt offset nor an odd alignment can make us read outside the input. */
#include "spark/arrow.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <zstd.h>
#include "runtime/dynlib.h"

/* LZ4 and Zstandard are bound when a compressed body first arrives (runtime/dynlib.h): Spark
 * compresses Arrow batches only when asked to, and a kernel that never sees one need not load them.
 */
#define LZ4_FUNCS(X)                                                                               \
    X(LZ4F_createDecompressionContext)                                                             \
    X(LZ4F_decompress)                                                                             \
    X(LZ4F_freeDecompressionContext)                                                               \
    X(LZ4F_getErrorName)                                                                           \
    X(LZ4F_isError)                                                                                \
    X(LZ4F_resetDecompressionContext)

KL_DYNLIB_DEFINE(lz4_lib, LZ4_FUNCS, KL_LZ4_SONAME, "liblz4: Debian package liblz4-1");
#define LZ4(n) KL_DYNLIB_FN(lz4_lib, n)

#define ZSTD_FUNCS(X)                                                                              \
    X(ZSTD_DCtx_reset)                                                                             \
    X(ZSTD_createDCtx)                                                                             \
    X(ZSTD_decompressStream)                                                                       \
    X(ZSTD_freeDCtx)                                                                               \
    X(ZSTD_getErrorName)                                                                           \
    X(ZSTD_isError)

KL_DYNLIB_DEFINE(zstd_lib, ZSTD_FUNCS, KL_ZSTD_SONAME, "libzstd: Debian package libzstd1");
#define ZSTD(n) KL_DYNLIB_FN(zstd_lib, n)

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the Arrow decoder reads little-endian data in place and needs a little-endian host"
#endif

#define DEFAULT_MAX_DECOMPRESSED ((size_t)1 << 30)
#define DEFAULT_MAX_FIELDS       65536

/* Flatbuffer enum values from the Arrow format. */
enum { HDR_SCHEMA = 1, HDR_DICTIONARY_BATCH = 2, HDR_RECORD_BATCH = 3 };
enum { MD_V4 = 3, MD_V5 = 4 };
enum {
    T_NULL = 1,
    T_INT,
    T_FLOAT,
    T_BINARY,
    T_UTF8,
    T_BOOL,
    T_DECIMAL,
    T_DATE,
    T_TIME,
    T_TIMESTAMP,
    T_INTERVAL,
    T_LIST,
    T_STRUCT,
    T_UNION,
    T_FIXED_SIZE_BINARY,
    T_FIXED_SIZE_LIST,
    T_MAP,
    T_DURATION,
    T_LARGE_BINARY,
    T_LARGE_UTF8,
    T_LARGE_LIST,
    T_RUN_END_ENCODED,
    T_BINARY_VIEW,
    T_UTF8_VIEW,
    T_LIST_VIEW,
    T_LARGE_LIST_VIEW,
};
enum { CODEC_LZ4_FRAME = 0, CODEC_ZSTD = 1 };

/* ---------------------------------------------------------------------------------------------
 * Arena: everything a stream owns is freed in one walk, which also keeps error paths simple. */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
} chunk;

typedef struct adopted {
    struct adopted *next;
    void *p;
} adopted;

struct kl_arrow_arena {
    chunk *chunks;
    adopted *owned;
};

static void arena_free(struct kl_arrow_arena *a) {
    if (!a) return;
    for (adopted *o = a->owned; o; o = o->next) free(o->p);
    for (chunk *c = a->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

/* Zeroed memory owned by the arena; NULL when out of memory. */
static void *arena_alloc(struct kl_arrow_arena *a, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n == 0) n = sizeof(max_align_t);
    chunk *c = a->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        c = calloc(1, sizeof(chunk) + cap);
        if (!c) return NULL;
        c->cap = cap;
        if (n > 4096 && a->chunks) { /* keep filling the current chunk */
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = a->chunks;
            a->chunks = c;
        }
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

/* Hands a malloc'd block to the arena; frees it (and returns -1) if that fails. */
static int arena_adopt(struct kl_arrow_arena *a, void *p) {
    adopted *o = arena_alloc(a, sizeof *o);
    if (!o) {
        free(p);
        return -1;
    }
    o->p = p;
    o->next = a->owned;
    a->owned = o;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Decoder state and errors. */

typedef struct fb {
    const uint8_t *p; /* one message's flatbuffer */
    size_t len;
    size_t base; /* stream offset of p[0], for error messages */
} fb;

typedef struct fbt {
    size_t pos;   /* table start within the flatbuffer */
    size_t vt;    /* its vtable */
    size_t nslot; /* vtable entries */
    size_t size;  /* inline table bytes */
} fbt;

typedef struct dec {
    const uint8_t *data;
    size_t len;
    struct kl_arrow_arena *arena;
    char *err;
    int code;
    size_t max_decompressed, decompressed;
    size_t max_fields, n_fields;
    LZ4F_dctx *lz4;
    ZSTD_DCtx *zstd;
} dec;

static int failv(dec *d, int code, size_t at, const char *fmt, va_list ap) {
    if (d->code) return -1; /* keep the first, most specific message */
    d->code = code;
    int n = snprintf(d->err, KL_ARROW_ERRLEN, "arrow stream, byte %zu: ", at);
    if (n < 0) n = 0;
    if (n < KL_ARROW_ERRLEN) vsnprintf(d->err + n, KL_ARROW_ERRLEN - (size_t)n, fmt, ap);
    return -1;
}

__attribute__((format(printf, 4, 5))) static int fail(dec *d, int code, size_t at, const char *fmt,
                                                      ...) {
    va_list ap;
    va_start(ap, fmt);
    failv(d, code, at, fmt, ap);
    va_end(ap);
    return -1;
}

static int nomem(dec *d, size_t at) {
    return fail(d, -ENOMEM, at, "out of memory");
}

/* A field name fit for an error message: printable ASCII, bounded. */
static const char *shown(const kl_arrow_field *f, char buf[48]) {
    size_t n = 0;
    for (size_t i = 0; i < f->name_len && n < 40; i++) {
        unsigned char c = (unsigned char)f->name[i];
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (f->name_len > 40) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

static uint16_t ld16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static uint32_t ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static uint64_t ld64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * Flatbuffer reading. Functions return 0 on success and -1 (with the error set) on a bad offset;
 * optional fields report presence through an out parameter. */

static int fb_table(dec *d, const fb *b, size_t pos, fbt *t) {
    if (pos > b->len || b->len - pos < 4)
        return fail(d, -EINVAL, b->base + pos, "flatbuffer table outside its message");
    int64_t vt = (int64_t)pos - (int32_t)ld32(b->p + pos);
    if (vt < 0 || (uint64_t)vt > b->len || b->len - (size_t)vt < 4)
        return fail(d, -EINVAL, b->base + pos, "flatbuffer vtable outside its message");
    size_t vtlen = ld16(b->p + vt), tsize = ld16(b->p + vt + 2);
    if (vtlen < 4 || (vtlen & 1) || vtlen > b->len - (size_t)vt)
        return fail(d, -EINVAL, b->base + (size_t)vt, "bad flatbuffer vtable size %zu", vtlen);
    if (tsize < 4 || tsize > b->len - pos)
        return fail(d, -EINVAL, b->base + pos, "flatbuffer table of %zu bytes overruns its message",
                    tsize);
    t->pos = pos;
    t->vt = (size_t)vt;
    t->nslot = (vtlen - 4) / 2;
    t->size = tsize;
    return 0;
}

/* Where field `slot` of `size` bytes sits, or 0 when absent (a field never starts at 0). */
static int fb_field(dec *d, const fb *b, const fbt *t, unsigned slot, size_t size, size_t *at) {
    *at = 0;
    if (slot >= t->nslot) return 0;
    size_t off = ld16(b->p + t->vt + 4 + 2 * slot);
    if (off == 0) return 0;
    if (off < 4 || off > t->size || t->size - off < size)
        return fail(d, -EINVAL, b->base + t->pos, "flatbuffer field %u outside its table", slot);
    *at = t->pos + off;
    return 0;
}

static int fb_u8(dec *d, const fb *b, const fbt *t, unsigned slot, uint8_t def, uint8_t *v) {
    size_t at;
    if (fb_field(d, b, t, slot, 1, &at)) return -1;
    *v = at ? b->p[at] : def;
    return 0;
}
static int fb_i16(dec *d, const fb *b, const fbt *t, unsigned slot, int16_t def, int16_t *v) {
    size_t at;
    if (fb_field(d, b, t, slot, 2, &at)) return -1;
    *v = at ? (int16_t)ld16(b->p + at) : def;
    return 0;
}
static int fb_i32(dec *d, const fb *b, const fbt *t, unsigned slot, int32_t def, int32_t *v) {
    size_t at;
    if (fb_field(d, b, t, slot, 4, &at)) return -1;
    *v = at ? (int32_t)ld32(b->p + at) : def;
    return 0;
}
static int fb_i64(dec *d, const fb *b, const fbt *t, unsigned slot, int64_t def, int64_t *v) {
    size_t at;
    if (fb_field(d, b, t, slot, 8, &at)) return -1;
    *v = at ? (int64_t)ld64(b->p + at) : def;
    return 0;
}

/* Follows the uoffset stored at `at` (4 bytes, already known in bounds). */
static int fb_follow(dec *d, const fb *b, size_t at, size_t *target) {
    *target = 0;
    size_t to = at + ld32(b->p + at);
    if (to < at || to > b->len || b->len - to < 4)
        return fail(d, -EINVAL, b->base + at, "flatbuffer offset points outside its message");
    *target = to;
    return 0;
}

static int fb_subtable(dec *d, const fb *b, const fbt *t, unsigned slot, fbt *sub, bool *present) {
    size_t at, to;
    *present = false;
    if (fb_field(d, b, t, slot, 4, &at)) return -1;
    if (!at) return 0;
    if (fb_follow(d, b, at, &to) || fb_table(d, b, to, sub)) return -1;
    *present = true;
    return 0;
}

/* A vector of `count` elements of `elem` bytes starting at *start; count 0 when absent. */
static int fb_vector(dec *d, const fb *b, const fbt *t, unsigned slot, size_t elem, size_t *start,
                     size_t *count) {
    size_t at, to;
    *count = 0;
    *start = 0;
    if (fb_field(d, b, t, slot, 4, &at)) return -1;
    if (!at) return 0;
    if (fb_follow(d, b, at, &to)) return -1;
    size_t n = ld32(b->p + to);
    if (n > (b->len - to - 4) / elem)
        return fail(d, -EINVAL, b->base + to,
                    "flatbuffer vector of %zu elements overruns its message", n);
    *start = to + 4;
    *count = n;
    return 0;
}

static int fb_vector_table(dec *d, const fb *b, size_t start, size_t i, fbt *t) {
    size_t to;
    return fb_follow(d, b, start + 4 * i, &to) || fb_table(d, b, to, t) ? -1 : 0;
}

static int fb_string(dec *d, const fb *b, const fbt *t, unsigned slot, const uint8_t **s, size_t *n,
                     bool *present) {
    size_t start, count, at;
    if (fb_field(d, b, t, slot, 4, &at)) return -1;
    *present = at != 0;
    if (fb_vector(d, b, t, slot, 1, &start, &count)) return -1;
    *s = b->p + start;
    *n = count;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Schema. */

typedef struct stream_state {
    kl_arrow_field *fields;
    size_t n_fields;
    bool have_schema;
    size_t n_nodes, n_buffers; /* what every record batch must carry */
    kl_arrow_batch *batches;
    size_t n_batches, cap_batches;
} stream_state;

static char *arena_strdup(dec *d, const uint8_t *s, size_t n) {
    char *c = arena_alloc(d->arena, n + 1);
    if (c && n) memcpy(c, s, n);
    return c;
}

static const char *type_union_name(uint8_t t) {
    switch (t) {
    case T_UNION:
        return "Union";
    case T_RUN_END_ENCODED:
        return "RunEndEncoded";
    case T_BINARY_VIEW:
        return "BinaryView";
    case T_UTF8_VIEW:
        return "Utf8View";
    case T_LIST_VIEW:
        return "ListView";
    case T_LARGE_LIST_VIEW:
        return "LargeListView";
    default:
        return NULL;
    }
}

/* Buffers that a field of this type carries in a record batch (children not counted). */
static size_t own_buffers(kl_arrow_type t) {
    switch (t) {
    case KL_ARROW_NULL:
        return 0;
    case KL_ARROW_STRUCT:
    case KL_ARROW_FIXED_SIZE_LIST:
        return 1;
    case KL_ARROW_UTF8:
    case KL_ARROW_LARGE_UTF8:
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_BINARY:
        return 3;
    default:
        return 2;
    }
}

static int parse_type(dec *d, const fb *b, uint8_t tt, const fbt *tt_tab, bool have_tab,
                      kl_arrow_field *f, size_t at) {
    char nb[48];
    int16_t u16;
    int32_t i32;
    uint8_t u8;
    /* Writers always emit the type table; an absent one reads as all defaults, as in
     * flatbuffers generally. */
    fbt empty = {0};
    const fbt *t = have_tab ? tt_tab : &empty;
    switch (tt) {
    case T_NULL:
        f->type = KL_ARROW_NULL;
        return 0;
    case T_BOOL:
        f->type = KL_ARROW_BOOL;
        f->bit_width = 1;
        return 0;
    case T_INT:
        f->type = KL_ARROW_INT;
        if (fb_i32(d, b, t, 0, 0, &i32) || fb_u8(d, b, t, 1, 0, &u8)) return -1;
        if (i32 != 8 && i32 != 16 && i32 != 32 && i32 != 64)
            return fail(d, -EINVAL, at, "field '%s': integer bit width %d", shown(f, nb), i32);
        f->bit_width = i32;
        f->is_signed = u8 != 0;
        return 0;
    case T_FLOAT:
        f->type = KL_ARROW_FLOAT;
        if (fb_i16(d, b, t, 0, 0, &u16)) return -1;
        if (u16 < 0 || u16 > 2)
            return fail(d, -EINVAL, at, "field '%s': floating-point precision %d", shown(f, nb),
                        u16);
        f->bit_width = 16 << u16;
        return 0;
    case T_DECIMAL: {
        int32_t prec, scale, bw;
        f->type = KL_ARROW_DECIMAL;
        if (fb_i32(d, b, t, 0, 0, &prec) || fb_i32(d, b, t, 1, 0, &scale) ||
            fb_i32(d, b, t, 2, 128, &bw))
            return -1;
        int maxp = bw == 32 ? 9 : bw == 64 ? 18 : bw == 128 ? 38 : bw == 256 ? 76 : 0;
        if (!maxp)
            return fail(d, -EINVAL, at, "field '%s': decimal bit width %d", shown(f, nb), bw);
        if (prec < 1 || prec > maxp)
            return fail(d, -EINVAL, at, "field '%s': decimal%d precision %d out of range 1..%d",
                        shown(f, nb), bw, prec, maxp);
        /* Any wider scale is no real decimal, and would let one value print as megabytes. */
        if (scale < -76 || scale > 76)
            return fail(d, -EINVAL, at, "field '%s': decimal scale %d out of range -76..76",
                        shown(f, nb), scale);
        f->precision = prec;
        f->scale = scale;
        f->bit_width = bw;
        return 0;
    }
    case T_DATE:
        f->type = KL_ARROW_DATE;
        if (fb_i16(d, b, t, 0, 1, &u16)) return -1;
        if (u16 != 0 && u16 != 1)
            return fail(d, -EINVAL, at, "field '%s': date unit %d", shown(f, nb), u16);
        f->date_unit = u16 ? KL_ARROW_DATE_MILLISECOND : KL_ARROW_DATE_DAY;
        f->bit_width = u16 ? 64 : 32;
        return 0;
    case T_TIME:
        f->type = KL_ARROW_TIME;
        if (fb_i16(d, b, t, 0, 1, &u16) || fb_i32(d, b, t, 1, 32, &i32)) return -1;
        if (u16 < 0 || u16 > 3 || i32 != (u16 < 2 ? 32 : 64))
            return fail(d, -EINVAL, at, "field '%s': time unit %d with bit width %d", shown(f, nb),
                        u16, i32);
        f->time_unit = (kl_arrow_time_unit)u16;
        f->bit_width = i32;
        return 0;
    case T_TIMESTAMP: {
        const uint8_t *s;
        size_t n;
        bool present;
        f->type = KL_ARROW_TIMESTAMP;
        if (fb_i16(d, b, t, 0, 0, &u16)) return -1;
        if (u16 < 0 || u16 > 3)
            return fail(d, -EINVAL, at, "field '%s': timestamp unit %d", shown(f, nb), u16);
        f->time_unit = (kl_arrow_time_unit)u16;
        f->bit_width = 64;
        if (have_tab && fb_string(d, b, t, 1, &s, &n, &present)) return -1;
        if (have_tab && present && n > 0) {
            char *tz = arena_strdup(d, s, n);
            if (!tz) return nomem(d, at);
            f->timezone = tz;
        }
        return 0;
    }
    case T_INTERVAL:
        f->type = KL_ARROW_INTERVAL;
        if (fb_i16(d, b, t, 0, 0, &u16)) return -1;
        if (u16 < 0 || u16 > 2)
            return fail(d, -EINVAL, at, "field '%s': interval unit %d", shown(f, nb), u16);
        f->interval_unit = (kl_arrow_interval_unit)u16;
        f->bit_width = u16 == 0 ? 32 : u16 == 1 ? 64 : 128;
        return 0;
    case T_DURATION:
        f->type = KL_ARROW_DURATION;
        if (fb_i16(d, b, t, 0, 1, &u16)) return -1;
        if (u16 < 0 || u16 > 3)
            return fail(d, -EINVAL, at, "field '%s': duration unit %d", shown(f, nb), u16);
        f->time_unit = (kl_arrow_time_unit)u16;
        f->bit_width = 64;
        return 0;
    case T_FIXED_SIZE_BINARY:
        f->type = KL_ARROW_FIXED_SIZE_BINARY;
        if (fb_i32(d, b, t, 0, 0, &i32)) return -1;
        if (i32 < 0 || i32 > INT32_MAX / 8)
            return fail(d, -EINVAL, at, "field '%s': fixed-size binary width %d", shown(f, nb),
                        i32);
        f->fixed_size = i32;
        f->bit_width = 8 * i32;
        return 0;
    case T_FIXED_SIZE_LIST:
        f->type = KL_ARROW_FIXED_SIZE_LIST;
        if (fb_i32(d, b, t, 0, 0, &i32)) return -1;
        if (i32 < 0)
            return fail(d, -EINVAL, at, "field '%s': fixed-size list size %d", shown(f, nb), i32);
        f->fixed_size = i32;
        return 0;
    case T_MAP:
        f->type = KL_ARROW_MAP;
        if (fb_u8(d, b, t, 0, 0, &u8)) return -1;
        f->keys_sorted = u8 != 0;
        return 0;
    case T_UTF8:
        f->type = KL_ARROW_UTF8;
        return 0;
    case T_LARGE_UTF8:
        f->type = KL_ARROW_LARGE_UTF8;
        return 0;
    case T_BINARY:
        f->type = KL_ARROW_BINARY;
        return 0;
    case T_LARGE_BINARY:
        f->type = KL_ARROW_LARGE_BINARY;
        return 0;
    case T_LIST:
        f->type = KL_ARROW_LIST;
        return 0;
    case T_LARGE_LIST:
        f->type = KL_ARROW_LARGE_LIST;
        return 0;
    case T_STRUCT:
        f->type = KL_ARROW_STRUCT;
        return 0;
    default: {
        const char *name = type_union_name(tt);
        if (name)
            return fail(d, -EINVAL, at, "field '%s': type %s is not supported", shown(f, nb), name);
        return fail(d, -EINVAL, at, "field '%s': unknown type id %u", shown(f, nb), tt);
    }
    }
}

static int parse_field(dec *d, const fb *b, const fbt *t, kl_arrow_field *f, int depth,
                       stream_state *st) {
    char nb[48];
    size_t at = b->base + t->pos;
    if (depth > KL_ARROW_MAX_DEPTH)
        return fail(d, -EINVAL, at, "schema nested deeper than %d levels", KL_ARROW_MAX_DEPTH);
    /* The metadata is a graph: shared subtables could make a small schema expand enormously. */
    if (++d->n_fields > d->max_fields)
        return fail(d, -E2BIG, at, "schema has more than %zu fields", d->max_fields);

    const uint8_t *s;
    size_t n;
    bool present;
    if (fb_string(d, b, t, 0, &s, &n, &present)) return -1;
    char *name = arena_strdup(d, s, n);
    if (!name) return nomem(d, at);
    f->name = name;
    f->name_len = n;

    uint8_t nullable, tt;
    if (fb_u8(d, b, t, 1, 0, &nullable) || fb_u8(d, b, t, 2, 0, &tt)) return -1;
    f->nullable = nullable != 0;
    fbt ttab, dict;
    bool have_tab, have_dict;
    if (fb_subtable(d, b, t, 3, &ttab, &have_tab) || fb_subtable(d, b, t, 4, &dict, &have_dict))
        return -1;
    if (have_dict)
        return fail(d, -EINVAL, at, "field '%s' is dictionary-encoded, which is not supported",
                    shown(f, nb));
    if (parse_type(d, b, tt, &ttab, have_tab, f, at)) return -1;

    size_t start, count;
    if (fb_vector(d, b, t, 5, 4, &start, &count)) return -1;
    size_t want = SIZE_MAX; /* SIZE_MAX: any number */
    switch (f->type) {
    case KL_ARROW_LIST:
    case KL_ARROW_LARGE_LIST:
    case KL_ARROW_FIXED_SIZE_LIST:
    case KL_ARROW_MAP:
        want = 1;
        break;
    case KL_ARROW_STRUCT:
        break;
    default:
        want = 0;
        break;
    }
    if (want != SIZE_MAX && count != want)
        return fail(d, -EINVAL, at, "field '%s' of type %s has %zu children, expected %zu",
                    shown(f, nb), kl_arrow_type_name(f->type), count, want);
    if (count > d->max_fields)
        return fail(d, -E2BIG, at, "schema has more than %zu fields", d->max_fields);
    kl_arrow_field *kids = NULL;
    if (count) {
        kids = arena_alloc(d->arena, count * sizeof *kids);
        if (!kids) return nomem(d, at);
    }
    for (size_t i = 0; i < count; i++) {
        fbt ct;
        if (fb_vector_table(d, b, start, i, &ct) || parse_field(d, b, &ct, &kids[i], depth + 1, st))
            return -1;
    }
    f->children = kids;
    f->n_children = count;
    if (f->type == KL_ARROW_MAP && (kids[0].type != KL_ARROW_STRUCT || kids[0].n_children != 2))
        return fail(d, -EINVAL, at, "map field '%s' needs a struct child with key and value",
                    shown(f, nb));
    st->n_nodes++;
    st->n_buffers += own_buffers(f->type);
    return 0;
}

static int parse_schema(dec *d, const fb *b, const fbt *t, stream_state *st) {
    size_t at = b->base + t->pos;
    int16_t endian;
    if (fb_i16(d, b, t, 0, 0, &endian)) return -1;
    if (endian != 0) return fail(d, -EINVAL, at, "big-endian streams are not supported");
    size_t start, count;
    if (fb_vector(d, b, t, 1, 4, &start, &count)) return -1;
    if (count > d->max_fields)
        return fail(d, -E2BIG, at, "schema has more than %zu fields", d->max_fields);
    kl_arrow_field *fields = NULL;
    if (count) {
        fields = arena_alloc(d->arena, count * sizeof *fields);
        if (!fields) return nomem(d, at);
    }
    for (size_t i = 0; i < count; i++) {
        fbt ft;
        if (fb_vector_table(d, b, start, i, &ft) || parse_field(d, b, &ft, &fields[i], 1, st))
            return -1;
    }
    st->fields = fields;
    st->n_fields = count;
    st->have_schema = true;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Record batches. */

typedef struct batch_state {
    const fb *b;
    size_t nodes, n_nodes;     /* FieldNode vector: start, count */
    size_t buffers, n_buffers; /* Buffer vector */
    size_t next_node, next_buffer;
    const uint8_t *body;
    size_t body_len, body_at; /* body_at: stream offset of body[0] */
    bool compressed;
    int codec;
} batch_state;

/* Grows *buf (malloc'd, *cap bytes) towards `limit` bytes. */
static int grow(uint8_t **buf, size_t *cap, size_t limit) {
    size_t ncap = *cap > limit / 2 ? limit : *cap * 2;
    uint8_t *n = realloc(*buf, ncap);
    if (!n) return -1;
    *buf = n;
    *cap = ncap;
    return 0;
}

/* Inflates one buffer that must decompress to exactly `want` bytes. The output grows with what
 * the codec really produces, so a lying length costs no more memory than the data justifies. */
static int inflate_buffer(dec *d, const batch_state *bs, size_t at, const uint8_t *src, size_t n,
                          size_t want, const uint8_t **out) {
    size_t cap = n < (SIZE_MAX / 4) ? n * 4 : n;
    if (cap < 65536) cap = 65536;
    if (cap > want) cap = want;
    uint8_t *buf = malloc(cap);
    if (!buf) return nomem(d, at);
    size_t in = 0, produced = 0, last = 1;
    const char *codec = bs->codec == CODEC_LZ4_FRAME ? "LZ4" : "ZSTD";
    const char *why = NULL;
    char unbound[200];
    if (kl_dynlib_load(bs->codec == CODEC_LZ4_FRAME ? &lz4_lib : &zstd_lib, unbound,
                       sizeof unbound) != 0) {
        free(buf);
        return fail(d, -ENOSYS, at, "cannot decompress %s: %s", codec, unbound);
    }
    if (bs->codec == CODEC_LZ4_FRAME) {
        if (!d->lz4 &&
            LZ4(LZ4F_isError)(LZ4(LZ4F_createDecompressionContext)(&d->lz4, LZ4F_VERSION))) {
            d->lz4 = NULL;
            free(buf);
            return nomem(d, at);
        }
        LZ4(LZ4F_resetDecompressionContext)(d->lz4);
    } else {
        if (!d->zstd && !(d->zstd = ZSTD(ZSTD_createDCtx)())) {
            free(buf);
            return nomem(d, at);
        }
        ZSTD(ZSTD_DCtx_reset)(d->zstd, ZSTD_reset_session_only);
    }
    while (in < n) {
        if (produced == cap && cap < want && grow(&buf, &cap, want)) {
            free(buf);
            return nomem(d, at);
        }
        size_t took, gave;
        if (bs->codec == CODEC_LZ4_FRAME) {
            took = n - in;
            gave = cap - produced;
            last = LZ4(LZ4F_decompress)(d->lz4, buf + produced, &gave, src + in, &took, NULL);
            if (LZ4(LZ4F_isError)(last)) {
                why = LZ4(LZ4F_getErrorName)(last);
                break;
            }
        } else {
            ZSTD_outBuffer o = {buf, cap, produced};
            ZSTD_inBuffer i = {src, n, in};
            last = ZSTD(ZSTD_decompressStream)(d->zstd, &o, &i);
            if (ZSTD(ZSTD_isError)(last)) {
                why = ZSTD(ZSTD_getErrorName)(last);
                break;
            }
            took = i.pos - in;
            gave = o.pos - produced;
        }
        in += took;
        produced += gave;
        if (took == 0 && gave == 0) {
            why = produced == want ? "more data than the declared length" : "no progress";
            break;
        }
    }
    if (!why && last != 0) why = "frame truncated";
    if (!why && produced != want) why = "less data than the declared length";
    if (why) {
        free(buf);
        return fail(d, -EINVAL, at, "%s buffer does not decompress to its declared %zu bytes: %s",
                    codec, want, why);
    }
    if (arena_adopt(d->arena, buf)) return nomem(d, at);
    d->decompressed += want;
    *out = buf;
    return 0;
}

/* Takes the next body buffer: bounds-checked, decompressed if the batch is compressed. */
static int take_buffer(dec *d, batch_state *bs, const kl_arrow_field *f, const uint8_t **p,
                       size_t *n) {
    char nb[48];
    size_t idx = bs->next_buffer++;
    if (idx >= bs->n_buffers) /* the counts were checked against the schema; this is a backstop */
        return fail(d, -EINVAL, bs->body_at, "record batch has too few buffers");
    const uint8_t *e = bs->b->p + bs->buffers + 16 * idx;
    int64_t off = (int64_t)ld64(e), len = (int64_t)ld64(e + 8);
    size_t at = bs->b->base + bs->buffers + 16 * idx;
    if (off < 0 || len < 0 || (uint64_t)off > bs->body_len ||
        (uint64_t)len > bs->body_len - (uint64_t)off)
        return fail(d, -EINVAL, at,
                    "buffer %zu of field '%s' (offset %lld, length %lld) lies outside the "
                    "%zu-byte message body",
                    idx, shown(f, nb), (long long)off, (long long)len, bs->body_len);
    const uint8_t *raw = bs->body + off;
    at = bs->body_at + (size_t)off;
    *p = len ? raw : NULL;
    *n = (size_t)len;
    if (!bs->compressed || len == 0) return 0;
    if (len < 8)
        return fail(d, -EINVAL, at, "compressed buffer %zu of field '%s' is %lld bytes, too short",
                    idx, shown(f, nb), (long long)len);
    int64_t want = (int64_t)ld64(raw);
    if (want == -1) { /* stored uncompressed */
        *p = len > 8 ? raw + 8 : NULL;
        *n = (size_t)len - 8;
        return 0;
    }
    if (want < 0)
        return fail(d, -EINVAL, at, "compressed buffer %zu of field '%s' declares length %lld", idx,
                    shown(f, nb), (long long)want);
    if ((uint64_t)want > d->max_decompressed - d->decompressed)
        return fail(d, -E2BIG, at,
                    "buffer %zu of field '%s' would inflate past the %zu-byte decompression limit",
                    idx, shown(f, nb), d->max_decompressed);
    *n = (size_t)want;
    *p = NULL;
    if (want == 0) return 0;
    return inflate_buffer(d, bs, at, raw + 8, (size_t)len - 8, (size_t)want, p);
}

/* Bytes needed for `slots` values of `bits` bits each, or SIZE_MAX on overflow. */
static size_t bytes_for(int64_t slots, int bits) {
    if (bits == 1) return (size_t)((uint64_t)slots / 8 + ((uint64_t)slots % 8 != 0));
    size_t n;
    if (__builtin_mul_overflow((size_t)slots, (size_t)(bits / 8), &n)) return SIZE_MAX;
    return n;
}

static int64_t offset_at(const kl_arrow_array *a, int64_t k, bool large) {
    return large ? (int64_t)ld64(a->offsets + 8 * k) : (int32_t)ld32(a->offsets + 4 * k);
}

/* Checks an offsets buffer: length+1 entries, non-negative, non-decreasing, last <= limit. */
static int check_offsets(dec *d, size_t at, const kl_arrow_field *f, kl_arrow_array *a,
                         const uint8_t *p, size_t n, bool large, int64_t limit) {
    char nb[48];
    if (a->length == 0 && n == 0) return 0;
    size_t need = bytes_for(a->length + 1, large ? 64 : 32);
    if (n < need)
        return fail(d, -EINVAL, at, "offsets of field '%s' are %zu bytes, %lld rows need %zu",
                    shown(f, nb), n, (long long)a->length, need);
    a->offsets = p;
    int64_t prev = offset_at(a, 0, large);
    if (prev < 0)
        return fail(d, -EINVAL, at, "field '%s': first offset %lld is negative", shown(f, nb),
                    (long long)prev);
    for (int64_t k = 1; k <= a->length; k++) {
        int64_t cur = offset_at(a, k, large);
        if (cur < prev)
            return fail(d, -EINVAL, at, "field '%s': offsets decrease at row %lld", shown(f, nb),
                        (long long)(k - 1));
        prev = cur;
    }
    if (prev > limit)
        return fail(d, -EINVAL, at, "field '%s': last offset %lld exceeds the %lld available",
                    shown(f, nb), (long long)prev, (long long)limit);
    return 0;
}

static int load_array(dec *d, batch_state *bs, const kl_arrow_field *f, kl_arrow_array *a) {
    char nb[48];
    if (bs->next_node >= bs->n_nodes)
        return fail(d, -EINVAL, bs->body_at, "record batch has too few field nodes");
    size_t node_at = bs->b->base + bs->nodes + 16 * bs->next_node;
    const uint8_t *e = bs->b->p + bs->nodes + 16 * bs->next_node++;
    int64_t length = (int64_t)ld64(e), nulls = (int64_t)ld64(e + 8);
    if (length < 0 || nulls < 0 || nulls > length)
        return fail(d, -EINVAL, node_at, "field '%s': length %lld with null count %lld",
                    shown(f, nb), (long long)length, (long long)nulls);
    a->field = f;
    a->length = length;
    a->null_count = nulls;

    const uint8_t *p;
    size_t n;
    size_t at = bs->body_at;
    if (f->type == KL_ARROW_NULL) {
        a->null_count = length;
        return 0;
    }
    if (take_buffer(d, bs, f, &p, &n)) return -1;
    if (nulls > 0) {
        size_t need = bytes_for(length, 1);
        if (n < need)
            return fail(d, -EINVAL, node_at,
                        "validity bitmap of field '%s' is %zu bytes, %lld rows need %zu",
                        shown(f, nb), n, (long long)length, need);
        a->validity = p;
    }

    bool large = false;
    switch (f->type) {
    case KL_ARROW_BOOL:
    case KL_ARROW_INT:
    case KL_ARROW_FLOAT:
    case KL_ARROW_DECIMAL:
    case KL_ARROW_FIXED_SIZE_BINARY:
    case KL_ARROW_DATE:
    case KL_ARROW_TIME:
    case KL_ARROW_TIMESTAMP:
    case KL_ARROW_DURATION:
    case KL_ARROW_INTERVAL: {
        if (take_buffer(d, bs, f, &p, &n)) return -1;
        size_t need = bytes_for(length, f->bit_width);
        if (n < need)
            return fail(d, -EINVAL, node_at,
                        "values of field '%s' are %zu bytes, %lld rows need %zu", shown(f, nb), n,
                        (long long)length, need);
        a->values = p;
        a->values_len = n;
        return 0;
    }
    case KL_ARROW_LARGE_UTF8:
    case KL_ARROW_LARGE_BINARY:
        large = true; /* fall through */
    case KL_ARROW_UTF8:
    case KL_ARROW_BINARY: {
        const uint8_t *op, *vp;
        size_t on, vn;
        if (take_buffer(d, bs, f, &op, &on) || take_buffer(d, bs, f, &vp, &vn)) return -1;
        if (vn > INT64_MAX) return fail(d, -EINVAL, node_at, "data buffer too large");
        a->values = vp;
        a->values_len = vn;
        return check_offsets(d, node_at, f, a, op, on, large, (int64_t)vn);
    }
    case KL_ARROW_LARGE_LIST:
        large = true; /* fall through */
    case KL_ARROW_LIST:
    case KL_ARROW_MAP:
    case KL_ARROW_FIXED_SIZE_LIST:
    case KL_ARROW_STRUCT: {
        const uint8_t *op = NULL;
        size_t on = 0;
        if (f->type != KL_ARROW_STRUCT && f->type != KL_ARROW_FIXED_SIZE_LIST &&
            take_buffer(d, bs, f, &op, &on))
            return -1;
        kl_arrow_array *kids = NULL;
        if (f->n_children) {
            kids = arena_alloc(d->arena, f->n_children * sizeof *kids);
            if (!kids) return nomem(d, at);
        }
        a->children = kids;
        a->n_children = f->n_children;
        for (size_t i = 0; i < f->n_children; i++)
            if (load_array(d, bs, &f->children[i], &kids[i])) return -1;
        if (f->type == KL_ARROW_STRUCT) {
            for (size_t i = 0; i < f->n_children; i++)
                if (kids[i].length < length)
                    return fail(d, -EINVAL, node_at,
                                "struct field '%s' has %lld rows but its child %zu only %lld",
                                shown(f, nb), (long long)length, i, (long long)kids[i].length);
            return 0;
        }
        if (f->type == KL_ARROW_FIXED_SIZE_LIST) {
            size_t need;
            if (__builtin_mul_overflow((size_t)length, (size_t)f->fixed_size, &need) ||
                need > (uint64_t)kids[0].length)
                return fail(d, -EINVAL, node_at,
                            "fixed-size list field '%s' needs %lld x %d child rows, has %lld",
                            shown(f, nb), (long long)length, f->fixed_size,
                            (long long)kids[0].length);
            return 0;
        }
        return check_offsets(d, node_at, f, a, op, on, large, kids[0].length);
    }
    case KL_ARROW_NULL:
        return 0;
    }
    return fail(d, -EINVAL, node_at, "internal: unhandled type");
}

static int parse_record_batch(dec *d, const fb *b, const fbt *t, stream_state *st,
                              const uint8_t *body, size_t body_len, size_t body_at) {
    size_t at = b->base + t->pos;
    if (!st->have_schema) return fail(d, -EINVAL, at, "record batch before the schema");
    batch_state bs = {.b = b, .body = body, .body_len = body_len, .body_at = body_at};
    int64_t rows;
    if (fb_i64(d, b, t, 0, 0, &rows) || fb_vector(d, b, t, 1, 16, &bs.nodes, &bs.n_nodes) ||
        fb_vector(d, b, t, 2, 16, &bs.buffers, &bs.n_buffers))
        return -1;
    if (rows < 0) return fail(d, -EINVAL, at, "record batch has %lld rows", (long long)rows);
    if (bs.n_nodes != st->n_nodes)
        return fail(d, -EINVAL, at, "record batch has %zu field nodes, the schema needs %zu",
                    bs.n_nodes, st->n_nodes);
    if (bs.n_buffers != st->n_buffers)
        return fail(d, -EINVAL, at, "record batch has %zu buffers, the schema needs %zu",
                    bs.n_buffers, st->n_buffers);
    fbt comp;
    bool have_comp;
    if (fb_subtable(d, b, t, 3, &comp, &have_comp)) return -1;
    if (have_comp) {
        uint8_t codec, method;
        if (fb_u8(d, b, &comp, 0, CODEC_LZ4_FRAME, &codec) || fb_u8(d, b, &comp, 1, 0, &method))
            return -1;
        if (codec != CODEC_LZ4_FRAME && codec != CODEC_ZSTD)
            return fail(d, -EINVAL, at, "unknown compression codec %u", codec);
        if (method != 0) return fail(d, -EINVAL, at, "unknown compression method %u", method);
        bs.compressed = true;
        bs.codec = codec;
    }
    size_t vstart, vcount;
    if (fb_vector(d, b, t, 4, 8, &vstart, &vcount)) return -1;
    if (vcount) return fail(d, -EINVAL, at, "variadic buffers (view types) are not supported");

    if (st->n_batches == st->cap_batches) {
        size_t ncap = st->cap_batches ? st->cap_batches * 2 : 4;
        kl_arrow_batch *nb = arena_alloc(d->arena, ncap * sizeof *nb);
        if (!nb) return nomem(d, at);
        if (st->n_batches) memcpy(nb, st->batches, st->n_batches * sizeof *nb);
        st->batches = nb;
        st->cap_batches = ncap;
    }
    kl_arrow_array *cols = NULL;
    if (st->n_fields) {
        cols = arena_alloc(d->arena, st->n_fields * sizeof *cols);
        if (!cols) return nomem(d, at);
    }
    for (size_t i = 0; i < st->n_fields; i++) {
        if (load_array(d, &bs, &st->fields[i], &cols[i])) return -1;
        if (cols[i].length != rows) {
            char nb[48];
            return fail(d, -EINVAL, at, "column '%s' has %lld rows, the batch %lld",
                        shown(&st->fields[i], nb), (long long)cols[i].length, (long long)rows);
        }
    }
    kl_arrow_batch *batch = &st->batches[st->n_batches++];
    batch->length = rows;
    batch->n_columns = st->n_fields;
    batch->columns = cols;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Stream framing. */

static int decode_stream(dec *d, stream_state *st) {
    size_t pos = 0;
    for (;;) {
        size_t left = d->len - pos;
        if (left == 0)
            return fail(d, -EINVAL, pos,
                        pos ? "stream ends without the end-of-stream marker" : "empty input");
        if (left < 4) return fail(d, -EINVAL, pos, "truncated message length");
        uint32_t w = ld32(d->data + pos);
        size_t hdr = 4;
        if (w == 0xFFFFFFFFu) { /* continuation marker, then the length */
            if (left < 8) return fail(d, -EINVAL, pos, "truncated message length");
            w = ld32(d->data + pos + 4);
            hdr = 8;
        }
        int32_t meta = (int32_t)w;
        if (meta == 0) {
            if (pos + hdr != d->len)
                return fail(d, -EINVAL, pos + hdr, "%zu bytes after the end-of-stream marker",
                            d->len - pos - hdr);
            if (!st->have_schema) return fail(d, -EINVAL, pos, "stream has no schema");
            return 0;
        }
        if (meta < 0) return fail(d, -EINVAL, pos, "negative message length %d", meta);
        if ((size_t)meta > left - hdr)
            return fail(d, -EINVAL, pos, "message of %d bytes overruns the %zu-byte stream", meta,
                        d->len);
        size_t body_at = pos + hdr + (size_t)meta;
        /* Writers pad the metadata so that every body starts 8-byte aligned; a body that does not
         * means the framing is off. */
        if (body_at % 8)
            return fail(d, -EINVAL, pos, "message length %d leaves the body unaligned", meta);
        fb b = {d->data + pos + hdr, (size_t)meta, pos + hdr};
        fbt msg, hdr_tab;
        if (b.len < 4) return fail(d, -EINVAL, b.base, "message too short");
        size_t root;
        if (fb_follow(d, &b, 0, &root) || fb_table(d, &b, root, &msg)) return -1;
        int16_t version;
        uint8_t htype;
        int64_t body_len;
        bool have_hdr;
        if (fb_i16(d, &b, &msg, 0, 0, &version) || fb_u8(d, &b, &msg, 1, 0, &htype) ||
            fb_subtable(d, &b, &msg, 2, &hdr_tab, &have_hdr) ||
            fb_i64(d, &b, &msg, 3, 0, &body_len))
            return -1;
        if (version < MD_V4 || version > MD_V5)
            return fail(d, -EINVAL, pos, "metadata version V%d is not supported (V4 or V5 are)",
                        version + 1);
        if (body_len < 0 || (uint64_t)body_len > d->len - body_at)
            return fail(d, -EINVAL, pos, "message body of %lld bytes overruns the %zu-byte stream",
                        (long long)body_len, d->len);
        if (!have_hdr) return fail(d, -EINVAL, pos, "message without a header");
        switch (htype) {
        case HDR_SCHEMA:
            if (st->have_schema) return fail(d, -EINVAL, pos, "second schema in one stream");
            if (parse_schema(d, &b, &hdr_tab, st)) return -1;
            break;
        case HDR_RECORD_BATCH:
            if (parse_record_batch(d, &b, &hdr_tab, st, d->data + body_at, (size_t)body_len,
                                   body_at))
                return -1;
            break;
        case HDR_DICTIONARY_BATCH:
            return fail(d, -EINVAL, pos, "dictionary batches are not supported");
        default:
            return fail(d, -EINVAL, pos, "unsupported message type %u", htype);
        }
        pos = body_at + (size_t)body_len;
    }
}

int kl_arrow_decode(const void *data, size_t len, const kl_arrow_options *opt,
                    kl_arrow_stream **out, char err[KL_ARROW_ERRLEN]) {
    *out = NULL;
    err[0] = 0;
    dec d = {.data = data, .len = len, .err = err};
    d.max_decompressed =
        opt && opt->max_decompressed ? opt->max_decompressed : DEFAULT_MAX_DECOMPRESSED;
    d.max_fields = opt && opt->max_fields ? opt->max_fields : DEFAULT_MAX_FIELDS;
    d.arena = calloc(1, sizeof *d.arena);
    if (!d.arena) return nomem(&d, 0), -ENOMEM;
    kl_arrow_stream *s = arena_alloc(d.arena, sizeof *s);
    if (!s) {
        arena_free(d.arena);
        return nomem(&d, 0), -ENOMEM;
    }
    if (opt && opt->copy_input && len) {
        uint8_t *copy = malloc(len);
        if (!copy || arena_adopt(d.arena, copy)) { /* arena_adopt frees copy when it fails */
            arena_free(d.arena);
            return nomem(&d, 0), -ENOMEM;
        }
        memcpy(copy, data, len);
        d.data = copy;
    }
    stream_state st = {0};
    int rc = decode_stream(&d, &st);
    if (d.lz4) LZ4(LZ4F_freeDecompressionContext)(d.lz4);
    if (d.zstd) ZSTD(ZSTD_freeDCtx)(d.zstd);
    if (rc) {
        arena_free(d.arena);
        return d.code ? d.code : -EINVAL;
    }
    s->schema.fields = st.fields;
    s->schema.n_fields = st.n_fields;
    s->batches = st.batches;
    s->n_batches = st.n_batches;
    s->arena = d.arena;
    *out = s;
    return 0;
}

void kl_arrow_stream_free(kl_arrow_stream *s) {
    if (s) arena_free(s->arena);
}

/* ---------------------------------------------------------------------------------------------
 * Accessors. */

static bool in_range(const kl_arrow_array *a, int64_t i) {
    return a && i >= 0 && i < a->length;
}

bool kl_arrow_is_null(const kl_arrow_array *a, int64_t i) {
    if (!in_range(a, i) || a->field->type == KL_ARROW_NULL) return true;
    if (!a->validity) return false;
    int64_t k = a->offset + i;
    return !((a->validity[k >> 3] >> (k & 7)) & 1);
}

/* Start of slot i of a fixed-width array of `bytes` per value, or NULL. */
static const uint8_t *slot(const kl_arrow_array *a, int64_t i, kl_arrow_type t, size_t bytes) {
    if (!in_range(a, i) || a->field->type != t || !a->values) return NULL;
    if ((size_t)a->field->bit_width != bytes * 8) return NULL;
    return a->values + (size_t)(a->offset + i) * bytes;
}

bool kl_arrow_get_bool(const kl_arrow_array *a, int64_t i) {
    if (!in_range(a, i) || a->field->type != KL_ARROW_BOOL || !a->values) return false;
    int64_t k = a->offset + i;
    return (a->values[k >> 3] >> (k & 7)) & 1;
}

static bool int_backed(const kl_arrow_field *f) {
    switch (f->type) {
    case KL_ARROW_INT:
    case KL_ARROW_DATE:
    case KL_ARROW_TIME:
    case KL_ARROW_TIMESTAMP:
    case KL_ARROW_DURATION:
        return true;
    case KL_ARROW_INTERVAL:
        return f->interval_unit == KL_ARROW_YEAR_MONTH;
    default:
        return false;
    }
}

static uint64_t raw_int(const kl_arrow_array *a, int64_t i, bool sign_extend) {
    if (!in_range(a, i) || !int_backed(a->field) || !a->values) return 0;
    size_t k = (size_t)(a->offset + i);
    const uint8_t *p = a->values;
    switch (a->field->bit_width) {
    case 8:
        return sign_extend ? (uint64_t)(int64_t)(int8_t)p[k] : p[k];
    case 16: {
        uint16_t v = ld16(p + 2 * k);
        return sign_extend ? (uint64_t)(int64_t)(int16_t)v : v;
    }
    case 32: {
        uint32_t v = ld32(p + 4 * k);
        return sign_extend ? (uint64_t)(int64_t)(int32_t)v : v;
    }
    case 64:
        return ld64(p + 8 * k);
    default:
        return 0;
    }
}

int64_t kl_arrow_get_int(const kl_arrow_array *a, int64_t i) {
    bool sign = a && (a->field->type != KL_ARROW_INT || a->field->is_signed);
    return (int64_t)raw_int(a, i, sign);
}

uint64_t kl_arrow_get_uint(const kl_arrow_array *a, int64_t i) {
    return raw_int(a, i, false);
}

/* IEEE half to double, exactly, without libm. */
static double half_to_double(uint16_t h) {
    uint64_t sign = (uint64_t)(h >> 15) << 63;
    int exp = (h >> 10) & 0x1f;
    uint64_t man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | (0x7ffull << 52) | (man << 42);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise into a double */
            int e = -14;
            while (!(man & 0x400)) {
                man <<= 1;
                e--;
            }
            bits = sign | ((uint64_t)(e + 1023) << 52) | ((man & 0x3ff) << 42);
        }
    } else {
        bits = sign | ((uint64_t)(exp - 15 + 1023) << 52) | (man << 42);
    }
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

double kl_arrow_get_float(const kl_arrow_array *a, int64_t i) {
    if (!in_range(a, i) || a->field->type != KL_ARROW_FLOAT || !a->values) return 0;
    size_t k = (size_t)(a->offset + i);
    switch (a->field->bit_width) {
    case 16:
        return half_to_double(ld16(a->values + 2 * k));
    case 32: {
        float f;
        memcpy(&f, a->values + 4 * k, sizeof f);
        return f;
    }
    case 64: {
        double v;
        memcpy(&v, a->values + 8 * k, sizeof v);
        return v;
    }
    default:
        return 0;
    }
}

kl_arrow_bytes kl_arrow_get_bytes(const kl_arrow_array *a, int64_t i) {
    kl_arrow_bytes r = {NULL, 0};
    if (!in_range(a, i)) return r;
    int64_t k = a->offset + i;
    switch (a->field->type) {
    case KL_ARROW_FIXED_SIZE_BINARY:
        if (!a->values) return r;
        r.len = (size_t)a->field->fixed_size;
        r.ptr = a->values + (size_t)k * r.len;
        return r;
    case KL_ARROW_UTF8:
    case KL_ARROW_BINARY:
    case KL_ARROW_LARGE_UTF8:
    case KL_ARROW_LARGE_BINARY: {
        if (!a->offsets) return r;
        bool large =
            a->field->type == KL_ARROW_LARGE_UTF8 || a->field->type == KL_ARROW_LARGE_BINARY;
        int64_t s = offset_at(a, k, large), e = offset_at(a, k + 1, large);
        if (s < e && a->values) {
            r.ptr = a->values + s;
            r.len = (size_t)(e - s);
        }
        return r;
    }
    default:
        return r;
    }
}

void kl_arrow_get_range(const kl_arrow_array *a, int64_t i, int64_t *start, int64_t *end) {
    *start = *end = 0;
    if (!in_range(a, i)) return;
    int64_t k = a->offset + i;
    switch (a->field->type) {
    case KL_ARROW_FIXED_SIZE_LIST:
        *start = k * a->field->fixed_size;
        *end = *start + a->field->fixed_size;
        return;
    case KL_ARROW_LIST:
    case KL_ARROW_MAP:
    case KL_ARROW_LARGE_LIST:
        if (!a->offsets) return;
        *start = offset_at(a, k, a->field->type == KL_ARROW_LARGE_LIST);
        *end = offset_at(a, k + 1, a->field->type == KL_ARROW_LARGE_LIST);
        return;
    default:
        return;
    }
}

kl_arrow_day_time kl_arrow_get_day_time(const kl_arrow_array *a, int64_t i) {
    kl_arrow_day_time r = {0, 0};
    const uint8_t *p = slot(a, i, KL_ARROW_INTERVAL, 8);
    if (p && a->field->interval_unit == KL_ARROW_DAY_TIME) {
        r.days = (int32_t)ld32(p);
        r.milliseconds = (int32_t)ld32(p + 4);
    }
    return r;
}

kl_arrow_month_day_nano kl_arrow_get_month_day_nano(const kl_arrow_array *a, int64_t i) {
    kl_arrow_month_day_nano r = {0, 0, 0};
    const uint8_t *p = slot(a, i, KL_ARROW_INTERVAL, 16);
    if (p && a->field->interval_unit == KL_ARROW_MONTH_DAY_NANO) {
        r.months = (int32_t)ld32(p);
        r.days = (int32_t)ld32(p + 4);
        r.nanoseconds = (int64_t)ld64(p + 8);
    }
    return r;
}

kl_arrow_decimal256 kl_arrow_get_decimal256(const kl_arrow_array *a, int64_t i) {
    kl_arrow_decimal256 r = {{0, 0, 0, 0}};
    if (!in_range(a, i) || a->field->type != KL_ARROW_DECIMAL || !a->values) return r;
    size_t bytes = (size_t)a->field->bit_width / 8;
    uint8_t v[32];
    memcpy(v, a->values + (size_t)(a->offset + i) * bytes, bytes);
    memset(v + bytes, (v[bytes - 1] & 0x80) ? 0xff : 0, 32 - bytes);
    for (int w = 0; w < 4; w++) r.w[w] = ld64(v + 8 * w);
    return r;
}

kl_arrow_decimal128 kl_arrow_get_decimal128(const kl_arrow_array *a, int64_t i) {
    kl_arrow_decimal256 v = kl_arrow_get_decimal256(a, i);
    kl_arrow_decimal128 r = {v.w[0], (int64_t)v.w[1]};
    return r;
}

/* ---------------------------------------------------------------------------------------------
 * Decimal text. */

size_t kl_arrow_decimal256_to_string(kl_arrow_decimal256 value, int32_t scale, char *buf,
                                     size_t cap) {
    /* Magnitude in 32-bit limbs, least significant first; two's complement negation handles the
     * most negative value too, since the magnitude is read as unsigned. */
    bool neg = value.w[3] >> 63;
    uint32_t limb[8];
    uint64_t carry = 1;
    for (int w = 0; w < 4; w++) {
        uint64_t x = value.w[w];
        if (neg) {
            x = ~x + carry;
            carry = carry && x == 0;
        }
        limb[2 * w] = (uint32_t)x;
        limb[2 * w + 1] = (uint32_t)(x >> 32);
    }
    char digits[80]; /* reversed; 2^256 has 78 digits */
    size_t nd = 0;
    int top = 7;
    while (top >= 0 && limb[top] == 0) top--;
    while (top >= 0) { /* divide by 10^9, emit nine digits of the remainder */
        uint64_t rem = 0;
        for (int k = top; k >= 0; k--) {
            uint64_t cur = (rem << 32) | limb[k];
            limb[k] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        while (top >= 0 && limb[top] == 0) top--;
        for (int k = 0; k < 9 && (top >= 0 || rem); k++) {
            digits[nd++] = (char)('0' + rem % 10);
            rem /= 10;
        }
    }
    if (nd == 0) {
        digits[nd++] = '0';
        neg = false;
    }

    size_t len = 0;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (len + 1 < cap) buf[len] = (c);                                                         \
        len++;                                                                                     \
    } while (0)
    if (neg) PUT('-');
    if (scale <= 0) {
        for (size_t k = nd; k-- > 0;) PUT(digits[k]);
        if (!(nd == 1 && digits[0] == '0'))
            for (int64_t z = 0; z < -(int64_t)scale; z++) PUT('0');
    } else {
        size_t sc = (size_t)scale;
        if (nd <= sc) {
            PUT('0');
            PUT('.');
            for (size_t z = nd; z < sc; z++) PUT('0');
            for (size_t k = nd; k-- > 0;) PUT(digits[k]);
        } else {
            for (size_t k = nd; k-- > 0;) {
                PUT(digits[k]);
                if (k == sc) PUT('.');
            }
        }
    }
#undef PUT
    if (cap) buf[len < cap ? len : cap - 1] = 0;
    return len;
}

size_t kl_arrow_decimal128_to_string(kl_arrow_decimal128 value, int32_t scale, char *buf,
                                     size_t cap) {
    uint64_t ext = value.hi < 0 ? UINT64_MAX : 0;
    kl_arrow_decimal256 v = {{value.lo, (uint64_t)value.hi, ext, ext}};
    return kl_arrow_decimal256_to_string(v, scale, buf, cap);
}

const char *kl_arrow_type_name(kl_arrow_type t) {
    switch (t) {
    case KL_ARROW_NULL:
        return "null";
    case KL_ARROW_BOOL:
        return "bool";
    case KL_ARROW_INT:
        return "int";
    case KL_ARROW_FLOAT:
        return "float";
    case KL_ARROW_DECIMAL:
        return "decimal";
    case KL_ARROW_UTF8:
        return "utf8";
    case KL_ARROW_LARGE_UTF8:
        return "large_utf8";
    case KL_ARROW_BINARY:
        return "binary";
    case KL_ARROW_LARGE_BINARY:
        return "large_binary";
    case KL_ARROW_FIXED_SIZE_BINARY:
        return "fixed_size_binary";
    case KL_ARROW_DATE:
        return "date";
    case KL_ARROW_TIME:
        return "time";
    case KL_ARROW_TIMESTAMP:
        return "timestamp";
    case KL_ARROW_DURATION:
        return "duration";
    case KL_ARROW_INTERVAL:
        return "interval";
    case KL_ARROW_LIST:
        return "list";
    case KL_ARROW_LARGE_LIST:
        return "large_list";
    case KL_ARROW_FIXED_SIZE_LIST:
        return "fixed_size_list";
    case KL_ARROW_STRUCT:
        return "struct";
    case KL_ARROW_MAP:
        return "map";
    }
    return "unknown";
}
