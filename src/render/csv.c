#include "render/csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/grid.h"

static void field(FILE *f, const char *s, size_t n) {
    if (!memchr(s, ',', n) && !memchr(s, '"', n) && !memchr(s, '\n', n) && !memchr(s, '\r', n)) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') fputc('"', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}

int kl_csv_render(const kl_table *t, const kl_render_options *o, char **out, size_t *len,
                  char err[KL_RENDER_ERRLEN]) {
    *out = NULL;
    *len = 0;
    kl_grid g;
    int rc = kl_grid_build(&g, t, o, err);
    if (rc != 0) {
        kl_grid_free(&g);
        return rc;
    }
    FILE *f = open_memstream(out, len);
    if (!f) {
        kl_grid_free(&g);
        snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        return -ENOMEM;
    }
    for (size_t line = 0; line < g.rows + 2; line++) {
        if (line == 1) continue; /* the type names line is for text/plain's %showtypes */
        for (size_t col = 0; col < g.cols; col++) {
            if (col) fputc(',', f);
            if (line >= 2 && g.null[(line - 2) * g.cols + col]) continue;
            size_t n;
            const char *s = kl_grid_cell(&g, line, col, &n);
            field(f, s, n);
        }
        fputs("\r\n", f);
    }
    kl_grid_free(&g);
    if (fclose(f) != 0) {
        free(*out);
        *out = NULL;
        snprintf(err, KL_RENDER_ERRLEN, "out of memory");
        return -ENOMEM;
    }
    return 0;
}
