/* The Jupyter wire format: identities, <IDS|MSG>, signature, four JSON frames, buffers; and the
 * HMAC that signs it. */
#ifndef KL_JUPYTER_WIRE_H
#define KL_JUPYTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/zsock.h"

#define KL_WIRE_DELIM  "<IDS|MSG>"
#define KL_SIG_HEX_MAX 129 /* 64-byte digest in hex and the NUL */

typedef struct kl_slice {
    const void *data;
    size_t len;
} kl_slice;

typedef struct kl_signer {
    const void *md;     /* const EVP_MD *, NULL when signing is off (empty key) */
    unsigned char *key; /* owned */
    size_t keylen;
    /* Keyed once at init (an internal struct: a keyed template and a context that each signature
     * restarts with the same key), because keying (digest lookup by name, key schedule) costs
     * more than hashing a whole message. */
    void *keyed;
} kl_signer;

/* scheme is "hmac-<digest>" with any digest OpenSSL knows by name (hmac-sha256, hmac-sha512,
 * hmac-md5, hmac-sha3_256 ...). An empty key turns signing off. -1 with a message on error. */
int kl_signer_init(kl_signer *s, const char *scheme, const char *key, size_t keylen, char *err,
                   size_t errlen);
void kl_signer_free(kl_signer *s);
bool kl_signer_enabled(const kl_signer *s);
/* Hex HMAC of the four JSON parts into hex (KL_SIG_HEX_MAX bytes); "" when signing is off. */
int kl_signer_sign(const kl_signer *s, const kl_slice parts[4], char hex[KL_SIG_HEX_MAX]);
/* Constant-time comparison of sig (not NUL-terminated) with the HMAC of parts. When signing is off
 * any signature is accepted. */
bool kl_signer_verify(const kl_signer *s, const kl_slice parts[4], const void *sig, size_t siglen);

/* A message split into its parts; slices point into the frames they came from. */
typedef struct kl_wire_parts {
    size_t n_idents; /* frames before the delimiter */
    kl_slice sig;
    kl_slice json[4];               /* header, parent_header, metadata, content */
    size_t first_buffer, n_buffers; /* frame index of the first raw buffer, and count */
} kl_wire_parts;

typedef enum {
    KL_WIRE_OK = 0,
    KL_WIRE_ENODELIM = -1, /* no <IDS|MSG> frame */
    KL_WIRE_ESHORT = -2,   /* fewer than five frames after the delimiter */
    KL_WIRE_EBADSIG = -3,  /* signature missing or wrong */
} kl_wire_status;

/* Splits frames and verifies the signature. Returns a kl_wire_status. */
int kl_wire_split(const kl_frames *f, const kl_signer *s, kl_wire_parts *out);
/* The same over frames a caller holds as slices (a client reading the wire without libzmq); out's
 * slices point into them. */
int kl_wire_split_slices(const kl_slice *frames, size_t n, const kl_signer *s, kl_wire_parts *out);
const char *kl_wire_strerror(int status);

#endif
