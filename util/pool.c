#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "util/pool.h"

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

struct qf_pool {
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	int nthreads;
	int nstarted;           /* workers running (ids 1..nstarted) */
	pthread_t *tid;         /* [nthreads - 1] */
	job *jobs;              /* [nthreads] */
	int active;             /* jobs in the current round (job 0 is the caller's) */
	int pending;            /* jobs of the round not finished yet */
	unsigned long round_no;
	int busy;               /* a round is in progress */
	int quit;
};

typedef struct start { qf_pool *p; int id; } start;

static void *worker_main(void *arg)
{
	qf_pool *p = ((start *)arg)->p;
	int id = ((start *)arg)->id;
	free(arg);
	unsigned long seen = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->round_no == seen && !p->quit)
			pthread_cond_wait(&p->go, &p->mu);
		if (p->quit)
			break;
		seen = p->round_no;
		if (id < p->active) {
			job j = p->jobs[id];
			pthread_mutex_unlock(&p->mu);
			j.fn(j.ctx, j.b, j.e, j.worker);
			pthread_mutex_lock(&p->mu);
			if (--p->pending == 0)
				pthread_cond_signal(&p->done);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

qf_status qf_pool_new(int nthreads, qf_pool **out, qf_err *err)
{
	*out = NULL;
	if (nthreads < 1 || nthreads > QF_POOL_MAX)
		return qf_fail(err, QF_EUSAGE, "threads: %d is outside 1…%d", nthreads, QF_POOL_MAX);
	qf_pool *p = calloc(1, sizeof *p);
	if (!p)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	p->nthreads = nthreads;
	p->tid = calloc((size_t)nthreads, sizeof *p->tid);
	p->jobs = calloc((size_t)nthreads, sizeof *p->jobs);
	if (!p->tid || !p->jobs) {
		free(p->tid);
		free(p->jobs);
		free(p);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	for (int i = 1; i < nthreads; i++) {
		start *s = malloc(sizeof *s);
		if (!s || (*s = (start){ p, i }, pthread_create(&p->tid[i - 1], NULL, worker_main, s) != 0)) {
			free(s);
			qf_pool_free(p);
			return qf_fail(err, QF_EIO, "cannot start thread %d of %d", i + 1, nthreads);
		}
		p->nstarted++;
	}
	*out = p;
	return QF_OK;
}

void qf_pool_free(qf_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nstarted; i++)
		pthread_join(p->tid[i], NULL);
	pthread_cond_destroy(&p->go);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p->tid);
	free(p->jobs);
	free(p);
}

int qf_pool_threads(const qf_pool *p)
{
	return p ? p->nthreads : 1;
}

void qf_pool_for(qf_pool *p, int nthreads, int64_t n, qf_range_fn fn, void *ctx)
{
	if (nthreads > n)
		nthreads = (int)(n > 0 ? n : 1);
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads == 1) {
		fn(ctx, 0, n, 0);
		return;
	}
	int busy = 1;
	if (p && nthreads <= p->nthreads) {
		pthread_mutex_lock(&p->mu);
		busy = p->busy;
		p->busy = 1;
		pthread_mutex_unlock(&p->mu);
	}
	if (busy) {
		/* no pool, too few threads, or a call from inside a range: the same ranges, in turn */
		for (int i = 0; i < nthreads; i++)
			fn(ctx, n * i / nthreads, n * (i + 1) / nthreads, i);
		return;
	}
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < nthreads; i++)
		p->jobs[i] = (job){ fn, ctx, n * i / nthreads, n * (i + 1) / nthreads, i };
	p->active = nthreads;
	p->pending = nthreads - 1;
	p->round_no++;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->mu);
	fn(ctx, p->jobs[0].b, p->jobs[0].e, 0);
	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->done, &p->mu);
	p->busy = 0;
	pthread_mutex_unlock(&p->mu);
}
