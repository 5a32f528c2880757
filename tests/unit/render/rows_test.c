/* Typed rows for the kindling.sql comm, JSON side (the msgpack side is pinned in
 * tests/unit/kernel/sqlcomm_test.c, which links the msgpack reader): every Spark type as the JSON
 * value docs/comm.md promises, on streams a real Spark wrote. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_data.h"
#include "render/rows.h"

static json_t *rows_of(const char *name, int64_t max_rows, json_t **columns) {
    kl_table *t = rd_table(name, rd_streams(name), -1);
    kl_rows_options o = {.max_rows = max_rows};
    json_t *rows;
    char err[KL_RENDER_ERRLEN];
    cr_assert_eq(kl_rows_json(t, &o, &rows, err), 0, "%s", err);
    if (columns) *columns = kl_rows_columns(t);
    kl_table_free(t);
    /* It must serialise: jansson refuses NaN and ill-formed UTF-8. */
    char *s = json_dumps(rows, 0);
    cr_assert_not_null(s);
    free(s);
    return rows;
}

static json_t *at(json_t *rows, size_t r, size_t c) {
    json_t *v = json_array_get(json_array_get(rows, r), c);
    cr_assert_not_null(v, "no value at row %zu column %zu", r, c);
    return v;
}

static void expect_column(json_t *cols, size_t i, const char *name, const char *type) {
    json_t *c = json_array_get(cols, i);
    cr_assert_not_null(c);
    cr_expect_str_eq(json_string_value(json_object_get(c, "name")), name);
    cr_expect_str_eq(json_string_value(json_object_get(c, "type")), type, "%s", name);
}

Test(rows, primitives_keep_their_json_types) {
    json_t *cols;
    json_t *r = rows_of("primitives", -1, &cols);
    cr_assert_eq(json_array_size(r), 5);
    cr_expect_eq(json_array_size(cols), 12);
    expect_column(cols, 0, "b", "boolean");
    expect_column(cols, 4, "i64", "bigint");
    expect_column(cols, 7, "dec", "decimal(10,2)");
    expect_column(cols, 10, "bin", "binary");
    cr_expect(json_is_true(at(r, 0, 0)));
    cr_expect_eq(json_integer_value(at(r, 0, 1)), 1);
    cr_expect_eq(json_integer_value(at(r, 0, 3)), 3);
    /* Integers stay exact numbers at any magnitude (unlike the data-resource JSON for grids). */
    cr_expect(json_is_integer(at(r, 1, 4)));
    cr_expect_eq(json_integer_value(at(r, 1, 4)), INT64_MIN);
    cr_expect_eq(json_integer_value(at(r, 3, 4)), INT64_MAX);
    cr_expect_eq(json_real_value(at(r, 0, 5)), 1.5);
    cr_expect_eq(json_real_value(at(r, 0, 6)), 0.1);
    /* A float arrives with its own shortest digits, not the double's. */
    cr_expect_eq(json_real_value(at(r, 1, 5)), 3.4028235e38);
    /* Decimals as exact strings. */
    cr_expect_str_eq(json_string_value(at(r, 0, 7)), "123.45");
    cr_expect_str_eq(json_string_value(at(r, 1, 8)), "-1234567890123456789012345678.0123456789");
    cr_expect_str_eq(json_string_value(at(r, 0, 9)), "hello");
    /* Binary as base64. */
    cr_expect_str_eq(json_string_value(at(r, 0, 10)), "AQL/");
    cr_expect_str_eq(json_string_value(at(r, 1, 10)), "");
    cr_expect_str_eq(json_string_value(at(r, 4, 10)), "3q2+7wA=");
    cr_expect_str_eq(json_string_value(at(r, 0, 11)), "2024-02-29");
    for (size_t c = 0; c < 12; c++) cr_expect(json_is_null(at(r, 2, c)), "column %zu", c);
    cr_expect_str_eq(json_string_value(at(r, 4, 5)), "NaN");
    cr_expect_str_eq(json_string_value(at(r, 4, 6)), "-Infinity");
    json_decref(r);
    json_decref(cols);
}

