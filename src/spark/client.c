/* Spark Connect requests built and read with protobuf-c, sent through spark/grpc. */
#include "spark/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kl_version.h"
#include "runtime/uuid.h"

struct kl_spark_client {
    kl_grpc_channel *ch;
    char *session_id;
    char *user_id;
    char *client_type;
    char *server_session_id; /* NULL until a response names it */
    Spark__Connect__UserContext uc;
};

struct kl_spark_exec {
    kl_spark_client *c;
    kl_grpc_stream *s;
    char *operation_id;
    bool bad; /* a response did not decode: the call was cancelled and reports INTERNAL */
};

static char *xstrdup(const char *s) {
    char *p = strdup(s);
    if (!p) abort();
    return p;
}

kl_spark_client *kl_spark_client_new(kl_grpc_channel *ch, const char *session_id,
                                     const char *user_id) {
    char uuid[KL_UUID_STRLEN];
    if (!session_id) {
        if (kl_uuid_v4(uuid) != 0) return NULL;
        session_id = uuid;
    }
    if (!user_id) user_id = getenv("USER");
    if (!user_id || !*user_id) user_id = "kindling";
    kl_spark_client *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->ch = ch;
    c->session_id = xstrdup(session_id);
    c->user_id = xstrdup(user_id);
    c->client_type = xstrdup("kindling/" KL_VERSION " os/linux");
    spark__connect__user_context__init(&c->uc);
    c->uc.user_id = c->user_id;
    c->uc.user_name = c->user_id;
    return c;
}

void kl_spark_client_free(kl_spark_client *c) {
    if (!c) return;
    free(c->session_id);
    free(c->user_id);
    free(c->client_type);
    free(c->server_session_id);
    free(c);
}

const char *kl_spark_client_session_id(const kl_spark_client *c) {
    return c->session_id;
}

const char *kl_spark_client_server_session_id(const kl_spark_client *c) {
    return c->server_session_id;
}

static void observe_session(kl_spark_client *c, const char *server_session_id);

void kl_spark_client_common(kl_spark_client *c, kl_spark_common *out) {
    out->session_id = c->session_id;
    out->user_context = &c->uc;
    out->client_type = c->client_type;
    out->server_session_id = c->server_session_id;
}

kl_grpc_channel *kl_spark_client_channel(kl_spark_client *c) {
    return c->ch;
}

void kl_spark_client_observe(kl_spark_client *c, const char *server_session_id) {
    observe_session(c, server_session_id);
}

static void observe_session(kl_spark_client *c, const char *server_session_id) {
    if (!server_session_id || !*server_session_id) return;
    if (c->server_session_id && strcmp(c->server_session_id, server_session_id) == 0) return;
    free(c->server_session_id);
    c->server_session_id = xstrdup(server_session_id);
}

#define FILL_COMMON(req, c)                                                                        \
    do {                                                                                           \
        (req).session_id = (c)->session_id;                                                        \
        (req).user_context = &(c)->uc;                                                             \
        (req).client_type = (c)->client_type;                                                      \
        (req).client_observed_server_side_session_id = (c)->server_session_id;                     \
    } while (0)

static void malformed(kl_spark_client *c, const char *what, kl_grpc_status *st) {
    kl_grpc_status_clear(st);
    st->code = KL_GRPC_INTERNAL;
    if (asprintf(&st->details, "cannot decode the %s response", what) < 0 ||
        asprintf(&st->message, "the server at %s sent a malformed %s response",
                 kl_grpc_channel_endpoint(c->ch), what) < 0)
        abort();
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf) abort();
    protobuf_c_message_pack(m, buf);
    return buf;
}

/* One unary round trip; *resp is unpacked on success (free with protobuf_c_message_free_unpacked).
 */
