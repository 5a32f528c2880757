#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/sqltext.h"

static kl_sql_state state(const char *s) {
    return kl_sqltext_is_complete(s, strlen(s));
}

#define COMPLETE(s)   cr_expect_eq(state(s), KL_SQL_COMPLETE, "expected complete: %s", s)
#define INCOMPLETE(s) cr_expect_eq(state(s), KL_SQL_INCOMPLETE, "expected incomplete: %s", s)
#define INVALID(s)    cr_expect_eq(state(s), KL_SQL_INVALID, "expected invalid: %s", s)

Test(sqltext, empty_and_comment_only_cells_are_complete) {
    COMPLETE("");
    COMPLETE("   \n\t ");
    COMPLETE("-- c");
    COMPLETE("-- a comment; with a semicolon");
    COMPLETE("/* block */");
    COMPLETE("/* outer /* inner */ still outer */\n-- and a line");
    COMPLETE(";");
    COMPLETE(" ; ;; ");
}

Test(sqltext, terminator_decides_completeness) {
    COMPLETE("SELECT 1;");
    COMPLETE("SELECT 1;  \n");
    COMPLETE("SELECT 1; -- trailing comment");
    COMPLETE("SELECT 1; /* trailing */ ");
    COMPLETE("SELECT 1;\nSELECT 2;");
    INCOMPLETE("SELECT 1");
    INCOMPLETE("SELECT 1\n");
    INCOMPLETE("SELECT 1;\nSELECT 2");
    INCOMPLETE("SELECT 1 -- no terminator;");
}

Test(sqltext, blank_line_ends_a_cell) {
    COMPLETE("SELECT 1\n\n");
    COMPLETE("SELECT 1\n  \t\n");
    COMPLETE("SELECT 1\n\n  ");
    COMPLETE("SELECT 1\r\n\r\n");
    COMPLETE("SELECT 1 -- c\n\n");
    INCOMPLETE("SELECT 1\n \n x");
    INCOMPLETE("SELECT 'a\n\n");
    INCOMPLETE("SELECT (1\n\n");
    INCOMPLETE("SELECT /* 1\n\n");
}

Test(sqltext, open_quotes_keep_cells_incomplete) {
    INCOMPLETE("SELECT 'a;");
    INCOMPLETE("SELECT \"a;");
    INCOMPLETE("SELECT `a;");
    INCOMPLETE("SELECT 'it\\';");
    INCOMPLETE("SELECT 'ends with backslash\\");
    COMPLETE("SELECT 'it\\'s';");
    COMPLETE("SELECT 'it''s';");
    COMPLETE("SELECT \"say \\\"hi\\\"\";");
    COMPLETE("SELECT \"a\"\"b\";");
    COMPLETE("SELECT `we``ird`;");
    /* backslash does not escape inside backticks */
    COMPLETE("SELECT `a\\`;");
    COMPLETE("SELECT ')';");
    COMPLETE("SELECT '--';");
    COMPLETE("SELECT '/*';");
}

Test(sqltext, comments_nest_and_hide_text) {
    INCOMPLETE("SELECT /* a /* b */ c;");
    COMPLETE("SELECT /* a /* b */ c */ 1;");
    INCOMPLETE("SELECT 1 /* ;");
    COMPLETE("SELECT 1 -- ) ' \" (\n;");
    COMPLETE("SELECT 1 /* ) */;");
    COMPLETE("SELECT 1 /*+ hint */;");
    /* '--' inside a block comment is not a line comment */
    COMPLETE("SELECT 1 /* -- */;");
}

Test(sqltext, parentheses) {
    INCOMPLETE("SELECT (1");
    INCOMPLETE("SELECT (1;");
    INCOMPLETE("SELECT ((1)");
    COMPLETE("SELECT ((1));");
    COMPLETE("SELECT f(g(1), (2));");
    INVALID("SELECT 1)");
    INVALID("SELECT 1);");
    INVALID(")");
    INVALID("SELECT (1)) + (2");
    INVALID("SELECT 1) 'open");
}

typedef struct {
    const char *code;
    kl_span *spans;
    long n;
} split_result;

static split_result split(const char *code) {
    split_result r = {code, NULL, 0};
    r.n = kl_sqltext_split(code, strlen(code), &r.spans);
    cr_assert_geq(r.n, 0);
    return r;
}

static void expect_stmt(split_result *r, long k, const char *want) {
    cr_assert_lt(k, r->n);
    cr_expect_eq(r->spans[k].len, strlen(want), "statement %ld length", k);
    cr_expect_eq(strncmp(r->code + r->spans[k].start, want, r->spans[k].len), 0,
                 "statement %ld: got '%.*s', want '%s'", k, (int)r->spans[k].len,
                 r->code + r->spans[k].start, want);
}

Test(sqltext_split, plain_statements_are_trimmed) {
    split_result r = split("  SELECT 1;\n\tSELECT 2 ;  ");
    cr_assert_eq(r.n, 2);
    expect_stmt(&r, 0, "SELECT 1");
    expect_stmt(&r, 1, "SELECT 2");
    free(r.spans);
}

Test(sqltext_split, trailing_statement_without_semicolon_counts) {
    split_result r = split("SELECT 1; SELECT 2\n");
    cr_assert_eq(r.n, 2);
    expect_stmt(&r, 1, "SELECT 2");
    free(r.spans);
}

Test(sqltext_split, quotes_hide_semicolons) {
    split_result r = split("SELECT 'a;b', \"c;\\\";\", `d;e`; SELECT 'it''s;'");
    cr_assert_eq(r.n, 2);
    expect_stmt(&r, 0, "SELECT 'a;b', \"c;\\\";\", `d;e`");
    expect_stmt(&r, 1, "SELECT 'it''s;'");
    free(r.spans);
}

Test(sqltext_split, comments_hide_semicolons_and_comment_only_statements_drop) {
    split_result r = split("-- intro; still comment\nSELECT 1 /* a; /* b; */ c; */;\n-- only;\n;"
                           "/* just a comment */;");
    cr_assert_eq(r.n, 1);
    expect_stmt(&r, 0, "-- intro; still comment\nSELECT 1 /* a; /* b; */ c; */");
    free(r.spans);
}

Test(sqltext_split, nested_parens_keep_semicolons_inside) {
    split_result r = split("SELECT f((1; 2)); SELECT (3)");
    cr_assert_eq(r.n, 2);
    expect_stmt(&r, 0, "SELECT f((1; 2))");
    expect_stmt(&r, 1, "SELECT (3)");
    free(r.spans);
}

Test(sqltext_split, empty_statements_dropped) {
    split_result r = split(";;  ; SELECT 1;;\n;SELECT 2;;");
    cr_assert_eq(r.n, 2);
    expect_stmt(&r, 0, "SELECT 1");
    expect_stmt(&r, 1, "SELECT 2");
    free(r.spans);

    r = split(" ; -- nothing\n ; ");
    cr_expect_eq(r.n, 0);
    cr_expect_null(r.spans);
}

Test(sqltext_split, stray_close_paren_does_not_swallow_later_statements) {
    split_result r = split("SELECT 1); SELECT 2");
    cr_assert_eq(r.n, 2);
    expect_stmt(&r, 0, "SELECT 1)");
    free(r.spans);
}

Test(sqltext_split, respects_len_not_nul) {
    const char *code = "SELECT 1; SELECT 2; SELECT 3";
    kl_span *spans = NULL;
    long n = kl_sqltext_split(code, 18, &spans);
    cr_assert_eq(n, 2);
    cr_expect_eq(spans[1].len, strlen("SELECT 2"));
    free(spans);
}
