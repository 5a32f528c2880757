/* msgpack <-> JSON with msgpack-c and jansson. */
#include "cli/msgpack_json.h"

#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEPTH 256

static char *base64(const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        *o++ = tab[(v >> 18) & 63];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = 0;
    return out;
}

static json_t *b64_value(const char *ptr, size_t n) {
    char *s = base64((const unsigned char *)ptr, n);
    json_t *v = s ? json_string(s) : NULL;
    free(s);
    return v;
}

static uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* The msgpack timestamp extension: 32-bit seconds; 30-bit nanoseconds and 34-bit seconds; or
 * 32-bit nanoseconds and signed 64-bit seconds. */
static json_t *timestamp(const unsigned char *p, size_t n) {
    int64_t sec;
    uint32_t nsec;
    if (n == 4) {
        sec = (int64_t)be(p, 4), nsec = 0;
    } else if (n == 8) {
        uint64_t v = be(p, 8);
        nsec = (uint32_t)(v >> 34), sec = (int64_t)(v & 0x3FFFFFFFFull);
    } else if (n == 12) {
        nsec = (uint32_t)be(p, 4), sec = (int64_t)be(p + 4, 8);
    } else {
        return NULL;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return NULL;
    char buf[64];
    size_t k = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, sizeof buf - k, ".%09uZ", (unsigned)(nsec % 1000000000u));
    return json_string(buf);
}

static json_t *convert(const msgpack_object *o, int depth);

static json_t *convert_map(const msgpack_object *o, int depth) {
    json_t *obj = json_object();
    for (uint32_t i = 0; obj && i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        json_t *val = convert(&kv->val, depth + 1);
        if (!val) goto fail;
        char *key;
        if (kv->key.type == MSGPACK_OBJECT_STR) {
            key = strndup(kv->key.via.str.ptr, kv->key.via.str.size);
        } else {
            json_t *k = convert(&kv->key, depth + 1);
            key = k ? json_dumps(k, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            json_decref(k);
        }
        int rc = key ? json_object_set_new(obj, key, val) : (json_decref(val), -1);
        free(key);
        if (rc != 0) goto fail;
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

static json_t *convert(const msgpack_object *o, int depth) {
    if (depth > MAX_DEPTH) return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            char buf[32];
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)o->via.u64);
            return json_string(buf);
        }
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double d = o->via.f64;
        if (isnan(d)) return json_string("NaN");
        if (isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
        return json_real(d);
    }
    case MSGPACK_OBJECT_STR: {
        json_t *s = json_stringn(o->via.str.ptr, o->via.str.size);
        /* Not UTF-8: keep the bytes rather than fail the whole value. */
        return s ? s : json_pack("{s:o}", "base64", b64_value(o->via.str.ptr, o->via.str.size));
    }
    case MSGPACK_OBJECT_BIN:
        return json_pack("{s:o}", "base64", b64_value(o->via.bin.ptr, o->via.bin.size));
    case MSGPACK_OBJECT_EXT:
        if (o->via.ext.type == -1) {
            json_t *t = timestamp((const unsigned char *)o->via.ext.ptr, o->via.ext.size);
            if (t) return t;
        }
        return json_pack("{s:i, s:o}", "ext", (int)o->via.ext.type, "base64",
                         b64_value(o->via.ext.ptr, o->via.ext.size));
    case MSGPACK_OBJECT_ARRAY: {
        json_t *arr = json_array();
        for (uint32_t i = 0; arr && i < o->via.array.size; i++) {
            json_t *v = convert(&o->via.array.ptr[i], depth + 1);
            if (!v || json_array_append_new(arr, v) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    case MSGPACK_OBJECT_MAP:
        return convert_map(o, depth);
    }
    return NULL;
}

json_t *kl_cli_msgpack_to_json(const void *data, size_t len, char *err, size_t errlen) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    json_t *all = json_array();
    size_t off = 0;
    while (all && off < len) {
        msgpack_unpack_return r = msgpack_unpack_next(&u, data, len, &off);
        if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_EXTRA_BYTES) {
            snprintf(err, errlen, "not msgpack (%s at byte %zu)",
                     r == MSGPACK_UNPACK_CONTINUE ? "truncated" : "malformed", off);
            json_decref(all);
            all = NULL;
            break;
        }
        json_t *v = convert(&u.data, 0);
        if (!v) {
            snprintf(err, errlen, "cannot convert the msgpack value to JSON");
            json_decref(all);
            all = NULL;
            break;
        }
        json_array_append_new(all, v);
    }
    msgpack_unpacked_destroy(&u);
    if (!all) return NULL;
    if (json_array_size(all) == 1) {
        json_t *one = json_incref(json_array_get(all, 0));
        json_decref(all);
        return one;
    }
    return all;
}

static int pack(msgpack_packer *pk, const json_t *v, int depth) {
    if (depth > MAX_DEPTH) return -1;
    switch (json_typeof(v)) {
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(v));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v));
    case JSON_STRING: {
        size_t n = json_string_length(v);
        return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, json_string_value(v), n);
    }
    case JSON_ARRAY: {
        if (msgpack_pack_array(pk, json_array_size(v))) return -1;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (pack(pk, x, depth + 1)) return -1;
        return 0;
    }
    case JSON_OBJECT: {
        if (msgpack_pack_map(pk, json_object_size(v))) return -1;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            size_t n = strlen(k);
            if (msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, k, n) ||
                pack(pk, x, depth + 1))
                return -1;
        }
        return 0;
    }
    }
    return -1;
}

void *kl_cli_json_to_msgpack(const json_t *v, size_t *len) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (pack(&pk, v, 0) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    *len = sb.size;
    return sb.data; /* the sbuffer's malloc'd storage, handed over */
}
