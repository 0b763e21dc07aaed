/*
 * hf.h — Hugging Face checkpoint output: the source's own tensor names and
 * shapes (experts one per module, kv_b_proj joined, no Q/K permutation),
 * in the layout a serving stack's loader reads.
 *
 * Folder written (a temporary folder, renamed when complete):
 *   config.json                 the source's, quantization_config replaced
 *                               (removed for float output and msModelSlim)
 *   model.safetensors           one shard, or
 *   model-0000k-of-0000n.safetensors + model.safetensors.index.json
 *                               {"metadata": {"total_size": N}, "weight_map": {tensor: shard}}
 *                               (msModelSlim: quant_model_weights[-0000k-of-0000n].safetensors)
 *   quant_model_description.json  msModelSlim only: {tensor: TYPE, model_quant_type, version, …}
 *   tokenizer, generation and chat-template files, copied.
 * Each shard's "__metadata__" holds "format": "pt" and, per tensor,
 * "qforge.xxh64.NAME": 16 hex digits of the xxh64 of its bytes.
 *
 * Per source tensor, one encoding (MOD = the name without ".weight"):
 *   COPY        the source bytes (BF16/F32/any dtype, FP8 with its _scale_inv)
 *   FLOAT       FP8 dequantized (w = e4m3 × scale_inv[i/128][j/128]) → F32/F16/BF16
 *   FP8_BLOCK   MOD.weight F8_E4M3 [N,K] + MOD.weight_scale_inv F32 [⌈N/128⌉,⌈K/128⌉]
 *               (DeepSeek/vLLM Fp8Config; ue8m0: scales rounded up to powers of two)
 *   CT_FP8      compressed-tensors float-quantized: MOD.weight F8_E4M3 + MOD.weight_scale
 *               [⌈N/128⌉,⌈K/128⌉] (scale dtype)
 *   CT_PACK     compressed-tensors pack-quantized, b = 4 or 8:
 *               MOD.weight_packed I32 [N, ⌈K·b/32⌉]: element k of a row at bits
 *                 (k·b) mod 32 of word k·b/32, stored as q + 2^(b−1) (LSB first);
 *               MOD.weight_scale [N, ⌈K/g⌉] (g = K for per channel);
 *               MOD.weight_shape I64 [2] = {N, K};
 *               asymmetric: MOD.weight_zero_point I32 [⌈N·b/32⌉, ⌈K/g⌉] packed along dim 0
 *               w = (q − zp) · scale; symmetric scale = absmax / (2^b − 1)·2 (absmax/7.5, /127.5)
 *   CT_INT8     compressed-tensors int-quantized: MOD.weight I8 [N,K] + MOD.weight_scale [N,1]
 *   MS_INT8     msModelSlim W8A16 / W8A8_DYNAMIC: MOD.weight I8 [N,K], MOD.weight_scale F32 [N,1],
 *               MOD.weight_offset F32 [N,1] (zeros); w = (q − offset) · scale, scale = absmax/127
 */
#ifndef CVT_HF_H
#define CVT_HF_H

#include <stdint.h>

#include "convert/convert.h"

typedef enum cvt_hf_layout {
	CVT_HF_FLOAT,           /* fp8_cast_bf16.py's result */
	CVT_HF_FP8,             /* DeepSeek FP8 (quant_method fp8) */
	CVT_HF_CT,              /* compressed-tensors */
	CVT_HF_MSMODELSLIM,     /* Ascend msModelSlim (quant_model_description.json) */
} cvt_hf_layout;

typedef enum cvt_hf_enc {
	CVT_HF_COPY, CVT_HF_DEQUANT, CVT_HF_FP8_BLOCK, CVT_HF_CT_FP8, CVT_HF_CT_PACK, CVT_HF_CT_INT8,
	CVT_HF_MS_INT8,
} cvt_hf_enc;

