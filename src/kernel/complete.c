/* Completion. The protocol counts the cursor in code points while the scanning works on UTF-8
 * bytes, so every offset crosses kl_utf8_* on the way in and out. The analysis is lexical (see
 * sqllex.h): it reads the statement around the cursor the way a person glancing at it would, and
 * prefers offering a few plausible names over parsing SQL it cannot see the end of. */
#include "kernel/complete.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/sqllex.h"

static const char *const KEYWORDS[] = {
    "ADD",
    "AFTER",
    "ALL",
    "ALTER",
    "ALWAYS",
    "ANALYZE",
    "AND",
    "ANTI",
    "ANY",
    "ARCHIVE",
    "ARRAY",
    "AS",
    "ASC",
    "AT",
    "AUTHORIZATION",
    "BETWEEN",
    "BIGINT",
    "BINARY",
    "BOOLEAN",
    "BOTH",
    "BUCKET",
    "BUCKETS",
    "BY",
    "BYTE",
    "CACHE",
    "CASCADE",
    "CASE",
    "CAST",
    "CATALOG",
    "CATALOGS",
    "CHANGE",
    "CHAR",
    "CHARACTER",
    "CHECK",
    "CLEAR",
    "CLUSTER",
    "CLUSTERED",
    "CODEGEN",
    "COLLATE",
    "COLLECTION",
    "COLUMN",
    "COLUMNS",
    "COMMENT",
    "COMMIT",
    "COMPACT",
    "COMPACTIONS",
    "COMPUTE",
    "CONCATENATE",
    "CONSTRAINT",
    "COST",
    "CREATE",
    "CROSS",
    "CUBE",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "DATA",
    "DATABASE",
    "DATABASES",
    "DATE",
    "DATEADD",
    "DATEDIFF",
    "DAY",
    "DAYOFYEAR",
    "DAYS",
    "DBPROPERTIES",
    "DEC",
    "DECIMAL",
    "DEFAULT",
    "DEFINED",
    "DELETE",
    "DELIMITED",
    "DESC",
    "DESCRIBE",
    "DFS",
    "DIRECTORIES",
    "DIRECTORY",
    "DISTINCT",
    "DISTRIBUTE",
    "DIV",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "ESCAPE",
    "ESCAPED",
    "EXCEPT",
    "EXCHANGE",
    "EXCLUDE",
    "EXISTS",
    "EXPLAIN",
    "EXPORT",
    "EXTENDED",
    "EXTERNAL",
    "EXTRACT",
    "FALSE",
    "FETCH",
    "FIELDS",
    "FILEFORMAT",
    "FILTER",
    "FIRST",
    "FLOAT",
    "FOLLOWING",
    "FOR",
    "FOREIGN",
    "FORMAT",
    "FORMATTED",
    "FROM",
    "FULL",
    "FUNCTION",
    "FUNCTIONS",
    "GLOBAL",
    "GRANT",
    "GROUP",
    "GROUPING",
    "HAVING",
    "HOUR",
    "HOURS",
    "IF",
    "IGNORE",
    "ILIKE",
    "IMPORT",
    "IN",
    "INCLUDE",
    "INDEX",
    "INDEXES",
    "INNER",
    "INPATH",
    "INPUTFORMAT",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "ITEMS",
    "JOIN",
    "KEYS",
    "LAST",
    "LATERAL",
    "LAZY",
    "LEADING",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LINES",
    "LIST",
    "LOAD",
    "LOCAL",
    "LOCATION",
    "LOCK",
    "LOCKS",
    "LOGICAL",
    "LONG",
    "MACRO",
    "MAP",
    "MATCHED",
    "MERGE",
    "MINUS",
    "MINUTE",
    "MINUTES",
    "MONTH",
    "MONTHS",
    "MSCK",
    "NAMESPACE",
    "NAMESPACES",
    "NATURAL",
    "NO",
    "NOT",
    "NULL",
    "NULLS",
    "NUMERIC",
    "OF",
    "OFFSET",
    "ON",
    "ONLY",
    "OPTION",
    "OPTIONS",
    "OR",
    "ORDER",
    "OUT",
    "OUTER",
    "OUTPUTFORMAT",
    "OVER",
    "OVERLAPS",
    "OVERLAY",
    "OVERWRITE",
    "PARTITION",
    "PARTITIONED",
    "PARTITIONS",
    "PERCENT",
    "PIVOT",
    "PLACING",
    "POSITION",
    "PRECEDING",
    "PRIMARY",
    "PRINCIPALS",
    "PROPERTIES",
    "PURGE",
    "QUALIFY",
    "QUERY",
    "RANGE",
    "REAL",
    "RECORDREADER",
    "RECORDWRITER",
    "RECOVER",
    "REDUCE",
    "REFERENCES",
    "REFRESH",
    "RENAME",
    "REPAIR",
    "REPEATABLE",
    "REPLACE",
    "RESET",
    "RESPECT",
    "RESTRICT",
    "REVOKE",
    "RIGHT",
    "RLIKE",
    "ROLE",
    "ROLES",
    "ROLLBACK",
    "ROLLUP",
    "ROW",
    "ROWS",
    "SCHEMA",
    "SCHEMAS",
    "SECOND",
    "SECONDS",
    "SELECT",
    "SEMI",
    "SEPARATED",
    "SERDE",
    "SERDEPROPERTIES",
    "SESSION_USER",
    "SET",
    "SETS",
    "SHORT",
    "SHOW",
    "SKEWED",
    "SMALLINT",
    "SOME",
    "SORT",
    "SORTED",
    "SOURCE",
    "START",
    "STATISTICS",
    "STORED",
    "STRATIFY",
    "STRING",
    "STRUCT",
    "SUBSTR",
    "SUBSTRING",
    "SYNC",
    "SYSTEM_TIME",
    "SYSTEM_VERSION",
    "TABLE",
    "TABLES",
    "TABLESAMPLE",
    "TARGET",
    "TBLPROPERTIES",
    "TEMP",
    "TEMPORARY",
    "TERMINATED",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP_LTZ",
    "TIMESTAMP_NTZ",
    "TINYINT",
    "TO",
    "TOUCH",
    "TRAILING",
    "TRANSACTION",
    "TRANSACTIONS",
    "TRANSFORM",
    "TRIM",
    "TRUE",
    "TRUNCATE",
    "TRY_CAST",
    "TYPE",
    "UNARCHIVE",
    "UNBOUNDED",
    "UNCACHE",
    "UNION",
    "UNIQUE",
    "UNKNOWN",
    "UNLOCK",
    "UNPIVOT",
    "UNSET",
    "UPDATE",
    "USE",
    "USER",
    "USING",
    "VALUES",
    "VAR",
    "VARCHAR",
    "VARIABLE",
    "VERSION",
    "VIEW",
    "VIEWS",
    "VOID",
    "WEEK",
    "WEEKS",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "WITHIN",
    "YEAR",
    "YEARS",
    "ZONE",
};

