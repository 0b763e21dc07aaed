#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/pool.h"
#include "verify/model.h"

#define RB 16 /* weight rows decoded per step of a worker */

/* One weight: rows × cols of an item (1-D: 1 × n). */
typedef struct vw {
	const cvt_item *it;      /* NULL when the model has no such tensor */
	int64_t rows, cols;
	float *f32;              /* decoded rows, when cached */
} vw;

typedef struct layer {
	float *attn_norm, *ffn_norm;               /* (hidden) */
	/* llama */
	vw wq, wk, wv;                             /* (n_head·hd, hidden), (n_kv·hd, hidden) ×2 */
	/* deepseek */
	vw q_a, q_b, q;                            /* (q_lora, hidden), (n_head·(nope+rope), q_lora) | (…, hidden) */
	float *q_a_norm, *kv_a_norm;               /* (q_lora), (kv_lora) */
	vw kv_a;                                   /* (kv_lora + rope, hidden) */
	vw k_b, v_b, kv_b;                         /* (n_head·kv_lora, nope), (n_head·v, kv_lora) | (n_head·(nope+v), kv_lora) */
	vw wo;                                     /* (hidden, n_head·v) */
	/* feed-forward */
	vw gate, up, down;                         /* dense: (ff, hidden) ×2, (hidden, ff) */
	vw router;                                 /* (n_exp, hidden) */
	float *exp_bias;                           /* (n_exp) */
	vw gate_exps, up_exps, down_exps;          /* (n_exp·moe_ff, hidden) ×2, (n_exp·hidden, moe_ff) */
	vw gate_sh, up_sh, down_sh;                /* (n_shared·moe_ff, hidden) ×2, (hidden, …) */
	int moe;
} layer;

struct vfy_model {
	cvt_plan *plan;
	vfy_hparams hp;
	vw tok_embd, output;                        /* (vocab, hidden) */
	float *output_norm;                         /* (hidden) */
	layer *layers;
	int threads;
	qf_pool *pool;                              /* the model's own workers */
	int cached;
	uint64_t weight_bytes;
	float **wbuf, **wscr;                       /* per worker: RB decoded rows, op scratch */
	int64_t max_cols, max_scr;
	double *inv_freq;                           /* (rope_dim / 2) */
	uint64_t streamed;                          /* source bytes decoded by forward passes */
	double rope_mscale;                         /* cos/sin magnitude (YaRN), 1 otherwise */
	float *vec_store;                           /* the norm vectors */
};

const vfy_hparams *vfy_model_hparams(const vfy_model *m) { return &m->hp; }
cvt_plan *vfy_model_plan(vfy_model *m) { return m->plan; }
int vfy_model_cached(const vfy_model *m) { return m->cached; }
uint64_t vfy_model_weight_bytes(const vfy_model *m) { return m->weight_bytes; }
uint64_t vfy_model_streamed(const vfy_model *m) { return m->streamed; }

/* ---- opening ---------------------------------------------------------------------- */

static int64_t kv_int(const qf_gguf *g, const char *arch, const char *key, int64_t def)
{
	char k[128];
	snprintf(k, sizeof k, "%s.%s", arch, key);
	int64_t i = qf_gguf_find_kv(g, k);
	double v;
	return i >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)i), 0, &v) ? (int64_t)v : def;
}

static double kv_num(const qf_gguf *g, const char *arch, const char *key, double def)
{
	char k[128];
	snprintf(k, sizeof k, "%s.%s", arch, key);
	int64_t i = qf_gguf_find_kv(g, k);
	double v;
	return i >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)i), 0, &v) ? v : def;
}

