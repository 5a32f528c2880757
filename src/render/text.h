/* text/plain: a table exactly as Spark's Dataset.showString(max_rows, truncate, vertical=false)
 * prints it (Spark 4.0): "+---+" borders, a header line, cells right-aligned when truncate > 0
 * and left-aligned when it is 0, columns at least 3 wide, and "only showing top N rows" (no
 * newline after it) when the table has more rows than shown.
 *
 * With show_types, a second header line gives each column's Spark type, padded like the names
 * ("|  id|  name|" then "|bigint|string|"); the types then count toward the column widths. A
 * separate line keeps the first header identical to Spark's. */
#ifndef KL_RENDER_TEXT_H
#define KL_RENDER_TEXT_H

#include <stddef.h>

#include "render/table.h"

/* Returns 0 with *out (NUL-terminated, free() it) and *len, or -EINVAL (a time zone that cannot
 * be resolved) or -ENOMEM with a message in err. */
int kl_text_render(const kl_table *t, const kl_render_options *o, char **out, size_t *len,
                   char err[KL_RENDER_ERRLEN]);

#endif
