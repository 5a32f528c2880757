#include "kernel/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "kl_version.h"

struct kl_series {
    kl_metric *m;
    char *values[KL_METRICS_MAX_LABELS];
    _Atomic int64_t value;
    /* Histograms: one slot per bucket plus the +Inf slot, not cumulative, so an observation is a
     * single increment; the count is their total, which keeps _count equal to the +Inf bucket
     * however a render interleaves with observations. */
    _Atomic uint64_t *slots;
    _Atomic uint64_t sum_bits; /* the double sum, updated by compare-and-swap */
    kl_series *next;
};

struct kl_metric {
    kl_metrics *r;
    kl_metric_type type;
    char *name, *help;
    char *labels[KL_METRICS_MAX_LABELS];
    size_t nlabels;
    double *buckets;
    size_t nbuckets;
    pthread_mutex_t mu; /* guards the series list (not the values) */
    kl_series *head, *tail;
    size_t nseries;
    void (*collect)(kl_metric *m, void *arg);
    void *collect_arg;
    kl_metric *next;
};

struct kl_metrics {
    pthread_mutex_t mu; /* guards the family list */
    kl_metric *head, *tail;
};

static bool valid_name(const char *s) {
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':';
        bool digit = *p >= '0' && *p <= '9';
        if (!alpha && !(digit && p != s)) return false;
    }
    return true;
}

