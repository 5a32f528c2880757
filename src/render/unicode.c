#include "render/unicode.h"

#include <stdbool.h>
#include <string.h>

/* Length of the well-formed sequence at s[0..n), or 0 with *bad set to the bytes that form its
 * maximal ill-formed prefix (at least 1). */
static size_t valid_seq(const uint8_t *s, size_t n, size_t *bad) {
    uint8_t c = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < need && i < n; i++) {
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    if (i == need) return need;
    *bad = i;
    return 0;
}

void kl_unicode_append_repaired(kl_render_buf *b, const uint8_t *s, size_t n) {
    size_t i = 0, run = 0; /* run: start of the pending well-formed bytes */
    while (i < n) {
        size_t bad = 0, len = valid_seq(s + i, n - i, &bad);
        if (len) {
            i += len;
            continue;
        }
        kl_render_buf_append(b, s + run, i - run);
        kl_render_buf_append(b, "\xEF\xBF\xBD", 3);
        i += bad;
        run = i;
    }
    kl_render_buf_append(b, s + run, n - run);
}

uint32_t kl_unicode_next(const char *str, size_t n, size_t *i) {
    const uint8_t *s = (const uint8_t *)str + *i;
    size_t left = n - *i;
    uint32_t c = s[0];
    if (c < 0x80 || left < 2) {
        *i += 1;
        return c;
    }
    if (c < 0xE0) {
        *i += 2;
        return (c & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (c < 0xF0 || left < 4) {
        *i += left < 3 ? left : 3;
        return left < 3 ? 0xFFFD : (c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *i += 4;
    return (c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
           (s[3] & 0x3F);
}

typedef struct range {
    uint32_t lo, hi;
} range;

static bool in(const range *r, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid].lo)
            hi = mid;
        else if (c > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* Spark's Utils.fullWidthRegex, verbatim ranges. */
static const range spark_full[] = {
    {0x1100, 0x115F}, {0x2E80, 0xA4CF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
    {0xFE10, 0xFE19}, {0xFE30, 0xFE6F}, {0xFF00, 0xFF60}, {0xFFE0, 0xFFE6},
};

/* Nonspacing and enclosing marks of the common scripts, format characters, variation selectors
 * and conjoining Hangul vowels and finals: what terminals draw in zero columns. */
static const range zero_width[] = {
    {0x0300, 0x036F},   {0x0483, 0x0489},   {0x0591, 0x05BD},   {0x05BF, 0x05BF}, {0x05C1, 0x05C2},
    {0x05C4, 0x05C5},   {0x05C7, 0x05C7},   {0x0610, 0x061A},   {0x064B, 0x065F}, {0x0670, 0x0670},
    {0x06D6, 0x06DC},   {0x06DF, 0x06E4},   {0x06E7, 0x06E8},   {0x06EA, 0x06ED}, {0x0711, 0x0711},
    {0x0730, 0x074A},   {0x07A6, 0x07B0},   {0x0900, 0x0902},   {0x093A, 0x093A}, {0x093C, 0x093C},
    {0x0941, 0x0948},   {0x094D, 0x094D},   {0x0951, 0x0957},   {0x0962, 0x0963}, {0x0981, 0x0981},
    {0x09BC, 0x09BC},   {0x09C1, 0x09C4},   {0x09CD, 0x09CD},   {0x0A01, 0x0A02}, {0x0A3C, 0x0A3C},
    {0x0A41, 0x0A51},   {0x0A70, 0x0A71},   {0x0A81, 0x0A82},   {0x0ABC, 0x0ABC}, {0x0AC1, 0x0AC8},
    {0x0ACD, 0x0ACD},   {0x0B01, 0x0B01},   {0x0B3C, 0x0B3C},   {0x0B3F, 0x0B3F}, {0x0B41, 0x0B44},
    {0x0B4D, 0x0B4D},   {0x0BC0, 0x0BC0},   {0x0BCD, 0x0BCD},   {0x0C3E, 0x0C40}, {0x0C46, 0x0C56},
    {0x0CBC, 0x0CBC},   {0x0CCC, 0x0CCD},   {0x0D41, 0x0D44},   {0x0D4D, 0x0D4D}, {0x0E31, 0x0E31},
    {0x0E34, 0x0E3A},   {0x0E47, 0x0E4E},   {0x0EB1, 0x0EB1},   {0x0EB4, 0x0EBC}, {0x0EC8, 0x0ECD},
    {0x0F71, 0x0F7E},   {0x1160, 0x11FF},   {0x135D, 0x135F},   {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},
    {0x200B, 0x200F},   {0x202A, 0x202E},   {0x2060, 0x2064},   {0x20D0, 0x20FF}, {0x302A, 0x302D},
    {0x3099, 0x309A},   {0xD7B0, 0xD7FF},   {0xFE00, 0xFE0F},   {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF},
    {0x1F3FB, 0x1F3FF}, {0xE0000, 0xE007F}, {0xE0100, 0xE01EF},
};

/* East Asian Wide and Fullwidth blocks, and the emoji that terminals draw two columns wide. */
static const range wide[] = {
    {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
    {0x23F0, 0x23F0},   {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},
    {0x2648, 0x2653},   {0x267F, 0x267F},   {0x2693, 0x2693},   {0x26A1, 0x26A1},
    {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},   {0x26CE, 0x26CE},
    {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
    {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},
    {0x2728, 0x2728},   {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},
    {0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x27BF, 0x27BF},
    {0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x2E80, 0x303E},
    {0x3041, 0x3247},   {0x3250, 0x4DBF},   {0x4E00, 0xA4CF},   {0xA960, 0xA97F},
    {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},
    {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x16FE0, 0x16FE4}, {0x17000, 0x18CFF},
    {0x1B000, 0x1B2FF}, {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF}, {0x1F18E, 0x1F18E},
    {0x1F191, 0x1F19A}, {0x1F200, 0x1F251}, {0x1F300, 0x1F3FA}, {0x1F400, 0x1F64F},
    {0x1F680, 0x1F6FF}, {0x1F7E0, 0x1F7EB}, {0x1F90C, 0x1F9FF}, {0x1FA70, 0x1FAFF},
    {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static size_t cp_width(uint32_t c, kl_width_mode mode) {
    if (mode == KL_WIDTH_SPARK) {
        if (c >= 0x10000) return 2; /* a surrogate pair: two UTF-16 units */
        return in(spark_full, N(spark_full), c) ? 2 : 1;
    }
    if (c < 0x20 || (c >= 0x7F && c < 0xA0)) return 0;
    if (c < 0x300) return 1;
    if (in(zero_width, N(zero_width), c)) return 0;
    return in(wide, N(wide), c) ? 2 : 1;
}

size_t kl_unicode_width(const char *s, size_t n, kl_width_mode mode) {
    size_t w = 0, i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80 && mode == KL_WIDTH_SPARK) {
            w++, i++;
            continue;
        }
        w += cp_width(kl_unicode_next(s, n, &i), mode);
    }
    return w;
}

/* Units of truncation: UTF-16 units for Spark, columns for display. */
static size_t cp_units(uint32_t c, kl_width_mode mode) {
    if (mode == KL_WIDTH_SPARK) return c >= 0x10000 ? 2 : 1;
    return cp_width(c, mode);
}

void kl_unicode_append_truncated(kl_render_buf *b, const char *s, size_t n, size_t limit,
                                 kl_width_mode mode) {
    size_t total = 0;
    for (size_t i = 0; i < n && total <= limit;) total += cp_units(kl_unicode_next(s, n, &i), mode);
    if (total <= limit) {
        kl_render_buf_append(b, s, n);
        return;
    }
    size_t keep = limit < 4 ? limit : limit - 3, used = 0, i = 0;
    while (i < n) {
        size_t at = i;
        uint32_t c = kl_unicode_next(s, n, &i);
        size_t u = cp_units(c, mode);
        if (used + u > keep) { /* zero-width marks never get here: they stay with their base */
            if (mode == KL_WIDTH_SPARK && used < keep) kl_render_buf_putc(b, '?');
            break;
        }
        used += u;
        kl_render_buf_append(b, s + at, i - at);
    }
    if (limit >= 4) kl_render_buf_append(b, "...", 3);
}

void kl_unicode_append_escaped(kl_render_buf *b, const char *s, size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        char e;
        switch (s[i]) {
        case '\n':
            e = 'n';
            break;
        case '\r':
            e = 'r';
            break;
        case '\t':
            e = 't';
            break;
        case '\f':
            e = 'f';
            break;
        case '\b':
            e = 'b';
            break;
        case '\v':
            e = 'v';
            break;
        case '\a':
            e = 'a';
            break;
        default:
            continue;
        }
        kl_render_buf_append(b, s + run, i - run);
        char esc[2] = {'\\', e};
        kl_render_buf_append(b, esc, 2);
        run = i + 1;
    }
    kl_render_buf_append(b, s + run, n - run);
}

size_t kl_unicode_prefix(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t i = max;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}
