#include <criterion/criterion.h>
#include <dlfcn.h>
#include <sqlite3.h>
#include <stdarg.h>
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

/* What a connection of the session's owner sees, and what every connection sees with
 * --shared-session. */
static kl_history_view own(int64_t current) {
    return (kl_history_view){.current = current};
}
static kl_history_view shared(int64_t current) {
    return (kl_history_view){.current = current, .all = true};
}

static int64_t begin(kl_history *h, const char *user) {
    int64_t s = 0;
    cr_assert_eq(kl_history_session_begin(h, user, "client-session", &s), 0);
    return s;
}

/* Session 1: lines 1..4; session 2: lines 1..2, both alice's. */
static void fill(kl_history *h, int64_t *s1, int64_t *s2) {
    *s1 = begin(h, "alice");
    cr_assert_eq(kl_history_store(h, *s1, 1, "SELECT 1", "1"), 0);
    cr_assert_eq(kl_history_store(h, *s1, 2, "SHOW TABLES", NULL), 0);
    cr_assert_eq(kl_history_store(h, *s1, 3, "SELECT 1", "1"), 0);
    cr_assert_eq(kl_history_store(h, *s1, 4, "%lsmagic", "magics"), 0);
    cr_assert_eq(kl_history_session_end(h, *s1, 4), 0);
    *s2 = begin(h, "alice");
    cr_assert_eq(kl_history_store(h, *s2, 1, "SELECT 2", "2"), 0);
    cr_assert_eq(kl_history_store(h, *s2, 2, "SELECT 1", NULL), 0);
}

Test(history, sessions_are_numbered_upwards) {
    kl_history *h = open_db();
    int64_t a = begin(h, "alice"), b = begin(h, "bob");
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
    expect_json(kl_history_tail(h, own(s2), 3, false), want);
    json_t *all = kl_history_tail(h, own(s2), 0, false);
    cr_expect_eq(json_array_size(all), 6);
    json_decref(all);
    all = kl_history_tail(h, own(s2), 100, false);
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
    expect_json(kl_history_tail(h, own(s2), 2, true), want);
    kl_history_close(h);
}

Test(history, range_absolute_and_relative) {
    kl_history *h = open_db();
    int64_t s1, s2;
    fill(h, &s1, &s2);
    char want[256];
    snprintf(want, sizeof want, "[[%lld,2,\"SHOW TABLES\"],[%lld,3,\"SELECT 1\"]]", (long long)s1,
             (long long)s1);
    expect_json(kl_history_range(h, own(s2), s1, 2, 4, false), want);
    /* session -1 relative to the current one; stop <= 0 runs to the end */
    snprintf(want, sizeof want, "[[%lld,3,\"SELECT 1\"],[%lld,4,\"%%lsmagic\"]]", (long long)s1,
             (long long)s1);
    expect_json(kl_history_range(h, own(s2), -1, 3, 0, false), want);
    /* session 0 is the current one */
    snprintf(want, sizeof want, "[[%lld,1,[\"SELECT 2\",\"2\"]],[%lld,2,[\"SELECT 1\",null]]]",
             (long long)s2, (long long)s2);
    expect_json(kl_history_range(h, own(s2), 0, 1, 0, true), want);
    expect_json(kl_history_range(h, own(s2), s2 + 5, 1, 0, false), "[]");
    kl_history_close(h);
}

Test(history, search_glob_n_and_unique) {
    kl_history *h = open_db();
    int64_t s1, s2;
    fill(h, &s1, &s2);
    json_t *r = kl_history_search(h, own(s2), "SELECT*", 0, false, false);
    cr_expect_eq(json_array_size(r), 4);
    json_decref(r);

    char want[256];
    snprintf(want, sizeof want, "[[%lld,1,\"SELECT 2\"],[%lld,2,\"SELECT 1\"]]", (long long)s2,
             (long long)s2);
    expect_json(kl_history_search(h, own(s2), "SELECT*", 2, false, false), want);
    /* unique keeps the newest "SELECT 1" (session 2, line 2) only */
    expect_json(kl_history_search(h, own(s2), "SELECT*", 0, true, false), want);
    /* n applies after unique: the newest two distinct inputs */
    snprintf(want, sizeof want,
             "[[%lld,4,\"%%lsmagic\"],[%lld,1,\"SELECT 2\"],[%lld,2,\"SELECT 1\"]]", (long long)s1,
             (long long)s2, (long long)s2);
    expect_json(kl_history_search(h, own(s2), "*", 3, true, false), want);
    /* GLOB is case-sensitive and '?' is one character */
    expect_json(kl_history_search(h, own(s2), "select*", 0, false, false), "[]");
    r = kl_history_search(h, own(s2), "SELECT ?", 0, false, true);
    cr_expect_eq(json_array_size(r), 4);
    json_t *first = json_array_get(r, 0);
    cr_expect_str_eq(json_string_value(json_array_get(json_array_get(first, 2), 1)), "1");
    json_decref(r);
    kl_history_close(h);
}

