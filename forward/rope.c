/*
 * rope.c — rotary position embedding: inverse frequencies (YaRN as Hugging
 * Face's DeepseekV3YarnRotaryEmbedding computes them), a cos/sin table per
 * pass, and the rotation of adjacent pairs.
 */
#include "config.h"

#include <math.h>

#include "forward/internal.h"

/* RoPE frequencies; YaRN as Hugging Face's DeepseekV3YarnRotaryEmbedding computes them. */
void fwd_rope_init(fwd_model *m)
{
	const fwd_hparams *h = &m->hp;
	int64_t d = h->rope_dim, half = d / 2;
	m->rope_mscale = 1.0;
	for (int64_t i = 0; i < half; i++)
		m->inv_freq[i] = 1.0 / pow(h->rope_base, (double)(2 * i) / (double)d);
	if (!h->yarn || h->yarn_factor <= 1.0)
		return;
	const double pi2 = 2.0 * 3.14159265358979323846;
	double lo = floor((double)d * log((double)h->yarn_orig_ctx / (h->yarn_beta_fast * pi2)) / (2.0 * log(h->rope_base)));
	double hi = ceil((double)d * log((double)h->yarn_orig_ctx / (h->yarn_beta_slow * pi2)) / (2.0 * log(h->rope_base)));
	lo = lo < 0 ? 0 : lo;
	hi = hi > (double)(d - 1) ? (double)(d - 1) : hi;
	if (lo == hi)
		hi += 0.001;
	for (int64_t i = 0; i < half; i++) {
		double ramp = ((double)i - lo) / (hi - lo);
		ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
		double extra = m->inv_freq[i], inter = extra / h->yarn_factor;
		double mask = 1.0 - ramp; /* HF's inv_freq_mask */
		m->inv_freq[i] = inter * (1.0 - mask) + extra * mask;
	}
	m->rope_mscale = h->yarn_attn_factor;
}


/* Rotates adjacent pairs (x[2i], x[2i+1]) by pos·inv_freq[i] (llama.cpp's layout; HF's after its permutation). */
void fwd_rope(float *x, int64_t d, const double *cs, const double *sn)
{
	for (int64_t i = 0; i < d / 2; i++) {
		double c = cs[i], s = sn[i];
		double x0 = x[2 * i], x1 = x[2 * i + 1];
		x[2 * i] = (float)(x0 * c - x1 * s);
		x[2 * i + 1] = (float)(x1 * c + x0 * s);
	}
}

/* cos and sin of pos·inv_freq[i] (YaRN's magnitude included) for positions 0…T−1, once per pass. */
void fwd_rope_table(const fwd_model *m, int64_t T, double *cs, double *sn)
{
	int64_t half = m->hp.rope_dim / 2;
	for (int64_t t = 0; t < T; t++)
		for (int64_t i = 0; i < half; i++) {
			double a = (double)t * m->inv_freq[i];
			cs[t * half + i] = cos(a) * m->rope_mscale;
			sn[t * half + i] = sin(a) * m->rope_mscale;
		}
}
