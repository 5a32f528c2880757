#include "kernel/kernel.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/heartbeat.h"
#include "jupyter/jsontext.h"
#include "kernel/comm.h"
#include "kernel/dispatch.h"
#include "kernel/execute.h"
#include "kernel/metrics.h"
#include "kernel/service.h"
#include "kernel/sql.h"
#include "kernel/sqlcomm.h"
#include "kernel/tenant.h"
#include "kl_version.h"
#include "runtime/freelist.h"
#include "runtime/log.h"

/* A slow IOPub subscriber makes sends wait (XPUB_NODROP) instead of losing output; the mark only
 * bounds how much the kernel holds for it before that backpressure starts. It is far above what
 * any subscriber keeps waiting because libzmq tells the sender what a pipe's reader has taken only
 * every (mark - 1024) messages: at each such point a subscriber more than 1,024 messages behind
 * stalls every tenant's output until it catches up. A subscriber to everything (jupyter_client's
 * default) reaches 100,000 messages in about a second under 1,000 busy clients. */
#define IOPUB_HWM  1000000
#define ROUTER_HWM 100000
/* Pending replies (shutdown_reply above all) get this long to leave when the sockets close. */
#define CLOSE_LINGER_MS 2000
/* How long running cells get to finish after an interrupt at shutdown. */
#define SHUTDOWN_GRACE_MS 2000

struct kl_input_wait {
    char msg_id[KL_UUID_STRLEN];
    kl_tenant *t;
    char *value;
    bool done;
    struct kl_input_wait *next;
};

/* ---- sending ---------------------------------------------------------------------------- */

/* kernel_info_reply content as text, framed without a copy in every reply. Freed only after
 * zmq_ctx_term, because until then a queued reply may still point at it. */
static char *info_text;
static size_t info_text_len;

/* Text of contents that never change, or no data: status messages and kernel_info replies are
 * most of what the kernel sends, and writing the same JSON again for each costs a good part of a
 * round trip. */
static kl_slice constant_content(kl_kernel *k, const char *msg_type, const json_t *content) {
    static const char *const states[][2] = {
        {"busy", "{\"execution_state\":\"busy\"}"},
        {"idle", "{\"execution_state\":\"idle\"}"},
        {"starting", "{\"execution_state\":\"starting\"}"},
    };
    if (!content) return (kl_slice){NULL, 0};
    if (content == k->info_content && info_text) return (kl_slice){info_text, info_text_len};
    if (strcmp(msg_type, "status") == 0 && json_object_size(content) == 1) {
        const char *state = json_string_value(json_object_get(content, "execution_state"));
        for (size_t i = 0; state && i < sizeof states / sizeof states[0]; i++)
            if (strcmp(state, states[i][0]) == 0)
                return (kl_slice){states[i][1], strlen(states[i][1])};
    }
    return (kl_slice){NULL, 0};
}

/* Coroutine: encodes o (content stolen, buffers consumed) as a child of parent and sends it on
 * sock. */
static int send_child(kl_kernel *k, kl_zsock *sock, const kl_msg *parent, kl_msg_out *o,
                      json_t *content) {
    if (!sock) {
        json_decref(content);
        if (o->buffers) kl_frames_clear(o->buffers);
        return -ECANCELED;
    }
    o->session = k->session;
    o->content = content;
    o->content_text = constant_content(k, o->msg_type, content);
    kl_frames out;
    kl_frames_init(&out);
    int rc = kl_msg_encode_child(parent, o, &k->signer, &out);
    json_decref(content);
    if (rc == 0) rc = kl_zsock_send(sock, &out);
    kl_frames_clear(&out);
    if (rc != 0 && rc != -ECANCELED)
        KL_WARN("kernel", "sending %s failed: %s", o->msg_type, zmq_strerror(-rc));
    return rc;
}

