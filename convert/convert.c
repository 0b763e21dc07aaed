#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convert/convert.h"
#include "util/pool.h"

static const char *const class_names[CVT_CLASS_COUNT] = {
	"attn", "expert", "shared_expert", "dense_ffn", "router", "embed", "output", "norm",
};

const char *cvt_class_name(cvt_class c) { return (unsigned)c < CVT_CLASS_COUNT ? class_names[c] : "?"; }

int cvt_class_from_name(const char *s)
{
	for (int i = 0; i < CVT_CLASS_COUNT; i++)
		if (strcmp(s, class_names[i]) == 0)
			return i;
	return -1;
}

#include "convert/plan.h"

size_t cvt_plan_count(const cvt_plan *p) { return p->n; }
cvt_item *cvt_plan_item(cvt_plan *p, size_t i) { return i < p->n ? &p->items[i] : NULL; }
const char *cvt_plan_arch(const cvt_plan *p)
{
	if (p->arch_str[0])
		return p->arch_str;
	return p->arch == ARCH_LLAMA ? "llama" : "deepseek2";
}
size_t cvt_plan_skipped(const cvt_plan *p) { return p->skipped; }

void cvt_plan_free(cvt_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->items[i].srcs);
	free(p->items);
	qf_gguf_close(p->meta);
	free(p->meta_blob);
	qf_gguf_close(p->g);
	qf_pk_close(p->pk);
	if (p->owns_ck)
		qf_ckpt_close(p->ck);
	free(p->src_path);
	free(p);
}

const cvt_item *cvt_plan_find(cvt_plan *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return &p->items[i];
	return NULL;
}

int64_t cvt_item_row_len(const cvt_item *it) { return it->shape[it->ndim - 1]; }

int64_t cvt_item_rows(const cvt_item *it)
{
	int64_t r = 1;
	for (int i = 0; i < it->ndim - 1; i++)
		r *= it->shape[i];
	return r;
}

uint64_t cvt_item_nbytes(const cvt_item *it)
{
	return qf_fmt_main_bytes(it->fmt, 0, it->ndim, it->shape);
}

uint64_t cvt_item_out_bytes(const cvt_item *it, int packed)
{
	if (!packed)
		return cvt_item_nbytes(it);
	uint64_t b = qf_fmt_main_bytes(it->fmt, 1, it->ndim, it->shape);
	int64_t cs[4];
	int cnd;
	for (int k = 0; k < qf_fmt_ncomp(it->fmt, 1); k++)
		b += qf_fmt_comp_shape(it->fmt, k, it->ndim, it->shape, &cnd, cs);
	return b;
}

uint64_t cvt_item_src_bytes(const cvt_item *it)
{
	uint64_t b = 0;
	for (int i = 0; i < it->nsrc; i++) {
		b += it->srcs[i].t->nbytes;
		if (it->srcs[i].scale)
			b += it->srcs[i].scale->nbytes;
	}
	if (it->op == CVT_OP_KB || it->op == CVT_OP_VB) /* each reads its half of kv_b */
		b = b * (uint64_t)(it->op == CVT_OP_KB ? it->nope : it->vdim) /
		    (uint64_t)(it->nope + it->vdim);
	return b;
}

/* ---- config ---------------------------------------------------------------- */

static qf_status need_int(const qf_ckpt *ck, const char *key, int64_t *v, qf_err *err)
{
	if (!qf_json_get_int(ck->config, key, v) || *v < 0)
		return qf_fail(err, QF_EFORMAT, "%s/config.json: missing or invalid \"%s\"", ck->path, key);
	return QF_OK;
}

static qf_status need_pos(const qf_ckpt *ck, const char *key, int64_t *v, qf_err *err)
{
	qf_status s = need_int(ck, key, v, err);
	if (!s && *v == 0)
		return qf_fail(err, QF_EFORMAT, "%s/config.json: \"%s\" must be positive", ck->path, key);
	return s;
}

