/*
 * build.c — planning a checkpoint: every source tensor is visited once in
 * name-natural order and becomes part of an output item (copy, permute,
 * stack, kv_b split); shapes are checked against config.json.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/ct_source.h"
#include "convert/plan.h"

cvt_item *cvt_plan_new_item(cvt_plan *p, qf_err *err)
{
	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 256;
		cvt_item *g = realloc(p->items, nc * sizeof *g);
		if (!g) {
			qf_fail(err, QF_ENOMEM, "out of memory");
			return NULL;
		}
		p->items = g;
		p->cap = nc;
	}
	cvt_item *it = &p->items[p->n++];
	memset(it, 0, sizeof *it);
	it->layer = -1;
	return it;
}

static qf_dtype out_type_for(const cvt_plan *p, const qf_tensor *src, cvt_class cls, int ndim)
{
	if (ndim == 1 || cls == CVT_CLASS_NORM || cls == CVT_CLASS_ROUTER)
		return QF_F32;
	if (p->opt.outtype != QF_DTYPE_NONE)
		return p->opt.outtype;
	switch (src->dtype) {
	case QF_F16: return QF_F16;
	case QF_F32: case QF_F64: return QF_F32;
	default: return QF_BF16; /* BF16, FP8 and anything else */
	}
}

static qf_status make_src(cvt_plan *p, const qf_tensor *t, cvt_src *s, qf_err *err)
{
	const qf_tensor *sc = NULL;
	const qf_dtype_traits *tr = qf_dtype_info(t->dtype);
	memset(s, 0, sizeof *s);
	s->t = t;
	s->bo = p->hp.fp8_bo;
	s->bi = p->hp.fp8_bi;
	if (p->ck->ms && qf_ms_resolve(p->ck->ms, p->ck->st, t, &s->ms) == QF_MS_QUANT) {
		p->src_is_ms = 1; /* int8 (fp8) × weight_scale − weight_offset, checked as the checkpoint opened */
		return QF_OK;
	}
	if (!tr || !tr->is_float || !tr->to_f32 || tr->block_elems != 1)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': %s cannot be converted to float",
			       qf_st_file_path(p->ck->st, (size_t)t->file), t->name, qf_dtype_name(t->dtype));
	qf_status st = qf_st_fp8_scale(p->ck->st, t, s->bo, s->bi, &sc, err);
	if (st)
		return st;
	s->scale = sc;
	if (sc) {
		p->src_is_fp8 = 1;
		p->src_scale_e8m0 |= sc->dtype == QF_F8_E8M0;
		p->src_scale_f32 |= sc->dtype == QF_F32;
	}
	return QF_OK;
}

static qf_status check_shape(const cvt_plan *p, const qf_tensor *t, int ndim, int64_t d0, int64_t d1,
			     qf_err *err)
{
	int okk = t->ndim == ndim && t->shape[0] == d0 && (ndim < 2 || t->shape[1] == d1);
	if (okk)
		return QF_OK;
	char got[96];
	if (t->ndim == 1)
		snprintf(got, sizeof got, "[%lld]", (long long)t->shape[0]);
	else if (t->ndim == 2)
		snprintf(got, sizeof got, "[%lld, %lld]", (long long)t->shape[0], (long long)t->shape[1]);
	else
		snprintf(got, sizeof got, "%d dims", t->ndim);
	if (ndim == 1)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %s but config.json implies [%lld]",
			       qf_st_file_path(p->ck->st, (size_t)t->file), t->name, got, (long long)d0);
	return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %s but config.json implies [%lld, %lld]",
		       qf_st_file_path(p->ck->st, (size_t)t->file), t->name, got, (long long)d0, (long long)d1);
}

/* Adds a plain (COPY/PERMUTE) item. */
static qf_status add_simple(cvt_plan *p, const qf_tensor *t, const char *name, cvt_class cls, int layer,
			    cvt_op op, qf_err *err)
{
	cvt_item *it = cvt_plan_new_item(p, err);
	if (!it)
		return QF_ENOMEM;
	snprintf(it->name, sizeof it->name, "%s", name);
	it->ndim = t->ndim;
	if (t->ndim < 1 || t->ndim > 4)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' has %d dims",
			       qf_st_file_path(p->ck->st, (size_t)t->file), t->name, t->ndim);
	for (int i = 0; i < t->ndim; i++)
		it->shape[i] = t->shape[i];
	it->cls = cls;
	it->op = op;
	it->layer = layer;
	it->srcs = calloc(1, sizeof *it->srcs);
	if (!it->srcs)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	it->nsrc = 1;
	qf_status s = make_src(p, t, &it->srcs[0], err);
	if (s)
		return s;
	it->type = cvt_item_keeps_f32(it) ? QF_F32 : out_type_for(p, t, cls, t->ndim); /* indexer.proj, like a router */
	return QF_OK;
}

