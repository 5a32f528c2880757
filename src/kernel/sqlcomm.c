#include "kernel/sqlcomm.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/comm.h"
#include "kernel/sql.h"
#include "kernel/sqlbatch.h"
#include "kernel/sqlparams.h"
#include "kernel/tenant.h"
#include "render/rows.h"
#include "runtime/log.h"
#include "spark/arrow.h"
#include "spark/client.h"
#include "spark/errors.h"

/* Retryable failures (a server restarting) before any response: waits of 50, 200, 800 ms. */
#define RETRIES 3
/* Rows one batched query may return in all (a call's rows beyond its limit included: the limit
 * applies per call, after the split). A batch that reaches it may have been cut, so its calls run
 * alone instead and the comm's later batches hold half as many calls. */
#define BATCH_ROW_BUDGET 100000
/* Calls queued for a pipelined comm before the connection waits for room (two full batches). */
#define MAX_PENDING (2 * KL_SQLCOMM_MAX_BATCH)

typedef struct sqlcomm sqlcomm;
typedef struct call call;

/* One Spark execution in progress, so a close or an interrupt can cancel it. */
typedef struct run_slot {
    kl_spark_exec *exec;
    call *const *calls; /* the calls it answers (borrowed), so an interrupt finds whose it is */
    size_t ncalls;
    struct run_slot *prev, *next;
} run_slot;

/* One comm_msg being answered. */
struct call {
    sqlcomm *sc;
    kl_msg parent;      /* the request's header (and its frame): the reply's parent and topic */
    json_t *request_id; /* echoed back */
    kl_sqlbind *bind;
    int64_t sent_us;   /* the request's header.date (client clock); KL_ISO8601_NONE: none */
    bool interrupted;  /* an interrupt_request sent after it arrived: answer, never run */
    run_slot slot;     /* while it runs alone */
    struct call *next; /* in the comm's queue */
    struct call *live_prev, *live_next; /* in the comm's list of every call it holds */
};

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
    bool reset_spark;  /* the server lost the session: replace the client before the next call */
    kl_sqlbatch batch; /* the statement's batched form; batch.ok false: never batched */
    bool batch_off;    /* batching failed for this comm: its calls run one at a time */
    bool batch_proven; /* a batch of this comm has succeeded */
    bool probing;      /* the comm's first batch runs: the other runners take single calls */
    int suspended;     /* a failed batch's calls are running one by one: no batch meanwhile */
    size_t batch_max;  /* calls one batch may hold: KL_SQLCOMM_MAX_BATCH, less after overflows */
    call *queue, *queue_tail; /* pipelined calls waiting for a runner, in arrival order */
    size_t queued;
    run_slot *running;    /* Spark executions in progress */
    int executing;        /* ... how many */
    int inflight;         /* a call running in the connection's coroutine, or runners (pipelined) */
    kl_coro *slot_waiter; /* the connection's coroutine, waiting for room in the queue */
    kl_coro *close_waiter; /* on_close, waiting for the calls to end */
    /* Every call from its comm_msg to its answer, wherever it waits (for room, in the queue, in a
     * runner's hands, running), so that an interrupt reaches all of them. */
    call *live;
    /* The client's clock at its last interrupt_request: its later comm_msgs dated no later were
     * sent before it (and may still sit in the connection's request queue). KL_ISO8601_NONE:
     * none pending. */
    int64_t cut_us;
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

/* Pool: decodes the Arrow batches of resp into t. The stream views borrow the responses, which
 * must outlive t (kl_table_add_ipc would copy them). */
static int add_batches(kl_table *t, Spark__Connect__ExecutePlanResponse **resp, size_t n,
                       char err[KL_RENDER_ERRLEN]) {
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const ProtobufCBinaryData *d = &resp[i]->arrow_batch->data;
        kl_arrow_stream *s;
        char aerr[KL_ARROW_ERRLEN];
        rc = kl_arrow_decode(d->data, d->len, NULL, &s, aerr);
        if (rc != 0)
            snprintf(err, KL_RENDER_ERRLEN, "%s", aerr);
        else
            rc = kl_table_add(t, s, err);
    }
    return rc;
}

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

/* Pool: decodes the batches (borrowing the responses, which outlive the job) and writes the rows
 * in the comm's format. The loop thread never decodes Arrow, however small the result. */
