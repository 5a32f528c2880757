/* application/vnd.dataresource+json: a Table Schema data resource, the shape JupyterLab's and
 * nteract's data grids read (and pandas' to_json(orient="table") writes):
 *
 *   {"schema": {"fields": [{"name": "id", "type": "integer", "sparkType": "bigint"}, ...]},
 *    "data": [{"id": 1, ...}, ...]}
 *
 * Field names are made unique ("a", "a_2") because rows are objects. Values keep their JSON type:
 * booleans; integers as numbers up to 2^53 in magnitude and as decimal strings beyond (a
 * JavaScript number would round them); floats as numbers with Java's shortest digits, NaN and
 * infinities as Table Schema's strings "NaN", "INF", "-INF"; decimals as numbers when they have at
 * most 15 significant digits, as exact strings otherwise; dates "2024-01-31" (type date);
 * timestamps ISO 8601 in the session zone with their offset, "2024-01-31T12:00:00.5-08:00", and
 * timestamp_ntz without one (type datetime); binary, intervals and times as the text/plain text;
 * arrays as arrays, structs as objects, maps as objects keyed by the keys' text; NULL as null.
 *
 * Strings are not cut at the truncate option (a grid shows long text itself) but every cell is
 * held to max_cell_bytes: a longer string ends with "...", and an array or object that would
 * exceed it stops with a final "..." element (key "..." in objects). At most max_rows rows. */
#ifndef KL_RENDER_JSON_H
#define KL_RENDER_JSON_H

#include <jansson.h>

#include "render/table.h"

/* Returns 0 with *out (a new reference), or -EINVAL (time zone) or -ENOMEM with a message in
 * err. */
int kl_json_render(const kl_table *t, const kl_render_options *o, json_t **out,
                   char err[KL_RENDER_ERRLEN]);

#endif