/* ---- UTF-8 and tokens ------------------------------------------------------------------------ */

static bool is_lead_byte(unsigned char c) {
    return (c & 0xC0) != 0x80;
}

size_t kl_utf8_cp_to_byte(const char *s, size_t cp) {
    size_t i = 0;
    for (size_t n = 0; n < cp && s[i]; n++) {
        i++;
        while (s[i] && !is_lead_byte((unsigned char)s[i])) i++;
    }
    return i;
}

/* A byte offset inside a multi-byte character counts that character as passed. */
size_t kl_utf8_byte_to_cp(const char *s, size_t byte) {
    size_t n = 0;
    for (size_t i = 0; i < byte && s[i]; i++) n += is_lead_byte((unsigned char)s[i]);
    return n;
}

static bool is_word(char c) {
    return isalnum((unsigned char)c) || c == '_';
}

void kl_complete_token(const char *code, size_t cursor_byte, size_t *start, size_t *end) {
    size_t len = strlen(code);
    if (cursor_byte > len) cursor_byte = len;
    size_t s = cursor_byte, e = cursor_byte;
    while (s > 0 && is_word(code[s - 1])) s--;
    for (int k = 0; k < 2 && s > 0 && code[s - 1] == '%'; k++) s--;
    while (e < len && is_word(code[e])) e++;
    *start = s;
    *end = e;
}

/* ---- magics and their arguments ----------------------------------------------------------------
 */

typedef enum {
    ARGS_NONE,
    ARGS_SQL,            /* the arguments are a SQL statement (%time) */
    ARGS_EXPLAIN,        /* [mode] query */
    ARGS_TABLE,          /* a table name (%describe) */
    ARGS_TABLE_OR_QUERY, /* a table name or a query (%schema) */
    ARGS_DATABASE,       /* a database first (%tables) */
    ARGS_MAGIC,          /* a magic name (%help) */
} args_kind;

typedef struct option_values {
    const char *option;
    const char *const *values;
} option_values;

typedef struct magic_spec {
    const char *name;
    const char *const *options;         /* NULL-terminated */
    const option_values *option_values; /* ends with {NULL, NULL} */
    const char *const *first;           /* words for the first argument */
    args_kind args;
    bool sql_body; /* as a cell magic, its body is SQL */
} magic_spec;

static const char *const ON_OFF[] = {"on", "off", NULL};
static const char *const MODES[] = {"simple", "extended", "codegen", "cost", "formatted", NULL};
static const char *const SQL_OPTIONS[] = {"--limit", "--output", "--param", NULL};
static const char *const OUTPUTS[] = {"table", "html", "json", "csv", NULL};
static const option_values SQL_VALUES[] = {{"--output", OUTPUTS}, {NULL, NULL}};
static const char *const DF_OPTIONS[] = {"--limit", "--output", "--param", NULL};
static const char *const CONFIG_OPTIONS[] = {"--all", "--unset", NULL};
static const char *const CLEAR_OPTIONS[] = {"--wait", NULL};
static const char *const ECHO_OPTIONS[] = {"--stderr", NULL};
static const char *const INPUT_OPTIONS[] = {"--password", NULL};
static const char *const ADDJAR_OPTIONS[] = {"-f", NULL};
static const char *const ADDDEPS_OPTIONS[] = {"--transitive", "--exclude", "--repository",
                                              "--classifier", "-f",        NULL};
static const char *const HISTORY_OPTIONS[] = {"-n", "-g", NULL};
static const char *const ENV_OPTIONS[] = {"-u", NULL};
static const char *const CONNECT_OPTIONS[] = {"--token", NULL};

