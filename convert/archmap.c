/*
 * archmap.c — the tensor maps: which Hugging Face name becomes which GGUF
 * name and class, and the shape config.json implies for each.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "convert/plan.h"

const cvt_map_row cvt_llama_map[] = {
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

const cvt_map_row cvt_ds_map[] = {
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

const cvt_map_row *cvt_map_find(const cvt_map_row *m, const char *rest)
{
	for (; m->hf; m++)
		if (strcmp(m->hf, rest) == 0)
			return m;
	return NULL;
}

/* Expected 2-D/1-D shapes by GGUF suffix; returns 0 if no rule. */
int cvt_expected_shape(const hparams *h, arch_kind a, const char *g, int *nd, int64_t *d0, int64_t *d1)
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
