/* text/csv: the rows as RFC 4180 comma-separated values, for %%sql --output csv. */
#ifndef KL_RENDER_CSV_H
#define KL_RENDER_CSV_H

#include <stddef.h>

#include "render/table.h"

/* Header line of column names, then at most o->max_rows rows, cells as text/plain shows them
 * with o->truncate applied (0 keeps them whole); NULL is an empty field; a field holding a comma,
 * quote, CR or LF is quoted with quotes doubled; lines end in CRLF. Returns 0 with *out
 * (NUL-terminated, free() it) and *len, or -EINVAL (time zone) / -ENOMEM with a message in err. */
int kl_csv_render(const kl_table *t, const kl_render_options *o, char **out, size_t *len,
                  char err[KL_RENDER_ERRLEN]);

#endif
