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
