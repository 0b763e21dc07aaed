/* terr.c — level 2 of verify: per-tensor error of a candidate against a reference. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/pool.h"
#include "formats/qformat.h"
#include "verify/verify.h"

#define TE_RB 64

typedef struct te_job {
	const cvt_item *a, *b;
	int64_t C;
	float **fa, **fb, **sa, **sb;
	double (*acc)[5];  /* per worker: d2, x2, y2, xy, max */
	qf_status *st;
	qf_err *errs;
} te_job;

static void te_fn(void *ctx, int64_t b0, int64_t e0, int wk)
{
	te_job *j = ctx;
	for (int64_t r = b0 * TE_RB; r < e0 * TE_RB && !j->st[wk]; r += TE_RB) {
		int64_t rows = cvt_item_rows(j->a), n = rows - r < TE_RB ? rows - r : TE_RB;
		if (n <= 0)
			break;
		if ((j->st[wk] = cvt_item_rows_f32(j->a, r, n, j->fa[wk], j->sa[wk], 1, &j->errs[wk])) ||
		    (j->st[wk] = cvt_item_rows_f32(j->b, r, n, j->fb[wk], j->sb[wk], 1, &j->errs[wk])))
			return;
		double *acc = j->acc[wk];
		for (int64_t i = 0; i < n * j->C; i++) {
			double y = j->fa[wk][i], x = j->fb[wk][i], d = x - y;
			acc[0] += d * d;
			acc[1] += x * x;
			acc[2] += y * y;
			acc[3] += x * y;
			if (fabs(d) > acc[4] || isnan(d))
				acc[4] = isnan(d) ? INFINITY : fabs(d);
		}
	}
}

qf_status vfy_tensor_errors(cvt_plan *cand, cvt_plan *ref, int threads, vfy_terr **out, size_t *nout, qf_err *err)
{
	size_t n = cvt_plan_count(cand);
	vfy_terr *v = calloc(n ? n : 1, sizeof *v);
	int64_t maxc = 1, maxs = 1;
	for (size_t i = 0; i < n; i++) {
		const cvt_item *a = cvt_plan_item(cand, i), *b = cvt_plan_find(ref, a->name);
		maxc = cvt_item_row_len(a) > maxc ? cvt_item_row_len(a) : maxc;
		maxs = cvt_scratch_floats(a) > maxs ? cvt_scratch_floats(a) : maxs;
		if (b)
			maxs = cvt_scratch_floats(b) > maxs ? cvt_scratch_floats(b) : maxs;
	}
	threads = threads < 1 ? 1 : threads;
	float **fa = calloc((size_t)threads, sizeof *fa), **fb = calloc((size_t)threads, sizeof *fb);
	float **sa = calloc((size_t)threads, sizeof *sa), **sb = calloc((size_t)threads, sizeof *sb);
	double (*acc)[5] = calloc((size_t)threads, sizeof *acc);
	qf_status *st = calloc((size_t)threads, sizeof *st), s = QF_OK;
	qf_err *errs = calloc((size_t)threads, sizeof *errs);
	qf_pool *pool = NULL;
	if (!v || !fa || !fb || !sa || !sb || !acc || !st || !errs)
		goto oom;
	if ((s = qf_pool_new(threads, &pool, err)))
		goto out;
	for (int w = 0; w < threads; w++) {
		fa[w] = malloc((size_t)(TE_RB * maxc) * sizeof(float));
		fb[w] = malloc((size_t)(TE_RB * maxc) * sizeof(float));
		sa[w] = malloc((size_t)maxs * sizeof(float));
		sb[w] = malloc((size_t)maxs * sizeof(float));
		if (!fa[w] || !fb[w] || !sa[w] || !sb[w])
			goto oom;
	}
	for (size_t i = 0; i < n; i++) {
		const cvt_item *a = cvt_plan_item(cand, i), *b = cvt_plan_find(ref, a->name);
		vfy_terr *e = &v[i];
		snprintf(e->name, sizeof e->name, "%s", a->name);
		e->cls = a->cls;
		e->fmt = qf_dtype_info(cvt_item_src_fmt(a))->fmt;
		e->n = (uint64_t)(cvt_item_rows(a) * cvt_item_row_len(a));
		if (!b) {
			e->problem = "missing in the reference";
			continue;
		}
		int same = a->ndim == b->ndim;
		for (int d = 0; same && d < a->ndim; d++)
			same = a->shape[d] == b->shape[d];
		if (!same) {
			e->problem = "shapes differ";
			continue;
		}
		memset(acc, 0, (size_t)threads * sizeof *acc);
		memset(st, 0, (size_t)threads * sizeof *st);
		te_job j = { .a = a, .b = b, .C = cvt_item_row_len(a), .fa = fa, .fb = fb, .sa = sa, .sb = sb, .acc = acc,
			     .st = st, .errs = errs };
		qf_pool_for(pool, threads, (cvt_item_rows(a) + TE_RB - 1) / TE_RB, te_fn, &j);
		for (int w = 0; w < threads; w++) {
			if (st[w]) {
				s = qf_fail(err, st[w], "%s", errs[w].msg);
				goto out;
			}
			e->d2 += acc[w][0];
			e->x2 += acc[w][1];
			e->y2 += acc[w][2];
			e->xy += acc[w][3];
			e->max_abs = acc[w][4] > e->max_abs ? acc[w][4] : e->max_abs;
		}
		e->rel_rms = e->x2 > 0 ? sqrt(e->d2 / e->x2) : (e->d2 > 0 ? INFINITY : 0);
		e->cosine = e->x2 > 0 && e->y2 > 0 ? e->xy / sqrt(e->x2 * e->y2) : (e->d2 == 0 ? 1 : 0);
		if (isnan(e->d2 + e->x2 + e->y2 + e->xy)) /* a NaN on either side: never "0 error, cosine 1" */
			e->rel_rms = e->cosine = NAN;
	}
	*out = v;
	*nout = n;
	v = NULL;
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	for (int w = 0; w < threads; w++) {
		if (fa)
			free(fa[w]);
		if (fb)
			free(fb[w]);
		if (sa)
			free(sa[w]);
		if (sb)
			free(sb[w]);
	}
	free(fa);
	free(fb);
	free(sa);
	free(sb);
	free(acc);
	free(st);
	free(errs);
	free(v);
	qf_pool_free(pool);
	return s;
}
