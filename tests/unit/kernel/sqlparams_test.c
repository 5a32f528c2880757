/* Parameterised statements of the kindling.sql comm: marker scanning, and every JSON and msgpack
 * value bound as the typed Spark Connect literal docs/comm.md promises (checked on the wire: the
 * relation is packed and decoded again). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/sqlparams.h"

static kl_sqlstmt parse_ok(const char *sql) {
    kl_sqlstmt s;
    char err[256] = "";
    int rc = kl_sqlstmt_parse(sql, strlen(sql), &s, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", sql, err);
    return s;
}

static void parse_fails(const char *sql, const char *needle) {
    kl_sqlstmt s;
    char err[256] = "";
    cr_assert_neq(kl_sqlstmt_parse(sql, strlen(sql), &s, err, sizeof err), 0, "%s", sql);
    cr_expect(strstr(err, needle), "\"%s\" not in \"%s\"", needle, err);
}

Test(sqlstmt, finds_named_markers_outside_quotes_and_comments) {
    kl_sqlstmt s = parse_ok("  SELECT :id, ':nope', \":nope2\", `:nope3`, x::int, -- :c1\n"
                            " /* :c2 /* :c3 */ :c4 */ :b_2 + :id FROM t WHERE y = :`odd name`;  ");
    cr_expect_str_eq(s.text, "SELECT :id, ':nope', \":nope2\", `:nope3`, x::int, -- :c1\n"
                             " /* :c2 /* :c3 */ :c4 */ :b_2 + :id FROM t WHERE y = :`odd name`");
    cr_assert_eq(s.n_names, 3);
    cr_expect_str_eq(s.names[0], "id");
    cr_expect_str_eq(s.names[1], "b_2");
    cr_expect_str_eq(s.names[2], "odd name");
    cr_expect_eq(s.n_positional, 0);
    kl_sqlstmt_free(&s);

    s = parse_ok("SELECT ? + ?, '?', 'it\\'s ?' FROM t");
    cr_expect_eq(s.n_positional, 2);
    cr_expect_eq(s.n_names, 0);
    kl_sqlstmt_free(&s);

    s = parse_ok("SELECT 1");
    cr_expect_eq(s.n_positional + s.n_names, 0);
    kl_sqlstmt_free(&s);
}

Test(sqlstmt, refuses_what_a_comm_cannot_run) {
    parse_fails("", "empty");
    parse_fails("  -- only a comment\n", "empty");
    parse_fails("SELECT 1; SELECT 2", "several statements");
    parse_fails("SELECT :a, ?", "mixes");
}

/* Packs the bound relation and decodes it again, as the server would. */
static Spark__Connect__Relation *wire(kl_sqlbind *b) {
    Spark__Connect__Relation *rel = kl_sqlbind_relation(b);
    size_t n = spark__connect__relation__get_packed_size(rel);
    uint8_t *buf = malloc(n);
    spark__connect__relation__pack(rel, buf);
    Spark__Connect__Relation *back = spark__connect__relation__unpack(NULL, n, buf);
    free(buf);
    cr_assert_not_null(back);
    cr_assert_eq(back->rel_type_case, SPARK__CONNECT__RELATION__REL_TYPE_SQL);
    return back;
}

/* The 4.0 literal of a named argument, checked to equal the pre-4.0 copy in args. */
static const Spark__Connect__Expression__Literal *named(const Spark__Connect__Relation *rel,
                                                        const char *key) {
    const Spark__Connect__SQL *sql = rel->sql;
    cr_assert_eq(sql->n_named_arguments, sql->n_args);
    const Spark__Connect__Expression__Literal *lit = NULL, *old = NULL;
    for (size_t i = 0; i < sql->n_named_arguments; i++) {
        if (strcmp(sql->named_arguments[i]->key, key) == 0) {
            cr_assert_eq(sql->named_arguments[i]->value->expr_type_case,
                         SPARK__CONNECT__EXPRESSION__EXPR_TYPE_LITERAL);
            lit = sql->named_arguments[i]->value->literal;
        }
        if (strcmp(sql->args[i]->key, key) == 0) old = sql->args[i]->value;
    }
    cr_assert_not_null(lit, "no named argument %s", key);
    cr_assert_not_null(old, "no args entry %s", key);
    cr_expect_eq(old->literal_type_case, lit->literal_type_case);
    return lit;
}

