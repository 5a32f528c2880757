#include "kernel/sqlcomm.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/comm.h"
#include "kernel/sql.h"
#include "kernel/sqlparams.h"
#include "kernel/tenant.h"
#include "render/rows.h"
#include "runtime/log.h"
#include "spark/arrow.h"
#include "spark/client.h"
#include "spark/errors.h"

/* Results up to this many Arrow bytes are encoded on the loop thread: a pool round trip costs
 * more than encoding a few rows, and most calls return a few rows. */
#define INLINE_ENCODE_BYTES (64 * 1024)
/* Retryable failures (a server restarting) before any response: waits of 50, 200, 800 ms. */
#define RETRIES 3

typedef struct sqlcomm sqlcomm;

/* One comm_msg being answered. */
typedef struct call {
    sqlcomm *sc;
    kl_msg parent;      /* the request's header only: the reply's parent and IOPub topic */
    json_t *request_id; /* echoed back */
    kl_sqlbind *bind;
    kl_spark_exec *exec; /* while the RPC runs, so a close or an interrupt can cancel it */
    struct call *prev, *next;
} call;

struct sqlcomm {
    kl_kernel *k;
    kl_comm *comm;
    char *session; /* the owning connection */
    kl_sqlstmt stmt;
    bool msgpack;
    int64_t limit; /* rows per answer; < 0: all */
    int concurrency;
    /* A client of its own on the connection's Spark session: the comm's calls may outlive a
     * subshell that sent them, and a session reset in a cell must not free a client under a
     * running call. */
    kl_spark_client *spark;
    bool reset_spark; /* the server lost the session: replace the client before the next call */
    call *calls;      /* in flight */
    int inflight;
    kl_coro *slot_waiter;  /* the connection's coroutine, waiting for a free slot */
    kl_coro *close_waiter; /* on_close, waiting for the calls to end */
    bool closing;
    bool orphaned; /* closed outside a coroutine with calls running: the last call frees sc */
};

/* ---- replies ------------------------------------------------------------------------------ */

static json_t *request_id_of(const call *c) {
    return c->request_id ? json_incref(c->request_id) : json_null();
}

static void send_error(sqlcomm *sc, const kl_msg *parent, json_t *request_id, const char *ename,
                       const char *evalue, const char *sqlstate) {
    if (sc->closing) {
        json_decref(request_id);
        return;
    }
    json_t *data =
        json_pack("{s:o, s:{s:s, s:s, s:s?}}", "request_id", request_id ? request_id : json_null(),
                  "error", "ename", ename, "evalue", evalue ? evalue : "", "sqlstate", sqlstate);
    if (!data) return;
    kl_comm_send(sc->k, sc->comm, parent, data, NULL);
}

/* A failed Spark call as an error reply: the Spark error class, its message and SQLSTATE; the
 * gRPC status name when the failure was the transport's. */
static void send_spark_error(sqlcomm *sc, call *c, const kl_grpc_status *st) {
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, (int)st->code, st->details, st->details_bin,
                               st->details_bin_len);
    if (e.error_id && sc->spark && !sc->closing) {
        /* The trailer's message may be cut; the server's full description is one call away. */
        kl_grpc_call_opts o = {.timeout_ms = 5000};
        kl_grpc_bytes resp = {0};
        kl_grpc_status dst = {0};
        if (kl_spark_client_fetch_error_details(sc->spark, e.error_id, &o, &resp, &dst) == 0)
            kl_spark_error_add_details(&e, resp.data, resp.len);
        free(resp.data);
        kl_grpc_status_clear(&dst);
    }
    char fallback[64];
    const char *ename = e.error_class;
    if (!ename) {
        snprintf(fallback, sizeof fallback, "SparkConnect%s", kl_grpc_code_name(st->code));
        ename = fallback;
    }
    const char *msg = e.error_class                 ? e.message
                      : st->message && *st->message ? st->message
                                                    : (e.message ? e.message : st->details);
    if (!msg) msg = "the Spark Connect call failed";
    /* The server's full message starts and ends with line breaks meant for a console. */
    size_t len = strlen(msg);
    while (len && isspace((unsigned char)*msg)) {
        msg++;
        len--;
    }
    while (len && isspace((unsigned char)msg[len - 1])) len--;
    char *trimmed = strndup(msg, len);
    send_error(sc, &c->parent, request_id_of(c), ename, trimmed ? trimmed : msg, e.sql_state);
    free(trimmed);
    kl_spark_error_free(&e);
}

