/* Spark Connect artifacts: uploading files to a session through the AddArtifacts client stream,
 * and ArtifactStatus.
 *
 * Wire conventions (those of the official clients): names are relative paths under `jars/`,
 * `files/`, `pyfiles/`, `archives/` or `cache/<sha256 hex>`; an artifact of at most
 * KL_ARTIFACT_CHUNK bytes travels whole inside a `batch` message, packed with its neighbours
 * while the batch stays within KL_ARTIFACT_CHUNK bytes; a larger one travels as `begin_chunk`
 * (carrying the first chunk) followed by `chunk` messages of KL_ARTIFACT_CHUNK bytes. Every chunk
 * carries the CRC-32 (IEEE, as zlib computes it) of its bytes; the server checks each and answers,
 * once the client has half-closed, with one summary per artifact saying whether every CRC matched.
 *
 * The work is split so that each part can be tested alone: a plan (which bytes go into which
 * message: pure), packing one message from its bytes (pure), reading the server's answer (pure),
 * and the upload itself (a coroutine that reads files and packs on the worker pool and sends on
 * the loop thread). */
#ifndef KL_SPARK_ARTIFACT_H
#define KL_SPARK_ARTIFACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/pool.h"
#include "spark/client.h"
#include "spark/grpc.h"

#define KL_ARTIFACT_CHUNK (32 * 1024)

/* CRC-32 with the IEEE polynomial (reflected 0xEDB88320), zlib's crc32(): start with crc = 0 and
 * feed the previous result to continue. Any thread. */
uint32_t kl_crc32(uint32_t crc, const void *data, size_t len);

/* ---- Plan ----------------------------------------------------------------------------------- */

typedef enum {
    KL_ARTIFACT_MSG_BATCH, /* whole small artifacts, one piece each */
    KL_ARTIFACT_MSG_BEGIN, /* begin_chunk: the first chunk of a large artifact */
    KL_ARTIFACT_MSG_CHUNK, /* one further chunk of the artifact begun last */
} kl_artifact_msg_kind;

/* A run of bytes of one artifact. */
typedef struct kl_artifact_piece {
    size_t item; /* index into the artifacts the plan was made for */
    uint64_t offset;
    size_t len;
} kl_artifact_piece;

typedef struct kl_artifact_msg {
    kl_artifact_msg_kind kind;
    size_t first, count; /* its pieces: plan->pieces[first .. first + count) */
    uint64_t bytes;      /* sum of the pieces' lengths */
} kl_artifact_msg;

typedef struct kl_artifact_plan {
    kl_artifact_msg *msgs;
    size_t nmsgs;
    kl_artifact_piece *pieces;
    size_t npieces;
} kl_artifact_plan;

/* The messages that carry n artifacts of the given sizes, in order. 0 or -ENOMEM. */
int kl_artifact_plan_make(const uint64_t *sizes, size_t n, kl_artifact_plan *out);
void kl_artifact_plan_clear(kl_artifact_plan *p);

/* The fields every request carries, owned copies (so that packing can run on a worker thread
 * while the client's own strings may change on the loop thread). */
typedef struct kl_artifact_common {
    char *session_id, *client_type, *server_session_id, *user_id, *user_name;
} kl_artifact_common;
/* Copies c's common fields. 0 or -ENOMEM. */
int kl_artifact_common_copy(kl_spark_client *c, kl_artifact_common *out);
void kl_artifact_common_clear(kl_artifact_common *cm);

/* Packs message i of p into an AddArtifactsRequest: names and sizes are those of the plan's
 * artifacts; data[j] holds the bytes of piece p->msgs[i].first + j. *out->data is malloc'ed
 * (caller frees). 0 or -ENOMEM. Any thread. */
int kl_artifact_pack(const kl_artifact_plan *p, size_t i, const char *const *names,
                     const uint64_t *sizes, const uint8_t *const *data,
                     const kl_artifact_common *cm, kl_grpc_bytes *out);

/* Reads an AddArtifactsResponse: crc_ok[i] tells whether the server confirmed names[i] with every
 * CRC matching (false as well when the summary lacks the name). *server_session is set to the
 * server's session id when the response names one (caller frees), else NULL. 0, or -1 when the
 * bytes are not an AddArtifactsResponse. */
int kl_artifact_read_response(const uint8_t *data, size_t len, const char *const *names, size_t n,
                              bool *crc_ok, char **server_session);

/* ---- Upload --------------------------------------------------------------------------------- */

typedef struct kl_artifact_upload kl_artifact_upload;

/* An upload on client c (borrowed; must outlive the upload), reading files on pool. NULL on
 * ENOMEM. */
kl_artifact_upload *kl_artifact_upload_new(kl_spark_client *c, kl_pool *pool);
/* Adds the file at path (size bytes, as measured before) under name (e.g. "jars/x.jar"); both
 * copied. 0 or -ENOMEM. */
int kl_artifact_upload_add(kl_artifact_upload *u, const char *name, const char *path,
                           uint64_t size);
/* Coroutine: sends every added file in one AddArtifacts stream, 32 KiB at a time, and reads the
 * server's summary. Returns 0 when the server answered (then see kl_artifact_upload_crc_ok), -1
 * when the call failed (st set), -2 when a file could not be read or changed size since it was
 * added (kl_artifact_upload_error says which), -3 when cancelled. */
int kl_artifact_upload_run(kl_artifact_upload *u, const kl_grpc_call_opts *opt, kl_grpc_status *st);
bool kl_artifact_upload_crc_ok(const kl_artifact_upload *u, size_t i);
const char *kl_artifact_upload_error(const kl_artifact_upload *u); /* "" when none; borrowed */
/* Loop thread, e.g. from an interrupt hook while kl_artifact_upload_run waits: stops the upload
 * (the stream is cancelled, so the server stores nothing of it). */
void kl_artifact_upload_cancel(kl_artifact_upload *u);
void kl_artifact_upload_free(kl_artifact_upload *u);

/* ---- Status --------------------------------------------------------------------------------- */

/* Coroutine: ArtifactStatus for n names. exists[i] tells whether the server holds names[i]. Spark
 * answers only for `cache/<sha256>` names (every other name reads as absent). 0 or -1 (st set). */
int kl_artifact_status(kl_spark_client *c, const char *const *names, size_t n, bool *exists,
                       const kl_grpc_call_opts *opt, kl_grpc_status *st);

#endif
