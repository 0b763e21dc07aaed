/*
 * attention.c — causal softmax attention of one sequence, one query head
 * per worker: GQA maps query head h to K/V head h / (n_head / n_kv); MLA
 * adds the shared RoPE key part to each head's score.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward/internal.h"

typedef struct attn_job {
	const fwd_model *m;
	const fwd_attn *a;
	float **scores;               /* per worker (T) */
} attn_job;

static void attn_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	const attn_job *jb = ctx;
	const fwd_attn *j = jb->a;
	const fwd_hparams *h = &jb->m->hp;
	float *sc = jb->scores[wk];
	int64_t group = h->n_head / j->n_kv_heads;
	for (int64_t hh = b; hh < e; hh++) {
		int64_t kh = hh / group;
		for (int64_t t = 0; t < j->T; t++) {
			const float *q = j->Q + t * h->n_head * j->qk + hh * j->qk;
			double mx = -INFINITY;
			for (int64_t s = 0; s <= t; s++) {
				const float *k = j->K + s * j->n_kv_heads * j->qk + kh * j->qk;
				double v;
				if (j->Kpe)
					v = (double)jb->m->dot(q, k, j->nope) + (double)jb->m->dot(q + j->nope, j->Kpe + s * (j->qk - j->nope), j->qk - j->nope);
				else
					v = jb->m->dot(q, k, j->qk);
				sc[s] = (float)(v * j->scale);
				mx = sc[s] > mx ? sc[s] : mx;
			}
			double sum = 0;
			for (int64_t s = 0; s <= t; s++) {
				sc[s] = (float)exp(sc[s] - mx);
				sum += sc[s];
			}
			float *o = j->O + t * h->n_head * j->vd + hh * j->vd;
			memset(o, 0, (size_t)j->vd * sizeof *o);
			for (int64_t s = 0; s <= t; s++) {
				float p = (float)(sc[s] / sum);
				const float *v = j->V + s * j->n_kv_heads * j->vd + kh * j->vd;
				for (int64_t d = 0; d < j->vd; d++)
					o[d] += p * v[d];
			}
		}
	}
}

qf_status fwd_attention(fwd_model *m, const fwd_attn *a, qf_err *err)
{
	attn_job jb = { .m = m, .a = a }, *j = &jb;
	j->scores = calloc((size_t)m->threads, sizeof *j->scores);
	qf_status s = QF_OK;
	for (int i = 0; j->scores && i < m->threads; i++)
		if (!(j->scores[i] = malloc((size_t)a->T * sizeof(float))))
			s = QF_ENOMEM;
	if (!j->scores || s) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
	} else {
		fwd_for(m, m->threads, m->hp.n_head, attn_fn, j);
	}
	for (int i = 0; j->scores && i < m->threads; i++)
		free(j->scores[i]);
	free(j->scores);
	return s;
}

