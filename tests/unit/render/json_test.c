/* application/vnd.dataresource+json: the Table Schema shape, JSON types of every Spark type,
 * unique names, the row limit and the per-cell cap. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render/json.h"
#include "render/render_data.h"

static json_t *render(const char *name, int64_t max_rows, size_t cap) {
    kl_table *t = rd_table(name, rd_streams(name), -1);
    kl_render_options o;
    kl_render_options_init(&o);
    o.max_rows = max_rows;
    o.max_cell_bytes = cap;
    json_t *j;
    char err[KL_RENDER_ERRLEN];
    cr_assert_eq(kl_json_render(t, &o, &j, err), 0, "%s", err);
    kl_table_free(t);
    /* It must serialize: jansson refuses ill-formed UTF-8 and NaN. */
    char *s = json_dumps(j, 0);
    cr_assert_not_null(s);
    free(s);
    return j;
}

static json_t *cell(json_t *doc, size_t row, const char *col) {
    json_t *v = json_object_get(json_array_get(json_object_get(doc, "data"), row), col);
    cr_assert_not_null(v, "row %zu has no %s", row, col);
    return v;
}

static void expect_field(json_t *doc, size_t i, const char *name, const char *type,
                         const char *spark) {
    json_t *f = json_array_get(json_object_get(json_object_get(doc, "schema"), "fields"), i);
    cr_assert_not_null(f);
    cr_expect_str_eq(json_string_value(json_object_get(f, "name")), name);
    cr_expect_str_eq(json_string_value(json_object_get(f, "type")), type, "%s", name);
    cr_expect_str_eq(json_string_value(json_object_get(f, "sparkType")), spark, "%s", name);
}

Test(json, primitives) {
    json_t *d = render("primitives", 20, 1000);
    expect_field(d, 0, "b", "boolean", "boolean");
    expect_field(d, 4, "i64", "integer", "bigint");
    expect_field(d, 6, "f64", "number", "double");
    expect_field(d, 7, "dec", "number", "decimal(10,2)");
    expect_field(d, 9, "s", "string", "string");
    expect_field(d, 11, "d", "date", "date");
    cr_expect_eq(json_array_size(json_object_get(d, "data")), 5);
    cr_expect(json_is_true(cell(d, 0, "b")));
    cr_expect_eq(json_integer_value(cell(d, 0, "i32")), 3);
    cr_expect_eq(json_real_value(cell(d, 0, "f64")), 0.1);
    cr_expect_eq(json_real_value(cell(d, 0, "f32")), 1.5);
    cr_expect_eq(json_real_value(cell(d, 0, "dec")), 123.45);
    cr_expect_str_eq(json_string_value(cell(d, 0, "bin")), "[01 02 FF]");
    cr_expect_str_eq(json_string_value(cell(d, 0, "d")), "2024-02-29");
    /* beyond 2^53 and beyond 15 digits: exact strings */
    cr_expect_str_eq(json_string_value(cell(d, 1, "i64")), "-9223372036854775808");
    cr_expect_eq(json_integer_value(cell(d, 1, "i32")), -2147483648LL);
    cr_expect_str_eq(json_string_value(cell(d, 1, "dec38")),
                     "-1234567890123456789012345678.0123456789");
    cr_expect_eq(json_real_value(cell(d, 1, "f32")), 3.4028235e38);
    cr_expect(json_is_null(cell(d, 2, "s")));
    cr_expect(json_is_null(cell(d, 2, "i8")));
    cr_expect_str_eq(json_string_value(cell(d, 4, "f32")), "NaN");
    cr_expect_str_eq(json_string_value(cell(d, 4, "f64")), "-INF");
    cr_expect_eq(json_real_value(cell(d, 3, "dec38")), 1e-10);
    json_decref(d);
}

Test(json, temporal_and_intervals) {
    json_t *d = render("temporal", 20, 1000);
    expect_field(d, 0, "ts", "datetime", "timestamp");
    expect_field(d, 1, "ntz", "datetime", "timestamp_ntz");
    cr_expect_str_eq(json_string_value(cell(d, 0, "ts")), "2024-03-10T01:59:59.5-08:00");
    cr_expect_str_eq(json_string_value(cell(d, 1, "ts")), "2024-03-10T03:00:00-07:00");
    cr_expect_str_eq(json_string_value(cell(d, 3, "ts")), "1800-01-01T00:00:00-07:52:58");
    cr_expect_str_eq(json_string_value(cell(d, 0, "ntz")), "2024-03-10T01:59:59.5");
    json_decref(d);
    d = render("intervals", 20, 1000);
    expect_field(d, 0, "ym", "string", "interval year to month");
    cr_expect_str_eq(json_string_value(cell(d, 0, "dt")), "INTERVAL '1 02:03:04.5' DAY TO SECOND");
    cr_expect_str_eq(json_string_value(cell(d, 1, "cal")), "0 seconds");
    json_decref(d);
}

