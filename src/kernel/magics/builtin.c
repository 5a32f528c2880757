/* The magics that need no Spark: listing and help, rich output, per-connection display options,
 * and small tools (echo, sleep, input) that make streams, interrupts and stdin easy to exercise. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/execute.h"
#include "kernel/sql.h"

/* ---- growable text buffer ----------------------------------------------------------------- */

typedef struct buf {
    char *s;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_add(buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) return;
        b->s = s;
        b->cap = cap;
    }
}

static void html_escape(buf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<':
            buf_add(b, "&lt;");
            break;
        case '>':
            buf_add(b, "&gt;");
            break;
        case '&':
            buf_add(b, "&amp;");
            break;
        case '"':
            buf_add(b, "&quot;");
            break;
        default:
            buf_add(b, "%c", *s);
        }
    }
}

/* ---- listing and help --------------------------------------------------------------------- */

typedef struct listing {
    buf line, cell, html;
} listing;

static void list_one(const kl_magic *m, void *arg) {
    listing *l = arg;
    if (m->kinds & KL_MAGIC_LINE) buf_add(&l->line, "  %%%s", m->name);
    if (m->kinds & KL_MAGIC_CELL) buf_add(&l->cell, "  %%%%%s", m->name);
    buf_add(&l->html, "<tr><td><code>");
    html_escape(&l->html, m->usage);
    buf_add(&l->html, "</code></td><td>");
    html_escape(&l->html, m->help);
    buf_add(&l->html, "</td></tr>");
}

static int magic_lsmagic(kl_magic_ctx *c, const char *args, const char *body) {
    (void)args;
    (void)body;
    listing l = {0};
    buf_add(&l.html, "<table><tr><th>magic</th><th>what it does</th></tr>");
    kl_magic_foreach(c->k->magics, list_one, &l);
    buf_add(&l.html, "</table>");
    buf text = {0};
    buf_add(&text,
            "Available line magics:\n%s\n\nAvailable cell magics:\n%s\n\n"
            "Names are case-insensitive. %%help NAME explains one.",
            l.line.s ? l.line.s : "", l.cell.s ? l.cell.s : "");
    kl_ctx_result(c,
                  json_pack("{s:s, s:s}", "text/plain", text.s ? text.s : "", "text/html",
                            l.html.s ? l.html.s : ""),
                  NULL);
    free(l.line.s);
    free(l.cell.s);
    free(l.html.s);
    free(text.s);
    return 0;
}

static void help_one(const kl_magic *m, void *arg) {
    buf_add(arg, "%-40s %s\n", m->usage, m->help);
}

static int magic_help(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    buf text = {0};
    const char *name = args + strspn(args, "%");
    if (*name) {
        const kl_magic *m = kl_magic_find(c->k->magics, name, strlen(name), KL_MAGIC_LINE);
        if (!m) m = kl_magic_find(c->k->magics, name, strlen(name), KL_MAGIC_CELL);
        if (!m) return kl_ctx_error(c, "UnknownMagic", "no magic is called %s", args);
        buf_add(&text, "%s\n\n%s\n", m->usage, m->help);
    } else {
        buf_add(&text, "Kindling magics (names are case-insensitive):\n\n");
        kl_magic_foreach(c->k->magics, help_one, &text);
    }
    kl_ctx_page(c, text.s ? text.s : "");
    free(text.s);
    return 0;
}

/* ---- rich output -------------------------------------------------------------------------- */

static int display_body(kl_magic_ctx *c, const char *mime, const char *body) {
    kl_ctx_display(c, json_pack("{s:s}", mime, body ? body : ""), NULL);
    return 0;
}

static int magic_html(kl_magic_ctx *c, const char *args, const char *body) {
    (void)args;
    return display_body(c, "text/html", body);
}

static int magic_javascript(kl_magic_ctx *c, const char *args, const char *body) {
    (void)args;
    return display_body(c, "application/javascript", body);
}

static int magic_markdown(kl_magic_ctx *c, const char *args, const char *body) {
    (void)args;
    return display_body(c, "text/markdown", body);
}

static int magic_clear(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    kl_ctx_clear(c, strcmp(args, "--wait") == 0);
    return 0;
}

/* ---- display options ---------------------------------------------------------------------- */

static int toggle(kl_magic_ctx *c, const char *label, bool *opt, const char *args) {
    if (!*args) {
        char text[64];
        snprintf(text, sizeof text, "%s: %s", label, *opt ? "on" : "off");
        kl_ctx_result(c, json_pack("{s:s}", "text/plain", text), NULL);
        return 0;
    }
    if (strcasecmp(args, "on") == 0)
        *opt = true;
    else if (strcasecmp(args, "off") == 0)
        *opt = false;
    else
        return kl_ctx_error(c, "UsageError", "%%%s takes on or off, not \"%s\"", label, args);
    char text[64];
    snprintf(text, sizeof text, "%s is now %s\n", label, *opt ? "on" : "off");
    kl_ctx_stream(c, "stdout", text);
    return 0;
}

static int magic_truncation(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    return toggle(c, "Truncation", &c->t->truncation, args);
}

