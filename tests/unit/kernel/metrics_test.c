#include <criterion/criterion.h>
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "kernel/metrics.h"
#include "kl_version.h"

static bool has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0)) return true;
    return false;
}

#define EXPECT_LINE(text, line)                                                                    \
    cr_expect(has_line(text, line), "no line \"%s\" in:\n%s", line, text)

Test(metrics, counter_and_gauge_render_with_help_and_type) {
    kl_metrics *r = kl_metrics_new();
    kl_series *c = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_COUNTER, "jobs_total", "Jobs done.", NULL, NULL, 0), NULL);
    kl_series *g = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_GAUGE, "queue_depth", "Queued.", NULL, NULL, 0), NULL);
    cr_assert_not_null(c);
    kl_series_add(c, 3);
    kl_series_add(c, 2);
    kl_series_set(g, 7);
    kl_series_add(g, -2);
    cr_expect_eq(kl_series_get(c), 5);
    cr_expect_eq(kl_series_get(g), 5);
    char *text = kl_metrics_render(r, NULL);
    EXPECT_LINE(text, "# HELP jobs_total Jobs done.");
    EXPECT_LINE(text, "# TYPE jobs_total counter");
    EXPECT_LINE(text, "jobs_total 5");
    EXPECT_LINE(text, "# TYPE queue_depth gauge");
    EXPECT_LINE(text, "queue_depth 5");
    /* Families come out in the order they were added. */
    cr_expect_lt(strstr(text, "jobs_total"), strstr(text, "queue_depth"));
    free(text);
    kl_metrics_free(r);
}

Test(metrics, labelled_series_are_found_again_and_escaped) {
    kl_metrics *r = kl_metrics_new();
    static const char *const labels[] = {"method", "code", NULL};
    kl_metric *m = kl_metrics_add(r, KL_METRIC_COUNTER, "rpcs_total", "RPCs.", labels, NULL, 0);
    kl_series *a = kl_metric_series(m, (const char *const[]){"Get", "OK"});
    kl_series *b = kl_metric_series(m, (const char *const[]){"Get", "OK"});
    kl_series *c = kl_metric_series(m, (const char *const[]){"Get", "UNAVAILABLE"});
    kl_series *d = kl_metric_series(m, (const char *const[]){"a\"b\\c\nd", "OK"});
    cr_expect_eq(a, b);
    cr_expect_neq(a, c);
    cr_expect_null(kl_metric_series(m, NULL), "a labelled family needs values");
    kl_series_add(a, 1);
    kl_series_add(b, 1);
    kl_series_add(c, 1);
    kl_series_add(d, 4);
    char *text = kl_metrics_render(r, NULL);
    EXPECT_LINE(text, "rpcs_total{method=\"Get\",code=\"OK\"} 2");
    EXPECT_LINE(text, "rpcs_total{method=\"Get\",code=\"UNAVAILABLE\"} 1");
    EXPECT_LINE(text, "rpcs_total{method=\"a\\\"b\\\\c\\nd\",code=\"OK\"} 4");
    free(text);
    kl_metrics_free(r);
}

Test(metrics, help_text_escapes_backslash_and_newline) {
    kl_metrics *r = kl_metrics_new();
    kl_metrics_add(r, KL_METRIC_GAUGE, "g", "two\nlines with a \\ and \"quotes\"", NULL, NULL, 0);
    char *text = kl_metrics_render(r, NULL);
    EXPECT_LINE(text, "# HELP g two\\nlines with a \\\\ and \"quotes\"");
    free(text);
    kl_metrics_free(r);
}

Test(metrics, a_family_stops_growing_at_its_series_limit) {
    kl_metrics *r = kl_metrics_new();
    static const char *const labels[] = {"id", NULL};
    kl_metric *m = kl_metrics_add(r, KL_METRIC_COUNTER, "ids_total", "", labels, NULL, 0);
    char id[32];
    for (int i = 0; i < KL_METRICS_MAX_SERIES; i++) {
        snprintf(id, sizeof id, "%d", i);
        cr_assert_not_null(kl_metric_series(m, (const char *const[]){id}));
    }
    cr_expect_null(kl_metric_series(m, (const char *const[]){"one-too-many"}));
    /* Known values still resolve. */
    cr_expect_not_null(kl_metric_series(m, (const char *const[]){"7"}));
    kl_metrics_free(r);
}

