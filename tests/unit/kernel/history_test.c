#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/history.h"

static char dir[64];
static char path[128];

static void make_tmp(void) {
    strcpy(dir, "/tmp/kl_history_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    /* a missing parent directory is created by open */
    snprintf(path, sizeof path, "%s/sub/deeper/history.sqlite", dir);
}

static void remove_tmp(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(history, .init = make_tmp, .fini = remove_tmp);

static kl_history *open_db(void) {
    char err[256] = "";
    kl_history *h = kl_history_open(path, err, sizeof err);
    cr_assert_not_null(h, "open failed: %s", err);
    return h;
}

/* Compares a JSON value with the JSON text want. */
static void expect_json(json_t *got, const char *want) {
    cr_assert_not_null(got);
    json_error_t e;
    json_t *w = json_loads(want, 0, &e);
    cr_assert_not_null(w, "bad expectation: %s", e.text);
    char *g = json_dumps(got, JSON_COMPACT);
    cr_expect(json_equal(got, w), "got %s, want %s", g, want);
    free(g);
    json_decref(w);
    json_decref(got);
}

/* Session 1: lines 1..4; session 2: lines 1..2. */
static void fill(kl_history *h, int64_t *s1, int64_t *s2) {
    cr_assert_eq(kl_history_session_begin(h, s1), 0);
    cr_assert_eq(kl_history_store(h, *s1, 1, "SELECT 1", "1"), 0);
    cr_assert_eq(kl_history_store(h, *s1, 2, "SHOW TABLES", NULL), 0);
    cr_assert_eq(kl_history_store(h, *s1, 3, "SELECT 1", "1"), 0);
    cr_assert_eq(kl_history_store(h, *s1, 4, "%lsmagic", "magics"), 0);
    cr_assert_eq(kl_history_session_end(h, *s1, 4), 0);
    cr_assert_eq(kl_history_session_begin(h, s2), 0);
    cr_assert_eq(kl_history_store(h, *s2, 1, "SELECT 2", "2"), 0);
    cr_assert_eq(kl_history_store(h, *s2, 2, "SELECT 1", NULL), 0);
}

Test(history, sessions_are_numbered_upwards) {
    kl_history *h = open_db();
    int64_t a, b;
    cr_assert_eq(kl_history_session_begin(h, &a), 0);
    cr_assert_eq(kl_history_session_begin(h, &b), 0);
    cr_expect_gt(a, 0);
    cr_expect_eq(b, a + 1);
    cr_expect_eq(kl_history_session_end(h, b, 0), 0);
    cr_expect_eq(kl_history_session_end(h, b + 100, 0), -1);
    kl_history_close(h);
}

Test(history, tail_returns_last_n_oldest_first) {
    kl_history *h = open_db();
    int64_t s1, s2;
    fill(h, &s1, &s2);
    char want[256];
    snprintf(want, sizeof want,
             "[[%lld,4,\"%%lsmagic\"],[%lld,1,\"SELECT 2\"],[%lld,2,\"SELECT 1\"]]", (long long)s1,
             (long long)s2, (long long)s2);
    expect_json(kl_history_tail(h, 3, false), want);
    json_t *all = kl_history_tail(h, 0, false);
    cr_expect_eq(json_array_size(all), 6);
    json_decref(all);
    all = kl_history_tail(h, 100, false);
    cr_expect_eq(json_array_size(all), 6);
    json_decref(all);
    kl_history_close(h);
}

Test(history, output_pairs) {
    kl_history *h = open_db();
    int64_t s1, s2;
    fill(h, &s1, &s2);
    char want[256];
    snprintf(want, sizeof want, "[[%lld,1,[\"SELECT 2\",\"2\"]],[%lld,2,[\"SELECT 1\",null]]]",
             (long long)s2, (long long)s2);
    expect_json(kl_history_tail(h, 2, true), want);
    kl_history_close(h);
}

Test(history, range_absolute_and_relative) {
    kl_history *h = open_db();
    int64_t s1, s2;
    fill(h, &s1, &s2);
    char want[256];
    snprintf(want, sizeof want, "[[%lld,2,\"SHOW TABLES\"],[%lld,3,\"SELECT 1\"]]", (long long)s1,
             (long long)s1);
    expect_json(kl_history_range(h, s2, s1, 2, 4, false), want);
    /* session -1 relative to the current one; stop <= 0 runs to the end */
    snprintf(want, sizeof want, "[[%lld,3,\"SELECT 1\"],[%lld,4,\"%%lsmagic\"]]", (long long)s1,
             (long long)s1);
    expect_json(kl_history_range(h, s2, -1, 3, 0, false), want);
    /* session 0 is the current one */
    snprintf(want, sizeof want, "[[%lld,1,[\"SELECT 2\",\"2\"]],[%lld,2,[\"SELECT 1\",null]]]",
             (long long)s2, (long long)s2);
    expect_json(kl_history_range(h, s2, 0, 1, 0, true), want);
    expect_json(kl_history_range(h, s2, s2 + 5, 1, 0, false), "[]");
    kl_history_close(h);
}

Test(history, search_glob_n_and_unique) {
    kl_history *h = open_db();
    int64_t s1, s2;
    fill(h, &s1, &s2);
    json_t *r = kl_history_search(h, "SELECT*", 0, false, false);
    cr_expect_eq(json_array_size(r), 4);
    json_decref(r);

    char want[256];
    snprintf(want, sizeof want, "[[%lld,1,\"SELECT 2\"],[%lld,2,\"SELECT 1\"]]", (long long)s2,
             (long long)s2);
    expect_json(kl_history_search(h, "SELECT*", 2, false, false), want);
    /* unique keeps the newest "SELECT 1" (session 2, line 2) only */
    expect_json(kl_history_search(h, "SELECT*", 0, true, false), want);
    /* n applies after unique: the newest two distinct inputs */
    snprintf(want, sizeof want,
             "[[%lld,4,\"%%lsmagic\"],[%lld,1,\"SELECT 2\"],[%lld,2,\"SELECT 1\"]]", (long long)s1,
             (long long)s2, (long long)s2);
    expect_json(kl_history_search(h, "*", 3, true, false), want);
    /* GLOB is case-sensitive and '?' is one character */
    expect_json(kl_history_search(h, "select*", 0, false, false), "[]");
    r = kl_history_search(h, "SELECT ?", 0, false, true);
    cr_expect_eq(json_array_size(r), 4);
    json_t *first = json_array_get(r, 0);
    cr_expect_str_eq(json_string_value(json_array_get(json_array_get(first, 2), 1)), "1");
    json_decref(r);
    kl_history_close(h);
}

Test(history, pattern_is_a_parameter_not_sql) {
    kl_history *h = open_db();
    int64_t s;
    cr_assert_eq(kl_history_session_begin(h, &s), 0);
    cr_assert_eq(kl_history_store(h, s, 1, "it's 'quoted'; DROP TABLE history", NULL), 0);
    json_t *r = kl_history_search(h, "*'; DROP TABLE history", 0, false, false);
    cr_expect_eq(json_array_size(r), 1);
    json_decref(r);
    r = kl_history_tail(h, 5, false);
    cr_expect_eq(json_array_size(r), 1);
    json_decref(r);
    kl_history_close(h);
}

Test(history, restoring_a_line_replaces_it) {
    kl_history *h = open_db();
    int64_t s;
    cr_assert_eq(kl_history_session_begin(h, &s), 0);
    cr_assert_eq(kl_history_store(h, s, 1, "SELECT 1", "1"), 0);
    cr_assert_eq(kl_history_store(h, s, 1, "SELECT 9", "9"), 0);
    char want[128];
    snprintf(want, sizeof want, "[[%lld,1,[\"SELECT 9\",\"9\"]]]", (long long)s);
    expect_json(kl_history_tail(h, 10, true), want);
    kl_history_close(h);
}

Test(history, reopen_persists) {
    kl_history *h = open_db();
    int64_t s1, s2;
    fill(h, &s1, &s2);
    kl_history_close(h);
    cr_expect_eq(access(path, F_OK), 0);

    h = open_db();
    json_t *r = kl_history_tail(h, 0, true);
    cr_expect_eq(json_array_size(r), 6);
    json_decref(r);
    int64_t s3;
    cr_assert_eq(kl_history_session_begin(h, &s3), 0);
    cr_expect_eq(s3, s2 + 1);
    kl_history_close(h);
}

Test(history, in_memory_database) {
    char err[128];
    kl_history *h = kl_history_open(":memory:", err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    int64_t s;
    cr_assert_eq(kl_history_session_begin(h, &s), 0);
    cr_assert_eq(kl_history_store(h, s, 1, "SELECT 1", NULL), 0);
    json_t *r = kl_history_tail(h, 1, false);
    cr_expect_eq(json_array_size(r), 1);
    json_decref(r);
    kl_history_close(h);
}

Test(history, open_failure_reports_a_message) {
    char err[256] = "";
    /* the parent "directory" is a regular file */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/file", dir);
    FILE *f = fopen(bad, "w");
    cr_assert_not_null(f);
    fclose(f);
    strcat(bad, "/history.sqlite");
    cr_expect_null(kl_history_open(bad, err, sizeof err));
    cr_expect_neq(err[0], '\0');
}
