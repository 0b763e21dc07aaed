/*
 * moe.c — the feed-forward blocks: a SwiGLU FFN over row ranges of
 * (stacked) weights, DeepSeek routing, routed experts run once over the
 * tokens routed to them, and the shared experts over all tokens.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward/internal.h"

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* Y (+)= down(silu(gate·X) ⊙ up·X), rows [r0, r0+F) of gate/up, [d0, d0+H) of down. */
/* Per token, on the workers: G = silu(G) ⊙ U, then Y += wt · D. */
typedef struct ffn_job {
	float *G, *Y;
	const float *U, *D, *wt;
	int64_t F, H;
} ffn_job;

static void glu_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	const ffn_job *j = ctx;
	for (int64_t i = b * j->F; i < e * j->F; i++)
		j->G[i] = silu(j->G[i]) * j->U[i];
}

static void add_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	const ffn_job *j = ctx;
	for (int64_t t = b; t < e; t++)
		for (int64_t i = 0; i < j->H; i++)
			j->Y[t * j->H + i] += (j->wt ? j->wt[t] : 1.0f) * j->D[t * j->H + i];
}

qf_status fwd_ffn(fwd_model *m, const fwd_w *gate, const fwd_w *up, const fwd_w *down, int64_t g0, int64_t F, int64_t d0,
		     const float *X, int64_t T, float *Y, const float *wt, float *tmp, int64_t layer, int routed, qf_err *err)
{
	int64_t H = m->hp.hidden;
	float *G = tmp, *U = tmp + T * F, *D = tmp + 2 * T * F;
	qf_status s;
	if ((s = fwd_see(m, gate->it->name, layer, g0 / F, gate->rows / F, routed, X, H, T, H, err)) ||
	    (s = fwd_see(m, up->it->name, layer, g0 / F, up->rows / F, routed, X, H, T, H, err)) ||
	    (s = fwd_matmul(m, gate, g0, F, X, H, T, G, F, 0, err)) || (s = fwd_matmul(m, up, g0, F, X, H, T, U, F, 0, err)))
		return s;
	ffn_job j = { .G = G, .U = U, .F = F };
	fwd_for(m, T * F < (1 << 16) ? 1 : m->threads, T, glu_fn, &j);
	if ((s = fwd_see(m, down->it->name, layer, d0 / H, down->rows / H, routed, G, F, T, F, err)) ||
	    (s = fwd_matmul(m, down, d0, H, G, F, T, D, H, 0, err)))
		return s;
	j = (ffn_job){ .Y = Y, .D = D, .wt = wt, .H = H };
	fwd_for(m, T * H < (1 << 16) ? 1 : m->threads, T, add_fn, &j);
	return QF_OK;
}

/*
 * Routing of one token (Hugging Face DeepSeek semantics): scores by sigmoid
 * (V3) or softmax (V2); with groups, a group's score is the sum of its top-2
 * biased scores (sigmoid) or its best score (softmax); experts of dropped
 * groups count as 0; the top n_used by (biased) score are chosen; weights are
 * the unbiased scores, normalised when norm_topk, times the routed scale.
 */