static const magic_spec SPECS[] = {
    {"sql", SQL_OPTIONS, SQL_VALUES, NULL, ARGS_NONE, true},
    {"dataframe", DF_OPTIONS, SQL_VALUES, NULL, ARGS_NONE, true},
    {"time", NULL, NULL, NULL, ARGS_SQL, true},
    {"explain", NULL, NULL, MODES, ARGS_EXPLAIN, false},
    {"schema", NULL, NULL, NULL, ARGS_TABLE_OR_QUERY, false},
    {"describe", NULL, NULL, NULL, ARGS_TABLE, false},
    {"tables", NULL, NULL, NULL, ARGS_DATABASE, false},
    {"help", NULL, NULL, NULL, ARGS_MAGIC, false},
    {"config", CONFIG_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"clear", CLEAR_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"echo", ECHO_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"input", INPUT_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"addjar", ADDJAR_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"addfile", ADDJAR_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"env", ENV_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"connect", CONNECT_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"adddeps", ADDDEPS_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"history", HISTORY_OPTIONS, NULL, NULL, ARGS_NONE, false},
    {"truncation", NULL, NULL, ON_OFF, ARGS_NONE, false},
    {"showtypes", NULL, NULL, ON_OFF, ARGS_NONE, false},
    {"showoutput", NULL, NULL, ON_OFF, ARGS_NONE, false},
    {"progress", NULL, NULL, ON_OFF, ARGS_NONE, false},
};

static const magic_spec *find_spec(const char *name) {
    for (size_t k = 0; k < sizeof SPECS / sizeof *SPECS; k++)
        if (strcasecmp(SPECS[k].name, name) == 0) return &SPECS[k];
    return NULL;
}

/* ---- SQL context -------------------------------------------------------------------------------
 */

typedef struct toks {
    kl_tok *v;
    size_t n, cap;
} toks;

static int toks_push(toks *t, const kl_tok *tok) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        kl_tok *v = realloc(t->v, cap * sizeof *v);
        if (!v) return -1;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = *tok;
    return 0;
}

static bool punct(const char *s, const kl_tok *t, char c) {
    return t->kind == KL_TOK_PUNCT && s[t->start] == c;
}

static bool is_name(const kl_tok *t) {
    return t->kind == KL_TOK_WORD || t->kind == KL_TOK_QUOTED;
}

static bool is_any(const char *s, const kl_tok *t, const char *const *words) {
    for (; *words; words++)
        if (kl_sqllex_is(s, t, *words)) return true;
    return false;
}

/* What a clause expects at its own parenthesis depth. */
typedef enum { CL_NONE, CL_SELECT, CL_FROM, CL_EXPR, CL_OTHER } clause;

#define MAX_DEPTH 64

typedef struct clauses {
    int depth;
    clause at[MAX_DEPTH];
} clauses;

static const char *const EXPR_CLAUSES[] = {"WHERE",   "ON",   "HAVING", "BY",   "SET",
                                           "QUALIFY", "WHEN", "THEN",   "ELSE", "VALUES",
                                           "AND",     "OR",   "NOT",    "CASE", NULL};
static const char *const OTHER_CLAUSES[] = {"LIMIT", "OFFSET",  "UNION", "EXCEPT", "INTERSECT",
                                            "MINUS", "INTO",    "TABLE", "WINDOW", "USING",
                                            "AS",    "LATERAL", NULL};

static void clauses_step(clauses *c, const char *s, const kl_tok *t) {
    if (punct(s, t, '(')) {
        if (c->depth + 1 < MAX_DEPTH) c->at[++c->depth] = CL_NONE;
    } else if (punct(s, t, ')')) {
        if (c->depth > 0) c->depth--;
    } else if (kl_sqllex_is(s, t, "SELECT")) {
        c->at[c->depth] = CL_SELECT;
    } else if (kl_sqllex_is(s, t, "FROM") || kl_sqllex_is(s, t, "JOIN")) {
        /* FROM inside EXTRACT(YEAR FROM d) or TRIM(BOTH FROM s) starts no table list. */
        if (c->at[c->depth] != CL_NONE || c->depth == 0) c->at[c->depth] = CL_FROM;
    } else if (is_any(s, t, EXPR_CLAUSES)) {
        c->at[c->depth] = CL_EXPR;
    } else if (is_any(s, t, OTHER_CLAUSES) && c->at[c->depth] != CL_SELECT) {
        c->at[c->depth] = CL_OTHER;
    }
}

/* Words that end a table reference instead of naming its alias. */
static const char *const NOT_ALIAS[] = {
    "WHERE",  "JOIN",    "INNER",     "LEFT",      "RIGHT",       "FULL",      "OUTER",
    "CROSS",  "SEMI",    "ANTI",      "NATURAL",   "ON",          "USING",     "GROUP",
    "ORDER",  "HAVING",  "LIMIT",     "UNION",     "EXCEPT",      "INTERSECT", "MINUS",
    "WINDOW", "LATERAL", "PIVOT",     "UNPIVOT",   "TABLESAMPLE", "CLUSTER",   "DISTRIBUTE",
    "SORT",   "QUALIFY", "OFFSET",    "SELECT",    "FROM",        "SET",       "VALUES",
    "AS",     "WHEN",    "PARTITION", "TIMESTAMP", "VERSION",     "FOR",       NULL};

typedef struct table_ref {
    char *db, *name, *alias;
} table_ref;

typedef struct refs {
    table_ref v[KL_COMPLETE_MAX_QUERIES];
    size_t n;
    bool failed;
} refs;

static void refs_clear(refs *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].db);
        free(r->v[i].name);
        free(r->v[i].alias);
    }
    r->n = 0;
}

