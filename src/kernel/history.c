/* History in SQLite with IPython's history.sqlite schema, so IPython tools can read the file. */
#include "kernel/history.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "runtime/dynlib.h"

/* SQLite is bound when a history file is opened (runtime/dynlib.h), so a kernel run with
 * --no-history does not load it at all. */
#define SQLIB_FUNCS(X)                                                                             \
    X(sqlite3_bind_int)                                                                            \
    X(sqlite3_bind_int64)                                                                          \
    X(sqlite3_bind_text)                                                                           \
    X(sqlite3_busy_timeout)                                                                        \
    X(sqlite3_changes)                                                                             \
    X(sqlite3_close)                                                                               \
    X(sqlite3_column_bytes)                                                                        \
    X(sqlite3_column_int64)                                                                        \
    X(sqlite3_column_text)                                                                         \
    X(sqlite3_column_type)                                                                         \
    X(sqlite3_errmsg)                                                                              \
    X(sqlite3_errstr)                                                                              \
    X(sqlite3_exec)                                                                                \
    X(sqlite3_finalize)                                                                            \
    X(sqlite3_free)                                                                                \
    X(sqlite3_open_v2)                                                                             \
    X(sqlite3_prepare_v2)                                                                          \
    X(sqlite3_step)

KL_DYNLIB_DEFINE(sqlite_lib, SQLIB_FUNCS, KL_SQLITE_SONAME, "SQLite: Debian package libsqlite3-0");
#define SQL(n) KL_DYNLIB_FN(sqlite_lib, n)

struct kl_history {
    sqlite3 *db;
    /* SQLite serialises single calls; this makes each multi-statement operation (insert input and
     * output, read changes()) atomic with respect to other threads sharing the handle. */
    pthread_mutex_t mu;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS sessions (session integer primary key autoincrement, "
    "start timestamp, end timestamp, num_cmds integer, remark text);"
    "CREATE TABLE IF NOT EXISTS history (session integer, line integer, source text, "
    "source_raw text, PRIMARY KEY (session, line));"
    "CREATE TABLE IF NOT EXISTS output_history (session integer, line integer, output text, "
    "PRIMARY KEY (session, line));"
    /* Every query filters sessions by owner; an index is invisible to IPython's readers. */
    "CREATE INDEX IF NOT EXISTS kindling_sessions_by_remark ON sessions (remark);";

/* The owner lives in IPython's free-text remark column rather than a column of its own: IPython
 * reads sessions with SELECT * and unpacks five fields, which an added column would break, and
 * IPython itself writes '' there, so its sessions read as ownerless. */
#define OWNER_USER    "kindling:user="
#define OWNER_SESSION "kindling:session="

/* IPython stores Python's local datetime text; SQLite's %f gives SS.SSS, which its parser reads. */
#define NOW_SQL "strftime('%Y-%m-%d %H:%M:%f', 'now', 'localtime')"

/* mkdir -p of everything before the last '/'. */
static int make_parent_dirs(const char *path, char *err, size_t errlen) {
    char *copy = strdup(path);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *slash = strrchr(copy, '/');
    if (!slash || slash == copy) {
        free(copy);
        return 0;
    }
    *slash = '\0';
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, 0700) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create directory %s: %s", copy, strerror(errno));
                free(copy);
                return -1;
            }
            *p = saved;
            if (saved == '\0') break;
        }
    }
    free(copy);
    return 0;
}

