/* Magic plugins: shared objects that declare magics through include/kindling/magic.h. A plugin is
 * opened and its init run off the loop (dlopen reads files), then its magics are registered on
 * the loop thread behind one trampoline, which finds the plugin's handler by the name of the
 * magic being run. */
#include "kernel/plugin.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/sql.h"
#include "kl_version.h"
#include "render/buf.h"
#include "render/unicode.h"
#include "runtime/log.h"
#include "runtime/strmap.h"

#define MAX_NAME 64

typedef struct plugin_magic {
    char *name, *usage, *help;
    int kinds;
    kindling_magic_fn fn;
    void *user;
    kl_plugin *owner;
} plugin_magic;

struct kl_plugin {
    char *path;
    void *handle;
    plugin_magic *items;
    size_t n, cap;
    char *bad; /* why a declaration was refused (the first one) */
    bool oom;
};

struct kindling_magic_registrar {
    kl_plugin *p;
};

/* Handles of installed plugins: read by kl_plugin_open on a worker, written on the loop. */
static pthread_mutex_t installed_lock = PTHREAD_MUTEX_INITIALIZER;
static void **installed;
static size_t ninstalled, capinstalled;
/* Lower-cased magic name -> plugin_magic, for the trampoline. Loop thread only. */
static kl_strmap *by_name;

static bool is_installed(void *handle) {
    pthread_mutex_lock(&installed_lock);
    bool found = false;
    for (size_t i = 0; i < ninstalled && !found; i++) found = installed[i] == handle;
    pthread_mutex_unlock(&installed_lock);
    return found;
}

static int add_installed(void *handle) {
    pthread_mutex_lock(&installed_lock);
    int rc = 0;
    if (ninstalled == capinstalled) {
        size_t ncap = capinstalled ? capinstalled * 2 : 8;
        void **n = realloc(installed, ncap * sizeof *n);
        if (n) {
            installed = n;
            capinstalled = ncap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0) installed[ninstalled++] = handle;
    pthread_mutex_unlock(&installed_lock);
    return rc;
}

static void lower_name(const char *name, char *out) {
    size_t i = 0;
    for (; name[i] && i < MAX_NAME; i++) out[i] = (char)tolower((unsigned char)name[i]);
    out[i] = 0;
}

/* ---- declarations --------------------------------------------------------------------------- */

static int refuse(kl_plugin *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(kl_plugin *p, const char *fmt, ...) {
    if (p->bad) return -1;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&p->bad, fmt, ap) < 0) p->bad = NULL;
    va_end(ap);
    if (!p->bad) p->oom = true;
    return -1;
}

static int host_register(kindling_magic_registrar *reg, const kindling_magic_def *def) {
    if (!reg || !reg->p) return -1; /* called after init returned */
    kl_plugin *p = reg->p;
    if (!def || !def->name) return refuse(p, "a magic was declared without a name");
    size_t len = strlen(def->name);
    if (len == 0 || len > MAX_NAME)
        return refuse(p, "the magic name \"%.80s\" is empty or longer than %d characters",
                      def->name, MAX_NAME);
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)def->name[i]) && def->name[i] != '_')
            return refuse(p,
                          "the magic name \"%s\" may only hold letters, digits and '_' (%%%s "
                          "could never be typed)",
                          def->name, def->name);
    if (!(def->kinds & (KINDLING_MAGIC_LINE | KINDLING_MAGIC_CELL)) ||
        (def->kinds & ~(KINDLING_MAGIC_LINE | KINDLING_MAGIC_CELL)))
        return refuse(p, "%%%s: kinds must be KINDLING_MAGIC_LINE and/or KINDLING_MAGIC_CELL",
                      def->name);
    if (!def->fn) return refuse(p, "%%%s has no handler", def->name);
    for (size_t i = 0; i < p->n; i++)
        if (strcasecmp(p->items[i].name, def->name) == 0)
            return refuse(p, "%%%s is declared twice", def->name);
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 8;
        plugin_magic *n = realloc(p->items, ncap * sizeof *n);
        if (!n) {
            p->oom = true;
            return -1;
        }
        p->items = n;
        p->cap = ncap;
    }
    plugin_magic *m = &p->items[p->n];
    *m = (plugin_magic){.kinds = def->kinds, .fn = def->fn, .user = def->user, .owner = p};
    m->name = strdup(def->name);
    if (def->usage)
        m->usage = strdup(def->usage);
    else if (asprintf(&m->usage, "%s%s", def->kinds & KINDLING_MAGIC_LINE ? "%" : "%%", def->name) <
             0)
        m->usage = NULL;
    m->help = strdup(def->help ? def->help : "");
    if (!m->name || !m->usage || !m->help) {
        free(m->name);
        free(m->usage);
        free(m->help);
        p->oom = true;
        return -1;
    }
    p->n++;
    return 0;
}

