/* spark/grpc and spark/client against a REAL Spark Connect server.
 *
 * With KL_SPARK_REMOTE (an sc:// URL) set, that server is used. Otherwise the runner starts one
 * before the first test through scripts/spark_server.sh (a pyspark 4.0.1 server on a free
 * loopback port, with a random token so that local credentials and the bearer token are exercised
 * too) and stops it after the last; the script's watchdog also stops it if this process dies.
 * Start-up takes 10-30 s. Each test runs in its own process (Criterion), with its own loop,
 * driver and channel. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spark/arrow.h"
#include "spark/client.h"
#include "spark/grpc.h"
#include "spark/proto/kindling_rpc_status.pb-c.h"

#define SERVER_SCRIPT KL_TEST_DATA "/../../scripts/spark_server.sh"
#define STACK         0 /* the default 64 KiB: a gRPC call needs about 13 KiB of it */
/* Not count(*) over a range: once the JIT has warmed up, Spark counts range(1e10) in about a
 * second. A hash per row cannot be skipped: this runs for minutes unless stopped. */
#define LONG_QUERY "SELECT sum(hash(id)) FROM range(100000000000)"
/* For a call that gives up before the server answers: if the server registers the operation only
 * after our interrupt and ReleaseSession (Spark 4.0.1 then fails to close it and runs the job
 * anyway), an unbounded query would hold both of the test server's cores for minutes and starve
 * every later test. This one ends by itself within seconds. */
#define BOUNDED_QUERY "SELECT sum(hash(id)) FROM range(200000000)"

/* ---- The server, once per run (in the runner process, before any test forks) ----------------- */

static char state_dir[] = "/tmp/kl-grpc-test.XXXXXX";
static bool started_here;

ReportHook(PRE_ALL)(struct criterion_test_set *set) {
    (void)set;
    const char *env = getenv("KL_SPARK_REMOTE");
    if (env && *env) return;
    if (!mkdtemp(state_dir)) {
        fprintf(stderr, "grpc_test: mkdtemp: %s\n", strerror(errno));
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' start --state-dir '%s' --owner-pid %d --token auto",
             SERVER_SCRIPT, state_dir, (int)getpid());
    fprintf(stderr, "grpc_test: starting a local Spark Connect server (%s)\n", state_dir);
    FILE *p = popen(cmd, "r");
    char url[512] = "";
    if (p) {
        if (!fgets(url, sizeof url, p)) url[0] = '\0';
        int rc = pclose(p);
        if (rc != 0) url[0] = '\0';
    }
    url[strcspn(url, "\r\n")] = '\0';
    if (strncmp(url, "sc://", 5) != 0) {
        fprintf(stderr,
                "grpc_test: could not start a Spark Connect server; see %s/logs, or run "
                "one yourself and set KL_SPARK_REMOTE=sc://host:port\n",
                state_dir);
        return;
    }
    started_here = true;
    setenv("KL_SPARK_REMOTE", url, 1);
    setenv("KL_SPARK_SELF_STARTED", "1", 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
    (void)stats;
    if (!started_here) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' stop --state-dir '%s' && rm -rf '%s'", SERVER_SCRIPT, state_dir,
             state_dir);
    if (system(cmd) != 0) fprintf(stderr, "grpc_test: stopping the server failed\n");
}

/* ---- Per-test fixture ----------------------------------------------------------------------- */

static kl_loop *loop;
static kl_grpc *g;
static kl_grpc_channel *ch;
static kl_sc_remote remote;
static const kl_grpc_call_opts call_opts = {.timeout_ms = 60000};

static void setup(void) {
    const char *url = getenv("KL_SPARK_REMOTE");
    cr_assert(url && *url, "no Spark Connect server: scripts/spark_server.sh failed to start one "
                           "(see the runner's stderr); or set KL_SPARK_REMOTE=sc://host:port");
    char err[256];
    cr_assert_eq(kl_sc_remote_parse(url, &remote, err, sizeof err), 0, "%s", err);
    loop = kl_loop_new();
    cr_assert_not_null(loop);
    g = kl_grpc_new(loop, 2);
    cr_assert_not_null(g);
    ch = kl_grpc_channel_new(g, &remote, NULL, err, sizeof err);
    cr_assert_not_null(ch, "%s", err);
}

static void teardown(void) {
    kl_grpc_channel_free(ch);
    kl_grpc_free(g);
    kl_loop_free(loop);
    kl_sc_remote_free(&remote);
}

TestSuite(grpc, .init = setup, .fini = teardown, .timeout = 100);

/* Runs fn(arg) in a coroutine until the loop has nothing left to do. Assertions stay outside
 * coroutines: the coroutine records, the test body checks. */
