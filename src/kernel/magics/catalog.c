/* %explain, %schema, %tables, %databases, %functions, %describe: the catalog and the plans of the
 * connection's Spark session. Names the user gives are re-quoted part by part and patterns travel
 * as escaped string literals, so no argument can change the statement around it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/catalog.h"
#include "kernel/execute.h"
#include "kernel/sql.h"
#include "kernel/sqllex.h"
#include "spark/analyze.h"
#include "spark/client.h"

#define MAX_ARGS 4

static const char EXPLAIN_USAGE[] = "%explain [simple|extended|codegen|cost|formatted] <query>";
static const char SCHEMA_USAGE[] = "%schema <table or query>";
static const char TABLES_USAGE[] = "%tables [database] [pattern]";
static const char DATABASES_USAGE[] = "%databases [pattern]";
static const char FUNCTIONS_USAGE[] = "%functions [pattern]";
static const char DESCRIBE_USAGE[] = "%describe <table>";

/* Splits args at blanks into at most MAX_ARGS words ('...' and "..." keep blanks and lose their
 * quotes); the words point into buf, a copy the caller frees. Returns the count, or -1 when there
 * are more words than max (or out of memory). */
static int split_args(const char *args, char **buf, char *words[MAX_ARGS], int max) {
    *buf = strdup(args);
    if (!*buf) return -1;
    char *r = *buf, *w = *buf;
    int n = 0;
    for (;;) {
        while (*r == ' ' || *r == '\t') r++;
        if (!*r) break;
        if (n == max) return -1;
        words[n++] = w;
        while (*r && *r != ' ' && *r != '\t') {
            if (*r == '\'' || *r == '"') {
                char q = *r++;
                while (*r && *r != q) *w++ = *r++;
                if (*r) r++;
            } else {
                *w++ = *r++;
            }
        }
        if (*r) r++;
        *w++ = 0;
    }
    return n;
}

/* The dotted name in text (a, db.a, `odd name`.a) re-quoted part by part, or NULL when text is
 * not just a name. malloc'd. */
static char *quoted_path(const char *text) {
    size_t len = strlen(text), pos = 0, out_len = 0;
    char *out = NULL;
    kl_tok t;
    bool want_name = true;
    while (kl_sqllex_next_code(text, len, &pos, &t)) {
        if (want_name) {
            if ((t.kind != KL_TOK_WORD && t.kind != KL_TOK_QUOTED) || t.open) goto fail;
            char *name = kl_sqllex_name(text, &t);
            if (!name) goto fail;
            size_t need = kl_sqllex_quote_ident(name, NULL, 0);
            char *grown = realloc(out, out_len + need + 2);
            if (!grown) {
                free(name);
                goto fail;
            }
            out = grown;
            kl_sqllex_quote_ident(name, out + out_len, need + 1);
            out_len += need;
            free(name);
        } else {
            if (t.kind != KL_TOK_PUNCT || text[t.start] != '.') goto fail;
            out[out_len++] = '.';
            out[out_len] = 0;
        }
        want_name = !want_name;
    }
    if (!out || want_name) goto fail;
    return out;
fail:
    free(out);
    return NULL;
}

static char *trimmed(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r' ||
                 s[n - 1] == ';'))
        n--;
    return strndup(s, n);
}

static void show_text(kl_magic_ctx *c, const char *text) {
    size_t n = strlen(text);
    while (n && text[n - 1] == '\n') n--;
    char *t = strndup(text, n);
    kl_ctx_result(c, json_pack("{s:s}", "text/plain", t ? t : text), NULL);
    free(t);
}

/* ---- %explain ------------------------------------------------------------------------------- */

static const char *const SQL_MODE[] = {"", "", "EXTENDED ", "CODEGEN ", "COST ", "FORMATTED "};

