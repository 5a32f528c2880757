/* Magics about this connection's Spark session: SQL parameters (%set, %unset), the live progress
 * display (%progress), the endpoint (%connect) and Toree's %%DataFrame. The work itself is in
 * kernel/sql.c; these parse arguments and report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/execute.h"
#include "kernel/sql.h"
#include "kernel/cellparam.h"

/* ---- %set, %unset --------------------------------------------------------------------------- */

typedef struct param_list {
    const char **names;
    size_t n;
} param_list;

static void collect_name(const char *key, void *value, void *arg) {
    (void)value;
    param_list *l = arg;
    l->names[l->n++] = key;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One line per parameter, "name  type  value", the value as Spark will receive it. */
static int list_params(kl_magic_ctx *c, const char *only) {
    kl_strmap *m = c->t->params;
    size_t n = m ? kl_strmap_len(m) : 0;
    if (n == 0) {
        kl_ctx_result(
            c, json_pack("{s:s}", "text/plain", "No parameters are set; %set name=value sets one."),
            NULL);
        return 0;
    }
    param_list l = {calloc(n, sizeof *l.names), 0};
    if (!l.names) return kl_ctx_error(c, "MemoryError", "out of memory");
    kl_strmap_foreach(m, collect_name, &l);
    qsort(l.names, l.n, sizeof *l.names, by_name);
    size_t wname = 4;
    for (size_t i = 0; i < l.n; i++)
        if (strlen(l.names[i]) > wname) wname = strlen(l.names[i]);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        free(l.names);
        return kl_ctx_error(c, "MemoryError", "out of memory");
    }
    fprintf(f, "%-*s  %-7s  %s", (int)wname, "name", "type", "value");
    for (size_t i = 0; i < l.n; i++) {
        if (only && strcmp(only, l.names[i]) != 0) continue;
        kl_param_value v;
        if (kl_cellparam_parse_value(kl_strmap_get(m, l.names[i]), &v) != 0) continue;
        fprintf(f, "\n%-*s  %-7s  ", (int)wname, l.names[i], kl_cellparam_kind_name(v.kind));
        switch (v.kind) {
        case KL_PARAM_LONG:
            fprintf(f, "%lld", (long long)v.l);
            break;
        case KL_PARAM_DOUBLE:
            fprintf(f, "%.17g", v.d);
            break;
        case KL_PARAM_BOOLEAN:
            fprintf(f, "%s", v.b ? "true" : "false");
            break;
        case KL_PARAM_STRING:
            fprintf(f, "%s", v.s);
            break;
        }
        kl_cellparam_value_free(&v);
    }
    fclose(f);
    free(l.names);
    kl_ctx_result(c, json_pack("{s:s}", "text/plain", text ? text : ""), NULL);
    free(text);
    return 0;
}

static int magic_set(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    if (!*args) return list_params(c, NULL);
    if (!strchr(args, '=')) {
        if (!kl_cellparam_valid_name(args, strlen(args)))
            return kl_ctx_error(c, "UsageError",
                                "%%set takes name=value, with a name of letters, digits and _ "
                                "(usage: %%set [name=value])");
        if (!c->t->params || !kl_strmap_get(c->t->params, args))
            return kl_ctx_error(c, "UsageError", "no parameter %s is set", args);
        return list_params(c, args);
    }
    char *name, *value;
    int rc = kl_cellparam_split_assignment(args, &name, &value);
    if (rc == -2) return kl_ctx_error(c, "MemoryError", "out of memory");
    if (rc != 0)
        return kl_ctx_error(c, "UsageError",
                            "%%set takes name=value, with a name of letters, digits and _ that "
                            "starts with a letter or _ (usage: %%set [name=value])");
    rc = kl_sql_params_set(&c->t->params, name, value);
    free(name);
    free(value);
    return rc == 0 ? 0 : kl_ctx_error(c, "MemoryError", "out of memory");
}

static int magic_unset(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    const char *p = args;
    bool oom = false, any = false;
    char *name;
    while ((name = kl_cellparam_next_word(&p, &oom))) {
        any = true;
        char *old = c->t->params ? kl_strmap_del(c->t->params, name) : NULL;
        if (!old) {
            kl_ctx_error(c, "UsageError", "no parameter %s is set", name);
            free(name);
            return -1;
        }
        free(old);
        free(name);
    }
    if (oom) return kl_ctx_error(c, "MemoryError", "out of memory");
    if (!any) return kl_ctx_error(c, "UsageError", "usage: %%unset name [name...]");
    return 0;
}

/* ---- %progress ---------------------------------------------------------------------------- */

