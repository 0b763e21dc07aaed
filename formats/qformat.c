#include "config.h"

#include <math.h>
#include <string.h>

#include "formats/ggml_quants.h"
#include "formats/qformat.h"

qf_dtype qf_fmt_of_dtype(qf_dtype t)
{
	const qf_dtype_traits *tr = qf_dtype_info(t);
	return tr && tr->fmt && tr->gguf == t ? t : QF_DTYPE_NONE;
}

int qf_fmt_fits(qf_dtype f, int64_t C)
{
	const qf_dtype_traits *in = qf_dtype_info(f);
	return in && in->fmt && C > 0 && (!in->need_div || C % in->bcols == 0);
}

int qf_fmt_is_quant(qf_dtype f)
{
	const qf_dtype_traits *in = qf_dtype_info(f);
	return in && in->fmt && f != QF_F32 && f != QF_F16 && f != QF_BF16;
}

/* ---- geometry ---------------------------------------------------------------- */

static int64_t inner_rows(int ndim, const int64_t *shape)
{
	return ndim >= 2 ? shape[ndim - 2] : 1;
}

static int64_t all_rows(int ndim, const int64_t *shape)
{
	int64_t r = 1;
	for (int i = 0; i < ndim - 1; i++)
		r *= shape[i];
	return r;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/*
 * Bytes of one row's main payload: whole blocks for the container types
 * (scalars and ggml blocks, GGUF's mxfp4 included), one element per byte or
 * two per byte (the 4-bit codes) for the bundle formats.
 */
static uint64_t row_bytes(qf_dtype f, int64_t C)
{
	const qf_dtype_traits *in = qf_dtype_info(f);
	if (!in)
		return 0;
	if (in->block_elems > 0)
		return (uint64_t)(C / in->block_elems) * in->block_bytes;
	return in->elem == QF_U8 ? (uint64_t)(C + 1) / 2 : (uint64_t)C;
}

/* Bundle mxfp4 differs from the ggml block only in where the scale lives. */
static uint64_t bundle_row_bytes(qf_dtype f, int64_t C)
{
	return f == QF_MXFP4 ? (uint64_t)C / 2 : row_bytes(f, C);
}

static uint64_t any_row_bytes(qf_dtype f, int in_bundle, int64_t C)
{
	return in_bundle ? bundle_row_bytes(f, C) : row_bytes(f, C);
}

uint64_t qf_fmt_main_bytes(qf_dtype f, int in_bundle, int ndim, const int64_t *shape)
{
	return (uint64_t)all_rows(ndim, shape) * any_row_bytes(f, in_bundle, shape[ndim - 1]);
}

uint64_t qf_fmt_main_offset(qf_dtype f, int in_bundle, int64_t C, int64_t row)
{
	return (uint64_t)row * any_row_bytes(f, in_bundle, C);
}

int qf_fmt_ncomp(qf_dtype f, int in_bundle)
{
	const qf_dtype_traits *in = qf_dtype_info(f);
	if (!in || (f == QF_MXFP4 && !in_bundle))
		return 0;
	return in->ncomp;
}

uint64_t qf_fmt_comp_shape(qf_dtype f, int k, int ndim, const int64_t *shape, int *cnd, int64_t *cs)
{
	const qf_dtype_traits *in = qf_dtype_info(f);
	if (!in || k >= in->ncomp)
		return 0;
	int64_t C = shape[ndim - 1];
	int nd = 0;
	for (int i = 0; i < ndim - 1; i++)
		cs[nd++] = shape[i];
	switch (f) {
	case QF_FP8_B128:
		if (ndim >= 2)
			cs[nd - 1] = ceil_div(shape[ndim - 2], 128);
		cs[nd++] = ceil_div(C, 128);
		break;
	case QF_INT8_CH:
		if (nd == 0)
			cs[nd++] = 1;
		break;
	case QF_MXFP4: case QF_MXFP8:
		cs[nd++] = C / 32;
		break;
	default: /* int4 */
		cs[nd++] = ceil_div(C, 128);
		break;
	}
	*cnd = nd;
	uint64_t ne = 1;
	for (int i = 0; i < nd; i++)
		ne *= (uint64_t)cs[i];
	return ne * qf_dtype_info(in->comp_type[k])->block_bytes;
}

uint64_t qf_fmt_comp_offset(qf_dtype f, int k, int ndim, const int64_t *shape, int64_t row)
{
	const qf_dtype_traits *in = qf_dtype_info(f);
	int64_t C = shape[ndim - 1];
	size_t es = qf_dtype_info(in->comp_type[k])->block_bytes;
	switch (f) {
	case QF_FP8_B128: {
		int64_t ri = inner_rows(ndim, shape), m = row / ri, r = row % ri;
		int64_t brow = m * ceil_div(ri, 128) + r / 128;
		return (uint64_t)brow * (uint64_t)ceil_div(C, 128) * es;
	}
	case QF_INT8_CH: return (uint64_t)row * es;
	case QF_MXFP4: case QF_MXFP8: return (uint64_t)row * (uint64_t)(C / 32) * es;
	default: return (uint64_t)row * (uint64_t)ceil_div(C, 128) * es;
	}
}

/* A unit is one block row: brows rows of one stacked matrix (fewer at its end). */
int64_t qf_fmt_units(qf_dtype f, int ndim, const int64_t *shape)
{
	int64_t br = qf_dtype_info(f)->brows;
	if (br == 1)
		return all_rows(ndim, shape);
	int64_t ri = inner_rows(ndim, shape);
	return all_rows(ndim, shape) / ri * ceil_div(ri, br);
}

void qf_fmt_unit_rows(qf_dtype f, int ndim, const int64_t *shape, int64_t u, int64_t *r0, int64_t *n)
{
	int64_t br = qf_dtype_info(f)->brows;
	if (br == 1) {
		*r0 = u;
		*n = 1;
		return;
	}
	int64_t ri = inner_rows(ndim, shape), per = ceil_div(ri, br);
	int64_t m = u / per, k = u % per;
	*r0 = m * ri + k * br;
	*n = ri - k * br < br ? ri - k * br : br;
}

/* ---- scalar helpers ------------------------------------------------------------ */

static const float e2m1_values[16] = {
	0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
	-0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
};

/* E4M3 with saturation to ±448 (x finite). */
static uint8_t e4m3_sat(float x)
{
	if (x > 448.0f)
		x = 448.0f;
	else if (x < -448.0f)
		x = -448.0f;
	return qf_f32_to_e4m3(x);
}

static int32_t clampi(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- E4M3 rows: q[i] = e4m3_sat(x[i] / s) or e4m3_sat(x[i] · m) --------------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* e4m3_sat on 8 lanes, as the scalar encoder: RNE, ±448 saturation, NaN → 0x7f | sign. */
__attribute__((target("avx2"))) static inline __m256i e4m3_avx2(__m256 v)
{
	__m256i u = _mm256_castps_si256(v);
	__m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
	__m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
	__m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
	__m256i sat = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x43e00000 - 1));
	__m256i sub = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x3c800000), a);
	__m256i m = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(512.0f))); /* RNE */
	__m256i r = _mm256_add_epi32(a, _mm256_add_epi32(_mm256_set1_epi32(0x7ffff),
							 _mm256_and_si256(_mm256_srli_epi32(a, 20), _mm256_set1_epi32(1))));
	r = _mm256_sub_epi32(_mm256_srli_epi32(r, 20), _mm256_set1_epi32((127 - 7) << 3));
	r = _mm256_min_epi32(r, _mm256_set1_epi32(0x7e));
	r = _mm256_blendv_epi8(r, m, sub);
	r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7e), sat);
	r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7f), nan);
	return _mm256_or_si256(r, sign);
}

