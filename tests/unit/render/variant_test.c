/* VARIANT to JSON: every vector of tests/data/variant/vectors.txt (the binaries Spark sent and the
 * text Spark's Variant.toJson printed for them) byte for byte, then what Spark never produces but
 * the encoding allows (4-byte offsets and ids, unsorted dictionaries, newer primitive types), the
 * output cap, and malformed input, which must be refused without reading outside the buffers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_data.h"
#include "render/variant.h"

#define VARIANT_DATA KL_TEST_DATA "/variant"

static size_t unhex(const char *s, size_t n, uint8_t *out) {
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned x;
        cr_assert_eq(sscanf(s + i, "%2x", &x), 1);
        out[k++] = (uint8_t)x;
    }
    return k;
}

/* JSON of (value, metadata), NUL-terminated (caller frees), or NULL with *rc set. */
static char *to_json(const uint8_t *v, size_t vn, const uint8_t *m, size_t mn, size_t max,
                     bool *capped, int *rc) {
    kl_render_buf b;
    kl_render_buf_init(&b);
    kl_render_buf_puts(&b, ""); /* an empty result is still a string */
    *rc = kl_variant_to_json(&b, v, vn, m, mn, max, capped);
    if (*rc != 0) {
        kl_render_buf_free(&b);
        return NULL;
    }
    kl_render_buf_putc(&b, '\0');
    char *s = kl_render_buf_take(&b, NULL);
    cr_assert_not_null(s);
    return s;
}

static char *json_ok(const uint8_t *v, size_t vn, const uint8_t *m, size_t mn) {
    int rc;
    bool capped = true;
    char *s = to_json(v, vn, m, mn, 0, &capped, &rc);
    cr_assert_eq(rc, 0);
    cr_expect(!capped);
    return s;
}

static int json_rc(const uint8_t *v, size_t vn, const uint8_t *m, size_t mn) {
    int rc;
    char *s = to_json(v, vn, m, mn, 0, NULL, &rc);
    free(s);
    return rc;
}

Test(variant, matches_spark_to_json) {
    size_t len;
    char *text = rd_read(VARIANT_DATA "/vectors.txt", &len);
    cr_assert_not_null(text, "run tests/data/gen_variant.py");
    uint8_t *v = malloc(len), *m = malloc(len);
    cr_assert(v && m);
    int n = 0, bad = 0, capped_ok = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *sp = strchr(line, ' '), *tab = strchr(line, '\t');
        cr_assert(sp && tab && sp < tab, "%s", line);
        size_t vn = unhex(line, (size_t)(sp - line), v);
        size_t mn = unhex(sp + 1, (size_t)(tab - sp - 1), m);
        const char *want = tab + 1;
        char *got = json_ok(v, vn, m, mn);
        if (strcmp(got, want) != 0) {
            cr_log_error("%.60s...: ours %.200s, spark %.200s", line, got, want);
            bad++;
        }
        free(got);
        /* Capped: a prefix of the full text, a little past the cap, marked. */
        if (strlen(want) > 40) {
            int rc;
            bool capped = false;
            char *cut = to_json(v, vn, m, mn, 20, &capped, &rc);
            cr_assert_eq(rc, 0);
            size_t cl = strlen(cut);
            if (capped ? cl >= 20 && cl < 20 + 80 && strncmp(cut, want, 16) == 0
                       : strcmp(cut, want) == 0) { /* a long scalar is never cut inside */
                capped_ok += capped;
            } else {
                cr_log_error("cap 20 on %.100s: %s (capped %d)", want, cut, capped);
                bad++;
            }
            free(cut);
        }
        n++;
    }
    free(text);
    free(v);
    free(m);
    cr_expect_gt(n, 140);
    cr_expect_gt(capped_ok, 10);
    cr_expect_eq(bad, 0, "%d of %d variants differ from Spark", bad, n);
}

static const uint8_t meta_empty[] = {0x01, 0x00, 0x00};

