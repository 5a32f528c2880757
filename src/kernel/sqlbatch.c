#include "kernel/sqlbatch.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/sqllex.h"

/* ---- which statements ---------------------------------------------------------------------- */

/* Words whose meaning a batch would change: the order of a call's rows (a sort inside a lateral
 * subquery is not kept in the join's output), a row count per call, a random sample. */
static const char *const UNBATCHABLE_WORDS[] = {
    "ORDER", "SORT", "CLUSTER", "DISTRIBUTE", "LIMIT", "OFFSET", "TABLESAMPLE",
};

static bool ident_start(char c) {
    return isalpha((unsigned char)c) || c == '_';
}

static bool ident_char(char c) {
    return isalnum((unsigned char)c) || c == '_';
}

static bool has_reserved(const char *s, const kl_tok *t) {
    for (size_t i = 0; i + 5 <= t->len; i++)
        if (strncasecmp(s + t->start + i, "__kl_", 5) == 0) return true;
    return false;
}

static size_t name_index(const kl_sqlstmt *stmt, const char *name, size_t len) {
    for (size_t i = 0; i < stmt->n_names; i++)
        if (strlen(stmt->names[i]) == len && memcmp(stmt->names[i], name, len) == 0) return i;
    return SIZE_MAX;
}

static const char OOM[] = "out of memory";

static void put_column(kl_render_buf *b, size_t i) {
    kl_render_buf_printf(b, "__kl_p.__kl_v%zu", i);
}

/* Walks the statement's tokens, copying them to out with markers replaced. NULL when the statement
 * may be batched, else the reason. The markers found must be the ones kl_sqlstmt_parse found. */
static const char *rewrite(const kl_sqlstmt *stmt, kl_render_buf *out) {
    const char *s = stmt->text;
    size_t len = strlen(s), pos = 0, copied = 0, positional = 0;
    bool *seen = calloc(stmt->n_names + 1, sizeof *seen);
    if (!seen) return OOM;
    const char *why = NULL;
    kl_tok t;
    bool first = true;
    while (!why && kl_sqllex_next(s, len, &pos, &t)) {
        if (t.open) {
            why = "the statement ends inside a quote or a comment";
            break;
        }
        if (t.kind == KL_TOK_COMMENT) continue;
        if (first) {
            first = false;
            if (!kl_sqllex_is(s, &t, "SELECT") && !kl_sqllex_is(s, &t, "WITH"))
                why = "only a query that starts with SELECT or WITH is batched";
        }
        for (size_t k = 0; !why && k < sizeof UNBATCHABLE_WORDS / sizeof *UNBATCHABLE_WORDS; k++)
            if (kl_sqllex_is(s, &t, UNBATCHABLE_WORDS[k]))
                why = "ORDER BY, SORT BY, CLUSTER BY, DISTRIBUTE BY, LIMIT, OFFSET and TABLESAMPLE "
                      "are never batched";
        if (!why && (t.kind == KL_TOK_WORD || t.kind == KL_TOK_QUOTED) && has_reserved(s, &t))
            why = "names starting with __kl_ are reserved for batching";
        if (why || t.kind != KL_TOK_PUNCT) continue;
        char c = s[t.start];
        if (c == '?') {
            kl_render_buf_append(out, s + copied, t.start - copied);
            put_column(out, positional++);
            copied = pos;
        } else if (c == ':' && t.start + 1 < len && s[t.start + 1] == ':') {
            /* A cast: the second ':' must not start a marker. */
            kl_tok second;
            kl_sqllex_next(s, len, &pos, &second);
        } else if (c == ':' && t.start + 1 < len &&
                   (ident_start(s[t.start + 1]) || s[t.start + 1] == '`')) {
            kl_tok name;
            size_t p = pos;
            if (!kl_sqllex_next(s, len, &p, &name) || name.start != t.start + 1 || name.open) {
                why = "a parameter marker could not be read";
                break;
            }
            const char *n = s + name.start;
            size_t nlen = name.len;
            if (name.kind == KL_TOK_QUOTED) {
                n++;
                nlen -= 2;
                if (memchr(n, '`', nlen)) why = "a quoted parameter name holds a backtick";
            } else {
                for (size_t i = 0; i < nlen; i++)
                    if (!ident_char(n[i])) why = "a parameter name holds a non-ASCII character";
            }
            size_t idx = why ? SIZE_MAX : name_index(stmt, n, nlen);
            if (!why && idx == SIZE_MAX) why = "a parameter marker could not be read";
            if (why) break;
            seen[idx] = true;
            kl_render_buf_append(out, s + copied, t.start - copied);
            put_column(out, idx);
            pos = p;
            copied = pos;
        }
    }
    if (!why) {
        kl_render_buf_append(out, s + copied, len - copied);
        for (size_t i = 0; i < stmt->n_names; i++)
            if (!seen[i]) why = "a parameter marker could not be read";
        if (positional != stmt->n_positional) why = "a parameter marker could not be read";
        if (first) why = "the statement is empty";
    }
    free(seen);
    if (!why && !kl_sqllex_is_query(stmt->text))
        why = "only queries are batched: a command must run once per call";
    return why;
}

