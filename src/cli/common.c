/* The client commands' shared parts, on the public client API. */
#include "cli/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* ---- Ctrl-C ----------------------------------------------------------------------------- */

static volatile sig_atomic_t sigint_seen;
static int sigint_pipe[2] = {-1, -1};

static void on_sigint_signal(int sig) {
    (void)sig;
    int saved = errno;
    sigint_seen = 1;
    if (sigint_pipe[1] >= 0) {
        ssize_t n = write(sigint_pipe[1], "!", 1);
        (void)n; /* a full pipe already says "Ctrl-C" */
    }
    errno = saved;
}

static void drain_pipe(void) {
    char buf[64];
    while (sigint_pipe[0] >= 0 && read(sigint_pipe[0], buf, sizeof buf) > 0) {
    }
}

void kl_cli_sigint_install(kl_cli_session *s) {
    if (sigint_pipe[0] < 0 && pipe2(sigint_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        sigint_pipe[0] = sigint_pipe[1] = -1;
    s->sigint_fd = sigint_pipe[0];
    /* No SA_RESTART: a Ctrl-C at the console's prompt must make readline return. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

bool kl_cli_sigint_take(void) {
    bool seen = sigint_seen;
    sigint_seen = 0;
    drain_pipe();
    return seen;
}

static void on_sigint_readable(uv_poll_t *h, int status, int events) {
    (void)status, (void)events;
    kl_cli_session *s = h->data;
    kl_cli_sigint_take();
    if (++s->interrupts == 1) {
        /* The terminal echoed ^C: what the cell says next starts on a line of its own. */
        if (isatty(STDOUT_FILENO)) {
            fputc('\n', stdout);
            fflush(stdout);
        }
        /* The kernel stops the cell and answers; the cell's reply ends the wait as usual. */
        kindling_client_interrupt(s->c, NULL, NULL);
    } else {
        fprintf(stderr, "%s: giving up on the running cell\n", s->prog);
        kindling_client_break(s->c);
    }
}

static void sigint_watch(kl_cli_session *s, bool on) {
    if (s->sigint_fd < 0) return;
    if (on) {
        if (!s->sigint_made) {
            if (uv_poll_init(kindling_client_loop(s->c), &s->sigint_poll, s->sigint_fd) != 0)
                return;
            s->sigint_poll.data = s;
            s->sigint_made = true;
        }
        s->interrupts = 0;
        kl_cli_sigint_take();
        uv_poll_start(&s->sigint_poll, UV_READABLE, on_sigint_readable);
        s->sigint_polling = true;
    } else if (s->sigint_polling) {
        uv_poll_stop(&s->sigint_poll);
        s->sigint_polling = false;
    }
}

/* ---- files ------------------------------------------------------------------------------ */

void kl_cli_find_connection_file(const char *given, char *out, size_t len) {
    snprintf(out, len, "%s", given);
    struct stat st;
    if (stat(given, &st) == 0 || strchr(given, '/')) return;
    char dir[PATH_MAX];
    const char *rt = getenv("JUPYTER_RUNTIME_DIR");
    const char *data = getenv("JUPYTER_DATA_DIR");
    const char *home = getenv("HOME");
    if (rt && *rt)
        snprintf(dir, sizeof dir, "%s", rt);
    else if (data && *data)
        snprintf(dir, sizeof dir, "%s/runtime", data);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.local/share/jupyter/runtime", home);
    else
        return;
    char cand[PATH_MAX * 2];
    snprintf(cand, sizeof cand, "%s/%s", dir, given);
    if (stat(cand, &st) == 0) snprintf(out, len, "%s", cand);
}

char *kl_cli_read_file(const char *prog, const char *path) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    bool failed = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || failed) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, path,
                buf ? strerror(errno) : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

int kl_cli_parse_seconds(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v > 0) || v > 86400.0 * 7) return -1;
    return (int)(v * 1000.0 + 0.5);
}

/* ---- connecting ------------------------------------------------------------------------- */

static void on_heartbeat(kindling_client *c, bool alive, void *user) {
    kl_cli_session *s = user;
    if (alive) return;
    s->lost = true;
    fprintf(stderr, "%s: the kernel stopped answering heartbeats for %.1f s: it died or hangs\n",
            s->prog, s->hb_timeout_ms / 1000.0);
    kindling_client_break(c);
}

static void on_iopub(kindling_client *c, const kindling_msg *m, void *user) {
    kl_cli_session *s = user;
    if (s->iopub_hook) s->iopub_hook(c, m, s->iopub_user);
}

void kl_cli_iopub_hook(kl_cli_session *s,
                       void (*fn)(kindling_client *c, const kindling_msg *m, void *user),
                       void *user) {
    s->iopub_hook = fn;
    s->iopub_user = user;
}