static qf_status read_hparams(const qf_ckpt *ck, arch_kind a, hparams *h, qf_err *err)
{
	qf_status s;
	memset(h, 0, sizeof *h);
	if ((s = need_pos(ck, "hidden_size", &h->hidden, err)) ||
	    (s = need_pos(ck, "num_hidden_layers", &h->n_layer, err)) ||
	    (s = need_pos(ck, "num_attention_heads", &h->n_head, err)) ||
	    (s = need_pos(ck, "vocab_size", &h->vocab, err)) ||
	    (s = need_pos(ck, "intermediate_size", &h->ff, err)))
		return s;
	if (!qf_json_get_int(ck->config, "num_key_value_heads", &h->n_head_kv))
		h->n_head_kv = h->n_head;
	if (h->n_head_kv <= 0 || h->n_head % h->n_head_kv)
		return qf_fail(err, QF_EFORMAT, "%s/config.json: num_key_value_heads %lld does not divide num_attention_heads %lld",
			       ck->path, (long long)h->n_head_kv, (long long)h->n_head);
	if (!qf_json_get_int(ck->config, "max_position_embeddings", &h->ctx))
		h->ctx = 2048;
	if (!qf_json_get_num(ck->config, "rms_norm_eps", &h->eps))
		return qf_fail(err, QF_EFORMAT, "%s/config.json: missing \"rms_norm_eps\"", ck->path);
	if (!qf_json_get_num(ck->config, "rope_theta", &h->rope_theta))
		h->rope_theta = 10000.0;
	if (!qf_json_get_bool(ck->config, "tie_word_embeddings", &h->tied))
		h->tied = 0;
	if (h->n_layer > 100000 || h->hidden > (1 << 24) || h->n_head > 65536 || h->vocab > (1 << 26))
		return qf_fail(err, QF_EFORMAT, "%s/config.json: hyperparameters out of range", ck->path);
	if (a == ARCH_LLAMA) {
		if (h->hidden % h->n_head)
			return qf_fail(err, QF_EFORMAT, "%s/config.json: hidden_size %lld not divisible by %lld heads",
				       ck->path, (long long)h->hidden, (long long)h->n_head);
		return QF_OK;
	}
	const cJSON *ql = cJSON_GetObjectItemCaseSensitive(ck->config, "q_lora_rank");
	if (ql && cJSON_IsNull(ql))
		h->q_lora = 0;
	else if ((s = need_pos(ck, "q_lora_rank", &h->q_lora, err)))
		return s;
	if ((s = need_pos(ck, "kv_lora_rank", &h->kv_lora, err)) ||
	    (s = need_pos(ck, "qk_nope_head_dim", &h->nope, err)) ||
	    (s = need_pos(ck, "qk_rope_head_dim", &h->rope_dim, err)) ||
	    (s = need_pos(ck, "v_head_dim", &h->vdim, err)) ||
	    (s = need_pos(ck, "moe_intermediate_size", &h->moe_ff, err)) ||
	    (s = need_pos(ck, "n_routed_experts", &h->n_exp, err)) ||
	    (s = need_pos(ck, "num_experts_per_tok", &h->n_used, err)))
		return s;
	if (!qf_json_get_int(ck->config, "n_shared_experts", &h->n_shared))
		h->n_shared = 0;
	if (!qf_json_get_int(ck->config, "first_k_dense_replace", &h->first_dense))
		h->first_dense = 0;
	if (!qf_json_get_int(ck->config, "n_group", &h->n_group))
		h->n_group = 1;
	if (!qf_json_get_int(ck->config, "topk_group", &h->topk_group))
		h->topk_group = h->n_group;
	if (!qf_json_get_int(ck->config, "num_nextn_predict_layers", &h->n_mtp))
		h->n_mtp = 0;
	if (!qf_json_get_num(ck->config, "routed_scaling_factor", &h->routed_scale))
		h->routed_scale = 1.0;
	if (!qf_json_get_bool(ck->config, "norm_topk_prob", &h->norm_topk))
		h->norm_topk = 0;
	const char *sf = qf_json_get_str(ck->config, "scoring_func");
	h->sigmoid = sf && strcmp(sf, "sigmoid") == 0;
	if (h->n_exp > 65536 || h->n_used > h->n_exp || h->n_group <= 0 || h->n_exp % h->n_group ||
	    h->topk_group > h->n_group)
		return qf_fail(err, QF_EFORMAT, "%s/config.json: inconsistent expert settings (n_routed_experts %lld, num_experts_per_tok %lld, n_group %lld, topk_group %lld)",
			       ck->path, (long long)h->n_exp, (long long)h->n_used, (long long)h->n_group,
			       (long long)h->topk_group);
	const cJSON *rs = cJSON_GetObjectItemCaseSensitive(ck->config, "rope_scaling");
	const char *rt = cJSON_IsObject(rs) ? qf_json_get_str(rs, "type") : NULL;
	if (!rt && cJSON_IsObject(rs))
		rt = qf_json_get_str(rs, "rope_type");
	if (rt && strcmp(rt, "yarn") == 0) {
		h->yarn = 1;
		if (!qf_json_get_num(rs, "factor", &h->yarn_factor))
			return qf_fail(err, QF_EFORMAT, "%s/config.json: rope_scaling.factor missing", ck->path);
		if (!qf_json_get_int(rs, "original_max_position_embeddings", &h->yarn_orig_ctx))
			return qf_fail(err, QF_EFORMAT,
				       "%s/config.json: rope_scaling.original_max_position_embeddings missing", ck->path);
		if (!qf_json_get_num(rs, "mscale_all_dim", &h->yarn_mscale_all))
			h->yarn_mscale_all = 0;
		if (!qf_json_get_num(rs, "mscale", &h->yarn_mscale))
			h->yarn_mscale = 1.0;
		if (!qf_json_get_num(rs, "beta_fast", &h->yarn_beta_fast))
			h->yarn_beta_fast = 32.0;
		if (!qf_json_get_num(rs, "beta_slow", &h->yarn_beta_slow))
			h->yarn_beta_slow = 1.0;
	}
	return QF_OK;
}

