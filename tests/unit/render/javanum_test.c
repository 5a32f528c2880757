/* Double/Float text against java.lang.Double/Float.toString as a real JVM printed them
 * (tests/data/render/java_numbers.txt). Lines marked "legacy" are values this JDK (17) prints
 * other than the JDK 19+ specification says (too many digits, or not the closest decimal); for
 * them ours must be no longer and read back as the same value. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/javanum.h"
#include "render/render_data.h"

static double bits_double(uint64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static float bits_float(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

Test(javanum, matches_the_jvm) {
    size_t len;
    char *text = rd_read(RENDER_DATA "/java_numbers.txt", &len);
    cr_assert_not_null(text, "run tests/data/gen_render_expected.py");
    int exact = 0, legacy = 0, bad = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char kind, java[64], flag[16] = "";
        unsigned long long bits;
        cr_assert_geq(sscanf(line, "%c %llx %63s %15s", &kind, &bits, java, flag), 3, "%s", line);
        char ours[KL_JAVANUM_LEN];
        size_t n;
        double back, value;
        if (kind == 'd') {
            value = bits_double(bits);
            n = kl_javanum_double(value, ours);
            back = strtod(ours, NULL);
        } else {
            value = bits_float((uint32_t)bits);
            n = kl_javanum_float((float)value, ours);
            back = strtof(ours, NULL);
        }
        cr_assert_eq(n, strlen(ours));
        if (strcmp(flag, "legacy") == 0) {
            legacy++;
            if (!(strlen(ours) <= strlen(java) && back == value && strcmp(ours, java) != 0)) {
                cr_log_error("%c %s: ours %s, JDK 17 %s", kind, line, ours, java);
                bad++;
            }
            continue;
        }
        exact++;
        if (strcmp(ours, java) != 0) {
            cr_log_error("%c %016llx: ours %s, java %s", kind, bits, ours, java);
            bad++;
        }
    }
    free(text);
    cr_expect_gt(exact, 1000);
    cr_expect_gt(legacy, 0);
    cr_expect_eq(bad, 0, "%d of %d values differ", bad, exact + legacy);
}

Test(javanum, special_values_and_notation_boundaries) {
    char b[KL_JAVANUM_LEN];
    struct {
        double v;
        const char *s;
    } cases[] = {
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {NAN, "NaN"},
        {INFINITY, "Infinity"},
        {-INFINITY, "-Infinity"},
        {1e-3, "0.001"},
        {9.999e-4, "9.999E-4"},
        {1e7, "1.0E7"},
        {9999999.0, "9999999.0"},
        {100.0, "100.0"},
        {-1.5, "-1.5"},
        {4.9e-324, "4.9E-324"},
        {1.7976931348623157e308, "1.7976931348623157E308"},
        {0.1, "0.1"},
        {1e23, "1.0E23"}, /* JDK 17: 9.999999999999999E22 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kl_javanum_double(cases[i].v, b);
        cr_expect_str_eq(b, cases[i].s);
    }
    kl_javanum_float(0.1f, b);
    cr_expect_str_eq(b, "0.1");
    kl_javanum_float(1.4e-45f, b);
    cr_expect_str_eq(b, "1.4E-45");
    kl_javanum_float(3.4028235e38f, b);
    cr_expect_str_eq(b, "3.4028235E38");
    kl_javanum_float(-NAN, b);
    cr_expect_str_eq(b, "NaN");
}