/* Reads `a.b.c [AS] alias` at tokens[i]; adds it unless it is a subquery or a table function. */
static void read_ref(const char *s, const toks *tk, size_t i, refs *out) {
    const kl_tok *t = tk->v;
    size_t n = tk->n, parts[3], np = 0;
    while (i < n && is_name(&t[i]) && !is_any(s, &t[i], NOT_ALIAS) && np < 3) {
        if (t[i].kind == KL_TOK_WORD && isdigit((unsigned char)s[t[i].start])) return;
        parts[np++] = i++;
        if (i + 1 < n && punct(s, &t[i], '.') && is_name(&t[i + 1]))
            i++;
        else
            break;
    }
    if (np == 0 || (i < n && punct(s, &t[i], '('))) return;
    if (out->n == KL_COMPLETE_MAX_QUERIES) return;
    table_ref r = {0};
    r.name = kl_sqllex_name(s, &t[parts[np - 1]]);
    if (np >= 2) r.db = kl_sqllex_name(s, &t[parts[np - 2]]);
    if (i < n && kl_sqllex_is(s, &t[i], "AS")) i++;
    if (i < n && is_name(&t[i]) && !is_any(s, &t[i], NOT_ALIAS)) r.alias = kl_sqllex_name(s, &t[i]);
    if (!r.name || (np >= 2 && !r.db)) {
        free(r.name);
        free(r.db);
        free(r.alias);
        out->failed = true;
        return;
    }
    out->v[out->n++] = r;
}

/* The tables a statement reads or writes: after FROM, JOIN, a ',' in a FROM list, UPDATE, INTO
 * and a leading TABLE. */
static void collect_refs(const char *s, const toks *tk, refs *out) {
    clauses c = {0};
    for (size_t i = 0; i < tk->n; i++) {
        const kl_tok *t = &tk->v[i];
        bool from_list = punct(s, t, ',') && c.at[c.depth] == CL_FROM;
        clause before = c.at[c.depth];
        clauses_step(&c, s, t);
        bool starts = kl_sqllex_is(s, t, "JOIN") || kl_sqllex_is(s, t, "UPDATE") ||
                      kl_sqllex_is(s, t, "INTO") || (kl_sqllex_is(s, t, "TABLE") && i == 0) ||
                      (kl_sqllex_is(s, t, "FROM") && (before != CL_NONE || c.depth == 0));
        if (starts || from_list) read_ref(s, tk, i + 1, out);
    }
}

typedef enum { X_KEYWORDS, X_EXPR, X_TABLE, X_DATABASE, X_FUNCTION, X_NONE } expect;

static const char *const TABLE_WORDS[] = {"FROM", "JOIN", "INTO", "UPDATE", "TABLE", "VIEW", NULL};
static const char *const LISTS[] = {"TABLES", "VIEWS", "FUNCTIONS", NULL};
static const char *const DB_WORDS[] = {"USE", "DATABASE", "SCHEMA", "NAMESPACE", NULL};
static const char *const EXPR_WORDS[] = {
    "SELECT", "WHERE", "ON",       "HAVING", "BY",      "AND", "OR",   "NOT",     "WHEN", "THEN",
    "ELSE",   "CASE",  "DISTINCT", "SET",    "QUALIFY", "IS",  "LIKE", "BETWEEN", NULL};

/* What follows the code tokens before[0..n): n == 0 is a statement's start. */
static expect classify(const char *s, const kl_tok *before, size_t n, const clauses *c) {
    if (n == 0) return X_KEYWORDS;
    /* DROP TABLE IF EXISTS |: the name comes after the condition. */
    if (kl_sqllex_is(s, &before[n - 1], "EXISTS")) {
        size_t k = n - 1;
        if (k > 0 && kl_sqllex_is(s, &before[k - 1], "NOT")) k--;
        if (k > 0 && kl_sqllex_is(s, &before[k - 1], "IF")) n = k - 1;
        if (n == 0) return X_KEYWORDS;
    }
    const kl_tok *p = &before[n - 1];
    const kl_tok *pp = n >= 2 ? &before[n - 2] : NULL;
    if ((kl_sqllex_is(s, p, "FROM") || kl_sqllex_is(s, p, "IN")) && pp && is_any(s, pp, LISTS))
        return X_DATABASE;
    if (kl_sqllex_is(s, p, "IN") && pp && kl_sqllex_is(s, pp, "COLUMNS")) return X_TABLE;
    if (kl_sqllex_is(s, p, "FROM") && c->at[c->depth] != CL_FROM && c->depth > 0)
        return X_EXPR; /* EXTRACT(YEAR FROM |) */
    if (is_any(s, p, TABLE_WORDS)) return X_TABLE;
    if (kl_sqllex_is(s, p, "DESCRIBE") || (kl_sqllex_is(s, p, "DESC") && n == 1)) return X_TABLE;
    if ((kl_sqllex_is(s, p, "EXTENDED") || kl_sqllex_is(s, p, "FORMATTED")) && pp &&
        (kl_sqllex_is(s, pp, "DESCRIBE") || kl_sqllex_is(s, pp, "DESC") ||
         kl_sqllex_is(s, pp, "TABLE")))
        return X_TABLE;
    if (is_any(s, p, DB_WORDS)) return X_DATABASE;
    if (kl_sqllex_is(s, p, "FUNCTION")) return X_FUNCTION;
    if (punct(s, p, ',') && c->at[c->depth] == CL_FROM) return X_TABLE;
    if (p->kind == KL_TOK_PUNCT && strchr("(,=<>+-*/%|&!^~", s[p->start])) return X_EXPR;
    if (is_any(s, p, EXPR_WORDS)) return X_EXPR;
    /* After a finished term (a name, a literal, ')') come keywords: AS, FROM, AND, UNION... */
    return X_KEYWORDS;
}

