#include "jupyter/jsontext.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct out {
    char *s;
    size_t len, cap;
    bool failed;
} out;

static bool reserve(out *o, size_t more) {
    if (o->failed) return false;
    if (o->len + more + 1 <= o->cap) return true;
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + more + 1) cap *= 2;
    char *s = realloc(o->s, cap);
    if (!s) {
        o->failed = true;
        return false;
    }
    o->s = s;
    o->cap = cap;
    return true;
}

static void put(out *o, const char *p, size_t n) {
    if (!reserve(o, n)) return;
    memcpy(o->s + o->len, p, n);
    o->len += n;
}

size_t kl_jsontext_quote(char *dst, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF"; /* upper case, as jansson writes it */
    char *d = dst;
    *d++ = '"';
    for (size_t i = 0; i < n; i++) {
        /* Runs of plain text, nearly all of it, go in one copy. */
        size_t run = i;
        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\') run++;
        memcpy(d, s + i, run - i);
        d += run - i;
        i = run;
        if (i == n) break;
        unsigned char c = (unsigned char)s[i];
        *d++ = '\\';
        switch (c) {
        case '"':
            *d++ = '"';
            break;
        case '\\':
            *d++ = '\\';
            break;
        case '\n':
            *d++ = 'n';
            break;
        case '\r':
            *d++ = 'r';
            break;
        case '\t':
            *d++ = 't';
            break;
        case '\b':
            *d++ = 'b';
            break;
        case '\f':
            *d++ = 'f';
            break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
        }
    }
    *d++ = '"';
    return (size_t)(d - dst);
}

static void put_string(out *o, const char *s, size_t n) {
    if (!reserve(o, KL_JSONTEXT_QUOTED_MAX(n))) return;
    o->len += kl_jsontext_quote(o->s + o->len, s, n);
}

static void put_value(out *o, const json_t *v, int depth) {
    if (o->failed) return;
    if (depth > KL_JSONTEXT_MAX_DEPTH) {
        o->failed = true;
        return;
    }
    char num[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        put(o, "{", 1);
        bool first = true;
        const char *key;
        json_t *child;
        /* json_object_foreach takes a non-const object but only reads it. */
        json_object_foreach((json_t *)v, key, child) {
            if (!first) put(o, ",", 1);
            first = false;
            put_string(o, key, strlen(key));
            put(o, ":", 1);
            put_value(o, child, depth + 1);
        }
        put(o, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        put(o, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) put(o, ",", 1);
            put_value(o, json_array_get(v, i), depth + 1);
        }
        put(o, "]", 1);
        break;
    }
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put(o, num,
            (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
        break;
    case JSON_REAL: {
        /* Reals are rare on the wire; jansson's own formatting keeps them identical to what
         * json_dumps writes (shortest round-trip form, ".0" kept). */
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!text) {
            o->failed = true;
            return;
        }
        put(o, text, strlen(text));
        free(text);
        break;
    }
    case JSON_TRUE:
        put(o, "true", 4);
        break;
    case JSON_FALSE:
        put(o, "false", 5);
        break;
    case JSON_NULL:
        put(o, "null", 4);
        break;
    }
}

char *kl_jsontext_dump(const json_t *v, size_t *len) {
    out o = {0};
    put_value(&o, v, 0);
    if (!reserve(&o, 0)) {
        free(o.s);
        return NULL;
    }
    o.s[o.len] = '\0';
    if (len) *len = o.len;
    return o.s;
}
