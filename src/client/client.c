/* A client's life: options, connecting the five sockets, the loop integration, readiness, closing.
 *
 * ZMQ_FD is edge-triggered and only says "ZMQ_EVENTS may have changed"; any zmq call on a socket
 * may consume that signal. So after every poll wake-up and after every send, kl_client_pump reads
 * ZMQ_EVENTS of every socket and receives or sends until a whole round finds nothing to do: the
 * last call on each socket is then the ZMQ_EVENTS read that re-arms its edge.
 */
#include "client/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/connection.h"
#include "runtime/log.h"

#define DEFAULT_HB_INTERVAL_MS     1000
#define DEFAULT_HB_TIMEOUT_MS      3000
#define DEFAULT_CONNECT_TIMEOUT_MS 30000
#define TICK_MS                    100
/* A 5.5 kernel greets a new subscriber at once; older kernels are probed with kernel_info
 * requests (whose busy/idle reach IOPub) after this long, and again every PROBE_EVERY_MS. */
#define PROBE_AFTER_MS 300
#define PROBE_EVERY_MS 500
/* Messages handled per pump before the loop gets a turn (the pump then continues at once). */
#define PUMP_BUDGET 256
/* Queued requests (a shutdown_request just sent) get this long to leave when the client closes. */
#define SOCK_LINGER_MS 1000

static _Thread_local char tls_err[512];

int kl_client_fail(kindling_client *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (c)
        vsnprintf(c->err, sizeof c->err, fmt, ap);
    else
        vsnprintf(tls_err, sizeof tls_err, fmt, ap);
    va_end(ap);
    return code;
}

int kl_client_fail_global(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err, sizeof tls_err, fmt, ap);
    va_end(ap);
    return code;
}

const char *kindling_strerror(int code) {
    switch (code) {
    case KINDLING_OK:
        return "success";
    case KINDLING_EINVAL:
        return "invalid argument";
    case KINDLING_ENOMEM:
        return "out of memory";
    case KINDLING_ECONFIG:
        return "unusable connection settings";
    case KINDLING_EZMQ:
        return "ZeroMQ error";
    case KINDLING_ETIMEDOUT:
        return "timed out";
    case KINDLING_ECLOSED:
        return "client closed";
    case KINDLING_ESTATE:
        return "not allowed in this state";
    case KINDLING_EREPLY:
        return "the kernel answered with an error";
    case KINDLING_EBREAK:
        return "interrupted by kindling_client_break";
    case KINDLING_ENOCURVE:
        return "CurveZMQ is not available";
    }
    return "unknown error";
}

const char *kindling_client_last_error(const kindling_client *c) {
    return c ? c->err : tls_err;
}

const char *kindling_client_session(const kindling_client *c) {
    return c ? c->session : NULL;
}

uv_loop_t *kindling_client_loop(kindling_client *c) {
    return c ? c->loop : NULL;
}

bool kindling_client_ready(const kindling_client *c) {
    return c && c->ready;
}

bool kindling_client_alive(const kindling_client *c) {
    if (!c || !c->connected || c->closing) return false;
    return !c->hb || kl_client_hb_state(c->hb) != 0;
}

bool kindling_curve_available(void) {
    return zmq_has("curve") != 0;
}

static char *dup_opt(const char *s) {
    return s ? strdup(s) : NULL;
}

