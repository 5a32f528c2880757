#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "runtime/loop.h"

static kl_loop *loop;

static void setup(void) {
    loop = kl_loop_new();
    cr_assert_not_null(loop);
}

static void teardown(void) {
    kl_loop_free(loop);
    loop = NULL;
}

TestSuite(loop, .init = setup, .fini = teardown, .timeout = 10);

/* ---- spawn ---- */

static int order[8];
static int norder;

static void record_fn(void *arg) {
    order[norder++] = (int)(intptr_t)arg;
}

Test(loop, spawned_coroutines_run_in_order_and_are_freed) {
    norder = 0;
    for (intptr_t i = 1; i <= 3; i++)
        cr_assert_not_null(kl_loop_spawn(loop, record_fn, (void *)i, 0));
    cr_assert_eq(kl_loop_coro_count(loop), 3);
    cr_assert_eq(norder, 0, "spawn only schedules");
    kl_loop_run(loop);
    cr_assert_eq(norder, 3);
    cr_assert_eq(order[0], 1);
    cr_assert_eq(order[1], 2);
    cr_assert_eq(order[2], 3);
    cr_assert_eq(kl_loop_coro_count(loop), 0);
}

static void spawner_fn(void *arg) {
    (void)arg;
    kl_loop_spawn(loop, record_fn, (void *)(intptr_t)7, 0);
    order[norder++] = 6;
}

Test(loop, coroutine_can_spawn_coroutines) {
    norder = 0;
    kl_loop_spawn(loop, spawner_fn, NULL, 0);
    kl_loop_run(loop);
    cr_assert_eq(norder, 2);
    cr_assert_eq(order[0], 6);
    cr_assert_eq(order[1], 7);
}

/* ---- wake / park ---- */

static void self_wake_fn(void *arg) {
    int *steps = arg;
    kl_loop_wake(loop, kl_coro_current());
    kl_loop_park(loop); /* must return: the wake came first */
    (*steps)++;
}

Test(loop, wake_before_park_is_not_lost) {
    int steps = 0;
    kl_loop_spawn(loop, self_wake_fn, &steps, 0);
    kl_loop_run(loop);
    cr_assert_eq(steps, 1);
    cr_assert_eq(kl_loop_coro_count(loop), 0);
}

typedef struct {
    kl_coro *sleeper;
    int resumes;
    bool done;
} wake_twice_state;

static void parker_fn(void *arg) {
    wake_twice_state *s = arg;
    while (!s->done) {
        kl_loop_park(loop);
        s->resumes++;
    }
}

static void waker_fn(void *arg) {
    wake_twice_state *s = arg;
    kl_loop_sleep(loop, 5); /* let the parker park */
    kl_loop_wake(loop, s->sleeper);
    kl_loop_wake(loop, s->sleeper); /* already queued: must not be queued twice */
    kl_loop_sleep(loop, 5);
    cr_expect_eq(s->resumes, 1, "one wake-up despite two wakes");
    s->done = true;
    kl_loop_wake(loop, s->sleeper);
}

