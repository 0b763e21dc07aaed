/*
 * matmul.c — weight × activations: output rows are cut into blocks of FWD_RB,
 * one worker per block; a streamed weight's rows are decoded by the worker
 * that uses them, a cached one is read in place.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "forward/internal.h"

typedef struct mm_job {
	fwd_model *m;
	const fwd_w *w;
	int64_t r0, nr, T, ldx, ldy;
	const float *X;
	float *Y;
	int add;
	qf_status *st;
	qf_err *errs;
} mm_job;

static void mm_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	mm_job *j = ctx;
	const fwd_w *w = j->w;
	for (int64_t blk = b; blk < e && !j->st[wk]; blk++) {
		int64_t j0 = blk * FWD_RB, n = j->nr - j0 < FWD_RB ? j->nr - j0 : FWD_RB;
		const float *rows;
		if (w->f32) {
			rows = w->f32 + (j->r0 + j0) * w->cols;
		} else {
			j->st[wk] = cvt_item_rows_f32(w->it, j->r0 + j0, n, j->m->wbuf[wk], j->m->wscr[wk], 1, &j->errs[wk]);
			if (j->st[wk])
				return;
			rows = j->m->wbuf[wk];
		}
		for (int64_t t = 0; t < j->T; t++) {
			const float *x = j->X + t * j->ldx;
			float *y = j->Y + t * j->ldy + j0;
			for (int64_t r = 0; r < n; r++) {
				float v = j->m->dot(rows + r * w->cols, x, w->cols);
				y[r] = j->add ? y[r] + v : v;
			}
		}
	}
}

qf_status fwd_matmul(fwd_model *m, const fwd_w *w, int64_t r0, int64_t nr, const float *X, int64_t ldx, int64_t T,
			float *Y, int64_t ldy, int add, qf_err *err)
{
	qf_status st[64] = { 0 };
	qf_err errs[64];
	int th = m->threads > 64 ? 64 : m->threads;
	if (nr * w->cols * T < (1 << 21) && w->f32)
		th = 1; /* too small to be worth waking the workers */
	mm_job j = { .m = m, .w = w, .r0 = r0, .nr = nr, .T = T, .ldx = ldx, .ldy = ldy, .X = X, .Y = Y, .add = add,
		     .st = st, .errs = errs };
	memset(errs, 0, sizeof errs);
	fwd_for(m, th, (nr + FWD_RB - 1) / FWD_RB, mm_fn, &j);
	if (!w->f32) /* the source bytes of the rows read */
		m->streamed += cvt_item_src_bytes(w->it) / (uint64_t)w->rows * (uint64_t)nr;
	for (int i = 0; i < th; i++)
		if (st[i])
			return qf_fail(err, st[i], "%s", errs[i].msg);
	return QF_OK;
}

void fwd_rmsnorm(float *o, const float *x, const float *w, int64_t n, double eps)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float r = (float)(1.0 / sqrt(ss / (double)n + eps));
	for (int64_t i = 0; i < n; i++)
		o[i] = w[i] * (x[i] * r);
}

