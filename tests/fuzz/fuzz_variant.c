/* Fuzzes kl_variant_to_json. Input: two bytes of metadata length (little-endian, taken modulo
 * what remains), the metadata, then the value. Whatever the bytes, the decoder answers 0 or
 * -EINVAL without reading outside either buffer (ASan checks); a success is valid UTF-8, and the
 * same input with an output cap gives a marked prefix of it that stops near the cap. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "render/variant.h"

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (k == 0 || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t rest = size - 2;
    size_t mlen = ((size_t)data[0] | (size_t)data[1] << 8) % (rest + 1);
    /* Copies sized exactly, so ASan sees any read past either end. */
    uint8_t *meta = malloc(mlen ? mlen : 1), *value = malloc(rest - mlen ? rest - mlen : 1);
    memcpy(meta, data + 2, mlen);
    memcpy(value, data + 2 + mlen, rest - mlen);

    kl_render_buf full;
    kl_render_buf_init(&full);
    bool capped = true;
    int rc = kl_variant_to_json(&full, value, rest - mlen, meta, mlen, 0, &capped);
    if (rc != 0 && rc != -EINVAL) abort();
    if (rc == 0 && (capped || full.failed || !valid_utf8((unsigned char *)full.data, full.len)))
        abort();

    size_t cap = 1 + size % 64;
    kl_render_buf cut;
    kl_render_buf_init(&cut);
    bool cut_capped = false;
    int rc2 = kl_variant_to_json(&cut, value, rest - mlen, meta, mlen, cap, &cut_capped);
    if (rc2 != 0 && rc2 != -EINVAL) abort();
    if (rc == 0 && rc2 == 0) {
        if (!cut_capped && (cut.len != full.len || memcmp(cut.data, full.data, full.len) != 0))
            abort();
        /* a cut ends at most a few characters into the next value or string */
        if (cut_capped && cut.len > 13 * (cap + 4) + 128) abort();
        /* a prefix, except where the cut string ends in a repaired character and a quote */
        size_t same = cut.len > 8 ? cut.len - 8 : 0;
        if (same > full.len || memcmp(cut.data, full.data, same) != 0) abort();
    }
    kl_render_buf_free(&cut);
    kl_render_buf_free(&full);
    free(meta);
    free(value);
    return 0;
}