/* ---- opening and installing ----------------------------------------------------------------- */

static void free_plugin(kl_plugin *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].name);
        free(p->items[i].usage);
        free(p->items[i].help);
    }
    free(p->items);
    free(p->bad);
    free(p->path);
    free(p);
}

int kl_plugin_open(const char *path, kl_plugin **out, char *err, size_t errlen) {
    *out = NULL;
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(err, errlen, "%s", why ? why : "dlopen failed");
        return -1;
    }
    if (is_installed(h)) {
        dlclose(h);
        return -EEXIST;
    }
    const uint32_t *abi = dlsym(h, "kindling_magic_plugin_abi");
    if (!abi) {
        dlclose(h);
        snprintf(err, errlen,
                 "not a Kindling magic plugin: it defines no kindling_magic_plugin_abi (a plugin "
                 "states its ABI with KINDLING_MAGIC_PLUGIN_ABI; from <kindling/magic.h>)");
        return -1;
    }
    if (*abi != KINDLING_MAGIC_ABI_VERSION) {
        uint32_t v = *abi;
        dlclose(h);
        snprintf(err, errlen,
                 "built for magic plugin ABI version %u, but this kernel has ABI version %d: "
                 "rebuild the plugin against this kernel's include/kindling/magic.h",
                 v, KINDLING_MAGIC_ABI_VERSION);
        return -1;
    }
    int (*init)(const kindling_magic_host *, kindling_magic_registrar *) =
        (int (*)(const kindling_magic_host *, kindling_magic_registrar *))dlsym(
            h, "kindling_magic_plugin_init");
    if (!init) {
        dlclose(h);
        snprintf(err, errlen, "it defines no kindling_magic_plugin_init function");
        return -1;
    }
    kl_plugin *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        free(p);
        dlclose(h);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->handle = h;
    /* From here on the plugin's code has run: it stays mapped whatever happens. */
    kindling_magic_registrar reg = {p};
    int rc = init(kl_plugin_host(), &reg);
    reg.p = NULL;
    if (p->oom)
        snprintf(err, errlen, "out of memory while it declared its magics");
    else if (p->bad)
        snprintf(err, errlen, "refused: %s", p->bad);
    else if (rc != 0)
        snprintf(err, errlen, "its kindling_magic_plugin_init failed (returned %d)", rc);
    else if (p->n == 0)
        snprintf(err, errlen, "it declared no magics");
    if (p->oom || p->bad || rc != 0 || p->n == 0) {
        free_plugin(p);
        return -1;
    }
    *out = p;
    return 0;
}

void kl_plugin_discard(kl_plugin *p) {
    free_plugin(p);
}

static int trampoline(kl_magic_ctx *c, const char *args, const char *body);

int kl_plugin_install(kl_plugin *p, kl_magic_registry *reg, char *err, size_t errlen) {
    if (!by_name && !(by_name = kl_strmap_new())) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < p->n; i++) {
        const char *name = p->items[i].name;
        const kl_magic *m = kl_magic_find(reg, name, strlen(name), 0);
        if (!m) continue;
        char key[MAX_NAME + 1];
        lower_name(m->name, key);
        plugin_magic *other = kl_strmap_get(by_name, key);
        if (other)
            snprintf(err, errlen, "%%%s is already a magic, from the plugin %s", m->name,
                     other->owner->path);
        else
            snprintf(err, errlen, "%%%s is already a magic of the kernel", m->name);
        return -1;
    }
    for (size_t i = 0; i < p->n; i++) {
        plugin_magic *pm = &p->items[i];
        char key[MAX_NAME + 1];
        lower_name(pm->name, key);
        kl_magic m = {.name = pm->name,
                      .kinds = ((pm->kinds & KINDLING_MAGIC_LINE) ? KL_MAGIC_LINE : 0) |
                               ((pm->kinds & KINDLING_MAGIC_CELL) ? KL_MAGIC_CELL : 0),
                      .usage = pm->usage,
                      .help = pm->help,
                      .fn = trampoline};
        /* The checks above leave only running out of memory, with no way to unregister what
         * went in before: those magics stay, and the message says the load was partial. */
        if (kl_strmap_put(by_name, key, pm) != 0 || kl_magic_register(reg, &m) != 0) {
            snprintf(err, errlen, "out of memory after registering %zu of its %zu magics", i, p->n);
            return -1;
        }
    }
    add_installed(p->handle);
    return 0;
}