static int publish_topic(kl_kernel *k, const kl_msg *parent, const char *msg_type, json_t *content,
                         kl_frames *buffers, const char *topic) {
    char buf[256];
    if (!topic) {
        /* Naming the client session lets a tenant-aware client subscribe to its own traffic
         * only ("session.<its session id>."), with no need to know the kernel's id; clients
         * that subscribe to everything are unaffected. Put together by hand: this runs for every
         * IOPub message, and snprintf costs more than the rest of the topic. */
        const char *session = parent ? kl_msg_session(parent) : "";
        size_t ns = strlen(session), nt = strlen(msg_type);
        const char *prefix = "session.";
        if (!*session || ns >= 128) {
            prefix = "kernel.";
            session = k->kernel_id;
            ns = strlen(session);
        }
        size_t np = strlen(prefix);
        if (nt > sizeof buf - np - ns - 2) nt = sizeof buf - np - ns - 2; /* as snprintf cut it */
        char *w = buf;
        memcpy(w, prefix, np);
        w += np;
        memcpy(w, session, ns);
        w += ns;
        *w++ = '.';
        memcpy(w, msg_type, nt);
        w[nt] = '\0';
        topic = buf;
    }
    /* IOPub carries a topic frame where replies carry the requester's identities. */
    kl_msg_out o = {.msg_type = msg_type, .topic = topic, .buffers = buffers};
    kl_metrics_iopub_backlog(1);
    int rc = send_child(k, k->iopub, parent, &o, content);
    kl_metrics_iopub_backlog(-1);
    return rc;
}

int kl_kernel_publish_buffers(kl_kernel *k, const kl_msg *parent, const char *msg_type,
                              json_t *content, kl_frames *buffers) {
    return publish_topic(k, parent, msg_type, content, buffers, NULL);
}

int kl_kernel_publish(kl_kernel *k, const kl_msg *parent, const char *msg_type, json_t *content) {
    return publish_topic(k, parent, msg_type, content, NULL, NULL);
}

int kl_kernel_reply(kl_kernel *k, kl_zsock *sock, const kl_msg *parent, const char *msg_type,
                    json_t *content) {
    kl_msg_out o = {.msg_type = msg_type};
    return send_child(k, sock, parent, &o, content);
}

/* ---- kernel info, interrupt, history ---------------------------------------------------- */

static json_t *info_content_new(void) {
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:[{s:s, s:s}], "
        "s:[s], s:b}",
        "status", "ok", "protocol_version", KL_PROTOCOL_VERSION, "implementation", "kindling",
        "implementation_version", KL_VERSION, "language_info", "name", "sql", "version", "",
        "mimetype", "text/x-sql", "file_extension", ".sql", "pygments_lexer", "sql",
        "codemirror_mode", "sql", "nbconvert_exporter", "script", "banner",
        "Kindling " KL_VERSION " - Spark SQL through Spark Connect.\n"
        "Type SQL, or %lsmagic for the magics.",
        "help_links", "text", "Spark SQL reference", "url",
        "https://spark.apache.org/docs/latest/sql-ref.html", "supported_features",
        "kernel subshells", "debugger", 0);
}

json_t *kl_kernel_info_content(const kl_kernel *k) {
    return json_incref(k->info_content);
}

static void interrupt_one(const char *key, void *value, void *arg) {
    (void)key;
    kl_kernel *k = arg;
    kl_tenant *t = value;
    if (!t->busy) return;
    t->interrupted = true;
    if (t->interruptible_wait) kl_loop_wake(k->loop, t->coro);
    if (t->interrupt_hook) t->interrupt_hook(t->interrupt_arg);
}

typedef struct session_interrupt {
    kl_kernel *k;
    const char *session;
    bool any;
} session_interrupt;

static void interrupt_family(const char *key, void *value, void *arg) {
    session_interrupt *si = arg;
    kl_tenant *t = value;
    if (!t->busy || strcmp(t->session, si->session) != 0) return;
    si->any = true;
    interrupt_one(key, t, si->k);
}

void kl_kernel_interrupt_session(kl_kernel *k, const char *session) {
    /* A connection's subshells are its own cells too: they stop with it. */
    session_interrupt si = {k, session ? session : "", false};
    if (session) kl_strmap_foreach(k->tenants, interrupt_family, &si);
    if (!si.any) {
        kl_kernel_interrupt_all(k);
        return;
    }
    KL_INFO("kernel", "interrupt of one connection");
}

void kl_kernel_interrupt_all(kl_kernel *k) {
    KL_INFO("kernel", "interrupt");
    kl_strmap_foreach(k->tenants, interrupt_one, k);
}

int kl_kernel_history_run(kl_kernel *k, void (*fn)(void *arg), void *arg) {
    if (!k->history_pool) return -1;
    return kl_pool_run(k->history_pool, fn, arg);
}

static void history_open(void *arg) {
    kl_kernel *k = arg;
    char err[512];
    k->history = kl_history_open(k->history_path, err, sizeof err);
    if (!k->history) KL_WARN("history", "history is off: %s", err);
}

/* ---- stdin ------------------------------------------------------------------------------ */

