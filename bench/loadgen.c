/* kl_loadgen: a protocol-level load generator for any Jupyter kernel.
 *
 * N simulated clients, each a DEALER with its own routing id and session, keep exactly one shell
 * request in flight (send, wait for the reply, send again). One thread drives every socket through
 * epoll, so the generator needs no coroutines and measures only the kernel and the wire. Messages
 * are built, signed and checked with the project's own jupyter/ modules.
 *
 * Two transports carry the same per-client logic (lg_conn): ZMTP spoken directly on non-blocking
 * TCP sockets (zmtp.c), the default, and libzmq, kept for ipc and CurveZMQ connection files. With
 * libzmq every message crossed to its I/O thread and back through mailboxes and eventfds: at 1,000
 * clients the generator spent about as much CPU per round trip as the kernel it measured, on the
 * same two cores, and so limited what could be measured.
 *
 * On libzmq a socket is looked at only when its ZMQ_FD fires, and is always left after a receive
 * that failed with EAGAIN, which is what re-arms ZMQ_FD (zmq_poll read ZMQ_EVENTS of every socket
 * on every call, two system calls each).
 *
 * The clock starts when every client has had its first reply: connecting N sockets is not what
 * the figures describe. Latencies are those of requests sent inside the measured window, so none
 * of the warm-up's queueing leaks into the percentiles.
 *
 * IOPub is read by default, and a request counts as done only when its idle status has arrived
 * as well as its reply: real frontends wait for both, a kernel whose IOPub has no reader either
 * drops its messages for free (PUB) or stalls on a full pipe (XPUB with NODROP), and a kernel
 * whose IOPub falls behind its replies would otherwise look faster the further behind it fell
 * (its backlog growing without bound in a closed loop). One SUB subscribed to everything serves
 * every kernel; with --iopub own each client has its own, subscribed to its session's topics, as
 * a tenant-aware client of Kindling does.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "jupyter/connection.h"
#include "jupyter/message.h"
#include "jupyter/wire.h"
#include "runtime/uuid.h"
#include "runtime/zsock.h"
#include "zmtp.h"

#define LG_USERNAME "kl_loadgen"

typedef enum { LG_KERNEL_INFO, LG_EXECUTE } lg_mode;
typedef enum { LG_AUTO, LG_ZMTP, LG_LIBZMQ } lg_transport;

/* How the generator listens on IOPub. */
typedef enum {
    LG_IOPUB_SHARED, /* one SUB for every client, subscribed to everything */
    LG_IOPUB_OWN,    /* a SUB per client, subscribed to its session's topics ("session.<id>.") */
    LG_IOPUB_NONE,   /* not at all: a request is done at its reply */
} lg_iopub;
static const char *const LG_IOPUB_NAMES[] = {"shared", "own", "none"}; /* by lg_iopub */

typedef struct lg_options {
    const char *connection_file;
    lg_mode mode;
    int clients;
    double duration_s;
    double warmup_s;
    double stall_s; /* give up when no reply at all arrives for this long */
    const char *code;
    bool json;
    lg_iopub iopub;
    double rate; /* requests per second per client (open loop); 0: back to back */
    lg_transport transport;
} lg_options;

/* Growable sample buffer; latencies in seconds. */
typedef struct lg_samples {
    double *v;
    size_t n, cap;
} lg_samples;

typedef struct lg_stats {
    unsigned long long round_trips; /* replies received inside the measured window */
    unsigned long long all_replies; /* including warm-up and the drain after the window */
    unsigned long long errors;      /* replies whose content.status was not "ok" */
    unsigned long long unexpected;  /* undecodable or unrelated messages on shell */
    unsigned long long iopub_msgs;  /* whole messages drained from IOPub (whole run) */
    unsigned long long idle_last;   /* measured requests whose idle status came after the reply */
    int in_flight;                  /* clients with a request in flight */
    int answered;                   /* clients that have had a reply */
    double connect_s;               /* from the first send until every client had a reply */
    lg_samples latency;             /* of requests sent inside the measured window */
    lg_samples iopub_lag;           /* of those: how long the idle status trailed the reply (0:
                                       it came first) */
} lg_stats;

static double lg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int lg_samples_push(lg_samples *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 65536;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v) return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

static int lg_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples (p in whole percent); 0 when there are none. The
 * integer arithmetic keeps the generator free of libm, which kl_jupyter does not link. */
static double lg_percentile(const lg_samples *sorted, unsigned p) {
    if (sorted->n == 0) return 0;
    size_t rank = (sorted->n * p + 99) / 100;
    if (rank < 1) rank = 1;
    return sorted->v[rank - 1];
}

static void lg_usage(FILE *out) {
    fputs(
        "usage: kl_loadgen --connection-file FILE [--mode kernel_info|execute] [--clients N]\n"
        "                  [--duration S] [--warmup S] [--rate R] [--code TEXT]\n"
        "                  [--iopub shared|own|none] [--transport zmtp|libzmq] [--json]\n"
        "\n"
        "Keeps one shell request in flight per simulated client and reports round trips per\n"
        "second and the p50/p99 latency of the requests completed during --duration seconds\n"
        "(after --warmup seconds that are not counted). A request is complete when its reply\n"
        "and its status idle on IOPub have both arrived, as for any Jupyter client: output\n"
        "that lags behind the reply is latency too. The clock starts once every client has\n"
        "had a reply. Back to back by default (a closed loop: the kernel's capacity, and a\n"
        "latency that is N / throughput); with --rate each client sends R requests per second\n"
        "on a fixed schedule (an open loop: the latency at that load), still one at a time, and\n"
        "a request is timed from its slot even when the previous reply made it late.\n"
        "\n"
        "  -f, --connection-file FILE  the kernel's connection file\n"
        "  -m, --mode MODE             kernel_info (default) or execute\n"
        "  -c, --clients N             concurrent clients, each its own socket and session "
        "(1)\n"
        "  -d, --duration S            measured seconds (5)\n"
        "  -w, --warmup S              unmeasured seconds first (1)\n"
        "  -e, --code TEXT             code for execute mode (\"%echo hi\")\n"
        "      --rate R                requests per second per client (default: back to back)\n"
        "      --iopub MODE            shared (default): one SUB for all clients, subscribed\n"
        "                              to everything, as a client of a kernel without\n"
        "                              per-session topics; own: a SUB per client subscribed to\n"
        "                              its session's topics (\"session.<session>.\", Kindling's);\n"
        "                              none: IOPub not read, a request is complete at its reply\n"
        "      --no-iopub              the same as --iopub none\n"
        "      --stall-timeout S       fail when no reply arrives for S seconds (10)\n"
        "      --transport T           zmtp: ZMTP 3.0 on TCP from this thread (default for tcp\n"
        "                              connection files without curve keys); libzmq: ZeroMQ\n"
        "                              sockets (the default otherwise; ipc and CurveZMQ)\n"
        "  -j, --json                  print one JSON object instead of text\n",
        out);
}