static void encode_work(void *arg) {
    encode_job *j = arg;
    kl_table *t = kl_table_new(j->limit);
    if (!t) {
        j->rc = -ENOMEM;
        snprintf(j->err, sizeof j->err, "out of memory");
        return;
    }
    j->rc = add_batches(t, j->resp, j->n, j->err);
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

/* One call's answer, ready to send: JSON columns and rows, or a msgpack document. */
typedef struct answer {
    json_t *columns, *rows;
    kl_render_buf mp;
    int64_t nrows;
    bool truncated;
} answer;

/* Coroutine: sends a's rows as c's reply and releases them. */
static void send_answer(sqlcomm *sc, call *c, answer *a) {
    if (sc->closing) {
        /* nobody to answer */
    } else if (!sc->msgpack) {
        json_t *data = json_pack("{s:o, s:O, s:O, s:b}", "request_id", request_id_of(c), "columns",
                                 a->columns ? a->columns : json_array(), "rows",
                                 a->rows ? a->rows : json_array(), "truncated", a->truncated);
        kl_comm_send(sc->k, sc->comm, &c->parent, data, NULL);
    } else {
        size_t len = 0;
        char *bytes_out = kl_render_buf_take(&a->mp, &len);
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
                                     (json_int_t)a->nrows, "truncated", a->truncated);
            kl_comm_send(sc->k, sc->comm, &c->parent, data, &bufs);
        }
        kl_frames_clear(&bufs);
    }
    json_decref(a->columns);
    json_decref(a->rows);
    kl_render_buf_free(&a->mp);
    a->columns = a->rows = NULL;
}

/* Coroutine: the rows of a finished call as its reply. */
static void send_rows(sqlcomm *sc, call *c, Spark__Connect__ExecutePlanResponse **resp, size_t n) {
    encode_job j = {.resp = resp, .n = n, .limit = sc->limit, .msgpack = sc->msgpack};
    kl_render_buf_init(&j.mp);
    kl_pool_run(sc->k->pool, encode_work, &j);
    if (j.rc != 0) {
        send_error(sc, &c->parent, request_id_of(c), "RenderError", j.err, NULL);
        json_decref(j.columns);
        json_decref(j.rows);
        kl_render_buf_free(&j.mp);
        return;
    }
    answer a = {.columns = j.columns,
                .rows = j.rows,
                .mp = j.mp,
                .nrows = j.nrows,
                .truncated = j.truncated};
    send_answer(sc, c, &a);
}

/* ---- the Spark session -------------------------------------------------------------------- */

