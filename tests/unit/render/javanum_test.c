/* Double/Float text against java.lang.Double/Float.toString as a real Java 17 JVM printed them:
 * tests/data/render/java_numbers.txt (special and random values) and java17_numbers.txt (values
 * chosen where JDK 17 does not print the shortest decimal, marked "long", and others around
 * powers of two and ten, subnormals, large integers). Every line must match byte for byte. */
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

typedef struct tally {
    int lines, marked, bad;
} tally;

/* Compares every line of a vector file; marked counts lines whose flag is `flag`. */
static tally check_file(const char *path, const char *flag) {
    size_t len;
    char *text = rd_read(path, &len);
    cr_assert_not_null(text, "%s missing: run tests/data/gen_render_expected.py and gen_javanum.py",
                       path);
    tally t = {0};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char kind, java[64], mark[16] = "";
        unsigned long long bits;
        cr_assert_geq(sscanf(line, "%c %llx %63s %15s", &kind, &bits, java, mark), 3, "%s", line);
        char ours[KL_JAVANUM_LEN];
        size_t n = kind == 'd' ? kl_javanum_double(bits_double(bits), ours)
                               : kl_javanum_float(bits_float((uint32_t)bits), ours);
        cr_assert_eq(n, strlen(ours));
        t.lines++;
        if (strcmp(mark, flag) == 0) t.marked++;
        if (strcmp(ours, java) != 0) {
            cr_log_error("%s: ours %s", line, ours);
            t.bad++;
        }
    }
    free(text);
    return t;
}

Test(javanum, matches_the_jvm) {
    tally t = check_file(RENDER_DATA "/java_numbers.txt", "legacy");
    cr_expect_gt(t.lines, 1000);
    cr_expect_gt(t.marked, 0);
    cr_expect_eq(t.bad, 0, "%d of %d values differ", t.bad, t.lines);
}

Test(javanum, matches_java_17_where_it_is_not_shortest) {
    tally t = check_file(RENDER_DATA "/java17_numbers.txt", "long");
    cr_expect_gt(t.lines, 4000);
    cr_expect_gt(t.marked, 2000);
    cr_expect_eq(t.bad, 0, "%d of %d values differ", t.bad, t.lines);
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
        {2e-3, "0.002"},
        {9.999e-4, "9.999E-4"},
        {1e7, "1.0E7"},
        {9999999.0, "9999999.0"},
        {100.0, "100.0"},
        {-1.5, "-1.5"},
        {4.9e-324, "4.9E-324"},
        {1e-323, "1.0E-323"}, /* JDK 19+: 9.9E-324 */
        {1.7976931348623157e308, "1.7976931348623157E308"},
        {0.1, "0.1"},
        {1e23, "9.999999999999999E22"},                   /* JDK 19+: 1.0E23 */
        {2.82879384806159e17, "2.82879384806159008E17"},  /* JDK 19+: 2.82879384806159E17 */
        {1.9400994884341945e25, "1.9400994884341944E25"}, /* not the closest */
        {9007199254740993.0, "9.007199254740992E15"},     /* 2^53 + 1 rounds to 2^53 */
        {-1.25e-8, "-1.25E-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kl_javanum_double(cases[i].v, b);
        cr_expect_str_eq(b, cases[i].s);
    }
    struct {
        float v;
        const char *s;
    } fcases[] = {
        {0.1f, "0.1"},
        {1.4e-45f, "1.4E-45"},
        {3.4028235e38f, "3.4028235E38"},
        {-NAN, "NaN"},
        {-0.0f, "-0.0"},
        {2147483648.0f, "2.14748365E9"}, /* 2^31: the integer digits, rounded */
        {1e10f, "1.0E10"},
        {1.17549435e-38f, "1.17549435E-38"}, /* JDK 19+: 1.1754944E-38 */
    };
    for (size_t i = 0; i < sizeof fcases / sizeof fcases[0]; i++) {
        kl_javanum_float(fcases[i].v, b);
        cr_expect_str_eq(b, fcases[i].s);
    }
}

Test(javanum, longest_outputs_fit) {
    char b[KL_JAVANUM_LEN];
    /* Negative, many digits, three-digit negative exponent. */
    size_t n = kl_javanum_double(-2.2250738585072014e-308, b);
    cr_expect_str_eq(b, "-2.2250738585072014E-308");
    cr_expect_lt(n, (size_t)KL_JAVANUM_LEN);
    n = kl_javanum_double(-1.2345678901234567e-3, b);
    cr_expect_lt(n, (size_t)KL_JAVANUM_LEN);
    cr_expect_eq(strtod(b, NULL), -1.2345678901234567e-3);
}
