/* gRPC C core driven by a few completion-queue threads; completions handed to the loop thread.
 *
 * Every batch is tagged with an op_tag embedded in its stream (at most one batch of each kind is
 * in flight per call, so no tag is ever allocated). A driver thread only moves finished tags onto
 * the done list and pokes the uv_async; all state changes happen on the loop thread, which also
 * starts every batch -- so the "start_batch must be synchronised" rule of grpc.h holds trivially,
 * and the only cross-thread entry, kl_grpc_stream_cancel, uses grpc_call_cancel, which gRPC
 * documents as thread-safe until G(grpc_call_unref)(which a per-stream mutex orders against it).
 *
 * Lifetime: a stream is destroyed only when its owner released it AND no batch of it is in
 * flight; until then gRPC may still write into its buffers. */
#include "spark/grpc.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "kl_version.h"
#include "runtime/dynlib.h"
#include "runtime/log.h"
#include "runtime/pool.h"

/* libgrpc and what it pulls in (abseil, c-ares, re2, upb, libstdc++: about 60 libraries) are
 * bound at the first Spark connection rather than linked: linked, they cost every kernel about
 * 10 ms of start-up and 8 MiB of resident memory, and a kernel that only runs magics never calls
 * them. Every gRPC core function this file uses is listed here and called through G(). */
#define KL_GRPC_FUNCS(X)                                                                           \
    X(gpr_free)                                                                                    \
    X(gpr_inf_future)                                                                              \
    X(gpr_now)                                                                                     \
    X(gpr_set_log_function)                                                                        \
    X(gpr_time_add)                                                                                \
    X(gpr_time_from_millis)                                                                        \
    X(grpc_byte_buffer_destroy)                                                                    \
    X(grpc_byte_buffer_length)                                                                     \
    X(grpc_byte_buffer_reader_destroy)                                                             \
    X(grpc_byte_buffer_reader_init)                                                                \
    X(grpc_byte_buffer_reader_next)                                                                \
    X(grpc_call_cancel)                                                                            \
    X(grpc_call_start_batch)                                                                       \
    X(grpc_call_unref)                                                                             \
    X(grpc_channel_create)                                                                         \
    X(grpc_channel_create_call)                                                                    \
    X(grpc_channel_credentials_release)                                                            \
    X(grpc_channel_destroy)                                                                        \
    X(grpc_completion_queue_create_for_next)                                                       \
    X(grpc_completion_queue_destroy)                                                               \
    X(grpc_completion_queue_next)                                                                  \
    X(grpc_completion_queue_shutdown)                                                              \
    X(grpc_empty_slice)                                                                            \
    X(grpc_init)                                                                                   \
    X(grpc_insecure_credentials_create)                                                            \
    X(grpc_local_credentials_create)                                                               \
    X(grpc_metadata_array_destroy)                                                                 \
    X(grpc_metadata_array_init)                                                                    \
    X(grpc_raw_byte_buffer_create)                                                                 \
    X(grpc_shutdown)                                                                               \
    X(grpc_slice_from_copied_buffer)                                                               \
    X(grpc_slice_from_copied_string)                                                               \
    X(grpc_slice_str_cmp)                                                                          \
    X(grpc_slice_unref)                                                                            \
    X(grpc_ssl_credentials_create)

KL_DYNLIB_DEFINE(grpc_lib, KL_GRPC_FUNCS, KL_GRPC_SONAME,
                 "the gRPC C core library: Debian package libgrpc29");
#define G(n) KL_DYNLIB_FN(grpc_lib, n)

int kl_grpc_load(char *err, size_t errlen) {
    return kl_dynlib_load(&grpc_lib, err, errlen);
}

typedef struct load_job {
    int rc;
    char err[512];
} load_job;

static void load_work(void *arg) {
    load_job *j = arg;
    j->rc = kl_grpc_load(j->err, sizeof j->err);
}

int kl_grpc_load_on(kl_pool *pool, char *err, size_t errlen) {
    if (kl_dynlib_loaded(&grpc_lib)) return 0;
    load_job j = {.rc = -1};
    if (kl_pool_run(pool, load_work, &j) != 0) return kl_grpc_load(err, errlen);
    if (j.rc != 0) snprintf(err, errlen, "%s", j.err);
    return j.rc;
}

_Static_assert((int)KL_GRPC_OK == (int)GRPC_STATUS_OK, "status codes follow gRPC");
_Static_assert((int)KL_GRPC_DEADLINE_EXCEEDED == (int)GRPC_STATUS_DEADLINE_EXCEEDED,
               "status codes follow gRPC");
_Static_assert((int)KL_GRPC_UNAVAILABLE == (int)GRPC_STATUS_UNAVAILABLE,
               "status codes follow gRPC");
_Static_assert((int)KL_GRPC_UNAUTHENTICATED == (int)GRPC_STATUS_UNAUTHENTICATED,
               "status codes follow gRPC");

#define LOG_MOD            "grpc"
#define DEFAULT_THREADS    2
#define CA_FILE_MAX        (4 * 1024 * 1024)
#define ENDPOINT_MAX       300
#define STATUS_DETAILS_BIN "grpc-status-details-bin"
/* gRPC's default reconnect backoff grows to 2 minutes; a Spark server restarted from a notebook
 * should be found again within seconds, not lock the kernel out that long. */