static int magic_showtypes(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    return toggle(c, "ShowTypes", &c->t->showtypes, args);
}

static int magic_showoutput(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    /* Say it before turning output off, or the confirmation itself would be hidden. */
    bool on = c->t->showoutput;
    c->t->showoutput = true;
    int rc = toggle(c, "ShowOutput", &on, args);
    c->t->showoutput = on;
    return rc;
}

/* ---- tools -------------------------------------------------------------------------------- */

static int magic_echo(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    const char *stream = "stdout";
    if (strncmp(args, "--stderr", 8) == 0 && (args[8] == 0 || isspace((unsigned char)args[8]))) {
        stream = "stderr";
        args += 8;
        args += strspn(args, " \t");
    }
    size_t n = strlen(args);
    char *text = malloc(n + 2);
    if (!text) return kl_ctx_error(c, "MemoryError", "out of memory");
    memcpy(text, args, n);
    text[n] = '\n';
    text[n + 1] = 0;
    kl_ctx_stream(c, stream, text);
    free(text);
    return 0;
}

static int magic_sleep(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    char *end;
    errno = 0;
    double secs = strtod(args, &end);
    if (!*args || *end || errno || !isfinite(secs) || secs < 0 || secs > 86400)
        return kl_ctx_error(c, "UsageError",
                            "%%sleep takes a number of seconds (0-86400), not \"%s\"", args);
    return kl_ctx_sleep(c, (uint64_t)(secs * 1000.0));
}

static int magic_input(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    bool password = false;
    if (strncmp(args, "--password", 10) == 0 &&
        (args[10] == 0 || isspace((unsigned char)args[10]))) {
        password = true;
        args += 10;
        args += strspn(args, " \t");
    }
    char *value = NULL;
    if (kl_ctx_input(c, *args ? args : "> ", password, &value) != 0) return -1;
    char *text = NULL;
    int rc = password ? asprintf(&text, "(%zu characters)\n", strlen(value))
                      : asprintf(&text, "you said: %s\n", value);
    if (rc >= 0) kl_ctx_stream(c, "stdout", text);
    free(text);
    free(value);
    return 0;
}

#define SQL_USAGE "%%sql [--limit N] [--output table|json|csv] [--param name=value]..."

/* %%sql: the body is SQL, shown with its own row limit and form, with this cell's parameters. */
static int magic_sql(kl_magic_ctx *c, const char *args, const char *body) {
    kl_sql_run_opts o = {.output = KL_SQL_OUT_TABLE};
    kl_strmap *params = NULL;
    if (kl_sql_cell_options(c, args, SQL_USAGE, KL_SQL_OUT_TABLE, &o, &params) != 0) return -1;
    o.params = params;
    int rc = kl_sql_run_with(c, body, strlen(body), &o);
    kl_sql_params_free(params);
    return rc;
}

int kl_builtin_magics_register(kl_magic_registry *reg) {
    static const kl_magic magics[] = {
        {"lsmagic", KL_MAGIC_LINE, "%lsmagic", "List the line and cell magics.", magic_lsmagic},
        {"help", KL_MAGIC_LINE, "%help [NAME]",
         "Show help for every magic, or for one, in the pager.", magic_help},
        {"html", KL_MAGIC_CELL, "%%html", "Display the cell body as HTML.", magic_html},
        {"javascript", KL_MAGIC_CELL, "%%javascript",
         "Run the cell body as JavaScript in the front end.", magic_javascript},
        {"markdown", KL_MAGIC_CELL, "%%markdown", "Display the cell body as Markdown.",
         magic_markdown},
        {"truncation", KL_MAGIC_LINE, "%truncation [on|off]",
         "Truncate long values in result tables (this connection only); no argument shows the "
         "setting.",
         magic_truncation},
        {"showtypes", KL_MAGIC_LINE, "%showtypes [on|off]",
         "Show column types in result tables (this connection only).", magic_showtypes},
        {"showoutput", KL_MAGIC_LINE, "%showoutput [on|off]",
         "Show or hide stream output of later cells (this connection only); errors always show.",
         magic_showoutput},
        {"clear", KL_MAGIC_LINE, "%clear [--wait]", "Clear the cell's output.", magic_clear},
        {"echo", KL_MAGIC_LINE, "%echo [--stderr] TEXT", "Print TEXT to stdout (or stderr).",
         magic_echo},
        {"sleep", KL_MAGIC_LINE, "%sleep SECONDS",
         "Wait without blocking the kernel; an interrupt ends the wait.", magic_sleep},
        {"sql", KL_MAGIC_CELL, SQL_USAGE,
         "Run the cell body as Spark SQL, showing at most N rows of each result, as a table, "
         "JSON records or CSV; --param binds :name (or ${name}) markers for this cell only.",
         magic_sql},
        {"input", KL_MAGIC_LINE, "%input [--password] PROMPT",
         "Ask the client for a line of input over the stdin channel and print it.", magic_input},
    };
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        int rc = kl_magic_register(reg, &magics[i]);
        if (rc != 0) return rc;
    }
    return 0;
}
