/* Kindling magic plugins: the C ABI between the kernel and a shared object that adds magics.
 *
 * A plugin is a shared object (cc -shared -fPIC -I<kindling>/include -o my.so my.c) that:
 *   1. states the ABI it was built for with KINDLING_MAGIC_PLUGIN_ABI; (an exported variable
 *      the kernel reads before calling anything: a mismatch is a load error, never a crash);
 *   2. exports kindling_magic_plugin_init(), which declares its magics through
 *      host->register_magic.
 *
 * The kernel hands the plugin a table of function pointers (kindling_magic_host), so a plugin
 * links against nothing from the kernel binary. The table stays valid for the life of the
 * process: keep the pointer in a static.
 *
 * Threads: init runs once, on a worker thread for %load_magic or the main thread at start-up.
 * Handlers run on the kernel's event loop, inside the coroutine of the client connection that
 * ran the cell; other connections make progress only while a handler waits through the host
 * (sleep, run_sql, input, run_blocking). A handler must therefore never block for long: hand
 * blocking work (files of unknown size, network, subprocess waits) to host->run_blocking, which
 * runs it on the kernel's worker pool and returns when it has finished.
 *
 * Strings given to the host are copied; text must be UTF-8 (invalid bytes are shown as U+FFFD).
 * See docs/plugins.md for a worked example (examples/plugins/kindling_example_magic.c). */
#ifndef KINDLING_MAGIC_H
#define KINDLING_MAGIC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raised whenever a change breaks plugins built against an earlier header. Functions added at
 * the end of kindling_magic_host do not change it: check KINDLING_MAGIC_HOST_HAS instead. */
#define KINDLING_MAGIC_ABI_VERSION 1

/* The cell a handler is running for; valid only until the handler returns. */
typedef struct kindling_magic_ctx kindling_magic_ctx;
/* Collects declarations while init runs; invalid afterwards. */
typedef struct kindling_magic_registrar kindling_magic_registrar;

/* kinds: a line magic (%name args) and/or a cell magic (%%name args, then the cell body). */
enum { KINDLING_MAGIC_LINE = 1, KINDLING_MAGIC_CELL = 2 };

/* args: the rest of the magic's line, trimmed (never NULL). body: the cell after the %%name
 * line when used as a cell magic, NULL when used as a line magic. user: the def's user data.
 * Returns 0 on success; non-zero after host->error (a non-zero return without an error shows
 * "MagicError: %name failed"). The first error stops the cell. */
typedef int (*kindling_magic_fn)(kindling_magic_ctx *ctx, const char *args, const char *body,
                                 void *user);

typedef struct kindling_magic_def {
    const char *name;  /* letters, digits, '_' (at most 64); case-insensitive, must be unused */
    int kinds;         /* KINDLING_MAGIC_LINE | KINDLING_MAGIC_CELL */
    const char *usage; /* e.g. "%hello [NAME]"; NULL: "%name" */
    const char *help;  /* one line, shown by %lsmagic, %help and inspection */
    kindling_magic_fn fn;
    void *user; /* passed to fn unchanged */
} kindling_magic_def;

/* One representation of an output: a MIME type and its data as text. Data of a JSON MIME type
 * (application/json, anything ending in +json) must be a JSON document; it is sent as JSON. */
typedef struct kindling_mime_data {
    const char *mime_type;
    const char *data;
} kindling_mime_data;

/* How run_sql shows results: Kindling's table (text, HTML, data grid), JSON records, CSV. */
enum { KINDLING_SQL_TABLE = 0, KINDLING_SQL_JSON = 1, KINDLING_SQL_CSV = 2 };

/* Levels for host->log. */
enum {
    KINDLING_LOG_DEBUG = 0,
    KINDLING_LOG_INFO = 1,
    KINDLING_LOG_WARN = 2,
    KINDLING_LOG_ERROR = 3
};

