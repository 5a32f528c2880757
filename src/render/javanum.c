#include "render/javanum.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shortest digits: printf's %.*e rounds correctly, so the first precision whose output reads
 * back as v gives the closest decimal of minimal length. Java never uses a single digit: with
 * length 1 possible it takes the closest two-digit decimal instead (4.9E-324, not 5E-324), which
 * is where the search starts. Digits go to digits[] without a point; returns their count and
 * sets *exp so that v = 0.d1d2... * 10^(*exp + 1), i.e. d1.d2... * 10^*exp. */
static int shortest(double v, bool single, char digits[24], int *exp) {
    char tmp[40];
    int max = single ? 9 : 17;
    for (int p = 2; p <= max; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        bool same = single ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v;
        if (same || p == max) break;
    }
    /* tmp is "d.ddde[+-]xx" */
    int n = 0;
    const char *s = tmp;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[n++] = *s;
    *exp = atoi(s + 1);
    while (n > 1 && digits[n - 1] == '0') n--;
    digits[n] = '\0';
    return n;
}

static size_t format(double v, bool single, char *buf) {
    if (isnan(v)) return (size_t)sprintf(buf, "NaN");
    if (isinf(v)) return (size_t)sprintf(buf, v < 0 ? "-Infinity" : "Infinity");
    if (v == 0) return (size_t)sprintf(buf, signbit(v) ? "-0.0" : "0.0");
    size_t n = 0;
    if (v < 0) {
        buf[n++] = '-';
        v = -v;
    }
    char d[24];
    int e;
    int nd = shortest(v, single, d, &e);
    if (v >= 1e-3 && v < 1e7) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++) buf[n++] = i < nd ? d[i] : '0';
            buf[n++] = '.';
            if (nd > e + 1)
                for (int i = e + 1; i < nd; i++) buf[n++] = d[i];
            else
                buf[n++] = '0';
        } else {
            buf[n++] = '0';
            buf[n++] = '.';
            for (int i = 0; i < -e - 1; i++) buf[n++] = '0';
            for (int i = 0; i < nd; i++) buf[n++] = d[i];
        }
        buf[n] = '\0';
        return n;
    }
    buf[n++] = d[0];
    buf[n++] = '.';
    if (nd > 1)
        for (int i = 1; i < nd; i++) buf[n++] = d[i];
    else
        buf[n++] = '0';
    return n + (size_t)sprintf(buf + n, "E%d", e);
}

size_t kl_javanum_double(double v, char buf[KL_JAVANUM_LEN]) {
    return format(v, false, buf);
}

size_t kl_javanum_float(float v, char buf[KL_JAVANUM_LEN]) {
    return format(v, true, buf);
}
