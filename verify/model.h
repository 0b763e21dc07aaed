/*
 * model.h — a minimal, readable fp32 reference forward pass (llama2.c is the
 * spirit) for Llama (GQA, tied or untied head) and DeepSeek-V2/V3/R1 (MLA
 * with or without q_lora, sigmoid- or softmax-routed MoE with group limits
 * and correction bias, shared experts, dense leading layers, YaRN).
 *
 * The model is a plan (convert/convert.h) over any source qforge reads —
 * HF folder (FP8 + scales, BF16, F16, F32), GGUF (F32…Q4_1, MXFP4), packed
 * bundle (every format) — so tensors have GGUF names and llama.cpp's layout
 * (adjacent-pair RoPE, stacked experts, split kv_b) whatever the source.
 * Weights are decoded to f32 once when they fit in the memory budget, and
 * otherwise streamed in row blocks for every chunk of tokens (the weights of
 * a layer are read once per chunk, not once per token).
 *
 * Results are identical for any thread count: each output element is
 * computed by one worker, in a fixed order.
 */
#ifndef VFY_MODEL_H
#define VFY_MODEL_H

#include <stdint.h>

#include "convert/convert.h"

typedef struct vfy_hparams {
	int deepseek;
	int64_t n_layer, hidden, vocab, n_head, n_head_kv, head_dim, ff;
	double eps, rope_base;
	int64_t rope_dim;
	/* DeepSeek */
	int64_t q_lora, kv_lora, nope, vdim, n_exp, n_used, n_shared, moe_ff, first_dense;
	int64_t n_group, topk_group;
	int sigmoid, norm_topk;
	double routed_scale;
	int yarn;
	double yarn_factor, yarn_beta_fast, yarn_beta_slow, yarn_mscale_all, yarn_attn_factor;
	int64_t yarn_orig_ctx;
} vfy_hparams;

typedef struct vfy_model vfy_model;

/*
 * Opens any model path.  mem_budget: bytes of f32 weights that may be kept
 * decoded (0: always stream).
 */
qf_status vfy_model_open(const char *path, int threads, uint64_t mem_budget, vfy_model **out, qf_err *err);
void vfy_model_free(vfy_model *m);
const vfy_hparams *vfy_model_hparams(const vfy_model *m);
cvt_plan *vfy_model_plan(vfy_model *m);
/* 1 when all weights are held decoded. */
int vfy_model_cached(const vfy_model *m);
/* Source bytes of all weights. */
uint64_t vfy_model_weight_bytes(const vfy_model *m);
/* Source bytes of weights decoded by forward passes so far (streaming mode). */
uint64_t vfy_model_streamed(const vfy_model *m);

/*
 * Runs tokens[0..T) as one sequence from position 0 and writes the logits
 * of positions want[i] (n_want of them) to logits[i][vocab].
 */
qf_status vfy_forward(vfy_model *m, const int32_t *tokens, int64_t T, const int64_t *want, int64_t n_want,
		      float *logits, qf_err *err);

#endif