Test(history, pattern_is_a_parameter_not_sql) {
    kl_history *h = open_db();
    int64_t s = begin(h, "alice");
    cr_assert_eq(kl_history_store(h, s, 1, "it's 'quoted'; DROP TABLE history", NULL), 0);
    json_t *r = kl_history_search(h, own(s), "*'; DROP TABLE history", 0, false, false);
    cr_expect_eq(json_array_size(r), 1);
    json_decref(r);
    r = kl_history_tail(h, own(s), 5, false);
    cr_expect_eq(json_array_size(r), 1);
    json_decref(r);
    kl_history_close(h);
}

Test(history, restoring_a_line_replaces_it) {
    kl_history *h = open_db();
    int64_t s = begin(h, "alice");
    cr_assert_eq(kl_history_store(h, s, 1, "SELECT 1", "1"), 0);
    cr_assert_eq(kl_history_store(h, s, 1, "SELECT 9", "9"), 0);
    char want[128];
    snprintf(want, sizeof want, "[[%lld,1,[\"SELECT 9\",\"9\"]]]", (long long)s);
    expect_json(kl_history_tail(h, own(s), 10, true), want);
    kl_history_close(h);
}

Test(history, reopen_persists) {
    kl_history *h = open_db();
    int64_t s1, s2;
    fill(h, &s1, &s2);
    kl_history_close(h);
    cr_expect_eq(access(path, F_OK), 0);

    /* A restarted kernel: the same user's next connection sees the earlier sessions, and its
     * session numbers go on upwards; another user's sees none of them. */
    h = open_db();
    int64_t s3 = begin(h, "alice");
    cr_expect_eq(s3, s2 + 1);
    json_t *r = kl_history_tail(h, own(s3), 0, true);
    cr_expect_eq(json_array_size(r), 6);
    json_decref(r);
    expect_json(kl_history_tail(h, own(begin(h, "bob")), 0, true), "[]");
    kl_history_close(h);
}