/* 32 lanes of codes (each < 256) → 32 bytes in order. */
__attribute__((target("avx2"))) static inline void store32(uint8_t *q, __m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i ab = _mm256_packus_epi32(a, b), cd = _mm256_packus_epi32(c, d);
	__m256i p = _mm256_packus_epi16(ab, cd);
	p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
	_mm256_storeu_si256((__m256i *)q, p);
}

__attribute__((target("avx2"))) static void e4m3_row_avx2(const float *x, int64_t n, float s, int divide, uint8_t *q)
{
	__m256 vs = _mm256_set1_ps(s);
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m256i r[4];
		for (int k = 0; k < 4; k++) {
			__m256 v = _mm256_loadu_ps(x + i + 8 * k);
			r[k] = e4m3_avx2(divide ? _mm256_div_ps(v, vs) : _mm256_mul_ps(v, vs));
		}
		store32(q + i, r[0], r[1], r[2], r[3]);
	}
	for (; i < n; i++)
		q[i] = e4m3_sat(divide ? x[i] / s : x[i] * s);
}

__attribute__((target("avx2"))) static float amax_avx2(const float *x, int64_t n)
{
	__m256 m = _mm256_setzero_ps(), absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + i), absm));
	float t[8], r = 0.0f;
	_mm256_storeu_ps(t, m);
	for (int k = 0; k < 8; k++)
		r = t[k] > r ? t[k] : r;
	for (; i < n; i++)
		r = fabsf(x[i]) > r ? fabsf(x[i]) : r;
	return r;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
