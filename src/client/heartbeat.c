/* Heartbeat monitor thread. A REQ socket that missed its echo is stuck waiting for it, so after a
 * miss the socket is replaced, as jupyter_client does. */
#include "client/heartbeat.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

/* Longest the thread waits before it looks at the stop flag again. */
#define HB_SLICE_MS 50

struct kl_client_hb {
    pthread_t thread;
    atomic_bool stop;
    atomic_int state;
    void *zctx;
    char endpoint[512];
    kl_client_curve curve;
    int interval_ms, timeout_ms;
    void (*notify)(void *arg);
    void *arg;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *hb_socket(kl_client_hb *hb) {
    void *s = zmq_socket(hb->zctx, ZMQ_REQ);
    if (!s) return NULL;
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (kl_client_curve_apply(&hb->curve, s) != 0 || zmq_connect(s, hb->endpoint) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

static void set_state(kl_client_hb *hb, int state) {
    if (atomic_exchange(&hb->state, state) != state) hb->notify(hb->arg);
}

/* Waits up to ms for an echo on s; true when one came (and was read). */
static bool wait_echo(kl_client_hb *hb, void *s, int64_t deadline) {
    while (!atomic_load(&hb->stop)) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return false;
        zmq_pollitem_t item = {.socket = s, .events = ZMQ_POLLIN};
        int n = zmq_poll(&item, 1, left < HB_SLICE_MS ? left : HB_SLICE_MS);
        if (n < 0 && errno != EINTR) return false;
        if (n > 0 && (item.revents & ZMQ_POLLIN)) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            bool more = true;
            while (more && zmq_msg_recv(&m, s, ZMQ_DONTWAIT) >= 0) more = zmq_msg_more(&m);
            zmq_msg_close(&m);
            return true;
        }
    }
    return false;
}

static void pause_until(kl_client_hb *hb, int64_t until) {
    while (!atomic_load(&hb->stop)) {
        int64_t left = until - now_ms();
        if (left <= 0) return;
        struct timespec ts = {0, (left < HB_SLICE_MS ? left : HB_SLICE_MS) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void *hb_main(void *arg) {
    kl_client_hb *hb = arg;
    void *s = hb_socket(hb);
    while (!atomic_load(&hb->stop)) {
        int64_t start = now_ms();
        bool echoed = false;
        if (s && zmq_send(s, "ping", 4, ZMQ_DONTWAIT) == 4)
            echoed = wait_echo(hb, s, start + hb->timeout_ms);
        else
            pause_until(hb, start + hb->timeout_ms);
        if (atomic_load(&hb->stop)) break;
        set_state(hb, echoed ? 1 : 0);
        if (!echoed) {
            if (s) zmq_close(s);
            s = hb_socket(hb);
        }
        pause_until(hb, start + hb->interval_ms);
    }
    if (s) zmq_close(s);
    return NULL;
}

kl_client_hb *kl_client_hb_start(void *zctx, const char *endpoint, const kl_client_curve *curve,
                                 int interval_ms, int timeout_ms, void (*notify)(void *arg),
                                 void *arg, char *err, size_t errlen) {
    kl_client_hb *hb = calloc(1, sizeof *hb);
    if (!hb) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (strlen(endpoint) >= sizeof hb->endpoint) {
        snprintf(err, errlen, "heartbeat endpoint too long");
        free(hb);
        return NULL;
    }
    strcpy(hb->endpoint, endpoint);
    hb->zctx = zctx;
    hb->curve = *curve;
    hb->interval_ms = interval_ms;
    hb->timeout_ms = timeout_ms;
    hb->notify = notify;
    hb->arg = arg;
    atomic_init(&hb->stop, false);
    atomic_init(&hb->state, -1);
    /* The first connect happens here, so a bad endpoint is an error now rather than silence. */
    void *probe = hb_socket(hb);
    if (!probe) {
        snprintf(err, errlen, "heartbeat socket to %s: %s", endpoint, zmq_strerror(errno));
        kl_client_curve_clear(&hb->curve);
        free(hb);
        return NULL;
    }
    zmq_close(probe);
    int rc = pthread_create(&hb->thread, NULL, hb_main, hb);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the heartbeat thread: %s", strerror(rc));
        kl_client_curve_clear(&hb->curve);
        free(hb);
        return NULL;
    }
    return hb;
}

int kl_client_hb_state(const kl_client_hb *hb) {
    return atomic_load(&((kl_client_hb *)hb)->state);
}

void kl_client_hb_stop(kl_client_hb *hb) {
    if (!hb) return;
    atomic_store(&hb->stop, true);
    pthread_join(hb->thread, NULL);
    kl_client_curve_clear(&hb->curve);
    free(hb);
}