static kl_sqlbind *bind_json_ok(const kl_sqlstmt *s, const char *params_json) {
    json_t *p = json_loads(params_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    cr_assert_not_null(p, "%s", params_json);
    kl_sqlbind *b;
    char err[256] = "";
    cr_assert_eq(kl_sqlbind_json(s, p, &b, err, sizeof err), KL_SQLBIND_OK, "%s", err);
    json_decref(p);
    return b;
}

static void bind_json_fails(const kl_sqlstmt *s, const char *params_json, kl_sqlbind_rc want,
                            const char *needle) {
    json_t *p = json_loads(params_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    cr_assert_not_null(p, "%s", params_json);
    kl_sqlbind *b = (kl_sqlbind *)1;
    char err[256] = "";
    cr_expect_eq(kl_sqlbind_json(s, p, &b, err, sizeof err), want, "%s", params_json);
    cr_expect_null(b);
    cr_expect(strstr(err, needle), "\"%s\" not in \"%s\"", needle, err);
    json_decref(p);
}

Test(sqlbind, json_values_become_typed_literals) {
    kl_sqlstmt s = parse_ok("SELECT :i, :f, :s, :t, :n, :u");
    kl_sqlbind *b =
        bind_json_ok(&s, "{\"i\": -9007199254740993, \"f\": 0.1, \"s\": \"h\\u00e9 'x'\", "
                         "\"t\": true, \"n\": null, \"u\": 42}");
    Spark__Connect__Relation *r = wire(b);
    cr_expect_str_eq(r->sql->query, "SELECT :i, :f, :s, :t, :n, :u");
    const Spark__Connect__Expression__Literal *l = named(r, "i");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_LONG);
    cr_expect_eq(l->long_, -9007199254740993LL);
    l = named(r, "f");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_DOUBLE);
    cr_expect_eq(l->double_, 0.1);
    l = named(r, "s");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_STRING);
    cr_expect_str_eq(l->string, "h\xc3\xa9 'x'"); /* quotes travel as data, never as SQL */
    l = named(r, "t");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_BOOLEAN);
    cr_expect(l->boolean);
    l = named(r, "n");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_NULL);
    cr_assert_not_null(l->null);
    cr_expect_eq(l->null->kind_case, SPARK__CONNECT__DATA_TYPE__KIND_NULL);
    cr_expect_eq(named(r, "u")->long_, 42);
    cr_expect_eq(r->sql->n_pos_arguments + r->sql->n_pos_args, 0);
    spark__connect__relation__free_unpacked(r, NULL);
    kl_sqlbind_free(b);
    kl_sqlstmt_free(&s);
}

Test(sqlbind, json_positional_values) {
    kl_sqlstmt s = parse_ok("SELECT ? + ?, ?");
    kl_sqlbind *b = bind_json_ok(&s, "[1, 2.5, \"x\"]");
    Spark__Connect__Relation *r = wire(b);
    cr_assert_eq(r->sql->n_pos_arguments, 3);
    cr_assert_eq(r->sql->n_pos_args, 3);
    cr_expect_eq(r->sql->pos_arguments[0]->literal->long_, 1);
    cr_expect_eq(r->sql->pos_arguments[1]->literal->double_, 2.5);
    cr_expect_str_eq(r->sql->pos_arguments[2]->literal->string, "x");
    cr_expect_str_eq(r->sql->pos_args[2]->string, "x");
    cr_expect_eq(r->sql->n_named_arguments, 0);
    spark__connect__relation__free_unpacked(r, NULL);
    kl_sqlbind_free(b);
    kl_sqlstmt_free(&s);
}

