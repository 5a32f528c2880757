/* A small Spark SQL tokenizer for looking at text the user is still typing: words, quoted
 * identifiers, string literals, comments and punctuation, with byte positions. It never fails:
 * an unterminated quote or comment simply runs to the end (and says so), which is what completion
 * needs to know that the cursor sits inside one. */
#ifndef KL_KERNEL_SQLLEX_H
#define KL_KERNEL_SQLLEX_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    KL_TOK_WORD,    /* letters, digits, '_' and non-ASCII bytes: keywords, names, numbers */
    KL_TOK_QUOTED,  /* `identifier` (`` inside stands for one backtick) */
    KL_TOK_STRING,  /* '...' or "..." */
    KL_TOK_COMMENT, /* -- to end of line, or a nested block comment */
    KL_TOK_PUNCT,   /* any other single byte */
} kl_tok_kind;

typedef struct kl_tok {
    kl_tok_kind kind;
    size_t start, len; /* bytes of the whole token, quotes included */
    bool open;         /* a quote or block comment that the text ends inside */
} kl_tok;

/* The next token at or after *pos (whitespace skipped) within len bytes; advances *pos past it.
 * False at the end. */
bool kl_sqllex_next(const char *s, size_t len, size_t *pos, kl_tok *tok);
/* Same, skipping comments. */
bool kl_sqllex_next_code(const char *s, size_t len, size_t *pos, kl_tok *tok);

/* True when tok is the word kw (ASCII case-insensitive). */
bool kl_sqllex_is(const char *s, const kl_tok *tok, const char *kw);
/* The name a WORD or QUOTED token stands for (backticks removed, `` undone); malloc'd. */
char *kl_sqllex_name(const char *s, const kl_tok *tok);

/* True when sql is a query (it starts, after comments, with SELECT, WITH, VALUES, TABLE, FROM or
 * '(' and no word that changes data or metadata -- INSERT, MERGE, UPDATE, DELETE, CREATE, DROP,
 * ALTER, TRUNCATE, CACHE, ... -- appears outside quotes and comments). Spark runs a command as soon
 * as it analyzes it, so only queries are safe to analyze. */
bool kl_sqllex_is_query(const char *sql);

/* Appends name as a SQL identifier: `name` with each backtick doubled, into buf (cap bytes,
 * NUL-terminated). Returns the length needed, like snprintf. */
size_t kl_sqllex_quote_ident(const char *name, char *buf, size_t cap);
/* A malloc'd single-quoted SQL string literal holding text exactly: backslashes and quotes are
 * escaped, so the text can never end the literal. NULL when out of memory. */
char *kl_sqllex_quote_string(const char *text);

#endif
