#include "kernel/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kernel/curlapi.h"
#include "runtime/dynlib.h"
#include "runtime/log.h"

/* libmicrohttpd is bound when `kindling serve` starts its endpoint (runtime/dynlib.h): a kernel
 * started by a notebook server never serves HTTP, and linked it would load GnuTLS with it. */
#define MHD_FUNCS(X)                                                                               \
    X(MHD_add_response_header)                                                                     \
    X(MHD_create_response_from_buffer)                                                             \
    X(MHD_destroy_response)                                                                        \
    X(MHD_queue_response)                                                                          \
    X(MHD_start_daemon)                                                                            \
    X(MHD_stop_daemon)

KL_DYNLIB_DEFINE(mhd_lib, MHD_FUNCS, KL_MHD_SONAME,
                 "libmicrohttpd: Debian package libmicrohttpd12");
#define M(n) KL_DYNLIB_FN(mhd_lib, n)

/* Probes and scrapes are a handful of short requests; a cap keeps a flood from taking threads or
 * memory, and the timeout drops clients that connect and say nothing. */
#define MAX_CONNECTIONS    64
#define CONNECTION_TIMEOUT 10 /* seconds */

struct kl_health {
    struct MHD_Daemon *d;
    int port;
    unsigned stale_ms;
    kl_metrics *metrics;
    _Atomic uint64_t last_beat_ms;
    _Atomic bool ready, draining;
    pthread_mutex_t mu; /* guards reason */
    char reason[512];
};

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void kl_health_beat(kl_health *h) {
    if (h) atomic_store(&h->last_beat_ms, now_ms());
}

void kl_health_set_ready(kl_health *h, bool ready, const char *reason) {
    if (!h) return;
    if (!ready) {
        pthread_mutex_lock(&h->mu);
        snprintf(h->reason, sizeof h->reason, "%s", reason && *reason ? reason : "not ready");
        pthread_mutex_unlock(&h->mu);
    }
    atomic_store(&h->ready, ready);
}

void kl_health_set_draining(kl_health *h) {
    if (h) atomic_store(&h->draining, true);
}

int kl_health_port(const kl_health *h) {
    return h ? h->port : 0;
}

/* ---- the HTTP side (libmicrohttpd's thread) ------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               char *body, size_t len, bool owned) {
    struct MHD_Response *r = M(MHD_create_response_from_buffer)(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!r) {
        if (owned) free(body);
        return MHD_NO;
    }
    M(MHD_add_response_header)(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    /* Probes must see the state of now, never a cached answer. */
    M(MHD_add_response_header)(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        M(MHD_add_response_header)(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = M(MHD_queue_response)(c, status, r);
    M(MHD_destroy_response)(r);
    return rc;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    return respond(c, status, "text/plain; charset=utf-8", buf, len, false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    (void)con_cls;
    kl_health *h = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    /* A GET with a body: discard it, answer on the final call. */
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/livez") == 0) {
        uint64_t age = now_ms() - atomic_load(&h->last_beat_ms);
        if (atomic_load(&h->draining) || age <= h->stale_ms) return text(c, MHD_HTTP_OK, "ok\n");
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "unhealthy: the event loop has not answered for %llu ms\n",
                    (unsigned long long)age);
    }
    if (strcmp(url, "/readyz") == 0) {
        if (atomic_load(&h->draining))
            return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: shutting down\n");
        if (atomic_load(&h->ready)) return text(c, MHD_HTTP_OK, "ready\n");
        char reason[sizeof h->reason];
        pthread_mutex_lock(&h->mu);
        memcpy(reason, h->reason, sizeof reason);
        pthread_mutex_unlock(&h->mu);
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", reason);
    }
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *body = kl_metrics_render(h->metrics, &len);
        if (!body) return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len, true);
    }
    return text(c, MHD_HTTP_NOT_FOUND, "not found: the paths are /healthz, /readyz, /metrics\n");
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    KL_WARN("health", "%s", buf);
}

/* The listening socket is made here rather than by libmicrohttpd, so a failure to bind names its
 * real cause (address in use, not an address of this host). */
