/* %AddJar, %AddFile and %AddDeps: fetching jars and files (kernel/download.c, on the pool) and
 * uploading them to the connection's Spark session as artifacts (spark/artifact.c); %AddDeps first
 * resolves Maven coordinates with the user's own resolver (mvn or coursier) run as a child
 * process. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "kernel/download.h"
#include "kernel/execute.h"
#include "kernel/sql.h"
#include "spark/artifact.h"
#include "spark/client.h"

/* How long a resolver may run: a first Maven run downloads its plugins. */
#define RESOLVE_TIMEOUT_MS (15 * 60 * 1000)
/* Output kept from a resolver, per stream (the end is what explains a failure). */
#define CHILD_OUTPUT_MAX (1024 * 1024)
/* The Maven goal %AddDeps runs; pinned so that results do not change with Maven's defaults. */
#define MVN_COPY_GOAL "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"

static double now_s(void) {
    return (double)uv_hrtime() / 1e9;
}

/* ---- arguments ------------------------------------------------------------------------------ */

typedef struct argv_t {
    char **v;
    size_t n;
} argv_t;

static void argv_free(argv_t *a) {
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* Splits s like a shell would for words: whitespace separates, '...' is literal, "..." allows \"
 * and \\, a backslash outside quotes escapes the next character. -1 on an unterminated quote. */
static int split_args(const char *s, argv_t *out) {
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    size_t slen = strlen(s);
    while (*s) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        char *w = malloc(slen + 1), *o = w;
        if (!w) goto fail;
        char quote = 0;
        for (; *s; s++) {
            if (quote == '\'') {
                if (*s == '\'')
                    quote = 0;
                else
                    *o++ = *s;
            } else if (quote == '"') {
                if (*s == '"')
                    quote = 0;
                else if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                    *o++ = *++s;
                else
                    *o++ = *s;
            } else if (*s == ' ' || *s == '\t') {
                break;
            } else if (*s == '\'' || *s == '"') {
                quote = *s;
            } else if (*s == '\\' && s[1]) {
                *o++ = *++s;
            } else {
                *o++ = *s;
            }
        }
        *o = 0;
        if (quote) {
            free(w);
            goto fail;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 8;
            char **v = realloc(out->v, cap * sizeof *v);
            if (!v) {
                free(w);
                goto fail;
            }
            out->v = v;
        }
        out->v[out->n++] = w;
    }
    return 0;
fail:
    argv_free(out);
    return -1;
}

static void fmt_size(uint64_t n, char *buf, size_t len) {
    if (n < 1024)
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    else if (n < 1024 * 1024)
        snprintf(buf, len, "%.1f KiB", (double)n / 1024);
    else
        snprintf(buf, len, "%.1f MiB", (double)n / (1024 * 1024));
}

/* ---- what this kernel registered in each Spark session --------------------------------------- */

/* Why a record of our own, and not ArtifactStatus: Spark's ArtifactStatus answers only for
 * `cache/<sha256>` names, and a `cache/` artifact is a session-scoped blob in the block manager
 * that only a CachedLocalRelation can refer to -- it never reaches the class path or SparkFiles.
 * A jar counts only under `jars/` (and a file under `files/`), which ArtifactStatus always reports
 * absent (checked on Spark 4.0.1: a `jars/` name just uploaded reads exists=false). Uploading the
 * bytes a second time under `cache/` just to make ArtifactStatus useful would double every upload
 * and keep the copy in the driver's memory. So the kernel remembers which name it registered with
 * which SHA-256 in which server-side session; the server backs this up: it accepts a re-upload of
 * the same bytes under the same name as a no-op and refuses different bytes
 * (ARTIFACT_ALREADY_EXISTS), since artifacts cannot be replaced. A restarted server has a new
 * server-side session id, so nothing recorded for the old one matches. Loop thread only. Entries
 * are a few dozen bytes per artifact and live as long as the kernel. */
static kl_strmap *registered;

static char *record_key(kl_spark_client *cl, const char *name) {
    const char *ss = kl_spark_client_server_session_id(cl);
    char *key = NULL;
    if (asprintf(&key, "%s\n%s\n%s", kl_spark_client_session_id(cl), ss ? ss : "", name) < 0)
        return NULL;
    return key;
}

/* The SHA-256 recorded for name in cl's session, or NULL. */
static const char *record_get(kl_spark_client *cl, const char *name) {
    if (!registered) return NULL;
    char *key = record_key(cl, name);
    const char *sha = key ? kl_strmap_get(registered, key) : NULL;
    free(key);
    return sha;
}

static void record_put(kl_spark_client *cl, const char *name, const char *sha) {
    if (!registered && !(registered = kl_strmap_new())) return;
    char *key = record_key(cl, name), *value = strdup(sha);
    /* No old value can be lost: a name recorded with other bytes is refused before uploading,
     * and with the same bytes it is not uploaded again. */
    if (!key || !value || kl_strmap_put(registered, key, value) != 0) free(value);
    free(key);
}

/* ---- one artifact operation ------------------------------------------------------------------ */

typedef enum { KIND_JAR, KIND_FILE } art_kind;

