/* AddArtifacts and ArtifactStatus: see artifact.h for the wire conventions. */
#include "spark/artifact.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- CRC-32 --------------------------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t kl_crc32(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---- Plan ----------------------------------------------------------------------------------- */

typedef struct plan_builder {
    kl_artifact_plan *p;
    size_t capm, capp;
} plan_builder;

static int add_msg(plan_builder *b, kl_artifact_msg_kind kind) {
    kl_artifact_plan *p = b->p;
    if (p->nmsgs == b->capm) {
        size_t cap = b->capm ? b->capm * 2 : 16;
        kl_artifact_msg *v = realloc(p->msgs, cap * sizeof *v);
        if (!v) return -ENOMEM;
        p->msgs = v;
        b->capm = cap;
    }
    p->msgs[p->nmsgs++] = (kl_artifact_msg){.kind = kind, .first = p->npieces};
    return 0;
}

/* Appends a piece to the last message. */
static int add_piece(plan_builder *b, size_t item, uint64_t offset, size_t len) {
    kl_artifact_plan *p = b->p;
    if (p->npieces == b->capp) {
        size_t cap = b->capp ? b->capp * 2 : 16;
        kl_artifact_piece *v = realloc(p->pieces, cap * sizeof *v);
        if (!v) return -ENOMEM;
        p->pieces = v;
        b->capp = cap;
    }
    p->pieces[p->npieces++] = (kl_artifact_piece){item, offset, len};
    kl_artifact_msg *m = &p->msgs[p->nmsgs - 1];
    m->count++;
    m->bytes += len;
    return 0;
}

int kl_artifact_plan_make(const uint64_t *sizes, size_t n, kl_artifact_plan *out) {
    memset(out, 0, sizeof *out);
    plan_builder b = {.p = out};
    bool open_batch = false; /* the last message is a batch that may take more */
    for (size_t i = 0; i < n; i++) {
        uint64_t size = sizes[i];
        if (size <= KL_ARTIFACT_CHUNK) {
            /* Like the official clients: a batch holds at most one chunk's worth of data. */
            if (!open_batch || out->msgs[out->nmsgs - 1].bytes + size > KL_ARTIFACT_CHUNK) {
                if (add_msg(&b, KL_ARTIFACT_MSG_BATCH) != 0) goto nomem;
                open_batch = true;
            }
            if (add_piece(&b, i, 0, (size_t)size) != 0) goto nomem;
            continue;
        }
        open_batch = false;
        for (uint64_t off = 0; off < size; off += KL_ARTIFACT_CHUNK) {
            uint64_t left = size - off;
            size_t len = left < KL_ARTIFACT_CHUNK ? (size_t)left : KL_ARTIFACT_CHUNK;
            if (add_msg(&b, off == 0 ? KL_ARTIFACT_MSG_BEGIN : KL_ARTIFACT_MSG_CHUNK) != 0 ||
                add_piece(&b, i, off, len) != 0)
                goto nomem;
        }
    }
    return 0;
nomem:
    kl_artifact_plan_clear(out);
    return -ENOMEM;
}

void kl_artifact_plan_clear(kl_artifact_plan *p) {
    free(p->msgs);
    free(p->pieces);
    memset(p, 0, sizeof *p);
}

/* ---- Packing -------------------------------------------------------------------------------- */

