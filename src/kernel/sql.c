#include "kernel/sql.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "kernel/catalog.h"
#include "kernel/cellparam.h"
#include "kernel/progress.h"
#include "kernel/metrics.h"
#include "kernel/service.h"
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
/* A result stream the server closed after at least this long was its stream deadline at work,
 * not a failure. */
#define STREAM_MIN_LIFE_NS (1000ull * 1000000ull)

/* %connect gives up on an endpoint that does not answer its first call within this time. */
#define CONNECT_TIMEOUT_MS 15000

/* A ReleaseExecute normally answers within a millisecond; one that takes longer is given up
 * (the server drops an operation nobody is attached to after 5 minutes anyway). Also how long a
 * shutdown may wait for the releases still in flight, as for ReleaseSession. */
#define RELEASE_TIMEOUT_MS 2000

typedef struct kl_tenant_remote kl_tenant_remote;

/* One ReleaseExecute, sent and waited for by a coroutine of its own, so that no cell waits a
 * round trip for it and releases run concurrently. */
typedef struct release_job release_job;
struct release_job {
    kl_sql *s;
    kl_spark_release *r;
    /* The %connect endpoint whose channel the release goes to, held while the job lives (a
     * switch or a closing connection would free the channel); NULL: the kernel's channel. */
    kl_tenant_remote *tr;
    release_job *prev, *next;
};

struct kl_sql {
    kl_kernel *k;
    int64_t display_limit;
    char *config_error; /* set when no endpoint can ever work (bad URL) */
    kl_sc_remote remote;
    bool local;
    kl_spark_local *local_server;
    kl_grpc *grpc;
    kl_grpc_channel *chan;
    char endpoint[512];    /* redacted, for messages */
    release_job *releases; /* in flight */
    kl_coro *drain_waiter; /* kl_sql_shutdown, woken as the last release ends */
};

/* A connection's own endpoint, chosen with %connect. */
struct kl_tenant_remote {
    int refs;              /* the tenant's, and one per release_job in flight on chan */
    kl_sc_remote remote;   /* the URL's parts; a token is wiped before it is freed */
    kl_grpc_channel *chan; /* NULL after `%connect local`: the kernel's channel */
    char endpoint[512];    /* redacted, for messages */
    /* A fresh session on every switch: the previous one may have been released on this very
     * server, and Spark refuses to reopen a released session id. */
    char session_id[KL_UUID_STRLEN];
};

/* Drops a reference; the last one frees. */
static void tenant_remote_free(kl_tenant_remote *tr) {
    if (!tr || --tr->refs > 0) return;
    if (tr->chan) kl_grpc_channel_free(tr->chan);
    if (tr->remote.token) explicit_bzero(tr->remote.token, strlen(tr->remote.token));
    kl_sc_remote_free(&tr->remote);
    free(tr);
}

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
        o.on_change = kl_service_local_spark_changed;
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

/* Coroutine. gRPC starts with the first SQL cell, not with the kernel: its initialisation costs
 * start-up time and resident memory that a kernel used only for magics never needs. */
static kl_grpc_channel *open_channel(kl_sql *s, const kl_sc_remote *r, char *err, size_t errlen) {
    /* Binding the library reads ~60 files: on the pool, not on the loop thread. */
    if (!s->grpc && kl_grpc_load_on(s->k->pool, err, errlen) != 0) return NULL;
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

/* Coroutine: the channel this connection's statements use: its own after %connect, else the
 * kernel's (waiting for the embedded server on first use). NULL with the error recorded. */
static kl_grpc_channel *tenant_channel(kl_magic_ctx *c) {
    kl_tenant_remote *tr = c->t->remote;
    if (tr && tr->chan) return tr->chan;
    return channel(c->k->sql, c);
}

/* The channel tenant_channel returned before; never waits. */
static kl_grpc_channel *current_channel(kl_magic_ctx *c) {
    kl_tenant_remote *tr = c->t->remote;
    return tr && tr->chan ? tr->chan : c->k->sql->chan;
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

/* ---- parameters --------------------------------------------------------------------------- */

static void free_param(const char *key, void *value, void *arg) {
    (void)key;
    (void)arg;
    free(value);
}

/* Where a statement's parameters come from: the cell's (%%sql --param) before the
 * connection's (%set). */
typedef struct param_source {
    const kl_strmap *cell, *conn;
} param_source;

static const char *param_text(const param_source *ps, const char *name) {
    const char *v = ps->cell ? kl_strmap_get(ps->cell, name) : NULL;
    if (!v && ps->conn) v = kl_strmap_get(ps->conn, name);
    return v;
}

static bool param_known(const char *name, size_t len, void *arg) {
    char key[256];
    if (len >= sizeof key) return false;
    memcpy(key, name, len);
    key[len] = '\0';
    return param_text(arg, key) != NULL;
}

/* One named argument; the two map entries (4.0's named_arguments of expressions and 3.5's args
 * of literals) share its literal. */
typedef struct arg_slot {
    Spark__Connect__SqlCommand__NamedArgumentsEntry named;
    Spark__Connect__SqlCommand__ArgsEntry lit_entry;
    Spark__Connect__Expression expr;
    Spark__Connect__Expression__Literal lit;
    kl_param_value value;
    char *name;
} arg_slot;

typedef struct bound_args {
    arg_slot **slots;
    Spark__Connect__SqlCommand__NamedArgumentsEntry **named;
    Spark__Connect__SqlCommand__ArgsEntry **lits;
    size_t n, cap;
    char **unbound; /* names used but set nowhere, for the error's hint */
    size_t nunbound;
    bool oom;
    const param_source *ps;
} bound_args;

static bool seen_name(char **names, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return true;
    return false;
}

static bool already_bound(const bound_args *b, const char *name) {
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->slots[i]->name, name) == 0) return true;
    return false;
}

