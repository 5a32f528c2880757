/* Placeholder until the catalog cache lands. */
#include "kernel/execute.h"

void kl_catalog_tenant_free(kl_tenant *t) {
    (void)t;
}
