/* `kindling launch`: the remote kernel launcher of Jupyter Enterprise Gateway (EG), written from
 * EG's launcher protocol:
 *   - EG starts the launcher with the kernel id, its response address (host:port), its RSA public
 *     key (base64 DER, PEM armour stripped) and a port range; on Kubernetes the same values arrive
 *     as the environment variables KERNEL_ID, RESPONSE_ADDRESS, PUBLIC_KEY and PORT_RANGE;
 *   - the launcher chooses five kernel ports and a communication port in the range, writes a
 *     connection file (key: a random UUID, hmac-sha256) and connects to the response address once
 *     to send the connection info plus pid, pgid, comm_port and kernel_id, encrypted (payload
 *     version 1, see kl_launch_encrypt), closing the connection to mark the end;
 *   - EG then connects to comm_port once per request and sends one JSON object before closing:
 *     {"signum": n} (0 is a liveness poll) or {"shutdown": 1}.
 * The kernel runs on this thread (kl_kernel_main); a listener thread sends the connection info
 * once the kernel's shell port accepts connections, then serves the communication port. */
#include "kernel/launch.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jupyter/connection.h"
#include "kernel/kernel.h"
#include "kernel/options.h"
#include "runtime/log.h"
#include "runtime/uuid.h"

#define MOD           "launch"
#define AES_KEY_BYTES 16
/* EG's defaults for the smallest port range and the number of extra tries per port. */
#define DEFAULT_MIN_RANGE  1000
#define DEFAULT_RETRIES    5
#define REQUEST_MAX        65536
#define REQUEST_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 5000
#define READY_TIMEOUT_MS   30000
#define SEND_ATTEMPTS      5

static const char *USAGE =
    "Usage: kindling launch --RemoteProcessProxy.kernel-id ID\n"
    "         --RemoteProcessProxy.response-address HOST:PORT\n"
    "         --RemoteProcessProxy.public-key KEY [--RemoteProcessProxy.port-range A..B]\n"
    "         [options]\n"
    "\n"
    "Starts a kernel for Jupyter Enterprise Gateway: picks its ports in the range, sends the\n"
    "connection info to the gateway's response address encrypted with the gateway's public key,\n"
    "and obeys signal and shutdown requests the gateway sends to its communication port.\n"
    "The --RemoteProcessProxy.* options may also be given without that prefix, or through the\n"
    "environment: KERNEL_ID, RESPONSE_ADDRESS, PUBLIC_KEY, PORT_RANGE (as EG's Kubernetes pods\n"
    "receive them). --RemoteProcessProxy.spark-context-initialization-mode, --cluster-type and\n"
    "--kernel-class-name are accepted and ignored.\n"
    "\n"
    "      --connection-file PATH  where to write the connection file (default: a new file\n"
    "                              kernel-ID_*.json in $TMPDIR or /tmp; removed at exit)\n"
    "      --ip ADDR               address the kernel binds and advertises (default 0.0.0.0)\n"
    "      --spark-remote URL      Spark Connect endpoint (else SPARK_REMOTE, else local)\n"
    "      --log-level LEVEL       debug, info, warn (default) or error\n"
    "      --log-format FORMAT     plain (default) or json\n"
    "      --history-file PATH     SQLite execution history file\n"
    "      --no-history            keep no history on disk\n"
    "      --display-limit N       rows shown per result (default 1000)\n"
    "      and every other `kindling kernel` option (see kindling help kernel)\n"
    "  -h, --help                  this text\n"
    "\n"
    "Port range size: at least $EG_MIN_PORT_RANGE_SIZE (default 1000) ports unless 0..0; tries\n"
    "per port: 1 + $EG_MAX_PORT_RANGE_RETRIES (default 5).\n";

/* ---- payload encryption ------------------------------------------------------------------- */

static void ssl_error(char *err, size_t errlen, const char *what) {
    char detail[256] = "";
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, *detail ? ": " : "", detail);
}

/* The base64 body of a PEM block, or the whole text when it has no armour (EG strips it). */
static int pem_body(const char *text, const char **body, size_t *len) {
    const char *begin = strstr(text, "-----BEGIN");
    if (!begin) {
        *body = text, *len = strlen(text);
        return 0;
    }
    const char *start = strstr(begin + 10, "-----");
    if (!start) return -1;
    start += 5;
    const char *end = strstr(start, "-----END");
    if (!end) return -1;
    *body = start, *len = (size_t)(end - start);
    return 0;
}