int kl_sqlbatch_prepare(const kl_sqlstmt *stmt, kl_sqlbatch *out) {
    memset(out, 0, sizeof *out);
    out->ncols = stmt->n_names ? stmt->n_names : stmt->n_positional;
    kl_render_buf b;
    kl_render_buf_init(&b);
    out->why = rewrite(stmt, &b);
    if (out->why == OOM || b.failed) {
        out->why = NULL;
        kl_render_buf_free(&b);
        return -ENOMEM;
    }
    if (!out->why) {
        out->inner = kl_render_buf_take(&b, NULL);
        if (!out->inner) return -ENOMEM;
        out->ok = true;
    }
    kl_render_buf_free(&b);
    return 0;
}

void kl_sqlbatch_free(kl_sqlbatch *b) {
    free(b->inner);
    memset(b, 0, sizeof *b);
}

bool kl_sqlbatch_same_types(const kl_sqlstmt *stmt, kl_sqlbind *a, kl_sqlbind *b) {
    size_t n = stmt->n_names ? stmt->n_names : stmt->n_positional;
    for (size_t i = 0; i < n; i++) {
        Spark__Connect__Expression *x = kl_sqlbind_value(a, stmt, i);
        Spark__Connect__Expression *y = kl_sqlbind_value(b, stmt, i);
        if (!x || !y || !x->literal || !y->literal) return false;
        const Spark__Connect__Expression__Literal *l = x->literal, *m = y->literal;
        if (l->literal_type_case != m->literal_type_case) return false;
        if (l->literal_type_case == SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_DECIMAL &&
            (l->decimal->precision != m->decimal->precision ||
             l->decimal->scale != m->decimal->scale))
            return false;
    }
    return true;
}

/* ---- the query ----------------------------------------------------------------------------- */

struct kl_sqlbatch_rel {
    Spark__Connect__Relation rel;
    Spark__Connect__SQL sql;
    char *text;
};