kindling_client *kindling_client_new(uv_loop_t *loop, const kindling_client_options *opts) {
    kindling_client *c = calloc(1, sizeof *c);
    if (!c) {
        kl_client_fail_global(KINDLING_ENOMEM, "out of memory");
        return NULL;
    }
    if (opts) c->opts = *opts;
    const char *user = c->opts.username;
    if (!user || !*user) user = getenv("USER");
    if (!user || !*user) user = "kindling";
    c->username = strdup(user);
    c->opt_curve_public = dup_opt(c->opts.curve_publickey);
    c->opt_curve_secret = dup_opt(c->opts.curve_secretkey);
    /* The caller's strings are not ours to keep. */
    c->opts.username = c->opts.session_id = NULL;
    c->opts.curve_publickey = c->opts.curve_secretkey = NULL;
    if (opts && opts->session_id && *opts->session_id)
        snprintf(c->session, sizeof c->session, "%s", opts->session_id);
    else
        kl_uuid_v4(c->session);
    if (c->opts.heartbeat_interval_ms == 0) c->opts.heartbeat_interval_ms = DEFAULT_HB_INTERVAL_MS;
    if (c->opts.heartbeat_timeout_ms <= 0) c->opts.heartbeat_timeout_ms = DEFAULT_HB_TIMEOUT_MS;
    if (c->opts.connect_timeout_ms <= 0) c->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    c->requests = kl_strmap_new();
    c->comms = kl_strmap_new();
    c->inputs = kl_strmap_new();
    c->hb_reported = -1;
    bool oom = !c->username || !c->requests || !c->comms || !c->inputs ||
               (c->opts.curve_publickey && !c->opt_curve_public);
    if (!loop) {
        if (uv_loop_init(&c->own_loop) != 0) oom = true;
        c->private_loop = true;
        loop = &c->own_loop;
    }
    c->loop = loop;
    if (oom) {
        if (c->private_loop) uv_loop_close(&c->own_loop);
        c->private_loop = false;
        kl_strmap_free(c->requests);
        kl_strmap_free(c->comms);
        kl_strmap_free(c->inputs);
        free(c->username);
        free(c->opt_curve_public);
        free(c->opt_curve_secret);
        free(c);
        kl_client_fail_global(KINDLING_ENOMEM, "out of memory");
        return NULL;
    }
    return c;
}

/* ---- the loop side ---------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
    kindling_client *c = h->data;
    for (int ch = 0; ch < KL_CLIENT_NSOCK; ch++) {
        kl_client_sock *s = &c->sock[ch];
        /* Only now: libuv no longer watches the fd, which belongs to the ZeroMQ socket. */
        if (h == (uv_handle_t *)&s->poll && s->z) {
            zmq_close(s->z);
            s->z = NULL;
        }
    }
    c->open_handles--;
    if (!c->private_loop) kl_client_maybe_free(c);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    (void)status, (void)events;
    kl_client_pump(h->data);
}

static void on_again(uv_timer_t *h) {
    kl_client_pump(h->data);
}

/* Ready once IOPub is subscribed (or nothing would be seen of the first request) and stdin is
 * connected (or the kernel could not route an input_request to it). */
static void set_ready(kindling_client *c) {
    if (c->ready || !c->iopub_live || !c->stdin_up) return;
    c->ready = true;
    /* Requests made before go now, in their order. */
    kl_client_out *o = c->held_head;
    c->held_head = c->held_tail = NULL;
    while (o) {
        kl_client_out *next = o->next;
        kl_client_sock *s = &c->sock[o->channel];
        o->next = NULL;
        if (s->tail)
            s->tail->next = o;
        else
            s->head = o;
        s->tail = o;
        o = next;
    }
    c->repump = true;
    if (c->opts.on_ready) c->opts.on_ready(c, 0, c->opts.user);
}

static void send_probe(kindling_client *c) {
    kl_client_req *req = calloc(1, sizeof *req);
    if (!req) return;
    req->internal = true;
    req->channel = KINDLING_SHELL;
    /* Straight onto the socket: the probe is what makes the client ready. */
    if (kl_client_send(c, KINDLING_SHELL, "kernel_info_request", NULL, NULL, NULL, NULL, 0,
                       req->id) != 0 ||
        kl_strmap_put(c->requests, req->id, req) != 0) {
        free(req);
        return;
    }
    c->last_probe = uv_now(c->loop);
}

static void on_tick(uv_timer_t *h) {
    kindling_client *c = h->data;
    if (c->closing) return;
    c->depth++;
    uint64_t now = uv_now(c->loop);
    if (!c->ready) {
        uint64_t waited = now - c->connected_at;
        if (waited >= (uint64_t)c->opts.connect_timeout_ms && !c->ready_reported) {
            c->ready_reported = true;
            if (c->opts.on_ready) c->opts.on_ready(c, KINDLING_ETIMEDOUT, c->opts.user);
        }
        if (!c->closing && waited >= PROBE_AFTER_MS && now - c->last_probe >= PROBE_EVERY_MS)
            send_probe(c);
    }
    if (!c->closing) kl_client_requests_tick(c, now);
    c->depth--;
    /* Also a safety net: should an edge ever be missed, the next tick finds the message. */
    kl_client_pump(c);
}

