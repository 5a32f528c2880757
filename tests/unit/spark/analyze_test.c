#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "spark/analyze.h"

/* DataType values built on the stack: the simple kinds need only kind_case. */
static Spark__Connect__DataType simple(Spark__Connect__DataType__KindCase k) {
    Spark__Connect__DataType t = SPARK__CONNECT__DATA_TYPE__INIT;
    t.kind_case = k;
    return t;
}

static const char *name_of(const Spark__Connect__DataType *t) {
    static char buf[128];
    kl_spark_type_name(t, buf, sizeof buf);
    return buf;
}

Test(analyze, explain_modes) {
    cr_expect_eq(kl_spark_explain_mode_parse("FORMATTED", 9), KL_EXPLAIN_FORMATTED);
    cr_expect_eq(kl_spark_explain_mode_parse("codegen", 7), KL_EXPLAIN_CODEGEN);
    cr_expect_eq(kl_spark_explain_mode_parse("simple x", 6), KL_EXPLAIN_SIMPLE);
    cr_expect_eq(kl_spark_explain_mode_parse("simplex", 7), 0);
    cr_expect_eq(kl_spark_explain_mode_parse("SELECT", 6), 0);
    cr_expect_str_eq(kl_spark_explain_mode_name(KL_EXPLAIN_COST), "cost");
    cr_expect_str_eq(kl_spark_explain_mode_name(0), "simple");
    /* the wire values of the upstream enum */
    cr_expect_eq(
        (int)SPARK__CONNECT__ANALYZE_PLAN_REQUEST__EXPLAIN__EXPLAIN_MODE__EXPLAIN_MODE_FORMATTED,
        (int)KL_EXPLAIN_FORMATTED);
}

Test(analyze, type_names) {
    Spark__Connect__DataType t = simple(SPARK__CONNECT__DATA_TYPE__KIND_INTEGER);
    cr_expect_str_eq(name_of(&t), "integer");
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_LONG);
    cr_expect_str_eq(name_of(&t), "long");
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_NULL);
    cr_expect_str_eq(name_of(&t), "void");
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_TIMESTAMP_NTZ);
    cr_expect_str_eq(name_of(&t), "timestamp_ntz");
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_CALENDAR_INTERVAL);
    cr_expect_str_eq(name_of(&t), "interval");

    Spark__Connect__DataType__Decimal d = SPARK__CONNECT__DATA_TYPE__DECIMAL__INIT;
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_DECIMAL);
    t.decimal = &d;
    cr_expect_str_eq(name_of(&t), "decimal(10,0)", "absent fields are Spark's defaults");
    d.has_precision = d.has_scale = 1;
    d.precision = 38;
    d.scale = 6;
    cr_expect_str_eq(name_of(&t), "decimal(38,6)");

    Spark__Connect__DataType__String s = SPARK__CONNECT__DATA_TYPE__STRING__INIT;
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_STRING);
    t.string = &s;
    cr_expect_str_eq(name_of(&t), "string");
    s.collation = "UTF8_BINARY";
    cr_expect_str_eq(name_of(&t), "string");
    s.collation = "UTF8_LCASE";
    cr_expect_str_eq(name_of(&t), "string collate UTF8_LCASE");

    Spark__Connect__DataType__DayTimeInterval dt =
        SPARK__CONNECT__DATA_TYPE__DAY_TIME_INTERVAL__INIT;
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_DAY_TIME_INTERVAL);
    t.day_time_interval = &dt;
    cr_expect_str_eq(name_of(&t), "interval day to second");
    dt.has_start_field = dt.has_end_field = 1;
    dt.start_field = dt.end_field = 0;
    cr_expect_str_eq(name_of(&t), "interval day");
    dt.start_field = 1;
    dt.end_field = 2;
    cr_expect_str_eq(name_of(&t), "interval hour to minute");

    Spark__Connect__DataType__YearMonthInterval ym =
        SPARK__CONNECT__DATA_TYPE__YEAR_MONTH_INTERVAL__INIT;
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_YEAR_MONTH_INTERVAL);
    t.year_month_interval = &ym;
    cr_expect_str_eq(name_of(&t), "interval year to month");

    Spark__Connect__DataType__Char ch = SPARK__CONNECT__DATA_TYPE__CHAR__INIT;
    ch.length = 3;
    t = simple(SPARK__CONNECT__DATA_TYPE__KIND_CHAR);
    t.char_ = &ch;
    cr_expect_str_eq(name_of(&t), "char(3)");
    cr_expect_str_eq(name_of(NULL), "unknown");
}