static int lg_parse_double(const char *name, const char *s, double min, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min)) {
        fprintf(stderr, "kl_loadgen: %s takes a number >= %g, not \"%s\"\n", name, min, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* 0 to run, 1 to exit successfully (help), -1 on a usage error. */
static int lg_parse_args(int argc, char **argv, lg_options *o) {
    enum { OPT_NO_IOPUB = 256, OPT_IOPUB, OPT_STALL, OPT_RATE, OPT_TRANSPORT };
    static const struct option longopts[] = {
        {"connection-file", required_argument, NULL, 'f'},
        {"mode", required_argument, NULL, 'm'},
        {"clients", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"code", required_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {"no-iopub", no_argument, NULL, OPT_NO_IOPUB},
        {"iopub", required_argument, NULL, OPT_IOPUB},
        {"stall-timeout", required_argument, NULL, OPT_STALL},
        {"rate", required_argument, NULL, OPT_RATE},
        {"transport", required_argument, NULL, OPT_TRANSPORT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (lg_options){.mode = LG_KERNEL_INFO,
                      .clients = 1,
                      .duration_s = 5,
                      .warmup_s = 1,
                      .stall_s = 10,
                      .code = "%echo hi",
                      .iopub = LG_IOPUB_SHARED};
    int c;
    double n;
    while ((c = getopt_long(argc, argv, "f:m:c:d:w:e:jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o->connection_file = optarg;
            break;
        case 'm':
            if (strcmp(optarg, "kernel_info") == 0) {
                o->mode = LG_KERNEL_INFO;
            } else if (strcmp(optarg, "execute") == 0) {
                o->mode = LG_EXECUTE;
            } else {
                fprintf(stderr, "kl_loadgen: --mode takes kernel_info or execute\n");
                return -1;
            }
            break;
        case 'c':
            if (lg_parse_double("--clients", optarg, 1, &n) < 0) return -1;
            if (n > 10000 || n != (double)(int)n) {
                fprintf(stderr, "kl_loadgen: --clients takes a whole number 1-10000\n");
                return -1;
            }
            o->clients = (int)n;
            break;
        case 'd':
            if (lg_parse_double("--duration", optarg, 0.001, &o->duration_s) < 0) return -1;
            break;
        case 'w':
            if (lg_parse_double("--warmup", optarg, 0, &o->warmup_s) < 0) return -1;
            break;
        case 'e':
            o->code = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case OPT_RATE:
            if (lg_parse_double("--rate", optarg, 0.001, &o->rate) < 0) return -1;
            break;
        case OPT_TRANSPORT:
            if (strcmp(optarg, "zmtp") == 0) {
                o->transport = LG_ZMTP;
            } else if (strcmp(optarg, "libzmq") == 0) {
                o->transport = LG_LIBZMQ;
            } else {
                fprintf(stderr, "kl_loadgen: --transport takes zmtp or libzmq\n");
                return -1;
            }
            break;
        case OPT_NO_IOPUB:
            o->iopub = LG_IOPUB_NONE;
            break;
        case OPT_IOPUB:
            for (o->iopub = LG_IOPUB_SHARED; o->iopub <= LG_IOPUB_NONE; o->iopub++)
                if (strcmp(optarg, LG_IOPUB_NAMES[o->iopub]) == 0) break;
            if (o->iopub > LG_IOPUB_NONE) {
                fprintf(stderr, "kl_loadgen: --iopub takes shared, own or none\n");
                return -1;
            }
            break;
        case OPT_STALL:
            if (lg_parse_double("--stall-timeout", optarg, 0.001, &o->stall_s) < 0) return -1;
            break;
        case 'h':
            lg_usage(stdout);
            return 1;
        default:
            lg_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kl_loadgen: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (!o->connection_file) {
        fprintf(stderr, "kl_loadgen: --connection-file is required\n");
        lg_usage(stderr);
        return -1;
    }
    return 0;
}

static json_t *lg_request_content(const lg_options *o) {
    if (o->mode == LG_KERNEL_INFO) return json_object();
    return json_pack("{s:s, s:b, s:b, s:{}, s:b, s:b}", "code", o->code, "silent", 0,
                     "store_history", 1, "user_expressions", "allow_stdin", 0, "stop_on_error", 1);
}

/* The parts of a request that never change, serialised once: only the header (a new msg_id and
 * date) is written per request. Building each request through jansson cost the generator more CPU
 * than the kernel spent answering it, on the same two cores. */
typedef struct lg_request_template {
    const char *type;
    char *content; /* owned */
    size_t content_len;
} lg_request_template;

static int lg_template_init(lg_request_template *t, const lg_options *o) {
    t->type = o->mode == LG_KERNEL_INFO ? "kernel_info_request" : "execute_request";
    json_t *c = lg_request_content(o);
    t->content = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(c);
    if (!t->content) return -ENOMEM;
    t->content_len = strlen(t->content);
    return 0;
}

/* --- transports ---------------------------------------------------------------------------------
 * One socket of the generator on either transport. Everything above this section sends and
 * receives whole multipart messages as slices and never knows which transport carries them. */

typedef struct lg_net {
    bool zmtp;
    void *zctx; /* libzmq */
    int ep;
    const kl_connection_info *info;
    /* CurveZMQ (libzmq only): one client key pair for every socket, Z85 */
    char curve_public[41], curve_secret[41];
} lg_net;

typedef struct lg_conn {
    const kl_connection_info *info;
    kl_channel ch;
    int index;      /* client number, for messages */
    uint32_t tag;   /* epoll data */
    void *zsock;    /* libzmq */
    kl_zmtp zmtp;   /* zmtp, when zmtp.fd >= 0 */
    bool watch_out; /* zmtp: EPOLLOUT is registered */
    bool failed;    /* its error has been printed */
} lg_conn;

/* Called with each whole message received; a negative return is fatal. */
typedef int (*lg_msg_fn)(void *arg, const kl_slice *parts, size_t n);

/* Prints why c failed, once: a send that fails inside a receive callback is not told twice. */
static int lg_conn_fail(lg_conn *c, const char *what) {
    if (c->failed) return -1;
    c->failed = true;
    char endpoint[300] = "";
    kl_connection_endpoint(c->info, c->ch, endpoint, sizeof endpoint);
    fprintf(stderr, "kl_loadgen: %s socket %d (%s): %s\n", kl_channel_name(c->ch), c->index,
            endpoint, what);
    return -1;
}

/* zmtp: EPOLLOUT registered exactly while output waits for the socket. */
static int lg_conn_watch(lg_net *net, lg_conn *c) {
    bool want = kl_zmtp_wants_write(&c->zmtp);
    if (want == c->watch_out) return 0;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.u32 = c->tag};
    if (epoll_ctl(net->ep, EPOLL_CTL_MOD, c->zmtp.fd, &ev) < 0) return lg_conn_fail(c, "epoll");
    c->watch_out = want;
    return 0;
}

/* id: the routing id of a DEALER, the subscription (topic prefix) of a SUB. */
static int lg_conn_open_libzmq(lg_net *net, lg_conn *c, const void *id, size_t id_len, int *fd) {
    const kl_connection_info *info = net->info;
    char endpoint[300];
    if (kl_connection_endpoint(info, c->ch, endpoint, sizeof endpoint) < 0)
        return lg_conn_fail(c, "cannot form the endpoint");
    void *s = c->zsock = zmq_socket(net->zctx, c->ch == KL_CH_SHELL ? ZMQ_DEALER : ZMQ_SUB);
    if (!s) return lg_conn_fail(c, zmq_strerror(errno));
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (info->curve_publickey &&
        (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, info->curve_publickey,
                        strlen(info->curve_publickey)) < 0 ||
         zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, net->curve_public, 40) < 0 ||
         zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, net->curve_secret, 40) < 0))
        return lg_conn_fail(c, "CurveZMQ keys refused (curve_publickey must be 40 Z85 chars)");
    /* Set before connect, so the kernel sees a stable, unique peer. */
    if (c->ch == KL_CH_IOPUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, id_len ? id : "", id_len);
    else if (id_len)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, id, id_len);
    if (zmq_connect(s, endpoint) < 0) return lg_conn_fail(c, zmq_strerror(errno));
    size_t fdlen = sizeof *fd;
    if (zmq_getsockopt(s, ZMQ_FD, fd, &fdlen) < 0) return lg_conn_fail(c, zmq_strerror(errno));
    return 0;
}

static int lg_conn_open_zmtp(lg_net *net, lg_conn *c, const void *id, size_t id_len, int *fd) {
    char err[300];
    *fd = kl_zmtp_connect_tcp(net->info->ip, net->info->ports[c->ch], err, sizeof err);
    if (*fd < 0) return lg_conn_fail(c, err);
    bool sub = c->ch == KL_CH_IOPUB;
    /* ZMTP 3.0 subscribes with a message: 0x01 and the topic prefix (empty: everything). */
    char subscription[128] = "\x01";
    if (sub && id_len >= sizeof subscription) return lg_conn_fail(c, "subscription too long");
    if (sub && id_len) memcpy(subscription + 1, id, id_len);
    kl_slice subscribe = {subscription, 1 + (sub ? id_len : 0)};
    if (kl_zmtp_init(&c->zmtp, *fd, sub ? KL_ZMTP_SUB : KL_ZMTP_DEALER, sub ? NULL : id,
                     sub ? 0 : id_len) < 0 ||
        (sub && kl_zmtp_send(&c->zmtp, &subscribe, 1) < 0) || kl_zmtp_flush(&c->zmtp) < 0)
        return lg_conn_fail(c, kl_zmtp_error(&c->zmtp));
    c->watch_out = kl_zmtp_wants_write(&c->zmtp);
    return 0;
}

/* Connects c (a DEALER on shell with routing id id, or a SUB on IOPub subscribed to the topics
 * that begin with id, NULL or "" for all) and watches it on net->ep with tag. Prints why on
 * failure. */
static int lg_conn_open(lg_net *net, lg_conn *c, kl_channel ch, int index, uint32_t tag,
                        const char *id) {
    *c = (lg_conn){.info = net->info, .ch = ch, .index = index, .tag = tag, .zmtp.fd = -1};
    size_t id_len = id ? strlen(id) : 0;
    int fd;
    if ((net->zmtp ? lg_conn_open_zmtp : lg_conn_open_libzmq)(net, c, id, id_len, &fd) < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN | (c->watch_out ? EPOLLOUT : 0), .data.u32 = tag};
    if (epoll_ctl(net->ep, EPOLL_CTL_ADD, fd, &ev) < 0) return lg_conn_fail(c, strerror(errno));
    return 0;
}

static void lg_conn_close(lg_conn *c) {
    if (c->zsock) zmq_close(c->zsock);
    if (c->zmtp.fd >= 0) {
        close(c->zmtp.fd);
        kl_zmtp_free(&c->zmtp);
    }
    c->zsock = NULL;
    c->zmtp.fd = -1;
}

/* Sends one multipart message (zmtp: queued until the handshake is over, then written). */
static int lg_conn_send(lg_net *net, lg_conn *c, const kl_slice *parts, size_t n) {
    if (c->zsock) {
        /* A DEALER with a live pipe queues up to its high-water mark; one request in flight never
         * gets near it, so a blocking send only waits while the connection is being made. */
        for (size_t i = 0; i < n; i++)
            if (zmq_send(c->zsock, parts[i].data, parts[i].len, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
                return lg_conn_fail(c, zmq_strerror(errno));
        return 0;
    }
    if (kl_zmtp_send(&c->zmtp, parts, n) < 0 || kl_zmtp_flush(&c->zmtp) < 0)
        return lg_conn_fail(c, kl_zmtp_error(&c->zmtp));
    return lg_conn_watch(net, c);
}

/* libzmq: reads one whole multipart message without blocking into f. 1 if one was read, 0 if none
 * was waiting, -1 on error. */
static int lg_recv_multipart(lg_conn *c, kl_frames *f) {
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, c->zsock, f->n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            int e = errno;
            zmq_msg_close(&part);
            if (e == EAGAIN && f->n == 0) return 0;
            if (e == EINTR) continue;
            return lg_conn_fail(c, zmq_strerror(e));
        }
        int more = zmq_msg_more(&part);
        if (kl_frames_add_msg(f, &part) < 0) {
            zmq_msg_close(&part);
            return lg_conn_fail(c, "out of memory");
        }
        zmq_msg_close(&part);
        if (!more) return 1;
    }
}

/* libzmq: hands every waiting message to fn; returns only after a receive failed with EAGAIN,
 * which re-arms the socket's ZMQ_FD. */
static int lg_conn_service_libzmq(lg_conn *c, lg_msg_fn fn, void *arg) {
    kl_slice small[16], *parts = small;
    for (;;) {
        kl_frames f;
        kl_frames_init(&f);
        int r = lg_recv_multipart(c, &f);
        if (r > 0 && f.n > sizeof small / sizeof *small && !(parts = malloc(f.n * sizeof *parts)))
            r = lg_conn_fail(c, "out of memory");
        for (size_t i = 0; r > 0 && i < f.n; i++)
            parts[i] = (kl_slice){kl_frames_data(&f, i), kl_frames_size(&f, i)};
        if (r > 0) r = fn(arg, parts, f.n) < 0 ? -1 : 1;
        if (parts != small) free(parts);
        parts = small;
        kl_frames_clear(&f);
        if (r <= 0) return r;
    }
}

static int lg_conn_service_zmtp(lg_net *net, lg_conn *c, uint32_t events, lg_msg_fn fn, void *arg) {
    kl_zmtp *z = &c->zmtp;
    if ((events & EPOLLOUT) && kl_zmtp_flush(z) < 0) return lg_conn_fail(c, kl_zmtp_error(z));
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        int r = kl_zmtp_read(z, fn, arg);
        if (r < 0) return z->err[0] ? lg_conn_fail(c, kl_zmtp_error(z)) : -1;
    }
    return lg_conn_watch(net, c);
}

/* Handles what epoll reported for c: every whole message waiting goes to fn. -1 when fatal. */
static int lg_conn_service(lg_net *net, lg_conn *c, uint32_t events, lg_msg_fn fn, void *arg) {
    return c->zsock ? lg_conn_service_libzmq(c, fn, arg)
                    : lg_conn_service_zmtp(net, c, events, fn, arg);
}

/* --- clients --------------------------------------------------------------------------------- */

typedef struct lg_run lg_run;

typedef struct lg_client {
    lg_run *run;
    lg_conn conn;
    lg_conn iopub; /* --iopub own */
    char session[KL_UUID_STRLEN];
    /* "<uuid>_<index>": a message on a shared IOPub socket names its client in its parent's
     * msg_id. "" when nothing is in flight. */
    char inflight_id[KL_UUID_STRLEN + 12];
    bool replied, idled; /* of the request in flight */
    bool reply_ok;
    /* Whether the request in flight waits for its idle status: only once its IOPub socket has
     * had a message, which proves the subscription in place before the request was sent (a
     * subscription takes effect some time after the connection, and the kernel publishes
     * nothing for a subscriber it does not know yet). */
    bool await_idle;
    bool iopub_live; /* --iopub own: its socket has had a message */
    double replied_at, idled_at;
    double sent_at;
    /* When the request in flight was due: its send time back to back; its slot in the schedule
     * with --rate, so a request sent late because the previous reply was late is timed from when
     * it should have gone (no coordinated omission). */
    double intended;
    double due; /* --rate: when the next request is due */
    int index;
    bool answered;          /* has had at least one reply */
    unsigned long measured; /* round trips inside the measured window */
} lg_client;

/* The measured window. Until every client has had a reply, from is +inf: nothing is counted. */
typedef struct lg_window {
    double from, until;
} lg_window;

/* --rate: clients waiting for their next slot, a binary min-heap on lg_client.due. */
typedef struct lg_schedule {
    lg_client *cl;
    int *v;
    int n;
    bool started;
} lg_schedule;

/* Everything one run shares: what the reply and IOPub callbacks need. */
struct lg_run {
    const lg_options *o;
    lg_net net;
    lg_request_template tmpl;
    const kl_signer *signer;
    const char *reply_type;
    lg_client *cl;
    lg_conn sub;   /* IOPub, --iopub shared */
    bool sub_live; /* sub has had a message */
    lg_window win;
    lg_schedule sched;
    lg_stats st;
    double last_reply_at;
};

static void lg_schedule_push(lg_schedule *h, int i) {
    int k = h->n++;
    while (k > 0) {
        int parent = (k - 1) / 2;
        if (h->cl[h->v[parent]].due <= h->cl[i].due) break;
        h->v[k] = h->v[parent];
        k = parent;
    }
    h->v[k] = i;
}

static int lg_schedule_pop(lg_schedule *h) {
    int top = h->v[0], last = h->v[--h->n], k = 0;
    for (;;) {
        int c = 2 * k + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->cl[h->v[c + 1]].due < h->cl[h->v[c]].due) c++;
        if (h->cl[last].due <= h->cl[h->v[c]].due) break;
        h->v[k] = h->v[c];
        k = c;
    }
    if (h->n > 0) h->v[k] = last;
    return top;
}

/* Builds, signs and sends one request on cl; remembers its msg_id and send time, and counts it in
 * flight. intended is when it was due (its send time back to back: pass 0). */
static int lg_send_request(lg_client *cl, double intended) {
    lg_run *run = cl->run;
    const lg_request_template *t = &run->tmpl;
    char header[512], date[32], sig[KL_SIG_HEX_MAX];
    char uuid[KL_UUID_STRLEN];
    if (kl_uuid_v4(uuid) < 0) return -1;
    snprintf(cl->inflight_id, sizeof cl->inflight_id, "%s_%d", uuid, cl->index);
    cl->replied = cl->idled = false;
    cl->await_idle = run->o->iopub == LG_IOPUB_SHARED ? run->sub_live
                     : run->o->iopub == LG_IOPUB_OWN  ? cl->iopub_live
                                                      : false;
    kl_iso8601_now(date);
    int hlen = snprintf(header, sizeof header,
                        "{\"msg_id\":\"%s\",\"msg_type\":\"%s\",\"username\":\"" LG_USERNAME
                        "\",\"session\":\"%s\",\"date\":\"%s\",\"version\":\"5.3\"}",
                        cl->inflight_id, t->type, cl->session, date);
    if (hlen < 0 || (size_t)hlen >= sizeof header) return -1;
    kl_slice parts[6] = {{KL_WIRE_DELIM, strlen(KL_WIRE_DELIM)},
                         {sig, 0},
                         {header, (size_t)hlen},
                         {"{}", 2},
                         {"{}", 2},
                         {t->content, t->content_len}};
    if (kl_signer_sign(run->signer, parts + 2, sig) < 0) return -1;
    parts[1].len = strlen(sig);
    cl->sent_at = lg_now();
    cl->intended = intended > 0 ? intended : cl->sent_at;
    if (lg_conn_send(&run->net, &cl->conn, parts, 6) < 0) return -1;
    run->st.in_flight++;
    return 0;
}

/* The value of the first "key": "..." member of the JSON text j, in *out: 1 found, 0 the member
 * is not a string, -1 no such member. Enough for the flat objects a kernel's headers and contents
 * are, whatever the kernel's spacing; a reply is read without building a JSON tree, like the
 * request is written without one. */
static int lg_json_string(kl_slice j, const char *key, kl_slice *out) {
    char quoted[64];
    int qn = snprintf(quoted, sizeof quoted, "\"%s\"", key);
    const char *p = j.data, *end = p + j.len;
    const char *hit = memmem(p, j.len, quoted, (size_t)qn);
    if (!hit) return -1;
    p = hit + qn;
    while (p < end && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (p >= end || *p != '"') return 0;
    p++;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q) return 0;
    *out = (kl_slice){p, (size_t)(q - p)};
    return 1;
}

/* Whether that member's value is want: 1 yes, 0 another value, -1 no such member. */
static int lg_json_field_is(kl_slice j, const char *key, const char *want) {
    kl_slice v;
    int r = lg_json_string(j, key, &v);
    if (r < 1) return r;
    return v.len == strlen(want) && memcmp(v.data, want, v.len) == 0;
}

/* Checks that the reply answers cl's request in flight (its signature already verified). 1 if it
 * does (and *ok says whether the status was "ok"), 0 if it is something else. */
static int lg_match_reply(const lg_client *cl, const kl_wire_parts *w, const char *reply_type,
                          bool *ok) {
    if (lg_json_field_is(w->json[0], "msg_type", reply_type) != 1) return 0;
    /* A fresh UUID appears in the parent header only as the msg_id it is. */
    if (!memmem(w->json[1].data, w->json[1].len, cl->inflight_id, strlen(cl->inflight_id)))
        return 0;
    int status = lg_json_field_is(w->json[3], "status", "ok");
    /* Older kernels leave status out of kernel_info_reply; execute_reply always carries one. */
    *ok = status == 1 || (status < 0 && strcmp(reply_type, "kernel_info_reply") == 0);
    return 1;
}

/* The request in flight on cl is complete (its reply and, unless IOPub is not read, its idle
 * status have arrived): counts it, and sends the next request while the window is open. -1 on a
 * fatal error. */
static int lg_complete(lg_client *cl, double now) {
    lg_run *run = cl->run;
    lg_stats *st = &run->st;
    const lg_options *o = run->o;
    cl->inflight_id[0] = '\0';
    st->in_flight--;
    if (!cl->answered) {
        cl->answered = true;
        st->answered++;
    }
    const lg_window *win = &run->win;
    if (now >= win->from && now < win->until) {
        st->round_trips++;
        cl->measured++;
        if (!cl->reply_ok) st->errors++;
        if (cl->intended >= win->from) {
            if (lg_samples_push(&st->latency, now - cl->intended) < 0) return -1;
            if (cl->await_idle) {
                double lag = cl->idled_at > cl->replied_at ? cl->idled_at - cl->replied_at : 0;
                if (lag > 0) st->idle_last++;
                if (lg_samples_push(&st->iopub_lag, lag) < 0) return -1;
            }
        }
    }
    if (now >= win->until) return 0;
    if (o->rate > 0) {
        /* Until every client is connected nothing is scheduled; then this one waits for its
         * slot, or goes at once when the slot has passed. */
        if (!run->sched.started) return 0;
        if (cl->due > now) {
            lg_schedule_push(&run->sched, cl->index);
            return 0;
        }
        double due = cl->due;
        cl->due += 1.0 / o->rate;
        return lg_send_request(cl, due);
    }
    return lg_send_request(cl, 0);
}

/* A message on cl's shell socket: the reply to its request in flight, which completes it when
 * the idle status is already in (or IOPub is not read). -1 on a fatal error. */
static int lg_on_reply(void *arg, const kl_slice *parts, size_t n) {
    lg_client *cl = arg;
    lg_run *run = cl->run;
    lg_stats *st = &run->st;
    double now = lg_now();
    kl_wire_parts w;
    int d = kl_wire_split_slices(parts, n, run->signer, &w);
    if (d != KL_WIRE_OK) {
        /* Checking a reply is part of what any client must do, so a failure is a finding. */
        fprintf(stderr, "kl_loadgen: bad reply: %s\n", kl_wire_strerror(d));
        st->unexpected++;
        return 0;
    }
    bool ok = false;
    if (!(cl->inflight_id[0] && !cl->replied && lg_match_reply(cl, &w, run->reply_type, &ok))) {
        st->unexpected++;
        return 0;
    }
    run->last_reply_at = now;
    st->all_replies++;
    cl->replied = true;
    cl->replied_at = now;
    cl->reply_ok = ok;
    return !cl->await_idle || cl->idled ? lg_complete(cl, now) : 0;
}

/* A message on IOPub: an idle status whose parent is a client's request in flight marks that
 * request idle, and completes it when its reply is already in. cl is the socket's client
 * (--iopub own) or NULL (shared: the client is the one the parent's msg_id names). Everything
 * else is only counted. */
static int lg_on_iopub_msg(lg_run *run, lg_client *cl, const kl_slice *parts, size_t n) {
    lg_stats *st = &run->st;
    st->iopub_msgs++;
    if (cl)
        cl->iopub_live = true;
    else
        run->sub_live = true;
    kl_wire_parts w;
    /* Only the idle statuses matter; their signatures are checked below. */
    if (kl_wire_split_slices(parts, n, NULL, &w) != KL_WIRE_OK ||
        lg_json_field_is(w.json[0], "msg_type", "status") != 1 ||
        lg_json_field_is(w.json[3], "execution_state", "idle") != 1)
        return 0;
    kl_slice id = {NULL, 0};
    if (lg_json_string(w.json[1], "msg_id", &id) < 1) return 0;
    if (!cl) {
        const char *us = memrchr(id.data, '_', id.len);
        if (!us) return 0;
        long index = 0;
        for (const char *p = us + 1; p < (const char *)id.data + id.len; p++) {
            if (*p < '0' || *p > '9' || index > run->o->clients) return 0;
            index = index * 10 + (*p - '0');
        }
        if (index >= run->o->clients) return 0;
        cl = &run->cl[index];
    }
    if (!cl->inflight_id[0] || !cl->await_idle || cl->idled || id.len != strlen(cl->inflight_id) ||
        memcmp(id.data, cl->inflight_id, id.len) != 0)
        return 0;
    if (!kl_signer_verify(run->signer, w.json, w.sig.data, w.sig.len)) {
        fprintf(stderr, "kl_loadgen: bad IOPub message: %s\n", kl_wire_strerror(KL_WIRE_EBADSIG));
        st->unexpected++;
        return 0;
    }
    double now = lg_now();
    run->last_reply_at = now;
    cl->idled = true;
    cl->idled_at = now;
    return cl->replied ? lg_complete(cl, now) : 0;
}

static int lg_on_shared_iopub(void *arg, const kl_slice *parts, size_t n) {
    return lg_on_iopub_msg(arg, NULL, parts, n);
}

static int lg_on_own_iopub(void *arg, const kl_slice *parts, size_t n) {
    lg_client *cl = arg;
    return lg_on_iopub_msg(cl->run, cl, parts, n);
}

/* CPU seconds this process has used so far, every thread (libzmq's I/O thread too). */
static double lg_cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0) return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int lg_cmp_ulong(const void *a, const void *b) {
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return (x > y) - (x < y);
}

