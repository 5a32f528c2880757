/* Fuzzes kl_msg_decode on arbitrary multipart messages.
 * Input: byte 0 chooses the signer (even: keyed hmac-sha256, odd: unsigned, so that the fuzzer can
 * reach the JSON parsing behind the signature check); the rest is split on 0xFF into at most 16
 * frames. A message that decodes must survive encode -> decode unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jupyter/message.h"

#define MAX_FRAMES 16
#define SEPARATOR  0xFF

static kl_signer keyed, unsigned_;

static void init_once(void) {
    static int done;
    if (done) return;
    char err[256];
    static const char key[] = "fuzz-key";
    if (kl_signer_init(&keyed, "hmac-sha256", key, sizeof key - 1, err, sizeof err) < 0 ||
        kl_signer_init(&unsigned_, "hmac-sha256", "", 0, err, sizeof err) < 0)
        abort();
    done = 1;
}

static void check_round_trip(const kl_msg *m, const kl_signer *s) {
    kl_frames wire;
    kl_frames_init(&wire);
    if (kl_msg_encode(m, s, &wire) != 0) abort();
    kl_msg back;
    char err[256];
    if (kl_msg_decode(&wire, s, &back, err, sizeof err) != KL_MSG_OK) abort();
    if (back.idents.n != m->idents.n || back.buffers.n != m->buffers.n) abort();
    if (!json_equal(back.header, m->header) || !json_equal(back.parent_header, m->parent_header) ||
        !json_equal(back.metadata, m->metadata) || !json_equal(back.content, m->content))
        abort();
    for (size_t i = 0; i < m->buffers.n; i++) {
        size_t n = kl_frames_size(&m->buffers, i);
        if (kl_frames_size(&back.buffers, i) != n ||
            (n && memcmp(kl_frames_data(&back.buffers, i), kl_frames_data(&m->buffers, i), n)))
            abort();
    }
    kl_msg_clear(&back);
    kl_frames_clear(&wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_once();
    if (size < 1) return 0;
    const kl_signer *s = (data[0] & 1) ? &unsigned_ : &keyed;
    data++;
    size--;

    kl_frames frames;
    kl_frames_init(&frames);
    size_t start = 0;
    for (size_t i = 0; i <= size && frames.n < MAX_FRAMES; i++) {
        if (i == size || data[i] == SEPARATOR || frames.n == MAX_FRAMES - 1) {
            size_t end = frames.n == MAX_FRAMES - 1 ? size : i;
            if (kl_frames_add(&frames, data + start, end - start) < 0) abort();
            start = i + 1;
        }
    }

    kl_msg m;
    char err[256];
    int r = kl_msg_decode(&frames, s, &m, err, sizeof err);
    if (frames.n != 0) abort(); /* decode consumes its input */
    if (r == KL_MSG_OK) {
        (void)kl_msg_type(&m);
        (void)kl_msg_subshell_id(&m);
        check_round_trip(&m, s);
    } else if (m.header || m.content || m.buffers.n) {
        abort(); /* on error only the identities are left */
    }
    kl_msg_clear(&m);
    return 0;
}