/* Decodes base64 that may contain whitespace; returns a malloc'd buffer (caller frees). */
static unsigned char *b64_decode(const char *text, size_t len, size_t *out_len) {
    unsigned char *out = malloc(len / 4 * 3 + 4);
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (!out || !ctx || len > INT32_MAX) goto fail;
    int n = 0, tail = 0;
    EVP_DecodeInit(ctx);
    if (EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)text, (int)len) < 0) goto fail;
    if (EVP_DecodeFinal(ctx, out + n, &tail) != 1) goto fail;
    EVP_ENCODE_CTX_free(ctx);
    *out_len = (size_t)n + (size_t)tail;
    return out;
fail:
    EVP_ENCODE_CTX_free(ctx);
    free(out);
    return NULL;
}

/* Single-line base64 (caller frees). */
static char *b64_encode(const unsigned char *data, size_t len) {
    if (len > INT32_MAX / 2) return NULL;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out) return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* EG sends a SubjectPublicKeyInfo; a bare PKCS#1 RSAPublicKey is accepted too. */
static EVP_PKEY *load_public_key(const char *text, char *err, size_t errlen) {
    const char *body;
    size_t body_len, der_len;
    if (!text || !*text || pem_body(text, &body, &body_len) != 0) {
        snprintf(err, errlen, "the public key is empty or not valid PEM");
        return NULL;
    }
    unsigned char *der = b64_decode(body, body_len, &der_len);
    if (!der || der_len == 0) {
        free(der);
        snprintf(err, errlen, "the public key is not base64");
        return NULL;
    }
    const unsigned char *p = der;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)der_len);
    if (!pkey) {
        p = der;
        pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)der_len);
    }
    free(der);
    if (!pkey) {
        ssl_error(err, errlen, "the public key is not an RSA public key (DER)");
        return NULL;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        EVP_PKEY_free(pkey);
        snprintf(err, errlen, "the public key is not an RSA key");
        return NULL;
    }
    return pkey;
}

static unsigned char *rsa_encrypt(EVP_PKEY *pkey, const unsigned char *in, size_t in_len,
                                  size_t *out_len, char *err, size_t errlen) {
    unsigned char *out = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
    if (!ctx || EVP_PKEY_encrypt_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
        EVP_PKEY_encrypt(ctx, NULL, out_len, in, in_len) <= 0 || !(out = malloc(*out_len)) ||
        EVP_PKEY_encrypt(ctx, out, out_len, in, in_len) <= 0) {
        ssl_error(err, errlen, "RSA encryption of the AES key failed");
        free(out);
        out = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return out;
}

static unsigned char *aes_ecb_encrypt(const unsigned char key[AES_KEY_BYTES],
                                      const unsigned char *in, size_t in_len, size_t *out_len,
                                      char *err, size_t errlen) {
    if (in_len > INT32_MAX - 32) {
        snprintf(err, errlen, "connection info too large");
        return NULL;
    }
    /* EVP's default padding is PKCS#7, a full block when the input is already aligned, which is
     * what EG's unpad(..., 16) removes. */
    unsigned char *out = malloc(in_len + AES_KEY_BYTES);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, tail = 0;
    if (!out || !ctx || EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, out, &n, in, (int)in_len) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + n, &tail) != 1) {
        ssl_error(err, errlen, "AES encryption of the connection info failed");
        EVP_CIPHER_CTX_free(ctx);
        free(out);
        return NULL;
    }
    EVP_CIPHER_CTX_free(ctx);
    *out_len = (size_t)n + (size_t)tail;
    return out;
}

