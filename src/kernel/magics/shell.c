/* Shell and session magics: %sh/%%sh (a /bin/sh child driven by the loop, its output streamed as
 * it arrives), %env, %time/%%time, %history, and %load_magic (kernel/plugin.c). */
#include "kernel/magics/shell.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "kernel/execute.h"
#include "kernel/plugin.h"
#include "render/buf.h"
#include "render/unicode.h"
#include "runtime/log.h"

extern char **environ;

#define DEFAULT_SHELL_TIMEOUT_S 600
/* After SIGINT (interrupt) or SIGTERM (timeout), how long the command gets before SIGKILL. */
#define KILL_GRACE_MS     2000
#define SHUTDOWN_GRACE_MS 200
/* A background job can hold the pipes after the command itself exits: read this much longer. */
#define DRAIN_MS 500
/* Output read but not yet published; past it reading pauses until IOPub takes it. */
#define MAX_PENDING       (4u << 20)
#define DEFAULT_HISTORY_N 100

static uint64_t now_ms(void) {
    return uv_hrtime() / 1000000u;
}

/* ---- pure helpers -----------------------------------------------------------------------------
 */

size_t kl_shell_utf8_ready(const char *s, size_t n) {
    /* Only the last three bytes can belong to an unfinished character. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char b = (unsigned char)s[n - back];
        if ((b & 0xC0) == 0x80) continue; /* continuation: look further back */
        size_t need = b < 0xC2 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b <= 0xF4 ? 4 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

bool kl_shell_env_is_secret(const char *name) {
    static const char *const words[] = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strcasestr(name, words[i])) return true;
    return false;
}

void kl_shell_format_duration(double seconds, char *buf, size_t len) {
    if (seconds >= 1000)
        snprintf(buf, len, "%.0f s", seconds);
    else if (seconds >= 1)
        snprintf(buf, len, "%.3g s", seconds);
    else if (seconds >= 1e-3)
        snprintf(buf, len, "%.3g ms", seconds * 1e3);
    else
        snprintf(buf, len, "%.3g \xc2\xb5s", seconds * 1e6);
}

int kl_shell_history_parse(const char *args, kl_history_args *a, char *err, size_t errlen) {
    *a = (kl_history_args){.n = DEFAULT_HISTORY_N};
    kl_render_buf words;
    kl_render_buf_init(&words);
    const char *p = args;
    while (*p) {
        p += strspn(p, " \t");
        if (!*p) break;
        size_t len = strcspn(p, " \t");
        if (len == 2 && strncmp(p, "-g", 2) == 0) {
            a->global = true;
        } else if (len == 2 && strncmp(p, "-n", 2) == 0) {
            p += len;
            p += strspn(p, " \t");
            char *end;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || (*end && *end != ' ' && *end != '\t') || errno || v < 1 || v > 100000) {
                snprintf(err, errlen, "-n takes a number of entries from 1 to 100000");
                kl_render_buf_free(&words);
                return -1;
            }
            a->n = (int)v;
            p = end;
            continue;
        } else if (p[0] == '-' && words.len == 0) {
            snprintf(err, errlen, "unknown option %.*s (usage: %%history [-n N] [-g] [PATTERN])",
                     (int)len, p);
            kl_render_buf_free(&words);
            return -1;
        } else {
            if (words.len) kl_render_buf_putc(&words, ' ');
            kl_render_buf_append(&words, p, len);
        }
        p += len;
    }
    if (words.len) {
        kl_render_buf pat;
        kl_render_buf_init(&pat);
        kl_render_buf_printf(&pat, "*%s*", words.data);
        a->pattern = kl_render_buf_take(&pat, NULL);
    }
    kl_render_buf_free(&words);
    return 0;
}