int kl_kernel_input(kl_kernel *k, kl_tenant *t, const kl_msg *parent, const char *prompt,
                    bool password, char **value) {
    struct kl_input_wait w = {.t = t};
    w.next = k->inputs;
    k->inputs = &w;
    /* The identities of the shell request reach the same client's stdin socket: jupyter_client
     * gives both sockets the session id as identity. */
    kl_msg_out o = {.msg_type = "input_request", .msg_id = w.msg_id};
    int rc = send_child(k, k->stdin_sock, parent, &o,
                        json_pack("{s:s, s:b}", "prompt", prompt, "password", password));
    if (rc == 0) {
        t->interruptible_wait = true;
        while (!w.done && !t->interrupted && !k->shutting_down) kl_loop_park(k->loop);
        t->interruptible_wait = false;
    }
    for (struct kl_input_wait **p = &k->inputs; *p; p = &(*p)->next)
        if (*p == &w) {
            *p = w.next;
            break;
        }
    if (w.done) {
        *value = w.value;
        return 0;
    }
    free(w.value);
    if (rc != 0) return rc;
    return t->interrupted ? -EINTR : -ECANCELED;
}

/* JupyterLab names the input_request as the reply's parent; jupyter_client's input() sends no
 * parent at all, so then the reply goes to the pending request of the same client session. */
static struct kl_input_wait *find_input(kl_kernel *k, const kl_msg *m) {
    const char *parent_id = json_string_value(json_object_get(m->parent_header, "msg_id"));
    for (struct kl_input_wait *w = k->inputs; w; w = w->next)
        if (!w->done && parent_id && strcmp(w->msg_id, parent_id) == 0) return w;
    if (parent_id && *parent_id) return NULL;
    for (struct kl_input_wait *w = k->inputs; w; w = w->next)
        if (!w->done && strcmp(w->t->session, kl_msg_session(m)) == 0) return w;
    return NULL;
}

static void deliver_input(kl_kernel *k, const kl_msg *m) {
    struct kl_input_wait *w = find_input(k, m);
    if (w) {
        const char *v = json_string_value(json_object_get(m->content, "value"));
        w->value = strdup(v ? v : "");
        w->done = true;
        kl_loop_wake(k->loop, w->t->coro);
        return;
    }
    KL_INFO("stdin", "input_reply that answers no pending input_request; ignored");
}

/* ---- readers ---------------------------------------------------------------------------- */

/* Bad input is logged with its reason, but a client spraying garbage must not flood the log:
 * after the first 20, only every 1000th is reported. */
static void log_bad(kl_kernel *k, const char *channel, const char *err) {
    unsigned long n = ++k->bad_messages;
    if (n <= 20 || n % 1000 == 0)
        KL_WARN("wire", "dropped a message on %s (%lu so far): %s", channel, n, err);
}

/* Coroutine: reads one decoded message from sock; NULL once the socket is closed. */
static kl_msg *read_msg(kl_kernel *k, kl_zsock *sock, const char *channel) {
    for (;;) {
        kl_frames f;
        kl_frames_init(&f);
        if (kl_zsock_recv(sock, &f) != 0) {
            kl_frames_clear(&f);
            return NULL;
        }
        kl_msg *m = kl_freelist_alloc(sizeof *m);
        if (!m) {
            kl_frames_clear(&f);
            continue;
        }
        char err[256];
        int rc = kl_msg_decode(&f, &k->signer, m, err, sizeof err);
        kl_frames_clear(&f);
        if (rc == 0) return m;
        log_bad(k, channel, err);
        kl_msg_free(m);
    }
}

/* Coroutine: answers a shell request that cannot be queued (busy, the error reply, idle), so the
 * client is told why instead of waiting forever. */
static void refuse(kl_kernel *k, const kl_msg *m, const char *ename, const char *evalue) {
    const char *type = kl_msg_type(m);
    size_t n = strlen(type);
    if (n < 9 || strcmp(type + n - 8, "_request") != 0) return;
    char rtype[128];
    snprintf(rtype, sizeof rtype, "%.*s_reply", (int)(n - 8), type);
    kl_kernel_publish(k, m, "status", json_pack("{s:s}", "execution_state", "busy"));
    json_t *content = json_pack("{s:s, s:s, s:s, s:[s]}", "status", "error", "ename", ename,
                                "evalue", evalue, "traceback", evalue);
    if (strcmp(type, "execute_request") == 0) {
        json_object_set_new(content, "execution_count", json_integer(0));
        kl_kernel_publish(
            k, m, "error",
            json_pack("{s:s, s:s, s:[s]}", "ename", ename, "evalue", evalue, "traceback", evalue));
    }
    kl_kernel_reply(k, k->shell, m, rtype, content);
    kl_kernel_publish(k, m, "status", json_pack("{s:s}", "execution_state", "idle"));
}

