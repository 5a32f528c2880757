/* Lexical view of SQL cell text: where statements end, whether a cell is finished. Knows quotes
 * ('', "", ``), comments (-- to end of line, nested block comments), and parenthesis nesting. */
#ifndef KL_KERNEL_SQLTEXT_H
#define KL_KERNEL_SQLTEXT_H

#include <stddef.h>

typedef enum { KL_SQL_COMPLETE, KL_SQL_INCOMPLETE, KL_SQL_INVALID } kl_sql_state;

/* A cell is complete when it ends (outside quotes, comments and parentheses) with ';' or with a
 * blank line, or is empty/whitespace/comments only; incomplete while a quote, block comment or
 * parenthesis is open or no terminator has come yet; invalid on a ')' with no matching '('. */
kl_sql_state kl_sqltext_is_complete(const char *code, size_t len);

typedef struct kl_span {
    size_t start, len;
} kl_span;

/* Splits code at top-level ';' into statements, trimmed of surrounding whitespace; statements that
 * are only whitespace/comments are dropped. Returns the count and sets *out to a malloc'd array
 * (caller frees; NULL when the count is 0), or -1 on allocation failure. */
long kl_sqltext_split(const char *code, size_t len, kl_span **out);

#endif