static void add_unbound(bound_args *b, char *name) {
    if (seen_name(b->unbound, b->nunbound, name)) {
        free(name);
        return;
    }
    char **v = realloc(b->unbound, (b->nunbound + 1) * sizeof *v);
    if (!v) {
        free(name);
        b->oom = true;
        return;
    }
    b->unbound = v;
    b->unbound[b->nunbound++] = name;
}

static void fill_literal(arg_slot *a) {
    Spark__Connect__Expression__Literal *l = &a->lit;
    spark__connect__expression__literal__init(l);
    switch (a->value.kind) {
    case KL_PARAM_LONG:
        l->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_LONG;
        l->long_ = a->value.l;
        break;
    case KL_PARAM_DOUBLE:
        l->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_DOUBLE;
        l->double_ = a->value.d;
        break;
    case KL_PARAM_BOOLEAN:
        l->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_BOOLEAN;
        l->boolean = a->value.b;
        break;
    case KL_PARAM_STRING:
        l->literal_type_case = SPARK__CONNECT__EXPRESSION__LITERAL__LITERAL_TYPE_STRING;
        l->string = a->value.s;
        break;
    }
    spark__connect__expression__init(&a->expr);
    a->expr.expr_type_case = SPARK__CONNECT__EXPRESSION__EXPR_TYPE_LITERAL;
    a->expr.literal = l;
    spark__connect__sql_command__named_arguments_entry__init(&a->named);
    a->named.key = a->name;
    a->named.value = &a->expr;
    spark__connect__sql_command__args_entry__init(&a->lit_entry);
    a->lit_entry.key = a->name;
    a->lit_entry.value = l;
}

static void bind_marker(const char *name, size_t len, void *arg) {
    bound_args *b = arg;
    if (b->oom) return;
    char *key = strndup(name, len);
    if (!key) {
        b->oom = true;
        return;
    }
    if (already_bound(b, key)) {
        free(key);
        return;
    }
    const char *text = param_text(b->ps, key);
    if (!text) {
        add_unbound(b, key);
        return;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        arg_slot **slots = realloc(b->slots, cap * sizeof *slots);
        if (slots) b->slots = slots;
        void *named = slots ? realloc(b->named, cap * sizeof *b->named) : NULL;
        if (named) b->named = named;
        void *lits = named ? realloc(b->lits, cap * sizeof *b->lits) : NULL;
        if (lits) b->lits = lits;
        if (!lits) {
            free(key);
            b->oom = true;
            return;
        }
        b->cap = cap;
    }
    arg_slot *a = calloc(1, sizeof *a);
    if (!a || kl_cellparam_parse_value(text, &a->value) != 0) {
        free(a);
        free(key);
        b->oom = true;
        return;
    }
    a->name = key;
    fill_literal(a);
    b->slots[b->n] = a;
    b->named[b->n] = &a->named;
    b->lits[b->n] = &a->lit_entry;
    b->n++;
}

/* The parameters stmt uses, as literals; -1 when out of memory. */
static int bind_params(const char *stmt, const param_source *ps, bound_args *b) {
    memset(b, 0, sizeof *b);
    b->ps = ps;
    kl_cellparam_markers(stmt, strlen(stmt), bind_marker, b);
    return b->oom ? -1 : 0;
}

static void bound_args_free(bound_args *b) {
    for (size_t i = 0; i < b->n; i++) {
        kl_cellparam_value_free(&b->slots[i]->value);
        free(b->slots[i]->name);
        free(b->slots[i]);
    }
    for (size_t i = 0; i < b->nunbound; i++) free(b->unbound[i]);
    free(b->slots);
    free(b->named);
    free(b->lits);
    free(b->unbound);
    memset(b, 0, sizeof *b);
}

/* Spark's UNBOUND_SQL_PARAMETER speaks of an API's `args`; say how a notebook sets one. */
static void hint_unbound(kl_magic_ctx *c, const bound_args *b) {
    if (!c->failed || !c->ename || strcmp(c->ename, "UNBOUND_SQL_PARAMETER") != 0 ||
        b->nunbound == 0)
        return;
    char *hint = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&hint, &len);
    if (!f) return;
    fprintf(f, "The statement uses ");
    for (size_t i = 0; i < b->nunbound; i++)
        fprintf(f, "%s:%s", i == 0 ? "" : i + 1 == b->nunbound ? " and " : ", ", b->unbound[i]);
    const char *name = b->unbound[0];
    fprintf(f,
            ", not set as %s: set %s with %%set %s=VALUE (this connection) or %%%%sql --param "
            "%s=VALUE (this cell).",
            b->nunbound == 1 ? "a parameter" : "parameters", b->nunbound == 1 ? "it" : "each", name,
            name);
    fclose(f);
    char *evalue = NULL;
    if (hint && asprintf(&evalue, "%s\n%s", hint, c->evalue ? c->evalue : "") >= 0) {
        free(c->evalue);
        c->evalue = evalue;
    }
    if (hint && c->traceback) json_array_append_new(c->traceback, json_string(hint));
    free(hint);
}

/* ---- live progress ------------------------------------------------------------------------ */

/* The display of one statement's ExecutionProgress: created by the first report of work under
 * way once the statement has run KL_PROGRESS_FIRST_AFTER_MS (so a quick one shows none), updated at
 * most every KL_PROGRESS_MIN_INTERVAL_MS, and left behind with a last "Done: ..." line when the
 * statement ends. */
typedef struct progress {
    bool enabled, shown;
    char display_id[KL_UUID_STRLEN];
    uint64_t start_ns, last_ns;
    kl_progress_stage *stages;
    size_t n;
} progress;

static void progress_publish(kl_magic_ctx *c, progress *p, kl_progress_state state) {
    double elapsed = (double)(uv_hrtime() - p->start_ns) / 1e9;
    char *text = kl_progress_text(p->stages, p->n, elapsed, state);
    char *html = kl_progress_html(p->stages, p->n, elapsed, state);
    if (text && html) {
        json_t *content =
            json_pack("{s:{s:s, s:s}, s:{}, s:{s:s}}", "data", "text/plain", text, "text/html",
                      html, "metadata", "transient", "display_id", p->display_id);
        kl_kernel_publish(c->k, c->parent, p->shown ? "update_display_data" : "display_data",
                          content);
        p->shown = true;
        p->last_ns = uv_hrtime();
    }
    free(text);
    free(html);
}

