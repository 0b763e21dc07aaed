/*
 * weights.c — opening a model: hyperparameters from the plan's metadata,
 * every weight looked up by its GGUF name with its shape checked, norm
 * vectors decoded, and all weights decoded to f32 once when they fit.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward/internal.h"

const fwd_hparams *fwd_model_hparams(const fwd_model *m) { return &m->hp; }
cvt_plan *fwd_model_plan(fwd_model *m) { return m->plan; }
uint64_t fwd_model_weight_bytes(const fwd_model *m) { return m->weight_bytes; }
uint64_t fwd_model_streamed(const fwd_model *m) { return m->streamed; }

int64_t fwd_model_batch_seqs(const fwd_model *m, int64_t T)
{
	uint64_t per = fwd_token_bytes(m) * (uint64_t)(T > 0 ? T : 1);
	return m->cached || m->mem_budget < 2 * per ? 1 : (int64_t)(m->mem_budget / per);
}

void fwd_for(fwd_model *m, int nthreads, int64_t n, qf_range_fn fn, void *ctx)
{
	qf_pool_for(m->pool, nthreads, n, fn, ctx);
}

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
static qf_status get_w(fwd_model *m, fwd_w *w, int required, int64_t rows, int64_t cols, qf_err *err, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
static qf_status get_w(fwd_model *m, fwd_w *w, int required, int64_t rows, int64_t cols, qf_err *err, const char *fmt, ...)
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
	w->seg = r;
	if (c > m->max_cols)
		m->max_cols = c;
	if (cvt_scratch_floats(it) > m->max_scr)
		m->max_scr = cvt_scratch_floats(it);
	m->weight_bytes += cvt_item_src_bytes(it);
	return QF_OK;
}

/* A norm or bias vector, decoded now. */
static qf_status get_vec(fwd_model *m, float **out, int required, int64_t n, qf_err *err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static qf_status get_vec(fwd_model *m, float **out, int required, int64_t n, qf_err *err, const char *fmt, ...)
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

/*
 * The GQA family's keys beyond Llama 2: key_length (head_dim ≠ hidden/heads),
 * NEOX RoPE for Qwen, linear and dynamic RoPE scaling, Qwen3-MoE's experts
 * (softmax top-k, always renormalised by llama.cpp's qwen3moe graph).
 */
static void gqa_hparams(fwd_model *m, const qf_gguf *g, const char *a)
{
	fwd_hparams *h = &m->hp;
	h->head_dim = kv_int(g, a, "attention.key_length", h->hidden / h->n_head);
	h->rope_neox = !strncmp(a, "qwen", 4);
	char key[128], *rt = NULL;
	snprintf(key, sizeof key, "%s.rope.scaling.type", a);
	if (qf_gguf_get_str(g, key, &rt, NULL) == QF_OK && !strcmp(rt, "linear"))
		h->rope_linear = kv_num(g, a, "rope.scaling.factor", 1.0);
	free(rt);
	if (qf_gguf_find_kv(g, "qforge.rope_dynamic_factor") >= 0)
		h->max_ctx = kv_int(g, a, "context_length", 0);
	if (!strcmp(a, "qwen3moe")) {
		h->n_exp = kv_int(g, a, "expert_count", 0);
		h->n_used = kv_int(g, a, "expert_used_count", 0);
		h->moe_ff = kv_int(g, a, "expert_feed_forward_length", 0);
		h->norm_topk = 1;
		h->routed_scale = 1.0;
		h->n_group = h->topk_group = 1;
	}
}

static qf_status read_hparams(fwd_model *m, qf_err *err)
{
	const qf_gguf *g;
	qf_status s = cvt_plan_meta(m->plan, &g, err);
	if (s)
		return s;
	const char *a = cvt_plan_arch(m->plan);
	fwd_hparams *h = &m->hp;
	h->deepseek = strcmp(a, "deepseek2") == 0 || strcmp(a, "deepseek32") == 0;
	/* MTP layers kept in the file are not part of the main pass */
	h->n_layer = kv_int(g, a, "block_count", 0) - kv_int(g, a, "nextn_predict_layers", 0);
	h->hidden = kv_int(g, a, "embedding_length", 0);
	h->n_head = kv_int(g, a, "attention.head_count", 0);
	h->n_head_kv = kv_int(g, a, "attention.head_count_kv", h->n_head);
	h->ff = kv_int(g, a, "feed_forward_length", 0);
	h->eps = kv_num(g, a, "attention.layer_norm_rms_epsilon", 1e-5);
	h->rope_base = kv_num(g, a, "rope.freq_base", 10000.0);
	h->vocab = kv_int(g, a, "vocab_size", 0);
	h->n_ctx_train = kv_int(g, a, "context_length", 0);
	if (!h->vocab) {
		int64_t i = qf_gguf_find_kv(g, "tokenizer.ggml.tokens");
		h->vocab = i >= 0 ? (int64_t)qf_gguf_kv_at(g, (size_t)i)->n : 0;
	}
	if (h->n_layer <= 0 || h->hidden <= 0 || h->n_head <= 0 || h->vocab <= 0 || h->n_layer > 4096)
		return qf_fail(err, QF_EFORMAT, "%s: metadata lacks the model's sizes (block_count, embedding_length, head_count, vocab)",
			       cvt_plan_source_path(m->plan));
	if (!h->deepseek) {
		gqa_hparams(m, g, a);
		h->rope_dim = kv_int(g, a, "rope.dimension_count", h->head_dim);
		if (h->head_dim <= 0 || h->rope_dim > h->head_dim || h->rope_dim % 2 || h->n_head_kv <= 0 ||
		    h->n_head % h->n_head_kv || (h->n_exp && (h->n_used <= 0 || h->n_used > h->n_exp || h->moe_ff <= 0)))
			return qf_fail(err, QF_EFORMAT, "%s: inconsistent head or expert counts", cvt_plan_source_path(m->plan));
		return QF_OK;
	}
	if (!strcmp(a, "deepseek32"))
		h->max_ctx = kv_int(g, a, "attention.indexer.top_k", 0);
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

/* Every weight matrix of a layer (absent ones included); returns the count. */
static int layer_weights(fwd_layer *L, fwd_w **out)
{
	fwd_w *all[] = { &L->wq, &L->wk, &L->wv, &L->q_a, &L->q_b, &L->q, &L->kv_a, &L->k_b, &L->v_b, &L->kv_b,
		      &L->wo, &L->gate, &L->up, &L->down, &L->router, &L->gate_exps, &L->up_exps,
		      &L->down_exps, &L->gate_sh, &L->up_sh, &L->down_sh };
	int n = (int)(sizeof all / sizeof all[0]);
	memcpy(out, all, sizeof all);
	return n;
}

typedef struct pack_job {
	const fwd_kern *kn;
	fwd_w *w;
	int64_t per;                /* groups per segment */
} pack_job;

static void pack_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	pack_job *j = ctx;
	fwd_w *w = j->w;
	for (int64_t g = b; g < e; g++) {
		int64_t r = g / j->per * w->seg + g % j->per * FWD_RG, n = w->seg - g % j->per * FWD_RG;
		n = n < FWD_RG ? n : FWD_RG;
		fwd_pack_rows(j->kn, w->f32 + r * w->cols, w->cols, n, w->cols, (float *)fwd_w_packed(w, j->kn->nr, r));
	}
}

/* Packs a cached weight's rows for fwd_gemm once, and drops the rows. */
static qf_status pack_w(fwd_model *m, fwd_w *w, qf_err *err)
{
	if (!(w->pk = malloc((size_t)fwd_w_packed_floats(w, m->kern->nr) * sizeof *w->pk)))
		return qf_fail(err, QF_ENOMEM, "out of memory packing weights");
	pack_job j = { .kn = m->kern, .w = w, .per = (w->seg + FWD_RG - 1) / FWD_RG };
	fwd_for(m, m->threads, w->rows / w->seg * j.per, pack_fn, &j);
	free(w->f32);
	w->f32 = NULL;
	return QF_OK;
}

typedef struct cache_job {
	fwd_w *w;
	float *scr_base;
	int64_t scr_len;
	qf_status *st;
	qf_err *errs;
} cache_job;

static void cache_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	cache_job *j = ctx;
	for (int64_t r = b; r < e && !j->st[wk]; r += FWD_RB) {
		int64_t n = e - r < FWD_RB ? e - r : FWD_RB;
		j->st[wk] = cvt_item_rows_f32(j->w->it, r, n, j->w->f32 + r * j->w->cols, j->scr_base + wk * j->scr_len, 1,
					      &j->errs[wk]);
	}
}