static void on_hb_async(uv_async_t *h) {
    kindling_client *c = h->data;
    if (c->closing || !c->hb) return;
    int state = kl_client_hb_state(c->hb);
    if (state < 0 || state == c->hb_reported) return;
    c->hb_reported = state;
    if (c->opts.on_heartbeat) {
        c->depth++;
        c->opts.on_heartbeat(c, state == 1, c->opts.user);
        c->depth--;
        kl_client_maybe_free(c);
    }
}

/* Heartbeat thread: only hands the news to the loop thread. */
static void hb_notify(void *arg) {
    kindling_client *c = arg;
    uv_async_send(&c->hb_async);
}

static void out_free(kl_client_out *o) {
    kl_frames_clear(&o->frames);
    free(o);
}

static void out_free_list(kl_client_out *o) {
    while (o) {
        kl_client_out *next = o->next;
        out_free(o);
        o = next;
    }
}

/* ---- sending and receiving -------------------------------------------------------------- */

int kl_client_send(kindling_client *c, kindling_channel ch, const char *msg_type, json_t *content,
                   json_t *parent_header, const char *subshell_id, const kindling_buffer *buffers,
                   size_t nbuffers, char id[KL_UUID_STRLEN]) {
    if (c->closing) {
        json_decref(content);
        return kl_client_fail(c, KINDLING_ECLOSED, "the client is closed");
    }
    if (!c->connected) {
        json_decref(content);
        return kl_client_fail(c, KINDLING_ESTATE, "the client is not connected");
    }
    kl_msg m;
    kl_msg_init(&m);
    m.header = kl_msg_header_new(msg_type, c->session, c->username);
    if (m.header && subshell_id)
        json_object_set_new(m.header, "subshell_id", json_string(subshell_id));
    m.parent_header = parent_header ? json_incref(parent_header) : json_object();
    m.metadata = json_object();
    m.content = content ? content : json_object();
    int rc = KINDLING_ENOMEM;
    kl_client_out *o = calloc(1, sizeof *o);
    if (!o || !m.header || !m.parent_header || !m.metadata || !m.content) goto out;
    for (size_t i = 0; i < nbuffers; i++)
        if (kl_frames_add(&m.buffers, buffers[i].data, buffers[i].len) != 0) goto out;
    kl_frames_init(&o->frames);
    o->channel = ch;
    if (kl_msg_encode(&m, &c->signer, &o->frames) != 0) goto out;
    if (id) snprintf(id, KL_UUID_STRLEN, "%s", kl_msg_id(&m));
    kl_client_sock *s = &c->sock[ch];
    kl_client_out **head = &s->head, **tail = &s->tail;
    /* Until ready, requests wait (an interrupt must not overtake the cell it is meant for). The
     * readiness probe goes at once, and so do answers on stdin. */
    if (!c->ready && ch != KINDLING_STDIN && strcmp(msg_type, "kernel_info_request") != 0)
        head = &c->held_head, tail = &c->held_tail;
    if (*tail)
        (*tail)->next = o;
    else
        *head = o;
    *tail = o;
    o = NULL;
    rc = 0;
out:
    if (o) out_free(o);
    kl_msg_clear(&m);
    return rc == 0 ? 0 : kl_client_fail(c, rc, "out of memory");
}

static int sock_events(kl_client_sock *s) {
    int ev = 0;
    size_t len = sizeof ev;
    if (!s->z || zmq_getsockopt(s->z, ZMQ_EVENTS, &ev, &len) != 0) return 0;
    return ev;
}