/* ---- plan building ------------------------------------------------------------- */

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
	s->bo = s->bi = 128;
	const cJSON *qc = cJSON_GetObjectItemCaseSensitive(p->ck->config, "quantization_config");
	const cJSON *bs = qc ? cJSON_GetObjectItemCaseSensitive(qc, "weight_block_size") : NULL;
	if (cJSON_IsArray(bs) && cJSON_GetArraySize(bs) == 2) {
		s->bo = (int64_t)cJSON_GetArrayItem(bs, 0)->valuedouble;
		s->bi = (int64_t)cJSON_GetArrayItem(bs, 1)->valuedouble;
		if (s->bo <= 0 || s->bi <= 0 || s->bo > (1 << 20) || s->bi > (1 << 20))
			return qf_fail(err, QF_EFORMAT, "%s/config.json: invalid weight_block_size", p->ck->path);
	}
	if (!tr || !tr->is_float || !tr->to_f32 || tr->block_elems != 1)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': %s cannot be converted to float",
			       qf_st_file_path(p->ck->st, (size_t)t->file), t->name, qf_dtype_name(t->dtype));
	qf_status st = qf_st_fp8_scale(p->ck->st, t, s->bo, s->bi, &sc, err);
	if (st)
		return st;
	s->scale = sc;
	if (sc)
		p->src_is_fp8 = 1;
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
	it->type = out_type_for(p, t, cls, t->ndim);
	return QF_OK;
}

typedef struct map_row {
	const char *hf;     /* suffix after "model.layers.N." */
	const char *gguf;   /* suffix after "blk.N." */
	cvt_class cls;
} map_row;

static const map_row llama_map[] = {
	{ "input_layernorm.weight", "attn_norm.weight", CVT_CLASS_NORM },
	{ "self_attn.q_proj.weight", "attn_q.weight", CVT_CLASS_ATTN },
	{ "self_attn.k_proj.weight", "attn_k.weight", CVT_CLASS_ATTN },
	{ "self_attn.v_proj.weight", "attn_v.weight", CVT_CLASS_ATTN },
	{ "self_attn.o_proj.weight", "attn_output.weight", CVT_CLASS_ATTN },
	{ "post_attention_layernorm.weight", "ffn_norm.weight", CVT_CLASS_NORM },
	{ "mlp.gate_proj.weight", "ffn_gate.weight", CVT_CLASS_DENSE_FFN },
	{ "mlp.up_proj.weight", "ffn_up.weight", CVT_CLASS_DENSE_FFN },
	{ "mlp.down_proj.weight", "ffn_down.weight", CVT_CLASS_DENSE_FFN },
	{ NULL, NULL, 0 },
};

static const map_row ds_map[] = {
	{ "input_layernorm.weight", "attn_norm.weight", CVT_CLASS_NORM },
	{ "self_attn.q_a_proj.weight", "attn_q_a.weight", CVT_CLASS_ATTN },
	{ "self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight", CVT_CLASS_NORM },
	{ "self_attn.q_b_proj.weight", "attn_q_b.weight", CVT_CLASS_ATTN },
	{ "self_attn.q_proj.weight", "attn_q.weight", CVT_CLASS_ATTN },
	{ "self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight", CVT_CLASS_ATTN },
	{ "self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight", CVT_CLASS_NORM },
	{ "self_attn.o_proj.weight", "attn_output.weight", CVT_CLASS_ATTN },
	{ "post_attention_layernorm.weight", "ffn_norm.weight", CVT_CLASS_NORM },
	{ "mlp.gate_proj.weight", "ffn_gate.weight", CVT_CLASS_DENSE_FFN },
	{ "mlp.up_proj.weight", "ffn_up.weight", CVT_CLASS_DENSE_FFN },
	{ "mlp.down_proj.weight", "ffn_down.weight", CVT_CLASS_DENSE_FFN },
	{ "mlp.gate.weight", "ffn_gate_inp.weight", CVT_CLASS_ROUTER },
	{ "mlp.gate.e_score_correction_bias", "exp_probs_b.bias", CVT_CLASS_ROUTER },
	{ "mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight", CVT_CLASS_SHARED_EXPERT },
	{ "mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight", CVT_CLASS_SHARED_EXPERT },
	{ "mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight", CVT_CLASS_SHARED_EXPERT },
	/* multi-token-prediction module (only with --keep-mtp) */
	{ "enorm.weight", "nextn.enorm.weight", CVT_CLASS_NORM },
	{ "hnorm.weight", "nextn.hnorm.weight", CVT_CLASS_NORM },
	{ "eh_proj.weight", "nextn.eh_proj.weight", CVT_CLASS_ATTN },
	{ "embed_tokens.weight", "nextn.embed_tokens.weight", CVT_CLASS_EMBED },
	{ "shared_head.norm.weight", "nextn.shared_head_norm.weight", CVT_CLASS_NORM },
	{ "shared_head.head.weight", "nextn.shared_head_head.weight", CVT_CLASS_OUTPUT },
	{ NULL, NULL, 0 },
};