/*
 * Adds a per-layer tensor found in an architecture's map table: checks its
 * shape against config.json and names it blk.N.<gguf suffix>.
 */
static qf_status add_mapped(cvt_plan *p, const qf_tensor *t, const cvt_map_row *m, int64_t layer, cvt_op op,
			    qf_err *err)
{
	int nd;
	int64_t d0 = 0, d1 = 0;
	char gname[QF_GGUF_MAX_NAME + 32];
	qf_status s;
	if (cvt_expected_shape(&p->hp, p->arch, m->gguf, &nd, &d0, &d1) &&
	    (s = check_shape(p, t, nd, d0, d1, err)))
		return s;
	snprintf(gname, sizeof gname, "blk.%lld.%s", (long long)layer, m->gguf);
	return add_simple(p, t, gname, m->cls, (int)layer, op, err);
}

static qf_status build_kv_b(cvt_plan *p, const qf_tensor *t, int64_t layer, qf_err *err)
{
	const hparams *h = &p->hp;
	qf_status s = check_shape(p, t, 2, h->n_head * (h->nope + h->vdim), h->kv_lora, err);
	if (s)
		return s;
	char name[64];
	if (p->opt.legacy_kv_b) {
		snprintf(name, sizeof name, "blk.%lld.attn_kv_b.weight", (long long)layer);
		return add_simple(p, t, name, CVT_CLASS_ATTN, (int)layer, CVT_OP_COPY, err);
	}
	for (int k = 0; k < 2; k++) {
		cvt_item *it = cvt_plan_new_item(p, err);
		if (!it)
			return QF_ENOMEM;
		snprintf(it->name, sizeof it->name, "blk.%lld.%s.weight", (long long)layer, k ? "attn_v_b" : "attn_k_b");
		it->ndim = 3;
		it->shape[0] = h->n_head;
		it->shape[1] = k ? h->vdim : h->kv_lora;
		it->shape[2] = k ? h->kv_lora : h->nope;
		it->op = k ? CVT_OP_VB : CVT_OP_KB;
		it->cls = CVT_CLASS_ATTN;
		it->layer = (int)layer;
		it->nope = h->nope;
		it->vdim = h->vdim;
		it->kv_lora = h->kv_lora;
		it->n_head = h->n_head;
		it->srcs = calloc(1, sizeof *it->srcs);
		if (!it->srcs)
			return qf_fail(err, QF_ENOMEM, "out of memory");
		it->nsrc = 1;
		if ((s = make_src(p, t, &it->srcs[0], err)))
			return s;
		it->type = out_type_for(p, t, CVT_CLASS_ATTN, 2);
	}
	return QF_OK;
}

/* x rounded to float32 and kept there: no contraction into a fused multiply-add */
static float f32(float x)
{
	volatile float v = x;
	return v;
}

/*
 * llama.cpp's rope_freqs.weight for rope_scaling type llama3: per rotary
 * pair i (of head_dim / 2), the divisor of its frequency, from
 * transformers' _compute_llama3_parameters: with inv_freq = theta^(−2i/d)
 * and wavelen = 2π / inv_freq, 1 below high_freq_wavelen = orig_ctx /
 * high_freq_factor, factor above low_freq_wavelen = orig_ctx /
 * low_freq_factor, and 1 / ((1 − s) / factor + s) between, with
 * s = (orig_ctx / wavelen − low_freq_factor) / (high_freq_factor −
 * low_freq_factor).
 *
 * Bit for bit as llama.cpp's converter computes it (conversion/llama.py,
 * LlamaModel.generate_extra_tensors): every step is a float32 torch op.
 * The Python scalars (theta, 2π, the wavelength bounds, factor, the
 * factors' difference) are doubles cast to float32 where they meet a
 * tensor, and torch's `scalar / t` is t.reciprocal() * scalar
 * (Tensor.__rtruediv__), so 2π / f and orig_ctx / wavelen are two
 * roundings, not one.  The power is the correctly rounded float32 one,
 * which is what glibc's powf gives and, for theta 500000 with head_dim 64
 * and 128 (Llama 3.x), also the SLEEF powf torch vectorizes with.
 */
