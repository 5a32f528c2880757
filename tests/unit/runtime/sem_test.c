#include <criterion/criterion.h>
#include <errno.h>

#include "runtime/loop.h"
#include "runtime/sem.h"

typedef struct world {
    kl_loop *loop;
    kl_sem sem;
    int order[8];
    int norder;
    int max_held;
    bool cancel[8];
    int results[8];
} world;

typedef struct worker {
    world *w;
    int id;
    uint64_t hold_ms;
} worker;

static void work(void *arg) {
    worker *me = arg;
    world *w = me->w;
    int rc = kl_sem_acquire(&w->sem, &w->cancel[me->id]);
    w->results[me->id] = rc;
    if (rc != 0) return;
    w->order[w->norder++] = me->id;
    if (w->sem.held > w->max_held) w->max_held = (int)w->sem.held;
    kl_loop_sleep(w->loop, me->hold_ms);
    kl_sem_release(&w->sem);
}

static void stopper(void *arg) {
    world *w = arg;
    while (kl_loop_coro_count(w->loop) > 1) kl_loop_sleep(w->loop, 5);
    kl_loop_stop(w->loop);
}

Test(sem, at_most_max_hold_and_waiters_go_in_arrival_order) {
    world w = {.loop = kl_loop_new()};
    kl_sem_init(&w.sem, w.loop, 2);
    worker ws[6];
    for (int i = 0; i < 6; i++) {
        ws[i] = (worker){&w, i, 20};
        kl_loop_spawn(w.loop, work, &ws[i], 0);
    }
    kl_loop_spawn(w.loop, stopper, &w, 0);
    kl_loop_run(w.loop);
    cr_assert_eq(w.norder, 6);
    cr_assert_eq(w.max_held, 2);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(w.order[i], i, "position %d got worker %d", i, w.order[i]);
    cr_assert_eq(w.sem.held, 0);
    cr_assert_eq(w.sem.waiting, 0);
    kl_loop_free(w.loop);
}

Test(sem, no_limit_never_parks) {
    kl_loop *loop = kl_loop_new();
    kl_sem s;
    kl_sem_init(&s, loop, 0);
    for (int i = 0; i < 100; i++) cr_assert_eq(kl_sem_acquire(&s, NULL), 0);
    cr_assert_not(kl_sem_busy(&s));
    kl_loop_free(loop);
}

static kl_coro *g_victim;

static void victim(void *arg) {
    worker *me = arg;
    g_victim = kl_coro_current();
    work(me);
}

static void cancel_victim(void *arg) {
    world *w = arg;
    kl_loop_sleep(w->loop, 10);
    cr_assert_eq(w->sem.waiting, 2);
    w->cancel[1] = true;
    kl_loop_wake(w->loop, g_victim);
}

Test(sem, a_cancelled_waiter_leaves_the_queue) {
    world w = {.loop = kl_loop_new()};
    kl_sem_init(&w.sem, w.loop, 1);
    worker ws[3] = {{&w, 0, 50}, {&w, 1, 1}, {&w, 2, 1}};
    kl_loop_spawn(w.loop, work, &ws[0], 0);
    kl_loop_spawn(w.loop, victim, &ws[1], 0);
    kl_loop_spawn(w.loop, work, &ws[2], 0);
    kl_loop_spawn(w.loop, cancel_victim, &w, 0);
    kl_loop_spawn(w.loop, stopper, &w, 0);
    kl_loop_run(w.loop);
    cr_assert_eq(w.results[1], -ECANCELED);
    cr_assert_eq(w.norder, 2);
    cr_assert_eq(w.order[0], 0);
    cr_assert_eq(w.order[1], 2);
    cr_assert_eq(w.sem.held, 0);
    kl_loop_free(w.loop);
}
