/* Tables with the Spark schema attached (kl_table_apply_spark_schema) against Spark itself: every
 * case in tests/data/spark_schema/cases.txt (interval fields, nested intervals, variants at every
 * level, a struct that only looks like a variant) is rendered as text/plain and must equal
 * Dataset.showString byte for byte; column type names must equal DataType.simpleString. Then the
 * behaviour around it: no schema, schema before or after the streams, several tables at once,
 * hints gone with their table. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/cell.h"
#include "render/render_data.h"
#include "render/text.h"
#include "spark/proto/kindling_spark_connect.pb-c.h"

#define SCHEMA_DATA KL_TEST_DATA "/spark_schema"

static Spark__Connect__DataType *read_schema(const char *name) {
    char path[512];
    size_t len;
    snprintf(path, sizeof path, "%s/%s.schema.pb", SCHEMA_DATA, name);
    char *pb = rd_read(path, &len);
    cr_assert_not_null(pb, "cannot read %s (run tests/data/gen_spark_schema.py)", path);
    Spark__Connect__DataType *dt =
        spark__connect__data_type__unpack(NULL, len, (const uint8_t *)pb);
    free(pb);
    cr_assert_not_null(dt, "%s does not parse", path);
    return dt;
}

static void add_streams(kl_table *t, const char *name, int streams) {
    for (int k = 0; k < streams; k++) {
        char path[512], err[KL_RENDER_ERRLEN];
        size_t len;
        snprintf(path, sizeof path, "%s/%s.%d.arrows", SCHEMA_DATA, name, k);
        char *data = rd_read(path, &len);
        cr_assert_not_null(data, "cannot read %s (run tests/data/gen_spark_schema.py)", path);
        cr_assert_eq(kl_table_add_ipc(t, data, len, err), 0, "%s: %s", path, err);
        free(data);
    }
}

/* The table of a case; the schema attached before the streams, after them, or not at all. */
typedef enum { SCHEMA_BEFORE, SCHEMA_AFTER, SCHEMA_NONE } when;

static kl_table *schema_table(const char *name, int streams, when w) {
    kl_table *t = kl_table_new(-1);
    cr_assert_not_null(t);
    Spark__Connect__DataType *dt = w == SCHEMA_NONE ? NULL : read_schema(name);
    if (w == SCHEMA_BEFORE) cr_assert_eq(kl_table_apply_spark_schema(t, dt), 0);
    add_streams(t, name, streams);
    if (w == SCHEMA_AFTER) cr_assert_eq(kl_table_apply_spark_schema(t, dt), 0);
    if (dt) spark__connect__data_type__free_unpacked(dt, NULL);
    return t;
}

static char *render(const kl_table *t, int64_t n, int32_t truncate) {
    kl_render_options o;
    kl_render_options_init(&o);
    o.max_rows = n;
    o.truncate = truncate;
    char *out, err[KL_RENDER_ERRLEN];
    size_t len;
    cr_assert_eq(kl_text_render(t, &o, &out, &len, err), 0, "render: %s", err);
    return out;
}

static char *expected_text(const char *name, int n, int tr) {
    char path[512];
    size_t len;
    snprintf(path, sizeof path, "%s/%s.n%d_t%d.txt", SCHEMA_DATA, name, n, tr);
    char *s = rd_read(path, &len);
    cr_assert_not_null(s, "%s", path);
    return s;
}

static int streams_of(const char *name) {
    size_t len;
    char *m = rd_read(SCHEMA_DATA "/cases.txt", &len);
    cr_assert_not_null(m, "run tests/data/gen_spark_schema.py");
    int found = 0;
    char *save = NULL;
    for (char *line = strtok_r(m, "\n", &save); line && !found;
         line = strtok_r(NULL, "\n", &save)) {
        char n[128];
        int s;
        if (sscanf(line, "%127s %d", n, &s) == 2 && strcmp(n, name) == 0) found = s;
    }
    free(m);
    cr_assert_gt(found, 0, "%s not in cases.txt", name);
    return found;
}

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

