#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/catalog.h"
#include "kernel/sqllex.h"

/* "kind:text" of every token, space-separated. */
static void lex(const char *s, char *out, size_t cap) {
    static const char kinds[] = "wqscp";
    size_t pos = 0, n = 0;
    kl_tok t;
    out[0] = 0;
    while (kl_sqllex_next(s, strlen(s), &pos, &t) && n + t.len + 4 < cap)
        n += (size_t)snprintf(out + n, cap - n, "%s%c%s:%.*s", n ? " " : "", kinds[t.kind],
                              t.open ? "!" : "", (int)t.len, s + t.start);
}

Test(sqllex, tokens) {
    char got[512];
    lex("SELECT a.b, `x``y`.c FROM t -- hi\nWHERE s = 'it''s' /* a /* b */ c */ ;", got,
        sizeof got);
    cr_expect_str_eq(got, "w:SELECT w:a p:. w:b p:, q:`x``y` p:. w:c w:FROM w:t c:-- hi w:WHERE "
                          "w:s p:= s:'it' s:'s' c:/* a /* b */ c */ p:;");
    lex("SELECT 'open", got, sizeof got);
    cr_expect_str_eq(got, "w:SELECT s!:'open");
    lex("x /* open /* nested */", got, sizeof got);
    cr_expect_str_eq(got, "w:x c!:/* open /* nested */");
    lex("`open", got, sizeof got);
    cr_expect_str_eq(got, "q!:`open");
    lex("'a\\'b' \"c\"", got, sizeof got);
    cr_expect_str_eq(got, "s:'a\\'b' s:\"c\"");
    lex("é_1 2x", got, sizeof got);
    cr_expect_str_eq(got, "w:é_1 w:2x");
}

Test(sqllex, names) {
    const char *s = "`a``b` plain `open";
    size_t pos = 0;
    kl_tok t;
    const char *want[] = {"a`b", "plain", "open"};
    for (int i = 0; i < 3; i++) {
        cr_assert(kl_sqllex_next(s, strlen(s), &pos, &t));
        char *n = kl_sqllex_name(s, &t);
        cr_expect_str_eq(n, want[i]);
        free(n);
    }
    pos = 0;
    kl_sqllex_next(s, strlen(s), &pos, &t);
    cr_expect_not(kl_sqllex_is(s, &t, "a`b"), "only words match keywords");
    pos = 0;
    kl_sqllex_next("select", 6, &pos, &t);
    cr_expect(kl_sqllex_is("select", &t, "SELECT"));
    cr_expect_not(kl_sqllex_is("select", &t, "SELECTS"));
}

Test(sqllex, queries) {
    cr_expect(kl_sqllex_is_query("SELECT 1"));
    cr_expect(kl_sqllex_is_query("  -- c\n with t AS (SELECT 1) SELECT * FROM t;"));
    cr_expect(kl_sqllex_is_query("(SELECT 1) UNION (SELECT 2)"));
    cr_expect(kl_sqllex_is_query("VALUES (1)"));
    cr_expect(kl_sqllex_is_query("TABLE people"));
    cr_expect(kl_sqllex_is_query("FROM people SELECT name"));
    cr_expect(kl_sqllex_is_query("SELECT replace(name, 'DROP', 'x') FROM `insert`"),
              "words in literals, quoted names and function names do not count");
    cr_expect_not(kl_sqllex_is_query("DROP TABLE people"));
    cr_expect_not(kl_sqllex_is_query("INSERT INTO t SELECT 1"));
    cr_expect_not(kl_sqllex_is_query("WITH s AS (SELECT 1) INSERT INTO t SELECT * FROM s"));
    cr_expect_not(kl_sqllex_is_query("SELECT 1; DROP TABLE people"));
    cr_expect_not(kl_sqllex_is_query("CACHE TABLE c AS SELECT 1"));
    cr_expect_not(kl_sqllex_is_query(""));
    cr_expect_not(kl_sqllex_is_query("SET x = 1"));
}

Test(sqllex, quoting) {
    char buf[64];
    cr_expect_eq(kl_sqllex_quote_ident("a`b", buf, sizeof buf), 6);
    cr_expect_str_eq(buf, "`a``b`");
    cr_expect_eq(kl_sqllex_quote_ident("people", NULL, 0), 8, "the length without a buffer");
    kl_sqllex_quote_ident("long name", buf, 5);
    cr_expect_str_eq(buf, "`lon", "cut to the buffer, NUL-terminated");
    char *lit = kl_sqllex_quote_string("x' OR 1=1 --\\");
    cr_expect_str_eq(lit, "'x\\' OR 1=1 --\\\\'");
    /* the literal is one string token that ends where it should */
    size_t pos = 0;
    kl_tok t;
    cr_assert(kl_sqllex_next(lit, strlen(lit), &pos, &t));
    cr_expect_eq(t.kind, KL_TOK_STRING);
    cr_expect_eq(t.len, strlen(lit));
    cr_expect_not(t.open);
    free(lit);
}

Test(sqllex, ddl_statements) {
    cr_expect(kl_catalog_is_ddl("CREATE TABLE t (x INT)"));
    cr_expect(kl_catalog_is_ddl("  /* c */ drop view v"));
    cr_expect(kl_catalog_is_ddl("ALTER TABLE t RENAME TO u"));
    cr_expect(kl_catalog_is_ddl("USE db"));
    cr_expect(kl_catalog_is_ddl("CACHE TABLE c AS SELECT 1"));
    cr_expect(kl_catalog_is_ddl("SET CATALOG spark_catalog"));
    cr_expect(kl_catalog_is_ddl("set namespace db"));
    cr_expect_not(kl_catalog_is_ddl("SET spark.sql.shuffle.partitions = 4"));
    cr_expect_not(kl_catalog_is_ddl("SELECT 'CREATE'"));
    cr_expect_not(kl_catalog_is_ddl("INSERT INTO t VALUES (1)"));
    cr_expect_not(kl_catalog_is_ddl(""));
}
