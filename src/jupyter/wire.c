/* HMAC signing of the four JSON frames, and splitting a multipart message at <IDS|MSG>. */
/* The low-level SHA-256 interface is deprecated in OpenSSL 3 but kept; it is used for the one
 * digest nearly every client signs with (see kl_sha256_hmac below). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "jupyter/wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>

/* Python's hashlib attribute names (what jupyter_client accepts after "hmac-") where OpenSSL spells
 * the same digest differently. Names not listed are handed to OpenSSL as they are, which already
 * knows md5, sha1, sha224 ... sha512 case-insensitively. */
static const struct {
    const char *python, *openssl;
} digest_aliases[] = {
    {"sha3_224", "SHA3-224"},   {"sha3_256", "SHA3-256"},     {"sha3_384", "SHA3-384"},
    {"sha3_512", "SHA3-512"},   {"sha512_224", "SHA512-224"}, {"sha512_256", "SHA512-256"},
    {"blake2b", "BLAKE2B-512"}, {"blake2s", "BLAKE2S-256"},   {"sm3", "SM3"},
    {"shake_128", "SHAKE-128"}, {"shake_256", "SHAKE-256"},
};

static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void) {
    hmac_alg = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
}

/* The process-wide HMAC implementation (borrowed, never freed: it lives as long as OpenSSL). */
static EVP_MAC *hmac_get(void) {
    pthread_once(&hmac_once, hmac_fetch);
    return hmac_alg;
}

/* A fresh MAC context keyed and ready for updates; caller frees. NULL on failure. */
static EVP_MAC_CTX *hmac_start(const EVP_MD *md, const unsigned char *key, size_t keylen) {
    EVP_MAC *mac = hmac_get();
    if (!mac) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    if (!ctx) return NULL;
    OSSL_PARAM params[2];
    params[0] =
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(ctx, key, keylen, params)) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* HMAC-SHA256 from the two digest states after the padded key (RFC 2104), so that a signature is
 * two struct copies and plain hashing: OpenSSL 3.0's EVP_MAC allocates and frees a digest context
 * twice per signature and dispatches every update through its provider, which together cost more
 * than hashing a whole message, and the kernel signs or checks six messages per execute. Read-only
 * after init, so any thread may sign with it at once. */
typedef struct kl_sha256_hmac {
    SHA256_CTX inner, outer;
} kl_sha256_hmac;