/* Sends what it can of the first queued message; true when that changed anything. */
static bool send_head(kindling_client *c, kl_client_sock *s) {
    kl_client_out *o = s->head;
    size_t before = o->sent;
    while (o->sent < o->frames.n) {
        int flags = ZMQ_DONTWAIT | (o->sent + 1 < o->frames.n ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&o->frames.v[o->sent], s->z, flags) >= 0) {
            o->sent++;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return o->sent != before;
        /* Anything else will not get better by retrying: the message is dropped. */
        kl_client_fail(c, KINDLING_EZMQ, "sending a message failed: %s", zmq_strerror(errno));
        break;
    }
    s->head = o->next;
    if (!s->head) s->tail = NULL;
    out_free(o);
    return true;
}

/* Receives the parts of one message without waiting: 0, -EAGAIN or -errno. */
static int recv_one(kl_client_sock *s, kl_frames *out) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = 0;
    bool first = true;
    for (;;) {
        if (zmq_msg_recv(&m, s->z, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            if (e == EINTR) continue;
            rc = first ? -e : -EPROTO;
            break;
        }
        first = false;
        bool more = zmq_msg_more(&m);
        if (rc == 0 && kl_frames_add_msg(out, &m) < 0) rc = -ENOMEM;
        if (!more) break;
    }
    zmq_msg_close(&m);
    return rc;
}

static void route_iopub(kindling_client *c, kindling_msg *km) {
    c->iopub_live = true;
    set_ready(c);
    if (!c->closing && c->opts.on_iopub) c->opts.on_iopub(c, km, c->opts.user);
    if (c->closing) {
        kl_client_msg_release(km);
        return;
    }
    if (strncmp(kindling_msg_type(km), "comm_", 5) == 0 && kl_client_comm_route(c, km)) {
        kl_client_msg_release(km);
        return;
    }
    kl_client_route_output(c, km);
}

/* A monitor event: a 6-byte frame (event number, value) and the endpoint. */
static void monitor_event(kindling_client *c, kl_frames *frames) {
    if (frames->n < 1 || kl_frames_size(frames, 0) < 2) return;
    uint16_t event;
    memcpy(&event, kl_frames_data(frames, 0), sizeof event);
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        c->stdin_up = true;
        set_ready(c);
    }
}

static void dispatch(kindling_client *c, int ch, kl_frames *frames) {
    if (ch == KL_CLIENT_MONITOR) {
        monitor_event(c, frames);
        return;
    }
    kindling_msg *km = kl_client_msg_new();
    if (!km) return;
    char err[256];
    int rc = kl_msg_decode(frames, &c->signer, &km->m, err, sizeof err);
    if (rc != KL_MSG_OK) {
        KL_DEBUG("client", "dropped a message on %s: %s", kl_channel_name((kl_channel)ch), err);
        kl_client_msg_release(km);
        return;
    }
    switch (ch) {
    case KINDLING_IOPUB:
        route_iopub(c, km);
        break;
    case KINDLING_STDIN:
        kl_client_route_stdin(c, km);
        break;
    default:
        kl_client_route_reply(c, (kindling_channel)ch, km);
        break;
    }
}

/* One socket's share of a pump round: how many messages moved. */
static int pump_sock(kindling_client *c, int ch, int *budget) {
    kl_client_sock *s = &c->sock[ch];
    int n = 0;
    while (s->z && !c->closing && *budget > 0) {
        int ev = sock_events(s);
        bool moved = false;
        if ((ev & ZMQ_POLLOUT) && s->head) moved = send_head(c, s);
        if ((ev & ZMQ_POLLIN) && !c->closing) {
            kl_frames f;
            kl_frames_init(&f);
            if (recv_one(s, &f) == 0) {
                dispatch(c, ch, &f);
                moved = true;
            }
            kl_frames_clear(&f);
        }
        if (!moved) break;
        n++;
        (*budget)--;
    }
    return n;
}

