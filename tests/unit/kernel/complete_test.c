#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/complete.h"

static int noop(kl_magic_ctx *ctx, const char *args, const char *body) {
    (void)ctx, (void)args, (void)body;
    return 0;
}

static kl_magic_registry *reg;

static void setup(void) {
    static const kl_magic ms[] = {
        {"lsmagic", KL_MAGIC_LINE, "%lsmagic", "", noop},
        {"html", KL_MAGIC_CELL, "%%html", "", noop},
        {"history", KL_MAGIC_LINE, "%history", "", noop},
        {"AddJar", KL_MAGIC_LINE, "%AddJar", "", noop},
        {"time", KL_MAGIC_LINE | KL_MAGIC_CELL, "%time", "", noop},
    };
    reg = kl_magic_registry_new();
    cr_assert_not_null(reg);
    for (size_t k = 0; k < sizeof ms / sizeof *ms; k++)
        cr_assert_eq(kl_magic_register(reg, &ms[k]), 0);
}

static void teardown(void) {
    kl_magic_registry_free(reg);
}

TestSuite(complete, .init = setup, .fini = teardown);

static void expect_json(json_t *got, const char *field, const char *want) {
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(w, "bad expectation %s", want);
    json_t *g = json_object_get(got, field);
    char *gs = json_dumps(g, JSON_COMPACT | JSON_ENCODE_ANY);
    cr_expect(json_equal(g, w), "%s: got %s, want %s", field, gs, want);
    free(gs);
    json_decref(w);
}

static json_t *complete_at_end(const char *code) {
    json_t *r = kl_complete(code, kl_utf8_byte_to_cp(code, strlen(code)), reg);
    cr_assert_not_null(r);
    cr_expect_str_eq(json_string_value(json_object_get(r, "status")), "ok");
    return r;
}

Test(complete, keywords_upper_case) {
    json_t *r = complete_at_end("SEL");
    expect_json(r, "matches", "[\"SELECT\"]");
    expect_json(r, "cursor_start", "0");
    expect_json(r, "cursor_end", "3");
    json_decref(r);

    r = complete_at_end("SELECT * FR");
    expect_json(r, "matches", "[\"FROM\"]");
    expect_json(r, "cursor_start", "9");
    json_decref(r);

    /* mixed case counts as upper */
    r = complete_at_end("Dat");
    expect_json(r, "matches",
                "[\"DATA\",\"DATABASE\",\"DATABASES\",\"DATE\",\"DATEADD\","
                "\"DATEDIFF\"]");
    json_decref(r);
}

Test(complete, keywords_lower_case) {
    json_t *r = complete_at_end("select * from t where x is nul");
    expect_json(r, "matches", "[\"null\",\"nulls\"]");
    json_decref(r);
    r = complete_at_end("uncach");
    expect_json(r, "matches", "[\"uncache\"]");
    json_decref(r);
}

Test(complete, metadata_types) {
    json_t *r = complete_at_end("SELECT 1 UNI");
    expect_json(r, "matches", "[\"UNION\",\"UNIQUE\"]");
    json_t *types = json_object_get(json_object_get(r, "metadata"), "_jupyter_types_experimental");
    cr_assert_eq(json_array_size(types), 2);
    json_t *t = json_array_get(types, 0);
    cr_expect_str_eq(json_string_value(json_object_get(t, "text")), "UNION");
    cr_expect_str_eq(json_string_value(json_object_get(t, "type")), "keyword");
    cr_expect_eq(json_integer_value(json_object_get(t, "start")), 9);
    cr_expect_eq(json_integer_value(json_object_get(t, "end")), 12);
    json_decref(r);
}

Test(complete, empty_prefix_offers_nothing) {
    json_t *r = complete_at_end("SELECT ");
    expect_json(r, "matches", "[]");
    expect_json(r, "cursor_start", "7");
    expect_json(r, "cursor_end", "7");
    json_decref(r);
    r = complete_at_end("");
    expect_json(r, "matches", "[]");
    json_decref(r);
    r = complete_at_end("SELECT xyzzy");
    expect_json(r, "matches", "[]");
    json_decref(r);
}