/* gRPC's defaults back off up to two minutes between reconnection attempts, so a notebook whose
 * server was down for a while kept failing with a stale "connection refused" after the server
 * was back. A loopback or cluster-local server is cheap to probe: try at least every second. */
#define INITIAL_RECONNECT_BACKOFF_MS 100
#define MAX_RECONNECT_BACKOFF_MS     1000

typedef enum { OP_UNARY, OP_SEND, OP_RECV, OP_STATUS } op_kind;
typedef enum { KIND_UNARY, KIND_SERVER_STREAM, KIND_CLIENT_STREAM } stream_kind;

typedef struct op_tag {
    kl_grpc_stream *s;
    struct op_tag *next; /* done list */
    op_kind kind;
    bool ok; /* grpc_event.success, written by the driver thread before it links the tag */
} op_tag;

typedef struct driver_thread {
    kl_grpc *g;
    grpc_completion_queue *cq;
    pthread_t tid;
} driver_thread;

struct kl_grpc {
    kl_loop *loop;
    uv_async_t async;
    pthread_mutex_t mu; /* guards the done list */
    pthread_cond_t cond;
    op_tag *done_head, *done_tail;
    driver_thread *threads;
    int nthreads;
    unsigned next_thread;
    /* Loop thread only from here on. */
    kl_grpc_stream *streams;
    kl_grpc_channel *channels;
    size_t inflight; /* batches started and not yet processed */
    size_t active;   /* streams holding a grpc_call */
};

struct kl_grpc_channel {
    kl_grpc *g;
    grpc_channel *channel;
    char endpoint[ENDPOINT_MAX];
    grpc_metadata *md; /* sent with every call; shared, never changed */
    size_t n_md;
    bool has_token;
    int max_message_size;
    int refs; /* the owner's and one per stream */
    kl_grpc_channel *prev, *next;
};

struct kl_grpc_stream {
    kl_grpc *g; /* NULL once kl_grpc_free detached the stream */
    kl_loop *loop;
    kl_grpc_channel *ch;
    char *method;
    stream_kind kind;
    int64_t timeout_ms;
    pthread_mutex_t mu; /* orders cancel from other threads against grpc_call_unref */
    grpc_call *call;
    atomic_bool cancel_requested;
    kl_coro *waiter;
    unsigned inflight;
    bool freed;

    op_tag t_main, t_send, t_recv, t_status;

    grpc_metadata_array initial_md;
    grpc_byte_buffer *recv_bb;
    bool recv_pending, eof, have_msg;
    bool corrupt; /* a received message could not be read (bad compression): the call is over */
    kl_grpc_bytes msg;

    grpc_byte_buffer *send_bb;
    bool send_pending, send_failed, send_closed;

    grpc_metadata_array trailing_md;
    grpc_status_code code;
    grpc_slice details;
    const char *error_string;
    bool status_done;
    kl_grpc_status final;

    kl_grpc_stream *prev, *next;
};

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

static char *xstrdup(const char *s) {
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    return out;
}

/* ---- Status --------------------------------------------------------------------------------- */

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *kl_grpc_code_name(kl_grpc_code code) {
    if ((unsigned)code < sizeof code_names / sizeof code_names[0]) return code_names[code];
    return "UNKNOWN_CODE";
}

static const kl_grpc_observer *observer;

void kl_grpc_set_observer(const kl_grpc_observer *obs) {
    observer = obs;
}

void kl_grpc_status_clear(kl_grpc_status *st) {
    if (!st) return;
    free(st->details);
    free(st->message);
    free(st->details_bin);
    memset(st, 0, sizeof *st);
}

static void status_copy(kl_grpc_status *dst, const kl_grpc_status *src) {
    dst->code = src->code;
    dst->details = xstrdup(src->details);
    dst->message = xstrdup(src->message);
    dst->details_bin = NULL;
    dst->details_bin_len = src->details_bin_len;
    if (src->details_bin) {
        dst->details_bin = xmalloc(src->details_bin_len);
        memcpy(dst->details_bin, src->details_bin, src->details_bin_len);
    }
}

static const char *method_name(const kl_grpc_stream *s) {
    const char *slash = strrchr(s->method, '/');
    return slash ? slash + 1 : s->method;
}

