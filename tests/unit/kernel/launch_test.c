/* kindling launch: EG's port ranges, and the encrypted payload decrypted the way EG's response
 * manager does it (RSA PKCS#1 v1.5 for the AES key, AES-128-ECB with PKCS#7 for the info). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/launch.h"

Test(launch, port_ranges) {
    int lo = -1, hi = -1;
    char err[256];
    cr_expect_eq(kl_launch_parse_port_range(NULL, 1000, &lo, &hi, err, sizeof err), 0);
    cr_expect(lo == 0 && hi == 0);
    cr_expect_eq(kl_launch_parse_port_range("", 1000, &lo, &hi, err, sizeof err), 0);
    cr_expect_eq(kl_launch_parse_port_range("0..0", 1000, &lo, &hi, err, sizeof err), 0);
    cr_expect(lo == 0 && hi == 0);
    cr_expect_eq(kl_launch_parse_port_range("40000..41000", 1000, &lo, &hi, err, sizeof err), 0);
    cr_expect(lo == 40000 && hi == 41000);
    cr_expect_eq(kl_launch_parse_port_range("40000..40999", 1000, &lo, &hi, err, sizeof err), -1);
    cr_expect(strstr(err, "at least 1000") != NULL, "%s", err);
    cr_expect_eq(kl_launch_parse_port_range("40000..40010", 10, &lo, &hi, err, sizeof err), 0);
    cr_expect_eq(kl_launch_parse_port_range("80..2000", 10, &lo, &hi, err, sizeof err), -1);
    cr_expect_eq(kl_launch_parse_port_range("5000..4000", 10, &lo, &hi, err, sizeof err), -1);
    cr_expect_eq(kl_launch_parse_port_range("5000..70000", 10, &lo, &hi, err, sizeof err), -1);
    cr_expect_eq(kl_launch_parse_port_range("5000-6000", 10, &lo, &hi, err, sizeof err), -1);
    cr_expect(strstr(err, "LOWER..UPPER") != NULL, "%s", err);
    cr_expect_eq(kl_launch_parse_port_range("a..b", 10, &lo, &hi, err, sizeof err), -1);
    cr_expect_eq(kl_launch_parse_port_range("5000..", 10, &lo, &hi, err, sizeof err), -1);
}

static unsigned char *unbase64(const char *text, size_t *len) {
    size_t n = strlen(text);
    unsigned char *out = malloc(n / 4 * 3 + 1);
    int got = EVP_DecodeBlock(out, (const unsigned char *)text, (int)n);
    cr_assert_geq(got, 0, "not base64: %.40s", text);
    /* EVP_DecodeBlock counts padding bytes as data. */
    while (n && text[n - 1] == '=') n--, got--;
    *len = (size_t)got;
    return out;
}

