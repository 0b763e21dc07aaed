#include "config.h"

#include <string.h>

#include "convert/wqueue.h"

static void *wq_main(void *arg)
{
	cvt_wq *w = arg;
	unsigned char job[CVT_WQ_JOB_MAX];
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->has_job && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->has_job)
			break;
		memcpy(job, w->job, sizeof job);
		qf_status st = w->st;
		pthread_mutex_unlock(&w->mu);
		if (!st)
			st = w->fn(w->ud, job, &w->err);
		pthread_mutex_lock(&w->mu);
		w->st = st;
		w->has_job = 0;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void cvt_wq_start(cvt_wq *w, cvt_wq_fn fn, void *ud)
{
	w->fn = fn;
	w->ud = ud;
	if (pthread_mutex_init(&w->mu, NULL) != 0)
		return;
	if (pthread_cond_init(&w->cv, NULL) != 0) {
		pthread_mutex_destroy(&w->mu);
		return;
	}
	w->started = pthread_create(&w->th, NULL, wq_main, w) == 0;
	if (!w->started) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
	}
}

qf_status cvt_wq_drain(cvt_wq *w, qf_err *err)
{
	if (!w->started)
		return w->st;
	pthread_mutex_lock(&w->mu);
	while (w->has_job)
		pthread_cond_wait(&w->cv, &w->mu);
	qf_status st = w->st;
	pthread_mutex_unlock(&w->mu);
	if (st)
		qf_fail(err, st, "%s", w->err.msg);
	return st;
}

qf_status cvt_wq_submit(cvt_wq *w, const void *job, size_t len, qf_err *err)
{
	if (len > CVT_WQ_JOB_MAX)
		return qf_fail(err, QF_ENOMEM, "writer job of %zu bytes exceeds %d", len, CVT_WQ_JOB_MAX);
	if (!w->started) {
		if (!w->st)
			w->st = w->fn(w->ud, job, err);
		return w->st;
	}
	qf_status st = cvt_wq_drain(w, err);
	if (st)
		return st;
	pthread_mutex_lock(&w->mu);
	memcpy(w->job, job, len);
	w->has_job = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return QF_OK;
}

void cvt_wq_stop(cvt_wq *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->mu);
	while (w->has_job)
		pthread_cond_wait(&w->cv, &w->mu);
	w->quit = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	w->started = 0;
}
