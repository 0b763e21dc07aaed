/*
 * wqueue.h — the writer thread of convert's executors (private to convert/).
 *
 * One job in flight: while the workers encode block k+1 into one set of
 * buffers, the thread runs fn on block k from the other, so encoding and
 * writing overlap and the order of bytes is unchanged.  A job is copied
 * (at most CVT_WQ_JOB_MAX bytes); its buffers must stay valid until the
 * next submit or drain returns.  When no thread can be started, submit runs
 * fn itself.  The first error is kept and returned by every later call.
 */
#ifndef CVT_WQUEUE_H
#define CVT_WQUEUE_H

#include <pthread.h>
#include <stddef.h>

#include "util/qf.h"

#define CVT_WQ_JOB_MAX 512

typedef qf_status (*cvt_wq_fn)(void *ud, const void *job, qf_err *err);

typedef struct cvt_wq {
	cvt_wq_fn fn;
	void *ud;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int has_job, quit, started;
	unsigned char job[CVT_WQ_JOB_MAX];
	qf_status st;
	qf_err err;
} cvt_wq;

/* w zeroed by the caller; starts the thread (or leaves it to run jobs inline). */
void cvt_wq_start(cvt_wq *w, cvt_wq_fn fn, void *ud);
qf_status cvt_wq_submit(cvt_wq *w, const void *job, size_t len, qf_err *err);
/* Waits until the thread is idle; its status. */
qf_status cvt_wq_drain(cvt_wq *w, qf_err *err);
/* Drains and joins; safe on a queue never started, and twice. */
void cvt_wq_stop(cvt_wq *w);

#endif
