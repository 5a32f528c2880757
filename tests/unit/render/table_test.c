/* The result model: rows kept versus seen, the "more" flag, schema checks, type names. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_data.h"
#include "render/table.h"

Test(table, keeps_only_what_will_be_shown) {
    kl_table *t = rd_table("many", rd_streams("many"), 12); /* batches of 10, 10, 5 */
    cr_expect_eq(kl_table_rows_seen(t), 25);
    cr_expect_eq(kl_table_rows_kept(t), 12);
    cr_expect_eq(kl_table_chunks(t), 2);
    int64_t rows;
    cr_expect_not_null(kl_table_chunk(t, 0, &rows));
    cr_expect_eq(rows, 10);
    cr_expect_not_null(kl_table_chunk(t, 1, &rows));
    cr_expect_eq(rows, 2);
    cr_expect_null(kl_table_chunk(t, 2, &rows));
    cr_expect(kl_table_has_more(t, 12));
    cr_expect(kl_table_has_more(t, 24));
    cr_expect_not(kl_table_has_more(t, 25));
    cr_expect_not(kl_table_more_flag(t));
    kl_table_set_more(t);
    cr_expect(kl_table_has_more(t, 25));
    cr_expect(kl_table_more_flag(t));
    kl_table_free(t);

    t = rd_table("many", 3, 0); /* nothing kept, the schema still known */
    cr_expect_eq(kl_table_rows_kept(t), 0);
    cr_expect_eq(kl_table_rows_seen(t), 25);
    cr_assert_not_null(kl_table_schema(t));
    cr_expect_eq(kl_table_schema(t)->n_fields, 3);
    kl_table_free(t);
}

Test(table, rejects_a_different_schema_and_bad_input) {
    kl_table *t = rd_table("many", 1, -1);
    char path[512], err[KL_RENDER_ERRLEN];
    size_t len;
    snprintf(path, sizeof path, "%s/primitives.0.arrows", RENDER_DATA);
    char *data = rd_read(path, &len);
    cr_assert_not_null(data);
    cr_expect_eq(kl_table_add_ipc(t, data, len, err), -EINVAL);
    cr_expect(strstr(err, "schema") != NULL, "%s", err);
    cr_expect_eq(kl_table_add_ipc(t, data, len / 2, err), -EINVAL); /* a cut stream */
    cr_expect_eq(kl_table_rows_seen(t), 10);
    free(data);
    kl_table_free(t);
}

Test(table, type_names_are_spark_sql_names) {
    const char *expect[][2] = {
        {"primitives", "boolean tinyint smallint int bigint float double decimal(10,2) "
                       "decimal(38,10) string binary date"},
        {"temporal", "timestamp timestamp_ntz date"},
        {"intervals", "interval year to month interval day to second interval"},
        {"nested", "array<int> map<string,int> struct<x:int,y:string> "
                   "array<struct<k:int,v:array<string>>> map<int,array<double>> array<binary> "
                   "struct<in:struct<a:int,b:date>>"},
        {"nested_more", "array<array<int>> map<string,struct<t:timestamp,d:decimal(5,3)>> "
                        "array<map<string,array<boolean>>> void array<void> "
                        "array<interval year to month> array<float>"},
    };
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
        kl_table *t = rd_table(expect[k][0], 1, -1);
        const kl_arrow_schema *s = kl_table_schema(t);
        kl_render_buf b;
        kl_render_buf_init(&b);
        for (size_t i = 0; i < s->n_fields; i++) {
            if (i) kl_render_buf_putc(&b, ' ');
            kl_table_type_name(&b, &s->fields[i]);
        }
        char *names = kl_render_buf_take(&b, NULL);
        cr_expect_str_eq(names, expect[k][1], "%s", expect[k][0]);
        free(names);
        kl_table_free(t);
    }
}

Test(table, options_defaults) {
    kl_render_options o;
    kl_render_options_init(&o);
    cr_expect_eq(o.max_rows, 20);
    cr_expect_eq(o.truncate, 20);
    cr_expect_eq(o.max_cell_bytes, 64 * 1024);
    cr_expect_eq(o.width, KL_WIDTH_SPARK);
    cr_expect_null(o.time_zone);
    cr_expect_not(o.show_types);
}
