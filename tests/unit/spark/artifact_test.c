/* AddArtifacts without a server: CRC-32 against published vectors and an independent bitwise
 * implementation, how artifacts are split into batch / begin_chunk / chunk messages, the packed
 * messages as the server would decode them, and the reading of the server's summary. */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spark/artifact.h"

/* The textbook bit-at-a-time CRC-32, to check the table-driven one against. */
static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
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

Test(crc32, published_vectors) {
    cr_assert_eq(kl_crc32(0, "", 0), 0u);
    cr_assert_eq(kl_crc32(0, "123456789", 9), 0xCBF43926u); /* the CRC-32/ISO-HDLC check value */
    cr_assert_eq(kl_crc32(0, "a", 1), 0xE8B7BE43u);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    cr_assert_eq(kl_crc32(0, fox, strlen(fox)), 0x414FA339u);
}

Test(crc32, incremental_equals_one_shot_and_bitwise) {
    uint8_t *p = pattern(100000, 7);
    uint32_t whole = kl_crc32(0, p, 100000);
    uint32_t parts = kl_crc32(kl_crc32(kl_crc32(0, p, 1), p + 1, 40000), p + 40001, 59999);
    cr_assert_eq(whole, parts);
    cr_assert_eq(whole, crc_bitwise(p, 100000));
    free(p);
}

/* ---- plans ---------------------------------------------------------------------------------- */

static void expect_msg(const kl_artifact_plan *p, size_t i, kl_artifact_msg_kind kind, size_t count,
                       uint64_t bytes) {
    cr_assert_lt(i, p->nmsgs);
    cr_assert_eq(p->msgs[i].kind, kind, "message %zu kind", i);
    cr_assert_eq(p->msgs[i].count, count, "message %zu pieces", i);
    cr_assert_eq(p->msgs[i].bytes, bytes, "message %zu bytes", i);
}

Test(plan, a_100_KiB_artifact_is_four_chunks) {
    uint64_t sizes[] = {100 * 1024};
    kl_artifact_plan p;
    cr_assert_eq(kl_artifact_plan_make(sizes, 1, &p), 0);
    cr_assert_eq(p.nmsgs, 4);
    expect_msg(&p, 0, KL_ARTIFACT_MSG_BEGIN, 1, 32768);
    expect_msg(&p, 1, KL_ARTIFACT_MSG_CHUNK, 1, 32768);
    expect_msg(&p, 2, KL_ARTIFACT_MSG_CHUNK, 1, 32768);
    expect_msg(&p, 3, KL_ARTIFACT_MSG_CHUNK, 1, 4096);
    for (size_t i = 0; i < 4; i++) cr_assert_eq(p.pieces[p.msgs[i].first].offset, i * 32768);
    kl_artifact_plan_clear(&p);
}

Test(plan, small_artifacts_share_batches_of_at_most_32_KiB) {
    uint64_t sizes[] = {10, 20000, 15000, 32768, 0};
    kl_artifact_plan p;
    cr_assert_eq(kl_artifact_plan_make(sizes, 5, &p), 0);
    cr_assert_eq(p.nmsgs, 3);
    expect_msg(&p, 0, KL_ARTIFACT_MSG_BATCH, 2, 20010);
    expect_msg(&p, 1, KL_ARTIFACT_MSG_BATCH, 1, 15000);
    expect_msg(&p, 2, KL_ARTIFACT_MSG_BATCH, 2, 32768); /* exactly 32 KiB still fits */
    cr_assert_eq(p.pieces[p.msgs[2].first + 1].item, 4);
    kl_artifact_plan_clear(&p);
}