/* ---- encoding ----------------------------------------------------------------------------- */

typedef struct encode_job {
    Spark__Connect__ExecutePlanResponse **resp; /* Arrow batches, in order */
    size_t n;
    int64_t limit;
    bool msgpack;
    json_t *columns, *rows;
    kl_render_buf mp;
    bool truncated;
    int64_t nrows;
    int rc;
    char err[KL_RENDER_ERRLEN];
} encode_job;

/* Loop or pool: decodes the batches (borrowing the responses, which outlive the job) and writes
 * the rows in the comm's format. */
static void encode_work(void *arg) {
    encode_job *j = arg;
    kl_table *t = kl_table_new(j->limit);
    if (!t) {
        j->rc = -ENOMEM;
        snprintf(j->err, sizeof j->err, "out of memory");
        return;
    }
    for (size_t i = 0; i < j->n && j->rc == 0; i++) {
        const ProtobufCBinaryData *d = &j->resp[i]->arrow_batch->data;
        kl_arrow_stream *s;
        char aerr[KL_ARROW_ERRLEN];
        j->rc = kl_arrow_decode(d->data, d->len, NULL, &s, aerr);
        if (j->rc != 0)
            snprintf(j->err, sizeof j->err, "%s", aerr);
        else
            j->rc = kl_table_add(t, s, j->err);
    }
    if (j->rc == 0) {
        j->truncated = j->limit >= 0 && kl_table_rows_seen(t) > j->limit;
        j->nrows = kl_table_rows_kept(t);
        kl_rows_options o = {.max_rows = j->limit, .time_zone = NULL};
        if (j->limit >= 0 && j->nrows > j->limit) j->nrows = j->limit;
        if (j->msgpack) {
            j->rc = kl_rows_msgpack(t, &o, j->truncated, &j->mp, j->err);
        } else {
            j->columns = kl_rows_columns(t);
            j->rc = j->columns ? kl_rows_json(t, &o, &j->rows, j->err) : -ENOMEM;
        }
    }
    kl_table_free(t);
}

static void free_mp(void *data, void *hint) {
    (void)hint;
    free(data);
}

/* Coroutine: the rows of a finished call as its reply. */
static void send_rows(sqlcomm *sc, call *c, Spark__Connect__ExecutePlanResponse **resp, size_t n) {
    encode_job j = {.resp = resp, .n = n, .limit = sc->limit, .msgpack = sc->msgpack};
    kl_render_buf_init(&j.mp);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += resp[i]->arrow_batch->data.len;
    if (bytes > INLINE_ENCODE_BYTES)
        kl_pool_run(sc->k->pool, encode_work, &j);
    else
        encode_work(&j);
    if (j.rc != 0) {
        send_error(sc, &c->parent, request_id_of(c), "RenderError", j.err, NULL);
    } else if (sc->closing) {
        /* nobody to answer */
    } else if (!sc->msgpack) {
        json_t *data = json_pack("{s:o, s:O, s:O, s:b}", "request_id", request_id_of(c), "columns",
                                 j.columns ? j.columns : json_array(), "rows",
                                 j.rows ? j.rows : json_array(), "truncated", j.truncated);
        kl_comm_send(sc->k, sc->comm, &c->parent, data, NULL);
    } else {
        size_t len = 0;
        char *bytes_out = kl_render_buf_take(&j.mp, &len);
        kl_frames bufs;
        kl_frames_init(&bufs);
        zmq_msg_t m;
        if (!bytes_out || zmq_msg_init_data(&m, bytes_out, len, free_mp, NULL) != 0) {
            free(bytes_out);
            send_error(sc, &c->parent, request_id_of(c), "MemoryError", "out of memory", NULL);
        } else {
            kl_frames_add_msg(&bufs, &m);
            json_t *data = json_pack("{s:o, s:s, s:I, s:b}", "request_id", request_id_of(c),
                                     "format", "application/msgpack", "row_count",
                                     (json_int_t)j.nrows, "truncated", j.truncated);
            kl_comm_send(sc->k, sc->comm, &c->parent, data, &bufs);
        }
        kl_frames_clear(&bufs);
    }
    json_decref(j.columns);
    json_decref(j.rows);
    kl_render_buf_free(&j.mp);
}