static int add_query(kl_complete_ctx *ctx, kl_names_kind kind, const char *db, const char *table) {
    for (size_t i = 0; i < ctx->nqueries; i++) {
        const kl_names_query *q = &ctx->queries[i];
        if (q->kind == kind && !(q->db ? !db || strcasecmp(q->db, db) : db != NULL) &&
            !(q->table ? !table || strcasecmp(q->table, table) : table != NULL))
            return 0;
    }
    if (ctx->nqueries == KL_COMPLETE_MAX_QUERIES) return 0;
    kl_names_query *q = &ctx->queries[ctx->nqueries];
    q->kind = kind;
    q->db = db ? strdup(db) : NULL;
    q->table = table ? strdup(table) : NULL;
    if ((db && !q->db) || (table && !q->table)) {
        free(q->db);
        free(q->table);
        return -1;
    }
    ctx->nqueries++;
    return 0;
}

/* How the text left of the cursor relates to the SQL region [rs, re). */
typedef enum { LEAD_NONE, LEAD_TABLE } lead;

static int sql_context(const char *code, size_t rs, size_t re, size_t cursor, lead ld,
                       kl_complete_ctx *ctx) {
    ctx->start = ctx->end = ctx->prefix_start = cursor;
    ctx->prefix_len = 0;
    toks all = {0};
    size_t pos = rs;
    kl_tok t;
    int rc = 0;
    while (kl_sqllex_next(code, re, &pos, &t))
        if (toks_push(&all, &t) != 0) {
            free(all.v);
            return -1;
        }
    /* Inside a string or a comment nothing is offered. */
    for (size_t i = 0; i < all.n; i++) {
        const kl_tok *a = &all.v[i];
        size_t end = a->start + a->len;
        bool line_comment = a->kind == KL_TOK_COMMENT && code[a->start] == '-';
        bool inside =
            a->start < cursor && (cursor < end || (cursor == end && (a->open || line_comment)));
        if (inside && (a->kind == KL_TOK_STRING || a->kind == KL_TOK_COMMENT)) goto done;
    }
    /* The statement: between the ';' before the cursor and the one after. */
    size_t first = 0, last = all.n;
    for (size_t i = 0; i < all.n; i++) {
        if (!punct(code, &all.v[i], ';')) continue;
        if (all.v[i].start + 1 <= cursor)
            first = i + 1;
        else if (last == all.n)
            last = i;
    }
    toks st = {0}; /* code tokens of the statement */
    for (size_t i = first; i < last; i++)
        if (all.v[i].kind != KL_TOK_COMMENT && toks_push(&st, &all.v[i]) != 0) {
            rc = -1;
            goto out;
        }
    /* The name being typed (the name token the cursor is in, at the end of, or at the start
     * of), and the code tokens before it. */
    size_t nb = 0;
    for (; nb < st.n; nb++) {
        const kl_tok *a = &st.v[nb];
        if (a->start >= cursor || (is_name(a) && cursor <= a->start + a->len)) break;
    }
    const kl_tok *cur =
        nb < st.n && is_name(&st.v[nb]) && st.v[nb].start <= cursor ? &st.v[nb] : NULL;
    if (cur) {
        if (cur->kind == KL_TOK_WORD && isdigit((unsigned char)code[cur->start])) goto out;
        ctx->start = cur->start;
        ctx->end = cur->start + cur->len;
        ctx->quoted = cur->kind == KL_TOK_QUOTED;
        ctx->prefix_start = cur->start + (ctx->quoted ? 1 : 0);
        ctx->prefix_len = cursor > ctx->prefix_start ? cursor - ctx->prefix_start : 0;
        if (ctx->quoted && !cur->open && cursor == ctx->end && ctx->prefix_len)
            ctx->prefix_len--; /* past the closing backtick: the name is what it encloses */
    }
    /* Qualifiers: `a.` or `a.b.` just before the name. */
    size_t name_at = cur ? cur->start : cursor;
    char *qual[2] = {NULL, NULL};
    size_t nq = 0, p = nb;
    while (nq < 2 && p >= 2 && punct(code, &st.v[p - 1], '.') && st.v[p - 1].start + 1 == name_at &&
           is_name(&st.v[p - 2]) && st.v[p - 2].start + st.v[p - 2].len == st.v[p - 1].start) {
        name_at = st.v[p - 2].start;
        p -= 2;
        nq++;
    }
    for (size_t k = 0; k < nq; k++) {
        const kl_tok *q = &st.v[p + 2 * k];
        if (q->kind == KL_TOK_WORD && isdigit((unsigned char)code[q->start])) goto free_qual;
        qual[k] = kl_sqllex_name(code, q);
        if (!qual[k]) {
            rc = -1;
            goto free_qual;
        }
    }
    clauses c = {0};
    for (size_t i = 0; i < p; i++) clauses_step(&c, code, &st.v[i]);
    expect x = classify(code, st.v, p, &c);
    if (p == 0 && ld == LEAD_TABLE) x = X_TABLE;
    refs r = {0};
    if (nq > 0) {
        if (x == X_TABLE) {
            rc = add_query(ctx, KL_NAMES_TABLES, qual[nq - 1], NULL);
        } else if (nq == 2) {
            rc = add_query(ctx, KL_NAMES_COLUMNS, qual[0], qual[1]);
        } else {
            collect_refs(code, &st, &r);
            const table_ref *hit = NULL;
            for (size_t k = 0; k < r.n && !hit; k++)
                if (r.v[k].alias && strcasecmp(r.v[k].alias, qual[0]) == 0) hit = &r.v[k];
            for (size_t k = 0; k < r.n && !hit; k++)
                if (!r.v[k].alias && strcasecmp(r.v[k].name, qual[0]) == 0) hit = &r.v[k];
            if (hit) {
                rc = add_query(ctx, KL_NAMES_COLUMNS, hit->db, hit->name);
            } else {
                rc = add_query(ctx, KL_NAMES_COLUMNS, NULL, qual[0]);
                if (rc == 0) rc = add_query(ctx, KL_NAMES_TABLES, qual[0], NULL);
            }
        }
    } else {
        switch (x) {
        case X_TABLE:
            rc = add_query(ctx, KL_NAMES_TABLES, NULL, NULL);
            if (rc == 0) rc = add_query(ctx, KL_NAMES_DATABASES, NULL, NULL);
            break;
        case X_DATABASE:
            rc = add_query(ctx, KL_NAMES_DATABASES, NULL, NULL);
            break;
        case X_FUNCTION:
            rc = add_query(ctx, KL_NAMES_FUNCTIONS, NULL, NULL);
            break;
        case X_EXPR:
            /* With nothing typed, the columns at hand are the useful offer; every keyword and
             * function would bury them. */
            if (ctx->prefix_len > 0) {
                ctx->keywords = true;
                rc = add_query(ctx, KL_NAMES_FUNCTIONS, NULL, NULL);
            }
            collect_refs(code, &st, &r);
            for (size_t k = 0; k < r.n && rc == 0; k++)
                rc = add_query(ctx, KL_NAMES_COLUMNS, r.v[k].db, r.v[k].name);
            break;
        case X_KEYWORDS:
            ctx->keywords = true;
            break;
        case X_NONE:
            break;
        }
        /* DESCRIBE is followed by a table or by a keyword (FUNCTION, EXTENDED, QUERY...). */
        if (p > 0 && ctx->prefix_len > 0 &&
            (kl_sqllex_is(code, &st.v[p - 1], "DESCRIBE") ||
             (p == 1 && kl_sqllex_is(code, &st.v[0], "DESC"))))
            ctx->keywords = true;
    }
    if (r.failed) rc = -1;
    refs_clear(&r);
free_qual:
    free(qual[0]);
    free(qual[1]);
out:
    free(st.v);
done:
    free(all.v);
    return rc;
}

