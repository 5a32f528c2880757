/* Completion of SQL keywords and magic names at a cursor. Catalog-aware completion (tables,
 * columns, functions) plugs in later through the sources argument. */
#ifndef KL_KERNEL_COMPLETE_H
#define KL_KERNEL_COMPLETE_H

#include <jansson.h>
#include <stddef.h>

#include "kernel/magic.h"

/* Builds a complete_reply content object (status, matches, cursor_start, cursor_end, metadata
 * with _jupyter_types_experimental) for code with the cursor at cursor_pos, counted in Unicode
 * code points as the protocol says. Keywords keep the case the user typed (upper unless the
 * prefix is all lower case); after % or %% the registry's magic names are offered. New reference.
 */
json_t *kl_complete(const char *code, size_t cursor_pos, const kl_magic_registry *magics);

/* The token around a cursor (letters, digits, _, and a leading % or %%), as byte offsets. */
void kl_complete_token(const char *code, size_t cursor_byte, size_t *start, size_t *end);

/* Byte offset of code point cp in a UTF-8 string (clamped to the length), and the reverse. */
size_t kl_utf8_cp_to_byte(const char *s, size_t cp);
size_t kl_utf8_byte_to_cp(const char *s, size_t byte);

#endif