Test(json, nested_values_keep_their_shape) {
    json_t *d = render("nested", 20, 1000);
    expect_field(d, 0, "arr", "array", "array<int>");
    expect_field(d, 1, "m", "object", "map<string,int>");
    json_t *arr = cell(d, 1, "arr");
    cr_assert(json_is_array(arr));
    cr_expect_eq(json_array_size(arr), 3);
    cr_expect_eq(json_integer_value(json_array_get(arr, 0)), 1);
    cr_expect(json_is_null(json_array_get(arr, 1)));
    json_t *m = cell(d, 0, "m");
    cr_expect_eq(json_integer_value(json_object_get(m, "b")), 2);
    cr_expect(json_is_null(json_object_get(cell(d, 1, "m"), "a")));
    json_t *st = cell(d, 0, "st");
    cr_expect_eq(json_integer_value(json_object_get(st, "x")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(st, "y")), "x");
    json_t *ma = json_object_get(cell(d, 0, "m_arr"), "1"); /* int keys become their text */
    cr_assert(json_is_array(ma));
    cr_expect_eq(json_real_value(json_array_get(ma, 0)), 1.5);
    json_t *deep = json_object_get(json_object_get(cell(d, 0, "deep"), "in"), "b");
    cr_expect_str_eq(json_string_value(deep), "2020-01-02");
    cr_expect(json_is_null(cell(d, 2, "st")));
    cr_expect_eq(json_array_size(cell(d, 1, "arr_st")), 0);
    cr_expect_eq(json_object_size(cell(d, 1, "m_arr")), 0);
    json_decref(d);
}

Test(json, duplicate_names_become_unique) {
    json_t *d = render("wide_names", 20, 1000);
    expect_field(d, 0, "a", "integer", "int");
    expect_field(d, 2, "tab\tname", "string", "string");
    expect_field(d, 4, "a_2", "string", "string");
    cr_expect_eq(json_integer_value(cell(d, 0, "a")), 1);
    cr_expect_str_eq(json_string_value(cell(d, 0, "a_2")), "dup");
    json_decref(d);
}

Test(json, row_limit_and_cell_cap) {
    json_t *d = render("many", 20, 1000);
    cr_expect_eq(json_array_size(json_object_get(d, "data")), 20);
    json_decref(d);
    d = render("many", 0, 1000);
    cr_expect_eq(json_array_size(json_object_get(d, "data")), 0);
    cr_expect_eq(json_array_size(json_object_get(json_object_get(d, "schema"), "fields")), 3);
    json_decref(d);

    d = render("unicode", 20, 12);
    /* "这是一个非常长..." (3 bytes a character): 4 characters fit in 12 bytes */
    cr_expect_str_eq(json_string_value(cell(d, 1, "中文列")), "这是一个...");
    cr_expect_str_eq(json_string_value(cell(d, 0, "中文列")), "中文字");
    json_decref(d);
    d = render("nested", 20, 6);
    json_t *arr = cell(d, 0, "arr"); /* [1, 2, 3] does not fit in 6 bytes */
    cr_assert(json_is_array(arr));
    cr_expect_lt(json_array_size(arr), 4);
    cr_expect_str_eq(json_string_value(json_array_get(arr, json_array_size(arr) - 1)), "...");
    json_decref(d);
}

Test(json, empty_and_schemaless) {
    json_t *d = render("empty", 20, 1000);
    cr_expect_eq(json_array_size(json_object_get(d, "data")), 0);
    expect_field(d, 2, "c", "date", "date");
    json_decref(d);
    kl_table *t = kl_table_new(-1);
    kl_render_options o;
    kl_render_options_init(&o);
    char err[KL_RENDER_ERRLEN];
    cr_assert_eq(kl_json_render(t, &o, &d, err), 0);
    char *s = json_dumps(d, JSON_SORT_KEYS | JSON_COMPACT);
    cr_expect_str_eq(s, "{\"data\":[],\"schema\":{\"fields\":[]}}");
    free(s);
    json_decref(d);
    kl_table_free(t);
}
