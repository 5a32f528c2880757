/* inspect_request. Names are checked against the cached listings (tables of the database,
 * SHOW FUNCTIONS) before anything is described, so contextual help -- which front ends request at
 * every keystroke -- costs one listing per database instead of one failing DESCRIBE per partial
 * word. */
#include "kernel/inspect.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/complete.h"
#include "kernel/sqllex.h"
#include "kernel/tenant.h"

static const char *str(json_t *content, const char *key, const char *dflt) {
    const char *s = json_string_value(json_object_get(content, key));
    return s ? s : dflt;
}

static json_int_t num(json_t *content, const char *key, json_int_t dflt) {
    json_t *v = json_object_get(content, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static json_t *not_found(void) {
    return json_pack("{s:s, s:b, s:{}, s:{}}", "status", "ok", "found", 0, "data", "metadata");
}

static json_t *found(const char *text, const char *html) {
    json_t *data = json_pack("{s:s}", "text/plain", text);
    if (data && html) json_object_set_new(data, "text/html", json_string(html));
    return json_pack("{s:s, s:b, s:o, s:{}}", "status", "ok", "found", 1, "data",
                     data ? data : json_object(), "metadata");
}

/* ---- magics --------------------------------------------------------------------------------- */

static json_t *magic_help(const kl_magic *m, int detail) {
    char *text = NULL;
    const char *kinds = m->kinds == (KL_MAGIC_LINE | KL_MAGIC_CELL) ? "line and cell magic"
                        : m->kinds == KL_MAGIC_CELL                 ? "cell magic"
                                                                    : "line magic";
    if (asprintf(&text, "%s\n\n%s\n%s", m->usage, m->help, detail > 0 ? kinds : "") < 0)
        text = NULL;
    json_t *reply = found(text ? text : m->help, NULL);
    free(text);
    return reply;
}

static const kl_magic *find_magic(kl_kernel *k, const char *name, size_t len) {
    const kl_magic *m = len ? kl_magic_find(k->magics, name, len, KL_MAGIC_LINE) : NULL;
    if (!m && len) m = kl_magic_find(k->magics, name, len, KL_MAGIC_CELL);
    return m;
}

/* ---- the name at the cursor ------------------------------------------------------------------ */

typedef enum { CX_ANY, CX_TABLE, CX_FUNCTION } name_context;

typedef struct name_at {
    char *parts[3]; /* outermost first */
    size_t n;
    bool call; /* followed by '(' */
    name_context cx;
} name_at;

static void name_clear(name_at *n) {
    for (size_t i = 0; i < n->n; i++) free(n->parts[i]);
    n->n = 0;
}

static bool is_name(const kl_tok *t) {
    return t->kind == KL_TOK_WORD || t->kind == KL_TOK_QUOTED;
}

static bool is_dot(const char *s, const kl_tok *t) {
    return t->kind == KL_TOK_PUNCT && s[t->start] == '.';
}

static const char *const TABLE_BEFORE[] = {"FROM", "JOIN",     "INTO",     "UPDATE",    "TABLE",
                                           "VIEW", "DESCRIBE", "EXTENDED", "FORMATTED", NULL};

/* The dotted name (a.b.c) the cursor is in or just after; 0 when there is none. */
static int name_at_cursor(const char *code, size_t cursor, name_at *out) {
    memset(out, 0, sizeof *out);
    size_t len = strlen(code), pos = 0, n = 0, cap = 0;
    kl_tok *v = NULL, t;
    while (kl_sqllex_next_code(code, len, &pos, &t)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            kl_tok *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[n++] = t;
    }
    size_t i = 0;
    while (i < n && !(is_name(&v[i]) && v[i].start <= cursor && cursor <= v[i].start + v[i].len))
        i++;
    if (i == n ||
        (v[i].kind == KL_TOK_WORD && code[v[i].start] >= '0' && code[v[i].start] <= '9')) {
        free(v);
        return 0;
    }
    size_t first = i, last = i;
    while (first >= 2 && is_dot(code, &v[first - 1]) && is_name(&v[first - 2]) &&
           v[first - 2].start + v[first - 2].len == v[first - 1].start &&
           v[first - 1].start + 1 == v[first].start)
        first -= 2;
    while (last + 2 < n && is_dot(code, &v[last + 1]) && is_name(&v[last + 2]) &&
           v[last].start + v[last].len == v[last + 1].start &&
           v[last + 1].start + 1 == v[last + 2].start)
        last += 2;
    /* Keep the innermost three parts (catalog.db.name). */
    while ((last - first) / 2 + 1 > 3) first += 2;
    for (size_t k = first; k <= last; k += 2) {
        out->parts[out->n] = kl_sqllex_name(code, &v[k]);
        if (!out->parts[out->n]) {
            name_clear(out);
            free(v);
            return -1;
        }
        out->n++;
    }
    out->call = last + 1 < n && v[last + 1].kind == KL_TOK_PUNCT && code[v[last + 1].start] == '(';
    if (first > 0) {
        const kl_tok *p = &v[first - 1];
        if (kl_sqllex_is(code, p, "FUNCTION")) out->cx = CX_FUNCTION;
        for (const char *const *w = TABLE_BEFORE; *w && out->cx == CX_ANY; w++)
            if (kl_sqllex_is(code, p, *w)) out->cx = CX_TABLE;
    }
    free(v);
    return 1;
}

/* ---- catalog lookups ------------------------------------------------------------------------ */

typedef struct lookup {
    kl_tenant *t;
    const kl_msg *msg;
    uint64_t deadline;
} lookup;

/* 1 when db.name is a listed table or view (*kind says which), 0 when the listing says it is
 * not, -1 when the listing is not available. */
static int listed_table(const lookup *l, const char *db, const char *name, const char **kind) {
    bool failed;
    kl_catalog_rows *r =
        kl_catalog_get(l->t, l->msg, KL_CATALOG_TABLES, db, NULL, l->deadline, &failed);
    if (!r) return failed ? 0 : -1;
    int cname = kl_catalog_column(r, "name"), cns = kl_catalog_column(r, "namespace");
    int ctype = kl_catalog_column(r, "tableType"), ctemp = kl_catalog_column(r, "isTemporary");
    int hit = 0;
    for (size_t i = 0; cname >= 0 && i < r->nrows && !hit; i++) {
        const char *n = kl_catalog_cell(r, i, (size_t)cname);
        const char *ns = cns >= 0 ? kl_catalog_cell(r, i, (size_t)cns) : NULL;
        if (!n || strcasecmp(n, name) != 0) continue;
        if (db && (!ns || strcasecmp(ns, db) != 0)) continue;
        const char *type = ctype >= 0 ? kl_catalog_cell(r, i, (size_t)ctype) : NULL;
        const char *temp = ctemp >= 0 ? kl_catalog_cell(r, i, (size_t)ctemp) : NULL;
        if ((temp && strcmp(temp, "true") == 0) || (type && strcasecmp(type, "TEMPORARY") == 0))
            *kind = "temporary view";
        else if (type && strcasecmp(type, "VIEW") == 0)
            *kind = "view";
        else
            *kind = "table";
        hit = 1;
    }
    kl_catalog_rows_unref(r);
    return hit;
}

static int listed_function(const lookup *l, const char *name) {
    bool failed;
    kl_catalog_rows *r =
        kl_catalog_get(l->t, l->msg, KL_CATALOG_FUNCTIONS, NULL, NULL, l->deadline, &failed);
    if (!r) return failed ? 0 : -1;
    int hit = 0;
    for (size_t i = 0; i < r->nrows && !hit; i++) {
        const char *f = kl_catalog_cell(r, i, 0);
        const char *dot = f ? strrchr(f, '.') : NULL;
        if (f && (strcasecmp(f, name) == 0 || (dot && strcasecmp(dot + 1, name) == 0))) hit = 1;
    }
    kl_catalog_rows_unref(r);
    return hit;
}

static json_t *describe_table(const lookup *l, const char *db, const char *name, const char *kind,
                              int detail) {
    kl_catalog_rows *r =
        kl_catalog_get(l->t, l->msg, KL_CATALOG_DESCRIBE, db, name, l->deadline, NULL);
    if (!r) return NULL;
    char *shown = NULL, *text = NULL, *html = NULL;
    if (asprintf(&shown, "%s%s%s", db ? db : "", db ? "." : "", name) < 0) shown = NULL;
    json_t *reply = NULL;
    if (shown && kl_inspect_render_table(r, shown, kind, detail, &text, &html) == 0)
        reply = found(text, html);
    free(shown);
    free(text);
    free(html);
    kl_catalog_rows_unref(r);
    return reply;
}

static json_t *describe_function(const lookup *l, const char *name, int detail) {
    kl_catalog_rows *r =
        kl_catalog_get(l->t, l->msg, KL_CATALOG_DESCRIBE_FUNC, NULL, name, l->deadline, NULL);
    if (!r) return NULL;
    char *text = NULL, *html = NULL;
    json_t *reply = NULL;
    if (kl_inspect_render_function(r, detail, &text, &html) == 0) reply = found(text, html);
    free(text);
    free(html);
    kl_catalog_rows_unref(r);
    return reply;
}

static json_t *inspect_name(const lookup *l, const name_at *n, int detail) {
    const char *name = n->parts[n->n - 1];
    const char *db = n->n >= 2 ? n->parts[n->n - 2] : NULL;
    const char *kind = "table";
    json_t *reply = NULL;
    bool function_first = n->call || n->cx == CX_FUNCTION;
    if (n->n == 1 && function_first) {
        if (listed_function(l, name) != 0) reply = describe_function(l, name, detail);
        if (reply || n->cx == CX_FUNCTION) return reply;
    }
    int listed = listed_table(l, db, name, &kind);
    if (listed != 0) reply = describe_table(l, db, name, kind, detail);
    if (!reply && n->n == 1 && !function_first && listed_function(l, name) != 0)
        reply = describe_function(l, name, detail);
    return reply;
}

json_t *kl_inspect(kl_kernel *k, kl_tenant *t, const kl_msg *msg) {
    const char *code = str(msg->content, "code", "");
    size_t cursor = kl_utf8_cp_to_byte(code, (size_t)num(msg->content, "cursor_pos", 0));
    int detail = (int)num(msg->content, "detail_level", 0);
    size_t start, end;
    kl_complete_token(code, cursor, &start, &end);
    /* A cursor just past a name still means that name, as in other kernels. */
    if (start == end && cursor > 0) kl_complete_token(code, cursor - 1, &start, &end);
    const char *tok = code + start;
    size_t len = end - start;
    bool percent = len && *tok == '%';
    while (len && *tok == '%') tok++, len--;
    if (percent) {
        const kl_magic *m = find_magic(k, tok, len);
        return m ? magic_help(m, detail) : not_found();
    }
    name_at n;
    int rc = name_at_cursor(code, cursor, &n);
    json_t *reply = NULL;
    if (rc > 0 && n.n > 0) {
        lookup l = {t, msg, kl_catalog_now() + KL_CATALOG_INSPECT_WAIT_MS};
        reply = inspect_name(&l, &n, detail);
    }
    name_clear(&n);
    if (reply) return reply;
    const kl_magic *m = find_magic(k, tok, len);
    return m ? magic_help(m, detail) : not_found();
}

/* ---- rendering ------------------------------------------------------------------------------ */

static void html_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* Display width in code points (good enough for column alignment of names and types). */
static size_t width(const char *s) {
    size_t n = 0;
    for (; s && *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void pad(FILE *f, const char *s, size_t w) {
    fputs(s ? s : "", f);
    for (size_t n = width(s); n < w; n++) fputc(' ', f);
}

/* Properties shown at detail level 0; level 1 shows every row Spark sent. */
static const char *const BRIEF[] = {"Type", "Provider", "Owner", "Comment", "View Text", NULL};
/* Parts of the name, already in the header. */
static const char *const NAME_ROWS[] = {"Catalog", "Database", "Table", NULL};

static bool in(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

static bool blank(const char *s) {
    return !s || !*s;
}

static char *finish(FILE *f, char **buf) {
    if (fclose(f) != 0) {
        free(*buf);
        return NULL;
    }
    return *buf;
}

int kl_inspect_render_table(const kl_catalog_rows *desc, const char *name, const char *kind,
                            int detail, char **text, char **html) {
    *text = *html = NULL;
    size_t n = desc->nrows;
    /* Sections: the columns, then "# Partition Information" (a header row, then the partition
     * columns), then "# Detailed Table Information" (key, value rows). */
    size_t ncols = 0;
    while (ncols < n && !blank(kl_catalog_cell(desc, ncols, 0)) &&
           kl_catalog_cell(desc, ncols, 0)[0] != '#')
        ncols++;
    size_t part_start = n, part_end = n, info_start = n, info_end = n;
    for (size_t i = ncols; i < n; i++) {
        const char *c0 = kl_catalog_cell(desc, i, 0);
        if (c0 && strcmp(c0, "# Partition Information") == 0) {
            part_start = i + 1;
            if (part_start < n && kl_catalog_cell(desc, part_start, 0) &&
                strcmp(kl_catalog_cell(desc, part_start, 0), "# col_name") == 0)
                part_start++;
            part_end = part_start;
            while (part_end < n && !blank(kl_catalog_cell(desc, part_end, 0)) &&
                   kl_catalog_cell(desc, part_end, 0)[0] != '#')
                part_end++;
        } else if (c0 && strcmp(c0, "# Detailed Table Information") == 0) {
            info_start = i + 1;
            info_end = info_start;
            while (info_end < n && !blank(kl_catalog_cell(desc, info_end, 0)) &&
                   kl_catalog_cell(desc, info_end, 0)[0] != '#')
                info_end++;
        }
    }
    size_t w0 = strlen("Column"), w1 = strlen("Type");
    for (size_t i = 0; i < ncols; i++) {
        size_t a = width(kl_catalog_cell(desc, i, 0)), b = width(kl_catalog_cell(desc, i, 1));
        if (a > w0) w0 = a;
        if (b > w1) w1 = b;
    }

    size_t tlen, hlen;
    char *tbuf = NULL, *hbuf = NULL;
    FILE *tf = open_memstream(&tbuf, &tlen);
    FILE *hf = open_memstream(&hbuf, &hlen);
    if (!tf || !hf) {
        if (tf) fclose(tf);
        if (hf) fclose(hf);
        free(tbuf);
        free(hbuf);
        return -1;
    }
    fprintf(tf, "%c%s %s\n\n", toupper((unsigned char)kind[0]), kind + 1, name);
    fputs("<div class=\"kindling-inspect\"><p><b>", hf);
    html_escape(hf, kind);
    fputs("</b> <code>", hf);
    html_escape(hf, name);
    fputs("</code></p>\n<table>\n<thead><tr><th>Column</th><th>Type</th><th>Comment</th></tr>"
          "</thead>\n<tbody>\n",
          hf);
    pad(tf, "Column", w0 + 2);
    pad(tf, "Type", w1 + 2);
    fputs("Comment\n", tf);
    for (size_t i = 0; i < ncols; i++) {
        const char *c = kl_catalog_cell(desc, i, 0), *ty = kl_catalog_cell(desc, i, 1);
        const char *cm = desc->ncols > 2 ? kl_catalog_cell(desc, i, 2) : NULL;
        pad(tf, c, w0 + 2);
        if (blank(cm)) {
            fputs(ty ? ty : "", tf);
        } else {
            pad(tf, ty, w1 + 2);
            fputs(cm, tf);
        }
        fputc('\n', tf);
        fputs("<tr><td>", hf);
        html_escape(hf, c);
        fputs("</td><td>", hf);
        html_escape(hf, ty);
        fputs("</td><td>", hf);
        html_escape(hf, cm);
        fputs("</td></tr>\n", hf);
    }
    fputs("</tbody>\n</table>\n", hf);

    bool any = false;
    if (part_end > part_start) {
        fputs("\nPartitioned by: ", tf);
        fputs("<p>Partitioned by: <code>", hf);
        for (size_t i = part_start; i < part_end; i++) {
            fprintf(tf, "%s%s", i > part_start ? ", " : "", kl_catalog_cell(desc, i, 0));
            if (i > part_start) fputs(", ", hf);
            html_escape(hf, kl_catalog_cell(desc, i, 0));
        }
        fputs("\n", tf);
        fputs("</code></p>\n", hf);
    }
    for (size_t i = info_start; i < info_end; i++) {
        const char *key = kl_catalog_cell(desc, i, 0), *val = kl_catalog_cell(desc, i, 1);
        if (in(key, NAME_ROWS) || (detail == 0 && !in(key, BRIEF))) continue;
        if (!any) {
            fputs("\n", tf);
            fputs("<table>\n<tbody>\n", hf);
            any = true;
        }
        fprintf(tf, "%s: %s\n", key, val ? val : "");
        fputs("<tr><th style=\"text-align:left\">", hf);
        html_escape(hf, key);
        fputs("</th><td>", hf);
        html_escape(hf, val);
        fputs("</td></tr>\n", hf);
    }
    if (any) fputs("</tbody>\n</table>\n", hf);
    fputs("</div>", hf);
    *text = finish(tf, &tbuf);
    *html = finish(hf, &hbuf);
    if (!*text || !*html) {
        free(*text);
        free(*html);
        *text = *html = NULL;
        return -1;
    }
    return 0;
}

/* The lines of an "Extended Usage:" text that belong to the section called title ("Examples:"):
 * its title line and every line indented deeper, blank lines at its end dropped. */
static void section(FILE *f, const char *ext, const char *title) {
    const char *line = ext, *from = NULL, *to = NULL;
    size_t indent = 0;
    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        size_t sp = strspn(line, " ");
        bool empty = sp >= len;
        if (from) {
            if (!empty && sp <= indent) break;
            if (!empty) to = line + len;
        } else if (!empty && strncmp(line + sp, title, strlen(title)) == 0) {
            from = line + sp;
            to = line + len;
            indent = sp;
        }
        if (!eol) break;
        line = eol + 1;
    }
    if (from) fprintf(f, "%.*s\n", (int)(to - from), from);
}

int kl_inspect_render_function(const kl_catalog_rows *desc, int detail, char **text, char **html) {
    *text = *html = NULL;
    size_t tlen;
    char *tbuf = NULL;
    FILE *tf = open_memstream(&tbuf, &tlen);
    if (!tf) return -1;
    for (size_t i = 0; i < desc->nrows; i++) {
        const char *row = kl_catalog_cell(desc, i, 0);
        if (!row) continue;
        if (strncmp(row, "Extended Usage:", 15) == 0) {
            if (detail > 0) {
                size_t n = strlen(row);
                while (n && (row[n - 1] == ' ' || row[n - 1] == '\n')) n--;
                fprintf(tf, "%.*s\n", (int)n, row);
            } else {
                section(tf, row, "Examples:");
            }
        } else if (detail > 0 || strncmp(row, "Class:", 6) != 0) {
            fprintf(tf, "%s\n", row);
        }
    }
    *text = finish(tf, &tbuf);
    if (!*text) return -1;
    size_t hlen;
    char *hbuf = NULL;
    FILE *hf = open_memstream(&hbuf, &hlen);
    if (!hf) {
        free(*text);
        *text = NULL;
        return -1;
    }
    fputs("<pre>", hf);
    html_escape(hf, *text);
    fputs("</pre>", hf);
    *html = finish(hf, &hbuf);
    if (!*html) {
        free(*text);
        *text = NULL;
        return -1;
    }
    return 0;
}
