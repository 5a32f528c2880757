#include "runtime/uuid.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

/* Every message the kernel sends needs a fresh id, and one RAND_bytes call per id costs more than
 * the rest of building a header; drawing 32 ids' worth at a time keeps them from the same CSPRNG
 * at a fraction of the cost. Per thread, so no locking. */
static _Thread_local unsigned char pool[512];
static _Thread_local size_t pool_left;

int kl_uuid_v4(char out[KL_UUID_STRLEN]) {
    unsigned char b[16];
    if (pool_left < sizeof b) {
        if (RAND_bytes(pool, sizeof pool) != 1) return -1;
        pool_left = sizeof pool;
    }
    memcpy(b, pool + sizeof pool - pool_left, sizeof b);
    /* Used bytes are wiped so ids already handed out cannot be read back from memory. */
    memset(pool + sizeof pool - pool_left, 0, sizeof b);
    pool_left -= sizeof b;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 0x0f];
    }
    *o = '\0';
    return 0;
}