/* Decodes every weight (or, head_only, just the output head) to f32. */
static qf_status cache_all(fwd_model *m, int head_only, qf_err *err)
{
	fwd_w *ws[64];
	qf_status *st = calloc((size_t)m->threads, sizeof *st);
	qf_err *errs = calloc((size_t)m->threads, sizeof *errs);
	float *scr = malloc((size_t)(m->max_scr + 1) * (size_t)m->threads * sizeof *scr);
	qf_status s = QF_OK;
	if (!st || !errs || !scr) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	for (int64_t l = -1; l < (head_only ? 0 : m->hp.n_layer) && !s; l++) {
		int nw = 0;
		if (l < 0) {
			if (!head_only)
				ws[nw++] = &m->tok_embd;
			ws[nw++] = &m->output; /* packed; a tied head decodes the embedding again */
		} else {
			nw = layer_weights(&m->layers[l], ws);
		}
		for (int k = 0; k < nw && !s; k++) {
			fwd_w *w = ws[k];
			if (!w->it || w->f32)
				continue;
			w->f32 = malloc((size_t)(w->rows * w->cols) * sizeof *w->f32);
			if (!w->f32) {
				s = qf_fail(err, QF_ENOMEM, "out of memory decoding weights");
				break;
			}
			memset(st, 0, (size_t)m->threads * sizeof *st);
			cache_job j = { .w = w, .scr_base = scr, .scr_len = m->max_scr + 1, .st = st, .errs = errs };
			/* keep KB's head-aligned blocks: ranges in units of FWD_RB rows */
			fwd_for(m, m->threads, w->rows, cache_fn, &j);
			for (int t = 0; t < m->threads && !s; t++)
				if (st[t])
					s = qf_fail(err, st[t], "%s", errs[t].msg);
			if (!s && !w->by_row)
				s = pack_w(m, w, err);
		}
	}
out:
	free(st);
	free(errs);
	free(scr);
	return s;
}

