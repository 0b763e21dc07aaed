/*
 * pool.h — deterministic data parallelism: [0, n) is cut into nthreads
 * contiguous ranges, one per thread; the caller's thread runs the first.
 * Results never depend on the thread count as long as fn writes only its
 * own range.
 */
#ifndef QF_POOL_H
#define QF_POOL_H

#include <stdint.h>

typedef void (*qf_range_fn)(void *ctx, int64_t begin, int64_t end, int worker);

void qf_parallel_for(int nthreads, int64_t n, qf_range_fn fn, void *ctx);

#endif
