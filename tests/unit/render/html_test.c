/* text/html: structure, escaping, NULL cells, the caption and the types row. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "render/html.h"
#include "render/render_data.h"

static char *html(const kl_table *t, const kl_render_options *o) {
    char *out, err[KL_RENDER_ERRLEN];
    size_t len;
    cr_assert_eq(kl_html_render(t, o, &out, &len, err), 0, "%s", err);
    cr_assert_eq(strlen(out), len);
    return out;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

static kl_render_options defaults(void) {
    kl_render_options o;
    kl_render_options_init(&o);
    return o;
}

Test(html, table_structure) {
    kl_table *t = rd_table("primitives", 1, -1);
    kl_render_options o = defaults();
    char *h = html(t, &o);
    const char *head = "<table class=\"kl-table\">\n<thead>\n<tr><th>b</th><th>i8</th>";
    cr_expect(strncmp(h, head, strlen(head)) == 0, "%s", h);
    cr_expect_eq(count(h, "<tr>"), 1 + 5);
    cr_expect_eq(count(h, "<th>"), 12);
    cr_expect_eq(count(h, "<td"), 12 * 5);
    cr_expect_eq(count(h, "<caption>"), 0, "all rows shown: no caption");
    cr_expect(strstr(h, "<td>[01 02 FF]</td>") != NULL);
    cr_expect(strstr(h, "<td>-1234567890123456...</td>") != NULL, "cells cut like text/plain");
    cr_expect_str_eq(h + strlen(h) - 18, "</tbody>\n</table>\n");
    free(h);
    kl_table_free(t);
}

Test(html, null_differs_from_the_string_null) {
    kl_table *t = rd_table("primitives", 1, -1);
    kl_render_options o = defaults();
    char *h = html(t, &o);
    /* row 3 is all NULL: 12 null cells, each marked */
    cr_expect_eq(count(h, "<td class=\"kl-null\"><em>NULL</em></td>"), 12);
    cr_expect_eq(count(h, "<td>NULL</td>"), 0);
    free(h);
    kl_table_free(t);
    t = rd_table("nested", 1, -1); /* NULL inside a value stays text */
    h = html(t, &o);
    cr_expect(strstr(h, "<td>[1, NULL, 3]</td>") != NULL);
    free(h);
    kl_table_free(t);
}

Test(html, escapes_everything) {
    kl_table *t = rd_table("unicode", 1, -1);
    kl_render_options o = defaults();
    o.truncate = 0;
    char *h = html(t, &o);
    cr_expect(strstr(h, "<td>&lt;b&gt;&amp;amp;&quot;quotes&quot;&#39;&lt;/b&gt;</td>") != NULL,
              "%s", h);
    cr_expect(strstr(h, "<b>") == NULL);
    cr_expect(strstr(h, "<th>中文列</th>") != NULL);
    cr_expect(strstr(h, "<td>line1\\nline2\\ttab</td>") != NULL, "control characters escaped");
    free(h);
    kl_table_free(t);
}

Test(html, caption_when_rows_are_left_out) {
    kl_table *t = rd_table("many", 3, -1);
    kl_render_options o = defaults();
    char *h = html(t, &o);
    cr_expect(strstr(h, "<caption>showing 20 of 25 rows</caption>") != NULL, "%s", h);
    cr_expect_eq(count(h, "<tr>"), 21);
    free(h);
    kl_table_set_more(t);
    o.max_rows = 1;
    h = html(t, &o);
    cr_expect(strstr(h, "<caption>showing 1 of at least 25 rows</caption>") != NULL, "%s", h);
    free(h);
    o.max_rows = 25;
    h = html(t, &o);
    cr_expect(strstr(h, "<caption>showing 25 of at least 25 rows</caption>") != NULL, "%s", h);
    free(h);
    kl_table_free(t);
}

Test(html, types_row) {
    kl_table *t = rd_table("nested", 1, -1);
    kl_render_options o = defaults();
    o.show_types = true;
    char *h = html(t, &o);
    cr_expect(strstr(h, "<tr class=\"kl-types\"><th>array&lt;int&gt;</th><th>map&lt;string,int&gt;"
                        "</th>") != NULL,
              "%s", h);
    free(h);
    kl_table_free(t);
}

Test(html, empty_and_schemaless) {
    kl_table *t = rd_table("empty", 1, -1);
    kl_render_options o = defaults();
    char *h = html(t, &o);
    cr_expect_str_eq(h, "<table class=\"kl-table\">\n<thead>\n<tr><th>a</th><th>b</th><th>c</th>"
                        "</tr>\n</thead>\n<tbody>\n</tbody>\n</table>\n");
    free(h);
    kl_table_free(t);
    t = kl_table_new(-1);
    h = html(t, &o);
    cr_expect_str_eq(h, "<table class=\"kl-table\">\n<thead>\n<tr></tr>\n</thead>\n<tbody>\n"
                        "</tbody>\n</table>\n");
    free(h);
    kl_table_free(t);
}

Test(html, unknown_zone_is_an_error) {
    kl_table *t = rd_table("temporal", 1, -1);
    kl_render_options o = defaults();
    o.time_zone = "Atlantis/Capital";
    char *out = (char *)1, err[KL_RENDER_ERRLEN];
    size_t len;
    cr_expect_eq(kl_html_render(t, &o, &out, &len, err), -EINVAL);
    cr_expect_null(out);
    cr_expect(strstr(err, "Atlantis/Capital") != NULL);
    kl_table_free(t);
}