kl_sqlbatch_rel *kl_sqlbatch_relation_new(const kl_sqlbatch *b, const kl_sqlstmt *stmt,
                                          kl_sqlbind *const *binds, size_t n) {
    kl_sqlbatch_rel *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    spark__connect__relation__init(&r->rel);
    spark__connect__sql__init(&r->sql);
    r->rel.rel_type_case = SPARK__CONNECT__RELATION__REL_TYPE_SQL;
    r->rel.sql = &r->sql;
    size_t nargs = n * b->ncols;
    if (nargs) {
        r->sql.pos_arguments = malloc(nargs * sizeof *r->sql.pos_arguments);
        r->sql.pos_args = malloc(nargs * sizeof *r->sql.pos_args);
        if (!r->sql.pos_arguments || !r->sql.pos_args) goto fail;
    }
    kl_render_buf q;
    kl_render_buf_init(&q);
    kl_render_buf_puts(&q, "SELECT __kl_p.__kl_i, __kl_q.* FROM VALUES ");
    for (size_t i = 0; i < n; i++) {
        kl_render_buf_printf(&q, i ? ", (%zu" : "(%zu", i);
        for (size_t j = 0; j < b->ncols; j++) {
            Spark__Connect__Expression *e = kl_sqlbind_value(binds[i], stmt, j);
            if (!e || !e->literal) {
                kl_render_buf_free(&q);
                goto fail;
            }
            r->sql.pos_arguments[r->sql.n_pos_arguments++] = e;
            r->sql.pos_args[r->sql.n_pos_args++] = e->literal;
            kl_render_buf_puts(&q, ", ?");
        }
        kl_render_buf_putc(&q, ')');
    }
    kl_render_buf_puts(&q, " AS __kl_p(__kl_i");
    for (size_t j = 0; j < b->ncols; j++) kl_render_buf_printf(&q, ", __kl_v%zu", j);
    /* Line breaks around the statement: a trailing -- comment must not swallow the parenthesis. */
    kl_render_buf_puts(&q, ") JOIN LATERAL (\n");
    kl_render_buf_puts(&q, b->inner);
    kl_render_buf_puts(&q, "\n) AS __kl_q");
    r->text = kl_render_buf_take(&q, NULL);
    if (!r->text) goto fail;
    r->sql.query = r->text;
    return r;
fail:
    kl_sqlbatch_relation_free(r);
    return NULL;
}

Spark__Connect__Relation *kl_sqlbatch_relation(kl_sqlbatch_rel *r) {
    return &r->rel;
}

void kl_sqlbatch_relation_free(kl_sqlbatch_rel *r) {
    if (!r) return;
    free(r->sql.pos_arguments);
    free(r->sql.pos_args);
    free(r->text);
    free(r);
}

/* ---- the answers --------------------------------------------------------------------------- */

bool kl_sqlbatch_schema_ok(const kl_arrow_schema *s) {
    if (!s || s->n_fields < 1) return false;
    const kl_arrow_field *f = &s->fields[0];
    if (f->type != KL_ARROW_INT || f->name_len != 6 || memcmp(f->name, "__kl_i", 6) != 0)
        return false;
    for (size_t i = 1; i < s->n_fields; i++) {
        const kl_arrow_field *c = &s->fields[i];
        for (size_t k = 0; k + 5 <= c->name_len; k++)
            if (strncasecmp(c->name + k, "__kl_", 5) == 0) return false;
    }
    return true;
}

int kl_sqlbatch_split_json(json_t *rows, size_t n, int64_t limit, json_t **out, bool *truncated) {
    int rc = 0;
    int64_t *count = calloc(n ? n : 1, sizeof *count);
    if (!count) rc = -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        out[i] = json_array();
        truncated[i] = false;
        if (!out[i]) rc = -ENOMEM;
    }
    size_t k;
    json_t *row;
    json_array_foreach(rows, k, row) {
        if (rc) break;
        json_t *ix = json_array_get(row, 0);
        json_int_t i = json_is_integer(ix) ? json_integer_value(ix) : -1;
        if (i < 0 || (size_t)i >= n) {
            rc = -EINVAL;
            break;
        }
        if (limit >= 0 && count[i] >= limit) {
            truncated[i] = true;
            continue;
        }
        count[i]++;
        if (json_array_remove(row, 0) != 0 || json_array_append(out[i], row) != 0) rc = -ENOMEM;
    }
    free(count);
    json_decref(rows);
    if (rc)
        for (size_t i = 0; i < n; i++) {
            json_decref(out[i]);
            out[i] = NULL;
        }
    return rc;
}

/* ---- msgpack, by bytes: the batch's document is cut into the calls' ones without decoding the
 * values again. */

typedef struct rd {
    const uint8_t *p;
    size_t len, i;
    bool bad;
} rd;

