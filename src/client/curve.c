/* CurveZMQ keys of a client: the kernel's public key authenticates the server; the client's own
 * pair only needs to exist unless the kernel checks client keys, which Jupyter kernels do not. */
#include "client/curve.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

static bool z85_key_ok(const char *key) {
    uint8_t raw[32];
    return key && strlen(key) == KL_Z85_KEY_LEN && zmq_z85_decode(raw, key) != NULL;
}

static int check_key(const char *key, const char *what, char *err, size_t errlen) {
    if (z85_key_ok(key)) return 0;
    snprintf(err, errlen, "%s must be a 40-character Z85 CurveZMQ key", what);
    return -1;
}

void kl_client_curve_clear(kl_client_curve *cv) {
    /* Through a volatile pointer so the wipe is not optimised away before the struct dies. */
    volatile char *p = cv->secret;
    for (size_t i = 0; i < sizeof cv->secret; i++) p[i] = 0;
    cv->on = false;
}

int kl_client_curve_setup(kl_client_curve *out, const char *serverkey, const char *pub,
                          const char *sec, const char *file_pub, const char *file_sec, char *err,
                          size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!serverkey) return 0;
    if (!zmq_has("curve")) {
        snprintf(err, errlen,
                 "the kernel requires CurveZMQ encryption, but this libzmq was "
                 "built without it (zmq_has(\"curve\") is false)");
        return -2;
    }
    if (check_key(serverkey, "the kernel's curve_publickey", err, errlen) < 0) return -1;
    memcpy(out->server, serverkey, KL_Z85_KEY_LEN + 1);
    if (pub || sec) {
        if (!sec) {
            snprintf(err, errlen, "a client curve_publickey needs its curve_secretkey");
            return -1;
        }
        if (check_key(sec, "the client's curve_secretkey", err, errlen) < 0) return -1;
        char derived[KL_Z85_KEY_LEN + 1];
        if (zmq_curve_public(derived, sec) != 0) {
            snprintf(err, errlen, "cannot derive the public key: %s", zmq_strerror(errno));
            return -1;
        }
        if (pub) {
            if (check_key(pub, "the client's curve_publickey", err, errlen) < 0) return -1;
            if (strcmp(pub, derived) != 0) {
                snprintf(err, errlen,
                         "the client's curve_publickey is not the public half of "
                         "its curve_secretkey");
                return -1;
            }
        }
        memcpy(out->public_, derived, sizeof derived);
        memcpy(out->secret, sec, KL_Z85_KEY_LEN + 1);
    } else if (file_pub && file_sec && z85_key_ok(file_pub) && z85_key_ok(file_sec)) {
        memcpy(out->public_, file_pub, KL_Z85_KEY_LEN + 1);
        memcpy(out->secret, file_sec, KL_Z85_KEY_LEN + 1);
    } else if (zmq_curve_keypair(out->public_, out->secret) != 0) {
        snprintf(err, errlen, "cannot make a CurveZMQ keypair: %s", zmq_strerror(errno));
        return -1;
    }
    out->on = true;
    return 0;
}

int kl_client_curve_apply(const kl_client_curve *cv, void *zsock) {
    if (!cv->on) return 0;
    /* 41 bytes: ZeroMQ reads a 40-character Z85 string plus its NUL as text, 32 as binary. */
    if (zmq_setsockopt(zsock, ZMQ_CURVE_SERVERKEY, cv->server, KL_Z85_KEY_LEN + 1) != 0 ||
        zmq_setsockopt(zsock, ZMQ_CURVE_PUBLICKEY, cv->public_, KL_Z85_KEY_LEN + 1) != 0 ||
        zmq_setsockopt(zsock, ZMQ_CURVE_SECRETKEY, cv->secret, KL_Z85_KEY_LEN + 1) != 0)
        return -errno;
    return 0;
}
