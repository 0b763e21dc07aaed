#include "config.h"

#include <pthread.h>

#include "formats/pool.h"

#define QF_MAX_THREADS 256

/*
 * Workers are started once and then wait for work: a forward pass makes
 * thousands of small parallel calls, too many to start threads for each.
 * Ranges are cut the same way whoever runs them, so results never depend on
 * the pool.
 */
typedef struct job {
	qf_range_fn fn;
	void *ctx;
	int64_t b, e;
	int worker;
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
static job jobs[QF_MAX_THREADS];
static int nstarted;        /* worker threads running (ids 1..nstarted) */
static int active;          /* jobs in the current round (job 0 is the caller's) */
static int pending;         /* jobs of the round not finished yet */
static unsigned long round_no;
static int busy;            /* a round is in progress */

static void *worker_main(void *arg)
{
	int id = (int)(intptr_t)arg;
	unsigned long seen = 0;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (round_no == seen)
			pthread_cond_wait(&go, &mu);
		seen = round_no;
		if (id < active) {
			job j = jobs[id];
			pthread_mutex_unlock(&mu);
			j.fn(j.ctx, j.b, j.e, j.worker);
			pthread_mutex_lock(&mu);
			if (--pending == 0)
				pthread_cond_signal(&done);
		}
	}
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
	pthread_mutex_lock(&mu);
	while (nstarted < nthreads - 1) {
		pthread_t t;
		if (pthread_create(&t, NULL, worker_main, (void *)(intptr_t)(nstarted + 1)) != 0)
			break;
		pthread_detach(t);
		nstarted++;
	}
	if (busy || nstarted < nthreads - 1) {
		/* a call from inside a worker, or no threads: the same ranges, one after another */
		pthread_mutex_unlock(&mu);
		for (int i = 0; i < nthreads; i++)
			fn(ctx, n * i / nthreads, n * (i + 1) / nthreads, i);
		return;
	}
	busy = 1;
	for (int i = 0; i < nthreads; i++)
		jobs[i] = (job){ fn, ctx, n * i / nthreads, n * (i + 1) / nthreads, i };
	active = nthreads;
	pending = nthreads - 1;
	round_no++;
	pthread_cond_broadcast(&go);
	pthread_mutex_unlock(&mu);
	fn(ctx, jobs[0].b, jobs[0].e, 0);
	pthread_mutex_lock(&mu);
	while (pending > 0)
		pthread_cond_wait(&done, &mu);
	busy = 0;
	pthread_mutex_unlock(&mu);
}