static void progress_update(kl_magic_ctx *c, progress *p,
                            const Spark__Connect__ExecutePlanResponse__ExecutionProgress *ep) {
    if (!p || !p->enabled) return;
    kl_progress_stage *v = ep->n_stages ? calloc(ep->n_stages, sizeof *v) : NULL;
    if (ep->n_stages && !v) return;
    for (size_t i = 0; i < ep->n_stages; i++) {
        const Spark__Connect__ExecutePlanResponse__ExecutionProgress__StageInfo *si = ep->stages[i];
        v[i] = (kl_progress_stage){si->stage_id, si->num_tasks, si->num_completed_tasks,
                                   si->input_bytes_read, si->done};
    }
    free(p->stages);
    p->stages = v;
    p->n = ep->n_stages;
    /* Spark reports as an operation starts (no stages yet) and as it ends (all done), however
     * short it is: only work still under way, past a moment, is worth a display. */
    if (!p->shown) {
        bool running = false;
        for (size_t i = 0; i < p->n && !running; i++) running = !p->stages[i].done;
        if (!running || uv_hrtime() - p->start_ns < KL_PROGRESS_FIRST_AFTER_MS * 1000000ull ||
            kl_uuid_v4(p->display_id) != 0)
            return;
    }
    /* A report dropped here is overtaken by the next one, or by the final update. */
    if (p->shown && uv_hrtime() - p->last_ns < KL_PROGRESS_MIN_INTERVAL_MS * 1000000ull) return;
    progress_publish(c, p, KL_PROGRESS_RUNNING);
}

static void progress_finish(kl_magic_ctx *c, progress *p, kl_progress_state state) {
    if (p->shown) progress_publish(c, p, state);
    free(p->stages);
    p->stages = NULL;
    p->n = 0;
}

/* ---- running ------------------------------------------------------------------------------ */

typedef struct batches {
    kl_grpc_bytes *v;
    size_t n, cap;
    int64_t rows;
    size_t bytes; /* Arrow bytes held, against --max-result-bytes */
    bool cut;     /* stopped at --max-result-bytes: what arrived is shown, with a notice */
    /* The response that carried ExecutePlanResponse.schema (owned): Spark's types, for what
     * Arrow lacks (interval fields, VARIANT). */
    Spark__Connect__ExecutePlanResponse *schema_resp;
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
    b->bytes += data->len;
    return 0;
}

static void batches_free(batches *b) {
    if (b->schema_resp) spark__connect__execute_plan_response__free_unpacked(b->schema_resp, NULL);
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
                 stream_state *ss, progress *p) {
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
            /* One connection must not hold the kernel's memory hostage with a wide result:
             * stop reading, show what came, and stop the operation on the server. */
            if (rc != -2 && b->bytes > (size_t)c->k->opts.max_result_bytes) {
                b->cut = true;
                ss->complete = true;
            }
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
        case SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_EXECUTION_PROGRESS:
            if (r->execution_progress) progress_update(c, p, r->execution_progress);
            break;
        default:
            break;
        }
        if (r->schema && !keep) { /* the newest schema wins: it describes the rows */
            if (b->schema_resp)
                spark__connect__execute_plan_response__free_unpacked(b->schema_resp, NULL);
            b->schema_resp = r;
            keep = true;
        }
        if (!keep) spark__connect__execute_plan_response__free_unpacked(r, NULL);
        if (rc == -2) break;
        if (b->cut) {
            kl_spark_exec_cancel(e);
            rc = 0;
            break;
        }
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
    kl_table *tbl; /* decoded; freed by render_tables */
    char *text, *html;
    json_t *json;
    size_t ncols;
    int rc;
    char err[KL_RENDER_ERRLEN];
} render_job;

/* Decodes the Arrow batches into j->tbl (zero-copy: the table points into j->b). */
static void render_decode(render_job *j) {
    j->tbl = kl_table_new(j->limit);
    if (!j->tbl) {
        j->rc = -ENOMEM;
        snprintf(j->err, sizeof j->err, "out of memory");
        return;
    }
    if (j->b->schema_resp) /* best effort: without it, cells follow the Arrow types */
        kl_table_apply_spark_schema(j->tbl, j->b->schema_resp->schema);
    for (size_t i = 0; i < j->b->n && j->rc == 0; i++)
        j->rc = kl_table_add_ipc(j->tbl, j->b->v[i].data, j->b->v[i].len, j->err);
    const kl_arrow_schema *schema = kl_table_schema(j->tbl);
    j->ncols = schema ? schema->n_fields : 0;
}

/* Renders j->tbl in j->output's representations, then frees it. */
static void render_tables(render_job *j) {
    kl_table *tbl = j->tbl;
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
            if (j->rc == 0 && j->output == KL_SQL_OUT_TABLE)
                j->rc = kl_json_render(tbl, &j->opts, &j->json, j->err);
        }
    }
    if (tbl) kl_table_free(tbl);
    j->tbl = NULL;
}

/* Pool: Arrow decoding and rendering are too heavy for the loop thread. */
static void render_work(void *arg) {
    render_job *j = arg;
    if (!j->tbl && j->rc == 0) render_decode(j);
    render_tables(j);
}