kl_metrics *kl_metrics_new(void) {
    kl_metrics *r = calloc(1, sizeof *r);
    if (r) pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void series_free(kl_series *s) {
    for (size_t i = 0; i < KL_METRICS_MAX_LABELS; i++) free(s->values[i]);
    free(s->slots);
    free(s);
}

static void metric_free(kl_metric *m) {
    for (kl_series *s = m->head, *next; s; s = next) {
        next = s->next;
        series_free(s);
    }
    for (size_t i = 0; i < m->nlabels; i++) free(m->labels[i]);
    pthread_mutex_destroy(&m->mu);
    free(m->name);
    free(m->help);
    free(m->buckets);
    free(m);
}

void kl_metrics_free(kl_metrics *r) {
    if (!r) return;
    for (kl_metric *m = r->head, *next; m; m = next) {
        next = m->next;
        metric_free(m);
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static kl_series *series_new(kl_metric *m, const char *const *values) {
    kl_series *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->m = m;
    for (size_t i = 0; i < m->nlabels; i++) {
        s->values[i] = strdup(values[i] ? values[i] : "");
        if (!s->values[i]) goto fail;
    }
    if (m->type == KL_METRIC_HISTOGRAM) {
        s->slots = calloc(m->nbuckets + 1, sizeof *s->slots);
        if (!s->slots) goto fail;
    }
    return s;
fail:
    series_free(s);
    return NULL;
}

static void series_append(kl_metric *m, kl_series *s) {
    if (m->tail)
        m->tail->next = s;
    else
        m->head = s;
    m->tail = s;
    m->nseries++;
}

kl_metric *kl_metrics_add(kl_metrics *r, kl_metric_type type, const char *name, const char *help,
                          const char *const *labels, const double *buckets, size_t nbuckets) {
    if (!r || !valid_name(name)) return NULL;
    kl_metric *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->r = r;
    m->type = type;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    if (!m->name || !m->help) goto fail;
    for (size_t i = 0; labels && labels[i]; i++) {
        /* "le" is the histogram's own label. */
        if (i == KL_METRICS_MAX_LABELS || !valid_name(labels[i]) || strcmp(labels[i], "le") == 0)
            goto fail;
        m->labels[i] = strdup(labels[i]);
        if (!m->labels[i]) goto fail;
        m->nlabels = i + 1;
    }
    if (type == KL_METRIC_HISTOGRAM) {
        if (nbuckets == 0) goto fail;
        m->buckets = malloc(nbuckets * sizeof *m->buckets);
        if (!m->buckets) goto fail;
        for (size_t i = 0; i < nbuckets; i++) {
            if (i > 0 && !(buckets[i] > buckets[i - 1])) goto fail;
            m->buckets[i] = buckets[i];
        }
        m->nbuckets = nbuckets;
    }
    if (m->nlabels == 0) {
        kl_series *s = series_new(m, NULL);
        if (!s) goto fail;
        series_append(m, s);
    }
    pthread_mutex_lock(&r->mu);
    if (r->tail)
        r->tail->next = m;
    else
        r->head = m;
    r->tail = m;
    pthread_mutex_unlock(&r->mu);
    return m;
fail:
    metric_free(m);
    return NULL;
}

static bool same_values(const kl_series *s, const char *const *values, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0) return false;
    return true;
}

kl_series *kl_metric_series(kl_metric *m, const char *const *values) {
    if (!m || (m->nlabels > 0 && !values)) return NULL;
    pthread_mutex_lock(&m->mu);
    kl_series *s = m->head;
    if (m->nlabels > 0) {
        while (s && !same_values(s, values, m->nlabels)) s = s->next;
        if (!s && m->nseries < KL_METRICS_MAX_SERIES) {
            s = series_new(m, values);
            if (s) series_append(m, s);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return s;
}

void kl_metric_on_collect(kl_metric *m, void (*fn)(kl_metric *m, void *arg), void *arg) {
    if (!m) return;
    m->collect = fn;
    m->collect_arg = arg;
}

void kl_series_add(kl_series *s, int64_t delta) {
    if (s) atomic_fetch_add_explicit(&s->value, delta, memory_order_relaxed);
}

void kl_series_set(kl_series *s, int64_t value) {
    if (s) atomic_store_explicit(&s->value, value, memory_order_relaxed);
}

int64_t kl_series_get(const kl_series *s) {
    return s ? atomic_load_explicit(&s->value, memory_order_relaxed) : 0;
}

static double bits_to_double(uint64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

void kl_series_observe(kl_series *s, double value) {
    if (!s || !s->slots || isnan(value)) return;
    const kl_metric *m = s->m;
    size_t i = 0;
    while (i < m->nbuckets && value > m->buckets[i]) i++;
    atomic_fetch_add_explicit(&s->slots[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->sum_bits, &old,
                                                  double_to_bits(bits_to_double(old) + value),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

uint64_t kl_series_count(const kl_series *s) {
    if (!s || !s->slots) return 0;
    uint64_t n = 0;
    for (size_t i = 0; i <= s->m->nbuckets; i++)
        n += atomic_load_explicit(&s->slots[i], memory_order_relaxed);
    return n;
}

double kl_series_sum(const kl_series *s) {
    if (!s || !s->slots) return 0;
    return bits_to_double(atomic_load_explicit(&s->sum_bits, memory_order_relaxed));
}

/* ---- rendering ------------------------------------------------------------------------------ */

typedef struct out {
    char *p;
    size_t len, cap;
    bool oom;
} out;

static void put(out *o, const char *s, size_t n) {
    if (o->oom) return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1) cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = 0;
}

static void puts_(out *o, const char *s) {
    put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(out *o, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) put(o, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* HELP text escapes backslash and newline; label values also escape the double quote. */
static void put_escaped(out *o, const char *s, bool quote) {
    for (; *s; s++) {
        if (*s == '\\')
            puts_(o, "\\\\");
        else if (*s == '\n')
            puts_(o, "\\n");
        else if (*s == '"' && quote)
            puts_(o, "\\\"");
        else
            put(o, s, 1);
    }
}

/* Shortest text that reads back as the same double, as Prometheus clients print floats. */
static void fmt_double(double v, char *buf, size_t len) {
    if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
        return;
    }
    /* Whole numbers as such: %g would write 10 as 1e+01. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, len, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void put_labels(out *o, const kl_series *s, const char *le) {
    const kl_metric *m = s->m;
    if (m->nlabels == 0 && !le) return;
    puts_(o, "{");
    for (size_t i = 0; i < m->nlabels; i++) {
        if (i) puts_(o, ",");
        putf(o, "%s=\"", m->labels[i]);
        put_escaped(o, s->values[i], true);
        puts_(o, "\"");
    }
    if (le) putf(o, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    puts_(o, "}");
}

static const char *type_name(kl_metric_type t) {
    return t == KL_METRIC_COUNTER ? "counter" : t == KL_METRIC_GAUGE ? "gauge" : "histogram";
}

static void render_series(out *o, const kl_series *s) {
    const kl_metric *m = s->m;
    if (m->type != KL_METRIC_HISTOGRAM) {
        puts_(o, m->name);
        put_labels(o, s, NULL);
        putf(o, " %lld\n", (long long)kl_series_get(s));
        return;
    }
    uint64_t cumulative = 0;
    char le[64];
    for (size_t i = 0; i <= m->nbuckets; i++) {
        cumulative += atomic_load_explicit(&s->slots[i], memory_order_relaxed);
        fmt_double(i < m->nbuckets ? m->buckets[i] : INFINITY, le, sizeof le);
        putf(o, "%s_bucket", m->name);
        put_labels(o, s, le);
        putf(o, " %llu\n", (unsigned long long)cumulative);
    }
    char sum[64];
    fmt_double(kl_series_sum(s), sum, sizeof sum);
    putf(o, "%s_sum", m->name);
    put_labels(o, s, NULL);
    putf(o, " %s\n", sum);
    putf(o, "%s_count", m->name);
    put_labels(o, s, NULL);
    putf(o, " %llu\n", (unsigned long long)cumulative);
}

char *kl_metrics_render(kl_metrics *r, size_t *len) {
    out o = {0};
    puts_(&o, "");
    pthread_mutex_lock(&r->mu);
    for (kl_metric *m = r->head; m; m = m->next) {
        if (m->collect) m->collect(m, m->collect_arg);
        putf(&o, "# HELP %s ", m->name);
        put_escaped(&o, m->help, false);
        putf(&o, "\n# TYPE %s %s\n", m->name, type_name(m->type));
        pthread_mutex_lock(&m->mu);
        for (kl_series *s = m->head; s; s = s->next) render_series(&o, s);
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_unlock(&r->mu);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    if (len) *len = o.len;
    return o.p;
}

/* ---- Kindling's metrics --------------------------------------------------------------------- */

static const double DURATION_BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,    2.5,
                                          5,     10,   30,    60,   120, 300,  600, 1800, 3600};

static struct {
    kl_metrics *r;
    kl_series *connections, *exec_ok, *exec_error, *exec_aborted, *duration, *retries, *reattaches,
        *bytes, *backlog, *coroutines;
    kl_metric *rpcs;
} g;

static void collect_rss(kl_metric *m, void *arg) {
    (void)arg;
    /* statm's second field is the resident set in pages; a short read of /proc is fine on the
     * HTTP thread that renders. */
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &resident) != 2) resident = 0;
        fclose(f);
    }
    kl_series_set(kl_metric_series(m, NULL), resident * (long long)sysconf(_SC_PAGESIZE));
}

static void global_init(void) {
    kl_metrics *r = kl_metrics_new();
    if (!r) return;
    static const char *const status_label[] = {"status", NULL};
    static const char *const rpc_labels[] = {"method", "code", NULL};
    static const char *const version_label[] = {"version", NULL};
    g.connections = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_GAUGE, "kindling_connections",
                       "Client connections (Jupyter client sessions) the kernel serves now.", NULL,
                       NULL, 0),
        NULL);
    kl_metric *exec = kl_metrics_add(r, KL_METRIC_COUNTER, "kindling_executions_total",
                                     "execute_requests answered, by the status of their reply.",
                                     status_label, NULL, 0);
    /* Made up front so every status shows from the first scrape (a rate needs a zero). */
    g.exec_ok = kl_metric_series(exec, (const char *const[]){"ok"});
    g.exec_error = kl_metric_series(exec, (const char *const[]){"error"});
    g.exec_aborted = kl_metric_series(exec, (const char *const[]){"aborted"});
    g.duration = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_HISTOGRAM, "kindling_execution_duration_seconds",
                       "Time from the start of an execute_request to its reply.", NULL,
                       DURATION_BUCKETS, sizeof DURATION_BUCKETS / sizeof *DURATION_BUCKETS),
        NULL);
    g.rpcs = kl_metrics_add(r, KL_METRIC_COUNTER, "kindling_spark_rpcs_total",
                            "Spark Connect RPCs finished, by method and gRPC status code.",
                            rpc_labels, NULL, 0);
    g.retries = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_COUNTER, "kindling_spark_retries_total",
                       "Failed Spark operations tried again (resent or reattached).", NULL, NULL,
                       0),
        NULL);
    g.reattaches = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_COUNTER, "kindling_spark_reattaches_total",
                       "Spark operations continued with ReattachExecute after a broken stream.",
                       NULL, NULL, 0),
        NULL);
    g.bytes = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_COUNTER, "kindling_spark_bytes_received_total",
                       "Bytes of messages received from Spark Connect.", NULL, NULL, 0),
        NULL);
    g.backlog = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_GAUGE, "kindling_iopub_backlog_messages",
                       "IOPub messages waiting for a slow subscriber (backpressure).", NULL, NULL,
                       0),
        NULL);
    g.coroutines = kl_metric_series(kl_metrics_add(r, KL_METRIC_GAUGE, "kindling_coroutines",
                                                   "Coroutines alive on the kernel's event loop.",
                                                   NULL, NULL, 0),
                                    NULL);
    kl_metric_on_collect(kl_metrics_add(r, KL_METRIC_GAUGE,
                                        "kindling_process_resident_memory_bytes",
                                        "Resident memory of the kernel process.", NULL, NULL, 0),
                         collect_rss, NULL);
    kl_series_set(kl_metric_series(kl_metrics_add(r, KL_METRIC_GAUGE, "kindling_build_info",
                                                  "Always 1; the version is a label.",
                                                  version_label, NULL, 0),
                                   (const char *const[]){KL_VERSION}),
                  1);
    g.r = r;
}