/* Looks up a weight; shape checked as rows × cols (stacked tensors flatten their outer dims). */
static qf_status get_w(vfy_model *m, vw *w, int required, int64_t rows, int64_t cols, qf_err *err, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
static qf_status get_w(vfy_model *m, vw *w, int required, int64_t rows, int64_t cols, qf_err *err, const char *fmt, ...)
{
	char name[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	memset(w, 0, sizeof *w);
	const cvt_item *it = cvt_plan_find(m->plan, name);
	if (!it)
		return required ? qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is missing", cvt_plan_source_path(m->plan), name)
				: QF_OK;
	int64_t r = cvt_item_rows(it), c = cvt_item_row_len(it);
	if (r != rows || c != cols)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %lld × %lld, the metadata implies %lld × %lld",
			       cvt_plan_source_path(m->plan), name, (long long)r, (long long)c, (long long)rows, (long long)cols);
	w->it = it;
	w->rows = r;
	w->cols = c;
	if (c > m->max_cols)
		m->max_cols = c;
	if (cvt_scratch_floats(it) > m->max_scr)
		m->max_scr = cvt_scratch_floats(it);
	m->weight_bytes += cvt_item_src_bytes(it);
	return QF_OK;
}

/* A norm or bias vector, decoded now. */
static qf_status get_vec(vfy_model *m, float **out, int required, int64_t n, qf_err *err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static qf_status get_vec(vfy_model *m, float **out, int required, int64_t n, qf_err *err, const char *fmt, ...)
{
	char name[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	*out = NULL;
	const cvt_item *it = cvt_plan_find(m->plan, name);
	if (!it)
		return required ? qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is missing", cvt_plan_source_path(m->plan), name)
				: QF_OK;
	if (cvt_item_rows(it) * cvt_item_row_len(it) != n)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' has %lld elements, the metadata implies %lld",
			       cvt_plan_source_path(m->plan), name, (long long)(cvt_item_rows(it) * cvt_item_row_len(it)), (long long)n);
	float *v = malloc((size_t)n * sizeof *v);
	float *scr = malloc((size_t)(cvt_scratch_floats(it) + 1) * sizeof *scr);
	if (!v || !scr) {
		free(v);
		free(scr);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	qf_status s = cvt_item_rows_f32(it, 0, cvt_item_rows(it), v, scr, 1, err);
	free(scr);
	if (s) {
		free(v);
		return s;
	}
	*out = v;
	return QF_OK;
}

static qf_status read_hparams(vfy_model *m, qf_err *err)
{
	const qf_gguf *g;
	qf_status s = cvt_plan_meta(m->plan, &g, err);
	if (s)
		return s;
	const char *a = cvt_plan_arch(m->plan);
	vfy_hparams *h = &m->hp;
	h->deepseek = strcmp(a, "deepseek2") == 0;
	h->n_layer = kv_int(g, a, "block_count", 0);
	h->hidden = kv_int(g, a, "embedding_length", 0);
	h->n_head = kv_int(g, a, "attention.head_count", 0);
	h->n_head_kv = kv_int(g, a, "attention.head_count_kv", h->n_head);
	h->ff = kv_int(g, a, "feed_forward_length", 0);
	h->eps = kv_num(g, a, "attention.layer_norm_rms_epsilon", 1e-5);
	h->rope_base = kv_num(g, a, "rope.freq_base", 10000.0);
	h->vocab = kv_int(g, a, "vocab_size", 0);
	if (!h->vocab) {
		int64_t i = qf_gguf_find_kv(g, "tokenizer.ggml.tokens");
		h->vocab = i >= 0 ? (int64_t)qf_gguf_kv_at(g, (size_t)i)->n : 0;
	}
	if (h->n_layer <= 0 || h->hidden <= 0 || h->n_head <= 0 || h->vocab <= 0 || h->n_layer > 4096)
		return qf_fail(err, QF_EFORMAT, "%s: metadata lacks the model's sizes (block_count, embedding_length, head_count, vocab)",
			       cvt_plan_source_path(m->plan));
	if (!h->deepseek) {
		h->head_dim = h->hidden / h->n_head;
		h->rope_dim = kv_int(g, a, "rope.dimension_count", h->head_dim);
		if (h->head_dim * h->n_head != h->hidden || h->n_head_kv <= 0 || h->n_head % h->n_head_kv)
			return qf_fail(err, QF_EFORMAT, "%s: inconsistent head counts", cvt_plan_source_path(m->plan));
		return QF_OK;
	}
	h->q_lora = kv_int(g, a, "attention.q_lora_rank", 0);
	h->kv_lora = kv_int(g, a, "attention.kv_lora_rank", 0);
	h->rope_dim = kv_int(g, a, "rope.dimension_count", 0);
	int64_t klm = kv_int(g, a, "attention.key_length_mla", 0);
	if (klm) { /* split kv_b */
		h->nope = klm - h->rope_dim;
		h->vdim = kv_int(g, a, "attention.value_length_mla", 0);
	} else {   /* legacy: key_length = nope + rope */
		h->nope = kv_int(g, a, "attention.key_length", 0) - h->rope_dim;
		h->vdim = kv_int(g, a, "attention.value_length", 0);
	}
	h->n_exp = kv_int(g, a, "expert_count", 0);
	h->n_used = kv_int(g, a, "expert_used_count", 0);
	h->n_shared = kv_int(g, a, "expert_shared_count", 0);
	h->moe_ff = kv_int(g, a, "expert_feed_forward_length", 0);
	h->first_dense = kv_int(g, a, "leading_dense_block_count", 0);
	h->n_group = kv_int(g, a, "expert_group_count", 1);
	h->topk_group = kv_int(g, a, "expert_group_used_count", h->n_group);
	h->sigmoid = kv_int(g, a, "expert_gating_func", 1) == 2;
	h->norm_topk = (int)kv_int(g, a, "expert_weights_norm", 0);
	h->routed_scale = kv_num(g, a, "expert_weights_scale", 1.0);
	char rs[32] = "";
	char key[128];
	snprintf(key, sizeof key, "%s.rope.scaling.type", a);
	char *rt = NULL;
	if (qf_gguf_get_str(g, key, &rt, NULL) == QF_OK) {
		snprintf(rs, sizeof rs, "%s", rt);
		free(rt);
	}
	h->yarn = strcmp(rs, "yarn") == 0;
	h->yarn_factor = kv_num(g, a, "rope.scaling.factor", 1.0);
	h->yarn_orig_ctx = kv_int(g, a, "rope.scaling.original_context_length", 4096);
	h->yarn_mscale_all = kv_num(g, a, "rope.scaling.yarn_log_multiplier", 0.0) / 0.1;
	h->yarn_beta_fast = kv_num(g, a, "rope.scaling.yarn_beta_fast", 32.0);
	h->yarn_beta_slow = kv_num(g, a, "rope.scaling.yarn_beta_slow", 1.0);
	h->yarn_attn_factor = kv_num(g, a, "rope.scaling.attn_factor", 1.0);
	h->head_dim = h->nope + h->rope_dim;
	if (h->kv_lora <= 0 || h->rope_dim <= 0 || h->rope_dim % 2 || h->nope <= 0 || h->vdim <= 0 ||
	    (h->n_exp && (h->n_used <= 0 || h->n_used > h->n_exp || h->moe_ff <= 0)) ||
	    (h->n_group > 1 && (h->n_exp % h->n_group || h->topk_group < 1 || h->topk_group > h->n_group)))
		return qf_fail(err, QF_EFORMAT, "%s: inconsistent DeepSeek attention or expert settings in the metadata",
			       cvt_plan_source_path(m->plan));
	return QF_OK;
}

/* RoPE frequencies; YaRN as Hugging Face's DeepseekV3YarnRotaryEmbedding computes them. */
static void rope_init(vfy_model *m)
{
	const vfy_hparams *h = &m->hp;
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

/* Every weight matrix of a layer (absent ones included); returns the count. */
static int layer_weights(layer *L, vw **out)
{
	vw *all[] = { &L->wq, &L->wk, &L->wv, &L->q_a, &L->q_b, &L->q, &L->kv_a, &L->k_b, &L->v_b, &L->kv_b,
		      &L->wo, &L->gate, &L->up, &L->down, &L->router, &L->gate_exps, &L->up_exps,
		      &L->down_exps, &L->gate_sh, &L->up_sh, &L->down_sh };
	int n = (int)(sizeof all / sizeof all[0]);
	memcpy(out, all, sizeof all);
	return n;
}

typedef struct cache_job {
	vw *w;
	float *scr_base;
	int64_t scr_len;
	qf_status *st;
	qf_err *errs;
} cache_job;

static void cache_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	cache_job *j = ctx;
	for (int64_t r = b; r < e && !j->st[wk]; r += RB) {
		int64_t n = e - r < RB ? e - r : RB;
		j->st[wk] = cvt_item_rows_f32(j->w->it, r, n, j->w->f32 + r * j->w->cols, j->scr_base + wk * j->scr_len, 1,
					      &j->errs[wk]);
	}
}

static qf_status cache_all(vfy_model *m, qf_err *err)
{
	vw *ws[64];
	qf_status *st = calloc((size_t)m->threads, sizeof *st);
	qf_err *errs = calloc((size_t)m->threads, sizeof *errs);
	float *scr = malloc((size_t)(m->max_scr + 1) * (size_t)m->threads * sizeof *scr);
	qf_status s = QF_OK;
	if (!st || !errs || !scr) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	for (int64_t l = -1; l < m->hp.n_layer && !s; l++) {
		int nw = 0;
		if (l < 0) {
			ws[nw++] = &m->tok_embd;
			if (m->output.it != m->tok_embd.it)
				ws[nw++] = &m->output;
		} else {
			nw = layer_weights(&m->layers[l], ws);
		}
		for (int k = 0; k < nw && !s; k++) {
			vw *w = ws[k];
			if (!w->it || w->f32)
				continue;
			w->f32 = malloc((size_t)(w->rows * w->cols) * sizeof *w->f32);
			if (!w->f32) {
				s = qf_fail(err, QF_ENOMEM, "out of memory decoding weights");
				break;
			}
			memset(st, 0, (size_t)m->threads * sizeof *st);
			cache_job j = { .w = w, .scr_base = scr, .scr_len = m->max_scr + 1, .st = st, .errs = errs };
			/* keep KB's head-aligned blocks: ranges in units of RB rows */
			qf_pool_for(m->pool, m->threads, w->rows, cache_fn, &j);
			for (int t = 0; t < m->threads && !s; t++)
				if (st[t])
					s = qf_fail(err, st[t], "%s", errs[t].msg);
		}
	}
out:
	free(st);
	free(errs);
	free(scr);
	return s;
}

static void free_w(vw *w)
{
	free(w->f32);
	w->f32 = NULL;
}

void vfy_model_free(vfy_model *m)
{
	if (!m)
		return;
	for (int64_t l = 0; m->layers && l < m->hp.n_layer; l++) {
		layer *L = &m->layers[l];
		vw *all[32];
		int nw = layer_weights(L, all);
		for (int k = 0; k < nw; k++)
			free_w(all[k]);
		free(L->attn_norm);
		free(L->ffn_norm);
		free(L->q_a_norm);
		free(L->kv_a_norm);
		free(L->exp_bias);
	}
	free(m->layers);
	if (m->output.f32 != m->tok_embd.f32)
		free_w(&m->output);
	free_w(&m->tok_embd);
	free(m->output_norm);
	for (int i = 0; m->wbuf && i < m->threads; i++)
		free(m->wbuf[i]);
	for (int i = 0; m->wscr && i < m->threads; i++)
		free(m->wscr[i]);
	free(m->wbuf);
	free(m->wscr);
	free(m->inv_freq);
	cvt_plan_free(m->plan);
	qf_pool_free(m->pool);
	free(m);
}

qf_status vfy_model_open(const char *path, int threads, uint64_t mem_budget, vfy_model **out, qf_err *err)
{
	qf_status s;
	vfy_model *m = calloc(1, sizeof *m);
	if (!m)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	m->threads = threads < 1 ? 1 : threads;
	cvt_options o = { .outtype = QF_F32, .threads = m->threads, .allow_nonfinite = 1 };
	if ((s = qf_pool_new(m->threads, &m->pool, err)) || (s = cvt_plan_open(path, &o, &m->plan, err)) ||
	    (s = read_hparams(m, err)))
		goto fail;
	const vfy_hparams *h = &m->hp;
	m->layers = calloc((size_t)h->n_layer, sizeof *m->layers);
	m->inv_freq = calloc((size_t)(h->rope_dim / 2 + 1), sizeof *m->inv_freq);
	if (!m->layers || !m->inv_freq) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto fail;
	}
	int64_t H = h->hidden;
	if ((s = get_w(m, &m->tok_embd, 1, h->vocab, H, err, "token_embd.weight")) ||
	    (s = get_w(m, &m->output, 0, h->vocab, H, err, "output.weight")) ||
	    (s = get_vec(m, &m->output_norm, 1, H, err, "output_norm.weight")))
		goto fail;
	if (!m->output.it)
		m->output = m->tok_embd; /* tied head */
	for (int64_t l = 0; l < h->n_layer; l++) {
		layer *L = &m->layers[l];
		int li = (int)l;
		if ((s = get_vec(m, &L->attn_norm, 1, H, err, "blk.%d.attn_norm.weight", li)) ||
		    (s = get_vec(m, &L->ffn_norm, 1, H, err, "blk.%d.ffn_norm.weight", li)))
			goto fail;
		if (!h->deepseek) {
			int64_t hd = h->head_dim;
			if ((s = get_w(m, &L->wq, 1, h->n_head * hd, H, err, "blk.%d.attn_q.weight", li)) ||
			    (s = get_w(m, &L->wk, 1, h->n_head_kv * hd, H, err, "blk.%d.attn_k.weight", li)) ||
			    (s = get_w(m, &L->wv, 1, h->n_head_kv * hd, H, err, "blk.%d.attn_v.weight", li)) ||
			    (s = get_w(m, &L->wo, 1, H, h->n_head * hd, err, "blk.%d.attn_output.weight", li)) ||
			    (s = get_w(m, &L->gate, 1, h->ff, H, err, "blk.%d.ffn_gate.weight", li)) ||
			    (s = get_w(m, &L->up, 1, h->ff, H, err, "blk.%d.ffn_up.weight", li)) ||
			    (s = get_w(m, &L->down, 1, H, h->ff, err, "blk.%d.ffn_down.weight", li)))
				goto fail;
			continue;
		}
		int64_t qd = h->n_head * (h->nope + h->rope_dim);
		if (h->q_lora) {
			if ((s = get_w(m, &L->q_a, 1, h->q_lora, H, err, "blk.%d.attn_q_a.weight", li)) ||
			    (s = get_vec(m, &L->q_a_norm, 1, h->q_lora, err, "blk.%d.attn_q_a_norm.weight", li)) ||
			    (s = get_w(m, &L->q_b, 1, qd, h->q_lora, err, "blk.%d.attn_q_b.weight", li)))
				goto fail;
		} else if ((s = get_w(m, &L->q, 1, qd, H, err, "blk.%d.attn_q.weight", li))) {
			goto fail;
		}
		if ((s = get_w(m, &L->kv_a, 1, h->kv_lora + h->rope_dim, H, err, "blk.%d.attn_kv_a_mqa.weight", li)) ||
		    (s = get_vec(m, &L->kv_a_norm, 1, h->kv_lora, err, "blk.%d.attn_kv_a_norm.weight", li)) ||
		    (s = get_w(m, &L->kv_b, 0, h->n_head * (h->nope + h->vdim), h->kv_lora, err, "blk.%d.attn_kv_b.weight", li)))
			goto fail;
		if (!L->kv_b.it &&
		    ((s = get_w(m, &L->k_b, 1, h->n_head * h->kv_lora, h->nope, err, "blk.%d.attn_k_b.weight", li)) ||
		     (s = get_w(m, &L->v_b, 1, h->n_head * h->vdim, h->kv_lora, err, "blk.%d.attn_v_b.weight", li))))
			goto fail;
		if ((s = get_w(m, &L->wo, 1, H, h->n_head * h->vdim, err, "blk.%d.attn_output.weight", li)))
			goto fail;
		L->moe = h->n_exp > 0 && l >= h->first_dense;
		if (!L->moe) {
			if ((s = get_w(m, &L->gate, 1, h->ff, H, err, "blk.%d.ffn_gate.weight", li)) ||
			    (s = get_w(m, &L->up, 1, h->ff, H, err, "blk.%d.ffn_up.weight", li)) ||
			    (s = get_w(m, &L->down, 1, H, h->ff, err, "blk.%d.ffn_down.weight", li)))
				goto fail;
			continue;
		}
		int64_t E = h->n_exp, F = h->moe_ff, S = h->n_shared * F;
		if ((s = get_w(m, &L->router, 1, E, H, err, "blk.%d.ffn_gate_inp.weight", li)) ||
		    (s = get_vec(m, &L->exp_bias, 0, E, err, "blk.%d.exp_probs_b.bias", li)) ||
		    (s = get_w(m, &L->gate_exps, 1, E * F, H, err, "blk.%d.ffn_gate_exps.weight", li)) ||
		    (s = get_w(m, &L->up_exps, 1, E * F, H, err, "blk.%d.ffn_up_exps.weight", li)) ||
		    (s = get_w(m, &L->down_exps, 1, E * H, F, err, "blk.%d.ffn_down_exps.weight", li)))
			goto fail;
		if (S && ((s = get_w(m, &L->gate_sh, 1, S, H, err, "blk.%d.ffn_gate_shexp.weight", li)) ||
			  (s = get_w(m, &L->up_sh, 1, S, H, err, "blk.%d.ffn_up_shexp.weight", li)) ||
			  (s = get_w(m, &L->down_sh, 1, H, S, err, "blk.%d.ffn_down_shexp.weight", li))))
			goto fail;
	}
	rope_init(m);
	m->wbuf = calloc((size_t)m->threads, sizeof *m->wbuf);
	m->wscr = calloc((size_t)m->threads, sizeof *m->wscr);
	if (!m->wbuf || !m->wscr)
		goto oom;
	for (int i = 0; i < m->threads; i++) {
		m->wbuf[i] = malloc((size_t)(RB * m->max_cols) * sizeof(float));
		m->wscr[i] = malloc((size_t)(m->max_scr + 1) * sizeof(float));
		if (!m->wbuf[i] || !m->wscr[i])
			goto oom;
	}
	/* decode everything once when it fits */
	uint64_t f32_bytes = 0;
	for (size_t i = 0; i < cvt_plan_count(m->plan); i++) {
		const cvt_item *it = cvt_plan_item(m->plan, i);
		f32_bytes += (uint64_t)cvt_item_rows(it) * (uint64_t)cvt_item_row_len(it) * 4;
	}
	if (mem_budget && f32_bytes <= mem_budget) {
		if ((s = cache_all(m, err)))
			goto fail;
		if (m->output.it == m->tok_embd.it)
			m->output.f32 = m->tok_embd.f32;
		m->cached = 1;
	}
	*out = m;
	return QF_OK;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
fail:
	vfy_model_free(m);
	return s;
}

/* ---- kernels ------------------------------------------------------------------------ */

static float dot(const float *a, const float *b, int64_t n)
{
	float acc[8] = { 0 };
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			acc[k] += a[i + k] * b[i + k];
	float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int64_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	s0 = _mm256_add_ps(s0, s1);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	float s = _mm_cvtss_f32(h);
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}
#endif

static float (*dot_fn)(const float *, const float *, int64_t) = dot;

static void pick_kernels(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	unsigned a, b, c, d;
	if (qf_cpu_has_avx2() && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 12)))
		dot_fn = dot_avx2;
#endif
}