static int call_unary(kl_spark_client *c, const char *rpc, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *resp_desc, const kl_grpc_call_opts *opt,
                      ProtobufCMessage **resp, kl_grpc_status *st) {
    char method[128];
    snprintf(method, sizeof method, KL_SPARK_SERVICE "%s", rpc);
    size_t len;
    uint8_t *buf = pack(req, &len);
    kl_grpc_bytes out;
    int rc = kl_grpc_unary(c->ch, method, buf, len, opt, &out, st);
    free(buf);
    *resp = NULL;
    if (rc != 0) return -1;
    *resp = protobuf_c_message_unpack(resp_desc, NULL, out.len, out.data);
    free(out.data);
    if (!*resp) {
        malformed(c, rpc, st);
        return -1;
    }
    return 0;
}

int kl_spark_client_unary(kl_spark_client *c, const char *rpc, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *resp_desc, const kl_grpc_call_opts *opt,
                          ProtobufCMessage **resp, kl_grpc_status *st) {
    return call_unary(c, rpc, req, resp_desc, opt, resp, st);
}

int kl_spark_client_version(kl_spark_client *c, const kl_grpc_call_opts *opt, char **version,
                            kl_grpc_status *st) {
    *version = NULL;
    Spark__Connect__AnalyzePlanRequest req = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__INIT;
    Spark__Connect__AnalyzePlanRequest__SparkVersion sv =
        SPARK__CONNECT__ANALYZE_PLAN_REQUEST__SPARK_VERSION__INIT;
    FILL_COMMON(req, c);
    req.analyze_case = SPARK__CONNECT__ANALYZE_PLAN_REQUEST__ANALYZE_SPARK_VERSION;
    req.spark_version = &sv;
    ProtobufCMessage *m;
    if (call_unary(c, "AnalyzePlan", &req.base, &spark__connect__analyze_plan_response__descriptor,
                   opt, &m, st) != 0)
        return -1;
    Spark__Connect__AnalyzePlanResponse *resp = (Spark__Connect__AnalyzePlanResponse *)m;
    observe_session(c, resp->server_side_session_id);
    int rc = -1;
    if (resp->result_case == SPARK__CONNECT__ANALYZE_PLAN_RESPONSE__RESULT_SPARK_VERSION &&
        resp->spark_version->version) {
        *version = xstrdup(resp->spark_version->version);
        rc = 0;
    } else {
        malformed(c, "AnalyzePlan", st);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int kl_spark_client_config_get(kl_spark_client *c, const char *key, const kl_grpc_call_opts *opt,
                               char **value, kl_grpc_status *st) {
    *value = NULL;
    Spark__Connect__ConfigRequest req = SPARK__CONNECT__CONFIG_REQUEST__INIT;
    Spark__Connect__ConfigRequest__Operation op = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__INIT;
    Spark__Connect__ConfigRequest__Get get = SPARK__CONNECT__CONFIG_REQUEST__GET__INIT;
    char *keys[] = {(char *)key};
    get.n_keys = 1;
    get.keys = keys;
    op.op_type_case = SPARK__CONNECT__CONFIG_REQUEST__OPERATION__OP_TYPE_GET;
    op.get = &get;
    FILL_COMMON(req, c);
    req.operation = &op;
    ProtobufCMessage *m;
    if (call_unary(c, "Config", &req.base, &spark__connect__config_response__descriptor, opt, &m,
                   st) != 0)
        return -1;
    Spark__Connect__ConfigResponse *resp = (Spark__Connect__ConfigResponse *)m;
    observe_session(c, resp->server_side_session_id);
    int rc = -1;
    if (resp->n_pairs == 1) {
        if (resp->pairs[0]->value) *value = xstrdup(resp->pairs[0]->value);
        rc = 0;
    } else {
        malformed(c, "Config", st);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* Starts ExecutePlan of plan (borrowed: packed here, before returning). */
static kl_spark_exec *execute_plan(kl_spark_client *c, Spark__Connect__Plan *plan,
                                   const kl_spark_exec_opts *opt) {
    static const kl_spark_exec_opts no_opts = {0};
    if (!opt) opt = &no_opts;
    kl_spark_exec *e = calloc(1, sizeof *e);
    if (!e) abort();
    e->c = c;
    char uuid[KL_UUID_STRLEN];
    if (opt->operation_id) {
        e->operation_id = xstrdup(opt->operation_id);
    } else {
        if (kl_uuid_v4(uuid) != 0) abort(); /* OpenSSL's CSPRNG failing is not recoverable */
        e->operation_id = xstrdup(uuid);
    }

    Spark__Connect__ReattachOptions ro = SPARK__CONNECT__REATTACH_OPTIONS__INIT;
    ro.has_reattachable = true;
    ro.reattachable = true;
    Spark__Connect__ExecutePlanRequest__RequestOption option =
        SPARK__CONNECT__EXECUTE_PLAN_REQUEST__REQUEST_OPTION__INIT;
    option.request_option_case =
        SPARK__CONNECT__EXECUTE_PLAN_REQUEST__REQUEST_OPTION__REQUEST_OPTION_REATTACH_OPTIONS;
    option.reattach_options = &ro;
    Spark__Connect__ExecutePlanRequest__RequestOption *options[] = {&option};

    Spark__Connect__ExecutePlanRequest req = SPARK__CONNECT__EXECUTE_PLAN_REQUEST__INIT;
    FILL_COMMON(req, c);
    req.plan = plan;
    req.operation_id = e->operation_id;
    if (opt->reattachable) {
        req.n_request_options = 1;
        req.request_options = options;
    }
    size_t len;
    uint8_t *buf = pack(&req.base, &len);
    e->s = kl_grpc_stream_open(c->ch, KL_SPARK_SERVICE "ExecutePlan", buf, len, &opt->call);
    free(buf);
    return e;
}

kl_spark_exec *kl_spark_client_execute_plan(kl_spark_client *c, Spark__Connect__Plan *plan,
                                            const kl_spark_exec_opts *opt) {
    return execute_plan(c, plan, opt);
}

kl_spark_exec *kl_spark_client_execute_sql(kl_spark_client *c, const char *sql,
                                           const kl_spark_exec_opts *opt) {
    Spark__Connect__SQL q = SPARK__CONNECT__SQL__INIT;
    q.query = (char *)sql;
    Spark__Connect__Relation rel = SPARK__CONNECT__RELATION__INIT;
    rel.rel_type_case = SPARK__CONNECT__RELATION__REL_TYPE_SQL;
    rel.sql = &q;
    Spark__Connect__Plan plan = SPARK__CONNECT__PLAN__INIT;
    plan.op_type_case = SPARK__CONNECT__PLAN__OP_TYPE_ROOT;
    plan.root = &rel;
    return execute_plan(c, &plan, opt);
}

kl_spark_exec *kl_spark_client_execute_command(kl_spark_client *c, const char *sql,
                                               const kl_spark_exec_opts *opt) {
    Spark__Connect__SqlCommand cmd = SPARK__CONNECT__SQL_COMMAND__INIT;
    cmd.sql = (char *)sql;
    Spark__Connect__Command command = SPARK__CONNECT__COMMAND__INIT;
    command.command_type_case = SPARK__CONNECT__COMMAND__COMMAND_TYPE_SQL_COMMAND;
    command.sql_command = &cmd;
    Spark__Connect__Plan plan = SPARK__CONNECT__PLAN__INIT;
    plan.op_type_case = SPARK__CONNECT__PLAN__OP_TYPE_COMMAND;
    plan.command = &command;
    return execute_plan(c, &plan, opt);
}

kl_spark_exec *kl_spark_client_execute_relation(kl_spark_client *c, Spark__Connect__Relation *rel,
                                                int32_t limit, const kl_spark_exec_opts *opt) {
    Spark__Connect__Limit lim = SPARK__CONNECT__LIMIT__INIT;
    Spark__Connect__Relation wrapped = SPARK__CONNECT__RELATION__INIT;
    Spark__Connect__Plan plan = SPARK__CONNECT__PLAN__INIT;
    plan.op_type_case = SPARK__CONNECT__PLAN__OP_TYPE_ROOT;
    plan.root = rel;
    if (limit >= 0) {
        lim.input = rel;
        lim.has_limit = true;
        lim.limit = limit;
        wrapped.rel_type_case = SPARK__CONNECT__RELATION__REL_TYPE_LIMIT;
        wrapped.limit = &lim;
        plan.root = &wrapped;
    }
    return execute_plan(c, &plan, opt);
}

const char *kl_spark_exec_operation_id(const kl_spark_exec *e) {
    return e->operation_id;
}

int kl_spark_exec_next(kl_spark_exec *e, Spark__Connect__ExecutePlanResponse **resp,
                       kl_grpc_status *st) {
    *resp = NULL;
    if (e->bad) {
        malformed(e->c, "ExecutePlan", st);
        return -1;
    }
    kl_grpc_bytes msg;
    int rc = kl_grpc_stream_next(e->s, &msg, st);
    if (rc != 1) return rc;
    *resp = spark__connect__execute_plan_response__unpack(NULL, msg.len, msg.data);
    free(msg.data);
    if (!*resp) {
        e->bad = true;
        kl_grpc_stream_cancel(e->s);
        malformed(e->c, "ExecutePlan", st);
        return -1;
    }
    observe_session(e->c, (*resp)->server_side_session_id);
    return 1;
}

void kl_spark_exec_cancel(kl_spark_exec *e) {
    kl_grpc_stream_cancel(e->s);
}

void kl_spark_exec_free(kl_spark_exec *e) {
    if (!e) return;
    kl_grpc_stream_free(e->s);
    free(e->operation_id);
    free(e);
}

int kl_spark_client_interrupt(kl_spark_client *c, const char *operation_id,
                              const kl_grpc_call_opts *opt, kl_grpc_status *st) {
    Spark__Connect__InterruptRequest req = SPARK__CONNECT__INTERRUPT_REQUEST__INIT;
    FILL_COMMON(req, c);
    req.has_interrupt_type = true;
    if (operation_id) {
        req.interrupt_type =
            SPARK__CONNECT__INTERRUPT_REQUEST__INTERRUPT_TYPE__INTERRUPT_TYPE_OPERATION_ID;
        req.interrupt_case = SPARK__CONNECT__INTERRUPT_REQUEST__INTERRUPT_OPERATION_ID;
        req.operation_id = (char *)operation_id;
    } else {
        req.interrupt_type = SPARK__CONNECT__INTERRUPT_REQUEST__INTERRUPT_TYPE__INTERRUPT_TYPE_ALL;
    }
    ProtobufCMessage *m;
    if (call_unary(c, "Interrupt", &req.base, &spark__connect__interrupt_response__descriptor, opt,
                   &m, st) != 0)
        return -1;
    Spark__Connect__InterruptResponse *resp = (Spark__Connect__InterruptResponse *)m;
    observe_session(c, resp->server_side_session_id);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

struct kl_spark_release {
    kl_grpc_channel *ch;
    uint8_t *req;
    size_t len;
    char *operation_id;
};

kl_spark_release *kl_spark_client_release_prepare(kl_spark_client *c, const char *operation_id) {
    Spark__Connect__ReleaseExecuteRequest req = SPARK__CONNECT__RELEASE_EXECUTE_REQUEST__INIT;
    Spark__Connect__ReleaseExecuteRequest__ReleaseAll all =
        SPARK__CONNECT__RELEASE_EXECUTE_REQUEST__RELEASE_ALL__INIT;
    FILL_COMMON(req, c);
    req.operation_id = (char *)operation_id;
    req.release_case = SPARK__CONNECT__RELEASE_EXECUTE_REQUEST__RELEASE_RELEASE_ALL;
    req.release_all = &all;
    kl_spark_release *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->ch = c->ch;
    r->operation_id = xstrdup(operation_id);
    r->req = pack(&req.base, &r->len);
    return r;
}

const char *kl_spark_release_operation_id(const kl_spark_release *r) {
    return r->operation_id;
}

int kl_spark_release_send(kl_spark_release *r, const kl_grpc_call_opts *opt, kl_grpc_status *st) {
    kl_grpc_bytes out;
    if (kl_grpc_unary(r->ch, KL_SPARK_SERVICE "ReleaseExecute", r->req, r->len, opt, &out, st) != 0)
        return -1;
    free(out.data); /* it only echoes the ids */
    return 0;
}

void kl_spark_release_free(kl_spark_release *r) {
    if (!r) return;
    free(r->req);
    free(r->operation_id);
    free(r);
}

int kl_spark_client_release_execute(kl_spark_client *c, const char *operation_id,
                                    const kl_grpc_call_opts *opt, kl_grpc_status *st) {
    kl_spark_release *r = kl_spark_client_release_prepare(c, operation_id);
    int rc = kl_spark_release_send(r, opt, st);
    kl_spark_release_free(r);
    return rc;
}

int kl_spark_client_release_session(kl_spark_client *c, const kl_grpc_call_opts *opt,
                                    kl_grpc_status *st) {
    Spark__Connect__ReleaseSessionRequest req = SPARK__CONNECT__RELEASE_SESSION_REQUEST__INIT;
    req.session_id = c->session_id;
    req.user_context = &c->uc;
    req.client_type = c->client_type;
    ProtobufCMessage *m;
    if (call_unary(c, "ReleaseSession", &req.base,
                   &spark__connect__release_session_response__descriptor, opt, &m, st) != 0)
        return -1;
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

int kl_spark_client_fetch_error_details(kl_spark_client *c, const char *error_id,
                                        const kl_grpc_call_opts *opt, kl_grpc_bytes *resp,
                                        kl_grpc_status *st) {
    Spark__Connect__FetchErrorDetailsRequest req =
        SPARK__CONNECT__FETCH_ERROR_DETAILS_REQUEST__INIT;
    FILL_COMMON(req, c);
    req.error_id = (char *)error_id;
    size_t len;
    uint8_t *buf = pack(&req.base, &len);
    int rc = kl_grpc_unary(c->ch, KL_SPARK_SERVICE "FetchErrorDetails", buf, len, opt, resp, st);
    free(buf);
    return rc;
}

int kl_spark_client_config(kl_spark_client *c, Spark__Connect__ConfigRequest__Operation *op,
                           const kl_grpc_call_opts *opt, Spark__Connect__ConfigResponse **resp,
                           kl_grpc_status *st) {
    *resp = NULL;
    Spark__Connect__ConfigRequest req = SPARK__CONNECT__CONFIG_REQUEST__INIT;
    FILL_COMMON(req, c);
    req.operation = op;
    ProtobufCMessage *m;
    if (call_unary(c, "Config", &req.base, &spark__connect__config_response__descriptor, opt, &m,
                   st) != 0)
        return -1;
    *resp = (Spark__Connect__ConfigResponse *)m;
    observe_session(c, (*resp)->server_side_session_id);
    return 0;
}

kl_spark_exec *kl_spark_client_reattach(kl_spark_client *c, const char *operation_id,
                                        const char *last_response_id,
                                        const kl_spark_exec_opts *opt) {
    static const kl_spark_exec_opts no_opts = {0};
    if (!opt) opt = &no_opts;
    kl_spark_exec *e = calloc(1, sizeof *e);
    if (!e) abort();
    e->c = c;
    e->operation_id = xstrdup(operation_id);
    Spark__Connect__ReattachExecuteRequest req = SPARK__CONNECT__REATTACH_EXECUTE_REQUEST__INIT;
    FILL_COMMON(req, c);
    req.operation_id = e->operation_id;
    req.last_response_id = (char *)last_response_id;
    size_t len;
    uint8_t *buf = pack(&req.base, &len);
    e->s = kl_grpc_stream_open(c->ch, KL_SPARK_SERVICE "ReattachExecute", buf, len, &opt->call);
    free(buf);
    return e;
}