/* Round trips per client in the window: fewest, median, most. A kernel that serves its
 * connections unevenly shows it here before it shows in the latency percentiles. */
static void lg_fairness(const lg_client *cl, int n, unsigned long out[3]) {
    unsigned long *v = malloc((size_t)n * sizeof *v);
    out[0] = out[1] = out[2] = 0;
    if (!v || n == 0) {
        free(v);
        return;
    }
    for (int i = 0; i < n; i++) v[i] = cl[i].measured;
    qsort(v, (size_t)n, sizeof *v, lg_cmp_ulong);
    out[0] = v[0];
    out[1] = v[n / 2];
    out[2] = v[n - 1];
    free(v);
}

static void lg_report(const lg_options *o, lg_stats *st, const lg_client *cl, double measured_s) {
    unsigned long fair[3];
    lg_fairness(cl, o->clients, fair);
    qsort(st->latency.v, st->latency.n, sizeof *st->latency.v, lg_cmp_double);
    double sum = 0;
    for (size_t i = 0; i < st->latency.n; i++) sum += st->latency.v[i];
    double rate = (double)st->round_trips / measured_s;
    double p50 = lg_percentile(&st->latency, 50) * 1e3;
    double p90 = lg_percentile(&st->latency, 90) * 1e3;
    double p99 = lg_percentile(&st->latency, 99) * 1e3;
    double mean = st->latency.n ? sum / (double)st->latency.n * 1e3 : 0;
    double max = st->latency.n ? st->latency.v[st->latency.n - 1] * 1e3 : 0;
    const char *mode = o->mode == LG_KERNEL_INFO ? "kernel_info" : "execute";
    bool iopub = o->iopub != LG_IOPUB_NONE;
    const char *iopub_mode = LG_IOPUB_NAMES[o->iopub];
    if (st->iopub_lag.n) /* qsort's base may not be NULL, even for no elements */
        qsort(st->iopub_lag.v, st->iopub_lag.n, sizeof *st->iopub_lag.v, lg_cmp_double);
    double lag50 = lg_percentile(&st->iopub_lag, 50) * 1e3;
    double lag99 = lg_percentile(&st->iopub_lag, 99) * 1e3;
    const char *transport = o->transport == LG_ZMTP ? "zmtp" : "libzmq";
    if (o->json) {
        json_t *j =
            json_pack("{s:s, s:i, s:f, s:I, s:f, s:{s:f, s:f, s:f, s:f, s:f}, s:I, s:I, s:b, s:I}",
                      "mode", mode, "clients", o->clients, "duration_s", measured_s, "round_trips",
                      (json_int_t)st->round_trips, "rate_per_s", rate, "latency_ms", "p50", p50,
                      "p90", p90, "p99", p99, "mean", mean, "max", max, "errors",
                      (json_int_t)st->errors, "unexpected", (json_int_t)st->unexpected, "iopub",
                      iopub, "iopub_messages", (json_int_t)st->iopub_msgs);
        if (j) {
            /* With these a caller can relate CPU it measured over the whole run to requests. */
            json_object_set_new(j, "transport", json_string(transport));
            json_object_set_new(j, "iopub_mode", json_string(iopub_mode));
            if (iopub) {
                /* How often, and by how much, output trailed the reply it belongs to. */
                json_object_set_new(j, "idle_after_reply", json_integer((json_int_t)st->idle_last));
                json_object_set_new(j, "iopub_lag_ms",
                                    json_pack("{s:f, s:f}", "p50", lag50, "p99", lag99));
            }
            json_object_set_new(j, "all_replies", json_integer((json_int_t)st->all_replies));
            json_object_set_new(j, "connect_s", json_real(st->connect_s));
            json_object_set_new(j, "offered_per_client_per_s", json_real(o->rate));
            json_object_set_new(j, "per_client_round_trips",
                                json_pack("{s:I, s:I, s:I}", "min", (json_int_t)fair[0], "median",
                                          (json_int_t)fair[1], "max", (json_int_t)fair[2]));
            json_object_set_new(j, "latency_samples", json_integer((json_int_t)st->latency.n));
            json_object_set_new(j, "generator_cpu_s", json_real(lg_cpu_seconds()));
            if (o->mode == LG_EXECUTE) json_object_set_new(j, "code", json_string(o->code));
        }
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        puts(text ? text : "{}");
        free(text);
        json_decref(j);
    } else {
        printf("%s clients=%d duration=%.2f s round_trips=%llu rate=%.1f rt/s p50=%.3f ms "
               "p99=%.3f ms mean=%.3f ms max=%.3f ms errors=%llu unexpected=%llu "
               "iopub_messages=%llu connect=%.3f s per-client min/median/max=%lu/%lu/%lu "
               "transport=%s iopub=%s",
               mode, o->clients, measured_s, st->round_trips, rate, p50, p99, mean, max, st->errors,
               st->unexpected, st->iopub_msgs, st->connect_s, fair[0], fair[1], fair[2], transport,
               iopub_mode);
        if (iopub)
            printf(" idle_after_reply=%llu iopub_lag_p50=%.3f ms iopub_lag_p99=%.3f ms",
                   st->idle_last, lag50, lag99);
        else
            printf(" (IOPub not read)");
        putchar('\n');
    }
}

