#include "runtime/dynlib.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "runtime/log.h"

static void fail(kl_dynlib *lib, const char *fmt, const char *a, const char *b) {
    int n = snprintf(lib->error, sizeof lib->error, fmt, a, b);
    if (lib->package_hint && n > 0 && (size_t)n < sizeof lib->error)
        snprintf(lib->error + n, sizeof lib->error - (size_t)n, " (install %s)", lib->package_hint);
    lib->state = -1;
}

static void load_locked(kl_dynlib *lib) {
    /* RTLD_LOCAL keeps the library's symbols (and those of its dependencies) out of the global
     * scope, so a magic plugin loaded later cannot bind to them by accident; RTLD_NOW reports a
     * broken installation here, once, instead of at some later call. */
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        fail(lib, "cannot load %s: %s", lib->soname, why ? why : "unknown error");
        return;
    }
    for (size_t i = 0; i < lib->count; i++) {
        dlerror();
        void *sym = dlsym(h, lib->names[i]);
        if (!sym) {
            fail(lib, "%s has no symbol %s: the installed version does not match the build",
                 lib->soname, lib->names[i]);
            return; /* the handle stays open: harmless, and dlclose would run destructors */
        }
        lib->slots[i] = sym;
    }
    atomic_thread_fence(memory_order_release);
    lib->state = 1;
    KL_DEBUG("dynlib", "loaded %s (%zu symbols)", lib->soname, lib->count);
}

int kl_dynlib_load(kl_dynlib *lib, char *err, size_t errlen) {
    pthread_mutex_lock(&lib->mu);
    if (lib->state == 0) load_locked(lib);
    int ok = lib->state == 1;
    if (!ok && err && errlen) snprintf(err, errlen, "%s", lib->error);
    pthread_mutex_unlock(&lib->mu);
    return ok ? 0 : -1;
}

int kl_dynlib_loaded(kl_dynlib *lib) {
    pthread_mutex_lock(&lib->mu);
    int ok = lib->state == 1;
    pthread_mutex_unlock(&lib->mu);
    return ok;
}
