#include "kernel/sql.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/sqltext.h"
#include "kernel/tenant.h"
#include "render/csv.h"
#include "render/html.h"
#include "render/json.h"
#include "render/text.h"
#include "runtime/log.h"
#include "spark/client.h"
#include "spark/errors.h"
#include "spark/local.h"

/* Retryable failures (the server restarting, the gRPC bug where a cancelled call resets the
 * connection) are retried this often, with waits of 50 ms, 200 ms, 800 ms, 3.2 s: long enough for
 * the channel (reconnecting at least every second) to find a server that is back, short enough
 * that an unreachable one is reported within a few seconds. */
#define RETRIES 4

struct kl_sql {
    kl_kernel *k;
    int64_t display_limit;
    char *config_error; /* set when no endpoint can ever work (bad URL) */
    kl_sc_remote remote;
    bool local;
    kl_spark_local *local_server;
    kl_grpc *grpc;
    kl_grpc_channel *chan;
    char endpoint[512]; /* redacted, for messages */
};

/* ---- endpoint ----------------------------------------------------------------------------- */

kl_sql *kl_sql_new(kl_kernel *k, const char *remote_option, int64_t display_limit) {
    kl_sql *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->k = k;
    s->display_limit = display_limit > 0 ? display_limit : KL_SQL_DEFAULT_DISPLAY_LIMIT;
    char err[512];
    if (kl_sc_remote_select(remote_option, &s->remote, err, sizeof err) != 0) {
        s->config_error = strdup(err);
        KL_WARN("sql", "no usable Spark Connect endpoint: %s", err);
        return s;
    }
    if (s->remote.kind == KL_SC_KIND_LOCAL) {
        s->local = true;
        kl_spark_local_opts o = {0};
        o.master = s->remote.master;
        if (kl_spark_local_start(k->loop, k->pool, &o, &s->local_server) != 0) {
            s->config_error = strdup("the embedded local Spark Connect server could not start");
            s->local_server = NULL;
        }
        snprintf(s->endpoint, sizeof s->endpoint, "the embedded local Spark Connect server");
        return s;
    }
    kl_sc_remote_redacted(&s->remote, s->endpoint, sizeof s->endpoint);
    KL_INFO("sql", "Spark Connect endpoint %s", s->endpoint);
    return s;
}

/* gRPC starts with the first SQL cell, not with the kernel: its initialisation costs start-up
 * time and resident memory that a kernel used only for magics never needs. */
static kl_grpc_channel *open_channel(kl_sql *s, const kl_sc_remote *r, char *err, size_t errlen) {
    if (!s->grpc) s->grpc = kl_grpc_new(s->k->loop, 1);
    if (!s->grpc) {
        snprintf(err, errlen, "the gRPC driver could not start");
        return NULL;
    }
    return kl_grpc_channel_new(s->grpc, r, NULL, err, errlen);
}

/* Coroutine: the channel, waiting for the embedded server on first use; NULL with the error
 * recorded in c. */