static int publish_rows(kl_magic_ctx *c, batches *b, int64_t limit, kl_sql_output output,
                        bool last) {
    if (b->n == 0) return 0;
    render_job j = {.b = b, .limit = limit, .output = output};
    kl_render_options_init(&j.opts);
    j.opts.max_rows = limit;
    j.opts.truncate = c->t->truncation ? KL_RENDER_DEFAULT_TRUNCATE : 0;
    j.opts.show_types = c->t->showtypes;
    /* Even a one-cell result is decoded on the pool: the loop thread never decodes Arrow. */
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
            if (j.json && output == KL_SQL_OUT_TABLE)
                json_object_set(data, "application/vnd.dataresource+json", j.json);
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

static const char *user_for(kl_magic_ctx *c, const kl_sc_remote *r) {
    const char *user = r->user_id;
    /* Spark keys a session by user and id: one shared session needs one user for everybody. */
    if ((!user || !*user) && !c->k->opts.shared_session) user = kl_msg_username(c->parent);
    return user && *user ? user : NULL;
}

static kl_spark_client *tenant_client(kl_magic_ctx *c, kl_grpc_channel *ch) {
    kl_tenant *t = c->t;
    if (!t->spark) {
        kl_tenant_remote *tr = t->remote;
        const kl_sc_remote *r = tr && tr->chan ? &tr->remote : &c->k->sql->remote;
        /* The tenant's session id is its own, its parent's (a subshell) or the kernel's shared
         * one; after %connect, the one made for the new endpoint. */
        const char *sid = tr ? tr->session_id : t->spark_session_id;
        t->spark = kl_spark_client_new(ch, sid && *sid ? sid : NULL, user_for(c, r));
        if (!t->spark) kl_ctx_error(c, "MemoryError", "could not create a Spark session");
    }
    return t->spark;
}

/* ---- releasing operations ------------------------------------------------------------------ */

/* Coroutine, one per release: sends it, logs the outcome. Never the user's concern: the cell has
 * answered, and the server drops an operation nobody released after its own timeout. */
static void release_main(void *arg) {
    release_job *j = arg;
    kl_sql *s = j->s;
    kl_grpc_call_opts o = {.timeout_ms = RELEASE_TIMEOUT_MS};
    kl_grpc_status st = {0};
    const char *op = kl_spark_release_operation_id(j->r);
    if (kl_spark_release_send(j->r, &o, &st) == 0)
        KL_DEBUG("sql", "operation %s: ReleaseExecute done", op);
    else /* an invalid handle: the session went first (%connect, a restart), nothing to free */
        kl_log_write(st.details && strstr(st.details, "INVALID_HANDLE") ? KL_LOG_DEBUG
                                                                        : KL_LOG_WARN,
                     "sql", "operation %s: ReleaseExecute failed with %s: %s", op,
                     kl_grpc_code_name(st.code), st.details ? st.details : "");
    kl_grpc_status_clear(&st);
    if (j->prev)
        j->prev->next = j->next;
    else
        s->releases = j->next;
    if (j->next) j->next->prev = j->prev;
    if (!s->releases && s->drain_waiter) kl_loop_wake(s->k->loop, s->drain_waiter);
    tenant_remote_free(j->tr);
    kl_spark_release_free(j->r);
    free(j);
}

/* Tells the server it may drop what it keeps of operation op for reattaching, without waiting
 * for the answer. Best effort. The release starts as soon as this cell parks, which for a query's
 * SqlCommand is while it waits for the relation's results: measured, that costs the cell less
 * than starting it after the reply, when it competes with the reply for the CPU. */
static void release_later(kl_magic_ctx *c, kl_spark_client *client, const char *op) {
    kl_sql *s = c->k->sql;
    kl_tenant_remote *tr = c->t->remote;
    kl_grpc_channel *ch = kl_spark_client_channel(client);
    if (!tr || tr->chan != ch) tr = NULL;
    if (!tr && ch != s->chan) { /* not a channel this module owns: cannot keep it open */
        KL_WARN("sql", "operation %s: not released (its channel is gone)", op);
        return;
    }
    release_job *j = calloc(1, sizeof *j);
    if (!j) {
        KL_WARN("sql", "operation %s: no memory to release it; the server drops it later", op);
        return;
    }
    j->s = s;
    j->r = kl_spark_client_release_prepare(client, op);
    j->tr = tr;
    /* Started on the loop's next turn, after this cell has moved on. */
    if (!kl_loop_spawn(c->k->loop, release_main, j, 0)) {
        KL_WARN("sql", "operation %s: no coroutine to release it; the server drops it later", op);
        kl_spark_release_free(j->r);
        free(j);
        return;
    }
    if (tr) tr->refs++;
    j->next = s->releases;
    if (s->releases) s->releases->prev = j;
    s->releases = j;
    KL_DEBUG("sql", "operation %s: ReleaseExecute queued", op);
}

/* Coroutine, at shutdown: waits for the releases in flight (each ends within
 * RELEASE_TIMEOUT_MS). */
static void drain_releases(kl_sql *s) {
    if (!s->releases) return;
    s->drain_waiter = kl_coro_current();
    uint64_t deadline = uv_hrtime() + 2 * RELEASE_TIMEOUT_MS * 1000000ull;
    while (s->releases && uv_hrtime() < deadline) kl_loop_sleep(s->k->loop, 50);
    s->drain_waiter = NULL;
    if (s->releases) KL_WARN("sql", "ReleaseExecute calls still unanswered at shutdown");
}

/* ExecutePlan of a SqlCommand, as the official clients run spark.sql(): with its parameters as
 * named_arguments (Spark 4.0) and the same literals as args, which a 3.5 server reads instead
 * (4.0 takes named_arguments first). */
static kl_spark_exec *start_command(kl_spark_client *client, const char *stmt,
                                    const bound_args *args, const kl_spark_exec_opts *opts) {
    Spark__Connect__SqlCommand cmd = SPARK__CONNECT__SQL_COMMAND__INIT;
    cmd.sql = (char *)stmt;
    if (args && args->n) {
        cmd.n_named_arguments = args->n;
        cmd.named_arguments = args->named;
        cmd.n_args = args->n;
        cmd.args = args->lits;
    }
    Spark__Connect__Command command = SPARK__CONNECT__COMMAND__INIT;
    command.command_type_case = SPARK__CONNECT__COMMAND__COMMAND_TYPE_SQL_COMMAND;
    command.sql_command = &cmd;
    Spark__Connect__Plan plan = SPARK__CONNECT__PLAN__INIT;
    plan.op_type_case = SPARK__CONNECT__PLAN__OP_TYPE_COMMAND;
    plan.command = &command;
    return kl_spark_client_execute_plan(client, &plan, opts);
}

/* Coroutine: one reattachable ExecutePlan with our own operation id, as the official clients run
 * it: a stream that ends without result_complete (the server closes long streams) or breaks with
 * a retryable error is continued with ReattachExecute from the last response seen; a failure
 * before any response resends the plan; retryable failures back off 50 ms, 200 ms, 800 ms, so
 * an unreachable server is reported within seconds. */
static int run_plan(kl_magic_ctx *c, const char *stmt, Spark__Connect__Relation *rel, int64_t limit,
                    batches *b, Spark__Connect__ExecutePlanResponse **rel_resp,
                    const bound_args *args, progress *p) {
    char op[KL_UUID_STRLEN];
    if (kl_uuid_v4(op) != 0) return kl_ctx_error(c, "RuntimeError", "no random operation id");
    kl_spark_exec_opts opts = {.reattachable = true, .operation_id = op};
    stream_state ss = {0};
    uint64_t wait_ms = 50;
    int failures = 0, result = -1;
    bool session_reset = false;
    for (;;) {
        kl_spark_client *client = tenant_client(c, current_channel(c));
        if (!client) break;
        kl_spark_exec *e;
        const char *what;
        if (ss.got_any) {
            what = "ReattachExecute";
            e = kl_spark_client_reattach(client, op, ss.last_response_id, &opts);
        } else if (rel) {
            what = "ExecutePlan of the relation";
            e = kl_spark_client_execute_relation(client, rel, (int32_t)limit + 1, &opts);
        } else {
            what = "ExecutePlan of the SqlCommand";
            e = start_command(client, stmt, args, &opts);
        }
        KL_DEBUG("sql", "operation %s: %s sent", op, what);
        kl_grpc_status st = {0};
        bool had_any = ss.got_any;
        uint64_t seen = ss.responses;
        uint64_t opened_ns = uv_hrtime();
        int rc = drain(c, e, b, rel_resp, &st, &ss, p);
        KL_DEBUG("sql", "operation %s: stream ended (%s) after %llu responses%s", op,
                 kl_grpc_code_name(st.code), (unsigned long long)(ss.responses - seen),
                 ss.complete ? ", result complete" : "");
        if (ss.responses > seen) failures = 0; /* progress: only consecutive failures count */
        kl_spark_exec_free(e);
        if (rc == 1) {
            /* A reattachable operation outlives its stream: stop it on the server too. */
            kl_grpc_call_opts o = {.timeout_ms = 5000};
            kl_grpc_status ist = {0};
            kl_spark_client_interrupt(client, op, &o, &ist);
            kl_grpc_status_clear(&ist);
            release_later(c, client, op);
            kl_grpc_status_clear(&st);
            result = kl_ctx_error(c, "KeyboardInterrupt", "the query was interrupted");
            break;
        }
        if (rc == -2) {
            release_later(c, client, op); /* a release_all also stops it if it still runs */
            kl_grpc_status_clear(&st);
            break;
        }
        if (rc == 0 && ss.complete) {
            if (b->cut) {
                kl_grpc_call_opts o = {.timeout_ms = 5000};
                kl_grpc_status ist = {0};
                kl_spark_client_interrupt(client, op, &o, &ist);
                kl_grpc_status_clear(&ist);
            }
            release_later(c, client, op);
            kl_grpc_status_clear(&st);
            result = 0;
            break;
        }
        if (rc == 0) {
            /* Closed cleanly before result_complete: the server ends a reattachable stream after
             * 2 minutes or 1 GiB, even one that sent nothing yet (a 3.5 server sends nothing
             * while a query computes). The operation lives on, so reattach at once, from the
             * start if nothing arrived: resending it would be OPERATION_ALREADY_EXISTS. Only a
             * stream that closes at once without progress counts as a retryable failure, so
             * this cannot spin. */
            kl_grpc_status_clear(&st);
            ss.got_any = true;
            if (ss.responses > seen || uv_hrtime() - opened_ns >= STREAM_MIN_LIFE_NS) continue;
            st.code = KL_GRPC_UNAVAILABLE;
            st.details = strdup("the result stream ended before result_complete");
        }
        kl_spark_error err;
        kl_spark_error_init(&err);
        kl_spark_error_from_status(&err, (int)st.code, st.details, st.details_bin,
                                   st.details_bin_len);
        bool not_found = err.error_class && strstr(err.error_class, "OPERATION_NOT_FOUND");
        /* A Spark error ends the stream but not the operation: the server keeps it (and
         * answers a reattach with the same error) until it is released. An invalid handle
         * means it holds nothing; a transport failure before any response, most likely too. */
        bool server_keeps =
            err.error_class ? strstr(err.error_class, "INVALID_HANDLE") == NULL : ss.got_any;
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
            if (server_keeps) release_later(c, client, op);
            kl_sql_report(c, &st, stmt);
            kl_grpc_status_clear(&st);
            break;
        }
        KL_INFO("sql", "%s after %s: %s", ss.got_any ? "reattaching" : "retrying",
                kl_grpc_code_name(st.code), st.details ? st.details : "");
        kl_metrics_spark_retry(ss.got_any);
        kl_grpc_status_clear(&st);
        if (!ss.got_any) batches_free(b);
        failures++;
        if (kl_ctx_sleep(c, wait_ms) != 0) break;
        wait_ms *= 4;
    }
    free(ss.last_response_id);
    return result;
}