typedef struct art {
    char *src; /* as the user gave it (or the resolver's path) */
    kl_download dl;
    char sha[65];
    char *name;     /* "jars/x.jar" or "files/x" */
    double fetch_s; /* time to fetch and check it */
    bool present;   /* already registered in this session: not uploaded */
    bool dup;       /* the same name and bytes appear earlier in this operation */
} art;

typedef struct child child;

/* State an interrupt reaches while the operation waits (the tenant's interrupt hook). */
typedef struct op {
    kl_magic_ctx *c;
    art_kind kind;
    art *v;
    size_t n;
    bool force;
    atomic_bool cancel;
    kl_artifact_upload *upload; /* while uploading */
    child *proc;                /* while a resolver runs */
    const char *via; /* "mvn" when the sources are a resolver's temporary files; else NULL */
    /* Result of the pool's preparation. */
    int failed; /* index + 1 of the source that failed, 0 when none */
    bool not_a_jar;
    char err[2048];
} op;

static void op_free(op *o) {
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].src);
        free(o->v[i].name);
        kl_download_clear(&o->v[i].dl);
    }
    free(o->v);
    o->v = NULL;
    o->n = 0;
}

static int op_add_source(op *o, const char *src) {
    art *v = realloc(o->v, (o->n + 1) * sizeof *v);
    if (!v) return -1;
    o->v = v;
    memset(&v[o->n], 0, sizeof v[o->n]);
    v[o->n].src = strdup(src);
    if (!v[o->n].src) return -1;
    o->n++;
    return 0;
}

static void child_kill(child *ch);

static void on_interrupt(void *arg) {
    op *o = arg;
    atomic_store(&o->cancel, true);
    if (o->upload) kl_artifact_upload_cancel(o->upload);
    if (o->proc) child_kill(o->proc);
}

static void hook_on(op *o) {
    o->c->t->interrupt_hook = on_interrupt;
    o->c->t->interrupt_arg = o;
}

static void hook_off(op *o) {
    o->c->t->interrupt_hook = NULL;
    o->c->t->interrupt_arg = NULL;
}

static bool interrupted(op *o) {
    return o->c->t->interrupted || atomic_load(&o->cancel);
}

/* Pool: fetches every source, hashes it, and checks that jars are zips. Stops at the first
 * failure. */
static void prepare_work(void *arg) {
    op *o = arg;
    kl_download_opts dopt = {.force = o->force, .cancel = &o->cancel};
    for (size_t i = 0; i < o->n; i++) {
        art *a = &o->v[i];
        double t0 = now_s();
        char why[1024];
        uint64_t size = 0;
        if (kl_download_fetch(a->src, &dopt, &a->dl, o->err, sizeof o->err) != 0) {
            o->failed = (int)i + 1;
            return;
        }
        if (kl_download_sha256(a->dl.path, a->sha, &size, why, sizeof why) != 0) {
            snprintf(o->err, sizeof o->err, "%s: %s", a->src, why);
            o->failed = (int)i + 1;
            return;
        }
        a->dl.size = size; /* what was hashed is what is uploaded */
        if (o->kind == KIND_JAR && kl_zip_check_file(a->dl.path, why, sizeof why) != 0) {
            if (a->dl.remote)
                snprintf(o->err, sizeof o->err, "%s is not a jar: %s (downloaded to %s)", a->src,
                         why, a->dl.path);
            else
                snprintf(o->err, sizeof o->err, "%s is not a jar: %s", a->src, why);
            o->not_a_jar = true;
            o->failed = (int)i + 1;
            return;
        }
        a->fetch_s = now_s() - t0;
    }
}

static char *artifact_name(art_kind kind, const char *file_name) {
    char *name = NULL;
    size_t n = strlen(file_name);
    if (kind == KIND_JAR) {
        bool has_ext = n >= 4 && strcasecmp(file_name + n - 4, ".jar") == 0;
        if (asprintf(&name, "jars/%s%s", file_name, has_ext ? "" : ".jar") < 0) name = NULL;
    } else if (asprintf(&name, "files/%s", file_name) < 0) {
        name = NULL;
    }
    return name;
}

static void report_line(kl_magic_ctx *c, const art *a, double upload_s, const char *via) {
    char size[32];
    fmt_size(a->dl.size, size, sizeof size);
    const char *from = !a->dl.remote      ? "from"
                       : a->dl.from_cache ? "cached download of"
                                          : "downloaded from";
    char *line = NULL;
    if (asprintf(&line, "%s: %s, %s in %.2f s (%s %s)\n", a->name,
                 a->present ? "already present" : "uploaded", size,
                 a->fetch_s + (a->present ? 0 : upload_s), via ? "resolved by" : from,
                 via ? via : a->src) >= 0)
        kl_ctx_stream(c, "stdout", line);
    free(line);
}

