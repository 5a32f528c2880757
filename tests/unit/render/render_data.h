/* Helpers shared by the render tests: reading the streams and expected text that
 * tests/data/gen_render_expected.py took from a real Spark. */
#ifndef KL_TEST_RENDER_DATA_H
#define KL_TEST_RENDER_DATA_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/table.h"

#define RENDER_DATA KL_TEST_DATA "/render"

static inline char *rd_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* The table of case NAME (its STREAMS files NAME.K.arrows), keeping keep rows. */
static inline kl_table *rd_table(const char *name, int streams, int64_t keep) {
    kl_table *t = kl_table_new(keep);
    cr_assert_not_null(t);
    for (int k = 0; k < streams; k++) {
        char path[512];
        size_t len;
        snprintf(path, sizeof path, "%s/%s.%d.arrows", RENDER_DATA, name, k);
        char *data = rd_read(path, &len);
        cr_assert_not_null(data, "cannot read %s (run tests/data/gen_render_expected.py)", path);
        char err[KL_RENDER_ERRLEN];
        int rc = kl_table_add_ipc(t, data, len, err);
        cr_assert_eq(rc, 0, "%s: %s", path, err);
        free(data);
    }
    return t;
}

/* Number of streams of a case, from cases.txt. */
static inline int rd_streams(const char *name) {
    size_t len;
    char *m = rd_read(RENDER_DATA "/cases.txt", &len);
    cr_assert_not_null(m);
    int found = 0;
    char *save = NULL;
    for (char *line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char n[128];
        int s;
        if (sscanf(line, "%127s %d", n, &s) == 2 && strcmp(n, name) == 0) {
            found = s;
            break;
        }
    }
    free(m);
    cr_assert_gt(found, 0, "case %s not in cases.txt", name);
    return found;
}

#endif
