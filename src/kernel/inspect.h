/* inspect_request: what the name at the cursor is. A magic shows its help; a table or view its
 * columns and properties (DESCRIBE TABLE EXTENDED); a function its usage and examples (DESCRIBE
 * FUNCTION EXTENDED). detail_level 1 shows everything Spark tells. */
#ifndef KL_KERNEL_INSPECT_H
#define KL_KERNEL_INSPECT_H

#include <jansson.h>

#include "kernel/catalog.h"
#include "kernel/kernel.h"

/* Coroutine (the tenant's): the inspect_reply content for msg. Catalog lookups wait at most
 * KL_CATALOG_INSPECT_WAIT_MS in all. New reference. */
json_t *kl_inspect(kl_kernel *k, kl_tenant *t, const kl_msg *msg);

/* The text/plain and text/html of a DESCRIBE TABLE EXTENDED answer for name (as the user wrote
 * it); kind is "table", "view" or "temporary view". Exposed for unit tests. *text and *html are
 * malloc'd; -1 when out of memory. */
int kl_inspect_render_table(const kl_catalog_rows *desc, const char *name, const char *kind,
                            int detail, char **text, char **html);
/* The same for a DESCRIBE FUNCTION EXTENDED answer. */
int kl_inspect_render_function(const kl_catalog_rows *desc, int detail, char **text, char **html);

#endif