static const map_row *find_map(const map_row *m, const char *rest)
{
	for (; m->hf; m++)
		if (strcmp(m->hf, rest) == 0)
			return m;
	return NULL;
}

/* Expected 2-D/1-D shapes by GGUF suffix; returns 0 if no rule. */
static int expected_shape(const hparams *h, arch_kind a, const char *g, int *nd, int64_t *d0, int64_t *d1)
{
	*nd = 2;
	if (strstr(g, "norm.weight") && !strstr(g, "nextn.")) {
		*nd = 1;
		if (strcmp(g, "attn_q_a_norm.weight") == 0)
			*d0 = h->q_lora;
		else if (strcmp(g, "attn_kv_a_norm.weight") == 0)
			*d0 = h->kv_lora;
		else
			*d0 = h->hidden;
		return 1;
	}
	if (a == ARCH_LLAMA) {
		int64_t hd = h->hidden / h->n_head;
		if (!strcmp(g, "attn_q.weight")) { *d0 = h->n_head * hd; *d1 = h->hidden; return 1; }
		if (!strcmp(g, "attn_k.weight") || !strcmp(g, "attn_v.weight")) { *d0 = h->n_head_kv * hd; *d1 = h->hidden; return 1; }
		if (!strcmp(g, "attn_output.weight")) { *d0 = h->hidden; *d1 = h->n_head * hd; return 1; }
		if (!strcmp(g, "ffn_gate.weight") || !strcmp(g, "ffn_up.weight")) { *d0 = h->ff; *d1 = h->hidden; return 1; }
		if (!strcmp(g, "ffn_down.weight")) { *d0 = h->hidden; *d1 = h->ff; return 1; }
		return 0;
	}
	int64_t qk = h->nope + h->rope_dim;
	if (!strcmp(g, "attn_q_a.weight")) { *d0 = h->q_lora; *d1 = h->hidden; return 1; }
	if (!strcmp(g, "attn_q_b.weight")) { *d0 = h->n_head * qk; *d1 = h->q_lora; return 1; }
	if (!strcmp(g, "attn_q.weight")) { *d0 = h->n_head * qk; *d1 = h->hidden; return 1; }
	if (!strcmp(g, "attn_kv_a_mqa.weight")) { *d0 = h->kv_lora + h->rope_dim; *d1 = h->hidden; return 1; }
	if (!strcmp(g, "attn_output.weight")) { *d0 = h->hidden; *d1 = h->n_head * h->vdim; return 1; }
	if (!strcmp(g, "ffn_gate.weight") || !strcmp(g, "ffn_up.weight")) { *d0 = h->ff; *d1 = h->hidden; return 1; }
	if (!strcmp(g, "ffn_down.weight")) { *d0 = h->hidden; *d1 = h->ff; return 1; }
	if (!strcmp(g, "ffn_gate_inp.weight")) { *d0 = h->n_exp; *d1 = h->hidden; return 1; }
	if (!strcmp(g, "exp_probs_b.bias")) { *nd = 1; *d0 = h->n_exp; return 1; }
	if (!strcmp(g, "ffn_gate_shexp.weight") || !strcmp(g, "ffn_up_shexp.weight")) { *d0 = h->moe_ff * h->n_shared; *d1 = h->hidden; return 1; }
	if (!strcmp(g, "ffn_down_shexp.weight")) { *d0 = h->hidden; *d1 = h->moe_ff * h->n_shared; return 1; }
	return 0;
}

/*
 * Adds a per-layer tensor found in an architecture's map table: checks its
 * shape against config.json and names it blk.N.<gguf suffix>.
 */
static qf_status add_mapped(cvt_plan *p, const qf_tensor *t, const map_row *m, int64_t layer, cvt_op op,
			    qf_err *err)
{
	int nd;
	int64_t d0 = 0, d1 = 0;
	char gname[QF_GGUF_MAX_NAME + 32];
	qf_status s;
	if (expected_shape(&p->hp, p->arch, m->gguf, &nd, &d0, &d1) &&
	    (s = check_shape(p, t, nd, d0, d1, err)))
		return s;
	snprintf(gname, sizeof gname, "blk.%lld.%s", (long long)layer, m->gguf);
	return add_simple(p, t, gname, m->cls, (int)layer, op, err);
}

