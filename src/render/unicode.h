/* UTF-8 text as table cells: repair, width, truncation and Spark's escaping of control
 * characters. Every function except kl_unicode_append_repaired expects valid UTF-8.
 *
 * Two ways to measure a cell:
 * - KL_WIDTH_SPARK is what Spark 4.0's show() measures (Utils.stringHalfWidth): Java string
 *   length in UTF-16 units plus one for each character in a fixed list of BMP full-width ranges
 *   (Hangul Jamo, CJK, Hangul syllables, full-width forms). Combining marks count 1 and
 *   characters outside the BMP count 2. Truncation counts UTF-16 units (String.length and
 *   substring). This reproduces Spark byte for byte.
 * - KL_WIDTH_DISPLAY is what a terminal or a monospace notebook cell shows: combining marks and
 *   other zero-width characters count 0, East Asian wide and full-width characters (including
 *   those outside the BMP, such as emoji) count 2, everything else 1, from a compact table.
 *   Truncation counts the same columns and never separates a base from its combining marks. */
#ifndef KL_RENDER_UNICODE_H
#define KL_RENDER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#include "render/buf.h"

typedef enum kl_width_mode { KL_WIDTH_SPARK, KL_WIDTH_DISPLAY } kl_width_mode;

/* Appends n bytes, replacing each maximal ill-formed subsequence with U+FFFD (the Unicode
 * "substitution of maximal subparts" practice), so the result is always valid UTF-8. */
void kl_unicode_append_repaired(kl_render_buf *b, const uint8_t *s, size_t n);

/* Decodes the code point at s[*i] (i < n) and advances *i past it. */
uint32_t kl_unicode_next(const char *s, size_t n, size_t *i);

/* Columns (KL_WIDTH_DISPLAY) or Spark half-widths (KL_WIDTH_SPARK) of n bytes of text. */
size_t kl_unicode_width(const char *s, size_t n, kl_width_mode mode);

/* Appends s, cut the way show(truncate = limit) cuts a cell when it is longer than limit: to
 * limit - 3 units plus "...", or to limit units without dots when limit < 4. Text within the
 * limit is appended unchanged. With KL_WIDTH_SPARK a cut through a surrogate pair leaves '?'
 * (Java keeps a lone surrogate there, which its UTF-8 encoder writes as '?'). */
void kl_unicode_append_truncated(kl_render_buf *b, const char *s, size_t n, size_t limit,
                                 kl_width_mode mode);

/* Appends s with \n \r \t \f \b \v \a written as two-character escapes, as Spark's
 * escapeMetaCharacters does to every header and cell so rows stay on one line. */
void kl_unicode_append_escaped(kl_render_buf *b, const char *s, size_t n);

/* The length of the longest prefix of s (valid UTF-8) that is at most max bytes and ends on a
 * character boundary. */
size_t kl_unicode_prefix(const char *s, size_t n, size_t max);

#endif
