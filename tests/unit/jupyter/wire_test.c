/* Signing and framing of Jupyter messages. The signature vectors were produced by jupyter_client's
 * Session.sign (jupyter_client 8.10, Python 3.11) with tests/data/gen_signatures.py; run it again
 * to regenerate them. */
#include <criterion/criterion.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "jupyter/wire.h"

/* The same key and four JSON parts as gen_signatures.py. */
static const char KEY[] = "5ca1ab1e-feed-4bad-b0a7-c0ffee000001";
static const char *const PARTS[4] = {
    "{\"msg_id\":\"a1\",\"msg_type\":\"execute_request\",\"session\":\"s1\",\"username\":\"u\","
    "\"date\":\"2024-01-02T03:04:05.000006Z\",\"version\":\"5.4\"}",
    "{}",
    "{\"deletedCells\":[]}",
    "{\"code\":\"SELECT 1\",\"silent\":false}",
};

static const struct {
    const char *scheme, *hex;
} VECTORS[] = {
    {"hmac-sha256", "18f3b4adbcf952e7db53c97fb8132430c9eb087bdf1efc3eacab4c8b4f503968"},
    {"hmac-sha512",
     "c8a65965cacda007cce6cc3b36dcca1aa638678941fbcdb942baf443c9a564e5eeca0a0bd305fac32"
     "fed9d70a6e5d9549c3aef1fde95140807e388326bc5138f"},
    {"hmac-md5", "4f3f98f087e8df060fad1fa60fd4c0dd"},
    {"hmac-sha1", "578bdf7f8f9d7558df379f8e86f4e48a606e2454"},
    {"hmac-sha3_256", "388cc8eaddf9c25ddcd0b0e5ba530e8e8e493b484b3338ba98ecc12596ba0d84"},
    {"hmac-blake2b",
     "5d305063ca2870d8011ada24fa2f2cb667211dc3ec3e17a804d6af41cddb2be4d03a035df8edbad7"
     "007d767b308c6527ca88ecbfc6f1bc05210679e7555a7f08"},
};

static kl_slice parts[4];
static kl_signer signer;
static kl_frames frames;
static char err[256];

static void setup(void) {
    for (int i = 0; i < 4; i++) parts[i] = (kl_slice){PARTS[i], strlen(PARTS[i])};
    memset(&signer, 0, sizeof signer);
    kl_frames_init(&frames);
}

static void teardown(void) {
    kl_signer_free(&signer);
    kl_frames_clear(&frames);
}

TestSuite(wire, .init = setup, .fini = teardown);

static void init_signer(const char *scheme, const char *key) {
    cr_assert_eq(kl_signer_init(&signer, scheme, key, strlen(key), err, sizeof err), 0, "%s: %s",
                 scheme, err);
}

Test(wire, signatures_match_jupyter_client) {
    for (size_t i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++) {
        init_signer(VECTORS[i].scheme, KEY);
        cr_assert(kl_signer_enabled(&signer));
        char hex[KL_SIG_HEX_MAX];
        cr_assert_eq(kl_signer_sign(&signer, parts, hex), 0);
        cr_assert_str_eq(hex, VECTORS[i].hex, "%s", VECTORS[i].scheme);
        cr_assert(kl_signer_verify(&signer, parts, VECTORS[i].hex, strlen(VECTORS[i].hex)), "%s",
                  VECTORS[i].scheme);
        kl_signer_free(&signer);
    }
}

