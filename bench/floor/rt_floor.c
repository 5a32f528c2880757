/* kl_rt_floor: the round-trip floor of a kernel that speaks the Jupyter protocol through libzmq and
 * does nothing else, for bench/tenancy.py's "floor" rows.
 *
 * It binds the shell ROUTER and the IOPub XPUB sockets of a connection file as a kernel does and
 * answers every request on one thread, blocking in libzmq: it checks the request's signature,
 * then sends what Kindling sends for a magic-only execute (status busy, execute_input, a stream,
 * status idle on IOPub and the execute_reply on shell), each with a fresh signed header and the
 * request's header as parent, copied without parsing it. There are no tenants, no JSON trees, no
 * coroutines and no magics: the libzmq transport (its I/O thread, a TCP connection per client),
 * HMAC and the wire format are all that is left, so what a client measures against it is what
 * any libzmq-based kernel on the same machine would at best do. Executes only; other requests get
 * the same answer with their own reply type. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "jupyter/connection.h"
#include "jupyter/message.h"
#include "jupyter/wire.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

typedef struct floor_state {
    void *shell, *iopub;
    kl_signer signer;
    char session[40];
    uint64_t next_id;
    uint64_t count;
} floor_state;

static int send_part(void *sock, const void *data, size_t len, int more) {
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

/* Sends one message: the routing frames (identities or a topic), then the signed parts. */
static int send_msg(floor_state *st, void *sock, const kl_frames *req, size_t n_idents,
                    const char *topic, const char *msg_type, kl_slice parent, const char *content) {
    char header[320], date[32];
    kl_iso8601_now(date);
    int hn =
        snprintf(header, sizeof header,
                 "{\"msg_id\":\"%s-%016" PRIx64 "\",\"msg_type\":\"%s\",\"username\":\"floor\","
                 "\"session\":\"%s\",\"date\":\"%s\",\"version\":\"5.3\"}",
                 st->session, st->next_id++, msg_type, st->session, date);
    kl_slice parts[4] = {{header, (size_t)hn}, parent, {"{}", 2}, {content, strlen(content)}};
    char sig[KL_SIG_HEX_MAX];
    if (kl_signer_sign(&st->signer, parts, sig) < 0) return -1;
    if (topic) {
        if (send_part(sock, topic, strlen(topic), 1) < 0) return -1;
    } else {
        for (size_t i = 0; i < n_idents; i++)
            if (send_part(sock, kl_frames_data(req, i), kl_frames_size(req, i), 1) < 0) return -1;
    }
    if (send_part(sock, KL_WIRE_DELIM, strlen(KL_WIRE_DELIM), 1) < 0 ||
        send_part(sock, sig, strlen(sig), 1) < 0)
        return -1;
    for (int i = 0; i < 4; i++)
        if (send_part(sock, parts[i].data, parts[i].len, i < 3) < 0) return -1;
    return 0;
}

/* The string value after key (its opening quote included) in the header text, or empty. */
static kl_slice header_string(kl_slice header, const char *key) {
    const char *p = memmem(header.data, header.len, key, strlen(key));
    if (!p) return (kl_slice){NULL, 0};
    p += strlen(key);
    const char *end = memchr(p, '"', (size_t)((const char *)header.data + header.len - p));
    return end ? (kl_slice){p, (size_t)(end - p)} : (kl_slice){NULL, 0};
}

/* The reply type for a request type: "execute_request" -> "execute_reply". */
static void reply_type(kl_slice header, char *out, size_t outlen) {
    kl_slice t = header_string(header, "\"msg_type\":\"");
    const char *suffix = t.len > 8 ? (const char *)t.data + t.len - 8 : NULL;
    if (!suffix || memcmp(suffix, "_request", 8) != 0) {
        snprintf(out, outlen, "execute_reply");
        return;
    }
    snprintf(out, outlen, "%.*s_reply", (int)(t.len - 8), (const char *)t.data);
}

