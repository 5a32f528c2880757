/* ZMTP 3.0 client side, written from RFC 23/ZMTP (with PING/PONG from RFC 37/ZMTP 3.1). */
#include "zmtp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

enum { ZMTP_GREETING, ZMTP_AWAIT_READY, ZMTP_OPEN };

enum { F_MORE = 0x01, F_LONG = 0x02, F_COMMAND = 0x04 };

#define GREETING_LEN 64
/* A DEALER here waits for one reply at a time: a small buffer keeps a thousand of them in cache.
 * A SUB takes a stream: a large one takes many messages per read. Both grow as messages need. */
#define IN_INITIAL_DEALER 8192
#define IN_INITIAL_SUB    262144
#define OUT_INITIAL       4096
/* The largest message, its frame headers and the start of the next must fit the read buffer. */
#define IN_MAX (KL_ZMTP_MAX_MESSAGE + IN_INITIAL_SUB)

static int zmtp_fail(kl_zmtp *z, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int zmtp_fail(kl_zmtp *z, const char *fmt, ...) {
    if (!z->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(z->err, sizeof z->err, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int kl_zmtp_connect_tcp(const char *host, int port, char *err, size_t errlen) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
    int rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    /* Requests are small and answered one at a time: Nagle would hold each one back. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "connect to %s:%d: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int zmtp_reserve(unsigned char **buf, size_t *cap, size_t need, size_t initial) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : initial;
    while (c < need) c *= 2;
    unsigned char *b = realloc(*buf, c);
    if (!b) return -1;
    *buf = b;
    *cap = c;
    return 0;
}

/* Room for len more bytes of output, or NULL. */
static unsigned char *zmtp_out_room(kl_zmtp *z, size_t len) {
    if (z->out_pos > 0 && z->out_pos >= z->out_cap / 2) {
        memmove(z->out, z->out + z->out_pos, z->out_len - z->out_pos);
        z->out_len -= z->out_pos;
        z->out_held = z->out_held > z->out_pos ? z->out_held - z->out_pos : 0;
        z->out_pos = 0;
    }
    if (zmtp_reserve(&z->out, &z->out_cap, z->out_len + len, OUT_INITIAL) < 0) {
        zmtp_fail(z, "out of memory for %zu bytes of output", z->out_len + len);
        return NULL;
    }
    unsigned char *p = z->out + z->out_len;
    z->out_len += len;
    return p;
}

static void put_be32(unsigned char *p, uint32_t v) {
    for (int i = 3; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static uint32_t get_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes a frame header for a body of len bytes at p; returns the header's length. */
static size_t zmtp_frame_header(unsigned char *p, unsigned flags, size_t len) {
    if (len > 255) {
        p[0] = (unsigned char)(flags | F_LONG);
        put_be64(p + 1, len);
        return 9;
    }
    p[0] = (unsigned char)flags;
    p[1] = (unsigned char)len;
    return 2;
}

/* Queues a command frame whose body is name and then data. */
static int zmtp_queue_command(kl_zmtp *z, const char *name, const void *data, size_t len) {
    size_t nlen = strlen(name), body = 1 + nlen + len;
    unsigned char *p = zmtp_out_room(z, 9 + body);
    if (!p) return -1;
    size_t h = zmtp_frame_header(p, F_COMMAND, body);
    p[h] = (unsigned char)nlen;
    memcpy(p + h + 1, name, nlen);
    if (len) memcpy(p + h + 1 + nlen, data, len);
    z->out_len -= 9 - h; /* the room was reserved for a long header */
    return 0;
}

/* Appends one READY metadata property (name, 4-byte length, value) to buf at *n. */
static void zmtp_property(unsigned char *buf, size_t *n, const char *name, const void *value,
                          size_t len) {
    size_t nlen = strlen(name);
    buf[(*n)++] = (unsigned char)nlen;
    memcpy(buf + *n, name, nlen);
    *n += nlen;
    put_be32(buf + *n, (uint32_t)len);
    *n += 4;
    memcpy(buf + *n, value, len);
    *n += len;
}

int kl_zmtp_init(kl_zmtp *z, int fd, kl_zmtp_type type, const void *routing_id, size_t id_len) {
    *z = (kl_zmtp){.fd = fd, .type = type, .state = ZMTP_GREETING};
    /* ZMTP limits the routing id to 255 bytes. */
    if (id_len > 255) return zmtp_fail(z, "routing id of %zu bytes (at most 255)", id_len);
    unsigned char *g = zmtp_out_room(z, GREETING_LEN);
    if (!g) return -1;
    memset(g, 0, GREETING_LEN);
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3; /* version 3.0 */
    g[11] = 0;
    memcpy(g + 12, "NULL", 4);
    g[32] = 0; /* as-server: we are the client */

    unsigned char meta[2 * (1 + 16 + 4) + 8 + 255];
    size_t n = 0;
    const char *own = type == KL_ZMTP_DEALER ? "DEALER" : "SUB";
    zmtp_property(meta, &n, "Socket-Type", own, strlen(own));
    if (type == KL_ZMTP_DEALER) zmtp_property(meta, &n, "Identity", routing_id, id_len);
    if (zmtp_queue_command(z, "READY", meta, n) < 0) return -1;
    z->out_held = z->out_len;
    return 0;
}

void kl_zmtp_free(kl_zmtp *z) {
    free(z->in);
    free(z->out);
    free(z->parts);
    z->in = z->out = NULL;
    z->parts = NULL;
    z->in_cap = z->out_cap = z->parts_cap = 0;
}

int kl_zmtp_send(kl_zmtp *z, const kl_slice *parts, size_t n) {
    if (z->err[0]) return -1;
    if (n == 0) return zmtp_fail(z, "a message needs at least one part");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += 9 + parts[i].len;
    unsigned char *p = zmtp_out_room(z, total);
    if (!p) return -1;
    unsigned char *start = p;
    for (size_t i = 0; i < n; i++) {
        p += zmtp_frame_header(p, i + 1 < n ? F_MORE : 0, parts[i].len);
        if (parts[i].len) memcpy(p, parts[i].data, parts[i].len);
        p += parts[i].len;
    }
    z->out_len -= total - (size_t)(p - start);
    return 0;
}

static size_t zmtp_out_limit(const kl_zmtp *z) {
    return z->state == ZMTP_OPEN ? z->out_len : z->out_held;
}

bool kl_zmtp_wants_write(const kl_zmtp *z) {
    return !z->err[0] && z->out_pos < zmtp_out_limit(z);
}

const char *kl_zmtp_error(const kl_zmtp *z) {
    return z->err;
}

/* A non-blocking connect reports its failure to the first send or receive. */
static const char *zmtp_io_what(const kl_zmtp *z, const char *op) {
    return z->connected ? op : "cannot connect";
}

int kl_zmtp_flush(kl_zmtp *z) {
    if (z->err[0]) return -1;
    size_t limit = zmtp_out_limit(z);
    while (z->out_pos < limit) {
        ssize_t w = send(z->fd, z->out + z->out_pos, limit - z->out_pos, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            /* Also what a connect still in progress answers. */
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return zmtp_fail(z, "%s: %s", zmtp_io_what(z, "send"), strerror(errno));
        }
        z->out_pos += (size_t)w;
        z->connected = true;
    }
    if (z->out_pos == z->out_len) z->out_pos = z->out_len = z->out_held = 0;
    return 0;
}

static int zmtp_check_greeting(kl_zmtp *z) {
    const unsigned char *g = z->in + z->in_pos;
    size_t have = z->in_len - z->in_pos;
    /* Checked as soon as the bytes arrive, so a peer that is not ZMTP 3 fails at once instead of
     * leaving us waiting for 64 bytes it will never send. */
    if (have >= 1 && g[0] != 0xFF) return zmtp_fail(z, "the peer is not a ZMTP peer");
    if (have >= 10 && g[9] != 0x7F) return zmtp_fail(z, "the peer is not a ZMTP 3 peer");
    if (have >= 11 && g[10] < 3)
        return zmtp_fail(z, "the peer speaks ZMTP %d, not 3 or later", g[10]);
    if (have < GREETING_LEN) return 0;
    static const unsigned char null_mech[20] = "NULL";
    if (memcmp(g + 12, null_mech, sizeof null_mech) != 0)
        return zmtp_fail(z,
                         "the peer wants the security mechanism \"%.20s\"; this client speaks only "
                         "NULL",
                         (const char *)g + 12);
    z->in_pos += GREETING_LEN;
    z->state = ZMTP_AWAIT_READY;
    return 0;
}

static bool zmtp_peer_type_ok(kl_zmtp_type own, const char *t, size_t len) {
    static const char *const router[] = {"ROUTER", NULL}, *const pub[] = {"PUB", "XPUB", NULL};
    for (const char *const *p = own == KL_ZMTP_DEALER ? router : pub; *p; p++)
        if (strlen(*p) == len && memcmp(*p, t, len) == 0) return true;
    return false;
}

/* The peer's READY metadata: only Socket-Type matters to us. */
static int zmtp_ready(kl_zmtp *z, const unsigned char *p, size_t len) {
    const char *peer_type = NULL;
    size_t peer_type_len = 0;
    while (len > 0) {
        size_t nlen = p[0];
        if (len < 1 + nlen + 4) return zmtp_fail(z, "malformed READY metadata from the peer");
        const unsigned char *name = p + 1;
        uint32_t vlen = get_be32(p + 1 + nlen);
        if (len - 1 - nlen - 4 < vlen)
            return zmtp_fail(z, "malformed READY metadata from the peer");
        const unsigned char *value = p + 1 + nlen + 4;
        if (nlen == 11 && strncasecmp((const char *)name, "Socket-Type", 11) == 0) {
            peer_type = (const char *)value;
            peer_type_len = vlen;
        }
        p += 1 + nlen + 4 + vlen;
        len -= 1 + nlen + 4 + vlen;
    }
    const char *want = z->type == KL_ZMTP_DEALER ? "ROUTER" : "PUB or XPUB";
    if (!peer_type) return zmtp_fail(z, "the peer's READY has no Socket-Type (want %s)", want);
    if (!zmtp_peer_type_ok(z->type, peer_type, peer_type_len))
        return zmtp_fail(z, "the peer is a %.*s socket; a %s needs %s", (int)peer_type_len,
                         peer_type, z->type == KL_ZMTP_DEALER ? "DEALER" : "SUB", want);
    z->state = ZMTP_OPEN;
    return 0;
}

static int zmtp_command(kl_zmtp *z, const unsigned char *body, size_t len) {
    if (len < 1 || len < 1 + (size_t)body[0]) return zmtp_fail(z, "malformed command frame");
    size_t nlen = body[0];
    const char *name = (const char *)body + 1;
    const unsigned char *data = body + 1 + nlen;
    size_t dlen = len - 1 - nlen;
#define IS(s) (nlen == sizeof s - 1 && memcmp(name, s, nlen) == 0)
    if (IS("ERROR")) {
        size_t rlen = dlen > 0 ? data[0] : 0;
        if (rlen > dlen - 1) rlen = dlen - 1;
        return zmtp_fail(z, "the peer refused the connection: %.*s", (int)rlen,
                         (const char *)data + 1);
    }
    if (z->state == ZMTP_AWAIT_READY) {
        if (!IS("READY")) return zmtp_fail(z, "the peer sent %.*s before READY", (int)nlen, name);
        return zmtp_ready(z, data, dlen);
    }
    if (IS("PING")) {
        /* PING is a 2-byte TTL and up to 16 bytes of context, which PONG sends back. */
        if (dlen < 2 || dlen > 2 + 16) return zmtp_fail(z, "malformed PING from the peer");
        return zmtp_queue_command(z, "PONG", data + 2, dlen - 2);
    }
#undef IS
    return 0; /* other commands (PONG, SUBSCRIBE to a client ...) mean nothing here */
}

static int zmtp_add_part(kl_zmtp *z, size_t n, const unsigned char *data, size_t len) {
    if (n == z->parts_cap) {
        size_t cap = z->parts_cap ? z->parts_cap * 2 : 16;
        kl_slice *v = realloc(z->parts, cap * sizeof *v);
        if (!v) return zmtp_fail(z, "out of memory for %zu message parts", cap);
        z->parts = v;
        z->parts_cap = cap;
    }
    z->parts[n] = (kl_slice){data, len};
    return 0;
}

/* Consumes every complete frame in the read buffer; a partial message stays from in_pos. Frames
 * of a message are found again on the next call rather than remembered: slices into a buffer
 * that may move could not be kept, and headers are cheap to walk. */
static int zmtp_parse(kl_zmtp *z, kl_zmtp_msg_fn fn, void *arg) {
    if (z->state == ZMTP_GREETING && (zmtp_check_greeting(z) < 0 || z->state == ZMTP_GREETING))
        return z->err[0] ? -1 : 0;
    size_t p = z->in_pos, n = 0, msg_bytes = 0;
    for (;;) {
        const unsigned char *h = z->in + p;
        size_t have = z->in_len - p;
        if (have < 2) break;
        unsigned flags = h[0];
        if (flags & ~(unsigned)(F_MORE | F_LONG | F_COMMAND))
            return zmtp_fail(z, "frame with reserved flag bits 0x%02x", flags);
        size_t hlen = flags & F_LONG ? 9 : 2;
        if (have < hlen) break;
        uint64_t size = flags & F_LONG ? get_be64(h + 1) : h[1];
        if (size > KL_ZMTP_MAX_FRAME)
            return zmtp_fail(z, "the peer sent a frame of %llu bytes (limit %zu)",
                             (unsigned long long)size, KL_ZMTP_MAX_FRAME);
        msg_bytes += size;
        if (msg_bytes > KL_ZMTP_MAX_MESSAGE)
            return zmtp_fail(z, "the peer sent a message of more than %zu bytes",
                             KL_ZMTP_MAX_MESSAGE);
        if (have - hlen < size) break;
        const unsigned char *body = h + hlen;
        p += hlen + size;
        if (flags & F_COMMAND) {
            if (n > 0 || (flags & F_MORE)) return zmtp_fail(z, "command frame inside a message");
            if (zmtp_command(z, body, size) < 0) return -1;
            z->in_pos = p;
            msg_bytes = 0;
            continue;
        }
        if (z->state != ZMTP_OPEN) return zmtp_fail(z, "the peer sent a message before READY");
        if (zmtp_add_part(z, n++, body, size) < 0) return -1;
        if (flags & F_MORE) continue;
        z->in_pos = p;
        int rc = fn(arg, z->parts, n);
        if (rc < 0) return rc;
        n = msg_bytes = 0;
    }
    if (z->in_pos == z->in_len) z->in_pos = z->in_len = 0;
    return 0;
}

/* Makes free space at the end of the read buffer: moves the unread part to the front when the
 * tail is short, grows the buffer only when that part alone fills it. */
static int zmtp_in_room(kl_zmtp *z) {
    if (z->in_pos > 0 && z->in_cap - z->in_len < z->in_cap / 2) {
        memmove(z->in, z->in + z->in_pos, z->in_len - z->in_pos);
        z->in_len -= z->in_pos;
        z->in_pos = 0;
    }
    if (z->in_len < z->in_cap) return 0;
    if (z->in_cap >= IN_MAX) return zmtp_fail(z, "read buffer full at %zu bytes", z->in_cap);
    size_t initial = z->type == KL_ZMTP_SUB ? IN_INITIAL_SUB : IN_INITIAL_DEALER;
    if (zmtp_reserve(&z->in, &z->in_cap, z->in_len + 1, initial) < 0)
        return zmtp_fail(z, "out of memory for a %zu-byte read buffer", z->in_cap * 2);
    return 0;
}

int kl_zmtp_read(kl_zmtp *z, kl_zmtp_msg_fn fn, void *arg) {
    if (z->err[0]) return -1;
    for (;;) {
        if (zmtp_in_room(z) < 0) return -1;
        size_t space = z->in_cap - z->in_len;
        ssize_t r = recv(z->fd, z->in + z->in_len, space, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return zmtp_fail(z, "%s: %s", zmtp_io_what(z, "receive"), strerror(errno));
        }
        if (r == 0)
            return zmtp_fail(z, "the peer closed the connection%s",
                             z->state == ZMTP_OPEN ? "" : " during the handshake");
        z->in_len += (size_t)r;
        z->connected = true;
        int rc = zmtp_parse(z, fn, arg);
        if (rc < 0) return rc;
        /* A short read drained the socket; level-triggered epoll reports anything newer, so the
         * read that would only say EAGAIN is saved. */
        if ((size_t)r < space) break;
    }
    return kl_zmtp_wants_write(z) ? kl_zmtp_flush(z) : 0;
}