Test(metrics, bad_definitions_are_refused) {
    kl_metrics *r = kl_metrics_new();
    static const char *const le[] = {"le", NULL};
    static const char *const bad_label[] = {"9lives", NULL};
    const double desc[] = {1, 0.5};
    cr_expect_null(kl_metrics_add(r, KL_METRIC_GAUGE, "has space", "", NULL, NULL, 0));
    cr_expect_null(kl_metrics_add(r, KL_METRIC_GAUGE, "1starts_with_digit", "", NULL, NULL, 0));
    cr_expect_null(kl_metrics_add(r, KL_METRIC_GAUGE, "ok_name", "", bad_label, NULL, 0));
    cr_expect_null(kl_metrics_add(r, KL_METRIC_HISTOGRAM, "h", "", le, desc, 1));
    cr_expect_null(kl_metrics_add(r, KL_METRIC_HISTOGRAM, "h", "", NULL, desc, 2));
    cr_expect_null(kl_metrics_add(r, KL_METRIC_HISTOGRAM, "h", "", NULL, NULL, 0));
    cr_expect_not_null(kl_metrics_add(r, KL_METRIC_GAUGE, "ns:ok_name_2", "", NULL, NULL, 0));
    kl_metrics_free(r);
}

Test(metrics, histogram_buckets_are_cumulative_with_sum_and_count) {
    kl_metrics *r = kl_metrics_new();
    const double buckets[] = {0.1, 1, 10};
    kl_series *h = kl_metric_series(
        kl_metrics_add(r, KL_METRIC_HISTOGRAM, "d_seconds", "Durations.", NULL, buckets, 3), NULL);
    kl_series_observe(h, 0.05);
    kl_series_observe(h, 0.1); /* an upper bound is inclusive */
    kl_series_observe(h, 0.5);
    kl_series_observe(h, 100);
    cr_expect_eq(kl_series_count(h), 4);
    cr_expect_float_eq(kl_series_sum(h), 100.65, 1e-9);
    char *text = kl_metrics_render(r, NULL);
    EXPECT_LINE(text, "# TYPE d_seconds histogram");
    EXPECT_LINE(text, "d_seconds_bucket{le=\"0.1\"} 2");
    EXPECT_LINE(text, "d_seconds_bucket{le=\"1\"} 3");
    EXPECT_LINE(text, "d_seconds_bucket{le=\"10\"} 3");
    EXPECT_LINE(text, "d_seconds_bucket{le=\"+Inf\"} 4");
    EXPECT_LINE(text, "d_seconds_sum 100.65");
    EXPECT_LINE(text, "d_seconds_count 4");
    free(text);
    kl_metrics_free(r);
}

Test(metrics, labelled_histogram_puts_le_last) {
    kl_metrics *r = kl_metrics_new();
    static const char *const labels[] = {"kind", NULL};
    const double buckets[] = {1};
    kl_metric *m = kl_metrics_add(r, KL_METRIC_HISTOGRAM, "h", "", labels, buckets, 1);
    kl_series_observe(kl_metric_series(m, (const char *const[]){"sql"}), 2);
    char *text = kl_metrics_render(r, NULL);
    EXPECT_LINE(text, "h_bucket{kind=\"sql\",le=\"1\"} 0");
    EXPECT_LINE(text, "h_bucket{kind=\"sql\",le=\"+Inf\"} 1");
    EXPECT_LINE(text, "h_count{kind=\"sql\"} 1");
    free(text);
    kl_metrics_free(r);
}

typedef struct hammer {
    kl_series *counter, *hist;
    kl_metric *family;
} hammer;

static void *hammer_main(void *arg) {
    hammer *h = arg;
    for (int i = 0; i < 100000; i++) {
        kl_series_add(h->counter, 1);
        kl_series_observe(h->hist, 0.5);
        if (i % 1000 == 0) {
            char v[8];
            snprintf(v, sizeof v, "%d", i / 1000 % 10);
            kl_series_add(kl_metric_series(h->family, (const char *const[]){v}), 1);
        }
    }
    return NULL;
}