static int magic_progress(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    char text[64];
    if (!*args) {
        snprintf(text, sizeof text, "Progress: %s", c->t->progress ? "on" : "off");
        kl_ctx_result(c, json_pack("{s:s}", "text/plain", text), NULL);
        return 0;
    }
    if (strcasecmp(args, "on") == 0)
        c->t->progress = true;
    else if (strcasecmp(args, "off") == 0)
        c->t->progress = false;
    else
        return kl_ctx_error(c, "UsageError", "%%progress takes on or off, not \"%s\"", args);
    snprintf(text, sizeof text, "Progress is now %s\n", c->t->progress ? "on" : "off");
    kl_ctx_stream(c, "stdout", text);
    return 0;
}

/* ---- %connect ----------------------------------------------------------------------------- */

#define CONNECT_USAGE "%connect [sc://host:port/;param=value... [--token] | local]"

static int magic_connect(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    const char *p = args;
    bool oom = false, ask_token = false;
    char *url = NULL, *word;
    int rc = 0;
    while (rc == 0 && (word = kl_cellparam_next_word(&p, &oom))) {
        if (strcmp(word, "--token") == 0) {
            ask_token = true;
        } else if (word[0] == '-') {
            rc = kl_ctx_error(c, "UsageError", "%%connect: unknown option \"%s\" (usage: %s)", word,
                              CONNECT_USAGE);
        } else if (url) {
            /* Not quoted back: it may be a secret typed in the wrong place. */
            rc =
                kl_ctx_error(c, "UsageError", "%%connect takes one URL (usage: %s)", CONNECT_USAGE);
        } else {
            url = word;
            word = NULL;
        }
        free(word);
    }
    if (rc == 0 && oom) rc = kl_ctx_error(c, "MemoryError", "out of memory");
    if (rc == 0 && !url && ask_token)
        rc = kl_ctx_error(c, "UsageError", "%%connect --token needs a URL (usage: %s)",
                          CONNECT_USAGE);
    if (rc == 0 && !url) {
        char *now = kl_sql_endpoint_describe(c);
        char *text = NULL;
        if (now && asprintf(&text, "Spark Connect endpoint: %s", now) >= 0)
            kl_ctx_result(c, json_pack("{s:s}", "text/plain", text), NULL);
        else
            rc = kl_ctx_error(c, "MemoryError", "out of memory");
        free(text);
        free(now);
    } else if (rc == 0) {
        rc = kl_sql_connect(c, url, ask_token);
    }
    free(url);
    return rc;
}

/* ---- %%dataframe ---------------------------------------------------------------------------- */

/* Toree shows ten rows as HTML unless told otherwise. */
#define DATAFRAME_LIMIT 10
#define DATAFRAME_USAGE                                                                            \
    "%%dataframe [--limit N] [--output html|table|json|csv] [--param name=value]..."

static int magic_dataframe(kl_magic_ctx *c, const char *args, const char *body) {
    kl_sql_run_opts o = {.limit = DATAFRAME_LIMIT, .output = KL_SQL_OUT_HTML};
    kl_strmap *params = NULL;
    if (kl_sql_cell_options(c, args, DATAFRAME_USAGE, KL_SQL_OUT_HTML, &o, &params) != 0) return -1;
    o.params = params;
    int rc = kl_sql_run_with(c, body, strlen(body), &o);
    kl_sql_params_free(params);
    return rc;
}

int kl_session_magics_register(kl_magic_registry *reg) {
    static const kl_magic magics[] = {
        {"set", KL_MAGIC_LINE, "%set [name=value]",
         "Set a SQL parameter of this connection, bound to :name (and ${name}) in later SQL as "
         "a typed literal, never spliced into the text: integers bind as long, other numbers "
         "as double, true/false as boolean, anything else (or 'quoted') as string. Without "
         "arguments, list the parameters.",
         magic_set},
        {"unset", KL_MAGIC_LINE, "%unset name [name...]", "Remove SQL parameters set with %set.",
         magic_unset},
        {"progress", KL_MAGIC_LINE, "%progress [on|off]",
         "Show a live progress display (stages, tasks, bytes read, time) while a query runs on "
         "this connection; on by default. No argument shows the setting.",
         magic_progress},
        {"connect", KL_MAGIC_LINE, CONNECT_USAGE,
         "Switch this connection to another Spark Connect endpoint (checked at once; the old "
         "Spark session is released); --token asks for the token as a password instead of "
         "taking it in the cell. `local` returns to the kernel's endpoint; no argument shows "
         "the current one.",
         magic_connect},
        {"dataframe", KL_MAGIC_CELL, DATAFRAME_USAGE,
         "Toree's %%DataFrame: run the body as Spark SQL and render each result as HTML "
         "(default, 10 rows), a table, JSON records or CSV.",
         magic_dataframe},
    };
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        int rc = kl_magic_register(reg, &magics[i]);
        if (rc != 0) return rc;
    }
    return 0;
}
