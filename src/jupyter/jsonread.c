/* The fast path of JSON parsing: anything it is not sure about makes it give up (NULL), and the
 * caller parses the text with jansson instead, so it never has to produce an error of its own and
 * never accepts what jansson would refuse. */
#include "jupyter/jsonread.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
    const unsigned char *p, *end;
    int depth, max_depth;
} reader;

static void skip_ws(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

/* Length of the valid UTF-8 sequence at p (at most left bytes), 0 when it is not one: the same
 * rules as jansson's (no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t left) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0xC2)
        return 0;
    else if (c < 0xE0)
        n = 2;
    else if (c < 0xF0) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c < 0xF5) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (left < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* Scans the string whose opening quote is at r->p. On success r->p is past the closing quote,
 * *start and *len give the raw bytes between the quotes and *escaped says whether they hold a
 * backslash escape (only \" \\ \/ \b \f \n \r \t are taken). false: give up. */
static bool scan_string(reader *r, const char **start, size_t *len, bool *escaped) {
    const unsigned char *p = r->p + 1;
    *escaped = false;
    for (;;) {
        /* Plain ASCII, almost all of it, in a tight loop. */
        while (p < r->end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
        if (p >= r->end) return false;
        unsigned char c = *p;
        if (c == '"') break;
        if (c == '\\') {
            if (p + 1 >= r->end) return false;
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                *escaped = true;
                p += 2;
                continue;
            default: /* \u and anything invalid: jansson's */
                return false;
            }
        }
        if (c < 0x20) return false;
        size_t n = utf8_len(p, (size_t)(r->end - p));
        if (n == 0) return false;
        p += n;
    }
    *start = (const char *)r->p + 1;
    *len = (size_t)(p - (r->p + 1));
    r->p = p + 1;
    return true;
}

/* Writes the unescaped form of raw[0..len) (scanned by scan_string) into out (len bytes of room);
 * returns its length. */
static size_t unescape(const char *raw, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        switch (raw[++i]) {
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        default: /* " \ / stand for themselves */
            out[o++] = raw[i];
        }
    }
    return o;
}

/* The text of a scanned string: raw itself, or its unescaped form in stack (when it fits) or in
 * *heap (malloc'd: the caller frees it). NULL when out of memory. */
static const char *string_text(const char *raw, size_t len, bool escaped, char *stack,
                               size_t stacklen, char **heap, size_t *n) {
    *heap = NULL;
    *n = len;
    if (!escaped) return raw;
    char *buf = len <= stacklen ? stack : (*heap = malloc(len));
    if (!buf) return NULL;
    *n = unescape(raw, len, buf);
    return buf;
}

/* A value may only be followed by white space, a separator, a closing bracket or the end. */
static bool at_value_end(const reader *r) {
    if (r->p >= r->end) return true;
    switch (*r->p) {
    case ' ':
    case '\n':
    case '\r':
    case '\t':
    case ',':
    case '}':
    case ']':
        return true;
    default:
        return false;
    }
}

static json_t *parse_value(reader *r);

static json_t *parse_number(reader *r) {
    const unsigned char *p = r->p;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    const unsigned char *digits = p;
    while (p < r->end && *p >= '0' && *p <= '9') p++;
    size_t n = (size_t)(p - digits);
    /* Fractions, exponents, leading zeros and integers that might not fit are jansson's. */
    if (n == 0 || n > 18 || (n > 1 && digits[0] == '0')) return NULL;
    if (p < r->end && (*p == '.' || *p == 'e' || *p == 'E')) return NULL;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (digits[i] - '0');
    r->p = p;
    if (!at_value_end(r)) return NULL;
    return json_integer(neg ? -v : v);
}

static json_t *parse_literal(reader *r, const char *word, json_t *value) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return NULL;
    r->p += n;
    return at_value_end(r) ? value : NULL;
}

static json_t *parse_array(reader *r) {
    json_t *a = json_array();
    if (!a) return NULL;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return a;
    }
    for (;;) {
        json_t *v = parse_value(r);
        if (!v || json_array_append_new(a, v) != 0) break;
        skip_ws(r);
        if (r->p >= r->end) break;
        if (*r->p == ']') {
            r->p++;
            return a;
        }
        if (*r->p != ',') break;
        r->p++;
        skip_ws(r);
    }
    json_decref(a);
    return NULL;
}

static json_t *parse_object(reader *r) {
    json_t *o = json_object();
    if (!o) return NULL;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return o;
    }
    for (;;) {
        if (r->p >= r->end || *r->p != '"') break;
        const char *key;
        size_t keylen;
        bool escaped;
        if (!scan_string(r, &key, &keylen, &escaped)) break;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':') break;
        r->p++;
        skip_ws(r);
        json_t *v = parse_value(r);
        if (!v) break;
        char stack[256], *heap;
        size_t n;
        const char *k = string_text(key, keylen, escaped, stack, sizeof stack, &heap, &n);
        /* Steals v even on failure. A repeated key replaces the earlier value in its place, as
         * jansson's parser does without JSON_REJECT_DUPLICATES. Keys hold no NUL: \u escapes are
         * left to jansson. */
        int rc = k ? json_object_setn_new_nocheck(o, k, n, v) : (json_decref(v), -1);
        free(heap);
        if (rc != 0) break;
        skip_ws(r);
        if (r->p >= r->end) break;
        if (*r->p == '}') {
            r->p++;
            return o;
        }
        if (*r->p != ',') break;
        r->p++;
        skip_ws(r);
    }
    json_decref(o);
    return NULL;
}

static json_t *parse_value(reader *r) {
    if (r->p >= r->end) return NULL;
    switch (*r->p) {
    case '{':
    case '[': {
        if (++r->depth > r->max_depth) return NULL;
        json_t *v = *r->p == '{' ? parse_object(r) : parse_array(r);
        r->depth--;
        return v;
    }
    case '"': {
        const char *raw;
        size_t len;
        bool escaped;
        if (!scan_string(r, &raw, &len, &escaped)) return NULL;
        char stack[512], *heap;
        size_t n;
        const char *text = string_text(raw, len, escaped, stack, sizeof stack, &heap, &n);
        /* Validated above: UTF-8 checked, and no NUL since \u escapes are left to jansson. */
        json_t *v = text ? json_stringn_nocheck(text, n) : NULL;
        free(heap);
        return v;
    }
    case 't':
        return parse_literal(r, "true", json_true());
    case 'f':
        return parse_literal(r, "false", json_false());
    case 'n':
        return parse_literal(r, "null", json_null());
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) return parse_number(r);
        return NULL;
    }
}

json_t *kl_jsonread_parse(const char *s, size_t len, int max_depth) {
    reader r = {(const unsigned char *)s, (const unsigned char *)s + len, 0, max_depth};
    skip_ws(&r);
    json_t *v = parse_value(&r);
    if (!v) return NULL;
    skip_ws(&r);
    if (r.p != r.end) {
        json_decref(v);
        return NULL;
    }
    return v;
}
