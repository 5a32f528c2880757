#include "kernel/sqlparams.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/sqltext.h"

/* ---- statements --------------------------------------------------------------------------- */

static bool ident_start(char c) {
    return isalpha((unsigned char)c) || c == '_';
}

static bool ident_char(char c) {
    return isalnum((unsigned char)c) || c == '_';
}

/* End of the quoted run that starts at s[i] (a quote character); backslash escapes as Spark's
 * lexer reads them. */
static size_t skip_quoted(const char *s, size_t len, size_t i) {
    char q = s[i++];
    while (i < len) {
        if (s[i] == '\\' && q != '`' && i + 1 < len) {
            i += 2;
        } else if (s[i] == q) {
            return i + 1;
        } else {
            i++;
        }
    }
    return len;
}

static size_t skip_block_comment(const char *s, size_t len, size_t i) {
    int depth = 0;
    while (i < len) {
        if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
            depth++;
            i += 2;
        } else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
            i += 2;
            if (--depth == 0) return i;
        } else {
            i++;
        }
    }
    return len;
}

static int add_name(kl_sqlstmt *st, const char *name, size_t n) {
    for (size_t i = 0; i < st->n_names; i++)
        if (strlen(st->names[i]) == n && memcmp(st->names[i], name, n) == 0) return 0;
    char **v = realloc(st->names, (st->n_names + 1) * sizeof *v);
    if (!v) return -ENOMEM;
    st->names = v;
    if (!(st->names[st->n_names] = strndup(name, n))) return -ENOMEM;
    st->n_names++;
    return 0;
}

/* Finds the markers outside quotes and comments: ":name" (not the "::" cast) and "?". */
static int scan_markers(kl_sqlstmt *st) {
    const char *s = st->text;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (c == '\'' || c == '"' || c == '`') {
            i = skip_quoted(s, len, i);
        } else if (c == '-' && i + 1 < len && s[i + 1] == '-') {
            while (i < len && s[i] != '\n') i++;
        } else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
            i = skip_block_comment(s, len, i);
        } else if (c == ':' && i + 1 < len && s[i + 1] == ':') {
            i += 2;
        } else if (c == ':' && i + 1 < len && ident_start(s[i + 1])) {
            size_t start = ++i;
            while (i < len && ident_char(s[i])) i++;
            if (add_name(st, s + start, i - start) != 0) return -ENOMEM;
        } else if (c == ':' && i + 1 < len && s[i + 1] == '`') {
            size_t start = i + 2;
            i = skip_quoted(s, len, i + 1);
            size_t end = i > start ? i - 1 : start;
            if (add_name(st, s + start, end - start) != 0) return -ENOMEM;
        } else {
            if (c == '?') st->n_positional++;
            i++;
        }
    }
    return 0;
}

int kl_sqlstmt_parse(const char *sql, size_t len, kl_sqlstmt *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    kl_span *spans = NULL;
    long n = kl_sqltext_split(sql, len, &spans);
    if (n < 0) return -ENOMEM;
    if (n != 1) {
        free(spans);
        snprintf(err, errlen, "%s",
                 n == 0 ? "the \"sql\" statement is empty"
                        : "\"sql\" holds several statements; a comm runs exactly one");
        return -1;
    }
    out->text = strndup(sql + spans[0].start, spans[0].len);
    free(spans);
    if (!out->text || scan_markers(out) != 0) {
        kl_sqlstmt_free(out);
        return -ENOMEM;
    }
    if (out->n_names && out->n_positional) {
        snprintf(err, errlen,
                 "the statement mixes named (:%s) and positional (?) parameter markers; Spark "
                 "accepts one kind per statement",
                 out->names[0]);
        kl_sqlstmt_free(out);
        return -1;
    }
    return 0;
}

void kl_sqlstmt_free(kl_sqlstmt *s) {
    for (size_t i = 0; i < s->n_names; i++) free(s->names[i]);
    free(s->names);
    free(s->text);
    memset(s, 0, sizeof *s);
}

/* ---- binding ------------------------------------------------------------------------------ */

/* Every object of a binding comes from one arena, freed at once: a few hundred bytes inside the
 * binding itself, then blocks of at least BLOCK_BYTES. A call binds every time it runs, so this
 * is one allocation per call instead of one per object. */
#define INLINE_BYTES 768
#define BLOCK_BYTES  2048

typedef struct block {
    struct block *next;
    size_t size, used;
    max_align_t data[];
} block;

