/*
 * pool.h — deterministic data parallelism with an explicit pool.
 *
 * qf_pool_for cuts [0, n) into nthreads contiguous ranges, one per thread;
 * the caller's thread runs the first.  Results never depend on the pool or
 * on which thread ran a range, as long as fn writes only its own range.
 *
 * A pool belongs to whoever created it (a writer, a model): two pools in
 * one process never share workers, and a library user's own threads may
 * each drive their own pool.  A call made from inside one of the pool's
 * ranges runs the same ranges one after another on the calling thread.
 */
#ifndef QF_POOL_H
#define QF_POOL_H

#include <stdint.h>

#include "util/qf.h"

#define QF_POOL_MAX 256  /* threads; -t above it is a usage error */

typedef void (*qf_range_fn)(void *ctx, int64_t begin, int64_t end, int worker);

typedef struct qf_pool qf_pool;

/*
 * A pool of nthreads (1 … QF_POOL_MAX) threads, the caller's included:
 * nthreads − 1 workers are started now.  QF_EUSAGE outside the range,
 * QF_ENOMEM/QF_EIO when memory or threads cannot be had.  Free with
 * qf_pool_free, which joins the workers.
 */
qf_status qf_pool_new(int nthreads, qf_pool **out, qf_err *err);
void qf_pool_free(qf_pool *p);
/* Threads of the pool (1 for NULL). */
int qf_pool_threads(const qf_pool *p);

/*
 * Runs fn over nthreads ranges of [0, n): nthreads is capped by n and by the
 * pool's threads (a NULL pool runs the ranges one after another).
 */
void qf_pool_for(qf_pool *p, int nthreads, int64_t n, qf_range_fn fn, void *ctx);

#endif
