/* gRPC transport to a Spark Connect endpoint, on the gRPC C core.
 *
 * A kl_grpc owns a few driver threads, each blocking in grpc_completion_queue_next on its own
 * completion queue; every call is bound to one of them, so a handful of threads carries any number
 * of concurrent calls. Finished operations travel back to the loop thread through one uv_async and
 * a mutex-guarded list, and the coroutine waiting on that call is woken. The loop thread only
 * starts batches (non-blocking) and never waits on gRPC.
 *
 * Flow control: a stream keeps at most one received message that its consumer has not taken, and
 * asks gRPC for the next one only once the consumer took it; a slow consumer therefore lets
 * HTTP/2 flow control slow the server instead of buffering. A client stream has at most one send
 * in flight.
 *
 * Threads: everything is for the loop thread (the functions that wait are for coroutines), except
 * kl_grpc_stream_cancel. Starting a call runs gRPC code on the caller's stack: about 13 KiB
 * measured (with or without ASan), so the default 64 KiB coroutine stack is enough. Messages are
 * raw bytes; protobuf packing happens above this layer. */
#ifndef KL_SPARK_GRPC_H
#define KL_SPARK_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/loop.h"
#include "runtime/pool.h"
#include "spark/remote.h"

typedef struct kl_grpc kl_grpc;
typedef struct kl_grpc_channel kl_grpc_channel;
typedef struct kl_grpc_stream kl_grpc_stream;

/* gRPC status codes (same numbers as grpc_status_code). */
typedef enum {
    KL_GRPC_OK = 0,
    KL_GRPC_CANCELLED = 1,
    KL_GRPC_UNKNOWN = 2,
    KL_GRPC_INVALID_ARGUMENT = 3,
    KL_GRPC_DEADLINE_EXCEEDED = 4,
    KL_GRPC_NOT_FOUND = 5,
    KL_GRPC_ALREADY_EXISTS = 6,
    KL_GRPC_PERMISSION_DENIED = 7,
    KL_GRPC_RESOURCE_EXHAUSTED = 8,
    KL_GRPC_FAILED_PRECONDITION = 9,
    KL_GRPC_ABORTED = 10,
    KL_GRPC_OUT_OF_RANGE = 11,
    KL_GRPC_UNIMPLEMENTED = 12,
    KL_GRPC_INTERNAL = 13,
    KL_GRPC_UNAVAILABLE = 14,
    KL_GRPC_DATA_LOSS = 15,
    KL_GRPC_UNAUTHENTICATED = 16,
} kl_grpc_code;

/* How a call ended. Every pointer is owned; release with kl_grpc_status_clear. */
typedef struct kl_grpc_status {
    kl_grpc_code code;
    char *details; /* the status message from the server or from gRPC; "" when none */
    char *message; /* one sentence for a user: what failed, where, and what to do; "" when OK */
    uint8_t *details_bin; /* the `grpc-status-details-bin` trailer (a serialized google.rpc.Status),
                             NULL when absent */
    size_t details_bin_len;
} kl_grpc_status;

void kl_grpc_status_clear(kl_grpc_status *st);    /* frees the strings and zeroes *st */
const char *kl_grpc_code_name(kl_grpc_code code); /* "UNAVAILABLE"; static */

/* A message; data is malloc'ed and owned by whoever holds the struct (free(data)). */
typedef struct kl_grpc_bytes {
    uint8_t *data;
    size_t len;
} kl_grpc_bytes;

/* ---- Driver --------------------------------------------------------------------------------- */

/* Binds the gRPC core library (see grpc.c) if that has not happened yet. Returns 0, or -1 with
 * the reason in err. Blocks on file I/O the first time: call it from the pool before the first
 * kl_grpc_new on the loop thread. Thread-safe. */
int kl_grpc_load(char *err, size_t errlen);
/* Coroutine: kl_grpc_load on a worker of pool, parking the caller; at once when already bound. */
int kl_grpc_load_on(kl_pool *pool, char *err, size_t errlen);

/* Starts nthreads driver threads (<= 0: 2), binding the library first (kl_grpc_load). Returns
 * NULL with errno set on failure. */
kl_grpc *kl_grpc_new(kl_loop *loop, int nthreads);
/* Cancels every call still in flight and waits for gRPC to hand each back, frees every channel,
 * joins the threads and shuts gRPC down. Streams the caller still holds become inert: they report
 * CANCELLED and must still be released with kl_grpc_stream_free. Not from a driver thread. */
void kl_grpc_free(kl_grpc *g);

/* ---- Channels ------------------------------------------------------------------------------- */

typedef struct kl_grpc_channel_opts {
    const char *ca_file;    /* PEM roots for TLS instead of gRPC's defaults; NULL: defaults */
    const char *user_agent; /* gRPC primary user agent; NULL: the remote's user_agent, else
                               "kindling/<version>" */
    int max_message_size;   /* bytes either way; 0: the remote's (default 128 MiB) */
    int keepalive_time_ms;  /* 0: KL_GRPC_KEEPALIVE_TIME_MS; < 0: no keepalive pings */
    int idle_timeout_ms;    /* 0: KL_GRPC_IDLE_TIMEOUT_MS */
} kl_grpc_channel_opts;

/* Pings every 6 minutes while calls are open. Spark's grpc-java server (4.0.1 sets no keepalive
 * policy) accepts pings at most every 5 minutes and answers a client that pings more often with
 * GOAWAY "too_many_pings", which kills the calls in flight -- so shorter is worse, not safer.
 * Long queries are not silent anyway on 4.0+ (ExecutionProgress every 2 s). */