Test(variant, primitives_spark_4_0_cannot_print) {
    /* TIME (17): 12:34:56.5 */
    uint8_t time[] = {17 << 2, 0, 0, 0, 0, 0, 0, 0, 0};
    uint64_t us = (12 * 3600 + 34 * 60 + 56) * 1000000ull + 500000;
    for (int k = 0; k < 8; k++) time[1 + k] = (uint8_t)(us >> (8 * k));
    char *s = json_ok(time, sizeof time, meta_empty, sizeof meta_empty);
    cr_expect_str_eq(s, "\"12:34:56.5\"");
    free(s);
    /* TIMESTAMP with nanoseconds (18) and without zone (19): 1970-01-01 00:00:01.000000001 */
    uint8_t ts[] = {18 << 2, 0x01, 0xCA, 0x9A, 0x3B, 0, 0, 0, 0};
    s = json_ok(ts, sizeof ts, meta_empty, sizeof meta_empty);
    cr_expect_str_eq(s, "\"1970-01-01 00:00:01.000000001+00:00\"");
    free(s);
    ts[0] = 19 << 2;
    s = json_ok(ts, sizeof ts, meta_empty, sizeof meta_empty);
    cr_expect_str_eq(s, "\"1970-01-01 00:00:01.000000001\"");
    free(s);
    /* UUID (20), big-endian bytes */
    uint8_t uuid[17] = {20 << 2};
    for (int k = 0; k < 16; k++) uuid[1 + k] = (uint8_t)(k * 17);
    s = json_ok(uuid, sizeof uuid, meta_empty, sizeof meta_empty);
    cr_expect_str_eq(s, "\"00112233-4455-6677-8899-aabbccddeeff\"");
    free(s);
    /* A long string (16) shorter than 64 bytes is as good as a short one; invalid UTF-8 is
     * repaired. */
    uint8_t str[] = {16 << 2, 3, 0, 0, 0, 'a', 0xFF, '"'};
    s = json_ok(str, sizeof str, meta_empty, sizeof meta_empty);
    cr_expect_str_eq(s, "\"a\xEF\xBF\xBD\\\"\"");
    free(s);
}

/* {"a": true, "b": [1]} with 4-byte ids and offsets and a 4-byte count, over a dictionary with
 * 4-byte offsets that lists "b" before "a" (unsorted: a reader must not assume order). */
Test(variant, wide_offsets_and_unsorted_dictionary) {
    const uint8_t meta[] = {
        0x01 | (3 << 6), 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 'b', 'a'};
    uint8_t val[64];
    size_t n = 0;
    val[n++] = (uint8_t)(2 | ((1 << 4 | 3 << 2 | 3) << 2)); /* object, large, 4-byte ids/offsets */
    /* count; ids of "a" (1) and "b" (0); offsets of their values and the end */
    const uint32_t words[] = {2, 1, 0, 6, 0, 7};
    for (size_t w = 0; w < 6; w++)
        for (int k = 0; k < 4; k++) val[n++] = (uint8_t)(words[w] >> (8 * k));
    const uint8_t data[] = {3, 1, 0, 2, 3 << 2, 1, /* [1] */ 1 << 2 /* true */};
    memcpy(val + n, data, sizeof data);
    n += sizeof data;
    char *s = json_ok(val, n, meta, sizeof meta);
    cr_expect_str_eq(s, "{\"a\":true,\"b\":[1]}");
    free(s);
}

Test(variant, output_cap_stops_early) {
    /* a 1000-element array of "xxxxxxxxxx" strings: the cap must stop the walk, not just cut */
    size_t count = 1000, elem = 11, n = 0;
    uint8_t *val = malloc(1 + 4 + (count + 1) * 2 + count * elem);
    val[n++] = (uint8_t)(3 | ((1 << 2 | 1) << 2)); /* large, 2-byte offsets */
    for (int k = 0; k < 4; k++) val[n++] = (uint8_t)(count >> (8 * k));
    for (size_t i = 0; i <= count; i++) {
        val[n++] = (uint8_t)(i * elem);
        val[n++] = (uint8_t)((i * elem) >> 8);
    }
    for (size_t i = 0; i < count; i++) {
        val[n++] = (uint8_t)(1 | (10 << 2));
        memset(val + n, 'x', 10);
        n += 10;
    }
    int rc;
    bool capped = false;
    char *s = to_json(val, n, meta_empty, sizeof meta_empty, 50, &capped, &rc);
    cr_assert_eq(rc, 0);
    cr_expect(capped);
    cr_expect_lt(strlen(s), 120);
    cr_expect_eq(strncmp(s, "[\"xxxxxxxxxx\",\"xxxxxxxxxx\"", 26), 0, "%s", s);
    free(s);
    s = to_json(val, n, meta_empty, sizeof meta_empty, 0, &capped, &rc);
    cr_expect(!capped);
    cr_expect_eq(strlen(s), count * 13 + 1); /* 12 per string, commas, brackets */
    free(s);
    free(val);
}