char *kl_launch_encrypt(const char *public_key, const unsigned char *plain, size_t len, char *err,
                        size_t errlen) {
    char *result = NULL, *key_b64 = NULL, *info_b64 = NULL, *json = NULL;
    unsigned char *enc_key = NULL, *enc_info = NULL;
    size_t enc_key_len = 0, enc_info_len = 0;
    unsigned char aes_key[AES_KEY_BYTES];
    EVP_PKEY *pkey = load_public_key(public_key, err, errlen);
    if (!pkey) return NULL;
    if (RAND_bytes(aes_key, sizeof aes_key) != 1) {
        ssl_error(err, errlen, "no random bytes for the AES key");
        goto out;
    }
    enc_key = rsa_encrypt(pkey, aes_key, sizeof aes_key, &enc_key_len, err, errlen);
    if (!enc_key) goto out;
    enc_info = aes_ecb_encrypt(aes_key, plain, len, &enc_info_len, err, errlen);
    if (!enc_info) goto out;
    key_b64 = b64_encode(enc_key, enc_key_len);
    info_b64 = b64_encode(enc_info, enc_info_len);
    json_t *payload = key_b64 && info_b64
                          ? json_pack("{s:i, s:s, s:s}", "version", KL_LAUNCH_PAYLOAD_VERSION,
                                      "key", key_b64, "conn_info", info_b64)
                          : NULL;
    json = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    json_decref(payload);
    if (!json || !(result = b64_encode((const unsigned char *)json, strlen(json))))
        snprintf(err, errlen, "out of memory building the payload");
out:
    OPENSSL_cleanse(aes_key, sizeof aes_key);
    EVP_PKEY_free(pkey);
    free(enc_key);
    free(enc_info);
    free(key_b64);
    free(info_b64);
    free(json);
    return result;
}

/* ---- ports ---------------------------------------------------------------------------------- */

static bool parse_port(const char *s, size_t n, long *out) {
    char buf[16];
    if (n == 0 || n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || v < 0 || v > 65535) return false;
    *out = v;
    return true;
}

int kl_launch_parse_port_range(const char *text, int min_size, int *lower, int *upper, char *err,
                               size_t errlen) {
    *lower = *upper = 0;
    if (!text || !*text) return 0;
    const char *dots = strstr(text, "..");
    long lo, hi;
    if (!dots || !parse_port(text, (size_t)(dots - text), &lo) ||
        !parse_port(dots + 2, strlen(dots + 2), &hi)) {
        snprintf(err, errlen, "port range \"%s\" must be LOWER..UPPER (ports 0-65535)", text);
        return -1;
    }
    /* As in EG, a range of size 0 (0..0) leaves the choice to the system. */
    if (hi == lo) return 0;
    if (lo < 1024 || hi > 65535 || hi < lo) {
        snprintf(err, errlen, "port range \"%s\" must lie within 1024..65535, lower first", text);
        return -1;
    }
    if (hi - lo < min_size) {
        snprintf(err, errlen,
                 "port range \"%s\" spans %ld ports; at least %d are needed "
                 "(EG_MIN_PORT_RANGE_SIZE)",
                 text, hi - lo, min_size);
        return -1;
    }
    *lower = (int)lo, *upper = (int)hi;
    return 0;
}

static int candidate_port(int lower, int upper) {
    if (upper == lower) return 0;
    uint32_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1) r = (uint32_t)rand();
    return lower + (int)(r % (uint32_t)(upper - lower + 1));
}

/* A socket bound to a port of the range on ip (numeric); returns the fd (its port in *port), or
 * -1 with a message. */
static int bind_in_range(const char *ip, int lower, int upper, int retries, int *port, char *err,
                         size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(ip, "0", &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "--ip \"%s\" is not a numeric address: %s", ip, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (int attempt = 0; attempt <= retries && fd < 0; attempt++) {
        int cand = candidate_port(lower, upper);
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            break;
        }
        struct sockaddr_storage sa;
        memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
        if (sa.ss_family == AF_INET)
            ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)cand);
        else
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)cand);
        if (bind(fd, (struct sockaddr *)&sa, ai->ai_addrlen) != 0) {
            last = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "no free port in %d..%d after %d tries (last: %s)", lower, upper,
                 retries + 1, strerror(last));
        return -1;
    }
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &salen);
    *port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
                                          : ((struct sockaddr_in6 *)&sa)->sin6_port);
    return fd;
}

/* ---- the launcher -------------------------------------------------------------------------- */

typedef struct launch {
    const char *kernel_id;
    const char *response_address;
    const char *public_key;
    const char *ip;
    int lower, upper, retries;
    char conn_path[4096];
    bool conn_written; /* conn_path is ours to remove at exit */
    int kernel_fds[KL_CH_COUNT];
    kl_connection_info info;
    int comm_fd, comm_port;
    int wake[2]; /* written once when the kernel has returned: the listener thread stops */
    char *payload;
    atomic_bool failed; /* the connection info never reached EG */
} launch;

static long env_long(const char *a, const char *b, long dflt) {
    const char *v = getenv(a);
    if (!v || !*v) v = getenv(b);
    if (!v || !*v) return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 ? dflt : n;
}