char *kl_shell_history_format(json_t *entries, long long current_session, bool global) {
    kl_render_buf b;
    kl_render_buf_init(&b);
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        long long session = (long long)json_integer_value(json_array_get(e, 0));
        long long line = (long long)json_integer_value(json_array_get(e, 1));
        const char *input = json_string_value(json_array_get(e, 2));
        if (!input) continue;
        char prefix[64];
        int w = global || session != current_session
                    ? snprintf(prefix, sizeof prefix, "%lld/%lld: ", session, line)
                    : snprintf(prefix, sizeof prefix, "%4lld: ", line);
        kl_render_buf_puts(&b, prefix);
        size_t n = strlen(input);
        while (n && input[n - 1] == '\n') n--;
        for (size_t k = 0; k < n; k++) {
            kl_render_buf_putc(&b, input[k]);
            if (input[k] == '\n') kl_render_buf_repeat(&b, ' ', (size_t)w);
        }
        kl_render_buf_putc(&b, '\n');
    }
    char *s = kl_render_buf_take(&b, NULL);
    return s ? s : strdup("");
}

/* ---- %sh ------------------------------------------------------------------------------------ */

typedef struct sh_seg {
    int stream; /* 0 stdout, 1 stderr */
    char *data;
    size_t len;
} sh_seg;

/* One running command. Lives on the heap because libuv's callbacks (reads, exit, closes) may
 * come while the coroutine is away publishing; the coroutine frees it once every handle closed. */
typedef struct sh_run {
    kl_loop *loop;
    kl_coro *co;
    bool parked; /* the coroutine waits in run_shell's loop: callbacks may wake it */
    uv_process_t proc;
    uv_pipe_t pipes[2];
    bool eof[2], reading[2];
    int open_handles;
    bool exited;
    uint64_t exit_at;
    int64_t status;
    int term_signal;
    /* Output in arrival order, so stdout and stderr interleave as the command wrote them. */
    sh_seg *segs;
    size_t nsegs, capsegs, pending;
    /* Bytes of an unfinished UTF-8 character, per stream, held for the next read. */
    char carry[2][4];
    size_t ncarry[2];
} sh_run;

static void sh_wake(sh_run *r) {
    if (r->parked) kl_loop_wake(r->loop, r->co);
}

static void sh_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void sh_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    sh_run *r = s->data;
    int i = s == (uv_stream_t *)&r->pipes[0] ? 0 : 1;
    if (nread > 0 && r->nsegs == r->capsegs) {
        size_t ncap = r->capsegs ? r->capsegs * 2 : 16;
        sh_seg *n = realloc(r->segs, ncap * sizeof *n);
        if (n) {
            r->segs = n;
            r->capsegs = ncap;
        }
    }
    if (nread > 0 && r->nsegs < r->capsegs) {
        r->segs[r->nsegs++] = (sh_seg){i, buf->base, (size_t)nread};
        r->pending += (size_t)nread;
        if (r->pending > MAX_PENDING)
            for (int k = 0; k < 2; k++)
                if (r->reading[k]) {
                    uv_read_stop((uv_stream_t *)&r->pipes[k]);
                    r->reading[k] = false;
                }
    } else {
        free(buf->base);
    }
    if (nread < 0) {
        r->eof[i] = true;
        if (r->reading[i]) uv_read_stop(s);
        r->reading[i] = false;
    }
    sh_wake(r);
}

static void sh_exit(uv_process_t *p, int64_t status, int term_signal) {
    sh_run *r = p->data;
    r->exited = true;
    r->exit_at = now_ms();
    r->status = status;
    r->term_signal = term_signal;
    sh_wake(r);
}

static void sh_closed(uv_handle_t *h) {
    sh_run *r = h->data;
    r->open_handles--;
    sh_wake(r);
}

static void sh_publish(kl_magic_ctx *c, int stream, const char *s, size_t n) {
    if (n == 0) return;
    kl_render_buf b;
    kl_render_buf_init(&b);
    kl_unicode_append_repaired(&b, (const uint8_t *)s, n);
    char *text = kl_render_buf_take(&b, NULL);
    if (text) kl_ctx_stream(c, stream ? "stderr" : "stdout", text);
    free(text);
}

