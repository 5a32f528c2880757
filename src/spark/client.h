/* Typed Spark Connect calls for one session, on a kl_grpc_channel: the requests are packed and the
 * responses unpacked with protobuf-c (spark/proto/kindling_spark_connect.pb-c.h).
 *
 * Every request carries the session id, the user context, a client_type of "kindling/<version>"
 * and, once the server has named its side of the session (Spark 4.0+), that id, so a restarted
 * server is noticed (INVALID_HANDLE.SESSION_CHANGED). Loop thread only; the functions that wait
 * must run in a coroutine. Statuses are filled on every return; clear them with
 * kl_grpc_status_clear. */
#ifndef KL_SPARK_CLIENT_H
#define KL_SPARK_CLIENT_H

#include <stdbool.h>

#include "spark/grpc.h"
#include "spark/proto/kindling_spark_connect.pb-c.h"

#define KL_SPARK_SERVICE "/spark.connect.SparkConnectService/"

typedef struct kl_spark_client kl_spark_client;
typedef struct kl_spark_exec kl_spark_exec;

/* session_id NULL: a fresh UUID; user_id NULL: $USER, else "kindling". The client borrows ch,
 * which must outlive it. Returns NULL only when no random UUID could be made. */
kl_spark_client *kl_spark_client_new(kl_grpc_channel *ch, const char *session_id,
                                     const char *user_id);
void kl_spark_client_free(kl_spark_client *c);
const char *kl_spark_client_session_id(const kl_spark_client *c);
/* The server's id for this session (from any response), or NULL before the first answer. */
const char *kl_spark_client_server_session_id(const kl_spark_client *c);

/* ---- Building other requests (modules beside this one: artifacts, analysis, catalog) ---- */

/* The fields every Spark Connect request carries; borrowed from the client, valid while it lives.
 */
typedef struct kl_spark_common {
    char *session_id;
    Spark__Connect__UserContext *user_context;
    char *client_type;
    char *server_session_id; /* NULL before the server has named it */
} kl_spark_common;
void kl_spark_client_common(kl_spark_client *c, kl_spark_common *out);
#define KL_SPARK_FILL_COMMON(req, cm)                                                              \
    do {                                                                                           \
        (req).session_id = (cm).session_id;                                                        \
        (req).user_context = (cm).user_context;                                                    \
        (req).client_type = (cm).client_type;                                                      \
        (req).client_observed_server_side_session_id = (cm).server_session_id;                     \
    } while (0)
/* Records the server's session id from a response (so a restarted server is noticed). */
void kl_spark_client_observe(kl_spark_client *c, const char *server_session_id);
kl_grpc_channel *kl_spark_client_channel(kl_spark_client *c);
/* Coroutine: one unary RPC (rpc is the method name, e.g. "ArtifactStatus"). 0 with *resp unpacked
 * (free with protobuf_c_message_free_unpacked(*resp, NULL)), or -1 with st set. */
int kl_spark_client_unary(kl_spark_client *c, const char *rpc, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *resp_desc, const kl_grpc_call_opts *opt,
                          ProtobufCMessage **resp, kl_grpc_status *st);

/* Coroutine: AnalyzePlan spark_version. 0 with *version (caller frees), or -1. opt may be NULL. */
int kl_spark_client_version(kl_spark_client *c, const kl_grpc_call_opts *opt, char **version,
                            kl_grpc_status *st);
/* Coroutine: Config get of one key. 0 with *value (caller frees; NULL when the server sent no
 * value), or -1. A key the server does not know fails with its error. */
int kl_spark_client_config_get(kl_spark_client *c, const char *key, const kl_grpc_call_opts *opt,
                               char **value, kl_grpc_status *st);

typedef struct kl_spark_exec_opts {
    kl_grpc_call_opts call;
    bool reattachable;        /* the stream ends with result_complete and may be reattached */
    const char *operation_id; /* a UUID; NULL: a fresh one */
} kl_spark_exec_opts;

/* Starts ExecutePlan of a SQL query as the plan's root relation, so the server streams its rows:
 * a schema, Arrow batches, metrics (and result_complete when reattachable). opt may be NULL. */
kl_spark_exec *kl_spark_client_execute_sql(kl_spark_client *c, const char *sql,
                                           const kl_spark_exec_opts *opt);
/* Starts ExecutePlan of a SqlCommand, as the official clients run spark.sql(): a command (DDL,
 * SET, SHOW, INSERT...) runs at once and its rows come back as a LocalRelation in
 * sql_command_result; a query does not run, and sql_command_result echoes its relation, to be
 * executed with kl_spark_client_execute_relation. */
