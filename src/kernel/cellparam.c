#include "kernel/cellparam.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- values ------------------------------------------------------------------------------- */

static bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool all_digits(const char *s, size_t len) {
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* [+-] digits [. digits] [e [+-] digits], with at least one digit before or after the point.
 * strtod alone would also take "inf", "nan" and hex floats, which are text here. */
static bool looks_decimal(const char *s, size_t len) {
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    while (i < len && isdigit((unsigned char)s[i])) i++, digits++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && isdigit((unsigned char)s[i])) i++, digits++;
    }
    if (digits == 0) return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) i++;
        size_t exp = i;
        while (i < len && isdigit((unsigned char)s[i])) i++;
        if (i == exp) return false;
    }
    return i == len;
}

int kl_cellparam_parse_value(const char *text, kl_param_value *out) {
    memset(out, 0, sizeof *out);
    while (is_blank(*text)) text++;
    size_t len = strlen(text);
    while (len > 0 && is_blank(text[len - 1])) len--;
    char *copy = strndup(text, len);
    if (!copy) return -1;

    if (len >= 2 && (text[0] == '\'' || text[0] == '"') && text[len - 1] == text[0]) {
        char q = text[0];
        size_t o = 0;
        for (size_t i = 1; i + 1 < len; i++) {
            copy[o++] = text[i];
            if (text[i] == q && i + 2 < len && text[i + 1] == q) i++;
        }
        copy[o] = '\0';
        out->kind = KL_PARAM_STRING;
        out->s = copy;
        return 0;
    }
    if (strcasecmp(copy, "true") == 0 || strcasecmp(copy, "false") == 0) {
        out->kind = KL_PARAM_BOOLEAN;
        out->b = tolower((unsigned char)copy[0]) == 't';
        free(copy);
        return 0;
    }
    size_t sign = len > 0 && (copy[0] == '+' || copy[0] == '-');
    if (all_digits(copy + sign, len - sign)) {
        errno = 0;
        long long v = strtoll(copy, NULL, 10);
        if (errno == 0) {
            out->kind = KL_PARAM_LONG;
            out->l = v;
            free(copy);
            return 0;
        }
        /* Too large for a long: a double, like any other number. */
    }
    if (looks_decimal(copy, len)) {
        out->kind = KL_PARAM_DOUBLE;
        out->d = strtod(copy, NULL);
        free(copy);
        return 0;
    }
    out->kind = KL_PARAM_STRING;
    out->s = copy;
    return 0;
}

void kl_cellparam_value_free(kl_param_value *v) {
    free(v->s);
    v->s = NULL;
}

const char *kl_cellparam_kind_name(kl_param_kind kind) {
    switch (kind) {
    case KL_PARAM_LONG:
        return "long";
    case KL_PARAM_DOUBLE:
        return "double";
    case KL_PARAM_BOOLEAN:
        return "boolean";
    case KL_PARAM_STRING:
        break;
    }
    return "string";
}

/* ---- names and option words --------------------------------------------------------------- */

static bool name_start(char c) {
    return isalpha((unsigned char)c) || c == '_';
}

static bool name_char(char c) {
    return isalnum((unsigned char)c) || c == '_';
}

bool kl_cellparam_valid_name(const char *name, size_t len) {
    if (len == 0 || !name_start(name[0])) return false;
    for (size_t i = 1; i < len; i++)
        if (!name_char(name[i])) return false;
    return true;
}

int kl_cellparam_split_assignment(const char *text, char **name, char **value) {
    *name = *value = NULL;
    const char *eq = strchr(text, '=');
    if (!eq) return -1;
    const char *a = text, *b = eq;
    while (a < b && is_blank(*a)) a++;
    while (b > a && is_blank(b[-1])) b--;
    if (!kl_cellparam_valid_name(a, (size_t)(b - a))) return -1;
    const char *v = eq + 1;
    while (is_blank(*v)) v++;
    size_t vlen = strlen(v);
    while (vlen > 0 && is_blank(v[vlen - 1])) vlen--;
    *name = strndup(a, (size_t)(b - a));
    *value = strndup(v, vlen);
    if (!*name || !*value) {
        free(*name);
        free(*value);
        *name = *value = NULL;
        return -2;
    }
    return 0;
}

