#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "runtime/chan.h"

static kl_loop *loop;

static void setup(void) {
    loop = kl_loop_new();
    cr_assert_not_null(loop);
}

static void teardown(void) {
    kl_loop_free(loop);
}

TestSuite(chan, .init = setup, .fini = teardown, .timeout = 10);

#define ITEM(i) ((void *)(uintptr_t)(i))

/* ---- ordering between coroutines, with a loop-side sender parking while full ---- */

typedef struct {
    kl_chan *ch;
    int n;
    int received;
    bool in_order;
    int send_failures;
    int end_rc;
} order_state;

static void producer_fn(void *arg) {
    order_state *s = arg;
    for (int i = 1; i <= s->n; i++)
        if (kl_chan_send(s->ch, ITEM(i)) != 0) s->send_failures++;
    kl_chan_close(s->ch);
}

static void consumer_fn(void *arg) {
    order_state *s = arg;
    void *item;
    int rc;
    while ((rc = kl_chan_recv(s->ch, &item)) == 0) {
        if ((uintptr_t)item != (uintptr_t)s->received + 1) s->in_order = false;
        s->received++;
        /* a slow consumer: the producer fills the channel and must park */
        if (s->received % 100 == 0) kl_loop_sleep(loop, 1);
    }
    s->end_rc = rc;
}