/* Coroutine: takes one of the kernel's --max-spark-ops slots. When none is free the cell shows
 * that it is queued (a display updated in place once it starts), and an interrupt takes it out of
 * the queue. 0 with the slot held, or -1 with the error recorded. */
static int queue_for_spark(kl_magic_ctx *c) {
    kl_kernel *k = c->k;
    kl_tenant *t = c->t;
    if (!kl_sem_busy(&k->spark_ops) && !k->spark_ops.waiting)
        return kl_sem_acquire(&k->spark_ops, NULL);
    char id[KL_UUID_STRLEN];
    bool shown = !c->silent && kl_uuid_v4(id) == 0;
    uint64_t t0 = uv_hrtime();
    if (shown) {
        char text[256];
        snprintf(text, sizeof text,
                 "Queued: all %ld Spark slots of this kernel are busy (--max-spark-ops); %zu "
                 "statement(s) ahead of this one",
                 k->opts.max_spark_ops, k->spark_ops.waiting);
        kl_kernel_publish(k, c->parent, "display_data",
                          json_pack("{s:{s:s}, s:{}, s:{s:s}}", "data", "text/plain", text,
                                    "metadata", "transient", "display_id", id));
    }
    t->interruptible_wait = true;
    int rc = kl_sem_acquire(&k->spark_ops, &t->interrupted);
    t->interruptible_wait = false;
    if (shown) {
        char text[128];
        snprintf(text, sizeof text, "%s after %.1f s in the queue",
                 rc == 0 ? "Started" : "Left the queue", (double)(uv_hrtime() - t0) / 1e9);
        kl_kernel_publish(k, c->parent, "update_display_data",
                          json_pack("{s:{s:s}, s:{}, s:{s:s}}", "data", "text/plain", text,
                                    "metadata", "transient", "display_id", id));
    }
    if (rc != 0) return kl_ctx_error(c, "KeyboardInterrupt", "interrupted while queued");
    return 0;
}