static int listen_on(const char *ip, int port, bool *v6, int *bound, char *err, size_t errlen) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sslen;
    if (!ip || !*ip) ip = "0.0.0.0";
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sslen = sizeof *a4;
        *v6 = false;
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *a6;
        *v6 = true;
    } else {
        snprintf(err, errlen, "health endpoint: \"%s\" is not an IPv4 or IPv6 address", ip);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "health endpoint: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    /* A restarted pod must get its port back at once, not after TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "health endpoint: cannot listen on %s%s%s:%d: %s", *v6 ? "[" : "", ip,
                 *v6 ? "]" : "", port, strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(*v6 ? a6->sin6_port : a4->sin_port);
    return fd;
}

kl_health *kl_health_start(const kl_health_opts *o, char *err, size_t errlen) {
    kl_health *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "health endpoint: out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->stale_ms = o->stale_ms ? o->stale_ms : KL_HEALTH_DEFAULT_STALE_MS;
    h->metrics = o->metrics ? o->metrics : kl_metrics_global();
    atomic_store(&h->last_beat_ms, now_ms());
    snprintf(h->reason, sizeof h->reason, "starting");
    char why[512];
    if (kl_dynlib_load(&mhd_lib, why, sizeof why) != 0) {
        snprintf(err, errlen, "health endpoint: %s", why);
        goto fail;
    }
    bool v6 = false;
    int fd = listen_on(o->ip, o->port, &v6, &h->port, err, errlen);
    if (fd < 0) goto fail;
    h->d = M(MHD_start_daemon)(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
                                   (v6 ? MHD_USE_IPv6 : 0),
                               0, NULL, NULL, on_request, h,
                               /* First, or libmicrohttpd logs its own way until it gets there. */
                               MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                               MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                               (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                               (unsigned)CONNECTION_TIMEOUT, MHD_OPTION_END);
    if (!h->d) {
        close(fd);
        snprintf(err, errlen, "health endpoint: libmicrohttpd could not start on port %d", h->port);
        goto fail;
    }
    KL_INFO("health", "health and metrics on http://%s%s%s:%d (/healthz, /readyz, /metrics)",
            v6 ? "[" : "", o->ip && *o->ip ? o->ip : "0.0.0.0", v6 ? "]" : "", h->port);
    return h;
fail:
    pthread_mutex_destroy(&h->mu);
    free(h);
    return NULL;
}

void kl_health_stop(kl_health *h) {
    if (!h) return;
    /* Closes the listening socket too. */
    M(MHD_stop_daemon)(h->d);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* ---- the client, for `kindling health` ------------------------------------------------------ */

typedef struct sink {
    char *p;
    size_t len, cap;
} sink;

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    sink *s = arg;
    size_t total = size * n;
    if (s->cap) {
        size_t room = s->cap - 1 - s->len;
        size_t take = total < room ? total : room;
        memcpy(s->p + s->len, data, take);
        s->len += take;
        s->p[s->len] = 0;
    }
    return total;
}

int kl_health_get(const char *host, int port, const char *path, long timeout_ms, char *body,
                  size_t bodylen, char *err, size_t errlen) {
    if (body && bodylen) body[0] = 0;
    if (kl_curlapi_load(err, errlen) != 0) return -1;
    CURL *c = KL_CURL(curl_easy_init)();
    if (!c) {
        snprintf(err, errlen, "libcurl could not start");
        return -1;
    }
    bool v6 = strchr(host, ':') != NULL && host[0] != '[';
    char url[1024];
    snprintf(url, sizeof url, "http://%s%s%s:%d%s%s", v6 ? "[" : "", host, v6 ? "]" : "", port,
             path[0] == '/' ? "" : "/", path);
    sink s = {body, 0, body ? bodylen : 0};
    KL_CURL(curl_easy_setopt)(c, CURLOPT_URL, url);
    /* A proxy from the environment would answer for a kernel it cannot see. */
    KL_CURL(curl_easy_setopt)(c, CURLOPT_NOPROXY, "*");
    KL_CURL(curl_easy_setopt)(c, CURLOPT_NOSIGNAL, 1L);
    KL_CURL(curl_easy_setopt)(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    KL_CURL(curl_easy_setopt)(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    KL_CURL(curl_easy_setopt)(c, CURLOPT_PROTOCOLS_STR, "http");
    KL_CURL(curl_easy_setopt)(c, CURLOPT_WRITEFUNCTION, on_body);
    KL_CURL(curl_easy_setopt)(c, CURLOPT_WRITEDATA, &s);
    CURLcode rc = KL_CURL(curl_easy_perform)(c);
    long status = -1;
    if (rc == CURLE_OK)
        KL_CURL(curl_easy_getinfo)(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, errlen, "%s: %s", url, KL_CURL(curl_easy_strerror)(rc));
    KL_CURL(curl_easy_cleanup)(c);
    return (int)status;
}