Test(analyze, schema_tree) {
    Spark__Connect__DataType i32 = simple(SPARK__CONNECT__DATA_TYPE__KIND_INTEGER);
    Spark__Connect__DataType str = simple(SPARK__CONNECT__DATA_TYPE__KIND_STRING);

    /* array<struct<x: int>> */
    Spark__Connect__DataType__StructField fx = SPARK__CONNECT__DATA_TYPE__STRUCT_FIELD__INIT;
    fx.name = "x";
    fx.data_type = &i32;
    fx.has_nullable = 1;
    fx.nullable = 1;
    Spark__Connect__DataType__StructField *inner_fields[] = {&fx};
    Spark__Connect__DataType__Struct inner = SPARK__CONNECT__DATA_TYPE__STRUCT__INIT;
    inner.n_fields = 1;
    inner.fields = inner_fields;
    Spark__Connect__DataType st = simple(SPARK__CONNECT__DATA_TYPE__KIND_STRUCT);
    st.struct_ = &inner;
    Spark__Connect__DataType__Array arr = SPARK__CONNECT__DATA_TYPE__ARRAY__INIT;
    arr.element_type = &st;
    arr.has_contains_null = 1;
    arr.contains_null = 1;
    Spark__Connect__DataType at = simple(SPARK__CONNECT__DATA_TYPE__KIND_ARRAY);
    at.array = &arr;

    /* map<string, int> with values never null (the field absent, as proto3 sends false) */
    Spark__Connect__DataType__Map map = SPARK__CONNECT__DATA_TYPE__MAP__INIT;
    map.key_type = &str;
    map.value_type = &i32;
    Spark__Connect__DataType mt = simple(SPARK__CONNECT__DATA_TYPE__KIND_MAP);
    mt.map = &map;

    Spark__Connect__DataType__StructField fa = SPARK__CONNECT__DATA_TYPE__STRUCT_FIELD__INIT;
    fa.name = "id";
    fa.data_type = &i32;
    Spark__Connect__DataType__StructField fb = fa;
    fb.name = "list";
    fb.data_type = &at;
    fb.has_nullable = 1;
    fb.nullable = 1;
    Spark__Connect__DataType__StructField fc = fa;
    fc.name = "m";
    fc.data_type = &mt;
    Spark__Connect__DataType__StructField fd = fa;
    fd.name = "tab\there";
    fd.data_type = &str;
    Spark__Connect__DataType__StructField *fields[] = {&fa, &fb, &fc, &fd};
    Spark__Connect__DataType__Struct top = SPARK__CONNECT__DATA_TYPE__STRUCT__INIT;
    top.n_fields = 4;
    top.fields = fields;
    Spark__Connect__DataType schema = simple(SPARK__CONNECT__DATA_TYPE__KIND_STRUCT);
    schema.struct_ = &top;

    char *tree = kl_spark_schema_tree(&schema);
    cr_assert_not_null(tree);
    cr_expect_str_eq(tree, "root\n"
                           " |-- id: integer (nullable = false)\n"
                           " |-- list: array (nullable = true)\n"
                           " |    |-- element: struct (containsNull = true)\n"
                           " |    |    |-- x: integer (nullable = true)\n"
                           " |-- m: map (nullable = false)\n"
                           " |    |-- key: string\n"
                           " |    |-- value: integer (valueContainsNull = false)\n"
                           " |-- tab\\there: string (nullable = false)\n");
    free(tree);

    Spark__Connect__DataType__Struct none = SPARK__CONNECT__DATA_TYPE__STRUCT__INIT;
    schema.struct_ = &none;
    tree = kl_spark_schema_tree(&schema);
    cr_expect_str_eq(tree, "root\n");
    free(tree);
}