/* The sentence a user reads: the endpoint and what to do, not just a status code. */
static char *status_message(const kl_grpc_stream *s, kl_grpc_code code, const char *details) {
    const char *ep = s->ch ? s->ch->endpoint : "the Spark Connect server";
    const char *m = method_name(s);
    switch (code) {
    case KL_GRPC_OK:
        return xstrdup("");
    case KL_GRPC_CANCELLED:
        if (atomic_load(&s->cancel_requested)) return xasprintf("the %s call was cancelled", m);
        return xasprintf("the %s call to %s was cancelled: %s", m, ep, details);
    case KL_GRPC_UNAVAILABLE:
        return xasprintf("cannot reach Spark Connect at %s: %s", ep, details);
    case KL_GRPC_DEADLINE_EXCEEDED:
        if (s->timeout_ms > 0)
            return xasprintf("the %s call to %s did not finish within %lld ms", m, ep,
                             (long long)s->timeout_ms);
        return xasprintf("the %s call to %s ran past its deadline: %s", m, ep, details);
    case KL_GRPC_UNAUTHENTICATED:
        if (s->ch && s->ch->has_token)
            return xasprintf("the server at %s rejected the token: %s", ep, details);
        return xasprintf("the server at %s requires a token: add ;token=... to the sc:// URL or "
                         "set SPARK_CONNECT_AUTHENTICATE_TOKEN (%s)",
                         ep, details);
    case KL_GRPC_PERMISSION_DENIED:
        return xasprintf("the server at %s denied the %s call: %s", ep, m, details);
    case KL_GRPC_RESOURCE_EXHAUSTED:
        if (strstr(details, "message larger") || strstr(details, "Message larger"))
            return xasprintf("%s: a message exceeded the %d-byte limit; raise "
                             "grpc_max_message_size in the sc:// URL",
                             details, s->ch ? s->ch->max_message_size : 0);
        return xasprintf("the server at %s is out of resources: %s", ep, details);
    case KL_GRPC_UNIMPLEMENTED:
        return xasprintf("the server at %s does not implement %s (an older Spark version?): %s", ep,
                         m, details);
    default:
        if (*details) return xstrdup(details);
        return xasprintf("the %s call to %s failed with %s", m, ep, kl_grpc_code_name(code));
    }
}

static void status_set(kl_grpc_stream *s, kl_grpc_code code, const char *details) {
    kl_grpc_status_clear(&s->final);
    s->final.code = code;
    s->final.details = xstrdup(details);
    s->final.message = status_message(s, code, details);
}

/* Turns what RECV_STATUS_ON_CLIENT wrote into s->final and releases gRPC's buffers. */
static void status_take(kl_grpc_stream *s) {
    size_t n = GRPC_SLICE_LENGTH(s->details);
    char *details = xmalloc(n + 1);
    memcpy(details, GRPC_SLICE_START_PTR(s->details), n);
    details[n] = '\0';
    if (n == 0 && s->error_string) {
        free(details);
        details = xstrdup(s->error_string);
    }
    if (s->corrupt)
        status_set(s, KL_GRPC_INTERNAL, "a received message could not be decompressed");
    else
        status_set(s, (kl_grpc_code)s->code, details);
    free(details);
    for (size_t i = 0; i < s->trailing_md.count; i++) {
        const grpc_metadata *md = &s->trailing_md.metadata[i];
        if (G(grpc_slice_str_cmp)(md->key, STATUS_DETAILS_BIN) != 0) continue;
        /* gRPC has already base64-decoded the -bin trailer. */
        size_t len = GRPC_SLICE_LENGTH(md->value);
        free(s->final.details_bin);
        s->final.details_bin = xmalloc(len);
        memcpy(s->final.details_bin, GRPC_SLICE_START_PTR(md->value), len);
        s->final.details_bin_len = len;
    }
    G(grpc_slice_unref)(s->details);
    s->details = G(grpc_empty_slice)();
    G(gpr_free)((void *)s->error_string);
    s->error_string = NULL;
    G(grpc_metadata_array_destroy)(&s->trailing_md);
    G(grpc_metadata_array_init)(&s->trailing_md);
    s->status_done = true;
    if (observer && observer->call_done) observer->call_done(method_name(s), s->final.code);
}

/* ---- Byte buffers --------------------------------------------------------------------------- */

static grpc_byte_buffer *bb_from(const void *data, size_t len) {
    grpc_slice sl = G(grpc_slice_from_copied_buffer)(data, len);
    grpc_byte_buffer *bb = G(grpc_raw_byte_buffer_create)(&sl, 1);
    G(grpc_slice_unref)(sl);
    return bb;
}

