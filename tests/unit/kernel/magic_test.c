#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/magic.h"

/* ---- parser ---- */

static const char *cell_text;

static long parse(const char *cell, kl_segment **segs) {
    cell_text = cell;
    long n = kl_magic_parse(cell, strlen(cell), segs);
    cr_assert_geq(n, 0);
    return n;
}

static void expect_span(size_t start, size_t len, const char *want, const char *what) {
    cr_expect_eq(len, strlen(want), "%s length: got '%.*s', want '%s'", what, (int)len,
                 cell_text + start, want);
    cr_expect_eq(strncmp(cell_text + start, want, len), 0, "%s: got '%.*s', want '%s'", what,
                 (int)len, cell_text + start, want);
}

#define NAME(seg, w) expect_span((seg).name_start, (seg).name_len, w, "name")
#define ARGS(seg, w) expect_span((seg).args_start, (seg).args_len, w, "args")
#define BODY(seg, w) expect_span((seg).body_start, (seg).body_len, w, "body")

Test(magic_parse, cell_magic_with_body) {
    kl_segment *s;
    long n = parse("%%html  --class x \nSELECT 1;\n%lsmagic\n", &s);
    cr_assert_eq(n, 1);
    cr_expect_eq(s[0].kind, KL_SEG_CELL_MAGIC);
    NAME(s[0], "html");
    ARGS(s[0], "--class x");
    BODY(s[0], "SELECT 1;\n%lsmagic\n");
    free(s);
}

Test(magic_parse, cell_magic_without_body) {
    kl_segment *s;
    long n = parse("%%sql", &s);
    cr_assert_eq(n, 1);
    cr_expect_eq(s[0].kind, KL_SEG_CELL_MAGIC);
    NAME(s[0], "sql");
    ARGS(s[0], "");
    cr_expect_eq(s[0].body_len, 0);
    cr_expect_eq(s[0].body_start, 5);
    free(s);

    n = parse("%%sql\n", &s);
    cr_assert_eq(n, 1);
    cr_expect_eq(s[0].body_start, 6);
    cr_expect_eq(s[0].body_len, 0);
    free(s);
}

Test(magic_parse, cell_magic_after_blank_lines_and_indentation) {
    kl_segment *s;
    long n = parse("\n  \n  %%Timeit -n 3\nSELECT 2", &s);
    cr_assert_eq(n, 1);
    cr_expect_eq(s[0].kind, KL_SEG_CELL_MAGIC);
    NAME(s[0], "Timeit");
    ARGS(s[0], "-n 3");
    BODY(s[0], "SELECT 2");
    free(s);
}

Test(magic_parse, mixed_line_magics_and_code) {
    kl_segment *s;
    const char *cell = "%truncation off\nSELECT 1;\nSELECT 2;\n  %limit 5  \n\n  \n%time SELECT 3\n"
                       "SELECT 4";
    long n = parse(cell, &s);
    cr_assert_eq(n, 5);
    cr_expect_eq(s[0].kind, KL_SEG_LINE_MAGIC);
    NAME(s[0], "truncation");
    ARGS(s[0], "off");
    cr_expect_eq(s[1].kind, KL_SEG_CODE);
    BODY(s[1], "SELECT 1;\nSELECT 2;\n");
    cr_expect_eq(s[2].kind, KL_SEG_LINE_MAGIC);
    NAME(s[2], "limit");
    ARGS(s[2], "5");
    /* the blank lines between %limit and %time are dropped */
    cr_expect_eq(s[3].kind, KL_SEG_LINE_MAGIC);
    NAME(s[3], "time");
    ARGS(s[3], "SELECT 3");
    cr_expect_eq(s[4].kind, KL_SEG_CODE);
    BODY(s[4], "SELECT 4");
    free(s);
}

Test(magic_parse, percent_inside_code_is_code) {
    kl_segment *s;
    long n = parse("SELECT 10 % 3,\n  7 %2\n", &s);
    cr_assert_eq(n, 1);
    cr_expect_eq(s[0].kind, KL_SEG_CODE);
    BODY(s[0], "SELECT 10 % 3,\n  7 %2\n");
    free(s);
}

Test(magic_parse, indented_percent_line_is_a_magic) {
    kl_segment *s;
    long n = parse("SELECT 1\n\t %%notfirst x\n", &s);
    cr_assert_eq(n, 2);
    cr_expect_eq(s[0].kind, KL_SEG_CODE);
    cr_expect_eq(s[1].kind, KL_SEG_LINE_MAGIC);
    /* a later %% line keeps its second % so no registered name matches it */
    NAME(s[1], "%notfirst");
    ARGS(s[1], "x");
    free(s);
}

Test(magic_parse, crlf_line_endings) {
    kl_segment *s;
    long n = parse("%config a=1\r\nSELECT 1;\r\n%lsmagic\r\n", &s);
    cr_assert_eq(n, 3);
    NAME(s[0], "config");
    ARGS(s[0], "a=1");
    BODY(s[1], "SELECT 1;\r\n");
    NAME(s[2], "lsmagic");
    ARGS(s[2], "");
    free(s);

    n = parse("%%html\r\n<b>x</b>\r\n", &s);
    cr_assert_eq(n, 1);
    NAME(s[0], "html");
    ARGS(s[0], "");
    BODY(s[0], "<b>x</b>\r\n");
    free(s);
}

Test(magic_parse, percent_without_name_is_an_empty_line_magic) {
    kl_segment *s;
    long n = parse("% foo\n%\n", &s);
    cr_assert_eq(n, 2);
    cr_expect_eq(s[0].kind, KL_SEG_LINE_MAGIC);
    cr_expect_eq(s[0].name_len, 0);
    ARGS(s[0], "foo");
    cr_expect_eq(s[1].kind, KL_SEG_LINE_MAGIC);
    cr_expect_eq(s[1].name_len, 0);
    free(s);
}

