/* spark/artifact against a REAL Spark Connect server: the facts the kernel's %AddJar relies on.
 * Chunked and batched uploads arrive with every CRC accepted; re-sending the same bytes under a
 * name is accepted while different bytes are refused (ARTIFACT_ALREADY_EXISTS); ArtifactStatus
 * knows `cache/<sha256>` names only; a chunk whose CRC is wrong is reported and not stored.
 *
 * With KL_SPARK_REMOTE (an sc:// URL) set, that server is used; otherwise one is started before
 * the first test through scripts/spark_server.sh and stopped after the last. */
#include <criterion/criterion.h>

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/pool.h"
#include "spark/artifact.h"
#include "spark/client.h"
#include "spark/grpc.h"

#define SERVER_SCRIPT KL_TEST_DATA "/../../scripts/spark_server.sh"

static char state_dir[] = "/tmp/kl-artifact-test.XXXXXX";
static bool started_here;

ReportHook(PRE_ALL)(struct criterion_test_set *set) {
    (void)set;
    const char *env = getenv("KL_SPARK_REMOTE");
    if (env && *env) return;
    if (!mkdtemp(state_dir)) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' start --state-dir '%s' --owner-pid %d", SERVER_SCRIPT,
             state_dir, (int)getpid());
    fprintf(stderr, "artifact_server_test: starting a local Spark Connect server (%s)\n",
            state_dir);
    FILE *p = popen(cmd, "r");
    char url[512] = "";
    if (p) {
        if (!fgets(url, sizeof url, p)) url[0] = '\0';
        if (pclose(p) != 0) url[0] = '\0';
    }
    url[strcspn(url, "\r\n")] = '\0';
    if (strncmp(url, "sc://", 5) != 0) return;
    started_here = true;
    setenv("KL_SPARK_REMOTE", url, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
    (void)stats;
    if (!started_here) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' stop --state-dir '%s' && rm -rf '%s'", SERVER_SCRIPT, state_dir,
             state_dir);
    if (system(cmd) != 0) fprintf(stderr, "artifact_server_test: stopping the server failed\n");
}

static kl_loop *loop;
static kl_pool *pool;
static kl_grpc *g;
static kl_grpc_channel *ch;
static kl_sc_remote remote;
static char dir[] = "/tmp/kl-artifact-files.XXXXXX";
static const kl_grpc_call_opts call_opts = {.timeout_ms = 60000};