/*
 * Y[t·ldy + j] (+)= Σ_c W[r0 + j][c] · X[t·ldx + c] for j < nr, t < T.
 * Rows are decoded RB at a time by each worker (streamed) or read from the cache.
 */
typedef struct mm_job {
	vfy_model *m;
	const vw *w;
	int64_t r0, nr, T, ldx, ldy;
	const float *X;
	float *Y;
	int add;
	qf_status *st;
	qf_err *errs;
} mm_job;

static void mm_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	mm_job *j = ctx;
	const vw *w = j->w;
	for (int64_t blk = b; blk < e && !j->st[wk]; blk++) {
		int64_t j0 = blk * RB, n = j->nr - j0 < RB ? j->nr - j0 : RB;
		const float *rows;
		if (w->f32) {
			rows = w->f32 + (j->r0 + j0) * w->cols;
		} else {
			j->st[wk] = cvt_item_rows_f32(w->it, j->r0 + j0, n, j->m->wbuf[wk], j->m->wscr[wk], 1, &j->errs[wk]);
			if (j->st[wk])
				return;
			rows = j->m->wbuf[wk];
		}
		for (int64_t t = 0; t < j->T; t++) {
			const float *x = j->X + t * j->ldx;
			float *y = j->Y + t * j->ldy + j0;
			for (int64_t r = 0; r < n; r++) {
				float v = dot_fn(rows + r * w->cols, x, w->cols);
				y[r] = j->add ? y[r] + v : v;
			}
		}
	}
}