static int answer(floor_state *st, const kl_frames *req) {
    kl_wire_parts w;
    int d = kl_wire_split(req, &st->signer, &w);
    if (d != KL_WIRE_OK) {
        fprintf(stderr, "kl_rt_floor: dropped a request: %s\n", kl_wire_strerror(d));
        return 0;
    }
    char type[64], topic[160], content[160];
    reply_type(w.json[0], type, sizeof type);
    /* Kindling's topics, so a client subscribed to its own session's traffic gets it. */
    kl_slice session = header_string(w.json[0], "\"session\":\"");
    if (!session.len || session.len > 100) session = (kl_slice){st->session, strlen(st->session)};
    snprintf(topic, sizeof topic, "session.%.*s.status", (int)session.len,
             (const char *)session.data);
    st->count++;
    snprintf(content, sizeof content, "{\"code\":\"%%echo hi\",\"execution_count\":%" PRIu64 "}",
             st->count);
    if (send_msg(st, st->iopub, req, 0, topic, "status", w.json[0],
                 "{\"execution_state\":\"busy\"}") ||
        send_msg(st, st->iopub, req, 0, topic, "execute_input", w.json[0], content) ||
        send_msg(st, st->iopub, req, 0, topic, "stream", w.json[0],
                 "{\"name\":\"stdout\",\"text\":\"hi\\n\"}") ||
        send_msg(st, st->iopub, req, 0, topic, "status", w.json[0],
                 "{\"execution_state\":\"idle\"}"))
        return -1;
    snprintf(content, sizeof content,
             "{\"status\":\"ok\",\"execution_count\":%" PRIu64
             ",\"user_expressions\":{},\"payload\":[]}",
             st->count);
    return send_msg(st, st->shell, req, w.n_idents, NULL, type, w.json[0], content);
}

static void *bind_socket(void *ctx, int type, const kl_connection_info *info, kl_channel ch) {
    char endpoint[512];
    void *s = zmq_socket(ctx, type);
    int zero = 0, one = 1;
    if (!s || kl_connection_endpoint(info, ch, endpoint, sizeof endpoint) < 0) return NULL;
    /* As the kernel sets them: no high-water marks, nothing dropped, no linger. */
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (type == ZMQ_ROUTER) zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (type == ZMQ_XPUB) zmq_setsockopt(s, ZMQ_XPUB_NODROP, &one, sizeof one);
    if (zmq_bind(s, endpoint) != 0) {
        fprintf(stderr, "kl_rt_floor: bind %s: %s\n", endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

int main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: kl_rt_floor CONNECTION_FILE\n"
              "Answers execute requests on the file's shell and IOPub sockets as a kernel that\n"
              "does nothing but the protocol would, until SIGINT or SIGTERM.\n",
              argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    kl_connection_info info;
    char err[256];
    floor_state st = {0};
    if (kl_connection_load(argv[1], &info, err, sizeof err) < 0 ||
        kl_signer_init(&st.signer, info.signature_scheme, info.key, strlen(info.key), err,
                       sizeof err) < 0) {
        fprintf(stderr, "kl_rt_floor: %s\n", err);
        return 1;
    }
    snprintf(st.session, sizeof st.session, "floor%d", (int)getpid());
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    void *ctx = zmq_ctx_new();
    st.shell = bind_socket(ctx, ZMQ_ROUTER, &info, KL_CH_SHELL);
    st.iopub = bind_socket(ctx, ZMQ_XPUB, &info, KL_CH_IOPUB);
    int rc = st.shell && st.iopub ? 0 : 1;
    zmq_pollitem_t items[2] = {{st.shell, 0, ZMQ_POLLIN, 0}, {st.iopub, 0, ZMQ_POLLIN, 0}};
    while (rc == 0 && !stopping) {
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR) continue;
            rc = 1;
            break;
        }
        /* Subscriptions are read only so that they do not pile up. */
        while (zmq_recv(st.iopub, err, sizeof err, ZMQ_DONTWAIT) >= 0) {
        }
        for (;;) {
            kl_frames f;
            kl_frames_init(&f);
            int got = 0;
            for (;;) {
                zmq_msg_t part;
                zmq_msg_init(&part);
                if (zmq_msg_recv(&part, st.shell, got ? 0 : ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&part);
                    break;
                }
                got = 1;
                int more = zmq_msg_more(&part);
                kl_frames_add_msg(&f, &part);
                zmq_msg_close(&part);
                if (!more) break;
            }
            if (got && answer(&st, &f) < 0) rc = 1;
            kl_frames_clear(&f);
            if (!got || rc) break;
        }
    }
    if (st.shell) zmq_close(st.shell);
    if (st.iopub) zmq_close(st.iopub);
    zmq_ctx_term(ctx);
    kl_signer_free(&st.signer);
    kl_connection_free(&info);
    printf("kl_rt_floor: answered %" PRIu64 " requests\n", st.count);
    return rc;
}
