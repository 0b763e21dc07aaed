/*
 * gqa.c — the grouped-query attention family beyond Llama 2, as Hugging
 * Face computes it:
 *   Qwen2     q/k/v projection biases;
 *   Qwen3     per-head RMS norms of q and k, applied before RoPE
 *             (Qwen3Attention: q_norm(q_proj(x).view(…, head_dim)), then
 *             apply_rotary_pos_emb);
 *   Qwen      RoPE in rotate-half (NEOX) order: their GGUFs keep HF's row
 *             order, so pair i is (x[i], x[i + d/2]);
 *   Llama 3   rope_freqs.weight divides each pair's frequency (llama3
 *             scaling), rope.scaling.type linear divides them all by factor.
 * and the context limits: dynamic RoPE scaling changes nothing up to
 * context_length (beyond it the model differs), and DeepSeek-V3.2's sparse
 * attention selects every token up to indexer.top_k, so dense MLA is exact
 * there and only there.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward/internal.h"

void fwd_rope_neox(float *x, int64_t d, const double *cs, const double *sn)
{
	int64_t half = d / 2;
	for (int64_t i = 0; i < half; i++) {
		double c = cs[i], s = sn[i];
		double x0 = x[i], x1 = x[i + half];
		x[i] = (float)(x0 * c - x1 * s);
		x[i + half] = (float)(x1 * c + x0 * s);
	}
}

void fwd_gqa_rope_scale(fwd_model *m)
{
	int64_t half = m->hp.rope_dim / 2;
	for (int64_t i = 0; i < half; i++) {
		if (m->rope_freqs)
			m->inv_freq[i] /= (double)m->rope_freqs[i];
		if (m->hp.rope_linear > 0)
			m->inv_freq[i] /= m->hp.rope_linear;
	}
}

qf_status fwd_check_ctx(const fwd_model *m, int64_t T, qf_err *err)
{
	const fwd_hparams *h = &m->hp;
	if (h->max_ctx > 0 && T > h->max_ctx)
		return qf_fail(err, QF_EUSAGE, "%s: %lld tokens exceed %lld: %s (use --ctx %lld or less)",
			       cvt_plan_source_path(m->plan), (long long)T, (long long)h->max_ctx,
			       h->deepseek ? "beyond indexer.top_k the sparse attention selects tokens, and verify computes dense attention"
					   : "dynamic RoPE scaling changes the model beyond context_length, and verify does not compute it",
			       (long long)h->max_ctx);
	return QF_OK;
}

void fwd_gqa_head(float *x, int64_t hd, int64_t rope_dim, const float *norm, double eps, int neox, const double *cs,
		  const double *sn)
{
	if (norm) /* Qwen3: the norm comes first, RoPE rotates its output */
		fwd_rmsnorm(x, x, norm, hd, eps);
	if (neox)
		fwd_rope_neox(x, rope_dim, cs, sn);
	else
		fwd_rope(x, rope_dim, cs, sn);
}

qf_status fwd_gqa_qkv(fwd_model *m, const fwd_layer *L, const float *Hn, int64_t T, int64_t Ts, float *Q, float *K,
		      float *V, const double *cs, const double *sn, qf_err *err)
{
	const fwd_hparams *h = &m->hp;
	int64_t H = h->hidden, hd = h->head_dim, qdim = h->n_head * hd, kvd = h->n_head_kv * hd, half = h->rope_dim / 2;
	qf_status s;
	if ((s = fwd_matmul(m, &L->wq, 0, qdim, Hn, H, T, Q, qdim, 0, err)) ||
	    (s = fwd_matmul(m, &L->wk, 0, kvd, Hn, H, T, K, kvd, 0, err)) ||
	    (s = fwd_matmul(m, &L->wv, 0, kvd, Hn, H, T, V, kvd, 0, err)))
		return s;
	for (int64_t t = 0; t < T; t++) {
		float *q = Q + t * qdim, *k = K + t * kvd, *v = V + t * kvd;
		for (int64_t i = 0; L->bq && i < qdim; i++)
			q[i] += L->bq[i];
		for (int64_t i = 0; L->bk && i < kvd; i++)
			k[i] += L->bk[i];
		for (int64_t i = 0; L->bv && i < kvd; i++)
			v[i] += L->bv[i];
		for (int64_t hh = 0; hh < h->n_head + h->n_head_kv; hh++) {
			float *x = hh < h->n_head ? q + hh * hd : k + (hh - h->n_head) * hd;
			fwd_gqa_head(x, hd, h->rope_dim, hh < h->n_head ? L->q_norm : L->k_norm, h->eps, h->rope_neox,
				     cs + t % Ts * half, sn + t % Ts * half);
		}
	}
	return QF_OK;
}
