/*
 * msdesc.h — Ascend msModelSlim (AscendV1) checkpoints as a source:
 * quant_model_description.json and the per-module tensors it types
 * (msModelSlim docs/zh/user_guide/quantization_formats/ascendv1.md;
 * vllm-ascend vllm_ascend/quantization/methods/w8a16.py, w8a8_static.py).
 *
 * quant_model_description.json is one JSON object:
 *   model_quant_type   a type name (below)
 *   version            string ("1.0.0")
 *   group_size         integer ≥ 0 (0: per channel)
 *   kv_quant_type, kv_cache_type, fa_quant_type, reduce_quant_type   strings
 *   metadata, optional objects; ignore an array
 *   is_rot_used        bool; true (QuaRot's global rotation, applied at run time) is refused
 *   "<tensor>": TYPE   for EVERY tensor of quant_model_weights*.safetensors
 *
 * Per module MOD (a tensor name without ".weight"), every tensor typed alike:
 *   W8A16, W8A8_DYNAMIC, W8A8_MIX
 *       MOD.weight I8 [N, K]
 *       MOD.weight_scale [N, G] (F32, BF16 or F16; G = 1 per channel, else K / G columns a group)
 *       MOD.weight_offset [N, G], same dtype
 *       w[n][k] = (q[n][k] − offset[n][k/g]) · scale[n][k/g]
 *   W8A8 (static, per-channel symmetric weights, per-tensor activations)
 *       MOD.weight I8 [N, K], MOD.deq_scale [N] (F32, or I64 whose low 32 bits are the f32),
 *       MOD.input_scale [1], MOD.input_offset [1], MOD.quant_bias I32 [N]:
 *       deq_scale = input_scale · weight_scale, so w = q · deq_scale[n] / input_scale;
 *       MOD.weight_scale / weight_offset, when saved too, are used instead.
 *   WFP8AFP8_DYNAMIC
 *       MOD.weight F8_E4M3 [N, K], weight_scale / weight_offset as W8A16.
 *   FLOAT   kept as stored (an int8 weight typed FLOAT is an error).
 *   C8, FAQuant   KV-cache / attention activation scales: dropped (the float model has none).
 * Activation-only tensors (input_scale, input_offset, quant_bias, deq_scale) are dropped
 * once the weight is dequantized.  Other types (W4A8_DYNAMIC, W4A4_DYNAMIC, the MXFP family,
 * W16A16S, FlatQuant, …) are errors naming the tensor and type.
 */
#ifndef QF_MSDESC_H
#define QF_MSDESC_H

#include <stddef.h>
#include <stdint.h>

#include "util/qf.h"
#include "formats/safetensors.h"

typedef enum qf_ms_type {
	QF_MS_FLOAT, QF_MS_W8A16, QF_MS_W8A8, QF_MS_W8A8_DYNAMIC, QF_MS_W8A8_MIX, QF_MS_WFP8AFP8_DYNAMIC,
	QF_MS_ACT,                /* C8, FAQuant: activation-side tensors, dropped */
	QF_MS_UNREAD,             /* a type msModelSlim defines that qforge does not read */
} qf_ms_type;

typedef struct qf_msdesc qf_msdesc;

/* Parses a description held in memory; label names it in messages.  The caller owns *out. */
qf_status qf_msdesc_parse(const char *text, size_t len, const char *label, qf_msdesc **out, qf_err *err);
/* Reads and parses path (at most 64 MiB). */
qf_status qf_msdesc_load(const char *path, qf_msdesc **out, qf_err *err);
void qf_msdesc_free(qf_msdesc *d);

const char *qf_msdesc_path(const qf_msdesc *d);          /* borrowed */
const char *qf_msdesc_model_type(const qf_msdesc *d);    /* model_quant_type, or "" */
size_t qf_msdesc_count(const qf_msdesc *d);              /* tensor entries */
/* Type of a tensor's entry; 0 when the description has none.  *name: the type string (borrowed). */
int qf_msdesc_type(const qf_msdesc *d, const char *tensor, qf_ms_type *t, const char **name);

/* How a quantized weight dequantizes. */
typedef struct qf_ms_weight {
	qf_ms_type type;
	const qf_tensor *scale;   /* [N, G], or NULL (W8A8 static from deq_scale) */
	const qf_tensor *offset;  /* [N, G], or NULL */
	const qf_tensor *deq;     /* W8A8 static without weight_scale: deq_scale [N] */
	const qf_tensor *in_scale;/* … and input_scale [1] */
	int64_t group;            /* columns one scale covers */
} qf_ms_weight;

typedef enum qf_ms_role {
	QF_MS_PLAIN,              /* kept as stored */
	QF_MS_QUANT,              /* a quantized weight: dequantize with *w */
	QF_MS_DROPPED,            /* a scale/offset read with its weight, or activation-only */
} qf_ms_role;

/*
 * Checks every tensor of st against the description: an entry for each, a type
 * qforge reads, dtypes and shapes of each module's tensors.  The first problem
 * is an error naming the file (shard or description) and the tensor.
 */
qf_status qf_msdesc_check(const qf_msdesc *d, const qf_st *st, qf_err *err);
/* The role of t (after qf_msdesc_check passed); fills *w for QF_MS_QUANT. */
qf_ms_role qf_ms_resolve(const qf_msdesc *d, const qf_st *st, const qf_tensor *t, qf_ms_weight *w);
/* Row r of quantized weight t as f32 (K = t->shape[1] values). */
void qf_ms_row_f32(const qf_tensor *t, const qf_ms_weight *w, int64_t r, float *dst);

#endif