static kl_grpc_channel *channel(kl_sql *s, kl_magic_ctx *c) {
    if (s->config_error) {
        kl_ctx_error(c, "SparkConnectConfigError", "%s", s->config_error);
        return NULL;
    }
    if (s->chan) return s->chan;
    char err[512];
    if (!s->local) {
        s->chan = open_channel(s, &s->remote, err, sizeof err);
        if (!s->chan) kl_ctx_error(c, "SparkConnectConfigError", "%s", err);
        return s->chan;
    }
    if (kl_spark_local_state_of(s->local_server) != KL_SPARK_LOCAL_READY) {
        char line[1024];
        /* The status reads "starting local Spark Connect server (Spark 4.0.1 from ...) ...";
         * keep its details after the kernel's own wording. */
        static const char prefix[] = "starting local Spark Connect server";
        const char *status = kl_spark_local_status(s->local_server);
        if (strncmp(status, prefix, sizeof prefix - 1) == 0)
            snprintf(line, sizeof line, "Starting a local Spark Connect server%s\n",
                     status + sizeof prefix - 1);
        else
            snprintf(line, sizeof line, "Starting a local Spark Connect server: %s\n", status);
        kl_ctx_stream(c, "stdout", line);
    }
    if (kl_spark_local_wait(s->local_server) != 0) {
        const char *why = kl_spark_local_error(s->local_server);
        kl_ctx_error(c, "LocalSparkUnavailable",
                     "the embedded local Spark Connect server did not "
                     "start: %s",
                     why ? why : "unknown reason");
        return NULL;
    }
    if (s->chan) return s->chan; /* another tenant made it while this one waited */
    kl_sc_remote r;
    if (kl_sc_remote_parse(kl_spark_local_url(s->local_server), &r, err, sizeof err) != 0) {
        kl_ctx_error(c, "LocalSparkUnavailable", "%s", err);
        return NULL;
    }
    s->chan = open_channel(s, &r, err, sizeof err);
    kl_sc_remote_free(&r);
    if (!s->chan) {
        kl_ctx_error(c, "LocalSparkUnavailable", "%s", err);
        return NULL;
    }
    snprintf(s->endpoint, sizeof s->endpoint, "%s", kl_spark_local_url(s->local_server));
    return s->chan;
}

/* ---- errors ------------------------------------------------------------------------------- */

/* Coroutine: adds the server's full description of an error (4.0+): the query context that lets
 * the report underline the failing fragment. Best effort: without it the error is still clear. */
static void fetch_details(kl_magic_ctx *c, kl_spark_error *e) {
    if (!e->error_id || !c->t->spark) return;
    kl_grpc_call_opts o = {.timeout_ms = 5000};
    kl_grpc_bytes resp = {0};
    kl_grpc_status st = {0};
    if (kl_spark_client_fetch_error_details(c->t->spark, e->error_id, &o, &resp, &st) == 0)
        kl_spark_error_add_details(e, resp.data, resp.len);
    free(resp.data);
    kl_grpc_status_clear(&st);
}

int kl_sql_report(kl_magic_ctx *c, const kl_grpc_status *st, const char *stmt) {
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, (int)st->code, st->details, st->details_bin,
                               st->details_bin_len);
    fetch_details(c, &e);
    const char *ename = e.error_class ? e.error_class : NULL;
    char fallback[64];
    if (!ename) {
        /* Not a Spark error: the transport failed. Name the gRPC status. */
        snprintf(fallback, sizeof fallback, "SparkConnect%s", kl_grpc_code_name(st->code));
        ename = fallback;
    }
    const char *msg =
        e.error_class ? e.message : (st->message && *st->message ? st->message : e.message);
    char *text = kl_spark_error_format(&e, stmt);
    kl_ctx_error(c, ename, "%s", msg ? msg : "the Spark Connect call failed");
    /* The first traceback line is the "ename: evalue" summary; the report adds SQLSTATE and the
     * query with the failing fragment marked. */
    if (text && c->traceback) {
        json_array_clear(c->traceback);
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            json_array_append_new(c->traceback, json_string(line));
    }
    free(text);
    kl_spark_error_free(&e);
    return -1;
}

static bool session_lost(const kl_spark_error *e) {
    return e->error_class && (strstr(e->error_class, "SESSION_CHANGED") ||
                              strstr(e->error_class, "SESSION_NOT_FOUND"));
}

/* The server restarted (or dropped the session): its state for this connection is gone. Say so,
 * since temporary views vanished, and carry on in a fresh session. */
static void reset_session(kl_magic_ctx *c) {
    kl_spark_client_free(c->t->spark);
    c->t->spark = NULL;
    kl_ctx_stream(c, "stderr",
                  "The Spark Connect server restarted, so this connection's Spark session "
                  "(temporary views, settings) is gone; continuing in a new session.\n");
}

/* ---- running ------------------------------------------------------------------------------ */

typedef struct batches {
    kl_grpc_bytes *v;
    size_t n, cap;
    int64_t rows;
} batches;