/* ---- the Spark session -------------------------------------------------------------------- */

static void cancel_call(void *arg) {
    call *c = arg;
    if (c->exec) kl_spark_exec_cancel(c->exec);
}

/* Coroutine, in the connection's own coroutine: the comm's Spark client, made on first use from
 * the connection's session (waiting for an embedded server like a SQL cell does). NULL after an
 * error reply. */
static kl_spark_client *ensure_client(sqlcomm *sc, const kl_msg *msg, json_t *request_id) {
    if (sc->spark && sc->reset_spark && sc->inflight == 0) {
        kl_spark_client_free(sc->spark);
        sc->spark = NULL;
    }
    if (sc->spark) return sc->spark;
    kl_kernel *k = sc->k;
    kl_tenant *t = kl_strmap_get(k->tenants, sc->session);
    if (!t) {
        send_error(sc, msg, json_incref(request_id), "ConnectionClosed",
                   "this comm's connection has ended", NULL);
        return NULL;
    }
    kl_magic_ctx ctx = {.k = k, .t = t, .parent = msg, .silent = true};
    kl_spark_client *tc = kl_sql_client(&ctx);
    if (tc) {
        kl_spark_common cm;
        kl_spark_client_common(tc, &cm);
        const char *user = cm.user_context ? cm.user_context->user_id : NULL;
        sc->spark = kl_spark_client_new(kl_spark_client_channel(tc), cm.session_id, user);
        sc->reset_spark = false;
        if (!sc->spark) kl_ctx_error(&ctx, "MemoryError", "could not create a Spark client");
    }
    if (!sc->spark)
        send_error(sc, msg, json_incref(request_id), ctx.ename ? ctx.ename : "SparkError",
                   ctx.evalue ? ctx.evalue : "no Spark session", NULL);
    free(ctx.ename);
    free(ctx.evalue);
    json_decref(ctx.traceback);
    free(ctx.result_text);
    json_decref(ctx.payload);
    return sc->spark;
}

static bool session_lost(const kl_spark_error *e) {
    return e->error_class && (strstr(e->error_class, "SESSION_CHANGED") ||
                              strstr(e->error_class, "SESSION_NOT_FOUND"));
}

/* ---- calls -------------------------------------------------------------------------------- */

static void free_responses(Spark__Connect__ExecutePlanResponse **v, size_t n) {
    for (size_t i = 0; i < n; i++) spark__connect__execute_plan_response__free_unpacked(v[i], NULL);
    free(v);
}

/* Coroutine: one ExecutePlan of the bound SQL relation, not reattachable (a short call needs no
 * ReleaseExecute afterwards), then the reply. */