static void cancel_call(void *arg) {
    run_slot *slot = arg;
    if (slot->exec) kl_spark_exec_cancel(slot->exec);
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

/* ---- executing ---------------------------------------------------------------------------- */

static void free_responses(Spark__Connect__ExecutePlanResponse **v, size_t n) {
    for (size_t i = 0; i < n; i++) spark__connect__execute_plan_response__free_unpacked(v[i], NULL);
    free(v);
}

/* What one execution returned: its Arrow batches, or how it failed. */
typedef struct exec_out {
    Spark__Connect__ExecutePlanResponse **resp; /* Arrow batches, in order (free_responses) */
    size_t n;
    kl_grpc_status st; /* a failure (kl_grpc_status_clear) */
} exec_out;

/* True when an interrupt reached a call the execution answers: it must stop (or not start). */
static bool slot_interrupted(const run_slot *slot) {
    for (size_t i = 0; i < slot->ncalls; i++)
        if (slot->calls[i]->interrupted) return true;
    return false;
}

static void slot_enter(sqlcomm *sc, run_slot *slot) {
    slot->prev = NULL;
    slot->next = sc->running;
    if (sc->running) sc->running->prev = slot;
    sc->running = slot;
    sc->executing++;
}

static void slot_leave(sqlcomm *sc, run_slot *slot) {
    if (slot->prev)
        slot->prev->next = slot->next;
    else
        sc->running = slot->next;
    if (slot->next) slot->next->prev = slot->prev;
    slot->prev = slot->next = NULL;
    sc->executing--;
}

/* Coroutine: one ExecutePlan of rel, not reattachable (a short call needs no ReleaseExecute
 * afterwards), retried while a restarting server refuses it, in a new session with the same id
 * when the server lost ours. 0 with out->resp, -1 with out->st (a cancelled call has status
 * CANCELLED; nothing more is to be done once sc->closing), or -ENOMEM. */
static int execute(sqlcomm *sc, Spark__Connect__Relation *rel, int32_t limit, run_slot *slot,
                   exec_out *out) {
    kl_spark_exec_opts opts = {.reattachable = false};
    uint64_t wait_ms = 50;
    bool reset_done = false;
    memset(out, 0, sizeof *out);
    for (int attempt = 0;; attempt++) {
        Spark__Connect__ExecutePlanResponse **resp = NULL, *r;
        size_t n = 0, cap = 0, got = 0;
        kl_grpc_status st = {0};
        if (slot_interrupted(slot)) {
            out->st.code = KL_GRPC_CANCELLED;
            return -1;
        }
        if (!sc->spark) {
            st.code = KL_GRPC_UNAVAILABLE;
            st.message = strdup("no Spark session: the server lost it and a new one failed");
            out->st = st;
            return -1;
        }
        slot->exec = kl_spark_client_execute_relation(sc->spark, rel, limit, &opts);
        slot_enter(sc, slot);
        int rc = -1;
        bool nomem = !slot->exec;
        while (slot->exec && (rc = kl_spark_exec_next(slot->exec, &r, &st)) == 1) {
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
        if (rc < 0 && st.code == KL_GRPC_CANCELLED && slot->exec) {
            /* Cancelling the RPC leaves the server's job running (and holding task slots the
             * next calls need): stop the operation itself. */
            char *op = strdup(kl_spark_exec_operation_id(slot->exec));
            kl_spark_exec_free(slot->exec);
            slot->exec = NULL;
            kl_grpc_call_opts o = {.timeout_ms = 5000};
            kl_grpc_status ist = {0};
            if (op && sc->spark) kl_spark_client_interrupt(sc->spark, op, &o, &ist);
            kl_grpc_status_clear(&ist);
            free(op);
        }
        if (slot->exec) kl_spark_exec_free(slot->exec);
        slot->exec = NULL;
        slot_leave(sc, slot);
        if (nomem) {
            kl_grpc_status_clear(&st);
            free_responses(resp, n);
            return -ENOMEM;
        }
        if (rc == 0) {
            kl_grpc_status_clear(&st);
            out->resp = resp;
            out->n = n;
            return 0;
        }
        free_responses(resp, n);
        if (sc->closing) {
            out->st = st;
            return -1;
        }
        kl_spark_error e;
        kl_spark_error_init(&e);
        kl_spark_error_from_status(&e, (int)st.code, st.details, st.details_bin,
                                   st.details_bin_len);
        bool lost = session_lost(&e);
        bool retry = got == 0 && attempt < RETRIES && kl_spark_error_retryable(&e);
        kl_spark_error_free(&e);
        if (lost && !reset_done && sc->executing == 0 && sc->inflight == 1) {
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
            out->st = st;
            return -1;
        }
        KL_INFO("sqlcomm", "retrying after %s: %s", kl_grpc_code_name(st.code),
                st.details ? st.details : "");
        kl_grpc_status_clear(&st);
        kl_loop_sleep(sc->k->loop, wait_ms);
        wait_ms *= 4;
        if (sc->closing || slot_interrupted(slot)) {
            out->st.code = KL_GRPC_CANCELLED;
            return -1;
        }
    }
}

/* Coroutine: the answer of a call stopped by an interrupt_request: the name a cell's interrupt
 * has, so a client handles both alike. */
static void send_interrupted(sqlcomm *sc, const kl_msg *parent, json_t *request_id, bool ran) {
    send_error(sc, parent, request_id, "KeyboardInterrupt",
               ran ? "the call was interrupted" : "the call was interrupted before it ran", NULL);
}

/* Coroutine: a failed execution as c's reply. */
static void send_failure(sqlcomm *sc, call *c, const kl_grpc_status *st) {
    if (sc->closing) return;
    if (st->code == KL_GRPC_CANCELLED)
        send_error(sc, &c->parent, request_id_of(c), "KeyboardInterrupt",
                   "the call was interrupted", NULL);
    else
        send_spark_error(sc, c, st);
}

/* How a call ended: its rows, an error of its own, or stopped by an interrupt (which says
 * nothing of whether it would have worked). */
typedef enum { RUN_OK, RUN_FAILED, RUN_STOPPED } run_rc;

/* Coroutine: c run alone, then its reply. */
static run_rc run_single(call *c) {
    sqlcomm *sc = c->sc;
    if (c->interrupted) {
        send_interrupted(sc, &c->parent, request_id_of(c), false);
        return RUN_STOPPED;
    }
    int32_t limit = sc->limit >= 0 ? (int32_t)sc->limit + 1 : -1; /* one more: was it cut? */
    exec_out out;
    c->slot.calls = &c;
    c->slot.ncalls = 1;
    int rc = execute(sc, kl_sqlbind_relation(c->bind), limit, &c->slot, &out);
    c->slot.calls = NULL;
    c->slot.ncalls = 0;
    if (rc == 0) {
        send_rows(sc, c, out.resp, out.n);
        free_responses(out.resp, out.n);
        return RUN_OK;
    }
    bool stopped = rc != -ENOMEM && out.st.code == KL_GRPC_CANCELLED;
    if (rc == -ENOMEM)
        send_error(sc, &c->parent, request_id_of(c), "MemoryError", "out of memory", NULL);
    else
        send_failure(sc, c, &out.st);
    kl_grpc_status_clear(&out.st);
    return stopped ? RUN_STOPPED : RUN_FAILED;
}

/* ---- batches ------------------------------------------------------------------------------ */

/* Decoding a batched result and cutting it into the calls' answers (pool). */
typedef struct batch_job {
    Spark__Connect__ExecutePlanResponse **resp;
    size_t nresp;
    size_t ncalls;
    int64_t limit, budget;
    bool msgpack;
    answer *answers; /* ncalls, filled on success */
    bool unfit;      /* the result cannot answer the calls as they would be alone */
    bool overflow;   /* ... because it reached the row budget */
    const char *why; /* ... why (static text) */
    int rc;
    char err[KL_RENDER_ERRLEN];
} batch_job;

static void batch_work(void *arg) {
    batch_job *j = arg;
    kl_table *t = kl_table_new(-1);
    if (!t) {
        j->rc = -ENOMEM;
        return;
    }
    j->rc = add_batches(t, j->resp, j->nresp, j->err);
    if (j->rc == 0 && !kl_sqlbatch_schema_ok(kl_table_schema(t))) {
        j->unfit = true;
        j->why = "a result column is named after a parameter (name it with AS)";
    } else if (j->rc == 0 && kl_table_rows_seen(t) >= j->budget) {
        j->unfit = j->overflow = true;
        j->why = "the calls return too many rows to share a query";
    }
    if (j->rc != 0 || j->unfit) {
        kl_table_free(t);
        return;
    }
    kl_rows_options o = {.max_rows = -1, .time_zone = NULL};
    bool *trunc = calloc(j->ncalls, sizeof *trunc);
    int64_t *nrows = calloc(j->ncalls, sizeof *nrows);
    json_t **rows = calloc(j->ncalls, sizeof *rows);
    if (!trunc || !nrows || !rows) {
        j->rc = -ENOMEM;
    } else if (j->msgpack) {
        kl_render_buf all;
        kl_render_buf_init(&all);
        j->rc = kl_rows_msgpack(t, &o, false, &all, j->err);
        if (j->rc == 0) {
            kl_render_buf *out = calloc(j->ncalls, sizeof *out);
            for (size_t i = 0; out && i < j->ncalls; i++) kl_render_buf_init(&out[i]);
            j->rc = out ? kl_sqlbatch_split_msgpack(all.data, all.len, j->ncalls, j->limit, out,
                                                    nrows, trunc)
                        : -ENOMEM;
            for (size_t i = 0; out && i < j->ncalls; i++) {
                j->answers[i].mp = out[i];
                j->answers[i].nrows = nrows[i];
                j->answers[i].truncated = trunc[i];
            }
            free(out);
        }
        kl_render_buf_free(&all);
    } else {
        json_t *cols = kl_rows_columns(t), *all = NULL;
        j->rc = cols ? kl_rows_json(t, &o, &all, j->err) : -ENOMEM;
        if (j->rc == 0) j->rc = json_array_remove(cols, 0) == 0 ? 0 : -EINVAL;
        if (j->rc == 0) j->rc = kl_sqlbatch_split_json(all, j->ncalls, j->limit, rows, trunc);
        for (size_t i = 0; j->rc == 0 && i < j->ncalls; i++) {
            j->answers[i].columns = json_incref(cols);
            j->answers[i].rows = rows[i];
            j->answers[i].truncated = trunc[i];
        }
        json_decref(cols);
    }
    if (j->rc == -ENOMEM) snprintf(j->err, sizeof j->err, "out of memory");
    if (j->rc == -EINVAL && !j->err[0])
        snprintf(j->err, sizeof j->err, "a batched result did not split into its calls");
    free(trunc);
    free(nrows);
    free(rows);
    kl_table_free(t);
}

/* A Spark error that says the query did not analyze (or parse): the batched form is what
 * failed, not one call's values. */
static bool analysis_error(const kl_grpc_status *st) {
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, (int)st->code, st->details, st->details_bin,
                               st->details_bin_len);
    bool yes = (e.sql_state && strncmp(e.sql_state, "42", 2) == 0) ||
               (e.exception && (strstr(e.exception, "AnalysisException") ||
                                strstr(e.exception, "ParseException")));
    kl_spark_error_free(&e);
    return yes;
}

static bool spark_error(const kl_grpc_status *st) {
    kl_spark_error e;
    kl_spark_error_init(&e);
    kl_spark_error_from_status(&e, (int)st->code, st->details, st->details_bin,
                               st->details_bin_len);
    bool yes = e.error_class != NULL;
    kl_spark_error_free(&e);
    return yes;
}

static void batch_off(sqlcomm *sc, const char *why) {
    if (!sc->batch_off)
        KL_INFO("sqlcomm", "comm %s: calls now run one at a time: %s", kl_comm_id(sc->comm), why);
    sc->batch_off = true;
}

/* How the calls of one batch fared, to tell a batch that failed because of a value from one
 * that failed because it was a batch. */
typedef struct batch_tally {
    size_t single_ok, single_failed, stopped;
} batch_tally;

static void tally_add(batch_tally *t, run_rc rc) {
    if (rc == RUN_OK)
        t->single_ok++;
    else if (rc == RUN_FAILED)
        t->single_failed++;
    else
        t->stopped++;
}

/* Coroutine: answers the interrupted calls of calls[0..n) and moves them behind the others,
 * which keep their order. Returns how many others there are (still to run). */
static size_t answer_interrupted(sqlcomm *sc, call **calls, size_t n, bool ran,
                                 batch_tally *tally) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        call *c = calls[i];
        if (c->interrupted) {
            send_interrupted(sc, &c->parent, request_id_of(c), ran);
            tally->stopped++;
            continue;
        }
        calls[i] = calls[kept];
        calls[kept++] = c;
    }
    return kept;
}