static int magic_explain(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    char *a = trimmed(args);
    if (!a) return kl_ctx_error(c, "MemoryError", "out of memory");
    size_t w = strcspn(a, " \t\r\n");
    kl_explain_mode mode = kl_spark_explain_mode_parse(a, w);
    const char *query = mode ? a + w + strspn(a + w, " \t\r\n") : a;
    if (!mode) mode = KL_EXPLAIN_SIMPLE;
    if (!*query) {
        free(a);
        return kl_ctx_error(c, "UsageError", "usage: %s", EXPLAIN_USAGE);
    }
    int rc = -1;
    kl_spark_client *client = kl_sql_client(c);
    if (!client) goto out;
    if (kl_sqllex_is_query(query)) {
        char *text = NULL;
        kl_grpc_status st = {0};
        if (kl_spark_analyze_explain(client, query, mode, NULL, &text, &st) == 0) {
            show_text(c, text);
            rc = 0;
        } else {
            kl_sql_report(c, &st, query);
        }
        kl_grpc_status_clear(&st);
        free(text);
    } else {
        /* Analyzing a command would run it; Spark's EXPLAIN statement only describes it. */
        char *sql = NULL;
        if (asprintf(&sql, "EXPLAIN %s%s", SQL_MODE[mode], query) < 0) {
            rc = kl_ctx_error(c, "MemoryError", "out of memory");
            goto out;
        }
        kl_catalog_rows *rows = NULL;
        if (kl_catalog_query(c, sql, &rows) == 0) {
            const char *plan = kl_catalog_cell(rows, 0, 0);
            show_text(c, plan ? plan : "");
            rc = 0;
        }
        kl_catalog_rows_unref(rows);
        free(sql);
    }
out:
    free(a);
    return rc;
}

/* ---- %schema -------------------------------------------------------------------------------- */

