/* ZeroMQ sockets on libuv. ZMQ_FD is edge-triggered and only says ZMQ_EVENTS changed, so after
 * every wake-up and after every send ZMQ_EVENTS is read again and readers/writers are resumed until
 * the socket reports EAGAIN. Coroutines on the loop thread only. */
#ifndef KL_RUNTIME_ZSOCK_H
#define KL_RUNTIME_ZSOCK_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "runtime/loop.h"

/* A multipart message: frames owned by the struct. */
typedef struct kl_frames {
    zmq_msg_t *v;
    size_t n, cap;
} kl_frames;

void kl_frames_init(kl_frames *f);
/* Closes every frame; the struct can be reused. */
void kl_frames_clear(kl_frames *f);
/* Makes room for n frames in all, so that appending up to there never reallocates. 0 or -ENOMEM. */
int kl_frames_reserve(kl_frames *f, size_t n);
/* Appends a copy of data. 0 or -ENOMEM. */
int kl_frames_add(kl_frames *f, const void *data, size_t len);
/* Appends msg, taking ownership of its contents (msg is left empty). */
int kl_frames_add_msg(kl_frames *f, zmq_msg_t *msg);
const void *kl_frames_data(const kl_frames *f, size_t i);
size_t kl_frames_size(const kl_frames *f, size_t i);

typedef struct kl_zsock kl_zsock;

/* Wraps a new ZeroMQ socket of the given type made in zctx. NULL on error (errno set). */
kl_zsock *kl_zsock_new(kl_loop *loop, void *zctx, int type);
/* The raw socket, for zmq_setsockopt before bind/connect. */
void *kl_zsock_raw(kl_zsock *zs);
int kl_zsock_bind(kl_zsock *zs, const char *endpoint);    /* 0 or -errno */
int kl_zsock_connect(kl_zsock *zs, const char *endpoint); /* 0 or -errno */
/* The endpoint actually bound (resolves port 0 / "*"), into buf. 0 or -errno. */
int kl_zsock_last_endpoint(kl_zsock *zs, char *buf, size_t len);

/* Coroutine: parks until a whole multipart message arrives; appends its frames to out.
 * 0, or -ECANCELED once the socket is closing. */
int kl_zsock_recv(kl_zsock *zs, kl_frames *out);
/* Coroutine: sends every frame of f as one message, consuming f (left empty). Parks while the
 * socket answers EAGAIN (high-water mark: backpressure, never a silent drop). Concurrent senders
 * are serialised so multipart messages never interleave. 0 or -errno (-EHOSTUNREACH: a ROUTER
 * peer is gone; the message is dropped). */
int kl_zsock_send(kl_zsock *zs, kl_frames *f);
/* Answers one message that was waiting on the socket by filling reply (left empty: no answer).
 * Must not park: it runs inside a send, holding the socket's send slot. */
typedef void (*kl_zsock_answer_fn)(void *arg, const kl_frames *in, kl_frames *reply);
/* fn answers the input that sends find waiting while input is expected (kl_zsock_expect_input).
 * An XPUB applies a subscription the moment ZeroMQ sees it, possibly inside a send, so this is
 * how a subscriber is greeted before any other message reaches it. Input that no send finds stays
 * for kl_zsock_recv. */
void kl_zsock_answer_input(kl_zsock *zs, kl_zsock_answer_fn fn, void *arg);
/* n more input messages are on their way: until they have been read, or for ms milliseconds of
 * the loop clock, each send first reads whatever input has arrived and sends the answers ahead of
 * its message. Not always: that read costs a system call or two per send. */
void kl_zsock_expect_input(kl_zsock *zs, unsigned n, uint64_t ms);
/* Closes the socket (linger 0 unless set), wakes waiters with -ECANCELED, frees zs once libuv
 * has released the poll handle. */
void kl_zsock_close(kl_zsock *zs);

#endif