static void free_w(fwd_w *w)
{
	free(w->f32);
	free(w->pk);
	w->f32 = w->pk = NULL;
}

void fwd_model_free(fwd_model *m)
{
	if (!m)
		return;
	for (int64_t l = 0; m->layers && l < m->hp.n_layer; l++) {
		fwd_layer *L = &m->layers[l];
		fwd_w *all[32];
		int nw = layer_weights(L, all);
		for (int k = 0; k < nw; k++)
			free_w(all[k]);
		free(L->attn_norm);
		free(L->ffn_norm);
		free(L->q_a_norm);
		free(L->kv_a_norm);
		free(L->exp_bias);
		free(L->bq);
		free(L->bk);
		free(L->bv);
		free(L->q_norm);
		free(L->k_norm);
	}
	free(m->layers);
	free(m->output.pk); /* a tied head's is its own */
	m->output.pk = NULL;
	if (m->output.f32 != m->tok_embd.f32)
		free_w(&m->output);
	free_w(&m->tok_embd);
	free(m->output_norm);
	for (int i = 0; m->work && i < m->threads; i++) {
		free(m->work[i].rows);
		free(m->work[i].bp);
		free(m->work[i].c);
		free(m->work[i].edge);
		free(m->work[i].scr);
	}
	free(m->work);
	free(m->st);
	free(m->errs);
	free(m->inv_freq);
	free(m->rope_freqs);
	cvt_plan_free(m->plan);
	qf_pool_free(m->pool);
	free(m);
}

