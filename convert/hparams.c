/*
 * hparams.c — config.json → hyperparameters (one architecture family at a
 * time), with every value checked before the plan uses it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "convert/plan.h"

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

qf_status cvt_read_hparams(const qf_ckpt *ck, arch_kind a, hparams *h, qf_err *err)
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