kl_metrics *kl_metrics_global(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    return g.r;
}

void kl_metrics_execution(const char *status, uint64_t start_ns) {
    kl_metrics_global();
    kl_series *s = strcmp(status, "ok") == 0        ? g.exec_ok
                   : strcmp(status, "aborted") == 0 ? g.exec_aborted
                                                    : g.exec_error;
    kl_series_add(s, 1);
    if (start_ns) kl_series_observe(g.duration, (double)(uv_hrtime() - start_ns) / 1e9);
}

void kl_metrics_spark_rpc(const char *method, kl_grpc_code code) {
    kl_metrics_global();
    /* "/spark.connect.SparkConnectService/ExecutePlan" -> "ExecutePlan". */
    const char *slash = method ? strrchr(method, '/') : NULL;
    const char *name = slash ? slash + 1 : method ? method : "";
    kl_series_add(kl_metric_series(g.rpcs, (const char *const[]){name, kl_grpc_code_name(code)}),
                  1);
}

void kl_metrics_spark_retry(bool reattach) {
    kl_metrics_global();
    kl_series_add(g.retries, 1);
    if (reattach) kl_series_add(g.reattaches, 1);
}

void kl_metrics_spark_bytes(size_t n) {
    kl_metrics_global();
    kl_series_add(g.bytes, (int64_t)n);
}

void kl_metrics_iopub_backlog(int delta) {
    kl_metrics_global();
    kl_series_add(g.backlog, delta);
}

void kl_metrics_set_connections(int64_t n) {
    kl_metrics_global();
    kl_series_set(g.connections, n);
}

void kl_metrics_set_coroutines(int64_t n) {
    kl_metrics_global();
    kl_series_set(g.coroutines, n);
}