/* A scheme a profile names for a tensor class ("fp8-b128", "int4-g32", "w8a8", …). */
typedef struct cvt_hf_scheme {
	cvt_hf_enc enc;
	int bits, group;          /* CT_PACK: 4 or 8; group 0 = per channel */
	int asym;
	int ue8m0;                /* FP8_BLOCK: scales rounded up to powers of two */
	int act_dynamic;          /* W8A8 (int) / fp8: dynamic per-token activations */
	qf_dtype dtype;           /* DEQUANT: output dtype */
} cvt_hf_scheme;

/* Parses a scheme name; 0 if unknown. */
int cvt_hf_scheme_parse(const char *name, cvt_hf_scheme *s);
/* Scheme names for messages ("bf16, f16, …"). */
const char *cvt_hf_scheme_names(void);

typedef struct cvt_hf_item {
	const qf_tensor *t;       /* source tensor */
	const qf_tensor *scale;   /* its FP8 _scale_inv, or NULL */
	qf_ms_weight ms;          /* msModelSlim source weight (ms.type != QF_MS_FLOAT): dequantized as read */
	int64_t bo, bi;           /* scale block */
	cvt_class cls;
	int layer;                /* -1 for global tensors */
	cvt_hf_scheme sch;
	qf_dtype scale_dtype;     /* CT scales: the source's torch_dtype */
	int fallback;             /* the scheme could not hold this tensor: kept */
	int raw;                  /* CT_FP8 from DeepSeek FP8: weight and F32 block scale copied as they are */
	int lossy_note;           /* ue8m0 from free scales: re-quantized, lossy */
} cvt_hf_item;

typedef struct cvt_hf_plan {
	qf_ckpt *ck;              /* owned */
	char *src_path;
	cvt_hf_layout layout;
	cvt_hf_item *items;
	size_t n;
	int64_t n_layer;          /* num_hidden_layers (MTP layers come after) */
	qf_dtype torch_dtype;     /* config.json's torch_dtype (BF16 when absent) */
	int src_fp8;
	int src_ms;               /* an msModelSlim source: its int8 weights are dequantized */
	int src_ct;               /* compressed-tensors source: its modules decode (convert/ct_source.h) */
	cvt_options opt;
} cvt_hf_plan;

/* Opens a checkpoint (folder, tar, file) and plans every tensor as COPY, or
 * FP8 → opt->outtype (BF16 when NONE) as DEQUANT. */
qf_status cvt_hf_plan_open(const char *path, const cvt_options *o, cvt_hf_plan **out, qf_err *err);
void cvt_hf_plan_free(cvt_hf_plan *p);
/* Class of an HF tensor name (model.layers.N.mlp.experts.E.up_proj.weight → expert). */
cvt_class cvt_class_of_hf(const char *name, int ndim);

/* Output tensors of one item (name, dtype, shape), for listing and tests. */
typedef struct cvt_hf_part {
	char name[256];
	qf_dtype dtype;
	int ndim;
	int64_t shape[4];
	uint64_t nbytes;
} cvt_hf_part;
int cvt_hf_item_parts(const cvt_hf_plan *p, const cvt_hf_item *it, cvt_hf_part *parts);

typedef struct cvt_hf_write_opts {
	uint64_t shard_size;      /* bytes of tensor data per shard; 0 = 5 GB */
	int force, threads;
	int quality;              /* measure rel-RMS / cosine of quantized tensors */
	cvt_progress_fn prog;
	void *ud;
	const char *profile_name; /* recorded in quant descriptions, or NULL */
} cvt_hf_write_opts;

/* Writes the folder; bytes identical for any thread count. */
qf_status cvt_hf_write(cvt_hf_plan *p, const char *dir, const cvt_hf_write_opts *wo, cvt_result *res, qf_err *err);

/* Parses "5GB", "500MB", "1.5GiB", "123" (bytes) → bytes (decimal units as HF: GB = 1e9). */
int cvt_parse_size(const char *s, uint64_t *out);

#endif
