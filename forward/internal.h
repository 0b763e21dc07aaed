/*
 * internal.h — what the forward/ files share: the weights of a model, its
 * layers, and the steps of the recipe.  Not for use outside forward/.
 */
#ifndef FWD_INTERNAL_H
#define FWD_INTERNAL_H

#include "util/pool.h"
#include "forward/forward.h"
#include "forward/kernels.h"

#define FWD_RB 16  /* weight rows decoded per step when caching */
#define FWD_RG 64  /* weight rows a worker decodes, packs and multiplies at a time (a multiple of every nr) */
#define FWD_TB 240 /* tokens per product block (a multiple of every mr): X block of TB × KC floats in L2 */

/* One weight: rows × cols of an item (1-D: 1 × n). */
typedef struct fwd_w {
	const cvt_item *it;      /* NULL when the model has no such tensor */
	int64_t rows, cols;
	float *f32;              /* decoded rows, when cached and read by row (embedding, k_b) */
	float *pk;               /* decoded and packed for fwd_gemm, when cached: see fwd_w_packed */
	int64_t seg;             /* rows of one product (an expert's, else all): groups of RG start at its multiples */
	int by_row;              /* read by row, never packed (the embedding, k_b) */
} fwd_w;

/*
 * A cached weight's packed group starting at row r (a multiple of RG past a
 * multiple of seg): segments of seg rows one after another, each cut into
 * groups of RG rows packed by fwd_pack_rows (the last group of a segment may
 * be short; its padding columns are zero).
 */
static inline const float *fwd_w_packed(const fwd_w *w, int64_t nr, int64_t r)
{
	int64_t s = r / w->seg, in = r - s * w->seg, full = w->seg / FWD_RG, part = w->seg % FWD_RG;
	int64_t seg_floats = (full * FWD_RG + (part ? (part + nr - 1) / nr * nr : 0)) * w->cols;
	return w->pk + s * seg_floats + in / FWD_RG * FWD_RG * w->cols;
}
static inline int64_t fwd_w_packed_floats(const fwd_w *w, int64_t nr)
{
	int64_t full = w->seg / FWD_RG, part = w->seg % FWD_RG;
	return w->rows / w->seg * (full * FWD_RG + (part ? (part + nr - 1) / nr * nr : 0)) * w->cols;
}

typedef struct fwd_layer {
	float *attn_norm, *ffn_norm;               /* (hidden) */
	/* llama */
	fwd_w wq, wk, wv;                          /* (n_head·hd, hidden), (n_kv·hd, hidden) ×2 */
	float *bq, *bk, *bv;                       /* Qwen2: (n_head·hd), (n_kv·hd) ×2, or NULL */
	float *q_norm, *k_norm;                    /* Qwen3: (hd) each, or NULL */
	/* deepseek */
	fwd_w q_a, q_b, q;                         /* (q_lora, hidden), (n_head·(nope+rope), q_lora) | (…, hidden) */
	float *q_a_norm, *kv_a_norm;               /* (q_lora), (kv_lora) */
	fwd_w kv_a;                                /* (kv_lora + rope, hidden) */
	fwd_w k_b, v_b, kv_b;                      /* (n_head·kv_lora, nope), (n_head·v, kv_lora) | (n_head·(nope+v), kv_lora) */
	fwd_w wo;                                  /* (hidden, n_head·v) */
	/* feed-forward */
	fwd_w gate, up, down;                      /* dense: (ff, hidden) ×2, (hidden, ff) */
	fwd_w router;                              /* (n_exp, hidden) */
	float *exp_bias;                           /* (n_exp) */
	fwd_w gate_exps, up_exps, down_exps;       /* (n_exp·moe_ff, hidden) ×2, (n_exp·hidden, moe_ff) */
	fwd_w gate_sh, up_sh, down_sh;             /* (n_shared·moe_ff, hidden) ×2, (hidden, …) */
	int moe;
} fwd_layer;

/* One worker's scratch for weight products. */
typedef struct fwd_work {
	float *rows;                                /* (RG, max_cols) decoded weight rows */
	float *bp;                                  /* (RG, max_cols) the same rows packed */
	float *c;                                   /* (TB, RG) a product block */
	float *edge;                                /* (mr, KC) */
	float *scr;                                 /* (max_scr) decoding scratch */
} fwd_work;

struct fwd_model {
	cvt_plan *plan;
	fwd_hparams hp;
	fwd_w tok_embd, output;                     /* (vocab, hidden) */
	float *output_norm;                         /* (hidden) */
	fwd_layer *layers;                          /* (n_layer) */
	int threads;
	qf_pool *pool;                              /* the model's own workers */
	uint64_t weight_bytes;
	uint64_t mem_budget;                        /* bytes for the f32 cache or, streaming, for batches */
	int cached;                                 /* every weight is held decoded */
	const fwd_kern *kern;                       /* the tile kernel this CPU runs best */
	fwd_work *work;                             /* (threads) */
	qf_status *st;                              /* (threads) a worker's failure */
	qf_err *errs;                               /* (threads) */
	int64_t max_cols, max_scr;
	double *inv_freq;                           /* (rope_dim / 2) */
	float *rope_freqs;                          /* (rope_dim / 2) Llama 3 frequency divisors, or NULL */
	uint64_t streamed;                          /* source bytes decoded by forward passes */
	double rope_mscale;                         /* cos/sin magnitude (YaRN), 1 otherwise */
	fwd_observe_fn obs;                         /* fwd_model_observe, or NULL */
	void *obs_ud;
};

