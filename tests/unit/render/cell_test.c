/* Value text on hand-built arrays: the per-cell byte cap on values far larger than any test file
 * should hold (a 16 MiB string, a million-element array), ill-formed UTF-8, zones. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "render/cell.h"
#include "render/table.h"

static kl_arrow_field utf8_field = {.name = "s", .name_len = 1, .type = KL_ARROW_UTF8};
static kl_arrow_field int_field = {
    .name = "element", .name_len = 7, .type = KL_ARROW_INT, .bit_width = 32, .is_signed = true};
static kl_arrow_field list_field = {
    .name = "l", .name_len = 1, .type = KL_ARROW_LIST, .n_children = 1, .children = &int_field};
static kl_arrow_field ts_field = {.name = "t",
                                  .name_len = 1,
                                  .type = KL_ARROW_TIMESTAMP,
                                  .bit_width = 64,
                                  .time_unit = KL_ARROW_MICROSECOND,
                                  .timezone = "Asia/Kolkata"};

static char *text_of(const kl_arrow_array *a, int64_t i, size_t cap, bool *capped, int *rc) {
    char err[KL_RENDER_ERRLEN] = "";
    kl_cell_ctx c;
    kl_cell_ctx_init(&c, NULL, cap, err);
    kl_render_buf b;
    kl_render_buf_init(&b);
    *rc = kl_cell_text(&c, &b, a, i, capped);
    char *s = kl_render_buf_take(&b, NULL);
    cr_assert_not_null(s);
    return s;
}

Test(cell, huge_string_is_capped_without_reading_it_all) {
    size_t n = 16u << 20;
    char *big = malloc(n);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i += 3) memcpy(big + i, "中", n - i < 3 ? n - i : 3);
    int32_t offs[2] = {0, (int32_t)n};
    kl_arrow_array a = {.field = &utf8_field,
                        .length = 1,
                        .offsets = (const uint8_t *)offs,
                        .values = (const uint8_t *)big,
                        .values_len = n};
    bool capped;
    int rc;
    char *s = text_of(&a, 0, 1000, &capped, &rc);
    cr_expect_eq(rc, 0);
    cr_expect(capped);
    cr_expect_eq(strlen(s), 999 + 3); /* 333 whole characters, then "..." */
    cr_expect_str_eq(s + 999, "...");
    free(s);
    free(big);
}

Test(cell, huge_list_is_capped) {
    int64_t n = 1000000;
    int32_t *vals = malloc((size_t)n * 4), offs[2] = {0, (int32_t)n};
    cr_assert_not_null(vals);
    for (int64_t i = 0; i < n; i++) vals[i] = (int32_t)i;
    kl_arrow_array child = {.field = &int_field,
                            .length = n,
                            .values = (const uint8_t *)vals,
                            .values_len = (size_t)n * 4};
    kl_arrow_array a = {.field = &list_field,
                        .length = 1,
                        .offsets = (const uint8_t *)offs,
                        .n_children = 1,
                        .children = &child};
    bool capped;
    int rc;
    char *s = text_of(&a, 0, 64, &capped, &rc);
    cr_expect(capped);
    cr_expect_leq(strlen(s), 64 + 3);
    cr_expect(strncmp(s, "[0, 1, 2, 3", 11) == 0, "%s", s);
    cr_expect_str_eq(s + strlen(s) - 3, "...");
    free(s);
    s = text_of(&a, 0, 0, &capped, &rc); /* no cap: all of it */
    cr_expect_not(capped);
    cr_expect_gt(strlen(s), 6000000);
    cr_expect_str_eq(s + strlen(s) - 8, " 999999]");
    free(s);
    free(vals);
}

Test(cell, ill_formed_utf8_becomes_replacement_characters) {
    const uint8_t bytes[] = {'o', 'k', 0xC0, 0xAF, '!'};
    int32_t offs[2] = {0, 5};
    kl_arrow_array a = {.field = &utf8_field,
                        .length = 1,
                        .offsets = (const uint8_t *)offs,
                        .values = bytes,
                        .values_len = 5};
    bool capped;
    int rc;
    char *s = text_of(&a, 0, 100, &capped, &rc);
    cr_expect_str_eq(s, "ok\xEF\xBF\xBD\xEF\xBF\xBD!");
    free(s);
}

Test(cell, timestamps_use_the_session_zone) {
    int64_t us[2] = {0, -1};
    kl_arrow_array a = {
        .field = &ts_field, .length = 2, .values = (const uint8_t *)us, .values_len = 16};
    char err[KL_RENDER_ERRLEN];
    char buf[128];
    kl_cell_ctx c;
    kl_cell_ctx_init(&c, NULL, 0, err); /* the column's own zone */
    cr_assert_eq(kl_cell_timestamp(&c, &a, 0, false, buf), 19);
    cr_expect_str_eq(buf, "1970-01-01 05:30:00");
    cr_assert_gt(kl_cell_timestamp(&c, &a, 1, true, buf), 0);
    cr_expect_str_eq(buf, "1970-01-01T05:29:59.999999+05:30");
    kl_cell_ctx_init(&c, "America/New_York", 0, err); /* a session zone overrides it */
    cr_assert_gt(kl_cell_timestamp(&c, &a, 0, true, buf), 0);
    cr_expect_str_eq(buf, "1969-12-31T19:00:00-05:00");
    kl_cell_ctx_init(&c, "Nowhere/Special", 0, err);
    cr_expect_eq(kl_cell_timestamp(&c, &a, 0, false, buf), -EINVAL);
    cr_expect(strstr(err, "Nowhere/Special") != NULL, "%s", err);
}

Test(cell, extreme_values_do_not_overflow) {
    /* Arrow allows what Spark never sends: seconds-unit timestamps and durations at the int64
     * limits. UBSan (KL_SANITIZE) would catch an overflow on the way. */
    static kl_arrow_field ts_s = {.name = "t",
                                  .name_len = 1,
                                  .type = KL_ARROW_TIMESTAMP,
                                  .bit_width = 64,
                                  .time_unit = KL_ARROW_SECOND,
                                  .timezone = "America/New_York"};
    static kl_arrow_field dur_s = {.name = "d",
                                   .name_len = 1,
                                   .type = KL_ARROW_DURATION,
                                   .bit_width = 64,
                                   .time_unit = KL_ARROW_SECOND};
    static kl_arrow_field time_us = {.name = "t",
                                     .name_len = 1,
                                     .type = KL_ARROW_TIME,
                                     .bit_width = 64,
                                     .time_unit = KL_ARROW_MICROSECOND};
    int64_t v[2] = {INT64_MAX, INT64_MIN};
    kl_arrow_field *fields[] = {&ts_s, &dur_s, &time_us};
    for (size_t f = 0; f < 3; f++) {
        kl_arrow_array a = {
            .field = fields[f], .length = 2, .values = (const uint8_t *)v, .values_len = 16};
        for (int64_t i = 0; i < 2; i++) {
            bool capped;
            int rc;
            char *s = text_of(&a, i, 0, &capped, &rc);
            cr_expect_eq(rc, 0);
            cr_expect_gt(strlen(s), 8, "%s", s);
            free(s);
        }
    }
    bool capped;
    int rc;
    kl_arrow_array d = {
        .field = &dur_s, .length = 2, .values = (const uint8_t *)v, .values_len = 16};
    char *s = text_of(&d, 1, 0, &capped, &rc);
    cr_expect_str_eq(s, "INTERVAL '-106751991 04:00:54.775808' DAY TO SECOND"); /* saturated */
    free(s);
}