static void run(kl_coro_fn fn, void *arg) {
    cr_assert_not_null(kl_loop_spawn(loop, fn, arg, STACK));
    kl_loop_run(loop);
    cr_assert_eq(kl_loop_coro_count(loop), 0);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool self_started(void) {
    return getenv("KL_SPARK_SELF_STARTED") != NULL;
}

/* ---- AnalyzePlan / Config (unary) ----------------------------------------------------------- */

typedef struct {
    int rc_version, rc_config, rc_release;
    char *version, *timezone, *server_session;
    kl_grpc_status st_version, st_config, st_release;
} basics;

static void basics_co(void *arg) {
    basics *b = arg;
    kl_spark_client *c = kl_spark_client_new(ch, NULL, NULL);
    /* The first test to reach the server: on a loaded machine the channel's first connection
     * attempt may time out, and gRPC then fails calls fast until its backoff ends. The kernel
     * retries UNAVAILABLE (sql.c); so does this readiness wait, for up to a minute. */
    for (int i = 0; i < 120; i++) {
        kl_grpc_status_clear(&b->st_version);
        free(b->version);
        b->version = NULL;
        b->rc_version = kl_spark_client_version(c, &call_opts, &b->version, &b->st_version);
        if (b->rc_version == 0 || b->st_version.code != KL_GRPC_UNAVAILABLE) break;
        kl_loop_sleep(loop, 500);
    }
    b->rc_config = kl_spark_client_config_get(c, "spark.sql.session.timeZone", &call_opts,
                                              &b->timezone, &b->st_config);
    const char *sid = kl_spark_client_server_session_id(c);
    b->server_session = sid ? strdup(sid) : NULL;
    b->rc_release = kl_spark_client_release_session(c, &call_opts, &b->st_release);
    kl_spark_client_free(c);
}

Test(grpc, spark_version_and_config_get) {
    basics b = {0};
    run(basics_co, &b);
    cr_assert_eq(b.rc_version, 0, "%s", b.st_version.message);
    cr_assert_eq(b.st_version.code, KL_GRPC_OK);
    const char *want = getenv("KL_SPARK_EXPECT_VERSION");
    if (!want && self_started()) want = "4.0.1";
    if (want)
        cr_assert_str_eq(b.version, want);
    else
        cr_assert(b.version[0] >= '3' && b.version[0] <= '9' && b.version[1] == '.', "%s",
                  b.version);
    cr_assert_eq(b.rc_config, 0, "%s", b.st_config.message);
    cr_assert_not_null(b.timezone);
    cr_assert_gt(strlen(b.timezone), 0);
    /* Spark 4 names its side of the session in every response. */
    if (self_started()) cr_assert_not_null(b.server_session);
    cr_assert_eq(b.rc_release, 0, "%s", b.st_release.message);
    free(b.version);
    free(b.timezone);
    free(b.server_session);
    kl_grpc_status_clear(&b.st_version);
    kl_grpc_status_clear(&b.st_config);
    kl_grpc_status_clear(&b.st_release);
}

/* ---- ExecutePlan: rows through Arrow -------------------------------------------------------- */

typedef struct {
    int end_rc, release_rc;
    kl_grpc_status st, st_release;
    int n_responses, n_batches, n_schema, n_metrics;
    int64_t row_count_sum, rows_decoded;
    int64_t ids[16], twice[16];
    char schema_names[2][16];
    bool schema_long;
    int last_type;
    bool op_ids_match;
    char decode_err[KL_ARROW_ERRLEN];
} range_result;

static void decode_batch(range_result *r, const ProtobufCBinaryData *data) {
    kl_arrow_stream *s = NULL;
    if (kl_arrow_decode(data->data, data->len, NULL, &s, r->decode_err) != 0) return;
    for (size_t b = 0; b < s->n_batches; b++) {
        const kl_arrow_batch *batch = &s->batches[b];
        if (batch->n_columns != 2) continue;
        for (int64_t i = 0; i < batch->length && r->rows_decoded < 16; i++) {
            r->ids[r->rows_decoded] = kl_arrow_get_int(&batch->columns[0], i);
            r->twice[r->rows_decoded] = kl_arrow_get_int(&batch->columns[1], i);
            r->rows_decoded++;
        }
    }
    kl_arrow_stream_free(s);
}

static void range_co(void *arg) {
    range_result *r = arg;
    kl_spark_client *c = kl_spark_client_new(ch, NULL, NULL);
    kl_spark_exec_opts o = {.call = call_opts, .reattachable = true};
    kl_spark_exec *e =
        kl_spark_client_execute_sql(c, "SELECT id, id * 2 AS twice FROM range(5)", &o);
    char op[64];
    snprintf(op, sizeof op, "%s", kl_spark_exec_operation_id(e));
    r->op_ids_match = true;
    Spark__Connect__ExecutePlanResponse *resp;
    while ((r->end_rc = kl_spark_exec_next(e, &resp, &r->st)) == 1) {
        r->n_responses++;
        r->last_type = (int)resp->response_type_case;
        if (!resp->operation_id || strcmp(resp->operation_id, op) != 0) r->op_ids_match = false;
        if (resp->schema && resp->schema->kind_case == SPARK__CONNECT__DATA_TYPE__KIND_STRUCT &&
            resp->schema->struct_->n_fields == 2) {
            r->n_schema++;
            r->schema_long = true;
            for (int i = 0; i < 2; i++) {
                const Spark__Connect__DataType__StructField *f = resp->schema->struct_->fields[i];
                snprintf(r->schema_names[i], sizeof r->schema_names[i], "%s", f->name);
                if (!f->data_type ||
                    f->data_type->kind_case != SPARK__CONNECT__DATA_TYPE__KIND_LONG)
                    r->schema_long = false;
            }
        }
        if (resp->metrics) r->n_metrics++;
        if (resp->response_type_case ==
            SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_ARROW_BATCH) {
            r->n_batches++;
            r->row_count_sum += resp->arrow_batch->row_count;
            decode_batch(r, &resp->arrow_batch->data);
        }
        spark__connect__execute_plan_response__free_unpacked(resp, NULL);
    }
    kl_spark_exec_free(e);
    r->release_rc = kl_spark_client_release_execute(c, op, &call_opts, &r->st_release);
    kl_grpc_status st;
    kl_spark_client_release_session(c, &call_opts, &st);
    kl_grpc_status_clear(&st);
    kl_spark_client_free(c);
}

Test(grpc, execute_sql_streams_schema_arrow_batches_and_result_complete) {
    range_result r = {0};
    run(range_co, &r);
    cr_assert_eq(r.end_rc, 0, "%s: %s", kl_grpc_code_name(r.st.code), r.st.message);
    cr_assert_eq(r.n_schema, 1);
    cr_assert_str_eq(r.schema_names[0], "id");
    cr_assert_str_eq(r.schema_names[1], "twice");
    cr_assert(r.schema_long);
    cr_assert_geq(r.n_batches, 1);
    cr_assert_eq(r.row_count_sum, 5);
    cr_assert_eq(r.decode_err[0], '\0', "%s", r.decode_err);
    cr_assert_eq(r.rows_decoded, 5);
    bool seen[5] = {0};
    for (int i = 0; i < 5; i++) {
        cr_assert(r.ids[i] >= 0 && r.ids[i] < 5, "id %lld", (long long)r.ids[i]);
        cr_assert_eq(r.twice[i], r.ids[i] * 2);
        seen[r.ids[i]] = true;
    }
    for (int i = 0; i < 5; i++) cr_assert(seen[i], "id %d missing", i);
    cr_assert_geq(r.n_metrics, 1);
    cr_assert(r.op_ids_match);
    cr_assert_eq(r.last_type, SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_RESULT_COMPLETE);
    cr_assert_eq(r.release_rc, 0, "%s", r.st_release.message);
    kl_grpc_status_clear(&r.st);
    kl_grpc_status_clear(&r.st_release);
}

/* ---- Many batches, consumed slowly ---------------------------------------------------------- */

typedef struct {
    int end_rc;
    kl_grpc_status st;
    int batches;
    int64_t rows;
} many_result;

static void many_co(void *arg) {
    many_result *r = arg;
    kl_spark_client *c = kl_spark_client_new(ch, NULL, NULL);
    /* 10,000 rows per Arrow batch at most: about 25 messages. */
    kl_spark_exec *e = kl_spark_client_execute_sql(c, "SELECT id FROM range(0, 250000, 1, 5)",
                                                   &(kl_spark_exec_opts){.call = call_opts});
    Spark__Connect__ExecutePlanResponse *resp;
    while ((r->end_rc = kl_spark_exec_next(e, &resp, &r->st)) == 1) {
        if (resp->response_type_case ==
            SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_ARROW_BATCH) {
            r->batches++;
            r->rows += resp->arrow_batch->row_count;
        }
        spark__connect__execute_plan_response__free_unpacked(resp, NULL);
        kl_loop_sleep(loop, 5); /* a slow consumer */
    }
    kl_spark_exec_free(e);
    kl_grpc_status st;
    kl_spark_client_release_session(c, &call_opts, &st);
    kl_grpc_status_clear(&st);
    kl_spark_client_free(c);
}

Test(grpc, a_slow_consumer_still_gets_every_batch) {
    many_result r = {0};
    run(many_co, &r);
    cr_assert_eq(r.end_rc, 0, "%s", r.st.message);
    cr_assert_eq(r.rows, 250000);
    cr_assert_geq(r.batches, 25);
    kl_grpc_status_clear(&r.st);
}

/* ---- A Spark error: INTERNAL with google.rpc.Status / ErrorInfo ------------------------------ */

typedef struct {
    int end_rc, responses;
    kl_grpc_status st;
} error_result;

static void error_co(void *arg) {
    error_result *r = arg;
    kl_spark_client *c = kl_spark_client_new(ch, NULL, NULL);
    kl_spark_exec *e = kl_spark_client_execute_sql(c, "SELECT * FROM no_such_table",
                                                   &(kl_spark_exec_opts){.call = call_opts});
    Spark__Connect__ExecutePlanResponse *resp;
    while ((r->end_rc = kl_spark_exec_next(e, &resp, &r->st)) == 1) {
        r->responses++;
        spark__connect__execute_plan_response__free_unpacked(resp, NULL);
    }
    kl_spark_exec_free(e);
    kl_grpc_status st;
    kl_spark_client_release_session(c, &call_opts, &st);
    kl_grpc_status_clear(&st);
    kl_spark_client_free(c);
}

Test(grpc, spark_error_carries_error_info_in_status_details) {
    error_result r = {0};
    run(error_co, &r);
    cr_assert_eq(r.end_rc, -1);
    cr_assert_eq(r.st.code, KL_GRPC_INTERNAL, "%s: %s", kl_grpc_code_name(r.st.code), r.st.details);
    cr_assert(strstr(r.st.details, "TABLE_OR_VIEW_NOT_FOUND"), "%s", r.st.details);
    cr_assert_not_null(r.st.details_bin);
    Google__Rpc__Status *status =
        google__rpc__status__unpack(NULL, r.st.details_bin_len, r.st.details_bin);
    cr_assert_not_null(status, "grpc-status-details-bin is not a google.rpc.Status");
    cr_assert_eq(status->code, 13);
    const char *error_class = NULL, *domain = NULL;
    Google__Rpc__ErrorInfo *info = NULL;
    for (size_t i = 0; i < status->n_details && !info; i++) {
        const Google__Rpc__Any *any = status->details[i];
        if (!any->type_url || !strstr(any->type_url, "google.rpc.ErrorInfo")) continue;
        info = google__rpc__error_info__unpack(NULL, any->value.len, any->value.data);
    }
    cr_assert_not_null(info, "no ErrorInfo among %zu details", status->n_details);
    domain = info->domain;
    for (size_t i = 0; i < info->n_metadata; i++)
        if (strcmp(info->metadata[i]->key, "errorClass") == 0)
            error_class = info->metadata[i]->value;
    cr_assert_str_eq(domain, "org.apache.spark");
    cr_assert_not_null(error_class);
    cr_assert_str_eq(error_class, "TABLE_OR_VIEW_NOT_FOUND");
    google__rpc__error_info__free_unpacked(info, NULL);
    google__rpc__status__free_unpacked(status, NULL);
    kl_grpc_status_clear(&r.st);
}

/* ---- Unreachable endpoint ------------------------------------------------------------------- */

static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* nothing listens there now */
    return ntohs(a.sin_port);
}

