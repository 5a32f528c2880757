#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/cellparam.h"

static kl_param_value parse(const char *text) {
    kl_param_value v;
    cr_assert_eq(kl_cellparam_parse_value(text, &v), 0);
    return v;
}

static void expect_string(const char *text, const char *want) {
    kl_param_value v = parse(text);
    cr_expect_eq(v.kind, KL_PARAM_STRING, "%s: kind %s", text, kl_cellparam_kind_name(v.kind));
    if (v.kind == KL_PARAM_STRING) cr_expect_str_eq(v.s, want, "value of %s", text);
    kl_cellparam_value_free(&v);
}

Test(cellparam, integers_bind_as_long) {
    kl_param_value v = parse("42");
    cr_expect_eq(v.kind, KL_PARAM_LONG);
    cr_expect_eq(v.l, 42);
    v = parse(" -9223372036854775808 ");
    cr_expect_eq(v.kind, KL_PARAM_LONG);
    cr_expect_eq(v.l, INT64_MIN);
    v = parse("+7");
    cr_expect_eq(v.kind, KL_PARAM_LONG);
    cr_expect_eq(v.l, 7);
}

Test(cellparam, other_numbers_bind_as_double) {
    kl_param_value v = parse("2.5");
    cr_expect_eq(v.kind, KL_PARAM_DOUBLE);
    cr_expect_eq(v.d, 2.5);
    v = parse("-1e3");
    cr_expect_eq(v.kind, KL_PARAM_DOUBLE);
    cr_expect_eq(v.d, -1000.0);
    v = parse(".5");
    cr_expect_eq(v.kind, KL_PARAM_DOUBLE);
    v = parse("99999999999999999999"); /* too large for a long */
    cr_expect_eq(v.kind, KL_PARAM_DOUBLE);
    cr_expect_eq(v.d, 1e20);
}

Test(cellparam, booleans) {
    kl_param_value v = parse("TRUE");
    cr_expect_eq(v.kind, KL_PARAM_BOOLEAN);
    cr_expect(v.b);
    v = parse("false");
    cr_expect_eq(v.kind, KL_PARAM_BOOLEAN);
    cr_expect_not(v.b);
}

Test(cellparam, strings_quoted_or_not) {
    expect_string("'42'", "42");
    expect_string("'O''Brien'", "O'Brien");
    expect_string("\"say \"\"hi\"\"\"", "say \"hi\"");
    expect_string("hello world", "hello world");
    expect_string("'; DROP TABLE x; --", "'; DROP TABLE x; --");
    expect_string("inf", "inf");
    expect_string("nan", "nan");
    expect_string("0x10", "0x10");
    expect_string("1e", "1e");
    expect_string("", "");
    expect_string("''", "");
    expect_string("héllo ✓", "héllo ✓");
}

Test(cellparam, names_and_assignments) {
    cr_expect(kl_cellparam_valid_name("a_1", 3));
    cr_expect(kl_cellparam_valid_name("_x", 2));
    cr_expect_not(kl_cellparam_valid_name("1a", 2));
    cr_expect_not(kl_cellparam_valid_name("a-b", 3));
    cr_expect_not(kl_cellparam_valid_name("", 0));
    char *n, *v;
    cr_assert_eq(kl_cellparam_split_assignment(" who = 'a = b' ", &n, &v), 0);
    cr_expect_str_eq(n, "who");
    cr_expect_str_eq(v, "'a = b'");
    free(n);
    free(v);
    cr_expect_eq(kl_cellparam_split_assignment("no equals", &n, &v), -1);
    cr_expect_eq(kl_cellparam_split_assignment("bad name=1", &n, &v), -1);
    cr_expect_eq(kl_cellparam_split_assignment("=1", &n, &v), -1);
    cr_expect_null(n);
}

Test(cellparam, words_keep_quoted_blanks) {
    const char *p = "  --param who='a b'  --limit=3 \"x y\"z";
    const char *want[] = {"--param", "who='a b'", "--limit=3", "\"x y\"z"};
    bool oom;
    for (size_t i = 0; i < 4; i++) {
        char *w = kl_cellparam_next_word(&p, &oom);
        cr_assert_not_null(w, "word %zu", i);
        cr_expect_str_eq(w, want[i]);
        free(w);
    }
    cr_expect_null(kl_cellparam_next_word(&p, &oom));
    cr_expect_not(oom);
}

typedef struct names {
    char buf[256];
} names;

static void add_name(const char *name, size_t len, void *arg) {
    names *n = arg;
    strncat(n->buf, name, len);
    strcat(n->buf, ",");
}

static const char *markers(const char *sql) {
    static names n;
    n.buf[0] = 0;
    kl_cellparam_markers(sql, strlen(sql), add_name, &n);
    return n.buf;
}

Test(cellparam, markers_outside_literals_and_comments) {
    cr_expect_str_eq(markers("SELECT :a, :b_2 + 1 FROM t WHERE x=:a"), "a,b_2,a,");
    cr_expect_str_eq(markers("SELECT ':no', \":no\", `:no` -- :no\n /* :no /* :no */ */ :yes"),
                     "yes,");
    cr_expect_str_eq(markers("SELECT 1::int, a:b, f(:p)"), "p,");
    cr_expect_str_eq(markers("SELECT 'it''s :no', 'esc \\' :no', :x"), "x,");
    cr_expect_str_eq(markers("SELECT r'\\' , :x"), "x,");
    cr_expect_str_eq(markers("SELECT :1, : a"), "");
    cr_expect_str_eq(markers("SELECT ':unterminated"), "");
}

static bool known(const char *name, size_t len, void *arg) {
    (void)arg;
    return (len == 1 && name[0] == 'v') || (len == 3 && memcmp(name, "who", 3) == 0);
}

static void expect_rewrite(const char *in, const char *want) {
    char *got = kl_cellparam_rewrite_braces(in, strlen(in), known, NULL);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want, "rewrite(%s)", in);
    free(got);
}

Test(cellparam, braces_become_markers_for_known_names_only) {
    expect_rewrite("SELECT ${v}, ${who} FROM t", "SELECT :v, :who FROM t");
    expect_rewrite("SELECT ${other}, ${hiveconf:x}", "SELECT ${other}, ${hiveconf:x}");
    expect_rewrite("SELECT '${v}', `${v}` -- ${v}\n/* ${v} */",
                   "SELECT '${v}', `${v}` -- ${v}\n/* ${v} */");
    expect_rewrite("SELECT ${v", "SELECT ${v");
    expect_rewrite("", "");
}