static qf_status matmul(vfy_model *m, const vw *w, int64_t r0, int64_t nr, const float *X, int64_t ldx, int64_t T,
			float *Y, int64_t ldy, int add, qf_err *err)
{
	qf_status st[64] = { 0 };
	qf_err errs[64];
	int th = m->threads > 64 ? 64 : m->threads;
	if (nr * w->cols * T < (1 << 21) && w->f32)
		th = 1; /* too small to be worth waking the workers */
	mm_job j = { .m = m, .w = w, .r0 = r0, .nr = nr, .T = T, .ldx = ldx, .ldy = ldy, .X = X, .Y = Y, .add = add,
		     .st = st, .errs = errs };
	memset(errs, 0, sizeof errs);
	qf_pool_for(m->pool, th, (nr + RB - 1) / RB, mm_fn, &j);
	if (!w->f32) /* the source bytes of the rows read */
		m->streamed += cvt_item_src_bytes(w->it) / (uint64_t)w->rows * (uint64_t)nr;
	for (int i = 0; i < th; i++)
		if (st[i])
			return qf_fail(err, st[i], "%s", errs[i].msg);
	return QF_OK;
}

static void rmsnorm(float *o, const float *x, const float *w, int64_t n, double eps)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float r = (float)(1.0 / sqrt(ss / (double)n + eps));
	for (int64_t i = 0; i < n; i++)
		o[i] = w[i] * (x[i] * r);
}