Test(rows, temporal_values_are_iso_8601) {
    json_t *cols;
    json_t *r = rows_of("temporal", -1, &cols);
    expect_column(cols, 0, "ts", "timestamp");
    expect_column(cols, 1, "ntz", "timestamp_ntz");
    cr_expect_str_eq(json_string_value(at(r, 0, 0)), "2024-03-10T01:59:59.5-08:00");
    cr_expect_str_eq(json_string_value(at(r, 1, 0)), "2024-03-10T03:00:00-07:00");
    cr_expect_str_eq(json_string_value(at(r, 0, 1)), "2024-03-10T01:59:59.5");
    cr_expect_str_eq(json_string_value(at(r, 0, 2)), "2024-03-10");
    cr_expect(json_is_null(at(r, 8, 0)));
    json_decref(r);
    json_decref(cols);
    r = rows_of("intervals", -1, NULL);
    cr_expect_str_eq(json_string_value(at(r, 0, 0)), "INTERVAL '1-2' YEAR TO MONTH");
    cr_expect_str_eq(json_string_value(at(r, 0, 1)), "INTERVAL '1 02:03:04.5' DAY TO SECOND");
    json_decref(r);
}

Test(rows, nested_values_keep_their_shape) {
    json_t *cols;
    json_t *r = rows_of("nested", -1, &cols);
    expect_column(cols, 1, "m", "map<string,int>");
    json_t *arr = at(r, 1, 0);
    cr_assert(json_is_array(arr));
    cr_expect_eq(json_array_size(arr), 3);
    cr_expect(json_is_null(json_array_get(arr, 1)));
    /* string keys: an object */
    cr_expect_eq(json_integer_value(json_object_get(at(r, 0, 1), "b")), 2);
    cr_expect(json_is_null(json_object_get(at(r, 1, 1), "a")));
    json_t *st = at(r, 0, 2);
    cr_expect_eq(json_integer_value(json_object_get(st, "x")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(st, "y")), "x");
    /* int keys: [key, value] pairs, the key still a number */
    json_t *pairs = at(r, 0, 4);
    cr_assert(json_is_array(pairs));
    cr_assert_eq(json_array_size(pairs), 1);
    cr_expect_eq(json_integer_value(json_array_get(json_array_get(pairs, 0), 0)), 1);
    json_t *vals = json_array_get(json_array_get(pairs, 0), 1);
    cr_expect_eq(json_real_value(json_array_get(vals, 0)), 1.5);
    cr_expect(json_is_null(json_array_get(vals, 1)));
    cr_expect_str_eq(json_string_value(json_array_get(at(r, 0, 5), 1)), "Av8=");
    json_t *deep = json_object_get(json_object_get(at(r, 0, 6), "in"), "b");
    cr_expect_str_eq(json_string_value(deep), "2020-01-02");
    cr_expect(json_is_null(at(r, 2, 2)));
    /* NaN inside a nested map value */
    json_t *nan = json_array_get(json_array_get(json_array_get(at(r, 3, 4), 0), 1), 0);
    cr_expect_str_eq(json_string_value(nan), "NaN");
    json_decref(r);
    json_decref(cols);
}

Test(rows, row_limit_and_empty_results) {
    json_t *r = rows_of("many", 7, NULL);
    cr_expect_eq(json_array_size(r), 7);
    cr_expect_eq(json_integer_value(at(r, 6, 1)), 36);
    cr_expect_str_eq(json_string_value(at(r, 6, 2)), "row-6");
    json_decref(r);
    r = rows_of("many", -1, NULL);
    cr_expect_eq(json_array_size(r), 25);
    json_decref(r);
    json_t *cols;
    r = rows_of("empty", -1, &cols);
    cr_expect_eq(json_array_size(r), 0);
    cr_expect_eq(json_array_size(cols), 3);
    expect_column(cols, 2, "c", "date");
    json_decref(r);
    json_decref(cols);
}

Test(rows, base64_pads_every_length) {
    static const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t n = 0; n <= 6; n++) {
        kl_render_buf b;
        kl_render_buf_init(&b);
        kl_rows_base64(&b, (const uint8_t *)"foobar", n);
        cr_expect_eq(b.len, strlen(want[n]));
        if (b.len) cr_expect_str_eq(b.data, want[n]);
        kl_render_buf_free(&b);
    }
}
