/* The per-connection catalog cache and the Spark calls that fill it.
 *
 * Lifetimes: the cache belongs to the tenant, and each background fetch holds a reference to it,
 * so a fetch that ends after its tenant is gone finds the cache marked dead and frees it. A fetch
 * uses a Spark client of its own on the same server session (same session and user ids), so a
 * cell replacing the tenant's client (a restarted server) never pulls it from under the fetch. */
#include "kernel/catalog.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "kernel/sql.h"
#include "kernel/sqllex.h"
#include "render/cell.h"
#include "render/table.h"
#include "runtime/log.h"
#include "runtime/waitq.h"
#include "spark/arrow.h"
#include "spark/client.h"
#include "spark/remote.h"

/* Past this many entries the cache starts over: a session browsing thousands of tables should not
 * grow without bound. */
#define MAX_ENTRIES 512

uint64_t kl_catalog_now(void) {
    return uv_hrtime() / 1000000u;
}

/* ---- rows ----------------------------------------------------------------------------------- */

const char *kl_catalog_cell(const kl_catalog_rows *r, size_t row, size_t col) {
    if (!r || row >= r->nrows || col >= r->ncols) return NULL;
    return r->cells[row * r->ncols + col];
}

int kl_catalog_column(const kl_catalog_rows *r, const char *name) {
    for (size_t c = 0; r && c < r->ncols; c++)
        if (r->names[c] && strcasecmp(r->names[c], name) == 0) return (int)c;
    return -1;
}

static void rows_free(kl_catalog_rows *r) {
    if (!r) return;
    for (size_t i = 0; i < r->ncols; i++) free(r->names[i]);
    for (size_t i = 0; i < r->nrows * r->ncols; i++) free(r->cells[i]);
    free(r->names);
    free(r->cells);
    free(r);
}

void kl_catalog_rows_unref(kl_catalog_rows *r) {
    if (r && --r->refs == 0) rows_free(r);
}

static kl_catalog_rows *rows_ref(kl_catalog_rows *r) {
    if (r) r->refs++;
    return r;
}

/* Arrow IPC streams as they arrived (each ArrowBatch.data, or a LocalRelation's data). */
typedef struct blobs {
    kl_grpc_bytes *v;
    size_t n, cap;
} blobs;

static int blobs_add(blobs *b, const ProtobufCBinaryData *d) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        kl_grpc_bytes *v = realloc(b->v, cap * sizeof *v);
        if (!v) return -ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    uint8_t *copy = malloc(d->len ? d->len : 1);
    if (!copy) return -ENOMEM;
    memcpy(copy, d->data, d->len);
    b->v[b->n++] = (kl_grpc_bytes){copy, d->len};
    return 0;
}

static void blobs_free(blobs *b) {
    for (size_t i = 0; i < b->n; i++) free(b->v[i].data);
    free(b->v);
    memset(b, 0, sizeof *b);
}

typedef struct decode_job {
    const blobs *in;
    kl_catalog_rows *out;
    int rc;
    char err[KL_ARROW_ERRLEN];
} decode_job;

/* One value as text: strings as they are, lists of strings joined with '.' (a namespace), the
 * rest as show() prints it. */
static char *cell_text(kl_cell_ctx *cc, const kl_arrow_array *a, int64_t i) {
    if (kl_arrow_is_null(a, i)) return NULL;
    kl_arrow_type ty = a->field->type;
    if (ty == KL_ARROW_UTF8 || ty == KL_ARROW_LARGE_UTF8) {
        kl_arrow_bytes b = kl_arrow_get_bytes(a, i);
        /* An empty string may have no buffer behind it at all. */
        return b.len ? strndup((const char *)b.ptr, b.len) : strdup("");
    }
    kl_render_buf buf;
    kl_render_buf_init(&buf);
    if ((ty == KL_ARROW_LIST || ty == KL_ARROW_LARGE_LIST) && a->n_children == 1 &&
        (a->children[0].field->type == KL_ARROW_UTF8 ||
         a->children[0].field->type == KL_ARROW_LARGE_UTF8)) {
        int64_t s, e;
        kl_arrow_get_range(a, i, &s, &e);
        for (int64_t k = s; k < e; k++) {
            kl_arrow_bytes b = kl_arrow_get_bytes(&a->children[0], k);
            if (k > s) kl_render_buf_putc(&buf, '.');
            kl_render_buf_append(&buf, b.ptr, b.len);
        }
    } else {
        kl_cell_text(cc, &buf, a, i, NULL);
    }
    char *s = kl_render_buf_take(&buf, NULL);
    return s ? s : strdup("");
}