static kl_tenant *route(kl_kernel *k, const kl_msg *m) {
    const char *session = kl_msg_session(m);
    const char *subshell = json_string_value(json_object_get(m->header, "subshell_id"));
    if (subshell && *subshell) {
        kl_tenant *t = kl_tenant_find_subshell(k, session, subshell);
        if (!t) {
            char why[256];
            snprintf(why, sizeof why, "no subshell \"%.64s\" belongs to this connection", subshell);
            refuse(k, m, "SubshellNotFound", why);
        }
        return t;
    }
    kl_tenant *t = kl_tenant_get(k, session);
    if (!t && errno == EMFILE) {
        char why[256];
        snprintf(why, sizeof why,
                 "this kernel already serves %ld connections (--max-connections); try again "
                 "when one has closed",
                 k->opts.max_connections);
        refuse(k, m, "TooManyConnections", why);
    }
    return t;
}

/* Requests read from shell before the reader lets the tenants it woke run. Reading all that is
 * waiting first (1,000 clients' worth) made each turn hold every request, its decoded JSON and a
 * coroutine stack at once: the working set left the CPU caches, the stack cache overflowed into
 * mmap and munmap, and every reply waited for the whole batch. */
#define SHELL_READ_BATCH 32

static void shell_reader(void *arg) {
    kl_kernel *k = arg;
    kl_msg *m;
    for (unsigned batch = 1;; batch++) {
        if (batch == SHELL_READ_BATCH) {
            batch = 0;
            kl_loop_yield(k->loop);
        }
        if (!(m = read_msg(k, k->shell, "shell"))) break;
        if (k->shutting_down) {
            refuse(k, m, "KernelShuttingDown",
                   "the kernel is shutting down and takes no new requests");
            kl_msg_free(m);
            continue;
        }
        kl_tenant *t = route(k, m);
        if (!t || kl_tenant_deliver(t, m) != 0) {
            if (!k->shutting_down && t) KL_WARN("kernel", "could not queue a %s", kl_msg_type(m));
            kl_msg_free(m);
        }
    }
}

static void control_reader(void *arg) {
    kl_kernel *k = arg;
    kl_msg *m;
    while ((m = read_msg(k, k->control, "control"))) {
        kl_dispatch_control(k, k->control, m);
        kl_msg_free(m);
    }
}

static void stdin_reader(void *arg) {
    kl_kernel *k = arg;
    kl_msg *m;
    while ((m = read_msg(k, k->stdin_sock, "stdin"))) {
        if (strcmp(kl_msg_type(m), "input_reply") == 0)
            deliver_input(k, m);
        else
            KL_INFO("stdin", "unexpected %s on stdin; ignored", kl_msg_type(m));
        kl_msg_free(m);
    }
}

/* The iopub_welcome (protocol 5.5) for a subscription message in (ZeroMQ's 0x01 + topic),
 * appended to reply, or nothing for anything else. Sent on the subscriber's own topic, so it
 * reaches that subscriber. */
static void welcome_frames(void *arg, const kl_frames *in, kl_frames *reply) {
    kl_kernel *k = arg;
    size_t len = in->n ? kl_frames_size(in, 0) : 0;
    const char *data = in->n ? kl_frames_data(in, 0) : NULL;
    if (len < 1 || data[0] != 1) return;
    /* A frame is not NUL-terminated: copy exactly its bytes (strndup may look one past them,
     * which AddressSanitizer reports). */
    char *topic = malloc(len);
    json_t *content = topic ? json_object() : NULL;
    if (content) {
        memcpy(topic, data + 1, len - 1);
        topic[len - 1] = 0;
        KL_DEBUG("iopub", "new subscriber to \"%s\"", topic);
        /* A topic that is not UTF-8 cannot be a JSON string: the welcome then names none. */
        json_t *name = json_string(topic);
        if (name) json_object_set_new(content, "subscription", name);
        kl_msg_out o = {
            .msg_type = "iopub_welcome", .session = k->session, .topic = topic, .content = content};
        if (kl_msg_encode_child(NULL, &o, &k->signer, reply) != 0) kl_frames_clear(reply);
    }
    json_decref(content);
    free(topic);
}

/* Coroutine: greets IOPub subscribers that arrive while nothing is being published; a publish
 * greets those it finds first (welcome_frames, via kl_zsock_answer_input), so that no subscriber
 * sees a message before its welcome. XPUB_VERBOSE passes repeated subscriptions up, one per
 * client. */
