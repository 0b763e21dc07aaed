/*
 * llama_mix.h — llama.cpp's quantization mixes: every tensor's type exactly
 * as current llama.cpp's llama-quantize picks it for an ftype.
 *
 * Source: src/llama-quant.cpp of llama.cpp 82bb48500 (as in
 * unslothai/llama.cpp d32676d7, 2026-08-18); llama_mix.c cites its lines.
 * In order, for every tensor of the plan in llama.cpp's loader order
 * (sorted by the layer of "blk.N.", global tensors first, then by name):
 *   1. not quantizable (1-D, not "*weight", "_norm.weight", routers
 *      "ffn_gate_inp.weight", …)   → unchanged (what convert writes)
 *   2. --keep REGEX                → unchanged; --type REGEX=FORMAT → FORMAT
 *      (llama.cpp's --tensor-type: the mix rules are skipped)
 *   3. the ftype's rules: output head (and a tied token_embd) Q6_K,
 *      attn_v-like tensors and ffn_down by use_more_bits, …
 *   4. the fallback when the row is not a multiple of the type's block:
 *      Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and F16
 *      when even that block does not divide it.
 */
#ifndef QNT_LLAMA_MIX_H
#define QNT_LLAMA_MIX_H

#include "convert/convert.h"
#include "quantize/profile.h"

/* llama_ftype values of the mixes qforge writes (llama.h). */
enum {
	QNT_FTYPE_Q4_0 = 2,
	QNT_FTYPE_Q5_0 = 8,
	QNT_FTYPE_Q2_K = 10,
	QNT_FTYPE_Q3_K_M = 12,
	QNT_FTYPE_Q4_K_M = 15,
	QNT_FTYPE_Q5_K_M = 17,
	QNT_FTYPE_Q6_K = 18,
};

/* "Q4_K_M" (any case) → 15; -1 for a mix qforge does not write. */
int qnt_mix_ftype_from_name(const char *name);
const char *qnt_mix_ftype_name(int ftype);

/* What the rules read of the model (llama.cpp's hparams). */
typedef struct qnt_mix_model {
	int n_layer;              /* <arch>.block_count (llama.cpp's n_layer_all) */
	int n_head, n_head_kv;    /* layer 0 */
	int n_expert;             /* <arch>.expert_count, 0 when absent */
	int is_70b;               /* llama with 80 layers and GQA (LLM_TYPE_70B) */
} qnt_mix_model;

qf_status qnt_mix_model_of(cvt_plan *p, qnt_mix_model *m, qf_err *err);

/* llama.cpp's tensor_allows_quantization for a GGUF name. */
int qnt_mix_allows(const char *name, int ndim);
/* use_more_bits(i, n): the layers that get more bits. */
int qnt_mix_use_more_bits(int i_layer, int n_layer);

/*
 * Sets every item's format for the mix (rules: --type/--keep overrides,
 * may be NULL).  Items whose format fell back get ->fallback = 1.
 */
qf_status qnt_mix_apply(cvt_plan *p, int ftype, const qnt_rule *rules, size_t nrules, int allow_requantize,
			qf_err *err);

/*
 * llama.cpp's one rule of its Q4_0 / Q5_0 mixes that depends on an
 * importance matrix: with one, ffn_down* of the first block_count/8 layers
 * becomes Q4_1 / Q5_1 (ftype QNT_FTYPE_Q4_0 / QNT_FTYPE_Q5_0).  Applied to
 * an already chosen plan: items whose format is quantized and that no
 * --type/--keep rule names.
 */
qf_status qnt_mix_imatrix_ffn_down(cvt_plan *p, int ftype, const qnt_rule *rules, size_t nrules, qf_err *err);

#endif