Test(loop, double_wake_resumes_once) {
    wake_twice_state s = {0};
    s.sleeper = kl_loop_spawn(loop, parker_fn, &s, 0);
    kl_loop_spawn(loop, waker_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_eq(s.resumes, 2);
    cr_assert_eq(kl_loop_coro_count(loop), 0);
}

/* ---- yield ---- */

typedef struct {
    kl_coro *yielder;
    int log[16];
    int n;
} yield_state;

static void yielder_fn(void *arg) {
    yield_state *s = arg;
    s->log[s->n++] = 1;
    kl_loop_yield(loop);
    s->log[s->n++] = 3;
}

static void other_fn(void *arg) {
    yield_state *s = arg;
    s->log[s->n++] = 2;
}

Test(loop, yield_lets_runnable_coroutines_run_first) {
    yield_state s = {0};
    kl_loop_spawn(loop, yielder_fn, &s, 0);
    kl_loop_spawn(loop, other_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(s.log[0], 1);
    cr_assert_eq(s.log[1], 2, "the coroutine queued behind the yielder ran before it resumed");
    cr_assert_eq(s.log[2], 3);
    cr_assert_eq(kl_loop_coro_count(loop), 0);
}

/* A wake that lands while the coroutine sits in the run queue from its own yield belongs to the
 * park that follows: it must not be lost. */
static void yield_then_park_fn(void *arg) {
    yield_state *s = arg;
    kl_loop_yield(loop);
    s->log[s->n++] = 2;
    kl_loop_park(loop); /* the wake came during the yield: returns at once */
    s->log[s->n++] = 3;
}

static void wake_during_yield_fn(void *arg) {
    yield_state *s = arg;
    s->log[s->n++] = 1;
    kl_loop_wake(loop, s->yielder);
}

Test(loop, wake_during_yield_is_kept_for_the_next_park) {
    yield_state s = {0};
    s.yielder = kl_loop_spawn(loop, yield_then_park_fn, &s, 0);
    /* Runs after the yielder has queued itself again, before it resumes. */
    kl_loop_spawn(loop, wake_during_yield_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(s.log[0], 1);
    cr_assert_eq(s.log[2], 3, "park returned: the wake was kept");
    cr_assert_eq(kl_loop_coro_count(loop), 0);
}

/* ---- sleep ---- */

static void sleep_fn(void *arg) {
    uint64_t *elapsed_ms = arg;
    uint64_t t0 = uv_hrtime();
    int rc = kl_loop_sleep(loop, 30);
    *elapsed_ms = (uv_hrtime() - t0) / 1000000;
    cr_expect_eq(rc, 0, "timer fired");
}

Test(loop, sleep_waits_for_the_timer) {
    uint64_t elapsed = 0;
    kl_loop_spawn(loop, sleep_fn, &elapsed, 0);
    kl_loop_run(loop);
    cr_assert_geq(elapsed, 25);
    cr_assert_lt(elapsed, 5000);
}

typedef struct {
    kl_coro *sleeper;
    int rc;
    uint64_t elapsed_ms;
} early_state;

static void long_sleep_fn(void *arg) {
    early_state *s = arg;
    uint64_t t0 = uv_hrtime();
    s->rc = kl_loop_sleep(loop, 60000);
    s->elapsed_ms = (uv_hrtime() - t0) / 1000000;
}

static void interrupt_fn(void *arg) {
    early_state *s = arg;
    kl_loop_sleep(loop, 10);
    kl_loop_wake(loop, s->sleeper);
}

Test(loop, wake_ends_sleep_early) {
    early_state s = {.rc = -1};
    s.sleeper = kl_loop_spawn(loop, long_sleep_fn, &s, 0);
    kl_loop_spawn(loop, interrupt_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_eq(s.rc, 1);
    cr_assert_lt(s.elapsed_ms, 5000);
}

/* ---- post ---- */

typedef struct {
    kl_coro *waiter;
    pthread_t loop_thread;
    atomic_int ran;
    bool on_loop_thread;
} post_state;

static void posted_fn(void *arg) {
    post_state *s = arg;
    s->on_loop_thread = pthread_equal(pthread_self(), s->loop_thread);
    atomic_fetch_add(&s->ran, 1);
    kl_loop_wake(loop, s->waiter);
}

static void *poster_thread(void *arg) {
    kl_loop_post(loop, posted_fn, arg);
    return NULL;
}

static void post_waiter_fn(void *arg) {
    post_state *s = arg;
    s->waiter = kl_coro_current();
    pthread_t th;
    pthread_create(&th, NULL, poster_thread, s);
    while (atomic_load(&s->ran) == 0) kl_loop_park(loop);
    pthread_join(th, NULL);
}

Test(loop, post_from_another_thread_runs_on_the_loop) {
    post_state s = {.loop_thread = pthread_self()};
    kl_loop_spawn(loop, post_waiter_fn, &s, 0);
    kl_loop_run(loop); /* a parked coroutine keeps the loop alive until the post arrives */
    cr_assert_eq(atomic_load(&s.ran), 1);
    cr_assert(s.on_loop_thread);
}

enum { POSTERS = 4, POSTS_EACH = 500 };

typedef struct {
    atomic_int count;
    int seen[POSTERS]; /* last index seen per thread: posts of one thread keep their order */
    bool in_order;
    kl_coro *waiter;
} many_posts;

typedef struct {
    many_posts *m;
    int thread;
    int index;
} post_item;

static void count_fn(void *arg) {
    post_item *it = arg;
    many_posts *m = it->m;
    if (it->index != m->seen[it->thread] + 1) m->in_order = false;
    m->seen[it->thread] = it->index;
    if (atomic_fetch_add(&m->count, 1) + 1 == POSTERS * POSTS_EACH) kl_loop_wake(loop, m->waiter);
}

static post_item items[POSTERS][POSTS_EACH];
static atomic_int post_failures;

static void *many_poster(void *arg) {
    post_item *row = arg;
    for (int i = 0; i < POSTS_EACH; i++)
        if (kl_loop_post(loop, count_fn, &row[i]) != 0) atomic_fetch_add(&post_failures, 1);
    return NULL;
}

static void many_waiter_fn(void *arg) {
    many_posts *m = arg;
    pthread_t th[POSTERS];
    for (int t = 0; t < POSTERS; t++) pthread_create(&th[t], NULL, many_poster, items[t]);
    while (atomic_load(&m->count) < POSTERS * POSTS_EACH) kl_loop_park(loop);
    for (int t = 0; t < POSTERS; t++) pthread_join(th[t], NULL);
}

Test(loop, many_posts_from_many_threads_all_run_in_order) {
    many_posts m = {.in_order = true};
    for (int t = 0; t < POSTERS; t++) {
        m.seen[t] = -1;
        for (int i = 0; i < POSTS_EACH; i++) items[t][i] = (post_item){&m, t, i};
    }
    m.waiter = kl_loop_spawn(loop, many_waiter_fn, &m, 0);
    kl_loop_run(loop);
    cr_assert_eq(atomic_load(&post_failures), 0);
    cr_assert_eq(atomic_load(&m.count), POSTERS * POSTS_EACH);
    cr_assert(m.in_order);
}

/* ---- stop, and free with leftovers ---- */

static void forever_fn(void *arg) {
    (void)arg;
    kl_loop_park(loop); /* nobody wakes it */
}

static void stopper_fn(void *arg) {
    int *stopped = arg;
    kl_loop_sleep(loop, 5);
    *stopped = 1;
    kl_loop_stop(loop);
}

Test(loop, stop_returns_and_free_reclaims_parked_coroutines) {
    int stopped = 0;
    kl_loop_spawn(loop, forever_fn, NULL, 0);
    kl_loop_spawn(loop, stopper_fn, &stopped, 0);
    kl_loop_run(loop);
    cr_assert_eq(stopped, 1);
    cr_assert_eq(kl_loop_coro_count(loop), 1, "the parked coroutine is still there");
    /* teardown frees the loop; under ASan a leak of the coroutine would be reported */
}

Test(loop, run_without_work_returns_at_once) {
    cr_assert_eq(kl_loop_run(loop), 0);
    cr_assert_not_null(kl_loop_uv(loop));
}

/* ---- passes of the run queue ---- */

/* Counts loop turns: a check handle runs once per turn, after the poll. */
static unsigned turns;
static void count_turn(uv_check_t *h) {
    (void)h;
    turns++;
}

/* Static: the handle finishes closing in the teardown, after the test has returned. */
static uv_check_t check;

static void start_turn_counter(void) {
    turns = 0;
    uv_check_init(kl_loop_uv(loop), &check);
    uv_check_start(&check, count_turn);
    uv_unref((uv_handle_t *)&check);
}

typedef struct {
    kl_coro *parked;
    unsigned woken_at, resumed_at;
    unsigned yielded_at, back_at;
    int rounds, finished;
} pass_state;

static void pass_parker_fn(void *arg) {
    pass_state *s = arg;
    kl_loop_park(loop);
    s->resumed_at = turns;
}

static void pass_waker_fn(void *arg) {
    pass_state *s = arg;
    s->woken_at = turns;
    kl_loop_wake(loop, s->parked);
}

Test(loop, a_coroutine_woken_during_a_pass_runs_in_that_pass) {
    start_turn_counter();
    pass_state s = {0};
    s.parked = kl_loop_spawn(loop, pass_parker_fn, &s, 0);
    kl_loop_spawn(loop, pass_waker_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_eq(s.resumed_at, s.woken_at, "handed over without another turn of the loop");
    uv_close((uv_handle_t *)&check, NULL);
}

static void yield_turn_fn(void *arg) {
    pass_state *s = arg;
    s->yielded_at = turns;
    kl_loop_yield(loop);
    s->back_at = turns;
}

Test(loop, a_yield_waits_for_the_next_turn) {
    start_turn_counter();
    pass_state s = {0};
    kl_loop_spawn(loop, yield_turn_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_gt(s.back_at, s.yielded_at, "I/O got its turn before the yielder went on");
    uv_close((uv_handle_t *)&check, NULL);
}

/* Two coroutines waking each other forever would hold one pass for good without its budget. */
static kl_coro *ping, *pong;
static void ping_pong_fn(void *arg) {
    pass_state *s = arg;
    while (s->rounds < 5000) {
        s->rounds++;
        kl_loop_wake(loop, kl_coro_current() == ping ? pong : ping);
        kl_loop_park(loop);
    }
    /* The first to finish lets the other see the count too; the second has nobody left. */
    if (++s->finished == 1) kl_loop_wake(loop, kl_coro_current() == ping ? pong : ping);
}

Test(loop, a_pass_ends_after_its_budget_so_io_gets_turns) {
    start_turn_counter();
    pass_state s = {0};
    ping = kl_loop_spawn(loop, ping_pong_fn, &s, 0);
    pong = kl_loop_spawn(loop, ping_pong_fn, &s, 0);
    kl_loop_run(loop);
    cr_assert_geq(s.rounds, 5000);
    cr_assert_geq(turns, 5, "5,000 hand-overs took several turns, not one");
    cr_assert_eq(kl_loop_coro_count(loop), 0);
    uv_close((uv_handle_t *)&check, NULL);
}
