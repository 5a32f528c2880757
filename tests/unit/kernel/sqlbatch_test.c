/* Batching of kindling.sql calls: which statements are batched, the rewritten statement (markers
 * outside quotes and comments become columns of the inline table), the batched relation, and the
 * split of a batched result into one answer per call, in JSON and in msgpack. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/sqlbatch.h"

static kl_sqlstmt parse_ok(const char *sql) {
    kl_sqlstmt s;
    char err[256] = "";
    cr_assert_eq(kl_sqlstmt_parse(sql, strlen(sql), &s, err, sizeof err), 0, "%s: %s", sql, err);
    return s;
}

static void expect_batched(const char *sql, const char *inner) {
    kl_sqlstmt s = parse_ok(sql);
    kl_sqlbatch b;
    cr_assert_eq(kl_sqlbatch_prepare(&s, &b), 0);
    cr_assert(b.ok, "%s: not batched: %s", sql, b.why);
    cr_expect_str_eq(b.inner, inner);
    kl_sqlbatch_free(&b);
    kl_sqlstmt_free(&s);
}

static void expect_not_batched(const char *sql, const char *why) {
    kl_sqlstmt s = parse_ok(sql);
    kl_sqlbatch b;
    cr_assert_eq(kl_sqlbatch_prepare(&s, &b), 0);
    cr_expect(!b.ok, "%s was batched", sql);
    cr_expect(b.why && strstr(b.why, why), "%s: \"%s\" not in \"%s\"", sql, why, b.why);
    cr_expect_null(b.inner);
    kl_sqlbatch_free(&b);
    kl_sqlstmt_free(&s);
}

Test(sqlbatch, markers_become_columns_outside_quotes_and_comments) {
    expect_batched("SELECT :id, ':id', \":id\", `:id`, x::int, -- :c\n :`odd name` /* :d */ "
                   "FROM t WHERE y = :id",
                   "SELECT __kl_p.__kl_v0, ':id', \":id\", `:id`, x::int, -- :c\n "
                   "__kl_p.__kl_v1 /* :d */ FROM t WHERE y = __kl_p.__kl_v0");
    expect_batched("SELECT ? + ?, '?', 'it\\'s ?' FROM t WHERE a=?",
                   "SELECT __kl_p.__kl_v0 + __kl_p.__kl_v1, '?', 'it\\'s ?' FROM t WHERE "
                   "a=__kl_p.__kl_v2");
    expect_batched("WITH c AS (SELECT 1 AS x) SELECT x FROM c WHERE x = :x",
                   "WITH c AS (SELECT 1 AS x) SELECT x FROM c WHERE x = __kl_p.__kl_v0");
    /* The words that stop batching count only as words, not inside strings or names. */
    expect_batched("SELECT 'order by', `limit` FROM t GROUP BY g",
                   "SELECT 'order by', `limit` FROM t GROUP BY g");
    expect_batched("select 1 as one", "select 1 as one");
}

Test(sqlbatch, statements_that_are_never_batched) {
    expect_not_batched("SELECT id FROM t WHERE x = :x ORDER BY id", "ORDER BY");
    expect_not_batched("SELECT id FROM t LIMIT 3", "LIMIT");
    expect_not_batched("SELECT id FROM t OFFSET 3", "OFFSET");
    expect_not_batched("SELECT id FROM t TABLESAMPLE (10 PERCENT)", "TABLESAMPLE");
    expect_not_batched("SELECT id FROM t DISTRIBUTE BY id", "DISTRIBUTE");
    expect_not_batched("SELECT id FROM t CLUSTER BY id", "CLUSTER");
    expect_not_batched("SELECT id FROM t SORT BY id", "SORT");
    expect_not_batched("SET spark.sql.shuffle.partitions", "starts with SELECT or WITH");
    expect_not_batched("SHOW TABLES", "starts with SELECT or WITH");
    expect_not_batched("(SELECT 1)", "starts with SELECT or WITH");
    expect_not_batched("VALUES (:a)", "starts with SELECT or WITH");
    expect_not_batched("WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c", "only queries");
    expect_not_batched("SELECT __kl_i FROM t", "__kl_");
    expect_not_batched("SELECT `__KL_x` FROM t", "__kl_");
    expect_not_batched("SELECT 'a", "ends inside a quote");
}