/* RFC 4231 test case 6: a key longer than SHA-256's block is hashed first. */
Test(wire, sha256_key_longer_than_a_block) {
    char key[132];
    memset(key, 0xaa, 131);
    key[131] = 0;
    cr_assert_eq(kl_signer_init(&signer, "hmac-sha256", key, 131, err, sizeof err), 0, "%s", err);
    static const char data[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    /* Split unevenly over the four parts, with an empty one: the MAC covers their concatenation. */
    kl_slice split[4] = {{data, 5}, {data + 5, 0}, {data + 5, 20}, {data + 25, strlen(data) - 25}};
    char hex[KL_SIG_HEX_MAX];
    cr_assert_eq(kl_signer_sign(&signer, split, hex), 0);
    cr_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* SHA-256 signs without EVP_MAC; every key length around the block size must still agree with
 * OpenSSL's own HMAC. */
Test(wire, sha256_agrees_with_openssl_hmac_for_every_key_length) {
    static const size_t lens[] = {1, 31, 32, 63, 64, 65, 127, 128, 200};
    char key[200], joined[1024];
    for (size_t i = 0; i < sizeof key; i++) key[i] = (char)(i * 7 + 1);
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        memcpy(joined + n, PARTS[i], strlen(PARTS[i]));
        n += strlen(PARTS[i]);
    }
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        cr_assert_eq(kl_signer_init(&signer, "hmac-sha256", key, lens[k], err, sizeof err), 0);
        unsigned char mac[32];
        unsigned int maclen = 0;
        cr_assert_not_null(
            HMAC(EVP_sha256(), key, (int)lens[k], (const unsigned char *)joined, n, mac, &maclen));
        char want[65];
        for (unsigned i = 0; i < maclen; i++) snprintf(want + 2 * i, 3, "%02x", mac[i]);
        char hex[KL_SIG_HEX_MAX];
        cr_assert_eq(kl_signer_sign(&signer, parts, hex), 0);
        cr_assert_str_eq(hex, want, "key of %zu bytes", lens[k]);
        kl_signer_free(&signer);
    }
}

Test(wire, openssl_spellings_are_accepted_too) {
    init_signer("hmac-SHA3-256", KEY);
    cr_assert(kl_signer_verify(&signer, parts, VECTORS[4].hex, strlen(VECTORS[4].hex)));
}

Test(wire, empty_key_turns_signing_off) {
    init_signer("hmac-sha256", "");
    cr_assert_not(kl_signer_enabled(&signer));
    char hex[KL_SIG_HEX_MAX] = "junk";
    cr_assert_eq(kl_signer_sign(&signer, parts, hex), 0);
    cr_assert_str_eq(hex, ""); /* jupyter_client's Session(key=b"").sign(...) is b"" too */
    cr_assert(kl_signer_verify(&signer, parts, "anything", 8));
    cr_assert(kl_signer_verify(&signer, parts, "", 0));
}

Test(wire, wrong_signature_rejected) {
    init_signer("hmac-sha256", KEY);
    char bad[65];
    strcpy(bad, VECTORS[0].hex);
    bad[63] = bad[63] == '0' ? '1' : '0';
    cr_assert_not(kl_signer_verify(&signer, parts, bad, 64));
    /* Upper-case hex of the right digest is not what jupyter_client sends; reject it too. */
    strcpy(bad, VECTORS[0].hex);
    cr_assert_eq(bad[2], 'f');
    bad[2] = 'F';
    cr_assert_not(kl_signer_verify(&signer, parts, bad, 64));
}

Test(wire, signature_over_other_content_rejected) {
    init_signer("hmac-sha256", KEY);
    kl_slice other[4];
    memcpy(other, parts, sizeof other);
    static const char changed[] = "{\"code\":\"SELECT 2\",\"silent\":false}";
    other[3] = (kl_slice){changed, strlen(changed)};
    cr_assert_not(kl_signer_verify(&signer, other, VECTORS[0].hex, 64));
}

Test(wire, truncated_and_overlong_signature_rejected) {
    init_signer("hmac-sha256", KEY);
    cr_assert_not(kl_signer_verify(&signer, parts, VECTORS[0].hex, 63));
    cr_assert_not(kl_signer_verify(&signer, parts, VECTORS[0].hex, 32));
    cr_assert_not(kl_signer_verify(&signer, parts, "", 0));
    char longer[80];
    snprintf(longer, sizeof longer, "%s00", VECTORS[0].hex);
    cr_assert_not(kl_signer_verify(&signer, parts, longer, 66));
}

