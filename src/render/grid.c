#include "render/grid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/cell.h"
#include "render/unicode.h"

void kl_grid_free(kl_grid *g) {
    kl_render_buf_free(&g->text);
    free(g->off);
    free(g->len);
    free(g->null);
    memset(g, 0, sizeof *g);
}

const char *kl_grid_cell(const kl_grid *g, size_t line, size_t col, size_t *len) {
    size_t k = line * g->cols + col;
    *len = g->len[k];
    return g->text.data ? g->text.data + g->off[k] : "";
}

/* Stores the text in raw as cell k, escaped and, for data, cut like Spark; empties raw. */
static void store(kl_grid *g, size_t k, kl_render_buf *raw, kl_render_buf *esc,
                  const kl_render_options *o, bool data) {
    kl_render_buf_truncate(esc, 0);
    if (raw->len) kl_unicode_append_escaped(esc, raw->data, raw->len);
    g->off[k] = g->text.len;
    if (esc->len && !esc->failed) {
        if (data && o->truncate > 0)
            kl_unicode_append_truncated(&g->text, esc->data, esc->len, (size_t)o->truncate,
                                        o->width);
        else
            kl_render_buf_append(&g->text, esc->data, esc->len);
    }
    g->len[k] = g->text.len - g->off[k];
    kl_render_buf_truncate(raw, 0);
}

int kl_grid_build(kl_grid *g, const kl_table *t, const kl_render_options *o,
                  char err[KL_RENDER_ERRLEN]) {
    memset(g, 0, sizeof *g);
    const kl_arrow_schema *schema = kl_table_schema(t);
    g->cols = schema ? schema->n_fields : 0;
    int64_t want = o->max_rows < 0 ? 0 : o->max_rows;
    int64_t kept = kl_table_rows_kept(t);
    g->rows = (size_t)(want < kept ? want : kept);
    g->more = kl_table_has_more(t, (int64_t)g->rows);
    size_t cells = (g->rows + 2) * (g->cols ? g->cols : 1);
    g->off = calloc(cells, sizeof *g->off);
    g->len = calloc(cells, sizeof *g->len);
    g->null = calloc(g->rows * g->cols + 1, sizeof *g->null);
    if (!g->off || !g->len || !g->null) goto oom;

    kl_render_buf tmp, esc;
    kl_render_buf_init(&tmp);
    kl_render_buf_init(&esc);
    for (size_t c = 0; c < g->cols; c++) {
        const kl_arrow_field *f = &schema->fields[c];
        kl_unicode_append_repaired(&tmp, (const uint8_t *)f->name, f->name_len);
        store(g, c, &tmp, &esc, o, false);
        kl_table_type_name(&tmp, f);
        store(g, g->cols + c, &tmp, &esc, o, false);
    }

    kl_cell_ctx ctx;
    kl_cell_ctx_init(&ctx, o->time_zone, o->max_cell_bytes, err);
    size_t r = 0;
    for (size_t ch = 0; ch < kl_table_chunks(t) && r < g->rows; ch++) {
        int64_t n;
        const kl_arrow_batch *batch = kl_table_chunk(t, ch, &n);
        for (int64_t i = 0; i < n && r < g->rows; i++, r++) {
            for (size_t c = 0; c < g->cols && c < batch->n_columns; c++) {
                const kl_arrow_array *a = &batch->columns[c];
                g->null[r * g->cols + c] = kl_arrow_is_null(a, i);
                int rc = kl_cell_text(&ctx, &tmp, a, i, NULL);
                if (rc != 0) {
                    kl_render_buf_free(&tmp);
                    kl_render_buf_free(&esc);
                    kl_grid_free(g);
                    return rc;
                }
                store(g, (r + 2) * g->cols + c, &tmp, &esc, o, true);
            }
        }
    }
    bool failed = tmp.failed || esc.failed || g->text.failed;
    kl_render_buf_free(&tmp);
    kl_render_buf_free(&esc);
    if (!failed) return 0;
oom:
    kl_grid_free(g);
    snprintf(err, KL_RENDER_ERRLEN, "out of memory");
    return -ENOMEM;
}
