/*
 * model.c — the recipe: embed → for each layer (rmsnorm → Q/K/V (MLA:
 * low-rank Q, compressed KV) → RoPE → attention → output projection →
 * residual → rmsnorm → FFN or MoE → residual) → rmsnorm → head.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
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

/* Widths of the activation buffers, per token, for the widest layer. */
typedef struct dims {
	int64_t qdim, kvdim, vdim, odim, ffw, lat;
} dims;

static dims dims_of(const fwd_hparams *h)
{
	dims d;
	int64_t H = h->hidden, sh = h->moe_ff * (h->n_shared ? h->n_shared : 1);
	d.qdim = h->n_head * h->head_dim;
	d.kvdim = h->deepseek ? h->n_head * h->head_dim : h->n_head_kv * h->head_dim;
	d.vdim = h->deepseek ? h->n_head * h->vdim : h->n_head_kv * h->head_dim;
	d.odim = h->deepseek ? h->n_head * h->vdim : d.qdim;
	d.ffw = h->ff > sh ? h->ff : sh;
	d.lat = h->q_lora + h->kv_lora + h->rope_dim + 8;
	int64_t kvbw = h->deepseek ? h->n_head * (h->nope + h->vdim) : 0;
	if (2 * d.ffw + H < kvbw)
		d.ffw = kvbw; /* tmp also holds the joined kv_b product */
	return d;
}

struct fwd_batch {
	int64_t nseq, T, N;              /* sequences, tokens each, N = nseq·T */
	float *X;                        /* (N, hidden) the residual stream */
	/* a layer's activations, (N, …): freed by fwd_batch_release */
	float *Hn, *Q, *K, *V, *O, *tmp, *lt, *kpe, *ckv;
	float *ol;                       /* (N, n_head·kv_lora) observed MLA: the absorbed form's attention output */
	double *cs, *sn;                 /* (T, rope_dim/2) */
};

void fwd_model_observe(fwd_model *m, fwd_observe_fn fn, void *ud)
{
	m->obs = fn;
	m->obs_ud = ud;
}

uint64_t fwd_token_bytes(const fwd_model *m)
{
	const fwd_hparams *h = &m->hp;
	dims d = dims_of(h);
	int64_t H = h->hidden;
	int64_t per = 2 * H + d.qdim + d.kvdim + d.vdim + d.odim + 2 * d.ffw + H + d.lat + h->rope_dim + h->kv_lora + 2;
	per += h->n_exp + 4 * h->n_used + 2 * H + 2; /* MoE: router logits, choices, gathered tokens */
	if (m->obs && h->deepseek)
		per += h->n_head * h->kv_lora;
	return (uint64_t)per * sizeof(float);
}

void fwd_batch_release(fwd_batch *b)
{
	if (!b)
		return;
	float **all[] = { &b->Hn, &b->Q, &b->K, &b->V, &b->O, &b->tmp, &b->lt, &b->kpe, &b->ckv, &b->ol };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		free(*all[i]);
		*all[i] = NULL;
	}
	free(b->cs);
	free(b->sn);
	b->cs = b->sn = NULL;
}

void fwd_batch_free(fwd_batch *b)
{
	if (!b)
		return;
	fwd_batch_release(b);
	free(b->X);
	free(b);
}

qf_status fwd_batch_new(fwd_model *m, const int32_t *tokens, int64_t nseq, int64_t T, fwd_batch **out, qf_err *err)
{
	const fwd_hparams *h = &m->hp;
	int64_t H = h->hidden, N = nseq * T, half = h->rope_dim / 2;
	dims d = dims_of(h);
	qf_status cs_ok = fwd_check_ctx(m, T, err);
	if (cs_ok)
		return cs_ok;
	fwd_batch *b = calloc(1, sizeof *b);
	if (!b)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	b->nseq = nseq;
	b->T = T;
	b->N = N;
	b->X = malloc((size_t)(N * H) * sizeof *b->X);
	b->Hn = malloc((size_t)(N * H) * sizeof *b->Hn);
	b->Q = malloc((size_t)(N * d.qdim) * sizeof *b->Q);
	b->K = malloc((size_t)(N * d.kvdim) * sizeof *b->K);
	b->V = malloc((size_t)(N * d.vdim) * sizeof *b->V);
	b->O = malloc((size_t)(N * d.odim) * sizeof *b->O);
	b->tmp = malloc((size_t)(N * (2 * d.ffw + H) + 16) * sizeof *b->tmp);
	b->lt = malloc((size_t)(N * d.lat) * sizeof *b->lt);
	b->kpe = malloc((size_t)(N * (h->rope_dim + 1)) * sizeof *b->kpe);
	b->ckv = malloc((size_t)(N * (h->kv_lora + 1)) * sizeof *b->ckv);
	b->cs = malloc((size_t)(T * half + 1) * sizeof *b->cs);
	b->sn = malloc((size_t)(T * half + 1) * sizeof *b->sn);
	if (!b->X || !b->Hn || !b->Q || !b->K || !b->V || !b->O || !b->tmp || !b->lt || !b->kpe || !b->ckv || !b->cs ||
	    !b->sn) {
		fwd_batch_free(b);
		return qf_fail(err, QF_ENOMEM, "out of memory for %lld tokens", (long long)N);
	}
	qf_status s = embed(m, tokens, N, b->X, err);
	if (s) {
		fwd_batch_free(b);
		return s;
	}
	fwd_rope_table(m, T, b->cs, b->sn);
	*out = b;
	return QF_OK;
}

