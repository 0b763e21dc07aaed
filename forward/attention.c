/*
 * attention.c — causal softmax attention of one sequence as blocked matrix
 * products, one query head per worker: S = Q_h·K_hᵀ for a block of QB
 * queries against the keys they may see, softmax along each row, O = P·V_h.
 * GQA maps query head h to K/V head h / (n_head / n_kv).
 *
 * MLA (DeepSeek) runs in its naive form: per-head keys and values are
 * materialised from the compressed kv (kv_b, or k_b and v_b) and the shared
 * RoPE key part is appended to every head's key.  The absorbed form (fold
 * k_b into the queries and v_b into the output, attend in the kv_lora
 * space) costs the same projections — T·kv_lora·(nope + v) per head either
 * way — but (2·kv_lora + rope) instead of (nope + rope + v) multiply-adds
 * per query–key pair: 1088 vs 320 for V3/R1.  In prefill, where every
 * token is both a query and a key, naive is therefore always cheaper
 * (absorbed wins only in decode, against a long cache), so naive it is.
 * When observed (qforge calibrate), each head's softmax weights are also
 * applied to the normed latent kv: that is the absorbed form's attention
 * output, the input of attn_v_b in llama.cpp's graph, and with the same
 * weights it is exactly what the absorbed form computes.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward/internal.h"

#define QB 120 /* queries per block (a multiple of every mr) */

typedef struct attn_job {
	const fwd_model *m;
	const fwd_attn *a;
	int64_t ldk, ldv, lds, ldo;   /* packed K columns (keys), S row stride, O block stride */
	int64_t ldl;                  /* latent O block stride (observed MLA), else 0 */
	float **buf;                  /* per worker: K_h, packed K_h, packed V_h, S, O block, edge, latent O block */
	float *bl;                    /* the latent kv packed (observed MLA), shared by every head */
} attn_job;

static int64_t attn_floats(const attn_job *j)
{
	const fwd_attn *a = j->a;
	int64_t mr = j->m->kern->mr;
	return a->T * a->qk + j->ldk * a->qk + j->ldv * a->T + fwd_roundup(QB, mr) * (j->lds + j->ldo + j->ldl) + mr * FWD_KC;
}

static void attn_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	const attn_job *jb = ctx;
	const fwd_attn *j = jb->a;
	const fwd_hparams *h = &jb->m->hp;
	const fwd_kern *kn = jb->m->kern;
	int64_t T = j->T, qk = j->qk, vd = j->vd, group = h->n_head / j->n_kv_heads;
	float *Kh = jb->buf[wk], *bk = Kh + T * qk, *bv = bk + jb->ldk * qk, *S = bv + jb->ldv * T;
	float *Ob = S + fwd_roundup(QB, kn->mr) * jb->lds, *edge = Ob + fwd_roundup(QB, kn->mr) * jb->ldo;
	float *Lb = edge + kn->mr * FWD_KC;
	int64_t ldq = h->n_head * qk;
	for (int64_t hh = b; hh < e; hh++) {
		int64_t kh = hh / group;
		if (hh == b || kh != (hh - 1) / group) { /* pack this K/V head */
			for (int64_t s = 0; s < T; s++) {
				const float *k = j->K + s * j->n_kv_heads * qk + kh * qk;
				if (j->Kpe) { /* MLA: the head's nope part, then the shared rope part */
					memcpy(Kh + s * qk, k, (size_t)j->nope * sizeof *Kh);
					memcpy(Kh + s * qk + j->nope, j->Kpe + s * (qk - j->nope), (size_t)(qk - j->nope) * sizeof *Kh);
				} else {
					memcpy(Kh + s * qk, k, (size_t)qk * sizeof *Kh);
				}
			}
			fwd_pack_rows(kn, Kh, qk, T, qk, bk);
			fwd_pack_cols(kn, j->V + kh * vd, j->n_kv_heads * vd, vd, T, bv);
		}
		for (int64_t q0 = 0; q0 < T; q0 += QB) {
			int64_t nq = T - q0 < QB ? T - q0 : QB, kend = q0 + nq; /* keys 0 … kend−1 */
			fwd_gemm(kn, nq, kend, qk, j->Q + q0 * ldq + hh * qk, ldq, bk, T, qk, S, jb->lds, edge);
			for (int64_t i = 0; i < nq; i++) {
				int64_t t = q0 + i;
				float *sc = S + i * jb->lds;
				double mx = -INFINITY;
				for (int64_t s = 0; s <= t; s++) {
					sc[s] = (float)((double)sc[s] * j->scale);
					mx = sc[s] > mx ? sc[s] : mx;
				}
				double sum = 0;
				for (int64_t s = 0; s <= t; s++) {
					sc[s] = (float)exp(sc[s] - mx);
					sum += sc[s];
				}
				for (int64_t s = 0; s <= t; s++)
					sc[s] = (float)(sc[s] / sum);
				for (int64_t s = t + 1; s < kend; s++)
					sc[s] = 0.0f; /* fma with 0 leaves the sum as it was */
			}
			fwd_gemm(kn, nq, vd, kend, S, jb->lds, bv, vd, T, Ob, jb->ldo, edge);
			for (int64_t i = 0; i < nq; i++)
				memcpy(j->O + (q0 + i) * h->n_head * vd + hh * vd, Ob + i * jb->ldo, (size_t)vd * sizeof *Ob);
			if (!j->Ol)
				continue;
			fwd_gemm(kn, nq, j->vl, kend, S, jb->lds, jb->bl, j->vl, T, Lb, jb->ldl, edge);
			for (int64_t i = 0; i < nq; i++)
				memcpy(j->Ol + (q0 + i) * h->n_head * j->vl + hh * j->vl, Lb + i * jb->ldl, (size_t)j->vl * sizeof *Lb);
		}
	}
}

qf_status fwd_attention(fwd_model *m, const fwd_attn *a, qf_err *err)
{
	const fwd_kern *kn = m->kern;
	attn_job jb = { .m = m, .a = a, .ldk = fwd_roundup(a->T, kn->nr), .ldv = fwd_roundup(a->vd, kn->nr),
			.lds = fwd_roundup(a->T, kn->nr), .ldo = fwd_roundup(a->vd, kn->nr),
			.ldl = a->Ol ? fwd_roundup(a->vl, kn->nr) : 0 };
	jb.buf = calloc((size_t)m->threads, sizeof *jb.buf);
	qf_status s = QF_OK;
	if (a->Ol) {
		if ((jb.bl = malloc((size_t)fwd_pack_floats(kn, a->vl, a->T) * sizeof(float))))
			fwd_pack_cols(kn, a->Vl, a->vl, a->vl, a->T, jb.bl);
		else
			s = QF_ENOMEM;
	}
	for (int i = 0; jb.buf && i < m->threads; i++)
		if (!(jb.buf[i] = malloc((size_t)attn_floats(&jb) * sizeof(float))))
			s = QF_ENOMEM;
	if (!jb.buf || s)
		s = qf_fail(err, QF_ENOMEM, "out of memory for attention over %lld tokens", (long long)a->T);
	else
		fwd_for(m, m->threads, m->hp.n_head, attn_fn, &jb);
	for (int i = 0; jb.buf && i < m->threads; i++)
		free(jb.buf[i]);
	free(jb.buf);
	free(jb.bl);
	return s;
}
