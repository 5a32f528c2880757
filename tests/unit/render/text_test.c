/* text/plain against Spark itself: every case in tests/data/render/cases.txt is rendered with
 * the numRows and truncate Spark was given, and must equal Dataset.showString's output byte for
 * byte. Then the options Spark does not have: types line, display widths, caps. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_data.h"
#include "render/text.h"
#include "render/unicode.h"

static char *render(const kl_table *t, const kl_render_options *o) {
    char *out, err[KL_RENDER_ERRLEN];
    size_t len;
    int rc = kl_text_render(t, o, &out, &len, err);
    cr_assert_eq(rc, 0, "render: %s", err);
    cr_assert_eq(strlen(out), len);
    return out;
}

/* The first line where two texts differ, for a readable failure. */
static void first_difference(const char *a, const char *b, char *msg, size_t cap) {
    int line = 1;
    const char *la = a, *lb = b;
    while (*a && *a == *b) {
        if (*a == '\n') line++, la = a + 1, lb = b + 1;
        a++, b++;
    }
    snprintf(msg, cap, "line %d:\n  spark: %.*s\n  ours:  %.*s", line, (int)strcspn(lb, "\n"), lb,
             (int)strcspn(la, "\n"), la);
}

Test(text, matches_spark_show_string) {
    size_t len;
    char *manifest = rd_read(RENDER_DATA "/cases.txt", &len);
    cr_assert_not_null(manifest, "run tests/data/gen_render_expected.py");
    int compared = 0, failed = 0;
    char *save = NULL;
    for (char *line = strtok_r(manifest, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        int streams, n, tr;
        cr_assert_eq(sscanf(line, "%127s %d %d %d", name, &streams, &n, &tr), 4, "%s", line);
        char path[512];
        snprintf(path, sizeof path, "%s/%s.n%d_t%d.txt", RENDER_DATA, name, n, tr);
        size_t elen;
        char *expected = rd_read(path, &elen);
        cr_assert_not_null(expected, "%s", path);

        kl_table *t = rd_table(name, streams, -1);
        kl_render_options o;
        kl_render_options_init(&o);
        o.max_rows = n;
        o.truncate = tr;
        char *got = render(t, &o);
        if (strcmp(got, expected) != 0) {
            char msg[2048];
            first_difference(got, expected, msg, sizeof msg);
            cr_log_error("%s n=%d truncate=%d differs from Spark at %s", name, n, tr, msg);
            failed++;
        }
        compared++;
        free(got);
        free(expected);
        kl_table_free(t);
    }
    free(manifest);
    cr_expect_geq(compared, 30, "only %d comparisons", compared);
    cr_expect_eq(failed, 0, "%d of %d renderings differ from Spark", failed, compared);
}

static char *render_case(const char *name, int64_t keep, kl_render_options *o) {
    kl_table *t = rd_table(name, rd_streams(name), keep);
    char *s = render(t, o);
    kl_table_free(t);
    return s;
}

Test(text, types_line) {
    kl_render_options o;
    kl_render_options_init(&o);
    o.show_types = true;
    char *s = render_case("empty", -1, &o);
    cr_expect_str_eq(s, "+---+------+----+\n"
                        "|  a|     b|   c|\n"
                        "|int|string|date|\n"
                        "+---+------+----+\n"
                        "+---+------+----+\n");
    free(s);
}

/* Every line of the table part (not the footer) must be as wide as the first. */
static bool aligned(const char *s, kl_width_mode mode) {
    size_t first = (size_t)-1;
    while (*s == '+' || *s == '|') {
        size_t n = strcspn(s, "\n");
        size_t w = kl_unicode_width(s, n, mode);
        if (first == (size_t)-1) first = w;
        if (w != first) return false;
        s += n + (s[n] == '\n');
    }
    return true;
}

Test(text, display_widths_keep_columns_aligned) {
    kl_render_options o;
    kl_render_options_init(&o);
    o.truncate = 0;
    char *s = render_case("unicode", -1, &o);
    cr_expect_not(aligned(s, KL_WIDTH_DISPLAY), "Spark's own widths misalign combining marks");
    free(s);
    o.width = KL_WIDTH_DISPLAY;
    for (int tr = 0; tr <= 20; tr += 5) {
        o.truncate = tr;
        s = render_case("unicode", -1, &o);
        cr_expect(aligned(s, KL_WIDTH_DISPLAY), "truncate %d:\n%s", tr, s);
        free(s);
    }
}

Test(text, kept_rows_limit_the_output) {
    kl_render_options o;
    kl_render_options_init(&o);
    char *s = render_case("many", 3, &o); /* the table kept 3 of 25 rows */
    cr_expect_str_eq(s, "+---+---+-----+\n"
                        "| id| sq|label|\n"
                        "+---+---+-----+\n"
                        "|  0|  0|row-0|\n"
                        "|  1|  1|row-1|\n"
                        "|  2|  4|row-2|\n"
                        "+---+---+-----+\n"
                        "only showing top 3 rows");
    free(s);
}

Test(text, cell_cap_applies_even_without_truncation) {
    kl_render_options o;
    kl_render_options_init(&o);
    o.truncate = 0;
    o.max_cell_bytes = 5;
    o.max_rows = 1;
    char *s = render_case("nested", -1, &o);
    cr_expect(strstr(s, "|[1, 2...|") != NULL, "%s", s);
    cr_expect(strstr(s, "|{1, x...|") != NULL, "%s", s); /* "{1, x}" is 6 bytes */
    free(s);
}

Test(text, session_zone_option) {
    kl_render_options o;
    kl_render_options_init(&o);
    o.truncate = 0;
    o.max_rows = 1;
    char *own = render_case("temporal", -1, &o);
    o.time_zone = "America/Los_Angeles"; /* the zone Spark wrote into the Arrow schema */
    char *same = render_case("temporal", -1, &o);
    cr_expect_str_eq(own, same);
    o.time_zone = "UTC";
    char *utc = render_case("temporal", -1, &o);
    cr_expect(strstr(utc, "|2024-03-10 09:59:59.5|2024-03-10 01:59:59.5|") != NULL, "%s", utc);
    free(own);
    free(same);
    free(utc);

    kl_table *t = rd_table("temporal", 1, -1);
    o.time_zone = "Nowhere";
    char *out = (char *)1, err[KL_RENDER_ERRLEN];
    size_t len;
    cr_expect_eq(kl_text_render(t, &o, &out, &len, err), -EINVAL);
    cr_expect_null(out);
    kl_table_free(t);
}

Test(text, no_schema_renders_zero_columns) {
    kl_table *t = kl_table_new(-1);
    kl_render_options o;
    kl_render_options_init(&o);
    char *s = render(t, &o);
    cr_expect_str_eq(s, "++\n||\n++\n++\n");
    free(s);
    kl_table_set_more(t);
    s = render(t, &o);
    cr_expect_str_eq(s, "++\n||\n++\n++\nonly showing top 0 rows");
    free(s);
    kl_table_free(t);
}