Test(wire, bad_schemes_rejected_with_a_reason) {
    cr_assert_eq(kl_signer_init(&signer, "sha256", KEY, strlen(KEY), err, sizeof err), -1);
    cr_assert(strstr(err, "hmac-<digest>") != NULL, "%s", err);
    cr_assert_eq(kl_signer_init(&signer, "hmac-", KEY, strlen(KEY), err, sizeof err), -1);
    cr_assert_eq(kl_signer_init(&signer, "hmac-nosuch", KEY, strlen(KEY), err, sizeof err), -1);
    cr_assert(strstr(err, "unknown digest \"nosuch\"") != NULL, "%s", err);
    /* An empty key still validates the scheme: a typo must not pass silently. */
    cr_assert_eq(kl_signer_init(&signer, "hmac-nosuch", "", 0, err, sizeof err), -1);
    /* SHAKE is a digest OpenSSL knows but HMAC cannot use. */
    cr_assert_eq(kl_signer_init(&signer, "hmac-shake_128", KEY, strlen(KEY), err, sizeof err), -1);
    cr_assert(strstr(err, "shake_128") != NULL, "%s", err);
}

/* Appends identities, the delimiter, a signature, the four parts and buffers to frames. */
static void build(size_t n_idents, const char *sig, size_t n_buffers) {
    for (size_t i = 0; i < n_idents; i++) {
        char id[32];
        snprintf(id, sizeof id, "ident-%zu", i);
        cr_assert_eq(kl_frames_add(&frames, id, strlen(id)), 0);
    }
    kl_frames_add(&frames, KL_WIRE_DELIM, strlen(KL_WIRE_DELIM));
    kl_frames_add(&frames, sig, strlen(sig));
    for (int i = 0; i < 4; i++) kl_frames_add(&frames, PARTS[i], strlen(PARTS[i]));
    for (size_t i = 0; i < n_buffers; i++) kl_frames_add(&frames, "\0\1\2", 3);
}

static void check_split(size_t n_idents, size_t n_buffers) {
    kl_wire_parts p;
    cr_assert_eq(kl_wire_split(&frames, &signer, &p), KL_WIRE_OK, "%zu idents", n_idents);
    cr_assert_eq(p.n_idents, n_idents);
    cr_assert_eq(p.sig.len, 64);
    cr_assert(memcmp(p.sig.data, VECTORS[0].hex, 64) == 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(p.json[i].len, strlen(PARTS[i]));
        cr_assert(memcmp(p.json[i].data, PARTS[i], p.json[i].len) == 0);
    }
    cr_assert_eq(p.first_buffer, n_idents + 6);
    cr_assert_eq(p.n_buffers, n_buffers);
}

Test(wire, split_with_zero_one_three_identities) {
    init_signer("hmac-sha256", KEY);
    size_t counts[] = {0, 1, 3};
    for (int i = 0; i < 3; i++) {
        build(counts[i], VECTORS[0].hex, 0);
        check_split(counts[i], 0);
        kl_frames_clear(&frames);
    }
}

Test(wire, split_with_buffers) {
    init_signer("hmac-sha256", KEY);
    build(1, VECTORS[0].hex, 2);
    check_split(1, 2);
    cr_assert_eq(kl_frames_size(&frames, 7), 3);
}