static int dup_opt(const char *s, char **out) {
    *out = NULL;
    if (!s) return 0;
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

int kl_artifact_common_copy(kl_spark_client *c, kl_artifact_common *out) {
    memset(out, 0, sizeof *out);
    kl_spark_common cm;
    kl_spark_client_common(c, &cm);
    const char *uid = cm.user_context ? cm.user_context->user_id : NULL;
    const char *uname = cm.user_context ? cm.user_context->user_name : NULL;
    if (dup_opt(cm.session_id, &out->session_id) != 0 ||
        dup_opt(cm.client_type, &out->client_type) != 0 ||
        dup_opt(cm.server_session_id, &out->server_session_id) != 0 ||
        dup_opt(uid, &out->user_id) != 0 || dup_opt(uname, &out->user_name) != 0) {
        kl_artifact_common_clear(out);
        return -ENOMEM;
    }
    return 0;
}

void kl_artifact_common_clear(kl_artifact_common *cm) {
    free(cm->session_id);
    free(cm->client_type);
    free(cm->server_session_id);
    free(cm->user_id);
    free(cm->user_name);
    memset(cm, 0, sizeof *cm);
}

static void set_chunk(Spark__Connect__AddArtifactsRequest__ArtifactChunk *ch, const uint8_t *data,
                      size_t len) {
    ch->has_data = true;
    ch->data.data = (uint8_t *)data;
    ch->data.len = len;
    ch->has_crc = true;
    ch->crc = (int64_t)kl_crc32(0, data, len); /* unsigned 32-bit value in the int64 field */
}

static int pack_request(Spark__Connect__AddArtifactsRequest *req, kl_grpc_bytes *out) {
    out->len = protobuf_c_message_get_packed_size(&req->base);
    out->data = malloc(out->len ? out->len : 1);
    if (!out->data) return -ENOMEM;
    protobuf_c_message_pack(&req->base, out->data);
    return 0;
}

int kl_artifact_pack(const kl_artifact_plan *p, size_t i, const char *const *names,
                     const uint64_t *sizes, const uint8_t *const *data,
                     const kl_artifact_common *cm, kl_grpc_bytes *out) {
    out->data = NULL;
    out->len = 0;
    const kl_artifact_msg *m = &p->msgs[i];
    const kl_artifact_piece *pc = &p->pieces[m->first];
    Spark__Connect__UserContext uc = SPARK__CONNECT__USER_CONTEXT__INIT;
    uc.user_id = cm->user_id;
    uc.user_name = cm->user_name;
    Spark__Connect__AddArtifactsRequest req = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__INIT;
    req.session_id = cm->session_id;
    req.user_context = &uc;
    req.client_type = cm->client_type;
    req.client_observed_server_side_session_id = cm->server_session_id;
    int rc;
    switch (m->kind) {
    case KL_ARTIFACT_MSG_BATCH: {
        Spark__Connect__AddArtifactsRequest__Batch batch =
            SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__BATCH__INIT;
        Spark__Connect__AddArtifactsRequest__SingleChunkArtifact *arts =
            calloc(m->count ? m->count : 1, sizeof *arts);
        Spark__Connect__AddArtifactsRequest__SingleChunkArtifact **ptrs =
            calloc(m->count ? m->count : 1, sizeof *ptrs);
        Spark__Connect__AddArtifactsRequest__ArtifactChunk *chunks =
            calloc(m->count ? m->count : 1, sizeof *chunks);
        if (!arts || !ptrs || !chunks) {
            free(arts);
            free(ptrs);
            free(chunks);
            return -ENOMEM;
        }
        for (size_t j = 0; j < m->count; j++) {
            spark__connect__add_artifacts_request__single_chunk_artifact__init(&arts[j]);
            spark__connect__add_artifacts_request__artifact_chunk__init(&chunks[j]);
            set_chunk(&chunks[j], data[j], pc[j].len);
            arts[j].name = (char *)names[pc[j].item];
            arts[j].data = &chunks[j];
            ptrs[j] = &arts[j];
        }
        batch.n_artifacts = m->count;
        batch.artifacts = ptrs;
        req.payload_case = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BATCH;
        req.batch = &batch;
        rc = pack_request(&req, out);
        free(arts);
        free(ptrs);
        free(chunks);
        return rc;
    }
    case KL_ARTIFACT_MSG_BEGIN: {
        Spark__Connect__AddArtifactsRequest__BeginChunkedArtifact begin =
            SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__BEGIN_CHUNKED_ARTIFACT__INIT;
        Spark__Connect__AddArtifactsRequest__ArtifactChunk chunk =
            SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__ARTIFACT_CHUNK__INIT;
        uint64_t size = sizes[pc->item];
        set_chunk(&chunk, data[0], pc->len);
        begin.name = (char *)names[pc->item];
        begin.has_total_bytes = true;
        begin.total_bytes = (int64_t)size;
        begin.has_num_chunks = true;
        begin.num_chunks = (int64_t)((size + KL_ARTIFACT_CHUNK - 1) / KL_ARTIFACT_CHUNK);
        begin.initial_chunk = &chunk;
        req.payload_case = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_BEGIN_CHUNK;
        req.begin_chunk = &begin;
        return pack_request(&req, out);
    }
    case KL_ARTIFACT_MSG_CHUNK: {
        Spark__Connect__AddArtifactsRequest__ArtifactChunk chunk =
            SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__ARTIFACT_CHUNK__INIT;
        set_chunk(&chunk, data[0], pc->len);
        req.payload_case = SPARK__CONNECT__ADD_ARTIFACTS_REQUEST__PAYLOAD_CHUNK;
        req.chunk = &chunk;
        return pack_request(&req, out);
    }
    }
    return -EINVAL;
}

int kl_artifact_read_response(const uint8_t *data, size_t len, const char *const *names, size_t n,
                              bool *crc_ok, char **server_session) {
    *server_session = NULL;
    for (size_t i = 0; i < n; i++) crc_ok[i] = false;
    Spark__Connect__AddArtifactsResponse *r =
        spark__connect__add_artifacts_response__unpack(NULL, len, data);
    if (!r) return -1;
    for (size_t j = 0; j < r->n_artifacts; j++) {
        const Spark__Connect__AddArtifactsResponse__ArtifactSummary *s = r->artifacts[j];
        if (!s->name) continue;
        for (size_t i = 0; i < n; i++)
            if (strcmp(s->name, names[i]) == 0)
                crc_ok[i] = s->has_is_crc_successful && s->is_crc_successful;
    }
    if (r->server_side_session_id && *r->server_side_session_id)
        *server_session = strdup(r->server_side_session_id);
    spark__connect__add_artifacts_response__free_unpacked(r, NULL);
    return 0;
}

/* ---- Upload --------------------------------------------------------------------------------- */

struct kl_artifact_upload {
    kl_spark_client *c;
    kl_pool *pool;
    char **names, **paths;
    uint64_t *sizes;
    int *fds; /* opened and read by the pool jobs only (one at a time), closed by free */
    bool *crc_ok;
    size_t n, cap;
    kl_grpc_stream *stream; /* while the call runs */
    bool cancelled;
    char err[1024];
};

kl_artifact_upload *kl_artifact_upload_new(kl_spark_client *c, kl_pool *pool) {
    kl_artifact_upload *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->c = c;
    u->pool = pool;
    return u;
}

int kl_artifact_upload_add(kl_artifact_upload *u, const char *name, const char *path,
                           uint64_t size) {
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 4;
        char **names = realloc(u->names, cap * sizeof *names);
        if (names) u->names = names;
        char **paths = realloc(u->paths, cap * sizeof *paths);
        if (paths) u->paths = paths;
        uint64_t *sizes = realloc(u->sizes, cap * sizeof *sizes);
        if (sizes) u->sizes = sizes;
        int *fds = realloc(u->fds, cap * sizeof *fds);
        if (fds) u->fds = fds;
        bool *ok = realloc(u->crc_ok, cap * sizeof *ok);
        if (ok) u->crc_ok = ok;
        if (!names || !paths || !sizes || !fds || !ok) return -ENOMEM;
        u->cap = cap;
    }
    char *n = strdup(name), *p = strdup(path);
    if (!n || !p) {
        free(n);
        free(p);
        return -ENOMEM;
    }
    u->names[u->n] = n;
    u->paths[u->n] = p;
    u->sizes[u->n] = size;
    u->fds[u->n] = -1;
    u->crc_ok[u->n] = false;
    u->n++;
    return 0;
}