Test(plan, a_large_artifact_closes_the_batch_before_it) {
    uint64_t sizes[] = {100, 32769, 200};
    kl_artifact_plan p;
    cr_assert_eq(kl_artifact_plan_make(sizes, 3, &p), 0);
    cr_assert_eq(p.nmsgs, 4);
    expect_msg(&p, 0, KL_ARTIFACT_MSG_BATCH, 1, 100);
    expect_msg(&p, 1, KL_ARTIFACT_MSG_BEGIN, 1, 32768);
    expect_msg(&p, 2, KL_ARTIFACT_MSG_CHUNK, 1, 1);
    expect_msg(&p, 3, KL_ARTIFACT_MSG_BATCH, 1, 200); /* a new batch, after the chunks */
    kl_artifact_plan_clear(&p);
}

/* ---- packing -------------------------------------------------------------------------------- */

static kl_artifact_common common(void) {
    kl_artifact_common cm = {
        .session_id = "2d1f7a3e-0000-4000-8000-000000000001",
        .client_type = "kindling/test",
        .server_session_id = "srv-1",
        .user_id = "ann",
        .user_name = "ann",
    };
    return cm;
}

static Spark__Connect__AddArtifactsRequest *pack_and_unpack(const kl_artifact_plan *p, size_t i,
                                                            const char *const *names,
                                                            const uint64_t *sizes,
                                                            const uint8_t *const *datas) {
    /* datas[k] holds artifact k whole: slice out each piece of message i. */
    const kl_artifact_msg *m = &p->msgs[i];
    const uint8_t *pieces[16];
    cr_assert_leq(m->count, 16);
    for (size_t k = 0; k < m->count; k++) {
        const kl_artifact_piece *pc = &p->pieces[m->first + k];
        pieces[k] = datas[pc->item] + pc->offset;
    }
    kl_artifact_common cm = common();
    kl_grpc_bytes out;
    cr_assert_eq(kl_artifact_pack(p, i, names, sizes, pieces, &cm, &out), 0);
    Spark__Connect__AddArtifactsRequest *r =
        spark__connect__add_artifacts_request__unpack(NULL, out.len, out.data);
    free(out.data);
    cr_assert_not_null(r);
    cr_assert_str_eq(r->session_id, cm.session_id);
    cr_assert_str_eq(r->client_type, cm.client_type);
    cr_assert_str_eq(r->client_observed_server_side_session_id, "srv-1");
    cr_assert_str_eq(r->user_context->user_id, "ann");
    return r;
}

static void expect_chunk(const Spark__Connect__AddArtifactsRequest__ArtifactChunk *ch,
                         const uint8_t *want, size_t len) {
    cr_assert(ch->has_data && ch->has_crc);
    cr_assert_eq(ch->data.len, len);
    if (len) cr_assert_eq(memcmp(ch->data.data, want, len), 0);
    cr_assert_eq(ch->crc, (int64_t)crc_bitwise(want, len), "crc %lld", (long long)ch->crc);
}

Test(pack, chunks_of_a_100_KiB_artifact) {
    const size_t n = 100 * 1024;
    uint8_t *data = pattern(n, 42);
    uint64_t sizes[] = {n};
    const char *names[] = {"jars/big.jar"};
    const uint8_t *datas[] = {data};
    kl_artifact_plan p;
    cr_assert_eq(kl_artifact_plan_make(sizes, 1, &p), 0);
    uint8_t *joined = malloc(n);
    size_t at = 0;
    for (size_t i = 0; i < p.nmsgs; i++) {
        Spark__Connect__AddArtifactsRequest *r = pack_and_unpack(&p, i, names, sizes, datas);
        const Spark__Connect__AddArtifactsRequest__ArtifactChunk *ch;
        if (i == 0) {
            cr_assert_eq(r->payload_case,
                         SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BEGIN_CHUNK);
            cr_assert_str_eq(r->begin_chunk->name, "jars/big.jar");
            cr_assert(r->begin_chunk->has_total_bytes && r->begin_chunk->has_num_chunks);
            cr_assert_eq(r->begin_chunk->total_bytes, (int64_t)n);
            cr_assert_eq(r->begin_chunk->num_chunks, 4); /* counts the initial chunk */
            ch = r->begin_chunk->initial_chunk;
        } else {
            cr_assert_eq(r->payload_case, SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_CHUNK);
            ch = r->chunk;
        }
        size_t want = i < 3 ? 32768 : 4096;
        expect_chunk(ch, data + at, want);
        memcpy(joined + at, ch->data.data, ch->data.len);
        at += ch->data.len;
        spark__connect__add_artifacts_request__free_unpacked(r, NULL);
    }
    cr_assert_eq(at, n);
    cr_assert_eq(memcmp(joined, data, n), 0);
    kl_artifact_plan_clear(&p);
    free(joined);
    free(data);
}