kl_history *kl_history_open(const char *path, char *err, size_t errlen) {
    if (strcmp(path, ":memory:") != 0 && make_parent_dirs(path, err, errlen) != 0) return NULL;
    char why[400];
    if (kl_dynlib_load(&sqlite_lib, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot open history %s: %s", path, why);
        return NULL;
    }
    kl_history *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE;
    int rc = SQL(sqlite3_open_v2)(path, &h->db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open history %s: %s", path,
                 h->db ? SQL(sqlite3_errmsg)(h->db) : SQL(sqlite3_errstr)(rc));
        SQL(sqlite3_close)(h->db);
        free(h);
        return NULL;
    }
    SQL(sqlite3_busy_timeout)(h->db, 2000);
    /* WAL lets another kernel read while this one writes; a file system without shared memory
     * refuses it, and the default journal still works. */
    SQL(sqlite3_exec)(h->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    char *msg = NULL;
    if (SQL(sqlite3_exec)(h->db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot create history tables in %s: %s", path,
                 msg ? msg : "unknown error");
        SQL(sqlite3_free)(msg);
        SQL(sqlite3_close)(h->db);
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

void kl_history_close(kl_history *h) {
    if (!h) return;
    SQL(sqlite3_close)(h->db);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int kl_history_session_begin(kl_history *h, const char *user, const char *client_session,
                             int64_t *session) {
    bool named = user && *user;
    const char *who = named ? user : client_session ? client_session : "";
    char *owner = NULL;
    if (asprintf(&owner, "%s%s", named ? OWNER_USER : OWNER_SESSION, who) < 0) return -1;
    sqlite3_stmt *st = NULL;
    int ret = -1;
    pthread_mutex_lock(&h->mu);
    if (SQL(sqlite3_prepare_v2)(
            h->db,
            "INSERT INTO sessions (start, end, num_cmds, remark) VALUES (" NOW_SQL
            ", NULL, NULL, ?1) RETURNING session",
            -1, &st, NULL) == SQLITE_OK &&
        SQL(sqlite3_bind_text)(st, 1, owner, -1, SQLITE_STATIC) == SQLITE_OK &&
        SQL(sqlite3_step)(st) == SQLITE_ROW) {
        *session = SQL(sqlite3_column_int64)(st, 0);
        ret = SQL(sqlite3_step)(st) == SQLITE_DONE ? 0 : -1;
    }
    SQL(sqlite3_finalize)(st);
    pthread_mutex_unlock(&h->mu);
    free(owner);
    return ret;
}

int kl_history_session_end(kl_history *h, int64_t session, int num_cmds) {
    sqlite3_stmt *st = NULL;
    int ret = -1;
    pthread_mutex_lock(&h->mu);
    if (SQL(sqlite3_prepare_v2)(
            h->db, "UPDATE sessions SET end = " NOW_SQL ", num_cmds = ? WHERE session = ?", -1, &st,
            NULL) == SQLITE_OK) {
        SQL(sqlite3_bind_int)(st, 1, num_cmds);
        SQL(sqlite3_bind_int64)(st, 2, session);
        if (SQL(sqlite3_step)(st) == SQLITE_DONE && SQL(sqlite3_changes)(h->db) == 1) ret = 0;
    }
    SQL(sqlite3_finalize)(st);
    pthread_mutex_unlock(&h->mu);
    return ret;
}

/* Runs one INSERT with (session, line, text[, text]) parameters. */
static int insert(sqlite3 *db, const char *sql, int64_t session, int line, const char *text,
                  int ntext) {
    sqlite3_stmt *st = NULL;
    int ok = SQL(sqlite3_prepare_v2)(db, sql, -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        SQL(sqlite3_bind_int64)(st, 1, session);
        SQL(sqlite3_bind_int)(st, 2, line);
        for (int k = 0; k < ntext; k++) SQL(sqlite3_bind_text)(st, 3 + k, text, -1, SQLITE_STATIC);
        ok = SQL(sqlite3_step)(st) == SQLITE_DONE;
    }
    SQL(sqlite3_finalize)(st);
    return ok ? 0 : -1;
}

static const char REDACTED[] = "<redacted>";

static bool secret_end(char c) {
    return c == 0 || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';' || c == '&' ||
           c == ',';
}

/* Where the secret value starting at v ends: its closing quote, or the first separator. */
static const char *secret_value_end(const char *v) {
    if (*v == '\'' || *v == '"') {
        const char *q = strchr(v + 1, *v);
        return q ? q + 1 : v + strlen(v);
    }
    while (!secret_end(*v)) v++;
    return v;
}

/* Where a credential's value starts when one begins at p (a key ending in "token", blanks, '=',
 * blanks; or "Bearer "), else NULL. */
static const char *secret_at(const char *text, const char *p) {
    if (strncasecmp(p, "token", 5) == 0) {
        const char *q = p + 5;
        while (*q == ' ' || *q == '\t') q++;
        if (*q != '=') return NULL;
        q++;
        while (*q == ' ' || *q == '\t') q++;
        return secret_end(*q) ? NULL : q;
    }
    if (strncasecmp(p, "bearer ", 7) == 0 && (p == text || !isalnum((unsigned char)p[-1]))) {
        const char *q = p + 7;
        while (*q == ' ') q++;
        return secret_end(*q) ? NULL : q;
    }
    return NULL;
}

char *kl_history_redact(const char *text) {
    size_t len = strlen(text);
    /* Each redaction replaces at least one byte with the marker: a marker's room per place a
     * secret may start is enough. */
    size_t cap = len + 1;
    for (const char *p = text; *p; p++)
        if (secret_at(text, p)) cap += sizeof REDACTED;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t o = 0;
    for (const char *p = text; *p;) {
        const char *v = secret_at(text, p);
        if (!v) {
            out[o++] = *p++;
            continue;
        }
        memcpy(out + o, p, (size_t)(v - p));
        o += (size_t)(v - p);
        memcpy(out + o, REDACTED, sizeof REDACTED - 1);
        o += sizeof REDACTED - 1;
        p = secret_value_end(v);
    }
    out[o] = 0;
    return out;
}

static int store_locked(kl_history *h, int64_t session, int line, const char *source,
                        const char *output) {
    pthread_mutex_lock(&h->mu);
    int ret = SQL(sqlite3_exec)(h->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
    if (ret == 0)
        ret = insert(h->db, "INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?)", session, line,
                     source, 2);
    if (ret == 0 && output)
        ret = insert(h->db, "INSERT OR REPLACE INTO output_history VALUES (?, ?, ?)", session, line,
                     output, 1);
    if (ret == 0 && SQL(sqlite3_exec)(h->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) ret = -1;
    if (ret != 0) SQL(sqlite3_exec)(h->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&h->mu);
    return ret;
}

/* Re-storing a line replaces it, so a re-executed line number never fails the execution. */
int kl_history_store(kl_history *h, int64_t session, int line, const char *source_text,
                     const char *output_text) {
    char *source = kl_history_redact(source_text);
    char *output = output_text ? kl_history_redact(output_text) : NULL;
    if (!source || (output_text && !output)) {
        free(source);
        free(output);
        return -1;
    }
    int ret = store_locked(h, session, line, source, output);
    free(source);
    free(output);
    return ret;
}

/* A text column as a JSON string; null when absent or not valid UTF-8. */
static json_t *column_text(sqlite3_stmt *st, int col) {
    if (SQL(sqlite3_column_type)(st, col) == SQLITE_NULL) return json_null();
    const char *s = (const char *)SQL(sqlite3_column_text)(st, col);
    json_t *j = s ? json_stringn(s, (size_t)SQL(sqlite3_column_bytes)(st, col)) : NULL;
    return j ? j : json_null();
}

/* Steps st (selecting session, line, source[, output]) into an array of entries; reversed when
 * the query ran newest first. Finalizes st and releases the lock prepare_locked took. */
static json_t *collect(kl_history *h, sqlite3_stmt *st, bool output, bool reverse) {
    json_t *rows = json_array();
    int rc;
    while (rows && (rc = SQL(sqlite3_step)(st)) == SQLITE_ROW) {
        json_t *input = column_text(st, 2);
        json_t *item = output ? json_pack("[oo]", input, column_text(st, 3)) : input;
        json_t *row = json_pack("[IIo]", (json_int_t)SQL(sqlite3_column_int64)(st, 0),
                                (json_int_t)SQL(sqlite3_column_int64)(st, 1), item);
        if (!row || json_array_append_new(rows, row) != 0) {
            json_decref(rows);
            rows = NULL;
        }
    }
    if (rows && rc != SQLITE_DONE) {
        json_decref(rows);
        rows = NULL;
    }
    SQL(sqlite3_finalize)(st);
    pthread_mutex_unlock(&h->mu);
    if (rows && reverse) {
        size_t n = json_array_size(rows);
        json_t *rev = json_array();
        for (size_t k = n; rev && k > 0; k--) json_array_append(rev, json_array_get(rows, k - 1));
        json_decref(rows);
        rows = rev;
    }
    return rows;
}

/* Every query binds the view as ?8 (all) and ?9 (current), above its own parameters. A session
 * is visible when the view sees all, or when its remark is the current session's: the owner of a
 * session that begins without one (legacy, IPython's) is NULL or '', and the current session always
 * has one, so ownerless sessions match no one. */
#define CURRENT_OWNER "(SELECT cur.remark FROM sessions AS cur WHERE cur.session = ?9)"
#define VISIBLE(col)                                                                               \
    "(?8 OR " col " IN (SELECT s.session FROM sessions AS s WHERE s.remark = " CURRENT_OWNER "))"

#define SELECT_IN "SELECT h.session, h.line, h.source_raw FROM history AS h "
#define SELECT_IO                                                                                  \
    "SELECT h.session, h.line, h.source_raw, o.output FROM history AS h "                          \
    "LEFT JOIN output_history AS o ON o.session = h.session AND o.line = h.line "

/* Prepares sql under the mutex and binds the view; on failure unlocks and returns NULL. */
static sqlite3_stmt *prepare_locked(kl_history *h, const char *sql, kl_history_view v) {
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&h->mu);
    if (SQL(sqlite3_prepare_v2)(h->db, sql, -1, &st, NULL) != SQLITE_OK ||
        SQL(sqlite3_bind_int)(st, 8, v.all ? 1 : 0) != SQLITE_OK ||
        SQL(sqlite3_bind_int64)(st, 9, v.current) != SQLITE_OK) {
        SQL(sqlite3_finalize)(st);
        pthread_mutex_unlock(&h->mu);
        return NULL;
    }
    return st;
}

/* n <= 0 returns every entry, as for search. */
json_t *kl_history_tail(kl_history *h, kl_history_view v, int n, bool output) {
#define TAIL_WHERE "WHERE " VISIBLE("h.session") " ORDER BY h.session DESC, h.line DESC LIMIT ?1"
    sqlite3_stmt *st = prepare_locked(h, output ? SELECT_IO TAIL_WHERE : SELECT_IN TAIL_WHERE, v);
#undef TAIL_WHERE
    if (!st) return NULL;
    SQL(sqlite3_bind_int)(st, 1, n > 0 ? n : -1);
    return collect(h, st, output, true);
}

/* The session a range asks for (?1): a positive number as is; otherwise counted back from the
 * current one, by number when all is seen (IPython's arithmetic), else among the owner's own
 * sessions, so other tenants' sessions in between do not count. */
#define RANGE_TARGET                                                                               \
    "(CASE WHEN ?1 > 0 THEN ?1 WHEN ?8 THEN ?9 + ?1 ELSE "                                         \
    "(SELECT c.session FROM sessions AS c WHERE c.remark = " CURRENT_OWNER                         \
    " AND c.session <= ?9 ORDER BY c.session DESC LIMIT 1 OFFSET -?1) END)"

json_t *kl_history_range(kl_history *h, kl_history_view v, int64_t session, int start, int stop,
                         bool output) {
#define RANGE_WHERE                                                                                \
    "WHERE h.session = " RANGE_TARGET                                                              \
    " AND " VISIBLE("h.session") " AND h.line >= ?2 AND (?3 <= 0 OR h.line < ?3) ORDER BY h.line"
    sqlite3_stmt *st = prepare_locked(h, output ? SELECT_IO RANGE_WHERE : SELECT_IN RANGE_WHERE, v);
#undef RANGE_WHERE
    if (!st) return NULL;
    SQL(sqlite3_bind_int64)(st, 1, session);
    SQL(sqlite3_bind_int)(st, 2, start);
    SQL(sqlite3_bind_int)(st, 3, stop);
    return collect(h, st, output, false);
}

/* unique keeps the newest occurrence of each source: the visible matches are ranked per source,
 * newest first, and only rank 1 survives, before the LIMIT applies. Filtering before ranking
 * matters: a newer copy in a session this view cannot see must not hide the visible one. */
json_t *kl_history_search(kl_history *h, kl_history_view v, const char *pattern, int n, bool unique,
                          bool output) {
#define SEARCH_MATCHES                                                                             \
    "WITH m AS (SELECT session, line, source_raw, ROW_NUMBER() OVER (PARTITION BY source "         \
    "ORDER BY session DESC, line DESC) AS recency FROM history "                                   \
    "WHERE source GLOB ?1 AND " VISIBLE("history.session") ") "
#define SEARCH_ORDER "WHERE (?2 = 0 OR m.recency = 1) ORDER BY m.session DESC, m.line DESC LIMIT ?3"
    sqlite3_stmt *st = prepare_locked(
        h,
        output ? SEARCH_MATCHES "SELECT m.session, m.line, m.source_raw, o.output FROM m "
                                "LEFT JOIN output_history AS o "
                                "ON o.session = m.session AND o.line = m.line " SEARCH_ORDER
               : SEARCH_MATCHES "SELECT m.session, m.line, m.source_raw FROM m " SEARCH_ORDER,
        v);
#undef SEARCH_MATCHES
#undef SEARCH_ORDER
    if (!st) return NULL;
    SQL(sqlite3_bind_text)(st, 1, pattern, -1, SQLITE_STATIC);
    SQL(sqlite3_bind_int)(st, 2, unique ? 1 : 0);
    SQL(sqlite3_bind_int)(st, 3, n > 0 ? n : -1);
    return collect(h, st, output, true);
}