void cvt_llama3_rope_factors(const hparams *h, float *out)
{
	int64_t half = h->head_dim / 2;
	float base = (float)h->rope_theta, dim = (float)h->head_dim, ctx = (float)h->rope_orig_ctx;
	float factor = (float)h->rope_factor, lo = (float)h->rope_low_freq;
	float lo_wl = (float)((double)h->rope_orig_ctx / h->rope_low_freq);
	float hi_wl = (float)((double)h->rope_orig_ctx / h->rope_high_freq);
	float span = (float)(h->rope_high_freq - h->rope_low_freq), two_pi = (float)(2 * M_PI);
	for (int64_t i = 0; i < half; i++) {
		float e = f32((float)(2 * i) / dim);
		float freq = f32(1.0f / (float)pow((double)base, (double)e));
		float wl = f32(f32(1.0f / freq) * two_pi), f;
		if (wl < hi_wl)
			f = 1.0f;
		else if (wl > lo_wl)
			f = factor;
		else {
			float sm = f32(f32(f32(f32(1.0f / wl) * ctx) - lo) / span);
			f = f32(1.0f / f32(f32(f32(1.0f - sm) / factor) + sm));
		}
		out[i] = f;
	}
}

/* Adds rope_freqs.weight [head_dim / 2] (F32), computed, as the plan's first item. */
static qf_status add_rope_freqs(cvt_plan *p, qf_err *err)
{
	int64_t half = p->hp.head_dim / 2;
	if (!(p->gen = malloc((size_t)half * sizeof *p->gen)))
		return qf_fail(err, QF_ENOMEM, "out of memory");
	cvt_llama3_rope_factors(&p->hp, p->gen);
	qf_tensor *t = &p->gen_t;
	t->name = "rope_freqs (from config.json rope_scaling llama3)";
	t->dtype = QF_F32;
	t->ndim = 1;
	t->shape[0] = half;
	t->nelems = (uint64_t)half;
	t->nbytes = (uint64_t)half * 4;
	t->data = (const uint8_t *)p->gen;
	t->file = -1;
	cvt_item *it = cvt_plan_new_item(p, err);
	if (!it || !(it->srcs = calloc(1, sizeof *it->srcs)))
		return qf_fail(err, QF_ENOMEM, "out of memory");
	snprintf(it->name, sizeof it->name, "rope_freqs.weight");
	it->ndim = 1;
	it->shape[0] = half;
	it->cls = CVT_CLASS_NORM;
	it->op = CVT_OP_COPY;
	it->type = QF_F32;
	it->nsrc = 1;
	it->srcs[0].t = t;
	return QF_OK;
}

/*
 * quantization_config.scale_fmt "ue8m0" (DeepSeek-V3.1): every block scale
 * must be a power of two (then the f32 products are exact, as the source
 * means them); anything else is a mislabelled checkpoint.
 */
static qf_status check_ue8m0(const cvt_plan *p, qf_err *err)
{
	for (size_t i = 0; i < p->n; i++)
		for (int k = 0; k < p->items[i].nsrc; k++) {
			const qf_tensor *sc = p->items[i].srcs[k].scale;
			for (uint64_t j = 0; sc && j < sc->nelems; j++) {
				float f = qf_st_scale_at(sc, j);
				int e;
				if (!(f > 0) || !isfinite(f) || frexpf(f, &e) != 0.5f)
					return qf_fail(err, QF_EFORMAT,
						       "%s: config.json says scale_fmt ue8m0 but '%s' element %llu is %g, not a power of two",
						       p->ck->path, sc->name, (unsigned long long)j, (double)f);
			}
		}
	return QF_OK;
}

/*
 * Plans one layer tensor (model.layers.<layer>.<rest>).  *unmapped = 1 when
 * no rule of the architecture maps it (the caller lists those).
 */