qf_status fwd_model_open(const char *path, int threads, uint64_t mem_budget, fwd_model **out, qf_err *err)
{
	qf_status s;
	fwd_model *m = calloc(1, sizeof *m);
	if (!m)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	m->threads = threads < 1 ? 1 : threads;
	m->mem_budget = mem_budget;
	cvt_options o = { .outtype = QF_F32, .threads = m->threads, .allow_nonfinite = 1 };
	if ((s = qf_pool_new(m->threads, &m->pool, err)) || (s = cvt_plan_open(path, &o, &m->plan, err)) ||
	    (s = read_hparams(m, err)))
		goto fail;
	const fwd_hparams *h = &m->hp;
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
	m->tok_embd.by_row = 1;
	for (int64_t l = 0; l < h->n_layer; l++) {
		fwd_layer *L = &m->layers[l];
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
			    (s = get_vec(m, &L->bq, 0, h->n_head * hd, err, "blk.%d.attn_q.bias", li)) ||
			    (s = get_vec(m, &L->bk, 0, h->n_head_kv * hd, err, "blk.%d.attn_k.bias", li)) ||
			    (s = get_vec(m, &L->bv, 0, h->n_head_kv * hd, err, "blk.%d.attn_v.bias", li)) ||
			    (s = get_vec(m, &L->q_norm, 0, hd, err, "blk.%d.attn_q_norm.weight", li)) ||
			    (s = get_vec(m, &L->k_norm, 0, hd, err, "blk.%d.attn_k_norm.weight", li)))
				goto fail;
			if (!h->n_exp) {
				if ((s = get_w(m, &L->gate, 1, h->ff, H, err, "blk.%d.ffn_gate.weight", li)) ||
				    (s = get_w(m, &L->up, 1, h->ff, H, err, "blk.%d.ffn_up.weight", li)) ||
				    (s = get_w(m, &L->down, 1, H, h->ff, err, "blk.%d.ffn_down.weight", li)))
					goto fail;
				continue;
			}
			goto experts; /* Qwen3-MoE: every layer routed, no shared expert */
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
		L->k_b.by_row = 1;
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
	experts:
		L->moe = 1;
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
		L->gate_exps.seg = L->up_exps.seg = F;
		L->down_exps.seg = H;
	}
	if ((s = get_vec(m, &m->rope_freqs, 0, h->rope_dim / 2, err, "rope_freqs.weight")))
		goto fail;
	fwd_rope_init(m);
	fwd_gqa_rope_scale(m);
	m->kern = fwd_kern_pick();
	m->work = calloc((size_t)m->threads, sizeof *m->work);
	m->st = calloc((size_t)m->threads, sizeof *m->st);
	m->errs = calloc((size_t)m->threads, sizeof *m->errs);
	if (!m->work || !m->st || !m->errs)
		goto oom;
	/* the buffers also hold one head's k_b (kv_lora × nope) and its products */
	int64_t nrows = FWD_RG * m->max_cols > h->kv_lora * h->nope ? FWD_RG * m->max_cols : h->kv_lora * h->nope;
	int64_t npack = fwd_pack_floats(m->kern, FWD_RG, m->max_cols), nkb = fwd_pack_floats(m->kern, h->nope, h->kv_lora);
	int64_t ncols = fwd_roundup(h->nope, m->kern->nr) > FWD_RG ? fwd_roundup(h->nope, m->kern->nr) : FWD_RG;
	for (int i = 0; i < m->threads; i++) {
		fwd_work *w = &m->work[i];
		w->rows = malloc((size_t)nrows * sizeof(float));
		w->bp = malloc((size_t)(npack > nkb ? npack : nkb) * sizeof(float));
		w->c = malloc((size_t)(FWD_TB * ncols) * sizeof(float));
		w->edge = malloc((size_t)(m->kern->mr * FWD_KC) * sizeof(float));
		w->scr = malloc((size_t)(m->max_scr + 1) * sizeof(float));
		if (!w->rows || !w->bp || !w->c || !w->edge || !w->scr)
			goto oom;
	}
	/* decode everything once when it fits */
	uint64_t f32_bytes = 0;
	for (size_t i = 0; i < cvt_plan_count(m->plan); i++) {
		const cvt_item *it = cvt_plan_item(m->plan, i);
		f32_bytes += (uint64_t)cvt_item_rows(it) * (uint64_t)cvt_item_row_len(it) * 4;
	}
	uint64_t head_bytes = (uint64_t)m->output.rows * (uint64_t)m->output.cols * 4;
	if (mem_budget && f32_bytes > mem_budget && head_bytes <= mem_budget / 4) {
		/* streaming: the head is read for every chunk, so keep it decoded; batches get the rest */
		if ((s = cache_all(m, 1, err)))
			goto fail;
		m->mem_budget -= head_bytes;
	}
	if (mem_budget && f32_bytes <= mem_budget) {
		if ((s = cache_all(m, 0, err)))
			goto fail;
		m->cached = 1;
	}
	*out = m;
	return QF_OK;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
fail:
	fwd_model_free(m);
	return s;
}