struct kl_sqlbind {
    Spark__Connect__Relation rel;
    Spark__Connect__SQL sql;
    Spark__Connect__DataType null_type;
    Spark__Connect__DataType__NULL null_kind;
    block *blocks;
    size_t inline_used;
    _Alignas(max_align_t) unsigned char inline_data[INLINE_BYTES];
};

/* Zeroed memory for n bytes, aligned for any object; NULL on ENOMEM. */
static void *alloc(kl_sqlbind *b, size_t n) {
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (INLINE_BYTES - b->inline_used >= n) {
        void *p = b->inline_data + b->inline_used;
        b->inline_used += n;
        return p;
    }
    block *blk = b->blocks;
    if (!blk || blk->size - blk->used < n) {
        size_t size = n > BLOCK_BYTES ? n : BLOCK_BYTES;
        blk = calloc(1, sizeof *blk + size);
        if (!blk) return NULL;
        blk->size = size;
        blk->next = b->blocks;
        b->blocks = blk;
    }
    void *p = (unsigned char *)blk->data + blk->used;
    blk->used += n;
    return p;
}

static char *copy(kl_sqlbind *b, const char *s, size_t n) {
    char *p = alloc(b, n + 1);
    if (p) memcpy(p, s, n);
    return p;
}

typedef struct bctx {
    kl_sqlbind *b;
    char *err;
    size_t errlen;
} bctx;

