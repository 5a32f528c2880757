#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/inspect.h"

/* Rows of ncols columns from a flat list of cells ("\x01" stands for NULL). */
static kl_catalog_rows *rows(size_t ncols, const char *const *cells, size_t ncells) {
    kl_catalog_rows *r = calloc(1, sizeof *r);
    r->refs = 1;
    r->ncols = ncols;
    r->nrows = ncells / ncols;
    r->names = calloc(ncols, sizeof *r->names);
    for (size_t c = 0; c < ncols; c++) r->names[c] = strdup(c == 0 ? "col_name" : "x");
    r->cells = calloc(ncells, sizeof *r->cells);
    for (size_t i = 0; i < ncells; i++)
        r->cells[i] = strcmp(cells[i], "\x01") == 0 ? NULL : strdup(cells[i]);
    return r;
}

static const char *const DESCRIBE[] = {
    "id",
    "int",
    "\x01",
    "total",
    "decimal(10,2)",
    "money <&>",
    "person_id",
    "int",
    "\x01",
    "# Partition Information",
    "",
    "",
    "# col_name",
    "data_type",
    "comment",
    "person_id",
    "int",
    "\x01",
    "",
    "",
    "",
    "# Detailed Table Information",
    "",
    "",
    "Catalog",
    "spark_catalog",
    "",
    "Database",
    "db1",
    "",
    "Table",
    "orders",
    "",
    "Type",
    "MANAGED",
    "",
    "Provider",
    "parquet",
    "",
    "Table Properties",
    "[owner_team=kindling]",
    "",
    "Location",
    "file:/w/orders",
    "",
};

Test(inspect, table_brief) {
    kl_catalog_rows *r = rows(3, DESCRIBE, sizeof DESCRIBE / sizeof *DESCRIBE);
    cr_assert_eq(kl_catalog_column(r, "COL_NAME"), 0);
    cr_assert_eq(kl_catalog_column(r, "nothing"), -1);
    char *text, *html;
    cr_assert_eq(kl_inspect_render_table(r, "db1.orders", "table", 0, &text, &html), 0);
    cr_expect_str_eq(text, "Table db1.orders\n"
                           "\n"
                           "Column     Type           Comment\n"
                           "id         int\n"
                           "total      decimal(10,2)  money <&>\n"
                           "person_id  int\n"
                           "\n"
                           "Partitioned by: person_id\n"
                           "\n"
                           "Type: MANAGED\n"
                           "Provider: parquet\n");
    cr_expect(strstr(html, "<td>total</td><td>decimal(10,2)</td><td>money &lt;&amp;&gt;</td>"),
              "%s", html);
    cr_expect_null(strstr(html, "Location"));
    free(text);
    free(html);

    cr_assert_eq(kl_inspect_render_table(r, "db1.orders", "table", 1, &text, &html), 0);
    cr_expect(strstr(text, "\nTable Properties: [owner_team=kindling]\nLocation: file:/w/orders\n"),
              "%s", text);
    cr_expect_null(strstr(text, "Catalog:"), "the name's parts are in the header");
    cr_expect(strstr(html, "<th style=\"text-align:left\">Location</th><td>file:/w/orders</td>"));
    free(text);
    free(html);
    kl_catalog_rows_unref(r);
}

Test(inspect, temporary_view) {
    static const char *const cells[] = {"id", "int", "\x01", "name", "string", "\x01"};
    kl_catalog_rows *r = rows(3, cells, 6);
    char *text, *html;
    cr_assert_eq(kl_inspect_render_table(r, "people", "temporary view", 1, &text, &html), 0);
    cr_expect_str_eq(text, "Temporary view people\n\nColumn  Type    Comment\nid      int\nname    "
                           "string\n");
    free(text);
    free(html);
    kl_catalog_rows_unref(r);
}

Test(inspect, function) {
    static const char *const cells[] = {
        "Function: upper",
        "Class: org.apache.spark.sql.catalyst.expressions.Upper",
        "Usage: upper(str) - Returns `str` with all characters changed to uppercase.",
        "Extended Usage:\n    Examples:\n      > SELECT upper('SparkSql');\n       SPARKSQL\n  \n"
        "    Since: 1.0.1\n",
    };
    kl_catalog_rows *r = rows(1, cells, 4);
    char *text, *html;
    cr_assert_eq(kl_inspect_render_function(r, 0, &text, &html), 0);
    cr_expect_str_eq(text, "Function: upper\n"
                           "Usage: upper(str) - Returns `str` with all characters changed to "
                           "uppercase.\n"
                           "Examples:\n"
                           "      > SELECT upper('SparkSql');\n"
                           "       SPARKSQL\n");
    cr_expect(strncmp(html, "<pre>Function: upper\n", 21) == 0);
    free(text);
    free(html);
    cr_assert_eq(kl_inspect_render_function(r, 1, &text, &html), 0);
    cr_expect(strstr(text, "Class: org.apache.spark.sql.catalyst.expressions.Upper\n"));
    cr_expect(strstr(text, "    Since: 1.0.1\n"));
    free(text);
    free(html);
    kl_catalog_rows_unref(r);
}