static void iopub_main(void *arg) {
    kl_kernel *k = arg;
    kl_zsock_answer_input(k->iopub, welcome_frames, k);
    publish_topic(k, NULL, "status", json_pack("{s:s}", "execution_state", "starting"), NULL, NULL);
    for (;;) {
        kl_frames f, reply;
        kl_frames_init(&f);
        kl_frames_init(&reply);
        if (kl_zsock_recv(k->iopub, &f) != 0) {
            kl_frames_clear(&f);
            return;
        }
        welcome_frames(k, &f, &reply);
        kl_frames_clear(&f);
        int rc = reply.n ? kl_zsock_send(k->iopub, &reply) : 0;
        if (rc != 0 && rc != -ECANCELED)
            KL_WARN("kernel", "sending iopub_welcome failed: %s", zmq_strerror(-rc));
        kl_frames_clear(&reply);
    }
}

/* ZeroMQ asks this handler (RFC 27, ZAP) about each connection to a socket with a ZAP domain,
 * and each CurveZMQ one, and waits for the answer before the connection carries anything. Every
 * connection is let in, as without a handler; the point is the IOPub ones: their subscriptions
 * follow at once, so until they have been read each publish first greets whoever subscribed. */
#define ZAP_ENDPOINT     "inproc://zeromq.zap.01"
#define IOPUB_ZAP_DOMAIN "kindling-iopub"
/* A subscription normally follows its connection within milliseconds; a client that connects
 * and never subscribes must not keep the publishes checking for ever. */
#define IOPUB_SUBSCRIPTION_WAIT_MS 2000

/* A ZAP reply (RFC 27): version, request id, status code and text, no user id, no metadata. */
static void zap_reply(kl_frames *rep, const void *request_id, size_t id_len, const char *status,
                      const char *text) {
    kl_frames_add(rep, "1.0", 3);
    kl_frames_add(rep, request_id, id_len);
    kl_frames_add(rep, status, strlen(status));
    kl_frames_add(rep, text, strlen(text));
    kl_frames_add(rep, "", 0);
    kl_frames_add(rep, "", 0);
}

static void zap_main(void *arg) {
    kl_kernel *k = arg;
    for (;;) {
        kl_frames req, rep;
        kl_frames_init(&req);
        kl_frames_init(&rep);
        if (kl_zsock_recv(k->zap, &req) != 0) {
            kl_frames_clear(&req);
            return;
        }
        /* version, request id, domain, address, routing id, mechanism, credentials... A REP
         * socket must answer before it reads again, so a malformed request gets a refusal. */
        if (req.n < 6) {
            zap_reply(&rep, "", 0, "400", "malformed ZAP request");
        } else {
            const char *domain = kl_frames_data(&req, 2);
            size_t dlen = kl_frames_size(&req, 2);
            if (k->iopub && dlen == strlen(IOPUB_ZAP_DOMAIN) &&
                memcmp(domain, IOPUB_ZAP_DOMAIN, dlen) == 0) {
                KL_DEBUG("iopub", "new connection; publishes look for its subscription first");
                kl_zsock_expect_input(k->iopub, 1, IOPUB_SUBSCRIPTION_WAIT_MS);
            }
            zap_reply(&rep, kl_frames_data(&req, 1), kl_frames_size(&req, 1), "200", "OK");
        }
        kl_frames_clear(&req);
        int rc = kl_zsock_send(k->zap, &rep);
        kl_frames_clear(&rep);
        if (rc == -ECANCELED) return;
    }
}

/* Before any channel is bound: a connection that arrives first would otherwise skip it. */
static int open_zap(kl_kernel *k, char *err, size_t errlen) {
    k->zap = kl_zsock_new(k->loop, k->zctx, ZMQ_REP);
    int rc = k->zap ? kl_zsock_bind(k->zap, ZAP_ENDPOINT) : -errno;
    if (rc != 0) {
        snprintf(err, errlen, "the connection handler (%s): %s", ZAP_ENDPOINT, zmq_strerror(-rc));
        return -1;
    }
    int linger = 0;
    zmq_setsockopt(kl_zsock_raw(k->zap), ZMQ_LINGER, &linger, sizeof linger);
    return 0;
}

/* ---- start-up and shutdown -------------------------------------------------------------- */