/* Consumes bb. A reader (not the raw slices) because the server may compress messages. */
static bool bb_take(grpc_byte_buffer *bb, kl_grpc_bytes *out) {
    grpc_byte_buffer_reader r;
    if (!G(grpc_byte_buffer_reader_init)(&r, bb)) {
        G(grpc_byte_buffer_destroy)(bb);
        return false;
    }
    size_t cap = G(grpc_byte_buffer_length)(bb), n = 0;
    uint8_t *buf = xmalloc(cap);
    grpc_slice sl;
    while (G(grpc_byte_buffer_reader_next)(&r, &sl)) {
        size_t l = GRPC_SLICE_LENGTH(sl);
        if (n + l > cap) {
            cap = n + l > 2 * cap ? n + l : 2 * cap;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
        memcpy(buf + n, GRPC_SLICE_START_PTR(sl), l);
        n += l;
        G(grpc_slice_unref)(sl);
    }
    G(grpc_byte_buffer_reader_destroy)(&r);
    G(grpc_byte_buffer_destroy)(bb);
    out->data = buf;
    out->len = n;
    if (observer && observer->received) observer->received(n);
    return true;
}

/* ---- Driver threads ------------------------------------------------------------------------- */

static void *driver_main(void *arg) {
    driver_thread *t = arg;
    kl_grpc *g = t->g;
    for (;;) {
        grpc_event ev =
            G(grpc_completion_queue_next)(t->cq, G(gpr_inf_future)(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        op_tag *tag = ev.tag;
        tag->ok = ev.success != 0;
        tag->next = NULL;
        pthread_mutex_lock(&g->mu);
        bool was_empty = g->done_head == NULL;
        if (g->done_tail)
            g->done_tail->next = tag;
        else
            g->done_head = tag;
        g->done_tail = tag;
        pthread_cond_signal(&g->cond);
        pthread_mutex_unlock(&g->mu);
        /* uv_async coalesces; the loop drains the whole list per wake-up. */
        if (was_empty) uv_async_send(&g->async);
    }
    return NULL;
}

static void stream_destroy(kl_grpc_stream *s);

static void wake(kl_grpc_stream *s) {
    if (s->waiter) kl_loop_wake(s->loop, s->waiter);
}

/* Loop thread: apply one finished batch. */
static void complete(op_tag *t) {
    kl_grpc_stream *s = t->s;
    kl_grpc *g = s->g;
    s->inflight--;
    g->inflight--;
    switch (t->kind) {
    case OP_UNARY:
        s->send_pending = s->recv_pending = false;
        if (s->send_bb) G(grpc_byte_buffer_destroy)(s->send_bb);
        s->send_bb = NULL;
        if (s->recv_bb && !(s->have_msg = bb_take(s->recv_bb, &s->msg))) s->corrupt = true;
        s->recv_bb = NULL;
        s->eof = true;
        status_take(s);
        break;
    case OP_SEND:
        s->send_pending = false;
        if (s->send_bb) G(grpc_byte_buffer_destroy)(s->send_bb);
        s->send_bb = NULL;
        if (!t->ok) s->send_failed = true;
        break;
    case OP_RECV:
        s->recv_pending = false;
        if (s->recv_bb) {
            s->have_msg = bb_take(s->recv_bb, &s->msg);
            if (!s->have_msg) {
                /* Skipping a message would hand the caller a silently incomplete stream. */
                s->eof = s->corrupt = true;
                kl_grpc_stream_cancel(s);
                if (s->status_done)
                    status_set(s, KL_GRPC_INTERNAL, "a received message could not be decompressed");
            }
        } else {
            s->eof = true;
        }
        s->recv_bb = NULL;
        break;
    case OP_STATUS:
        status_take(s);
        break;
    }
    if (s->freed) {
        if (s->inflight == 0) stream_destroy(s);
        return;
    }
    wake(s);
}

static void drain(kl_grpc *g) {
    pthread_mutex_lock(&g->mu);
    op_tag *t = g->done_head;
    g->done_head = g->done_tail = NULL;
    pthread_mutex_unlock(&g->mu);
    while (t) {
        op_tag *next = t->next;
        complete(t);
        t = next;
    }
}

static void on_async(uv_async_t *h) {
    drain(h->data);
}

static void on_async_closed(uv_handle_t *h) {
    free(h->data);
}

/* gRPC logs to stderr by default; route it through kl_log so the kernel's log format and level
 * apply. Its ERROR lines (a failed handshake, a refused connection) also end a call with a status
 * that the caller reports, so they are warnings here, not errors. */
static void on_gpr_log(gpr_log_func_args *a) {
    const char *file = strrchr(a->file, '/');
    file = file ? file + 1 : a->file;
    kl_log_level level = a->severity == GPR_LOG_SEVERITY_ERROR ? KL_LOG_WARN : KL_LOG_DEBUG;
    if (kl_log_enabled(level))
        kl_log_write(level, "grpc-core", "%s (%s:%d)", a->message, file, a->line);
}

kl_grpc *kl_grpc_new(kl_loop *loop, int nthreads) {
    char why[512];
    if (kl_grpc_load(why, sizeof why) != 0) {
        KL_ERROR("grpc", "%s", why);
        errno = ENOENT;
        return NULL;
    }
    if (nthreads <= 0) nthreads = DEFAULT_THREADS;
    kl_grpc *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->loop = loop;
    g->threads = calloc((size_t)nthreads, sizeof *g->threads);
    if (!g->threads) {
        free(g);
        errno = ENOMEM;
        return NULL;
    }
    int rc = uv_async_init(kl_loop_uv(loop), &g->async, on_async);
    if (rc < 0) {
        free(g->threads);
        free(g);
        errno = -rc;
        return NULL;
    }
    g->async.data = g;
    /* Liveness comes from the coroutines waiting on calls, not from this handle. */
    uv_unref((uv_handle_t *)&g->async);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cond, NULL);
    G(gpr_set_log_function)(on_gpr_log);

    /* Signals belong to the loop thread (SIGINT is an interrupt request there): block them in
     * our threads and in those gRPC starts in grpc_init. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    G(grpc_init)();
    for (int i = 0; i < nthreads; i++) {
        driver_thread *t = &g->threads[i];
        t->g = g;
        t->cq = G(grpc_completion_queue_create_for_next)(NULL);
        rc = pthread_create(&t->tid, NULL, driver_main, t);
        if (rc != 0) {
            G(grpc_completion_queue_destroy)(t->cq);
            t->cq = NULL;
            break;
        }
        char name[16];
        snprintf(name, sizeof name, "kl-grpc-%u", (unsigned)i % 1000u);
        pthread_setname_np(t->tid, name);
        g->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (g->nthreads == 0) {
        kl_grpc_free(g); /* frees g once the loop closes the handle */
        errno = rc;
        return NULL;
    }
    return g;
}

size_t kl_grpc_active_calls(const kl_grpc *g) {
    return g->active;
}

/* ---- Channels ------------------------------------------------------------------------------- */

static void md_set(grpc_metadata *md, const char *key, const char *value) {
    memset(md, 0, sizeof *md);
    md->key = G(grpc_slice_from_copied_string)(key);
    md->value = G(grpc_slice_from_copied_string)(value);
}

static char *read_ca_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read the CA file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(CA_FILE_MAX + 1);
    size_t n = fread(buf, 1, CA_FILE_MAX + 1, f);
    bool bad = ferror(f) || n > CA_FILE_MAX || n == 0;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "the CA file %s is empty, unreadable or larger than %d bytes", path,
                 CA_FILE_MAX);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

