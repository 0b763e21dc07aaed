#include "config.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "formats/dtype.h"
#include "formats/ggml_quants.h"

static const int8_t kvalues_mxfp4[16] = { 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12 };

float qf_e8m0_half(uint8_t e)
{
	uint32_t bits = e < 2 ? (0x00200000u << e) : ((uint32_t)(e - 1) << 23);
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

void qf_quant_q8_0_ref(const float *x, void *dst, int64_t n)
{
	qf_block_q8_0 *y = dst;
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float *b = x + i * QF_QK;
		float amax = 0.0f;
		for (int j = 0; j < QF_QK; j++)
			amax = fmaxf(amax, fabsf(b[j]));
		const float d = amax / 127.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = qf_f32_to_f16(d);
		for (int j = 0; j < QF_QK; j++)
			y[i].qs[j] = (int8_t)roundf(b[j] * id);
	}
}

void qf_quant_q4_0_ref(const float *x, void *dst, int64_t n)
{
	qf_block_q4_0 *y = dst;
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float *b = x + i * QF_QK;
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < QF_QK; j++) {
			if (amax < fabsf(b[j])) {
				amax = fabsf(b[j]);
				max = b[j];
			}
		}
		const float d = max / -8.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = qf_f32_to_f16(d);
		for (int j = 0; j < QF_QK / 2; j++) {
			int8_t q0 = (int8_t)(b[j] * id + 8.5f);
			int8_t q1 = (int8_t)(b[j + QF_QK / 2] * id + 8.5f);
			uint8_t u0 = q0 < 15 ? (uint8_t)q0 : 15;
			uint8_t u1 = q1 < 15 ? (uint8_t)q1 : 15;
			y[i].qs[j] = (uint8_t)(u0 | (u1 << 4));
		}
	}
}

void qf_quant_q4_1_ref(const float *x, void *dst, int64_t n)
{
	qf_block_q4_1 *y = dst;
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float *b = x + i * QF_QK;
		float min = FLT_MAX, max = -FLT_MAX;
		for (int j = 0; j < QF_QK; j++) {
			if (b[j] < min)
				min = b[j];
			if (b[j] > max)
				max = b[j];
		}
		const float d = (max - min) / 15.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = qf_f32_to_f16(d);
		y[i].m = qf_f32_to_f16(min);
		for (int j = 0; j < QF_QK / 2; j++) {
			int8_t q0 = (int8_t)((b[j] - min) * id + 0.5f);
			int8_t q1 = (int8_t)((b[j + QF_QK / 2] - min) * id + 0.5f);
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

void qf_quant_mxfp4_ref(const float *x, void *dst, int64_t n)
{
	qf_block_mxfp4 *y = dst;
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float *b = x + i * QF_QK;
		float amax = 0.0f;
		for (int j = 0; j < QF_QK; j++)
			if (amax < fabsf(b[j]))
				amax = fabsf(b[j]);
		/* ggml casts float → uint8_t; on x86 that truncates through int32. */
		const uint8_t e = amax > 0.0f ? (uint8_t)(int)(floorf(log2f(amax)) - 2 + 127) : 0;
		const float d = qf_e8m0_half(e);
		y[i].e = e;
		for (int j = 0; j < QF_QK / 2; j++) {
			uint8_t q0 = (uint8_t)best_index_mxfp4(b[j], d);
			uint8_t q1 = (uint8_t)best_index_mxfp4(b[j + QF_QK / 2], d);
			y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

void qf_dequant_q8_0(const void *src, float *dst, int64_t n)
{
	const qf_block_q8_0 *x = src;
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float d = qf_f16_to_f32(x[i].d);
		for (int j = 0; j < QF_QK; j++)
			dst[i * QF_QK + j] = x[i].qs[j] * d;
	}
}

void qf_dequant_q4_0(const void *src, float *dst, int64_t n)
{
	const qf_block_q4_0 *x = src;
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float d = qf_f16_to_f32(x[i].d);
		for (int j = 0; j < QF_QK / 2; j++) {
			dst[i * QF_QK + j] = ((x[i].qs[j] & 0x0f) - 8) * d;
			dst[i * QF_QK + j + QF_QK / 2] = ((x[i].qs[j] >> 4) - 8) * d;
		}
	}
}

void qf_dequant_q4_1(const void *src, float *dst, int64_t n)
{
	const qf_block_q4_1 *x = src;
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float d = qf_f16_to_f32(x[i].d);
		const float m = qf_f16_to_f32(x[i].m);
		for (int j = 0; j < QF_QK / 2; j++) {
			dst[i * QF_QK + j] = (x[i].qs[j] & 0x0f) * d + m;
			dst[i * QF_QK + j + QF_QK / 2] = (x[i].qs[j] >> 4) * d + m;
		}
	}
}

void qf_dequant_mxfp4(const void *src, float *dst, int64_t n)
{
	const qf_block_mxfp4 *x = src;
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float d = qf_e8m0_half(x[i].e);
		for (int j = 0; j < QF_QK / 2; j++) {
			dst[i * QF_QK + j] = kvalues_mxfp4[x[i].qs[j] & 0x0f] * d;
			dst[i * QF_QK + j + QF_QK / 2] = kvalues_mxfp4[x[i].qs[j] >> 4] * d;
		}
	}
}