/* Coroutine: fetches, checks and uploads o's sources, reporting each. 0 or -1 (error recorded). */
static int add_all(op *o) {
    kl_magic_ctx *c = o->c;
    if (interrupted(o)) return kl_ctx_error(c, "KeyboardInterrupt", "the cell was interrupted");
    hook_on(o);
    kl_pool_run(c->k->pool, prepare_work, o);
    hook_off(o);
    if (interrupted(o)) return kl_ctx_error(c, "KeyboardInterrupt", "the cell was interrupted");
    if (o->failed)
        return kl_ctx_error(c, o->not_a_jar ? "NotAJarError" : "ArtifactError", "%s", o->err);

    kl_spark_client *cl = kl_sql_client(c);
    if (!cl) return -1;
    for (size_t i = 0; i < o->n; i++) {
        art *a = &o->v[i];
        a->name = artifact_name(o->kind, a->dl.file_name);
        if (!a->name) return kl_ctx_error(c, "MemoryError", "out of memory");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(o->v[j].name, a->name) != 0) continue;
            if (strcmp(o->v[j].sha, a->sha) != 0)
                return kl_ctx_error(c, "ArtifactError",
                                    "%s and %s would both be %s, with different contents; a Spark "
                                    "session cannot hold two artifacts of one name",
                                    o->v[j].src, a->src, a->name);
            a->dup = true;
        }
        const char *had = record_get(cl, a->name);
        if (had && strcmp(had, a->sha) != 0)
            return kl_ctx_error(
                c, "ARTIFACT_ALREADY_EXISTS",
                "%s (from %s) differs from the %s this Spark session already has (SHA-256 %.12s... "
                "now, %.12s... then); Spark cannot replace an artifact: give the new one another "
                "file name, or restart the kernel for a fresh session",
                a->name, a->src, a->name, a->sha, had);
        a->present = had != NULL;
    }

    double t0 = now_s();
    kl_artifact_upload *u = kl_artifact_upload_new(cl, c->k->pool);
    if (!u) return kl_ctx_error(c, "MemoryError", "out of memory");
    size_t *index = calloc(o->n ? o->n : 1, sizeof *index), nup = 0;
    if (!index) {
        kl_artifact_upload_free(u);
        return kl_ctx_error(c, "MemoryError", "out of memory");
    }
    for (size_t i = 0; i < o->n; i++) {
        art *a = &o->v[i];
        if (a->present || a->dup) continue;
        if (kl_artifact_upload_add(u, a->name, a->dl.path, a->dl.size) != 0) {
            free(index);
            kl_artifact_upload_free(u);
            return kl_ctx_error(c, "MemoryError", "out of memory");
        }
        index[nup++] = i;
    }
    kl_grpc_status st = {0};
    o->upload = u;
    hook_on(o);
    int rc = interrupted(o) ? -3 : kl_artifact_upload_run(u, NULL, &st);
    hook_off(o);
    o->upload = NULL;
    double upload_s = now_s() - t0;
    int result = 0;
    if (rc == -3 || (rc != 0 && interrupted(o))) {
        result = kl_ctx_error(c, "KeyboardInterrupt",
                              "the cell was interrupted; the upload was cancelled");
    } else if (rc == -1) {
        result = kl_sql_report(c, &st, NULL);
    } else if (rc == -2) {
        result = kl_ctx_error(c, "ArtifactError", "%s", kl_artifact_upload_error(u));
    } else {
        const art *bad = NULL;
        for (size_t k = 0; k < nup; k++) {
            art *a = &o->v[index[k]];
            if (kl_artifact_upload_crc_ok(u, k))
                record_put(cl, a->name, a->sha);
            else if (!bad)
                bad = a;
        }
        for (size_t i = 0; i < o->n; i++) {
            art *a = &o->v[i];
            if (a->dup) continue;
            bool ok = a->present;
            for (size_t k = 0; k < nup && !ok; k++)
                if (index[k] == i) ok = kl_artifact_upload_crc_ok(u, k);
            if (ok) report_line(c, a, upload_s, o->via);
        }
        if (bad)
            result = kl_ctx_error(
                c, "ArtifactCRCError",
                "the Spark server rejected %s (from %s): a CRC-32 check of its chunks failed, so "
                "the bytes were damaged on the way and the server kept nothing of it; run the "
                "magic again",
                bad->name, bad->src);
    }
    kl_grpc_status_clear(&st);
    free(index);
    kl_artifact_upload_free(u);
    return result;
}

/* ---- %AddJar, %AddFile ----------------------------------------------------------------------- */

static const char ADDJAR_USAGE[] = "%AddJar <path | file:// | http(s):// URL> ... [-f]";
static const char ADDFILE_USAGE[] = "%AddFile <path | file:// | http(s):// URL> ... [-f]";

static int add_sources(kl_magic_ctx *c, const char *args, art_kind kind) {
    const char *usage = kind == KIND_JAR ? ADDJAR_USAGE : ADDFILE_USAGE;
    argv_t a;
    if (split_args(args, &a) != 0)
        return kl_ctx_error(c, "UsageError", "unterminated quote in: %s", args);
    op o = {.c = c, .kind = kind};
    int rc = 0;
    for (size_t i = 0; i < a.n && rc == 0; i++) {
        const char *w = a.v[i];
        if (strcmp(w, "-f") == 0 || strcmp(w, "--force") == 0) {
            o.force = true;
        } else if (kind == KIND_JAR && strcmp(w, "--magic") == 0) {
            rc = kl_ctx_error(c, "UsageError",
                              "Kindling's magic plugins are shared objects, not jars: load one "
                              "with %%load_magic PATH");
        } else if (w[0] == '-' && w[1]) {
            rc = kl_ctx_error(c, "UsageError", "unknown option %s; usage: %s", w, usage);
        } else if (op_add_source(&o, w) != 0) {
            rc = kl_ctx_error(c, "MemoryError", "out of memory");
        }
    }
    if (rc == 0 && o.n == 0) rc = kl_ctx_error(c, "UsageError", "usage: %s", usage);
    if (rc == 0) rc = add_all(&o);
    op_free(&o);
    argv_free(&a);
    return rc;
}

