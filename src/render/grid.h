/* The cells text/plain and text/html show, as Spark's Dataset.getRows makes them: column names
 * and every cell with control characters escaped (unicode.h), cells cut to the truncate option,
 * at most max_rows data rows. */
#ifndef KL_RENDER_GRID_H
#define KL_RENDER_GRID_H

#include <stdbool.h>
#include <stddef.h>

#include "render/buf.h"
#include "render/table.h"

typedef struct kl_grid {
    size_t cols;
    size_t rows; /* data rows */
    bool more;   /* the table has rows beyond these */
    kl_render_buf text;
    size_t *off, *len; /* (rows + 2) * cols: line 0 names, line 1 type names, then data */
    bool *null;        /* rows * cols: the value itself is NULL */
} kl_grid;

/* Returns 0, -EINVAL (time zone) or -ENOMEM with a message in err; free g in every case. */
int kl_grid_build(kl_grid *g, const kl_table *t, const kl_render_options *o,
                  char err[KL_RENDER_ERRLEN]);
void kl_grid_free(kl_grid *g);

/* Line 0 is the names, line 1 the types, line 2 + r data row r. The text is not
 * NUL-terminated. */
const char *kl_grid_cell(const kl_grid *g, size_t line, size_t col, size_t *len);

#endif
