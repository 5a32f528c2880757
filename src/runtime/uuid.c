#include "runtime/uuid.h"

#include <openssl/rand.h>
#include <stdio.h>

int kl_uuid_v4(char out[KL_UUID_STRLEN]) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) return -1;
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
