/* Running one execute_request: magics and code segments in order, with their output published as
 * the request's children. The context is what a magic handler talks to. */
#ifndef KL_KERNEL_EXECUTE_H
#define KL_KERNEL_EXECUTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernel/kernel.h"
#include "kernel/magic.h"
#include "kernel/tenant.h"

struct kl_magic_ctx {
    kl_kernel *k;
    kl_tenant *t;
    const kl_msg *parent;
    bool silent;
    bool allow_stdin;
    int execution_count;
    json_t *payload; /* execute_reply payloads */
    /* The first error stops the cell; it is published once the segment returns. */
    bool failed;
    char *ename, *evalue;
    json_t *traceback;
    char *result_text; /* text/plain of the execute_result, kept for history output */
};

/* Coroutine: handles an execute_request; publishes execute_input, outputs, the reply. When the
 * cell fails and stop_on_error holds, the executes queued behind it are marked to be aborted. */
void kl_execute(kl_kernel *k, kl_tenant *t, const kl_msg *msg);

void kl_ctx_stream(kl_magic_ctx *c, const char *name, const char *text);
/* data (and metadata, may be NULL) are stolen. */
void kl_ctx_display(kl_magic_ctx *c, json_t *data, json_t *metadata);
/* The cell's execute_result; data must hold text/plain. data/metadata stolen. */
void kl_ctx_result(kl_magic_ctx *c, json_t *data, json_t *metadata);
void kl_ctx_clear(kl_magic_ctx *c, bool wait);
/* Shows text in the pager (an execute_reply payload). */
void kl_ctx_page(kl_magic_ctx *c, const char *text);
/* Records the cell's error and returns -1, so handlers can `return kl_ctx_error(...)`. */
int kl_ctx_error(kl_magic_ctx *c, const char *ename, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parks for ms; -1 (with a KeyboardInterrupt error recorded) when interrupted. */
int kl_ctx_sleep(kl_magic_ctx *c, uint64_t ms);
/* Asks the client for a line; 0 with *value malloc'd (caller frees) or -1 with the error recorded
 * (stdin not allowed, interrupted, shutting down). */
int kl_ctx_input(kl_magic_ctx *c, const char *prompt, bool password, char **value);

/* The canonical name of the magic whose handler is running for c (the innermost one when cells
 * nest), or NULL outside a handler. */
const char *kl_ctx_magic_name(kl_magic_ctx *c);
/* Coroutine: runs code as a cell inside the current one (magics and SQL, output to the same
 * request, until the first error). 0, or -1 with the error recorded in c. */
int kl_ctx_run_cell(kl_magic_ctx *c, const char *code);

/* Registers the built-in magics (magics/builtin.c) and %config (magics/config.c). */
int kl_builtin_magics_register(kl_magic_registry *reg);
int kl_config_magics_register(kl_magic_registry *reg);
/* %set, %progress, %connect, %%dataframe (magics/session.c). */
int kl_session_magics_register(kl_magic_registry *reg);
/* %explain, %schema, %tables, %databases, %functions, %describe (magics/catalog.c). */
int kl_catalog_magics_register(kl_magic_registry *reg);
/* %AddJar, %AddFile, %AddDeps (magics/artifact.c). */
int kl_artifact_magics_register(kl_magic_registry *reg);
/* %sh, %%sh, %env, %time, %history, %load_magic (magics/shell.c). */
int kl_shell_magics_register(kl_magic_registry *reg);
/* Loads --magic-plugin files and the plugin directory (kernel/plugin.c); -1 with err set when a
 * named plugin cannot be loaded. */
int kl_plugin_load_startup(kl_kernel *k, char *err, size_t errlen);
/* Frees the tenant's catalog cache (kernel/catalog.c). */
void kl_catalog_tenant_free(kl_tenant *t);

#endif
