/* Prometheus metrics: a registry of counters, gauges and histograms that any thread may update
 * (atomics; a labelled series is found or made under a short mutex), rendered in the Prometheus
 * text exposition format 0.0.4.
 *
 * kl_metrics_global() is the process-wide registry with Kindling's own metrics (names in
 * docs/service.md); the kl_metrics_* hook functions at the end update them in one call each, from
 * any thread, so the code that observes something never needs to know the registry. */
#ifndef KL_KERNEL_METRICS_H
#define KL_KERNEL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spark/grpc.h"

typedef struct kl_metrics kl_metrics; /* a registry */
typedef struct kl_metric kl_metric;   /* a family: one name, type, help text and label names */
typedef struct kl_series kl_series;   /* one combination of label values of a family */

typedef enum { KL_METRIC_COUNTER, KL_METRIC_GAUGE, KL_METRIC_HISTOGRAM } kl_metric_type;

/* A family keeps at most this many series; values past it are dropped, so a label fed from
 * outside (a server's method name) cannot grow memory without bound. */
#define KL_METRICS_MAX_SERIES 512
#define KL_METRICS_MAX_LABELS 4

kl_metrics *kl_metrics_new(void);
void kl_metrics_free(kl_metrics *r);

/* Adds a family. name and label names must match [a-zA-Z_:][a-zA-Z0-9_:]*; labels is
 * NULL-terminated (NULL: none, and the family's single series exists at once). buckets are a
 * histogram's ascending upper bounds (+Inf is implied), copied. NULL on a bad name or ENOMEM. */
kl_metric *kl_metrics_add(kl_metrics *r, kl_metric_type type, const char *name, const char *help,
                          const char *const *labels, const double *buckets, size_t nbuckets);
/* The series with these label values (one per label name; NULL for a family without labels),
 * made on first use. Any thread. NULL when the family is full or on ENOMEM. */
kl_series *kl_metric_series(kl_metric *m, const char *const *values);
/* Called at every render before the family is written, on the rendering thread (for values read
 * on demand, such as /proc). */
void kl_metric_on_collect(kl_metric *m, void (*fn)(kl_metric *m, void *arg), void *arg);

/* Counters (delta >= 0) and gauges. Any thread; a NULL series is ignored. */
void kl_series_add(kl_series *s, int64_t delta);
void kl_series_set(kl_series *s, int64_t value); /* gauges */
int64_t kl_series_get(const kl_series *s);
/* Histograms: one observation. */
void kl_series_observe(kl_series *s, double value);
/* Histograms: observations so far and their sum. */
uint64_t kl_series_count(const kl_series *s);
double kl_series_sum(const kl_series *s);

/* The text exposition of every family (malloc'd, NUL-terminated; caller frees), or NULL on
 * ENOMEM. Any thread. */
char *kl_metrics_render(kl_metrics *r, size_t *len);

/* ---- Kindling's metrics, in the process-wide registry --------------------------------------- */

/* Made on first use; never freed (other threads may update it until the process exits). */
kl_metrics *kl_metrics_global(void);

/* An execute_request answered with status "ok", "error" or "aborted"; start_ns is uv_hrtime() when
 * it began (0: no duration, as for a request aborted unrun). */
void kl_metrics_execution(const char *status, uint64_t start_ns);
/* A Spark Connect RPC ended (method as "ExecutePlan" or a full "/pkg.Service/Method" path). */
void kl_metrics_spark_rpc(const char *method, kl_grpc_code code);
/* A failed Spark operation is tried again: resent, or continued with ReattachExecute. */
void kl_metrics_spark_retry(bool reattach);
/* Bytes of a message received from Spark Connect. */
void kl_metrics_spark_bytes(size_t n);
/* +1 when an IOPub message starts being sent, -1 when it has left or failed: the messages waiting
 * on IOPub's backpressure. */
void kl_metrics_iopub_backlog(int delta);
/* Sampled by the loop thread (service mode's 1 s tick). */
void kl_metrics_set_connections(int64_t n);
void kl_metrics_set_coroutines(int64_t n);

#endif