bool kl_artifact_upload_crc_ok(const kl_artifact_upload *u, size_t i) {
    return i < u->n && u->crc_ok[i];
}

const char *kl_artifact_upload_error(const kl_artifact_upload *u) {
    return u->err;
}

void kl_artifact_upload_cancel(kl_artifact_upload *u) {
    u->cancelled = true;
    if (u->stream) kl_grpc_stream_cancel(u->stream);
}

void kl_artifact_upload_free(kl_artifact_upload *u) {
    if (!u) return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->names[i]);
        free(u->paths[i]);
        if (u->fds[i] >= 0) close(u->fds[i]);
    }
    free(u->names);
    free(u->paths);
    free(u->sizes);
    free(u->fds);
    free(u->crc_ok);
    free(u);
}

/* Messages are read and packed on the pool in groups of about this many bytes, so the loop thread
 * only sends, and at most this much sits in memory besides what gRPC holds. */
#define GROUP_BYTES (1024 * 1024)

typedef struct pack_job {
    kl_artifact_upload *u;
    const kl_artifact_plan *plan;
    const kl_artifact_common *cm;
    size_t first, last; /* messages [first, last) */
    kl_grpc_bytes *out; /* one per message */
    int rc;             /* 0, -ENOMEM, -EIO (u->err says what) */
} pack_job;

