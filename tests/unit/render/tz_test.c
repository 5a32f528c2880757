/* Zone resolution and UTC offsets against what Spark's own resolution (DateTimeUtils.getZoneId on
 * a real JVM) gave at instants around historical and future transitions
 * (tests/data/render/tz_offsets.txt), then ids, malformed zone files and concurrent use. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render/render_data.h"
#include "render/tz.h"

Test(tz, offsets_match_java) {
    size_t len;
    char *text = rd_read(RENDER_DATA "/tz_offsets.txt", &len);
    cr_assert_not_null(text, "run tests/data/gen_render_expected.py");
    int checked = 0, bad = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char zone[128];
        long long t;
        int off;
        cr_assert_eq(sscanf(line, "%127s %lld %d", zone, &t, &off), 3, "%s", line);
        const kl_tz *tz;
        int rc = kl_tz_get(zone, &tz);
        cr_assert_eq(rc, 0, "%s: %d", zone, rc);
        int32_t ours = kl_tz_offset(tz, t);
        if (ours != off) {
            if (bad < 20) cr_log_error("%s at %lld: ours %d, java %d", zone, t, ours, off);
            bad++;
        }
        checked++;
    }
    free(text);
    cr_expect_gt(checked, 1000);
    cr_expect_eq(bad, 0, "%d of %d offsets differ", bad, checked);
}

Test(tz, ids_resolve_like_java) {
    const kl_tz *a, *b;
    cr_assert_eq(kl_tz_get("PST", &a), 0);
    cr_assert_eq(kl_tz_get("America/Los_Angeles", &b), 0);
    cr_expect_eq(kl_tz_offset(a, 1720000000), kl_tz_offset(b, 1720000000));
    cr_expect_eq(kl_tz_offset(a, 1720000000), -7 * 3600);
    cr_assert_eq(kl_tz_get("+5:30", &a), 0);
    cr_expect_eq(kl_tz_offset(a, 0), 5 * 3600 + 30 * 60);
    cr_assert_eq(kl_tz_get("-0830", &a), 0);
    cr_expect_eq(kl_tz_offset(a, 0), -(8 * 3600 + 30 * 60));
    cr_assert_eq(kl_tz_get("UTC+01:02:03", &a), 0);
    cr_expect_eq(kl_tz_offset(a, 0), 3723);
    cr_assert_eq(kl_tz_get("GMT-8", &a), 0);
    cr_expect_eq(kl_tz_offset(a, 0), -8 * 3600);
    cr_assert_eq(kl_tz_get("Z", &a), 0);
    cr_expect_eq(kl_tz_offset(a, 0), 0);
    cr_expect_str_eq(kl_tz_name(a), "Z");
    /* The same id twice is the same shared zone. */
    cr_assert_eq(kl_tz_get("Europe/Berlin", &a), 0);
    cr_assert_eq(kl_tz_get("Europe/Berlin", &b), 0);
    cr_expect_eq(a, b);
}

Test(tz, bad_ids_are_refused) {
    const kl_tz *z = (const kl_tz *)1;
    cr_expect_eq(kl_tz_get("Mars/Olympus_Mons", &z), -ENOENT);
    cr_expect_null(z);
    cr_expect_eq(kl_tz_get("../../etc/passwd", &z), -EINVAL);
    cr_expect_eq(kl_tz_get("America/../../../etc/passwd", &z), -EINVAL);
    cr_expect_eq(kl_tz_get("/etc/localtime", &z), -EINVAL);
    cr_expect_eq(kl_tz_get("+19:00", &z), -EINVAL);
    cr_expect_eq(kl_tz_get("+1:2", &z), -EINVAL);
    cr_expect_eq(kl_tz_get("+12:60", &z), -EINVAL);
    cr_expect_eq(kl_tz_get("", &z), -EINVAL);
    cr_expect_eq(kl_tz_get("America", &z), -ENOENT); /* a directory, not a zone */
    cr_expect_eq(kl_tz_get(NULL, &z), -EINVAL);
}

/* A minimal version-2 TZif: no 32-bit data, nt transitions at t[i] to type ty[i]. */
static size_t tzif(uint8_t *out, int nt, const int64_t *t, const uint8_t *ty, int ntypes,
                   const int32_t *offs, const char *footer) {
    size_t n = 0;
    uint8_t hdr[44] = {'T', 'Z', 'i', 'f', '2'};
    /* v1 header: all counts 0 except typecnt 1 (RFC 8536 requires >= 1) and one type */
    memcpy(out + n, hdr, 44);
    out[n + 39] = 1;
    n += 44;
    memset(out + n, 0, 6);
    n += 6;
    memcpy(out + n, hdr, 44);
    out[n + 35] = (uint8_t)nt;
    out[n + 39] = (uint8_t)ntypes;
    out[n + 43] = 1; /* charcnt */
    n += 44;
    for (int i = 0; i < nt; i++)
        for (int k = 0; k < 8; k++) out[n++] = (uint8_t)((uint64_t)t[i] >> (56 - 8 * k));
    for (int i = 0; i < nt; i++) out[n++] = ty[i];
    for (int i = 0; i < ntypes; i++) {
        for (int k = 0; k < 4; k++) out[n++] = (uint8_t)((uint32_t)offs[i] >> (24 - 8 * k));
        out[n++] = 0;
        out[n++] = 0;
    }
    out[n++] = 0; /* designation chars */
    if (footer) {
        out[n++] = '\n';
        memcpy(out + n, footer, strlen(footer));
        n += strlen(footer);
        out[n++] = '\n';
    }
    return n;
}

