/* Differential fuzzing of the fast JSON reader against jansson: whatever the fast reader accepts,
 * jansson must accept too and give an equal value with the same key order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/jsonread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *ours = kl_jsonread_parse((const char *)data, size, 128);
    if (!ours) return 0;
    json_error_t e;
    json_t *ref = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
    if (!ref || !json_equal(ours, ref)) abort();
    char *a = json_dumps(ours, JSON_ENCODE_ANY | JSON_COMPACT);
    char *b = json_dumps(ref, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!a || !b || strcmp(a, b) != 0) abort();
    free(a);
    free(b);
    json_decref(ours);
    json_decref(ref);
    return 0;
}