/* ---- the cell around the cursor ----------------------------------------------------------------
 */

static size_t line_start(const char *code, size_t i) {
    while (i > 0 && code[i - 1] != '\n') i--;
    return i;
}

static size_t line_end(const char *code, size_t len, size_t i) {
    while (i < len && code[i] != '\n') i++;
    return i;
}

static size_t skip_blank(const char *code, size_t i, size_t end) {
    while (i < end && (code[i] == ' ' || code[i] == '\t' || code[i] == '\r')) i++;
    return i;
}

/* True when the line starting at ls is a magic line ('%' after indentation). */
static bool magic_line_at(const char *code, size_t len, size_t ls) {
    size_t le = line_end(code, len, ls);
    size_t j = skip_blank(code, ls, le);
    return j < le && code[j] == '%';
}

/* Options whose next word is their value, not an argument. */
static const char *const TAKES_VALUE[] = {
    "--limit",      "--output",     "--param", "-n", "--exclude",
    "--repository", "--classifier", "--unset", "-u", NULL};

static bool word_is(const char *code, size_t s, size_t e, const char *w) {
    return strlen(w) == e - s && strncmp(code + s, w, e - s) == 0;
}

static bool word_in(const char *code, size_t s, size_t e, const char *const *list) {
    for (; list && *list; list++)
        if (word_is(code, s, e, *list)) return true;
    return false;
}

#define MAX_WORDS 64

/* A magic's line: j is its '%', le the end of the line. */
static int magic_context(const char *code, size_t j, size_t le, size_t cursor,
                         const kl_magic_registry *magics, kl_complete_ctx *ctx) {
    size_t percents = j + 1 < le && code[j + 1] == '%' ? 2 : 1;
    size_t ns = j + percents, ne = ns;
    while (ne < le && is_word(code[ne])) ne++;
    kl_magic_kind kind = percents == 2 ? KL_MAGIC_CELL : KL_MAGIC_LINE;
    if (cursor <= ne) {
        ctx->start = j;
        ctx->end = ne;
        ctx->prefix_start = ns;
        ctx->prefix_len = cursor > ns ? cursor - ns : 0;
        ctx->magic_kind = kind;
        return 0;
    }
    ctx->start = ctx->end = ctx->prefix_start = cursor;
    const kl_magic *m = magics ? kl_magic_find(magics, code + ns, ne - ns, kind) : NULL;
    const magic_spec *spec = m ? find_spec(m->name) : NULL;
    if (!spec) return 0;

    /* The words before the cursor's own word. */
    size_t ws[MAX_WORDS], we[MAX_WORDS], nw = 0, i = ne;
    size_t cw = cursor; /* start of the cursor's word */
    while (cw > ne && code[cw - 1] != ' ' && code[cw - 1] != '\t') cw--;
    for (;;) {
        i = skip_blank(code, i, cw);
        if (i >= cw) break;
        size_t s = i;
        while (i < cw && code[i] != ' ' && code[i] != '\t') i++;
        if (nw < MAX_WORDS) {
            ws[nw] = s;
            we[nw] = i;
            nw++;
        }
    }
    size_t cwe = cursor;
    while (cwe < le && code[cwe] != ' ' && code[cwe] != '\t' && code[cwe] != '\r') cwe++;
    ctx->start = ctx->prefix_start = cw;
    ctx->end = cwe;
    ctx->prefix_len = cursor - cw;

    if (cw < cursor && code[cw] == '-' && spec->options) {
        ctx->values = spec->options;
        return 0;
    }
    if (nw > 0 && spec->option_values) {
        for (const option_values *ov = spec->option_values; ov->option; ov++)
            if (word_is(code, ws[nw - 1], we[nw - 1], ov->option)) {
                ctx->values = ov->values;
                return 0;
            }
    }
    size_t positional = 0, first = 0;
    bool have_first = false;
    for (size_t k = 0; k < nw; k++) {
        if (code[ws[k]] == '-') continue;
        if (k > 0 && word_in(code, ws[k - 1], we[k - 1], TAKES_VALUE)) continue;
        if (!have_first) first = k, have_first = true;
        positional++;
    }
    switch (spec->args) {
    case ARGS_SQL:
        return sql_context(code, ne, le, cursor, LEAD_NONE, ctx);
    case ARGS_EXPLAIN:
        if (positional == 0) {
            ctx->values = MODES;
            return sql_context(code, ne, le, cursor, LEAD_NONE, ctx);
        }
        for (const char *const *mode = MODES; *mode; mode++)
            if (we[first] - ws[first] == strlen(*mode) &&
                strncasecmp(code + ws[first], *mode, strlen(*mode)) == 0)
                return sql_context(code, we[first], le, cursor, LEAD_NONE, ctx);
        return sql_context(code, ne, le, cursor, LEAD_NONE, ctx);
    case ARGS_TABLE:
        if (positional > 0) return 0;
        return sql_context(code, ne, le, cursor, LEAD_TABLE, ctx);
    case ARGS_TABLE_OR_QUERY:
        if (positional > 0) return sql_context(code, ne, le, cursor, LEAD_NONE, ctx);
        if (sql_context(code, ne, le, cursor, LEAD_TABLE, ctx) != 0) return -1;
        ctx->keywords = ctx->prefix_len > 0;
        return 0;
    case ARGS_DATABASE:
        if (positional > 0) return 0;
        return add_query(ctx, KL_NAMES_DATABASES, NULL, NULL);
    case ARGS_MAGIC:
        if (positional > 0) return 0;
        while (ctx->prefix_len > 0 && code[ctx->prefix_start] == '%') {
            ctx->prefix_start++;
            ctx->prefix_len--;
        }
        ctx->magic_bare = true;
        return 0;
    case ARGS_NONE:
        if (positional == 0) ctx->values = spec->first;
        return 0;
    }
    return 0;
}