int kl_cli_open(kl_cli_session *s, const char *prog, const char *existing, int timeout_ms,
                int hb_timeout_ms) {
    s->prog = prog;
    s->sigint_fd = -1;
    s->hb_timeout_ms = hb_timeout_ms;
    char path[PATH_MAX];
    kl_cli_find_connection_file(existing, path, sizeof path);
    kindling_client_options o = {
        .on_heartbeat = on_heartbeat,
        .on_iopub = on_iopub,
        .heartbeat_timeout_ms = hb_timeout_ms,
        .user = s,
    };
    s->c = kindling_client_new(NULL, &o);
    if (!s->c) {
        fprintf(stderr, "%s: %s\n", prog, kindling_client_last_error(NULL));
        return KL_CLI_EKERNEL;
    }
    if (kindling_client_connect_file(s->c, path) != 0) {
        fprintf(stderr, "%s: %s\n", prog, kindling_client_last_error(s->c));
        kl_cli_close(s);
        return KL_CLI_EKERNEL;
    }
    if (kindling_client_wait_ready(s->c, timeout_ms) != 0) {
        fprintf(stderr, "%s: no answer from the kernel of %s within %.0f s: is it running?\n", prog,
                path, timeout_ms / 1000.0);
        kl_cli_close(s);
        return KL_CLI_EKERNEL;
    }
    return KL_CLI_OK;
}

void kl_cli_close(kl_cli_session *s) {
    if (!s->c) return;
    if (s->sigint_made) {
        /* The private loop must hold none of our handles when the client frees it. */
        sigint_watch(s, false);
        uv_close((uv_handle_t *)&s->sigint_poll, NULL);
        kindling_client_run(s->c, 0);
        s->sigint_made = false;
    }
    kindling_client_close(s->c);
    s->c = NULL;
}

/* ---- printing outputs ------------------------------------------------------------------- */

typedef struct cell_run {
    kl_cli_session *s;
    bool failed;
} cell_run;

static void put_text(FILE *f, const char *text) {
    size_t n = strlen(text);
    fputs(text, f);
    if (n == 0 || text[n - 1] != '\n') fputc('\n', f);
    fflush(f);
}

/* Drops ANSI colour escapes (traceback lines carry them) when the text goes to a file. */
static void put_plain(FILE *f, const char *text) {
    if (isatty(fileno(f))) {
        put_text(f, text);
        return;
    }
    char *out = malloc(strlen(text) + 1);
    if (!out) return;
    char *o = out;
    for (const char *p = text; *p;) {
        if (p[0] == '\x1b' && p[1] == '[') {
            p += 2;
            while (*p && !((*p >= '@' && *p <= '~'))) p++;
            if (*p) p++;
            continue;
        }
        *o++ = *p++;
    }
    *o = 0;
    put_text(f, out);
    free(out);
}

/* Ends the live line (it stays on screen as it last was) before anything else is written. */
static void live_end(kl_cli_session *s) {
    if (!s->live_open) return;
    fputc('\n', stderr);
    fflush(stderr);
    s->live_open = false;
}

/* Live displays (progress) are terminal decoration: redrawn in place on stderr when it is a
 * terminal, left out otherwise, so stdout holds the results only. */
static void live_show(kl_cli_session *s, const char *display_id, const char *text) {
    if (!isatty(STDERR_FILENO) || !text) return;
    if (s->live_open && strcmp(s->live_id, display_id) != 0) live_end(s);
    snprintf(s->live_id, sizeof s->live_id, "%s", display_id);
    fputs("\r\x1b[K", stderr);
    for (const char *p = text; *p; p++) fputc(*p == '\n' ? ' ' : *p, stderr);
    fflush(stderr);
    s->live_open = true;
}

static void json_line(cell_run *r, const kindling_msg *m) {
    printf("{\"cell\":%d,\"msg_type\":\"%s\",\"content\":%s}\n", r->s->cell, kindling_msg_type(m),
           kindling_msg_content(m));
    fflush(stdout);
}

static void on_stream(kindling_client *c, const kindling_msg *m, const char *name, const char *text,
                      void *user) {
    (void)c;
    cell_run *r = user;
    if (r->s->json) {
        json_line(r, m);
        return;
    }
    live_end(r->s);
    FILE *f = strcmp(name, "stderr") == 0 ? stderr : stdout;
    fputs(text, f);
    fflush(f);
}

/* text/plain, else the first representation that is text. */
static void print_bundle(const kindling_bundle *b) {
    const char *text = kindling_bundle_get(b, "text/plain");
    for (size_t i = 0; !text && i < kindling_bundle_count(b); i++) {
        const char *mime = kindling_bundle_mime(b, i);
        if (strncmp(mime, "text/", 5) == 0) text = kindling_bundle_get(b, mime);
    }
    if (text) put_text(stdout, text);
}

static void on_display(kindling_client *c, const kindling_msg *m, const kindling_bundle *data,
                       const char *display_id, bool update, void *user) {
    (void)c;
    cell_run *r = user;
    if (r->s->json) {
        json_line(r, m);
        return;
    }
    if (display_id) {
        live_show(r->s, display_id, kindling_bundle_get(data, "text/plain"));
        return;
    }
    if (update) return;
    live_end(r->s);
    print_bundle(data);
}

