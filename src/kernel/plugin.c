/* Placeholder until magic plugins land. */
#include "kernel/execute.h"

int kl_plugin_load_startup(kl_kernel *k, char *err, size_t errlen) {
    (void)k;
    (void)err;
    (void)errlen;
    return 0;
}