Test(complete, line_magic_prefixes) {
    json_t *r = complete_at_end("%lsma");
    expect_json(r, "matches", "[\"%lsmagic\"]");
    expect_json(r, "cursor_start", "0");
    expect_json(r, "cursor_end", "5");
    json_t *t = json_array_get(
        json_object_get(json_object_get(r, "metadata"), "_jupyter_types_experimental"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(t, "type")), "magic");
    json_decref(r);

    /* case-insensitive, registry spelling */
    r = complete_at_end("%addj");
    expect_json(r, "matches", "[\"%AddJar\"]");
    json_decref(r);

    r = complete_at_end("SELECT 1\n%h");
    expect_json(r, "matches", "[\"%history\"]");
    expect_json(r, "cursor_start", "9");
    json_decref(r);

    /* bare %: every line magic, sorted */
    r = complete_at_end("%");
    expect_json(r, "matches", "[\"%AddJar\",\"%history\",\"%lsmagic\",\"%time\"]");
    json_decref(r);
}

Test(complete, cell_magic_prefixes) {
    json_t *r = complete_at_end("%%ht");
    expect_json(r, "matches", "[\"%%html\"]");
    expect_json(r, "cursor_start", "0");
    json_decref(r);
    r = complete_at_end("%%");
    expect_json(r, "matches", "[\"%%html\",\"%%time\"]");
    json_decref(r);
    /* html is cell-only, lsmagic line-only */
    r = complete_at_end("%ht");
    expect_json(r, "matches", "[]");
    json_decref(r);
    r = complete_at_end("%%ls");
    expect_json(r, "matches", "[]");
    json_decref(r);
}

Test(complete, no_registry_means_no_magics) {
    json_t *r = kl_complete("%ls", 3, NULL);
    cr_assert_not_null(r);
    expect_json(r, "matches", "[]");
    json_decref(r);
}

Test(complete, cursor_in_the_middle) {
    /* cursor after "SEL" of "SELXX": the prefix is SEL, the whole token is replaced */
    const char *code = "SELXX * FROM t";
    json_t *r = kl_complete(code, 3, reg);
    cr_assert_not_null(r);
    expect_json(r, "matches", "[\"SELECT\"]");
    expect_json(r, "cursor_start", "0");
    expect_json(r, "cursor_end", "5");
    json_decref(r);

    /* cursor at the end of an earlier word */
    r = kl_complete("SELECT * FRO t", 12, reg);
    expect_json(r, "matches", "[\"FROM\"]");
    expect_json(r, "cursor_start", "9");
    expect_json(r, "cursor_end", "12");
    json_decref(r);

    /* a cursor past the end is clamped */
    r = kl_complete("LIM", 99, reg);
    expect_json(r, "matches", "[\"LIMIT\"]");
    expect_json(r, "cursor_end", "3");
    json_decref(r);
}

Test(complete, non_ascii_before_cursor) {
    /* "é" is 2 bytes, "日本" 6 bytes, "😀" 4 bytes: 4 code points, 12 bytes */
    const char *code = "SELECT 'é日本😀' AS x WHE";
    size_t cps = kl_utf8_byte_to_cp(code, strlen(code));
    cr_assert_eq(cps, strlen(code) - 8);
    json_t *r = kl_complete(code, cps, reg);
    expect_json(r, "matches", "[\"WHEN\",\"WHERE\"]");
    char want[16];
    snprintf(want, sizeof want, "%zu", cps - 3);
    expect_json(r, "cursor_start", want);
    snprintf(want, sizeof want, "%zu", cps);
    expect_json(r, "cursor_end", want);
    json_decref(r);

    /* code point 6 is byte 7, between "OR" and "D": the prefix is "OR", the token "ORD" */
    r = kl_complete("'ü' ORD BY", 6, reg);
    expect_json(r, "matches", "[\"OR\",\"ORDER\"]");
    expect_json(r, "cursor_start", "4");
    expect_json(r, "cursor_end", "7");
    json_decref(r);
}