static void run_batch(sqlcomm *sc, call **calls, size_t n, batch_tally *tally);

/* Coroutine: calls run alone or as a batch, each answered. */
static void run_part(sqlcomm *sc, call **calls, size_t n, batch_tally *tally) {
    if (n == 0) return;
    if (n == 1 || sc->batch_off || sc->suspended) {
        for (size_t i = 0; i < n && !sc->closing; i++) tally_add(tally, run_single(calls[i]));
    } else {
        run_batch(sc, calls, n, tally);
    }
}

/* Coroutine: calls[0..n) (n > 1, parameters of the same types) as one Spark query, the rows split
 * back into one answer per call, sent in the calls' order. When the query fails for a reason
 * that is not one call's (it does not analyze as a batch), the calls run alone; when it fails
 * while running, the halves run again, so a bad value ends up failing only its own call. */
static void run_batch(sqlcomm *sc, call **calls, size_t n, batch_tally *tally) {
    size_t kept = answer_interrupted(sc, calls, n, false, tally);
    if (kept < n) {
        run_part(sc, calls, kept, tally);
        return;
    }
    kl_sqlbind **binds = calloc(n, sizeof *binds);
    kl_sqlbatch_rel *rel = NULL;
    if (binds) {
        for (size_t i = 0; i < n; i++) binds[i] = calls[i]->bind;
        rel = kl_sqlbatch_relation_new(&sc->batch, &sc->stmt, binds, n);
    }
    if (!rel) {
        free(binds);
        for (size_t i = 0; i < n; i++)
            send_error(sc, &calls[i]->parent, request_id_of(calls[i]), "MemoryError",
                       "out of memory", NULL);
        return;
    }
    KL_DEBUG("sqlcomm", "comm %s: %zu calls in one query", kl_comm_id(sc->comm), n);
    int64_t budget = BATCH_ROW_BUDGET;
    run_slot slot = {.calls = calls, .ncalls = n};
    exec_out out;
    bool probe = !sc->batch_proven && !sc->probing;
    if (probe) sc->probing = true;
    int rc = execute(sc, kl_sqlbatch_relation(rel), (int32_t)budget, &slot, &out);
    if (probe) sc->probing = false;
    kl_sqlbatch_relation_free(rel);
    free(binds);
    if (sc->closing) {
        if (rc == 0) free_responses(out.resp, out.n);
        kl_grpc_status_clear(&out.st);
        return;
    }
    if (rc == -ENOMEM) {
        for (size_t i = 0; i < n; i++)
            send_error(sc, &calls[i]->parent, request_id_of(calls[i]), "MemoryError",
                       "out of memory", NULL);
        return;
    }
    if (rc < 0) {
        bool too_big = out.st.code == KL_GRPC_RESOURCE_EXHAUSTED && !spark_error(&out.st);
        if (out.st.code == KL_GRPC_CANCELLED && slot_interrupted(&slot)) {
            /* An interrupt_request stopped the query for the calls sent before it; any sent
             * after it (they raced the interrupt to the kernel) still get their rows. */
            kept = answer_interrupted(sc, calls, n, true, tally);
            if (!sc->closing) run_part(sc, calls, kept, tally);
        } else if (!too_big && (out.st.code == KL_GRPC_CANCELLED || !spark_error(&out.st))) {
            /* An interrupt, or the transport failed (after its retries): every call of the batch
             * shares the fate it would have had alone. */
            for (size_t i = 0; i < n; i++) send_failure(sc, calls[i], &out.st);
        } else if (!too_big && analysis_error(&out.st)) {
            batch_tally t = {0};
            KL_DEBUG("sqlcomm", "comm %s: a batch of %zu did not analyze: %s", kl_comm_id(sc->comm),
                     n, out.st.details ? out.st.details : "");
            /* No more batches while the calls show whose fault it was. */
            sc->suspended++;
            for (size_t i = 0; i < n && !sc->closing; i++) tally_add(&t, run_single(calls[i]));
            /* A call that works alone proves the batched form is what Spark refused; when every
             * call fails alone too, the statement itself fails (a missing table), and batching
             * goes on once it is fixed. */
            sc->suspended--;
            if (t.single_ok) batch_off(sc, "the statement does not analyze as a batch");
            tally->single_ok += t.single_ok;
            tally->single_failed += t.single_failed;
            tally->stopped += t.stopped;
        } else {
            /* A value made the query fail while it ran (or the request was too large): halves
             * again, down to the call that fails alone. */
            size_t failed = tally->single_failed, stopped = tally->stopped;
            size_t half = n / 2;
            run_part(sc, calls, half, tally);
            if (!sc->closing) run_part(sc, calls + half, n - half, tally);
            /* (A call stopped by an interrupt proves nothing either way.) */
            if (!sc->closing && tally->single_failed == failed && tally->stopped == stopped)
                batch_off(sc, "a batch failed while each of its calls works alone");
        }
        kl_grpc_status_clear(&out.st);
        return;
    }
    batch_job j = {.resp = out.resp,
                   .nresp = out.n,
                   .ncalls = n,
                   .limit = sc->limit,
                   .budget = budget,
                   .msgpack = sc->msgpack};
    j.answers = calloc(n, sizeof *j.answers);
    for (size_t i = 0; j.answers && i < n; i++) kl_render_buf_init(&j.answers[i].mp);
    if (!j.answers)
        j.rc = -ENOMEM;
    else
        kl_pool_run(sc->k->pool, batch_work, &j);
    free_responses(out.resp, out.n);
    if (j.rc == 0 && j.overflow) {
        /* Many rows per call: these calls alone, and batches of half as many from now on
         * (at most ten such wasted queries before the comm stops batching). */
        if (n / 2 < sc->batch_max) sc->batch_max = n / 2;
        if (sc->batch_max < 2) batch_off(sc, j.why);
        KL_DEBUG("sqlcomm", "comm %s: %zu calls reached %d rows; batches of %zu at most now",
                 kl_comm_id(sc->comm), n, BATCH_ROW_BUDGET, sc->batch_max);
        sc->suspended++;
        run_part(sc, calls, n, tally);
        sc->suspended--;
    } else if (j.rc == 0 && j.unfit) {
        batch_off(sc, j.why);
        run_part(sc, calls, n, tally);
    } else if (j.rc != 0 && j.rc != -ENOMEM) {
        /* A value the batch could not render: alone, only its own call says so. */
        KL_DEBUG("sqlcomm", "comm %s: a batched result did not render: %s", kl_comm_id(sc->comm),
                 j.err);
        sc->suspended++;
        run_part(sc, calls, n, tally);
        sc->suspended--;
    } else {
        if (j.rc == 0) sc->batch_proven = true;
        for (size_t i = 0; i < n; i++) {
            if (j.rc == 0)
                send_answer(sc, calls[i], &j.answers[i]);
            else
                send_error(sc, &calls[i]->parent, request_id_of(calls[i]), "MemoryError",
                           "out of memory", NULL);
        }
    }
    for (size_t i = 0; j.answers && i < n; i++) {
        json_decref(j.answers[i].columns);
        json_decref(j.answers[i].rows);
        kl_render_buf_free(&j.answers[i].mp);
    }
    free(j.answers);
}