kl_grpc_channel *kl_grpc_channel_new(kl_grpc *g, const kl_sc_remote *r,
                                     const kl_grpc_channel_opts *opt, char *err, size_t errlen) {
    static const kl_grpc_channel_opts no_opts = {0};
    if (!opt) opt = &no_opts;
    if (r->kind != KL_SC_KIND_URL || !r->host) {
        snprintf(err, errlen,
                 "a local Spark master must be started first; connect to its sc:// URL");
        return NULL;
    }
    char target[ENDPOINT_MAX - 8];
    if (kl_sc_remote_target(r, target, sizeof target) != 0) {
        snprintf(err, errlen, "the Spark Connect host name is too long");
        return NULL;
    }

    grpc_channel_credentials *creds = NULL;
    switch (kl_sc_remote_transport(r)) {
    case KL_SC_PLAINTEXT:
        creds = G(grpc_insecure_credentials_create)();
        break;
    case KL_SC_LOCAL_TCP:
        creds = G(grpc_local_credentials_create)(LOCAL_TCP);
        break;
    case KL_SC_TLS: {
        char *pem = NULL;
        if (opt->ca_file && !(pem = read_ca_file(opt->ca_file, err, errlen))) return NULL;
        creds = G(grpc_ssl_credentials_create)(pem, NULL, NULL, NULL);
        free(pem);
        break;
    }
    }
    if (!creds) {
        snprintf(err, errlen, "gRPC could not create %s credentials for %s",
                 kl_sc_transport_name(kl_sc_remote_transport(r)), target);
        return NULL;
    }

    int max_msg = opt->max_message_size > 0 ? opt->max_message_size
                  : r->max_message_size > 0 ? r->max_message_size
                                            : KL_SC_DEFAULT_MAX_MESSAGE_SIZE;
    int keepalive = opt->keepalive_time_ms ? opt->keepalive_time_ms : KL_GRPC_KEEPALIVE_TIME_MS;
    int idle = opt->idle_timeout_ms > 0 ? opt->idle_timeout_ms : KL_GRPC_IDLE_TIMEOUT_MS;
    const char *ua = opt->user_agent ? opt->user_agent : r->user_agent;
    char default_ua[64];
    snprintf(default_ua, sizeof default_ua, "kindling/%s", KL_VERSION);
    if (!ua) ua = default_ua;

    grpc_arg args[12];
    size_t n = 0;
#define INT_ARG(k, v)                                                                              \
    args[n++] = (grpc_arg){.type = GRPC_ARG_INTEGER, .key = (char *)(k), .value.integer = (v)}
    INT_ARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max_msg);
    INT_ARG(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, max_msg);
    INT_ARG(GRPC_ARG_CLIENT_IDLE_TIMEOUT_MS, idle);
    INT_ARG(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, INITIAL_RECONNECT_BACKOFF_MS);
    INT_ARG(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, INITIAL_RECONNECT_BACKOFF_MS);
    INT_ARG(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, MAX_RECONNECT_BACKOFF_MS);
    if (keepalive > 0) {
        INT_ARG(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive);
        INT_ARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, KL_GRPC_KEEPALIVE_TIMEOUT_MS);
        /* The server counts pings without calls against a two-hour allowance. */
        INT_ARG(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
        /* By default gRPC stops pinging after two pings without data, which would leave a long
         * silent query (3.5 servers send no progress) unguarded. */
        INT_ARG(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
#undef INT_ARG
    args[n++] = (grpc_arg){.type = GRPC_ARG_STRING,
                           .key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING,
                           .value.string = (char *)ua};
    grpc_channel_args cargs = {.num_args = n, .args = args};

    grpc_channel *channel = G(grpc_channel_create)(target, creds, &cargs);
    G(grpc_channel_credentials_release)(creds);
    if (!channel) {
        snprintf(err, errlen, "gRPC could not create a channel to %s", target);
        return NULL;
    }

    kl_grpc_channel *ch = calloc(1, sizeof *ch);
    if (!ch) abort();
    ch->g = g;
    ch->channel = channel;
    ch->refs = 1;
    ch->max_message_size = max_msg;
    snprintf(ch->endpoint, sizeof ch->endpoint, "sc://%s", target);
    ch->md = calloc(r->n_headers + 1, sizeof *ch->md);
    if (!ch->md) abort();
    if (r->token) {
        char *bearer = xasprintf("Bearer %s", r->token);
        md_set(&ch->md[ch->n_md++], "authorization", bearer);
        memset(bearer, 0, strlen(bearer));
        free(bearer);
        ch->has_token = true;
    }
    for (size_t i = 0; i < r->n_headers; i++)
        md_set(&ch->md[ch->n_md++], r->headers[i].key, r->headers[i].value);

    ch->next = g->channels;
    if (g->channels) g->channels->prev = ch;
    g->channels = ch;
    return ch;
}

const char *kl_grpc_channel_endpoint(const kl_grpc_channel *ch) {
    return ch->endpoint;
}

static void channel_destroy(kl_grpc_channel *ch) {
    kl_grpc *g = ch->g;
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        g->channels = ch->next;
    if (ch->next) ch->next->prev = ch->prev;
    G(grpc_channel_destroy)(ch->channel);
    for (size_t i = 0; i < ch->n_md; i++) {
        G(grpc_slice_unref)(ch->md[i].key);
        G(grpc_slice_unref)(ch->md[i].value);
    }
    free(ch->md);
    free(ch);
}

static void channel_unref(kl_grpc_channel *ch) {
    if (--ch->refs == 0) channel_destroy(ch);
}

void kl_grpc_channel_free(kl_grpc_channel *ch) {
    if (ch) channel_unref(ch);
}

/* ---- Calls ---------------------------------------------------------------------------------- */

static void start_batch(kl_grpc_stream *s, op_tag *tag, grpc_op *ops, size_t n) {
    grpc_call_error e = G(grpc_call_start_batch)(s->call, ops, n, tag, NULL);
    if (e != GRPC_CALL_OK) {
        /* Only a misuse of the API in this file can get here. */
        KL_ERROR(LOG_MOD, "G(grpc_call_start_batch)(%s) failed: %d", s->method, (int)e);
        abort();
    }
    s->inflight++;
    s->g->inflight++;
}

static void op_send_initial_md(grpc_op *op, const kl_grpc_stream *s, bool wait_for_ready) {
    memset(op, 0, sizeof *op);
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    op->data.send_initial_metadata.count = s->ch->n_md;
    op->data.send_initial_metadata.metadata = s->ch->md;
    if (wait_for_ready)
        op->flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY |
                    GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET;
}

static void op_simple(grpc_op *op, grpc_op_type type) {
    memset(op, 0, sizeof *op);
    op->op = type;
}

static void op_send_message(grpc_op *op, kl_grpc_stream *s, const void *data, size_t len) {
    op_simple(op, GRPC_OP_SEND_MESSAGE);
    s->send_bb = bb_from(data, len);
    op->data.send_message.send_message = s->send_bb;
}

static void op_recv_initial_md(grpc_op *op, kl_grpc_stream *s) {
    op_simple(op, GRPC_OP_RECV_INITIAL_METADATA);
    op->data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
}

static void op_recv_message(grpc_op *op, kl_grpc_stream *s) {
    op_simple(op, GRPC_OP_RECV_MESSAGE);
    op->data.recv_message.recv_message = &s->recv_bb;
}

static void op_recv_status(grpc_op *op, kl_grpc_stream *s) {
    op_simple(op, GRPC_OP_RECV_STATUS_ON_CLIENT);
    op->data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    op->data.recv_status_on_client.status = &s->code;
    op->data.recv_status_on_client.status_details = &s->details;
    op->data.recv_status_on_client.error_string = &s->error_string;
}

static kl_grpc_stream *stream_new(kl_grpc_channel *ch, const char *method, stream_kind kind,
                                  const kl_grpc_call_opts *opt) {
    kl_grpc *g = ch->g;
    kl_grpc_stream *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->g = g;
    s->loop = g->loop;
    s->ch = ch;
    ch->refs++;
    s->method = xstrdup(method);
    s->kind = kind;
    s->timeout_ms = opt ? opt->timeout_ms : 0;
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->cancel_requested, false);
    s->t_main = (op_tag){.s = s, .kind = OP_UNARY};
    s->t_send = (op_tag){.s = s, .kind = OP_SEND};
    s->t_recv = (op_tag){.s = s, .kind = OP_RECV};
    s->t_status = (op_tag){.s = s, .kind = OP_STATUS};
    G(grpc_metadata_array_init)(&s->initial_md);
    G(grpc_metadata_array_init)(&s->trailing_md);
    s->details = G(grpc_empty_slice)();

    gpr_timespec deadline = G(gpr_inf_future)(GPR_CLOCK_REALTIME);
    if (s->timeout_ms > 0)
        deadline = G(gpr_time_add)(G(gpr_now)(GPR_CLOCK_MONOTONIC),
                                   G(gpr_time_from_millis)(s->timeout_ms, GPR_TIMESPAN));
    driver_thread *t = &g->threads[g->next_thread++ % (unsigned)g->nthreads];
    grpc_slice m = G(grpc_slice_from_copied_string)(method);
    s->call = G(grpc_channel_create_call)(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, t->cq, m,
                                          NULL, deadline, NULL);
    G(grpc_slice_unref)(m);
    if (!s->call) abort();
    g->active++;

    s->next = g->streams;
    if (g->streams) g->streams->prev = s;
    g->streams = s;
    return s;
}