static int add_batch(batches *b, const ProtobufCBinaryData *data, int64_t rows) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        kl_grpc_bytes *v = realloc(b->v, cap * sizeof *v);
        if (!v) return -ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    uint8_t *copy = malloc(data->len ? data->len : 1);
    if (!copy) return -ENOMEM;
    memcpy(copy, data->data, data->len);
    b->v[b->n++] = (kl_grpc_bytes){copy, data->len};
    b->rows += rows;
    return 0;
}

static void batches_free(batches *b) {
    for (size_t i = 0; i < b->n; i++) free(b->v[i].data);
    free(b->v);
    memset(b, 0, sizeof *b);
}

static void cancel_exec(void *arg) {
    kl_spark_exec_cancel(arg);
}

/* Where a reattachable operation's stream stands, across ExecutePlan and ReattachExecute. */
typedef struct stream_state {
    char *last_response_id; /* the newest response processed, for ReattachExecute */
    bool complete;          /* result_complete seen: everything has arrived */
    bool got_any;           /* some response arrived (a retry must reattach, not resend) */
    uint64_t responses;     /* how many arrived, to tell progress from a stream that dies */
} stream_state;

/* Coroutine: drains one ExecutePlan or ReattachExecute stream into b, keeping the SqlCommand's
 * echoed relation in *rel_resp (the response that holds it; caller frees). 0 at the end of the
 * stream, 1 when interrupted, -1 failed (st set), -2 out of memory (error recorded). */
static int drain(kl_magic_ctx *c, kl_spark_exec *e, batches *b,
                 Spark__Connect__ExecutePlanResponse **rel_resp, kl_grpc_status *st,
                 stream_state *ss) {
    kl_tenant *t = c->t;
    t->interrupt_hook = cancel_exec;
    t->interrupt_arg = e;
    int rc;
    Spark__Connect__ExecutePlanResponse *r;
    while ((rc = kl_spark_exec_next(e, &r, st)) == 1) {
        ss->got_any = true;
        ss->responses++;
        if (r->response_id && *r->response_id) {
            free(ss->last_response_id);
            ss->last_response_id = strdup(r->response_id);
        }
        bool keep = false;
        switch (r->response_type_case) {
        case SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_ARROW_BATCH:
            if (r->arrow_batch && r->arrow_batch->has_data &&
                add_batch(b, &r->arrow_batch->data, r->arrow_batch->row_count) != 0)
                rc = -2;
            break;
        case SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_SQL_COMMAND_RESULT:
            if (r->sql_command_result && r->sql_command_result->relation && rel_resp &&
                !*rel_resp) {
                *rel_resp = r;
                keep = true;
            }
            break;
        case SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_RESULT_COMPLETE:
            ss->complete = true;
            break;
        default:
            break;
        }
        if (!keep) spark__connect__execute_plan_response__free_unpacked(r, NULL);
        if (rc == -2) break;
    }
    t->interrupt_hook = NULL;
    t->interrupt_arg = NULL;
    if (t->interrupted) return 1;
    if (rc == -2) {
        kl_ctx_error(c, "MemoryError", "out of memory while receiving results");
        return -2;
    }
    return rc < 0 ? -1 : 0;
}

typedef struct render_job {
    batches *b;
    int64_t limit;
    kl_sql_output output;
    kl_render_options opts;
    char *text, *html;
    json_t *json;
    size_t ncols;
    int rc;
    char err[KL_RENDER_ERRLEN];
} render_job;