Test(variant, malformed_is_refused) {
    const uint8_t one[] = {3 << 2, 1};
    cr_expect_eq(json_rc(one, sizeof one, meta_empty, sizeof meta_empty), 0);
    /* metadata: missing, wrong version, truncated dictionary */
    cr_expect_eq(json_rc(one, sizeof one, NULL, 0), -EINVAL);
    const uint8_t v2[] = {0x02, 0x00, 0x00};
    cr_expect_eq(json_rc(one, sizeof one, v2, sizeof v2), -EINVAL);
    const uint8_t short_dict[] = {0x01, 0x05, 0x00};
    cr_expect_eq(json_rc(one, sizeof one, short_dict, sizeof short_dict), -EINVAL);
    /* values: empty, truncated int, unknown primitive, short string past the end */
    cr_expect_eq(json_rc(one, 0, meta_empty, sizeof meta_empty), -EINVAL);
    const uint8_t int64_short[] = {6 << 2, 1, 2, 3};
    cr_expect_eq(json_rc(int64_short, sizeof int64_short, meta_empty, sizeof meta_empty), -EINVAL);
    const uint8_t unknown[] = {21 << 2};
    cr_expect_eq(json_rc(unknown, sizeof unknown, meta_empty, sizeof meta_empty), -EINVAL);
    const uint8_t sstr[] = {1 | (5 << 2), 'a'};
    cr_expect_eq(json_rc(sstr, sizeof sstr, meta_empty, sizeof meta_empty), -EINVAL);
    /* decimals: scale beyond the width's precision, too many digits for decimal4 */
    const uint8_t dec_scale[] = {8 << 2, 10, 1, 0, 0, 0};
    cr_expect_eq(json_rc(dec_scale, sizeof dec_scale, meta_empty, sizeof meta_empty), -EINVAL);
    const uint8_t dec_digits[] = {8 << 2, 0, 0x00, 0xCA, 0x9A, 0x3B}; /* 10^9 */
    cr_expect_eq(json_rc(dec_digits, sizeof dec_digits, meta_empty, sizeof meta_empty), -EINVAL);
    const uint8_t dec_max[] = {8 << 2, 2, 0xFF, 0xC9, 0x9A, 0x3B}; /* 999999999, scale 2 */
    char *s = json_ok(dec_max, sizeof dec_max, meta_empty, sizeof meta_empty);
    cr_expect_str_eq(s, "9999999.99");
    free(s);
    /* arrays: count beyond the data, element offset past the end */
    const uint8_t arr_count[] = {3, 200, 0};
    cr_expect_eq(json_rc(arr_count, sizeof arr_count, meta_empty, sizeof meta_empty), -EINVAL);
    const uint8_t arr_off[] = {3, 1, 9, 10, 0};
    cr_expect_eq(json_rc(arr_off, sizeof arr_off, meta_empty, sizeof meta_empty), -EINVAL);
    /* objects: field id outside the dictionary, key offsets going backwards */
    const uint8_t obj[] = {2, 1, 0, 0, 1, 0};
    cr_expect_eq(json_rc(obj, sizeof obj, meta_empty, sizeof meta_empty), -EINVAL);
    const uint8_t meta_back[] = {0x01, 1, 2, 1, 'a', 'b'};
    cr_expect_eq(json_rc(obj, sizeof obj, meta_back, sizeof meta_back), -EINVAL);
    const uint8_t meta_a[] = {0x01, 1, 0, 1, 'a'};
    s = json_ok(obj, sizeof obj, meta_a, sizeof meta_a);
    cr_expect_str_eq(s, "{\"a\":null}");
    free(s);
}

/* Offsets may share subtrees; an array of 255 references to an array of 255 references ...
 * would print 255^depth values from a few kilobytes. It must be refused, and quickly. */
Test(variant, shared_subtrees_are_bounded, .timeout = 10) {
    enum { LEVELS = 6, WIDTH = 255 };
    size_t block = 2 + (WIDTH + 1) * 2, n = LEVELS * block + 1;
    uint8_t *val = calloc(n, 1);
    for (int l = 0; l < LEVELS; l++) {
        uint8_t *p = val + (size_t)l * block;
        p[0] = (uint8_t)(3 | (1 << 2)); /* small array, 2-byte offsets */
        p[1] = WIDTH;
        /* every element is the next level, right after this block's offsets */
        for (int i = 0; i < WIDTH; i++) p[2 + i * 2] = 0;
        p[2 + WIDTH * 2] = 1;
    }
    val[n - 1] = 0; /* the innermost level's elements: null */
    cr_expect_eq(json_rc(val, n, meta_empty, sizeof meta_empty), -EINVAL);
    free(val);
}

Test(variant, nesting_limit) {
    size_t depth = KL_VARIANT_MAX_DEPTH + 10, n = 0;
    uint8_t *val = malloc(depth * 4 + 1);
    for (size_t i = 0; i < depth; i++) {
        val[n++] = 3; /* small array, 1-byte offsets, one element right after */
        val[n++] = 1;
        val[n++] = 0;
        val[n++] = (uint8_t)0xFF; /* end offset: not checked by a reader that only starts */
    }
    val[n++] = 0;
    cr_expect_eq(json_rc(val, n, meta_empty, sizeof meta_empty), -EINVAL);
    /* within the limit it prints */
    n = 0;
    for (size_t i = 0; i < 100; i++) {
        val[n++] = 3;
        val[n++] = 1;
        val[n++] = 0;
        val[n++] = 0xFF;
    }
    val[n++] = 0;
    char *s = json_ok(val, n, meta_empty, sizeof meta_empty);
    cr_expect_eq(strlen(s), 100 * 2 + 4);
    free(s);
    free(val);
}