/* Parses "model.layers.N.rest" → N and rest; 0 if not a layer tensor. */
static int parse_layer(const char *name, int64_t *layer, const char **rest)
{
	const char *pre = "model.layers.";
	size_t pl = strlen(pre);
	if (strncmp(name, pre, pl) != 0)
		return 0;
	char *end;
	long long v = strtoll(name + pl, &end, 10);
	if (end == name + pl || *end != '.' || v < 0 || v > 1000000)
		return 0;
	*layer = v;
	*rest = end + 1;
	return 1;
}

/* Expert "mlp.experts.E.{gate,up,down}_proj.weight" → E, kind 0/1/2. */
static int parse_expert(const char *rest, int64_t *e, int *kind)
{
	const char *pre = "mlp.experts.";
	size_t pl = strlen(pre);
	if (strncmp(rest, pre, pl) != 0)
		return 0;
	char *end;
	long long v = strtoll(rest + pl, &end, 10);
	if (end == rest + pl || *end != '.' || v < 0)
		return 0;
	*e = v;
	if (!strcmp(end, ".gate_proj.weight")) *kind = 0;
	else if (!strcmp(end, ".up_proj.weight")) *kind = 1;
	else if (!strcmp(end, ".down_proj.weight")) *kind = 2;
	else return 0;
	return 1;
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

qf_status cvt_plan_build(qf_ckpt *ck, const cvt_options *o, cvt_plan **out, qf_err *err)
{
	qf_status s = QF_OK;
	cvt_plan *p = calloc(1, sizeof *p);
	int64_t *stack_idx = NULL; /* [layer][kind] → item index + 1 */
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
	const cJSON *archs = cJSON_GetObjectItemCaseSensitive(ck->config, "architectures");
	const char *an = cJSON_IsArray(archs) && cJSON_IsString(archs->child) ? archs->child->valuestring : NULL;
	if (an && (!strcmp(an, "LlamaForCausalLM") || !strcmp(an, "MistralForCausalLM")))
		p->arch = ARCH_LLAMA;
	else if (an && (!strcmp(an, "DeepseekV3ForCausalLM") || !strcmp(an, "DeepseekV2ForCausalLM")))
		p->arch = ARCH_DEEPSEEK;
	else {
		s = qf_fail(err, QF_EFORMAT,
			    "%s/config.json: unsupported architecture '%s' (supported: LlamaForCausalLM, MistralForCausalLM, DeepseekV2ForCausalLM, DeepseekV3ForCausalLM)",
			    ck->path, an ? an : "(none)");
		goto fail;
	}
	if ((s = read_hparams(ck, p->arch, &p->hp, err)))
		goto fail;
	const hparams *h = &p->hp;
	int64_t nl_total = h->n_layer + (o->keep_mtp ? h->n_mtp : 0);
	if (p->arch == ARCH_DEEPSEEK) {
		stack_idx = calloc((size_t)(nl_total + 1) * 3, sizeof *stack_idx);
		if (!stack_idx) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto fail;
		}
	}
	const qf_st *st = ck->st;
	/* visit tensors in name-natural order: globals, then layers in order */
	size_t nt = qf_st_count(st);
	for (int pass = 0; pass < 3; pass++) {
		for (int64_t L = (pass == 1 ? 0 : -1); L < (pass == 1 ? nl_total : 0); L++) {
			for (size_t i = 0; i < nt; i++) {
				const qf_tensor *t = qf_st_get(st, i);
				const char *rest = NULL;
				int64_t layer = -1;
				int is_layer = parse_layer(t->name, &layer, &rest);
				if (qf_str_ends_with(t->name, "_scale_inv") || qf_str_ends_with(t->name, "rotary_emb.inv_freq")) {
					if (pass == 0 && qf_str_ends_with(t->name, "rotary_emb.inv_freq"))
						p->skipped++;
					continue;
				}
				if (pass == 0 && !is_layer) {
					if (!strcmp(t->name, "model.embed_tokens.weight")) {
						if ((s = check_shape(p, t, 2, h->vocab, h->hidden, err)) ||
						    (s = add_simple(p, t, "token_embd.weight", CVT_CLASS_EMBED, -1, CVT_OP_COPY, err)))
							goto fail;
					} else if (strcmp(t->name, "model.norm.weight") && strcmp(t->name, "lm_head.weight")) {
						s = qf_fail(err, QF_EFORMAT, "%s: unexpected tensor '%s' for %s",
							    qf_st_file_path(st, (size_t)t->file), t->name, an);
						goto fail;
					}
					continue;
				}
				if (pass == 2 && !is_layer) {
					if (!strcmp(t->name, "model.norm.weight")) {
						if ((s = check_shape(p, t, 1, h->hidden, 0, err)) ||
						    (s = add_simple(p, t, "output_norm.weight", CVT_CLASS_NORM, -1, CVT_OP_COPY, err)))
							goto fail;
					} else if (!strcmp(t->name, "lm_head.weight")) {
						if ((s = check_shape(p, t, 2, h->vocab, h->hidden, err)) ||
						    (s = add_simple(p, t, "output.weight", CVT_CLASS_OUTPUT, -1, CVT_OP_COPY, err)))
							goto fail;
					}
					continue;
				}
				if (pass != 1 || !is_layer)
					continue;
				if (layer >= nl_total) {
					if (L == 0)
						p->skipped++;
					continue;
				}
				if (layer != L)
					continue;
				if (p->arch == ARCH_LLAMA) {
					const map_row *m = find_map(llama_map, rest);
					if (!m) {
						s = qf_fail(err, QF_EFORMAT, "%s: unexpected tensor '%s' for %s",
							    qf_st_file_path(st, (size_t)t->file), t->name, an);
						goto fail;
					}
					int isq = strstr(rest, "q_proj") != NULL, isk = strstr(rest, "k_proj") != NULL;
					if ((s = add_mapped(p, t, m, layer, isq || isk ? CVT_OP_PERMUTE : CVT_OP_COPY, err)))
						goto fail;
					if (isq || isk) {
						cvt_item *it = &p->items[p->n - 1];
						it->n_head = isq ? h->n_head : h->n_head_kv;
						it->head_dim = h->hidden / h->n_head;
						if (it->head_dim % 2) {
							s = qf_fail(err, QF_EFORMAT, "%s/config.json: odd head dim %lld",
								    ck->path, (long long)it->head_dim);
							goto fail;
						}
					}
					continue;
				}
				/* DeepSeek */
				int64_t e;
				int kind;
				if (!strcmp(rest, "self_attn.kv_b_proj.weight")) {
					if ((s = build_kv_b(p, t, layer, err)))
						goto fail;
					continue;
				}
				if (parse_expert(rest, &e, &kind)) {
					if (e >= h->n_exp) {
						s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s': expert %lld but n_routed_experts is %lld",
							    qf_st_file_path(st, (size_t)t->file), t->name, (long long)e,
							    (long long)h->n_exp);
						goto fail;
					}
					int64_t r = kind == 2 ? h->hidden : h->moe_ff, c = kind == 2 ? h->moe_ff : h->hidden;
					if ((s = check_shape(p, t, 2, r, c, err)))
						goto fail;
					int64_t *slot = &stack_idx[layer * 3 + kind];
					if (!*slot) {
						cvt_item *it = cvt_plan_new_item(p, err);
						if (!it)
							goto fail_oom;
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
							goto fail_oom;
						it->nsrc = (int)h->n_exp;
						it->type = out_type_for(p, t, CVT_CLASS_EXPERT, 2);
						*slot = (int64_t)p->n;
					}
					cvt_item *it = &p->items[*slot - 1];
					if (it->srcs[e].t) {
						s = qf_fail(err, QF_EFORMAT, "%s: expert tensor '%s' appears twice",
							    qf_st_file_path(st, (size_t)t->file), t->name);
						goto fail;
					}
					if ((s = make_src(p, t, &it->srcs[e], err)))
						goto fail;
					continue;
				}
				const map_row *m = find_map(ds_map, rest);
				if (!m || (layer < h->n_layer && strstr(m->gguf, "nextn."))) {
					s = qf_fail(err, QF_EFORMAT, "%s: unexpected tensor '%s' for %s",
						    qf_st_file_path(st, (size_t)t->file), t->name, an);
					goto fail;
				}
				if ((s = add_mapped(p, t, m, layer, CVT_OP_COPY, err)))
					goto fail;
			}
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
		for (int64_t L = 0; L < h->n_layer; L++) {
			char nm[64];
			snprintf(nm, sizeof nm, "blk.%lld.attn_norm.weight", (long long)L);
			int found = 0;
			for (size_t i = 0; i < p->n && !found; i++)
				found = !strcmp(p->items[i].name, nm);
			if (!found) {
				s = qf_fail(err, QF_EFORMAT, "%s: layer %lld is missing (no input_layernorm)",
					    ck->path, (long long)L);
				goto fail;
			}
		}
		if (!h->tied && !qf_st_find(st, "lm_head.weight")) {
			s = qf_fail(err, QF_EFORMAT, "%s: no lm_head.weight and tie_word_embeddings is false",
				    ck->path);
			goto fail;
		}
	}
	free(stack_idx);
	for (size_t i = 0; i < p->n; i++)
		p->items[i].fmt = qf_fmt_of_dtype(p->items[i].type);
	p->release_ok = 1;
	*out = p;
	return QF_OK;
fail_oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
fail:
	free(stack_idx);
	cvt_plan_free(p);
	return s;
}

