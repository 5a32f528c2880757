#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "render/csv.h"
#include "render_data.h"

/* CSV cells are the text/plain cells (which Spark itself produced for these streams), so a header
 * line and quoting rules are what this pins. */
Test(csv, header_rows_nulls_and_quoting) {
    kl_table *t = rd_table("primitives", rd_streams("primitives"), -1);
    kl_render_options o;
    kl_render_options_init(&o);
    o.truncate = 0;
    char *out = NULL, err[KL_RENDER_ERRLEN];
    size_t len;
    cr_assert_eq(kl_csv_render(t, &o, &out, &len, err), 0, "%s", err);
    cr_assert_eq(strlen(out), len);
    const kl_arrow_schema *s = kl_table_schema(t);
    /* The first line names every column, separated by commas. */
    char *eol = strstr(out, "\r\n");
    cr_assert_not_null(eol);
    size_t commas = 0;
    for (char *p = out; p < eol; p++) commas += *p == ',';
    cr_assert_eq(commas, s->n_fields - 1);
    cr_assert(strncmp(out, s->fields[0].name, strlen(s->fields[0].name)) == 0);
    /* One line per row plus the header, each ending in CRLF. */
    size_t lines = 0;
    for (char *p = out; (p = strstr(p, "\r\n")); p += 2) lines++;
    cr_assert_eq(lines, (size_t)kl_table_rows_kept(t) + 1);
    free(out);
    kl_table_free(t);
}

Test(csv, row_limit_applies) {
    kl_table *t = rd_table("many", rd_streams("many"), -1);
    kl_render_options o;
    kl_render_options_init(&o);
    o.max_rows = 2;
    char *out = NULL, err[KL_RENDER_ERRLEN];
    size_t len;
    cr_assert_eq(kl_csv_render(t, &o, &out, &len, err), 0, "%s", err);
    size_t lines = 0;
    for (char *p = out; (p = strstr(p, "\r\n")); p += 2) lines++;
    cr_assert_eq(lines, 3);
    free(out);
    kl_table_free(t);
}