/* Rotates adjacent pairs (x[2i], x[2i+1]) by pos·inv_freq[i] (llama.cpp's layout; HF's after its permutation). */
static void rope(float *x, int64_t d, const double *cs, const double *sn)
{
	for (int64_t i = 0; i < d / 2; i++) {
		double c = cs[i], s = sn[i];
		double x0 = x[2 * i], x1 = x[2 * i + 1];
		x[2 * i] = (float)(x0 * c - x1 * s);
		x[2 * i + 1] = (float)(x1 * c + x0 * s);
	}
}

/* cos and sin of pos·inv_freq[i] (YaRN's magnitude included) for positions 0…T−1, once per pass. */
static void rope_table(const vfy_model *m, int64_t T, double *cs, double *sn)
{
	int64_t half = m->hp.rope_dim / 2;
	for (int64_t t = 0; t < T; t++)
		for (int64_t i = 0; i < half; i++) {
			double a = (double)t * m->inv_freq[i];
			cs[t * half + i] = cos(a) * m->rope_mscale;
			sn[t * half + i] = sin(a) * m->rope_mscale;
		}
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* ---- attention ---------------------------------------------------------------------- */

typedef struct attn_job {
	const vfy_model *m;
	int64_t T;
	const float *Q, *K, *V;       /* per token: Q (n_head·qk), K (n_kv·qk), V (n_kv·vd) */
	int64_t qk, vd, n_kv_heads;   /* dims; K/V head of query head h is h / (n_head / n_kv) */
	const float *Kpe;             /* DeepSeek: shared (T, rope) key part, else NULL */
	int64_t nope;
	float *O;                     /* (T, n_head·vd) */
	double scale;
	float **scores;               /* per worker (T) */
} attn_job;

static void attn_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	attn_job *j = ctx;
	const vfy_hparams *h = &j->m->hp;
	float *sc = j->scores[wk];
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
					v = (double)dot_fn(q, k, j->nope) + (double)dot_fn(q + j->nope, j->Kpe + s * (j->qk - j->nope), j->qk - j->nope);
				else
					v = dot_fn(q, k, j->qk);
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

static qf_status attention(vfy_model *m, attn_job *j, qf_err *err)
{
	j->m = m;
	j->scores = calloc((size_t)m->threads, sizeof *j->scores);
	qf_status s = QF_OK;
	for (int i = 0; j->scores && i < m->threads; i++)
		if (!(j->scores[i] = malloc((size_t)j->T * sizeof(float))))
			s = QF_ENOMEM;
	if (!j->scores || s) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
	} else {
		qf_pool_for(m->pool, m->threads, m->hp.n_head, attn_fn, j);
	}
	for (int i = 0; j->scores && i < m->threads; i++)
		free(j->scores[i]);
	free(j->scores);
	return s;
}