static void close_sockets(kl_kernel *k) {
    kl_zsock **socks[] = {&k->shell, &k->control, &k->stdin_sock, &k->iopub, &k->zap};
    for (size_t i = 0; i < sizeof socks / sizeof *socks; i++) {
        if (!*socks[i]) continue;
        kl_zsock *s = *socks[i];
        *socks[i] = NULL;
        kl_zsock_close(s);
    }
}

static void signal_close_cb(uv_handle_t *h) {
    (void)h;
}

static void closer(void *arg) {
    kl_kernel *k = arg;
    kl_service_drain(k);
    if (uv_is_active((uv_handle_t *)&k->cull_timer)) uv_timer_stop(&k->cull_timer);
    if (k->opts.cull_idle > 0) uv_close((uv_handle_t *)&k->cull_timer, signal_close_cb);
    kl_kernel_interrupt_all(k);
    for (int waited = 0; waited < SHUTDOWN_GRACE_MS && kl_tenant_any_busy(k); waited += 10)
        kl_loop_sleep(k->loop, 10);
    kl_sql_shutdown(k->sql);
    kl_tenant_close_all(k);
    close_sockets(k);
    if (k->heartbeat) kl_heartbeat_stop(k->heartbeat);
    k->heartbeat = NULL;
    uv_close((uv_handle_t *)&k->sigint, signal_close_cb);
    uv_close((uv_handle_t *)&k->sigterm, signal_close_cb);
    /* Let the readers and tenants see their sockets and inboxes closed and return. */
    for (int i = 0; i < 500 && kl_loop_coro_count(k->loop) > 1; i++) kl_loop_sleep(k->loop, 2);
    kl_loop_stop(k->loop);
}

void kl_kernel_begin_shutdown(kl_kernel *k, bool restart) {
    if (k->shutting_down) return;
    KL_INFO("kernel", "shutting down%s", restart ? " for a restart" : "");
    k->shutting_down = true;
    k->restart_requested = restart;
    kl_loop_spawn(k->loop, closer, k, 0);
}

static void on_cull_timer(uv_timer_t *h) {
    kl_kernel *k = h->data;
    if (!k->shutting_down) kl_tenant_cull(k, (uint64_t)k->opts.cull_idle * 1000);
}

static void on_signal(uv_signal_t *h, int signum) {
    kl_kernel *k = h->data;
    if (signum == SIGINT) {
        kl_kernel_interrupt_all(k);
        kl_sqlcomm_interrupt_all(k);
    } else
        kl_kernel_begin_shutdown(k, false);
}

static int set_int(void *sock, int opt, int value) {
    return zmq_setsockopt(sock, opt, &value, sizeof value);
}

/* With curve_secretkey in the connection file (JEP 145) every socket is a CurveZMQ server: a
 * client must know the kernel's public key, and all traffic is encrypted. */
static int curve_server(void *sock, const char *secret) {
    if (!secret) return 0;
    if (set_int(sock, ZMQ_CURVE_SERVER, 1) != 0) return -1;
    return zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, strlen(secret));
}

/* The heartbeat thread configures its own socket; one kernel per process, so a static works. */
static const char *hb_curve_secret;
static void configure_heartbeat(void *sock) {
    if (curve_server(sock, hb_curve_secret) != 0)
        KL_ERROR("heartbeat", "CurveZMQ: %s", zmq_strerror(errno));
}

static int open_socket(kl_kernel *k, kl_zsock **out, int type, kl_channel ch, char *err,
                       size_t errlen) {
    char endpoint[512];
    kl_connection_endpoint(&k->info, ch, endpoint, sizeof endpoint);
    kl_zsock *zs = kl_zsock_new(k->loop, k->zctx, type);
    if (!zs) {
        snprintf(err, errlen, "%s socket: %s", kl_channel_name(ch), zmq_strerror(errno));
        return -1;
    }
    void *raw = kl_zsock_raw(zs);
    set_int(raw, ZMQ_LINGER, CLOSE_LINGER_MS);
    if (curve_server(raw, k->info.curve_secretkey) != 0) {
        snprintf(err, errlen, "%s socket: CurveZMQ: %s", kl_channel_name(ch), zmq_strerror(errno));
        kl_zsock_close(zs);
        return -1;
    }
    if (type == ZMQ_ROUTER) {
        set_int(raw, ZMQ_ROUTER_MANDATORY, 1);
        set_int(raw, ZMQ_SNDHWM, ROUTER_HWM);
        set_int(raw, ZMQ_RCVHWM, ROUTER_HWM);
    } else if (type == ZMQ_XPUB) {
        set_int(raw, ZMQ_SNDHWM, IOPUB_HWM);
        set_int(raw, ZMQ_XPUB_NODROP, 1);
        set_int(raw, ZMQ_XPUB_VERBOSE, 1);
        zmq_setsockopt(raw, ZMQ_ZAP_DOMAIN, IOPUB_ZAP_DOMAIN, strlen(IOPUB_ZAP_DOMAIN));
    }
    int rc = kl_zsock_bind(zs, endpoint);
    if (rc != 0) {
        snprintf(err, errlen, "cannot bind the %s channel to %s: %s", kl_channel_name(ch), endpoint,
                 zmq_strerror(-rc));
        kl_zsock_close(zs);
        return -1;
    }
    if (strcmp(k->info.transport, "tcp") == 0 && k->info.ports[ch] == 0) {
        char bound[512];
        if (kl_zsock_last_endpoint(zs, bound, sizeof bound) == 0) {
            const char *colon = strrchr(bound, ':');
            if (colon) k->info.ports[ch] = atoi(colon + 1);
        }
    }
    *out = zs;
    return 0;
}