char *kl_cellparam_next_word(const char **p, bool *oom) {
    *oom = false;
    const char *s = *p;
    while (is_blank(*s)) s++;
    if (!*s) {
        *p = s;
        return NULL;
    }
    const char *start = s;
    char quote = 0;
    for (; *s; s++) {
        if (quote) {
            if (*s == quote) quote = 0;
        } else if (*s == '\'' || *s == '"') {
            quote = *s;
        } else if (is_blank(*s)) {
            break;
        }
    }
    *p = s;
    char *w = strndup(start, (size_t)(s - start));
    if (!w) *oom = true;
    return w;
}

/* ---- scanning SQL text -------------------------------------------------------------------- */

/* Where the quoted run, comment or plain character at i ends. The rules follow Spark's lexer as
 * src/kernel/sqltext.c does: backslash escapes in string literals (not in backquoted names, nor
 * in r'...' raw strings), doubled quotes, `--` line comments, nested block comments. */
static size_t skip(const char *s, size_t len, size_t i) {
    char c = s[i];
    if (c == '\'' || c == '"' || c == '`') {
        bool raw =
            i > 0 && (s[i - 1] == 'r' || s[i - 1] == 'R') && (i == 1 || !name_char(s[i - 2]));
        bool backslash = c != '`' && !raw;
        for (i++; i < len; i++) {
            if (backslash && s[i] == '\\') {
                if (++i == len) break;
                continue;
            }
            if (s[i] == c) {
                if (i + 1 < len && s[i + 1] == c) {
                    i++;
                    continue;
                }
                return i + 1;
            }
        }
        return len;
    }
    if (c == '-' && i + 1 < len && s[i + 1] == '-') {
        while (i < len && s[i] != '\n') i++;
        return i;
    }
    if (c == '/' && i + 1 < len && s[i + 1] == '*') {
        int depth = 1;
        for (i += 2; i < len; i++) {
            if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
                depth++;
                i++;
            } else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
                i++;
                if (--depth == 0) return i + 1;
            }
        }
        return len;
    }
    return i + 1;
}

static bool special_start(const char *s, size_t len, size_t i) {
    char c = s[i];
    return c == '\'' || c == '"' || c == '`' ||
           (i + 1 < len && ((c == '-' && s[i + 1] == '-') || (c == '/' && s[i + 1] == '*')));
}

/* The length of the marker name after a ':' at i, or 0 when that colon is no marker. */
static size_t marker_at(const char *s, size_t len, size_t i) {
    if (s[i] != ':') return 0;
    if (i > 0 && (s[i - 1] == ':' || name_char(s[i - 1]))) return 0;
    if (i + 1 >= len || !name_start(s[i + 1])) return 0;
    size_t n = 1;
    while (i + 1 + n < len && name_char(s[i + 1 + n])) n++;
    return n;
}

void kl_cellparam_markers(const char *sql, size_t len,
                          void (*fn)(const char *name, size_t len, void *arg), void *arg) {
    for (size_t i = 0; i < len;) {
        if (special_start(sql, len, i)) {
            i = skip(sql, len, i);
            continue;
        }
        size_t n = marker_at(sql, len, i);
        if (n) {
            fn(sql + i + 1, n, arg);
            i += 1 + n;
            continue;
        }
        /* A name glued to a colon is never a marker, so a name is stepped over whole. */
        if (name_char(sql[i])) {
            while (i < len && name_char(sql[i]) && !special_start(sql, len, i)) i++;
            continue;
        }
        i++;
    }
}

char *kl_cellparam_rewrite_braces(const char *sql, size_t len,
                                  bool (*known)(const char *name, size_t len, void *arg),
                                  void *arg) {
    /* `${name}` is never shorter than `:name`, so the result fits in len bytes. */
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (special_start(sql, len, i)) {
            size_t end = skip(sql, len, i);
            memcpy(out + o, sql + i, end - i);
            o += end - i;
            i = end;
            continue;
        }
        if (sql[i] == '$' && i + 2 < len && sql[i + 1] == '{' && name_start(sql[i + 2])) {
            size_t n = 1;
            while (i + 2 + n < len && name_char(sql[i + 2 + n])) n++;
            if (i + 2 + n < len && sql[i + 2 + n] == '}' && known(sql + i + 2, n, arg)) {
                out[o++] = ':';
                memcpy(out + o, sql + i + 2, n);
                o += n;
                i += n + 3;
                continue;
            }
        }
        out[o++] = sql[i++];
    }
    out[o] = '\0';
    return out;
}