static qf_status plan_layer_tensor(cvt_plan *p, const qf_tensor *t, int64_t layer, const char *rest,
				   int64_t *stack_idx, int *unmapped, qf_err *err)
{
	const hparams *h = &p->hp;
	const qf_st *st = p->ck->st;
	qf_status s;
	*unmapped = 0;
	if (p->arch == ARCH_LLAMA && !(p->ad->flags & ARCHF_MOE && !strncmp(rest, "mlp.experts.", 12))) {
		const cvt_map_row *m = cvt_map_find(p->ad, rest);
		if (!m)
			return (*unmapped = 1, QF_OK);
		int permute = (p->ad->flags & ARCHF_PERMUTE_QK) &&
			      (!strcmp(m->gguf, "attn_q.weight") || !strcmp(m->gguf, "attn_k.weight"));
		if ((s = add_mapped(p, t, m, layer, permute ? CVT_OP_PERMUTE : CVT_OP_COPY, err)))
			return s;
		if (permute) {
			cvt_item *it = &p->items[p->n - 1];
			it->n_head = m->gguf[5] == 'q' ? h->n_head : h->n_head_kv;
			it->head_dim = h->head_dim;
		}
		return QF_OK;
	}
	if (!strcmp(rest, "self_attn.kv_b_proj.weight") && p->arch == ARCH_DEEPSEEK)
		return build_kv_b(p, t, layer, err);
	/* routed experts (DeepSeek, Qwen3-MoE), stacked per layer */
	int64_t e;
	int kind;
	if (cvt_parse_expert(rest, &e, &kind)) {
		if (e >= h->n_exp)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': expert %lld but n_routed_experts is %lld",
				       qf_st_file_path(st, (size_t)t->file), t->name, (long long)e, (long long)h->n_exp);
		int64_t r = kind == 2 ? h->hidden : h->moe_ff, c = kind == 2 ? h->moe_ff : h->hidden;
		if ((s = check_shape(p, t, 2, r, c, err)))
			return s;
		int64_t *slot = &stack_idx[layer * 3 + kind];
		if (!*slot) {
			cvt_item *it = cvt_plan_new_item(p, err);
			if (!it)
				return QF_ENOMEM;
			static const char *const kn[3] = { "gate", "up", "down" };
			snprintf(it->name, sizeof it->name, "blk.%lld.ffn_%s_exps.weight", (long long)layer, kn[kind]);
			it->ndim = 3;
			it->shape[0] = h->n_exp;
			it->shape[1] = r;
			it->shape[2] = c;
			it->op = CVT_OP_STACK;
			it->cls = CVT_CLASS_EXPERT;
			it->layer = (int)layer;
			it->srcs = calloc((size_t)h->n_exp, sizeof *it->srcs);
			if (!it->srcs)
				return qf_fail(err, QF_ENOMEM, "out of memory");
			it->nsrc = (int)h->n_exp;
			it->type = out_type_for(p, t, CVT_CLASS_EXPERT, 2);
			*slot = (int64_t)p->n;
		}
		cvt_item *it = &p->items[*slot - 1];
		if (it->srcs[e].t)
			return qf_fail(err, QF_EFORMAT, "%s: expert tensor '%s' appears twice",
				       qf_st_file_path(st, (size_t)t->file), t->name);
		return make_src(p, t, &it->srcs[e], err);
	}
	const cvt_map_row *m = cvt_map_find(p->ad, rest);
	if (!m || (layer < h->n_layer && strstr(m->gguf, "nextn.")))
		return (*unmapped = 1, QF_OK);
	return add_mapped(p, t, m, layer, CVT_OP_COPY, err);
}

/* A layer tensor in visiting order: by layer, then by index in the checkpoint. */
typedef struct layer_ref {
	int64_t layer;
	size_t i;
	const char *rest;
} layer_ref;

