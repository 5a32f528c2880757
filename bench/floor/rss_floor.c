/* kl_rss_floor: the resident memory that the libraries a Kindling kernel cannot do without cost
 * by themselves, for bench/run.py's "floor" row.
 *
 * It links what `ldd build/kindling` lists (libuv, libzmq, jansson, OpenSSL's libcrypto,
 * msgpack-c, protobuf-c) and uses each the way a kernel does up to its first reply: a ZeroMQ
 * context with the five kernel sockets bound on loopback, an HMAC-SHA256 through EVP_MAC (which
 * activates OpenSSL's default provider), a message id from RAND_bytes, a jansson round trip, a
 * msgpack buffer and a libuv loop turn; then one request from a client in another process,
 * answered on the shell ROUTER socket, since run.py measures a kernel only after it has answered
 * (serving a connection runs libzmq and libstdc++ code that binding alone does not). Then it
 * sleeps as long as run.py waits before reading a kernel's idle RSS, and prints its own VmRSS and
 * RssAnon in KiB. No Kindling code is involved. */
#include <jansson.h>
#include <msgpack.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <protobuf-c/protobuf-c.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') kib = atol(line + n + 1);
    fclose(f);
    return kib;
}

/* The client process: forked before any library is initialised here, so that none of its pages
 * are this process's. It learns the shell endpoint from the pipe, sends one message and waits
 * for the answer. */
static void client(int from_parent) {
    /* Dies with the parent, and does not hold the parent's stdout open for whoever reads it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(1);
    if (!freopen("/dev/null", "w", stdout)) _exit(1);
    char endpoint[256] = {0};
    if (read(from_parent, endpoint, sizeof endpoint - 1) <= 0) _exit(1);
    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    char reply[64];
    if (zmq_connect(dealer, endpoint) != 0 || zmq_send(dealer, "kernel_info_request", 19, 0) < 0 ||
        zmq_recv(dealer, reply, sizeof reply, 0) < 0)
        _exit(1);
    pause(); /* killed by the parent once it has measured itself */
    _exit(0);
}

int main(int argc, char **argv) {
    double idle_s = argc > 1 ? atof(argv[1]) : 1.0;
    int to_client[2];
    if (pipe(to_client) != 0) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) client(to_client[0]);

    void *ctx = zmq_ctx_new();
    const int types[] = {ZMQ_ROUTER, ZMQ_ROUTER, ZMQ_ROUTER, ZMQ_XPUB, ZMQ_REP};
    void *shell = NULL;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        void *s = zmq_socket(ctx, types[i]);
        if (!s || zmq_bind(s, "tcp://127.0.0.1:*") != 0) return 1;
        if (i == 0) shell = s;
    }
    unsigned char key[32] = {1}, mac[EVP_MAX_MD_SIZE], id[16];
    size_t maclen = 0;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *mc = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!mc || !EVP_MAC_init(mc, key, sizeof key, params) ||
        !EVP_MAC_update(mc, (const unsigned char *)"{}", 2) ||
        !EVP_MAC_final(mc, mac, &maclen, sizeof mac) || RAND_bytes(id, sizeof id) != 1)
        return 1;
    json_t *j = json_loads("{\"msg_type\":\"kernel_info_request\"}", 0, NULL);
    free(json_dumps(j, JSON_COMPACT));
    json_decref(j);
    msgpack_sbuffer *sb = msgpack_sbuffer_new();
    msgpack_sbuffer_free(sb);
    /* The buffer functions are inline; the kernel also loads the library itself. */
    if (!msgpack_version() || !protobuf_c_version()) return 1;
    uv_loop_t *loop = uv_default_loop();
    uv_run(loop, UV_RUN_NOWAIT);

    char endpoint[256], identity[256], request[64];
    size_t len = sizeof endpoint;
    if (zmq_getsockopt(shell, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0 ||
        write(to_client[1], endpoint, strlen(endpoint) + 1) < 0)
        return 1;
    int idlen = zmq_recv(shell, identity, sizeof identity, 0);
    if (idlen <= 0 || idlen > (int)sizeof identity ||
        zmq_recv(shell, request, sizeof request, 0) < 0 ||
        zmq_send(shell, identity, (size_t)idlen, ZMQ_SNDMORE) < 0 ||
        zmq_send(shell, "kernel_info_reply", 17, 0) < 0)
        return 1;

    usleep((useconds_t)(idle_s * 1e6));
    printf("%ld %ld\n", status_kib("VmRSS"), status_kib("RssAnon"));
    fflush(stdout);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}