static int magic_addjar(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    return add_sources(c, args, KIND_JAR);
}

static int magic_addfile(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    return add_sources(c, args, KIND_FILE);
}

/* ---- child processes (resolvers) ------------------------------------------------------------ */

typedef struct obuf {
    char *s;
    size_t len;
    bool cut; /* the start was dropped to stay under CHILD_OUTPUT_MAX */
} obuf;

struct child {
    kl_loop *loop;
    kl_coro *co;
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    int handles; /* open handles still to be closed */
    int streams; /* pipes not at EOF yet */
    bool exited, timed_out, killed;
    int64_t status;
    int term_signal;
    obuf o, e;
};

static void obuf_add(obuf *b, const char *data, size_t n) {
    if (n >= CHILD_OUTPUT_MAX) {
        data += n - CHILD_OUTPUT_MAX / 2;
        n = CHILD_OUTPUT_MAX / 2;
        b->len = 0;
        b->cut = true;
    }
    if (b->len + n > CHILD_OUTPUT_MAX) {
        size_t drop = b->len + n - CHILD_OUTPUT_MAX / 2;
        if (drop > b->len) drop = b->len;
        memmove(b->s, b->s + drop, b->len - drop);
        b->len -= drop;
        b->cut = true;
    }
    char *s = realloc(b->s, b->len + n + 1);
    if (!s) return;
    b->s = s;
    memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void child_wake(child *ch) {
    kl_loop_wake(ch->loop, ch->co);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    child *ch = s->data;
    if (n > 0) obuf_add(s == (uv_stream_t *)&ch->out ? &ch->o : &ch->e, buf->base, (size_t)n);
    free(buf->base);
    if (n < 0) {
        uv_read_stop(s);
        ch->streams--;
        child_wake(ch);
    }
}

static void on_drained(uv_timer_t *t) {
    child *ch = t->data;
    /* Something the resolver left behind still holds its output open: stop waiting for it, and
     * stop it (it is in the resolver's process group, which outlives its leader only this way). */
    kill(-ch->proc.pid, SIGKILL);
    uv_read_stop((uv_stream_t *)&ch->out);
    uv_read_stop((uv_stream_t *)&ch->err);
    ch->streams = 0;
    child_wake(ch);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal) {
    child *ch = p->data;
    ch->exited = true;
    ch->status = status;
    ch->term_signal = term_signal;
    /* The output normally ends with the process; give what is still in the pipes a moment. */
    uv_timer_start(&ch->timer, on_drained, 2000, 0);
    child_wake(ch);
}

static void child_kill(child *ch) {
    if (ch->exited) return;
    ch->killed = true;
    /* The child leads its own process group (UV_PROCESS_DETACHED), so this reaches what it
     * started too (mvn's JVM, coursier's launcher). */
    kill(-ch->proc.pid, SIGKILL);
}

static void on_timeout(uv_timer_t *t) {
    child *ch = t->data;
    ch->timed_out = true;
    child_kill(ch);
}

static void on_closed(uv_handle_t *h) {
    child *ch = h->data;
    ch->handles--;
    child_wake(ch);
}

/* Coroutine: runs argv (argv[0] an absolute path) with stdin from /dev/null, collecting its
 * stdout and stderr, killed after timeout_ms. 0 once it has ended (see ch->exited, status...), or
 * a libuv error from starting it. o->proc points at ch while it runs, for interrupts. */
static int child_run(op *o, child *ch, char **argv, uint64_t timeout_ms) {
    uv_loop_t *uv = kl_loop_uv(o->c->k->loop);
    memset(ch, 0, sizeof *ch);
    ch->loop = o->c->k->loop;
    ch->co = kl_coro_current();
    uv_pipe_init(uv, &ch->out, 0);
    uv_pipe_init(uv, &ch->err, 0);
    uv_timer_init(uv, &ch->timer);
    ch->out.data = ch->err.data = ch->timer.data = ch->proc.data = ch;
    ch->handles = 4; /* the process handle needs closing even when uv_spawn fails */
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&ch->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&ch->err},
    };
    uv_process_options_t opts = {
        .exit_cb = on_exit_cb,
        .file = argv[0],
        .args = argv,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(uv, &ch->proc, &opts);
    if (rc == 0) {
        ch->streams = 2;
        uv_read_start((uv_stream_t *)&ch->out, on_alloc, on_read);
        uv_read_start((uv_stream_t *)&ch->err, on_alloc, on_read);
        uv_timer_start(&ch->timer, on_timeout, timeout_ms, 0);
        o->proc = ch;
        hook_on(o);
        if (o->c->t->interrupted) child_kill(ch);
        while (!ch->exited || ch->streams > 0) kl_loop_park(ch->loop);
        hook_off(o);
        o->proc = NULL;
    }
    uv_close((uv_handle_t *)&ch->proc, on_closed);
    uv_close((uv_handle_t *)&ch->out, on_closed);
    uv_close((uv_handle_t *)&ch->err, on_closed);
    uv_close((uv_handle_t *)&ch->timer, on_closed);
    while (ch->handles > 0) kl_loop_park(ch->loop);
    return rc;
}

