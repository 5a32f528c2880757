#include "kernel/execute.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kernel/metrics.h"
#include "kernel/sql.h"
#include "runtime/log.h"

static bool flag(json_t *content, const char *key, bool dflt) {
    json_t *v = json_object_get(content, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

void kl_ctx_stream(kl_magic_ctx *c, const char *name, const char *text) {
    if (!c->t->showoutput) return;
    kl_kernel_publish(c->k, c->parent, "stream",
                      json_pack("{s:s, s:s}", "name", name, "text", text));
}

void kl_ctx_display(kl_magic_ctx *c, json_t *data, json_t *metadata) {
    json_t *content = json_pack("{s:o, s:o, s:{}}", "data", data, "metadata",
                                metadata ? metadata : json_object(), "transient");
    kl_kernel_publish(c->k, c->parent, "display_data", content);
}

void kl_ctx_result(kl_magic_ctx *c, json_t *data, json_t *metadata) {
    const char *text = json_string_value(json_object_get(data, "text/plain"));
    free(c->result_text);
    c->result_text = text ? strdup(text) : NULL;
    if (c->silent) {
        json_decref(data);
        json_decref(metadata);
        return;
    }
    json_t *content = json_pack("{s:i, s:o, s:o}", "execution_count", c->execution_count, "data",
                                data, "metadata", metadata ? metadata : json_object());
    kl_kernel_publish(c->k, c->parent, "execute_result", content);
}

void kl_ctx_clear(kl_magic_ctx *c, bool wait) {
    kl_kernel_publish(c->k, c->parent, "clear_output", json_pack("{s:b}", "wait", wait));
}

void kl_ctx_page(kl_magic_ctx *c, const char *text) {
    json_array_append_new(c->payload, json_pack("{s:s, s:{s:s}, s:i}", "source", "page", "data",
                                                "text/plain", text, "start", 0));
}

int kl_ctx_error(kl_magic_ctx *c, const char *ename, const char *fmt, ...) {
    if (c->failed) return -1; /* the first error is the one the user needs */
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->failed = true;
    c->ename = strdup(ename);
    c->evalue = strdup(buf);
    char *line = NULL;
    if (asprintf(&line, "\x1b[0;31m%s\x1b[0m: %s", ename, buf) < 0) line = NULL;
    c->traceback = json_array();
    if (line) json_array_append_new(c->traceback, json_string(line));
    free(line);
    return -1;
}

static uint64_t now_ms(void) {
    return uv_hrtime() / 1000000u;
}

int kl_ctx_sleep(kl_magic_ctx *c, uint64_t ms) {
    kl_tenant *t = c->t;
    uint64_t deadline = now_ms() + ms;
    t->interruptible_wait = true;
    while (!t->interrupted) {
        uint64_t now = now_ms();
        if (now >= deadline) break;
        kl_loop_sleep(c->k->loop, deadline - now);
    }
    t->interruptible_wait = false;
    if (t->interrupted) return kl_ctx_error(c, "KeyboardInterrupt", "the cell was interrupted");
    return 0;
}

int kl_ctx_input(kl_magic_ctx *c, const char *prompt, bool password, char **value) {
    if (!c->allow_stdin)
        return kl_ctx_error(c, "StdinNotImplementedError",
                            "this cell asks for input, but the client does not accept input "
                            "requests (allow_stdin is false)");
    int rc = kl_kernel_input(c->k, c->t, c->parent, prompt, password, value);
    if (rc == -EINTR)
        return kl_ctx_error(c, "KeyboardInterrupt", "interrupted while waiting for input");
    if (rc != 0) return kl_ctx_error(c, "StdinError", "no input: the kernel is shutting down");
    return 0;
}

static char *span_dup(const char *s, size_t start, size_t len) {
    return strndup(s + start, len);
}

/* The magic handlers running now, newest first. A list rather than a field of the context:
 * handlers of different connections interleave at every park, so frames leave in any order. */
typedef struct magic_frame {
    kl_magic_ctx *c;
    const char *name;
    struct magic_frame *next;
} magic_frame;
static magic_frame *frames; /* loop thread only */

/* Deep enough for %time inside %%time; a bound because each level takes coroutine stack. */
#define MAX_NESTED_CELLS 8

const char *kl_ctx_magic_name(kl_magic_ctx *c) {
    for (magic_frame *f = frames; f; f = f->next)
        if (f->c == c) return f->name;
    return NULL;
}

static int call_magic(kl_magic_ctx *c, const char *name, kl_magic_fn fn, const char *args,
                      const char *body) {
    magic_frame f = {c, name, frames};
    frames = &f;
    int rc = fn(c, args, body);
    for (magic_frame **p = &frames; *p; p = &(*p)->next)
        if (*p == &f) {
            *p = f.next;
            break;
        }
    return rc;
}

static void run_magic(kl_magic_ctx *c, const char *code, const kl_segment *seg) {
    kl_magic_kind kind = seg->kind == KL_SEG_CELL_MAGIC ? KL_MAGIC_CELL : KL_MAGIC_LINE;
    const char *name = code + seg->name_start;
    const kl_magic *m = kl_magic_find(c->k->magics, name, seg->name_len, kind);
    if (!m) {
        const char *prefix = kind == KL_MAGIC_CELL ? "%%" : "%";
        if (seg->name_len == 0) {
            kl_ctx_error(c, "UsageError", "a lone '%s' is not a magic; %%lsmagic lists them",
                         prefix);
            return;
        }
        kl_magic_kind other = kind == KL_MAGIC_CELL ? KL_MAGIC_LINE : KL_MAGIC_CELL;
        const kl_magic *o = kl_magic_find(c->k->magics, name, seg->name_len, other);
        if (o) {
            kl_ctx_error(c, "UsageError", "%s%s is a %s magic: write it as %s%s", prefix, o->name,
                         other == KL_MAGIC_CELL ? "cell" : "line",
                         other == KL_MAGIC_CELL ? "%%" : "%", o->name);
            return;
        }
        const char *near = kl_magic_closest(c->k->magics, name, seg->name_len);
        if (near)
            kl_ctx_error(c, "UnknownMagic", "%s%.*s is not a known magic; did you mean %s%s?",
                         prefix, (int)seg->name_len, name, prefix, near);
        else
            kl_ctx_error(c, "UnknownMagic", "%s%.*s is not a known magic; %%lsmagic lists them",
                         prefix, (int)seg->name_len, name);
        return;
    }
    char *args = span_dup(code, seg->args_start, seg->args_len);
    char *body = kind == KL_MAGIC_CELL ? span_dup(code, seg->body_start, seg->body_len) : NULL;
    /* m points into the registry's array, which %load_magic may grow while the handler parks;
     * the name string itself outlives the registry. */
    const char *mname = m->name;
    kl_magic_fn fn = m->fn;
    if (!args || (kind == KL_MAGIC_CELL && !body)) {
        kl_ctx_error(c, "MemoryError", "out of memory");
    } else if (call_magic(c, mname, fn, args, body) != 0 && !c->failed) {
        kl_ctx_error(c, "MagicError", "%%%s failed", mname);
    }
    free(args);
    free(body);
}

static void run_code(kl_magic_ctx *c, const char *code, const kl_segment *seg) {
    kl_sql_run(c, code + seg->body_start, seg->body_len, 0, KL_SQL_OUT_TABLE);
}

/* Runs a cell's magics and SQL in order until the first error. */
static int run_cell(kl_magic_ctx *c, const char *code) {
    kl_segment *segs = NULL;
    long n = kl_magic_parse(code, strlen(code), &segs);
    if (n < 0) kl_ctx_error(c, "MemoryError", "out of memory");
    for (long i = 0; i < n && !c->failed; i++) {
        if (segs[i].kind == KL_SEG_CODE)
            run_code(c, code, &segs[i]);
        else
            run_magic(c, code, &segs[i]);
        if (!c->failed && c->t->interrupted)
            kl_ctx_error(c, "KeyboardInterrupt", "the cell was interrupted");
    }
    free(segs);
    return c->failed ? -1 : 0;
}

int kl_ctx_run_cell(kl_magic_ctx *c, const char *code) {
    int depth = 0;
    for (magic_frame *f = frames; f; f = f->next)
        if (f->c == c) depth++;
    if (depth > MAX_NESTED_CELLS)
        return kl_ctx_error(c, "RecursionError",
                            "magics nest more than %d deep (such as %%time inside %%%%time)",
                            MAX_NESTED_CELLS);
    return run_cell(c, code);
}

/* Owns copies of the texts: the store runs after the request (and its strings) are gone. The
 * history thread runs jobs in order, so a later history_request sees this line. */
typedef struct store_job {
    kl_kernel *k;
    kl_history *h;
    int64_t session;
    int line;
    char *source, *output;
} store_job;

static void store_history(void *arg) {
    store_job *j = arg;
    j->h = j->k->history;
    if (j->h && kl_history_store(j->h, j->session, j->line, j->source, j->output) != 0)
        KL_WARN("history", "could not store line %d of session %lld", j->line,
                (long long)j->session);
}

static void store_done(void *arg) {
    store_job *j = arg;
    free(j->source);
    free(j->output);
    free(j);
}

static void queue_store(kl_kernel *k, int64_t session, int line, const char *source,
                        const char *output) {
    store_job *j = calloc(1, sizeof *j);
    if (!j) return;
    *j = (store_job){k, NULL, session, line, strdup(source), output ? strdup(output) : NULL};
    if (!j->source || kl_pool_submit(k->history_pool, store_history, store_done, j) != 0)
        store_done(j);
}

static json_t *user_expressions(json_t *content) {
    json_t *out = json_object();
    json_t *exprs = json_object_get(content, "user_expressions");
    const char *key;
    json_t *v;
    json_object_foreach(exprs, key, v) {
        json_object_set_new(
            out, key,
            json_pack(
                "{s:s, s:s, s:s, s:[]}", "status", "error", "ename", "NotImplementedError",
                "evalue",
                "Kindling does not evaluate user_expressions; run the expression as a SQL cell",
                "traceback"));
    }
    return out;
}

void kl_execute(kl_kernel *k, kl_tenant *t, const kl_msg *msg) {
    uint64_t started = uv_hrtime();
    json_t *content = msg->content;
    const char *code = json_string_value(json_object_get(content, "code"));
    if (!code) code = "";
    bool silent = flag(content, "silent", false);
    bool store = !silent && flag(content, "store_history", true);
    bool stop_on_error = flag(content, "stop_on_error", true);

    kl_magic_ctx c = {.k = k,
                      .t = t,
                      .parent = msg,
                      .silent = silent,
                      .allow_stdin = flag(content, "allow_stdin", true),
                      .payload = json_array()};
    if (store) t->execution_count++;
    c.execution_count = t->execution_count;
    if (!silent)
        kl_kernel_publish(
            k, msg, "execute_input",
            json_pack("{s:s, s:i}", "code", code, "execution_count", c.execution_count));

    run_cell(&c, code);

    bool abort = c.failed && stop_on_error && !silent;
    if (abort) kl_tenant_abort_queued(t);
    json_t *reply;
    if (c.failed) {
        kl_kernel_publish(k, msg, "error",
                          json_pack("{s:s, s:s, s:O}", "ename", c.ename, "evalue", c.evalue,
                                    "traceback", c.traceback));
        reply =
            json_pack("{s:s, s:i, s:s, s:s, s:O, s:o, s:o}", "status", "error", "execution_count",
                      c.execution_count, "ename", c.ename, "evalue", c.evalue, "traceback",
                      c.traceback, "payload", c.payload, "user_expressions", json_object());
    } else {
        reply =
            json_pack("{s:s, s:i, s:o, s:o}", "status", "ok", "execution_count", c.execution_count,
                      "payload", c.payload, "user_expressions", user_expressions(content));
    }
    kl_metrics_execution(c.failed ? "error" : "ok", started);
    kl_kernel_reply(k, k->shell, msg, "execute_reply", reply);

    if (store && k->history_pool && t->history_session > 0)
        queue_store(k, t->history_session, c.execution_count, code, c.result_text);
    free(c.ename);
    free(c.evalue);
    json_decref(c.traceback);
    free(c.result_text);
}
