/* Keyword and magic-name completion. The protocol counts the cursor in code points while the
 * scanning works on UTF-8 bytes, so every offset crosses kl_utf8_* on the way in and out. */
#include "kernel/complete.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Spark SQL keywords, plus the common type names, as the grammar spells them. */
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

typedef struct {
    char **items;
    size_t count, cap;
    bool failed;
} strlist;

/* Takes ownership of s (which may be NULL after a failed allocation). */
static void add_owned(strlist *l, char *s) {
    if (!s || l->failed) {
        free(s);
        l->failed = true;
        return;
    }
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        char **n = realloc(l->items, ncap * sizeof *n);
        if (!n) {
            free(s);
            l->failed = true;
            return;
        }
        l->items = n;
        l->cap = ncap;
    }
    l->items[l->count++] = s;
}

typedef struct {
    strlist *out;
    const char *percent; /* "%" or "%%" */
    kl_magic_kind kind;
    const char *rest;
    size_t restlen;
} magic_query;

static void match_magic(const kl_magic *m, void *arg) {
    magic_query *q = arg;
    if (!(m->kinds & (int)q->kind)) return;
    if (strlen(m->name) < q->restlen || strncasecmp(m->name, q->rest, q->restlen) != 0) return;
    char *s = NULL;
    if (asprintf(&s, "%s%s", q->percent, m->name) < 0) s = NULL;
    add_owned(q->out, s);
}

static void match_keywords(strlist *out, const char *prefix, size_t plen) {
    bool lower = true;
    for (size_t k = 0; k < plen; k++)
        if (isupper((unsigned char)prefix[k])) lower = false;
    for (size_t k = 0; k < sizeof KEYWORDS / sizeof *KEYWORDS; k++) {
        const char *kw = KEYWORDS[k];
        if (strlen(kw) < plen || strncasecmp(kw, prefix, plen) != 0) continue;
        char *s = strdup(kw);
        if (s && lower)
            for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
        add_owned(out, s);
    }
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

json_t *kl_complete(const char *code, size_t cursor_pos, const kl_magic_registry *magics) {
    if (!code) code = "";
    size_t cursor = kl_utf8_cp_to_byte(code, cursor_pos);
    size_t start, end;
    kl_complete_token(code, cursor, &start, &end);
    const char *prefix = code + start;
    size_t plen = cursor - start;
    size_t percents = 0;
    while (percents < plen && percents < 2 && prefix[percents] == '%') percents++;

    strlist found = {0};
    if (percents > 0) {
        magic_query q = {&found, percents == 2 ? "%%" : "%",
                         percents == 2 ? KL_MAGIC_CELL : KL_MAGIC_LINE, prefix + percents,
                         plen - percents};
        if (magics) kl_magic_foreach(magics, match_magic, &q);
    } else if (plen > 0) {
        match_keywords(&found, prefix, plen);
    }

    json_t *reply = NULL;
    if (!found.failed) {
        if (found.count > 0) qsort(found.items, found.count, sizeof *found.items, cmp_str);
        json_int_t cp_start = (json_int_t)kl_utf8_byte_to_cp(code, start);
        json_int_t cp_end = (json_int_t)kl_utf8_byte_to_cp(code, end);
        json_t *matches = json_array();
        json_t *types = json_array();
        const char *type = percents > 0 ? "magic" : "keyword";
        for (size_t k = 0; k < found.count && matches && types; k++) {
            if (k > 0 && strcmp(found.items[k], found.items[k - 1]) == 0) continue;
            json_array_append_new(matches, json_string(found.items[k]));
            json_array_append_new(types, json_pack("{sIsIssss}", "start", cp_start, "end", cp_end,
                                                   "text", found.items[k], "type", type));
        }
        reply = json_pack("{sssosIsIs{so}}", "status", "ok", "matches", matches, "cursor_start",
                          cp_start, "cursor_end", cp_end, "metadata", "_jupyter_types_experimental",
                          types);
    }
    for (size_t k = 0; k < found.count; k++) free(found.items[k]);
    free(found.items);
    return reply;
}