/* ---- calls and runners -------------------------------------------------------------------- */

static void sqlcomm_free(sqlcomm *sc) {
    kl_spark_client_free(sc->spark);
    kl_sqlbatch_free(&sc->batch);
    kl_sqlstmt_free(&sc->stmt);
    free(sc->session);
    free(sc);
}

/* The request's header as the parent of its answer, with the frame that spells it shared rather
 * than copied: the answer then carries those bytes as its parent_header instead of writing the
 * header out again (a good part of a pipelined call's cost). */
static void keep_parent(kl_msg *dst, const kl_msg *msg) {
    kl_msg_init(dst);
    dst->header = json_incref(msg->header);
    if (msg->header_text_of != msg->header || msg->header_text.n != 1) return;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_copy(&m, &msg->header_text.v[0]) == 0 &&
        kl_frames_add_msg(&dst->header_text, &m) == 0)
        dst->header_text_of =
            json_incref(dst->header); /* a reference held: kl_msg_clear drops it */
    zmq_msg_close(&m);
}

static void live_add(sqlcomm *sc, call *c) {
    c->live_prev = NULL;
    c->live_next = sc->live;
    if (sc->live) sc->live->live_prev = c;
    sc->live = c;
}

static void call_free(call *c) {
    sqlcomm *sc = c->sc;
    if (c->live_prev)
        c->live_prev->live_next = c->live_next;
    else if (sc->live == c)
        sc->live = c->live_next;
    if (c->live_next) c->live_next->live_prev = c->live_prev;
    kl_msg_clear(&c->parent);
    json_decref(c->request_id);
    kl_sqlbind_free(c->bind);
    free(c);
}

