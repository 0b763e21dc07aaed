/*
 * archmap.c — the tensor maps: which Hugging Face name becomes which GGUF
 * name and class, and the shape config.json implies for each.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/plan.h"

/* Llama, Mistral and the Qwen family: the GQA layer. */
static const cvt_map_row llama_map[] = {
	{ "input_layernorm.weight", "attn_norm.weight", CVT_CLASS_NORM },
	{ "self_attn.q_proj.weight", "attn_q.weight", CVT_CLASS_ATTN },
	{ "self_attn.k_proj.weight", "attn_k.weight", CVT_CLASS_ATTN },
	{ "self_attn.v_proj.weight", "attn_v.weight", CVT_CLASS_ATTN },
	{ "self_attn.o_proj.weight", "attn_output.weight", CVT_CLASS_ATTN },
	{ "post_attention_layernorm.weight", "ffn_norm.weight", CVT_CLASS_NORM },
	{ NULL, NULL, 0 },
};

static const cvt_map_row dense_ffn_map[] = {
	{ "mlp.gate_proj.weight", "ffn_gate.weight", CVT_CLASS_DENSE_FFN },
	{ "mlp.up_proj.weight", "ffn_up.weight", CVT_CLASS_DENSE_FFN },
	{ "mlp.down_proj.weight", "ffn_down.weight", CVT_CLASS_DENSE_FFN },
	{ NULL, NULL, 0 },
};

/* Qwen2: q/k/v biases (1-D, f32 like norms). */
static const cvt_map_row qkv_bias_map[] = {
	{ "self_attn.q_proj.bias", "attn_q.bias", CVT_CLASS_NORM },
	{ "self_attn.k_proj.bias", "attn_k.bias", CVT_CLASS_NORM },
	{ "self_attn.v_proj.bias", "attn_v.bias", CVT_CLASS_NORM },
	{ NULL, NULL, 0 },
};

/* Qwen3: per-head q/k RMS norms; Qwen3-MoE adds the router (experts are stacked by build.c). */
static const cvt_map_row qk_norm_map[] = {
	{ "self_attn.q_norm.weight", "attn_q_norm.weight", CVT_CLASS_NORM },
	{ "self_attn.k_norm.weight", "attn_k_norm.weight", CVT_CLASS_NORM },
	{ NULL, NULL, 0 },
};

static const cvt_map_row qwen_moe_map[] = {
	{ "self_attn.q_norm.weight", "attn_q_norm.weight", CVT_CLASS_NORM },
	{ "self_attn.k_norm.weight", "attn_k_norm.weight", CVT_CLASS_NORM },
	{ "mlp.gate.weight", "ffn_gate_inp.weight", CVT_CLASS_ROUTER },
	{ NULL, NULL, 0 },
};

