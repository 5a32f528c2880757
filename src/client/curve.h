/* CurveZMQ (JEP 145) on the client side: which keys a client's sockets use. */
#ifndef KL_CLIENT_CURVE_H
#define KL_CLIENT_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#define KL_Z85_KEY_LEN 40

typedef struct kl_client_curve {
    bool on;
    char server[KL_Z85_KEY_LEN + 1]; /* the kernel's public key */
    char public_[KL_Z85_KEY_LEN + 1];
    char secret[KL_Z85_KEY_LEN + 1];
} kl_client_curve;

/* Picks the keys. serverkey NULL means no CurveZMQ (out->on false, 0). Otherwise the client's
 * pair is pub/sec when given (sec alone: its public half is derived), else file_pub/file_sec from
 * the connection file when both are there (what jupyter_client does), else a fresh pair.
 * -1 with a message in err when a key is not 40 characters of Z85, the halves do not match, or
 * libzmq lacks CurveZMQ (-2 then). */
int kl_client_curve_setup(kl_client_curve *out, const char *serverkey, const char *pub,
                          const char *sec, const char *file_pub, const char *file_sec, char *err,
                          size_t errlen);
/* Makes zsock a CurveZMQ client with these keys (before connect). 0 or -errno. */
int kl_client_curve_apply(const kl_client_curve *cv, void *zsock);
/* Wipes the secret. */
void kl_client_curve_clear(kl_client_curve *cv);

#endif