/* Reads exactly len bytes at off of item's file. */
static int read_piece(kl_artifact_upload *u, size_t item, uint64_t off, uint8_t *buf, size_t len) {
    if (u->fds[item] < 0) {
        u->fds[item] = open(u->paths[item], O_RDONLY | O_CLOEXEC);
        if (u->fds[item] < 0) {
            snprintf(u->err, sizeof u->err, "cannot open %s: %s", u->paths[item], strerror(errno));
            return -EIO;
        }
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(u->fds[item], buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(u->err, sizeof u->err, "cannot read %s: %s", u->paths[item], strerror(errno));
            return -EIO;
        }
        if (r == 0) {
            snprintf(u->err, sizeof u->err,
                     "%s changed while it was being uploaded: it is now shorter than the %llu "
                     "bytes it had",
                     u->paths[item], (unsigned long long)u->sizes[item]);
            return -EIO;
        }
        got += (size_t)r;
    }
    return 0;
}

/* Pool: reads the pieces of a group of messages and packs them. */
static void pack_work(void *arg) {
    pack_job *j = arg;
    const kl_artifact_plan *p = j->plan;
    j->rc = 0;
    for (size_t i = j->first; i < j->last && j->rc == 0; i++) {
        const kl_artifact_msg *m = &p->msgs[i];
        uint8_t **bufs = calloc(m->count ? m->count : 1, sizeof *bufs);
        if (!bufs) {
            j->rc = -ENOMEM;
            break;
        }
        for (size_t k = 0; k < m->count && j->rc == 0; k++) {
            const kl_artifact_piece *pc = &p->pieces[m->first + k];
            bufs[k] = malloc(pc->len ? pc->len : 1);
            if (!bufs[k])
                j->rc = -ENOMEM;
            else
                j->rc = read_piece(j->u, pc->item, pc->offset, bufs[k], pc->len);
        }
        if (j->rc == 0)
            j->rc = kl_artifact_pack(p, i, (const char *const *)j->u->names, j->u->sizes,
                                     (const uint8_t *const *)bufs, j->cm, &j->out[i - j->first]);
        for (size_t k = 0; k < m->count; k++) free(bufs[k]);
        free(bufs);
    }
}

static void free_group(pack_job *j) {
    if (!j->out) return;
    for (size_t i = 0; i < j->last - j->first; i++) free(j->out[i].data);
    free(j->out);
    j->out = NULL;
}

static void local_status(kl_grpc_status *st, kl_grpc_code code, const char *what) {
    kl_grpc_status_clear(st);
    st->code = code;
    st->details = strdup(what);
    st->message = strdup(what);
    if (!st->details || !st->message) abort();
}