static void child_clear(child *ch) {
    free(ch->o.s);
    free(ch->e.s);
}

/* ---- %AddDeps ------------------------------------------------------------------------------- */

static const char ADDDEPS_USAGE[] =
    "%AddDeps GROUP ARTIFACT VERSION [--transitive] [--exclude GROUP:ARTIFACT]... "
    "[--repository URL]... [--classifier NAME] [-f]";

typedef enum { RES_NONE, RES_MVN, RES_COURSIER } resolver_kind;

typedef struct deps {
    char *group, *artifact, *version, *classifier;
    bool transitive, force;
    argv_t excludes, repos;
    /* Filled on the pool. */
    resolver_kind kind;
    char resolver[4096];
    char *tmp; /* mkdtemp'ed work directory (mvn) */
    char err[1024];
    argv_t jars; /* resolved jar paths */
} deps;

static bool valid_word(const char *s, const char *extra) {
    if (!*s) return false;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && !(ch >= '0' && ch <= '9') &&
            !strchr("._-", ch) && !(extra && strchr(extra, ch)))
            return false;
    }
    return true;
}

static bool find_on_path(const char *name, char *out, size_t len) {
    const char *path = getenv("PATH");
    if (!path) return false;
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0) {
            snprintf(out, len, "%.*s/%s", (int)n, path, name);
            struct stat sb;
            if (out[0] == '/' && stat(out, &sb) == 0 && S_ISREG(sb.st_mode) &&
                access(out, X_OK) == 0)
                return true;
        }
        path += n;
        if (*path == ':') path++;
    }
    return false;
}

static void xml_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* Pool: picks the resolver and, for Maven, writes a throwaway project that depends on the
 * coordinate. */
static void deps_setup_work(void *arg) {
    deps *d = arg;
    if (find_on_path("mvn", d->resolver, sizeof d->resolver))
        d->kind = RES_MVN;
    else if (find_on_path("coursier", d->resolver, sizeof d->resolver) ||
             find_on_path("cs", d->resolver, sizeof d->resolver))
        d->kind = RES_COURSIER;
    else
        d->kind = RES_NONE;
    if (d->kind != RES_MVN) return;
    const char *tmpdir = getenv("TMPDIR");
    if (asprintf(&d->tmp, "%s/kindling-adddeps-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp") < 0) {
        d->tmp = NULL;
        snprintf(d->err, sizeof d->err, "out of memory");
        return;
    }
    if (!mkdtemp(d->tmp)) {
        snprintf(d->err, sizeof d->err, "cannot create a work directory %s: %s", d->tmp,
                 strerror(errno));
        free(d->tmp);
        d->tmp = NULL;
        return;
    }
    char *pom = NULL;
    if (asprintf(&pom, "%s/pom.xml", d->tmp) < 0) {
        snprintf(d->err, sizeof d->err, "out of memory");
        return;
    }
    FILE *f = fopen(pom, "we");
    if (!f) {
        snprintf(d->err, sizeof d->err, "cannot write %s: %s", pom, strerror(errno));
        free(pom);
        return;
    }
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n"
          "  <modelVersion>4.0.0</modelVersion>\n"
          "  <groupId>kindling</groupId>\n  <artifactId>adddeps</artifactId>\n"
          "  <version>0</version>\n  <packaging>pom</packaging>\n",
          f);
    if (d->repos.n) {
        fputs("  <repositories>\n", f);
        for (size_t i = 0; i < d->repos.n; i++) {
            fprintf(f, "    <repository><id>kindling-%zu</id><url>", i + 1);
            xml_escaped(f, d->repos.v[i]);
            fputs("</url></repository>\n", f);
        }
        fputs("  </repositories>\n", f);
    }
    fputs("  <dependencies>\n    <dependency>\n      <groupId>", f);
    xml_escaped(f, d->group);
    fputs("</groupId>\n      <artifactId>", f);
    xml_escaped(f, d->artifact);
    fputs("</artifactId>\n      <version>", f);
    xml_escaped(f, d->version);
    fputs("</version>\n", f);
    if (d->classifier) {
        fputs("      <classifier>", f);
        xml_escaped(f, d->classifier);
        fputs("</classifier>\n", f);
    }
    if (d->excludes.n) {
        fputs("      <exclusions>\n", f);
        for (size_t i = 0; i < d->excludes.n; i++) {
            const char *ex = d->excludes.v[i];
            const char *colon = strchr(ex, ':');
            fputs("        <exclusion><groupId>", f);
            char *g = strndup(ex, (size_t)(colon - ex));
            xml_escaped(f, g ? g : "");
            free(g);
            fputs("</groupId><artifactId>", f);
            xml_escaped(f, colon + 1);
            fputs("</artifactId></exclusion>\n", f);
        }
        fputs("      </exclusions>\n", f);
    }
    fputs("    </dependency>\n  </dependencies>\n</project>\n", f);
    if (fclose(f) != 0)
        snprintf(d->err, sizeof d->err, "cannot write %s: %s", pom, strerror(errno));
    free(pom);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int argv_push(argv_t *a, const char *s) {
    char **v = realloc(a->v, (a->n + 2) * sizeof *v);
    if (!v) return -1;
    a->v = v;
    a->v[a->n] = strdup(s);
    if (!a->v[a->n]) return -1;
    a->n++;
    a->v[a->n] = NULL;
    return 0;
}