/* Resolves --transport against the connection file: zmtp speaks TCP and the NULL mechanism only.
 * -1 with a message when the user asked for what cannot work. */
static int lg_pick_transport(lg_options *o, const kl_connection_info *info) {
    bool tcp = strcmp(info->transport, "tcp") == 0;
    bool curve = info->curve_publickey || info->curve_secretkey;
    if (o->transport == LG_AUTO) o->transport = tcp && !curve ? LG_ZMTP : LG_LIBZMQ;
    if (o->transport == LG_ZMTP && !tcp) {
        fprintf(stderr,
                "kl_loadgen: --transport zmtp speaks TCP only and this connection file's "
                "transport is \"%s\"; use --transport libzmq\n",
                info->transport);
        return -1;
    }
    if (o->transport == LG_ZMTP && curve) {
        fprintf(stderr,
                "kl_loadgen: --transport zmtp has only the NULL security mechanism and this "
                "connection file carries CurveZMQ keys; use --transport libzmq\n");
        return -1;
    }
    return 0;
}

/* Each zmtp socket is one descriptor, each libzmq one two (socket and mailbox), and a client has
 * two sockets with --iopub own: 1,000 clients do not fit the usual soft limit of 1,024. */
static void lg_raise_fd_limit(int clients) {
    struct rlimit rl;
    rlim_t want = (rlim_t)clients * 4 + 64; /* --iopub own doubles the sockets */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Opens every socket and sends each client's first request. */
static int lg_start(lg_run *run) {
    const lg_options *o = run->o;
    for (int i = 0; i < o->clients; i++) {
        lg_client *cl = &run->cl[i];
        cl->run = run;
        cl->index = i;
        if (kl_uuid_v4(cl->session) < 0) return -1;
        char rid[64];
        snprintf(rid, sizeof rid, "kl_loadgen-%d-%s", i, cl->session);
        if (lg_conn_open(&run->net, &cl->conn, KL_CH_SHELL, i, (uint32_t)i, rid) < 0) return -1;
        if (o->iopub == LG_IOPUB_OWN) {
            char topic[64];
            snprintf(topic, sizeof topic, "session.%s.", cl->session);
            if (lg_conn_open(&run->net, &cl->iopub, KL_CH_IOPUB, i, (uint32_t)(o->clients + i),
                             topic) < 0)
                return -1;
        }
    }
    if (o->iopub == LG_IOPUB_SHARED &&
        lg_conn_open(&run->net, &run->sub, KL_CH_IOPUB, 0, (uint32_t)(2 * o->clients), NULL) < 0)
        return -1;
    for (int i = 0; i < o->clients; i++)
        if (lg_send_request(&run->cl[i], 0) < 0) return -1;
    return 0;
}

/* Runs the clients until the window and the drain after it are over. 0, or -1 with a message. */
static int lg_loop(lg_run *run) {
    const lg_options *o = run->o;
    lg_client *cl = run->cl;
    lg_stats *st = &run->st;
    lg_schedule *sched = &run->sched;
    lg_window *w = &run->win;
    enum { LG_EVENTS = 256 };
    struct epoll_event events[LG_EVENTS];
    double t0 = lg_now();
    run->last_reply_at = t0;
    /* After the window, replies still in flight are collected (not counted) for a moment so the
     * kernel is not left answering a vanished peer when the next run starts. */
    double drain_until = 1e300, last_scan = t0;
    for (;;) {
        double now = lg_now();
        if (w->from == 1e300 && st->answered == o->clients) {
            st->connect_s = now - t0;
            w->from = now + o->warmup_s;
            w->until = w->from + o->duration_s;
            drain_until = w->until + 2.0;
            if (o->rate > 0) {
                /* Slots spread evenly over one period, so the kernel sees a steady stream
                 * rather than N requests at each tick. In-flight requests were all answered. */
                sched->started = true;
                for (int i = 0; i < o->clients; i++) {
                    cl[i].due = now + (double)i / o->clients / o->rate;
                    lg_schedule_push(sched, i);
                }
            }
        }
        while (sched->n > 0 && cl[sched->v[0]].due <= now && now < w->until) {
            lg_client *c = &cl[lg_schedule_pop(sched)];
            double due = c->due;
            c->due += 1.0 / o->rate;
            if (lg_send_request(c, due) < 0) return -1;
        }
        if (now >= w->until) sched->n = 0;
        if (now >= w->until && (st->in_flight == 0 || now >= drain_until)) return 0;
        /* Nothing at all for stall_s, or one client waiting that long while others progress (a
         * lost idle status would otherwise keep the window from ever opening): checked twice a
         * second. Connecting 1,000 clients can take seconds of their first request's wait. */
        bool silent = st->in_flight && now - run->last_reply_at > o->stall_s;
        if (silent || (st->in_flight && now < drain_until && now - last_scan >= 0.5)) {
            last_scan = now;
            double limit = silent ? 0 : w->from == 1e300 ? 3 * o->stall_s : o->stall_s;
            for (int i = 0; i < o->clients; i++) {
                if (!cl[i].inflight_id[0] || now - cl[i].sent_at <= limit) continue;
                if (silent)
                    fprintf(stderr,
                            "kl_loadgen: no reply for %.1f s (%d of %d clients answered); "
                            "is the kernel alive? ",
                            o->stall_s, st->answered, o->clients);
                else
                    fprintf(stderr, "kl_loadgen: ");
                fprintf(stderr,
                        "client %d's request has waited %.1f s (reply %s, idle status %s)\n", i,
                        now - cl[i].sent_at, cl[i].replied ? "arrived" : "missing",
                        cl[i].idled        ? "arrived"
                        : cl[i].await_idle ? "missing"
                                           : "not awaited");
                return -1;
            }
        }
        int timeout_ms = 100;
        if (sched->n > 0) {
            /* Rounded up: a slot is never taken early, at most a millisecond late (and timed
             * from the slot, so the lateness counts against the kernel, not for it). */
            double ms = (cl[sched->v[0]].due - now) * 1e3 + 1;
            timeout_ms = ms < 0 ? 0 : ms < 100 ? (int)ms : 100;
        }
        int n = epoll_wait(run->net.ep, events, LG_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "kl_loadgen: epoll_wait failed: %s\n", strerror(errno));
            return -1;
        }
        for (int e = 0; e < n; e++) {
            uint32_t i = events[e].data.u32, n_cl = (uint32_t)o->clients, ev = events[e].events;
            int r = i < n_cl ? lg_conn_service(&run->net, &cl[i].conn, ev, lg_on_reply, &cl[i])
                    : i < 2 * n_cl
                        ? lg_conn_service(&run->net, &cl[i - n_cl].iopub, ev, lg_on_own_iopub,
                                          &cl[i - n_cl])
                        : lg_conn_service(&run->net, &run->sub, ev, lg_on_shared_iopub, run);
            if (r < 0) return -1;
        }
    }
}

