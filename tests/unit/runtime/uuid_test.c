#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/uuid.h"

static bool is_lower_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

Test(uuid, has_the_canonical_lower_case_form) {
    char u[KL_UUID_STRLEN];
    memset(u, 'X', sizeof(u));
    cr_assert_eq(kl_uuid_v4(u), 0);
    cr_assert_eq(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_assert_eq(u[i], '-', "hyphen at %d in %s", i, u);
        else
            cr_assert(is_lower_hex(u[i]), "hex digit at %d in %s", i, u);
    }
}

Test(uuid, version_and_variant_bits) {
    for (int n = 0; n < 200; n++) {
        char u[KL_UUID_STRLEN];
        cr_assert_eq(kl_uuid_v4(u), 0);
        cr_assert_eq(u[14], '4', "version nibble in %s", u);
        cr_assert(strchr("89ab", u[19]) != NULL, "RFC 4122 variant in %s", u);
    }
}

static int cmp(const void *a, const void *b) {
    return strcmp(a, b);
}

Test(uuid, thousand_are_unique) {
    static char all[1000][KL_UUID_STRLEN];
    for (int i = 0; i < 1000; i++) cr_assert_eq(kl_uuid_v4(all[i]), 0);
    qsort(all, 1000, KL_UUID_STRLEN, cmp);
    for (int i = 1; i < 1000; i++)
        cr_assert_neq(strcmp(all[i - 1], all[i]), 0, "duplicate %s", all[i]);
}