static int layer_ref_cmp(const void *a, const void *b)
{
	const layer_ref *x = a, *y = b;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Appends a tensor name to the list of unmapped ones (the first few kept). */
static void note_unmapped(char *list, size_t cap, size_t *n, const char *name)
{
	if (*n < 5)
		snprintf(list + strlen(list), cap - strlen(list), "%s'%s'", *n ? ", " : "", name);
	(*n)++;
}

qf_status cvt_plan_build(qf_ckpt *ck, const cvt_options *o, cvt_plan **out, qf_err *err)
{
	qf_status s = QF_OK;
	cvt_plan *p = calloc(1, sizeof *p);
	int64_t *stack_idx = NULL; /* [layer][kind] → item index + 1 */
	layer_ref *refs = NULL;
	if (!p)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	p->ck = ck;
	p->kind = CVT_SRC_CHECKPOINT;
	p->opt = *o;
	if (!(p->src_path = strdup(ck->path))) {
		free(p);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	if (!ck->config) {
		s = qf_fail(err, QF_EFORMAT, "%s: no config.json", ck->path);
		goto fail;
	}
	if ((s = cvt_ct_attach(ck, NULL, err))) /* compressed-tensors modules read as float weights */
		goto fail;
	const cJSON *archs = cJSON_GetObjectItemCaseSensitive(ck->config, "architectures");
	const char *an = cJSON_IsArray(archs) && cJSON_IsString(archs->child) ? archs->child->valuestring : NULL;
	p->ad = cvt_arch_by_hf(an);
	if (!p->ad) {
		s = qf_fail(err, QF_EFORMAT, "%s/config.json: unsupported architecture '%s' (supported: %s)", ck->path,
			    an ? an : "(none)", cvt_arch_hf_list());
		goto fail;
	}
	p->arch = p->ad->kind;
	if ((s = cvt_read_hparams(ck, p->ad, &p->hp, err)) || (s = cvt_read_quant_config(ck, &p->hp, err)))
		goto fail;
	if ((p->ad->flags & ARCHF_INDEXER) && o->legacy_kv_b) {
		s = qf_fail(err, QF_EUSAGE, "%s: %s needs MLA (attn_k_b/attn_v_b); a joined attn_kv_b is not loadable",
			    ck->path, p->ad->gguf);
		goto fail;
	}
	p->keep_mtp = o->keep_mtp > 0 || (o->keep_mtp == 0 && (p->ad->flags & ARCHF_MTP_DEFAULT));
	if (p->keep_mtp && p->arch != ARCH_DEEPSEEK)
		p->keep_mtp = 0; /* nothing to keep */
	const hparams *h = &p->hp;
	int64_t nl_total = h->n_layer + (p->keep_mtp ? h->n_mtp : 0);
	if (p->arch == ARCH_DEEPSEEK || (p->ad->flags & ARCHF_MOE)) {
		stack_idx = calloc((size_t)(nl_total + 1) * 3, sizeof *stack_idx);
		if (!stack_idx) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto fail;
		}
	}
	const qf_st *st = ck->st;
	size_t nt = qf_st_count(st);
	/*
	 * Visit tensors in name-natural order: globals, then layers in order
	 * (each layer's tensors in checkpoint order), then the output head.
	 * Layers past num_hidden_layers are the MTP module (skipped unless
	 * --keep-mtp) and beyond those nothing maps: an error.
	 */
	refs = malloc((nt ? nt : 1) * sizeof *refs);
	if (!refs)
		goto fail_oom;
	/*
	 * The embedding: model.embed_tokens.weight; else the tensor that a
	 * safetensors __metadata__ alias names for it (transformers saves one
	 * of two tied tensors and records the other's name); else, with tied
	 * embeddings, lm_head.weight.
	 */
	const char *embed_name = "model.embed_tokens.weight";
	if (!qf_st_find(st, embed_name)) {
		const char *alias = qf_st_metadata(st, embed_name);
		if (alias && qf_st_find(st, alias))
			embed_name = alias;
		else if (h->tied && qf_st_find(st, "lm_head.weight"))
			embed_name = "lm_head.weight";
	}
	if (h->rope == ROPE_LLAMA3 && (s = add_rope_freqs(p, err)))
		goto fail;
	size_t nref = 0, nunmapped = 0;
	char unmapped[640] = "";
	for (size_t i = 0; i < nt; i++) {
		const qf_tensor *t = qf_st_get(st, i);
		const char *rest = NULL;
		int64_t layer = -1;
		int is_layer = cvt_parse_layer(t->name, &layer, &rest);
		if (qf_str_ends_with(t->name, "_scale_inv"))
			continue; /* read with its weight */
		qf_ms_weight msw;
		if (ck->ms && qf_ms_resolve(ck->ms, st, t, &msw) == QF_MS_DROPPED)
			continue; /* msModelSlim scales and activation parameters: read with their weight, or not needed */
		if (qf_str_ends_with(t->name, "rotary_emb.inv_freq")) {
			p->skipped++;
			continue;
		}
		if (!is_layer) {
			if (!strcmp(t->name, embed_name)) {
				if ((s = check_shape(p, t, 2, h->vocab, h->hidden, err)) ||
				    (s = add_simple(p, t, "token_embd.weight", CVT_CLASS_EMBED, -1, CVT_OP_COPY, err)))
					goto fail;
			} else if (strcmp(t->name, "model.norm.weight") && strcmp(t->name, "lm_head.weight")) {
				note_unmapped(unmapped, sizeof unmapped, &nunmapped, t->name);
			}
			continue;
		}
		if (layer >= nl_total) {
			if (p->arch == ARCH_DEEPSEEK && layer < h->n_layer + h->n_mtp)
				p->skipped++; /* the MTP module, without --keep-mtp */
			else
				note_unmapped(unmapped, sizeof unmapped, &nunmapped, t->name);
			continue;
		}
		refs[nref++] = (layer_ref){ layer, i, rest };
	}
	qsort(refs, nref, sizeof *refs, layer_ref_cmp);
	for (size_t k = 0; k < nref; k++) {
		const qf_tensor *t = qf_st_get(st, refs[k].i);
		int um;
		if ((s = plan_layer_tensor(p, t, refs[k].layer, refs[k].rest, stack_idx, &um, err)))
			goto fail;
		if (um)
			note_unmapped(unmapped, sizeof unmapped, &nunmapped, t->name);
	}
	if (nunmapped) {
		s = qf_fail(err, QF_EFORMAT,
			    "%s: %zu tensor%s that no rule for %s (num_hidden_layers %lld) maps: %s%s",
			    ck->path, nunmapped, nunmapped == 1 ? "" : "s", an, (long long)h->n_layer, unmapped,
			    nunmapped > 5 ? ", …" : "");
		goto fail;
	}
	for (size_t i = 0; i < nt; i++) {
		const qf_tensor *t = qf_st_get(st, i);
		if (!strcmp(t->name, "model.norm.weight")) {
			if ((s = check_shape(p, t, 1, h->hidden, 0, err)) ||
			    (s = add_simple(p, t, "output_norm.weight", CVT_CLASS_NORM, -1, CVT_OP_COPY, err)))
				goto fail;
		} else if (!strcmp(t->name, "lm_head.weight") && strcmp(embed_name, "lm_head.weight")) {
			if ((s = check_shape(p, t, 2, h->vocab, h->hidden, err)) ||
			    (s = add_simple(p, t, "output.weight", CVT_CLASS_OUTPUT, -1, CVT_OP_COPY, err)))
				goto fail;
		}
	}
	/* completeness */
	for (size_t i = 0; i < p->n; i++) {
		cvt_item *it = &p->items[i];
		for (int k = 0; k < it->nsrc; k++) {
			if (!it->srcs[k].t) {
				s = qf_fail(err, QF_EFORMAT, "%s: expert %d of %s is missing from the checkpoint",
					    ck->path, k, it->name);
				goto fail;
			}
			if (it->srcs[k].t->dtype != it->srcs[0].t->dtype) {
				s = qf_fail(err, QF_EFORMAT, "%s: experts of %s have mixed dtypes", ck->path, it->name);
				goto fail;
			}
		}
	}
	{
		int have_embd = 0, have_norm = 0;
		for (size_t i = 0; i < p->n; i++) {
			have_embd |= !strcmp(p->items[i].name, "token_embd.weight");
			have_norm |= !strcmp(p->items[i].name, "output_norm.weight");
		}
		if (!have_embd || !have_norm) {
			s = qf_fail(err, QF_EFORMAT, "%s: missing %s", ck->path,
				    !have_embd ? "model.embed_tokens.weight" : "model.norm.weight");
			goto fail;
		}
		/* every layer has its input norm (one pass over the items) */
		unsigned char *seen = calloc((size_t)h->n_layer, 1);
		if (!seen)
			goto fail_oom;
		for (size_t i = 0; i < p->n; i++)
			if (p->items[i].layer >= 0 && p->items[i].layer < h->n_layer &&
			    qf_str_ends_with(p->items[i].name, ".attn_norm.weight"))
				seen[p->items[i].layer] = 1;
		int64_t miss = -1;
		for (int64_t L = 0; L < h->n_layer && miss < 0; L++)
			miss = seen[L] ? -1 : L;
		free(seen);
		if (miss >= 0) {
			s = qf_fail(err, QF_EFORMAT, "%s: layer %lld is missing (no input_layernorm)", ck->path,
				    (long long)miss);
			goto fail;
		}
		if (!h->tied && !qf_st_find(st, "lm_head.weight")) {
			s = qf_fail(err, QF_EFORMAT, "%s: no lm_head.weight and tie_word_embeddings is false",
				    ck->path);
			goto fail;
		}
	}
	if (h->ue8m0 && (s = check_ue8m0(p, err)))
		goto fail;
	free(stack_idx);
	free(refs);
	for (size_t i = 0; i < p->n; i++)
		p->items[i].fmt = qf_fmt_of_dtype(p->items[i].type);
	p->release_ok = 1;
	*out = p;
	return QF_OK;
fail_oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
fail:
	free(stack_idx);
	free(refs);
	cvt_plan_free(p);
	return s;
}