static void on_result(kindling_client *c, const kindling_msg *m, int execution_count,
                      const kindling_bundle *data, void *user) {
    (void)c, (void)execution_count;
    cell_run *r = user;
    if (r->s->json) {
        json_line(r, m);
        return;
    }
    live_end(r->s);
    print_bundle(data);
}

static void on_error(kindling_client *c, const kindling_msg *m, const char *ename,
                     const char *evalue, const char *const *traceback, size_t n, void *user) {
    (void)c;
    cell_run *r = user;
    r->failed = true;
    if (r->s->json) {
        json_line(r, m);
        return;
    }
    live_end(r->s);
    char *head = NULL;
    if (asprintf(&head, "%s: %s", ename, evalue) < 0) head = NULL;
    if (head) put_text(stderr, head);
    for (size_t i = 0; i < n; i++) {
        /* Kernels often repeat "ename: evalue" as the last traceback line (with colours). */
        bool same = false;
        if (head) {
            char *plain = strdup(traceback[i]), *o = plain;
            for (const char *p = traceback[i]; plain && *p;) {
                if (p[0] == '\x1b' && p[1] == '[') {
                    p += 2;
                    while (*p && !(*p >= '@' && *p <= '~')) p++;
                    if (*p) p++;
                    continue;
                }
                *o++ = *p++;
            }
            if (plain) *o = 0;
            same = plain && strcmp(plain, head) == 0;
            free(plain);
        }
        if (!same) put_plain(stderr, traceback[i]);
    }
    free(head);
}

static void on_clear_output(kindling_client *c, const kindling_msg *m, bool wait, void *user) {
    (void)c, (void)wait;
    cell_run *r = user;
    if (r->s->json) json_line(r, m);
}

static void set_echo(bool on) {
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &t) != 0) return;
    if (on)
        t.c_lflag |= ECHO;
    else
        t.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

/* The loop waits while the user types: nothing else needs it meanwhile (the heartbeat has a
 * thread of its own). */
static void on_input(kindling_client *c, const kindling_msg *m, const char *prompt, bool password,
                     void *user) {
    cell_run *r = user;
    live_end(r->s);
    FILE *out = r->s->json ? stderr : stdout;
    bool tty = isatty(STDIN_FILENO);
    if (tty || !r->s->quiet_input) {
        fputs(prompt, out);
        fflush(out);
    }
    if (password && tty) set_echo(false);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (password && tty) {
        set_echo(true);
        fputc('\n', out);
    }
    if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
    kindling_client_input_reply(c, kindling_msg_id(m), n >= 0 ? line : "");
    free(line);
    /* A Ctrl-C typed at the prompt is the user's answer, not an interrupt of the cell. */
    kl_cli_sigint_take();
}

static void print_pages(cell_run *r, const kindling_msg *reply) {
    for (int i = 0;; i++) {
        char path[64];
        snprintf(path, sizeof path, "content.payload.%d.source", i);
        const char *source = kindling_msg_get(reply, path);
        if (!source) break;
        if (strcmp(source, "page") != 0) continue;
        snprintf(path, sizeof path, "content.payload.%d.data.text/plain", i);
        const char *text = kindling_msg_get(reply, path);
        if (text) put_plain(stdout, text);
    }
    (void)r;
}

int kl_cli_run_cell(kl_cli_session *s, const char *code, int timeout_ms) {
    cell_run r = {s, false};
    kindling_execute_handlers h = {
        .on_stream = on_stream,
        .on_display = on_display,
        .on_result = on_result,
        .on_error = on_error,
        .on_clear_output = on_clear_output,
        .on_input = on_input,
    };
    sigint_watch(s, true);
    kindling_msg *reply = NULL;
    int rc = kindling_client_execute_blocking(s->c, code, NULL, &h, &r, timeout_ms, &reply);
    sigint_watch(s, false);
    live_end(s);
    if (reply) {
        if (s->json)
            json_line(&r, reply);
        else
            print_pages(&r, reply);
        kindling_msg_free(reply);
    }
    switch (rc) {
    case KINDLING_OK:
        return r.failed ? KL_CLI_ECELL : KL_CLI_OK;
    case KINDLING_EREPLY:
        /* The error output said why; a reply without one (aborted) says it here. */
        if (!r.failed) fprintf(stderr, "%s: %s\n", s->prog, kindling_client_last_error(s->c));
        return KL_CLI_ECELL;
    case KINDLING_ETIMEDOUT:
        fprintf(stderr, "%s: the cell did not finish within %.1f s; interrupting it\n", s->prog,
                timeout_ms / 1000.0);
        kindling_client_request_blocking(s->c, KINDLING_CONTROL, "interrupt_request", NULL, 5000,
                                         NULL);
        return KL_CLI_EKERNEL;
    case KINDLING_EBREAK:
        return s->lost ? KL_CLI_EKERNEL : KL_CLI_EINTR;
    default:
        fprintf(stderr, "%s: %s\n", s->prog, kindling_client_last_error(s->c));
        return KL_CLI_EKERNEL;
    }
}
