/* Fuzzes connection file parsing. A file that parses must give endpoints for every channel and
 * must carry only keys of the documented shape. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/connection.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kl_connection_info info;
    char err[512];
    err[0] = '\0';
    if (kl_connection_parse((const char *)data, size, "fuzz.json", &info, err, sizeof err) == 0) {
        for (int ch = 0; ch < KL_CH_COUNT; ch++) {
            char ep[512];
            if (kl_connection_endpoint(&info, (kl_channel)ch, ep, sizeof ep) != 0) abort();
            if (info.ports[ch] < 0 || info.ports[ch] > 65535) abort();
        }
        if (!info.key) abort();
        if (info.curve_publickey && strlen(info.curve_publickey) != 40) abort();
        if (!info.curve_publickey != !info.curve_secretkey) abort();
    } else if (strncmp(err, "fuzz.json: ", 11) != 0) {
        abort(); /* every error names the file */
    }
    kl_connection_free(&info);
    return 0;
}