static int rows_append(kl_catalog_rows *r, const kl_arrow_stream *s, kl_cell_ctx *cc) {
    if (!r->names) {
        r->ncols = s->schema.n_fields;
        r->names = calloc(r->ncols ? r->ncols : 1, sizeof *r->names);
        if (!r->names) return -ENOMEM;
        for (size_t c = 0; c < r->ncols; c++) {
            r->names[c] = strndup(s->schema.fields[c].name, s->schema.fields[c].name_len);
            if (!r->names[c]) return -ENOMEM;
        }
    }
    if (s->schema.n_fields != r->ncols) return -EINVAL;
    for (size_t b = 0; b < s->n_batches; b++) {
        const kl_arrow_batch *bt = &s->batches[b];
        if (bt->length <= 0 || r->ncols == 0) continue;
        size_t n = (r->nrows + (size_t)bt->length) * r->ncols;
        char **cells = realloc(r->cells, n * sizeof *cells);
        if (!cells) return -ENOMEM;
        r->cells = cells;
        for (int64_t i = 0; i < bt->length; i++) {
            for (size_t c = 0; c < r->ncols; c++)
                r->cells[r->nrows * r->ncols + c] = cell_text(cc, &bt->columns[c], i);
            r->nrows++;
        }
    }
    return 0;
}

/* Pool: Arrow decoding stays off the loop thread, like every result. */
static void decode_work(void *arg) {
    decode_job *j = arg;
    j->out = calloc(1, sizeof *j->out);
    if (!j->out) {
        j->rc = -ENOMEM;
        return;
    }
    j->out->refs = 1;
    char cerr[KL_RENDER_ERRLEN];
    kl_cell_ctx cc;
    kl_cell_ctx_init(&cc, "UTC", 0, cerr);
    for (size_t i = 0; i < j->in->n && j->rc == 0; i++) {
        kl_arrow_stream *s = NULL;
        j->rc = kl_arrow_decode(j->in->v[i].data, j->in->v[i].len, NULL, &s, j->err);
        if (j->rc == 0) j->rc = rows_append(j->out, s, &cc);
        kl_arrow_stream_free(s);
    }
    if (j->rc != 0) {
        rows_free(j->out);
        j->out = NULL;
    }
}

/* Coroutine: reads an ExecutePlan stream to its end, keeping its Arrow data. 0, or -1 with st
 * set (-ENOMEM as a failed status too). */