Test(magic_parse, whitespace_only_cell_has_no_segments) {
    kl_segment *s = (kl_segment *)1;
    cr_expect_eq(parse(" \n\t\n", &s), 0);
    cr_expect_null(s);
    cr_expect_eq(parse("", &s), 0);
}

/* ---- registry ---- */

static int noop(kl_magic_ctx *ctx, const char *args, const char *body) {
    (void)ctx, (void)args, (void)body;
    return 0;
}

static kl_magic_registry *sample(void) {
    static const kl_magic ms[] = {
        {"lsmagic", KL_MAGIC_LINE, "%lsmagic", "list magics", noop},
        {"html", KL_MAGIC_CELL, "%%html", "render html", noop},
        {"AddJar", KL_MAGIC_LINE, "%AddJar url", "add a jar", noop},
        {"time", KL_MAGIC_LINE | KL_MAGIC_CELL, "%time", "time it", noop},
        {"truncation", KL_MAGIC_LINE, "%truncation [on|off]", "truncate", noop},
        {"limit", KL_MAGIC_LINE, "%limit n", "row limit", noop},
        {"sql", KL_MAGIC_CELL, "%%sql", "sql", noop},
    };
    kl_magic_registry *reg = kl_magic_registry_new();
    cr_assert_not_null(reg);
    for (size_t k = 0; k < sizeof ms / sizeof *ms; k++)
        cr_assert_eq(kl_magic_register(reg, &ms[k]), 0);
    return reg;
}

Test(magic_registry, find_is_case_insensitive_and_uses_length) {
    kl_magic_registry *reg = sample();
    const kl_magic *m = kl_magic_find(reg, "addjar", 6, KL_MAGIC_LINE);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->name, "AddJar");
    cr_expect_not_null(kl_magic_find(reg, "LSMAGIC", 7, KL_MAGIC_LINE));
    cr_expect_not_null(kl_magic_find(reg, "limitless", 5, KL_MAGIC_LINE));
    cr_expect_null(kl_magic_find(reg, "limit", 4, KL_MAGIC_LINE));
    cr_expect_null(kl_magic_find(reg, "nothing", 7, KL_MAGIC_LINE));
    kl_magic_registry_free(reg);
}

Test(magic_registry, find_respects_kinds) {
    kl_magic_registry *reg = sample();
    cr_expect_null(kl_magic_find(reg, "html", 4, KL_MAGIC_LINE));
    cr_expect_not_null(kl_magic_find(reg, "html", 4, KL_MAGIC_CELL));
    cr_expect_not_null(kl_magic_find(reg, "time", 4, KL_MAGIC_LINE));
    cr_expect_not_null(kl_magic_find(reg, "time", 4, KL_MAGIC_CELL));
    cr_expect_null(kl_magic_find(reg, "lsmagic", 7, KL_MAGIC_CELL));
    kl_magic_registry_free(reg);
}

Test(magic_registry, duplicate_names_rejected_case_insensitively) {
    kl_magic_registry *reg = sample();
    kl_magic dup = {"ADDJAR", KL_MAGIC_CELL, "", "", noop};
    cr_expect_eq(kl_magic_register(reg, &dup), -EEXIST);
    const kl_magic *m = kl_magic_find(reg, "addjar", 6, KL_MAGIC_LINE);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->name, "AddJar");
    kl_magic_registry_free(reg);
}

static void collect_name(const kl_magic *m, void *arg) {
    char *buf = arg;
    strcat(buf, m->name);
    strcat(buf, ",");
}

Test(magic_registry, foreach_visits_in_case_insensitive_order) {
    kl_magic_registry *reg = sample();
    char buf[256] = "";
    kl_magic_foreach(reg, collect_name, buf);
    cr_expect_str_eq(buf, "AddJar,html,limit,lsmagic,sql,time,truncation,");
    kl_magic_registry_free(reg);
}

Test(magic_registry, closest_name) {
    kl_magic_registry *reg = sample();
    const char *c = kl_magic_closest(reg, "lsmagik", 7);
    cr_assert_not_null(c);
    cr_expect_str_eq(c, "lsmagic");
    c = kl_magic_closest(reg, "ADJAR", 5);
    cr_assert_not_null(c);
    cr_expect_str_eq(c, "AddJar");
    c = kl_magic_closest(reg, "truncatoinx", 11);
    cr_assert_not_null(c);
    cr_expect_str_eq(c, "truncation");
    cr_expect_null(kl_magic_closest(reg, "completelydifferent", 19));
    cr_expect_null(kl_magic_closest(reg, "", 0));
    /* "tml" is 1 from html and 2 from time: the nearer wins */
    cr_expect_str_eq(kl_magic_closest(reg, "tml", 3), "html");
    /* a missing letter */
    cr_expect_str_eq(kl_magic_closest(reg, "tim", 3), "time");
    kl_magic_registry_free(reg);
}

Test(magic_registry, closest_ties_go_alphabetically) {
    kl_magic_registry *reg = kl_magic_registry_new();
    kl_magic b = {"bbx", KL_MAGIC_LINE, "", "", noop};
    kl_magic a = {"abx", KL_MAGIC_LINE, "", "", noop};
    cr_assert_eq(kl_magic_register(reg, &b), 0);
    cr_assert_eq(kl_magic_register(reg, &a), 0);
    cr_expect_str_eq(kl_magic_closest(reg, "cbx", 3), "abx");
    kl_magic_registry_free(reg);
}