/* Publishes what has been read, one stream message per run of one stream. The list is taken
 * first: publishing may park on IOPub while more output arrives. */
static void sh_flush(kl_magic_ctx *c, sh_run *r, bool final) {
    sh_seg *segs = r->segs;
    size_t n = r->nsegs;
    r->segs = NULL;
    r->nsegs = r->capsegs = r->pending = 0;
    for (int k = 0; k < 2; k++)
        if (!r->reading[k] && !r->eof[k] && !final &&
            uv_read_start((uv_stream_t *)&r->pipes[k], sh_alloc, sh_read) == 0)
            r->reading[k] = true;
    for (size_t i = 0; i < n;) {
        int s = segs[i].stream;
        kl_render_buf b;
        kl_render_buf_init(&b);
        kl_render_buf_append(&b, r->carry[s], r->ncarry[s]);
        for (; i < n && segs[i].stream == s; i++) {
            kl_render_buf_append(&b, segs[i].data, segs[i].len);
            free(segs[i].data);
        }
        if (b.failed) continue;
        size_t ready = kl_shell_utf8_ready(b.data, b.len);
        r->ncarry[s] = b.len - ready;
        memcpy(r->carry[s], b.data + ready, r->ncarry[s]);
        sh_publish(c, s, b.data, ready);
        kl_render_buf_free(&b);
    }
    free(segs);
    if (final)
        for (int k = 0; k < 2; k++) {
            sh_publish(c, k, r->carry[k], r->ncarry[k]);
            r->ncarry[k] = 0;
        }
}

/* The child runs in its own session (UV_PROCESS_DETACHED), so its process group is its pid and a
 * signal reaches the pipelines and subshells it started too. */
static void sh_signal(sh_run *r, int sig) {
    if (kill(-r->proc.pid, sig) != 0) kill(r->proc.pid, sig);
}

/* The command for an error message: its first line, shortened. */
static char *describe(const char *script) {
    size_t n = strcspn(script, "\n");
    bool more = script[n] && script[n + 1];
    if (n > 120) {
        n = kl_unicode_prefix(script, n, 117);
        more = true;
    }
    char *s = NULL;
    if (asprintf(&s, "%.*s%s", (int)n, script, more ? "..." : "") < 0) return NULL;
    return s;
}

enum { STOP_NONE, STOP_INTERRUPT, STOP_TIMEOUT, STOP_SHUTDOWN };