Test(metrics, updates_from_many_threads_are_not_lost) {
    kl_metrics *r = kl_metrics_new();
    const double buckets[] = {1};
    static const char *const labels[] = {"v", NULL};
    hammer h = {
        kl_metric_series(kl_metrics_add(r, KL_METRIC_COUNTER, "c", "", NULL, NULL, 0), NULL),
        kl_metric_series(kl_metrics_add(r, KL_METRIC_HISTOGRAM, "h", "", NULL, buckets, 1), NULL),
        kl_metrics_add(r, KL_METRIC_COUNTER, "l", "", labels, NULL, 0),
    };
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer_main, &h);
    /* Rendering while others update must be safe too. */
    for (int i = 0; i < 20; i++) free(kl_metrics_render(r, NULL));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cr_expect_eq(kl_series_get(h.counter), 400000);
    cr_expect_eq(kl_series_count(h.hist), 400000);
    cr_expect_float_eq(kl_series_sum(h.hist), 200000.0, 1e-6);
    int64_t total = 0;
    for (int i = 0; i < 10; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        total += kl_series_get(kl_metric_series(h.family, (const char *const[]){v}));
    }
    cr_expect_eq(total, 400);
    kl_metrics_free(r);
}

/* Every sample line of the exposition format: name, optional labels, a number. */
static void expect_valid_exposition(const char *text) {
    regex_t re;
    cr_assert_eq(
        regcomp(&re,
                "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
                ",?)*\\})? (-?[0-9.e+-]+|\\+Inf|NaN)$",
                REG_EXTENDED | REG_NOSUB),
        0);
    char *copy = strdup(text);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) continue;
        cr_expect_eq(regexec(&re, line, 0, NULL, 0), 0, "not a sample line: \"%s\"", line);
    }
    free(copy);
    regfree(&re);
}

Test(metrics, kindlings_own_metrics_follow_the_hooks) {
    kl_metrics *r = kl_metrics_global();
    cr_assert_not_null(r);
    cr_expect_eq(kl_metrics_global(), r, "one process-wide registry");
    kl_metrics_execution("ok", uv_hrtime() - 2000000); /* 2 ms ago */
    kl_metrics_execution("ok", uv_hrtime());
    kl_metrics_execution("error", uv_hrtime());
    kl_metrics_execution("aborted", 0);
    kl_metrics_spark_rpc("/spark.connect.SparkConnectService/ExecutePlan", KL_GRPC_OK);
    kl_metrics_spark_rpc("/spark.connect.SparkConnectService/ExecutePlan", KL_GRPC_OK);
    kl_metrics_spark_rpc("AnalyzePlan", KL_GRPC_UNAVAILABLE);
    kl_metrics_spark_retry(false);
    kl_metrics_spark_retry(true);
    kl_metrics_spark_bytes(1000);
    kl_metrics_spark_bytes(24);
    kl_metrics_iopub_backlog(1);
    kl_metrics_iopub_backlog(1);
    kl_metrics_iopub_backlog(-1);
    kl_metrics_set_connections(3);
    kl_metrics_set_coroutines(12);
    char *text = kl_metrics_render(r, NULL);
    EXPECT_LINE(text, "kindling_executions_total{status=\"ok\"} 2");
    EXPECT_LINE(text, "kindling_executions_total{status=\"error\"} 1");
    EXPECT_LINE(text, "kindling_executions_total{status=\"aborted\"} 1");
    /* The aborted request had no duration: three observations. */
    EXPECT_LINE(text, "kindling_execution_duration_seconds_count 3");
    EXPECT_LINE(text, "kindling_execution_duration_seconds_bucket{le=\"0.005\"} 3");
    EXPECT_LINE(text, "kindling_spark_rpcs_total{method=\"ExecutePlan\",code=\"OK\"} 2");
    EXPECT_LINE(text, "kindling_spark_rpcs_total{method=\"AnalyzePlan\",code=\"UNAVAILABLE\"} 1");
    EXPECT_LINE(text, "kindling_spark_retries_total 2");
    EXPECT_LINE(text, "kindling_spark_reattaches_total 1");
    EXPECT_LINE(text, "kindling_spark_bytes_received_total 1024");
    EXPECT_LINE(text, "kindling_iopub_backlog_messages 1");
    EXPECT_LINE(text, "kindling_connections 3");
    EXPECT_LINE(text, "kindling_coroutines 12");
    EXPECT_LINE(text, "kindling_build_info{version=\"" KL_VERSION "\"} 1");
    EXPECT_LINE(text, "# TYPE kindling_execution_duration_seconds histogram");
    EXPECT_LINE(text, "# TYPE kindling_executions_total counter");
    const char *rss = strstr(text, "\nkindling_process_resident_memory_bytes ");
    cr_assert_not_null(rss);
    long long bytes = atoll(rss + strlen("\nkindling_process_resident_memory_bytes "));
    cr_expect_gt(bytes, 100 * 1024, "RSS read from /proc: %lld", bytes);
    expect_valid_exposition(text);
    free(text);
}
