/* Compact JSON text of jansson values, for the wire: every message the kernel sends is serialised
 * here, so this is a lean writer instead of json_dumps (which costs about a third of a round trip
 * in its per-character callback output). */
#ifndef KL_JUPYTER_JSONTEXT_H
#define KL_JUPYTER_JSONTEXT_H

#include <jansson.h>
#include <stddef.h>

/* Values nested deeper than this are refused, so a hostile document cannot exhaust a stack. */
#define KL_JSONTEXT_MAX_DEPTH 512

/* Returns v as compact JSON (object keys in insertion order, non-ASCII text kept as UTF-8, like
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) in a malloc'd NUL-terminated string (caller
 * frees) with its length in *len; NULL on allocation failure or nesting beyond the limit. */
char *kl_jsontext_dump(const json_t *v, size_t *len);

/* Room kl_jsontext_quote needs for n bytes of text: every byte may become a six-byte escape. */
#define KL_JSONTEXT_QUOTED_MAX(n) ((n)*6 + 2)
/* Writes s[0..n) as a JSON string literal, quotes included, escaped exactly as kl_jsontext_dump
 * escapes strings, into dst (KL_JSONTEXT_QUOTED_MAX(n) bytes of room, not NUL-terminated).
 * Returns the number of bytes written. */
size_t kl_jsontext_quote(char *dst, const char *s, size_t n);

#endif
