/*
 * hparams.c — config.json → hyperparameters (one architecture family at a
 * time), with every value checked before the plan uses it.
 *
 * Each key is read through one of the getters below, which know the key's
 * range: a value outside it, of the wrong JSON type, or fractional where an
 * integer is meant is QF_EFORMAT with a message naming the key and the range
 * ("config.json: \"topk_group\" is 0; allowed 1 to 4").  Absent keys (and
 * JSON null) take the documented default.  Counts are bounded by what the
 * checkpoint can hold: a layer has at least one tensor, so more layers than
 * tensors is an error before anything is sized by them.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/plan.h"

#define U32_MAX_INT 4294967295LL

typedef struct cfg {
	const char *path;         /* checkpoint folder, for messages */
	const char *where;        /* "" or "rope_scaling." */
	const cJSON *o;
	qf_err *err;
} cfg;

static const cJSON *item(const cfg *c, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(c->o, key);
	return j && !cJSON_IsNull(j) ? j : NULL;
}

static qf_status bad(const cfg *c, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static qf_status bad(const cfg *c, const char *key, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return qf_fail(c->err, QF_EFORMAT, "%s/config.json: \"%s%s\" %s", c->path, c->where, key, what);
}

/*
 * An integer key in [lo, hi].  required: absence is an error; otherwise
 * *v = def.
 */
static qf_status get_int(const cfg *c, const char *key, int required, int64_t def, int64_t lo, int64_t hi,
			 int64_t *v)
{
	const cJSON *j = item(c, key);
	if (!j) {
		if (required)
			return bad(c, key, "is missing (an integer from %lld to %lld)", (long long)lo, (long long)hi);
		*v = def;
		return QF_OK;
	}
	double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
	if (!cJSON_IsNumber(j) || floor(d) != d || d < (double)lo || d > (double)hi) {
		if (cJSON_IsNumber(j))
			return bad(c, key, "is %.17g; allowed an integer from %lld to %lld", d, (long long)lo,
				   (long long)hi);
		return bad(c, key, "is not a number; allowed an integer from %lld to %lld", (long long)lo, (long long)hi);
	}
	*v = (int64_t)d;
	return QF_OK;
}

/* A finite number in (lo, hi] (lo_open) or [lo, hi]. */
static qf_status get_num(const cfg *c, const char *key, int required, double def, double lo, int lo_open,
			 double hi, double *v)
{
	const cJSON *j = item(c, key);
	if (!j) {
		if (required)
			return bad(c, key, "is missing (a number in %s%g, %g])", lo_open ? "(" : "[", lo, hi);
		*v = def;
		return QF_OK;
	}
	double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
	if (!cJSON_IsNumber(j) || !isfinite(d) || d > hi || d < lo || (lo_open && d == lo)) {
		if (cJSON_IsNumber(j))
			return bad(c, key, "is %.17g; allowed a number in %s%g, %g]", d, lo_open ? "(" : "[", lo, hi);
		return bad(c, key, "is not a number; allowed a number in %s%g, %g]", lo_open ? "(" : "[", lo, hi);
	}
	*v = d;
	return QF_OK;
}

static qf_status get_bool(const cfg *c, const char *key, int def, int *v)
{
	const cJSON *j = item(c, key);
	if (!j)
		return (*v = def, QF_OK);
	if (!cJSON_IsBool(j))
		return bad(c, key, "is not true or false");
	*v = cJSON_IsTrue(j);
	return QF_OK;
}

/* A string key that must be one of names (NULL-terminated); *v = index, or def when absent. */
static qf_status get_enum(const cfg *c, const char *key, const char *const *names, int def, int *v)
{
	const cJSON *j = item(c, key);
	if (!j)
		return (*v = def, QF_OK);
	for (int i = 0; cJSON_IsString(j) && names[i]; i++)
		if (!strcmp(j->valuestring, names[i]))
			return (*v = i, QF_OK);
	char list[256] = "";
	for (int i = 0; names[i]; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "", names[i]);
	if (cJSON_IsString(j))
		return bad(c, key, "is \"%.64s\"; allowed %s", j->valuestring, list);
	return bad(c, key, "is not a string; allowed %s", list);
}

/* rope_scaling {type|rope_type: yarn, …} (DeepSeek). */
static qf_status read_yarn(const cfg *top, hparams *h)
{
	const cJSON *rs = item(top, "rope_scaling");
	if (!rs)
		return QF_OK;
	if (!cJSON_IsObject(rs))
		return bad(top, "rope_scaling", "is not an object");
	cfg c = { top->path, "rope_scaling.", rs, top->err };
	const char *rt = qf_json_get_str(rs, "type");
	if (!rt)
		rt = qf_json_get_str(rs, "rope_type");
	if (!rt || strcmp(rt, "yarn") != 0)
		return QF_OK;
	qf_status s;
	h->yarn = 1;
	if ((s = get_num(&c, "factor", 1, 1, 0, 1, 1e6, &h->yarn_factor)) ||
	    (s = get_int(&c, "original_max_position_embeddings", 1, 0, 1, U32_MAX_INT, &h->yarn_orig_ctx)) ||
	    (s = get_num(&c, "mscale_all_dim", 0, 0, -1e6, 0, 1e6, &h->yarn_mscale_all)) ||
	    (s = get_num(&c, "mscale", 0, 1.0, -1e6, 0, 1e6, &h->yarn_mscale)) ||
	    (s = get_num(&c, "beta_fast", 0, 32.0, 0, 1, 1e6, &h->yarn_beta_fast)) ||
	    (s = get_num(&c, "beta_slow", 0, 1.0, 0, 1, 1e6, &h->yarn_beta_slow)))
		return s;
	return QF_OK;
}

/*
 * rope_scaling (or transformers 5's rope_parameters) of the GQA family:
 * linear, dynamic (no effect up to max_position_embeddings) and llama3;
 * anything else is refused rather than converted without it.
 */
static qf_status read_gqa_rope(const cfg *top, hparams *h)
{
	const cJSON *rs = item(top, "rope_parameters");
	const char *rkey = rs ? "rope_parameters" : "rope_scaling";
	if (!rs)
		rs = item(top, "rope_scaling");
	if (!rs)
		return QF_OK;
	if (!cJSON_IsObject(rs))
		return bad(top, rkey, "is not an object");
	char where[32];
	snprintf(where, sizeof where, "%s.", rkey);
	cfg c = { top->path, where, rs, top->err };
	qf_status s;
	if (item(&c, "rope_theta") && !item(top, "rope_theta") &&
	    (s = get_num(&c, "rope_theta", 0, 10000.0, 0, 1, 1e30, &h->rope_theta)))
		return s;
	const char *rt = qf_json_get_str(rs, "rope_type");
	if (!rt)
		rt = qf_json_get_str(rs, "type");
	if (!rt || !strcmp(rt, "default"))
		return QF_OK;
	if (!strcmp(rt, "linear"))
		h->rope = ROPE_LINEAR;
	else if (!strcmp(rt, "dynamic"))
		h->rope = ROPE_DYNAMIC;
	else if (!strcmp(rt, "llama3"))
		h->rope = ROPE_LLAMA3;
	else
		return bad(top, rkey, "type \"%.32s\" is not supported for this architecture (supported: default, linear, dynamic, llama3)", rt);
	if ((s = get_num(&c, "factor", h->rope != ROPE_LLAMA3, 8.0, 0, 1, 1e6, &h->rope_factor)))
		return s;
	if (h->rope != ROPE_LLAMA3)
		return QF_OK;
	if ((s = get_num(&c, "low_freq_factor", 0, 1.0, 0, 1, 1e6, &h->rope_low_freq)) ||
	    (s = get_num(&c, "high_freq_factor", 0, 4.0, h->rope_low_freq, 1, 1e6, &h->rope_high_freq)) ||
	    (s = get_int(&c, "original_max_position_embeddings", 0, 8192, 1, U32_MAX_INT, &h->rope_orig_ctx)))
		return s;
	return QF_OK;
}

/* The GQA family's own keys: head_dim, RoPE scaling, sliding window, Qwen3-MoE experts. */
static qf_status read_gqa(const cfg *c, const cvt_arch *a, hparams *h)
{
	qf_status s;
	h->head_dim_given = item(c, "head_dim") != NULL;
	if ((s = get_int(c, "head_dim", 0, h->hidden / h->n_head, 2, 65536, &h->head_dim)) ||
	    (s = read_gqa_rope(c, h)))
		return s;
	if (!h->head_dim_given && h->hidden % h->n_head)
		return qf_fail(c->err, QF_EFORMAT, "%s/config.json: hidden_size %lld not divisible by %lld heads",
			       c->path, (long long)h->hidden, (long long)h->n_head);
	if (h->head_dim % 2)
		return bad(c, "head_dim", "is %lld; RoPE needs an even head size", (long long)h->head_dim);
	int use_sw = 1;
	if ((s = get_bool(c, "use_sliding_window", 1, &use_sw)) ||
	    (s = get_int(c, "sliding_window", 0, 0, 1, U32_MAX_INT, &h->sliding_window)))
		return s;
	if (!use_sw)
		h->sliding_window = 0;
	if (h->sliding_window && h->sliding_window < h->ctx)
		return qf_fail(c->err, QF_EFORMAT,
			       "%s/config.json: \"sliding_window\" %lld is below max_position_embeddings %lld: llama.cpp's %s attends to the whole context, so results would differ past %lld tokens (not converted)",
			       c->path, (long long)h->sliding_window, (long long)h->ctx, a->gguf, (long long)h->sliding_window);
	if (!(a->flags & ARCHF_MOE))
		return QF_OK;
	int64_t step = 1;
	const cJSON *mlp_only = item(c, "mlp_only_layers");
	if ((s = get_int(c, "num_experts", 1, 0, 1, 65536, &h->n_exp)) ||
	    (s = get_int(c, "num_experts_per_tok", 1, 0, 1, h->n_exp, &h->n_used)) ||
	    (s = get_int(c, "moe_intermediate_size", 1, 0, 1, 1 << 26, &h->moe_ff)) ||
	    (s = get_bool(c, "norm_topk_prob", 1, &h->norm_topk)) ||
	    (s = get_int(c, "decoder_sparse_step", 0, 1, 1, 1, &step)))
		return s;
	if (mlp_only && (!cJSON_IsArray(mlp_only) || cJSON_GetArraySize(mlp_only) != 0))
		return bad(c, "mlp_only_layers", "must be empty: every layer of %s is a mixture of experts", a->gguf);
	/* llama.cpp's qwen3moe graph always renormalises the top-k weights (src/models/qwen3moe.cpp, build_moe_ffn norm_w = true) */
	if (!h->norm_topk)
		return bad(c, "norm_topk_prob", "is false; llama.cpp's qwen3moe always renormalises the top-k weights (not converted)");
	return QF_OK;
}

qf_status cvt_read_hparams(const qf_ckpt *ck, const cvt_arch *a, hparams *h, qf_err *err)
{
	qf_status s;
	cfg c = { ck->path, "", ck->config, err };
	/* a layer holds at least one tensor, so no count of layers exceeds this */
	int64_t nt = ck->st ? (int64_t)qf_st_count(ck->st) : 0;
	int64_t max_layers = nt < 100000 ? (nt > 1 ? nt : 1) : 100000;
	memset(h, 0, sizeof *h);
	if ((s = get_int(&c, "hidden_size", 1, 0, 1, 1 << 24, &h->hidden)) ||
	    (s = get_int(&c, "num_hidden_layers", 1, 0, 1, max_layers, &h->n_layer)) ||
	    (s = get_int(&c, "num_attention_heads", 1, 0, 1, 65536, &h->n_head)) ||
	    (s = get_int(&c, "vocab_size", 1, 0, 1, 1 << 26, &h->vocab)) ||
	    (s = get_int(&c, "intermediate_size", 1, 0, 1, 1 << 26, &h->ff)) ||
	    (s = get_int(&c, "num_key_value_heads", 0, h->n_head, 1, h->n_head, &h->n_head_kv)) ||
	    (s = get_int(&c, "max_position_embeddings", 0, 2048, 1, U32_MAX_INT, &h->ctx)) ||
	    (s = get_num(&c, "rms_norm_eps", 1, 0, 0, 1, 1, &h->eps)) ||
	    (s = get_num(&c, "rope_theta", 0, 10000.0, 0, 1, 1e30, &h->rope_theta)) ||
	    (s = get_bool(&c, "tie_word_embeddings", 0, &h->tied)))
		return s;
	if (h->n_head % h->n_head_kv)
		return qf_fail(err, QF_EFORMAT, "%s/config.json: num_key_value_heads %lld does not divide num_attention_heads %lld",
			       ck->path, (long long)h->n_head_kv, (long long)h->n_head);
	if (a->kind == ARCH_LLAMA)
		return read_gqa(&c, a, h);
	static const char *const scoring[] = { "softmax", "sigmoid", NULL };
	/* q_lora_rank: null for V2-Lite (no q compression); required otherwise */
	const cJSON *ql = cJSON_GetObjectItemCaseSensitive(ck->config, "q_lora_rank");
	if ((!(ql && cJSON_IsNull(ql)) && (s = get_int(&c, "q_lora_rank", 1, 0, 1, 1 << 20, &h->q_lora))) ||
	    (s = get_int(&c, "kv_lora_rank", 1, 0, 1, 1 << 20, &h->kv_lora)) ||
	    (s = get_int(&c, "qk_nope_head_dim", 1, 0, 1, 65536, &h->nope)) ||
	    (s = get_int(&c, "qk_rope_head_dim", 1, 0, 1, 65536, &h->rope_dim)) ||
	    (s = get_int(&c, "v_head_dim", 1, 0, 1, 65536, &h->vdim)) ||
	    (s = get_int(&c, "moe_intermediate_size", 1, 0, 1, 1 << 26, &h->moe_ff)) ||
	    (s = get_int(&c, "n_routed_experts", 1, 0, 1, 65536, &h->n_exp)) ||
	    (s = get_int(&c, "num_experts_per_tok", 1, 0, 1, h->n_exp, &h->n_used)) ||
	    (s = get_int(&c, "n_shared_experts", 0, 0, 0, 65536, &h->n_shared)) ||
	    (s = get_int(&c, "first_k_dense_replace", 0, 0, 0, h->n_layer, &h->first_dense)) ||
	    (s = get_int(&c, "n_group", 0, 1, 1, h->n_exp, &h->n_group)) ||
	    (s = get_int(&c, "topk_group", 0, h->n_group, 1, h->n_group, &h->topk_group)) ||
	    (s = get_int(&c, "num_nextn_predict_layers", 0, 0, 0, max_layers, &h->n_mtp)) ||
	    (s = get_num(&c, "routed_scaling_factor", 0, 1.0, 0, 1, 1e6, &h->routed_scale)) ||
	    (s = get_bool(&c, "norm_topk_prob", 0, &h->norm_topk)) ||
	    (s = get_enum(&c, "scoring_func", scoring, 0, &h->sigmoid)))
		return s;
	if (h->n_exp % h->n_group)
		return qf_fail(err, QF_EFORMAT, "%s/config.json: n_group %lld does not divide n_routed_experts %lld",
			       ck->path, (long long)h->n_group, (long long)h->n_exp);
	if ((a->flags & ARCHF_INDEXER) &&
	    ((s = get_int(&c, "index_n_heads", 1, 0, 1, 65536, &h->index_n_heads)) ||
	     (s = get_int(&c, "index_head_dim", 1, 0, h->rope_dim, 65536, &h->index_head_dim)) ||
	     (s = get_int(&c, "index_topk", 1, 0, 1, U32_MAX_INT, &h->index_topk))))
		return s;
	if ((a->flags & ARCHF_INDEXER) && !h->q_lora)
		return bad(&c, "q_lora_rank", "is null; the indexer of %s reads the compressed query", a->gguf);
	if (h->n_layer + h->n_mtp > max_layers)
		return qf_fail(err, QF_EFORMAT,
			       "%s/config.json: num_hidden_layers %lld + num_nextn_predict_layers %lld exceeds the %lld tensors of the checkpoint",
			       ck->path, (long long)h->n_layer, (long long)h->n_mtp, (long long)nt);
	return read_yarn(&c, h);
}

/*
 * quantization_config: weight_block_size ([rows, cols] of an FP8 block
 * scale, integers in [1, 2^20]; [128, 128] when absent) and scale_fmt
 * (absent, or "ue8m0": every scale a power of two, DeepSeek-V3.1+).
 */
qf_status cvt_read_quant_config(const qf_ckpt *ck, hparams *h, qf_err *err)
{
	h->fp8_bo = h->fp8_bi = 128;
	const cJSON *qc = ck->config ? cJSON_GetObjectItemCaseSensitive(ck->config, "quantization_config") : NULL;
	if (!qc || cJSON_IsNull(qc))
		return QF_OK;
	cfg c = { ck->path, "quantization_config.", qc, err };
	if (!cJSON_IsObject(qc))
		return qf_fail(err, QF_EFORMAT, "%s/config.json: \"quantization_config\" is not an object", ck->path);
	static const char *const fmts[] = { "ue8m0", NULL };
	int f = -1;
	qf_status s = get_enum(&c, "scale_fmt", fmts, -1, &f);
	if (s)
		return s;
	h->ue8m0 = f == 0;
	const cJSON *bs = cJSON_GetObjectItemCaseSensitive(qc, "weight_block_size");
	if (!bs || cJSON_IsNull(bs))
		return QF_OK;
	int okk = cJSON_IsArray(bs) && cJSON_GetArraySize(bs) == 2;
	double v[2] = { 0, 0 };
	for (int k = 0; okk && k < 2; k++) {
		const cJSON *e = cJSON_GetArrayItem(bs, k);
		okk = cJSON_IsNumber(e) && floor(e->valuedouble) == e->valuedouble && e->valuedouble >= 1 &&
		      e->valuedouble <= (1 << 20);
		v[k] = okk ? e->valuedouble : 0;
	}
	if (!okk)
		return qf_fail(err, QF_EFORMAT,
			       "%s/config.json: \"quantization_config.weight_block_size\" must be two integers from 1 to 1048576",
			       ck->path);
	h->fp8_bo = (int64_t)v[0];
	h->fp8_bi = (int64_t)v[1];
	return QF_OK;
}
