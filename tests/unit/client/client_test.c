/* The client library against the real kernel binary: requests and replies, outputs, stdin,
 * comms, the control channel, heartbeats, several clients. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <string.h>
#include <uv.h>

#include "kernel_proc.h"
#include "kindling/client.h"

#define T 20000 /* ms: generous, the machine may be busy */

static test_kernel kern;

static void start(void) {
    tk_start(&kern);
}

static void stop(void) {
    tk_stop(&kern);
}

TestSuite(client, .init = start, .fini = stop, .timeout = 60);

/* A connected client on a private loop, ready to use. */
static kindling_client *blocking_client(const kindling_client_options *o) {
    kindling_client *c = kindling_client_new(NULL, o);
    cr_assert_not_null(c);
    cr_assert_eq(kindling_client_connect_file(c, kern.conn), 0, "%s",
                 kindling_client_last_error(c));
    cr_assert_eq(kindling_client_wait_ready(c, T), 0, "%s", kindling_client_last_error(c));
    return c;
}

/* ---- outputs recorded by the handlers ---- */

typedef struct record {
    char out[4096]; /* every output, one line each, "kind:detail" */
    int results, errors, streams, displays;
    bool replied;
    int reply_status;
    char reply_state[32];
    char prompt[128];
    bool password;
    const char *answer;
    char ename[64];
    char order[64]; /* one letter per callback: s stream, r result, e error, d display, R reply */
} record;

static void note(record *r, char kind, const char *fmt, const char *a, const char *b) {
    size_t n = strlen(r->out);
    snprintf(r->out + n, sizeof r->out - n, fmt, a, b);
    n = strlen(r->order);
    if (n + 1 < sizeof r->order) r->order[n] = kind;
}

static void on_stream(kindling_client *c, const kindling_msg *m, const char *name, const char *text,
                      void *user) {
    (void)c, (void)m;
    record *r = user;
    r->streams++;
    note(r, 's', "stream:%s:%s", name, text);
}

static void on_result(kindling_client *c, const kindling_msg *m, int count,
                      const kindling_bundle *data, void *user) {
    (void)c, (void)m;
    record *r = user;
    r->results++;
    cr_assert_gt(count, 0);
    note(r, 'r', "result:%s%s\n", kindling_bundle_get(data, "text/plain"), "");
}

static void on_display(kindling_client *c, const kindling_msg *m, const kindling_bundle *data,
                       const char *display_id, bool update, void *user) {
    (void)c, (void)m, (void)display_id, (void)update;
    record *r = user;
    r->displays++;
    note(r, 'd', "display:%s%s\n", kindling_bundle_get(data, "text/html"), "");
}

static void on_error(kindling_client *c, const kindling_msg *m, const char *ename,
                     const char *evalue, const char *const *tb, size_t ntb, void *user) {
    (void)c, (void)m, (void)tb, (void)ntb;
    record *r = user;
    r->errors++;
    snprintf(r->ename, sizeof r->ename, "%s", ename);
    note(r, 'e', "error:%s:%s\n", ename, evalue);
}

static void on_reply(kindling_client *c, int status, const kindling_msg *reply, void *user) {
    (void)c;
    record *r = user;
    r->replied = true;
    r->reply_status = status;
    if (reply)
        snprintf(r->reply_state, sizeof r->reply_state, "%s",
                 kindling_msg_get(reply, "content.status"));
    note(r, 'R', "%s%s", "", "");
}

static void on_input(kindling_client *c, const kindling_msg *m, const char *prompt, bool password,
                     void *user) {
    record *r = user;
    snprintf(r->prompt, sizeof r->prompt, "%s", prompt);
    r->password = password;
    cr_assert_eq(kindling_client_input_reply(c, kindling_msg_id(m), r->answer), 0);
}

static const kindling_execute_handlers handlers = {
    .on_stream = on_stream,
    .on_result = on_result,
    .on_display = on_display,
    .on_error = on_error,
    .on_input = on_input,
    .on_reply = on_reply,
};

/* ---- tests ---- */