Test(tz, parses_and_checks_tzif) {
    uint8_t buf[512];
    int64_t t[] = {-1000, 1000};
    uint8_t ty[] = {1, 0};
    int32_t offs[] = {3600, -7200};
    size_t n = tzif(buf, 2, t, ty, 2, offs, "<+03>-3");
    kl_tz *z;
    cr_assert_eq(kl_tz_parse(buf, n, &z), 0);
    cr_expect_eq(kl_tz_offset(z, -5000), 3600);  /* before the first: type 0 */
    cr_expect_eq(kl_tz_offset(z, -1000), -7200); /* at a transition: the new type */
    cr_expect_eq(kl_tz_offset(z, 999), -7200);
    cr_expect_eq(kl_tz_offset(z, 1000), 3 * 3600); /* from the last one on: the footer rule */
    cr_expect_eq(kl_tz_offset(z, INT64_MAX), 3 * 3600);
    kl_tz_free(z);

    /* Every truncation fails cleanly. */
    for (size_t k = 0; k + 1 < n; k++) {
        int rc = kl_tz_parse(buf, k, &z);
        if (rc == 0) {
            kl_tz_free(z); /* only a cut inside the optional footer could parse */
            cr_expect_geq(k, n - 9, "parsed a %zu-byte prefix", k);
        } else {
            cr_expect_eq(rc, -EINVAL);
        }
    }
    /* A type index out of range, unordered transitions, a bad footer. */
    uint8_t bad_ty[] = {1, 2};
    n = tzif(buf, 2, t, bad_ty, 2, offs, "");
    cr_expect_eq(kl_tz_parse(buf, n, &z), -EINVAL);
    int64_t bad_t[] = {1000, -1000};
    n = tzif(buf, 2, bad_t, ty, 2, offs, "");
    cr_expect_eq(kl_tz_parse(buf, n, &z), -EINVAL);
    n = tzif(buf, 2, t, ty, 2, offs, "EST5EDT,M13.1.0,M11.1.0");
    cr_expect_eq(kl_tz_parse(buf, n, &z), -EINVAL);
    int32_t huge[] = {INT32_MIN, 0};
    n = tzif(buf, 2, t, ty, 2, huge, "");
    cr_expect_eq(kl_tz_parse(buf, n, &z), -EINVAL);
}

Test(tz, posix_rules_beyond_the_last_transition) {
    uint8_t buf[512];
    int64_t t[] = {0};
    uint8_t ty[] = {0};
    int32_t offs[] = {-5 * 3600};
    kl_tz *z;
    /* US rule: DST from the 2nd Sunday of March 02:00 to the 1st Sunday of November 02:00. */
    size_t n = tzif(buf, 1, t, ty, 1, offs, "EST5EDT,M3.2.0,M11.1.0");
    cr_assert_eq(kl_tz_parse(buf, n, &z), 0);
    /* 2030-03-10 is the 2nd Sunday: 02:00 EST = 07:00 UTC. */
    cr_expect_eq(kl_tz_offset(z, 1899356400 - 1), -5 * 3600);
    cr_expect_eq(kl_tz_offset(z, 1899356400), -4 * 3600);
    /* 2030-11-03 02:00 EDT = 06:00 UTC. */
    cr_expect_eq(kl_tz_offset(z, 1919916000 - 1), -4 * 3600);
    cr_expect_eq(kl_tz_offset(z, 1919916000), -5 * 3600);
    kl_tz_free(z);
    /* Southern hemisphere (DST across the new year) and Julian days. */
    n = tzif(buf, 1, t, ty, 1, offs, "<-03>3<-02>,J60/0,J300/0");
    cr_assert_eq(kl_tz_parse(buf, n, &z), 0);
    /* J60 is March 1 even in a leap year: 2028-03-01 00:00 -03 = 03:00 UTC. */
    cr_expect_eq(kl_tz_offset(z, 1835492400 - 1), -3 * 3600);
    cr_expect_eq(kl_tz_offset(z, 1835492400), -2 * 3600);
    kl_tz_free(z);
    /* All-year DST as zic writes it. */
    n = tzif(buf, 1, t, ty, 1, offs, "EST5EDT,0/0,J365/25");
    cr_assert_eq(kl_tz_parse(buf, n, &z), 0);
    cr_expect_eq(kl_tz_offset(z, 1900000000), -4 * 3600);
    cr_expect_eq(kl_tz_offset(z, 1893456000), -4 * 3600); /* 2030-01-01 */
    kl_tz_free(z);
    /* The ends of the int64 range neither overflow nor fail. */
    n = tzif(buf, 1, t, ty, 1, offs, "EST5EDT,M3.2.0,M11.1.0");
    cr_assert_eq(kl_tz_parse(buf, n, &z), 0);
    int32_t o = kl_tz_offset(z, INT64_MAX);
    cr_expect(o == -5 * 3600 || o == -4 * 3600);
    o = kl_tz_offset(z, INT64_MIN);
    cr_expect(o == -5 * 3600); /* before the first transition: type 0 */
    kl_tz_free(z);
}

static void *lookup_many(void *arg) {
    static const char *const ids[] = {"Asia/Tokyo", "Europe/Paris",       "America/Chicago",
                                      "+03:00",     "Australia/Adelaide", "IST"};
    uintptr_t k = (uintptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        const kl_tz *z;
        if (kl_tz_get(ids[(k + (uintptr_t)i) % 6], &z) != 0) return (void *)1;
        (void)kl_tz_offset(z, 1700000000 + i * 3600);
    }
    return NULL;
}

Test(tz, concurrent_lookups_share_one_cache) {
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, lookup_many, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        cr_expect_null(r);
    }
}