static void setup(void) {
    const char *url = getenv("KL_SPARK_REMOTE");
    cr_assert(url && *url, "no Spark Connect server: scripts/spark_server.sh failed to start one; "
                           "or set KL_SPARK_REMOTE=sc://host:port");
    char err[256];
    cr_assert_eq(kl_sc_remote_parse(url, &remote, err, sizeof err), 0, "%s", err);
    loop = kl_loop_new();
    pool = kl_pool_new(loop, 2);
    g = kl_grpc_new(loop, 2);
    cr_assert(loop && pool && g);
    ch = kl_grpc_channel_new(g, &remote, NULL, err, sizeof err);
    cr_assert_not_null(ch, "%s", err);
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    kl_grpc_channel_free(ch);
    kl_grpc_free(g);
    kl_pool_free(pool);
    kl_loop_free(loop);
    kl_sc_remote_free(&remote);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(artifact_server, .init = setup, .fini = teardown, .timeout = 120);

static void run(kl_coro_fn fn, void *arg) {
    cr_assert_not_null(kl_loop_spawn(loop, fn, arg, 0));
    kl_loop_run(loop);
    cr_assert_eq(kl_loop_coro_count(loop), 0);
}

static uint8_t *pattern(size_t n, uint32_t seed) {
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
    return p;
}

static char *write_file(const char *name, const uint8_t *data, size_t n) {
    char *path = NULL;
    cr_assert_geq(asprintf(&path, "%s/%s", dir, name), 0);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

static void sha256_hex(const uint8_t *data, size_t n, char hex[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* ---- uploads -------------------------------------------------------------------------------- */

typedef struct item {
    const char *name, *path;
    uint64_t size;
} item;

typedef struct upload_case {
    item items[4];
    size_t n;
    int rc;
    bool crc_ok[4];
    kl_grpc_status st;
    char err[1024];
} upload_case;

/* One kl_artifact_upload of c's items on client cl. */
static void upload_on(kl_spark_client *cl, upload_case *c) {
    kl_artifact_upload *u = kl_artifact_upload_new(cl, pool);
    for (size_t i = 0; i < c->n; i++)
        kl_artifact_upload_add(u, c->items[i].name, c->items[i].path, c->items[i].size);
    c->rc = kl_artifact_upload_run(u, &call_opts, &c->st);
    for (size_t i = 0; i < c->n; i++) c->crc_ok[i] = kl_artifact_upload_crc_ok(u, i);
    snprintf(c->err, sizeof c->err, "%s", kl_artifact_upload_error(u));
    kl_artifact_upload_free(u);
}

typedef struct scenario {
    upload_case first, again, changed;
    const char *status_names[3];
    bool exists[3];
    int status_rc;
    kl_grpc_status status_st;
} scenario;

static void scenario_co(void *arg) {
    scenario *s = arg;
    kl_spark_client *cl = kl_spark_client_new(ch, NULL, NULL);
    upload_on(cl, &s->first);
    upload_on(cl, &s->again);
    upload_on(cl, &s->changed);
    s->status_rc = kl_artifact_status(cl, s->status_names, 3, s->exists, &call_opts, &s->status_st);
    kl_grpc_status st = {0};
    kl_spark_client_release_session(cl, &call_opts, &st);
    kl_grpc_status_clear(&st);
    kl_spark_client_free(cl);
}

Test(artifact_server, chunked_and_batched_uploads_re_uploads_and_status) {
    const size_t big_n = 100 * 1024 + 17, small_n = 1000, blob_n = 5000;
    uint8_t *big = pattern(big_n, 1), *small = pattern(small_n, 2), *blob = pattern(blob_n, 3);
    uint8_t *other = pattern(small_n, 4);
    char *big_path = write_file("big.bin", big, big_n);
    char *small_path = write_file("small.txt", small, small_n);
    char *blob_path = write_file("blob", blob, blob_n);
    char *other_path = write_file("other.txt", other, small_n);
    char sha[65], cache_name[80];
    sha256_hex(blob, blob_n, sha);
    snprintf(cache_name, sizeof cache_name, "cache/%s", sha);

    scenario s = {0};
    s.first.items[0] = (item){"files/big.bin", big_path, big_n};       /* 4 chunks */
    s.first.items[1] = (item){"files/small.txt", small_path, small_n}; /* a batch */
    s.first.items[2] = (item){cache_name, blob_path, blob_n};          /* a batch too */
    s.first.n = 3;
    s.again = s.first; /* the same bytes under the same names */
    s.changed.items[0] = (item){"files/small.txt", other_path, small_n};
    s.changed.n = 1;
    s.status_names[0] = cache_name;
    s.status_names[1] = "files/small.txt";
    s.status_names[2] = "cache/0000000000000000000000000000000000000000000000000000000000000000";
    run(scenario_co, &s);

    cr_assert_eq(s.first.rc, 0, "%s %s", s.first.st.message, s.first.err);
    for (size_t i = 0; i < 3; i++) cr_assert(s.first.crc_ok[i], "%s", s.first.items[i].name);
    cr_assert_eq(s.again.rc, 0, "the same bytes again are accepted: %s", s.again.st.message);
    for (size_t i = 0; i < 3; i++) cr_assert(s.again.crc_ok[i]);
    cr_assert_eq(s.changed.rc, -1, "other bytes under a registered name are refused");
    cr_assert(strstr(s.changed.st.details, "ARTIFACT_ALREADY_EXISTS"), "%s", s.changed.st.details);
    cr_assert_eq(s.status_rc, 0, "%s", s.status_st.message);
    cr_assert(s.exists[0], "the cache/ blob is known");
    cr_assert(!s.exists[1], "ArtifactStatus does not answer for files/ (nor jars/) names");
    cr_assert(!s.exists[2]);

    kl_grpc_status_clear(&s.first.st);
    kl_grpc_status_clear(&s.again.st);
    kl_grpc_status_clear(&s.changed.st);
    kl_grpc_status_clear(&s.status_st);
    free(big_path);
    free(small_path);
    free(blob_path);
    free(other_path);
    free(big);
    free(small);
    free(blob);
    free(other);
}

/* ---- a wrong CRC ---------------------------------------------------------------------------- */

typedef struct bad_crc {
    int finish_rc;
    kl_grpc_status st;
    bool crc_ok[1];
    int read_rc;
    upload_case retry;
} bad_crc;

static void bad_crc_co(void *arg) {
    bad_crc *b = arg;
    kl_spark_client *cl = kl_spark_client_new(ch, NULL, NULL);
    /* Pack a correct batch, then break its CRC on the way out. */
    uint64_t sizes[] = {300};
    const char *names[] = {"files/crc.txt"};
    uint8_t *data = pattern(300, 9);
    const uint8_t *pieces[] = {data};
    kl_artifact_plan p;
    kl_artifact_plan_make(sizes, 1, &p);
    kl_artifact_common cm;
    kl_artifact_common_copy(cl, &cm);
    kl_grpc_bytes msg;
    kl_artifact_pack(&p, 0, names, sizes, pieces, &cm, &msg);
    Spark__Connect__AddArtifactsRequest *r =
        spark__connect__add_artifacts_request__unpack(NULL, msg.len, msg.data);
    r->batch->artifacts[0]->data->crc ^= 1;
    size_t len = spark__connect__add_artifacts_request__get_packed_size(r);
    uint8_t *bad = malloc(len);
    spark__connect__add_artifacts_request__pack(r, bad);
    kl_grpc_stream *s = kl_grpc_stream_open_client(kl_spark_client_channel(cl),
                                                   KL_SPARK_SERVICE "AddArtifacts", &call_opts);
    kl_grpc_stream_send(s, bad, len);
    kl_grpc_bytes resp = {0};
    b->finish_rc = kl_grpc_stream_finish(s, &resp, &b->st);
    char *server = NULL;
    b->read_rc = kl_artifact_read_response(resp.data, resp.len, names, 1, b->crc_ok, &server);
    free(server);
    free(resp.data);
    kl_grpc_stream_free(s);
    /* Nothing was stored: the right bytes under the same name are then accepted. */
    char *path = write_file("crc.txt", data, 300);
    b->retry.items[0] = (item){"files/crc.txt", path, 300};
    b->retry.n = 1;
    upload_on(cl, &b->retry);
    free(path);
    free(bad);
    spark__connect__add_artifacts_request__free_unpacked(r, NULL);
    free(msg.data);
    kl_artifact_common_clear(&cm);
    kl_artifact_plan_clear(&p);
    free(data);
    kl_grpc_status st = {0};
    kl_spark_client_release_session(cl, &call_opts, &st);
    kl_grpc_status_clear(&st);
    kl_spark_client_free(cl);
}

Test(artifact_server, a_wrong_crc_is_reported_and_nothing_is_stored) {
    bad_crc b = {0};
    run(bad_crc_co, &b);
    cr_assert_eq(b.finish_rc, 0, "%s", b.st.message);
    cr_assert_eq(b.read_rc, 0);
    cr_assert(!b.crc_ok[0], "the server must report the CRC mismatch");
    cr_assert_eq(b.retry.rc, 0, "%s", b.retry.st.message);
    cr_assert(b.retry.crc_ok[0]);
    kl_grpc_status_clear(&b.st);
    kl_grpc_status_clear(&b.retry.st);
}
