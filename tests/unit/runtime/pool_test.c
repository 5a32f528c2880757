#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "runtime/pool.h"

static kl_loop *loop;
static kl_pool *pool;
static pthread_t loop_thread;

static void setup(void) {
    loop = kl_loop_new();
    cr_assert_not_null(loop);
    pool = kl_pool_new(loop, 4);
    cr_assert_not_null(pool);
    loop_thread = pthread_self();
}

static void teardown(void) {
    kl_pool_free(pool);
    kl_loop_free(loop);
}

TestSuite(pool, .init = setup, .fini = teardown, .timeout = 10);

/* ---- the right coroutine is resumed ---- */

typedef struct {
    int in, out;
    bool worker_thread; /* work ran off the loop thread */
    bool resumed_self;  /* after kl_pool_run, the same coroutine is running */
} job;

static void double_work(void *arg) {
    job *j = arg;
    j->worker_thread = !pthread_equal(pthread_self(), loop_thread);
    /* later-submitted jobs finish first, so completions arrive out of order */
    usleep((useconds_t)(1000 * (10 - j->in)));
    j->out = j->in * 2;
}

static void run_one_fn(void *arg) {
    job *j = arg;
    kl_coro *me = kl_coro_current();
    cr_expect_eq(kl_pool_run(pool, double_work, j), 0);
    j->resumed_self = kl_coro_current() == me;
}

Test(pool, completion_resumes_the_coroutine_that_waits) {
    job jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (job){.in = i, .out = -1};
        kl_loop_spawn(loop, run_one_fn, &jobs[i], 0);
    }
    kl_loop_run(loop);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(jobs[i].out, i * 2, "job %d", i);
        cr_assert(jobs[i].worker_thread);
        cr_assert(jobs[i].resumed_self);
    }
    cr_assert_eq(kl_loop_coro_count(loop), 0);
}

/* ---- 1000 submitted jobs ---- */

static atomic_int worked;
static int done_count;
static bool done_off_loop;

static void count_work(void *arg) {
    atomic_fetch_add(&worked, 1);
    *(int *)arg = 1;
}

static void count_done(void *arg) {
    if (!pthread_equal(pthread_self(), loop_thread)) done_off_loop = true;
    if (*(int *)arg == 1) done_count++;
}

Test(pool, thousand_jobs_all_complete_on_the_loop) {
    static int flags[1000];
    atomic_store(&worked, 0);
    done_count = 0;
    done_off_loop = false;
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(kl_pool_submit(pool, count_work, count_done, &flags[i]), 0);
    kl_loop_run(loop); /* outstanding jobs keep the loop alive without any coroutine */
    cr_assert_eq(atomic_load(&worked), 1000);
    cr_assert_eq(done_count, 1000);
    cr_assert_not(done_off_loop, "done callbacks run on the loop thread");
}

/* ---- many coroutines in kl_pool_run at once ---- */

static atomic_int in_work, max_in_work, total_runs;

static void overlap_work(void *arg) {
    (void)arg;
    int now = atomic_fetch_add(&in_work, 1) + 1;
    int prev = atomic_load(&max_in_work);
    while (now > prev && !atomic_compare_exchange_weak(&max_in_work, &prev, now)) {
    }
    usleep(2000);
    atomic_fetch_sub(&in_work, 1);
    atomic_fetch_add(&total_runs, 1);
}

static void many_runs_fn(void *arg) {
    int *mine = arg;
    for (int i = 0; i < 10; i++) {
        cr_expect_eq(kl_pool_run(pool, overlap_work, NULL), 0);
        (*mine)++;
    }
}

Test(pool, run_from_several_coroutines_concurrently) {
    int per[16] = {0};
    atomic_store(&in_work, 0);
    atomic_store(&max_in_work, 0);
    atomic_store(&total_runs, 0);
    for (int i = 0; i < 16; i++) kl_loop_spawn(loop, many_runs_fn, &per[i], 0);
    kl_loop_run(loop);
    cr_assert_eq(atomic_load(&total_runs), 160);
    for (int i = 0; i < 16; i++) cr_assert_eq(per[i], 10);
    cr_assert_geq(atomic_load(&max_in_work), 2, "jobs of different coroutines overlapped");
}

/* ---- free drains ---- */

static void slow_work(void *arg) {
    usleep(200);
    *(int *)arg = 1;
}

static int drained_done;
static void drained_cb(void *arg) {
    drained_done += *(int *)arg;
}

Test(pool, free_finishes_queued_jobs) {
    static int flags[100];
    drained_done = 0;
    for (int i = 0; i < 100; i++) kl_pool_submit(pool, slow_work, drained_cb, &flags[i]);
    kl_pool_free(pool); /* without ever running the loop */
    pool = NULL;
    for (int i = 0; i < 100; i++) cr_assert_eq(flags[i], 1);
    cr_assert_eq(drained_done, 100, "done callbacks of drained jobs ran");
}

Test(pool, run_outside_a_coroutine_is_refused) {
    cr_assert_eq(kl_pool_run(pool, slow_work, NULL), -EPERM);
}