int kl_artifact_upload_run(kl_artifact_upload *u, const kl_grpc_call_opts *opt,
                           kl_grpc_status *st) {
    memset(st, 0, sizeof *st);
    u->err[0] = 0;
    if (u->n == 0) return 0;
    kl_artifact_plan plan;
    kl_artifact_common cm;
    if (kl_artifact_plan_make(u->sizes, u->n, &plan) != 0) {
        snprintf(u->err, sizeof u->err, "out of memory");
        return -2;
    }
    if (kl_artifact_common_copy(u->c, &cm) != 0) {
        kl_artifact_plan_clear(&plan);
        snprintf(u->err, sizeof u->err, "out of memory");
        return -2;
    }
    u->stream = kl_grpc_stream_open_client(kl_spark_client_channel(u->c),
                                           KL_SPARK_SERVICE "AddArtifacts", opt);
    int rc = 0;
    bool send_failed = false;
    for (size_t i = 0; i < plan.nmsgs && rc == 0 && !send_failed;) {
        pack_job j = {.u = u, .plan = &plan, .cm = &cm, .first = i};
        uint64_t bytes = 0;
        size_t last = i;
        while (last < plan.nmsgs && (last == i || bytes < GROUP_BYTES))
            bytes += plan.msgs[last++].bytes;
        j.last = last;
        j.out = calloc(last - i, sizeof *j.out);
        if (!j.out) {
            snprintf(u->err, sizeof u->err, "out of memory");
            rc = -2;
            break;
        }
        kl_pool_run(u->pool, pack_work, &j);
        if (u->cancelled) {
            rc = -3;
        } else if (j.rc == -ENOMEM) {
            snprintf(u->err, sizeof u->err, "out of memory");
            rc = -2;
        } else if (j.rc != 0) {
            rc = -2;
        }
        for (size_t k = 0; rc == 0 && k < last - i; k++) {
            if (kl_grpc_stream_send(u->stream, j.out[k].data, j.out[k].len) != 0) {
                send_failed = true; /* finish says why */
                break;
            }
        }
        free_group(&j);
        i = last;
    }
    if (rc != 0) {
        /* Cancelling makes the server drop what it has staged of this call. */
        kl_grpc_stream_cancel(u->stream);
        kl_grpc_bytes resp = {0};
        kl_grpc_status ignored = {0};
        kl_grpc_stream_finish(u->stream, &resp, &ignored);
        free(resp.data);
        kl_grpc_status_clear(&ignored);
        if (rc == -3) local_status(st, KL_GRPC_CANCELLED, "the upload was cancelled");
    } else {
        kl_grpc_bytes resp = {0};
        if (kl_grpc_stream_finish(u->stream, &resp, st) != 0) {
            rc = u->cancelled ? -3 : -1;
        } else {
            char *server_session = NULL;
            if (kl_artifact_read_response(resp.data, resp.len, (const char *const *)u->names, u->n,
                                          u->crc_ok, &server_session) != 0) {
                char msg[512];
                snprintf(msg, sizeof msg, "the server at %s sent a malformed AddArtifacts response",
                         kl_grpc_channel_endpoint(kl_spark_client_channel(u->c)));
                local_status(st, KL_GRPC_INTERNAL, msg);
                rc = -1;
            } else {
                kl_spark_client_observe(u->c, server_session);
            }
            free(server_session);
        }
        free(resp.data);
    }
    kl_grpc_stream_free(u->stream);
    u->stream = NULL;
    kl_artifact_common_clear(&cm);
    kl_artifact_plan_clear(&plan);
    return rc;
}

/* ---- Status --------------------------------------------------------------------------------- */

int kl_artifact_status(kl_spark_client *c, const char *const *names, size_t n, bool *exists,
                       const kl_grpc_call_opts *opt, kl_grpc_status *st) {
    for (size_t i = 0; i < n; i++) exists[i] = false;
    kl_spark_common cm;
    kl_spark_client_common(c, &cm);
    Spark__Connect__ArtifactStatusesRequest req = SPARK__CONNECT__ARTIFACT_STATUSES_REQUEST__INIT;
    KL_SPARK_FILL_COMMON(req, cm);
    req.n_names = n;
    req.names = (char **)names;
    ProtobufCMessage *m = NULL;
    if (kl_spark_client_unary(c, "ArtifactStatus", &req.base,
                              &spark__connect__artifact_statuses_response__descriptor, opt, &m,
                              st) != 0)
        return -1;
    Spark__Connect__ArtifactStatusesResponse *r = (Spark__Connect__ArtifactStatusesResponse *)m;
    kl_spark_client_observe(c, r->server_side_session_id);
    for (size_t j = 0; j < r->n_statuses; j++) {
        const Spark__Connect__ArtifactStatusesResponse__StatusesEntry *e = r->statuses[j];
        if (!e->key || !e->value) continue;
        for (size_t i = 0; i < n; i++)
            if (strcmp(e->key, names[i]) == 0) exists[i] = e->value->has_exists && e->value->exists;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