/* ---- the feed-forward blocks ---------------------------------------------------------- */

/* Y (+)= down(silu(gate·X) ⊙ up·X), rows [r0, r0+F) of gate/up, [d0, d0+H) of down. */
static qf_status ffn(vfy_model *m, const vw *gate, const vw *up, const vw *down, int64_t g0, int64_t F, int64_t d0,
		     const float *X, int64_t T, float *Y, const float *wt, float *tmp, qf_err *err)
{
	int64_t H = m->hp.hidden;
	float *G = tmp, *U = tmp + T * F, *D = tmp + 2 * T * F;
	qf_status s;
	if ((s = matmul(m, gate, g0, F, X, H, T, G, F, 0, err)) || (s = matmul(m, up, g0, F, X, H, T, U, F, 0, err)))
		return s;
	for (int64_t i = 0; i < T * F; i++)
		G[i] = silu(G[i]) * U[i];
	if ((s = matmul(m, down, d0, H, G, F, T, D, H, 0, err)))
		return s;
	for (int64_t t = 0; t < T; t++)
		for (int64_t i = 0; i < H; i++)
			Y[t * H + i] += (wt ? wt[t] : 1.0f) * D[t * H + i];
	return QF_OK;
}

/*
 * Routing of one token (Hugging Face DeepSeek semantics): scores by sigmoid
 * (V3) or softmax (V2); with groups, a group's score is the sum of its top-2
 * biased scores (sigmoid) or its best score (softmax); experts of dropped
 * groups count as 0; the top n_used by (biased) score are chosen; weights are
 * the unbiased scores, normalised when norm_topk, times the routed scale.
 */