static char *default_history_path(void) {
    const char *env = getenv("KINDLING_HISTORY_FILE");
    if (env && *env) return strdup(env);
    char *path = NULL;
    const char *data = getenv("JUPYTER_DATA_DIR");
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int rc;
    if (data && *data)
        rc = asprintf(&path, "%s/kindling/history.sqlite", data);
    else if (xdg && *xdg)
        rc = asprintf(&path, "%s/jupyter/kindling/history.sqlite", xdg);
    else
        rc = asprintf(&path, "%s/.local/share/jupyter/kindling/history.sqlite", home ? home : ".");
    return rc < 0 ? NULL : path;
}

static int start(kl_kernel *k, char *err, size_t errlen) {
    const kl_kernel_options *o = &k->opts;
    if (kl_connection_load(o->connection_file, &k->info, err, errlen) != 0) return -1;
    if (kl_signer_init(&k->signer, k->info.signature_scheme, k->info.key, strlen(k->info.key), err,
                       errlen) != 0)
        return -1;
    if (kl_uuid_v4(k->kernel_id) != 0 || kl_uuid_v4(k->session) != 0) {
        snprintf(err, errlen, "the random number generator failed");
        return -1;
    }
    k->zctx = zmq_ctx_new();
    k->loop = kl_loop_new();
    k->pool = k->loop ? kl_pool_new(k->loop, o->pool_threads) : NULL;
    k->magics = kl_magic_registry_new();
    k->comms = kl_comm_manager_new();
    k->tenants = kl_strmap_new();
    if (!k->zctx || !k->loop || !k->pool || !k->magics || !k->comms || !k->tenants) {
        snprintf(err, errlen, "out of memory while starting");
        return -1;
    }
    kl_builtin_magics_register(k->magics);
    kl_config_magics_register(k->magics);
    kl_session_magics_register(k->magics);
    kl_catalog_magics_register(k->magics);
    kl_artifact_magics_register(k->magics);
    kl_shell_magics_register(k->magics);
    if (kl_plugin_load_startup(k, err, errlen) != 0) return -1;
    kl_comm_register_builtin(k->comms);
    if (k->info.curve_secretkey) {
        if (!zmq_has("curve")) {
            snprintf(err, errlen,
                     "the connection file asks for CurveZMQ, but this libzmq was built without "
                     "it");
            return -1;
        }
        if (strlen(k->info.curve_secretkey) != 40) {
            snprintf(err, errlen, "curve_secretkey must be a Z85 key of 40 characters");
            return -1;
        }
    }
    if (k->opts.max_connections <= 0) k->opts.max_connections = KL_DEFAULT_MAX_CONNECTIONS;
    if (k->opts.max_spark_ops <= 0) k->opts.max_spark_ops = KL_DEFAULT_MAX_SPARK_OPS;
    if (k->opts.max_result_bytes <= 0) k->opts.max_result_bytes = KL_DEFAULT_MAX_RESULT_BYTES;
    kl_sem_init(&k->spark_ops, k->loop, k->opts.max_spark_ops);
    if (o->shared_session && kl_uuid_v4(k->shared_spark_session) != 0) {
        snprintf(err, errlen, "the random number generator failed");
        return -1;
    }
    static const kl_grpc_observer grpc_metrics = {kl_metrics_spark_rpc, kl_metrics_spark_bytes};
    kl_grpc_set_observer(&grpc_metrics);
    k->sql = kl_sql_new(k, o->spark_remote, o->display_limit);
    k->info_content = info_content_new();
    free(info_text);
    info_text = k->info_content ? kl_jsontext_dump(k->info_content, &info_text_len) : NULL;
    if (!k->info_content || !info_text) {
        snprintf(err, errlen, "out of memory while starting");
        return -1;
    }

    if (open_zap(k, err, errlen) ||
        open_socket(k, &k->shell, ZMQ_ROUTER, KL_CH_SHELL, err, errlen) ||
        open_socket(k, &k->control, ZMQ_ROUTER, KL_CH_CONTROL, err, errlen) ||
        open_socket(k, &k->stdin_sock, ZMQ_ROUTER, KL_CH_STDIN, err, errlen) ||
        open_socket(k, &k->iopub, ZMQ_XPUB, KL_CH_IOPUB, err, errlen))
        return -1;
    char endpoint[512], bound[512];
    kl_connection_endpoint(&k->info, KL_CH_HB, endpoint, sizeof endpoint);
    hb_curve_secret = k->info.curve_secretkey;
    k->heartbeat = kl_heartbeat_start(k->zctx, endpoint, configure_heartbeat, bound, sizeof bound,
                                      err, errlen);
    if (!k->heartbeat) return -1;

    if (!o->history_file || *o->history_file) {
        k->history_path = o->history_file ? strdup(o->history_file) : default_history_path();
        k->history_pool = k->history_path ? kl_pool_new(k->loop, 1) : NULL;
        /* Opening touches the disk: it is the history thread's first job, so every later job
         * finds it done. */
        if (k->history_pool) kl_pool_submit(k->history_pool, history_open, NULL, k);
    }

    uv_signal_init(kl_loop_uv(k->loop), &k->sigint);
    uv_signal_init(kl_loop_uv(k->loop), &k->sigterm);
    k->sigint.data = k->sigterm.data = k;
    uv_signal_start(&k->sigint, on_signal, SIGINT);
    uv_signal_start(&k->sigterm, on_signal, SIGTERM);

    if (o->cull_idle > 0) {
        uv_timer_init(kl_loop_uv(k->loop), &k->cull_timer);
        k->cull_timer.data = k;
        /* A quarter of the timeout keeps a connection's real idle time within 125% of it. */
        uint64_t every = (uint64_t)o->cull_idle * 250;
        if (every > 30000) every = 30000;
        if (every < 100) every = 100;
        uv_timer_start(&k->cull_timer, on_cull_timer, every, every);
    }

    kl_loop_spawn(k->loop, zap_main, k, 0);
    kl_loop_spawn(k->loop, iopub_main, k, 0);
    kl_loop_spawn(k->loop, shell_reader, k, 0);
    kl_loop_spawn(k->loop, control_reader, k, 0);
    kl_loop_spawn(k->loop, stdin_reader, k, 0);
    if (kl_service_kernel_started(k, bound, err, errlen) != 0) return -1;
    KL_INFO("kernel", "kernel %s listening (shell %s://%s:%d)", k->kernel_id, k->info.transport,
            k->info.ip, k->info.ports[KL_CH_SHELL]);
    return 0;
}