/* clamp(rne(x·id), lo, hi) + add for 32 lanes (as lrintf in the default rounding mode). */
__attribute__((target("avx2"))) static inline void int32x4(const float *x, __m256 id, int lo, int hi, int add, __m256i *r)
{
	for (int k = 0; k < 4; k++) {
		__m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id));
		v = _mm256_min_epi32(_mm256_max_epi32(v, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
		r[k] = _mm256_add_epi32(v, _mm256_set1_epi32(add));
	}
}

/* int8 codes of a row: n a multiple of 32 handled here, the tail by the caller. */
__attribute__((target("avx2"))) static int64_t int8_row_avx2(const float *x, int64_t n, float id, int8_t *q)
{
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m256i r[4];
		int32x4(x + i, _mm256_set1_ps(id), -127, 127, 0, r);
		__m256i ab = _mm256_packs_epi32(r[0], r[1]), cd = _mm256_packs_epi32(r[2], r[3]);
		__m256i p = _mm256_packs_epi16(ab, cd);
		p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
		_mm256_storeu_si256((__m256i *)(q + i), p);
	}
	return i;
}

/* Symmetric int4 codes (q + 8), two per byte, low nibble first; returns elements done. */
__attribute__((target("avx2"))) static int64_t int4_row_avx2(const float *x, int64_t n, float id, uint8_t *q)
{
	int64_t i = 0;
	const __m256i w = _mm256_set1_epi16(0x1001); /* bytes (1, 16): lo + 16·hi */
	for (; i + 32 <= n; i += 32) {
		__m256i r[4];
		uint8_t t[32];
		int32x4(x + i, _mm256_set1_ps(id), -8, 7, 8, r);
		store32(t, r[0], r[1], r[2], r[3]);
		__m256i pr = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)t), w);
		__m128i b = _mm_packus_epi16(_mm256_castsi256_si128(pr), _mm256_extracti128_si256(pr, 1));
		_mm_storeu_si128((__m128i *)(q + i / 2), b);
	}
	return i;
}
#endif

/* q[i] = e4m3_sat(x[i] / s) (divide) or e4m3_sat(x[i] · s). */
static void e4m3_row(const float *x, int64_t n, float s, int divide, uint8_t *q)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (qf_cpu_has_avx2()) {
		e4m3_row_avx2(x, n, s, divide, q);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++)
		q[i] = e4m3_sat(divide ? x[i] / s : x[i] * s);
}

/* max |x[i]| (NaN ignored, as the scalar comparisons do). */
static float amax_row(const float *x, int64_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (qf_cpu_has_avx2())
		return amax_avx2(x, n);
#endif
	float r = 0.0f;
	for (int64_t i = 0; i < n; i++)
		r = fabsf(x[i]) > r ? fabsf(x[i]) : r;
	return r;
}

/* ---- encoders ------------------------------------------------------------------- */

/*
 * fp8-b128 on one unit of n ≤ 128 rows: s = amax/448 per block (0 for an
 * all-zero block), q = e4m3(x / s) rounded to nearest even and saturated —
 * DeepSeek's act_quant rule applied to a weight block.
 */
static void enc_fp8_b128(const float *x, int64_t n, int64_t C, uint8_t *q, float *sc)
{
	for (int64_t c0 = 0, b = 0; c0 < C; c0 += 128, b++) {
		int64_t c1 = c0 + 128 < C ? c0 + 128 : C;
		float amax = 0.0f;
		for (int64_t r = 0; r < n; r++) {
			float a = amax_row(x + r * C + c0, c1 - c0);
			amax = a > amax ? a : amax;
		}
		float s = amax / 448.0f;
		memcpy(&sc[b], &s, 4);
		for (int64_t r = 0; r < n; r++) {
			if (s > 0.0f)
				e4m3_row(x + r * C + c0, c1 - c0, s, 1, q + r * C + c0);
			else
				memset(q + r * C + c0, 0, (size_t)(c1 - c0));
		}
	}
}