__attribute__((format(printf, 3, 4))) static kl_sqlbind_rc fail(bctx *c, kl_sqlbind_rc rc,
                                                                const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static kl_sqlbind *bind_new(const kl_sqlstmt *stmt) {
    kl_sqlbind *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    spark__connect__relation__init(&b->rel);
    spark__connect__sql__init(&b->sql);
    spark__connect__data_type__init(&b->null_type);
    spark__connect__data_type__null__init(&b->null_kind);
    b->null_type.kind_case = SPARK__CONNECT__DATA_TYPE__KIND_NULL;
    b->null_type.null = &b->null_kind;
    b->sql.query = stmt->text;
    b->rel.rel_type_case = SPARK__CONNECT__RELATION__REL_TYPE_SQL;
    b->rel.sql = &b->sql;
    return b;
}

void kl_sqlbind_free(kl_sqlbind *b) {
    if (!b) return;
    for (block *blk = b->blocks, *next; blk; blk = next) {
        next = blk->next;
        free(blk);
    }
    free(b);
}

Spark__Connect__Relation *kl_sqlbind_relation(kl_sqlbind *b) {
    return &b->rel;
}

Spark__Connect__Expression *kl_sqlbind_value(kl_sqlbind *b, const kl_sqlstmt *stmt, size_t i) {
    if (stmt->n_names) {
        if (i >= stmt->n_names) return NULL;
        for (size_t k = b->sql.n_named_arguments; k-- > 0;)
            if (strcmp(b->sql.named_arguments[k]->key, stmt->names[i]) == 0)
                return b->sql.named_arguments[k]->value;
        return NULL;
    }
    return i < b->sql.n_pos_arguments ? b->sql.pos_arguments[i] : NULL;
}

/* Room for n arguments of one kind (named or positional), in both the 4.0 fields and the older
 * ones. */
static int reserve(kl_sqlbind *b, size_t n, bool named) {
    if (n == 0) return 0;
    if (named) {
        b->sql.named_arguments = alloc(b, n * sizeof *b->sql.named_arguments);
        b->sql.args = alloc(b, n * sizeof *b->sql.args);
        return b->sql.named_arguments && b->sql.args ? 0 : -ENOMEM;
    }
    b->sql.pos_arguments = alloc(b, n * sizeof *b->sql.pos_arguments);
    b->sql.pos_args = alloc(b, n * sizeof *b->sql.pos_args);
    return b->sql.pos_arguments && b->sql.pos_args ? 0 : -ENOMEM;
}

/* A literal added under key (named) or at the next position (key NULL). */
static Spark__Connect__Expression__Literal *add_literal(kl_sqlbind *b, const char *key,
                                                        size_t keylen) {
    Spark__Connect__Expression__Literal *lit = alloc(b, sizeof *lit);
    Spark__Connect__Expression *expr = alloc(b, sizeof *expr);
    if (!lit || !expr) return NULL;
    spark__connect__expression__literal__init(lit);
    spark__connect__expression__init(expr);
    expr->expr_type_case = SPARK__CONNECT__EXPRESSION__EXPR_TYPE_LITERAL;
    expr->literal = lit;
    if (!key) {
        b->sql.pos_arguments[b->sql.n_pos_arguments++] = expr;
        b->sql.pos_args[b->sql.n_pos_args++] = lit;
        return lit;
    }
    Spark__Connect__SQL__NamedArgumentsEntry *ne = alloc(b, sizeof *ne);
    Spark__Connect__SQL__ArgsEntry *ae = alloc(b, sizeof *ae);
    char *k = copy(b, key, keylen);
    if (!ne || !ae || !k) return NULL;
    spark__connect__sql__named_arguments_entry__init(ne);
    spark__connect__sql__args_entry__init(ae);
    ne->key = ae->key = k;
    ne->value = expr;
    ae->value = lit;
    b->sql.named_arguments[b->sql.n_named_arguments++] = ne;
    b->sql.args[b->sql.n_args++] = ae;
    return lit;
}

static bool has_key(const kl_sqlbind *b, const char *name) {
    for (size_t i = 0; i < b->sql.n_named_arguments; i++)
        if (strcmp(b->sql.named_arguments[i]->key, name) == 0) return true;
    return false;
}

/* After the values: every marker of the statement must have one. */
static kl_sqlbind_rc check_complete(bctx *c, const kl_sqlstmt *stmt) {
    kl_sqlbind *b = c->b;
    for (size_t i = 0; i < stmt->n_names; i++)
        if (!has_key(b, stmt->names[i]))
            return fail(c, KL_SQLBIND_UNBOUND, "no value for the parameter :%s in \"params\"",
                        stmt->names[i]);
    if (b->sql.n_pos_arguments < stmt->n_positional)
        return fail(c, KL_SQLBIND_UNBOUND,
                    "the statement has %zu positional parameters (?) but \"params\" holds %zu "
                    "values",
                    stmt->n_positional, b->sql.n_pos_arguments);
    if (stmt->n_positional && b->sql.n_pos_arguments > stmt->n_positional)
        return fail(c, KL_SQLBIND_INVALID,
                    "the statement has %zu positional parameters (?) but \"params\" holds %zu "
                    "values",
                    stmt->n_positional, b->sql.n_pos_arguments);
    return KL_SQLBIND_OK;
}

/* The name a value is reported under: ":id" or "#3". */
static const char *label(char *buf, size_t len, const char *key, size_t keylen, size_t pos) {
    if (key)
        snprintf(buf, len, ":%.*s", (int)(keylen > 64 ? 64 : keylen), key);
    else
        snprintf(buf, len, "#%zu", pos + 1);
    return buf;
}

static kl_sqlbind_rc shape_error(bctx *c, const kl_sqlstmt *stmt, bool got_named) {
    if (got_named)
        return fail(c, KL_SQLBIND_INVALID,
                    "\"params\" is an object but the statement uses positional markers (?); send "
                    "a list of values");
    return fail(c, KL_SQLBIND_INVALID,
                "\"params\" is a list but the statement uses named markers (:%s); send an object "
                "of name: value",
                stmt->n_names ? stmt->names[0] : "name");
}

/* ---- from JSON ---------------------------------------------------------------------------- */

static kl_sqlbind_rc json_literal(bctx *c, const json_t *v, const char *key, size_t keylen,
                                  size_t pos) {
    char name[80];
    Spark__Connect__Expression__Literal *lit = add_literal(c->b, key, keylen);
    if (!lit) return KL_SQLBIND_NOMEM;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_LONG;
        lit->long_ = json_integer_value(v);
        break;
    case JSON_REAL:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_DOUBLE;
        lit->double_ = json_real_value(v);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_BOOLEAN;
        lit->boolean = json_is_true(v);
        break;
    case JSON_NULL:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_NULL;
        lit->null = &c->b->null_type;
        break;
    case JSON_STRING: {
        size_t n = json_string_length(v);
        if (memchr(json_string_value(v), '\0', n))
            return fail(c, KL_SQLBIND_INVALID, "parameter %s: a string holding NUL cannot be bound",
                        label(name, sizeof name, key, keylen, pos));
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_STRING;
        if (!(lit->string = copy(c->b, json_string_value(v), n))) return KL_SQLBIND_NOMEM;
        break;
    }
    default:
        return fail(c, KL_SQLBIND_INVALID,
                    "parameter %s: %s values cannot be bound; use a number, string, boolean or "
                    "null",
                    label(name, sizeof name, key, keylen, pos),
                    json_is_array(v) ? "list" : "object");
    }
    return KL_SQLBIND_OK;
}