static void stream_destroy(kl_grpc_stream *s) {
    assert(s->inflight == 0);
    pthread_mutex_lock(&s->mu);
    grpc_call *call = s->call;
    s->call = NULL;
    pthread_mutex_unlock(&s->mu);
    if (call) {
        G(grpc_call_unref)(call);
        s->g->active--;
    }
    if (s->g) {
        if (s->prev)
            s->prev->next = s->next;
        else
            s->g->streams = s->next;
        if (s->next) s->next->prev = s->prev;
    }
    if (s->ch) channel_unref(s->ch);
    if (s->recv_bb) G(grpc_byte_buffer_destroy)(s->recv_bb);
    if (s->send_bb) G(grpc_byte_buffer_destroy)(s->send_bb);
    G(grpc_metadata_array_destroy)(&s->initial_md);
    G(grpc_metadata_array_destroy)(&s->trailing_md);
    G(grpc_slice_unref)(s->details);
    G(gpr_free)((void *)s->error_string);
    if (s->have_msg) free(s->msg.data);
    kl_grpc_status_clear(&s->final);
    pthread_mutex_destroy(&s->mu);
    free(s->method);
    free(s);
}

/* Coroutine: park until complete() wakes us; callers loop on their own condition. */
static void wait_here(kl_grpc_stream *s) {
    kl_coro *me = kl_coro_current();
    assert(me != NULL && "kl_grpc calls that wait must run in a coroutine");
    s->waiter = me;
    kl_loop_park(s->loop);
    s->waiter = NULL;
}

