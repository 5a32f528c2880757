/* The pool starts its worker threads only when work arrives: none for an idle kernel, one more
 * for each queued job no waiting worker can take, never more than asked for. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "runtime/pool.h"

/* Threads of this process, from /proc: what the pool started must show up here, and be gone
 * again once it is freed. */
static int task_count(void) {
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static kl_loop *loop;

static void setup(void) {
    loop = kl_loop_new();
    cr_assert_not_null(loop);
}

static void teardown(void) {
    kl_loop_free(loop);
}

TestSuite(pool_lazy, .init = setup, .fini = teardown, .timeout = 10);

Test(pool_lazy, a_new_pool_starts_no_thread_and_frees_without_any_submit) {
    int before = task_count();
    kl_pool *pool = kl_pool_new(loop, 4);
    cr_assert_not_null(pool);
    cr_assert_eq(kl_pool_threads(pool), 0);
    cr_assert_eq(task_count(), before, "no thread before the first job");
    kl_pool_free(pool);
    kl_loop_run(loop); /* lets the async handle close */
    cr_assert_eq(task_count(), before);
}

static atomic_int ran;
static pthread_t loop_thread;
static atomic_bool off_loop;
static int completed;

static void note_work(void *arg) {
    (void)arg;
    if (!pthread_equal(pthread_self(), loop_thread)) atomic_store(&off_loop, true);
    atomic_fetch_add(&ran, 1);
}

static void note_done(void *arg) {
    (void)arg;
    completed++;
}

Test(pool_lazy, the_first_submit_starts_one_worker_that_runs_the_job) {
    loop_thread = pthread_self();
    atomic_store(&ran, 0);
    atomic_store(&off_loop, false);
    completed = 0;
    int before = task_count();
    kl_pool *pool = kl_pool_new(loop, 4);
    cr_assert_eq(kl_pool_submit(pool, note_work, note_done, NULL), 0);
    cr_assert_eq(kl_pool_threads(pool), 1, "one job needs one worker, not all four");
    cr_assert_eq(task_count(), before + 1);
    kl_loop_run(loop); /* returns once the job has completed on the loop */
    cr_assert_eq(atomic_load(&ran), 1);
    cr_assert(atomic_load(&off_loop), "the job ran on the worker, not the loop thread");
    cr_assert_eq(completed, 1);
    kl_pool_free(pool);
    kl_loop_run(loop);
    cr_assert_eq(task_count(), before, "free joined the worker it started");
}

/* Jobs that can only finish together: each waits at a barrier sized for all of them. */
static pthread_barrier_t barrier;

static void meet_work(void *arg) {
    (void)arg;
    pthread_barrier_wait(&barrier);
    atomic_fetch_add(&ran, 1);
}

Test(pool_lazy, concurrent_jobs_start_workers_up_to_the_limit) {
    atomic_store(&ran, 0);
    completed = 0;
    kl_pool *pool = kl_pool_new(loop, 3);
    pthread_barrier_init(&barrier, NULL, 3);
    for (int i = 0; i < 3; i++) cr_assert_eq(kl_pool_submit(pool, meet_work, note_done, NULL), 0);
    kl_loop_run(loop); /* would hang (and time out) if fewer than three workers ran at once */
    cr_assert_eq(atomic_load(&ran), 3);
    cr_assert_eq(kl_pool_threads(pool), 3);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < 50; i++) cr_assert_eq(kl_pool_submit(pool, note_work, note_done, NULL), 0);
    cr_assert_eq(kl_pool_threads(pool), 3, "never more workers than the pool was made for");
    kl_loop_run(loop);
    cr_assert_eq(atomic_load(&ran), 53);
    cr_assert_eq(completed, 53);
    kl_pool_free(pool);
}

typedef struct {
    kl_pool *pool;
    int threads_while_idle;
    int rc;
    bool resumed;
} idle_then_run;

static void add_one(void *arg) {
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* Coroutine: waits on the loop like an idle kernel, then hands work to the pool. */
static void idle_then_run_fn(void *arg) {
    idle_then_run *t = arg;
    kl_loop_sleep(loop, 50);
    t->threads_while_idle = kl_pool_threads(t->pool);
    static atomic_int counter;
    atomic_store(&counter, 0);
    t->rc = kl_pool_run(t->pool, add_one, &counter);
    t->resumed = atomic_load(&counter) == 1;
}

Test(pool_lazy, a_coroutine_submits_after_the_loop_has_idled) {
    idle_then_run t = {.pool = kl_pool_new(loop, 2), .threads_while_idle = -1, .rc = -1};
    kl_loop_spawn(loop, idle_then_run_fn, &t, 0);
    kl_loop_run(loop);
    cr_assert_eq(t.threads_while_idle, 0, "idling started no worker");
    cr_assert_eq(t.rc, 0);
    cr_assert(t.resumed, "the coroutine resumed after its job ran");
    cr_assert_eq(kl_pool_threads(t.pool), 1);
    kl_pool_free(t.pool);
}

Test(pool_lazy, free_finishes_jobs_queued_before_any_worker_was_free) {
    atomic_store(&ran, 0);
    completed = 0;
    kl_pool *pool = kl_pool_new(loop, 2);
    for (int i = 0; i < 20; i++) cr_assert_eq(kl_pool_submit(pool, note_work, note_done, NULL), 0);
    kl_pool_free(pool); /* without running the loop: the workers drain the queue first */
    cr_assert_eq(atomic_load(&ran), 20);
    cr_assert_eq(completed, 20);
    kl_loop_run(loop);
}