/* Reports rows × cols inputs of matrix mat (of n_mat) of the weight named name to the observer, if any. */
static inline qf_status fwd_see(fwd_model *m, const char *name, int64_t layer, int64_t mat, int64_t n_mat, int routed,
				const float *x, int64_t ldx, int64_t rows, int64_t cols, qf_err *err)
{
	if (!m->obs || !rows)
		return QF_OK;
	fwd_seen s = { .name = name, .layer = layer, .mat = mat, .n_mat = n_mat, .routed = routed, .x = x, .rows = rows,
		       .cols = cols, .ldx = ldx };
	return m->obs(m->obs_ud, &s, err);
}
/* The same for a 2-D weight the model has (nothing when it has none). */
static inline qf_status fwd_see_w(fwd_model *m, const fwd_w *w, int64_t layer, const float *x, int64_t ldx, int64_t rows,
				  qf_err *err)
{
	return w->it ? fwd_see(m, w->it->name, layer, 0, 1, 0, x, ldx, rows, w->cols, err) : QF_OK;
}

/* Runs fn over [0, n) on up to nthreads of the model's workers. */
void fwd_for(fwd_model *m, int nthreads, int64_t n, qf_range_fn fn, void *ctx);

/*
 * matmul.c: Y[t·ldy + j] (+)= Σ_c W[r0 + j][c] · X[t·ldx + c] for j < nr, t < T.
 * Each worker takes RG rows at a time, decoded (streamed) or read from the
 * cache, packs them and multiplies all T tokens by them.
 */
qf_status fwd_matmul(fwd_model *m, const fwd_w *w, int64_t r0, int64_t nr, const float *X, int64_t ldx, int64_t T,
		     float *Y, int64_t ldy, int add, qf_err *err);
/* K[t·ldk + h·(ldk/n_head) + d] = Σ_c ckv[t][c] · k_b[h][c][d]: the nope part of MLA's per-head keys. */
qf_status fwd_matmul_kb(fwd_model *m, const fwd_w *kb, const float *ckv, int64_t T, float *K, int64_t ldk, qf_err *err);
/* fwd_rmsnorm of T rows (o at t·ldo, x at t·ldx; o may be x) on the model's workers. */
void fwd_rmsnorm_rows(fwd_model *m, float *o, int64_t ldo, const float *x, int64_t ldx, const float *w, int64_t n, int64_t T);
void fwd_rmsnorm(float *o, const float *x, const float *w, int64_t n, double eps);

/* rope.c */
void fwd_rope_init(fwd_model *m);
/* cos and sin of pos·inv_freq[i] (YaRN's magnitude included) for positions 0…T−1, (T, rope_dim/2) each. */
void fwd_rope_table(const fwd_model *m, int64_t T, double *cs, double *sn);
/* Rotates adjacent pairs (x[2i], x[2i+1]) by the angles of one position. */
void fwd_rope(float *x, int64_t d, const double *cs, const double *sn);

/* attention.c: causal attention of one sequence. */
typedef struct fwd_attn {
	int64_t T;
	const float *Q, *K, *V;       /* per token: Q (n_head·qk), K (n_kv·qk), V (n_kv·vd) */
	int64_t qk, vd, n_kv_heads;   /* dims; K/V head of query head h is h / (n_head / n_kv) */
	const float *Kpe;             /* DeepSeek: shared (T, rope) key part, else NULL */
	int64_t nope;
	float *O;                     /* (T, n_head·vd) */
	double scale;
	const float *Vl;              /* observed MLA: the normed latent kv (T, vl) every head's weights also apply to, or NULL */
	int64_t vl;
	float *Ol;                    /* (T, n_head·vl): Σ_s p_h(t,s)·Vl[s], llama.cpp's absorbed attention output per head */
} fwd_attn;
qf_status fwd_attention(fwd_model *m, const fwd_attn *a, qf_err *err);

/* moe.c */
/*
 * Y (+)= wt ⊙ down(silu(gate·X) ⊙ up·X): rows [g0, g0+F) of gate/up, [d0, d0+hidden) of down; tmp (T·(2F + hidden)).
 * Observed as layer's, matrix g0/F of gate->rows/F (routed: counted per expert).
 */
qf_status fwd_ffn(fwd_model *m, const fwd_w *gate, const fwd_w *up, const fwd_w *down, int64_t g0, int64_t F, int64_t d0,
		  const float *X, int64_t T, float *Y, const float *wt, float *tmp, int64_t layer, int routed, qf_err *err);
/* Y += the routed and shared experts of layer l over X (T, hidden). */
qf_status fwd_moe(fwd_model *m, int64_t l, const float *X, int64_t T, float *Y, float *tmp, qf_err *err);
/* Routing of one token: the n_used experts chosen (sel) and their weights (w). */
void fwd_route(const fwd_hparams *h, const float *logit, const float *bias, int64_t *sel, float *w);

/* gqa.c */
/* Rotates rotate-half pairs (x[i], x[i + d/2]) by the angles of one position. */
void fwd_rope_neox(float *x, int64_t d, const double *cs, const double *sn);
/* Applies rope_freqs (Llama 3) and linear scaling to inv_freq. */
void fwd_gqa_rope_scale(fwd_model *m);
/* One head of one token: RMS norm (when norm, Qwen3's q/k norm), then RoPE (NEOX or adjacent pairs). */
void fwd_gqa_head(float *x, int64_t hd, int64_t rope_dim, const float *norm, double eps, int neox, const double *cs,
		  const double *sn);
/*
 * Q (T, n_head·hd), K and V (T, n_kv·hd) of a GQA layer: projections, biases, q/k norms, RoPE.
 * T tokens are sequences of Ts: token t is at position t % Ts.
 */
qf_status fwd_gqa_qkv(fwd_model *m, const fwd_layer *L, const float *Hn, int64_t T, int64_t Ts, float *Q, float *K,
		      float *V, const double *cs, const double *sn, qf_err *err);

#endif