static const char *env_first(const char *a, const char *b) {
    const char *v = getenv(a);
    if ((!v || !*v) && b) v = getenv(b);
    return v && *v ? v : NULL;
}

static int monotonic_ms_since(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int)((now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000);
}

static bool stopping(launch *l, int wait_ms) {
    struct pollfd p = {.fd = l->wake[0], .events = POLLIN};
    return poll(&p, 1, wait_ms) > 0;
}

/* Splits HOST:PORT at the last colon; [v6]:port loses its brackets. */
static int split_address(const char *addr, char *host, size_t hostlen, char *port, size_t portlen) {
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1] || strlen(colon + 1) >= portlen) return -1;
    const char *h = addr;
    size_t n = (size_t)(colon - addr);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') h++, n -= 2;
    if (n >= hostlen) return -1;
    memcpy(host, h, n);
    host[n] = 0;
    snprintf(port, portlen, "%s", colon + 1);
    return 0;
}

/* Connects to host:port with a timeout; returns a blocking fd or -1 (errno set). */
static int connect_timeout(const char *host, const char *port, int timeout_ms) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL, *a;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        errno = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
        return -1;
    }
    int fd = -1, saved = ECONNREFUSED;
    for (a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int e = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        if (e == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            socklen_t sl = sizeof e;
            e = ETIMEDOUT;
            if (poll(&p, 1, timeout_ms) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl);
        }
        if (e != 0) {
            saved = e;
            close(fd);
            fd = -1;
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    }
    freeaddrinfo(ai);
    if (fd < 0) errno = saved;
    return fd;
}

/* Whether the kernel has taken over sig: until it has, the signal's default action would kill
 * the process (or, when started with it ignored, do nothing) instead of reaching the kernel. */
static bool handler_installed(int sig) {
    struct sigaction sa;
    return sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
}

/* True once the kernel's shell socket accepts TCP connections (ZeroMQ drops the empty one) and
 * it handles SIGINT and SIGTERM, so that EG, which may signal as soon as it has the connection
 * info, never hits a kernel that cannot take it yet. */
static bool kernel_ready(launch *l) {
    const char *probe = l->ip;
    if (strcmp(probe, "0.0.0.0") == 0) probe = "127.0.0.1";
    if (strcmp(probe, "::") == 0) probe = "::1";
    char port[8];
    snprintf(port, sizeof port, "%d", l->info.ports[KL_CH_SHELL]);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool bound = false;
    while (monotonic_ms_since(&t0) < READY_TIMEOUT_MS) {
        if (!bound) {
            int fd = connect_timeout(probe, port, 500);
            if (fd >= 0) close(fd), bound = true;
        }
        if (bound && handler_installed(SIGINT) && handler_installed(SIGTERM)) return true;
        if (stopping(l, 20)) return false;
    }
    KL_WARN(MOD, "the kernel was not ready within %d s; sending the connection info anyway",
            READY_TIMEOUT_MS / 1000);
    return true;
}

static int send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n, len -= (size_t)n;
    }
    return 0;
}

static int send_connection_info(launch *l) {
    char host[256], port[16];
    if (split_address(l->response_address, host, sizeof host, port, sizeof port) != 0) {
        KL_ERROR(MOD, "response address \"%s\" is not HOST:PORT", l->response_address);
        return -1;
    }
    for (int attempt = 1; attempt <= SEND_ATTEMPTS; attempt++) {
        errno = 0;
        int fd = connect_timeout(host, port, CONNECT_TIMEOUT_MS);
        if (fd >= 0) {
            int rc = send_all(fd, l->payload, strlen(l->payload));
            int saved = errno;
            shutdown(fd, SHUT_WR);
            close(fd);
            if (rc == 0) {
                KL_INFO(MOD, "connection info sent to %s for kernel %s (comm port %d)",
                        l->response_address, l->kernel_id, l->comm_port);
                return 0;
            }
            errno = saved;
        }
        KL_WARN(MOD, "sending the connection info to %s failed (try %d of %d): %s",
                l->response_address, attempt, SEND_ATTEMPTS, strerror(errno));
        if (stopping(l, 1000)) return -1;
    }
    return -1;
}