static uint64_t be(rd *r, size_t n) {
    if (r->len - r->i < n) {
        r->bad = true;
        r->i = r->len;
        return 0;
    }
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++) v = v << 8 | r->p[r->i + k];
    r->i += n;
    return v;
}

static void skip_bytes(rd *r, uint64_t n) {
    if (r->len - r->i < n) {
        r->bad = true;
        r->i = r->len;
    } else {
        r->i += n;
    }
}

/* Skips count whole values (containers with everything inside). */
static void skip_values(rd *r, uint64_t count) {
    while (count && !r->bad) {
        if (r->i >= r->len) {
            r->bad = true;
            break;
        }
        uint8_t b = r->p[r->i++];
        count--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) continue;
        if ((b & 0xf0) == 0x80) {
            count += 2u * (b & 0x0f);
        } else if ((b & 0xf0) == 0x90) {
            count += b & 0x0f;
        } else if ((b & 0xe0) == 0xa0) {
            skip_bytes(r, b & 0x1f);
        } else {
            switch (b) {
            case 0xc4:
                skip_bytes(r, be(r, 1));
                break;
            case 0xc5:
                skip_bytes(r, be(r, 2));
                break;
            case 0xc6:
                skip_bytes(r, be(r, 4));
                break;
            case 0xc7:
                skip_bytes(r, be(r, 1) + 1);
                break;
            case 0xc8:
                skip_bytes(r, be(r, 2) + 1);
                break;
            case 0xc9:
                skip_bytes(r, be(r, 4) + 1);
                break;
            case 0xca:
                skip_bytes(r, 4);
                break;
            case 0xcb:
                skip_bytes(r, 8);
                break;
            case 0xcc:
            case 0xd0:
                skip_bytes(r, 1);
                break;
            case 0xcd:
            case 0xd1:
                skip_bytes(r, 2);
                break;
            case 0xce:
            case 0xd2:
                skip_bytes(r, 4);
                break;
            case 0xcf:
            case 0xd3:
                skip_bytes(r, 8);
                break;
            case 0xd4:
                skip_bytes(r, 2);
                break;
            case 0xd5:
                skip_bytes(r, 3);
                break;
            case 0xd6:
                skip_bytes(r, 5);
                break;
            case 0xd7:
                skip_bytes(r, 9);
                break;
            case 0xd8:
                skip_bytes(r, 17);
                break;
            case 0xd9:
                skip_bytes(r, be(r, 1));
                break;
            case 0xda:
                skip_bytes(r, be(r, 2));
                break;
            case 0xdb:
                skip_bytes(r, be(r, 4));
                break;
            case 0xdc:
                count += be(r, 2);
                break;
            case 0xdd:
                count += be(r, 4);
                break;
            case 0xde:
                count += 2 * be(r, 2);
                break;
            case 0xdf:
                count += 2 * be(r, 4);
                break;
            default:
                r->bad = true; /* 0xc1 is never used */
            }
        }
    }
}

/* An array or map header's size; -1 when the next value is not one. */
static int64_t container(rd *r, bool map) {
    if (r->i >= r->len) return -1;
    uint8_t b = r->p[r->i++];
    if ((b & 0xf0) == (map ? 0x80 : 0x90)) return b & 0x0f;
    if (b == (map ? 0xde : 0xdc)) return (int64_t)be(r, 2);
    if (b == (map ? 0xdf : 0xdd)) return (int64_t)be(r, 4);
    return -1;
}

static bool key_is(rd *r, const char *key) {
    size_t n = strlen(key);
    if (r->i >= r->len || r->p[r->i] != (0xa0 | n) || r->len - r->i - 1 < n ||
        memcmp(r->p + r->i + 1, key, n) != 0)
        return false;
    r->i += 1 + n;
    return true;
}

