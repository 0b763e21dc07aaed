/*
 * ctquant.c — compressed-tensors weight decoders and the q4_0 / q4_1 repack
 * (layouts in ctquant.h).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "formats/ctquant.h"
#include "formats/ggml_quants.h"
#include "formats/hfquant.h"

int64_t qf_ctq_row_words(int64_t K, int bits) { return (K * bits + 31) / 32; }

static size_t sbytes(qf_dtype dt) { return dt == QF_BF16 || dt == QF_F16 ? 2 : 4; }

static float load_scale(const qf_ctq *v, int64_t sr, int64_t sc)
{
	return qf_hfq_load_scale(v->sdt, v->scale + (uint64_t)(sr * v->scols + sc) * sbytes(v->sdt));
}

/* A stored zero point (INT layout) of any integer or float dtype. */
static float load_int_zp(qf_dtype dt, const uint8_t *p, uint64_t i)
{
	switch (dt) {
	case QF_I8: return (float)(int8_t)p[i];
	case QF_U8: return (float)p[i];
	case QF_I16: { int16_t x; memcpy(&x, p + 2 * i, 2); return (float)x; }
	case QF_I32: { int32_t x; memcpy(&x, p + 4 * i, 4); return (float)x; }
	case QF_I64: { int64_t x; memcpy(&x, p + 8 * i, 8); return (float)x; }
	case QF_BF16: case QF_F16: case QF_F32: return qf_hfq_load_scale(dt, p + i * sbytes(dt));
	default: return 0;
	}
}

static float zp_of(const qf_ctq *v, int64_t sr, int64_t sc, int64_t r)
{
	if (!v->zp)
		return 0;
	if (v->zp_packed) {
		/* packed along dim 0: the row's code in its column's word */
		uint64_t bit = (uint64_t)r * (uint64_t)v->bits;
		uint32_t w;
		memcpy(&w, v->zp + ((bit / 32) * (uint64_t)v->scols + (uint64_t)sc) * 4, 4);
		return (float)((int32_t)((w >> (bit % 32)) & ((1u << v->bits) - 1u)) - (1 << (v->bits - 1)));
	}
	return load_int_zp(v->zdt, v->zp, (uint64_t)(sr * v->scols + sc));
}

float qf_ctq_scale_at(const qf_ctq *v, int64_t r, int64_t k) { return load_scale(v, r / v->br, k / v->bc); }

float qf_ctq_zp_at(const qf_ctq *v, int64_t r, int64_t k) { return zp_of(v, r / v->br, k / v->bc, r); }

void qf_ctq_rows(const qf_ctq *v, int64_t r0, int64_t n, float *dst)
{
	const int64_t K = v->K;
	for (int64_t i = 0; i < n; i++) {
		int64_t r = r0 + i, sr = r / v->br;
		float *d = dst + i * K;
		/* the codes as f32 */
		switch (v->kind) {
		case QF_CTQ_PACK: {
			const int b = v->bits, off = 1 << (b - 1), per = 32 / b;
			const uint32_t mask = (1u << b) - 1u;
			const uint8_t *row = v->q + (uint64_t)r * (uint64_t)qf_ctq_row_words(K, b) * 4;
			for (int64_t w0 = 0, k = 0; k < K; w0++) {
				uint32_t w;
				memcpy(&w, row + w0 * 4, 4);
				for (int t = 0; t < per && k < K; t++, k++)
					d[k] = (float)((int32_t)((w >> (t * b)) & mask) - off);
			}
			break;
		}
		case QF_CTQ_INT: {
			const int8_t *q = (const int8_t *)v->q + r * K;
			for (int64_t k = 0; k < K; k++)
				d[k] = (float)q[k];
			break;
		}
		case QF_CTQ_FP8:
			qf_row_e4m3_to_f32(v->q + (uint64_t)r * (uint64_t)K, d, K);
			break;
		}
		/* (q − zp) · s per scale column */
		for (int64_t c0 = 0, sc = 0; c0 < K; c0 += v->bc, sc++) {
			int64_t c1 = c0 + v->bc < K ? c0 + v->bc : K;
			float s = load_scale(v, sr, sc), z = zp_of(v, sr, sc, r);
			if (z != 0)
				for (int64_t k = c0; k < c1; k++)
					d[k] = (d[k] - z) * s;
			else
				for (int64_t k = c0; k < c1; k++)
					d[k] *= s;
		}
	}
}

/* ---- lossless q4_0 / q4_1 ---------------------------------------------------------- */

static int f16_exact(float x) { return qf_f16_to_f32(qf_f32_to_f16(x)) == x && isfinite(x); }

int qf_ctq_q4_check(const qf_ctq *v, int q4_1, const char **why, int64_t *bad_r, int64_t *bad_k)
{
	*bad_r = *bad_k = -1;
	if (v->kind != QF_CTQ_PACK || v->bits != 4)
		return (*why = "not 4-bit packed", 0);
	if (v->zp && !q4_1)
		return (*why = "asymmetric: q4_0 has no zero point", 0);
	if (v->K % QF_QK || v->bc % QF_QK)
		return (*why = "its scale groups are not whole 32-element blocks", 0);
	if (v->zp && !v->zp_packed)
		return (*why = "its zero points are not packed", 0);
	int64_t srows = (v->N + v->br - 1) / v->br;
	for (int64_t sr = 0; sr < srows; sr++) {
		for (int64_t sc = 0; sc < v->scols; sc++) {
			float s = load_scale(v, sr, sc);
			int okk = f16_exact(s);
			if (okk && q4_1) {
				/* every row of this scale cell has its own zero point */
				int64_t rend = (sr + 1) * v->br < v->N ? (sr + 1) * v->br : v->N;
				for (int64_t r = sr * v->br; okk && r < rend; r++)
					okk = f16_exact(-s * (zp_of(v, sr, sc, r) + 8.0f));
				if (!okk)
					*why = "a min −scale·(zp + 8) is not exactly an fp16";
			} else if (!okk) {
				*why = "a scale is not exactly an fp16";
			}
			if (!okk) {
				*bad_r = sr * v->br;
				*bad_k = sc * v->bc;
				return 0;
			}
		}
	}
	return 1;
}

void qf_ctq_q4_row(const qf_ctq *v, int64_t r, int q4_1, uint8_t *out)
{
	const int64_t K = v->K, sr = r / v->br;
	const uint8_t *row = v->q + (uint64_t)r * (uint64_t)qf_ctq_row_words(K, 4) * 4;
	const size_t bsz = q4_1 ? sizeof(qf_block_q4_1) : sizeof(qf_block_q4_0);
	for (int64_t b = 0; b < K / QF_QK; b++) {
		int64_t sc = b * QF_QK / v->bc;
		float s = load_scale(v, sr, sc);
		uint8_t *o = out + (uint64_t)b * bsz;
		uint16_t d = qf_f32_to_f16(s);
		memcpy(o, &d, 2);
		if (q4_1) {
			uint16_t m = qf_f32_to_f16(-s * (zp_of(v, sr, sc, r) + 8.0f));
			memcpy(o + 2, &m, 2);
		}
		uint8_t *qs = o + (q4_1 ? 4 : 2);
		/* ggml: element j in the low nibble of qs[j], element j + 16 in its high nibble */
		uint32_t w[4];
		memcpy(w, row + b * 16, 16);
		for (int j = 0; j < 16; j++) {
			uint32_t lo = (w[j / 8] >> (4 * (j % 8))) & 15u, hi = (w[2 + j / 8] >> (4 * (j % 8))) & 15u;
			qs[j] = (uint8_t)(lo | hi << 4);
		}
	}
}