void kl_client_pump(kindling_client *c) {
    if (c->pumping) {
        /* A callback (or a send from one) while pumping: the running pump goes round again. */
        c->repump = true;
        return;
    }
    if (!c->connected || c->closing) return;
    c->pumping = true;
    c->depth++;
    int budget = PUMP_BUDGET;
    for (;;) {
        c->repump = false;
        int n = 0;
        for (int ch = 0; ch < KL_CLIENT_NSOCK && !c->closing; ch++) n += pump_sock(c, ch, &budget);
        if (c->closing || budget <= 0 || (n == 0 && !c->repump)) break;
    }
    if (budget <= 0 && !c->closing) uv_timer_start(&c->again, on_again, 0, 0);
    c->pumping = false;
    c->depth--;
    kl_client_maybe_free(c);
}

/* ---- connecting ------------------------------------------------------------------------- */

static int set_int(void *z, int opt, int v) {
    return zmq_setsockopt(z, opt, &v, sizeof v);
}

/* Watches the socket's fd on the loop; the socket must exist. */
static int poll_sock(kindling_client *c, int ch) {
    kl_client_sock *s = &c->sock[ch];
    int fd = -1;
    size_t len = sizeof fd;
    if (zmq_getsockopt(s->z, ZMQ_FD, &fd, &len) != 0)
        return kl_client_fail(c, KINDLING_EZMQ, "ZMQ_FD: %s", zmq_strerror(errno));
    int uvrc = uv_poll_init_socket(c->loop, &s->poll, fd);
    if (uvrc != 0) return kl_client_fail(c, KINDLING_EZMQ, "uv_poll_init: %s", uv_strerror(uvrc));
    s->poll.data = c;
    s->poll_open = true;
    c->open_handles++;
    uvrc = uv_poll_start(&s->poll, UV_READABLE, on_poll);
    if (uvrc != 0) return kl_client_fail(c, KINDLING_EZMQ, "uv_poll_start: %s", uv_strerror(uvrc));
    return 0;
}

