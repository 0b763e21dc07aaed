#include "config.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "formats/dtype.h"
#include "quantize/ggml_quants.h"

static const int8_t kvalues_mxfp4[16] = { 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12 };

float qnt_e8m0_half(uint8_t e)
{
	uint32_t bits = e < 2 ? (0x00200000u << e) : ((uint32_t)(e - 1) << 23);
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

void qnt_quant_q8_0_ref(const float *x, void *dst, int64_t n)
{
	qnt_block_q8_0 *y = dst;
	for (int64_t i = 0; i < n / QNT_QK; i++) {
		const float *b = x + i * QNT_QK;
		float amax = 0.0f;
		for (int j = 0; j < QNT_QK; j++)
			amax = fmaxf(amax, fabsf(b[j]));
		const float d = amax / 127.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = qf_f32_to_f16(d);
		for (int j = 0; j < QNT_QK; j++)
			y[i].qs[j] = (int8_t)roundf(b[j] * id);
	}
}

void qnt_quant_q4_0_ref(const float *x, void *dst, int64_t n)
{
	qnt_block_q4_0 *y = dst;
	for (int64_t i = 0; i < n / QNT_QK; i++) {
		const float *b = x + i * QNT_QK;
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < QNT_QK; j++) {
			if (amax < fabsf(b[j])) {
				amax = fabsf(b[j]);
				max = b[j];
			}
		}
		const float d = max / -8.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = qf_f32_to_f16(d);
		for (int j = 0; j < QNT_QK / 2; j++) {
			int8_t q0 = (int8_t)(b[j] * id + 8.5f);
			int8_t q1 = (int8_t)(b[j + QNT_QK / 2] * id + 8.5f);
			uint8_t u0 = q0 < 15 ? (uint8_t)q0 : 15;
			uint8_t u1 = q1 < 15 ? (uint8_t)q1 : 15;
			y[i].qs[j] = (uint8_t)(u0 | (u1 << 4));
		}
	}
}

void qnt_quant_q4_1_ref(const float *x, void *dst, int64_t n)
{
	qnt_block_q4_1 *y = dst;
	for (int64_t i = 0; i < n / QNT_QK; i++) {
		const float *b = x + i * QNT_QK;
		float min = FLT_MAX, max = -FLT_MAX;
		for (int j = 0; j < QNT_QK; j++) {
			if (b[j] < min)
				min = b[j];
			if (b[j] > max)
				max = b[j];
		}
		const float d = (max - min) / 15.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = qf_f32_to_f16(d);
		y[i].m = qf_f32_to_f16(min);
		for (int j = 0; j < QNT_QK / 2; j++) {
			int8_t q0 = (int8_t)((b[j] - min) * id + 0.5f);
			int8_t q1 = (int8_t)((b[j + QNT_QK / 2] - min) * id + 0.5f);
			uint8_t u0 = q0 < 15 ? (uint8_t)q0 : 15;
			uint8_t u1 = q1 < 15 ? (uint8_t)q1 : 15;
			y[i].qs[j] = (uint8_t)(u0 | (u1 << 4));
		}
	}
}

static int best_index_mxfp4(float x, float e)
{
	int best = 0;
	float best_err = fabsf(kvalues_mxfp4[0] * e - x);
	for (int i = 1; i < 16; i++) {
		float err = fabsf(kvalues_mxfp4[i] * e - x);
		if (err < best_err) {
			best = i;
			best_err = err;
		}
	}
	return best;
}

void qnt_quant_mxfp4_ref(const float *x, void *dst, int64_t n)
{
	qnt_block_mxfp4 *y = dst;
	for (int64_t i = 0; i < n / QNT_QK; i++) {
		const float *b = x + i * QNT_QK;
		float amax = 0.0f;
		for (int j = 0; j < QNT_QK; j++)
			if (amax < fabsf(b[j]))
				amax = fabsf(b[j]);
		/* ggml casts float → uint8_t; on x86 that truncates through int32. */
		const uint8_t e = amax > 0.0f ? (uint8_t)(int)(floorf(log2f(amax)) - 2 + 127) : 0;
		const float d = qnt_e8m0_half(e);
		y[i].e = e;
		for (int j = 0; j < QNT_QK / 2; j++) {
			uint8_t q0 = (uint8_t)best_index_mxfp4(b[j], d);
			uint8_t q1 = (uint8_t)best_index_mxfp4(b[j + QNT_QK / 2], d);
			y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

void qnt_dequant_q8_0(const void *src, float *dst, int64_t n)
{
	const qnt_block_q8_0 *x = src;
	for (int64_t i = 0; i < n / QNT_QK; i++) {
		const float d = qf_f16_to_f32(x[i].d);
		for (int j = 0; j < QNT_QK; j++)
			dst[i * QNT_QK + j] = x[i].qs[j] * d;
	}
}

void qnt_dequant_q4_0(const void *src, float *dst, int64_t n)
{
	const qnt_block_q4_0 *x = src;
	for (int64_t i = 0; i < n / QNT_QK; i++) {
		const float d = qf_f16_to_f32(x[i].d);
		for (int j = 0; j < QNT_QK / 2; j++) {
			dst[i * QNT_QK + j] = ((x[i].qs[j] & 0x0f) - 8) * d;
			dst[i * QNT_QK + j + QNT_QK / 2] = ((x[i].qs[j] >> 4) - 8) * d;
		}
	}
}

void qnt_dequant_q4_1(const void *src, float *dst, int64_t n)
{
	const qnt_block_q4_1 *x = src;
	for (int64_t i = 0; i < n / QNT_QK; i++) {
		const float d = qf_f16_to_f32(x[i].d);
		const float m = qf_f16_to_f32(x[i].m);
		for (int j = 0; j < QNT_QK / 2; j++) {
			dst[i * QNT_QK + j] = (x[i].qs[j] & 0x0f) * d + m;
			dst[i * QNT_QK + j + QNT_QK / 2] = (x[i].qs[j] >> 4) * d + m;
		}
	}
}

void qnt_dequant_mxfp4(const void *src, float *dst, int64_t n)
{
	const qnt_block_mxfp4 *x = src;
	for (int64_t i = 0; i < n / QNT_QK; i++) {
		const float d = qnt_e8m0_half(x[i].e);
		for (int j = 0; j < QNT_QK / 2; j++) {
			dst[i * QNT_QK + j] = kvalues_mxfp4[x[i].qs[j] & 0x0f] * d;
			dst[i * QNT_QK + j + QNT_QK / 2] = kvalues_mxfp4[x[i].qs[j] >> 4] * d;
		}
	}
}