static const cvt_map_row ds_map[] = {
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

/* DeepSeek-V3.2's lightning indexer (llama.cpp's names, research file §8.2). */
static const cvt_map_row indexer_map[] = {
	{ "self_attn.indexer.wq_b.weight", "indexer.attn_q_b.weight", CVT_CLASS_INDEXER },
	{ "self_attn.indexer.wk.weight", "indexer.attn_k.weight", CVT_CLASS_INDEXER },
	{ "self_attn.indexer.k_norm.weight", "indexer.k_norm.weight", CVT_CLASS_INDEXER },
	{ "self_attn.indexer.k_norm.bias", "indexer.k_norm.bias", CVT_CLASS_INDEXER },
	{ "self_attn.indexer.weights_proj.weight", "indexer.proj.weight", CVT_CLASS_INDEXER },
	{ NULL, NULL, 0 },
};

static const cvt_arch archs[] = {
	{ "LlamaForCausalLM", "llama", ARCH_LLAMA, ARCHF_PERMUTE_QK, { llama_map, dense_ffn_map } },
	{ "MistralForCausalLM", "llama", ARCH_LLAMA, ARCHF_PERMUTE_QK, { llama_map, dense_ffn_map } },
	{ "Qwen2ForCausalLM", "qwen2", ARCH_LLAMA, ARCHF_QKV_BIAS, { llama_map, qkv_bias_map, dense_ffn_map } },
	{ "Qwen3ForCausalLM", "qwen3", ARCH_LLAMA, ARCHF_QK_NORM, { llama_map, qk_norm_map, dense_ffn_map } },
	{ "Qwen3MoeForCausalLM", "qwen3moe", ARCH_LLAMA, ARCHF_QK_NORM | ARCHF_MOE, { llama_map, qwen_moe_map } },
	{ "DeepseekV2ForCausalLM", "deepseek2", ARCH_DEEPSEEK, 0, { ds_map } },
	{ "DeepseekV3ForCausalLM", "deepseek2", ARCH_DEEPSEEK, 0, { ds_map } },
	{ "DeepseekV32ForCausalLM", "deepseek32", ARCH_DEEPSEEK, ARCHF_INDEXER | ARCHF_MTP_DEFAULT, { ds_map, indexer_map } },
};

const cvt_arch *cvt_arch_by_hf(const char *hf)
{
	for (size_t i = 0; hf && i < sizeof archs / sizeof archs[0]; i++)
		if (!strcmp(archs[i].hf, hf))
			return &archs[i];
	return NULL;
}

const cvt_arch *cvt_arch_by_gguf(const char *gguf)
{
	for (size_t i = 0; gguf && i < sizeof archs / sizeof archs[0]; i++)
		if (!strcmp(archs[i].gguf, gguf))
			return &archs[i];
	return NULL;
}

const char *cvt_arch_hf_list(void)
{
	static char list[512];
	if (!list[0])
		for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", archs[i].hf);
	return list;
}

const cvt_map_row *cvt_map_find(const cvt_arch *a, const char *rest)
{
	for (int k = 0; k < 4 && a->maps[k]; k++)
		for (const cvt_map_row *m = a->maps[k]; m->hf; m++)
			if (strcmp(m->hf, rest) == 0)
				return m;
	return NULL;
}

/* Expected 2-D/1-D shapes by GGUF suffix; returns 0 if no rule. */
int cvt_expected_shape(const hparams *h, arch_kind a, const char *g, int *nd, int64_t *d0, int64_t *d1)
{
	*nd = 2;
	int64_t hd = h->head_dim;
	if (!strcmp(g, "attn_q_norm.weight") || !strcmp(g, "attn_k_norm.weight")) {
		*nd = 1;
		*d0 = hd;
		return 1;
	}
	if (!strcmp(g, "indexer.k_norm.weight") || !strcmp(g, "indexer.k_norm.bias")) {
		*nd = 1;
		*d0 = h->index_head_dim;
		return 1;
	}
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
		if (!strcmp(g, "attn_q.weight")) { *d0 = h->n_head * hd; *d1 = h->hidden; return 1; }
		if (!strcmp(g, "attn_k.weight") || !strcmp(g, "attn_v.weight")) { *d0 = h->n_head_kv * hd; *d1 = h->hidden; return 1; }
		if (!strcmp(g, "attn_q.bias")) { *nd = 1; *d0 = h->n_head * hd; return 1; }
		if (!strcmp(g, "attn_k.bias") || !strcmp(g, "attn_v.bias")) { *nd = 1; *d0 = h->n_head_kv * hd; return 1; }
		if (!strcmp(g, "attn_output.weight")) { *d0 = h->hidden; *d1 = h->n_head * hd; return 1; }
		if (!strcmp(g, "ffn_gate.weight") || !strcmp(g, "ffn_up.weight")) { *d0 = h->ff; *d1 = h->hidden; return 1; }
		if (!strcmp(g, "ffn_down.weight")) { *d0 = h->hidden; *d1 = h->ff; return 1; }
		if (!strcmp(g, "ffn_gate_inp.weight")) { *d0 = h->n_exp; *d1 = h->hidden; return 1; }
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
	if (!strcmp(g, "indexer.attn_q_b.weight")) { *d0 = h->index_n_heads * h->index_head_dim; *d1 = h->q_lora; return 1; }
	if (!strcmp(g, "indexer.attn_k.weight")) { *d0 = h->index_head_dim; *d1 = h->hidden; return 1; }
	if (!strcmp(g, "indexer.proj.weight")) { *d0 = h->index_n_heads; *d1 = h->hidden; return 1; }
	return 0;
}

/* Parses "model.layers.N.rest" → N and rest; 0 if not a layer tensor. */
int cvt_parse_layer(const char *name, int64_t *layer, const char **rest)
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
int cvt_parse_expert(const char *rest, int64_t *e, int *kind)
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