int kl_complete_analyze(const char *code, size_t cursor, const kl_magic_registry *magics,
                        kl_complete_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    if (!code) code = "";
    size_t len = strlen(code);
    if (cursor > len) cursor = len;
    ctx->start = ctx->end = ctx->prefix_start = cursor;

    /* A cell magic stands on the first non-blank line and owns the rest of the cell. */
    size_t fc = 0;
    for (;;) {
        size_t e = line_end(code, len, fc);
        size_t j = skip_blank(code, fc, e);
        if (j < e || e == len) {
            fc = j;
            break;
        }
        fc = e + 1;
    }
    size_t fle = line_end(code, len, fc);
    if (fc + 1 < len && code[fc] == '%' && code[fc + 1] == '%' && cursor > fle) {
        size_t ns = fc + 2, ne = ns;
        while (ne < fle && is_word(code[ne])) ne++;
        const kl_magic *m =
            magics ? kl_magic_find(magics, code + ns, ne - ns, KL_MAGIC_CELL) : NULL;
        const magic_spec *spec = m ? find_spec(m->name) : NULL;
        if (spec && spec->sql_body) return sql_context(code, fle + 1, len, cursor, LEAD_NONE, ctx);
        return 0;
    }

    size_t ls = line_start(code, cursor), le = line_end(code, len, cursor);
    size_t j = skip_blank(code, ls, le);
    if (j < le && code[j] == '%') {
        if (cursor <= j) return 0;
        return magic_context(code, j, le, cursor, magics, ctx);
    }
    /* SQL: the run of lines around the cursor between magic lines. */
    size_t rs = ls, re = le;
    while (rs > 0 && !magic_line_at(code, len, line_start(code, rs - 1)))
        rs = line_start(code, rs - 1);
    while (re < len && !magic_line_at(code, len, re + 1)) re = line_end(code, len, re + 1);
    return sql_context(code, rs, re, cursor, LEAD_NONE, ctx);
}

void kl_complete_ctx_clear(kl_complete_ctx *ctx) {
    for (size_t i = 0; i < ctx->nqueries; i++) {
        free(ctx->queries[i].db);
        free(ctx->queries[i].table);
    }
    ctx->nqueries = 0;
}

/* ---- matches ----------------------------------------------------------------------------------
 */

typedef struct match {
    char *text;
    char *key;        /* the name without backticks, for ordering */
    const char *type; /* static */
    int rank;
} match;

struct kl_complete_sink {
    const char *prefix;
    size_t plen;
    bool quoted, upper;
    match *v;
    size_t n, cap;
    bool failed;
};

static const struct {
    const char *type;
    int rank;
} RANKS[] = {{"column", 0}, {"magic", 0},    {"option", 0},   {"table", 1},
             {"view", 1},   {"database", 2}, {"function", 3}, {"keyword", 4}};

/* Takes ownership of text (which may be NULL after a failed allocation); name is the unquoted
 * name (NULL: the text itself). */
static void sink_add(kl_complete_sink *s, char *text, const char *type, const char *name) {
    if (!text || s->failed) {
        free(text);
        s->failed = true;
        return;
    }
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].text, text) == 0) {
            free(text);
            return;
        }
    int rank = 5;
    const char *stype = "keyword";
    for (size_t k = 0; k < sizeof RANKS / sizeof *RANKS; k++)
        if (strcmp(RANKS[k].type, type) == 0) {
            rank = RANKS[k].rank;
            stype = RANKS[k].type;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        match *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(text);
            s->failed = true;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    char *key = strdup(name ? name : text);
    if (!key) {
        free(text);
        s->failed = true;
        return;
    }
    s->v[s->n++] = (match){text, key, stype, rank};
}