/* ---- metadata --------------------------------------------------------------------- */

uint32_t cvt_plan_file_type(const cvt_plan *p)
{
	/* llama_ftype of the dominant 2-D weight type */
	for (size_t i = 0; i < p->n; i++) {
		if (p->items[i].ndim < 2)
			continue;
		switch (p->items[i].fmt) {
		case QF_F32: return 0;
		case QF_F16: return 1;
		case QF_BF16: return 32;
		case QF_Q4_0: return 2;
		case QF_Q4_1: return 3;
		case QF_Q8_0: return 7;
		case QF_MXFP4: return 38;
		default: return 0;
		}
	}
	return 0;
}

qf_status cvt_ckpt_set_metadata(cvt_plan *p, qf_gguf_writer *w, qf_err *err)
{
	const hparams *h = &p->hp;
	const char *arch = cvt_plan_arch(p);
	char k[128];
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", arch, suffix), k)
	qf_gguf_set_str(w, "general.architecture", arch);
	const char *base = strrchr(p->ck->path, '/');
	base = base && base[1] ? base + 1 : p->ck->path;
	qf_gguf_set_str(w, "general.name", base);
	qf_gguf_set_u32(w, "general.file_type", cvt_plan_file_type(p));
	qf_gguf_set_u32(w, "general.alignment", QF_GGUF_DEFAULT_ALIGN);
	qf_gguf_set_u32(w, KEY("block_count"), (uint32_t)h->n_layer);
	qf_gguf_set_u32(w, KEY("context_length"), (uint32_t)h->ctx);
	qf_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)h->hidden);
	qf_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)h->ff);
	qf_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)h->n_head);
	qf_gguf_set_f32(w, KEY("rope.freq_base"), (float)h->rope_theta);
	qf_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)h->eps);
	qf_gguf_set_u32(w, KEY("vocab_size"), (uint32_t)h->vocab);
	if (p->arch == ARCH_LLAMA) {
		qf_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)h->n_head_kv);
		qf_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)(h->hidden / h->n_head));
	} else {
		qf_gguf_set_u32(w, KEY("attention.head_count_kv"), p->opt.legacy_kv_b ? (uint32_t)h->n_head : 1);
		if (h->q_lora)
			qf_gguf_set_u32(w, KEY("attention.q_lora_rank"), (uint32_t)h->q_lora);
		qf_gguf_set_u32(w, KEY("attention.kv_lora_rank"), (uint32_t)h->kv_lora);
		if (p->opt.legacy_kv_b) {
			qf_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)(h->nope + h->rope_dim));
			qf_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)h->vdim);
		} else {
			qf_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)(h->kv_lora + h->rope_dim));
			qf_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)h->kv_lora);
			qf_gguf_set_u32(w, KEY("attention.key_length_mla"), (uint32_t)(h->nope + h->rope_dim));
			qf_gguf_set_u32(w, KEY("attention.value_length_mla"), (uint32_t)h->vdim);
		}
		qf_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)h->rope_dim);
		if (h->yarn) {
			qf_gguf_set_str(w, KEY("rope.scaling.type"), "yarn");
			qf_gguf_set_f32(w, KEY("rope.scaling.factor"), (float)h->yarn_factor);
			qf_gguf_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)h->yarn_orig_ctx);
			qf_gguf_set_f32(w, KEY("rope.scaling.yarn_log_multiplier"), (float)(0.1 * h->yarn_mscale_all));
			/* llama.cpp's keys; verify reads them so GGUF and bundle sources keep HF's YaRN */
			qf_gguf_set_f32(w, KEY("rope.scaling.yarn_beta_fast"), (float)h->yarn_beta_fast);
			qf_gguf_set_f32(w, KEY("rope.scaling.yarn_beta_slow"), (float)h->yarn_beta_slow);
			if (h->yarn_mscale != h->yarn_mscale_all && h->yarn_factor > 1.0) {
				/* HF scales cos/sin by mscale(factor, mscale) / mscale(factor, mscale_all_dim) */
				double a = 0.1 * h->yarn_mscale * log(h->yarn_factor) + 1.0;
				double b = 0.1 * h->yarn_mscale_all * log(h->yarn_factor) + 1.0;
				qf_gguf_set_f32(w, KEY("rope.scaling.attn_factor"), (float)(a / b));
			}
		}
		qf_gguf_set_u32(w, KEY("expert_count"), (uint32_t)h->n_exp);
		qf_gguf_set_u32(w, KEY("expert_used_count"), (uint32_t)h->n_used);
		qf_gguf_set_u32(w, KEY("expert_shared_count"), (uint32_t)h->n_shared);
		qf_gguf_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)h->moe_ff);
		qf_gguf_set_u32(w, KEY("leading_dense_block_count"), (uint32_t)h->first_dense);
		qf_gguf_set_f32(w, KEY("expert_weights_scale"), (float)h->routed_scale);
		qf_gguf_set_bool(w, KEY("expert_weights_norm"), h->norm_topk);
		qf_gguf_set_u32(w, KEY("expert_gating_func"), h->sigmoid ? 2 : 1);
		qf_gguf_set_u32(w, KEY("expert_group_count"), (uint32_t)h->n_group);
		qf_gguf_set_u32(w, KEY("expert_group_used_count"), (uint32_t)h->topk_group);
		if (p->opt.keep_mtp && h->n_mtp)
			qf_gguf_set_u32(w, KEY("nextn_predict_layers"), (uint32_t)h->n_mtp);
	}
