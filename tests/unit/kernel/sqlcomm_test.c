/* The msgpack answer of the kindling.sql comm (render/rows.h kl_rows_msgpack): one map {columns,
 * rows, truncated} with every Spark type as the msgpack type docs/comm.md promises, read back with
 * msgpack-c from streams a real Spark wrote. */
#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <string.h>

#include "kernel/sqlcomm.h"
#include "render/render_data.h"
#include "render/rows.h"

typedef struct doc {
    kl_render_buf b; /* strings of u point into it */
    msgpack_unpacked u;
    const msgpack_object *columns, *rows, *truncated;
} doc;

static const msgpack_object *get(const msgpack_object *map, const char *key) {
    cr_assert_eq(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static void load(doc *d, const char *name, int64_t max_rows, bool truncated) {
    kl_table *t = rd_table(name, rd_streams(name), -1);
    kl_rows_options o = {.max_rows = max_rows};
    kl_render_buf_init(&d->b);
    char err[KL_RENDER_ERRLEN];
    cr_assert_eq(kl_rows_msgpack(t, &o, truncated, &d->b, err), 0, "%s", err);
    kl_table_free(t);
    msgpack_unpacked_init(&d->u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&d->u, d->b.data, d->b.len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, d->b.len, "one document, nothing after it");
    d->columns = get(&d->u.data, "columns");
    d->rows = get(&d->u.data, "rows");
    d->truncated = get(&d->u.data, "truncated");
    cr_assert_not_null(d->columns);
    cr_assert_not_null(d->rows);
    cr_assert_not_null(d->truncated);
    cr_assert_eq(d->rows->type, MSGPACK_OBJECT_ARRAY);
}

static void doc_free(doc *d) {
    msgpack_unpacked_destroy(&d->u);
    kl_render_buf_free(&d->b);
}

static const msgpack_object *at(const doc *d, uint32_t r, uint32_t c) {
    cr_assert_lt(r, d->rows->via.array.size);
    const msgpack_object *row = &d->rows->via.array.ptr[r];
    cr_assert_eq(row->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_lt(c, row->via.array.size);
    return &row->via.array.ptr[c];
}

static void expect_str(const msgpack_object *o, const char *s) {
    cr_assert_eq(o->type, MSGPACK_OBJECT_STR, "type %d, not a string", o->type);
    cr_expect_eq(o->via.str.size, strlen(s), "%.*s vs %s", (int)o->via.str.size, o->via.str.ptr, s);
    cr_expect_eq(memcmp(o->via.str.ptr, s, strlen(s)), 0, "%.*s vs %s", (int)o->via.str.size,
                 o->via.str.ptr, s);
}

static void expect_column(const doc *d, uint32_t i, const char *name, const char *type) {
    const msgpack_object *c = &d->columns->via.array.ptr[i];
    expect_str(get(c, "name"), name);
    expect_str(get(c, "type"), type);
}

Test(sqlcomm_msgpack, primitives_are_native_msgpack_types) {
    doc d;
    load(&d, "primitives", -1, false);
    cr_expect_eq(d.columns->via.array.size, 12);
    expect_column(&d, 5, "f32", "float");
    cr_expect_eq(d.truncated->type, MSGPACK_OBJECT_BOOLEAN);
    cr_expect_not(d.truncated->via.boolean);
    cr_assert_eq(d.rows->via.array.size, 5);
    cr_expect_eq(at(&d, 0, 0)->type, MSGPACK_OBJECT_BOOLEAN);
    cr_expect(at(&d, 0, 0)->via.boolean);
    cr_expect_eq(at(&d, 0, 1)->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_expect_eq(at(&d, 0, 1)->via.u64, 1);
    cr_expect_eq(at(&d, 1, 4)->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_expect_eq(at(&d, 1, 4)->via.i64, INT64_MIN);
    cr_expect_eq(at(&d, 3, 4)->via.u64, (uint64_t)INT64_MAX);
    cr_expect_eq(at(&d, 0, 5)->type, MSGPACK_OBJECT_FLOAT32);
    cr_expect_eq(at(&d, 0, 5)->via.f64, 1.5);
    cr_expect_eq(at(&d, 0, 6)->type, MSGPACK_OBJECT_FLOAT64);
    cr_expect_eq(at(&d, 0, 6)->via.f64, 0.1);
    cr_expect(isnan(at(&d, 4, 5)->via.f64), "NaN stays a float");
    cr_expect(isinf(at(&d, 4, 6)->via.f64) && at(&d, 4, 6)->via.f64 < 0);
    expect_str(at(&d, 1, 8), "-1234567890123456789012345678.0123456789");
    expect_str(at(&d, 0, 9), "hello");
    const msgpack_object *bin = at(&d, 4, 10);
    cr_assert_eq(bin->type, MSGPACK_OBJECT_BIN);
    cr_expect_eq(bin->via.bin.size, 5);
    cr_expect_eq(memcmp(bin->via.bin.ptr, "\xde\xad\xbe\xef\x00", 5), 0);
    cr_expect_eq(at(&d, 1, 10)->type, MSGPACK_OBJECT_BIN);
    cr_expect_eq(at(&d, 1, 10)->via.bin.size, 0);
    expect_str(at(&d, 0, 11), "2024-02-29");
    for (uint32_t c = 0; c < 12; c++) cr_expect_eq(at(&d, 2, c)->type, MSGPACK_OBJECT_NIL);
    doc_free(&d);
}

Test(sqlcomm_msgpack, timestamps_are_the_timestamp_extension) {
    doc d;
    load(&d, "temporal", -1, true);
    cr_expect(d.truncated->via.boolean);
    msgpack_timestamp ts;
    const msgpack_object *o = at(&d, 0, 0);
    cr_assert_eq(o->type, MSGPACK_OBJECT_EXT);
    cr_expect_eq(o->via.ext.type, -1);
    cr_assert(msgpack_object_to_timestamp(o, &ts));
    cr_expect_eq(ts.tv_sec, 1710064799); /* 2024-03-10 01:59:59.5 in Los Angeles */
    cr_expect_eq(ts.tv_nsec, 500000000u);
    /* before 1970: seconds floor, nanoseconds count forward */
    cr_assert(msgpack_object_to_timestamp(at(&d, 5, 0), &ts));
    cr_expect_eq(ts.tv_sec, 28799);
    cr_expect_eq(ts.tv_nsec, 999999000u);
    cr_assert(msgpack_object_to_timestamp(at(&d, 6, 0), &ts));
    cr_expect_lt(ts.tv_sec, 0);
    /* wall-clock time has no instant: ISO text */
    expect_str(at(&d, 0, 1), "2024-03-10T01:59:59.5");
    expect_str(at(&d, 0, 2), "2024-03-10");
    cr_expect_eq(at(&d, 8, 0)->type, MSGPACK_OBJECT_NIL);
    doc_free(&d);
}

Test(sqlcomm_msgpack, nested_values_and_typed_map_keys) {
    doc d;
    load(&d, "nested", -1, false);
    const msgpack_object *arr = at(&d, 1, 0);
    cr_assert_eq(arr->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(arr->via.array.size, 3);
    cr_expect_eq(arr->via.array.ptr[1].type, MSGPACK_OBJECT_NIL);
    const msgpack_object *m = at(&d, 0, 1);
    cr_expect_eq(get(m, "b")->via.u64, 2);
    const msgpack_object *st = at(&d, 0, 2);
    cr_expect_eq(get(st, "x")->via.u64, 1);
    expect_str(get(st, "y"), "x");
    /* int keys stay ints */
    const msgpack_object *mi = at(&d, 3, 4);
    cr_assert_eq(mi->type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(mi->via.map.size, 1);
    cr_expect_eq(mi->via.map.ptr[0].key.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_expect_eq(mi->via.map.ptr[0].key.via.i64, -1);
    cr_expect(isnan(mi->via.map.ptr[0].val.via.array.ptr[0].via.f64));
    const msgpack_object *bins = at(&d, 0, 5);
    cr_expect_eq(bins->via.array.ptr[1].type, MSGPACK_OBJECT_BIN);
    cr_expect_eq(at(&d, 2, 2)->type, MSGPACK_OBJECT_NIL);
    doc_free(&d);
}

Test(sqlcomm_msgpack, row_limit_and_empty_results) {
    doc d;
    load(&d, "many", 4, true);
    cr_expect_eq(d.rows->via.array.size, 4);
    expect_str(at(&d, 3, 2), "row-3");
    doc_free(&d);
    load(&d, "empty", -1, false);
    cr_expect_eq(d.rows->via.array.size, 0);
    cr_expect_eq(d.columns->via.array.size, 3);
    expect_column(&d, 0, "a", "int");
    doc_free(&d);
}
