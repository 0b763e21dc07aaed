#include "config.h"

#include <pthread.h>

#include "formats/pool.h"

#define QF_MAX_THREADS 256

typedef struct job {
	qf_range_fn fn;
	void *ctx;
	int64_t b, e;
	int worker;
} job;

static void *run_job(void *p)
{
	job *j = p;
	j->fn(j->ctx, j->b, j->e, j->worker);
	return NULL;
}

void qf_parallel_for(int nthreads, int64_t n, qf_range_fn fn, void *ctx)
{
	if (nthreads > QF_MAX_THREADS)
		nthreads = QF_MAX_THREADS;
	if (nthreads > n)
		nthreads = (int)(n > 0 ? n : 1);
	if (nthreads <= 1) {
		fn(ctx, 0, n, 0);
		return;
	}
	job jobs[QF_MAX_THREADS];
	pthread_t th[QF_MAX_THREADS];
	int started[QF_MAX_THREADS] = { 0 };
	for (int i = 0; i < nthreads; i++) {
		jobs[i].fn = fn;
		jobs[i].ctx = ctx;
		jobs[i].b = n * i / nthreads;
		jobs[i].e = n * (i + 1) / nthreads;
		jobs[i].worker = i;
	}
	for (int i = 1; i < nthreads; i++)
		started[i] = pthread_create(&th[i], NULL, run_job, &jobs[i]) == 0;
	run_job(&jobs[0]);
	for (int i = 1; i < nthreads; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			run_job(&jobs[i]); /* could not start a thread: do it here */
	}
}