#undef KEY
	qf_gguf_set_str(w, "qforge.source", p->ck->path);
	if (p->src_is_fp8)
		qf_gguf_set_str(w, "qforge.source_quantization", "fp8-e4m3-b128 (dequantized with _scale_inv)");
	return cvt_vocab_set(p->ck, h->vocab, p->opt.pre, w, err);
}

/* ---- reading rows -------------------------------------------------------------------- */

/* Source row r of s as f32 (row length = product of inner dims). */
static void src_row_f32(const cvt_src *s, int64_t r, float *dst)
{
	if (s->coded) {
		qf_fmt_decode(&s->qv, r, 1, dst);
		return;
	}
	const qf_tensor *t = s->t;
	const qf_dtype_traits *tr = qf_dtype_info(t->dtype);
	int64_t len = t->ndim ? t->shape[t->ndim - 1] : 1; /* rows of a 3-D tensor are its last dim */
	const uint8_t *row = t->data + (uint64_t)r * (uint64_t)len * tr->block_bytes;
	if (s->scale && t->dtype == QF_F8_E4M3) {
		/* decode and scale in one pass (the same products as below) */
		const float *sc = (const float *)s->scale->data + (r / s->bo) * s->scale->shape[1];
		for (int64_t c0 = 0, b = 0; c0 < len; c0 += s->bi, b++) {
			float f;
			memcpy(&f, sc + b, 4);
			int64_t c1 = c0 + s->bi < len ? c0 + s->bi : len;
			qf_row_e4m3_scaled_to_f32(row + c0, dst + c0, c1 - c0, f);
		}
		return;
	}
	tr->to_f32(row, dst, len);
	if (s->scale) {
		/* DeepSeek weight_dequant: w[i][j] = fp8(w) * s[i / bo][j / bi] */
		const float *sc = (const float *)s->scale->data + (r / s->bo) * s->scale->shape[1];
		for (int64_t c0 = 0, b = 0; c0 < len; c0 += s->bi, b++) {
			float f;
			memcpy(&f, sc + b, 4);
			int64_t c1 = c0 + s->bi < len ? c0 + s->bi : len;
			for (int64_t c = c0; c < c1; c++)
				dst[c] *= f;
		}
	}
}