/* Pool: Arrow decoding and rendering are too heavy for the loop thread. */
static void render_work(void *arg) {
    render_job *j = arg;
    kl_table *tbl = kl_table_new(j->limit);
    if (!tbl) {
        j->rc = -ENOMEM;
        return;
    }
    for (size_t i = 0; i < j->b->n && j->rc == 0; i++)
        j->rc = kl_table_add_ipc(tbl, j->b->v[i].data, j->b->v[i].len, j->err);
    const kl_arrow_schema *schema = kl_table_schema(tbl);
    j->ncols = schema ? schema->n_fields : 0;
    if (j->rc == 0 && j->ncols > 0) {
        if (kl_table_rows_seen(tbl) > j->limit) kl_table_set_more(tbl);
        size_t len;
        if (j->output == KL_SQL_OUT_CSV) {
            j->rc = kl_csv_render(tbl, &j->opts, &j->text, &len, j->err);
        } else if (j->output == KL_SQL_OUT_JSON) {
            j->rc = kl_json_render(tbl, &j->opts, &j->json, j->err);
            if (j->rc == 0) {
                /* The records alone: the data-resource wrapper is for table viewers. */
                json_t *records = json_incref(json_object_get(j->json, "data"));
                json_decref(j->json);
                j->json = records ? records : json_array();
                j->text = json_dumps(j->json, JSON_INDENT(2));
            }
        } else {
            j->rc = kl_text_render(tbl, &j->opts, &j->text, &len, j->err);
            if (j->rc == 0) j->rc = kl_html_render(tbl, &j->opts, &j->html, &len, j->err);
            if (j->rc == 0) j->rc = kl_json_render(tbl, &j->opts, &j->json, j->err);
        }
    }
    kl_table_free(tbl);
}

static int publish_rows(kl_magic_ctx *c, batches *b, int64_t limit, kl_sql_output output,
                        bool last) {
    if (b->n == 0) return 0;
    render_job j = {.b = b, .limit = limit, .output = output};
    kl_render_options_init(&j.opts);
    j.opts.max_rows = limit;
    j.opts.truncate = c->t->truncation ? KL_RENDER_DEFAULT_TRUNCATE : 0;
    j.opts.show_types = c->t->showtypes;
    kl_pool_run(c->k->pool, render_work, &j);
    int rc = 0;
    if (j.rc != 0) {
        rc = kl_ctx_error(c, "RenderError", "the result could not be shown: %s", j.err);
    } else if (j.ncols > 0) {
        json_t *data;
        if (output == KL_SQL_OUT_CSV) {
            data = json_pack("{s:s, s:s}", "text/plain", j.text, "text/csv", j.text);
        } else if (output == KL_SQL_OUT_JSON) {
            data = json_pack("{s:s, s:O}", "text/plain", j.text ? j.text : "[]", "application/json",
                             j.json);
        } else {
            data = json_pack("{s:s, s:s}", "text/plain", j.text, "text/html", j.html);
            if (j.json) json_object_set(data, "application/vnd.dataresource+json", j.json);
        }
        if (last)
            kl_ctx_result(c, data, NULL);
        else
            kl_ctx_display(c, data, NULL);
    }
    free(j.text);
    free(j.html);
    json_decref(j.json);
    return rc;
}

static kl_spark_client *tenant_client(kl_magic_ctx *c, kl_grpc_channel *ch) {
    kl_tenant *t = c->t;
    if (!t->spark) {
        const char *user = c->k->sql->remote.user_id;
        if (!user || !*user) user = kl_msg_username(c->parent);
        t->spark = kl_spark_client_new(ch, NULL, user && *user ? user : NULL);
        if (!t->spark) kl_ctx_error(c, "MemoryError", "could not create a Spark session");
    }
    return t->spark;
}

/* Best effort: tells the server it may drop what it keeps for reattaching. */
static void release(kl_spark_client *client, const char *op) {
    kl_grpc_call_opts o = {.timeout_ms = 5000};
    kl_grpc_status st = {0};
    kl_spark_client_release_execute(client, op, &o, &st);
    kl_grpc_status_clear(&st);
}

/* Coroutine: one reattachable ExecutePlan with our own operation id, as the official clients run
 * it: a stream that ends without result_complete (the server closes long streams) or breaks with
 * a retryable error is continued with ReattachExecute from the last response seen; a failure
 * before any response resends the plan; retryable failures back off 50 ms, 200 ms, 800 ms, so
 * an unreachable server is reported within seconds. */
