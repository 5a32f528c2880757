/* TEST FIXTURE, not an example: a magic plugin that calls every function of the host table, and,
 * built with one of the FIXTURE_* macros, each way a plugin can be wrong. The tests compile it
 * with `cc -shared -fPIC -I include [-DFIXTURE_...]`.
 *
 *   (none)               %fx_* magics exercising the host table
 *   FIXTURE_ABI=N        states ABI version N
 *   FIXTURE_NO_ABI       states no ABI version at all
 *   FIXTURE_NO_INIT      has no kindling_magic_plugin_init
 *   FIXTURE_BAD_NAME     declares %bad-name
 *   FIXTURE_INIT_FAILS   init returns 3
 *   FIXTURE_EMPTY        declares nothing
 *   FIXTURE_CLASH        also declares %hello, which the example plugin has */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kindling/magic.h"

#if defined(FIXTURE_ABI)
__attribute__((visibility("default"))) const uint32_t kindling_magic_plugin_abi = FIXTURE_ABI;
#elif !defined(FIXTURE_NO_ABI)
KINDLING_MAGIC_PLUGIN_ABI;
#endif

static const kindling_magic_host *host;

static void say(kindling_magic_ctx *ctx, const char *fmt, const char *arg) {
    char buf[512];
    snprintf(buf, sizeof buf, fmt, arg);
    host->stream(ctx, "stdout", buf);
}

static int fx_result(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)args, (void)body, (void)user;
    kindling_mime_data items[] = {{"text/plain", "42"}, {"application/json", "{\"answer\": 42}"}};
    return host->result(ctx, items, 2);
}

static int fx_error(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)body, (void)user;
    return host->error(ctx, "FixtureError", "failed with %s", args);
}

static int fx_fail(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)ctx, (void)args, (void)body, (void)user;
    return 1;
}

static int fx_badjson(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)args, (void)body, (void)user;
    kindling_mime_data items[] = {{"text/plain", "x"}, {"application/json", "{nope"}};
    return host->display(ctx, items, 2);
}

static int fx_noplain(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)args, (void)body, (void)user;
    kindling_mime_data items[] = {{"text/html", "<b>x</b>"}};
    return host->result(ctx, items, 1);
}

static int fx_input(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)args, (void)body, (void)user;
    char *v = NULL;
    if (host->input(ctx, "name? ", 0, &v) != 0) return -1;
    say(ctx, "got %s\n", v);
    host->free(v);
    return 0;
}

/* Blocks its worker thread for the given milliseconds, as a slow library call would. */
static void slow_work(void *arg) {
    int *v = arg;
    usleep((useconds_t)*v * 1000);
    *v = 7;
}

static int fx_block(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)body, (void)user;
    int v = *args ? atoi(args) : 200;
    if (host->run_blocking(ctx, slow_work, &v) != 0) return -1;
    char buf[64];
    snprintf(buf, sizeof buf, "blocking returned %d\n", v);
    host->stream(ctx, "stdout", buf);
    return 0;
}

static int fx_opts(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)args, (void)body, (void)user;
    char *p = host->param(ctx, "x");
    char buf[256];
    snprintf(buf, sizeof buf, "display_limit=%ld truncation=%d param_x=%s\n",
             host->display_limit(ctx), host->truncation(ctx), p ? p : "(unset)");
    host->free(p);
    host->stream(ctx, "stdout", buf);
    return 0;
}

static int fx_sleep(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)body, (void)user;
    if (host->sleep(ctx, (uint64_t)atol(args)) != 0) return -1;
    host->stream(ctx, "stdout", host->interrupted(ctx) ? "interrupted\n" : "slept\n");
    return 0;
}

static int fx_both(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    say(ctx, "user=%s ", (const char *)user);
    if (body)
        say(ctx, "cell: %s", body);
    else
        say(ctx, "line: %s\n", args);
    return 0;
}

static int fx_log(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)body, (void)user;
    host->log(ctx, KINDLING_LOG_WARN, args);
    host->stream(ctx, "stderr", "logged\n");
    return 0;
}

static int fx_bytes(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)args, (void)body, (void)user;
    host->stream(ctx, "stdout", "bad \xff byte\n");
    return 0;
}

static int fx_sql(kindling_magic_ctx *ctx, const char *args, const char *body, void *user) {
    (void)body, (void)user;
    return host->run_sql(ctx, args, 0, KINDLING_SQL_CSV);
}

#ifndef FIXTURE_NO_INIT
int kindling_magic_plugin_init(const kindling_magic_host *h, kindling_magic_registrar *reg) {
    host = h;
    if (h->abi_version != KINDLING_MAGIC_ABI_VERSION || !KINDLING_MAGIC_HOST_HAS(h, log)) return 2;
#if defined(FIXTURE_INIT_FAILS)
    return 3;
#elif defined(FIXTURE_EMPTY)
    (void)reg;
    return 0;
#else
    static const kindling_magic_def defs[] = {
        {"fx_result", KINDLING_MAGIC_LINE, NULL, "result", fx_result, NULL},
        {"fx_error", KINDLING_MAGIC_LINE, NULL, "error", fx_error, NULL},
        {"fx_fail", KINDLING_MAGIC_LINE, NULL, "fails without saying why", fx_fail, NULL},
        {"fx_badjson", KINDLING_MAGIC_LINE, NULL, "bad JSON display", fx_badjson, NULL},
        {"fx_noplain", KINDLING_MAGIC_LINE, NULL, "result without text/plain", fx_noplain, NULL},
        {"fx_input", KINDLING_MAGIC_LINE, NULL, "input", fx_input, NULL},
        {"fx_block", KINDLING_MAGIC_LINE, "%fx_block [MS]", "run_blocking", fx_block, NULL},
        {"fx_opts", KINDLING_MAGIC_LINE, NULL, "options", fx_opts, NULL},
        {"fx_sleep", KINDLING_MAGIC_LINE, "%fx_sleep MS", "sleep", fx_sleep, NULL},
        {"fx_both", KINDLING_MAGIC_LINE | KINDLING_MAGIC_CELL, "%fx_both ARGS, %%fx_both",
         "line and cell", fx_both, "ud"},
        {"fx_log", KINDLING_MAGIC_LINE, NULL, "log", fx_log, NULL},
        {"fx_bytes", KINDLING_MAGIC_LINE, NULL, "invalid UTF-8", fx_bytes, NULL},
        {"fx_sql", KINDLING_MAGIC_LINE, "%fx_sql SQL", "SQL as CSV", fx_sql, NULL},
#ifdef FIXTURE_CLASH
        {"hello", KINDLING_MAGIC_LINE, NULL, "clashes with the example plugin", fx_fail, NULL},
#endif
#ifdef FIXTURE_BAD_NAME
        {"bad-name", KINDLING_MAGIC_LINE, NULL, "cannot be typed", fx_fail, NULL},
#endif
    };
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
        if (h->register_magic(reg, &defs[i]) != 0) return -1;
    return 0;
#endif
}
#endif