qf_status fwd_batch_layer(fwd_model *m, fwd_batch *b, int64_t l, qf_err *err)
{
	const fwd_hparams *h = &m->hp;
	if (l < 0 || l >= h->n_layer || !b->Hn)
		return qf_fail(err, QF_EUSAGE, "layer %lld of %lld (or a released batch)", (long long)l, (long long)h->n_layer);
	int64_t H = h->hidden, T = b->N, Ts = b->T, half = h->rope_dim / 2;
	dims d = dims_of(h);
	int64_t qdim = d.qdim, kvdim = d.kvdim, vdim = d.vdim, odim = d.odim;
	float *X = b->X, *Hn = b->Hn, *Q = b->Q, *K = b->K, *V = b->V, *O = b->O, *tmp = b->tmp, *lt = b->lt;
	float *kpe = b->kpe, *ckv = b->ckv;
	const double *cs = b->cs, *sn = b->sn;
	qf_status s;
	const fwd_layer *L = &m->layers[l];
	fwd_rmsnorm_rows(m, Hn, H, X, H, L->attn_norm, H, T);
	fwd_attn aj = { .T = Ts };
	if (!h->deepseek) {
		int64_t hd = h->head_dim;
		if ((s = fwd_see_w(m, &L->wq, l, Hn, H, T, err)) || (s = fwd_see_w(m, &L->wk, l, Hn, H, T, err)) ||
		    (s = fwd_see_w(m, &L->wv, l, Hn, H, T, err)) || (s = fwd_gqa_qkv(m, L, Hn, T, Ts, Q, K, V, cs, sn, err)))
			return s;
		aj.qk = aj.vd = hd;
		aj.n_kv_heads = h->n_head_kv;
		aj.scale = 1.0 / sqrt((double)hd);
	} else {
		int64_t qk = h->nope + h->rope_dim, R = h->rope_dim, C = h->kv_lora;
		if (h->q_lora) {
			if ((s = fwd_see_w(m, &L->q_a, l, Hn, H, T, err)) ||
			    (s = fwd_matmul(m, &L->q_a, 0, h->q_lora, Hn, H, T, lt, h->q_lora, 0, err)))
				return s;
			fwd_rmsnorm_rows(m, lt, h->q_lora, lt, h->q_lora, L->q_a_norm, h->q_lora, T);
			if ((s = fwd_see_w(m, &L->q_b, l, lt, h->q_lora, T, err)) ||
			    (s = fwd_matmul(m, &L->q_b, 0, qdim, lt, h->q_lora, T, Q, qdim, 0, err)))
				return s;
		} else if ((s = fwd_see_w(m, &L->q, l, Hn, H, T, err)) ||
			   (s = fwd_matmul(m, &L->q, 0, qdim, Hn, H, T, Q, qdim, 0, err))) {
			return s;
		}
		if ((s = fwd_see_w(m, &L->kv_a, l, Hn, H, T, err)) ||
		    (s = fwd_matmul(m, &L->kv_a, 0, C + R, Hn, H, T, lt, C + R, 0, err)))
			return s;
		if (m->obs) { /* the absorbed form: k_b multiplies each head's q_nope (not rotated: only the rope part is) */
			char nm[64];
			snprintf(nm, sizeof nm, "blk.%lld.attn_k_b.weight", (long long)l);
			for (int64_t hh = 0; hh < h->n_head; hh++)
				if ((s = fwd_see(m, nm, l, hh, h->n_head, 0, Q + hh * qk, qdim, T, h->nope, err)))
					return s;
		}
		for (int64_t t = 0; t < T; t++) {
			fwd_rmsnorm(ckv + t * C, lt + t * (C + R), L->kv_a_norm, C, h->eps);
			memcpy(kpe + t * R, lt + t * (C + R) + C, (size_t)R * sizeof *kpe);
			fwd_rope(kpe + t * R, R, cs + t % Ts * half, sn + t % Ts * half);
			for (int64_t hh = 0; hh < h->n_head; hh++)
				fwd_rope(Q + t * qdim + hh * qk + h->nope, R, cs + t % Ts * half, sn + t % Ts * half);
		}
		if (m->obs) {
			char nm[64];
			snprintf(nm, sizeof nm, "blk.%lld.attn_kv_b.weight", (long long)l);
			if ((s = fwd_see(m, nm, l, 0, 1, 0, ckv, C, T, C, err)))
				return s;
			if (!b->ol && !(b->ol = malloc((size_t)(T * h->n_head * C) * sizeof *b->ol)))
				return qf_fail(err, QF_ENOMEM, "out of memory for %lld tokens", (long long)T);
			aj.Vl = ckv;
			aj.vl = C;
		}
		/* per-head keys (nope part) and values from the compressed kv */
		if (L->kv_b.it) {
			float *KV = tmp; /* (T, n_head·(nope+v)) */
			int64_t w = h->n_head * (h->nope + h->vdim);
			if ((s = fwd_matmul(m, &L->kv_b, 0, w, ckv, C, T, KV, w, 0, err)))
				return s;
			for (int64_t t = 0; t < T; t++)
				for (int64_t hh = 0; hh < h->n_head; hh++) {
					memcpy(K + t * qdim + hh * qk, KV + t * w + hh * (h->nope + h->vdim), (size_t)h->nope * sizeof *K);
					memcpy(V + t * vdim + hh * h->vdim, KV + t * w + hh * (h->nope + h->vdim) + h->nope,
					       (size_t)h->vdim * sizeof *V);
				}
		} else {
			/* k_b[h] is (kv_lora, nope): k_nope[t][d] = Σ_c k_b[h][c][d]·ckv[t][c] */
			if ((s = fwd_matmul_kb(m, &L->k_b, ckv, T, K, qdim, err)))
				return s;
			if ((s = fwd_matmul(m, &L->v_b, 0, vdim, ckv, C, T, V, vdim, 0, err)))
				return s;
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
	/* attention within each sequence */
	for (int64_t q = 0; q < b->nseq; q++) {
		fwd_attn sq = aj;
		sq.T = Ts;
		sq.Q = Q + q * Ts * qdim;
		sq.K = K + q * Ts * kvdim;
		sq.V = V + q * Ts * vdim;
		sq.O = O + q * Ts * odim;
		sq.Kpe = aj.Kpe ? kpe + q * Ts * h->rope_dim : NULL;
		sq.Vl = aj.Vl ? ckv + q * Ts * aj.vl : NULL;
		sq.Ol = aj.Vl ? b->ol + q * Ts * h->n_head * aj.vl : NULL;
		if ((s = fwd_attention(m, &sq, err)))
			return s;
	}
	if (aj.Vl) {
		char nm[64];
		snprintf(nm, sizeof nm, "blk.%lld.attn_v_b.weight", (long long)l);
		for (int64_t hh = 0; hh < h->n_head; hh++)
			if ((s = fwd_see(m, nm, l, hh, h->n_head, 0, b->ol + hh * aj.vl, h->n_head * aj.vl, T, aj.vl, err)))
				return s;
	}
	if ((s = fwd_see_w(m, &L->wo, l, O, odim, T, err)) || (s = fwd_matmul(m, &L->wo, 0, H, O, odim, T, X, H, 1, err)))
		return s;
	fwd_rmsnorm_rows(m, Hn, H, X, H, L->ffn_norm, H, T);
	if (L->moe)
		s = fwd_moe(m, l, Hn, T, X, tmp, err);
	else
		s = fwd_ffn(m, &L->gate, &L->up, &L->down, 0, h->ff, 0, Hn, T, X, NULL, tmp, l, 0, err);
	return s;
}

qf_status fwd_batch_logits(fwd_model *m, const fwd_batch *b, int64_t seq, const int64_t *want, int64_t n_want,
			   float *logits, qf_err *err)
{
	const fwd_hparams *h = &m->hp;
	int64_t H = h->hidden;
	if (seq < 0 || seq >= b->nseq)
		return qf_fail(err, QF_EUSAGE, "sequence %lld of %lld", (long long)seq, (long long)b->nseq);
	float *Hw = malloc((size_t)(n_want ? n_want : 1) * (size_t)H * sizeof *Hw);
	if (!Hw)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	const float *X = b->X + seq * b->T * H;
	for (int64_t i = 0; i < n_want; i++) {
		if (want[i] < 0 || want[i] >= b->T) {
			free(Hw);
			return qf_fail(err, QF_EUSAGE, "logits wanted at position %lld of %lld", (long long)want[i], (long long)b->T);
		}
		fwd_rmsnorm(Hw + i * H, X + want[i] * H, m->output_norm, H, h->eps);
	}
	qf_status s = fwd_see_w(m, &m->output, -1, Hw, H, n_want, err);
	if (!s)
		s = fwd_matmul(m, &m->output, 0, h->vocab, Hw, H, n_want, logits, h->vocab, 0, err);
	free(Hw);
	return s;
}

qf_status fwd_forward(fwd_model *m, const int32_t *tokens, int64_t T, const int64_t *want, int64_t n_want,
		      float *logits, qf_err *err)
{
	fwd_batch *b = NULL;
	qf_status s = fwd_batch_new(m, tokens, 1, T, &b, err);
	for (int64_t l = 0; !s && l < m->hp.n_layer; l++)
		s = fwd_batch_layer(m, b, l, err);
	if (!s)
		s = fwd_batch_logits(m, b, 0, want, n_want, logits, err);
	fwd_batch_free(b);
	return s;
}
