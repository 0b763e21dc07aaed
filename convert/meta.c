/*
 * meta.c — the GGUF metadata of a checkpoint plan: general.*, the
 * architecture keys from config.json, and the vocabulary.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "convert/plan.h"

void cvt_plan_set_file_type(cvt_plan *p, uint32_t ftype)
{
	p->ftype_set = 1;
	p->ftype = ftype;
}

/* llama_ftype of a file whose weights are mostly f (llama.h: the *_S ftypes for plain K-quants). */
static uint32_t ftype_of(qf_dtype f)
{
	switch (f) {
	case QF_F16: return 1;
	case QF_Q4_0: return 2;
	case QF_Q4_1: return 3;
	case QF_Q8_0: return 7;
	case QF_Q5_0: return 8;
	case QF_Q5_1: return 9;
	case QF_Q2_K: return 10;
	case QF_Q3_K: return 11;
	case QF_Q4_K: return 14;
	case QF_Q5_K: return 16;
	case QF_Q6_K: return 18;
	case QF_BF16: return 32;
	case QF_MXFP4: return 38;
	default: return 0;
	}
}

uint32_t cvt_plan_file_type(const cvt_plan *p)
{
	if (p->ftype_set)
		return p->ftype;
	/* the format of most 2-D weight bytes (a Q4_0 file's Q8_0 embeddings do not decide it) */
	uint64_t bytes[QF_DTYPE_COUNT] = { 0 };
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].ndim >= 2 && p->items[i].fmt >= 0 && p->items[i].fmt < QF_DTYPE_COUNT)
			bytes[p->items[i].fmt] += cvt_item_out_bytes(&p->items[i], 0);
	int best = -1;
	for (int f = 0; f < QF_DTYPE_COUNT; f++)
		if (bytes[f] && (best < 0 || bytes[f] > bytes[best]))
			best = f;
	return best < 0 ? 0 : ftype_of((qf_dtype)best);
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
	/* MTP layers kept are blocks too: llama.cpp's n_layer = block_count − nextn_predict_layers */
	qf_gguf_set_u32(w, KEY("block_count"), (uint32_t)(h->n_layer + (p->keep_mtp ? h->n_mtp : 0)));
	qf_gguf_set_u32(w, KEY("context_length"), (uint32_t)h->ctx);
	qf_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)h->hidden);
	qf_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)h->ff);
	qf_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)h->n_head);
	qf_gguf_set_f32(w, KEY("rope.freq_base"), (float)h->rope_theta);
	qf_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)h->eps);
	qf_gguf_set_u32(w, KEY("vocab_size"), (uint32_t)h->vocab);
	if (p->arch == ARCH_LLAMA) {
		qf_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)h->n_head_kv);
		qf_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)h->head_dim);
		if (h->head_dim_given) { /* llama.cpp's converter writes them whenever config.json has head_dim */
			qf_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)h->head_dim);
			qf_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)h->head_dim);
		}
		if (h->rope == ROPE_LINEAR) {
			qf_gguf_set_str(w, KEY("rope.scaling.type"), "linear");
			qf_gguf_set_f32(w, KEY("rope.scaling.factor"), (float)h->rope_factor);
		} else if (h->rope == ROPE_DYNAMIC) {
			/* no effect up to max_position_embeddings (transformers' dynamic NTK); verify refuses longer */
			qf_gguf_set_f32(w, "qforge.rope_dynamic_factor", (float)h->rope_factor);
		}
		if (p->ad && (p->ad->flags & ARCHF_MOE)) {
			qf_gguf_set_u32(w, KEY("expert_count"), (uint32_t)h->n_exp);
			qf_gguf_set_u32(w, KEY("expert_used_count"), (uint32_t)h->n_used);
			qf_gguf_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)h->moe_ff);
		}
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
		if (p->keep_mtp && h->n_mtp)
			qf_gguf_set_u32(w, KEY("nextn_predict_layers"), (uint32_t)h->n_mtp);
		if (p->ad && (p->ad->flags & ARCHF_INDEXER)) {
			qf_gguf_set_u32(w, KEY("attention.indexer.head_count"), (uint32_t)h->index_n_heads);
			qf_gguf_set_u32(w, KEY("attention.indexer.key_length"), (uint32_t)h->index_head_dim);
			qf_gguf_set_u32(w, KEY("attention.indexer.top_k"), (uint32_t)h->index_topk);
		}
	}
#undef KEY
	qf_gguf_set_str(w, "qforge.source", p->ck->path);
	if (p->src_is_fp8) {
		/* ue8m0: config.json's scale_fmt, or scales stored as F8_E8M0 (powers of two by construction) */
		int ue = h->ue8m0 || (p->src_scale_e8m0 && !p->src_scale_f32);
		qf_gguf_set_str(w, "qforge.source_quantization",
				ue ? "fp8-e4m3-b128 (dequantized with _scale_inv; scale_fmt ue8m0, read exactly)"
				   : "fp8-e4m3-b128 (dequantized with _scale_inv)");
		qf_gguf_set_str(w, "qforge.source_scale_format", ue ? "ue8m0" : "f32");
		/* only when some are not F32, so F32-scaled sources convert to the bytes they always did */
		if (p->src_scale_e8m0)
			qf_gguf_set_str(w, "qforge.source_scale_dtype", p->src_scale_f32 ? "F32, F8_E8M0" : "F8_E8M0");
	}
	if (p->src_is_ms)
		qf_gguf_set_str(w, "qforge.source_quantization",
				"msModelSlim (dequantized: (weight - weight_offset) * weight_scale)");
	return cvt_vocab_set(p->ck, h->vocab, p->opt.pre, w, err);
}