Test(complete, utf8_offsets) {
    const char *s = "aé日😀b";
    cr_expect_eq(kl_utf8_cp_to_byte(s, 0), 0);
    cr_expect_eq(kl_utf8_cp_to_byte(s, 1), 1);
    cr_expect_eq(kl_utf8_cp_to_byte(s, 2), 3);
    cr_expect_eq(kl_utf8_cp_to_byte(s, 3), 6);
    cr_expect_eq(kl_utf8_cp_to_byte(s, 4), 10);
    cr_expect_eq(kl_utf8_cp_to_byte(s, 5), 11);
    cr_expect_eq(kl_utf8_cp_to_byte(s, 50), 11);
    cr_expect_eq(kl_utf8_byte_to_cp(s, 3), 2);
    cr_expect_eq(kl_utf8_byte_to_cp(s, 10), 4);
    cr_expect_eq(kl_utf8_byte_to_cp(s, 11), 5);
    cr_expect_eq(kl_utf8_byte_to_cp(s, 99), 5);
}

Test(complete, token_bounds) {
    size_t s, e;
    kl_complete_token("x %%html y", 5, &s, &e);
    cr_expect_eq(s, 2);
    cr_expect_eq(e, 8);
    kl_complete_token("a %%%b", 6, &s, &e);
    cr_expect_eq(s, 3, "at most two percent signs belong to the token");
    kl_complete_token("foo_bar1 ", 4, &s, &e);
    cr_expect_eq(s, 0);
    cr_expect_eq(e, 8);
    kl_complete_token("a + b", 3, &s, &e);
    cr_expect_eq(s, 3);
    cr_expect_eq(e, 3);
}

/* ---- catalog-aware completion, against a fixed catalog -------------------------------------- */

typedef struct fake_table {
    const char *db, *name, *type;
    const char *columns[4];
} fake_table;

static const fake_table TABLES[] = {
    {"default", "people", "table", {"id", "name", "age", NULL}},
    {"default", "orders", "table", {"id", "person_id", "total", NULL}},
    {"default", "people_v", "view", {"id", "name", NULL}},
    {"default", "weird name", "table", {"a b", NULL}},
    {"sales", "orders2", "table", {"oid", NULL}},
    {"sales", "customers", "table", {"cid", "cname", NULL}},
};
static const char *const DATABASES[] = {"default", "sales", "my db"};
static const char *const FUNCTIONS[] = {"count", "concat", "concat_ws", "coalesce",
                                        "upper", "<=>",    "nvl"};

/* Every call the completer made: "p:" prefetch or "w:" wait, then kind/db/table. */
static char calls[32][96];
static int ncalls;

static void fake_names(void *arg, const kl_names_query *q, kl_complete_sink *sink) {
    (void)arg;
    static const char *const kinds[] = {"databases", "tables", "columns", "functions"};
    if (ncalls < 32)
        snprintf(calls[ncalls++], sizeof calls[0], "%s:%s/%s/%s", sink ? "w" : "p", kinds[q->kind],
                 q->db ? q->db : "-", q->table ? q->table : "-");
    if (!sink) return;
    const char *db = q->db ? q->db : "default";
    switch (q->kind) {
    case KL_NAMES_DATABASES:
        for (size_t k = 0; k < 3; k++) kl_complete_offer(sink, DATABASES[k], "database");
        break;
    case KL_NAMES_TABLES:
        for (size_t k = 0; k < sizeof TABLES / sizeof *TABLES; k++)
            if (strcasecmp(TABLES[k].db, db) == 0)
                kl_complete_offer(sink, TABLES[k].name, TABLES[k].type);
        break;
    case KL_NAMES_COLUMNS:
        for (size_t k = 0; k < sizeof TABLES / sizeof *TABLES; k++)
            if (strcasecmp(TABLES[k].db, db) == 0 && strcasecmp(TABLES[k].name, q->table) == 0)
                for (const char *const *c = TABLES[k].columns; *c; c++)
                    kl_complete_offer(sink, *c, "column");
        break;
    case KL_NAMES_FUNCTIONS:
        for (size_t k = 0; k < sizeof FUNCTIONS / sizeof *FUNCTIONS; k++)
            kl_complete_offer(sink, FUNCTIONS[k], "function");
        break;
    }
}

