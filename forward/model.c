/*
 * model.c — the recipe: embed → for each layer (rmsnorm → Q/K/V (MLA:
 * low-rank Q, compressed KV) → RoPE → attention → output projection →
 * residual → rmsnorm → FFN or MoE → residual) → rmsnorm → head.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward/internal.h"

static qf_status embed(fwd_model *m, const int32_t *tokens, int64_t T, float *X, qf_err *err)
{
	const fwd_w *w = &m->tok_embd;
	for (int64_t t = 0; t < T; t++) {
		if (tokens[t] < 0 || tokens[t] >= m->hp.vocab)
			return qf_fail(err, QF_EFORMAT, "token id %d is outside the vocabulary (%lld)", tokens[t],
				       (long long)m->hp.vocab);
		if (w->f32) {
			memcpy(X + t * w->cols, w->f32 + (int64_t)tokens[t] * w->cols, (size_t)w->cols * sizeof *X);
		} else {
			qf_status s = cvt_item_rows_f32(w->it, tokens[t], 1, X + t * w->cols, m->work[0].scr, 1, err);
			if (s)
				return s;
		}
	}
	return QF_OK;
}

qf_status fwd_forward(fwd_model *m, const int32_t *tokens, int64_t T, const int64_t *want, int64_t n_want,
		      float *logits, qf_err *err)
{
	const fwd_hparams *h = &m->hp;
	int64_t H = h->hidden;
	/* activation buffers, sized for the widest layer */
	int64_t qdim = h->n_head * h->head_dim, kvdim = h->deepseek ? h->n_head * h->head_dim : h->n_head_kv * h->head_dim;
	int64_t vdim = h->deepseek ? h->n_head * h->vdim : h->n_head_kv * h->head_dim;
	int64_t odim = h->deepseek ? h->n_head * h->vdim : qdim;
	int64_t ffw = h->ff > h->moe_ff * (h->n_shared ? h->n_shared : 1) ? h->ff : h->moe_ff * (h->n_shared ? h->n_shared : 1);
	int64_t lat = h->q_lora + h->kv_lora + h->rope_dim + 8;
	int64_t kvbw = h->deepseek ? h->n_head * (h->nope + h->vdim) : 0;
	if (2 * ffw + H < kvbw)
		ffw = kvbw; /* tmp also holds the joined kv_b product */
	float *X = malloc((size_t)(T * H) * sizeof *X), *Hn = malloc((size_t)(T * H) * sizeof *Hn);
	float *Q = malloc((size_t)(T * qdim) * sizeof *Q), *K = malloc((size_t)(T * kvdim) * sizeof *K);
	float *V = malloc((size_t)(T * vdim) * sizeof *V), *O = malloc((size_t)(T * odim) * sizeof *O);
	float *tmp = malloc((size_t)(T * (2 * ffw + H) + 16) * sizeof *tmp);
	float *lt = malloc((size_t)(T * lat) * sizeof *lt), *kpe = malloc((size_t)(T * (h->rope_dim + 1)) * sizeof *kpe);
	float *ckv = malloc((size_t)(T * (h->kv_lora + 1)) * sizeof *ckv);
	float *Hw = malloc((size_t)(n_want ? n_want : 1) * (size_t)H * sizeof *Hw);
	int64_t half = h->rope_dim / 2;
	double *cs = malloc((size_t)(T * half + 1) * sizeof *cs), *sn = malloc((size_t)(T * half + 1) * sizeof *sn);
	qf_status s = QF_OK;
	if (!X || !Hn || !Q || !K || !V || !O || !tmp || !lt || !kpe || !ckv || !Hw || !cs || !sn) {
		s = qf_fail(err, QF_ENOMEM, "out of memory for %lld tokens", (long long)T);
		goto out;
	}
	if ((s = embed(m, tokens, T, X, err)))
		goto out;
	fwd_rope_table(m, T, cs, sn);
	for (int64_t l = 0; l < h->n_layer; l++) {
		const fwd_layer *L = &m->layers[l];
		for (int64_t t = 0; t < T; t++)
			fwd_rmsnorm(Hn + t * H, X + t * H, L->attn_norm, H, h->eps);
		fwd_attn aj = { .T = T, .Q = Q, .K = K, .V = V, .O = O };
		if (!h->deepseek) {
			int64_t hd = h->head_dim;
			if ((s = fwd_matmul(m, &L->wq, 0, qdim, Hn, H, T, Q, qdim, 0, err)) ||
			    (s = fwd_matmul(m, &L->wk, 0, h->n_head_kv * hd, Hn, H, T, K, h->n_head_kv * hd, 0, err)) ||
			    (s = fwd_matmul(m, &L->wv, 0, h->n_head_kv * hd, Hn, H, T, V, h->n_head_kv * hd, 0, err)))
				goto out;
			for (int64_t t = 0; t < T; t++) {
				for (int64_t hh = 0; hh < h->n_head; hh++)
					fwd_rope(Q + t * qdim + hh * hd, h->rope_dim, cs + t * half, sn + t * half);
				for (int64_t hh = 0; hh < h->n_head_kv; hh++)
					fwd_rope(K + t * h->n_head_kv * hd + hh * hd, h->rope_dim, cs + t * half, sn + t * half);
			}
			aj.qk = aj.vd = hd;
			aj.n_kv_heads = h->n_head_kv;
			aj.scale = 1.0 / sqrt((double)hd);
		} else {
			int64_t qk = h->nope + h->rope_dim, R = h->rope_dim, C = h->kv_lora;
			if (h->q_lora) {
				if ((s = fwd_matmul(m, &L->q_a, 0, h->q_lora, Hn, H, T, lt, h->q_lora, 0, err)))
					goto out;
				for (int64_t t = 0; t < T; t++)
					fwd_rmsnorm(lt + t * h->q_lora, lt + t * h->q_lora, L->q_a_norm, h->q_lora, h->eps);
				if ((s = fwd_matmul(m, &L->q_b, 0, qdim, lt, h->q_lora, T, Q, qdim, 0, err)))
					goto out;
			} else if ((s = fwd_matmul(m, &L->q, 0, qdim, Hn, H, T, Q, qdim, 0, err))) {
				goto out;
			}
			if ((s = fwd_matmul(m, &L->kv_a, 0, C + R, Hn, H, T, lt, C + R, 0, err)))
				goto out;
			for (int64_t t = 0; t < T; t++) {
				fwd_rmsnorm(ckv + t * C, lt + t * (C + R), L->kv_a_norm, C, h->eps);
				memcpy(kpe + t * R, lt + t * (C + R) + C, (size_t)R * sizeof *kpe);
				fwd_rope(kpe + t * R, R, cs + t * half, sn + t * half);
				for (int64_t hh = 0; hh < h->n_head; hh++)
					fwd_rope(Q + t * qdim + hh * qk + h->nope, R, cs + t * half, sn + t * half);
			}
			/* per-head keys (nope part) and values from the compressed kv */
			if (L->kv_b.it) {
				float *KV = tmp; /* (T, n_head·(nope+v)) */
				int64_t w = h->n_head * (h->nope + h->vdim);
				if ((s = fwd_matmul(m, &L->kv_b, 0, w, ckv, C, T, KV, w, 0, err)))
					goto out;
				for (int64_t t = 0; t < T; t++)
					for (int64_t hh = 0; hh < h->n_head; hh++) {
						memcpy(K + t * qdim + hh * qk, KV + t * w + hh * (h->nope + h->vdim), (size_t)h->nope * sizeof *K);
						memcpy(V + t * vdim + hh * h->vdim, KV + t * w + hh * (h->nope + h->vdim) + h->nope,
						       (size_t)h->vdim * sizeof *V);
					}
			} else {
				/* k_b[h] is (kv_lora, nope): k_nope[t][d] = Σ_c k_b[h][c][d]·ckv[t][c] */
				if ((s = fwd_matmul_kb(m, &L->k_b, ckv, T, K, qdim, err)))
					goto out;
				if ((s = fwd_matmul(m, &L->v_b, 0, vdim, ckv, C, T, V, vdim, 0, err)))
					goto out;
			}
			aj.qk = qk;
			aj.vd = h->vdim;
			aj.n_kv_heads = h->n_head;
			aj.Kpe = kpe;
			aj.nope = h->nope;
			double scale = 1.0 / sqrt((double)qk);
			if (h->yarn && h->yarn_mscale_all > 0 && h->yarn_factor > 1.0) {
				double ms = 0.1 * h->yarn_mscale_all * log(h->yarn_factor) + 1.0;
				scale *= ms * ms;
			}
			aj.scale = scale;
		}
		if ((s = fwd_attention(m, &aj, err)) || (s = fwd_matmul(m, &L->wo, 0, H, O, odim, T, X, H, 1, err)))
			goto out;
		for (int64_t t = 0; t < T; t++)
			fwd_rmsnorm(Hn + t * H, X + t * H, L->ffn_norm, H, h->eps);
		if (L->moe)
			s = fwd_moe(m, L, Hn, T, X, tmp, err);
		else
			s = fwd_ffn(m, &L->gate, &L->up, &L->down, 0, h->ff, 0, Hn, T, X, NULL, tmp, err);
		if (s)
			goto out;
	}
	for (int64_t i = 0; i < n_want; i++) {
		if (want[i] < 0 || want[i] >= T) {
			s = qf_fail(err, QF_EUSAGE, "logits wanted at position %lld of %lld", (long long)want[i], (long long)T);
			goto out;
		}
		fwd_rmsnorm(Hw + i * H, X + want[i] * H, m->output_norm, H, h->eps);
	}
	s = fwd_matmul(m, &m->output, 0, h->vocab, Hw, H, n_want, logits, h->vocab, 0, err);
out:
	free(X);
	free(Hn);
	free(Q);
	free(K);
	free(V);
	free(O);
	free(tmp);
	free(lt);
	free(kpe);
	free(ckv);
	free(Hw);
	free(cs);
	free(sn);
	return s;
}