typedef struct {
    kl_grpc_channel *ch;
    int rc;
    char *version;
    kl_grpc_status st;
    int64_t elapsed_ms;
} version_call;

static void version_call_co(void *arg) {
    version_call *v = arg;
    kl_spark_client *c = kl_spark_client_new(v->ch, NULL, NULL);
    int64_t t0 = now_ms();
    v->rc =
        kl_spark_client_version(c, &(kl_grpc_call_opts){.timeout_ms = 20000}, &v->version, &v->st);
    v->elapsed_ms = now_ms() - t0;
    kl_spark_client_free(c);
}

Test(grpc, closed_port_is_unavailable_naming_the_endpoint) {
    int port = closed_port();
    char url[64], err[256], want[96];
    snprintf(url, sizeof url, "sc://127.0.0.1:%d", port);
    kl_sc_remote r;
    cr_assert_eq(kl_sc_remote_parse(url, &r, err, sizeof err), 0, "%s", err);
    version_call v = {.ch = kl_grpc_channel_new(g, &r, NULL, err, sizeof err)};
    cr_assert_not_null(v.ch, "%s", err);
    run(version_call_co, &v);
    cr_assert_eq(v.rc, -1);
    cr_assert_eq(v.st.code, KL_GRPC_UNAVAILABLE, "%s", kl_grpc_code_name(v.st.code));
    cr_assert_lt(v.elapsed_ms, 5000);
    snprintf(want, sizeof want, "cannot reach Spark Connect at sc://127.0.0.1:%d: ", port);
    cr_assert(strncmp(v.st.message, want, strlen(want)) == 0, "%s", v.st.message);
    cr_assert(strstr(v.st.message, "failed to connect"), "%s", v.st.message);
    kl_grpc_status_clear(&v.st);
    kl_grpc_channel_free(v.ch);
    kl_sc_remote_free(&r);
}