static int run_shell(kl_magic_ctx *c, const char *script) {
    kl_kernel *k = c->k;
    kl_tenant *t = c->t;
    uv_loop_t *uv = kl_loop_uv(k->loop);
    sh_run *r = calloc(1, sizeof *r);
    if (!r) return kl_ctx_error(c, "MemoryError", "out of memory");
    r->loop = k->loop;
    r->co = kl_coro_current();
    for (int i = 0; i < 2; i++) {
        uv_pipe_init(uv, &r->pipes[i], 0);
        r->pipes[i].data = r;
        r->open_handles++;
    }
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, /* libuv opens /dev/null for it */
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->pipes[0]},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->pipes[1]},
    };
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    uv_process_options_t o = {.exit_cb = sh_exit,
                              .file = "/bin/sh",
                              .args = argv,
                              .stdio = stdio,
                              .stdio_count = 3,
                              .flags = UV_PROCESS_DETACHED};
    r->proc.data = r;
    int rc = uv_spawn(uv, &r->proc, &o);
    r->open_handles++; /* the process handle needs closing even when the spawn failed */
    long timeout_s = k->opts.shell_timeout > 0 ? k->opts.shell_timeout : DEFAULT_SHELL_TIMEOUT_S;
    int stop = STOP_NONE;
    if (rc == 0) {
        for (int i = 0; i < 2; i++)
            r->reading[i] = uv_read_start((uv_stream_t *)&r->pipes[i], sh_alloc, sh_read) == 0;
        uint64_t deadline = now_ms() + (uint64_t)timeout_s * 1000u;
        uint64_t kill_at = 0;
        bool killed = false;
        for (;;) {
            if (r->nsegs) sh_flush(c, r, false);
            uint64_t now = now_ms();
            if (r->exited && ((r->eof[0] && r->eof[1]) || now >= r->exit_at + DRAIN_MS)) break;
            if (stop == STOP_NONE && !r->exited) {
                /* A shutdown interrupts every cell too: test it first, for the shorter grace. */
                if (k->shutting_down)
                    stop = STOP_SHUTDOWN;
                else if (t->interrupted)
                    stop = STOP_INTERRUPT;
                else if (now >= deadline)
                    stop = STOP_TIMEOUT;
                if (stop != STOP_NONE) {
                    sh_signal(r, stop == STOP_TIMEOUT ? SIGTERM : SIGINT);
                    kill_at = now + (stop == STOP_SHUTDOWN ? SHUTDOWN_GRACE_MS : KILL_GRACE_MS);
                }
            }
            /* The kernel gives running cells little time to end once it shuts down. */
            if (k->shutting_down && !killed && kill_at > now + SHUTDOWN_GRACE_MS)
                kill_at = now + SHUTDOWN_GRACE_MS;
            if (stop != STOP_NONE && !r->exited && !killed && now >= kill_at) {
                sh_signal(r, SIGKILL);
                killed = true;
            }
            uint64_t next = r->exited           ? r->exit_at + DRAIN_MS
                            : stop == STOP_NONE ? deadline
                            : killed            ? now + 1000
                                                : kill_at;
            r->parked = true;
            t->interruptible_wait = true;
            kl_loop_sleep(k->loop, next > now ? next - now : 1);
            t->interruptible_wait = false;
            r->parked = false;
        }
        /* What an interrupted command left behind in its group (jobs that ignore SIGINT). */
        if (stop != STOP_NONE) sh_signal(r, SIGKILL);
        sh_flush(c, r, true);
    }
    for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&r->pipes[i], sh_closed);
    uv_close((uv_handle_t *)&r->proc, sh_closed);
    while (r->open_handles > 0) {
        r->parked = true;
        kl_loop_park(k->loop);
        r->parked = false;
    }
    for (size_t i = 0; i < r->nsegs; i++) free(r->segs[i].data);
    free(r->segs);
    int64_t status = r->status;
    int sig = r->term_signal;
    free(r);

    if (rc != 0) return kl_ctx_error(c, "OSError", "cannot start /bin/sh: %s", uv_strerror(rc));
    if (stop == STOP_INTERRUPT || stop == STOP_SHUTDOWN)
        return kl_ctx_error(c, "KeyboardInterrupt", "the shell command was interrupted");
    if (stop == STOP_TIMEOUT)
        return kl_ctx_error(c, "TimeoutError",
                            "the shell command ran longer than %ld s and was stopped "
                            "(--shell-timeout sets the limit)",
                            timeout_s);
    if (sig == 0 && status == 0) return 0;
    char *what = describe(script);
    if (sig)
        kl_ctx_error(c, "CalledProcessError", "Command '%s' died with signal %d (SIG%s).",
                     what ? what : "", sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    else
        kl_ctx_error(c, "CalledProcessError", "Command '%s' returned non-zero exit status %lld.",
                     what ? what : "", (long long)status);
    free(what);
    return -1;
}

static int magic_sh(kl_magic_ctx *c, const char *args, const char *body) {
    const char *label = body ? "%%sh" : "%sh";
    if (!c->k->opts.allow_shell)
        return kl_ctx_error(c, "ShellDisabled",
                            "%s is disabled: shell commands run as the kernel's user, so the "
                            "kernel must be started with --allow-shell to allow them (add it to "
                            "the kernelspec's argv)",
                            label);
    if (body && *args)
        return kl_ctx_error(c, "UsageError",
                            "%%%%sh takes no arguments: the cell body is the script");
    if (!body && !*args)
        return kl_ctx_error(c, "UsageError", "%%sh takes a command, e.g. %%sh ls -l");
    return run_shell(c, body ? body : args);
}