static void start_recv(kl_grpc_stream *s) {
    grpc_op op;
    op_recv_message(&op, s);
    s->recv_pending = true;
    start_batch(s, &s->t_recv, &op, 1);
}

/* The result of a call that ends with one response (unary, client streaming). */
static int single_result(kl_grpc_stream *s, kl_grpc_bytes *resp, kl_grpc_status *st) {
    *resp = (kl_grpc_bytes){0};
    if (s->final.code == KL_GRPC_OK && !s->have_msg)
        status_set(s, KL_GRPC_INTERNAL, "the server ended the call without a response");
    status_copy(st, &s->final);
    if (s->final.code != KL_GRPC_OK) return -1;
    *resp = s->msg;
    s->msg = (kl_grpc_bytes){0};
    s->have_msg = false;
    return 0;
}

int kl_grpc_unary(kl_grpc_channel *ch, const char *method, const void *req, size_t len,
                  const kl_grpc_call_opts *opt, kl_grpc_bytes *resp, kl_grpc_status *st) {
    kl_grpc_stream *s = stream_new(ch, method, KIND_UNARY, opt);
    grpc_op ops[6];
    op_send_initial_md(&ops[0], s, opt && opt->wait_for_ready);
    op_send_message(&ops[1], s, req, len);
    op_simple(&ops[2], GRPC_OP_SEND_CLOSE_FROM_CLIENT);
    op_recv_initial_md(&ops[3], s);
    op_recv_message(&ops[4], s);
    op_recv_status(&ops[5], s);
    s->send_pending = s->recv_pending = true;
    start_batch(s, &s->t_main, ops, 6);
    while (!s->status_done) wait_here(s);
    int rc = single_result(s, resp, st);
    kl_grpc_stream_free(s);
    return rc;
}

kl_grpc_stream *kl_grpc_stream_open(kl_grpc_channel *ch, const char *method, const void *req,
                                    size_t len, const kl_grpc_call_opts *opt) {
    kl_grpc_stream *s = stream_new(ch, method, KIND_SERVER_STREAM, opt);
    grpc_op ops[3];
    op_send_initial_md(&ops[0], s, opt && opt->wait_for_ready);
    op_send_message(&ops[1], s, req, len);
    op_simple(&ops[2], GRPC_OP_SEND_CLOSE_FROM_CLIENT);
    s->send_pending = true;
    s->send_closed = true;
    start_batch(s, &s->t_send, ops, 3);
    op_recv_status(&ops[0], s);
    start_batch(s, &s->t_status, ops, 1);
    /* Ask for the first message now, so it travels while the caller gets ready. */
    op_recv_initial_md(&ops[0], s);
    op_recv_message(&ops[1], s);
    s->recv_pending = true;
    start_batch(s, &s->t_recv, ops, 2);
    return s;
}