Test(sqlbind, json_refusals_name_the_problem) {
    kl_sqlstmt s = parse_ok("SELECT :a, :b");
    bind_json_fails(&s, "{\"a\": 1}", KL_SQLBIND_UNBOUND, ":b");
    bind_json_fails(&s, "null", KL_SQLBIND_UNBOUND, ":a");
    bind_json_fails(&s, "{\"a\": 1, \"b\": [1]}", KL_SQLBIND_INVALID, "parameter :b: list");
    bind_json_fails(&s, "{\"a\": {}, \"b\": 1}", KL_SQLBIND_INVALID, "parameter :a: object");
    bind_json_fails(&s, "[1, 2]", KL_SQLBIND_INVALID, "named markers (:a)");
    bind_json_fails(&s, "\"a=1\"", KL_SQLBIND_INVALID, "must be an object");
    bind_json_fails(&s, "{\"a\": \"x\\u0000y\", \"b\": 1}", KL_SQLBIND_INVALID, "NUL");
    kl_sqlstmt_free(&s);
    s = parse_ok("SELECT ?, ?");
    bind_json_fails(&s, "[1]", KL_SQLBIND_UNBOUND, "2 positional parameters");
    bind_json_fails(&s, "[1, 2, 3]", KL_SQLBIND_INVALID, "holds 3 values");
    bind_json_fails(&s, "{\"a\": 1}", KL_SQLBIND_INVALID, "positional markers");
    kl_sqlstmt_free(&s);
    /* No markers: extra values are Spark's to judge, nothing is missing. */
    s = parse_ok("SELECT 1");
    kl_sqlbind *b = bind_json_ok(&s, "{}");
    kl_sqlbind_free(b);
    kl_sqlstmt_free(&s);
}

/* ---- msgpack ---- */

typedef struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp;

static void mp_init(mp *m) {
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_key(mp *m, const char *k) {
    msgpack_pack_str_with_body(&m->pk, k, strlen(k));
}

static kl_sqlbind *bind_mp(const kl_sqlstmt *s, mp *m, kl_sqlbind_rc want, char *err) {
    kl_sqlbind *b = NULL;
    kl_sqlbind_rc rc = kl_sqlbind_msgpack(s, m->sb.data, m->sb.size, &b, err, 256);
    cr_assert_eq(rc, want, "%s", err);
    msgpack_sbuffer_destroy(&m->sb);
    return b;
}

Test(sqlbind, msgpack_values_become_typed_literals) {
    kl_sqlstmt s = parse_ok("SELECT :i, :neg, :big, :f32, :f64, :s, :bin, :t, :nil, :ts, :tsneg");
    mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 11);
    mp_key(&m, "i");
    msgpack_pack_uint64(&m.pk, 7);
    mp_key(&m, "neg");
    msgpack_pack_int64(&m.pk, INT64_MIN);
    mp_key(&m, "big");
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    mp_key(&m, "f32");
    msgpack_pack_float(&m.pk, 1.5f);
    mp_key(&m, "f64");
    msgpack_pack_double(&m.pk, -0.25);
    mp_key(&m, "s");
    msgpack_pack_str_with_body(&m.pk, "\xe4\xb8\xad", 3);
    mp_key(&m, "bin");
    msgpack_pack_bin_with_body(&m.pk, "\x00\xff\x00", 3);
    mp_key(&m, "t");
    msgpack_pack_false(&m.pk);
    mp_key(&m, "nil");
    msgpack_pack_nil(&m.pk);
    mp_key(&m, "ts");
    msgpack_timestamp ts = {.tv_sec = 1710064799, .tv_nsec = 500000999}; /* ns beyond us: cut */
    msgpack_pack_timestamp(&m.pk, &ts);
    mp_key(&m, "tsneg");
    msgpack_timestamp neg = {.tv_sec = -1, .tv_nsec = 500000000}; /* 1969-12-31T23:59:59.5Z */
    msgpack_pack_timestamp(&m.pk, &neg);
    char err[256] = "";
    kl_sqlbind *b = bind_mp(&s, &m, KL_SQLBIND_OK, err);
    Spark__Connect__Relation *r = wire(b);
    cr_expect_eq(named(r, "i")->long_, 7);
    cr_expect_eq(named(r, "neg")->long_, INT64_MIN);
    const Spark__Connect__Expression__Literal *l = named(r, "big");
    cr_assert_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_DECIMAL);
    cr_expect_str_eq(l->decimal->value, "18446744073709551615");
    cr_expect_eq(l->decimal->precision, 20);
    cr_expect_eq(l->decimal->scale, 0);
    l = named(r, "f32");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_FLOAT);
    cr_expect_eq(l->float_, 1.5f);
    l = named(r, "f64");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_DOUBLE);
    cr_expect_eq(l->double_, -0.25);
    cr_expect_str_eq(named(r, "s")->string, "\xe4\xb8\xad");
    l = named(r, "bin");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_BINARY);
    cr_assert_eq(l->binary.len, 3);
    cr_expect_eq(memcmp(l->binary.data, "\x00\xff\x00", 3), 0);
    l = named(r, "t");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_BOOLEAN);
    cr_expect_not(l->boolean);
    cr_expect_eq(named(r, "nil")->literal_type_case,
                 SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_NULL);
    l = named(r, "ts");
    cr_expect_eq(l->literal_type_case, SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_TIMESTAMP);
    cr_expect_eq(l->timestamp, 1710064799500000LL);
    cr_expect_eq(named(r, "tsneg")->timestamp, -500000);
    spark__connect__relation__free_unpacked(r, NULL);
    kl_sqlbind_free(b);

    /* positional, from an array */
    kl_sqlstmt p = parse_ok("SELECT ?, ?");
    mp_init(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int(&m.pk, -3);
    msgpack_pack_str_with_body(&m.pk, "x", 1);
    b = bind_mp(&p, &m, KL_SQLBIND_OK, err);
    r = wire(b);
    cr_assert_eq(r->sql->n_pos_arguments, 2);
    cr_expect_eq(r->sql->pos_arguments[0]->literal->long_, -3);
    cr_expect_str_eq(r->sql->pos_args[1]->string, "x");
    spark__connect__relation__free_unpacked(r, NULL);
    kl_sqlbind_free(b);
    kl_sqlstmt_free(&p);
    kl_sqlstmt_free(&s);
}