/* A unit of work ended (a call in the connection's coroutine, or a runner): a close waiting for
 * the comm's work may go on, and the last one of an orphaned comm frees it. */
static void work_done(sqlcomm *sc) {
    sc->inflight--;
    kl_coro *waiters[] = {sc->slot_waiter, sc->close_waiter};
    sc->slot_waiter = sc->close_waiter = NULL;
    for (size_t i = 0; i < 2; i++)
        if (waiters[i]) kl_loop_wake(sc->k->loop, waiters[i]);
    if (sc->orphaned && sc->inflight == 0) sqlcomm_free(sc);
}

/* Takes the next calls to run from the queue: the first one and, when the comm batches, every
 * later one whose parameters have the same types, up to a full batch, in arrival order. */
static size_t take_calls(sqlcomm *sc, call **out) {
    call *head = sc->queue;
    /* Until a batch has worked, one runner tries it and the others go on one call at a time, so
     * a statement that does not analyze as a batch is tried once. */
    bool batching =
        sc->batch.ok && !sc->batch_off && !sc->suspended && (sc->batch_proven || !sc->probing);
    size_t n = 0, max = batching ? sc->batch_max : 1;
    call **link = &sc->queue, *kept = NULL, *c = sc->queue;
    while (c && n < max) {
        call *next = c->next;
        if (c == head || kl_sqlbatch_same_types(&sc->stmt, head->bind, c->bind)) {
            *link = next;
            c->next = NULL;
            out[n++] = c;
            sc->queued--;
        } else {
            kept = c;
            link = &c->next;
        }
        c = next;
    }
    /* Scanned to the end: the last call left behind is the new tail. */
    if (!c) sc->queue_tail = kept;
    if (sc->slot_waiter) {
        kl_coro *w = sc->slot_waiter;
        sc->slot_waiter = NULL;
        kl_loop_wake(sc->k->loop, w);
    }
    return n;
}