static const kl_complete_source FAKE = {NULL, fake_names};

static void setup_catalog(void) {
    static const kl_magic ms[] = {
        {"sql", KL_MAGIC_CELL, "%%sql", "", noop},
        {"dataframe", KL_MAGIC_CELL, "%%dataframe", "", noop},
        {"html", KL_MAGIC_CELL, "%%html", "", noop},
        {"explain", KL_MAGIC_LINE, "%explain", "", noop},
        {"describe", KL_MAGIC_LINE, "%describe", "", noop},
        {"schema", KL_MAGIC_LINE, "%schema", "", noop},
        {"tables", KL_MAGIC_LINE, "%tables", "", noop},
        {"truncation", KL_MAGIC_LINE, "%truncation", "", noop},
        {"help", KL_MAGIC_LINE, "%help", "", noop},
        {"lsmagic", KL_MAGIC_LINE, "%lsmagic", "", noop},
        {"time", KL_MAGIC_LINE | KL_MAGIC_CELL, "%time", "", noop},
    };
    reg = kl_magic_registry_new();
    cr_assert_not_null(reg);
    for (size_t k = 0; k < sizeof ms / sizeof *ms; k++)
        cr_assert_eq(kl_magic_register(reg, &ms[k]), 0);
    ncalls = 0;
}

TestSuite(catalog, .init = setup_catalog, .fini = teardown);

/* Completes with the cursor where '|' stands in marked (the '|' is removed). */
static json_t *at_bar(const char *marked) {
    char code[512];
    const char *bar = strchr(marked, '|');
    cr_assert_not_null(bar, "no cursor in %s", marked);
    size_t at = (size_t)(bar - marked);
    snprintf(code, sizeof code, "%.*s%s", (int)at, marked, bar + 1);
    json_t *r = kl_complete_with(code, kl_utf8_byte_to_cp(code, at), reg, &FAKE);
    cr_assert_not_null(r);
    return r;
}

static void expect_matches(const char *marked, const char *want) {
    json_t *r = at_bar(marked);
    json_t *w = json_loads(want, 0, NULL);
    cr_assert_not_null(w, "bad expectation %s", want);
    char *got = json_dumps(json_object_get(r, "matches"), JSON_COMPACT);
    cr_expect(json_equal(json_object_get(r, "matches"), w), "%s: got %s, want %s", marked, got,
              want);
    free(got);
    json_decref(w);
    json_decref(r);
}

Test(catalog, tables_after_from) {
    expect_matches("SELECT * FROM |",
                   "[\"orders\",\"people\",\"people_v\",\"`weird name`\",\"default\",\"`my db`\","
                   "\"sales\"]");
    expect_matches("SELECT * FROM pe|", "[\"people\",\"people_v\"]");
    expect_matches("select * from people p join or|", "[\"orders\"]");
    expect_matches("SELECT * FROM people, or|", "[\"orders\"]");
    expect_matches("INSERT INTO pe|", "[\"people\",\"people_v\"]");
    expect_matches("UPDATE or|", "[\"orders\"]");
    expect_matches("DESCRIBE TABLE EXTENDED peo|", "[\"people\",\"people_v\"]");
    expect_matches("TRUNCATE TABLE o|", "[\"orders\"]");
    /* a database prefix narrows to its tables */
    expect_matches("SELECT * FROM sales.|", "[\"customers\",\"orders2\"]");
    expect_matches("SELECT * FROM sales.c|", "[\"customers\"]");
    /* an open backtick keeps the name quoted */
    expect_matches("SELECT * FROM `peo|", "[\"`people`\",\"`people_v`\"]");
    expect_matches("SELECT * FROM `we|", "[\"`weird name`\"]");
}