Test(sqlbind, msgpack_refusals_name_the_problem) {
    kl_sqlstmt s = parse_ok("SELECT :a");
    char err[256];
    mp m;
    /* not msgpack at all / cut short / trailing bytes */
    kl_sqlbind *b = NULL;
    cr_expect_eq(kl_sqlbind_msgpack(&s, "\xc1", 1, &b, err, sizeof err), KL_SQLBIND_INVALID);
    cr_expect(strstr(err, "not valid msgpack"), "%s", err);
    cr_expect_eq(kl_sqlbind_msgpack(&s,
                                    "\x81\xa1"
                                    "a",
                                    3, &b, err, sizeof err),
                 KL_SQLBIND_INVALID);
    cr_expect(strstr(err, "cut short"), "%s", err);
    cr_expect_eq(kl_sqlbind_msgpack(&s,
                                    "\x81\xa1"
                                    "a\x01\x02",
                                    5, &b, err, sizeof err),
                 KL_SQLBIND_INVALID);
    cr_expect(strstr(err, "after its first value"), "%s", err);
    cr_expect_null(b);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_key(&m, "a");
    msgpack_pack_str_with_body(&m.pk, "\xff\xfe", 2);
    bind_mp(&s, &m, KL_SQLBIND_INVALID, err);
    cr_expect(strstr(err, "not valid UTF-8"), "%s", err);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_key(&m, "a");
    msgpack_pack_ext_with_body(&m.pk, "\x01", 1, 5);
    bind_mp(&s, &m, KL_SQLBIND_INVALID, err);
    cr_expect(strstr(err, "ext type 5"), "%s", err);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_key(&m, "a");
    msgpack_pack_array(&m.pk, 0);
    bind_mp(&s, &m, KL_SQLBIND_INVALID, err);
    cr_expect(strstr(err, "msgpack array values cannot be bound"), "%s", err);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    msgpack_pack_int(&m.pk, 1);
    msgpack_pack_int(&m.pk, 1);
    bind_mp(&s, &m, KL_SQLBIND_INVALID, err);
    cr_expect(strstr(err, "names must be msgpack strings"), "%s", err);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_key(&m, "b");
    msgpack_pack_int(&m.pk, 1);
    bind_mp(&s, &m, KL_SQLBIND_UNBOUND, err);
    cr_expect(strstr(err, ":a"), "%s", err);

    mp_init(&m);
    msgpack_pack_int(&m.pk, 1);
    bind_mp(&s, &m, KL_SQLBIND_INVALID, err);
    cr_expect(strstr(err, "must hold a map"), "%s", err);

    /* a deep document is refused, not a crash */
    size_t depth = 100000;
    char *deep = malloc(depth + 1);
    memset(deep, 0x91, depth); /* fixarray of 1, nested */
    deep[depth] = (char)0xc0;
    cr_expect_eq(kl_sqlbind_msgpack(&s, deep, depth + 1, &b, err, sizeof err), KL_SQLBIND_INVALID);
    free(deep);
    kl_sqlstmt_free(&s);
}