static bool matches_prefix(const kl_complete_sink *s, const char *name) {
    return strlen(name) >= s->plen && strncasecmp(name, s->prefix, s->plen) == 0;
}

/* A name Spark reads without backticks. */
static bool plain_identifier(const char *name) {
    if (!*name || isdigit((unsigned char)*name)) return false;
    for (const char *p = name; *p; p++)
        if (!is_word(*p)) return false;
    return true;
}

static char *cased(const char *name, bool upper) {
    char *s = strdup(name);
    if (s)
        for (char *p = s; *p; p++)
            *p = (char)(upper ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
    return s;
}

void kl_complete_offer(kl_complete_sink *s, const char *name, const char *type) {
    if (!s || !name || !type || !matches_prefix(s, name)) return;
    if (strcmp(type, "function") == 0) {
        if (!plain_identifier(name)) return; /* operators such as <=> */
        sink_add(s, cased(name, s->upper), type, NULL);
        return;
    }
    if (!s->quoted && plain_identifier(name)) {
        sink_add(s, strdup(name), type, NULL);
        return;
    }
    size_t need = kl_sqllex_quote_ident(name, NULL, 0);
    char *q = malloc(need + 1);
    if (q) kl_sqllex_quote_ident(name, q, need + 1);
    sink_add(s, q, type, name);
}

typedef struct magic_query {
    kl_complete_sink *sink;
    const char *percent; /* "%", "%%" or "" */
    int kinds;
} magic_query;

static void match_magic(const kl_magic *m, void *arg) {
    magic_query *q = arg;
    if (!(m->kinds & q->kinds) || !matches_prefix(q->sink, m->name)) return;
    char *s = NULL;
    if (asprintf(&s, "%s%s", q->percent, m->name) < 0) s = NULL;
    sink_add(q->sink, s, "magic", NULL);
}

static int cmp_match(const void *a, const void *b) {
    const match *x = a, *y = b;
    if (x->rank != y->rank) return x->rank - y->rank;
    int c = strcasecmp(x->key, y->key);
    return c ? c : strcmp(x->key, y->key);
}

json_t *kl_complete_with(const char *code, size_t cursor_pos, const kl_magic_registry *magics,
                         const kl_complete_source *src) {
    if (!code) code = "";
    size_t cursor = kl_utf8_cp_to_byte(code, cursor_pos);
    kl_complete_ctx ctx;
    kl_complete_sink sink = {0};
    json_t *reply = NULL;
    if (kl_complete_analyze(code, cursor, magics, &ctx) != 0) goto out;
    sink.prefix = code + ctx.prefix_start;
    sink.plen = ctx.prefix_len;
    sink.quoted = ctx.quoted;
    for (size_t k = 0; k < sink.plen; k++)
        if (isupper((unsigned char)sink.prefix[k])) sink.upper = true;

    if (src && src->names) {
        /* Every fetch starts before any is waited for, so they share one deadline. */
        for (size_t i = 0; i < ctx.nqueries; i++) src->names(src->arg, &ctx.queries[i], NULL);
        for (size_t i = 0; i < ctx.nqueries; i++) src->names(src->arg, &ctx.queries[i], &sink);
    }
    if (ctx.magic_kind && magics) {
        magic_query q = {&sink, ctx.magic_kind == KL_MAGIC_CELL ? "%%" : "%", ctx.magic_kind};
        kl_magic_foreach(magics, match_magic, &q);
    }
    if (ctx.magic_bare && magics) {
        magic_query q = {&sink, "", KL_MAGIC_LINE | KL_MAGIC_CELL};
        kl_magic_foreach(magics, match_magic, &q);
    }
    for (const char *const *v = ctx.values; v && *v; v++)
        if (matches_prefix(&sink, *v)) sink_add(&sink, strdup(*v), "option", NULL);
    if (ctx.keywords && sink.plen > 0)
        for (size_t k = 0; k < sizeof KEYWORDS / sizeof *KEYWORDS; k++)
            if (matches_prefix(&sink, KEYWORDS[k]))
                sink_add(&sink, cased(KEYWORDS[k], sink.upper), "keyword", NULL);
    if (sink.failed) goto out;

    if (sink.n) qsort(sink.v, sink.n, sizeof *sink.v, cmp_match);
    json_int_t cp_start = (json_int_t)kl_utf8_byte_to_cp(code, ctx.start);
    json_int_t cp_end = (json_int_t)kl_utf8_byte_to_cp(code, ctx.end);
    json_t *matches = json_array();
    json_t *types = json_array();
    for (size_t k = 0; k < sink.n && matches && types; k++) {
        json_array_append_new(matches, json_string(sink.v[k].text));
        json_array_append_new(types, json_pack("{sIsIssss}", "start", cp_start, "end", cp_end,
                                               "text", sink.v[k].text, "type", sink.v[k].type));
    }
    reply =
        json_pack("{sssosIsIs{so}}", "status", "ok", "matches", matches, "cursor_start", cp_start,
                  "cursor_end", cp_end, "metadata", "_jupyter_types_experimental", types);
out:
    kl_complete_ctx_clear(&ctx);
    for (size_t k = 0; k < sink.n; k++) {
        free(sink.v[k].text);
        free(sink.v[k].key);
    }
    free(sink.v);
    return reply;
}

json_t *kl_complete(const char *code, size_t cursor_pos, const kl_magic_registry *magics) {
    return kl_complete_with(code, cursor_pos, magics, NULL);
}
