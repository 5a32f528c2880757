/* An example Kindling magic plugin: three magics showing the three kinds of output a plugin
 * produces through the host table of <kindling/magic.h>.
 *
 *   %hello [NAME]     stream text:   Hello, NAME!
 *   %%upper           display data:  the cell body upper-cased, as text/plain and HTML
 *   %rowcount TABLE   SQL on Spark:  SELECT count(*) AS row_count FROM TABLE, as a table
 *
 * Build:  cc -shared -fPIC -I include -o kindling_example_magic.so \
 *             examples/plugins/kindling_example_magic.c
 * Load:   kindling kernel --magic-plugin ./kindling_example_magic.so ...
 *    or   %load_magic ./kindling_example_magic.so   (in a cell; needs --allow-shell) */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kindling/magic.h"

KINDLING_MAGIC_PLUGIN_ABI;

/* The host table stays valid for the life of the process. */
static const kindling_magic_host *host;

static int hello(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)body;
    (void)user;
    char *text = NULL;
    if (asprintf(&text, "Hello, %s!\n", *args ? args : "world") < 0)
        return host->error(ctx, "MemoryError", "out of memory");
    host->stream(ctx, "stdout", text);
    free(text);
    return 0;
}

/* Appends s to out, escaping what HTML would read as markup. out has room for 6 bytes per
 * byte of s. */
static char *html_escape(const char *s, char *out) {
    for (; *s; s++) {
        const char *rep = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : NULL;
        if (rep) {
            out = stpcpy(out, rep);
        } else {
            *out++ = *s;
        }
    }
    *out = 0;
    return out;
}

static int upper(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)args;
    (void)user;
    size_t n = strlen(body);
    char *up = malloc(n + 1);
    char *html = malloc(6 * n + 32);
    if (!up || !html) {
        free(up);
        free(html);
        return host->error(ctx, "MemoryError", "out of memory");
    }
    for (size_t i = 0; i <= n; i++) up[i] = (char)toupper((unsigned char)body[i]);
    html_escape(up, stpcpy(html, "<pre>"));
    strcat(html, "</pre>");
    kindling_mime_data items[] = {{"text/plain", up}, {"text/html", html}};
    int rc = host->display(ctx, items, 2);
    free(up);
    free(html);
    return rc;
}

/* The argument names a table, so it is quoted as an identifier (each dotted part in backticks,
 * inner backticks doubled): whatever the user types stays a name and never becomes SQL. */
static int rowcount(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)body;
    (void)user;
    if (!*args || strpbrk(args, " \t\n"))
        return host->error(ctx, "UsageError",
                           "%%rowcount takes one table name, e.g. "
                           "%%rowcount db.events");
    size_t n = strlen(args);
    char *sql = malloc(3 * n + 64);
    if (!sql) return host->error(ctx, "MemoryError", "out of memory");
    char *p = stpcpy(sql, "SELECT count(*) AS row_count FROM `");
    for (const char *s = args; *s; s++) {
        if (*s == '.') {
            p = stpcpy(p, "`.`");
        } else {
            if (*s == '`') *p++ = '`';
            *p++ = *s;
        }
    }
    strcpy(p, "`");
    int rc = host->run_sql(ctx, sql, 0, KINDLING_SQL_TABLE);
    free(sql);
    return rc;
}

int kindling_magic_plugin_init(const kindling_magic_host *h, kindling_magic_registrar *reg) {
    host = h;
    static const kindling_magic_def defs[] = {
        {"hello", KINDLING_MAGIC_LINE, "%hello [NAME]", "Greet NAME (default: world).", hello,
         NULL},
        {"upper", KINDLING_MAGIC_CELL, "%%upper", "Display the cell body in upper case.", upper,
         NULL},
        {"rowcount", KINDLING_MAGIC_LINE, "%rowcount TABLE",
         "Count the rows of TABLE on this connection's Spark session.", rowcount, NULL},
    };
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
        if (h->register_magic(reg, &defs[i]) != 0) return -1;
    return 0;
}