/* mxfp8: shared exponent floor(log2(amax)) − 8 (E4M3's emax), elements saturate. */
static void enc_mxfp8_row(const float *x, int64_t C, uint8_t *q, uint8_t *e)
{
	for (int64_t b = 0; b < C / 32; b++) {
		const float *xb = x + b * 32;
		float amax = amax_row(xb, 32);
		int ex = amax > 0.0f ? ilogbf(amax) - 8 : -127;
		ex = ex < -127 ? -127 : ex > 127 ? 127 : ex;
		e[b] = (uint8_t)(ex + 127);
		/* 2^-ex is exact as a float (2^-127 is subnormal), so x·2^-ex rounds once, as ldexpf */
		e4m3_row(xb, 32, ldexpf(1.0f, -ex), 0, q + b * 32);
	}
}

static void enc_int8_row(const float *x, int64_t C, int8_t *q, float *s)
{
	float amax = amax_row(x, C);
	float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
	memcpy(s, &d, 4);
	int64_t j = 0;
#if defined(__x86_64__) && defined(__GNUC__)
	if (qf_cpu_has_avx2())
		j = int8_row_avx2(x, C, id, q);
#endif
	for (; j < C; j++)
		q[j] = (int8_t)clampi((int32_t)lrintf(x[j] * id), -127, 127);
}

/*
 * int4-g128: symmetric d = f16(amax/7), q = clamp(rne(x/d), −8, 7) + 8;
 * asymmetric over [min(x,0), max(x,0)]: d = f16((max−min)/15),
 * z = clamp(rne(−min/d), 0, 15), q = clamp(rne(x/d) + z, 0, 15).
 * The scale is rounded to f16 before quantizing so dequantization uses the
 * value that was used.
 */
static void enc_int4_row(const float *x, int64_t C, int asym, uint8_t *q, uint8_t *sc, uint8_t *zp)
{
	memset(q, 0, (size_t)(C + 1) / 2);
	for (int64_t c0 = 0, g = 0; c0 < C; c0 += 128, g++) {
		int64_t c1 = c0 + 128 < C ? c0 + 128 : C;
		float mn = 0.0f, mx = 0.0f, amax = 0.0f;
		for (int64_t j = c0; j < c1; j++) {
			mn = x[j] < mn ? x[j] : mn;
			mx = x[j] > mx ? x[j] : mx;
			amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
		}
		uint16_t dh = qf_f32_to_f16(asym ? (mx - mn) / 15.0f : amax / 7.0f);
		float d = qf_f16_to_f32(dh), id = d > 0.0f ? 1.0f / d : 0.0f;
		memcpy(sc + g * 2, &dh, 2);
		int32_t z = 8;
		if (asym) {
			z = clampi((int32_t)lrintf(-mn * id), 0, 15);
			zp[g] = (uint8_t)z;
		}
		int64_t j = c0;
#if defined(__x86_64__) && defined(__GNUC__)
		if (!asym && qf_cpu_has_avx2() && (c0 & 1) == 0)
			j = c0 + int4_row_avx2(x + c0, c1 - c0, id, q + c0 / 2);
#endif
		for (; j < c1; j++) {
			int32_t v = asym ? clampi((int32_t)lrintf(x[j] * id) + z, 0, 15)
					 : clampi((int32_t)lrintf(x[j] * id), -8, 7) + 8;
			q[j / 2] |= (uint8_t)(v << ((j & 1) * 4));
		}
	}
}

/* Bundle mxfp4: the ggml reference block, nibbles reordered to element order. */
static void enc_mxfp4_bundle_row(const float *x, int64_t C, uint8_t *q, uint8_t *e)
{
	for (int64_t b = 0; b < C / 32; b++) {
		qf_block_mxfp4 blk;
		qf_quant_mxfp4_ref(x + b * 32, &blk, 32);
		e[b] = blk.e;
		uint8_t codes[32];
		for (int j = 0; j < 16; j++) {
			codes[j] = blk.qs[j] & 15;
			codes[j + 16] = blk.qs[j] >> 4;
		}
		for (int j = 0; j < 16; j++)
			q[b * 16 + j] = (uint8_t)(codes[2 * j] | codes[2 * j + 1] << 4);
	}
}

