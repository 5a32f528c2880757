#include "jupyter/heartbeat.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct kl_heartbeat {
    void *zctx;
    void *rep;
    pthread_t thread;
    char stop_endpoint[64];
};

static void *run(void *arg) {
    kl_heartbeat *hb = arg;
    /* The stop socket is made and used only on this thread: ZeroMQ sockets are not thread-safe. */
    void *stop = zmq_socket(hb->zctx, ZMQ_PAIR);
    zmq_connect(stop, hb->stop_endpoint);
    for (;;) {
        zmq_pollitem_t items[2] = {{hb->rep, 0, ZMQ_POLLIN, 0}, {stop, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (items[1].revents) break;
        if (!items[0].revents) continue;
        for (;;) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, hb->rep, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            int more = zmq_msg_more(&m);
            zmq_msg_send(&m, hb->rep, more ? ZMQ_SNDMORE : 0);
            zmq_msg_close(&m);
        }
    }
    zmq_close(stop);
    return NULL;
}

kl_heartbeat *kl_heartbeat_start(void *zctx, const char *endpoint, void (*configure)(void *zsock),
                                 char *bound, size_t boundlen, char *err, size_t errlen) {
    kl_heartbeat *hb = calloc(1, sizeof *hb);
    if (!hb) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    hb->zctx = zctx;
    hb->rep = zmq_socket(zctx, ZMQ_REP);
    if (!hb->rep) goto fail;
    int linger = 0;
    zmq_setsockopt(hb->rep, ZMQ_LINGER, &linger, sizeof linger);
    if (configure) configure(hb->rep);
    if (zmq_bind(hb->rep, endpoint) != 0) goto fail;
    if (bound) {
        size_t n = boundlen;
        if (zmq_getsockopt(hb->rep, ZMQ_LAST_ENDPOINT, bound, &n) != 0 && boundlen) bound[0] = 0;
    }
    snprintf(hb->stop_endpoint, sizeof hb->stop_endpoint, "inproc://kl-hb-stop-%p", (void *)hb);
    if (pthread_create(&hb->thread, NULL, run, hb) != 0) goto fail;
    return hb;
fail:
    snprintf(err, errlen, "heartbeat on %s: %s", endpoint, zmq_strerror(errno));
    if (hb->rep) zmq_close(hb->rep);
    free(hb);
    return NULL;
}

void kl_heartbeat_stop(kl_heartbeat *hb) {
    if (!hb) return;
    void *stop = zmq_socket(hb->zctx, ZMQ_PAIR);
    zmq_bind(stop, hb->stop_endpoint);
    zmq_send(stop, "", 0, 0);
    pthread_join(hb->thread, NULL);
    zmq_close(stop);
    zmq_close(hb->rep);
    free(hb);
}