static void run_call(call *c) {
    sqlcomm *sc = c->sc;
    Spark__Connect__Relation *rel = kl_sqlbind_relation(c->bind);
    int32_t limit = sc->limit >= 0 ? (int32_t)sc->limit + 1 : -1; /* one more: was it cut? */
    kl_spark_exec_opts opts = {.reattachable = false};
    uint64_t wait_ms = 50;
    bool reset_done = false;
    for (int attempt = 0;; attempt++) {
        Spark__Connect__ExecutePlanResponse **resp = NULL, *r;
        size_t n = 0, cap = 0, got = 0;
        kl_grpc_status st = {0};
        c->exec = kl_spark_client_execute_relation(sc->spark, rel, limit, &opts);
        int rc = -1;
        bool nomem = !c->exec;
        while (c->exec && (rc = kl_spark_exec_next(c->exec, &r, &st)) == 1) {
            got++;
            if (r->response_type_case !=
                    SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_ARROW_BATCH ||
                !r->arrow_batch || !r->arrow_batch->has_data) {
                spark__connect__execute_plan_response__free_unpacked(r, NULL);
                continue;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 4;
                Spark__Connect__ExecutePlanResponse **v = realloc(resp, ncap * sizeof *v);
                if (!v) {
                    spark__connect__execute_plan_response__free_unpacked(r, NULL);
                    nomem = true;
                    break;
                }
                resp = v;
                cap = ncap;
            }
            resp[n++] = r;
        }
        if (rc < 0 && st.code == KL_GRPC_CANCELLED && c->exec) {
            /* Cancelling the RPC leaves the server's job running (and holding task slots the
             * next calls need): stop the operation itself. */
            char *op = strdup(kl_spark_exec_operation_id(c->exec));
            kl_spark_exec_free(c->exec);
            c->exec = NULL;
            kl_grpc_call_opts o = {.timeout_ms = 5000};
            kl_grpc_status ist = {0};
            if (op) kl_spark_client_interrupt(sc->spark, op, &o, &ist);
            kl_grpc_status_clear(&ist);
            free(op);
        }
        if (c->exec) kl_spark_exec_free(c->exec);
        c->exec = NULL;
        if (nomem) {
            kl_grpc_status_clear(&st);
            free_responses(resp, n);
            send_error(sc, &c->parent, request_id_of(c), "MemoryError", "out of memory", NULL);
            return;
        }
        if (rc == 0) {
            kl_grpc_status_clear(&st);
            send_rows(sc, c, resp, n);
            free_responses(resp, n);
            return;
        }
        free_responses(resp, n);
        if (sc->closing) {
            kl_grpc_status_clear(&st);
            return;
        }
        kl_spark_error e;
        kl_spark_error_init(&e);
        kl_spark_error_from_status(&e, (int)st.code, st.details, st.details_bin,
                                   st.details_bin_len);
        bool lost = session_lost(&e);
        bool retry = got == 0 && attempt < RETRIES && kl_spark_error_retryable(&e);
        kl_spark_error_free(&e);
        if (lost && !reset_done && sc->inflight == 1) {
            /* The server restarted: carry on in a new session with the same id, as cells do. */
            kl_spark_common cm;
            kl_spark_client_common(sc->spark, &cm);
            char *sid = strdup(cm.session_id);
            char *user = cm.user_context && cm.user_context->user_id
                             ? strdup(cm.user_context->user_id)
                             : NULL;
            kl_grpc_channel *ch = kl_spark_client_channel(sc->spark);
            kl_spark_client_free(sc->spark);
            sc->spark = sid ? kl_spark_client_new(ch, sid, user) : NULL;
            free(sid);
            free(user);
            reset_done = true;
            if (sc->spark) {
                kl_grpc_status_clear(&st);
                continue;
            }
        } else if (lost) {
            sc->reset_spark = true;
        }
        if (!retry || !sc->spark) {
            if (st.code == KL_GRPC_CANCELLED && !sc->closing)
                send_error(sc, &c->parent, request_id_of(c), "KeyboardInterrupt",
                           "the call was interrupted", NULL);
            else
                send_spark_error(sc, c, &st);
            kl_grpc_status_clear(&st);
            return;
        }
        KL_INFO("sqlcomm", "retrying after %s: %s", kl_grpc_code_name(st.code),
                st.details ? st.details : "");
        kl_grpc_status_clear(&st);
        kl_loop_sleep(sc->k->loop, wait_ms);
        wait_ms *= 4;
        if (sc->closing) return;
    }
}

static void sqlcomm_free(sqlcomm *sc) {
    kl_spark_client_free(sc->spark);
    kl_sqlstmt_free(&sc->stmt);
    free(sc->session);
    free(sc);
}

static void call_free(call *c) {
    kl_msg_clear(&c->parent);
    json_decref(c->request_id);
    kl_sqlbind_free(c->bind);
    free(c);
}

/* A call ended: its slot frees up, and a close waiting for the calls may go on. */
static void call_done(call *c) {
    sqlcomm *sc = c->sc;
    if (c->prev)
        c->prev->next = c->next;
    else
        sc->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    sc->inflight--;
    call_free(c);
    kl_coro *waiters[] = {sc->slot_waiter, sc->close_waiter};
    sc->slot_waiter = sc->close_waiter = NULL;
    for (size_t i = 0; i < 2; i++)
        if (waiters[i]) kl_loop_wake(sc->k->loop, waiters[i]);
    if (sc->orphaned && sc->inflight == 0) sqlcomm_free(sc);
}