static kl_sqlbind *bind_json(const kl_sqlstmt *s, const char *params) {
    json_error_t je;
    json_t *p = json_loads(params, 0, &je);
    cr_assert_not_null(p, "%s", params);
    kl_sqlbind *b = NULL;
    char err[256] = "";
    cr_assert_eq(kl_sqlbind_json(s, p, &b, err, sizeof err), KL_SQLBIND_OK, "%s", err);
    json_decref(p);
    return b;
}

Test(sqlbatch, relation_binds_every_call_as_positional_literals) {
    kl_sqlstmt s = parse_ok("SELECT :b AS b, :a AS a, :b + 1 AS c");
    kl_sqlbatch b;
    cr_assert_eq(kl_sqlbatch_prepare(&s, &b), 0);
    cr_assert(b.ok);
    cr_assert_eq(b.ncols, 2);
    /* Named values may come in any order and with extra keys; the last of a repeated key wins. */
    kl_sqlbind *binds[2] = {bind_json(&s, "{\"a\": 1, \"b\": \"x\", \"extra\": true}"),
                            bind_json(&s, "{\"b\": \"y\", \"a\": 2}")};
    kl_sqlbatch_rel *r = kl_sqlbatch_relation_new(&b, &s, binds, 2);
    cr_assert_not_null(r);
    Spark__Connect__Relation *rel = kl_sqlbatch_relation(r);
    cr_assert_eq(rel->rel_type_case, SPARK__CONNECT__RELATION__REL_TYPE_SQL);
    cr_expect_str_eq(rel->sql->query,
                     "SELECT __kl_p.__kl_i, __kl_q.* FROM VALUES (0, ?, ?), (1, ?, ?) AS "
                     "__kl_p(__kl_i, __kl_v0, __kl_v1) JOIN LATERAL (\nSELECT __kl_p.__kl_v0 AS "
                     "b, __kl_p.__kl_v1 AS a, __kl_p.__kl_v0 + 1 AS c\n) AS __kl_q");
    cr_assert_eq(rel->sql->n_pos_arguments, 4);
    cr_assert_eq(rel->sql->n_pos_args, 4);
    cr_assert_eq(rel->sql->n_named_arguments, 0);
    const Spark__Connect__Expression__Literal *l[4];
    for (int i = 0; i < 4; i++) {
        l[i] = rel->sql->pos_arguments[i]->literal;
        cr_expect_eq(rel->sql->pos_args[i], l[i]);
    }
    cr_expect_str_eq(l[0]->string, "x");
    cr_expect_eq(l[1]->long_, 1);
    cr_expect_str_eq(l[2]->string, "y");
    cr_expect_eq(l[3]->long_, 2);
    /* Packs as a valid message (what the wire carries). */
    size_t n = spark__connect__relation__get_packed_size(rel);
    uint8_t *buf = malloc(n);
    spark__connect__relation__pack(rel, buf);
    Spark__Connect__Relation *back = spark__connect__relation__unpack(NULL, n, buf);
    cr_assert_not_null(back);
    cr_expect_eq(back->sql->n_pos_arguments, 4);
    spark__connect__relation__free_unpacked(back, NULL);
    free(buf);
    kl_sqlbatch_relation_free(r);
    kl_sqlbind_free(binds[0]);
    kl_sqlbind_free(binds[1]);
    kl_sqlbatch_free(&b);
    kl_sqlstmt_free(&s);
}

