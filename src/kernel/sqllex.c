#include "kernel/sqllex.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool word_byte(unsigned char c) {
    return isalnum(c) || c == '_' || c >= 0x80;
}

bool kl_sqllex_next(const char *s, size_t len, size_t *pos, kl_tok *tok) {
    size_t i = *pos;
    while (i < len && isspace((unsigned char)s[i])) i++;
    if (i >= len) {
        *pos = len;
        return false;
    }
    tok->start = i;
    tok->open = false;
    char c = s[i];
    if (c == '-' && i + 1 < len && s[i + 1] == '-') {
        tok->kind = KL_TOK_COMMENT;
        while (i < len && s[i] != '\n') i++;
    } else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
        /* Spark nests block comments. */
        tok->kind = KL_TOK_COMMENT;
        int depth = 0;
        tok->open = true;
        while (i < len) {
            if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
                depth++;
                i += 2;
            } else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
                i += 2;
                if (--depth == 0) {
                    tok->open = false;
                    break;
                }
            } else {
                i++;
            }
        }
    } else if (c == '\'' || c == '"') {
        tok->kind = KL_TOK_STRING;
        tok->open = true;
        for (i++; i < len; i++) {
            if (s[i] == '\\' && i + 1 < len) {
                i++;
            } else if (s[i] == c) {
                i++;
                tok->open = false;
                break;
            }
        }
    } else if (c == '`') {
        tok->kind = KL_TOK_QUOTED;
        tok->open = true;
        for (i++; i < len; i++) {
            if (s[i] == '`') {
                if (i + 1 < len && s[i + 1] == '`') {
                    i++;
                    continue;
                }
                i++;
                tok->open = false;
                break;
            }
        }
    } else if (word_byte((unsigned char)c)) {
        tok->kind = KL_TOK_WORD;
        while (i < len && word_byte((unsigned char)s[i])) i++;
    } else {
        tok->kind = KL_TOK_PUNCT;
        i++;
    }
    tok->len = i - tok->start;
    *pos = i;
    return true;
}

bool kl_sqllex_next_code(const char *s, size_t len, size_t *pos, kl_tok *tok) {
    while (kl_sqllex_next(s, len, pos, tok))
        if (tok->kind != KL_TOK_COMMENT) return true;
    return false;
}

bool kl_sqllex_is(const char *s, const kl_tok *tok, const char *kw) {
    return tok->kind == KL_TOK_WORD && strlen(kw) == tok->len &&
           strncasecmp(s + tok->start, kw, tok->len) == 0;
}

char *kl_sqllex_name(const char *s, const kl_tok *tok) {
    if (tok->kind != KL_TOK_QUOTED) return strndup(s + tok->start, tok->len);
    size_t end = tok->start + tok->len - (tok->open ? 0 : 1);
    char *out = malloc(tok->len + 1);
    if (!out) return NULL;
    size_t n = 0;
    for (size_t i = tok->start + 1; i < end; i++) {
        out[n++] = s[i];
        if (s[i] == '`' && i + 1 < end && s[i + 1] == '`') i++;
    }
    out[n] = 0;
    return out;
}

static const char *const QUERY_STARTS[] = {"SELECT", "WITH", "VALUES", "TABLE", "FROM"};
/* Words that only statements with effects contain. Function names that look like keywords
 * (replace, add_months) are not words here, so queries using them still pass. */
static const char *const EFFECT_WORDS[] = {
    "INSERT", "MERGE", "UPDATE",  "DELETE",  "CREATE", "DROP",    "ALTER",   "TRUNCATE",
    "CACHE",  "MSCK",  "UNCACHE", "REFRESH", "LOAD",   "GRANT",   "REVOKE",  "DECLARE",
    "USE",    "SET",   "RESET",   "ADD",     "CALL",   "EXECUTE", "ANALYZE", "COMMENT",
};

bool kl_sqllex_is_query(const char *sql) {
    size_t len = strlen(sql), pos = 0;
    kl_tok t;
    if (!kl_sqllex_next_code(sql, len, &pos, &t)) return false;
    bool start = t.kind == KL_TOK_PUNCT && sql[t.start] == '(';
    for (size_t k = 0; !start && k < sizeof QUERY_STARTS / sizeof *QUERY_STARTS; k++)
        start = kl_sqllex_is(sql, &t, QUERY_STARTS[k]);
    if (!start) return false;
    do {
        if (t.kind == KL_TOK_PUNCT && sql[t.start] == ';') {
            /* Only a trailing ';' may follow: a second statement is not one query. */
            kl_tok more;
            size_t p = pos;
            if (kl_sqllex_next_code(sql, len, &p, &more)) return false;
        }
        for (size_t k = 0; k < sizeof EFFECT_WORDS / sizeof *EFFECT_WORDS; k++)
            if (kl_sqllex_is(sql, &t, EFFECT_WORDS[k])) return false;
    } while (kl_sqllex_next_code(sql, len, &pos, &t));
    return true;
}

size_t kl_sqllex_quote_ident(const char *name, char *buf, size_t cap) {
    size_t n = 0;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (n + 1 < cap) buf[n] = (ch);                                                            \
        n++;                                                                                       \
    } while (0)
    PUT('`');
    for (const char *p = name; *p; p++) {
        PUT(*p);
        if (*p == '`') PUT('`');
    }
    PUT('`');
#undef PUT
    if (cap) buf[n < cap ? n : cap - 1] = 0;
    return n;
}

char *kl_sqllex_quote_string(const char *text) {
    size_t n = strlen(text);
    char *out = malloc(2 * n + 3);
    if (!out) return NULL;
    size_t k = 0;
    out[k++] = '\'';
    for (const char *p = text; *p; p++) {
        if (*p == '\\' || *p == '\'') out[k++] = '\\';
        out[k++] = *p;
    }
    out[k++] = '\'';
    out[k] = 0;
    return out;
}