Test(client, kernel_info_blocking) {
    kindling_client *c = blocking_client(NULL);
    kindling_msg *reply = NULL;
    cr_assert_eq(
        kindling_client_request_blocking(c, KINDLING_SHELL, "kernel_info_request", NULL, T, &reply),
        0, "%s", kindling_client_last_error(c));
    cr_assert_str_eq(kindling_msg_type(reply), "kernel_info_reply");
    cr_assert_str_eq(kindling_msg_get(reply, "content.implementation"), "kindling");
    cr_assert_str_eq(kindling_msg_get(reply, "content.language_info.name"), "sql");
    cr_assert_str_eq(kindling_msg_get(reply, "header.session") ? "x" : "", "x");
    cr_assert_null(kindling_msg_get(reply, "content.no.such.path"));
    /* Non-string values come back as JSON text. */
    cr_assert_eq(kindling_msg_get(reply, "content.help_links")[0], '[');
    cr_assert_not_null(kindling_msg_get(reply, "content.help_links.0.url"));
    cr_assert_str_eq(kindling_msg_parent_id(reply),
                     kindling_msg_get(reply, "parent_header.msg_id"));
    cr_assert_eq(strlen(kindling_msg_id(reply)), 36);
    char *whole = kindling_msg_to_json(reply);
    cr_assert(strstr(whole, "\"buffers\":0") && strstr(whole, "\"content\":{"), "%s", whole);
    free(whole);
    cr_assert_eq(kindling_msg_buffer_count(reply), 0);
    cr_assert_null(kindling_msg_buffer(reply, 0).data);
    kindling_msg_free(reply);
    /* The same over control (protocol 5.5). */
    cr_assert_eq(kindling_client_request_blocking(c, KINDLING_CONTROL, "kernel_info_request", "{}",
                                                  T, &reply),
                 0);
    cr_assert_str_eq(kindling_msg_get(reply, "content.status"), "ok");
    kindling_msg_free(reply);
    kindling_client_close(c);
}