const char *kl_plugin_path(const kl_plugin *p) {
    return p->path;
}

size_t kl_plugin_magic_count(const kl_plugin *p) {
    return p->n;
}

void kl_plugin_magic_label(const kl_plugin *p, size_t i, char *buf, size_t len) {
    const plugin_magic *m = &p->items[i];
    if (m->kinds == (KINDLING_MAGIC_LINE | KINDLING_MAGIC_CELL))
        snprintf(buf, len, "%%%s, %%%%%s", m->name, m->name);
    else
        snprintf(buf, len, "%s%s", m->kinds == KINDLING_MAGIC_CELL ? "%%" : "%", m->name);
}

/* ---- calling handlers ----------------------------------------------------------------------- */

static plugin_magic *current(kl_magic_ctx *c) {
    const char *name = kl_ctx_magic_name(c);
    if (!name || !by_name) return NULL;
    char key[MAX_NAME + 1];
    lower_name(name, key);
    return kl_strmap_get(by_name, key);
}

static int trampoline(kl_magic_ctx *c, const char *args, const char *body) {
    plugin_magic *pm = current(c);
    if (!pm) return kl_ctx_error(c, "PluginError", "no plugin handles this magic");
    return pm->fn((kindling_magic_ctx *)c, args, body, pm->user);
}

/* ---- the host table ------------------------------------------------------------------------- */

static kl_magic_ctx *ctx_of(kindling_magic_ctx *x) {
    return (kl_magic_ctx *)x;
}

/* A JSON string of text, with invalid UTF-8 replaced, so no plugin output can break a message. */
static json_t *text_value(const char *s) {
    json_t *v = json_string(s);
    if (v) return v;
    kl_render_buf b;
    kl_render_buf_init(&b);
    kl_unicode_append_repaired(&b, (const uint8_t *)s, strlen(s));
    char *fixed = kl_render_buf_take(&b, NULL);
    v = json_string(fixed ? fixed : "");
    free(fixed);
    return v;
}

static void host_stream(kindling_magic_ctx *x, const char *name, const char *text) {
    if (!text || !*text) return;
    kl_magic_ctx *c = ctx_of(x);
    json_t *v = text_value(text);
    if (!v) return;
    kl_ctx_stream(c, name && strcmp(name, "stderr") == 0 ? "stderr" : "stdout",
                  json_string_value(v));
    json_decref(v);
}

static bool is_json_mime(const char *mime) {
    size_t n = strlen(mime);
    return strcmp(mime, "application/json") == 0 || (n > 5 && strcmp(mime + n - 5, "+json") == 0);
}

/* The MIME bundle of items; NULL with the cell's error recorded. */
static json_t *bundle(kl_magic_ctx *c, const kindling_mime_data *items, size_t n) {
    if (!items || n == 0) {
        kl_ctx_error(c, "PluginError", "an output needs at least one MIME type");
        return NULL;
    }
    json_t *data = json_object();
    for (size_t i = 0; data && i < n; i++) {
        const char *mime = items[i].mime_type, *text = items[i].data ? items[i].data : "";
        if (!mime || !*mime) {
            kl_ctx_error(c, "PluginError", "an output item has no MIME type");
            json_decref(data);
            return NULL;
        }
        json_t *v;
        if (is_json_mime(mime)) {
            json_error_t e;
            v = json_loads(text, JSON_DECODE_ANY, &e);
            if (!v) {
                kl_ctx_error(c, "PluginError", "the %s output is not JSON: %s (line %d)", mime,
                             e.text, e.line);
                json_decref(data);
                return NULL;
            }
        } else {
            v = text_value(text);
        }
        json_object_set_new(data, mime, v);
    }
    if (!data) kl_ctx_error(c, "MemoryError", "out of memory");
    return data;
}

static int host_display(kindling_magic_ctx *x, const kindling_mime_data *items, size_t n) {
    kl_magic_ctx *c = ctx_of(x);
    json_t *data = bundle(c, items, n);
    if (!data) return -1;
    kl_ctx_display(c, data, NULL);
    return 0;
}

static int host_result(kindling_magic_ctx *x, const kindling_mime_data *items, size_t n) {
    kl_magic_ctx *c = ctx_of(x);
    json_t *data = bundle(c, items, n);
    if (!data) return -1;
    if (!json_is_string(json_object_get(data, "text/plain"))) {
        json_decref(data);
        return kl_ctx_error(c, "PluginError", "an execute_result needs a text/plain item");
    }
    kl_ctx_result(c, data, NULL);
    return 0;
}