/* Pool: the jars Maven copied into the work directory, sorted by name. */
static void deps_list_work(void *arg) {
    deps *d = arg;
    char *dir = NULL;
    if (asprintf(&dir, "%s/jars", d->tmp) < 0) return;
    DIR *dh = opendir(dir);
    if (dh) {
        struct dirent *e;
        while ((e = readdir(dh))) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 4, ".jar") != 0) continue;
            char *p = NULL;
            if (asprintf(&p, "%s/%s", dir, e->d_name) < 0) continue;
            argv_push(&d->jars, p);
            free(p);
        }
        closedir(dh);
    }
    if (d->jars.n) qsort(d->jars.v, d->jars.n, sizeof *d->jars.v, cmp_str);
    free(dir);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Pool: removes the work directory (its jars have been uploaded by then). */
static void deps_cleanup_work(void *arg) {
    deps *d = arg;
    if (d->tmp) nftw(d->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void deps_free(deps *d) {
    free(d->group);
    free(d->artifact);
    free(d->version);
    free(d->classifier);
    argv_free(&d->excludes);
    argv_free(&d->repos);
    argv_free(&d->jars);
    free(d->tmp);
}

static void coordinate(const deps *d, char *buf, size_t len) {
    snprintf(buf, len, "%s:%s:%s%s%s", d->group, d->artifact, d->version, d->classifier ? ":" : "",
             d->classifier ? d->classifier : "");
}

/* Maven's explanation of a failure: its [ERROR] lines without the generic advice that follows
 * every failure; else the end of its output. */
static char *maven_errors(const child *ch) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    int kept = 0;
    const char *s = ch->o.s ? ch->o.s : "";
    while (*s && kept < 40) {
        size_t n = strcspn(s, "\n");
        if (n >= 7 && strncmp(s, "[ERROR]", 7) == 0) {
            const char *msg = s + 7;
            size_t m = n - 7;
            while (m && (*msg == ' ')) msg++, m--;
            bool noise = m == 0 || strncmp(msg, "-> [Help", 8) == 0 ||
                         strncmp(msg, "To see the full stack trace", 27) == 0 ||
                         strncmp(msg, "Re-run Maven using", 18) == 0 ||
                         strncmp(msg, "For more information about the errors", 37) == 0 ||
                         strncmp(msg, "[Help ", 6) == 0;
            if (!noise) {
                /* Drop the "-> [Help 1]" pointer to the advice left out above. */
                size_t keep = n;
                const char *help = NULL;
                for (const char *q = s; q + 10 <= s + n; q++)
                    if (strncmp(q, " -> [Help ", 10) == 0) help = q;
                if (help) keep = (size_t)(help - s);
                fprintf(f, "%.*s\n", (int)keep, s);
                kept++;
            }
        }
        s += n;
        if (*s) s++;
    }
    fclose(f);
    if (kept && len && text[len - 1] == '\n') text[len - 1] = 0;
    if (kept) return text;
    free(text);
    return NULL;
}

/* The last lines of a stream, at most max, without the final newline (caller frees). */
static char *tail_lines(const obuf *b, int max) {
    if (!b->s) return strdup("(no output)");
    const char *end = b->s + b->len;
    while (end > b->s && (end[-1] == '\n' || end[-1] == '\r')) end--;
    const char *p = end;
    int lines = 0;
    while (p > b->s) {
        if (p[-1] == '\n' && ++lines == max) break;
        p--;
    }
    return strndup(p, (size_t)(end - p));
}

static int resolve(op *o, deps *d) {
    kl_magic_ctx *c = o->c;
    char coord[1024];
    coordinate(d, coord, sizeof coord);
    argv_t cmd = {0};
    bool ok = argv_push(&cmd, d->resolver) == 0;
    const char *tool = d->kind == RES_MVN ? "mvn" : "coursier";
    if (d->kind == RES_MVN) {
        char *pom = NULL, *outdir = NULL, *trans = NULL;
        ok = ok && asprintf(&pom, "%s/pom.xml", d->tmp) >= 0;
        ok = ok && asprintf(&outdir, "-DoutputDirectory=%s/jars", d->tmp) >= 0;
        ok =
            ok && asprintf(&trans, "-DexcludeTransitive=%s", d->transitive ? "false" : "true") >= 0;
        ok = ok && argv_push(&cmd, "-B") == 0 && argv_push(&cmd, "-ntp") == 0 &&
             argv_push(&cmd, "-f") == 0 && argv_push(&cmd, pom) == 0;
        if (d->force) ok = ok && argv_push(&cmd, "-U") == 0;
        ok = ok && argv_push(&cmd, MVN_COPY_GOAL) == 0 && argv_push(&cmd, outdir) == 0 &&
             argv_push(&cmd, trans) == 0 && argv_push(&cmd, "-DincludeScope=runtime") == 0;
        free(pom);
        free(outdir);
        free(trans);
    } else {
        ok = ok && argv_push(&cmd, "fetch") == 0;
        if (!d->transitive) ok = ok && argv_push(&cmd, "--intransitive") == 0;
        for (size_t i = 0; i < d->excludes.n; i++)
            ok = ok && argv_push(&cmd, "--exclude") == 0 && argv_push(&cmd, d->excludes.v[i]) == 0;
        for (size_t i = 0; i < d->repos.n; i++)
            ok = ok && argv_push(&cmd, "-r") == 0 && argv_push(&cmd, d->repos.v[i]) == 0;
        if (d->force) ok = ok && argv_push(&cmd, "--mode") == 0 && argv_push(&cmd, "force") == 0;
        char *dep = NULL;
        ok = ok &&
             asprintf(&dep, "%s:%s:%s%s%s", d->group, d->artifact, d->version,
                      d->classifier ? ",classifier=" : "", d->classifier ? d->classifier : "") >= 0;
        ok = ok && argv_push(&cmd, dep) == 0;
        free(dep);
    }
    if (!ok) {
        argv_free(&cmd);
        return kl_ctx_error(c, "MemoryError", "out of memory");
    }
    char *line = NULL;
    if (asprintf(&line, "Resolving %s%s with %s (%s) ...\n", coord,
                 d->transitive ? " and its dependencies" : "", tool, d->resolver) >= 0)
        kl_ctx_stream(c, "stdout", line);
    free(line);

    child ch;
    double t0 = now_s();
    int rc = child_run(o, &ch, cmd.v, RESOLVE_TIMEOUT_MS);
    argv_free(&cmd);
    int result = 0;
    if (rc != 0) {
        result = kl_ctx_error(c, "DependencyResolutionError", "cannot run %s: %s", d->resolver,
                              uv_strerror(rc));
    } else if (ch.timed_out) {
        char *last = tail_lines(d->kind == RES_MVN ? &ch.o : &ch.e, 15);
        result = kl_ctx_error(c, "DependencyResolutionError",
                              "resolving %s with %s took longer than %d s and was stopped; its "
                              "last output:\n%s",
                              coord, tool, RESOLVE_TIMEOUT_MS / 1000, last ? last : "");
        free(last);
    } else if (ch.killed || interrupted(o)) {
        result = kl_ctx_error(c, "KeyboardInterrupt", "interrupted while resolving %s", coord);
    } else if (ch.status != 0 || ch.term_signal) {
        char *errs = d->kind == RES_MVN ? maven_errors(&ch) : NULL;
        if (!errs) {
            /* The stream the tool explains itself on, else the other one. */
            const obuf *first = d->kind == RES_MVN ? &ch.o : &ch.e;
            const obuf *second = d->kind == RES_MVN ? &ch.e : &ch.o;
            errs = tail_lines(first->len ? first : second, 25);
        }
        const char *shown = errs ? errs : "";
        result = kl_ctx_error(
            c, "DependencyResolutionError", "cannot resolve %s with %s (exit status %lld):\n%s",
            coord, tool, (long long)(ch.term_signal ? 128 + ch.term_signal : ch.status), shown);
        free(errs);
    } else if (d->kind == RES_COURSIER) {
        /* coursier prints the path of every jar it fetched, one per line. */
        const char *s = ch.o.s ? ch.o.s : "";
        while (*s) {
            size_t n = strcspn(s, "\r\n");
            if (n > 4 && s[0] == '/' && strncmp(s + n - 4, ".jar", 4) == 0) {
                char *p = strndup(s, n);
                if (p) argv_push(&d->jars, p);
                free(p);
            }
            s += n;
            while (*s == '\r' || *s == '\n') s++;
        }
    }
    if (result == 0 && d->kind == RES_MVN) kl_pool_run(c->k->pool, deps_list_work, d);
    if (result == 0 && d->jars.n == 0)
        result = kl_ctx_error(c, "DependencyResolutionError",
                              "%s resolved %s to no jar at all (is it a pom-only artifact?)", tool,
                              coord);
    if (result == 0) {
        line = NULL;
        if (asprintf(&line, "Resolved %s with %s: %zu jar%s in %.1f s\n", coord, tool, d->jars.n,
                     d->jars.n == 1 ? "" : "s", now_s() - t0) >= 0)
            kl_ctx_stream(c, "stdout", line);
        free(line);
    }
    child_clear(&ch);
    return result;
}

static int magic_adddeps(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    argv_t a;
    if (split_args(args, &a) != 0)
        return kl_ctx_error(c, "UsageError", "unterminated quote in: %s", args);
    deps d = {0};
    argv_t pos = {0};
    int rc = 0;
    for (size_t i = 0; i < a.n && rc == 0; i++) {
        const char *w = a.v[i];
        bool takes = strcmp(w, "--exclude") == 0 || strcmp(w, "--repository") == 0 ||
                     strcmp(w, "--repo") == 0 || strcmp(w, "-r") == 0 ||
                     strcmp(w, "--classifier") == 0;
        if (takes && i + 1 >= a.n) {
            rc = kl_ctx_error(c, "UsageError", "%s needs a value; usage: %s", w, ADDDEPS_USAGE);
        } else if (strcmp(w, "--transitive") == 0) {
            d.transitive = true;
        } else if (strcmp(w, "-f") == 0 || strcmp(w, "--force") == 0) {
            d.force = true;
        } else if (strcmp(w, "--exclude") == 0) {
            const char *ex = a.v[++i];
            const char *colon = strchr(ex, ':');
            char g[512];
            if (!colon || strchr(colon + 1, ':') || (size_t)(colon - ex) >= sizeof g) {
                rc = kl_ctx_error(c, "UsageError", "--exclude takes GROUP:ARTIFACT, not %s", ex);
            } else {
                snprintf(g, sizeof g, "%.*s", (int)(colon - ex), ex);
                if (!valid_word(g, "*") || !valid_word(colon + 1, "*"))
                    rc =
                        kl_ctx_error(c, "UsageError", "--exclude takes GROUP:ARTIFACT, not %s", ex);
                else if (argv_push(&d.excludes, ex) != 0)
                    rc = kl_ctx_error(c, "MemoryError", "out of memory");
            }
        } else if (strcmp(w, "--repository") == 0 || strcmp(w, "--repo") == 0 ||
                   strcmp(w, "-r") == 0) {
            const char *url = a.v[++i];
            bool scheme = strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0 ||
                          strncmp(url, "file:/", 6) == 0;
            if (!scheme || strpbrk(url, " \t\r\n"))
                rc = kl_ctx_error(c, "UsageError",
                                  "--repository takes an http://, https:// or file:// URL, not %s",
                                  url);
            else if (argv_push(&d.repos, url) != 0)
                rc = kl_ctx_error(c, "MemoryError", "out of memory");
        } else if (strcmp(w, "--classifier") == 0) {
            const char *cl = a.v[++i];
            if (!valid_word(cl, NULL))
                rc = kl_ctx_error(c, "UsageError", "bad classifier %s", cl);
            else if (!(d.classifier = strdup(cl)))
                rc = kl_ctx_error(c, "MemoryError", "out of memory");
        } else if (w[0] == '-') {
            rc = kl_ctx_error(c, "UsageError", "unknown option %s; usage: %s", w, ADDDEPS_USAGE);
        } else if (argv_push(&pos, w) != 0) {
            rc = kl_ctx_error(c, "MemoryError", "out of memory");
        }
    }
    if (rc == 0 && pos.n == 1 && strchr(pos.v[0], ':')) {
        /* The one-word form group:artifact:version, as Maven and coursier write it. */
        char *w = pos.v[0], *c1 = strchr(w, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 && !strchr(c2 + 1, ':')) {
            d.group = strndup(w, (size_t)(c1 - w));
            d.artifact = strndup(c1 + 1, (size_t)(c2 - c1 - 1));
            d.version = strdup(c2 + 1);
        }
    } else if (rc == 0 && pos.n == 3) {
        d.group = strdup(pos.v[0]);
        d.artifact = strdup(pos.v[1]);
        d.version = strdup(pos.v[2]);
    }
    if (rc == 0 && (!d.group || !d.artifact || !d.version))
        rc = kl_ctx_error(c, "UsageError", "usage: %s", ADDDEPS_USAGE);
    if (rc == 0 && (!valid_word(d.group, NULL) || !valid_word(d.artifact, NULL) ||
                    !valid_word(d.version, "+[](),")))
        rc = kl_ctx_error(c, "UsageError", "%s:%s:%s is not a Maven coordinate; usage: %s", d.group,
                          d.artifact, d.version, ADDDEPS_USAGE);
    argv_free(&pos);
    argv_free(&a);
    op o = {.c = c, .kind = KIND_JAR};
    if (rc == 0) {
        kl_pool_run(c->k->pool, deps_setup_work, &d);
        if (d.kind == RES_NONE)
            rc = kl_ctx_error(c, "DependencyResolutionError",
                              "%%AddDeps resolves with Maven or coursier, and neither mvn nor "
                              "coursier (cs) is on the kernel's PATH: install Maven (apt install "
                              "maven) or coursier (https://get-coursier.io), then restart the "
                              "kernel");
        else if (d.err[0])
            rc = kl_ctx_error(c, "DependencyResolutionError", "%s", d.err);
    }
    if (rc == 0) rc = resolve(&o, &d);
    /* Maven's copies live in a directory removed below; coursier's stay in its cache. */
    if (d.kind == RES_MVN) o.via = "mvn";
    for (size_t i = 0; rc == 0 && i < d.jars.n; i++)
        if (op_add_source(&o, d.jars.v[i]) != 0)
            rc = kl_ctx_error(c, "MemoryError", "out of memory");
    if (rc == 0) rc = add_all(&o);
    if (d.tmp) kl_pool_run(c->k->pool, deps_cleanup_work, &d);
    op_free(&o);
    deps_free(&d);
    return rc;
}

int kl_artifact_magics_register(kl_magic_registry *reg) {
    static const kl_magic magics[] = {
        {"AddJar", KL_MAGIC_LINE, ADDJAR_USAGE,
         "Fetch jars (paths, file:// or http(s) URLs) and add them to this connection's Spark "
         "session; -f downloads again.",
         magic_addjar},
        {"AddFile", KL_MAGIC_LINE, ADDFILE_USAGE,
         "Fetch files and add them to this connection's Spark session (SparkFiles); -f downloads "
         "again.",
         magic_addfile},
        {"AddDeps", KL_MAGIC_LINE, ADDDEPS_USAGE,
         "Resolve a Maven coordinate with mvn or coursier and add the jars to this connection's "
         "Spark session.",
         magic_adddeps},
    };
    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        int rc = kl_magic_register(reg, &magics[i]);
        if (rc != 0) return rc;
    }
    return 0;
}
