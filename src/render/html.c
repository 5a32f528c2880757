#include "render/html.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "render/grid.h"

static void put_escaped(kl_render_buf *b, const char *s, size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e;
        switch (s[i]) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        default:
            continue;
        }
        kl_render_buf_append(b, s + run, i - run);
        kl_render_buf_puts(b, e);
        run = i + 1;
    }
    kl_render_buf_append(b, s + run, n - run);
}

static void put_header(kl_render_buf *b, const kl_grid *g, size_t line, const char *attrs) {
    kl_render_buf_printf(b, "<tr%s>", attrs);
    for (size_t c = 0; c < g->cols; c++) {
        size_t n;
        const char *s = kl_grid_cell(g, line, c, &n);
        kl_render_buf_puts(b, "<th>");
        put_escaped(b, s, n);
        kl_render_buf_puts(b, "</th>");
    }
    kl_render_buf_puts(b, "</tr>\n");
}

int kl_html_render(const kl_table *t, const kl_render_options *o, char **out, size_t *len,
                   char err[KL_RENDER_ERRLEN]) {
    *out = NULL;
    *len = 0;
    kl_grid g;
    int rc = kl_grid_build(&g, t, o, err);
    if (rc != 0) return rc;
    kl_render_buf b;
    kl_render_buf_init(&b);
    kl_render_buf_puts(&b, "<table class=\"kl-table\">\n");
    if (g.more) {
        long long seen = (long long)kl_table_rows_seen(t);
        kl_render_buf_printf(&b, "<caption>showing %zu of %s%lld row%s</caption>\n", g.rows,
                             kl_table_more_flag(t) ? "at least " : "", seen,
                             seen == 1 && !kl_table_more_flag(t) ? "" : "s");
    }
    kl_render_buf_puts(&b, "<thead>\n");
    put_header(&b, &g, 0, "");
    if (o->show_types) put_header(&b, &g, 1, " class=\"kl-types\"");
    kl_render_buf_puts(&b, "</thead>\n<tbody>\n");
    for (size_t r = 0; r < g.rows; r++) {
        kl_render_buf_puts(&b, "<tr>");
        for (size_t c = 0; c < g.cols; c++) {
            if (g.null[r * g.cols + c]) {
                kl_render_buf_puts(&b, "<td class=\"kl-null\"><em>NULL</em></td>");
                continue;
            }
            size_t n;
            const char *s = kl_grid_cell(&g, r + 2, c, &n);
            kl_render_buf_puts(&b, "<td>");
            put_escaped(&b, s, n);
            kl_render_buf_puts(&b, "</td>");
        }
        kl_render_buf_puts(&b, "</tr>\n");
    }
    kl_render_buf_puts(&b, "</tbody>\n</table>\n");
    kl_grid_free(&g);
    *out = kl_render_buf_take(&b, len);
    if (!*out) {
        snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        return -ENOMEM;
    }
    return 0;
}