Test(schema, matches_spark_show_string) {
    size_t len;
    char *manifest = rd_read(SCHEMA_DATA "/cases.txt", &len);
    cr_assert_not_null(manifest, "run tests/data/gen_spark_schema.py");
    int compared = 0, failed = 0;
    char *save = NULL;
    for (char *line = strtok_r(manifest, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        int streams, n, tr;
        cr_assert_eq(sscanf(line, "%127s %d %d %d", name, &streams, &n, &tr), 4, "%s", line);
        char *expected = expected_text(name, n, tr);
        for (when w = SCHEMA_BEFORE; w <= SCHEMA_AFTER; w++) {
            kl_table *t = schema_table(name, streams, w);
            char *got = render(t, n, tr);
            if (strcmp(got, expected) != 0) {
                char msg[4096];
                first_difference(got, expected, msg, sizeof msg);
                cr_log_error("%s n=%d truncate=%d (schema %s) differs from Spark at %s", name, n,
                             tr, w == SCHEMA_BEFORE ? "first" : "last", msg);
                failed++;
            }
            compared++;
            free(got);
            kl_table_free(t);
        }
        free(expected);
    }
    free(manifest);
    cr_expect_geq(compared, 16, "only %d comparisons", compared);
    cr_expect_eq(failed, 0, "%d of %d renderings differ from Spark", failed, compared);
}

Test(schema, type_names_match_spark_simple_strings) {
    const char *cases[] = {"intervals_ym", "intervals_dt", "intervals_nested", "variants"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kl_table *t = schema_table(cases[c], streams_of(cases[c]), SCHEMA_BEFORE);
        char path[512];
        size_t len;
        snprintf(path, sizeof path, "%s/%s.types.txt", SCHEMA_DATA, cases[c]);
        char *types = rd_read(path, &len);
        cr_assert_not_null(types);
        const kl_arrow_schema *s = kl_table_schema(t);
        char *save = NULL, *line = strtok_r(types, "\n", &save);
        for (size_t i = 0; i < s->n_fields; i++, line = strtok_r(NULL, "\n", &save)) {
            cr_assert_not_null(line);
            kl_render_buf b;
            kl_render_buf_init(&b);
            kl_table_type_name(&b, &s->fields[i]);
            cr_expect_str_eq(b.data, line, "%s column %zu", cases[c], i);
            kl_render_buf_free(&b);
        }
        free(types);
        kl_table_free(t);
    }
}

/* Without a schema, intervals keep Arrow's full range and variant-shaped structs are variants. */
Test(schema, without_a_schema) {
    kl_table *t = schema_table("intervals_ym", streams_of("intervals_ym"), SCHEMA_NONE);
    char *got = render(t, 20, 0);
    cr_expect_not_null(strstr(got, "INTERVAL '1-2' YEAR TO MONTH"));
    cr_expect_null(strstr(got, "' YEAR\n"));
    cr_expect_null(strstr(got, "' MONTH |"));
    free(got);
    const kl_arrow_schema *s = kl_table_schema(t);
    kl_spark_hint h = kl_table_field_hint(&s->fields[0]);
    cr_expect_eq(h.kind, KL_SPARK_HINT_NONE);
    kl_table_free(t);

    t = schema_table("variants", streams_of("variants"), SCHEMA_NONE);
    got = render(t, 20, 0);
    cr_expect_not_null(strstr(got, "{\"a\":1,\"b\":[true,null]}"), "%s", got);
    /* the struct named like a variant is decoded as one when nothing says otherwise: its bytes
     * are no valid variant, so it falls back to the struct text */
    cr_expect_not_null(strstr(got, "{[01], [02]}"), "%s", got);
    free(got);
    kl_table_free(t);
}

/* Hints live exactly as long as their table: another table's fields never see them. */
Test(schema, hints_belong_to_their_table) {
    int streams = streams_of("intervals_dt");
    kl_table *a = schema_table("intervals_dt", streams, SCHEMA_BEFORE);
    kl_table *b = schema_table("intervals_dt", streams, SCHEMA_NONE);
    const kl_arrow_field *fa = &kl_table_schema(a)->fields[4]; /* interval hour */
    const kl_arrow_field *fb = &kl_table_schema(b)->fields[4];
    kl_spark_hint h = kl_table_field_hint(fa);
    cr_expect_eq(h.kind, KL_SPARK_HINT_DAY_TIME);
    cr_expect_eq(h.start, 1);
    cr_expect_eq(h.end, 1);
    cr_expect_eq(kl_table_field_hint(fb).kind, KL_SPARK_HINT_NONE);

    /* many tables at once keep their own hints (the map grows and shrinks under them) */
    kl_table *many[40];
    for (int i = 0; i < 40; i++) many[i] = schema_table("intervals_dt", streams, SCHEMA_AFTER);
    for (int i = 0; i < 40; i += 2) kl_table_free(many[i]);
    for (int i = 1; i < 40; i += 2) {
        const kl_arrow_schema *s = kl_table_schema(many[i]);
        for (size_t c = 0; c < s->n_fields; c++)
            cr_expect_eq(kl_table_field_hint(&s->fields[c]).kind, KL_SPARK_HINT_DAY_TIME);
        kl_table_free(many[i]);
    }
    cr_expect_eq(kl_table_field_hint(fa).kind, KL_SPARK_HINT_DAY_TIME);
    kl_table_free(a);
    kl_table_free(b);
}

/* A schema of another result changes nothing it cannot apply to; a non-struct is refused. */
Test(schema, mismatched_or_invalid_schema) {
    int streams = streams_of("intervals_dt");
    kl_table *t = kl_table_new(-1);
    add_streams(t, "intervals_dt", streams);
    Spark__Connect__DataType *other = read_schema("variants");
    cr_expect_eq(kl_table_apply_spark_schema(t, other), 0);
    spark__connect__data_type__free_unpacked(other, NULL);
    char *got = render(t, 20, 0);
    char *expected_full = strstr(got, "INTERVAL '1 02:03:04.5' DAY TO SECOND");
    cr_expect_not_null(expected_full, "%s", got);
    cr_expect_null(strstr(got, "' HOUR "), "%s", got);
    free(got);

    Spark__Connect__DataType leaf = SPARK__CONNECT__DATA_TYPE__INIT;
    cr_expect_eq(kl_table_apply_spark_schema(t, &leaf), -EINVAL);
    cr_expect_eq(kl_table_apply_spark_schema(t, NULL), -EINVAL);

    /* a second schema replaces the first */
    Spark__Connect__DataType *right = read_schema("intervals_dt");
    cr_expect_eq(kl_table_apply_spark_schema(t, right), 0);
    cr_expect_eq(kl_table_apply_spark_schema(t, right), 0);
    spark__connect__data_type__free_unpacked(right, NULL);
    got = render(t, 20, 0);
    cr_expect_not_null(strstr(got, "INTERVAL '26' HOUR"), "%s", got);
    free(got);
    kl_table_free(t);
}

/* Interval fields outside Spark's ranges in a schema are ignored (full form). */
Test(schema, out_of_range_fields) {
    int streams = streams_of("intervals_ym");
    kl_table *t = kl_table_new(-1);
    add_streams(t, "intervals_ym", streams);
    Spark__Connect__DataType__YearMonthInterval ym =
        SPARK__CONNECT__DATA_TYPE__YEAR_MONTH_INTERVAL__INIT;
    ym.has_start_field = ym.has_end_field = 1;
    ym.start_field = 1;
    ym.end_field = 0; /* start after end */
    Spark__Connect__DataType col = SPARK__CONNECT__DATA_TYPE__INIT;
    col.kind_case = SPARK__CONNECT__DATA_TYPE__KIND_YEAR_MONTH_INTERVAL;
    col.year_month_interval = &ym;
    Spark__Connect__DataType__StructField f = SPARK__CONNECT__DATA_TYPE__STRUCT_FIELD__INIT;
    f.name = "year";
    f.data_type = &col;
    Spark__Connect__DataType__StructField *fields[] = {&f};
    Spark__Connect__DataType__Struct st = SPARK__CONNECT__DATA_TYPE__STRUCT__INIT;
    st.n_fields = 1;
    st.fields = fields;
    Spark__Connect__DataType top = SPARK__CONNECT__DATA_TYPE__INIT;
    top.kind_case = SPARK__CONNECT__DATA_TYPE__KIND_STRUCT;
    top.struct_ = &st;
    cr_expect_eq(kl_table_apply_spark_schema(t, &top), 0);
    cr_expect_eq(kl_table_field_hint(&kl_table_schema(t)->fields[0]).kind, KL_SPARK_HINT_NONE);

    ym.start_field = ym.end_field = 1; /* MONTH */
    cr_expect_eq(kl_table_apply_spark_schema(t, &top), 0);
    kl_spark_hint h = kl_table_field_hint(&kl_table_schema(t)->fields[0]);
    cr_expect_eq(h.kind, KL_SPARK_HINT_YEAR_MONTH);
    cr_expect_eq(h.start, 1);
    kl_render_buf b;
    kl_render_buf_init(&b);
    kl_table_type_name(&b, &kl_table_schema(t)->fields[0]);
    cr_expect_str_eq(b.data, "interval month");
    kl_render_buf_free(&b);
    kl_table_free(t);
}