/* ---- %env ----------------------------------------------------------------------------------- */

static bool valid_env_name(const char *s, size_t n) {
    if (n == 0 || isdigit((unsigned char)s[0])) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') return false;
    return true;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int env_list(kl_magic_ctx *c) {
    size_t n = 0;
    while (environ[n]) n++;
    const char **names = malloc((n + 1) * sizeof *names);
    if (!names) return kl_ctx_error(c, "MemoryError", "out of memory");
    for (size_t i = 0; i < n; i++) names[i] = environ[i];
    qsort(names, n, sizeof *names, cmp_str);
    kl_render_buf b;
    kl_render_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(names[i], '=');
        if (!eq) continue;
        char *name = strndup(names[i], (size_t)(eq - names[i]));
        if (name && kl_shell_env_is_secret(name))
            kl_render_buf_printf(&b, "%s=<hidden>\n", name);
        else
            kl_render_buf_printf(&b, "%s\n", names[i]);
        free(name);
    }
    free(names);
    char *text = kl_render_buf_take(&b, NULL);
    /* Environment bytes need not be UTF-8. */
    if (text) sh_publish(c, 0, text, strlen(text));
    free(text);
    return 0;
}

static int magic_env(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    if (!*args) return env_list(c);
    if (strncmp(args, "-u ", 3) == 0) {
        const char *name = args + 3 + strspn(args + 3, " \t");
        if (!valid_env_name(name, strlen(name)))
            return kl_ctx_error(c, "UsageError", "%%env -u takes a variable name, not \"%s\"",
                                name);
        unsetenv(name);
        char *text = NULL;
        if (asprintf(&text, "env: %s unset\n", name) >= 0) kl_ctx_stream(c, "stdout", text);
        free(text);
        return 0;
    }
    size_t nlen = strcspn(args, "= \t");
    if (!valid_env_name(args, nlen))
        return kl_ctx_error(c, "UsageError",
                            "%%env takes NAME, NAME=VALUE or -u NAME; \"%.*s\" is not a variable "
                            "name",
                            (int)nlen, args);
    char *name = strndup(args, nlen);
    if (!name) return kl_ctx_error(c, "MemoryError", "out of memory");
    const char *rest = args + nlen;
    char *text = NULL;
    int rc = 0;
    if (!*rest) {
        const char *v = getenv(name);
        if (!v) {
            rc = kl_ctx_error(c, "KeyError", "the environment has no variable %s", name);
        } else if (asprintf(&text, "%s\n", v) < 0) {
            text = NULL;
        }
    } else {
        /* "NAME=value" or IPython's "NAME value"; the value keeps its inner spaces. */
        rest += strspn(rest, " \t");
        if (*rest == '=') rest++;
        if (setenv(name, rest, 1) != 0)
            rc = kl_ctx_error(c, "OSError", "cannot set %s: %s", name, strerror(errno));
        else if (asprintf(&text, "env: %s=%s\n", name,
                          kl_shell_env_is_secret(name) ? "<hidden>" : rest) < 0)
            text = NULL;
    }
    if (text) sh_publish(c, 0, text, strlen(text));
    free(text);
    free(name);
    return rc;
}

/* ---- %time ---------------------------------------------------------------------------------- */

static int magic_time(kl_magic_ctx *c, const char *args, const char *body) {
    if (body && *args)
        return kl_ctx_error(c, "UsageError",
                            "%%%%time takes no arguments: the cell body is what it times");
    if (!body && !*args)
        return kl_ctx_error(c, "UsageError",
                            "%%time takes a statement, e.g. %%time SELECT count(*) FROM t");
    uint64_t start = uv_hrtime();
    int rc = kl_ctx_run_cell(c, body ? body : args);
    char took[32], text[64];
    kl_shell_format_duration((double)(uv_hrtime() - start) / 1e9, took, sizeof took);
    snprintf(text, sizeof text, "Wall time: %s\n", took);
    kl_ctx_stream(c, "stdout", text);
    return rc;
}