kl_spark_exec *kl_spark_client_execute_command(kl_spark_client *c, const char *sql,
                                               const kl_spark_exec_opts *opt);
/* Starts ExecutePlan of rel (borrowed; packed before returning) as the plan's root, wrapped in a
 * Limit of limit rows when limit >= 0. */
kl_spark_exec *kl_spark_client_execute_relation(kl_spark_client *c, Spark__Connect__Relation *rel,
                                                int32_t limit, const kl_spark_exec_opts *opt);
/* Starts ReattachExecute: continues a reattachable operation's stream after last_response_id
 * (NULL: from the start), as a fresh kl_spark_exec with the same operation id. */
kl_spark_exec *kl_spark_client_reattach(kl_spark_client *c, const char *operation_id,
                                        const char *last_response_id,
                                        const kl_spark_exec_opts *opt);
/* Starts ExecutePlan of any plan (borrowed; packed before returning). */
kl_spark_exec *kl_spark_client_execute_plan(kl_spark_client *c, Spark__Connect__Plan *plan,
                                            const kl_spark_exec_opts *opt);
const char *kl_spark_exec_operation_id(const kl_spark_exec *e);
/* Coroutine: the next response, unpacked. Returns 1 with *resp (free with
 * spark__connect__execute_plan_response__free_unpacked(*resp, NULL)), 0 at a clean end, -1 at a
 * failed end (st set). A response that does not decode ends the call with INTERNAL. */
int kl_spark_exec_next(kl_spark_exec *e, Spark__Connect__ExecutePlanResponse **resp,
                       kl_grpc_status *st);
/* Any thread: cancels the RPC. The server stops a non-reattachable operation with it; a
 * reattachable one keeps running until interrupted (kl_spark_client_interrupt). */
void kl_spark_exec_cancel(kl_spark_exec *e);
void kl_spark_exec_free(kl_spark_exec *e); /* cancels first if still running */

/* Coroutine: Interrupt one operation (operation_id) or, with NULL, every operation of the
 * session. 0 or -1. */
int kl_spark_client_interrupt(kl_spark_client *c, const char *operation_id,
                              const kl_grpc_call_opts *opt, kl_grpc_status *st);
/* Coroutine: ReleaseExecute release_all: the server may drop a reattachable operation's results. */
int kl_spark_client_release_execute(kl_spark_client *c, const char *operation_id,
                                    const kl_grpc_call_opts *opt, kl_grpc_status *st);

/* A ReleaseExecute prepared now and sent later by another coroutine, as the official clients
 * release in the background once they have consumed a stream: the request is packed from c at
 * once, so c may be freed before it is sent. */
typedef struct kl_spark_release kl_spark_release;
/* release_all of operation_id, on c's channel, which must still be open when
 * kl_spark_release_send starts (the call holds it from then on). Never NULL. */
kl_spark_release *kl_spark_client_release_prepare(kl_spark_client *c, const char *operation_id);
const char *kl_spark_release_operation_id(const kl_spark_release *r);
/* Coroutine: sends it and waits for the answer; 0, or -1 with st set. Once at most. */
int kl_spark_release_send(kl_spark_release *r, const kl_grpc_call_opts *opt, kl_grpc_status *st);
void kl_spark_release_free(kl_spark_release *r);
/* Coroutine: one Config operation (op borrowed). 0 with *resp (free with
 * spark__connect__config_response__free_unpacked(*resp, NULL)), or -1 with st set. */
int kl_spark_client_config(kl_spark_client *c, Spark__Connect__ConfigRequest__Operation *op,
                           const kl_grpc_call_opts *opt, Spark__Connect__ConfigResponse **resp,
                           kl_grpc_status *st);
/* Coroutine: FetchErrorDetails (Spark 4.0+) for the errorId an error's ErrorInfo carried; the raw
 * response for kl_spark_error_add_details (caller frees resp->data). 0 or -1; a 3.5 server
 * answers UNIMPLEMENTED. */
int kl_spark_client_fetch_error_details(kl_spark_client *c, const char *error_id,
                                        const kl_grpc_call_opts *opt, kl_grpc_bytes *resp,
                                        kl_grpc_status *st);
/* Coroutine: ReleaseSession (Spark 4.0+): the server drops the session and its state. */
int kl_spark_client_release_session(kl_spark_client *c, const kl_grpc_call_opts *opt,
                                    kl_grpc_status *st);

#endif