Test(catalog, table_replaces_whole_word) {
    json_t *r = at_bar("SELECT * FROM pe|ople WHERE 1 = 1");
    expect_json(r, "matches", "[\"people\",\"people_v\"]");
    expect_json(r, "cursor_start", "14");
    expect_json(r, "cursor_end", "20");
    json_t *t = json_array_get(
        json_object_get(json_object_get(r, "metadata"), "_jupyter_types_experimental"), 1);
    cr_expect_str_eq(json_string_value(json_object_get(t, "type")), "view");
    cr_expect_str_eq(json_string_value(json_object_get(t, "text")), "people_v");
    json_decref(r);

    r = at_bar("SELECT * FROM `pe|");
    expect_json(r, "cursor_start", "14");
    expect_json(r, "cursor_end", "17");
    json_decref(r);
}

Test(catalog, columns_after_alias) {
    expect_matches("SELECT t.| FROM people t", "[\"age\",\"id\",\"name\"]");
    expect_matches("SELECT t.n| FROM people AS t", "[\"name\"]");
    expect_matches("SELECT p.na FROM people p JOIN orders o ON p.id = o.|",
                   "[\"id\",\"person_id\",\"total\"]");
    /* the table's own name, and a database-qualified table */
    expect_matches("SELECT people.a| FROM people", "[\"age\"]");
    expect_matches("SELECT c.| FROM sales.customers c", "[\"cid\",\"cname\"]");
    expect_matches("SELECT sales.customers.| FROM sales.customers", "[\"cid\",\"cname\"]");
    /* not in FROM: a table of the current database, or a database's tables */
    expect_matches("SELECT orders.t|", "[\"total\"]");
    expect_matches("SELECT sales.o|", "[\"orders2\"]");
    /* a name that needs quoting */
    expect_matches("SELECT w.| FROM `weird name` w", "[\"`a b`\"]");
}

Test(catalog, columns_in_select) {
    /* FROM after the cursor still names the tables */
    expect_matches("SELECT na| FROM people", "[\"name\",\"namespace\",\"namespaces\",\"natural\"]");
    expect_matches("SELECT * FROM people WHERE |", "[\"age\",\"id\",\"name\"]");
    expect_matches("SELECT * FROM people p JOIN orders o ON |",
                   "[\"age\",\"id\",\"name\",\"person_id\",\"total\"]");
    expect_matches("SELECT count(|) FROM orders", "[\"id\",\"person_id\",\"total\"]");
    /* functions take the typed case; operators are never offered */
    expect_matches(
        "SELECT CO|",
        "[\"COALESCE\",\"CONCAT\",\"CONCAT_WS\",\"COUNT\",\"CODEGEN\",\"COLLATE\",\"COLLECTION\","
        "\"COLUMN\",\"COLUMNS\",\"COMMENT\",\"COMMIT\",\"COMPACT\",\"COMPACTIONS\","
        "\"COMPUTE\",\"CONCATENATE\",\"CONSTRAINT\",\"COST\"]");
    expect_matches("select concat|", "[\"concat\",\"concat_ws\",\"concatenate\"]");
    /* after a finished term come keywords (UNION), not functions or columns */
    expect_matches("SELECT 1 uni| FROM people", "[\"union\",\"unique\"]");
    expect_matches("SELECT * FROM people WHERE age IS nu|", "[\"null\",\"nulls\",\"numeric\"]");
    /* EXTRACT(... FROM x) names no table */
    expect_matches("SELECT extract(YEAR FROM |", "[]");
}

