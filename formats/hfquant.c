#include "config.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "formats/hfquant.h"

float qf_hfq_store_scale(float s, qf_dtype dt, uint8_t *out)
{
	switch (dt) {
	case QF_BF16: {
		uint16_t h = qf_f32_to_bf16(s);
		memcpy(out, &h, 2);
		return qf_bf16_to_f32(h);
	}
	case QF_F16: {
		uint16_t h = qf_f32_to_f16(s);
		memcpy(out, &h, 2);
		return qf_f16_to_f32(h);
	}
	default:
		memcpy(out, &s, 4);
		return s;
	}
}

float qf_hfq_load_scale(qf_dtype dt, const uint8_t *in)
{
	uint16_t h;
	float f;
	switch (dt) {
	case QF_BF16: memcpy(&h, in, 2); return qf_bf16_to_f32(h);
	case QF_F16: memcpy(&h, in, 2); return qf_f16_to_f32(h);
	default: memcpy(&f, in, 4); return f;
	}
}

static size_t ssize(qf_dtype dt) { return dt == QF_BF16 || dt == QF_F16 ? 2 : 4; }

/* The power of two at or above s (s > 0, finite). */
static float pow2_up(float s)
{
	int e;
	float m = frexpf(s, &e); /* s = m · 2^e, m in [0.5, 1) */
	return m == 0.5f ? s : ldexpf(1.0f, e);
}

void qf_hfq_fp8_block(const float *x, int64_t n, int64_t K, qf_dtype sdt, int ue8m0, uint8_t *q, uint8_t *scales)
{
	for (int64_t c0 = 0, b = 0; c0 < K; c0 += 128, b++) {
		int64_t c1 = c0 + 128 < K ? c0 + 128 : K;
		float amax = 0.0f;
		for (int64_t r = 0; r < n; r++)
			for (int64_t c = c0; c < c1; c++)
				amax = fabsf(x[r * K + c]) > amax ? fabsf(x[r * K + c]) : amax;
		float s = amax / 448.0f;
		if (ue8m0 && s > 0.0f)
			s = pow2_up(s);
		s = qf_hfq_store_scale(s, sdt, scales + (size_t)b * ssize(sdt));
		for (int64_t r = 0; r < n; r++)
			for (int64_t c = c0; c < c1; c++)
				q[r * K + c] = s > 0.0f ? qf_f32_to_e4m3(x[r * K + c] / s) : 0;
	}
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

void qf_hfq_pack_row(const float *x, int64_t K, int bits, int64_t g, qf_dtype sdt, uint32_t *words, uint8_t *scales)
{
	int64_t nw = (K * bits + 31) / 32;
	memset(words, 0, (size_t)nw * 4);
	float qmin = -(float)(1 << (bits - 1)), qmax = (float)((1 << (bits - 1)) - 1);
	float half = (float)((1 << bits) - 1) / 2.0f; /* 7.5, 127.5 */
	for (int64_t c0 = 0, j = 0; c0 < K; c0 += g, j++) {
		int64_t c1 = c0 + g < K ? c0 + g : K;
		float amax = 0.0f;
		for (int64_t c = c0; c < c1; c++)
			amax = fabsf(x[c]) > amax ? fabsf(x[c]) : amax;
		float s = amax / half;
		if (s < FLT_EPSILON)
			s = FLT_EPSILON;
		s = qf_hfq_store_scale(s, sdt, scales + (size_t)j * ssize(sdt));
		for (int64_t c = c0; c < c1; c++) {
			int32_t v = (int32_t)clampf(rintf(x[c] / s), qmin, qmax) + (1 << (bits - 1));
			uint64_t bit = (uint64_t)c * (uint64_t)bits;
			words[bit / 32] |= (uint32_t)v << (bit % 32);
		}
	}
}

void qf_hfq_pack_asym(const float *x, int64_t n, int64_t K, int bits, int64_t g, qf_dtype sdt, uint32_t *words,
		      uint8_t *scales, uint32_t *zp)
{
	int64_t nw = (K * bits + 31) / 32, G = (K + g - 1) / g;
	float qmin = -(float)(1 << (bits - 1)), qmax = (float)((1 << (bits - 1)) - 1);
	float range = (float)((1 << bits) - 1);
	memset(zp, 0, (size_t)G * 4);
	for (int64_t r = 0; r < n; r++) {
		const float *xr = x + r * K;
		uint32_t *w = words + r * nw;
		memset(w, 0, (size_t)nw * 4);
		for (int64_t c0 = 0, j = 0; c0 < K; c0 += g, j++) {
			int64_t c1 = c0 + g < K ? c0 + g : K;
			float lo = 0.0f, hi = 0.0f;
			for (int64_t c = c0; c < c1; c++) {
				lo = xr[c] < lo ? xr[c] : lo;
				hi = xr[c] > hi ? xr[c] : hi;
			}
			float s = (hi - lo) / range;
			if (s < FLT_EPSILON)
				s = FLT_EPSILON;
			s = qf_hfq_store_scale(s, sdt, scales + (size_t)(r * G + j) * ssize(sdt));
			float z = clampf(rintf(qmin - lo / s), qmin, qmax);
			for (int64_t c = c0; c < c1; c++) {
				int32_t v = (int32_t)clampf(rintf(xr[c] / s) + z, qmin, qmax) + (1 << (bits - 1));
				uint64_t bit = (uint64_t)c * (uint64_t)bits;
				w[bit / 32] |= (uint32_t)v << (bit % 32);
			}
			zp[j] |= (uint32_t)((int32_t)z + (1 << (bits - 1))) << ((uint64_t)r * (uint64_t)bits % 32);
		}
	}
}

void qf_hfq_int8_row(const float *x, int64_t K, float div, qf_dtype sdt, int8_t *q, uint8_t *scale)
{
	float amax = 0.0f;
	for (int64_t c = 0; c < K; c++)
		amax = fabsf(x[c]) > amax ? fabsf(x[c]) : amax;
	float s = amax / div;
	if (s < FLT_EPSILON)
		s = FLT_EPSILON;
	s = qf_hfq_store_scale(s, sdt, scale);
	for (int64_t c = 0; c < K; c++)
		q[c] = (int8_t)clampf(rintf(x[c] / s), -128.0f, 127.0f);
}