/* ---- AVX2 kernels, byte-identical to the references above ------------------------ */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2,f16c"))) static inline float hmax8(__m256 v)
{
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}

/* roundf (half away from zero) of 8 lanes, exactly: trunc, then +1 where the fraction ≥ 0.5 */
__attribute__((target("avx2,f16c"))) static inline __m256i round_away(__m256 v)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 a = _mm256_andnot_ps(sign, v);
	__m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	__m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
	t = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
	return _mm256_cvttps_epi32(_mm256_or_ps(t, _mm256_and_ps(sign, v)));
}

__attribute__((target("avx2,f16c"))) static void quant_q8_0_avx2(const float *x, void *dst, int64_t n)
{
	qf_block_q8_0 *y = dst;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float *b = x + i * QF_QK;
		__m256 v0 = _mm256_loadu_ps(b), v1 = _mm256_loadu_ps(b + 8);
		__m256 v2 = _mm256_loadu_ps(b + 16), v3 = _mm256_loadu_ps(b + 24);
		__m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
					 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
		const float amax = hmax8(m);
		const float d = amax / 127.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = qf_f32_to_f16(d);
		__m256 s = _mm256_set1_ps(id);
		__m256i q0 = round_away(_mm256_mul_ps(v0, s)), q1 = round_away(_mm256_mul_ps(v1, s));
		__m256i q2 = round_away(_mm256_mul_ps(v2, s)), q3 = round_away(_mm256_mul_ps(v3, s));
		/* pack 32 × i32 → 32 × i8 in order */
		__m256i p01 = _mm256_packs_epi32(q0, q1), p23 = _mm256_packs_epi32(q2, q3);
		__m256i p = _mm256_packs_epi16(p01, p23);
		p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
		_mm256_storeu_si256((__m256i *)y[i].qs, p);
	}
}

__attribute__((target("avx2,f16c"))) static void quant_q4_0_avx2(const float *x, void *dst, int64_t n)
{
	qf_block_q4_0 *y = dst;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QF_QK; i++) {
		const float *b = x + i * QF_QK;
		__m256 v[4];
		for (int k = 0; k < 4; k++)
			v[k] = _mm256_loadu_ps(b + 8 * k);
		__m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
					 _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
		const float amax = hmax8(m);
		/* the reference keeps the first element of largest magnitude, with its sign */
		float max = 0.0f;
		if (amax > 0.0f) {
			__m256 am = _mm256_set1_ps(amax);
			uint32_t mask = 0;
			for (int k = 0; k < 4; k++)
				mask |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v[k]), am, _CMP_EQ_OQ)) << (8 * k);
			max = b[__builtin_ctz(mask)];
		}
		const float d = max / -8.0f;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = qf_f32_to_f16(d);
		__m256 s = _mm256_set1_ps(id), h = _mm256_set1_ps(8.5f);
		__m256i q[4];
		for (int k = 0; k < 4; k++) {
			/* (int8_t)(x·id + 8.5): truncation toward zero, then at most 15 */
			__m256i t = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[k], s), h));
			q[k] = _mm256_min_epi32(t, _mm256_set1_epi32(15));
		}
		/* byte j: element j (low nibble) | element j + 16 (high nibble) */
		__m256i lo = _mm256_packs_epi32(q[0], q[1]), hi = _mm256_packs_epi32(q[2], q[3]);
		__m256i w = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)); /* 16 × i16, lane-interleaved */
		__m128i p = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
		p = _mm_shuffle_epi32(p, _MM_SHUFFLE(3, 1, 2, 0));
		_mm_storeu_si128((__m128i *)y[i].qs, p);
	}
}
#endif

void qf_quant_q8_0(const float *x, void *dst, int64_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (qf_cpu_has_avx2()) {
		quant_q8_0_avx2(x, dst, n);
		return;
	}
#endif
	qf_quant_q8_0_ref(x, dst, n);
}

void qf_quant_q4_0(const float *x, void *dst, int64_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (qf_cpu_has_avx2()) {
		quant_q4_0_avx2(x, dst, n);
		return;
	}
#endif
	qf_quant_q4_0_ref(x, dst, n);
}