/* A client holding frames as slices (no libzmq) gets the same split and the same verdicts. */
Test(wire, split_of_slices_agrees_with_split_of_frames) {
    init_signer("hmac-sha256", KEY);
    build(2, VECTORS[0].hex, 1);
    kl_slice s[9];
    for (size_t i = 0; i < frames.n; i++)
        s[i] = (kl_slice){kl_frames_data(&frames, i), kl_frames_size(&frames, i)};
    kl_wire_parts a, b;
    cr_assert_eq(kl_wire_split(&frames, &signer, &a), KL_WIRE_OK);
    cr_assert_eq(kl_wire_split_slices(s, frames.n, &signer, &b), KL_WIRE_OK);
    cr_assert_eq(b.n_idents, a.n_idents);
    cr_assert_eq(b.first_buffer, a.first_buffer);
    cr_assert_eq(b.n_buffers, a.n_buffers);
    for (int i = 0; i < 4; i++) cr_assert_eq(b.json[i].data, a.json[i].data);
    cr_assert_eq(kl_wire_split_slices(s, 7, &signer, &b), KL_WIRE_ESHORT);
    cr_assert_eq(kl_wire_split_slices(s, 2, &signer, &b), KL_WIRE_ENODELIM);
    s[3] = (kl_slice){VECTORS[1].hex, 64};
    cr_assert_eq(kl_wire_split_slices(s, frames.n, &signer, &b), KL_WIRE_EBADSIG);
}

Test(wire, identity_that_looks_like_json_is_still_an_identity) {
    init_signer("hmac-sha256", KEY);
    kl_frames_add(&frames, "{}", 2);
    build(0, VECTORS[0].hex, 0);
    check_split(1, 0);
}

Test(wire, first_delimiter_wins) {
    /* A buffer may contain the delimiter's bytes; only the first one frames the message. */
    init_signer("hmac-sha256", KEY);
    build(1, VECTORS[0].hex, 0);
    kl_frames_add(&frames, KL_WIRE_DELIM, strlen(KL_WIRE_DELIM));
    check_split(1, 1);
}

Test(wire, missing_delimiter) {
    init_signer("hmac-sha256", KEY);
    kl_frames_add(&frames, "ident", 5);
    kl_frames_add(&frames, "<IDS|MSG", 8); /* one byte short */
    kl_frames_add(&frames, VECTORS[0].hex, 64);
    for (int i = 0; i < 4; i++) kl_frames_add(&frames, PARTS[i], strlen(PARTS[i]));
    kl_wire_parts p;
    cr_assert_eq(kl_wire_split(&frames, &signer, &p), KL_WIRE_ENODELIM);
    cr_assert(strstr(kl_wire_strerror(KL_WIRE_ENODELIM), "<IDS|MSG>") != NULL);
}

Test(wire, empty_message) {
    kl_wire_parts p;
    cr_assert_eq(kl_wire_split(&frames, &signer, &p), KL_WIRE_ENODELIM);
}

Test(wire, too_few_frames) {
    init_signer("hmac-sha256", KEY);
    kl_frames_add(&frames, "ident", 5);
    kl_frames_add(&frames, KL_WIRE_DELIM, strlen(KL_WIRE_DELIM));
    kl_frames_add(&frames, VECTORS[0].hex, 64);
    for (int i = 0; i < 3; i++) kl_frames_add(&frames, PARTS[i], strlen(PARTS[i]));
    kl_wire_parts p;
    cr_assert_eq(kl_wire_split(&frames, &signer, &p), KL_WIRE_ESHORT);
    cr_assert_eq(p.n_idents, 1, "identities are reported even when the message is short");
}

Test(wire, split_rejects_bad_signature) {
    init_signer("hmac-sha256", KEY);
    build(2, VECTORS[2].hex /* an md5 signature */, 0);
    kl_wire_parts p;
    cr_assert_eq(kl_wire_split(&frames, &signer, &p), KL_WIRE_EBADSIG);
    cr_assert_eq(p.n_idents, 2);
    kl_frames_clear(&frames);
    build(0, "", 0);
    cr_assert_eq(kl_wire_split(&frames, &signer, &p), KL_WIRE_EBADSIG);
}

Test(wire, unsigned_session_accepts_any_signature_frame) {
    init_signer("hmac-sha256", "");
    build(1, "", 1);
    kl_wire_parts p;
    cr_assert_eq(kl_wire_split(&frames, &signer, &p), KL_WIRE_OK);
    cr_assert_eq(p.sig.len, 0);
    cr_assert_eq(p.n_buffers, 1);
}
