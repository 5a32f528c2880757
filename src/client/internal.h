/* The client library's shared internals: the client, its sockets, requests and comms. Everything
 * here runs on the client's loop thread except what heartbeat.h says. */
#ifndef KL_CLIENT_INTERNAL_H
#define KL_CLIENT_INTERNAL_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/curve.h"
#include "client/heartbeat.h"
#include "jupyter/message.h"
#include "jupyter/wire.h"
#include "kindling/client.h"
#include "runtime/strmap.h"
#include "runtime/uuid.h"

/* A message handed to callbacks: the decoded kl_msg plus the strings the accessors made. */
struct kindling_msg {
    kl_msg m;
    json_t *root;  /* {header, parent_header, metadata, content}, built on first lookup */
    json_t *texts; /* array of JSON-text strings made by lookups; they live with the message */
    char *content_text;
};

struct kindling_bundle {
    json_t *data; /* borrowed from msg's content */
    kindling_msg *msg;
};

/* One outgoing multipart message; sent counts the frames already accepted by ZeroMQ. */
typedef struct kl_client_out {
    struct kl_client_out *next;
    kl_frames frames;
    size_t sent;
    kindling_channel channel;
} kl_client_out;

/* The PAIR socket that reports the stdin socket's handshake (zmq_socket_monitor). */
#define KL_CLIENT_MONITOR 4
#define KL_CLIENT_NSOCK   5

typedef struct kl_client_sock {
    void *z; /* NULL once closed */
    uv_poll_t poll;
    bool poll_open;
    kl_client_out *head, *tail; /* waiting for POLLOUT */
} kl_client_sock;

typedef struct kl_client_req {
    char id[KL_UUID_STRLEN];
    kindling_channel channel;
    bool execute;  /* outputs are routed to h, and the reply waits for idle */
    bool internal; /* the client's own readiness probe: nobody to tell */
    bool idle;
    kindling_execute_handlers h;
    kindling_reply_cb cb;
    void *user;
    kindling_msg *reply; /* held until idle */
    uint64_t reply_at;   /* loop time the held reply came */
    /* A blocking call waiting for this request: told when it ends, and given the reply. */
    bool *done;
    int *status;
    kindling_msg **sink;
} kl_client_req;

struct kindling_comm {
    kindling_client *c;
    char id[KL_UUID_STRLEN];
    kindling_comm_handlers h;
    void *user;
};

struct kindling_client {
    uv_loop_t *loop;
    uv_loop_t own_loop;
    bool private_loop;
    void *zctx;
    bool own_zctx;

    kindling_client_options opts; /* strings below are the client's copies */
    char *username;
    char session[128];
    char *opt_curve_public, *opt_curve_secret;

    kl_signer signer;
    bool signer_set;
    kl_client_curve curve;
    kl_client_sock sock[5]; /* by kindling_channel, then the stdin monitor */
    kl_client_hb *hb;
    uv_async_t hb_async;
    int hb_reported;     /* -1 nothing said yet, 0 lost, 1 alive */
    uv_timer_t tick;     /* readiness probes, connect timeout, held replies */
    uv_timer_t again;    /* a pump that stopped at its budget continues here */
    uv_timer_t deadline; /* timeout of a blocking call */
    int open_handles;
    bool handles_made;

    bool connected, ready, ready_reported, closing;
    bool iopub_live; /* a message came on IOPub: the subscription is in place */
    bool stdin_up;   /* stdin's handshake is done: the kernel can route input_request to it */
    uint64_t connected_at, last_probe;
    kl_client_out *held_head, *held_tail; /* requests waiting for readiness, any channel */

    kl_strmap *requests; /* msg_id -> kl_client_req */
    kl_strmap *comms;    /* comm_id -> kindling_comm */
    kl_strmap *inputs;   /* input_request msg_id -> its header (json_t) */

    int depth; /* frames on the stack that use the client: it is freed only at 0 */
    bool pumping, repump;
    bool blocking, break_requested, timed_out;

    char err[512];
};

/* Records a failure: formats the message into c->err and returns code. */
int kl_client_fail(kindling_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Thread-local error for failures without a client. */
int kl_client_fail_global(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sends msg_type with content (stolen) on channel, with parent_header (borrowed, NULL = {}) and
 * buffers (copied). Writes the msg_id into id. */
int kl_client_send(kindling_client *c, kindling_channel ch, const char *msg_type, json_t *content,
                   json_t *parent_header, const char *subshell_id, const kindling_buffer *buffers,
                   size_t nbuffers, char id[KL_UUID_STRLEN]);
/* Reads every socket until none has work left (re-entrant calls just ask for another round). */
void kl_client_pump(kindling_client *c);
/* Frees c when it is closing and nothing uses it any more. */
void kl_client_maybe_free(kindling_client *c);

/* Requests (request.c). The route functions take ownership of km. */
void kl_client_route_output(kindling_client *c, kindling_msg *km); /* IOPub of a request */
void kl_client_route_reply(kindling_client *c, kindling_channel ch, kindling_msg *km);
void kl_client_route_stdin(kindling_client *c, kindling_msg *km);
/* Delivers replies whose idle status never came (after a grace period). */
void kl_client_requests_tick(kindling_client *c, uint64_t now);
/* Ends every pending request with KINDLING_ECLOSED. */
void kl_client_fail_all(kindling_client *c);
/* Sends and registers a request (content stolen); NULL on failure (c->err set). */
kl_client_req *kl_client_start_request(kindling_client *c, kindling_channel ch,
                                       const char *msg_type, json_t *content,
                                       const char *subshell_id, kindling_reply_cb cb, void *user,
                                       const kindling_execute_handlers *h, int *rc);

/* Sends and registers an execute_request; NULL on failure (*rc set). */
kl_client_req *kl_client_execute_start(kindling_client *c, const char *code,
                                       const kindling_execute_options *opts,
                                       const kindling_execute_handlers *h, void *user, int *rc);

/* Messages (message.c) */
kindling_msg *kl_client_msg_new(void); /* an empty message, kl_msg initialised */
void kl_client_msg_release(kindling_msg *km);
json_t *kl_client_json_arg(kindling_client *c, const char *json, const char *what, int *rc);

/* Comms (comm.c): IOPub comm_* traffic. Returns true when the message was a comm's. */
bool kl_client_comm_route(kindling_client *c, kindling_msg *km);
/* Drops every comm without telling the kernel (the client is closing). */
void kl_client_comm_drop_all(kindling_client *c);

#endif