static void teardown(kl_kernel *k) {
    if (k->shell || k->iopub) close_sockets(k);
    if (k->heartbeat) kl_heartbeat_stop(k->heartbeat);
    kl_sql_free(k->sql);
    json_decref(k->info_content);
    if (k->history_pool) kl_pool_free(k->history_pool);
    if (k->pool) kl_pool_free(k->pool);
    kl_history_close(k->history);
    kl_comm_manager_free(k, k->comms);
    kl_magic_registry_free(k->magics);
    kl_strmap_free(k->tenants);
    if (k->loop) kl_loop_free(k->loop);
    /* Blocks until queued replies have left or CLOSE_LINGER_MS passed. */
    if (k->zctx) zmq_ctx_term(k->zctx);
    free(info_text);
    info_text = NULL;
    kl_signer_free(&k->signer);
    kl_connection_free(&k->info);
    free(k->history_path);
}

int kl_kernel_main(const kl_kernel_options *opts) {
    kl_kernel k = {.opts = *opts};
    kl_connection_defaults(&k.info);
    char err[1024] = "";
    if (start(&k, err, sizeof err) != 0) {
        fprintf(stderr, "kindling: %s\n", err);
        KL_ERROR("kernel", "start-up failed: %s", err);
        teardown(&k);
        return 2;
    }
    kl_loop_run(k.loop);
    teardown(&k);
    KL_INFO("kernel", "stopped");
    return k.exit_code;
}