static int host_error(kindling_magic_ctx *x, const char *ename, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt ? fmt : "", ap);
    va_end(ap);
    json_t *name = text_value(ename && *ename ? ename : "PluginError");
    json_t *value = text_value(buf);
    int rc = kl_ctx_error(ctx_of(x), name ? json_string_value(name) : "PluginError", "%s",
                          value ? json_string_value(value) : "");
    json_decref(name);
    json_decref(value);
    return rc;
}

static int host_run_sql(kindling_magic_ctx *x, const char *sql, long limit, int output) {
    kl_magic_ctx *c = ctx_of(x);
    if (!sql) return kl_ctx_error(c, "PluginError", "run_sql was given no SQL");
    kl_sql_output out = output == KINDLING_SQL_JSON  ? KL_SQL_OUT_JSON
                        : output == KINDLING_SQL_CSV ? KL_SQL_OUT_CSV
                                                     : KL_SQL_OUT_TABLE;
    return kl_sql_run(c, sql, strlen(sql), limit > 0 ? limit : 0, out) == 0 ? 0 : -1;
}

static long host_display_limit(kindling_magic_ctx *x) {
    long v = ctx_of(x)->k->opts.display_limit;
    return v > 0 ? v : KL_SQL_DEFAULT_DISPLAY_LIMIT;
}

static int host_truncation(kindling_magic_ctx *x) {
    return ctx_of(x)->t->truncation ? 1 : 0;
}

static char *host_param(kindling_magic_ctx *x, const char *name) {
    kl_tenant *t = ctx_of(x)->t;
    const char *v = t->params && name ? kl_strmap_get(t->params, name) : NULL;
    return v ? strdup(v) : NULL;
}

static int host_input(kindling_magic_ctx *x, const char *prompt, int password, char **value) {
    *value = NULL;
    return kl_ctx_input(ctx_of(x), prompt ? prompt : "", password != 0, value) == 0 ? 0 : -1;
}

static void host_free(void *p) {
    free(p);
}

static int host_run_blocking(kindling_magic_ctx *x, void (*fn)(void *arg), void *arg) {
    kl_magic_ctx *c = ctx_of(x);
    if (!fn) return kl_ctx_error(c, "PluginError", "run_blocking was given no function");
    if (kl_pool_run(c->k->pool, fn, arg) != 0)
        return kl_ctx_error(c, "PluginError", "the worker pool refused the job");
    return 0;
}

static int host_sleep(kindling_magic_ctx *x, uint64_t ms) {
    return kl_ctx_sleep(ctx_of(x), ms) == 0 ? 0 : -1;
}

static int host_interrupted(kindling_magic_ctx *x) {
    kl_magic_ctx *c = ctx_of(x);
    return c->t->interrupted || c->k->shutting_down;
}

static void host_log(kindling_magic_ctx *x, int level, const char *text) {
    plugin_magic *pm = x ? current(ctx_of(x)) : NULL;
    kl_log_level l = level <= KINDLING_LOG_DEBUG  ? KL_LOG_DEBUG
                     : level == KINDLING_LOG_INFO ? KL_LOG_INFO
                     : level == KINDLING_LOG_WARN ? KL_LOG_WARN
                                                  : KL_LOG_ERROR;
    const char *who = pm ? strrchr(pm->owner->path, '/') : NULL;
    who = who ? who + 1 : pm ? pm->owner->path : "plugin";
    kl_log_write(l, "plugin", "%s: %s", who, text ? text : "");
}

static const kindling_magic_host host = {
    .abi_version = KINDLING_MAGIC_ABI_VERSION,
    .size = sizeof(kindling_magic_host),
    .kernel_version = KL_VERSION,
    .register_magic = host_register,
    .stream = host_stream,
    .display = host_display,
    .result = host_result,
    .error = host_error,
    .run_sql = host_run_sql,
    .display_limit = host_display_limit,
    .truncation = host_truncation,
    .param = host_param,
    .input = host_input,
    .free = host_free,
    .run_blocking = host_run_blocking,
    .sleep = host_sleep,
    .interrupted = host_interrupted,
    .log = host_log,
};

const kindling_magic_host *kl_plugin_host(void) {
    return &host;
}

/* ---- loading at start and at run time ------------------------------------------------------- */

/* dlopen searches the library path for a name without '/'; a user always means a file. */
static char *file_path(const char *arg) {
    const char *home = getenv("HOME");
    char *path = NULL;
    int rc;
    if (strncmp(arg, "~/", 2) == 0 && home)
        rc = asprintf(&path, "%s%s", home, arg + 1);
    else if (!strchr(arg, '/'))
        rc = asprintf(&path, "./%s", arg);
    else
        rc = (path = strdup(arg)) ? 0 : -1;
    return rc < 0 ? NULL : path;
}

