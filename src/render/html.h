/* text/html: the table as an HTML <table> with the same cell texts as text/plain (Spark's
 * formatting, truncation and control-character escapes), every text HTML-escaped:
 *
 *   <table class="kl-table">
 *   <caption>showing 20 of at least 25 rows</caption>       only when rows were left out
 *   <thead><tr><th>id</th>...</tr>
 *   <tr class="kl-types"><th>bigint</th>...</tr></thead>     only with show_types
 *   <tbody><tr><td>1</td><td class="kl-null"><em>NULL</em></td></tr>...</tbody>
 *   </table>
 *
 * The caption counts the rows the table saw: "of M rows" when that is all of them, "of at least
 * M rows" when the source had more (kl_table_set_more). A NULL value is an <em> in a "kl-null"
 * cell, so it differs from the string "NULL" with and without a style sheet. */
#ifndef KL_RENDER_HTML_H
#define KL_RENDER_HTML_H

#include <stddef.h>

#include "render/table.h"

/* Returns 0 with *out (NUL-terminated, free() it) and *len, or -EINVAL (time zone) or -ENOMEM
 * with a message in err. */
int kl_html_render(const kl_table *t, const kl_render_options *o, char **out, size_t *len,
                   char err[KL_RENDER_ERRLEN]);

#endif