Test(chan, items_arrive_in_order_and_close_ends_the_stream) {
    order_state s = {.ch = kl_chan_new(loop, 8), .n = 1000, .in_order = true};
    kl_loop_spawn(loop, consumer_fn, &s, 0);
    kl_loop_spawn(loop, producer_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_eq(s.send_failures, 0);
    cr_assert_eq(s.received, 1000);
    cr_assert(s.in_order);
    cr_assert_eq(s.end_rc, -EPIPE, "receiving from a closed, empty channel");
    cr_assert_eq(kl_chan_len(s.ch), 0);
    kl_chan_free(s.ch);
}

/* ---- a producer thread blocks while the channel is full ---- */

typedef struct {
    kl_chan *ch;
    atomic_int sent;
    int n;
    int len_while_blocked, sent_while_blocked;
    int received;
    bool in_order;
    int thread_rc;
} foreign_state;

static void *foreign_producer(void *arg) {
    foreign_state *s = arg;
    for (int i = 1; i <= s->n; i++) {
        int rc = kl_chan_send(s->ch, ITEM(i));
        if (rc != 0) {
            s->thread_rc = rc;
            break;
        }
        atomic_fetch_add(&s->sent, 1);
    }
    return NULL;
}

static void foreign_consumer_fn(void *arg) {
    foreign_state *s = arg;
    pthread_t th;
    pthread_create(&th, NULL, foreign_producer, s);
    kl_loop_sleep(loop, 100); /* plenty of time for the producer to fill the channel */
    s->sent_while_blocked = atomic_load(&s->sent);
    s->len_while_blocked = (int)kl_chan_len(s->ch);
    void *item;
    while (s->received < s->n && kl_chan_recv(s->ch, &item) == 0) {
        if ((uintptr_t)item != (uintptr_t)s->received + 1) s->in_order = false;
        s->received++;
    }
    pthread_join(th, NULL);
}

Test(chan, foreign_producer_blocks_when_full_and_resumes) {
    foreign_state s = {.ch = kl_chan_new(loop, 4), .n = 200, .in_order = true};
    kl_loop_spawn(loop, foreign_consumer_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_eq(s.sent_while_blocked, 4, "the producer stopped at the capacity");
    cr_assert_eq(s.len_while_blocked, 4);
    cr_assert_eq(s.thread_rc, 0);
    cr_assert_eq(s.received, 200);
    cr_assert_eq(atomic_load(&s.sent), 200);
    cr_assert(s.in_order);
    kl_chan_free(s.ch);
}

/* ---- a loop receiver parked on an empty channel is woken by a foreign sender ---- */

static void *late_sender(void *arg) {
    kl_chan *ch = arg;
    usleep(20000);
    kl_chan_send(ch, ITEM(42));
    return NULL;
}

typedef struct {
    kl_chan *ch;
    int rc;
    void *item;
} one_recv;

static void recv_one_fn(void *arg) {
    one_recv *r = arg;
    r->rc = kl_chan_recv(r->ch, &r->item);
}

Test(chan, foreign_sender_wakes_parked_receiver) {
    one_recv r = {.ch = kl_chan_new(loop, 2), .rc = -1};
    pthread_t th;
    kl_loop_spawn(loop, recv_one_fn, &r, 0);
    pthread_create(&th, NULL, late_sender, r.ch);
    kl_loop_run(loop);
    pthread_join(th, NULL);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq((uintptr_t)r.item, 42);
    kl_chan_free(r.ch);
}

/* ---- try_* and close semantics ---- */

Test(chan, try_send_and_try_recv_never_wait) {
    kl_chan *ch = kl_chan_new(loop, 2);
    void *item = NULL;
    cr_assert_eq(kl_chan_try_recv(ch, &item), -EAGAIN);
    cr_assert_eq(kl_chan_try_send(ch, ITEM(1)), 0);
    cr_assert_eq(kl_chan_try_send(ch, ITEM(2)), 0);
    cr_assert_eq(kl_chan_try_send(ch, ITEM(3)), -EAGAIN, "full");
    cr_assert_eq(kl_chan_len(ch), 2);
    cr_assert_eq(kl_chan_try_recv(ch, &item), 0);
    cr_assert_eq((uintptr_t)item, 1);
    kl_chan_close(ch);
    cr_assert_eq(kl_chan_try_send(ch, ITEM(4)), -EPIPE);
    cr_assert_eq(kl_chan_send(ch, ITEM(4)), -EPIPE);
    cr_assert_eq(kl_chan_try_recv(ch, &item), 0, "what is left can still be drained");
    cr_assert_eq((uintptr_t)item, 2);
    cr_assert_eq(kl_chan_try_recv(ch, &item), -EPIPE);
    kl_chan_free(ch);
}

typedef struct {
    kl_chan *ch;
    int recv_rc[3];
    int nrecv;
} close_state;

static void parked_recv_fn(void *arg) {
    close_state *s = arg;
    void *item;
    int rc = kl_chan_recv(s->ch, &item);
    s->recv_rc[s->nrecv++] = rc;
}

static void closer_fn(void *arg) {
    close_state *s = arg;
    kl_loop_sleep(loop, 5);
    kl_chan_close(s->ch);
}

Test(chan, close_wakes_every_parked_receiver) {
    close_state s = {.ch = kl_chan_new(loop, 1)};
    for (int i = 0; i < 3; i++) kl_loop_spawn(loop, parked_recv_fn, &s, 0);
    kl_loop_spawn(loop, closer_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_eq(s.nrecv, 3);
    for (int i = 0; i < 3; i++) cr_assert_eq(s.recv_rc[i], -EPIPE);
    kl_chan_free(s.ch);
}

typedef struct {
    kl_chan *ch;
    int rc;
} blocked_sender;

static void *blocked_send_thread(void *arg) {
    blocked_sender *b = arg;
    b->rc = kl_chan_send(b->ch, ITEM(2)); /* channel is full: blocks until the close */
    return NULL;
}

static void close_later_fn(void *arg) {
    kl_loop_sleep(loop, 20);
    kl_chan_close(arg);
}

Test(chan, close_releases_blocked_foreign_sender) {
    blocked_sender b = {.ch = kl_chan_new(loop, 1), .rc = 1};
    cr_assert_eq(kl_chan_try_send(b.ch, ITEM(1)), 0);
    pthread_t th;
    pthread_create(&th, NULL, blocked_send_thread, &b);
    kl_loop_spawn(loop, close_later_fn, b.ch, 0);
    kl_loop_run(loop);
    pthread_join(th, NULL);
    cr_assert_eq(b.rc, -EPIPE);
    cr_assert_eq(kl_chan_len(b.ch), 1, "the blocked item never went in");
    kl_chan_free(b.ch);
}

static void *foreign_closer(void *arg) {
    usleep(20000);
    kl_chan_close(arg);
    return NULL;
}

Test(chan, close_from_another_thread_wakes_loop_receiver) {
    close_state s = {.ch = kl_chan_new(loop, 1)};
    kl_loop_spawn(loop, parked_recv_fn, &s, 0);
    pthread_t th;
    pthread_create(&th, NULL, foreign_closer, s.ch);
    kl_loop_run(loop);
    pthread_join(th, NULL);
    cr_assert_eq(s.nrecv, 1);
    cr_assert_eq(s.recv_rc[0], -EPIPE);
    kl_chan_free(s.ch);
}