kl_sqlbind_rc kl_sqlbind_json(const kl_sqlstmt *stmt, const json_t *params, kl_sqlbind **out,
                              char *err, size_t errlen) {
    *out = NULL;
    bctx c = {bind_new(stmt), err, errlen};
    if (!c.b) return KL_SQLBIND_NOMEM;
    kl_sqlbind_rc rc = KL_SQLBIND_OK;
    if (params && json_is_object(params)) {
        if (stmt->n_positional && json_object_size(params)) {
            rc = shape_error(&c, stmt, true);
        } else if (reserve(c.b, json_object_size(params), true) != 0) {
            rc = KL_SQLBIND_NOMEM;
        } else {
            const char *key;
            size_t keylen;
            json_t *v;
            json_object_keylen_foreach((json_t *)params, key, keylen, v) {
                if (memchr(key, '\0', keylen)) {
                    rc = fail(&c, KL_SQLBIND_INVALID, "a parameter name holds NUL");
                    break;
                }
                if ((rc = json_literal(&c, v, key, keylen, 0)) != KL_SQLBIND_OK) break;
            }
        }
    } else if (params && json_is_array(params)) {
        if (stmt->n_names && json_array_size(params)) {
            rc = shape_error(&c, stmt, false);
        } else if (reserve(c.b, json_array_size(params), false) != 0) {
            rc = KL_SQLBIND_NOMEM;
        } else {
            size_t i;
            json_t *v;
            json_array_foreach(params, i, v) {
                if ((rc = json_literal(&c, v, NULL, 0, i)) != KL_SQLBIND_OK) break;
            }
        }
    } else if (params && !json_is_null(params)) {
        rc = fail(&c, KL_SQLBIND_INVALID,
                  "\"params\" must be an object (named markers) or a list (positional markers), "
                  "not %s",
                  json_is_string(params) ? "a string" : "a scalar");
    }
    if (rc == KL_SQLBIND_OK) rc = check_complete(&c, stmt);
    if (rc == KL_SQLBIND_NOMEM) snprintf(err, errlen, "out of memory");
    if (rc != KL_SQLBIND_OK) {
        kl_sqlbind_free(c.b);
        return rc;
    }
    *out = c.b;
    return KL_SQLBIND_OK;
}

/* ---- from msgpack ------------------------------------------------------------------------- */

/* Strict UTF-8 (no overlongs, surrogates or values above U+10FFFF): Spark's protobuf parser
 * refuses anything else in a string field. */
static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static const char *mp_kind(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_EXT:
        return "ext";
    default:
        return "value";
    }
}

static kl_sqlbind_rc mp_literal(bctx *c, const msgpack_object *v, const char *key, size_t keylen,
                                size_t pos) {
    char name[80];
    Spark__Connect__Expression__Literal *lit = add_literal(c->b, key, keylen);
    if (!lit) return KL_SQLBIND_NOMEM;
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_NULL;
        lit->null = &c->b->null_type;
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_BOOLEAN;
        lit->boolean = v->via.boolean;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (v->via.u64 > (uint64_t)INT64_MAX) {
            /* Beyond bigint: an exact decimal(20,0) rather than a wrapped negative long. */
            Spark__Connect__Expression__Literal__Decimal *d = alloc(c->b, sizeof *d);
            char *digits = alloc(c->b, 24);
            if (!d || !digits) return KL_SQLBIND_NOMEM;
            spark__connect__expression__literal__decimal__init(d);
            snprintf(digits, 24, "%" PRIu64, v->via.u64);
            d->value = digits;
            d->has_precision = d->has_scale = 1;
            d->precision = 20;
            d->scale = 0;
            lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_DECIMAL;
            lit->decimal = d;
            break;
        }
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_LONG;
        lit->long_ = (int64_t)v->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_LONG;
        lit->long_ = v->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_FLOAT;
        lit->float_ = (float)v->via.f64;
        break;
    case MSGPACK_OBJECT_FLOAT64:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_DOUBLE;
        lit->double_ = v->via.f64;
        break;
    case MSGPACK_OBJECT_STR:
        if (!valid_utf8((const unsigned char *)v->via.str.ptr, v->via.str.size) ||
            memchr(v->via.str.ptr, '\0', v->via.str.size))
            return fail(c, KL_SQLBIND_INVALID,
                        "parameter %s: the string is not valid UTF-8 without NUL; send bytes as "
                        "bin",
                        label(name, sizeof name, key, keylen, pos));
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_STRING;
        if (!(lit->string = copy(c->b, v->via.str.ptr, v->via.str.size))) return KL_SQLBIND_NOMEM;
        break;
    case MSGPACK_OBJECT_BIN:
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_BINARY;
        lit->binary.len = v->via.bin.size;
        if (!(lit->binary.data = (uint8_t *)copy(c->b, v->via.bin.ptr, v->via.bin.size)))
            return KL_SQLBIND_NOMEM;
        break;
    case MSGPACK_OBJECT_EXT: {
        msgpack_timestamp ts;
        if (!msgpack_object_to_timestamp(v, &ts) || ts.tv_nsec > 999999999u)
            return fail(c, KL_SQLBIND_INVALID,
                        "parameter %s: ext type %d cannot be bound (only -1, the timestamp "
                        "extension)",
                        label(name, sizeof name, key, keylen, pos), v->via.ext.type);
        int64_t us;
        if (__builtin_mul_overflow(ts.tv_sec, (int64_t)1000000, &us) ||
            __builtin_add_overflow(us, (int64_t)(ts.tv_nsec / 1000), &us))
            return fail(c, KL_SQLBIND_INVALID,
                        "parameter %s: the timestamp is outside Spark's range",
                        label(name, sizeof name, key, keylen, pos));
        lit->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_TIMESTAMP;
        lit->timestamp = us;
        break;
    }
    default:
        return fail(c, KL_SQLBIND_INVALID,
                    "parameter %s: msgpack %s values cannot be bound; use a number, string, bin, "
                    "boolean, nil or a timestamp",
                    label(name, sizeof name, key, keylen, pos), mp_kind(v));
    }
    return KL_SQLBIND_OK;
}

