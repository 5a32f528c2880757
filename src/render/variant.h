/* VARIANT values (Spark 4.0) as the JSON text Spark shows for them (Variant.toJson): objects
 * with their keys in the order the encoding lists them (sorted), no spaces; strings escaped as
 * Jackson does ('"', '\\', \b \t \n \f \r, other control characters as \u00XX); integers and
 * decimals in plain notation (decimals without trailing zeros); DOUBLE and FLOAT as Java 17
 * prints them (javanum.h), with NaN and the infinities as quoted strings; DATE "yyyy-MM-dd";
 * TIMESTAMP in UTC "yyyy-MM-dd HH:mm:ss[.ffffff]+00:00"; TIMESTAMP_NTZ without the offset;
 * BINARY as quoted base64; UUID as its quoted 8-4-4-4-12 hex form. Types newer than Spark 4.0
 * (TIME, nanosecond timestamps) print the same way with their precision.
 *
 * The encoding (parquet-format VariantEncoding.md): value and metadata are two byte strings; the
 * metadata is a dictionary of keys, the value a tree of primitives, short strings, objects and
 * arrays whose offsets all point into the value. Every read is bounds-checked. */
#ifndef KL_RENDER_VARIANT_H
#define KL_RENDER_VARIANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "render/buf.h"

/* Nesting a value may have; deeper ones are refused as malformed (Spark's JSON parser allows
 * 1000 levels). */
#define KL_VARIANT_MAX_DEPTH 2048

/* Appends the JSON text of the variant (value, metadata) to b. With max_bytes > 0 it stops soon
 * after max_bytes bytes were appended and sets *capped (may be NULL); the text then ends
 * anywhere, possibly inside a character. Returns 0; -EINVAL when the encoding is malformed (what
 * was appended is then meaningless: truncate it); -ENOMEM (b->failed) when out of memory. */
int kl_variant_to_json(kl_render_buf *b, const uint8_t *value, size_t value_len,
                       const uint8_t *metadata, size_t metadata_len, size_t max_bytes,
                       bool *capped);

#endif
