/* Test helper: reads a file of hex digits (whitespace ignored) into bytes. */
#ifndef KL_TEST_HEXFILE_H
#define KL_TEST_HEXFILE_H

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Returns a malloc'd buffer (caller frees) with *len bytes; fails the test on bad input. */
static inline uint8_t *read_hex(const char *path, size_t *len) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    uint8_t *out = malloc(cap);
    int hi = -1, c;
    while ((c = fgetc(f)) != EOF) {
        if (isspace(c)) continue;
        cr_assert(isxdigit(c), "%s: not hex: '%c'", path, c);
        int v = isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == cap) out = realloc(out, cap *= 2);
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    fclose(f);
    cr_assert_eq(hi, -1, "%s: odd number of hex digits", path);
    *len = n;
    return out;
}

#endif
