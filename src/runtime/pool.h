/* A pool of worker threads, started as work arrives (none before the first job: an idle kernel
 * holds no worker stacks or malloc arenas). Completions come back to the loop thread through
 * uv_async. */
#ifndef KL_RUNTIME_POOL_H
#define KL_RUNTIME_POOL_H

#include "runtime/loop.h"

typedef struct kl_pool kl_pool;
typedef void (*kl_pool_work_fn)(void *arg); /* runs on a worker thread */
typedef void (*kl_pool_done_fn)(void *arg); /* runs on the loop thread */

/* nthreads <= 0 picks one per core, at least 2: the most threads the pool will start. */
kl_pool *kl_pool_new(kl_loop *loop, int nthreads);
/* Waits for queued and running jobs to finish, then joins the threads. */
void kl_pool_free(kl_pool *pool);

/* Loop thread only. Queues work(arg) on a worker, starting one when none is free and fewer than
 * nthreads run; done(arg) (may be NULL) then runs on the loop thread. Returns 0 or -errno (also
 * when no worker runs and none can be started). arg is owned by the caller throughout. */
int kl_pool_submit(kl_pool *pool, kl_pool_work_fn work, kl_pool_done_fn done, void *arg);
/* From a coroutine: runs work(arg) on a worker and parks until it has finished. */
int kl_pool_run(kl_pool *pool, kl_pool_work_fn work, void *arg);
/* Worker threads started so far (they keep running until kl_pool_free). */
int kl_pool_threads(kl_pool *pool);

#endif