#define KL_GRPC_KEEPALIVE_TIME_MS    (6 * 60 * 1000)
#define KL_GRPC_KEEPALIVE_TIMEOUT_MS (20 * 1000)
/* A notebook sits idle for hours, and NATs and load balancers drop idle TCP flows silently (AWS
 * NLB after 350 s, Azure after 4 min); pings without calls would be "too_many_pings" strikes. So
 * the channel instead closes its own connection after 4 idle minutes, and the next cell connects
 * afresh rather than writing into a connection that is already dead. */
#define KL_GRPC_IDLE_TIMEOUT_MS (4 * 60 * 1000)

/* A channel to the endpoint of r (an sc:// URL; the "local" kind must be started first and given
 * as its URL). Security follows kl_sc_remote_transport: insecure, TLS, or gRPC local credentials
 * (loopback only) when a token goes to localhost. The token travels as `authorization: Bearer`
 * metadata on every call, and every extra URL parameter as metadata too. Nothing connects yet:
 * the first call does. opt may be NULL. Returns NULL with a message in err on bad input. */
kl_grpc_channel *kl_grpc_channel_new(kl_grpc *g, const kl_sc_remote *r,
                                     const kl_grpc_channel_opts *opt, char *err, size_t errlen);
/* Drops the caller's reference; calls still open keep the channel until they are freed. */
void kl_grpc_channel_free(kl_grpc_channel *ch);
/* "sc://host:port", as error messages name it; borrowed. */
const char *kl_grpc_channel_endpoint(const kl_grpc_channel *ch);

/* ---- Calls ---------------------------------------------------------------------------------- */

typedef struct kl_grpc_call_opts {
    int64_t timeout_ms;  /* deadline from the start of the call; <= 0: none */
    bool wait_for_ready; /* wait for the server to come up instead of failing fast (UNAVAILABLE) */
} kl_grpc_call_opts;

/* Coroutine: one request, one response. method is the full path, e.g.
 * "/spark.connect.SparkConnectService/AnalyzePlan". Returns 0 with *resp set (caller frees
 * resp->data) and st->code OK, or -1 with *resp empty and st set. opt may be NULL. st is always
 * filled; clear it with kl_grpc_status_clear. */
int kl_grpc_unary(kl_grpc_channel *ch, const char *method, const void *req, size_t len,
                  const kl_grpc_call_opts *opt, kl_grpc_bytes *resp, kl_grpc_status *st);

/* Starts a server-streaming call with one request (copied). Never fails: problems surface as the
 * status that kl_grpc_stream_next ends with. */
kl_grpc_stream *kl_grpc_stream_open(kl_grpc_channel *ch, const char *method, const void *req,
                                    size_t len, const kl_grpc_call_opts *opt);
/* Coroutine: parks until the next message or the end. Returns 1 with *msg set (caller frees
 * msg->data), 0 at a clean end (st OK), -1 at a failed end (st set). After the end, every further
 * call returns the same result again (with a fresh copy of the status). */
int kl_grpc_stream_next(kl_grpc_stream *s, kl_grpc_bytes *msg, kl_grpc_status *st);

/* Starts a client-streaming call: kl_grpc_stream_send any number of times, then
 * kl_grpc_stream_finish. */
kl_grpc_stream *kl_grpc_stream_open_client(kl_grpc_channel *ch, const char *method,
                                           const kl_grpc_call_opts *opt);
/* Coroutine: queues one message (copied), first waiting for the previous send to be taken by the
 * transport. Returns 0, or -1 when the call has already failed (kl_grpc_stream_finish says why). */
int kl_grpc_stream_send(kl_grpc_stream *s, const void *msg, size_t len);
/* Coroutine: half-closes, then waits for the single response and the status; like
 * kl_grpc_unary's result. */
int kl_grpc_stream_finish(kl_grpc_stream *s, kl_grpc_bytes *resp, kl_grpc_status *st);

/* Any thread, any time before kl_grpc_stream_free: ends the call with CANCELLED (unless it ended
 * already); a coroutine waiting on it wakes. The server sees the RPC cancelled.
 * Known gRPC core bug (grpc/grpc#19655, #38758; seen with 1.51 against Spark): a cancel or a
 * deadline that strikes just as the call starts can send RST_STREAM for a stream whose HEADERS
 * were never written; Spark's Netty server answers with a connection error, so other calls on the
 * same connection fail once with UNAVAILABLE "Socket closed" -- retry those (the official clients
 * retry UNAVAILABLE anyway). */
void kl_grpc_stream_cancel(kl_grpc_stream *s);
/* Cancels the call if it is still running and releases it; no coroutine may be waiting on it. */
void kl_grpc_stream_free(kl_grpc_stream *s);

/* Metrics: call_done when a call has its final status (method as "ExecutePlan"), received with
 * the size of each message received. Set once at start-up, before any call; both run on the
 * loop thread; a NULL member is skipped. */
typedef struct kl_grpc_observer {
    void (*call_done)(const char *method, kl_grpc_code code);
    void (*received)(size_t bytes);
} kl_grpc_observer;
void kl_grpc_set_observer(const kl_grpc_observer *obs);

/* Calls in flight on this driver (started and not yet fully handed back by gRPC). */
size_t kl_grpc_active_calls(const kl_grpc *g);

#endif
