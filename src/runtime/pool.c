/* Worker threads fed from one mutex/condvar queue; finished jobs travel back on a mutex-guarded
 * list and a uv_async. The async is referenced only while jobs are outstanding, so an idle pool
 * does not keep kl_loop_run alive. Threads start on demand: a submit that finds more queued jobs
 * than waiting workers starts one more, up to nthreads, so a kernel that never uses the pool
 * never pays for its stacks. */
#include "runtime/pool.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct kl_job {
    kl_pool_work_fn work;
    kl_pool_done_fn done;
    void *arg;
    struct kl_job *next;
} kl_job;

struct kl_pool {
    kl_loop *loop;
    pthread_t *threads; /* nthreads slots, the first `started` in use */
    int nthreads;

    pthread_mutex_t mu; /* guards the job queue, the counts below and stop */
    pthread_cond_t cv;
    kl_job *head, *tail;
    size_t queued;  /* jobs in the queue, not yet taken by a worker */
    size_t waiting; /* workers blocked on cv */
    int started;    /* written by the loop thread only, under mu */
    bool stop;

    pthread_mutex_t done_mu; /* guards the completion list */
    kl_job *done_head, *done_tail;

    uv_async_t async;
    size_t outstanding; /* loop thread only: submitted and not yet completed on the loop */
};

static void *kl_pool_worker(void *arg) {
    kl_pool *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->head && !pool->stop) {
            pool->waiting++;
            pthread_cond_wait(&pool->cv, &pool->mu);
            pool->waiting--;
        }
        kl_job *job = pool->head;
        if (!job) break; /* stopping and nothing left */
        pool->head = job->next;
        if (!pool->head) pool->tail = NULL;
        pool->queued--;
        pthread_mutex_unlock(&pool->mu);

        job->work(job->arg);
        job->next = NULL;
        pthread_mutex_lock(&pool->done_mu);
        if (pool->done_tail)
            pool->done_tail->next = job;
        else
            pool->done_head = job;
        pool->done_tail = job;
        pthread_mutex_unlock(&pool->done_mu);
        uv_async_send(&pool->async);

        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static void kl_pool_drain(kl_pool *pool) {
    pthread_mutex_lock(&pool->done_mu);
    kl_job *job = pool->done_head;
    pool->done_head = pool->done_tail = NULL;
    pthread_mutex_unlock(&pool->done_mu);
    while (job) {
        kl_job *next = job->next;
        if (job->done) job->done(job->arg);
        free(job);
        assert(pool->outstanding > 0);
        if (--pool->outstanding == 0) uv_unref((uv_handle_t *)&pool->async);
        job = next;
    }
}

static void kl_pool_on_async(uv_async_t *h) {
    /* Sends coalesce: drain everything that finished so far. */
    kl_pool_drain(h->data);
}

kl_pool *kl_pool_new(kl_loop *loop, int nthreads) {
    if (nthreads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n < 2 ? 2 : (int)n;
    }
    kl_pool *pool = calloc(1, sizeof(*pool));
    if (!pool) return NULL;
    pool->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    if (!pool->threads) {
        free(pool);
        errno = ENOMEM;
        return NULL;
    }
    pool->loop = loop;
    pool->nthreads = nthreads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pthread_mutex_init(&pool->done_mu, NULL);
    int rc = uv_async_init(kl_loop_uv(loop), &pool->async, kl_pool_on_async);
    if (rc < 0) {
        pthread_mutex_destroy(&pool->mu);
        pthread_cond_destroy(&pool->cv);
        pthread_mutex_destroy(&pool->done_mu);
        free(pool->threads);
        free(pool);
        errno = -rc;
        return NULL;
    }
    pool->async.data = pool;
    uv_unref((uv_handle_t *)&pool->async);
    return pool;
}

static void kl_pool_on_closed(uv_handle_t *h) {
    kl_pool *pool = h->data;
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->done_mu);
    free(pool->threads);
    free(pool);
}

void kl_pool_free(kl_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    pool->stop = true;
    pthread_cond_broadcast(&pool->cv);
    int started = pool->started;
    pthread_mutex_unlock(&pool->mu);
    /* A queued job always has a worker (submit refuses it otherwise), so none is left behind. */
    for (int i = 0; i < started; i++) pthread_join(pool->threads[i], NULL);
    /* Workers finish the whole queue before they exit; report those completions now. */
    kl_pool_drain(pool);
    uv_close((uv_handle_t *)&pool->async, kl_pool_on_closed);
}

/* Loop thread only: it references the async handle while jobs are outstanding, and it alone
 * starts workers. */
int kl_pool_submit(kl_pool *pool, kl_pool_work_fn work, kl_pool_done_fn done, void *arg) {
    kl_job *job = malloc(sizeof(*job));
    if (!job) return -ENOMEM;
    job->work = work;
    job->done = done;
    job->arg = arg;
    job->next = NULL;
    if (pool->outstanding++ == 0) uv_ref((uv_handle_t *)&pool->async);
    pthread_mutex_lock(&pool->mu);
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    /* A worker signalled but not yet awake still counts as waiting, so every queued job has a
     * worker or starts one; a worker busy with a job that is about to end does not, which at
     * worst starts a thread a little early (never more than nthreads). */
    int rc = 0;
    if (pool->waiting < pool->queued && pool->started < pool->nthreads) {
        rc = pthread_create(&pool->threads[pool->started], NULL, kl_pool_worker, pool);
        if (rc == 0) pool->started++;
    }
    if (pool->started == 0) {
        /* No worker at all: the queue holds only this job, which nobody would ever run. */
        pool->head = pool->tail = NULL;
        pool->queued--;
        pthread_mutex_unlock(&pool->mu);
        free(job);
        if (--pool->outstanding == 0) uv_unref((uv_handle_t *)&pool->async);
        return -rc;
    }
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

int kl_pool_threads(kl_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    int n = pool->started;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

typedef struct {
    kl_pool_work_fn work;
    void *arg;
    kl_loop *loop;
    kl_coro *co;
    bool done;
} kl_pool_run_ctx;

static void kl_pool_run_work(void *arg) {
    kl_pool_run_ctx *ctx = arg;
    ctx->work(ctx->arg);
}

static void kl_pool_run_done(void *arg) {
    kl_pool_run_ctx *ctx = arg;
    ctx->done = true;
    kl_loop_wake(ctx->loop, ctx->co);
}

int kl_pool_run(kl_pool *pool, kl_pool_work_fn work, void *arg) {
    kl_coro *co = kl_coro_current();
    if (!co) return -EPERM;
    /* ctx lives on this coroutine's stack, which stays put while the coroutine is parked. */
    kl_pool_run_ctx ctx = {.work = work, .arg = arg, .loop = pool->loop, .co = co, .done = false};
    int rc = kl_pool_submit(pool, kl_pool_run_work, kl_pool_run_done, &ctx);
    if (rc < 0) return rc;
    while (!ctx.done) kl_loop_park(pool->loop);
    return 0;
}
