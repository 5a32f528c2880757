#include "render/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "render/grid.h"
#include "render/unicode.h"

#define MIN_COLUMN_WIDTH 3 /* Spark's */

/* Like Scala's addString(sb, "|", "|", "|\n"): zero columns still give "||". */
static void put_line(kl_render_buf *b, const kl_grid *g, size_t line, const size_t *widths,
                     const kl_render_options *o) {
    kl_render_buf_putc(b, '|');
    for (size_t c = 0; c < g->cols; c++) {
        size_t n;
        const char *s = kl_grid_cell(g, line, c, &n);
        size_t w = kl_unicode_width(s, n, o->width);
        size_t pad = widths[c] > w ? widths[c] - w : 0;
        if (c) kl_render_buf_putc(b, '|');
        if (o->truncate > 0) kl_render_buf_repeat(b, ' ', pad);
        kl_render_buf_append(b, s, n);
        if (o->truncate <= 0) kl_render_buf_repeat(b, ' ', pad);
    }
    kl_render_buf_puts(b, "|\n");
}

static void put_separator(kl_render_buf *b, const kl_grid *g, const size_t *widths) {
    kl_render_buf_putc(b, '+');
    for (size_t c = 0; c < g->cols; c++) {
        if (c) kl_render_buf_putc(b, '+');
        kl_render_buf_repeat(b, '-', widths[c]);
    }
    kl_render_buf_puts(b, "+\n");
}

int kl_text_render(const kl_table *t, const kl_render_options *o, char **out, size_t *len,
                   char err[KL_RENDER_ERRLEN]) {
    *out = NULL;
    *len = 0;
    kl_grid g;
    int rc = kl_grid_build(&g, t, o, err);
    if (rc != 0) return rc;
    size_t *widths = calloc(g.cols + 1, sizeof *widths);
    if (!widths) {
        kl_grid_free(&g);
        snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        return -ENOMEM;
    }
    for (size_t c = 0; c < g.cols; c++) {
        widths[c] = MIN_COLUMN_WIDTH;
        for (size_t line = 0; line < g.rows + 2; line++) {
            if (line == 1 && !o->show_types) continue;
            size_t n;
            const char *s = kl_grid_cell(&g, line, c, &n);
            size_t w = kl_unicode_width(s, n, o->width);
            if (w > widths[c]) widths[c] = w;
        }
    }

    kl_render_buf b;
    kl_render_buf_init(&b);
    put_separator(&b, &g, widths);
    put_line(&b, &g, 0, widths, o);
    if (o->show_types) put_line(&b, &g, 1, widths, o);
    put_separator(&b, &g, widths);
    for (size_t r = 0; r < g.rows; r++) put_line(&b, &g, r + 2, widths, o);
    put_separator(&b, &g, widths);
    if (g.more)
        kl_render_buf_printf(&b, "only showing top %zu %s", g.rows, g.rows == 1 ? "row" : "rows");

    free(widths);
    kl_grid_free(&g);
    *out = kl_render_buf_take(&b, len);
    if (!*out) {
        snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        return -ENOMEM;
    }
    return 0;
}
