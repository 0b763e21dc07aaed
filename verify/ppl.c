/* ppl.c — level 3 of verify: perplexity, KL divergence and top-1 (llama.cpp's definitions). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verify/verify.h"

static void log_softmax(const float *x, int64_t n, double *o)
{
	double mx = -INFINITY, sum = 0;
	for (int64_t i = 0; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	for (int64_t i = 0; i < n; i++)
		sum += exp((double)x[i] - mx);
	double lse = mx + log(sum);
	for (int64_t i = 0; i < n; i++)
		o[i] = (double)x[i] - lse;
}

/* Ascending, NaN last (so a NaN never hides among the finite values). */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	if (isnan(x) || isnan(y))
		return isnan(x) - isnan(y);
	return x < y ? -1 : x > y;
}

static int all_finite(const float *x, int64_t n)
{
	int64_t i = 0;
	while (i < n && isfinite(x[i]))
		i++;
	return i == n;
}

/* Remembers the first text position where model i gave a non-finite value. */
static void note_nonfinite(int64_t *at, const char **what, int64_t pos, const char *w)
{
	if (*at < 0) {
		*at = pos;
		*what = w;
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

qf_status vfy_perplexity(fwd_model *const *models, size_t nm, const int32_t *tokens, size_t ntok, int64_t ctx,
			 int32_t bos, size_t max_chunks, vfy_progress_fn prog, void *ud, vfy_ppl *res, qf_err *err)
{
	if (nm == 0)
		return qf_fail(err, QF_EUSAGE, "no model to evaluate");
	int64_t V = fwd_model_hparams(models[0])->vocab;
	for (size_t i = 1; i < nm; i++)
		if (fwd_model_hparams(models[i])->vocab != V)
			return qf_fail(err, QF_EFORMAT, "%s: vocabulary of %lld tokens, the reference has %lld",
				       cvt_plan_source_path(fwd_model_plan(models[i])),
				       (long long)fwd_model_hparams(models[i])->vocab, (long long)V);
	if (ctx < 4)
		return qf_fail(err, QF_EUSAGE, "--ctx must be at least 4");
	/* before the text's length is looked at: a context no model is exact for is refused whatever the text */
	for (size_t i = 0; i < nm; i++) {
		qf_status cs = fwd_check_ctx(models[i], ctx, err);
		if (cs)
			return cs;
	}
	size_t nchunks = ntok / (size_t)ctx;
	if (max_chunks && nchunks > max_chunks)
		nchunks = max_chunks;
	if (nchunks == 0)
		return qf_fail(err, QF_EUSAGE, "the text has %zu tokens, fewer than one chunk of %lld (use a smaller --ctx)", ntok,
			       (long long)ctx);
	int64_t first = ctx / 2, ns = ctx - 1 - first; /* positions ctx/2 … ctx−2 */
	qf_status s = QF_OK;
	/* layer-major when a model streams: as many chunks per batch as every model's budget holds */
	int64_t nb = (int64_t)nchunks;
	for (size_t i = 0; i < nm; i++) {
		int64_t k = fwd_model_batch_seqs(models[i], ctx);
		nb = k < nb ? k : nb;
	}
	int32_t *buf = malloc((size_t)(nb * ctx) * sizeof *buf);
	fwd_batch **bt = calloc(nm, sizeof *bt);
	int64_t *want = malloc((size_t)ns * sizeof *want);
	float **lg = calloc(nm, sizeof *lg);
	double *lp0 = malloc((size_t)V * sizeof *lp0), *lpi = malloc((size_t)V * sizeof *lpi);
	size_t nsc = nchunks * (size_t)ns;
	double *kl = nm > 1 ? malloc(nsc * (nm - 1) * sizeof *kl) : NULL;
	double (*sum)[6] = calloc(nm, sizeof *sum); /* nll, nll², kld, kld², top1, dp² */
	int64_t *bad_at = malloc(nm * sizeof *bad_at);
	const char **bad_what = calloc(nm, sizeof *bad_what);
	if (!buf || !bt || !want || !lg || !lp0 || !lpi || (nm > 1 && !kl) || !sum || !bad_at || !bad_what)
		goto oom;
	for (size_t i = 0; i < nm; i++)
		bad_at[i] = -1;
	for (size_t i = 0; i < nm; i++)
		if (!(lg[i] = malloc((size_t)(ns * V) * sizeof(float))))
			goto oom;
	for (int64_t j = 0; j < ns; j++)
		want[j] = first + j;
	double t0 = now();
	size_t scored = 0;
	uint64_t streamed0 = 0;
	int64_t nlayer = 0;
	for (size_t i = 0; i < nm; i++) {
		streamed0 += fwd_model_streamed(models[i]);
		nlayer += fwd_model_hparams(models[i])->n_layer;
	}
	vfy_progress pg = { .nchunks = nchunks, .nmodels = nm };
	for (size_t c0 = 0; c0 < nchunks; c0 += (size_t)nb) {
		size_t nc = nchunks - c0 < (size_t)nb ? nchunks - c0 : (size_t)nb;
		memcpy(buf, tokens + c0 * (size_t)ctx, nc * (size_t)ctx * sizeof *buf);
		for (size_t q = 0; bos >= 0 && q < nc; q++)
			buf[q * (size_t)ctx] = bos;
		/* each model through all its layers, every chunk of the batch at once */
		int64_t done_layers = 0;
		for (size_t i = 0; i < nm; i++) {
			const fwd_hparams *hi = fwd_model_hparams(models[i]);
			if ((s = fwd_batch_new(models[i], buf, (int64_t)nc, ctx, &bt[i], err)))
				goto out;
			for (int64_t l = 0; l < hi->n_layer; l++) {
				if ((s = fwd_batch_layer(models[i], bt[i], l, err)))
					goto out;
				done_layers++;
				if (prog && nb > 1) {
					uint64_t st = 0;
					for (size_t k = 0; k < nm; k++)
						st += fwd_model_streamed(models[k]);
					double el = now() - t0, frac = ((double)c0 + (double)nc * (double)done_layers / (double)nlayer) / (double)nchunks;
					pg.chunk = c0;
					pg.batch_chunks = nc;
					pg.model = i + 1;
					pg.layer = l + 1;
					pg.nlayer = hi->n_layer;
					pg.gb_streamed = (double)(st - streamed0) / 1e9;
					pg.tokens_per_s = frac > 0 ? frac * (double)(nchunks * (size_t)ctx * nm) / el : 0;
					pg.done_frac = frac;
					pg.eta_s = frac > 0 ? el * (1 - frac) / frac : 0;
					prog(ud, &pg);
				}
			}
			fwd_batch_release(bt[i]);
		}
		for (size_t q = 0; q < nc; q++) {
			size_t c = c0 + q;
			for (size_t i = 0; i < nm; i++)
				if ((s = fwd_batch_logits(models[i], bt[i], (int64_t)q, want, ns, lg[i], err)))
					goto out;
			for (int64_t j = 0; j < ns; j++, scored++) {
				int32_t next = buf[q * (size_t)ctx + (size_t)(first + j + 1)];
				int64_t pos = (int64_t)c * ctx + first + j; /* in the text */
				for (size_t i = 0; i < nm; i++)
					if (bad_at[i] < 0 && !all_finite(lg[i] + j * V, V))
						note_nonfinite(&bad_at[i], &bad_what[i], pos, "logit");
				log_softmax(lg[0] + j * V, V, lp0);
				int64_t a0 = 0;
				for (int64_t v = 1; v < V; v++)
					a0 = lp0[v] > lp0[a0] ? v : a0;
				double nll0 = -lp0[next];
				if (!isfinite(nll0))
					note_nonfinite(&bad_at[0], &bad_what[0], pos, "NLL");
				sum[0][0] += nll0;
				sum[0][1] += nll0 * nll0;
				for (size_t i = 1; i < nm; i++) {
					log_softmax(lg[i] + j * V, V, lpi);
					double k = 0;
					int64_t ai = 0;
					for (int64_t v = 0; v < V; v++) {
						k += exp(lp0[v]) * (lp0[v] - lpi[v]);
						ai = lpi[v] > lpi[ai] ? v : ai;
					}
					double nll = -lpi[next], dp = exp(lpi[next]) - exp(lp0[next]);
					if (!isfinite(nll))
						note_nonfinite(&bad_at[i], &bad_what[i], pos, "NLL");
					if (!isfinite(k))
						note_nonfinite(&bad_at[i], &bad_what[i], pos, "KLD");
					sum[i][0] += nll;
					sum[i][1] += nll * nll;
					sum[i][2] += k;
					sum[i][3] += k * k;
					sum[i][4] += ai == a0;
					sum[i][5] += dp * dp;
					kl[(i - 1) * nsc + scored] = k;
				}
			}
			if (prog && nb == 1) {
				uint64_t st = 0;
				for (size_t k = 0; k < nm; k++)
					st += fwd_model_streamed(models[k]);
				double el = now() - t0;
				pg.chunk = c + 1;
				pg.batch_chunks = 1;
				pg.gb_streamed = (double)(st - streamed0) / 1e9;
				pg.tokens_per_s = (double)((c + 1) * (size_t)ctx * nm) / (el + 1e-9);
				pg.done_frac = (double)(c + 1) / (double)nchunks;
				pg.eta_s = el / (double)(c + 1) * (double)(nchunks - c - 1);
				prog(ud, &pg);
			}
		}
		for (size_t i = 0; i < nm; i++) {
			fwd_batch_free(bt[i]);
			bt[i] = NULL;
		}
	}
	for (size_t i = 0; i < nm; i++) {
		vfy_ppl *r = &res[i];
		double N = (double)scored;
		memset(r, 0, sizeof *r);
		r->n = scored;
		r->nonfinite_at = bad_at[i];
		r->nonfinite_what = bad_what[i];
		r->nll = sum[i][0] / N;
		r->nll_var = sum[i][1] / N - r->nll * r->nll;
		r->ppl = exp(r->nll);
		r->ppl_err = N > 1 ? r->ppl * sqrt(r->nll_var / (N - 1)) : 0;
		if (i == 0)
			continue;
		r->ppl_ratio = r->ppl / res[0].ppl;
		r->kld = sum[i][2] / N;
		double kv = sum[i][3] / N - r->kld * r->kld;
		r->kld_err = N > 1 && kv > 0 ? sqrt(kv / (N - 1)) : 0;
		double *kk = kl + (i - 1) * nsc;
		qsort(kk, scored, sizeof *kk, cmp_double);
		r->kld_p99 = kk[(size_t)floor(0.99 * (N - 1))];
		r->top1 = sum[i][4] / N;
		r->rms_dp = sqrt(sum[i][5] / N);
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	for (size_t i = 0; lg && i < nm; i++)
		free(lg[i]);
	free(lg);
	for (size_t i = 0; bt && i < nm; i++)
		fwd_batch_free(bt[i]);
	free(bt);
	free(buf);
	free(want);
	free(lp0);
	free(lpi);
	free(kl);
	free(sum);
	free(bad_at);
	free(bad_what);
	return s;
}
