/* CurveZMQ on the client side: which keys are used, and connections to a kernel that requires
 * CurveZMQ (JEP 145). */
#include <criterion/criterion.h>
#include <string.h>
#include <zmq.h>

#include "client/curve.h"
#include "kernel_proc.h"
#include "kindling/client.h"

#define T 20000

static char err[256];

Test(curve, off_without_a_server_key) {
    kl_client_curve cv;
    cr_assert_eq(kl_client_curve_setup(&cv, NULL, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    cr_assert_not(cv.on);
    cr_assert_eq(kl_client_curve_apply(&cv, NULL), 0, "nothing to apply");
}

Test(curve, keys_are_checked) {
    cr_assert(kindling_curve_available(), "this libzmq has CurveZMQ");
    char pub[41], sec[41];
    cr_assert_eq(zmq_curve_keypair(pub, sec), 0);
    kl_client_curve cv;
    cr_assert_eq(kl_client_curve_setup(&cv, "short", NULL, NULL, NULL, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "40-character Z85") != NULL, "%s", err);
    char bad[41];
    memcpy(bad, pub, 41);
    bad[5] = '~'; /* not in the Z85 alphabet */
    cr_assert_eq(kl_client_curve_setup(&cv, bad, NULL, NULL, NULL, NULL, err, sizeof err), -1);
    /* A client public key needs its secret half, and must match it. */
    cr_assert_eq(kl_client_curve_setup(&cv, pub, pub, NULL, NULL, NULL, err, sizeof err), -1);
    char pub2[41], sec2[41];
    cr_assert_eq(zmq_curve_keypair(pub2, sec2), 0);
    cr_assert_eq(kl_client_curve_setup(&cv, pub, pub2, sec, NULL, NULL, err, sizeof err), -1);
    cr_assert(strstr(err, "public half") != NULL, "%s", err);
}

Test(curve, which_keypair_the_client_uses) {
    char kpub[41], ksec[41], cpub[41], csec[41];
    cr_assert_eq(zmq_curve_keypair(kpub, ksec), 0);
    cr_assert_eq(zmq_curve_keypair(cpub, csec), 0);
    kl_client_curve cv;
    /* Its own pair when given; the secret alone is enough. */
    cr_assert_eq(kl_client_curve_setup(&cv, kpub, NULL, csec, kpub, ksec, err, sizeof err), 0, "%s",
                 err);
    cr_assert(cv.on);
    cr_assert_str_eq(cv.server, kpub);
    cr_assert_str_eq(cv.public_, cpub, "derived from the secret key");
    cr_assert_str_eq(cv.secret, csec);
    /* Else the connection file's pair, as jupyter_client does. */
    cr_assert_eq(kl_client_curve_setup(&cv, kpub, NULL, NULL, kpub, ksec, err, sizeof err), 0);
    cr_assert_str_eq(cv.public_, kpub);
    cr_assert_str_eq(cv.secret, ksec);
    /* Else a fresh pair, different each time. */
    cr_assert_eq(kl_client_curve_setup(&cv, kpub, NULL, NULL, kpub, NULL, err, sizeof err), 0);
    char first[41];
    memcpy(first, cv.public_, 41);
    cr_assert_eq(strlen(first), 40);
    cr_assert_str_neq(first, kpub);
    char check[41];
    cr_assert_eq(zmq_curve_public(check, cv.secret), 0);
    cr_assert_str_eq(check, first, "a real keypair");
    cr_assert_eq(kl_client_curve_setup(&cv, kpub, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    cr_assert_str_neq(cv.public_, first);
    kl_client_curve_clear(&cv);
    cr_assert_eq(cv.secret[0], 0, "the secret is wiped");
}

/* ---- against a kernel that requires CurveZMQ ---- */

static test_kernel kern;
static char kpub[41], ksec[41];

static void start(void) {
    cr_assert_eq(zmq_curve_keypair(kpub, ksec), 0);
    tk_start_with(&kern, "curve-key", kpub, ksec);
}

static void stop(void) {
    tk_stop(&kern);
}

TestSuite(curve_kernel, .init = start, .fini = stop, .timeout = 60);

typedef struct out {
    char text[256];
} out;

static void on_stream(kindling_client *c, const kindling_msg *m, const char *name, const char *text,
                      void *user) {
    (void)c, (void)m, (void)name;
    out *o = user;
    strncat(o->text, text, sizeof o->text - strlen(o->text) - 1);
}

static const kindling_execute_handlers handlers = {.on_stream = on_stream};

/* Like jupyter_client 8.9: the connection file carries the kernel's pair. */
Test(curve_kernel, connection_file_with_curve_keys) {
    kindling_client *c = kindling_client_new(NULL, NULL);
    cr_assert_eq(kindling_client_connect_file(c, kern.conn), 0, "%s",
                 kindling_client_last_error(c));
    cr_assert_eq(kindling_client_wait_ready(c, T), 0, "%s", kindling_client_last_error(c));
    out o = {{0}};
    cr_assert_eq(
        kindling_client_execute_blocking(c, "%echo encrypted", NULL, &handlers, &o, T, NULL), 0,
        "%s", kindling_client_last_error(c));
    cr_assert_str_eq(o.text, "encrypted\n");
    kindling_client_close(c);
}

static void endpoints(char eps[5][128]) {
    const char *names = "12345";
    for (int i = 0; i < 5; i++) snprintf(eps[i], 128, "ipc://%s/k-%c", kern.dir, names[i]);
}

/* Only the kernel's public key is known; the client makes a keypair of its own. */
Test(curve_kernel, public_key_only_with_an_ephemeral_client_pair) {
    char eps[5][128];
    endpoints(eps);
    kindling_endpoints ep = {eps[0], eps[1], eps[2], eps[3], eps[4], "curve-key", NULL, kpub};
    kindling_client *c = kindling_client_new(NULL, NULL);
    cr_assert_eq(kindling_client_connect(c, &ep), 0, "%s", kindling_client_last_error(c));
    cr_assert_eq(kindling_client_wait_ready(c, T), 0, "%s", kindling_client_last_error(c));
    out o = {{0}};
    cr_assert_eq(kindling_client_execute_blocking(c, "%echo private", NULL, &handlers, &o, T, NULL),
                 0);
    cr_assert_str_eq(o.text, "private\n");
    kindling_client_close(c);
}

static void on_hb(kindling_client *c, bool alive, void *user) {
    (void)c;
    int *state = user;
    *state = alive ? 1 : 0;
}

/* The wrong server key (or none): the handshake fails, nothing gets through. */
Test(curve_kernel, wrong_server_key_is_refused) {
    char other_pub[41], other_sec[41];
    cr_assert_eq(zmq_curve_keypair(other_pub, other_sec), 0);
    char eps[5][128];
    endpoints(eps);
    int hb = -1;
    kindling_client_options o = {.heartbeat_interval_ms = 200,
                                 .heartbeat_timeout_ms = 500,
                                 .on_heartbeat = on_hb,
                                 .user = &hb};
    kindling_endpoints ep = {eps[0], eps[1], eps[2], eps[3], eps[4], "curve-key", NULL, other_pub};
    kindling_client *c = kindling_client_new(NULL, &o);
    cr_assert_eq(kindling_client_connect(c, &ep), 0);
    cr_assert_eq(kindling_client_wait_ready(c, 1500), KINDLING_ETIMEDOUT);
    cr_assert_eq(hb, 0, "no heartbeat echo either");
    kindling_client_close(c);
    /* A plain client gets nowhere either. */
    kindling_endpoints plain = {eps[0], eps[1], eps[2], eps[3], eps[4], "curve-key", NULL, NULL};
    c = kindling_client_new(NULL, NULL);
    cr_assert_eq(kindling_client_connect(c, &plain), 0);
    cr_assert_eq(kindling_client_wait_ready(c, 1500), KINDLING_ETIMEDOUT);
    kindling_client_close(c);
}