typedef struct kindling_magic_host {
    uint32_t abi_version;       /* KINDLING_MAGIC_ABI_VERSION of the kernel */
    uint32_t size;              /* sizeof(kindling_magic_host) in the kernel */
    const char *kernel_version; /* e.g. "0.1.0" */

    /* ---- during init only ---- */
    /* Declares a magic (def and its strings are copied). 0, or -1 for an invalid def (bad name,
     * kinds or NULL fn): the kernel then refuses the whole plugin with that reason. */
    int (*register_magic)(kindling_magic_registrar *reg, const kindling_magic_def *def);

    /* ---- output, from a handler ---- */
    /* Appends text to the cell's "stdout" or "stderr" stream. */
    void (*stream)(kindling_magic_ctx *ctx, const char *name, const char *text);
    /* A display_data output with n representations. 0, or -1 with the cell's error recorded
     * (malformed JSON data). */
    int (*display)(kindling_magic_ctx *ctx, const kindling_mime_data *items, size_t n);
    /* The cell's execute_result (Out[n]); items must include text/plain. 0 or -1 as display. */
    int (*result)(kindling_magic_ctx *ctx, const kindling_mime_data *items, size_t n);
    /* Records the cell's error (shown as "ename: evalue") and returns -1, so a handler can
     * `return host->error(ctx, "ValueError", "bad %s", x);`. */
    int (*error)(kindling_magic_ctx *ctx, const char *ename, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* ---- Spark ---- */
    /* Runs the SQL statements of sql (separated by ';') on this connection's Spark session and
     * shows each result as a plain SQL cell would: at most limit rows (<= 0: the kernel's
     * display limit), in the form output (KINDLING_SQL_*). Waits without blocking the kernel;
     * an interrupt cancels it. 0, or -1 with the Spark error recorded as the cell's error. */
    int (*run_sql)(kindling_magic_ctx *ctx, const char *sql, long limit, int output);

    /* ---- options of the kernel and of this connection ---- */
    long (*display_limit)(kindling_magic_ctx *ctx); /* rows shown per result */
    int (*truncation)(kindling_magic_ctx *ctx);     /* 1 when %truncation is on */
    /* The value set with %set name=value on this connection, or NULL when unset; free it with
     * host->free. */
    char *(*param)(kindling_magic_ctx *ctx, const char *name);

    /* ---- input ---- */
    /* Asks the client for a line (password hides what is typed). 0 with *value to free with
     * host->free, or -1 with the error recorded: the client does not allow input (allow_stdin
     * false), an interrupt, or a shutdown. */
    int (*input)(kindling_magic_ctx *ctx, const char *prompt, int password, char **value);
    void (*free)(void *p);

    /* ---- waiting ---- */
    /* Runs fn(arg) on a worker thread and returns 0 once it has finished; the connection's
     * other work waits, other connections go on. fn must not call the host. Not interruptible:
     * keep each call short or poll host->interrupted between calls. */
    int (*run_blocking)(kindling_magic_ctx *ctx, void (*fn)(void *arg), void *arg);
    /* Waits ms milliseconds without blocking the kernel: 0, or -1 with a KeyboardInterrupt error
     * recorded when the cell is interrupted. */
    int (*sleep)(kindling_magic_ctx *ctx, uint64_t ms);
    /* 1 once the cell has been interrupted; the handler should return soon. */
    int (*interrupted)(kindling_magic_ctx *ctx);
    /* Writes to the kernel's log (stderr), tagged with the plugin's file name. */
    void (*log)(kindling_magic_ctx *ctx, int level, const char *text);
} kindling_magic_host;

/* True when the running kernel's host table has member (added after the plugin's ABI began). */
#define KINDLING_MAGIC_HOST_HAS(host, member)                                                      \
    ((host)->size >= offsetof(kindling_magic_host, member) + sizeof((host)->member))

/* The ABI version a plugin states; declared here so that C++ plugins give it C linkage too. */
__attribute__((visibility("default"))) extern const uint32_t kindling_magic_plugin_abi;

/* Put this line at file scope in exactly one source file of the plugin. */
#define KINDLING_MAGIC_PLUGIN_ABI                                                                  \
    const uint32_t kindling_magic_plugin_abi = KINDLING_MAGIC_ABI_VERSION

/* The plugin's entry point, called once per load: declare magics with host->register_magic.
 * Returns 0; any other value refuses the load (nothing the plugin declared is registered). */
__attribute__((visibility("default"))) int
kindling_magic_plugin_init(const kindling_magic_host *host, kindling_magic_registrar *reg);

#ifdef __cplusplus
}
#endif

#endif