int kl_grpc_stream_next(kl_grpc_stream *s, kl_grpc_bytes *msg, kl_grpc_status *st) {
    *msg = (kl_grpc_bytes){0};
    for (;;) {
        if (s->have_msg) {
            *msg = s->msg;
            s->msg = (kl_grpc_bytes){0};
            s->have_msg = false;
            /* Only now may the next message come: one message buffered per stream. */
            if (!s->eof && !s->recv_pending) {
                if (s->call && s->g)
                    start_recv(s);
                else
                    s->eof = true;
            }
            return 1;
        }
        if (s->eof && s->status_done && !s->recv_pending) {
            status_copy(st, &s->final);
            return s->final.code == KL_GRPC_OK ? 0 : -1;
        }
        wait_here(s);
    }
}

kl_grpc_stream *kl_grpc_stream_open_client(kl_grpc_channel *ch, const char *method,
                                           const kl_grpc_call_opts *opt) {
    kl_grpc_stream *s = stream_new(ch, method, KIND_CLIENT_STREAM, opt);
    grpc_op ops[2];
    op_send_initial_md(&ops[0], s, opt && opt->wait_for_ready);
    s->send_pending = true;
    start_batch(s, &s->t_send, ops, 1);
    op_recv_status(&ops[0], s);
    start_batch(s, &s->t_status, ops, 1);
    op_recv_initial_md(&ops[0], s);
    op_recv_message(&ops[1], s);
    s->recv_pending = true;
    start_batch(s, &s->t_recv, ops, 2);
    return s;
}

int kl_grpc_stream_send(kl_grpc_stream *s, const void *msg, size_t len) {
    assert(s->kind == KIND_CLIENT_STREAM);
    while (s->send_pending) wait_here(s);
    if (s->send_failed || s->send_closed || s->status_done || !s->call || !s->g) return -1;
    grpc_op op;
    op_send_message(&op, s, msg, len);
    s->send_pending = true;
    start_batch(s, &s->t_send, &op, 1);
    return 0;
}

int kl_grpc_stream_finish(kl_grpc_stream *s, kl_grpc_bytes *resp, kl_grpc_status *st) {
    assert(s->kind == KIND_CLIENT_STREAM);
    while (s->send_pending) wait_here(s);
    if (!s->send_closed && !s->send_failed && !s->status_done && s->call && s->g) {
        grpc_op op;
        op_simple(&op, GRPC_OP_SEND_CLOSE_FROM_CLIENT);
        s->send_pending = true;
        start_batch(s, &s->t_send, &op, 1);
    }
    s->send_closed = true;
    while (!s->status_done || s->recv_pending) wait_here(s);
    return single_result(s, resp, st);
}

void kl_grpc_stream_cancel(kl_grpc_stream *s) {
    if (!s) return;
    atomic_store(&s->cancel_requested, true);
    pthread_mutex_lock(&s->mu);
    if (s->call) G(grpc_call_cancel)(s->call, NULL);
    pthread_mutex_unlock(&s->mu);
}

void kl_grpc_stream_free(kl_grpc_stream *s) {
    if (!s) return;
    assert(s->waiter == NULL);
    s->freed = true;
    if (s->inflight > 0) {
        /* gRPC still owns buffers of ours: the last completion destroys the stream. */
        if (!s->status_done) kl_grpc_stream_cancel(s);
        return;
    }
    stream_destroy(s);
}

/* ---- Shutdown ------------------------------------------------------------------------------- */

void kl_grpc_free(kl_grpc *g) {
    if (!g) return;
    for (kl_grpc_stream *s = g->streams; s; s = s->next)
        if (!s->status_done) kl_grpc_stream_cancel(s);
    /* Every cancelled batch still comes back through a completion queue; wait for all of them
     * here rather than in the loop, which may not run again. */
    while (g->inflight > 0) {
        pthread_mutex_lock(&g->mu);
        while (!g->done_head) pthread_cond_wait(&g->cond, &g->mu);
        pthread_mutex_unlock(&g->mu);
        drain(g);
    }
    /* What is left belongs to owners who have not freed it yet: detach it from gRPC. */
    while (g->streams) {
        kl_grpc_stream *s = g->streams;
        g->streams = s->next;
        pthread_mutex_lock(&s->mu);
        grpc_call *call = s->call;
        s->call = NULL;
        pthread_mutex_unlock(&s->mu);
        if (call) G(grpc_call_unref)(call);
        if (!s->status_done) status_set(s, KL_GRPC_CANCELLED, "the gRPC driver shut down");
        s->status_done = true;
        s->eof = true;
        channel_unref(s->ch);
        s->ch = NULL;
        s->g = NULL;
        s->prev = s->next = NULL;
    }
    g->active = 0;
    while (g->channels) {
        kl_grpc_channel *ch = g->channels;
        if (ch->refs > 0) KL_WARN(LOG_MOD, "freeing channel %s still held", ch->endpoint);
        channel_destroy(ch);
    }
    for (int i = 0; i < g->nthreads; i++) G(grpc_completion_queue_shutdown)(g->threads[i].cq);
    for (int i = 0; i < g->nthreads; i++) {
        pthread_join(g->threads[i].tid, NULL);
        G(grpc_completion_queue_destroy)(g->threads[i].cq);
    }
    G(grpc_shutdown)();
    free(g->threads);
    g->threads = NULL;
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->mu);
    /* The handle lives inside g: g goes once libuv is done with it (now, or in kl_loop_free). */
    uv_close((uv_handle_t *)&g->async, on_async_closed);
}