Test(catalog, databases_and_functions) {
    expect_matches("USE |", "[\"default\",\"`my db`\",\"sales\"]");
    expect_matches("SHOW TABLES IN s|", "[\"sales\"]");
    expect_matches("SHOW VIEWS FROM d|", "[\"default\"]");
    expect_matches("DROP DATABASE IF EXISTS s|", "[\"sales\"]");
    expect_matches("DROP VIEW IF EXISTS people|", "[\"people\",\"people_v\"]");
    expect_matches("DESCRIBE DATABASE s|", "[\"sales\"]");
    expect_matches("DESCRIBE FUNCTION con|", "[\"concat\",\"concat_ws\"]");
    /* DESCRIBE offers keywords too */
    expect_matches("DESCRIBE FU|", "[\"FULL\",\"FUNCTION\",\"FUNCTIONS\"]");
}

Test(catalog, statement_boundaries) {
    expect_matches("SELECT 1; SELECT * FROM o|", "[\"orders\"]");
    expect_matches("SELECT * FROM o|; SELECT 2", "[\"orders\"]");
    /* the first word of a statement is a keyword, whatever came before */
    expect_matches("SELECT 1; sel|", "[\"select\"]");
    expect_matches("SELECT 1\n%lsmagic\nSELECT * FROM pe|", "[\"people\",\"people_v\"]");
}

Test(catalog, nothing_in_strings_and_comments) {
    expect_matches("SELECT 'FROM pe|", "[]");
    expect_matches("SELECT * FROM people -- FROM pe|", "[]");
    expect_matches("SELECT /* FROM pe| */ 1", "[]");
    expect_matches("SELECT \"x FROM pe|\" AS y", "[]");
    expect_matches("SELECT 1.|", "[]");
    /* after a closed string the statement goes on */
    expect_matches("SELECT 'x' FROM pe|", "[\"people\",\"people_v\"]");
}

Test(catalog, magic_options_and_values) {
    expect_matches("%%sql --|", "[\"--limit\",\"--output\",\"--param\"]");
    expect_matches("%%sql --limit 5 --o|", "[\"--output\"]");
    expect_matches("%%sql --output |", "[\"csv\",\"html\",\"json\",\"table\"]");
    expect_matches("%%dataframe --output h|", "[\"html\"]");
    expect_matches("%explain |", "[\"codegen\",\"cost\",\"extended\",\"formatted\",\"simple\"]");
    /* modes first; the keywords a query may start with too (a mode is not repeated) */
    expect_matches("%explain c|",
                   "[\"codegen\",\"cost\",\"cache\",\"cascade\",\"case\",\"cast\","
                   "\"catalog\",\"catalogs\",\"change\",\"char\",\"character\",\"check\","
                   "\"clear\",\"cluster\",\"clustered\",\"collate\","
                   "\"collection\",\"column\",\"columns\",\"comment\",\"commit\","
                   "\"compact\",\"compactions\",\"compute\",\"concatenate\","
                   "\"constraint\",\"create\",\"cross\",\"cube\","
                   "\"current\",\"current_date\",\"current_time\","
                   "\"current_timestamp\",\"current_user\"]");
    expect_matches("%explain formatted SELECT * FROM pe|", "[\"people\",\"people_v\"]");
    expect_matches("%explain SELECT o.| FROM orders o", "[\"id\",\"person_id\",\"total\"]");
    expect_matches("%truncation o|", "[\"off\",\"on\"]");
    expect_matches("%truncation on |", "[]");
    expect_matches("%help ls|", "[\"lsmagic\"]");
    expect_matches("%help %%ht|", "[\"html\"]");
    /* magics without a spec, or unknown ones, offer nothing after their name */
    expect_matches("%lsmagic |", "[]");
    expect_matches("%nosuch --|", "[]");
}

