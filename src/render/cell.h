/* One value as Spark 4 prints it in show() (the ToPrettyString expression): NULL as "NULL" at
 * every level, arrays "[1, NULL, 3]", maps "{a -> 1, b -> NULL}", structs "{1, x}", binary as
 * upper-case hex "[01 02 FF]", decimals in plain notation with their scale, floating point as
 * Java prints it (javanum.h), dates and timestamps as in datetime.h with timestamps in the session
 * zone, intervals as ANSI literals with their fields ("INTERVAL '4' HOUR") when the table has
 * Spark's schema (table.h), else their full range, VARIANT values as their JSON text
 * (variant.h). Strings are copied with ill-formed UTF-8 replaced by U+FFFD.
 *
 * A context carries the zone setting, a cap on bytes per cell and a one-entry zone cache; it is
 * not thread-safe, so each rendering call uses its own. */
#ifndef KL_RENDER_CELL_H
#define KL_RENDER_CELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "render/buf.h"
#include "render/tz.h"
#include "spark/arrow.h"

typedef struct kl_cell_ctx {
    const char *zone;       /* session zone, or NULL for each field's own */
    size_t max_bytes;       /* 0: no cap */
    char *err;              /* KL_RENDER_ERRLEN bytes for messages */
    const char *cached_id;  /* the last zone id resolved ... */
    const kl_tz *cached_tz; /* ... and its zone */
    size_t limit;           /* private: output end allowed for the current cell */
    bool capped;            /* private */
} kl_cell_ctx;

/* err must hold KL_RENDER_ERRLEN bytes and outlive the context. */
void kl_cell_ctx_init(kl_cell_ctx *c, const char *zone, size_t max_bytes, char *err);

/* Appends the text of row i of a to b. A cell longer than max_bytes is cut at a character
 * boundary and ends with "..." (it never produces much more than max_bytes, however large the
 * value); *capped (may be NULL) says so. Returns 0, or -EINVAL when a time zone cannot be
 * resolved (message in err); allocation failures show up in b->failed. */
int kl_cell_text(kl_cell_ctx *c, kl_render_buf *b, const kl_arrow_array *a, int64_t i,
                 bool *capped);

/* The zone that renders TIMESTAMP field f, or NULL for a timestamp without zone. Returns 0 or
 * -EINVAL with a message in err. */
int kl_cell_zone(kl_cell_ctx *c, const kl_arrow_field *f, const kl_tz **out);

/* A TIMESTAMP value as local date-time text ("yyyy-MM-dd HH:mm:ss[.f]"); with iso, 'T' between
 * date and time and, for a zoned timestamp, the UTC offset after it. buf holds
 * KL_DATETIME_LEN bytes. Returns the length or -EINVAL. */
int kl_cell_timestamp(kl_cell_ctx *c, const kl_arrow_array *a, int64_t i, bool iso, char *buf);

#endif