static void route(const vfy_hparams *h, const float *logit, const float *bias, int64_t *sel, float *w)
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

static qf_status moe(vfy_model *m, const layer *L, const float *X, int64_t T, float *Y, float *tmp, qf_err *err)
{
	const vfy_hparams *h = &m->hp;
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
	if ((s = matmul(m, &L->router, 0, E, X, H, T, logit, E, 0, err)))
		goto out;
	for (int64_t t = 0; t < T; t++)
		route(h, logit + t * E, L->exp_bias, sel + t * K, wsel + t * K);
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
		if ((s = ffn(m, &L->gate_exps, &L->up_exps, &L->down_exps, e * F, F, e * H, Xe, n, Ye, we, tmp, err)))
			goto out;
		for (int64_t i = 0; i < n; i++)
			for (int64_t c = 0; c < H; c++)
				Y[tok[i] * H + c] += Ye[i * H + c];
	}
	if (h->n_shared)
		s = ffn(m, &L->gate_sh, &L->up_sh, &L->down_sh, 0, h->n_shared * F, 0, X, T, Y, NULL, tmp, err);
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

/* ---- the forward pass ----------------------------------------------------------------- */

static qf_status embed(vfy_model *m, const int32_t *tokens, int64_t T, float *X, qf_err *err)
{
	const vw *w = &m->tok_embd;
	for (int64_t t = 0; t < T; t++) {
		if (tokens[t] < 0 || tokens[t] >= m->hp.vocab)
			return qf_fail(err, QF_EFORMAT, "token id %d is outside the vocabulary (%lld)", tokens[t],
				       (long long)m->hp.vocab);
		if (w->f32) {
			memcpy(X + t * w->cols, w->f32 + (int64_t)tokens[t] * w->cols, (size_t)w->cols * sizeof *X);
		} else {
			qf_status s = cvt_item_rows_f32(w->it, tokens[t], 1, X + t * w->cols, m->wscr[0], 1, err);
			if (s)
				return s;
		}
	}
	return QF_OK;
}