static int run_plan(kl_magic_ctx *c, const char *stmt, Spark__Connect__Relation *rel, int64_t limit,
                    batches *b, Spark__Connect__ExecutePlanResponse **rel_resp) {
    kl_sql *s = c->k->sql;
    char op[KL_UUID_STRLEN];
    if (kl_uuid_v4(op) != 0) return kl_ctx_error(c, "RuntimeError", "no random operation id");
    kl_spark_exec_opts opts = {.reattachable = true, .operation_id = op};
    stream_state ss = {0};
    uint64_t wait_ms = 50;
    int failures = 0, result = -1;
    bool session_reset = false;
    for (;;) {
        kl_spark_client *client = tenant_client(c, s->chan);
        if (!client) break;
        kl_spark_exec *e;
        if (ss.got_any)
            e = kl_spark_client_reattach(client, op, ss.last_response_id, &opts);
        else if (rel)
            e = kl_spark_client_execute_relation(client, rel, (int32_t)limit + 1, &opts);
        else
            e = kl_spark_client_execute_command(client, stmt, &opts);
        kl_grpc_status st = {0};
        bool had_any = ss.got_any;
        uint64_t seen = ss.responses;
        int rc = drain(c, e, b, rel_resp, &st, &ss);
        if (ss.responses > seen) failures = 0; /* progress: only consecutive failures count */
        kl_spark_exec_free(e);
        if (rc == 1) {
            /* A reattachable operation outlives its stream: stop it on the server too. */
            kl_grpc_call_opts o = {.timeout_ms = 5000};
            kl_grpc_status ist = {0};
            kl_spark_client_interrupt(client, op, &o, &ist);
            kl_grpc_status_clear(&ist);
            release(client, op);
            kl_grpc_status_clear(&st);
            result = kl_ctx_error(c, "KeyboardInterrupt", "the query was interrupted");
            break;
        }
        if (rc == -2) {
            kl_grpc_status_clear(&st);
            break;
        }
        if (rc == 0 && ss.complete) {
            release(client, op);
            kl_grpc_status_clear(&st);
            result = 0;
            break;
        }
        if (rc == 0) {
            /* Closed before result_complete: the server ends long streams (2 minutes, 1 GiB);
             * reattach at once. A stream that closes again without progress counts as a
             * retryable failure, so this cannot spin. */
            kl_grpc_status_clear(&st);
            if (ss.responses > seen) continue;
            st.code = KL_GRPC_UNAVAILABLE;
            st.details = strdup("the result stream ended before result_complete");
        }
        kl_spark_error err;
        kl_spark_error_init(&err);
        kl_spark_error_from_status(&err, (int)st.code, st.details, st.details_bin,
                                   st.details_bin_len);
        bool not_found = err.error_class && strstr(err.error_class, "OPERATION_NOT_FOUND");
        if (session_lost(&err) && !session_reset && !c->k->shutting_down) {
            /* Nothing of this operation survives a new session: start it over there. */
            kl_spark_error_free(&err);
            kl_grpc_status_clear(&st);
            reset_session(c);
            session_reset = true;
            ss.got_any = false;
            batches_free(b);
            if (rel_resp && *rel_resp) {
                spark__connect__execute_plan_response__free_unpacked(*rel_resp, NULL);
                *rel_resp = NULL;
            }
            continue;
        }
        bool retry = (kl_spark_error_retryable(&err) || (not_found && had_any)) &&
                     failures < RETRIES && !c->k->shutting_down;
        kl_spark_error_free(&err);
        if (not_found && had_any && !ss.complete && b->n == 0 && !(rel_resp && *rel_resp)) {
            /* The server lost the operation before anything useful arrived: run it anew. */
            ss.got_any = false;
        }
        if (!retry) {
            kl_sql_report(c, &st, stmt);
            kl_grpc_status_clear(&st);
            break;
        }
        KL_INFO("sql", "%s after %s: %s", ss.got_any ? "reattaching" : "retrying",
                kl_grpc_code_name(st.code), st.details ? st.details : "");
        kl_grpc_status_clear(&st);
        if (!ss.got_any) batches_free(b);
        failures++;
        if (kl_ctx_sleep(c, wait_ms) != 0) break;
        wait_ms *= 4;
    }
    free(ss.last_response_id);
    return result;
}