static int run_statement(kl_magic_ctx *c, const char *stmt, int64_t limit, kl_sql_output output,
                         bool last, const param_source *ps) {
    bound_args args;
    if (bind_params(stmt, ps, &args) != 0) {
        bound_args_free(&args);
        return kl_ctx_error(c, "MemoryError", "out of memory");
    }
    if (queue_for_spark(c) != 0) {
        bound_args_free(&args);
        return -1;
    }
    progress p = {.enabled = c->t->progress && !c->silent, .start_ns = uv_hrtime()};
    batches b = {0};
    Spark__Connect__ExecutePlanResponse *cmd = NULL;
    int rc = run_plan(c, stmt, NULL, limit, &b, &cmd, &args, &p);
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
            rc = run_plan(c, stmt, rel, limit, &b, NULL, NULL, &p);
        }
    }
    if (cmd) spark__connect__execute_plan_response__free_unpacked(cmd, NULL);
    kl_sem_release(&c->k->spark_ops);
    if (rc == 0 && b.cut) {
        char note[256];
        snprintf(note, sizeof note,
                 "Result cut short: it passed this kernel's limit of %ld bytes per statement "
                 "(--max-result-bytes); the rows received are shown.\n",
                 c->k->opts.max_result_bytes);
        kl_ctx_stream(c, "stderr", note);
    }
    progress_finish(c, &p,
                    rc == 0             ? KL_PROGRESS_DONE
                    : c->t->interrupted ? KL_PROGRESS_INTERRUPTED
                                        : KL_PROGRESS_FAILED);
    if (rc != 0) hint_unbound(c, &args);
    bound_args_free(&args);
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
    kl_grpc_channel *ch = tenant_channel(c);
    return ch ? tenant_client(c, ch) : NULL;
}

int kl_sql_run(kl_magic_ctx *c, const char *code, size_t len, int64_t limit, kl_sql_output out) {
    kl_sql_run_opts o = {.limit = limit, .output = out};
    return kl_sql_run_with(c, code, len, &o);
}

int kl_sql_run_with(kl_magic_ctx *c, const char *code, size_t len, const kl_sql_run_opts *o) {
    kl_sql *s = c->k->sql;
    if (!s) return kl_ctx_error(c, "SparkConnectConfigError", "Spark support did not start");
    int64_t limit = o->limit > 0 ? o->limit : s->display_limit;
    kl_span *spans = NULL;
    long n = kl_sqltext_split(code, len, &spans);
    if (n < 0) return kl_ctx_error(c, "MemoryError", "out of memory");
    if (n == 0) return 0;
    if (!tenant_channel(c)) {
        free(spans);
        return -1;
    }
    param_source ps = {o->params, c->t->params};
    bool any_params = (ps.cell && kl_strmap_len(ps.cell)) || (ps.conn && kl_strmap_len(ps.conn));
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        /* Spark sees (and its errors point into) the statement with ${name} made :name. */
        char *stmt = any_params ? kl_cellparam_rewrite_braces(code + spans[i].start, spans[i].len,
                                                              param_known, &ps)
                                : strndup(code + spans[i].start, spans[i].len);
        if (!stmt) {
            rc = kl_ctx_error(c, "MemoryError", "out of memory");
            break;
        }
        rc = run_statement(c, stmt, limit, o->output, i == n - 1, &ps);
        /* Whatever the outcome: a failed DDL statement may still have changed names. */
        kl_catalog_statement_done(c->t, stmt);
        free(stmt);
    }
    free(spans);
    return rc;
}

/* ---- cell magic options ------------------------------------------------------------------- */

void kl_sql_params_free(kl_strmap *params) {
    if (!params) return;
    kl_strmap_foreach(params, free_param, NULL);
    kl_strmap_free(params);
}

int kl_sql_params_set(kl_strmap **params, const char *name, const char *value) {
    if (!*params && !(*params = kl_strmap_new())) return -1;
    char *copy = strdup(value);
    if (!copy) return -1;
    char *old = kl_strmap_get(*params, name);
    if (kl_strmap_put(*params, name, copy) != 0) {
        free(copy);
        return -1;
    }
    free(old);
    return 0;
}

/* The option's value: after '=' in the same word, else the next word (malloc'd, or NULL). */
static char *option_value(const char *word, size_t optlen, const char **p, bool *oom) {
    *oom = false;
    if (word[optlen] == '=') {
        char *v = strdup(word + optlen + 1);
        if (!v) *oom = true;
        return v;
    }
    return kl_cellparam_next_word(p, oom);
}