int64_t cvt_scratch_floats(const cvt_item *it)
{
	return it->op == CVT_OP_KB ? it->nope * it->kv_lora : 0;
}

static qf_status check_finite(const cvt_item *it, int64_t row, const float *v, int64_t n, qf_err *err)
{
	if (qf_row_all_finite(v, n)) /* the quick pass; then where */
		return QF_OK;
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(v[i]))
			return qf_fail(err, QF_EFORMAT,
				       "tensor '%s' (output '%s'): non-finite value %g at row %lld, column %lld (use --allow-nonfinite to keep it)",
				       it->srcs[0].t->name, it->name, (double)v[i], (long long)row, (long long)i);
	}
	return QF_OK;
}

qf_status cvt_item_rows_f32(const cvt_item *it, int64_t r0, int64_t n, float *dst, float *scratch,
			    int allow_nonfinite, qf_err *err)
{
	int64_t len = cvt_item_row_len(it);
	for (int64_t i = 0; i < n; i++) {
		int64_t r = r0 + i;
		float *d = dst + i * len;
		switch (it->op) {
		case CVT_OP_COPY:
			src_row_f32(&it->srcs[0], r, d);
			break;
		case CVT_OP_PERMUTE: {
			int64_t hd = it->head_dim, h = r / hd, rem = r % hd;
			int64_t src = h * hd + (rem % 2) * (hd / 2) + rem / 2;
			src_row_f32(&it->srcs[0], src, d);
			break;
		}
		case CVT_OP_STACK: {
			int64_t per = it->shape[1];
			src_row_f32(&it->srcs[r / per], r % per, d);
			break;
		}
		case CVT_OP_VB: {
			int64_t h = r / it->vdim, j = r % it->vdim;
			src_row_f32(&it->srcs[0], h * (it->nope + it->vdim) + it->nope + j, d);
			break;
		}
		case CVT_OP_KB: {
			/* out row (h, c) = kv_b[h*(nope+v) + dd][c] for dd < nope */
			int64_t h = r / it->kv_lora, c = r % it->kv_lora;
			for (int64_t dd = 0; dd < it->nope; dd++) {
				if (c == 0 || i == 0)
					src_row_f32(&it->srcs[0], h * (it->nope + it->vdim) + dd,
						    scratch + dd * it->kv_lora);
				d[dd] = scratch[dd * it->kv_lora + c];
			}
			break;
		}
		}
		if (!allow_nonfinite) {
			qf_status s = check_finite(it, r, d, len, err);
			if (s)
				return s;
		}
	}
	return QF_OK;
}