Test(client, execute_stream_and_result) {
    kindling_client *c = blocking_client(NULL);
    record r = {0};
    kindling_msg *reply = NULL;
    int rc = kindling_client_execute_blocking(c, "%echo hello\n%truncation", NULL, &handlers, &r, T,
                                              &reply);
    cr_assert_eq(rc, 0, "%s", kindling_client_last_error(c));
    cr_assert_str_eq(r.out, "stream:stdout:hello\nresult:Truncation: on\n");
    cr_assert_str_eq(r.order, "srR", "the reply comes after every output");
    cr_assert_str_eq(kindling_msg_get(reply, "content.status"), "ok");
    cr_assert_not_null(kindling_msg_get(reply, "content.execution_count"));
    kindling_msg_free(reply);
    /* A display and stderr. */
    memset(&r, 0, sizeof r);
    rc = kindling_client_execute_blocking(c, "%%html\n<b>bold</b>", NULL, &handlers, &r, T, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(r.out, "display:<b>bold</b>\n");
    memset(&r, 0, sizeof r);
    rc =
        kindling_client_execute_blocking(c, "%echo --stderr careful", NULL, &handlers, &r, T, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(r.out, "stream:stderr:careful\n");
    kindling_client_close(c);
}

Test(client, error_reply) {
    kindling_client *c = blocking_client(NULL);
    record r = {0};
    kindling_msg *reply = NULL;
    int rc = kindling_client_execute_blocking(c, "%nosuchmagic", NULL, &handlers, &r, T, &reply);
    cr_assert_eq(rc, KINDLING_EREPLY);
    cr_assert(strstr(kindling_client_last_error(c), "UnknownMagic") != NULL, "%s",
              kindling_client_last_error(c));
    cr_assert_eq(r.errors, 1);
    cr_assert_str_eq(r.ename, "UnknownMagic");
    cr_assert_str_eq(kindling_msg_get(reply, "content.status"), "error");
    kindling_msg_free(reply);
    /* The client is still usable. */
    memset(&r, 0, sizeof r);
    cr_assert_eq(kindling_client_execute_blocking(c, "%echo again", NULL, &handlers, &r, T, NULL),
                 0);
    cr_assert_str_eq(r.out, "stream:stdout:again\n");
    kindling_client_close(c);
}

Test(client, input_request_answered) {
    kindling_client *c = blocking_client(NULL);
    record r = {.answer = "hunter22"};
    int rc = kindling_client_execute_blocking(c, "%input --password Secret?", NULL, &handlers, &r,
                                              T, NULL);
    cr_assert_eq(rc, 0, "%s", kindling_client_last_error(c));
    cr_assert_str_eq(r.prompt, "Secret?");
    cr_assert(r.password);
    cr_assert_str_eq(r.out, "stream:stdout:(8 characters)\n");
    memset(&r, 0, sizeof r);
    r.answer = "plain words";
    rc = kindling_client_execute_blocking(c, "%input Name?", NULL, &handlers, &r, T, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_not(r.password);
    cr_assert_str_eq(r.out, "stream:stdout:you said: plain words\n");
    /* Without an input handler the kernel is told stdin is not allowed. */
    kindling_execute_handlers no_input = handlers;
    no_input.on_input = NULL;
    memset(&r, 0, sizeof r);
    rc = kindling_client_execute_blocking(c, "%input Name?", NULL, &no_input, &r, T, NULL);
    cr_assert_eq(rc, KINDLING_EREPLY);
    cr_assert_eq(r.errors, 1);
    kindling_client_close(c);
}

/* ---- comms ---- */

typedef struct comm_rec {
    int msgs, closes;
    char data[256];
    char parent[KINDLING_MSG_ID_LEN];
    size_t nbuf;
    char buf[64];
    size_t buflen;
} comm_rec;

static void comm_msg(kindling_comm *comm, const kindling_msg *m, const char *data,
                     const kindling_buffer *bufs, size_t n, void *user) {
    comm_rec *r = user;
    cr_assert_not_null(kindling_comm_client(comm));
    r->msgs++;
    snprintf(r->data, sizeof r->data, "%s", data);
    snprintf(r->parent, sizeof r->parent, "%s", kindling_msg_parent_id(m));
    r->nbuf = n;
    if (n > 0 && bufs[0].len <= sizeof r->buf) {
        memcpy(r->buf, bufs[0].data, bufs[0].len);
        r->buflen = bufs[0].len;
    }
    kindling_client_break(kindling_comm_client(comm));
}

static void comm_close(kindling_comm *comm, const kindling_msg *m, const char *data, void *user) {
    (void)m, (void)data;
    comm_rec *r = user;
    r->closes++;
    kindling_client_break(kindling_comm_client(comm));
}

static const kindling_comm_handlers comm_handlers = {.on_msg = comm_msg, .on_close = comm_close};

Test(client, comm_echo_json_and_buffers) {
    kindling_client *c = blocking_client(NULL);
    comm_rec r = {0};
    kindling_comm *comm =
        kindling_comm_open(c, "kindling.echo", "{\"hello\": true}", NULL, 0, &comm_handlers, &r);
    cr_assert_not_null(comm, "%s", kindling_client_last_error(c));
    cr_assert_eq(strlen(kindling_comm_id(comm)), 36);
    char id[KINDLING_MSG_ID_LEN];
    cr_assert_eq(kindling_comm_send(comm, "{\"n\": 1, \"s\": \"x\"}", NULL, 0, id), 0);
    kindling_client_run(c, T);
    cr_assert_eq(r.msgs, 1);
    cr_assert_str_eq(r.data, "{\"n\":1,\"s\":\"x\"}");
    cr_assert_str_eq(r.parent, id, "the answer names our comm_msg as its parent");
    cr_assert_eq(r.nbuf, 0);
    /* Binary buffers (e.g. msgpack) travel untouched, zero bytes included. */
    static const char bin[] = {(char)0x92, 0x01, 0x00, (char)0xa1, 'z', (char)0xff};
    kindling_buffer b = {bin, sizeof bin};
    cr_assert_eq(kindling_comm_send(comm, "{\"format\": \"msgpack\"}", &b, 1, id), 0);
    kindling_client_run(c, T);
    cr_assert_eq(r.msgs, 2);
    cr_assert_eq(r.nbuf, 1);
    cr_assert_eq(r.buflen, sizeof bin);
    cr_assert_eq(memcmp(r.buf, bin, sizeof bin), 0);
    cr_assert_eq(kindling_comm_close(comm, NULL), 0);
    cr_assert_eq(r.closes, 0, "closing ourselves calls no on_close");
    /* An unknown target: the kernel closes the comm at once. */
    comm_rec r2 = {0};
    comm = kindling_comm_open(c, "no.such.target", NULL, NULL, 0, &comm_handlers, &r2);
    cr_assert_not_null(comm);
    kindling_client_run(c, T);
    cr_assert_eq(r2.closes, 1);
    cr_assert_eq(r2.msgs, 0);
    /* Bad JSON is refused before anything is sent. */
    cr_assert_null(kindling_comm_open(c, "kindling.echo", "{not json", NULL, 0, NULL, NULL));
    cr_assert(strstr(kindling_client_last_error(c), "JSON") != NULL);
    kindling_client_close(c);
}

/* ---- control channel ---- */

typedef struct ctl {
    kindling_client *c;
    uv_timer_t timer;
    record cell;
    bool interrupted;
    long long sent_at, reply_at;
} ctl;

/* Both answers in, whichever came first: done (closing from inside a callback is allowed). */
static void maybe_finish(ctl *x) {
    if (!x->interrupted || !x->cell.replied) return;
    uv_close((uv_handle_t *)&x->timer, NULL);
    kindling_client_close(x->c);
}

static void on_interrupt_reply(kindling_client *c, int status, const kindling_msg *reply,
                               void *user) {
    (void)c;
    ctl *x = user;
    cr_assert_eq(status, 0);
    cr_assert_str_eq(kindling_msg_type(reply), "interrupt_reply");
    cr_assert_str_eq(kindling_msg_get(reply, "content.status"), "ok");
    x->interrupted = true;
    maybe_finish(x);
}

static void send_interrupt(uv_timer_t *t) {
    ctl *x = t->data;
    x->sent_at = tk_now_ms();
    cr_assert_eq(kindling_client_interrupt(x->c, on_interrupt_reply, x), 0);
}

static void cell_done(kindling_client *c, int status, const kindling_msg *reply, void *user) {
    ctl *x = user;
    on_reply(c, status, reply, &x->cell);
    x->reply_at = tk_now_ms();
    maybe_finish(x);
}

/* The cell runs once it has said "start": the interrupt goes a moment later. */
static void cell_stream(kindling_client *c, const kindling_msg *m, const char *name,
                        const char *text, void *user) {
    ctl *x = user;
    on_stream(c, m, name, text, &x->cell);
    uv_timer_start(&x->timer, send_interrupt, 300, 0);
}

Test(client, interrupt_sleep_through_control_on_callers_loop) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    ctl x = {0};
    x.c = kindling_client_new(&loop, NULL);
    cr_assert_eq(kindling_client_connect_file(x.c, kern.conn), 0);
    /* Blocking calls are refused on a caller's loop. */
    cr_assert_eq(kindling_client_wait_ready(x.c, 10), KINDLING_ESTATE);
    kindling_execute_handlers h = {.on_stream = cell_stream, .on_reply = cell_done};
    cr_assert_eq(kindling_client_execute(x.c, "%echo start\n%sleep 30", NULL, &h, &x, NULL), 0);
    uv_timer_init(&loop, &x.timer);
    x.timer.data = &x;
    long long t0 = tk_now_ms();
    uv_run(&loop, UV_RUN_DEFAULT); /* ends once the client and the timer are closed */
    cr_assert(x.interrupted);
    cr_assert(x.cell.replied);
    cr_assert_str_eq(x.cell.out, "stream:stdout:start\n");
    cr_assert_lt(x.reply_at - t0, 15000, "the 30 s sleep was cut short");
    cr_assert_geq(x.reply_at, x.sent_at);
    cr_assert_eq(uv_loop_close(&loop), 0, "the client left no handle behind");
}

Test(client, shutdown_through_control) {
    kindling_client *c = blocking_client(NULL);
    kindling_msg *reply = NULL;
    cr_assert_eq(kindling_client_request_blocking(c, KINDLING_CONTROL, "shutdown_request",
                                                  "{\"restart\": false}", T, &reply),
                 0, "%s", kindling_client_last_error(c));
    cr_assert_str_eq(kindling_msg_type(reply), "shutdown_reply");
    cr_assert_str_eq(kindling_msg_get(reply, "content.restart"), "false");
    kindling_msg_free(reply);
    kindling_client_close(c);
    cr_assert(tk_wait_exit(&kern, T), "the kernel process exits");
    cr_assert(WIFEXITED(kern.status) && WEXITSTATUS(kern.status) == 0, "status %d", kern.status);
}

/* ---- heartbeat ---- */

typedef struct hb_rec {
    int alive, lost;
    bool last;
} hb_rec;

static void on_heartbeat(kindling_client *c, bool alive, void *user) {
    hb_rec *h = user;
    if (alive)
        h->alive++;
    else
        h->lost++;
    h->last = alive;
    kindling_client_break(c);
}

Test(client, heartbeat_loss_and_recovery) {
    hb_rec h = {0};
    kindling_client_options o = {
        .heartbeat_interval_ms = 200,
        .heartbeat_timeout_ms = 600,
        .on_heartbeat = on_heartbeat,
        .user = &h,
    };
    kindling_client *c = kindling_client_new(NULL, &o);
    cr_assert_eq(kindling_client_connect_file(c, kern.conn), 0);
    /* The handler breaks every wait, this one included. */
    int rc;
    while ((rc = kindling_client_wait_ready(c, T)) == KINDLING_EBREAK) {
    }
    cr_assert_eq(rc, 0);
    bool alive_seen = false;
    long long end = tk_now_ms() + T;
    while (h.alive == 0 && tk_now_ms() < end) kindling_client_run(c, 1000);
    alive_seen = h.alive > 0;
    cr_assert(alive_seen, "the first echo is reported");
    cr_assert(kindling_client_alive(c));
    cr_assert_eq(kill(kern.pid, SIGSTOP), 0);
    long long stopped = tk_now_ms();
    bool lost = false;
    end = tk_now_ms() + T;
    while (!lost && tk_now_ms() < end) {
        kindling_client_run(c, 1000);
        lost = h.lost > 0;
    }
    cr_assert(lost, "a stopped kernel is reported lost");
    cr_assert_lt(tk_now_ms() - stopped, 5000);
    cr_assert_not(kindling_client_alive(c));
    cr_assert_eq(kill(kern.pid, SIGCONT), 0);
    bool back = false;
    end = tk_now_ms() + T;
    while (!back && tk_now_ms() < end) {
        kindling_client_run(c, 1000);
        back = h.last;
    }
    cr_assert(back, "recovery is reported");
    cr_assert_eq(h.alive, 2);
    /* The connection itself survived the pause. */
    record r = {0};
    cr_assert_eq(
        kindling_client_execute_blocking(c, "%echo still here", NULL, &handlers, &r, T, NULL), 0);
    cr_assert_str_eq(r.out, "stream:stdout:still here\n");
    kindling_client_close(c);
}

/* ---- several clients, several requests ---- */

typedef struct multi {
    int pending;
    record rec[4];
} multi;

static void multi_reply(kindling_client *c, int status, const kindling_msg *reply, void *user);

typedef struct cell_ref {
    multi *m;
    int i;
} cell_ref;

static void multi_stream(kindling_client *c, const kindling_msg *m, const char *name,
                         const char *text, void *user) {
    cell_ref *ref = user;
    on_stream(c, m, name, text, &ref->m->rec[ref->i]);
}

static void multi_reply(kindling_client *c, int status, const kindling_msg *reply, void *user) {
    cell_ref *ref = user;
    on_reply(c, status, reply, &ref->m->rec[ref->i]);
    if (--ref->m->pending == 0) kindling_client_break(c);
}

Test(client, two_clients_concurrently) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    kindling_client *a = kindling_client_new(&loop, NULL);
    kindling_client *b = kindling_client_new(&loop, NULL);
    cr_assert_str_neq(kindling_client_session(a), kindling_client_session(b));
    cr_assert_eq(kindling_client_connect_file(a, kern.conn), 0);
    cr_assert_eq(kindling_client_connect_file(b, kern.conn), 0);
    multi m = {.pending = 4};
    cell_ref refs[4] = {{&m, 0}, {&m, 1}, {&m, 2}, {&m, 3}};
    kindling_execute_handlers h = {.on_stream = multi_stream, .on_reply = multi_reply};
    long long t0 = tk_now_ms();
    /* Two cells in flight on each client; the first of each sleeps 2 s, so one after the other
     * they would take 4 s at least. */
    cr_assert_eq(kindling_client_execute(a, "%sleep 2\n%echo a1", NULL, &h, &refs[0], NULL), 0);
    cr_assert_eq(kindling_client_execute(a, "%echo a2", NULL, &h, &refs[1], NULL), 0);
    cr_assert_eq(kindling_client_execute(b, "%sleep 2\n%echo b1", NULL, &h, &refs[2], NULL), 0);
    cr_assert_eq(kindling_client_execute(b, "%echo b2", NULL, &h, &refs[3], NULL), 0);
    while (m.pending > 0 && tk_now_ms() - t0 < T) uv_run(&loop, UV_RUN_ONCE);
    long long took = tk_now_ms() - t0;
    cr_assert_eq(m.pending, 0);
    const char *want[4] = {"stream:stdout:a1\n", "stream:stdout:a2\n", "stream:stdout:b1\n",
                           "stream:stdout:b2\n"};
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(m.rec[i].out, want[i], "cell %d sees only its own output", i);
        cr_assert_str_eq(m.rec[i].reply_state, "ok");
    }
    cr_assert_lt(took, 3800, "the two clients' sleeps overlapped (took %lld ms)", took);
    cr_assert_geq(took, 2000);
    kindling_client_close(a);
    kindling_client_close(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- other requests ---- */

typedef struct generic {
    int n;
    char last[512];
} generic;

static void on_generic(kindling_client *c, int status, const kindling_msg *reply, void *user) {
    generic *g = user;
    cr_assert_eq(status, 0);
    g->n++;
    snprintf(g->last, sizeof g->last, "%s %s", kindling_msg_type(reply),
             kindling_msg_content(reply));
    kindling_client_break(c);
}

Test(client, complete_inspect_is_complete_history) {
    kindling_client *c = blocking_client(NULL);
    generic g = {0};
    cr_assert_eq(kindling_client_complete(c, "%ech", -1, on_generic, &g), 0);
    kindling_client_run(c, T);
    cr_assert(strstr(g.last, "complete_reply") == g.last, "%s", g.last);
    cr_assert(strstr(g.last, "%echo") != NULL, "%s", g.last);
    cr_assert_eq(kindling_client_inspect(c, "%echo", 3, 0, on_generic, &g), 0);
    kindling_client_run(c, T);
    cr_assert(strstr(g.last, "inspect_reply") == g.last && strstr(g.last, "\"found\":true"), "%s",
              g.last);
    cr_assert_eq(kindling_client_is_complete(c, "SELECT 1", on_generic, &g), 0);
    kindling_client_run(c, T);
    cr_assert(strstr(g.last, "\"incomplete\"") != NULL, "%s", g.last);
    cr_assert_eq(kindling_client_is_complete(c, "SELECT 1;", on_generic, &g), 0);
    kindling_client_run(c, T);
    cr_assert(strstr(g.last, "\"complete\"") != NULL, "%s", g.last);
    cr_assert_eq(kindling_client_history(c, "tail", 5, NULL, false, on_generic, &g), 0);
    kindling_client_run(c, T);
    cr_assert(strstr(g.last, "history_reply") == g.last, "%s", g.last);
    cr_assert_eq(kindling_client_kernel_info(c, on_generic, &g), 0);
    kindling_client_run(c, T);
    cr_assert(strstr(g.last, "kernel_info_reply") == g.last);
    cr_assert_eq(g.n, 6);
    /* Nonsense is refused with a reason. */
    cr_assert_eq(kindling_client_request(c, KINDLING_SHELL, "x_request", "[1]", NULL, NULL, NULL),
                 KINDLING_EINVAL);
    cr_assert_eq(kindling_client_request(c, KINDLING_IOPUB, "x_request", NULL, NULL, NULL, NULL),
                 KINDLING_EINVAL);
    kindling_client_close(c);
}

static void count_closed(kindling_client *c, int status, const kindling_msg *reply, void *user) {
    (void)c;
    int *n = user;
    cr_assert_eq(status, KINDLING_ECLOSED);
    cr_assert_null(reply);
    (*n)++;
}

Test(client, close_ends_pending_requests) {
    kindling_client *c = blocking_client(NULL);
    int closed = 0;
    kindling_execute_handlers h = {.on_reply = count_closed};
    cr_assert_eq(kindling_client_execute(c, "%sleep 20", NULL, &h, &closed, NULL), 0);
    cr_assert_eq(kindling_client_request(c, KINDLING_SHELL, "kernel_info_request", NULL,
                                         count_closed, &closed, NULL),
                 0);
    kindling_client_close(c);
    cr_assert_eq(closed, 2);
}

Test(client, blocking_timeout_and_explicit_endpoints) {
    char eps[5][128];
    const char *names = "12345";
    for (int i = 0; i < 5; i++)
        snprintf(eps[i], sizeof eps[i], "ipc://%s/k-%c", kern.dir, names[i]);
    kindling_endpoints ep = {eps[0], eps[1], eps[2], eps[3], eps[4], "test-key", NULL, NULL};
    kindling_client *c = kindling_client_new(NULL, NULL);
    cr_assert_eq(kindling_client_connect(c, &ep), 0, "%s", kindling_client_last_error(c));
    cr_assert_eq(kindling_client_connect(c, &ep), KINDLING_ESTATE, "connecting twice");
    record r = {0};
    /* Not stopping on error: the interrupted cell must not abort the one queued behind it. */
    kindling_execute_options keep = {.flags = KINDLING_EXEC_NO_STOP_ON_ERROR};
    cr_assert_eq(kindling_client_execute_blocking(c, "%sleep 5", &keep, &handlers, &r, 300, NULL),
                 KINDLING_ETIMEDOUT);
    cr_assert_eq(kindling_client_interrupt(c, NULL, NULL), 0);
    cr_assert_eq(kindling_client_execute_blocking(c, "%echo ok", NULL, &handlers, &r, T, NULL), 0,
                 "%s", kindling_client_last_error(c));
    cr_assert(strstr(r.out, "stream:stdout:ok\n") != NULL, "%s", r.out);
    kindling_client_close(c);
}

Test(client, wrong_key_never_gets_ready) {
    char eps[5][128];
    const char *names = "12345";
    for (int i = 0; i < 5; i++)
        snprintf(eps[i], sizeof eps[i], "ipc://%s/k-%c", kern.dir, names[i]);
    kindling_endpoints ep = {eps[0], eps[1], eps[2], eps[3], eps[4], "wrong-key", NULL, NULL};
    kindling_client *c = kindling_client_new(NULL, NULL);
    cr_assert_eq(kindling_client_connect(c, &ep), 0);
    /* IOPub traffic is signed with the kernel's key: the welcome does not verify. */
    cr_assert_eq(kindling_client_wait_ready(c, 1500), KINDLING_ETIMEDOUT);
    kindling_client_close(c);
}

Test(client, bad_connection_files) {
    kindling_client *c = kindling_client_new(NULL, NULL);
    cr_assert_eq(kindling_client_connect_file(c, "/nonexistent/kernel.json"), KINDLING_ECONFIG);
    cr_assert(strstr(kindling_client_last_error(c), "/nonexistent/kernel.json") != NULL, "%s",
              kindling_client_last_error(c));
    cr_assert_eq(kindling_client_execute(c, "%echo x", NULL, NULL, NULL, NULL), KINDLING_ESTATE);
    kindling_client_close(c);
    cr_assert_eq(kindling_client_connect_file(NULL, kern.conn), KINDLING_EINVAL);
    cr_assert_str_neq(kindling_client_last_error(NULL), "");
    cr_assert_str_eq(kindling_strerror(KINDLING_ETIMEDOUT), "timed out");
}