kl_sqlbind_rc kl_sqlbind_msgpack(const kl_sqlstmt *stmt, const void *data, size_t len,
                                 kl_sqlbind **out, char *err, size_t errlen) {
    *out = NULL;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&u, data, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&u);
        if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
            snprintf(err, errlen, "the msgpack buffer is too deeply nested or too large");
            return KL_SQLBIND_INVALID;
        }
        snprintf(err, errlen, "%s",
                 ur == MSGPACK_UNPACK_SUCCESS || ur == MSGPACK_UNPACK_EXTRA_BYTES
                     ? "the msgpack buffer holds bytes after its first value"
                 : ur == MSGPACK_UNPACK_CONTINUE ? "the msgpack buffer is cut short"
                                                 : "the msgpack buffer is not valid msgpack");
        return KL_SQLBIND_INVALID;
    }
    bctx c = {bind_new(stmt), err, errlen};
    if (!c.b) {
        msgpack_unpacked_destroy(&u);
        snprintf(err, errlen, "out of memory");
        return KL_SQLBIND_NOMEM;
    }
    kl_sqlbind_rc rc = KL_SQLBIND_OK;
    const msgpack_object *p = &u.data;
    if (p->type == MSGPACK_OBJECT_MAP) {
        if (stmt->n_positional && p->via.map.size) {
            rc = shape_error(&c, stmt, true);
        } else if (reserve(c.b, p->via.map.size, true) != 0) {
            rc = KL_SQLBIND_NOMEM;
        } else {
            for (uint32_t i = 0; i < p->via.map.size && rc == KL_SQLBIND_OK; i++) {
                const msgpack_object *k = &p->via.map.ptr[i].key;
                if (k->type != MSGPACK_OBJECT_STR || memchr(k->via.str.ptr, '\0', k->via.str.size))
                    rc = fail(&c, KL_SQLBIND_INVALID,
                              "parameter names must be msgpack strings without NUL");
                else
                    rc = mp_literal(&c, &p->via.map.ptr[i].val, k->via.str.ptr, k->via.str.size, 0);
            }
        }
    } else if (p->type == MSGPACK_OBJECT_ARRAY) {
        if (stmt->n_names && p->via.array.size) {
            rc = shape_error(&c, stmt, false);
        } else if (reserve(c.b, p->via.array.size, false) != 0) {
            rc = KL_SQLBIND_NOMEM;
        } else {
            for (uint32_t i = 0; i < p->via.array.size && rc == KL_SQLBIND_OK; i++)
                rc = mp_literal(&c, &p->via.array.ptr[i], NULL, 0, i);
        }
    } else if (p->type != MSGPACK_OBJECT_NIL) {
        rc = fail(&c, KL_SQLBIND_INVALID,
                  "the msgpack buffer must hold a map (named markers) or an array (positional "
                  "markers) of parameter values");
    }
    msgpack_unpacked_destroy(&u);
    if (rc == KL_SQLBIND_OK) rc = check_complete(&c, stmt);
    if (rc == KL_SQLBIND_NOMEM) snprintf(err, errlen, "out of memory");
    if (rc != KL_SQLBIND_OK) {
        kl_sqlbind_free(c.b);
        return rc;
    }
    *out = c.b;
    return KL_SQLBIND_OK;
}