/* A non-negative integer, or -1. */
static int64_t index_of(rd *r) {
    if (r->i >= r->len) return -1;
    uint8_t b = r->p[r->i++];
    if (b <= 0x7f) return b;
    switch (b) {
    case 0xcc:
        return (int64_t)be(r, 1);
    case 0xcd:
        return (int64_t)be(r, 2);
    case 0xce:
        return (int64_t)be(r, 4);
    case 0xd0:
        return (int8_t)be(r, 1);
    case 0xd1:
        return (int16_t)be(r, 2);
    case 0xd2:
        return (int32_t)be(r, 4);
    default:
        return -1;
    }
}

static void put_container(kl_render_buf *b, uint64_t n, bool map) {
    uint8_t h[5];
    size_t len;
    if (n < 16) {
        h[0] = (uint8_t)((map ? 0x80 : 0x90) | n);
        len = 1;
    } else if (n <= 0xffff) {
        h[0] = map ? 0xde : 0xdc;
        h[1] = (uint8_t)(n >> 8);
        h[2] = (uint8_t)n;
        len = 3;
    } else {
        h[0] = map ? 0xdf : 0xdd;
        for (int k = 0; k < 4; k++) h[1 + k] = (uint8_t)(n >> (24 - 8 * k));
        len = 5;
    }
    kl_render_buf_append(b, h, len);
}

static void put_str(kl_render_buf *b, const char *s) {
    kl_render_buf_putc(b, (char)(0xa0 | strlen(s)));
    kl_render_buf_puts(b, s);
}

int kl_sqlbatch_split_msgpack(const void *doc, size_t len, size_t n, int64_t limit,
                              kl_render_buf *out, int64_t *nrows, bool *truncated) {
    rd r = {doc, len, 0, false};
    if (container(&r, true) != 3 || !key_is(&r, "columns")) return -EINVAL;
    int64_t cols = container(&r, false);
    if (cols < 1) return -EINVAL;
    skip_values(&r, 1); /* the index column */
    size_t cstart = r.i;
    skip_values(&r, (uint64_t)cols - 1);
    size_t cend = r.i;
    if (r.bad || !key_is(&r, "rows")) return -EINVAL;
    int64_t total = container(&r, false);
    if (total < 0) return -EINVAL;
    /* Each call's rows first, into its own buffer: the row count precedes them. */
    kl_render_buf *rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        kl_render_buf_init(&rows[i]);
        nrows[i] = 0;
        truncated[i] = false;
    }
    int rc = 0;
    for (int64_t k = 0; k < total && !rc; k++) {
        if (container(&r, false) != cols) {
            rc = -EINVAL;
            break;
        }
        int64_t i = index_of(&r);
        size_t start = r.i;
        skip_values(&r, (uint64_t)cols - 1);
        if (r.bad || i < 0 || (size_t)i >= n) {
            rc = -EINVAL;
            break;
        }
        if (limit >= 0 && nrows[i] >= limit) {
            truncated[i] = true;
            continue;
        }
        nrows[i]++;
        put_container(&rows[i], (uint64_t)cols - 1, false);
        kl_render_buf_append(&rows[i], r.p + start, r.i - start);
    }
    /* The document must end as kl_rows_msgpack ends it: a cut one is not split. */
    if (!rc && (!key_is(&r, "truncated") || r.i >= r.len ||
                (r.p[r.i] != 0xc2 && r.p[r.i] != 0xc3) || r.i + 1 != r.len))
        rc = -EINVAL;
    for (size_t i = 0; i < n && !rc; i++) {
        put_container(&out[i], 3, true);
        put_str(&out[i], "columns");
        put_container(&out[i], (uint64_t)cols - 1, false);
        kl_render_buf_append(&out[i], r.p + cstart, cend - cstart);
        put_str(&out[i], "rows");
        put_container(&out[i], (uint64_t)nrows[i], false);
        if (rows[i].len) kl_render_buf_append(&out[i], rows[i].data, rows[i].len);
        put_str(&out[i], "truncated");
        kl_render_buf_putc(&out[i], truncated[i] ? (char)0xc3 : (char)0xc2);
        if (out[i].failed || rows[i].failed) rc = -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) kl_render_buf_free(&rows[i]);
    free(rows);
    return rc;
}