static bool is_option(const char *word, const char *opt) {
    size_t n = strlen(opt);
    return strncmp(word, opt, n) == 0 && (word[n] == 0 || word[n] == '=');
}

int kl_sql_cell_options(kl_magic_ctx *c, const char *args, const char *usage,
                        kl_sql_output html_kind, kl_sql_run_opts *o, kl_strmap **params) {
    *params = NULL;
    const char *p = args;
    bool oom = false;
    char *word, *val = NULL;
    int rc = 0;
    while (rc == 0 && (word = kl_cellparam_next_word(&p, &oom))) {
        if (is_option(word, "--limit")) {
            val = option_value(word, 7, &p, &oom);
            char *end = NULL;
            errno = 0;
            long long n = val ? strtoll(val, &end, 10) : 0;
            if (!oom && (!val || *end || errno || n < 1 || n > 10000000))
                rc = kl_ctx_error(c, "UsageError",
                                  "--limit takes a row count from 1 to 10000000, not \"%s\" "
                                  "(usage: %s)",
                                  val ? val : "", usage);
            o->limit = n;
        } else if (is_option(word, "--output")) {
            val = option_value(word, 8, &p, &oom);
            if (oom)
                ;
            else if (val && strcmp(val, "table") == 0)
                o->output = KL_SQL_OUT_TABLE;
            else if (val && strcmp(val, "html") == 0)
                o->output = html_kind;
            else if (val && strcmp(val, "json") == 0)
                o->output = KL_SQL_OUT_JSON;
            else if (val && strcmp(val, "csv") == 0)
                o->output = KL_SQL_OUT_CSV;
            else
                rc = kl_ctx_error(c, "UsageError",
                                  "--output takes table, html, json or csv, not \"%s\" (usage: "
                                  "%s)",
                                  val ? val : "", usage);
        } else if (is_option(word, "--param")) {
            val = option_value(word, 7, &p, &oom);
            char *name = NULL, *value = NULL;
            int split = val ? kl_cellparam_split_assignment(val, &name, &value) : -1;
            if (split == -2 || oom)
                oom = true;
            else if (split != 0)
                rc = kl_ctx_error(c, "UsageError",
                                  "--param takes name=value with a name of letters, digits and "
                                  "_, not \"%s\" (usage: %s)",
                                  val ? val : "", usage);
            else if (kl_sql_params_set(params, name, value) != 0)
                oom = true;
            free(name);
            free(value);
        } else {
            rc = kl_ctx_error(c, "UsageError", "unknown option \"%s\" (usage: %s)", word, usage);
        }
        free(word);
        free(val);
        val = NULL;
        if (oom) rc = kl_ctx_error(c, "MemoryError", "out of memory");
    }
    if (oom && rc == 0) rc = kl_ctx_error(c, "MemoryError", "out of memory");
    if (rc != 0) {
        kl_sql_params_free(*params);
        *params = NULL;
    }
    return rc;
}

/* ---- %connect ----------------------------------------------------------------------------- */

/* A token typed into a cell would live on in the notebook file and the history: refuse it before
 * parsing, so not even an error message repeats the URL. */
static bool has_token_param(const char *url) {
    for (const char *p = url; (p = strcasestr(p, "token")); p += 5) {
        const char *q = p + 5;
        while (*q == ' ') q++;
        if (*q == '=') return true;
    }
    return false;
}

/* Releases the tenant's Spark session where it lives now, unless others share it (a subshell's
 * parent, --shared-session), then drops the client. */
static void drop_session(kl_magic_ctx *c) {
    kl_tenant *t = c->t;
    if (!t->spark) return;
    bool own = t->remote || (!t->parent && !c->k->opts.shared_session);
    if (own) {
        kl_grpc_call_opts o = {.timeout_ms = 2000};
        kl_grpc_status st = {0};
        /* Best effort: a 3.5 server has no ReleaseSession and answers UNIMPLEMENTED. */
        kl_spark_client_release_session(t->spark, &o, &st);
        kl_grpc_status_clear(&st);
    }
    kl_spark_client_free(t->spark);
    t->spark = NULL;
}

static int connect_failed(kl_magic_ctx *c, kl_tenant_remote *tr, const char *what,
                          const kl_grpc_status *st) {
    char *now = kl_sql_endpoint_describe(c);
    char name[64];
    snprintf(name, sizeof name, "SparkConnect%s", kl_grpc_code_name(st->code));
    const char *why = st->message && *st->message ? st->message : st->details;
    kl_ctx_error(c, name, "could not connect to %s: %s. This connection stays on %s.", what,
                 why && *why ? why : "no answer", now ? now : "its previous endpoint");
    free(now);
    tenant_remote_free(tr);
    return -1;
}

