/* Magic plugins (include/kindling/magic.h): opening a shared object, checking its ABI, collecting
 * the magics it declares, and registering them behind one trampoline that hands each call to the
 * plugin's handler with the host table. Plugins stay loaded until the process exits. */
#ifndef KL_KERNEL_PLUGIN_H
#define KL_KERNEL_PLUGIN_H

#include <stddef.h>

#include "kernel/execute.h"
#include "kernel/magic.h"
#include "kindling/magic.h"

typedef struct kl_plugin kl_plugin;

/* Blocking (dlopen, the plugin's init): on the pool or before the loop runs. Opens path, checks
 * its ABI version and runs its init. 0 with *out (release it with kl_plugin_install or
 * kl_plugin_discard); -EEXIST when this very file is already installed (nothing to do); -1 with
 * a message in err otherwise. */
int kl_plugin_open(const char *path, kl_plugin **out, char *err, size_t errlen);
/* Loop thread: registers every magic of p in reg, or none when one name is taken (err names it).
 * On success the process owns p. */
int kl_plugin_install(kl_plugin *p, kl_magic_registry *reg, char *err, size_t errlen);
/* Frees a plugin that was not installed. Its code stays mapped: its init has run, and code the
 * plugin started might still be live. */
void kl_plugin_discard(kl_plugin *p);

/* Read access for reporting what a plugin declared. */
const char *kl_plugin_path(const kl_plugin *p);
size_t kl_plugin_magic_count(const kl_plugin *p);
/* "%name", "%%name" or "%name, %%name" for the i-th magic, into buf. */
void kl_plugin_magic_label(const kl_plugin *p, size_t i, char *buf, size_t len);

/* The table plugins call back through. */
const kindling_magic_host *kl_plugin_host(void);

/* %load_magic PATH (coroutine): opens PATH on the pool, installs it, reports what it added. */
int kl_plugin_magic_load(kl_magic_ctx *c, const char *args, const char *body);

#endif