void fwd_route(const fwd_hparams *h, const float *logit, const float *bias, int64_t *sel, float *w)
{
	int64_t E = h->n_exp;
	double sc[1024], ch[1024];
	for (int64_t e = 0; e < E; e++)
		sc[e] = h->sigmoid ? 1.0 / (1.0 + exp(-(double)logit[e])) : (double)logit[e];
	if (!h->sigmoid) {
		double mx = -INFINITY, sum = 0;
		for (int64_t e = 0; e < E; e++)
			mx = sc[e] > mx ? sc[e] : mx;
		for (int64_t e = 0; e < E; e++)
			sum += (sc[e] = exp(sc[e] - mx));
		for (int64_t e = 0; e < E; e++)
			sc[e] /= sum;
	}
	for (int64_t e = 0; e < E; e++)
		ch[e] = sc[e] + (bias ? (double)bias[e] : 0.0);
	if (h->n_group > 1 && h->topk_group < h->n_group) {
		int64_t G = h->n_group, per = E / G;
		double gs[256];
		int keep[256] = { 0 };
		for (int64_t g = 0; g < G; g++) {
			double a = -INFINITY, b2 = -INFINITY;
			for (int64_t e = g * per; e < (g + 1) * per; e++) {
				if (ch[e] > a) {
					b2 = a;
					a = ch[e];
				} else if (ch[e] > b2) {
					b2 = ch[e];
				}
			}
			gs[g] = h->sigmoid ? a + (per > 1 ? b2 : 0) : a;
		}
		for (int64_t k = 0; k < h->topk_group; k++) {
			int64_t best = -1;
			for (int64_t g = 0; g < G; g++)
				if (!keep[g] && (best < 0 || gs[g] > gs[best]))
					best = g;
			keep[best] = 1;
		}
		for (int64_t e = 0; e < E; e++)
			if (!keep[e / per])
				ch[e] = 0.0;
	}
	int used[1024] = { 0 };
	double sum = 0;
	for (int64_t k = 0; k < h->n_used; k++) {
		int64_t best = -1;
		for (int64_t e = 0; e < E; e++)
			if (!used[e] && (best < 0 || ch[e] > ch[best]))
				best = e;
		used[best] = 1;
		sel[k] = best;
		w[k] = (float)sc[best];
		sum += sc[best];
	}
	for (int64_t k = 0; k < h->n_used; k++) {
		double v = w[k];
		if (h->norm_topk)
			v /= sum + 1e-20;
		w[k] = (float)(v * h->routed_scale);
	}
}

qf_status fwd_moe(fwd_model *m, int64_t l, const float *X, int64_t T, float *Y, float *tmp, qf_err *err)
{
	const fwd_hparams *h = &m->hp;
	const fwd_layer *L = &m->layers[l];
	int64_t E = h->n_exp, H = h->hidden, F = h->moe_ff, K = h->n_used;
	qf_status s = QF_OK;
	float *logit = malloc((size_t)(T * E) * sizeof *logit);
	int64_t *sel = malloc((size_t)(T * K) * sizeof *sel);
	float *wsel = malloc((size_t)(T * K) * sizeof *wsel);
	float *Xe = malloc((size_t)(T * H) * sizeof *Xe), *Ye = calloc((size_t)(T * H), sizeof *Ye);
	float *we = malloc((size_t)T * sizeof *we);
	int64_t *tok = malloc((size_t)T * sizeof *tok);
	if (!logit || !sel || !wsel || !Xe || !Ye || !we || !tok || E > 1024 || h->n_group > 256) {
		s = qf_fail(err, QF_ENOMEM, "out of memory (or more than 1024 experts)");
		goto out;
	}
	if ((s = fwd_see_w(m, &L->router, l, X, H, T, err)) || (s = fwd_matmul(m, &L->router, 0, E, X, H, T, logit, E, 0, err)))
		goto out;
	for (int64_t t = 0; t < T; t++)
		fwd_route(h, logit + t * E, L->exp_bias, sel + t * K, wsel + t * K);
	for (int64_t e = 0; e < E; e++) {
		int64_t n = 0;
		for (int64_t t = 0; t < T; t++)
			for (int64_t k = 0; k < K; k++)
				if (sel[t * K + k] == e) {
					tok[n] = t;
					we[n] = wsel[t * K + k];
					memcpy(Xe + n * H, X + t * H, (size_t)H * sizeof *Xe);
					n++;
				}
		if (!n)
			continue;
		memset(Ye, 0, (size_t)(n * H) * sizeof *Ye);
		if ((s = fwd_ffn(m, &L->gate_exps, &L->up_exps, &L->down_exps, e * F, F, e * H, Xe, n, Ye, we, tmp, l, 1, err)))
			goto out;
		for (int64_t i = 0; i < n; i++)
			for (int64_t c = 0; c < H; c++)
				Y[tok[i] * H + c] += Ye[i * H + c];
	}
	if (h->n_shared)
		s = fwd_ffn(m, &L->gate_sh, &L->up_sh, &L->down_sh, 0, h->n_shared * F, 0, X, T, Y, NULL, tmp, l, 0, err);
out:
	free(logit);
	free(sel);
	free(wsel);
	free(Xe);
	free(Ye);
	free(we);
	free(tok);
	return s;
}