int kl_sql_connect(kl_magic_ctx *c, const char *url, bool ask_token) {
    kl_sql *s = c->k->sql;
    if (!s) return kl_ctx_error(c, "SparkConnectConfigError", "Spark support did not start");
    bool to_default = strcasecmp(url, "local") == 0;
    if (to_default && ask_token)
        return kl_ctx_error(c, "UsageError",
                            "%%connect local returns to the kernel's endpoint, which has its own "
                            "credentials: --token goes with an sc:// URL");
    if (!to_default && has_token_param(url))
        return kl_ctx_error(c, "UsageError",
                            "%%connect refuses URLs that hold a token: a token typed into a cell "
                            "stays in the notebook and its history. Write %%connect sc://host:port "
                            "--token and enter the token when asked.");
    kl_tenant_remote *tr = calloc(1, sizeof *tr);
    if (!tr || kl_uuid_v4(tr->session_id) != 0) {
        free(tr);
        return kl_ctx_error(c, "MemoryError", "out of memory");
    }
    tr->refs = 1;
    kl_grpc_channel *ch;
    char err[512];
    if (to_default) {
        ch = channel(s, c);
        if (!ch) {
            tenant_remote_free(tr);
            return -1;
        }
    } else {
        if (kl_sc_remote_parse(url, &tr->remote, err, sizeof err) != 0) {
            tenant_remote_free(tr);
            return kl_ctx_error(c, "UsageError", "%%connect: %s", err);
        }
        if (tr->remote.kind != KL_SC_KIND_URL) {
            tenant_remote_free(tr);
            return kl_ctx_error(c, "UsageError",
                                "%%connect takes an sc://host:port URL; only the kernel's own "
                                "endpoint can be an embedded local server (%%connect local "
                                "returns to it)");
        }
        kl_sc_remote_redacted(&tr->remote, tr->endpoint, sizeof tr->endpoint);
        if (ask_token) {
            if (!c->allow_stdin) {
                tenant_remote_free(tr);
                return kl_ctx_error(c, "StdinNotImplementedError",
                                    "%%connect --token asks for the token over the stdin "
                                    "channel, but this client does not accept input requests "
                                    "(allow_stdin is false); run the cell from a front end that "
                                    "does, such as JupyterLab or jupyter console");
            }
            char prompt[640], *token = NULL;
            snprintf(prompt, sizeof prompt, "Token for %s: ", tr->endpoint);
            if (kl_ctx_input(c, prompt, true, &token) != 0) {
                tenant_remote_free(tr);
                return -1;
            }
            size_t len = strlen(token);
            while (len && (token[len - 1] == '\n' || token[len - 1] == '\r')) token[--len] = 0;
            if (len == 0) {
                free(token);
                tenant_remote_free(tr);
                return kl_ctx_error(c, "UsageError", "%%connect --token: no token was entered");
            }
            free(tr->remote.token);
            tr->remote.token = token;
            /* Now reads ";token=<redacted>": %connect shows that a token is in use. */
            kl_sc_remote_redacted(&tr->remote, tr->endpoint, sizeof tr->endpoint);
        }
        tr->chan = open_channel(s, &tr->remote, err, sizeof err);
        if (!tr->chan) {
            kl_grpc_status st = {.code = KL_GRPC_INVALID_ARGUMENT, .message = err};
            return connect_failed(c, tr, tr->endpoint, &st);
        }
        ch = tr->chan;
    }
    const kl_sc_remote *r = tr->chan ? &tr->remote : &s->remote;
    kl_spark_client *client = kl_spark_client_new(ch, tr->session_id, user_for(c, r));
    if (!client) {
        tenant_remote_free(tr);
        return kl_ctx_error(c, "MemoryError", "could not create a Spark session");
    }
    char where[256];
    snprintf(where, sizeof where, "%s", kl_grpc_channel_endpoint(ch));
    kl_grpc_call_opts o = {.timeout_ms = CONNECT_TIMEOUT_MS};
    kl_grpc_status st = {0};
    char *version = NULL;
    if (kl_spark_client_version(client, &o, &version, &st) != 0) {
        kl_spark_client_free(client);
        int rc = connect_failed(c, tr, where, &st);
        kl_grpc_status_clear(&st);
        return rc;
    }
    kl_grpc_status_clear(&st);
    drop_session(c);
    tenant_remote_free(c->t->remote);
    c->t->remote = tr;
    c->t->spark = client;
    kl_catalog_invalidate(c->t); /* the names cached so far are the old server's */
    KL_INFO("sql", "connection %s switched to %s", c->t->session,
            tr->chan ? tr->endpoint : "the kernel's endpoint");
    char line[512];
    snprintf(line, sizeof line, "Connected to %s (Spark %s)\n", where, version);
    free(version);
    kl_ctx_stream(c, "stdout", line);
    return 0;
}

char *kl_sql_endpoint_describe(kl_magic_ctx *c) {
    kl_sql *s = c->k->sql;
    kl_tenant_remote *tr = c->t->remote;
    char *out = NULL;
    int rc;
    if (tr && tr->chan)
        rc = asprintf(&out, "%s (set by %%connect on this connection)", tr->endpoint);
    else if (!s)
        rc = asprintf(&out, "none (Spark support did not start)");
    else if (s->config_error)
        rc = asprintf(&out, "none: %s", s->config_error);
    else if (s->local && !s->chan)
        rc = asprintf(&out, "the kernel's embedded local Spark Connect server (not started yet)");
    else if (s->local)
        rc = asprintf(&out, "%s (the kernel's embedded local Spark Connect server)", s->endpoint);
    else
        rc = asprintf(&out, "%s (the kernel's endpoint)", s->endpoint);
    return rc < 0 ? NULL : out;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

void kl_sql_tenant_free(kl_tenant *t) {
    kl_spark_client_free(t->spark);
    t->spark = NULL;
    kl_sql_params_free(t->params);
    t->params = NULL;
    tenant_remote_free(t->remote);
    t->remote = NULL;
}

void kl_sql_tenant_release(kl_tenant *t) {
    if (!t->spark || t->parent) return;
    kl_grpc_call_opts o = {.timeout_ms = 2000};
    kl_grpc_status st = {0};
    kl_spark_client_release_session(t->spark, &o, &st);
    kl_grpc_status_clear(&st);
}

typedef struct owners {
    kl_tenant **v;
    size_t n, cap;
    bool shared; /* --shared-session: every connection holds the same session; keep one */
} owners;

static void collect_owner(const char *key, void *value, void *arg) {
    (void)key;
    owners *w = arg;
    kl_tenant *t = value;
    if (!t->spark || t->parent || (w->shared && w->n)) return;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        kl_tenant **v = realloc(w->v, cap * sizeof *v);
        if (!v) return;
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n++] = t;
}

void kl_sql_shutdown(kl_sql *s) {
    if (!s) return;
    /* Before the sessions go: releasing a session drops its operations, so a release still in
     * flight would then fail for nothing. */
    drain_releases(s);
    if (s->chan) {
        /* Collected first: each release parks, and the map must not be walked across a park. */
        owners w = {.shared = s->k->opts.shared_session};
        kl_strmap_foreach(s->k->tenants, collect_owner, &w);
        for (size_t i = 0; i < w.n; i++) kl_sql_tenant_release(w.v[i]);
        free(w.v);
    }
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