/* ---- %history ------------------------------------------------------------------------------- */

typedef struct history_job {
    kl_kernel *k;
    kl_tenant *t;
    int64_t session; /* read on the history thread, after the tenant's session has begun there */
    kl_history_args a;
    json_t *result;
} history_job;

static void history_query(void *arg) {
    history_job *j = arg;
    kl_history *h = j->k->history;
    j->session = j->t->history_session;
    if (!h) return;
    /* -g reaches the user's other sessions, never another user's (unless --shared-session). */
    kl_history_view v = {j->session, j->k->opts.shared_session};
    if (j->a.global) {
        j->result =
            kl_history_search(h, v, j->a.pattern ? j->a.pattern : "*", j->a.n, false, false);
        return;
    }
    if (j->session <= 0) return;
    json_t *all = kl_history_range(h, v, 0, 0, 0, false);
    if (!all) return;
    j->result = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e) {
        const char *input = json_string_value(json_array_get(e, 2));
        if (input && (!j->a.pattern || fnmatch(j->a.pattern, input, 0) == 0))
            json_array_append(j->result, e);
    }
    json_decref(all);
    size_t n = json_array_size(j->result);
    if (n > (size_t)j->a.n) {
        json_t *tail = json_array();
        for (size_t k = n - (size_t)j->a.n; k < n; k++)
            json_array_append(tail, json_array_get(j->result, k));
        json_decref(j->result);
        j->result = tail;
    }
}

static int magic_history(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    history_job j = {.k = c->k, .t = c->t};
    char err[256];
    if (kl_shell_history_parse(args, &j.a, err, sizeof err) != 0)
        return kl_ctx_error(c, "UsageError", "%%history: %s", err);
    int rc = 0;
    if (kl_kernel_history_run(c->k, history_query, &j) != 0 || !j.result) {
        rc = kl_ctx_error(c, "HistoryError",
                          "no history: the kernel keeps none (--no-history) or could not open "
                          "its history file");
    } else {
        char *text = kl_shell_history_format(j.result, (long long)j.session, j.a.global);
        if (text && *text) kl_ctx_stream(c, "stdout", text);
        free(text);
    }
    json_decref(j.result);
    free(j.a.pattern);
    return rc;
}

/* ---- registration --------------------------------------------------------------------------- */

int kl_shell_magics_register(kl_magic_registry *reg) {
    static const kl_magic magics[] = {
        {"sh", KL_MAGIC_LINE | KL_MAGIC_CELL, "%sh COMMAND, %%sh",
         "Run a shell command (or the cell as a /bin/sh script), streaming its output; needs "
         "--allow-shell.",
         magic_sh},
        {"env", KL_MAGIC_LINE, "%env [NAME | NAME=VALUE | -u NAME]",
         "List the kernel's environment (secrets hidden), show one variable, or set or unset "
         "one for the whole kernel.",
         magic_env},
        {"time", KL_MAGIC_LINE | KL_MAGIC_CELL, "%time STATEMENT, %%time",
         "Run a statement (or the cell) and print its wall time.", magic_time},
        {"history", KL_MAGIC_LINE, "%history [-n N] [-g] [PATTERN]",
         "List this connection's recent inputs (-g: every session of this user's), those "
         "matching PATTERN.",
         magic_history},
        {"load_magic", KL_MAGIC_LINE, "%load_magic PATH",
         "Load a magic plugin (a shared object) and register its magics.", kl_plugin_magic_load},
    };
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        int rc = kl_magic_register(reg, &magics[i]);
        if (rc != 0) return rc;
    }
    return 0;
}
