/*
 * matmul.c — weight × activations as blocked matrix products.  The weight's
 * output rows are cut into groups of RG, whole groups per worker; a worker
 * decodes its group's rows (streamed) or reads them from the cache, packs
 * them once and multiplies every token by them, TB tokens at a time.  Each
 * row is decoded exactly once per product, by the worker that uses it.
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
} mm_job;

static void mm_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	mm_job *j = ctx;
	const fwd_w *w = j->w;
	const fwd_kern *kn = j->m->kern;
	fwd_work *ws = &j->m->work[wk];
	int64_t K = w->cols;
	for (int64_t g = b; g < e && !j->m->st[wk]; g++) {
		int64_t j0 = g * FWD_RG, n = j->nr - j0 < FWD_RG ? j->nr - j0 : FWD_RG;
		const float *bp = ws->bp;
		if (w->pk) { /* cached: packed once */
			bp = fwd_w_packed(w, kn->nr, j->r0 + j0);
		} else if (w->f32) {
			fwd_pack_rows(kn, w->f32 + (j->r0 + j0) * K, K, n, K, ws->bp);
		} else {
			j->m->st[wk] = cvt_item_rows_f32(w->it, j->r0 + j0, n, ws->rows, ws->scr, 1, &j->m->errs[wk]);
			if (j->m->st[wk])
				return;
			fwd_pack_rows(kn, ws->rows, K, n, K, ws->bp);
		}
		for (int64_t t0 = 0; t0 < j->T; t0 += FWD_TB) {
			int64_t tb = j->T - t0 < FWD_TB ? j->T - t0 : FWD_TB;
			fwd_gemm(kn, tb, n, K, j->X + t0 * j->ldx, j->ldx, bp, n, K, ws->c, FWD_RG, ws->edge);
			for (int64_t t = 0; t < tb; t++) {
				float *y = j->Y + (t0 + t) * j->ldy + j0;
				const float *c = ws->c + t * FWD_RG;
				if (j->add)
					for (int64_t i = 0; i < n; i++)
						y[i] += c[i];
				else
					memcpy(y, c, (size_t)n * sizeof *y);
			}
		}
	}
}

qf_status fwd_matmul(fwd_model *m, const fwd_w *w, int64_t r0, int64_t nr, const float *X, int64_t ldx, int64_t T,
		     float *Y, int64_t ldy, int add, qf_err *err)
{
	int th = m->threads;
	if (w->pk && (r0 % w->seg || (nr != w->seg && (r0 || nr != w->rows))))
		return qf_fail(err, QF_EUSAGE, "rows %lld+%lld of a weight packed in segments of %lld", (long long)r0,
			       (long long)nr, (long long)w->seg);
	if (nr * w->cols * T < (1 << 20) && (w->f32 || w->pk))
		th = 1; /* too small to be worth waking the workers */
	mm_job j = { .m = m, .w = w, .r0 = r0, .nr = nr, .T = T, .ldx = ldx, .ldy = ldy, .X = X, .Y = Y, .add = add };
	memset(m->st, 0, (size_t)m->threads * sizeof *m->st);
	fwd_for(m, th, (nr + FWD_RG - 1) / FWD_RG, mm_fn, &j);
	if (!w->f32 && !w->pk) /* the source bytes of the rows read */
		m->streamed += cvt_item_src_bytes(w->it) / (uint64_t)w->rows * (uint64_t)nr;
	for (int i = 0; i < th; i++)
		if (m->st[i])
			return qf_fail(err, m->st[i], "%s", m->errs[i].msg);
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

/* ---- k_b: per head, keys from the compressed kv through a (kv_lora × nope) matrix ---- */

typedef struct kb_job {
	fwd_model *m;
	const fwd_w *w;
	const float *X;
	int64_t T, C, nope, ldk;
	float *K;
} kb_job;

static void kb_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	kb_job *j = ctx;
	const fwd_kern *kn = j->m->kern;
	fwd_work *ws = &j->m->work[wk];
	int64_t C = j->C, D = j->nope, ldc = fwd_roundup(D, kn->nr);
	for (int64_t hh = b; hh < e && !j->m->st[wk]; hh++) {
		const float *rows;
		if (j->w->f32) {
			rows = j->w->f32 + hh * C * D;
		} else {
			j->m->st[wk] = cvt_item_rows_f32(j->w->it, hh * C, C, ws->rows, ws->scr, 1, &j->m->errs[wk]);
			if (j->m->st[wk])
				return;
			rows = ws->rows;
		}
		fwd_pack_cols(kn, rows, D, D, C, ws->bp);
		for (int64_t t0 = 0; t0 < j->T; t0 += FWD_TB) {
			int64_t tb = j->T - t0 < FWD_TB ? j->T - t0 : FWD_TB;
			fwd_gemm(kn, tb, D, C, j->X + t0 * C, C, ws->bp, D, C, ws->c, ldc, ws->edge);
			for (int64_t t = 0; t < tb; t++)
				memcpy(j->K + (t0 + t) * j->ldk + hh * (j->ldk / j->m->hp.n_head), ws->c + t * ldc, (size_t)D * sizeof(float));
		}
	}
}

qf_status fwd_matmul_kb(fwd_model *m, const fwd_w *kb, const float *ckv, int64_t T, float *K, int64_t ldk, qf_err *err)
{
	const fwd_hparams *h = &m->hp;
	kb_job j = { .m = m, .w = kb, .X = ckv, .T = T, .C = h->kv_lora, .nope = h->nope, .ldk = ldk, .K = K };
	memset(m->st, 0, (size_t)m->threads * sizeof *m->st);
	fwd_for(m, m->threads, h->n_head, kb_fn, &j);
	if (!kb->f32)
		m->streamed += cvt_item_src_bytes(kb->it);
	for (int i = 0; i < m->threads; i++)
		if (m->st[i])
			return qf_fail(err, m->st[i], "%s", m->errs[i].msg);
	return QF_OK;
}

/* ---- per-token work on the workers (any cut of the tokens gives the same bits) ---------- */

typedef struct norm_job {
	float *o;
	const float *x, *w;
	int64_t n, ldo, ldx;
	double eps;
} norm_job;

static void norm_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	const norm_job *j = ctx;
	for (int64_t t = b; t < e; t++)
		fwd_rmsnorm(j->o + t * j->ldo, j->x + t * j->ldx, j->w, j->n, j->eps);
}

void fwd_rmsnorm_rows(fwd_model *m, float *o, int64_t ldo, const float *x, int64_t ldx, const float *w, int64_t n, int64_t T)
{
	norm_job j = { .o = o, .x = x, .w = w, .n = n, .ldo = ldo, .ldx = ldx, .eps = m->hp.eps };
	fwd_for(m, T * n < (1 << 16) ? 1 : m->threads, T, norm_fn, &j);
}