static void call_main(void *arg) {
    call *c = arg;
    run_call(c);
    call_done(c);
}

/* The current coroutine's tenant, for interrupts of calls that run in it. */
typedef struct find_ctx {
    kl_coro *co;
    kl_tenant *t;
} find_ctx;

static void find_tenant(const char *key, void *value, void *arg) {
    (void)key;
    find_ctx *f = arg;
    kl_tenant *t = value;
    if (t->coro == f->co) f->t = t;
}

/* ---- the target --------------------------------------------------------------------------- */

static bool format_msgpack(const char *f, bool *msgpack) {
    if (!f || strcmp(f, "json") == 0 || strcmp(f, "application/json") == 0) {
        *msgpack = false;
        return true;
    }
    if (strcmp(f, "application/msgpack") == 0 || strcmp(f, "msgpack") == 0 ||
        strcmp(f, "application/x-msgpack") == 0) {
        *msgpack = true;
        return true;
    }
    return false;
}

/* Reads the open request into sc. NULL, or the problem. */
static const char *read_open(sqlcomm *sc, json_t *data, char *err, size_t errlen) {
    if (!json_is_object(data)) return "comm_open data must be an object with \"sql\"";
    json_t *sql = json_object_get(data, "sql");
    if (!json_is_string(sql)) return "comm_open data needs \"sql\": the statement (a string)";
    json_t *fmt = json_object_get(data, "format");
    if (fmt && !json_is_null(fmt) &&
        (!json_is_string(fmt) || !format_msgpack(json_string_value(fmt), &sc->msgpack)))
        return "\"format\" must be \"json\" or \"application/msgpack\"";
    json_t *limit = json_object_get(data, "limit");
    sc->limit = KL_SQLCOMM_DEFAULT_LIMIT;
    if (limit && !json_is_null(limit)) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 0 ||
            json_integer_value(limit) >= INT32_MAX)
            return "\"limit\" must be a number of rows (0 to 2147483646) or null";
        sc->limit = json_integer_value(limit);
    }
    json_t *conc = json_object_get(data, "concurrency");
    sc->concurrency = 1;
    if (conc && !json_is_null(conc)) {
        if (!json_is_integer(conc) || json_integer_value(conc) < 1 ||
            json_integer_value(conc) > KL_SQLCOMM_MAX_CONCURRENCY)
            return "\"concurrency\" must be a number from 1 to 64";
        sc->concurrency = (int)json_integer_value(conc);
    }
    const char *text = json_string_value(sql);
    int rc = kl_sqlstmt_parse(text, json_string_length(sql), &sc->stmt, err, errlen);
    if (rc == -ENOMEM) return "out of memory";
    if (rc != 0) return err;
    return NULL;
}

static int sql_open(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data) {
    sqlcomm *sc = calloc(1, sizeof *sc);
    if (!sc) return -1;
    sc->k = k;
    sc->comm = comm;
    sc->session = strdup(kl_comm_session(comm));
    char err[512];
    const char *problem = sc->session ? read_open(sc, data, err, sizeof err) : "out of memory";
    if (problem) {
        /* Said in a message before the close, so the client learns why. */
        send_error(sc, msg, json_null(), "InvalidRequest", problem, NULL);
        sqlcomm_free(sc);
        return -1;
    }
    kl_comm_set_user(comm, sc);
    KL_DEBUG("sqlcomm", "comm %s: %zu named, %zu positional parameters, %s, limit %lld",
             kl_comm_id(comm), sc->stmt.n_names, sc->stmt.n_positional,
             sc->msgpack ? "msgpack" : "json", (long long)sc->limit);
    return 0;
}