/* The stdin socket reports its handshake on an inproc PAIR, read like the other sockets. */
static int monitor_stdin(kindling_client *c) {
    char addr[96];
    snprintf(addr, sizeof addr, "inproc://kindling-client-%p-stdin", (void *)c);
    if (zmq_socket_monitor(c->sock[KINDLING_STDIN].z, addr, ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0)
        return -1;
    kl_client_sock *m = &c->sock[KL_CLIENT_MONITOR];
    m->z = zmq_socket(c->zctx, ZMQ_PAIR);
    if (!m->z || set_int(m->z, ZMQ_LINGER, 0) != 0 || zmq_connect(m->z, addr) != 0) return -1;
    return poll_sock(c, KL_CLIENT_MONITOR);
}

static int open_sock(kindling_client *c, kindling_channel ch, const char *endpoint) {
    kl_client_sock *s = &c->sock[ch];
    int type = ch == KINDLING_IOPUB ? ZMQ_SUB : ZMQ_DEALER;
    s->z = zmq_socket(c->zctx, type);
    if (!s->z)
        return kl_client_fail(c, KINDLING_EZMQ, "cannot make the %s socket: %s",
                              kl_channel_name((kl_channel)ch), zmq_strerror(errno));
    int rc = set_int(s->z, ZMQ_LINGER, SOCK_LINGER_MS);
    if (rc == 0 && ch == KINDLING_STDIN && monitor_stdin(c) != 0) {
        /* Without a monitor the client cannot know; it assumes stdin is up. */
        c->stdin_up = true;
        if (c->sock[KL_CLIENT_MONITOR].z && !c->sock[KL_CLIENT_MONITOR].poll_open) {
            zmq_close(c->sock[KL_CLIENT_MONITOR].z);
            c->sock[KL_CLIENT_MONITOR].z = NULL;
        }
    }
    /* The kernel sends an input_request to the identity of the shell request that asked, so shell
     * and stdin share one identity: the session id, as jupyter_client does. */
    if (rc == 0 && type == ZMQ_DEALER)
        rc = zmq_setsockopt(s->z, ZMQ_ROUTING_ID, c->session, strlen(c->session));
    if (rc == 0 && type == ZMQ_SUB) rc = zmq_setsockopt(s->z, ZMQ_SUBSCRIBE, "", 0);
    if (rc == 0) rc = kl_client_curve_apply(&c->curve, s->z) == 0 ? 0 : -1;
    if (rc == 0) rc = zmq_connect(s->z, endpoint);
    if (rc != 0)
        return kl_client_fail(c, KINDLING_EZMQ, "cannot connect the %s socket to %s: %s",
                              kl_channel_name((kl_channel)ch), endpoint, zmq_strerror(errno));
    return poll_sock(c, ch);
}

static void init_handles(kindling_client *c) {
    uv_timer_t *timers[] = {&c->tick, &c->again, &c->deadline};
    for (size_t i = 0; i < 3; i++) {
        uv_timer_init(c->loop, timers[i]);
        timers[i]->data = c;
    }
    uv_async_init(c->loop, &c->hb_async, on_hb_async);
    c->hb_async.data = c;
    c->open_handles += 4;
    c->handles_made = true;
}

/* eps by kl_channel: shell, iopub, stdin, control, hb. */
static int connect_endpoints(kindling_client *c, const char *const eps[5], const char *key,
                             const char *scheme, const char *serverkey, const char *file_pub,
                             const char *file_sec) {
    if (c->closing) return kl_client_fail(c, KINDLING_ECLOSED, "the client is closed");
    if (c->connected || c->handles_made)
        return kl_client_fail(c, KINDLING_ESTATE, "the client is already connected");
    for (int i = 0; i < 5; i++)
        if (!eps[i] || !*eps[i])
            return kl_client_fail(c, KINDLING_EINVAL, "the %s endpoint is missing",
                                  kl_channel_name((kl_channel)i));
    char err[256];
    if (!key) key = "";
    if (kl_signer_init(&c->signer, scheme ? scheme : "hmac-sha256", key, strlen(key), err,
                       sizeof err) != 0)
        return kl_client_fail(c, KINDLING_ECONFIG, "%s", err);
    c->signer_set = true;
    int crc = kl_client_curve_setup(&c->curve, serverkey, c->opt_curve_public, c->opt_curve_secret,
                                    file_pub, file_sec, err, sizeof err);
    if (crc != 0)
        return kl_client_fail(c, crc == -2 ? KINDLING_ENOCURVE : KINDLING_ECONFIG, "%s", err);
    if (c->opts.zmq_context) {
        c->zctx = c->opts.zmq_context;
    } else {
        c->zctx = zmq_ctx_new();
        if (!c->zctx)
            return kl_client_fail(c, KINDLING_EZMQ, "zmq_ctx_new: %s", zmq_strerror(errno));
        c->own_zctx = true;
    }
    init_handles(c);
    /* From here on a failure leaves sockets behind: the client can only be closed. */
    c->connected = true;
    static const kindling_channel order[4] = {KINDLING_IOPUB, KINDLING_SHELL, KINDLING_STDIN,
                                              KINDLING_CONTROL};
    for (int i = 0; i < 4; i++) {
        int rc = open_sock(c, order[i], eps[order[i]]);
        if (rc != 0) {
            c->connected = false;
            return rc;
        }
    }
    if (c->opts.heartbeat_interval_ms > 0) {
        c->hb = kl_client_hb_start(c->zctx, eps[KL_CH_HB], &c->curve, c->opts.heartbeat_interval_ms,
                                   c->opts.heartbeat_timeout_ms, hb_notify, c, err, sizeof err);
        if (!c->hb) {
            c->connected = false;
            return kl_client_fail(c, KINDLING_EZMQ, "%s", err);
        }
    }
    c->connected_at = uv_now(c->loop);
    c->last_probe = c->connected_at;
    uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
    kl_client_pump(c);
    return 0;
}

int kindling_client_connect_file(kindling_client *c, const char *path) {
    if (!c || !path) return kl_client_fail(c, KINDLING_EINVAL, "no client or no path");
    kl_connection_info info;
    kl_connection_defaults(&info);
    char err[512];
    if (kl_connection_load(path, &info, err, sizeof err) != 0) {
        kl_connection_free(&info);
        return kl_client_fail(c, KINDLING_ECONFIG, "%s", err);
    }
    char eps[5][600];
    const char *ptrs[5];
    int rc = 0;
    for (int ch = 0; ch < 5; ch++) {
        if (info.ports[ch] == 0 && strcmp(info.transport, "tcp") == 0) {
            rc = kl_client_fail(c, KINDLING_ECONFIG, "%s: %s_port is missing or 0", path,
                                kl_channel_name((kl_channel)ch));
            break;
        }
        kl_connection_endpoint(&info, (kl_channel)ch, eps[ch], sizeof eps[ch]);
        ptrs[ch] = eps[ch];
    }
    if (rc == 0)
        rc = connect_endpoints(c, ptrs, info.key, info.signature_scheme, info.curve_publickey,
                               info.curve_publickey, info.curve_secretkey);
    kl_connection_free(&info);
    return rc;
}

int kindling_client_connect(kindling_client *c, const kindling_endpoints *ep) {
    if (!c || !ep) return kl_client_fail(c, KINDLING_EINVAL, "no client or no endpoints");
    const char *eps[5] = {ep->shell, ep->iopub, ep->stdin_, ep->control, ep->hb};
    return connect_endpoints(c, eps, ep->key, ep->signature_scheme, ep->curve_serverkey, NULL,
                             NULL);
}

/* ---- closing ---------------------------------------------------------------------------- */

static void free_input(const char *key, void *value, void *arg) {
    (void)key, (void)arg;
    json_decref(value);
}

static void final_free(kindling_client *c) {
    for (int ch = 0; ch < KL_CLIENT_NSOCK; ch++) {
        kl_client_sock *s = &c->sock[ch];
        if (s->z) zmq_close(s->z);
        out_free_list(s->head);
    }
    out_free_list(c->held_head);
    if (c->own_zctx) zmq_ctx_term(c->zctx);
    if (c->private_loop) uv_loop_close(&c->own_loop);
    if (c->signer_set) kl_signer_free(&c->signer);
    kl_client_curve_clear(&c->curve);
    kl_strmap_foreach(c->inputs, free_input, NULL);
    kl_strmap_free(c->inputs);
    kl_strmap_free(c->requests);
    kl_strmap_free(c->comms);
    free(c->username);
    if (c->opt_curve_secret) memset(c->opt_curve_secret, 0, strlen(c->opt_curve_secret));
    free(c->opt_curve_secret);
    free(c->opt_curve_public);
    free(c);
}

void kl_client_maybe_free(kindling_client *c) {
    if (!c->closing || c->depth > 0) return;
    if (c->private_loop) {
        /* Nobody else runs this loop: let it deliver the close callbacks now. */
        c->depth++;
        while (c->open_handles > 0) uv_run(c->loop, UV_RUN_ONCE);
        c->depth--;
    } else if (c->open_handles > 0) {
        return; /* the last close callback comes back here */
    }
    final_free(c);
}

void kindling_client_close(kindling_client *c) {
    if (!c || c->closing) return;
    c->closing = true;
    c->depth++;
    /* The thread first: it may still poke hb_async. */
    kl_client_hb_stop(c->hb);
    c->hb = NULL;
    kl_client_fail_all(c);
    kl_client_comm_drop_all(c);
    /* The monitor first, so it never reports into a closed PAIR. */
    if (c->sock[KINDLING_STDIN].z && c->sock[KL_CLIENT_MONITOR].z)
        zmq_socket_monitor(c->sock[KINDLING_STDIN].z, NULL, 0);
    if (c->handles_made) {
        for (int ch = 0; ch < KL_CLIENT_NSOCK; ch++) {
            kl_client_sock *s = &c->sock[ch];
            if (s->poll_open) {
                uv_poll_stop(&s->poll);
                uv_close((uv_handle_t *)&s->poll, on_handle_closed);
            }
        }
        uv_handle_t *hs[] = {(uv_handle_t *)&c->tick, (uv_handle_t *)&c->again,
                             (uv_handle_t *)&c->deadline, (uv_handle_t *)&c->hb_async};
        for (size_t i = 0; i < 4; i++) uv_close(hs[i], on_handle_closed);
    }
    c->depth--;
    kl_client_maybe_free(c);
}
