/* Fuzzes the JSON half of kl_msg_decode: the input is split on NUL bytes (never valid inside JSON
 * text) into the header, parent_header, metadata and content frames of an unsigned message. A
 * message that decodes must survive encode -> decode unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/message.h"

static kl_signer off;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    char err[256];
    if (!ready) {
        if (kl_signer_init(&off, "hmac-sha256", "", 0, err, sizeof err) < 0) abort();
        ready = 1;
    }

    kl_frames frames;
    kl_frames_init(&frames);
    kl_frames_add(&frames, "client", 6);
    kl_frames_add(&frames, KL_WIRE_DELIM, sizeof KL_WIRE_DELIM - 1);
    kl_frames_add(&frames, "", 0);
    size_t start = 0;
    int parts = 0;
    for (size_t i = 0; i <= size && parts < 4; i++) {
        if (i == size || data[i] == 0 || parts == 3) {
            size_t end = parts == 3 ? size : i;
            kl_frames_add(&frames, data + start, end - start);
            start = i + 1;
            parts++;
        }
    }
    while (parts++ < 4) kl_frames_add(&frames, "{}", 2);

    kl_msg m;
    int r = kl_msg_decode(&frames, &off, &m, err, sizeof err);
    if (m.idents.n != 1) abort(); /* identities survive every error */
    if (r == KL_MSG_OK) {
        kl_frames wire;
        kl_frames_init(&wire);
        if (kl_msg_encode(&m, &off, &wire) != 0) abort();
        kl_msg back;
        if (kl_msg_decode(&wire, &off, &back, err, sizeof err) != KL_MSG_OK) abort();
        if (!json_equal(back.header, m.header) || !json_equal(back.content, m.content) ||
            !json_equal(back.metadata, m.metadata) ||
            !json_equal(back.parent_header, m.parent_header))
            abort();
        kl_msg_clear(&back);
        kl_frames_clear(&wire);

        kl_msg child;
        if (kl_msg_init_child(&child, &m, "status", "fuzz", NULL) != 0) abort();
        if (!json_equal(child.parent_header, m.header)) abort();
        kl_msg_clear(&child);
    }
    kl_msg_clear(&m);
    return 0;
}