Test(history, in_memory_database) {
    char err[128];
    kl_history *h = kl_history_open(":memory:", err, sizeof err);
    cr_assert_not_null(h, "%s", err);
    int64_t s = begin(h, "alice");
    cr_assert_eq(kl_history_store(h, s, 1, "SELECT 1", NULL), 0);
    json_t *r = kl_history_tail(h, own(s), 1, false);
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

/* ---- owners -------------------------------------------------------------------------------- */

TestSuite(history_owner, .init = make_tmp, .fini = remove_tmp);

/* alice's session a1, then bob's b1, then alice's a2: bob's session lies between alice's two. */
static void fill_two_users(kl_history *h, int64_t *a1, int64_t *b1, int64_t *a2) {
    *a1 = begin(h, "alice");
    cr_assert_eq(kl_history_store(h, *a1, 1, "SELECT 'alice secret'", "alice secret"), 0);
    cr_assert_eq(kl_history_store(h, *a1, 2, "SELECT 1", "1"), 0);
    *b1 = begin(h, "bob");
    cr_assert_eq(kl_history_store(h, *b1, 1, "SELECT 'bob secret'", "bob secret"), 0);
    cr_assert_eq(kl_history_store(h, *b1, 2, "SELECT 1", "1"), 0);
    *a2 = begin(h, "alice");
    cr_assert_eq(kl_history_store(h, *a2, 1, "SHOW TABLES", NULL), 0);
}

/* The JSON text of count [session, line, input] rows (static buffer: use before the next call). */
static const char *rows(int count, ...) {
    static char buf[1024];
    size_t o = 0;
    va_list ap;
    va_start(ap, count);
    o += (size_t)snprintf(buf + o, sizeof buf - o, "[");
    for (int i = 0; i < count; i++) {
        long long session = va_arg(ap, long long);
        int line = va_arg(ap, int);
        const char *input = va_arg(ap, const char *);
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s[%lld,%d,\"%s\"]", i ? "," : "", session,
                              line, input);
    }
    va_end(ap);
    snprintf(buf + o, sizeof buf - o, "]");
    return buf;
}
#define ROW(s, l, input) (long long)(s), (int)(l), (const char *)(input)

Test(history_owner, tail_shows_only_the_owners_sessions) {
    kl_history *h = open_db();
    int64_t a1, b1, a2;
    fill_two_users(h, &a1, &b1, &a2);
    expect_json(kl_history_tail(h, own(a2), 10, false),
                rows(3, ROW(a1, 1, "SELECT 'alice secret'"), ROW(a1, 2, "SELECT 1"),
                     ROW(a2, 1, "SHOW TABLES")));
    expect_json(kl_history_tail(h, own(b1), 0, false),
                rows(2, ROW(b1, 1, "SELECT 'bob secret'"), ROW(b1, 2, "SELECT 1")));
    /* n counts the owner's entries only: bob's lines do not push alice's out */
    expect_json(kl_history_tail(h, own(a2), 2, false),
                rows(2, ROW(a1, 2, "SELECT 1"), ROW(a2, 1, "SHOW TABLES")));
    /* outputs follow their inputs' owner */
    json_t *r = kl_history_tail(h, own(b1), 0, true);
    cr_assert_not_null(r);
    char *dump = json_dumps(r, JSON_COMPACT);
    cr_expect_null(strstr(dump, "alice"), "bob saw alice's history: %s", dump);
    cr_expect_not_null(strstr(dump, "bob secret\"]"), "%s", dump);
    free(dump);
    json_decref(r);
    /* --shared-session: everything */
    r = kl_history_tail(h, shared(b1), 0, false);
    cr_expect_eq(json_array_size(r), 5);
    json_decref(r);
    /* no session of its own (history could not begin one): nothing */
    expect_json(kl_history_tail(h, own(0), 0, false), "[]");
    kl_history_close(h);
}

Test(history_owner, search_shows_only_the_owners_sessions) {
    kl_history *h = open_db();
    int64_t a1, b1, a2;
    fill_two_users(h, &a1, &b1, &a2);
    expect_json(kl_history_search(h, own(a2), "*secret*", 0, false, false),
                rows(1, ROW(a1, 1, "SELECT 'alice secret'")));
    expect_json(kl_history_search(h, own(b1), "*secret*", 0, false, false),
                rows(1, ROW(b1, 1, "SELECT 'bob secret'")));
    /* unique ranks the owner's matches only: bob's newer "SELECT 1" does not hide alice's */
    expect_json(kl_history_search(h, own(a2), "SELECT 1", 0, true, false),
                rows(1, ROW(a1, 2, "SELECT 1")));
    json_t *r = kl_history_search(h, shared(a2), "*secret*", 0, false, true);
    cr_expect_eq(json_array_size(r), 2);
    json_decref(r);
    /* shared and unique: one "SELECT 1", bob's, the newest */
    expect_json(kl_history_search(h, shared(a2), "SELECT 1", 0, true, false),
                rows(1, ROW(b1, 2, "SELECT 1")));
    kl_history_close(h);
}

Test(history_owner, range_counts_back_among_the_owners_sessions) {
    kl_history *h = open_db();
    int64_t a1, b1, a2;
    fill_two_users(h, &a1, &b1, &a2);
    char a1_rows[256];
    snprintf(a1_rows, sizeof a1_rows, "%s",
             rows(2, ROW(a1, 1, "SELECT 'alice secret'"), ROW(a1, 2, "SELECT 1")));
    /* -1 is alice's previous session, skipping bob's in between */
    expect_json(kl_history_range(h, own(a2), -1, 0, 0, false), a1_rows);
    expect_json(kl_history_range(h, own(a2), 0, 0, 0, false), rows(1, ROW(a2, 1, "SHOW TABLES")));
    expect_json(kl_history_range(h, own(a2), -2, 0, 0, false), "[]");
    expect_json(kl_history_range(h, own(a2), a1, 0, 0, false), a1_rows);
    /* bob has no earlier session, and alice's sessions by number give him nothing */
    expect_json(kl_history_range(h, own(b1), -1, 0, 0, false), "[]");
    expect_json(kl_history_range(h, own(b1), a1, 0, 0, false), "[]");
    expect_json(kl_history_range(h, own(b1), a2, 1, 0, true), "[]");
    expect_json(kl_history_range(h, own(a2), b1, 0, 0, false), "[]");
    /* shared: IPython's arithmetic, -1 is the session numbered one below */
    expect_json(kl_history_range(h, shared(a2), -1, 0, 0, false),
                rows(2, ROW(b1, 1, "SELECT 'bob secret'"), ROW(b1, 2, "SELECT 1")));
    expect_json(kl_history_range(h, shared(b1), a1, 2, 3, false), rows(1, ROW(a1, 2, "SELECT 1")));
    kl_history_close(h);
}

Test(history_owner, clients_without_a_username_are_apart) {
    kl_history *h = open_db();
    int64_t c1, c2, c1_again;
    cr_assert_eq(kl_history_session_begin(h, "", "client-1", &c1), 0);
    cr_assert_eq(kl_history_store(h, c1, 1, "SELECT 'one'", NULL), 0);
    cr_assert_eq(kl_history_session_begin(h, NULL, "client-2", &c2), 0);
    cr_assert_eq(kl_history_store(h, c2, 1, "SELECT 'two'", NULL), 0);
    cr_assert_eq(kl_history_session_begin(h, "", "client-1", &c1_again), 0);
    expect_json(kl_history_tail(h, own(c2), 0, false), rows(1, ROW(c2, 1, "SELECT 'two'")));
    expect_json(kl_history_tail(h, own(c1_again), 0, false), rows(1, ROW(c1, 1, "SELECT 'one'")));
    /* a user named like a client session id is someone else */
    expect_json(kl_history_tail(h, own(begin(h, "client-1")), 0, false), "[]");
    kl_history_close(h);
}

/* Runs raw SQL on the history file, as IPython or an older Kindling would; row (may be NULL) gets
 * each result row. */
static void raw_sql(const char *sql, int (*row)(void *, int, char **, char **), void *arg) {
    void *lib = dlopen("libsqlite3.so.0", RTLD_NOW);
    cr_assert_not_null(lib, "%s", dlerror());
    __typeof__(&sqlite3_open) open_fn = (__typeof__(&sqlite3_open))dlsym(lib, "sqlite3_open");
    __typeof__(&sqlite3_exec) exec_fn = (__typeof__(&sqlite3_exec))dlsym(lib, "sqlite3_exec");
    __typeof__(&sqlite3_close) close_fn = (__typeof__(&sqlite3_close))dlsym(lib, "sqlite3_close");
    cr_assert(open_fn && exec_fn && close_fn);
    sqlite3 *db = NULL;
    cr_assert_eq(open_fn(path, &db), SQLITE_OK);
    char *msg = NULL;
    cr_expect_eq(exec_fn(db, sql, row, arg, &msg), SQLITE_OK, "%s: %s", sql, msg ? msg : "");
    close_fn(db);
    dlclose(lib);
}

static int copy_first_column(void *arg, int ncol, char **values, char **names) {
    (void)names;
    if (ncol > 0) snprintf(arg, 128, "%s", values[0] ? values[0] : "NULL");
    return 0;
}

Test(history_owner, the_owner_is_kept_in_the_remark_column) {
    kl_history *h = open_db();
    int64_t a = begin(h, "alice"), anon;
    cr_assert_eq(kl_history_session_begin(h, "", "c-9", &anon), 0);
    kl_history_close(h);
    char remark[128] = "", sql[128];
    snprintf(sql, sizeof sql, "SELECT remark FROM sessions WHERE session = %lld", (long long)a);
    raw_sql(sql, copy_first_column, remark);
    cr_expect_str_eq(remark, "kindling:user=alice");
    snprintf(sql, sizeof sql, "SELECT remark FROM sessions WHERE session = %lld", (long long)anon);
    raw_sql(sql, copy_first_column, remark);
    cr_expect_str_eq(remark, "kindling:session=c-9");
    /* IPython unpacks the five columns of its schema: none added */
    raw_sql("SELECT count(*) FROM pragma_table_info('sessions')", copy_first_column, remark);
    cr_expect_str_eq(remark, "5");
}

Test(history_owner, ownerless_sessions_are_seen_in_shared_mode_only) {
    kl_history *h = open_db();
    kl_history_close(h);
    /* An older Kindling and IPython write '' as the remark; NULL, and a line whose session row is
     * missing, have no owner either. */
    raw_sql("INSERT INTO sessions VALUES (1, '2024-01-01 00:00:00', NULL, NULL, '');"
            "INSERT INTO sessions VALUES (2, '2024-01-01 00:00:00', NULL, NULL, NULL);"
            "INSERT INTO history VALUES (1, 1, 'SELECT ''legacy''', 'SELECT ''legacy''');"
            "INSERT INTO history VALUES (2, 1, 'SELECT ''null''', 'SELECT ''null''');"
            "INSERT INTO history VALUES (7, 1, 'SELECT ''orphan''', 'SELECT ''orphan''');",
            NULL, NULL);
    h = open_db();
    int64_t s = begin(h, "alice");
    cr_expect_gt(s, 2);
    cr_assert_eq(kl_history_store(h, s, 1, "SELECT 'mine'", NULL), 0);
    char mine[128];
    snprintf(mine, sizeof mine, "%s", rows(1, ROW(s, 1, "SELECT 'mine'")));
    expect_json(kl_history_tail(h, own(s), 0, false), mine);
    expect_json(kl_history_search(h, own(s), "*", 0, false, false), mine);
    expect_json(kl_history_range(h, own(s), 1, 0, 0, false), "[]");
    expect_json(kl_history_range(h, own(s), 7, 0, 0, false), "[]");
    expect_json(kl_history_range(h, own(s), -1, 0, 0, false), "[]");
    json_t *r = kl_history_tail(h, shared(s), 0, false);
    cr_expect_eq(json_array_size(r), 4);
    json_decref(r);
    expect_json(kl_history_range(h, shared(s), 1, 0, 0, false), "[[1,1,\"SELECT 'legacy'\"]]");
    kl_history_close(h);
}