static void sha256_hmac_init(kl_sha256_hmac *h, const unsigned char *key, size_t keylen) {
    unsigned char block[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK];
    if (keylen > sizeof block)
        SHA256(key, keylen, block);
    else
        memcpy(block, key, keylen);
    for (size_t i = 0; i < sizeof block; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(&h->inner);
    SHA256_Update(&h->inner, pad, sizeof pad);
    for (size_t i = 0; i < sizeof block; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&h->outer);
    SHA256_Update(&h->outer, pad, sizeof pad);
    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
}

static void sha256_hmac(const kl_sha256_hmac *h, const kl_slice parts[4],
                        unsigned char mac[SHA256_DIGEST_LENGTH]) {
    SHA256_CTX c = h->inner;
    for (int i = 0; i < 4; i++)
        if (parts[i].len) SHA256_Update(&c, parts[i].data, parts[i].len);
    SHA256_Final(mac, &c);
    c = h->outer;
    SHA256_Update(&c, mac, SHA256_DIGEST_LENGTH);
    SHA256_Final(mac, &c);
    OPENSSL_cleanse(&c, sizeof c);
}

/* Behind kl_signer.keyed. Restarting work (EVP_MAC_init without a key keeps the key) costs a
 * fraction of duplicating tmpl, which copies and allocates three digest contexts; work serves one
 * thread at a time and a thread that finds it taken signs with a duplicate instead. */
typedef struct kl_hmac {
    bool sha256; /* signs with fast, not the contexts below */
    kl_sha256_hmac fast;
    EVP_MAC_CTX *tmpl; /* never changed after init, so any thread may duplicate it */
    EVP_MAC_CTX *work;
    pthread_mutex_t mu; /* guards work */
} kl_hmac;

static void hmac_free(kl_hmac *h) {
    if (!h) return;
    EVP_MAC_CTX_free(h->tmpl);
    EVP_MAC_CTX_free(h->work);
    pthread_mutex_destroy(&h->mu);
    OPENSSL_cleanse(&h->fast, sizeof h->fast);
    free(h);
}

static kl_hmac *hmac_new(const EVP_MD *md, const unsigned char *key, size_t keylen) {
    kl_hmac *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    pthread_mutex_init(&h->mu, NULL);
    if (EVP_MD_is_a(md, "SHA2-256")) {
        h->sha256 = true;
        sha256_hmac_init(&h->fast, key, keylen);
        return h;
    }
    h->tmpl = hmac_start(md, key, keylen);
    h->work = h->tmpl ? EVP_MAC_CTX_dup(h->tmpl) : NULL;
    if (!h->work) {
        hmac_free(h);
        return NULL;
    }
    return h;
}

int kl_signer_init(kl_signer *s, const char *scheme, const char *key, size_t keylen, char *err,
                   size_t errlen) {
    memset(s, 0, sizeof *s);
    if (!scheme || strncmp(scheme, "hmac-", 5) != 0 || scheme[5] == '\0') {
        snprintf(err, errlen, "signature scheme \"%s\" is not supported: it must be hmac-<digest>",
                 scheme ? scheme : "(null)");
        return -1;
    }
    const char *digest = scheme + 5;
    const char *name = digest;
    for (size_t i = 0; i < sizeof digest_aliases / sizeof digest_aliases[0]; i++) {
        if (strcmp(digest, digest_aliases[i].python) == 0) {
            name = digest_aliases[i].openssl;
            break;
        }
    }
    EVP_MD *md = EVP_MD_fetch(NULL, name, NULL);
    if (!md) {
        snprintf(err, errlen, "signature scheme \"%s\": unknown digest \"%s\"", scheme, digest);
        return -1;
    }
    /* Digests such as SHAKE exist but cannot key an HMAC; find out now, not at the first message.
     */
    static const unsigned char probe_key = 0;
    EVP_MAC_CTX *ctx = hmac_start(md, &probe_key, 1);
    if (!ctx) {
        EVP_MD_free(md);
        snprintf(err, errlen, "signature scheme \"%s\": digest \"%s\" cannot be used for HMAC",
                 scheme, digest);
        return -1;
    }
    EVP_MAC_CTX_free(ctx);
    if (EVP_MD_get_size(md) <= 0 || EVP_MD_get_size(md) * 2 + 1 > KL_SIG_HEX_MAX) {
        EVP_MD_free(md);
        snprintf(err, errlen, "signature scheme \"%s\": digest \"%s\" is longer than 64 bytes",
                 scheme, digest);
        return -1;
    }
    if (keylen == 0) {
        EVP_MD_free(md);
        return 0;
    }
    s->key = malloc(keylen);
    if (!s->key) {
        EVP_MD_free(md);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(s->key, key, keylen);
    s->keylen = keylen;
    s->keyed = hmac_new(md, s->key, s->keylen);
    if (!s->keyed) {
        EVP_MD_free(md);
        OPENSSL_cleanse(s->key, s->keylen);
        free(s->key);
        memset(s, 0, sizeof *s);
        snprintf(err, errlen, "signature scheme \"%s\": cannot key the HMAC", scheme);
        return -1;
    }
    s->md = md;
    return 0;
}

void kl_signer_free(kl_signer *s) {
    if (s->key) {
        OPENSSL_cleanse(s->key, s->keylen);
        free(s->key);
    }
    hmac_free(s->keyed);
    /* md came from EVP_MD_fetch, so it is reference-counted and ours to release. */
    EVP_MD_free((EVP_MD *)s->md);
    memset(s, 0, sizeof *s);
}

bool kl_signer_enabled(const kl_signer *s) {
    return s && s->md != NULL;
}

/* The MAC of parts through EVP_MAC, for digests other than SHA-256, into mac (*maclen bytes).
 * 0, or -errno. */
static int evp_hmac(kl_hmac *h, const kl_slice parts[4], unsigned char mac[EVP_MAX_MD_SIZE],
                    size_t *maclen) {
    EVP_MAC_CTX *ctx;
    bool own = pthread_mutex_trylock(&h->mu) == 0;
    if (own) {
        ctx = h->work;
        if (!EVP_MAC_init(ctx, NULL, 0, NULL)) {
            pthread_mutex_unlock(&h->mu);
            return -EINVAL;
        }
    } else if (!(ctx = EVP_MAC_CTX_dup(h->tmpl))) {
        return -ENOMEM;
    }
    int ok = 1;
    for (int i = 0; i < 4 && ok; i++) {
        if (parts[i].len) ok = EVP_MAC_update(ctx, parts[i].data, parts[i].len);
    }
    if (ok) ok = EVP_MAC_final(ctx, mac, maclen, EVP_MAX_MD_SIZE);
    if (own)
        pthread_mutex_unlock(&h->mu);
    else
        EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -EINVAL;
}

int kl_signer_sign(const kl_signer *s, const kl_slice parts[4], char hex[KL_SIG_HEX_MAX]) {
    hex[0] = '\0';
    if (!kl_signer_enabled(s)) return 0;
    kl_hmac *h = s->keyed;
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = SHA256_DIGEST_LENGTH;
    if (h->sha256)
        sha256_hmac(&h->fast, parts, mac);
    else if (evp_hmac(h, parts, mac, &maclen) < 0)
        return -EINVAL;
    if (maclen * 2 + 1 > KL_SIG_HEX_MAX) return -EINVAL;
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < maclen; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 15];
    }
    hex[2 * maclen] = '\0';
    return 0;
}