/* "signum" may be a number or a numeric string, as EG's Python launcher takes int(...). */
static bool json_as_long(json_t *v, long *out) {
    if (json_is_integer(v)) {
        *out = (long)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        *out = (long)json_real_value(v);
        return true;
    }
    if (json_is_string(v)) {
        char *end;
        *out = strtol(json_string_value(v), &end, 10);
        return *json_string_value(v) && !*end;
    }
    return false;
}

static bool json_truthy(json_t *v) {
    if (!v || json_is_null(v) || json_is_false(v)) return false;
    if (json_is_integer(v)) return json_integer_value(v) != 0;
    if (json_is_string(v)) return *json_string_value(v) != 0;
    return true;
}

/* One request object; returns true when it asked for shutdown. */
static bool handle_request(launch *l, const char *text, size_t len) {
    json_error_t jerr;
    json_t *req = json_loadb(text, len, 0, &jerr);
    if (!json_is_object(req)) {
        KL_WARN(MOD, "ignoring a request on the communication port that is not a JSON object");
        json_decref(req);
        return false;
    }
    json_t *sig = json_object_get(req, "signum");
    long signum;
    if (sig && json_as_long(sig, &signum)) {
        if (signum < 0 || signum > SIGRTMAX) {
            KL_WARN(MOD, "ignoring signum %ld", signum);
        } else if (signum > 0) {
            KL_INFO(MOD, "signal %ld requested by the gateway", signum);
            /* As PID 1 of a container the process ignores SIGKILL sent from inside it. */
            if (signum == SIGKILL && getpid() == 1) _exit(128 + SIGKILL);
            kill(getpid(), (int)signum);
        }
    }
    bool shutdown = json_truthy(json_object_get(req, "shutdown"));
    if (shutdown) {
        KL_INFO(MOD, "shutdown requested by the gateway for kernel %s", l->kernel_id);
        kill(getpid(), SIGTERM);
    }
    json_decref(req);
    return shutdown;
}

/* Reads one connection: JSON objects separated by newlines, the last one ended by EOF (EG closes
 * the connection after one object). Returns true when one asked for shutdown. */
static bool serve_connection(launch *l, int fd) {
    char *buf = malloc(REQUEST_MAX + 1);
    size_t len = 0;
    bool shutdown = false;
    if (!buf) return false;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int left = REQUEST_TIMEOUT_MS - monotonic_ms_since(&t0);
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = l->wake[0], .events = POLLIN}};
        if (left <= 0 || poll(p, 2, left) <= 0 || (p[1].revents & POLLIN)) break;
        ssize_t n = recv(fd, buf + len, REQUEST_MAX - len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0 && len) shutdown |= handle_request(l, buf, len);
            len = 0;
            break;
        }
        len += (size_t)n;
        char *nl;
        while ((nl = memchr(buf, '\n', len))) {
            size_t line = (size_t)(nl - buf);
            if (line) shutdown |= handle_request(l, buf, line);
            memmove(buf, nl + 1, len - line - 1);
            len -= line + 1;
        }
        if (len == REQUEST_MAX) {
            KL_WARN(MOD, "dropping a request over %d bytes on the communication port", REQUEST_MAX);
            len = 0;
            break;
        }
    }
    free(buf);
    return shutdown;
}

