/* Placeholder until this module's magics land. */
#include "kernel/execute.h"

int kl_catalog_magics_register(kl_magic_registry *reg) {
    (void)reg;
    return 0;
}