static int drain(kl_spark_exec *e, blobs *b, kl_grpc_status *st) {
    Spark__Connect__ExecutePlanResponse *r;
    int rc, err = 0;
    while ((rc = kl_spark_exec_next(e, &r, st)) == 1) {
        if (r->response_type_case ==
                SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_ARROW_BATCH &&
            r->arrow_batch && r->arrow_batch->has_data) {
            if (blobs_add(b, &r->arrow_batch->data) != 0) err = -ENOMEM;
        } else if (r->response_type_case ==
                       SPARK__CONNECT__EXECUTE_PLAN_RESPONSE__RESPONSE_TYPE_SQL_COMMAND_RESULT &&
                   r->sql_command_result && r->sql_command_result->relation) {
            /* Commands (SHOW, DESCRIBE, EXPLAIN) run at once and answer with their rows inline. */
            Spark__Connect__Relation *rel = r->sql_command_result->relation;
            if (rel->rel_type_case == SPARK__CONNECT__RELATION__REL_TYPE_LOCAL_RELATION &&
                rel->local_relation && rel->local_relation->has_data &&
                blobs_add(b, &rel->local_relation->data) != 0)
                err = -ENOMEM;
        }
        spark__connect__execute_plan_response__free_unpacked(r, NULL);
    }
    if (rc == 0 && err) {
        st->code = KL_GRPC_RESOURCE_EXHAUSTED;
        st->message = strdup("out of memory while receiving a catalog listing");
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

/* ---- the cache ------------------------------------------------------------------------------ */

typedef struct fetch fetch;

typedef struct entry {
    kl_catalog_kind kind;
    char *key; /* lower-case "db\x1fname" */
    kl_catalog_rows *rows;
    bool failed;
    uint64_t at; /* when rows (or the failure) arrived; 0: never */
    fetch *pending;
    struct entry *next;
} entry;

struct kl_catalog {
    kl_kernel *k;
    int refs;       /* the tenant's, plus one per fetch under way */
    bool dead;      /* the tenant is gone */
    unsigned gen;   /* bumped by every invalidation */
    int local_mode; /* -1 unknown, 0 a remote endpoint, 1 the embedded server */
    char *session;  /* the Spark session the entries came from */
    entry *entries;
    size_t nentries;
    fetch *fetches;
    kl_waitq waiters; /* requests waiting for any fetch to end */
};

struct fetch {
    struct kl_catalog *cat;
    kl_catalog_kind kind;
    char *key;
    unsigned gen;
    /* A client of its own on the tenant's server session; the call starts before the fetch's
     * coroutine does, so it holds the channel even if the tenant switches endpoints meanwhile. */
    kl_spark_client *client;
    kl_spark_exec *exec;
    fetch *next;
};

static void entry_free(entry *e) {
    kl_catalog_rows_unref(e->rows);
    free(e->key);
    free(e);
}

static void drop_entries(struct kl_catalog *cat) {
    while (cat->entries) {
        entry *e = cat->entries;
        cat->entries = e->next;
        entry_free(e);
    }
    cat->nentries = 0;
}

static void cat_unref(struct kl_catalog *cat) {
    if (--cat->refs > 0) return;
    drop_entries(cat);
    free(cat->session);
    free(cat);
}

static struct kl_catalog *cat_of(kl_tenant *t) {
    if (!t->catalog) {
        t->catalog = calloc(1, sizeof *t->catalog);
        if (!t->catalog) return NULL;
        t->catalog->k = t->k;
        t->catalog->refs = 1;
        t->catalog->local_mode = -1;
    }
    return t->catalog;
}

static char *make_key(const char *db, const char *name) {
    char *key = NULL;
    if (asprintf(&key, "%s\x1f%s", db ? db : "", name ? name : "") < 0) return NULL;
    for (char *p = key; *p; p++) *p = (char)tolower((unsigned char)*p);
    return key;
}

static entry *find_entry(struct kl_catalog *cat, kl_catalog_kind kind, const char *key) {
    for (entry *e = cat->entries; e; e = e->next)
        if (e->kind == kind && strcmp(e->key, key) == 0) return e;
    return NULL;
}

static void wake_waiters(struct kl_catalog *cat) {
    kl_waiter *w;
    while ((w = cat->waiters.head)) {
        kl_waitq_remove(&cat->waiters, w);
        kl_loop_wake(cat->k->loop, w->co);
    }
}

void kl_catalog_invalidate(kl_tenant *t) {
    struct kl_catalog *cat = t->catalog;
    if (!cat) return;
    cat->gen++;
    drop_entries(cat);
}

void kl_catalog_tenant_free(kl_tenant *t) {
    struct kl_catalog *cat = t->catalog;
    if (!cat) return;
    t->catalog = NULL;
    cat->dead = true;
    /* Fetches under way end promptly with CANCELLED and drop their references. */
    for (fetch *f = cat->fetches; f; f = f->next)
        if (f->exec) kl_spark_exec_cancel(f->exec);
    cat_unref(cat);
}

/* ---- fetching ------------------------------------------------------------------------------- */

/* "`db`.`name`" (or "`name`") into a malloc'd string. */
static char *qualified(const char *db, const char *name) {
    size_t nd = db ? kl_sqllex_quote_ident(db, NULL, 0) + 1 : 0;
    size_t nn = kl_sqllex_quote_ident(name, NULL, 0);
    char *s = malloc(nd + nn + 1);
    if (!s) return NULL;
    if (db) {
        kl_sqllex_quote_ident(db, s, nd + 1);
        s[nd - 1] = '.';
    }
    kl_sqllex_quote_ident(name, s + nd, nn + 1);
    return s;
}

/* Starts the Spark call that lists or describes (kind, db, name) on client. */
static kl_spark_exec *start_call(kl_spark_client *client, kl_catalog_kind kind, const char *db,
                                 const char *name, const kl_spark_exec_opts *o) {
    Spark__Connect__Relation rel = SPARK__CONNECT__RELATION__INIT;
    Spark__Connect__Catalog cat = SPARK__CONNECT__CATALOG__INIT;
    Spark__Connect__ListTables lt = SPARK__CONNECT__LIST_TABLES__INIT;
    Spark__Connect__ListColumns lc = SPARK__CONNECT__LIST_COLUMNS__INIT;
    char *sql = NULL, *qual = NULL;
    kl_spark_exec *e = NULL;
    switch (kind) {
    case KL_CATALOG_DATABASES:
        return kl_spark_client_execute_command(client, "SHOW DATABASES", o);
    case KL_CATALOG_FUNCTIONS:
        return kl_spark_client_execute_command(client, "SHOW FUNCTIONS", o);
    case KL_CATALOG_TABLES:
        /* Catalog.listTables says table or view, which SHOW TABLES does not. */
        lt.db_name = (char *)db;
        cat.cat_type_case = SPARK__CONNECT__CATALOG__CAT_TYPE_LIST_TABLES;
        cat.list_tables = &lt;
        break;
    case KL_CATALOG_COLUMNS:
        qual = qualified(db, name);
        if (!qual) return NULL;
        lc.table_name = qual;
        cat.cat_type_case = SPARK__CONNECT__CATALOG__CAT_TYPE_LIST_COLUMNS;
        cat.list_columns = &lc;
        break;
    case KL_CATALOG_DESCRIBE:
    case KL_CATALOG_DESCRIBE_FUNC:
        qual = qualified(db, name);
        if (!qual || asprintf(&sql, "DESCRIBE %s EXTENDED %s",
                              kind == KL_CATALOG_DESCRIBE ? "TABLE" : "FUNCTION", qual) < 0) {
            free(qual);
            return NULL;
        }
        e = kl_spark_client_execute_command(client, sql, o);
        free(sql);
        free(qual);
        return e;
    }
    rel.rel_type_case = SPARK__CONNECT__RELATION__REL_TYPE_CATALOG;
    rel.catalog = &cat;
    e = kl_spark_client_execute_relation(client, &rel, -1, o);
    free(qual);
    return e;
}

static void fetch_free(fetch *f) {
    if (f->exec) kl_spark_exec_free(f->exec);
    kl_spark_client_free(f->client);
    free(f->key);
    free(f);
}

static void fetch_main(void *arg) {
    fetch *f = arg;
    struct kl_catalog *cat = f->cat;
    kl_catalog_rows *rows = NULL;
    kl_grpc_status st = {0};
    blobs b = {0};
    bool ok = drain(f->exec, &b, &st) == 0;
    kl_spark_exec_free(f->exec);
    f->exec = NULL;
    if (ok && !cat->dead) {
        decode_job j = {.in = &b};
        kl_pool_run(cat->k->pool, decode_work, &j);
        rows = j.out;
        if (!rows) KL_DEBUG("catalog", "listing not decoded: %s", j.err);
    } else if (!ok) {
        KL_DEBUG("catalog", "fetch failed: %s", st.details ? st.details : "");
    }
    kl_grpc_status_clear(&st);
    blobs_free(&b);

    if (!cat->dead && f->gen == cat->gen) {
        entry *e = find_entry(cat, f->kind, f->key);
        if (e && e->pending == f) {
            kl_catalog_rows_unref(e->rows);
            e->rows = rows_ref(rows);
            e->failed = rows == NULL;
            e->at = kl_catalog_now();
            e->pending = NULL;
        }
    }
    kl_catalog_rows_unref(rows);
    for (fetch **p = &cat->fetches; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    wake_waiters(cat);
    fetch_free(f);
    cat_unref(cat);
}

static void has_session(const char *key, void *value, void *arg) {
    (void)key;
    if (((kl_tenant *)value)->spark) *(bool *)arg = true;
}

/* True when a Spark session can be had now without waiting: the tenant has one, the endpoint is
 * remote (opening a channel does not wait), or the embedded server already serves a connection. */
static bool may_connect(kl_tenant *t, struct kl_catalog *cat) {
    if (t->spark) return true;
    if (cat->local_mode < 0) {
        kl_sc_remote r;
        char err[256];
        cat->local_mode = 1;
        if (kl_sc_remote_select(t->k->opts.spark_remote, &r, err, sizeof err) == 0) {
            cat->local_mode = r.kind == KL_SC_KIND_LOCAL;
            kl_sc_remote_free(&r);
        }
    }
    if (!cat->local_mode || t->remote) return true;
    /* The channel to the embedded server exists once any connection has a session. */
    bool any = false;
    kl_strmap_foreach(t->k->tenants, has_session, &any);
    return any;
}

static void ctx_clear(kl_magic_ctx *c) {
    free(c->ename);
    free(c->evalue);
    json_decref(c->traceback);
    free(c->result_text);
    json_decref(c->payload);
}

/* The tenant's Spark client, made now for the user of parent when that cannot wait. */
static kl_spark_client *session_of(kl_tenant *t, struct kl_catalog *cat, const kl_msg *parent) {
    if (t->spark || !parent || !may_connect(t, cat)) return t->spark;
    kl_magic_ctx c = {.k = t->k, .t = t, .parent = parent, .silent = true};
    kl_spark_client *client = kl_sql_client(&c);
    ctx_clear(&c);
    return client;
}

static int start_fetch(kl_tenant *t, struct kl_catalog *cat, entry *e, const kl_msg *parent,
                       const char *db, const char *name) {
    kl_spark_client *client = session_of(t, cat, parent);
    if (!client || t->k->shutting_down) return -1;
    fetch *f = calloc(1, sizeof *f);
    if (!f) return -1;
    kl_spark_common cm;
    kl_spark_client_common(client, &cm);
    const char *user =
        cm.user_context && cm.user_context->user_id ? cm.user_context->user_id : NULL;
    if (!cat->session) cat->session = strdup(cm.session_id);
    f->cat = cat;
    f->kind = e->kind;
    f->gen = cat->gen;
    f->key = strdup(e->key);
    f->client = kl_spark_client_new(kl_spark_client_channel(client), cm.session_id, user);
    if (!f->key || !f->client) {
        fetch_free(f);
        return -1;
    }
    if (cm.server_session_id) kl_spark_client_observe(f->client, cm.server_session_id);
    kl_spark_exec_opts o = {.call = {.timeout_ms = KL_CATALOG_FETCH_TIMEOUT_MS}};
    f->exec = start_call(f->client, e->kind, db, name, &o);
    if (!f->exec || !kl_loop_spawn(t->k->loop, fetch_main, f, 0)) {
        fetch_free(f);
        return -1;
    }
    cat->refs++;
    f->next = cat->fetches;
    cat->fetches = f;
    e->pending = f;
    return 0;
}

kl_catalog_rows *kl_catalog_get(kl_tenant *t, const kl_msg *parent, kl_catalog_kind kind,
                                const char *db, const char *name, uint64_t deadline, bool *failed) {
    if (failed) *failed = false;
    struct kl_catalog *cat = cat_of(t);
    char *key = make_key(db, name);
    if (!cat || !key) {
        free(key);
        return NULL;
    }
    /* Names of another session (after %connect, or a restarted server) are not this one's. */
    const char *sid = t->spark ? kl_spark_client_session_id(t->spark) : NULL;
    if (sid && (!cat->session || strcmp(cat->session, sid) != 0)) {
        cat->gen++;
        drop_entries(cat);
        free(cat->session);
        cat->session = strdup(sid);
    }
    entry *e = find_entry(cat, kind, key);
    if (!e) {
        if (cat->nentries >= MAX_ENTRIES) {
            cat->gen++;
            drop_entries(cat);
        }
        e = calloc(1, sizeof *e);
        if (!e) {
            free(key);
            return NULL;
        }
        e->kind = kind;
        e->key = key;
        e->next = cat->entries;
        cat->entries = e;
        cat->nentries++;
    } else {
        free(key);
    }
    uint64_t now = kl_catalog_now();
    uint64_t ttl = e->failed ? KL_CATALOG_FAILED_TTL_MS : KL_CATALOG_TTL_MS;
    if (!e->pending && (e->at == 0 || now - e->at >= ttl)) start_fetch(t, cat, e, parent, db, name);
    /* Wait while a fetch is under way and nothing (or only a failure) is known. */
    while (e->pending && (e->at == 0 || e->failed) && now < deadline && !t->k->shutting_down) {
        kl_waiter w = {.co = kl_coro_current()};
        kl_waitq_push(&cat->waiters, &w);
        kl_loop_sleep(t->k->loop, deadline - now);
        kl_waitq_remove(&cat->waiters, &w);
        now = kl_catalog_now();
        /* An invalidation while parked would have freed e; only this tenant invalidates, and it
         * is the one parked here, but look the entry up again rather than trust that. */
        char *again = make_key(db, name);
        e = again ? find_entry(cat, kind, again) : NULL;
        free(again);
        if (!e) return NULL;
    }
    if (failed) *failed = e->failed && e->at != 0;
    return e->failed ? NULL : rows_ref(e->rows);
}

/* ---- completion source ---------------------------------------------------------------------- */

static kl_catalog_kind kind_of(kl_names_kind k) {
    switch (k) {
    case KL_NAMES_DATABASES:
        return KL_CATALOG_DATABASES;
    case KL_NAMES_TABLES:
        return KL_CATALOG_TABLES;
    case KL_NAMES_COLUMNS:
        return KL_CATALOG_COLUMNS;
    case KL_NAMES_FUNCTIONS:
    default:
        return KL_CATALOG_FUNCTIONS;
    }
}

/* listTables(db) also lists the temporary views, which belong to no database: keep them only for
 * the current database. */
static void offer_tables(const kl_catalog_rows *r, const char *db, kl_complete_sink *sink) {
    int cname = kl_catalog_column(r, "name"), cns = kl_catalog_column(r, "namespace");
    int ctype = kl_catalog_column(r, "tableType"), ctemp = kl_catalog_column(r, "isTemporary");
    if (cname < 0) return;
    for (size_t i = 0; i < r->nrows; i++) {
        const char *name = kl_catalog_cell(r, i, (size_t)cname);
        const char *ns = cns >= 0 ? kl_catalog_cell(r, i, (size_t)cns) : NULL;
        const char *type = ctype >= 0 ? kl_catalog_cell(r, i, (size_t)ctype) : NULL;
        const char *temp = ctemp >= 0 ? kl_catalog_cell(r, i, (size_t)ctemp) : NULL;
        if (db && (!ns || strcasecmp(ns, db) != 0)) continue;
        bool view =
            (type && (strcasecmp(type, "VIEW") == 0 || strcasecmp(type, "TEMPORARY") == 0)) ||
            (temp && strcmp(temp, "true") == 0);
        kl_complete_offer(sink, name, view ? "view" : "table");
    }
}

static void offer_column(const kl_catalog_rows *r, const char *column, const char *type,
                         kl_complete_sink *sink) {
    int c = kl_catalog_column(r, column);
    if (c < 0 && r->ncols > 0) c = 0;
    for (size_t i = 0; c >= 0 && i < r->nrows; i++) {
        const char *name = kl_catalog_cell(r, i, (size_t)c);
        if (!name) continue;
        if (strcmp(type, "function") == 0) {
            /* SHOW FUNCTIONS qualifies persistent functions: spark_catalog.default.f */
            const char *dot = strrchr(name, '.');
            if (dot && dot[1]) name = dot + 1;
        }
        kl_complete_offer(sink, name, type);
    }
}

static void source_names(void *arg, const kl_names_query *q, kl_complete_sink *sink) {
    kl_catalog_source *s = arg;
    /* A prefetch only starts fetches: its deadline is now. */
    uint64_t deadline = sink ? s->deadline : 0;
    kl_catalog_rows *r =
        kl_catalog_get(s->t, s->parent, kind_of(q->kind), q->db, q->table, deadline, NULL);
    if (!r || !sink) {
        kl_catalog_rows_unref(r);
        return;
    }
    switch (q->kind) {
    case KL_NAMES_DATABASES:
        offer_column(r, "namespace", "database", sink);
        break;
    case KL_NAMES_TABLES:
        offer_tables(r, q->db, sink);
        break;
    case KL_NAMES_COLUMNS:
        offer_column(r, "name", "column", sink);
        break;
    case KL_NAMES_FUNCTIONS:
        offer_column(r, "function", "function", sink);
        break;
    }
    kl_catalog_rows_unref(r);
}

void kl_catalog_source_init(kl_catalog_source *s, kl_tenant *t, const kl_msg *parent,
                            uint64_t deadline) {
    s->source.arg = s;
    s->source.names = source_names;
    s->t = t;
    s->parent = parent;
    s->deadline = deadline;
}

json_t *kl_catalog_complete(kl_kernel *k, kl_tenant *t, const kl_msg *msg) {
    json_t *code = json_object_get(msg->content, "code");
    json_t *pos = json_object_get(msg->content, "cursor_pos");
    kl_catalog_source src;
    kl_catalog_source_init(&src, t, msg, kl_catalog_now() + KL_CATALOG_COMPLETE_WAIT_MS);
    return kl_complete_with(
        json_is_string(code) ? json_string_value(code) : "",
        json_is_integer(pos) && json_integer_value(pos) > 0 ? (size_t)json_integer_value(pos) : 0,
        k->magics, &src.source);
}

/* ---- invalidation --------------------------------------------------------------------------- */

static const char *const DDL_WORDS[] = {"CREATE",  "DROP",    "ALTER",    "USE",     "CACHE",
                                        "MSCK",    "REFRESH", "ADD",      "REPLACE", "IMPORT",
                                        "UNCACHE", "RENAME",  "TRUNCATE", NULL};

bool kl_catalog_is_ddl(const char *stmt) {
    size_t len = strlen(stmt), pos = 0;
    kl_tok t, u;
    if (!kl_sqllex_next_code(stmt, len, &pos, &t)) return false;
    for (const char *const *w = DDL_WORDS; *w; w++)
        if (kl_sqllex_is(stmt, &t, *w)) return true;
    /* SET CATALOG x, SET NAMESPACE x change what unqualified names mean; SET key=value does not. */
    if (kl_sqllex_is(stmt, &t, "SET") && kl_sqllex_next_code(stmt, len, &pos, &u))
        return kl_sqllex_is(stmt, &u, "CATALOG") || kl_sqllex_is(stmt, &u, "NAMESPACE") ||
               kl_sqllex_is(stmt, &u, "SCHEMA") || kl_sqllex_is(stmt, &u, "DATABASE");
    return false;
}

void kl_catalog_statement_done(kl_tenant *t, const char *stmt) {
    if (t && stmt && kl_catalog_is_ddl(stmt)) kl_catalog_invalidate(t);
}

/* ---- commands for magics -------------------------------------------------------------------- */

static void cancel_exec(void *arg) {
    kl_spark_exec_cancel(arg);
}

int kl_catalog_query(kl_magic_ctx *c, const char *stmt, kl_catalog_rows **out) {
    *out = NULL;
    kl_spark_client *client = kl_sql_client(c);
    if (!client) return -1;
    kl_spark_exec *e = kl_spark_client_execute_command(client, stmt, NULL);
    if (!e) return kl_ctx_error(c, "MemoryError", "out of memory");
    blobs b = {0};
    kl_grpc_status st = {0};
    c->t->interrupt_hook = cancel_exec;
    c->t->interrupt_arg = e;
    int rc = drain(e, &b, &st);
    c->t->interrupt_hook = NULL;
    c->t->interrupt_arg = NULL;
    kl_spark_exec_free(e);
    if (c->t->interrupted) {
        rc = kl_ctx_error(c, "KeyboardInterrupt", "interrupted");
    } else if (rc != 0) {
        rc = kl_sql_report(c, &st, stmt);
    } else {
        decode_job j = {.in = &b};
        kl_pool_run(c->k->pool, decode_work, &j);
        *out = j.out;
        if (!j.out) rc = kl_ctx_error(c, "RenderError", "the answer could not be read: %s", j.err);
    }
    kl_grpc_status_clear(&st);
    blobs_free(&b);
    return rc;
}