Test(sqlbatch, only_calls_with_the_same_types_share_a_query) {
    kl_sqlstmt s = parse_ok("SELECT :x, :y");
    kl_sqlbind *a = bind_json(&s, "{\"x\": 1, \"y\": \"s\"}");
    kl_sqlbind *same = bind_json(&s, "{\"y\": \"t\", \"x\": -5}");
    kl_sqlbind *str = bind_json(&s, "{\"x\": \"1\", \"y\": \"s\"}");
    kl_sqlbind *real = bind_json(&s, "{\"x\": 1.0, \"y\": \"s\"}");
    kl_sqlbind *null = bind_json(&s, "{\"x\": 1, \"y\": null}");
    cr_expect(kl_sqlbatch_same_types(&s, a, same));
    cr_expect(!kl_sqlbatch_same_types(&s, a, str));
    cr_expect(!kl_sqlbatch_same_types(&s, a, real));
    cr_expect(!kl_sqlbatch_same_types(&s, a, null));
    cr_expect(kl_sqlbatch_same_types(&s, null, null));
    kl_sqlbind *all[] = {a, same, str, real, null};
    for (size_t i = 0; i < 5; i++) kl_sqlbind_free(all[i]);
    kl_sqlstmt_free(&s);
}

Test(sqlbatch, schema_must_lead_with_the_index_and_not_show_parameters) {
    kl_arrow_field f[2] = {{.name = "__kl_i", .name_len = 6, .type = KL_ARROW_INT},
                           {.name = "id", .name_len = 2, .type = KL_ARROW_INT}};
    kl_arrow_schema sch = {.n_fields = 2, .fields = f};
    cr_expect(kl_sqlbatch_schema_ok(&sch));
    f[1].name = "(outer(__kl_p.__kl_v0) + 1)";
    f[1].name_len = strlen(f[1].name);
    cr_expect(!kl_sqlbatch_schema_ok(&sch));
    f[1].name = "id";
    f[1].name_len = 2;
    f[0].type = KL_ARROW_UTF8;
    cr_expect(!kl_sqlbatch_schema_ok(&sch));
    cr_expect(!kl_sqlbatch_schema_ok(NULL));
}

Test(sqlbatch, json_rows_split_by_call_with_a_limit_each) {
    json_t *rows = json_loads("[[0, \"a\", 1], [1, \"b\", 2], [0, \"c\", 3], [2, \"d\", 4], "
                              "[0, \"e\", 5]]",
                              0, NULL);
    json_t *out[4];
    bool trunc[4];
    cr_assert_eq(kl_sqlbatch_split_json(rows, 4, 2, out, trunc), 0);
    char *s0 = json_dumps(out[0], JSON_COMPACT), *s1 = json_dumps(out[1], JSON_COMPACT);
    char *s2 = json_dumps(out[2], JSON_COMPACT), *s3 = json_dumps(out[3], JSON_COMPACT);
    cr_expect_str_eq(s0, "[[\"a\",1],[\"c\",3]]");
    cr_expect_str_eq(s1, "[[\"b\",2]]");
    cr_expect_str_eq(s2, "[[\"d\",4]]");
    cr_expect_str_eq(s3, "[]"); /* a call without rows still gets its (empty) answer */
    cr_expect(trunc[0] && !trunc[1] && !trunc[2] && !trunc[3]);
    free(s0);
    free(s1);
    free(s2);
    free(s3);
    for (int i = 0; i < 4; i++) json_decref(out[i]);
    /* An index outside the batch is refused, not written anywhere. */
    rows = json_loads("[[0, 1], [7, 2]]", 0, NULL);
    cr_expect_eq(kl_sqlbatch_split_json(rows, 2, -1, out, trunc), -EINVAL);
    cr_expect_null(out[0]);
}

/* msgpack of a batched result as kl_rows_msgpack writes it. */
static void pack_doc(msgpack_sbuffer *sb, int nrows, const int *index, const char *const *text) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "columns", 7);
    msgpack_pack_array(&pk, 3);
    const char *names[] = {"__kl_i", "s", "nested"};
    for (int c = 0; c < 3; c++) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "name", 4);
        msgpack_pack_str_with_body(&pk, names[c], strlen(names[c]));
        msgpack_pack_str_with_body(&pk, "type", 4);
        msgpack_pack_str_with_body(&pk, "string", 6);
    }
    msgpack_pack_str_with_body(&pk, "rows", 4);
    msgpack_pack_array(&pk, (size_t)nrows);
    for (int r = 0; r < nrows; r++) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_int32(&pk, index[r]);
        msgpack_pack_str_with_body(&pk, text[r], strlen(text[r]));
        /* A value with containers, binaries and an extension inside: skipped whole. */
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_bin_with_body(&pk, "\x00\xff", 2);
        msgpack_pack_double(&pk, 0.5);
        msgpack_pack_str_with_body(&pk, "t", 1);
        msgpack_pack_ext_with_body(&pk, "\x00\x00\x00\x01", 4, -1);
    }
    msgpack_pack_str_with_body(&pk, "truncated", 9);
    msgpack_pack_false(&pk);
}