/* Coroutine: works through a pipelined comm's queue, a batch at a time, until it is empty. */
static void runner_main(void *arg) {
    sqlcomm *sc = arg;
    call **calls = malloc(KL_SQLCOMM_MAX_BATCH * sizeof *calls);
    while (!calls && !sc->closing && sc->queue) {
        call *c = sc->queue;
        sc->queue = c->next;
        if (!sc->queue) sc->queue_tail = NULL;
        sc->queued--;
        send_error(sc, &c->parent, request_id_of(c), "MemoryError", "out of memory", NULL);
        call_free(c);
    }
    while (calls && !sc->closing && sc->queue) {
        size_t n = take_calls(sc, calls);
        batch_tally tally = {0};
        run_part(sc, calls, n, &tally);
        for (size_t i = 0; i < n; i++) call_free(calls[i]);
    }
    free(calls);
    work_done(sc);
}

static void drop_queue(sqlcomm *sc) {
    for (call *c = sc->queue, *next; c; c = next) {
        next = c->next;
        call_free(c);
    }
    sc->queue = sc->queue_tail = NULL;
    sc->queued = 0;
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

/* ---- interrupts --------------------------------------------------------------------------- */

/* When the client sent msg, by its own clock; KL_ISO8601_NONE when its header has no date. */
static int64_t sent_time(const kl_msg *msg) {
    return kl_iso8601_to_us(json_string_value(json_object_get(msg->header, "date")));
}

/* Stops the calls of sc that were sent before an interrupt_request dated cut_us (all that sc
 * holds, with KL_ISO8601_NONE): they are marked, to be answered KeyboardInterrupt by whoever
 * holds them (never run), and Spark executions answering any of them are cancelled (their
 * coroutines then interrupt the operation on the server). */
static void interrupt_comm(sqlcomm *sc, int64_t cut_us) {
    size_t n = 0;
    for (call *c = sc->live; c; c = c->live_next) {
        if (c->interrupted ||
            (cut_us != KL_ISO8601_NONE && c->sent_us != KL_ISO8601_NONE && c->sent_us > cut_us))
            continue;
        c->interrupted = true;
        n++;
    }
    for (run_slot *r = sc->running; r; r = r->next)
        if (r->exec && slot_interrupted(r)) kl_spark_exec_cancel(r->exec);
    if (n) KL_INFO("sqlcomm", "comm %s: %zu calls interrupted", kl_comm_id(sc->comm), n);
}

typedef struct busy_scan {
    const char *session;
    bool busy;
} busy_scan;

static void scan_busy(const char *key, void *value, void *arg) {
    (void)key;
    busy_scan *b = arg;
    kl_tenant *t = value;
    if (t->busy && strcmp(t->session, b->session) == 0) b->busy = true;
}

/* An interrupt as it is handed to each kindling.sql comm. */
typedef struct interrupt_scan {
    const char *session; /* the interrupting connection's; NULL for SIGINT */
    int64_t cut_us;      /* its header's date, or KL_ISO8601_NONE */
    bool work;           /* its comms hold calls */
    bool everyone;       /* the other connections' comms stop too */
} interrupt_scan;

static sqlcomm *live_sqlcomm(kl_comm *comm) {
    sqlcomm *sc = kl_comm_user(comm);
    return sc && !sc->closing ? sc : NULL;
}

static bool owned_by(const sqlcomm *sc, const char *session) {
    return session && strcmp(sc->session, session) == 0;
}

/* First pass: do the connection's own comms hold calls, and when did its client interrupt. */
static void note_interrupt(kl_comm *comm, void *arg) {
    interrupt_scan *s = arg;
    sqlcomm *sc = live_sqlcomm(comm);
    if (!sc || !owned_by(sc, s->session)) return;
    if (s->cut_us != KL_ISO8601_NONE && (sc->cut_us == KL_ISO8601_NONE || s->cut_us > sc->cut_us))
        sc->cut_us = s->cut_us;
    if (sc->live) s->work = true;
}

static void apply_interrupt(kl_comm *comm, void *arg) {
    interrupt_scan *s = arg;
    sqlcomm *sc = live_sqlcomm(comm);
    if (!sc) return;
    if (owned_by(sc, s->session))
        interrupt_comm(sc, s->cut_us);
    else if (s->everyone)
        interrupt_comm(sc, KL_ISO8601_NONE);
}

bool kl_sqlcomm_interrupt(kl_kernel *k, const kl_msg *msg) {
    interrupt_scan s = {kl_msg_session(msg), sent_time(msg), false, false};
    kl_comm_foreach(k->comms, KL_SQLCOMM_TARGET, note_interrupt, &s);
    busy_scan b = {s.session ? s.session : "", false};
    if (s.session) kl_strmap_foreach(k->tenants, scan_busy, &b);
    /* The kernel's rule for cells: a connection that runs nothing here gets an interrupt on behalf
     * of others (a notebook server's), so everyone's work stops; only by arrival then, since
     * another client's clock says nothing of when these calls were sent. */
    s.everyone = !s.work && !b.busy;
    kl_comm_foreach(k->comms, KL_SQLCOMM_TARGET, apply_interrupt, &s);
    return s.work && !b.busy;
}

void kl_sqlcomm_interrupt_all(kl_kernel *k) {
    interrupt_scan s = {NULL, KL_ISO8601_NONE, false, true};
    kl_comm_foreach(k->comms, KL_SQLCOMM_TARGET, apply_interrupt, &s);
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
    sc->batch_max = KL_SQLCOMM_MAX_BATCH;
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
    if (kl_sqlbatch_prepare(&sc->stmt, &sc->batch) != 0) return "out of memory";
    return NULL;
}

static int sql_open(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data) {
    sqlcomm *sc = calloc(1, sizeof *sc);
    if (!sc) return -1;
    sc->k = k;
    sc->comm = comm;
    sc->cut_us = KL_ISO8601_NONE;
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
    KL_DEBUG("sqlcomm", "comm %s: %zu named, %zu positional parameters, %s, limit %lld, %s%s",
             kl_comm_id(comm), sc->stmt.n_names, sc->stmt.n_positional,
             sc->msgpack ? "msgpack" : "json", (long long)sc->limit,
             sc->batch.ok ? "batched when pipelined" : "never batched: ",
             sc->batch.ok ? "" : sc->batch.why);
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
    int64_t sent = sent_time(msg);
    if (sent != KL_ISO8601_NONE && sc->cut_us != KL_ISO8601_NONE) {
        if (sent <= sc->cut_us) {
            /* Sent before the connection's interrupt_request, though handled after it. */
            send_interrupted(sc, msg, json_incref(rid), false);
            return;
        }
        /* A client's requests arrive in the order it sent them: no later one is older. */
        sc->cut_us = KL_ISO8601_NONE;
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
    call *c = calloc(1, sizeof *c);
    if (!c) {
        kl_sqlbind_free(bind);
        send_error(sc, msg, json_incref(rid), "MemoryError", "out of memory", NULL);
        return;
    }
    c->sc = sc;
    c->bind = bind;
    c->request_id = rid ? json_incref(rid) : NULL;
    c->sent_us = sent;
    keep_parent(&c->parent, msg);
    live_add(sc, c); /* from now on an interrupt reaches it */
    bool pipelined = sc->concurrency > 1;
    /* Room in the queue first, and nothing running when the client must be replaced. */
    while (!sc->closing && ((pipelined ? sc->queued >= MAX_PENDING : sc->inflight > 0) ||
                            (sc->reset_spark && sc->inflight))) {
        sc->slot_waiter = kl_coro_current();
        kl_loop_park(k->loop);
    }
    if (!sc->closing && !c->interrupted && !ensure_client(sc, msg, rid)) {
        call_free(c); /* answered with the error */
        return;
    }
    if (sc->closing || c->interrupted) {
        if (!sc->closing) send_interrupted(sc, &c->parent, request_id_of(c), false);
        call_free(c);
        return;
    }
    if (pipelined) {
        /* Answered by request_id, possibly after this request's idle: queued for a runner, which
         * takes every call waiting by then that can share its query. */
        if (sc->queue_tail)
            sc->queue_tail->next = c;
        else
            sc->queue = c;
        sc->queue_tail = c;
        sc->queued++;
        if (sc->inflight < sc->concurrency) {
            sc->inflight++;
            if (!kl_loop_spawn(k->loop, runner_main, sc, 0)) {
                sc->inflight--;
                if (sc->inflight == 0) {
                    /* No runner will come for the queue. */
                    call *q = sc->queue;
                    sc->queue = sc->queue_tail = NULL;
                    sc->queued = 0;
                    for (call *next; q; q = next) {
                        next = q->next;
                        send_error(sc, &q->parent, request_id_of(q), "MemoryError",
                                   "could not start the call", NULL);
                        call_free(q);
                    }
                }
            }
        }
        return;
    }
    /* In the connection's coroutine: an interrupt_request of the connection cancels the call. */
    sc->inflight++;
    find_ctx f = {kl_coro_current(), NULL};
    kl_strmap_foreach(k->tenants, find_tenant, &f);
    if (f.t) {
        f.t->interrupt_hook = cancel_call;
        f.t->interrupt_arg = &c->slot;
    }
    run_single(c);
    if (f.t) {
        f.t->interrupt_hook = NULL;
        f.t->interrupt_arg = NULL;
    }
    call_free(c);
    work_done(sc);
}

static void sql_close(kl_kernel *k, kl_comm *comm, const kl_msg *msg, json_t *data) {
    (void)msg;
    (void)data;
    sqlcomm *sc = kl_comm_user(comm);
    if (!sc) return;
    kl_comm_set_user(comm, NULL);
    sc->closing = true;
    drop_queue(sc);
    if (sc->inflight > 0 && kl_coro_current()) {
        /* Stop the running calls on the server too, and wait for their coroutines to see it. */
        for (run_slot *r = sc->running; r; r = r->next)
            if (r->exec) kl_spark_exec_cancel(r->exec);
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