static void *listener_main(void *arg) {
    launch *l = arg;
    if (!kernel_ready(l)) return NULL;
    if (send_connection_info(l) != 0) {
        KL_ERROR(MOD, "the gateway at %s never received the connection info; stopping the kernel",
                 l->response_address);
        atomic_store(&l->failed, true);
        kill(getpid(), SIGTERM);
        return NULL;
    }
    for (;;) {
        struct pollfd p[2] = {{.fd = l->comm_fd, .events = POLLIN},
                              {.fd = l->wake[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents & POLLIN) break;
        if (!(p[0].revents & POLLIN)) continue;
        int fd = accept4(l->comm_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        bool shutdown = serve_connection(l, fd);
        close(fd);
        if (shutdown) break;
    }
    return NULL;
}

/* Reserves the kernel's five ports and the communication port, and writes the connection file. */
static int prepare(launch *l, char *err, size_t errlen) {
    for (int ch = 0; ch < KL_CH_COUNT; ch++) {
        l->kernel_fds[ch] =
            bind_in_range(l->ip, l->lower, l->upper, l->retries, &l->info.ports[ch], err, errlen);
        if (l->kernel_fds[ch] < 0) return -1;
    }
    if (l->response_address) {
        l->comm_fd =
            bind_in_range(l->ip, l->lower, l->upper, l->retries, &l->comm_port, err, errlen);
        if (l->comm_fd < 0) return -1;
        if (listen(l->comm_fd, 16) != 0) {
            snprintf(err, errlen, "listening on the communication port: %s", strerror(errno));
            return -1;
        }
    }
    char key[KL_UUID_STRLEN];
    if (kl_uuid_v4(key) != 0) {
        snprintf(err, errlen, "no random bytes for the connection key");
        return -1;
    }
    l->info.key = strdup(key);
    snprintf(l->info.ip, sizeof l->info.ip, "%s", l->ip);
    snprintf(l->info.signature_scheme, sizeof l->info.signature_scheme, "hmac-sha256");
    if (!*l->conn_path) {
        const char *tmp = getenv("TMPDIR");
        char safe[128];
        size_t i = 0;
        for (const char *c = l->kernel_id; *c && i < sizeof safe - 1; c++)
            safe[i++] = (char)((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                                       (*c >= '0' && *c <= '9') || *c == '-'
                                   ? *c
                                   : '_');
        safe[i] = 0;
        snprintf(l->conn_path, sizeof l->conn_path, "%s/kernel-%s_XXXXXX.json",
                 tmp && *tmp ? tmp : "/tmp", safe);
        int fd = mkstemps(l->conn_path, 5);
        if (fd < 0) {
            snprintf(err, errlen, "cannot create a connection file %s: %s", l->conn_path,
                     strerror(errno));
            *l->conn_path = 0;
            return -1;
        }
        close(fd);
        l->conn_written = true;
    }
    int rc = kl_connection_write(l->conn_path, &l->info);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the connection file %s: %s", l->conn_path,
                 strerror(-rc));
        return -1;
    }
    l->conn_written = true;
    if (!l->response_address) return 0;

    json_error_t jerr;
    json_t *conn = json_load_file(l->conn_path, 0, &jerr);
    if (!conn) {
        snprintf(err, errlen, "cannot read back %s: %s", l->conn_path, jerr.text);
        return -1;
    }
    json_object_set_new(conn, "pid", json_integer(getpid()));
    json_object_set_new(conn, "pgid", json_integer(getpgid(0)));
    json_object_set_new(conn, "comm_port", json_integer(l->comm_port));
    json_object_set_new(conn, "kernel_id", json_string(l->kernel_id));
    char *plain = json_dumps(conn, JSON_COMPACT);
    json_decref(conn);
    if (!plain) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    l->payload =
        kl_launch_encrypt(l->public_key, (const unsigned char *)plain, strlen(plain), err, errlen);
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    return l->payload ? 0 : -1;
}

static void release(launch *l) {
    for (int ch = 0; ch < KL_CH_COUNT; ch++)
        if (l->kernel_fds[ch] >= 0) close(l->kernel_fds[ch]), l->kernel_fds[ch] = -1;
}

int kl_launch_main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"RemoteProcessProxy.kernel-id", required_argument, NULL, 'k'},
        {"kernel-id", required_argument, NULL, 'k'},
        {"RemoteProcessProxy.response-address", required_argument, NULL, 'a'},
        {"response-address", required_argument, NULL, 'a'},
        {"RemoteProcessProxy.public-key", required_argument, NULL, 'p'},
        {"public-key", required_argument, NULL, 'p'},
        {"RemoteProcessProxy.port-range", required_argument, NULL, 'R'},
        {"port-range", required_argument, NULL, 'R'},
        {"RemoteProcessProxy.spark-context-initialization-mode", required_argument, NULL, 'i'},
        {"spark-context-initialization-mode", required_argument, NULL, 'i'},
        {"RemoteProcessProxy.cluster-type", required_argument, NULL, 'i'},
        {"cluster-type", required_argument, NULL, 'i'},
        {"kernel-class-name", required_argument, NULL, 'i'},
        {"connection-file", required_argument, NULL, 'f'},
        {"ip", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        KL_KERNEL_LONGOPTS,
        {0, 0, 0, 0},
    };
    launch l = {.ip = "0.0.0.0", .comm_fd = -1, .wake = {-1, -1}};
    for (int ch = 0; ch < KL_CH_COUNT; ch++) l.kernel_fds[ch] = -1;
    kl_connection_defaults(&l.info);
    kl_kernel_options o = {0};
    const char *range = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int k = kl_kernel_option("launch", c, optarg, &o);
        if (k < 0) return 2;
        if (k > 0) continue;
        switch (c) {
        case 'k':
            l.kernel_id = *optarg ? optarg : NULL;
            break;
        case 'a':
            l.response_address = *optarg ? optarg : NULL;
            break;
        case 'p':
            l.public_key = *optarg ? optarg : NULL;
            break;
        case 'R':
            range = optarg;
            break;
        case 'i':
            break;
        case 'f':
            snprintf(l.conn_path, sizeof l.conn_path, "%s", optarg);
            break;
        case 'I':
            l.ip = optarg;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            fputs(USAGE, stderr);
            return 2;
        }
    }
    /* EG's older launchers took the connection file as a positional argument. */
    if (optind < argc && !*l.conn_path)
        snprintf(l.conn_path, sizeof l.conn_path, "%s", argv[optind++]);
    if (optind < argc) {
        fprintf(stderr, "kindling launch: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (!l.kernel_id) l.kernel_id = env_first("KERNEL_ID", NULL);
    if (!l.response_address)
        l.response_address = env_first("RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS");
    if (!l.public_key) l.public_key = env_first("PUBLIC_KEY", "EG_PUBLIC_KEY");
    if (!range) range = env_first("PORT_RANGE", "EG_PORT_RANGE");
    if (!l.kernel_id) {
        fprintf(stderr, "kindling launch: --RemoteProcessProxy.kernel-id (or KERNEL_ID) is "
                        "required\n");
        return 2;
    }
    if (l.response_address && !l.public_key) {
        fprintf(stderr, "kindling launch: --RemoteProcessProxy.public-key (or PUBLIC_KEY) is "
                        "required with a response address\n");
        return 2;
    }
    char err[4608]; /* room for a path and a reason */
    int min_range =
        (int)env_long("MIN_PORT_RANGE_SIZE", "EG_MIN_PORT_RANGE_SIZE", DEFAULT_MIN_RANGE);
    l.retries =
        (int)env_long("MAX_PORT_RANGE_RETRIES", "EG_MAX_PORT_RANGE_RETRIES", DEFAULT_RETRIES);
    if (kl_launch_parse_port_range(range, min_range, &l.lower, &l.upper, err, sizeof err) != 0) {
        fprintf(stderr, "kindling launch: %s\n", err);
        return 2;
    }
    if (!l.response_address)
        KL_WARN(MOD, "no response address: the kernel runs, but no gateway learns its ports");

    int rc = 1;
    bool listening = false;
    pthread_t listener;
    if (prepare(&l, err, sizeof err) != 0) {
        fprintf(stderr, "kindling launch: %s\n", err);
        KL_ERROR(MOD, "%s", err);
        goto out;
    }
    if (l.response_address) {
        if (pipe2(l.wake, O_CLOEXEC) != 0) {
            fprintf(stderr, "kindling launch: pipe: %s\n", strerror(errno));
            goto out;
        }
        /* Signals go to the kernel's threads, never to the listener. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        listening = pthread_create(&listener, NULL, listener_main, &l) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!listening) {
            fprintf(stderr, "kindling launch: cannot start the listener thread\n");
            goto out;
        }
    }
    KL_INFO(MOD, "kernel %s: ports %d/%d/%d/%d/%d, connection file %s", l.kernel_id,
            l.info.ports[KL_CH_SHELL], l.info.ports[KL_CH_IOPUB], l.info.ports[KL_CH_STDIN],
            l.info.ports[KL_CH_CONTROL], l.info.ports[KL_CH_HB], l.conn_path);
    /* The reservations end only now, so that nothing else takes the ports meanwhile. */
    release(&l);
    o.connection_file = l.conn_path;
    rc = kl_kernel_main(&o);
    if (atomic_load(&l.failed) && rc == 0) rc = 1;
out:
    release(&l);
    if (listening) {
        ssize_t w = write(l.wake[1], "x", 1);
        (void)w;
        pthread_join(listener, NULL);
    }
    if (l.wake[0] >= 0) close(l.wake[0]), close(l.wake[1]);
    if (l.comm_fd >= 0) close(l.comm_fd);
    if (l.conn_written) unlink(l.conn_path);
    if (l.payload) OPENSSL_cleanse(l.payload, strlen(l.payload));
    free(l.payload);
    kl_connection_free(&l.info);
    return rc;
}
