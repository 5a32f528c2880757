/* Lexical scan of Spark SQL text. Only the token classes that decide where a statement ends are
 * recognised; everything else is "other" and left to Spark's parser. */
#include "kernel/sqltext.h"

#include <stdbool.h>
#include <stdlib.h>

typedef enum {
    TOK_SPACE,
    TOK_COMMENT,
    TOK_QUOTED,
    TOK_SEMI,
    TOK_OPEN,
    TOK_CLOSE,
    TOK_OTHER
} tok_kind;

typedef struct {
    tok_kind kind;
    size_t end;    /* one past the token's last byte */
    bool unclosed; /* quote or block comment still open at the end of the text */
} tok;

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool starts_special(const char *s, size_t len, size_t i) {
    char c = s[i];
    if (is_space(c) || c == '\'' || c == '"' || c == '`' || c == ';' || c == '(' || c == ')')
        return true;
    if (i + 1 < len && ((c == '-' && s[i + 1] == '-') || (c == '/' && s[i + 1] == '*')))
        return true;
    return false;
}

/* A quoted run: backslash escapes apply to string literals but not to backtick identifiers.
 * A doubled quote continues the same run, so 'it''s' is one token. */
static tok scan_quoted(const char *s, size_t len, size_t i) {
    char q = s[i];
    bool backslash = q != '`';
    for (i++; i < len; i++) {
        if (backslash && s[i] == '\\') {
            if (++i == len) break;
            continue;
        }
        if (s[i] == q) {
            if (i + 1 < len && s[i + 1] == q) {
                i++;
                continue;
            }
            return (tok){TOK_QUOTED, i + 1, false};
        }
    }
    return (tok){TOK_QUOTED, len, true};
}

/* Spark SQL block comments nest: an inner opener needs its own terminator before the outer one
 * closes. */
static tok scan_block_comment(const char *s, size_t len, size_t i) {
    int depth = 1;
    for (i += 2; i < len; i++) {
        if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
            depth++;
            i++;
        } else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
            i++;
            if (--depth == 0) return (tok){TOK_COMMENT, i + 1, false};
        }
    }
    return (tok){TOK_COMMENT, len, true};
}

static tok next_token(const char *s, size_t len, size_t i) {
    char c = s[i];
    if (is_space(c)) {
        while (i < len && is_space(s[i])) i++;
        return (tok){TOK_SPACE, i, false};
    }
    if (c == '\'' || c == '"' || c == '`') return scan_quoted(s, len, i);
    if (c == ';') return (tok){TOK_SEMI, i + 1, false};
    if (c == '(') return (tok){TOK_OPEN, i + 1, false};
    if (c == ')') return (tok){TOK_CLOSE, i + 1, false};
    if (c == '-' && i + 1 < len && s[i + 1] == '-') {
        while (i < len && s[i] != '\n') i++;
        return (tok){TOK_COMMENT, i, false};
    }
    if (c == '/' && i + 1 < len && s[i + 1] == '*') return scan_block_comment(s, len, i);
    for (i++; i < len && !starts_special(s, len, i); i++) {
    }
    return (tok){TOK_OTHER, i, false};
}

/* The last line and the one before it are blank: "\n", blanks, "\n", blanks at the very end. */
static bool ends_with_blank_line(const char *s, size_t len) {
    for (int newlines = 0; newlines < 2; newlines++) {
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) len--;
        if (len == 0 || s[len - 1] != '\n') return false;
        len--;
    }
    return true;
}

kl_sql_state kl_sqltext_is_complete(const char *code, size_t len) {
    long depth = 0;
    bool seen_code = false, ends_with_semi = false;
    for (size_t i = 0; i < len;) {
        tok t = next_token(code, len, i);
        i = t.end;
        if (t.unclosed) return KL_SQL_INCOMPLETE;
        switch (t.kind) {
        case TOK_SPACE:
        case TOK_COMMENT:
            break;
        case TOK_SEMI:
            ends_with_semi = depth == 0;
            break;
        case TOK_CLOSE:
            if (depth == 0) return KL_SQL_INVALID;
            depth--;
            seen_code = true;
            ends_with_semi = false;
            break;
        case TOK_OPEN:
            depth++;
            /* fall through */
        case TOK_QUOTED:
        case TOK_OTHER:
            seen_code = true;
            ends_with_semi = false;
            break;
        }
    }
    if (depth > 0) return KL_SQL_INCOMPLETE;
    if (!seen_code || ends_with_semi || ends_with_blank_line(code, len)) return KL_SQL_COMPLETE;
    return KL_SQL_INCOMPLETE;
}

static bool push_span(kl_span **arr, long *count, size_t *cap, const char *code, size_t start,
                      size_t end) {
    while (start < end && is_space(code[start])) start++;
    while (end > start && is_space(code[end - 1])) end--;
    if (*count == (long)*cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        kl_span *n = realloc(*arr, ncap * sizeof **arr);
        if (!n) return false;
        *arr = n;
        *cap = ncap;
    }
    (*arr)[(*count)++] = (kl_span){start, end - start};
    return true;
}

long kl_sqltext_split(const char *code, size_t len, kl_span **out) {
    kl_span *arr = NULL;
    size_t cap = 0;
    long count = 0, depth = 0;
    size_t stmt_start = 0;
    bool stmt_has_code = false;
    for (size_t i = 0; i < len;) {
        tok t = next_token(code, len, i);
        size_t tok_start = i;
        i = t.end;
        switch (t.kind) {
        case TOK_SPACE:
        case TOK_COMMENT:
            break;
        case TOK_SEMI:
            /* A ';' inside parentheses is not a statement end; Spark's parser reports it. */
            if (depth > 0) {
                stmt_has_code = true;
                break;
            }
            if (stmt_has_code && !push_span(&arr, &count, &cap, code, stmt_start, tok_start))
                goto oom;
            stmt_start = t.end;
            stmt_has_code = false;
            break;
        case TOK_OPEN:
            depth++;
            stmt_has_code = true;
            break;
        case TOK_CLOSE:
            /* An unmatched ')' must not make later ';' look nested. */
            if (depth > 0) depth--;
            stmt_has_code = true;
            break;
        case TOK_QUOTED:
        case TOK_OTHER:
            stmt_has_code = true;
            break;
        }
    }
    if (stmt_has_code && !push_span(&arr, &count, &cap, code, stmt_start, len)) goto oom;
    *out = arr;
    return count;
oom:
    free(arr);
    *out = NULL;
    return -1;
}
