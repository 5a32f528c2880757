#include <criterion/criterion.h>
#include <stdio.h>

#include "runtime/strmap.h"

Test(strmap, put_get_replace_delete) {
    kl_strmap *m = kl_strmap_new();
    int a = 1, b = 2;
    cr_assert_eq(kl_strmap_put(m, "alpha", &a), 0);
    cr_assert_eq(kl_strmap_get(m, "alpha"), &a);
    cr_assert_null(kl_strmap_get(m, "beta"));
    cr_assert_eq(kl_strmap_put(m, "alpha", &b), 0);
    cr_assert_eq(kl_strmap_get(m, "alpha"), &b);
    cr_assert_eq(kl_strmap_len(m), 1);
    cr_assert_eq(kl_strmap_del(m, "alpha"), &b);
    cr_assert_null(kl_strmap_get(m, "alpha"));
    cr_assert_eq(kl_strmap_len(m), 0);
    kl_strmap_free(m);
}

static void count(const char *key, void *value, void *arg) {
    (void)key;
    *(long *)arg += (long)(size_t)value;
}

Test(strmap, grows_and_keeps_every_entry) {
    kl_strmap *m = kl_strmap_new();
    char key[32];
    for (size_t i = 1; i <= 5000; i++) {
        snprintf(key, sizeof key, "k%zu", i);
        cr_assert_eq(kl_strmap_put(m, key, (void *)i), 0);
    }
    cr_assert_eq(kl_strmap_len(m), 5000);
    for (size_t i = 1; i <= 5000; i++) {
        snprintf(key, sizeof key, "k%zu", i);
        cr_assert_eq((size_t)kl_strmap_get(m, key), i);
    }
    long sum = 0;
    kl_strmap_foreach(m, count, &sum);
    cr_assert_eq(sum, 5000L * 5001 / 2);
    kl_strmap_free(m);
}