int main(int argc, char **argv) {
    lg_options o;
    int pr = lg_parse_args(argc, argv, &o);
    if (pr != 0) return pr > 0 ? 0 : 2;

    kl_connection_info info;
    char err[512];
    if (kl_connection_load(o.connection_file, &info, err, sizeof err) < 0) {
        fprintf(stderr, "kl_loadgen: %s\n", err);
        return 2;
    }
    if (lg_pick_transport(&o, &info) < 0) {
        kl_connection_free(&info);
        return 2;
    }
    kl_signer signer;
    if (kl_signer_init(&signer, info.signature_scheme, info.key, strlen(info.key), err,
                       sizeof err) < 0) {
        fprintf(stderr, "kl_loadgen: %s\n", err);
        kl_connection_free(&info);
        return 2;
    }
    lg_raise_fd_limit(o.clients);

    int rc = 1;
    lg_run run = {
        .o = &o,
        .net = {.zmtp = o.transport == LG_ZMTP, .ep = epoll_create1(EPOLL_CLOEXEC), .info = &info},
        .signer = &signer,
        .reply_type = o.mode == LG_KERNEL_INFO ? "kernel_info_reply" : "execute_reply",
        .cl = calloc((size_t)o.clients, sizeof *run.cl),
        .sub = {.zmtp.fd = -1},
        .win = {.from = 1e300, .until = 1e300},
    };
    run.sched = (lg_schedule){.cl = run.cl, .v = calloc((size_t)o.clients, sizeof(int))};
    for (int i = 0; run.cl && i < o.clients; i++)
        run.cl[i].conn.zmtp.fd = run.cl[i].iopub.zmtp.fd = -1;
    if (!run.net.zmtp) run.net.zctx = zmq_ctx_new();
    /* libzmq's default of 1,023 sockets is fewer than 1,000 clients with their own IOPub. */
    if (run.net.zctx) zmq_ctx_set(run.net.zctx, ZMQ_MAX_SOCKETS, 2 * o.clients + 16);
    if (!run.cl || run.net.ep < 0 || !run.sched.v || (!run.net.zmtp && !run.net.zctx)) {
        fprintf(stderr, "kl_loadgen: out of memory\n");
        goto out;
    }
    if (info.curve_publickey && zmq_curve_keypair(run.net.curve_public, run.net.curve_secret) < 0) {
        fprintf(stderr, "kl_loadgen: cannot make a CurveZMQ key pair: %s\n", zmq_strerror(errno));
        goto out;
    }
    if (lg_template_init(&run.tmpl, &o) < 0 || lg_start(&run) < 0 || lg_loop(&run) < 0) goto out;
    if (run.st.round_trips == 0) {
        fprintf(stderr, "kl_loadgen: no round trip completed in the measured window\n");
        goto out;
    }
    lg_report(&o, &run.st, run.cl, o.duration_s);
    /* Error replies mean the request was wrong for this kernel: the rate would be meaningless. */
    rc = run.st.errors ? 3 : 0;
    if (run.st.errors)
        fprintf(stderr, "kl_loadgen: %llu replies had a status other than \"ok\"\n", run.st.errors);

out:
    for (int i = 0; run.cl && i < o.clients; i++) {
        lg_conn_close(&run.cl[i].conn);
        lg_conn_close(&run.cl[i].iopub);
    }
    lg_conn_close(&run.sub);
    if (run.net.ep >= 0) close(run.net.ep);
    if (run.net.zctx) zmq_ctx_term(run.net.zctx);
    free(run.cl);
    free(run.st.latency.v);
    free(run.st.iopub_lag.v);
    free(run.tmpl.content);
    free(run.sched.v);
    kl_signer_free(&signer);
    kl_connection_free(&info);
    return rc;
}