Test(catalog, magic_sql_arguments) {
    expect_matches("%describe |", "[\"orders\",\"people\",\"people_v\",\"`weird name`\","
                                  "\"default\",\"`my db`\",\"sales\"]");
    expect_matches("%describe sales.c|", "[\"customers\"]");
    expect_matches("%schema pe|", "[\"people\",\"people_v\",\"percent\"]");
    expect_matches("%schema SELECT t.| FROM people t", "[\"age\",\"id\",\"name\"]");
    expect_matches("%tables s|", "[\"sales\"]");
    expect_matches("%tables sales |", "[]");
    expect_matches("%time SELECT * FROM o|", "[\"orders\"]");
}

Test(catalog, cell_magic_bodies) {
    expect_matches("%%sql --limit 3\nSELECT * FROM pe|", "[\"people\",\"people_v\"]");
    expect_matches("%%time\nSELECT * FROM pe|", "[\"people\",\"people_v\"]");
    expect_matches("%%html\n<b>SEL|", "[]");
    expect_matches("\n  %%sql\nsel|", "[\"select\"]");
}

Test(catalog, prefetch_before_waiting) {
    json_t *r = at_bar("SELECT co| FROM people p JOIN sales.customers c");
    json_decref(r);
    cr_assert_eq(ncalls, 6);
    cr_expect_str_eq(calls[0], "p:functions/-/-");
    cr_expect_str_eq(calls[1], "p:columns/-/people");
    cr_expect_str_eq(calls[2], "p:columns/sales/customers");
    cr_expect_str_eq(calls[3], "w:functions/-/-");
    cr_expect_str_eq(calls[5], "w:columns/sales/customers");
}

Test(catalog, code_point_offsets) {
    /* "é" and "😀" are one code point each */
    json_t *r = at_bar("SELECT 'é😀' AS x, p.na| FROM people p");
    expect_json(r, "matches", "[\"name\"]");
    expect_json(r, "cursor_start", "20");
    expect_json(r, "cursor_end", "22");
    json_decref(r);
}

static void expect_ctx(const char *marked, const char *want_queries, bool keywords) {
    char code[512];
    const char *bar = strchr(marked, '|');
    size_t at = (size_t)(bar - marked);
    snprintf(code, sizeof code, "%.*s%s", (int)at, marked, bar + 1);
    kl_complete_ctx ctx;
    cr_assert_eq(kl_complete_analyze(code, at, reg, &ctx), 0);
    char got[512] = "";
    static const char *const kinds[] = {"databases", "tables", "columns", "functions"};
    for (size_t i = 0; i < ctx.nqueries; i++) {
        size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "%s%s(%s.%s)", i ? " " : "", kinds[ctx.queries[i].kind],
                 ctx.queries[i].db ? ctx.queries[i].db : "",
                 ctx.queries[i].table ? ctx.queries[i].table : "");
    }
    cr_expect_str_eq(got, want_queries, "%s", marked);
    cr_expect_eq(ctx.keywords, keywords, "%s: keywords", marked);
    kl_complete_ctx_clear(&ctx);
}

Test(catalog, analysis) {
    expect_ctx("SEL|", "", true);
    expect_ctx("SELECT * FROM |", "tables(.) databases(.)", false);
    expect_ctx("SELECT x.| FROM db1.t1 AS x", "columns(db1.t1)", false);
    expect_ctx("SELECT x.| FROM t1", "columns(.x) tables(x.)", false);
    expect_ctx("SELECT `my t`.| FROM `my db`.`my t`", "columns(my db.my t)", false);
    expect_ctx("SELECT a| FROM t1, t2 JOIN db.t3 ON 1=1",
               "functions(.) columns(.t1) columns(.t2) columns(db.t3)", true);
    expect_ctx("SELECT a| FROM (SELECT 1) s", "functions(.)", true);
    expect_ctx("SELECT a| FROM range(10)", "functions(.)", true);
    expect_ctx("SELECT * FROM t1 |", "", true);
    expect_ctx("SELECT * FROM t1 WH|", "", true);
    expect_ctx("SHOW COLUMNS IN |", "tables(.) databases(.)", false);
    expect_ctx("DESCRIBE FUNCTION |", "functions(.)", false);
    expect_ctx("SELECT 1 + |", "", false);
}