bool kl_signer_verify(const kl_signer *s, const kl_slice parts[4], const void *sig, size_t siglen) {
    if (!kl_signer_enabled(s)) return true;
    char want[KL_SIG_HEX_MAX];
    if (kl_signer_sign(s, parts, want) < 0) return false;
    /* The length is public (it follows from the scheme), so checking it first leaks nothing. */
    size_t wantlen = strlen(want);
    if (siglen != wantlen || wantlen == 0) return false;
    return CRYPTO_memcmp(want, sig, wantlen) == 0;
}

/* Frame i of a message, whichever way the caller holds it. */
typedef kl_slice (*frame_at_fn)(const void *msg, size_t i);

static kl_slice frames_at(const void *msg, size_t i) {
    const kl_frames *f = msg;
    return (kl_slice){kl_frames_data(f, i), kl_frames_size(f, i)};
}

static kl_slice slices_at(const void *msg, size_t i) {
    return ((const kl_slice *)msg)[i];
}

static int split(const void *msg, size_t n, frame_at_fn at, const kl_signer *s,
                 kl_wire_parts *out) {
    static const size_t delim_len = sizeof KL_WIRE_DELIM - 1;
    memset(out, 0, sizeof *out);
    size_t d = 0;
    for (; d < n; d++) {
        kl_slice f = at(msg, d);
        if (f.len == delim_len && memcmp(f.data, KL_WIRE_DELIM, delim_len) == 0) break;
    }
    if (d == n) return KL_WIRE_ENODELIM;
    out->n_idents = d;
    if (n - d - 1 < 5) return KL_WIRE_ESHORT;
    out->sig = at(msg, d + 1);
    for (size_t i = 0; i < 4; i++) out->json[i] = at(msg, d + 2 + i);
    out->first_buffer = d + 6;
    out->n_buffers = n - out->first_buffer;
    if (!kl_signer_verify(s, out->json, out->sig.data, out->sig.len)) return KL_WIRE_EBADSIG;
    return KL_WIRE_OK;
}

int kl_wire_split(const kl_frames *f, const kl_signer *s, kl_wire_parts *out) {
    return split(f, f->n, frames_at, s, out);
}

int kl_wire_split_slices(const kl_slice *frames, size_t n, const kl_signer *s, kl_wire_parts *out) {
    return split(frames, n, slices_at, s, out);
}

const char *kl_wire_strerror(int status) {
    switch (status) {
    case KL_WIRE_OK:
        return "ok";
    case KL_WIRE_ENODELIM:
        return "no <IDS|MSG> delimiter frame";
    case KL_WIRE_ESHORT:
        return "fewer than five frames (signature and four JSON parts) after <IDS|MSG>";
    case KL_WIRE_EBADSIG:
        return "signature missing or wrong";
    default:
        return "unknown wire error";
    }
}