/* The public key as EG hands it over: the PEM body without armour or newlines. */
static char *eg_public_key(EVP_PKEY *pkey) {
    BIO *bio = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_PUBKEY(bio, pkey));
    char *pem;
    long n = BIO_get_mem_data(bio, &pem);
    char *out = calloc((size_t)n + 1, 1);
    size_t j = 0;
    for (const char *line = pem; line < pem + n;) {
        const char *nl = memchr(line, '\n', (size_t)(pem + n - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(pem + n - line);
        if (len && line[0] != '-') memcpy(out + j, line, len), j += len;
        line += len + 1;
    }
    BIO_free(bio);
    return out;
}

/* EG's _decrypt: base64 -> JSON -> RSA-decrypt key -> AES-ECB-decrypt conn_info -> unpad. */
static char *eg_decrypt(EVP_PKEY *priv, const char *payload, int *version) {
    size_t jlen;
    unsigned char *jtext = unbase64(payload, &jlen);
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)jtext, jlen, 0, &jerr);
    cr_assert(doc, "payload is not JSON: %s", jerr.text);
    cr_assert_eq(json_object_size(doc), 3);
    *version = (int)json_integer_value(json_object_get(doc, "version"));
    size_t klen, clen;
    unsigned char *ekey = unbase64(json_string_value(json_object_get(doc, "key")), &klen);
    unsigned char *einfo = unbase64(json_string_value(json_object_get(doc, "conn_info")), &clen);
    cr_assert_eq(klen, 256, "the AES key is wrapped by the 2048-bit key");
    cr_assert_eq(clen % 16, 0);

    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
    unsigned char aes[256];
    size_t aes_len = sizeof aes;
    cr_assert(EVP_PKEY_decrypt_init(ctx) > 0);
    cr_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0);
    cr_assert(EVP_PKEY_decrypt(ctx, aes, &aes_len, ekey, klen) > 0);
    cr_assert_eq(aes_len, 16, "AES-128");
    EVP_PKEY_CTX_free(ctx);

    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    unsigned char *plain = malloc(clen + 1);
    int n = 0;
    cr_assert(EVP_DecryptInit_ex(c, EVP_aes_128_ecb(), NULL, aes, NULL));
    EVP_CIPHER_CTX_set_padding(c, 0); /* unpad by hand, as Cryptodome's unpad checks it */
    cr_assert(EVP_DecryptUpdate(c, plain, &n, einfo, (int)clen));
    EVP_CIPHER_CTX_free(c);
    cr_assert_eq((size_t)n, clen);
    unsigned pad = plain[n - 1];
    cr_assert(pad >= 1 && pad <= 16, "padding byte %u", pad);
    for (unsigned i = 1; i <= pad; i++) cr_assert_eq(plain[n - i], pad);
    plain[n - pad] = 0;
    free(jtext), free(ekey), free(einfo);
    json_decref(doc);
    return (char *)plain;
}

Test(launch, payload_decrypts_as_eg_does) {
    EVP_PKEY *priv = EVP_RSA_gen(2048);
    cr_assert(priv);
    char *pub = eg_public_key(priv);
    /* 16 bytes exactly: PKCS#7 adds a whole block, which EG's unpad expects. */
    const char *infos[] = {"{\"shell_port\":1}", "{\"kernel_id\":\"abc\",\"key\":\"k\"}", "{}"};
    for (size_t i = 0; i < sizeof infos / sizeof *infos; i++) {
        char err[256] = "";
        char *payload = kl_launch_encrypt(pub, (const unsigned char *)infos[i], strlen(infos[i]),
                                          err, sizeof err);
        cr_assert(payload, "%s", err);
        int version = 0;
        char *plain = eg_decrypt(priv, payload, &version);
        cr_expect_eq(version, KL_LAUNCH_PAYLOAD_VERSION);
        cr_expect_str_eq(plain, infos[i]);
        free(plain);
        free(payload);
    }
    /* A full PEM works too. */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, priv);
    char *pem;
    long n = BIO_get_mem_data(bio, &pem);
    /* The BIO's data has no terminating NUL: copy exactly n bytes. */
    char *pemz = malloc((size_t)n + 1);
    cr_assert(pemz);
    memcpy(pemz, pem, (size_t)n);
    pemz[n] = 0;
    char err[256];
    char *payload = kl_launch_encrypt(pemz, (const unsigned char *)"{}", 2, err, sizeof err);
    cr_expect(payload != NULL, "%s", err);
    free(payload), free(pemz), BIO_free(bio);
    free(pub);
    EVP_PKEY_free(priv);
}

Test(launch, bad_public_keys_are_refused) {
    char err[256];
    cr_expect_null(kl_launch_encrypt("", (const unsigned char *)"{}", 2, err, sizeof err));
    cr_expect_null(kl_launch_encrypt("%%%", (const unsigned char *)"{}", 2, err, sizeof err));
    cr_expect_null(
        kl_launch_encrypt("bm90IGEga2V5", (const unsigned char *)"{}", 2, err, sizeof err));
    cr_expect(strstr(err, "public key") != NULL, "%s", err);
    /* An EC key is a public key, but not one EG's RSA scheme can use. */
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    char *pub = eg_public_key(ec);
    cr_expect_null(kl_launch_encrypt(pub, (const unsigned char *)"{}", 2, err, sizeof err));
    cr_expect(strstr(err, "RSA") != NULL, "%s", err);
    free(pub);
    EVP_PKEY_free(ec);
}