/* ---- Channel set-up: TLS, CA files, extra metadata, local masters -----------------------------
 */

Test(grpc, channel_options_and_their_errors) {
    char url[160], err[256];
    kl_sc_remote r;

    /* TLS against a plaintext server: the handshake fails, and says so as UNAVAILABLE. */
    snprintf(url, sizeof url, "sc://127.0.0.1:%d/;use_ssl=true", remote.port);
    cr_assert_eq(kl_sc_remote_parse(url, &r, err, sizeof err), 0, "%s", err);
    version_call tls = {.ch = kl_grpc_channel_new(g, &r, NULL, err, sizeof err)};
    cr_assert_not_null(tls.ch, "%s", err);
    kl_sc_remote_free(&r);

    /* A CA file that cannot be read is refused up front, naming the file. */
    cr_assert_eq(kl_sc_remote_parse(url, &r, err, sizeof err), 0, "%s", err);
    kl_grpc_channel_opts o = {.ca_file = "/nonexistent/kindling-ca.pem"};
    cr_assert_null(kl_grpc_channel_new(g, &r, &o, err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/kindling-ca.pem"), "%s", err);
    kl_sc_remote_free(&r);

    /* "local" names a server still to be started, not an endpoint. */
    cr_assert_eq(kl_sc_remote_parse("local[2]", &r, err, sizeof err), 0, "%s", err);
    cr_assert_null(kl_grpc_channel_new(g, &r, NULL, err, sizeof err));
    cr_assert(strstr(err, "sc://"), "%s", err);
    kl_sc_remote_free(&r);

    /* Unknown URL parameters travel as metadata; the server ignores them and answers. */
    if (remote.token)
        snprintf(url, sizeof url, "sc://%s:%d/;token=%s;x-kindling-test=1;user_agent=kl-test",
                 remote.host, remote.port, remote.token);
    else
        snprintf(url, sizeof url, "sc://%s:%d/;x-kindling-test=1;user_agent=kl-test", remote.host,
                 remote.port);
    cr_assert_eq(kl_sc_remote_parse(url, &r, err, sizeof err), 0, "%s", err);
    version_call extra = {.ch = kl_grpc_channel_new(g, &r, NULL, err, sizeof err)};
    cr_assert_not_null(extra.ch, "%s", err);
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "sc://%s:%d", remote.host, remote.port);
    cr_assert_str_eq(kl_grpc_channel_endpoint(extra.ch), endpoint);
    kl_sc_remote_free(&r);

    cr_assert_not_null(kl_loop_spawn(loop, version_call_co, &tls, STACK));
    run(version_call_co, &extra);
    cr_assert_eq(tls.st.code, KL_GRPC_UNAVAILABLE, "%s: %s", kl_grpc_code_name(tls.st.code),
                 tls.st.message);
    cr_assert_lt(tls.elapsed_ms, 5000);
    cr_assert_eq(extra.rc, 0, "%s", extra.st.message);
    free(extra.version);
    kl_grpc_status_clear(&tls.st);
    kl_grpc_status_clear(&extra.st);
    kl_grpc_channel_free(tls.ch);
    kl_grpc_channel_free(extra.ch);
}

/* ---- Tokens ---------------------------------------------------------------------------------- */

static kl_grpc_channel *channel_with_token(kl_sc_remote *r, const char *token) {
    char url[128], err[256];
    if (token)
        snprintf(url, sizeof url, "sc://%s:%d/;token=%s", remote.host, remote.port, token);
    else
        snprintf(url, sizeof url, "sc://%s:%d", remote.host, remote.port);
    cr_assert_eq(kl_sc_remote_parse(url, r, err, sizeof err), 0, "%s", err);
    kl_grpc_channel *c = kl_grpc_channel_new(g, r, NULL, err, sizeof err);
    cr_assert_not_null(c, "%s", err);
    return c;
}

Test(grpc, wrong_or_missing_token_is_unauthenticated) {
    if (!remote.token) cr_skip_test("KL_SPARK_REMOTE has no token");
    kl_sc_remote r1, r2;
    version_call wrong = {.ch = channel_with_token(&r1, "not-the-token")};
    version_call none = {.ch = channel_with_token(&r2, NULL)};
    /* One after the other: both channels may share one connection (gRPC pools subchannels by
     * target), and the server may close it after refusing a call, failing a call still on it with
     * UNAVAILABLE instead of the answer this test is about. */
    run(version_call_co, &wrong);
    run(version_call_co, &none);
    /* A connection the busy test server failed to set up in time is not what this test is about;
     * UNAVAILABLE is retried, as the official clients retry it. */
    for (int i = 0; i < 3 && wrong.st.code == KL_GRPC_UNAVAILABLE; i++) {
        kl_grpc_status_clear(&wrong.st);
        run(version_call_co, &wrong);
    }
    for (int i = 0; i < 3 && none.st.code == KL_GRPC_UNAVAILABLE; i++) {
        kl_grpc_status_clear(&none.st);
        run(version_call_co, &none);
    }
    cr_assert_eq(wrong.st.code, KL_GRPC_UNAUTHENTICATED, "%s: %s", kl_grpc_code_name(wrong.st.code),
                 wrong.st.message);
    cr_assert(strstr(wrong.st.message, "rejected the token"), "%s", wrong.st.message);
    cr_assert_eq(none.st.code, KL_GRPC_UNAUTHENTICATED, "%s", kl_grpc_code_name(none.st.code));
    cr_assert(strstr(none.st.message, "requires a token"), "%s", none.st.message);
    kl_grpc_status_clear(&wrong.st);
    kl_grpc_status_clear(&none.st);
    kl_grpc_channel_free(wrong.ch);
    kl_grpc_channel_free(none.ch);
    kl_sc_remote_free(&r1);
    kl_sc_remote_free(&r2);
}

/* ---- Deadline and cancel -------------------------------------------------------------------- */

typedef struct {
    int64_t timeout_ms;
    int cancel_after_ms; /* > 0: another thread cancels the stream after this long */
    int end_rc, responses, interrupt_rc;
    kl_grpc_status st, st_interrupt;
    int64_t cancelled_at, ended_at, started_at;
    kl_spark_exec *e;
    const char *query; /* NULL: LONG_QUERY */
} long_query;

static void *canceller(void *arg) {
    long_query *q = arg;
    usleep((useconds_t)q->cancel_after_ms * 1000);
    q->cancelled_at = now_ms();
    kl_spark_exec_cancel(q->e);
    return NULL;
}

static void long_query_co(void *arg) {
    long_query *q = arg;
    kl_spark_client *c = kl_spark_client_new(ch, NULL, NULL);
    q->started_at = now_ms();
    q->e =
        kl_spark_client_execute_sql(c, q->query ? q->query : LONG_QUERY,
                                    &(kl_spark_exec_opts){.call = {.timeout_ms = q->timeout_ms}});
    pthread_t t;
    if (q->cancel_after_ms > 0) pthread_create(&t, NULL, canceller, q);
    Spark__Connect__ExecutePlanResponse *resp;
    while ((q->end_rc = kl_spark_exec_next(q->e, &resp, &q->st)) == 1) {
        q->responses++;
        spark__connect__execute_plan_response__free_unpacked(resp, NULL);
    }
    q->ended_at = now_ms();
    if (q->cancel_after_ms > 0) pthread_join(t, NULL);
    kl_spark_exec_free(q->e);
    /* The server may have started the job: stop it so later tests get the cores back. */
    q->interrupt_rc = kl_spark_client_interrupt(c, NULL, &call_opts, &q->st_interrupt);
    if (q->interrupt_rc != 0 && q->st_interrupt.code == KL_GRPC_UNAVAILABLE) {
        /* gRPC core 1.51 may send RST_STREAM for a stream whose HEADERS it never wrote when a
         * deadline fires that early (grpc/grpc#19655, #38758); Netty takes that as a connection
         * error and closes the connection, so the next call may fail once with UNAVAILABLE
         * "Socket closed". Retrying UNAVAILABLE is the official clients' policy too. */
        kl_grpc_status_clear(&q->st_interrupt);
        q->interrupt_rc = kl_spark_client_interrupt(c, NULL, &call_opts, &q->st_interrupt);
    }
    kl_grpc_status st;
    kl_spark_client_release_session(c, &call_opts, &st);
    kl_grpc_status_clear(&st);
    kl_spark_client_free(c);
}

Test(grpc, a_1ms_deadline_is_deadline_exceeded) {
    long_query q = {.timeout_ms = 1, .query = BOUNDED_QUERY};
    run(long_query_co, &q);
    cr_assert_eq(q.end_rc, -1);
    cr_assert_eq(q.st.code, KL_GRPC_DEADLINE_EXCEEDED, "%s: %s", kl_grpc_code_name(q.st.code),
                 q.st.message);
    cr_assert(strstr(q.st.message, "did not finish within 1 ms"), "%s", q.st.message);
    cr_assert_lt(q.ended_at - q.started_at, 2000);
    cr_assert_eq(q.interrupt_rc, 0, "%s", q.st_interrupt.message);
    kl_grpc_status_clear(&q.st);
    kl_grpc_status_clear(&q.st_interrupt);
}

Test(grpc, cancel_from_another_thread_ends_a_running_stream_promptly) {
    long_query q = {.cancel_after_ms = 1500};
    run(long_query_co, &q);
    cr_assert_eq(q.end_rc, -1, "the query finished before the cancel");
    cr_assert_eq(q.st.code, KL_GRPC_CANCELLED, "%s: %s", kl_grpc_code_name(q.st.code),
                 q.st.message);
    cr_assert(strstr(q.st.message, "cancelled"), "%s", q.st.message);
    cr_assert_gt(q.cancelled_at, 0);
    cr_assert_lt(q.ended_at - q.cancelled_at, 500, "ended %lld ms after the cancel",
                 (long long)(q.ended_at - q.cancelled_at));
    cr_assert_eq(q.interrupt_rc, 0, "%s", q.st_interrupt.message);
    kl_grpc_status_clear(&q.st);
    kl_grpc_status_clear(&q.st_interrupt);
}

/* ---- 200 concurrent calls on one loop -------------------------------------------------------- */

#define N_CONCURRENT 200

typedef struct {
    kl_spark_client *c;
    int rc;
    char *version;
    kl_grpc_status st;
} concurrent_call;

static size_t peak_active;
static int threads_at_peak;

static int thread_count(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

static void concurrent_co(void *arg) {
    concurrent_call *cc = arg;
    cc->rc = kl_spark_client_version(cc->c, &call_opts, &cc->version, &cc->st);
}

/* Spawned after the callers: by the time it runs, each of them has started its call. */
static void monitor_co(void *arg) {
    (void)arg;
    peak_active = kl_grpc_active_calls(g);
    threads_at_peak = thread_count();
}

Test(grpc, two_hundred_concurrent_unary_calls_share_the_driver_threads) {
    static concurrent_call calls[N_CONCURRENT];
    kl_spark_client *c = kl_spark_client_new(ch, NULL, NULL);
    for (int i = 0; i < N_CONCURRENT; i++) {
        calls[i] = (concurrent_call){.c = c, .rc = -2};
        cr_assert_not_null(kl_loop_spawn(loop, concurrent_co, &calls[i], STACK));
    }
    run(monitor_co, NULL);
    cr_assert_eq(peak_active, N_CONCURRENT);
    /* The driver's 2 threads plus gRPC's own handful -- nowhere near one per call. */
    cr_assert_lt(threads_at_peak, 40, "%d threads", threads_at_peak);
    for (int i = 0; i < N_CONCURRENT; i++) {
        cr_assert_eq(calls[i].rc, 0, "call %d: %s", i, calls[i].st.message);
        cr_assert_str_eq(calls[i].version, calls[0].version);
    }
    for (int i = 0; i < N_CONCURRENT; i++) {
        free(calls[i].version);
        kl_grpc_status_clear(&calls[i].st);
    }
    cr_assert_eq(kl_grpc_active_calls(g), 0);
    kl_spark_client_free(c);
}

/* ---- Client streaming: AddArtifacts --------------------------------------------------------- */

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

typedef struct {
    int send_rc[2], rc;
    kl_grpc_status st;
    Spark__Connect__AddArtifactsResponse *resp;
} artifacts_result;

static const char *const artifact_names[2] = {"files/kindling-grpc-test-1.txt",
                                              "files/kindling-grpc-test-2.txt"};

static void artifacts_co(void *arg) {
    artifacts_result *r = arg;
    kl_spark_client *c = kl_spark_client_new(ch, NULL, NULL);
    kl_grpc_stream *s = kl_grpc_stream_open_client(ch, KL_SPARK_SERVICE "AddArtifacts", &call_opts);
    Spark__Connect__UserContext uc = SPARK__CONNECT__USER_CONTEXT__INIT;
    uc.user_id = "kindling-test";
    for (int i = 0; i < 2; i++) {
        /* One request per artifact, each a one-artifact batch, so the stream carries several. */
        char text[64];
        int n = snprintf(text, sizeof text, "hello from kindling, part %d\n", i + 1);
        Spark__Connect__AddArtifactsRequest__ArtifactChunk chunk =
            SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__ARTIFACT_CHUNK__INIT;
        chunk.has_data = chunk.has_crc = true;
        chunk.data = (ProtobufCBinaryData){.len = (size_t)n, .data = (uint8_t *)text};
        chunk.crc = crc32_of((uint8_t *)text, (size_t)n);
        Spark__Connect__AddArtifactsRequest__SingleChunkArtifact art =
            SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__SINGLE_CHUNK_ARTIFACT__INIT;
        art.name = (char *)artifact_names[i];
        art.data = &chunk;
        Spark__Connect__AddArtifactsRequest__SingleChunkArtifact *arts[] = {&art};
        Spark__Connect__AddArtifactsRequest__Batch batch =
            SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__BATCH__INIT;
        batch.n_artifacts = 1;
        batch.artifacts = arts;
        Spark__Connect__AddArtifactsRequest req = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__INIT;
        req.session_id = (char *)kl_spark_client_session_id(c);
        req.user_context = &uc;
        req.client_type = "kindling-test";
        req.payload_case = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BATCH;
        req.batch = &batch;
        uint8_t buf[1024];
        size_t len = spark__connect__add_artifacts_request__pack(&req, buf);
        r->send_rc[i] = kl_grpc_stream_send(s, buf, len);
    }
    kl_grpc_bytes out;
    r->rc = kl_grpc_stream_finish(s, &out, &r->st);
    if (r->rc == 0) {
        r->resp = spark__connect__add_artifacts_response__unpack(NULL, out.len, out.data);
        free(out.data);
    }
    kl_grpc_stream_free(s);
    kl_spark_client_free(c);
}

Test(grpc, client_streaming_add_artifacts) {
    artifacts_result r = {0};
    run(artifacts_co, &r);
    cr_assert_eq(r.send_rc[0], 0);
    cr_assert_eq(r.send_rc[1], 0);
    cr_assert_eq(r.rc, 0, "%s: %s", kl_grpc_code_name(r.st.code), r.st.message);
    cr_assert_not_null(r.resp);
    cr_assert_eq(r.resp->n_artifacts, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(r.resp->artifacts[i]->name, artifact_names[i]);
        cr_assert(r.resp->artifacts[i]->is_crc_successful);
    }
    spark__connect__add_artifacts_response__free_unpacked(r.resp, NULL);
    kl_grpc_status_clear(&r.st);
}

/* ---- Shutdown with a stream in flight ------------------------------------------------------- */

typedef struct {
    kl_grpc_stream *s;
    int first_rc, after_rc;
    kl_grpc_status st;
    kl_grpc_bytes msg;
} pending_stream;

static void open_and_leave_co(void *arg) {
    pending_stream *p = arg;
    kl_spark_client *c = kl_spark_client_new(ch, NULL, NULL);
    /* A raw transport stream, left unread after its first message. */
    Spark__Connect__SQL q = SPARK__CONNECT__SQL__INIT;
    q.query = "SELECT id FROM range(2000000)";
    Spark__Connect__Relation rel = SPARK__CONNECT__RELATION__INIT;
    rel.rel_type_case = SPARK__CONNECT__RELATION__REL_TYPE_SQL;
    rel.sql = &q;
    Spark__Connect__Plan plan = SPARK__CONNECT__PLAN__INIT;
    plan.op_type_case = SPARK__CONNECT__PLAN__OP_TYPE_ROOT;
    plan.root = &rel;
    Spark__Connect__UserContext uc = SPARK__CONNECT__USER_CONTEXT__INIT;
    uc.user_id = "kindling-test";
    Spark__Connect__ExecutePlanRequest req = SPARK__CONNECT__EXECUTE_PLAN_REQUEST__INIT;
    req.session_id = (char *)kl_spark_client_session_id(c);
    req.user_context = &uc;
    req.plan = &plan;
    uint8_t buf[512];
    size_t len = spark__connect__execute_plan_request__pack(&req, buf);
    p->s = kl_grpc_stream_open(ch, KL_SPARK_SERVICE "ExecutePlan", buf, len, &call_opts);
    p->first_rc = kl_grpc_stream_next(p->s, &p->msg, &p->st);
    free(p->msg.data);
    kl_spark_client_free(c);
}

static void next_after_shutdown_co(void *arg) {
    pending_stream *p = arg;
    kl_grpc_status_clear(&p->st);
    p->after_rc = kl_grpc_stream_next(p->s, &p->msg, &p->st);
    while (p->after_rc == 1) {
        free(p->msg.data);
        p->after_rc = kl_grpc_stream_next(p->s, &p->msg, &p->st);
    }
}

Test(grpc, shutdown_cancels_streams_in_flight_and_leaves_them_inert) {
    pending_stream p = {0};
    run(open_and_leave_co, &p);
    cr_assert_eq(p.first_rc, 1, "%s", p.st.message);
    cr_assert_eq(kl_grpc_active_calls(g), 1);
    kl_grpc_channel_free(ch);
    ch = NULL;
    kl_grpc_free(g); /* the stream is still open and unread */
    g = NULL;
    run(next_after_shutdown_co, &p);
    cr_assert_eq(p.after_rc, -1);
    cr_assert_eq(p.st.code, KL_GRPC_CANCELLED, "%s", kl_grpc_code_name(p.st.code));
    kl_grpc_stream_free(p.s);
    kl_grpc_status_clear(&p.st);
}