static int run_statement(kl_magic_ctx *c, const char *stmt, int64_t limit, kl_sql_output output,
                         bool last) {
    batches b = {0};
    Spark__Connect__ExecutePlanResponse *cmd = NULL;
    int rc = run_plan(c, stmt, NULL, limit, &b, &cmd);
    if (rc == 0 && cmd) {
        Spark__Connect__Relation *rel = cmd->sql_command_result->relation;
        if (rel->rel_type_case == SPARK__CONNECT__RELATION__REL_TYPE_LOCAL_RELATION) {
            /* A command ran already; its rows came back with it. */
            if (rel->local_relation && rel->local_relation->has_data)
                rc = add_batch(&b, &rel->local_relation->data, 0) == 0
                         ? 0
                         : kl_ctx_error(c, "MemoryError", "out of memory");
        } else {
            /* A query: run the echoed relation, one row past the display limit so the output
             * can say it was cut. */
            rc = run_plan(c, stmt, rel, limit, &b, NULL);
        }
    }
    if (cmd) spark__connect__execute_plan_response__free_unpacked(cmd, NULL);
    if (rc == 0) rc = publish_rows(c, &b, limit, output, last);
    batches_free(&b);
    return rc;
}

kl_spark_client *kl_sql_client(kl_magic_ctx *c) {
    kl_sql *s = c->k->sql;
    if (!s) {
        kl_ctx_error(c, "SparkConnectConfigError", "Spark support did not start");
        return NULL;
    }
    kl_grpc_channel *ch = channel(s, c);
    return ch ? tenant_client(c, ch) : NULL;
}

int kl_sql_run(kl_magic_ctx *c, const char *code, size_t len, int64_t limit, kl_sql_output out) {
    kl_sql *s = c->k->sql;
    if (!s) return kl_ctx_error(c, "SparkConnectConfigError", "Spark support did not start");
    if (limit <= 0) limit = s->display_limit;
    kl_span *spans = NULL;
    long n = kl_sqltext_split(code, len, &spans);
    if (n < 0) return kl_ctx_error(c, "MemoryError", "out of memory");
    if (n == 0) return 0;
    if (!channel(s, c)) {
        free(spans);
        return -1;
    }
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        char *stmt = strndup(code + spans[i].start, spans[i].len);
        if (!stmt) {
            rc = kl_ctx_error(c, "MemoryError", "out of memory");
            break;
        }
        rc = run_statement(c, stmt, limit, out, i == n - 1);
        free(stmt);
    }
    free(spans);
    return rc;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

void kl_sql_tenant_free(kl_tenant *t) {
    kl_spark_client_free(t->spark);
    t->spark = NULL;
}

static void release_one(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    kl_tenant *t = value;
    if (!t->spark) return;
    kl_grpc_call_opts o = {.timeout_ms = 2000};
    kl_grpc_status st = {0};
    /* Best effort: a 3.5 server has no ReleaseSession and answers UNIMPLEMENTED. */
    kl_spark_client_release_session(t->spark, &o, &st);
    kl_grpc_status_clear(&st);
}

void kl_sql_shutdown(kl_sql *s) {
    if (!s) return;
    if (s->chan) kl_strmap_foreach(s->k->tenants, release_one, NULL);
    if (s->local_server) kl_spark_local_stop(s->local_server);
}

void kl_sql_free(kl_sql *s) {
    if (!s) return;
    if (s->chan) kl_grpc_channel_free(s->chan);
    if (s->grpc) kl_grpc_free(s->grpc);
    if (s->local_server) kl_spark_local_free(s->local_server);
    kl_sc_remote_free(&s->remote);
    free(s->config_error);
    free(s);
}