static int load_named(kl_kernel *k, const char *arg, char *err, size_t errlen) {
    kl_plugin *p;
    char why[1024];
    char *path = file_path(arg);
    if (!path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = kl_plugin_open(path, &p, why, sizeof why);
    free(path);
    if (rc == -EEXIST) return 0;
    if (rc == 0 && kl_plugin_install(p, k->magics, why, sizeof why) != 0) {
        kl_plugin_discard(p);
        rc = -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot load magic plugin %s: %s", arg, why);
        return -1;
    }
    KL_INFO("plugin", "loaded %s (%zu magics)", arg, kl_plugin_magic_count(p));
    return 0;
}

static int so_file(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

int kl_plugin_load_startup(kl_kernel *k, char *err, size_t errlen) {
    for (int i = 0; i < k->opts.n_magic_plugins; i++)
        if (load_named(k, k->opts.magic_plugins[i], err, errlen) != 0) return -1;
    const char *dir = k->opts.plugin_dir ? k->opts.plugin_dir : getenv("KINDLING_PLUGIN_DIR");
    if (!dir || !*dir) return 0;
    struct dirent **names;
    int n = scandir(dir, &names, so_file, alphasort);
    if (n < 0) {
        KL_WARN("plugin", "cannot read the plugin directory %s: %s", dir, strerror(errno));
        return 0;
    }
    /* One bad file in a shared directory must not keep the kernel from starting. */
    for (int i = 0; i < n; i++) {
        char *path = NULL, why[1536];
        if (asprintf(&path, "%s/%s", dir, names[i]->d_name) >= 0 &&
            load_named(k, path, why, sizeof why) != 0)
            KL_WARN("plugin", "skipped: %s", why);
        free(path);
        free(names[i]);
    }
    free(names);
    return 0;
}

typedef struct open_job {
    const char *path;
    kl_plugin *p;
    int rc;
    char err[1024];
} open_job;

static void open_work(void *arg) {
    open_job *j = arg;
    j->rc = kl_plugin_open(j->path, &j->p, j->err, sizeof j->err);
}

int kl_plugin_magic_load(kl_magic_ctx *c, const char *args, const char *body) {
    (void)body;
    /* A plugin is native code run as the kernel's user: whoever may do that from a cell may as
     * well run shell commands, so the same switch allows both. */
    if (!c->k->opts.allow_shell)
        return kl_ctx_error(
            c, "PluginError",
            "%%load_magic is disabled: a plugin runs native code as the kernel's "
            "user, so the kernel must be started with --allow-shell to load one "
            "from a cell (or load it at start with --magic-plugin or --plugin-dir)");
    if (!*args)
        return kl_ctx_error(c, "UsageError",
                            "%%load_magic takes the path of a magic plugin (a .so file)");
    char *path = file_path(args);
    if (!path) return kl_ctx_error(c, "MemoryError", "out of memory");
    open_job j = {.path = path};
    if (kl_pool_run(c->k->pool, open_work, &j) != 0) {
        free(path);
        return kl_ctx_error(c, "PluginError", "the worker pool refused the job");
    }
    if (j.rc == -EEXIST) {
        char *text = NULL;
        if (asprintf(&text, "%s is already loaded\n", args) >= 0) kl_ctx_stream(c, "stdout", text);
        free(text);
        free(path);
        return 0;
    }
    if (j.rc == 0 && kl_plugin_install(j.p, c->k->magics, j.err, sizeof j.err) != 0) {
        kl_plugin_discard(j.p);
        j.rc = -1;
    }
    if (j.rc != 0) {
        free(path);
        return kl_ctx_error(c, "PluginError", "cannot load magic plugin %s: %s", args, j.err);
    }
    kl_render_buf b;
    kl_render_buf_init(&b);
    kl_render_buf_printf(&b, "Loaded magic plugin %s:", args);
    for (size_t i = 0; i < j.p->n; i++) {
        char label[2 * MAX_NAME + 8];
        kl_plugin_magic_label(j.p, i, label, sizeof label);
        kl_render_buf_printf(&b, "%s %s", i ? "," : "", label);
    }
    kl_render_buf_puts(&b, "\n");
    char *text = kl_render_buf_take(&b, NULL);
    if (text) kl_ctx_stream(c, "stdout", text);
    free(text);
    KL_INFO("plugin", "loaded %s at run time (%zu magics)", path, j.p->n);
    free(path);
    return 0;
}