qf_status vfy_forward(vfy_model *m, const int32_t *tokens, int64_t T, const int64_t *want, int64_t n_want,
		      float *logits, qf_err *err)
{
	const vfy_hparams *h = &m->hp;
	int64_t H = h->hidden;
	static int picked;
	if (!picked) {
		pick_kernels();
		picked = 1;
	}
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
	float *kb = h->deepseek ? malloc((size_t)(h->kv_lora * (h->nope + 1)) * sizeof *kb) : NULL;
	float *Hw = malloc((size_t)(n_want ? n_want : 1) * (size_t)H * sizeof *Hw);
	int64_t half = h->rope_dim / 2;
	double *cs = malloc((size_t)(T * half + 1) * sizeof *cs), *sn = malloc((size_t)(T * half + 1) * sizeof *sn);
	qf_status s = QF_OK;
	if (!X || !Hn || !Q || !K || !V || !O || !tmp || !lt || !kpe || !ckv || (h->deepseek && !kb) || !Hw || !cs || !sn) {
		s = qf_fail(err, QF_ENOMEM, "out of memory for %lld tokens", (long long)T);
		goto out;
	}
	if ((s = embed(m, tokens, T, X, err)))
		goto out;
	rope_table(m, T, cs, sn);
	for (int64_t l = 0; l < h->n_layer; l++) {
		const layer *L = &m->layers[l];
		for (int64_t t = 0; t < T; t++)
			rmsnorm(Hn + t * H, X + t * H, L->attn_norm, H, h->eps);
		attn_job aj = { .T = T, .Q = Q, .K = K, .V = V, .O = O };
		if (!h->deepseek) {
			int64_t hd = h->head_dim;
			if ((s = matmul(m, &L->wq, 0, qdim, Hn, H, T, Q, qdim, 0, err)) ||
			    (s = matmul(m, &L->wk, 0, h->n_head_kv * hd, Hn, H, T, K, h->n_head_kv * hd, 0, err)) ||
			    (s = matmul(m, &L->wv, 0, h->n_head_kv * hd, Hn, H, T, V, h->n_head_kv * hd, 0, err)))
				goto out;
			for (int64_t t = 0; t < T; t++) {
				for (int64_t hh = 0; hh < h->n_head; hh++)
					rope(Q + t * qdim + hh * hd, h->rope_dim, cs + t * half, sn + t * half);
				for (int64_t hh = 0; hh < h->n_head_kv; hh++)
					rope(K + t * h->n_head_kv * hd + hh * hd, h->rope_dim, cs + t * half, sn + t * half);
			}
			aj.qk = aj.vd = hd;
			aj.n_kv_heads = h->n_head_kv;
			aj.scale = 1.0 / sqrt((double)hd);
		} else {
			int64_t qk = h->nope + h->rope_dim, R = h->rope_dim, C = h->kv_lora;
			if (h->q_lora) {
				if ((s = matmul(m, &L->q_a, 0, h->q_lora, Hn, H, T, lt, h->q_lora, 0, err)))
					goto out;
				for (int64_t t = 0; t < T; t++)
					rmsnorm(lt + t * h->q_lora, lt + t * h->q_lora, L->q_a_norm, h->q_lora, h->eps);
				if ((s = matmul(m, &L->q_b, 0, qdim, lt, h->q_lora, T, Q, qdim, 0, err)))
					goto out;
			} else if ((s = matmul(m, &L->q, 0, qdim, Hn, H, T, Q, qdim, 0, err))) {
				goto out;
			}
			if ((s = matmul(m, &L->kv_a, 0, C + R, Hn, H, T, lt, C + R, 0, err)))
				goto out;
			for (int64_t t = 0; t < T; t++) {
				rmsnorm(ckv + t * C, lt + t * (C + R), L->kv_a_norm, C, h->eps);
				memcpy(kpe + t * R, lt + t * (C + R) + C, (size_t)R * sizeof *kpe);
				rope(kpe + t * R, R, cs + t * half, sn + t * half);
				for (int64_t hh = 0; hh < h->n_head; hh++)
					rope(Q + t * qdim + hh * qk + h->nope, R, cs + t * half, sn + t * half);
			}
			/* per-head keys (nope part) and values from the compressed kv */
			if (L->kv_b.it) {
				float *KV = tmp; /* (T, n_head·(nope+v)) */
				int64_t w = h->n_head * (h->nope + h->vdim);
				if ((s = matmul(m, &L->kv_b, 0, w, ckv, C, T, KV, w, 0, err)))
					goto out;
				for (int64_t t = 0; t < T; t++)
					for (int64_t hh = 0; hh < h->n_head; hh++) {
						memcpy(K + t * qdim + hh * qk, KV + t * w + hh * (h->nope + h->vdim), (size_t)h->nope * sizeof *K);
						memcpy(V + t * vdim + hh * h->vdim, KV + t * w + hh * (h->nope + h->vdim) + h->nope,
						       (size_t)h->vdim * sizeof *V);
					}
			} else {
				for (int64_t hh = 0; hh < h->n_head; hh++) {
					/* k_b[h] is (kv_lora, nope): k_nope[t][d] = Σ_c k_b[h][c][d]·ckv[t][c] */
					const float *rows;
					if (L->k_b.f32) {
						rows = L->k_b.f32 + hh * C * h->nope;
					} else {
						if ((s = cvt_item_rows_f32(L->k_b.it, hh * C, C, kb, m->wscr[0], 1, err)))
							goto out;
						rows = kb;
					}
					for (int64_t t = 0; t < T; t++) {
						float *k = K + t * qdim + hh * qk;
						memset(k, 0, (size_t)h->nope * sizeof *k);
						for (int64_t c = 0; c < C; c++) {
							float a = ckv[t * C + c];
							for (int64_t d = 0; d < h->nope; d++)
								k[d] += rows[c * h->nope + d] * a;
						}
					}
				}
				if ((s = matmul(m, &L->v_b, 0, vdim, ckv, C, T, V, vdim, 0, err)))
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
		if ((s = attention(m, &aj, err)) || (s = matmul(m, &L->wo, 0, H, O, odim, T, X, H, 1, err)))
			goto out;
		for (int64_t t = 0; t < T; t++)
			rmsnorm(Hn + t * H, X + t * H, L->ffn_norm, H, h->eps);
		if (L->moe)
			s = moe(m, L, Hn, T, X, tmp, err);
		else
			s = ffn(m, &L->gate, &L->up, &L->down, 0, h->ff, 0, Hn, T, X, NULL, tmp, err);
		if (s)
			goto out;
	}
	for (int64_t i = 0; i < n_want; i++) {
		if (want[i] < 0 || want[i] >= T) {
			s = qf_fail(err, QF_EUSAGE, "logits wanted at position %lld of %lld", (long long)want[i], (long long)T);
			goto out;
		}
		rmsnorm(Hw + i * H, X + want[i] * H, m->output_norm, H, h->eps);
	}
	s = matmul(m, &m->output, 0, h->vocab, Hw, H, n_want, logits, h->vocab, 0, err);
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
	free(kb);
	free(Hw);
	free(cs);
	free(sn);
	return s;
}