Test(pack, a_batch_carries_each_artifact_whole_with_its_crc) {
    uint8_t *a = pattern(1000, 1), *b = pattern(0, 2), *c = pattern(5000, 3);
    uint64_t sizes[] = {1000, 0, 5000};
    const char *names[] = {"files/a.txt", "files/empty", "jars/c.jar"};
    const uint8_t *datas[] = {a, b, c};
    kl_artifact_plan p;
    cr_assert_eq(kl_artifact_plan_make(sizes, 3, &p), 0);
    cr_assert_eq(p.nmsgs, 1);
    Spark__Connect__AddArtifactsRequest *r = pack_and_unpack(&p, 0, names, sizes, datas);
    cr_assert_eq(r->payload_case, SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BATCH);
    cr_assert_eq(r->batch->n_artifacts, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(r->batch->artifacts[i]->name, names[i]);
        expect_chunk(r->batch->artifacts[i]->data, datas[i], sizes[i]);
    }
    spark__connect__add_artifacts_request__free_unpacked(r, NULL);
    kl_artifact_plan_clear(&p);
    free(a);
    free(b);
    free(c);
}

/* ---- the server's answer -------------------------------------------------------------------- */

static kl_grpc_bytes response(const char **names, const bool *ok, size_t n, const char *server) {
    Spark__Connect__AddArtifactsResponse r = SPARK__CONNECT__ADD_ARTIFACTS_RESPONSE__INIT;
    Spark__Connect__AddArtifactsResponse__ArtifactSummary s[4];
    Spark__Connect__AddArtifactsResponse__ArtifactSummary *ps[4];
    for (size_t i = 0; i < n; i++) {
        spark__connect__add_artifacts_response__artifact_summary__init(&s[i]);
        s[i].name = (char *)names[i];
        s[i].has_is_crc_successful = true;
        s[i].is_crc_successful = ok[i];
        ps[i] = &s[i];
    }
    r.n_artifacts = n;
    r.artifacts = ps;
    r.server_side_session_id = (char *)server;
    kl_grpc_bytes out;
    out.len = spark__connect__add_artifacts_response__get_packed_size(&r);
    out.data = malloc(out.len + 1);
    spark__connect__add_artifacts_response__pack(&r, out.data);
    return out;
}

Test(response, crc_results_by_name) {
    const char *sent[] = {"jars/a.jar", "jars/b.jar", "files/c"};
    const char *answered[] = {"files/c", "jars/a.jar"}; /* any order; b missing */
    bool ok[] = {true, false};
    kl_grpc_bytes r = response(answered, ok, 2, "srv-9");
    bool crc[3] = {true, true, true};
    char *server = NULL;
    cr_assert_eq(kl_artifact_read_response(r.data, r.len, sent, 3, crc, &server), 0);
    cr_assert_eq(crc[0], false, "jars/a.jar failed its CRC check");
    cr_assert_eq(crc[1], false, "a name the server did not confirm is not OK");
    cr_assert_eq(crc[2], true);
    cr_assert_str_eq(server, "srv-9");
    free(server);
    free(r.data);
}

Test(response, garbage_is_refused) {
    const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
    const char *sent[] = {"jars/a.jar"};
    bool crc[1];
    char *server = (char *)"x";
    cr_assert_eq(kl_artifact_read_response(junk, sizeof junk, sent, 1, crc, &server), -1);
    cr_assert_null(server);
    cr_assert_eq(crc[0], false);
}
