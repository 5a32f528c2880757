/* The health and metrics HTTP endpoint of service mode, on libmicrohttpd's own thread:
 *   GET /healthz  200 while the event loop beats (kl_health_beat) within stale_ms, else 503;
 *   GET /readyz   200 once kl_health_set_ready(h, true, ...) said so, else 503 with the reason;
 *   GET /metrics  the Prometheus text exposition of a kl_metrics registry.
 * The HTTP thread never touches kernel state: whoever knows something reports it through the
 * setters below (atomics, and a mutex-guarded copy of the reason text), from any thread. */
#ifndef KL_KERNEL_HEALTH_H
#define KL_KERNEL_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "kernel/metrics.h"

#define KL_HEALTH_DEFAULT_STALE_MS 5000u

typedef struct kl_health kl_health;

typedef struct kl_health_opts {
    const char *ip;      /* address to listen on (IPv4 or IPv6 literal); NULL or "": 0.0.0.0 */
    int port;            /* 0: a free port (kl_health_port says which) */
    unsigned stale_ms;   /* /healthz fails after this long without a beat; 0: the default */
    kl_metrics *metrics; /* served at /metrics; NULL: kl_metrics_global() */
} kl_health_opts;

/* Binds and starts serving. NULL with a message in err (e.g. the port is taken). The loop counts
 * as alive from here until stale_ms passes without a beat; readiness starts false ("starting"). */
kl_health *kl_health_start(const kl_health_opts *o, char *err, size_t errlen);
int kl_health_port(const kl_health *h);
/* Stops the HTTP thread (waiting for requests in progress) and frees h. */
void kl_health_stop(kl_health *h);

/* Any thread; h may be NULL (no endpoint: nothing to report to). */
void kl_health_beat(kl_health *h);
/* reason says why not ready (copied; shown in the 503 body); ignored when ready. */
void kl_health_set_ready(kl_health *h, bool ready, const char *reason);
/* Shutting down: /readyz fails with "shutting down" from now on, and /healthz succeeds without
 * beats, so a liveness probe never kills a kernel that is finishing its cells. */
void kl_health_set_draining(kl_health *h);

/* A GET of http://host:port/path with a deadline (libcurl). Returns the HTTP status, or -1 with a
 * message in err; up to bodylen-1 bytes of the body go to body (NUL-terminated; may be NULL).
 * Blocking: never on the loop thread. */
int kl_health_get(const char *host, int port, const char *path, long timeout_ms, char *body,
                  size_t bodylen, char *err, size_t errlen);

#endif