static void sql_msg(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data) {
    sqlcomm *sc = kl_comm_user(comm);
    if (!sc || sc->closing) return;
    json_t *rid = json_is_object(data) ? json_object_get(data, "request_id") : NULL;
    if (!json_is_object(data)) {
        send_error(sc, msg, json_null(), "InvalidRequest",
                   "comm_msg data must be an object: {\"request_id\": ..., \"params\": ...}", NULL);
        return;
    }
    json_t *params = json_object_get(data, "params");
    char err[512];
    kl_sqlbind *bind = NULL;
    kl_sqlbind_rc brc;
    if (msg->buffers.n > 1) {
        send_error(sc, msg, json_incref(rid), "InvalidRequest",
                   "send the parameters in at most one buffer", NULL);
        return;
    }
    if (!params && msg->buffers.n == 1)
        brc = kl_sqlbind_msgpack(&sc->stmt, kl_frames_data(&msg->buffers, 0),
                                 kl_frames_size(&msg->buffers, 0), &bind, err, sizeof err);
    else
        brc = kl_sqlbind_json(&sc->stmt, params, &bind, err, sizeof err);
    if (brc != KL_SQLBIND_OK) {
        if (brc == KL_SQLBIND_UNBOUND)
            send_error(sc, msg, json_incref(rid), "UNBOUND_SQL_PARAMETER", err, "42P02");
        else
            send_error(sc, msg, json_incref(rid),
                       brc == KL_SQLBIND_NOMEM ? "MemoryError" : "InvalidRequest", err, NULL);
        return;
    }
    /* A free slot first (concurrency), and no call in flight when the client must be replaced. */
    while (!sc->closing && (sc->inflight >= sc->concurrency || (sc->reset_spark && sc->inflight))) {
        sc->slot_waiter = kl_coro_current();
        kl_loop_park(k->loop);
    }
    if (sc->closing || !ensure_client(sc, msg, rid)) {
        kl_sqlbind_free(bind);
        return;
    }
    call *c = calloc(1, sizeof *c);
    if (!c) {
        kl_sqlbind_free(bind);
        send_error(sc, msg, json_incref(rid), "MemoryError", "out of memory", NULL);
        return;
    }
    c->sc = sc;
    c->bind = bind;
    c->request_id = rid ? json_incref(rid) : NULL;
    kl_msg_init(&c->parent);
    c->parent.header = json_incref(msg->header);
    c->next = sc->calls;
    if (sc->calls) sc->calls->prev = c;
    sc->calls = c;
    sc->inflight++;
    if (sc->concurrency > 1) {
        /* Pipelined: answered by request_id, possibly after this request's idle. */
        if (!kl_loop_spawn(k->loop, call_main, c, 0)) {
            send_error(sc, msg, json_incref(rid), "MemoryError", "could not start the call", NULL);
            call_done(c);
        }
        return;
    }
    /* In the connection's coroutine: an interrupt_request of the connection cancels the call. */
    find_ctx f = {kl_coro_current(), NULL};
    kl_strmap_foreach(k->tenants, find_tenant, &f);
    if (f.t) {
        f.t->interrupt_hook = cancel_call;
        f.t->interrupt_arg = c;
    }
    run_call(c);
    if (f.t) {
        f.t->interrupt_hook = NULL;
        f.t->interrupt_arg = NULL;
    }
    call_done(c);
}

static void sql_close(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data) {
    (void)msg;
    (void)data;
    sqlcomm *sc = kl_comm_user(comm);
    if (!sc) return;
    kl_comm_set_user(comm, NULL);
    sc->closing = true;
    if (sc->inflight > 0 && kl_coro_current()) {
        /* Stop the running calls on the server too, and wait for their coroutines to see it. */
        for (call *c = sc->calls; c; c = c->next)
            if (c->exec) kl_spark_exec_cancel(c->exec);
        while (sc->inflight > 0) {
            sc->close_waiter = kl_coro_current();
            kl_loop_park(k->loop);
        }
    }
    /* Outside a coroutine the loop has stopped (the kernel is exiting) and the Spark transport
     * may be gone already: touch nothing of the calls, and let the last one free sc. */
    if (sc->inflight > 0)
        sc->orphaned = true;
    else
        sqlcomm_free(sc);
}

int kl_sqlcomm_register(kl_comm_manager *mgr) {
    static const kl_comm_target target = {
        .name = KL_SQLCOMM_TARGET,
        .on_open = sql_open,
        .on_msg = sql_msg,
        .on_close = sql_close,
    };
    return kl_comm_register_target(mgr, &target);
}