static int magic_schema(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    char *a = trimmed(args);
    if (!a) return kl_ctx_error(c, "MemoryError", "out of memory");
    if (!*a) {
        free(a);
        return kl_ctx_error(c, "UsageError", "usage: %s", SCHEMA_USAGE);
    }
    char *sql = NULL;
    char *path = quoted_path(a);
    if (path) {
        if (asprintf(&sql, "TABLE %s", path) < 0) sql = NULL;
    } else if (kl_sqllex_is_query(a)) {
        sql = strdup(a);
    } else {
        free(a);
        return kl_ctx_error(c, "UsageError",
                            "%%schema takes a table name or a query (SELECT, WITH, VALUES, "
                            "TABLE, FROM); usage: %s",
                            SCHEMA_USAGE);
    }
    free(path);
    free(a);
    if (!sql) return kl_ctx_error(c, "MemoryError", "out of memory");
    int rc = -1;
    kl_spark_client *client = kl_sql_client(c);
    Spark__Connect__AnalyzePlanResponse *resp = NULL;
    kl_grpc_status st = {0};
    if (!client) {
        /* error recorded */
    } else if (kl_spark_analyze_schema(client, sql, NULL, &resp, &st) != 0) {
        kl_sql_report(c, &st, sql);
    } else {
        char *tree = kl_spark_schema_tree(resp->schema->schema);
        if (tree) {
            show_text(c, tree);
            rc = 0;
        } else {
            rc = kl_ctx_error(c, "MemoryError", "out of memory");
        }
        free(tree);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    kl_grpc_status_clear(&st);
    free(sql);
    return rc;
}

/* ---- listings ------------------------------------------------------------------------------- */

static bool is_pattern(const char *w) {
    return strpbrk(w, "*|") != NULL;
}

/* Runs "base [IN db] [LIKE 'pattern']" as a SQL cell statement. */
static int show(kl_magic_ctx *c, const char *base, const char *db, const char *pattern,
                const char *usage) {
    char *path = NULL, *lit = NULL, *sql = NULL;
    if (db && !(path = quoted_path(db)))
        return kl_ctx_error(c, "UsageError", "'%s' is not a database name; usage: %s", db, usage);
    if (pattern && !(lit = kl_sqllex_quote_string(pattern))) {
        free(path);
        return kl_ctx_error(c, "MemoryError", "out of memory");
    }
    int rc;
    if (asprintf(&sql, "%s%s%s%s%s", base, path ? " IN " : "", path ? path : "",
                 lit ? " LIKE " : "", lit ? lit : "") < 0)
        rc = kl_ctx_error(c, "MemoryError", "out of memory");
    else
        rc = kl_sql_run(c, sql, strlen(sql), 0, KL_SQL_OUT_TABLE);
    free(sql);
    free(path);
    free(lit);
    return rc;
}

static int magic_tables(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    char *buf, *w[MAX_ARGS];
    int n = split_args(args, &buf, w, 2);
    if (n < 0) {
        free(buf);
        return kl_ctx_error(c, "UsageError", "usage: %s", TABLES_USAGE);
    }
    const char *db = NULL, *pattern = NULL;
    if (n == 2) {
        db = w[0];
        pattern = w[1];
    } else if (n == 1) {
        /* One word: a pattern when it has wildcards, otherwise a database. */
        if (is_pattern(w[0]))
            pattern = w[0];
        else
            db = w[0];
    }
    int rc = show(c, "SHOW TABLES", db, pattern, TABLES_USAGE);
    free(buf);
    return rc;
}

static int pattern_only(kl_magic_ctx *c, const char *args, const char *base, const char *usage) {
    char *buf, *w[MAX_ARGS];
    int n = split_args(args, &buf, w, 1);
    int rc = n < 0 ? kl_ctx_error(c, "UsageError", "usage: %s", usage)
                   : show(c, base, NULL, n == 1 ? w[0] : NULL, usage);
    free(buf);
    return rc;
}

static int magic_databases(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    return pattern_only(c, args, "SHOW DATABASES", DATABASES_USAGE);
}

static int magic_functions(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    return pattern_only(c, args, "SHOW FUNCTIONS", FUNCTIONS_USAGE);
}

static int magic_describe(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    char *a = trimmed(args);
    if (!a) return kl_ctx_error(c, "MemoryError", "out of memory");
    char *path = *a ? quoted_path(a) : NULL;
    if (!path) {
        int rc = *a ? kl_ctx_error(c, "UsageError", "'%s' is not a table name; usage: %s", a,
                                   DESCRIBE_USAGE)
                    : kl_ctx_error(c, "UsageError", "usage: %s", DESCRIBE_USAGE);
        free(a);
        return rc;
    }
    free(a);
    char *sql = NULL;
    int rc;
    if (asprintf(&sql, "DESCRIBE TABLE EXTENDED %s", path) < 0)
        rc = kl_ctx_error(c, "MemoryError", "out of memory");
    else
        rc = kl_sql_run(c, sql, strlen(sql), 0, KL_SQL_OUT_TABLE);
    free(sql);
    free(path);
    return rc;
}

int kl_catalog_magics_register(kl_magic_registry *reg) {
    static const kl_magic magics[] = {
        {"explain", KL_MAGIC_LINE, EXPLAIN_USAGE,
         "show how Spark plans a query (AnalyzePlan explain; the default mode is simple)",
         magic_explain},
        {"schema", KL_MAGIC_LINE, SCHEMA_USAGE,
         "show the schema of a table, view or query as printSchema() does", magic_schema},
        {"tables", KL_MAGIC_LINE, TABLES_USAGE,
         "list the tables and views of the current or given database, optionally matching a "
         "pattern (* any characters, | alternatives)",
         magic_tables},
        {"databases", KL_MAGIC_LINE, DATABASES_USAGE,
         "list the databases, optionally matching a pattern", magic_databases},
        {"functions", KL_MAGIC_LINE, FUNCTIONS_USAGE,
         "list the functions, optionally matching a pattern", magic_functions},
        {"describe", KL_MAGIC_LINE, DESCRIBE_USAGE,
         "show a table's columns and properties (DESCRIBE TABLE EXTENDED)", magic_describe},
    };
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        int rc = kl_magic_register(reg, &magics[i]);
        if (rc != 0) return rc;
    }
    return 0;
}
