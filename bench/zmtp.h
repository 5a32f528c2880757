/* A minimal ZMTP 3.0 client (RFC 23/ZMTP) for kl_loadgen: the NULL mechanism, DEALER and SUB
 * sockets, one TCP connection each, driven from the caller's epoll loop without libzmq's I/O
 * thread.
 *
 * The caller owns the file descriptor and its epoll registration (level-triggered EPOLLIN, plus
 * EPOLLOUT while kl_zmtp_wants_write says so). Outgoing messages are copied into an output buffer
 * at once; messages queued before the peer's READY are held back until the handshake is over.
 * Incoming messages are handed to a callback as slices into the read buffer, valid only during
 * the call. Errors are sticky: after the first one every call fails, and kl_zmtp_error says why.
 */
#ifndef KL_BENCH_ZMTP_H
#define KL_BENCH_ZMTP_H

#include <stdbool.h>
#include <stddef.h>

#include "jupyter/wire.h" /* kl_slice */

/* Frames larger than this are refused rather than buffered, and so are whole messages. */
#define KL_ZMTP_MAX_FRAME   ((size_t)64 << 20)
#define KL_ZMTP_MAX_MESSAGE ((size_t)64 << 20)

typedef enum { KL_ZMTP_DEALER, KL_ZMTP_SUB } kl_zmtp_type;

typedef struct kl_zmtp {
    int fd; /* borrowed: never closed here */
    kl_zmtp_type type;
    int state;      /* internal: greeting, READY or open */
    bool connected; /* a byte has gone either way */
    unsigned char *in;
    size_t in_pos, in_len, in_cap; /* in_pos: start of the first message not yet handed over */
    unsigned char *out;
    size_t out_pos, out_len, out_cap;
    size_t out_held; /* before the peer's READY only out[..out_held) (our handshake) may go */
    kl_slice *parts; /* the callback's array, reused */
    size_t parts_cap;
    char err[256]; /* "" until something fails */
} kl_zmtp;

/* Opens a non-blocking TCP connection to host:port (the connect may still be in progress; its
 * failure then shows in the first read or flush). The fd, or -1 with a message in err. */
int kl_zmtp_connect_tcp(const char *host, int port, char *err, size_t errlen);

/* Starts the handshake on fd: queues our greeting and READY (Socket-Type, and for a DEALER the
 * Identity routing_id, which may be empty). Call kl_zmtp_flush next. 0, or -1 (out of memory). */
int kl_zmtp_init(kl_zmtp *z, int fd, kl_zmtp_type type, const void *routing_id, size_t id_len);
/* Frees the buffers; the fd stays open. */
void kl_zmtp_free(kl_zmtp *z);

/* Queues one message of n parts (copied). 0, or -1 on error. */
int kl_zmtp_send(kl_zmtp *z, const kl_slice *parts, size_t n);
/* Writes as much queued output as the socket takes. 0 (see kl_zmtp_wants_write for the rest), or
 * -1 on error. */
int kl_zmtp_flush(kl_zmtp *z);
/* Whether output is waiting for the socket to become writable (register EPOLLOUT). */
bool kl_zmtp_wants_write(const kl_zmtp *z);

/* Called once per whole incoming message. A negative return stops kl_zmtp_read, which returns
 * it. The callback may queue and flush output on z, but not read. */
typedef int (*kl_zmtp_msg_fn)(void *arg, const kl_slice *parts, size_t n);
/* Reads what the socket has, runs the handshake and commands (PING is answered with PONG), and
 * hands each complete message to fn. Returns 0 when the socket has nothing more for now (it may
 * stop before EAGAIN: call again when EPOLLIN fires), fn's negative return, or -1 on an error
 * (including the peer closing the connection). Then writes what waits (a PONG, the messages held
 * during the handshake, what fn queued) as kl_zmtp_flush does. */
int kl_zmtp_read(kl_zmtp *z, kl_zmtp_msg_fn fn, void *arg);

/* Why the connection failed; "" while it has not. */
const char *kl_zmtp_error(const kl_zmtp *z);

#endif