void qf_fmt_encode(qf_dtype f, int in_bundle, const float *x, int64_t n, int64_t C, uint8_t *main,
		uint8_t *const *comp)
{
	if (f == QF_FP8_B128) {
		enc_fp8_b128(x, n, C, main, (float *)(void *)comp[0]);
		return;
	}
	uint64_t rb = any_row_bytes(f, in_bundle, C);
	const qf_dtype_traits *in = qf_dtype_info(f);
	int whole = in->block_elems > 0 && !(f == QF_MXFP4 && in_bundle); /* the row encoder writes it all */
	for (int64_t r = 0; r < n; r++) {
		const float *xr = x + r * C;
		uint8_t *o = main + (uint64_t)r * rb;
		if (whole) {
			in->from_f32(xr, o, C);
			continue;
		}
		switch (f) {
		case QF_MXFP4: enc_mxfp4_bundle_row(xr, C, o, comp[0] + r * (C / 32)); break;
		case QF_MXFP8: enc_mxfp8_row(xr, C, o, comp[0] + r * (C / 32)); break;
		case QF_INT8_CH: enc_int8_row(xr, C, (int8_t *)o, (float *)(void *)(comp[0] + r * 4)); break;
		case QF_INT4_G128:
		case QF_INT4_G128_ASYM: {
			int64_t g = ceil_div(C, 128);
			enc_int4_row(xr, C, f == QF_INT4_G128_ASYM, o, comp[0] + r * g * 2,
				     f == QF_INT4_G128_ASYM ? comp[1] + r * g : NULL);
			break;
		}
		default: break;
		}
	}
}

/* ---- decoders -------------------------------------------------------------------- */

void qf_fmt_decode(const qf_fmt_view *v, int64_t r0, int64_t n, float *dst)
{
	int64_t C = v->shape[v->ndim - 1];
	uint64_t rb = any_row_bytes(v->fmt, v->in_bundle, C);
	const float *e4 = qf_e4m3_table();
	const qf_dtype_traits *in = qf_dtype_info(v->fmt);
	int whole = in->block_elems > 0 && !(v->fmt == QF_MXFP4 && v->in_bundle);
	for (int64_t i = 0; i < n; i++) {
		int64_t r = r0 + i;
		const uint8_t *q = v->main + (uint64_t)r * rb;
		float *d = dst + i * C;
		if (whole) {
			in->to_f32(q, d, C);
			continue;
		}
		switch (v->fmt) {
		case QF_MXFP4:
			for (int64_t j = 0; j < C; j++) {
				uint8_t e = v->comp[0][r * (C / 32) + j / 32];
				d[j] = e2m1_values[(q[j / 2] >> ((j & 1) * 4)) & 15] * qf_e8m0_to_f32(e);
			}
			break;
		case QF_MXFP8:
			for (int64_t j = 0; j < C; j++)
				d[j] = e4[q[j]] * qf_e8m0_to_f32(v->comp[0][r * (C / 32) + j / 32]);
			break;
		case QF_FP8_B128: {
			const float *sc = (const float *)(const void *)(v->comp[0] +
					  qf_fmt_comp_offset(v->fmt, 0, v->ndim, v->shape, r));
			for (int64_t j = 0; j < C; j++) {
				float s;
				memcpy(&s, &sc[j / 128], 4);
				d[j] = e4[q[j]] * s;
			}
			break;
		}
		case QF_INT8_CH: {
			float s;
			memcpy(&s, v->comp[0] + r * 4, 4);
			for (int64_t j = 0; j < C; j++)
				d[j] = (float)(int8_t)q[j] * s;
			break;
		}
		case QF_INT4_G128:
		case QF_INT4_G128_ASYM: {
			int64_t g = ceil_div(C, 128);
			for (int64_t j = 0; j < C; j++) {
				uint16_t dh;
				memcpy(&dh, v->comp[0] + (r * g + j / 128) * 2, 2);
				int z = v->fmt == QF_INT4_G128_ASYM ? v->comp[1][r * g + j / 128] : 8;
				int code = (q[j / 2] >> ((j & 1) * 4)) & 15;
				d[j] = (float)(code - z) * qf_f16_to_f32(dh);
			}
			break;
		}
		default: break;
		}
	}
}

uint64_t qf_fmt_bundle_sizer(const char *format, int ndim, const int64_t *shape)
{
	qf_dtype f = qf_fmt_from_name(format);
	if (f == QF_DTYPE_NONE)
		return 0;
	if (!qf_fmt_fits(f, shape[ndim - 1]))
		return UINT64_MAX;
	return qf_fmt_main_bytes(f, 1, ndim, shape);
}

void qf_err_sums(const float *x, const float *y, int64_t n, double acc[4])
{
	double d2 = 0, x2 = 0, y2 = 0, xy = 0;
	for (int64_t i = 0; i < n; i++) {
		double a = x[i], c = y[i];
		d2 += (a - c) * (a - c);
		x2 += a * a;
		y2 += c * c;
		xy += a * c;
	}
	acc[0] += d2;
	acc[1] += x2;
	acc[2] += y2;
	acc[3] += xy;
}