Test(sqlbatch, msgpack_document_split_by_call) {
    char big[300];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    int index[] = {1, 0, 1, 1, 300};
    const char *text[] = {"b1", "a1", big, "b3", "far"};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_doc(&sb, 5, index, text);
    enum { N = 301 };
    kl_render_buf *out = calloc(N, sizeof *out);
    int64_t nrows[N];
    bool trunc[N];
    for (int i = 0; i < N; i++) kl_render_buf_init(&out[i]);
    cr_assert_eq(kl_sqlbatch_split_msgpack(sb.data, sb.size, N, 2, out, nrows, trunc), 0);
    cr_expect_eq(nrows[0], 1);
    cr_expect_eq(nrows[1], 2);
    cr_expect(trunc[1] && !trunc[0] && !trunc[300]);
    cr_expect_eq(nrows[2], 0);
    /* Each call's document decodes as {"columns": 2 columns, "rows": its rows, "truncated"}. */
    int want_calls[] = {0, 1, 2, 300};
    const char *want_first[] = {"a1", "b1", NULL, "far"};
    for (int k = 0; k < 4; k++) {
        int i = want_calls[k];
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        cr_assert_eq(msgpack_unpack_next(&u, out[i].data, out[i].len, &off),
                     MSGPACK_UNPACK_SUCCESS);
        cr_expect_eq(off, out[i].len);
        msgpack_object d = u.data;
        cr_assert_eq(d.type, MSGPACK_OBJECT_MAP);
        cr_assert_eq(d.via.map.size, 3);
        msgpack_object cols = d.via.map.ptr[0].val, rows = d.via.map.ptr[1].val;
        cr_assert_eq(cols.via.array.size, 2);
        msgpack_object name = cols.via.array.ptr[0].via.map.ptr[0].val;
        cr_expect_eq(name.via.str.size, 1);
        cr_expect_eq(name.via.str.ptr[0], 's');
        cr_assert_eq(rows.via.array.size, (uint32_t)nrows[i]);
        if (want_first[k]) {
            msgpack_object row = rows.via.array.ptr[0];
            cr_assert_eq(row.via.array.size, 2);
            cr_expect_eq(row.via.array.ptr[0].via.str.size, strlen(want_first[k]));
            cr_expect(memcmp(row.via.array.ptr[0].via.str.ptr, want_first[k],
                             strlen(want_first[k])) == 0);
            cr_expect_eq(row.via.array.ptr[1].type, MSGPACK_OBJECT_MAP);
        }
        cr_expect_eq(d.via.map.ptr[2].val.via.boolean, trunc[i]);
        msgpack_unpacked_destroy(&u);
    }
    for (int i = 0; i < N; i++) kl_render_buf_free(&out[i]);
    /* Cut short, or an index outside the batch: refused. */
    for (int i = 0; i < N; i++) kl_render_buf_init(&out[i]);
    cr_expect_eq(kl_sqlbatch_split_msgpack(sb.data, sb.size - 3, N, -1, out, nrows, trunc),
                 -EINVAL);
    for (int i = 0; i < N; i++) kl_render_buf_free(&out[i]);
    for (int i = 0; i < N; i++) kl_render_buf_init(&out[i]);
    cr_expect_eq(kl_sqlbatch_split_msgpack(sb.data, sb.size, 300, -1, out, nrows, trunc), -EINVAL);
    for (int i = 0; i < N; i++) kl_render_buf_free(&out[i]);
    free(out);
    msgpack_sbuffer_destroy(&sb);
}
