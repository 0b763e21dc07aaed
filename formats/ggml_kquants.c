/*
 * ggml K-quants and 5-bit blocks (layouts in ggml_kquants.h).
 *
 * The encoders reproduce llama.cpp's choices bit for bit, so every float
 * expression below keeps ggml's operand order and rounding points: a sum
 * is accumulated left to right, products are evaluated as written
 * ((w·x)·l, not w·(x·l)), and integers convert to float where ggml's do.
 * Nothing here may be compiled with FMA contraction or fast-math.
 */
#include "config.h"

/* ggml is built without FMA contraction; a fused a·b + c would round differently. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <float.h>
#include <math.h>
#include <string.h>

#include "formats/dtype.h"
#include "formats/ggml_kquants.h"
#include "formats/ggml_quants.h"

#define GROUP_EPS 1e-15f /* a group whose |x| stays below this is all zero */

/* Round to nearest, ties to even, by the 1.5·2^23 trick (|f| < 2^22). */
static inline int round_nearest(float f)
{
	float v = f + 12582912.0f;
	int32_t i;
	memcpy(&i, &v, 4);
	return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static inline float f16(uint16_t h) { return qf_f16_to_f32(h); }

/* ---- fitting one group ------------------------------------------------------------- */

/* The signed value of largest |x| (first wins) in *max; 0 for an all-zero group (L = 0). */
static int sym_start(int n, const float *x, int8_t *L, float *max)
{
	float amax = 0.0f;
	*max = 0.0f;
	for (int i = 0; i < n; i++) {
		float a = fabsf(x[i]);
		if (a > amax) {
			amax = a;
			*max = x[i];
		}
	}
	if (amax < GROUP_EPS) {
		memset(L, 0, (size_t)n);
		return 0;
	}
	return 1;
}

/*
 * Symmetric codes for n values: l in [−nmax, nmax−1], stored as L = l + nmax.
 * Starts at iscale = −nmax/max (max: the signed value of largest |x|, first
 * one wins), takes the least-squares scale Σwxl/Σwl² under w = qw or x², and
 * tries the 18 neighbours iscale = −(nmax + k/10)/max, k = ±1..±9, keeping the
 * one with the largest (Σwxl)²/Σwl².  Returns the scale (its sign is that of
 * −max); an all-zero group gives L = 0 and 0.  (ggml's make_qx_quants with
 * rmse_type 1.)
 */
static float fit_sym_scalar(int n, int nmax, const float *x, int8_t *L, const float *qw)
{
	float max;
	if (!sym_start(n, x, L, &max))
		return 0.0f;
	float iscale = (float)-nmax / max;
	float sumlx = 0.0f, suml2 = 0.0f;
	for (int i = 0; i < n; i++) {
		int l = clampi(round_nearest(iscale * x[i]), -nmax, nmax - 1);
		L[i] = (int8_t)(l + nmax);
		float w = qw ? qw[i] : x[i] * x[i];
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
	float best = scale * sumlx;
	for (int k = -9; k <= 9; k++) {
		if (k == 0)
			continue;
		float is = -((float)nmax + 0.1f * (float)k) / max;
		float slx = 0.0f, sl2 = 0.0f;
		for (int i = 0; i < n; i++) {
			int l = clampi(round_nearest(is * x[i]), -nmax, nmax - 1);
			float w = qw ? qw[i] : x[i] * x[i];
			slx += w * x[i] * (float)l;
			sl2 += w * (float)l * (float)l;
		}
		if (sl2 > 0.0f && slx * slx > best * sl2) {
			for (int i = 0; i < n; i++)
				L[i] = (int8_t)(nmax + clampi(round_nearest(is * x[i]), -nmax, nmax - 1));
			scale = slx / sl2;
			best = scale * slx;
		}
	}
	return scale;
}

/*
 * Q3_K's group fit: the symmetric start of fit_sym (w = x²), then up to five
 * sweeps moving one code at a time to its least-squares value whenever that
 * raises (Σwxl)²/Σwl².  L = l + nmax.  (ggml's make_q3_quants, do_rmse.)
 */
static float fit_q3(int n, int nmax, const float *x, int8_t *L)
{
	float max;
	if (!sym_start(n, x, L, &max))
		return 0.0f;
	float iscale = (float)-nmax / max;
	float sumlx = 0.0f, suml2 = 0.0f;
	for (int i = 0; i < n; i++) {
		int l = clampi(round_nearest(iscale * x[i]), -nmax, nmax - 1);
		L[i] = (int8_t)l;
		float w = x[i] * x[i];
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	for (int sweep = 0; sweep < 5; sweep++) {
		int changed = 0;
		for (int i = 0; i < n; i++) {
			float w = x[i] * x[i];
			float slx = sumlx - w * x[i] * (float)L[i];
			if (!(slx > 0.0f))
				continue;
			float sl2 = suml2 - w * (float)L[i] * (float)L[i];
			int nl = clampi(round_nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
			if (nl == L[i])
				continue;
			slx += w * x[i] * (float)nl;
			sl2 += w * (float)nl * (float)nl;
			if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
				L[i] = (int8_t)nl;
				sumlx = slx;
				suml2 = sl2;
				changed++;
			}
		}
		if (!changed)
			break;
	}
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* The state of an affine fit: the range, the weight sums, the best error so far. */
typedef struct {
	float min, max, sum_w, sum_x, scale, best;
} affine_fit;

/*
 * The start shared by both searches: min(x, 0) .. max(x) and the codes of
 * iscale = nmax/(max − min).  0 when the group is constant (L = 0, the_min set).
 */
static int affine_start(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, int mad,
			affine_fit *f)
{
	f->min = x[0];
	f->max = x[0];
	f->sum_w = w[0];
	f->sum_x = f->sum_w * x[0];
	for (int i = 1; i < n; i++) {
		if (x[i] < f->min)
			f->min = x[i];
		if (x[i] > f->max)
			f->max = x[i];
		f->sum_w += w[i];
		f->sum_x += w[i] * x[i];
	}
	if (f->min > 0.0f)
		f->min = 0.0f;
	if (f->max == f->min) {
		memset(L, 0, (size_t)n);
		*the_min = -f->min;
		return 0;
	}
	const float iscale = (float)nmax / (f->max - f->min);
	f->scale = 1.0f / iscale;
	f->best = 0.0f;
	for (int i = 0; i < n; i++) {
		L[i] = (uint8_t)clampi(round_nearest(iscale * (x[i] - f->min)), 0, nmax);
		float e = f->scale * (float)L[i] + f->min - x[i];
		f->best += w[i] * (mad ? fabsf(e) : e * e);
	}
	return 1;
}

/*
 * Affine codes L in [0, nmax] for y = scale·L − the_min (the_min ≥ 0): start at
 * min(x, 0) .. max(x), then for nstep+1 candidate iscales
 * (rmin + rdelta·k + nmax)/(max − min) solve the weighted least-squares
 * (scale, min) of those codes (min forced ≤ 0) and keep the candidate with the
 * least Σw·err² (Σw·|err| with mad).  An accepted candidate's min is what
 * the later candidates start from (x − min, max − min), as in ggml.  Laux is
 * scratch for n codes.  (ggml's make_qkx2_quants, and make_qkx3_quants given
 * weights: the two agree.)
 */
static float fit_affine_scalar(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
			       uint8_t *Laux, float rmin, float rdelta, int nstep, int mad)
{
	affine_fit f;
	if (!affine_start(n, nmax, x, w, L, the_min, mad, &f))
		return 0.0f;
	float min = f.min, scale = f.scale, best = f.best;
	const float max = f.max, sum_w = f.sum_w, sum_x = f.sum_x;
	for (int k = 0; k <= nstep; k++) {
		float is = (rmin + rdelta * (float)k + (float)nmax) / (max - min);
		float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
		for (int i = 0; i < n; i++) {
			int l = clampi(round_nearest(is * (x[i] - min)), 0, nmax);
			Laux[i] = (uint8_t)l;
			sum_l += w[i] * (float)l;
			sum_l2 += w[i] * (float)l * (float)l;
			sum_xl += w[i] * (float)l * x[i];
		}
		float D = sum_w * sum_l2 - sum_l * sum_l;
		if (!(D > 0.0f))
			continue;
		float s = (sum_w * sum_xl - sum_x * sum_l) / D;
		float m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
		if (m > 0.0f) {
			m = 0.0f;
			s = sum_xl / sum_l2;
		}
		float err = 0.0f;
		for (int i = 0; i < n; i++) {
			float e = s * (float)Laux[i] + m - x[i];
			err += w[i] * (mad ? fabsf(e) : e * e);
		}
		if (err < best) {
			memcpy(L, Laux, (size_t)n);
			best = err;
			scale = s;
			min = m;
		}
	}
	*the_min = -min;
	return scale;
}

/*
 * Codes L in [0, nmax] for non-negative x (a super-block's scales or mins)
 * under weights qw: the best of nine iscales (nmax + k/10)/max, k = −4..4, by
 * weighted squared error, then up to five coordinate sweeps as in fit_q3.
 * Returns the least-squares Σwxl/Σwl².  L is unsigned as in ggml, so a
 * negative code wraps.  (ggml's make_qp_quants.)
 */
static float fit_pos(int n, int nmax, const float *x, uint8_t *L, const float *qw)
{
	float max = 0.0f;
	for (int i = 0; i < n; i++)
		max = max > x[i] ? max : x[i];
	if (max < GROUP_EPS) {
		memset(L, 0, (size_t)n);
		return 0.0f;
	}
	float iscale = (float)nmax / max;
	for (int i = 0; i < n; i++)
		L[i] = (uint8_t)round_nearest(iscale * x[i]);
	float scale = 1.0f / iscale;
	float best = 0.0f;
	for (int i = 0; i < n; i++) {
		float e = x[i] - scale * (float)L[i];
		best += qw[i] * e * e;
	}
	for (int k = -4; k <= 4; k++) {
		if (k == 0)
			continue;
		float is = (0.1f * (float)k + (float)nmax) / max;
		float s = 1.0f / is;
		float mse = 0.0f;
		for (int i = 0; i < n; i++) {
			int l = round_nearest(is * x[i]);
			l = l < nmax ? l : nmax;
			float e = x[i] - s * (float)l;
			mse += qw[i] * e * e;
		}
		if (mse < best) {
			best = mse;
			iscale = is;
		}
	}
	float sumlx = 0.0f, suml2 = 0.0f;
	for (int i = 0; i < n; i++) {
		int l = round_nearest(iscale * x[i]);
		l = l < nmax ? l : nmax;
		L[i] = (uint8_t)l;
		sumlx += qw[i] * x[i] * (float)l;
		suml2 += qw[i] * (float)l * (float)l;
	}
	for (int sweep = 0; sweep < 5; sweep++) {
		int changed = 0;
		for (int i = 0; i < n; i++) {
			float w = qw[i];
			float slx = sumlx - w * x[i] * (float)L[i];
			float sl2 = suml2 - w * (float)L[i] * (float)L[i];
			if (!(slx > 0.0f && sl2 > 0.0f))
				continue;
			int nl = round_nearest(x[i] * sl2 / slx);
			nl = nl < nmax ? nl : nmax;
			if (nl == L[i])
				continue;
			slx += w * x[i] * (float)nl;
			sl2 += w * (float)nl * (float)nl;
			if (slx * slx * suml2 > sumlx * sumlx * sl2) {
				L[i] = (uint8_t)nl;
				sumlx = slx;
				suml2 = sl2;
				changed++;
			}
		}
		if (!changed)
			break;
	}
	return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* ---- AVX2: the candidate searches, one candidate per lane ---------------------------- */

/*
 * The sums of one candidate run over i in the scalar order, so each lane
 * rounds exactly as the scalar loop does; only independent candidates share
 * a register.  Candidates are then accepted one by one in the scalar order.
 * Rounding is the same bit trick, products are never fused (no FMA target).
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

AVX2 static inline __m256i round_nearest8(__m256 f)
{
	__m256i i = _mm256_castps_si256(_mm256_add_ps(f, _mm256_set1_ps(12582912.0f)));
	return _mm256_sub_epi32(_mm256_and_si256(i, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
}

AVX2 static inline __m256i clamp8(__m256i v, int lo, int hi)
{
	return _mm256_min_epi32(_mm256_max_epi32(v, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
}

/* fit_affine, candidates k = 0..nstep in lanes. */
AVX2 static float fit_affine_avx2(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
				  float rmin, float rdelta, int nstep, int mad)
{
	affine_fit f;
	if (!affine_start(n, nmax, x, w, L, the_min, mad, &f))
		return 0.0f;
	float min = f.min, scale = f.scale, best = f.best;
	const float max = f.max, sum_w = f.sum_w, sum_x = f.sum_x;
	float xm[32];
	for (int i = 0; i < n; i++)
		xm[i] = x[i] - min;
	/*
	 * An accepted candidate moves min, and every later candidate is computed
	 * with the new min: lanes after an acceptance that changed min are
	 * recomputed from there.
	 */
	const __m256 vsw = _mm256_set1_ps(sum_w), vsx = _mm256_set1_ps(sum_x);
	const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	for (int k0 = 0; k0 <= nstep;) {
		const __m256 vrange = _mm256_set1_ps(max - min);
		__m256 kf = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(k0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
		__m256 is = _mm256_div_ps(_mm256_add_ps(_mm256_add_ps(_mm256_set1_ps(rmin), _mm256_mul_ps(_mm256_set1_ps(rdelta), kf)),
							_mm256_set1_ps((float)nmax)), vrange);
		__m256 sl = _mm256_setzero_ps(), sl2 = _mm256_setzero_ps(), sxl = _mm256_setzero_ps();
		for (int i = 0; i < n; i++) {
			__m256 lf = _mm256_cvtepi32_ps(clamp8(round_nearest8(_mm256_mul_ps(is, _mm256_set1_ps(xm[i]))), 0, nmax));
			__m256 wl = _mm256_mul_ps(_mm256_set1_ps(w[i]), lf);
			sl = _mm256_add_ps(sl, wl);
			sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(wl, lf));
			sxl = _mm256_add_ps(sxl, _mm256_mul_ps(wl, _mm256_set1_ps(x[i])));
		}
		__m256 D = _mm256_sub_ps(_mm256_mul_ps(vsw, sl2), _mm256_mul_ps(sl, sl));
		__m256 s = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(vsw, sxl), _mm256_mul_ps(vsx, sl)), D);
		__m256 m = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sl2, vsx), _mm256_mul_ps(sl, sxl)), D);
		__m256 pos = _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ);
		s = _mm256_blendv_ps(s, _mm256_div_ps(sxl, sl2), pos);
		m = _mm256_blendv_ps(m, _mm256_setzero_ps(), pos);
		__m256 err = _mm256_setzero_ps();
		for (int i = 0; i < n; i++) {
			__m256 lf = _mm256_cvtepi32_ps(clamp8(round_nearest8(_mm256_mul_ps(is, _mm256_set1_ps(xm[i]))), 0, nmax));
			__m256 e = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(s, lf), m), _mm256_set1_ps(x[i]));
			e = mad ? _mm256_and_ps(e, absm) : _mm256_mul_ps(e, e);
			err = _mm256_add_ps(err, _mm256_mul_ps(_mm256_set1_ps(w[i]), e));
		}
		float vD[8], vs[8], vm[8], ve[8], vis[8];
		_mm256_storeu_ps(vD, D);
		_mm256_storeu_ps(vs, s);
		_mm256_storeu_ps(vm, m);
		_mm256_storeu_ps(ve, err);
		_mm256_storeu_ps(vis, is);
		int next = k0 + 8;
		for (int k = 0; k < 8 && k0 + k <= nstep; k++) {
			if (!(vD[k] > 0.0f && ve[k] < best))
				continue;
			for (int i = 0; i < n; i++)
				L[i] = (uint8_t)clampi(round_nearest(vis[k] * xm[i]), 0, nmax);
			best = ve[k];
			scale = vs[k];
			if (memcmp(&vm[k], &min, sizeof min) != 0) {
				min = vm[k];
				for (int i = 0; i < n; i++)
					xm[i] = x[i] - min;
				next = k0 + k + 1;
				break;
			}
		}
		k0 = next;
	}
	*the_min = -min;
	return scale;
}

/* fit_sym, the 18 neighbour iscales in lanes (k = −9..−1, 1..9; the last 6 lanes unused). */
AVX2 static float fit_sym_avx2(int n, int nmax, const float *x, int8_t *L, const float *qw)
{
	float max;
	if (!sym_start(n, x, L, &max))
		return 0.0f;
	float w[32], wx[32];
	for (int i = 0; i < n; i++) {
		w[i] = qw ? qw[i] : x[i] * x[i];
		wx[i] = w[i] * x[i];
	}
	float iscale = (float)-nmax / max;
	float sumlx = 0.0f, suml2 = 0.0f;
	for (int i = 0; i < n; i++) {
		int l = clampi(round_nearest(iscale * x[i]), -nmax, nmax - 1);
		L[i] = (int8_t)(l + nmax);
		sumlx += wx[i] * (float)l;
		suml2 += w[i] * (float)l * (float)l;
	}
	float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
	float best = scale * sumlx;
	static const float ks[24] = { -9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0 };
	const __m256 vmax = _mm256_set1_ps(max), vn = _mm256_set1_ps((float)nmax);
	const __m256 sign = _mm256_set1_ps(-0.0f);
	int chosen = 0;
	float chosen_is = 0.0f;
	for (int g = 0; g < 3; g++) {
		__m256 is = _mm256_xor_ps(_mm256_add_ps(vn, _mm256_mul_ps(_mm256_set1_ps(0.1f), _mm256_loadu_ps(ks + 8 * g))), sign);
		is = _mm256_div_ps(is, vmax);
		__m256 slx = _mm256_setzero_ps(), sl2 = _mm256_setzero_ps();
		for (int i = 0; i < n; i++) {
			__m256 lf = _mm256_cvtepi32_ps(clamp8(round_nearest8(_mm256_mul_ps(is, _mm256_set1_ps(x[i]))), -nmax, nmax - 1));
			slx = _mm256_add_ps(slx, _mm256_mul_ps(_mm256_set1_ps(wx[i]), lf));
			sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(w[i]), lf), lf));
		}
		float vx[8], v2[8], vis[8];
		_mm256_storeu_ps(vx, slx);
		_mm256_storeu_ps(v2, sl2);
		_mm256_storeu_ps(vis, is);
		for (int k = 0; k < 8 && 8 * g + k < 18; k++) {
			if (v2[k] > 0.0f && vx[k] * vx[k] > best * v2[k]) {
				scale = vx[k] / v2[k];
				best = scale * vx[k];
				chosen = 1;
				chosen_is = vis[k];
			}
		}
	}
	if (chosen)
		for (int i = 0; i < n; i++)
			L[i] = (int8_t)(nmax + clampi(round_nearest(chosen_is * x[i]), -nmax, nmax - 1));
	return scale;
}
#endif

/* The group fits, by the AVX2 search when simd is set and the CPU has it. */
static float fit_sym(int n, int nmax, const float *x, int8_t *L, const float *qw, int simd)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (simd && n <= 32)
		return fit_sym_avx2(n, nmax, x, L, qw);
#endif
	return fit_sym_scalar(n, nmax, x, L, qw);
}

static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, uint8_t *Laux,
			float rmin, float rdelta, int nstep, int mad, int simd)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (simd && n <= 32)
		return fit_affine_avx2(n, nmax, x, w, L, the_min, rmin, rdelta, nstep, mad);
#endif
	return fit_affine_scalar(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, mad);
}

/* ---- shared packing -------------------------------------------------------------- */

/* Four 2-bit codes per byte: per 128 values, byte l holds L[l + 32k] at bits 2k. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
	for (int n = 0; n < QF_QK_K; n += 128)
		for (int l = 0; l < 32; l++)
			qs[n / 4 + l] = (uint8_t)(L[n + l] | (L[n + l + 32] << 2) | (L[n + l + 64] << 4) |
						  (L[n + l + 96] << 6));
}

/* Q4_K/Q5_K: sub-block j's 6-bit scale ls and min lm into the 12 scale bytes (j ascending). */
static void pack_k_scale(uint8_t *s, int j, uint8_t ls, uint8_t lm)
{
	if (j < 4) {
		s[j] = ls;
		s[j + 4] = lm;
	} else {
		s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
		s[j - 4] |= (uint8_t)((ls >> 4) << 6);
		s[j] |= (uint8_t)((lm >> 4) << 6);
	}
}

static void unpack_k_scale(const uint8_t *s, int j, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = s[j] & 63;
		*m = s[j + 4] & 63;
	} else {
		*sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
		*m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
	}
}

/* Q3_K: 6-bit scale code l (0..63) of sub-block j into zeroed scale bytes. */
static void pack_q3_scale(uint8_t *s, int j, int l)
{
	if (j < 8)
		s[j] = (uint8_t)(l & 0xF);
	else
		s[j - 8] |= (uint8_t)((l & 0xF) << 4);
	s[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

/* Q3_K: sub-block j's signed scale (code − 32). */
static int unpack_q3_scale(const uint8_t *s, int j)
{
	int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
	int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
	return (int8_t)(lo | hi << 4) - 32;
}

/*
 * Q4_K/Q5_K second pass: with the stored (f16-rounded) d, dmin and 6-bit
 * codes, every value of a sub-block whose scale is non-zero is re-coded as
 * clamp(round((x + dmin·m)/(d·sc)), 0, nmax).
 */
static void requant_k(const float *x, const uint8_t *scales, uint16_t dh, uint16_t mh, int nmax, uint8_t *L)
{
	for (int j = 0; j < QF_QK_K / 32; j++) {
		uint8_t sc, m;
		unpack_k_scale(scales, j, &sc, &m);
		const float d = f16(dh) * (float)sc;
		if (d == 0.0f)
			continue;
		const float dm = f16(mh) * (float)m;
		for (int i = 0; i < 32; i++)
			L[32 * j + i] = (uint8_t)clampi(round_nearest((x[32 * j + i] + dm) / d), 0, nmax);
	}
}

/* ---- Q2_K ------------------------------------------------------------------------ */

/* Re-codes with the stored d, dmin and 4-bit scales, then packs the codes. */
static void q2_k_finish(const float *x, qf_block_q2_k *y, uint8_t *L)
{
	const float d0 = f16(y->d), m0 = f16(y->dmin);
	for (int j = 0; j < QF_QK_K / 16; j++) {
		const float d = d0 * (float)(y->scales[j] & 0xF);
		if (d == 0.0f)
			continue;
		const float dm = m0 * (float)(y->scales[j] >> 4);
		for (int i = 0; i < 16; i++)
			L[16 * j + i] = (uint8_t)clampi(round_nearest((x[16 * j + i] + dm) / d), 0, 3);
	}
	pack_2bit(L, y->qs);
}

static void q2_k_ref(const float *x, void *dst, int64_t n, int simd)
{
	qf_block_q2_k *y = dst;
	uint8_t L[QF_QK_K], Laux[16];
	float w[16], sc[16], mn[16];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K) {
		float max_scale = 0.0f, max_min = 0.0f;
		for (int j = 0; j < 16; j++) {
			for (int i = 0; i < 16; i++)
				w[i] = fabsf(x[16 * j + i]);
			sc[j] = fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mn[j], Laux, -0.5f, 0.1f, 15, 1, simd);
			if (sc[j] > max_scale)
				max_scale = sc[j];
			if (mn[j] > max_min)
				max_min = mn[j];
		}
		if (max_scale > 0.0f) {
			float is = 15.0f / max_scale;
			for (int j = 0; j < 16; j++)
				y[b].scales[j] = (uint8_t)round_nearest(is * sc[j]);
			y[b].d = qf_f32_to_f16(max_scale / 15.0f);
		} else {
			memset(y[b].scales, 0, sizeof y[b].scales);
			y[b].d = qf_f32_to_f16(0.0f);
		}
		if (max_min > 0.0f) {
			float is = 15.0f / max_min;
			for (int j = 0; j < 16; j++)
				y[b].scales[j] |= (uint8_t)(round_nearest(is * mn[j]) << 4);
			y[b].dmin = qf_f32_to_f16(max_min / 15.0f);
		} else {
			y[b].dmin = qf_f32_to_f16(0.0f);
		}
		q2_k_finish(x, &y[b], L);
	}
}

void qf_quant_q2_k_ref(const float *x, void *dst, int64_t n) { q2_k_ref(x, dst, n, 0); }

void qf_quant_q2_k(const float *x, void *dst, int64_t n) { q2_k_ref(x, dst, n, qf_cpu_has_avx2()); }

/*
 * Weighted Q2_K: per value w = qw·sqrt(σ² + x²) with σ² = Σx²/256 of the
 * super-block; affine fits per 16, then the 4-bit scale and min codes are
 * fitted against Σw of each sub-block.
 */
void qf_quant_q2_k_w(const float *x, void *dst, int64_t n, const float *qw)
{
	if (!qw) {
		qf_quant_q2_k(x, dst, n);
		return;
	}
	const int simd = qf_cpu_has_avx2();
	qf_block_q2_k *y = dst;
	uint8_t L[QF_QK_K], Laux[16], Ls[16], Lm[16];
	float w[16], sc[16], mn[16], sw[16];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K, qw += QF_QK_K) {
		float sumx2 = 0.0f;
		for (int i = 0; i < QF_QK_K; i++)
			sumx2 += x[i] * x[i];
		const float sigma2 = sumx2 / (float)QF_QK_K;
		for (int j = 0; j < 16; j++) {
			for (int i = 0; i < 16; i++)
				w[i] = qw[16 * j + i] * sqrtf(sigma2 + x[16 * j + i] * x[16 * j + i]);
			sw[j] = 0.0f;
			for (int i = 0; i < 16; i++)
				sw[j] += w[i];
			sc[j] = fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mn[j], Laux, -0.9f, 0.05f, 36, 0, simd);
		}
		const float dm = fit_pos(16, 15, sc, Ls, sw);
		const float mm = fit_pos(16, 15, mn, Lm, sw);
		y[b].d = qf_f32_to_f16(dm);
		y[b].dmin = qf_f32_to_f16(mm);
		for (int j = 0; j < 16; j++)
			y[b].scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
		q2_k_finish(x, &y[b], L);
	}
}

void qf_dequant_q2_k(const void *src, float *dst, int64_t n)
{
	const qf_block_q2_k *x = src;
	for (int64_t b = 0; b < n / QF_QK_K; b++) {
		const float d = f16(x[b].d), m = f16(x[b].dmin);
		float *y = dst + b * QF_QK_K;
		for (int i = 0; i < QF_QK_K; i++) {
			/* value i: byte 32·(i/128) + i%32, bits 2·((i%128)/32); sub-block i/16 */
			const uint8_t s = x[b].scales[i / 16];
			const int q = (x[b].qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
			const float dl = d * (float)(s & 0xF), ml = m * (float)(s >> 4);
			y[i] = dl * (float)q - ml;
		}
	}
}

/* ---- Q3_K ------------------------------------------------------------------------ */

/* Re-codes with the stored d and 6-bit scales, then splits codes into hmask and qs. */
static void q3_k_finish(const float *x, qf_block_q3_k *y, int8_t *L)
{
	for (int j = 0; j < 16; j++) {
		const float d = f16(y->d) * (float)unpack_q3_scale(y->scales, j);
		if (d == 0.0f)
			continue;
		for (int i = 0; i < 16; i++)
			L[16 * j + i] = (int8_t)(clampi(round_nearest(x[16 * j + i] / d), -4, 3) + 4);
	}
	uint8_t low[QF_QK_K];
	memset(y->hmask, 0, sizeof y->hmask);
	for (int i = 0; i < QF_QK_K; i++) {
		int l = L[i];
		if (l > 3) {
			y->hmask[i % 32] |= (uint8_t)(1u << (i / 32));
			l -= 4;
		}
		low[i] = (uint8_t)l;
	}
	pack_2bit(low, y->qs);
}

void qf_quant_q3_k_ref(const float *x, void *dst, int64_t n)
{
	qf_block_q3_k *y = dst;
	int8_t L[QF_QK_K];
	float sc[16];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K) {
		float amax = 0.0f, max_scale = 0.0f;
		for (int j = 0; j < 16; j++) {
			sc[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
			if (fabsf(sc[j]) > amax) {
				amax = fabsf(sc[j]);
				max_scale = sc[j];
			}
		}
		memset(y[b].scales, 0, sizeof y[b].scales);
		if (max_scale != 0.0f) {
			const float is = -32.0f / max_scale;
			for (int j = 0; j < 16; j++) {
				int8_t l = (int8_t)round_nearest(is * sc[j]);
				pack_q3_scale(y[b].scales, j, clampi(l, -32, 31) + 32);
			}
			y[b].d = qf_f32_to_f16(1.0f / is);
		} else {
			y[b].d = qf_f32_to_f16(0.0f);
		}
		q3_k_finish(x, &y[b], L);
	}
}

/* Weighted Q3_K: w = qw·sqrt(σ² + x²), σ² = 2·Σx²/256; scale codes fitted against Σw. */
void qf_quant_q3_k_w(const float *x, void *dst, int64_t n, const float *qw)
{
	if (!qw) {
		qf_quant_q3_k_ref(x, dst, n);
		return;
	}
	const int simd = qf_cpu_has_avx2();
	qf_block_q3_k *y = dst;
	int8_t L[QF_QK_K], Ls[16];
	float w[16], sc[16], sw[16];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K, qw += QF_QK_K) {
		float sumx2 = 0.0f;
		for (int i = 0; i < QF_QK_K; i++)
			sumx2 += x[i] * x[i];
		const float sigma2 = 2.0f * sumx2 / (float)QF_QK_K;
		for (int j = 0; j < 16; j++) {
			for (int i = 0; i < 16; i++)
				w[i] = qw[16 * j + i] * sqrtf(sigma2 + x[16 * j + i] * x[16 * j + i]);
			float s = 0.0f;
			for (int i = 0; i < 16; i++)
				s += w[i];
			sw[j] = s;
			sc[j] = fit_sym(16, 4, x + 16 * j, L + 16 * j, w, simd);
		}
		memset(y[b].scales, 0, sizeof y[b].scales);
		const float d = fit_sym(16, 32, sc, Ls, sw, simd);
		for (int j = 0; j < 16; j++)
			pack_q3_scale(y[b].scales, j, Ls[j]);
		y[b].d = qf_f32_to_f16(d);
		q3_k_finish(x, &y[b], L);
	}
}

void qf_dequant_q3_k(const void *src, float *dst, int64_t n)
{
	const qf_block_q3_k *x = src;
	for (int64_t b = 0; b < n / QF_QK_K; b++) {
		const float d = f16(x[b].d);
		float *y = dst + b * QF_QK_K;
		for (int j = 0; j < 16; j++) {
			const float dl = d * (float)unpack_q3_scale(x[b].scales, j);
			for (int k = 0; k < 16; k++) {
				const int i = 16 * j + k;
				int q = (x[b].qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
				q -= (x[b].hmask[i % 32] >> (i / 32)) & 1 ? 0 : 4;
				y[i] = dl * (float)q;
			}
		}
	}
}

/* ---- Q4_K / Q5_K ------------------------------------------------------------------- */

/*
 * The reference first pass of both: affine fits per 32 with w = rms(sub-block)
 * + |x|, then the 6-bit codes of scale and min relative to their maxima; d and
 * dmin are the maxima / 63.
 */
static void k_ref_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *L, uint8_t *scales,
			 uint16_t *dh, uint16_t *mh, int simd)
{
	uint8_t Laux[32];
	float w[32], sc[8], mn[8];
	float max_scale = 0.0f, max_min = 0.0f;
	for (int j = 0; j < 8; j++) {
		const float *xs = x + 32 * j;
		float sum_x2 = 0.0f;
		for (int i = 0; i < 32; i++)
			sum_x2 += xs[i] * xs[i];
		const float av_x = sqrtf(sum_x2 / 32.0f);
		for (int i = 0; i < 32; i++)
			w[i] = av_x + fabsf(xs[i]);
		sc[j] = fit_affine(32, nmax, xs, w, L + 32 * j, &mn[j], Laux, rmin, 0.1f, nstep, 0, simd);
		if (sc[j] > max_scale)
			max_scale = sc[j];
		if (mn[j] > max_min)
			max_min = mn[j];
	}
	const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
	const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
	for (int j = 0; j < 8; j++) {
		uint8_t ls = (uint8_t)round_nearest(inv_scale * sc[j]);
		uint8_t lm = (uint8_t)round_nearest(inv_min * mn[j]);
		pack_k_scale(scales, j, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
	}
	*dh = qf_f32_to_f16(max_scale / 63.0f);
	*mh = qf_f32_to_f16(max_min / 63.0f);
}

/*
 * The weighted first pass: w = qw·sqrt(σ² + x²), σ² = 2·Σx²/256, affine fits
 * per 32, and the 6-bit codes fitted against each sub-block's Σw.  Q5_K clamps
 * the codes at 63, Q4_K does not (as in ggml; they never exceed it in practice).
 */
static void k_w_scales(const float *x, const float *qw, int nmax, int clamp63, uint8_t *L, uint8_t *scales,
		       uint16_t *dh, uint16_t *mh, int simd)
{
	uint8_t Laux[32], Ls[8], Lm[8];
	float w[32], sc[8], mn[8], sw[8];
	float sum_x2 = 0.0f;
	for (int i = 0; i < QF_QK_K; i++)
		sum_x2 += x[i] * x[i];
	const float sigma2 = 2.0f * sum_x2 / (float)QF_QK_K;
	for (int j = 0; j < 8; j++) {
		for (int i = 0; i < 32; i++)
			w[i] = qw[32 * j + i] * sqrtf(sigma2 + x[32 * j + i] * x[32 * j + i]);
		float s = 0.0f;
		for (int i = 0; i < 32; i++)
			s += w[i];
		sw[j] = s;
		sc[j] = fit_affine(32, nmax, x + 32 * j, w, L + 32 * j, &mn[j], Laux, -0.9f, 0.05f, 36, 0, simd);
	}
	const float d = fit_pos(8, 63, sc, Ls, sw);
	const float m = fit_pos(8, 63, mn, Lm, sw);
	for (int j = 0; j < 8; j++) {
		uint8_t ls = Ls[j], lm = Lm[j];
		if (clamp63) {
			ls = ls < 63 ? ls : 63;
			lm = lm < 63 ? lm : 63;
		}
		pack_k_scale(scales, j, ls, lm);
	}
	*dh = qf_f32_to_f16(d);
	*mh = qf_f32_to_f16(m);
}

static void pack_q4_k(const uint8_t *L, uint8_t *qs)
{
	for (int n = 0; n < QF_QK_K; n += 64)
		for (int l = 0; l < 32; l++)
			qs[n / 2 + l] = (uint8_t)(L[n + l] | (L[n + l + 32] << 4));
}

static void pack_q5_k(const uint8_t *L, uint8_t *qh, uint8_t *qs)
{
	memset(qh, 0, QF_QK_K / 8);
	for (int n = 0, k = 0; n < QF_QK_K; n += 64, k++) {
		for (int l = 0; l < 32; l++) {
			int lo = L[n + l], hi = L[n + l + 32];
			if (lo > 15) {
				lo -= 16;
				qh[l] |= (uint8_t)(1u << (2 * k));
			}
			if (hi > 15) {
				hi -= 16;
				qh[l] |= (uint8_t)(2u << (2 * k));
			}
			qs[n / 2 + l] = (uint8_t)(lo | (hi << 4));
		}
	}
}

static void q4_k_ref(const float *x, void *dst, int64_t n, int simd)
{
	qf_block_q4_k *y = dst;
	uint8_t L[QF_QK_K];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K) {
		k_ref_scales(x, 15, -1.0f, 20, L, y[b].scales, &y[b].d, &y[b].dmin, simd);
		requant_k(x, y[b].scales, y[b].d, y[b].dmin, 15, L);
		pack_q4_k(L, y[b].qs);
	}
}

void qf_quant_q4_k_ref(const float *x, void *dst, int64_t n) { q4_k_ref(x, dst, n, 0); }

void qf_quant_q4_k(const float *x, void *dst, int64_t n) { q4_k_ref(x, dst, n, qf_cpu_has_avx2()); }

void qf_quant_q4_k_w(const float *x, void *dst, int64_t n, const float *qw)
{
	if (!qw) {
		qf_quant_q4_k(x, dst, n);
		return;
	}
	const int simd = qf_cpu_has_avx2();
	qf_block_q4_k *y = dst;
	uint8_t L[QF_QK_K];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K, qw += QF_QK_K) {
		k_w_scales(x, qw, 15, 0, L, y[b].scales, &y[b].d, &y[b].dmin, simd);
		requant_k(x, y[b].scales, y[b].d, y[b].dmin, 15, L);
		pack_q4_k(L, y[b].qs);
	}
}

static void q5_k_ref(const float *x, void *dst, int64_t n, int simd)
{
	qf_block_q5_k *y = dst;
	uint8_t L[QF_QK_K];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K) {
		k_ref_scales(x, 31, -0.5f, 15, L, y[b].scales, &y[b].d, &y[b].dmin, simd);
		requant_k(x, y[b].scales, y[b].d, y[b].dmin, 31, L);
		pack_q5_k(L, y[b].qh, y[b].qs);
	}
}

void qf_quant_q5_k_ref(const float *x, void *dst, int64_t n) { q5_k_ref(x, dst, n, 0); }

void qf_quant_q5_k(const float *x, void *dst, int64_t n) { q5_k_ref(x, dst, n, qf_cpu_has_avx2()); }

void qf_quant_q5_k_w(const float *x, void *dst, int64_t n, const float *qw)
{
	if (!qw) {
		qf_quant_q5_k(x, dst, n);
		return;
	}
	const int simd = qf_cpu_has_avx2();
	qf_block_q5_k *y = dst;
	uint8_t L[QF_QK_K];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K, qw += QF_QK_K) {
		k_w_scales(x, qw, 31, 1, L, y[b].scales, &y[b].d, &y[b].dmin, simd);
		requant_k(x, y[b].scales, y[b].d, y[b].dmin, 31, L);
		pack_q5_k(L, y[b].qh, y[b].qs);
	}
}

void qf_dequant_q4_k(const void *src, float *dst, int64_t n)
{
	const qf_block_q4_k *x = src;
	for (int64_t b = 0; b < n / QF_QK_K; b++) {
		const float d = f16(x[b].d), m = f16(x[b].dmin);
		float *y = dst + b * QF_QK_K;
		for (int j = 0; j < 8; j++) {
			uint8_t sc, mn;
			unpack_k_scale(x[b].scales, j, &sc, &mn);
			const float dl = d * (float)sc, ml = m * (float)mn;
			const uint8_t *q = x[b].qs + 32 * (j / 2);
			const int shift = 4 * (j % 2);
			for (int l = 0; l < 32; l++)
				y[32 * j + l] = dl * (float)((q[l] >> shift) & 0xF) - ml;
		}
	}
}

void qf_dequant_q5_k(const void *src, float *dst, int64_t n)
{
	const qf_block_q5_k *x = src;
	for (int64_t b = 0; b < n / QF_QK_K; b++) {
		const float d = f16(x[b].d), m = f16(x[b].dmin);
		float *y = dst + b * QF_QK_K;
		for (int j = 0; j < 8; j++) {
			uint8_t sc, mn;
			unpack_k_scale(x[b].scales, j, &sc, &mn);
			const float dl = d * (float)sc, ml = m * (float)mn;
			const uint8_t *q = x[b].qs + 32 * (j / 2);
			const int shift = 4 * (j % 2);
			for (int l = 0; l < 32; l++) {
				int v = ((q[l] >> shift) & 0xF) + ((x[b].qh[l] >> j) & 1 ? 16 : 0);
				y[32 * j + l] = dl * (float)v - ml;
			}
		}
	}
}

/* ---- Q6_K ------------------------------------------------------------------------ */

/*
 * Symmetric fits per 16 (w = qw, or x² without weights), the 8-bit scale codes
 * relative to the scale of largest magnitude (−128 ↔ that scale), then a
 * re-code with the stored values.  ggml's weighted Q6_K uses qw as is.
 */
static void q6_k_encode(const float *x, void *dst, int64_t n, const float *qw, int simd)
{
	qf_block_q6_k *y = dst;
	int8_t L[QF_QK_K];
	float sc[16];
	for (int64_t b = 0; b < n / QF_QK_K; b++, x += QF_QK_K, qw = qw ? qw + QF_QK_K : NULL) {
		float max_abs = 0.0f, max_scale = 0.0f;
		for (int j = 0; j < 16; j++) {
			sc[j] = fit_sym(16, 32, x + 16 * j, L + 16 * j, qw ? qw + 16 * j : NULL, simd);
			if (fabsf(sc[j]) > max_abs) {
				max_abs = fabsf(sc[j]);
				max_scale = sc[j];
			}
		}
		if (max_abs < GROUP_EPS) {
			memset(&y[b], 0, sizeof y[b]);
			continue;
		}
		const float is = -128.0f / max_scale;
		y[b].d = qf_f32_to_f16(1.0f / is);
		for (int j = 0; j < 16; j++) {
			int v = round_nearest(is * sc[j]);
			y[b].scales[j] = (int8_t)(v < 127 ? v : 127);
		}
		for (int j = 0; j < 16; j++) {
			const float d = f16(y[b].d) * (float)y[b].scales[j];
			if (d == 0.0f)
				continue;
			for (int i = 0; i < 16; i++)
				L[16 * j + i] = (int8_t)(clampi(round_nearest(x[16 * j + i] / d), -32, 31) + 32);
		}
		uint8_t *ql = y[b].ql, *qh = y[b].qh;
		for (int c = 0; c < QF_QK_K; c += 128, ql += 64, qh += 32) {
			const int8_t *Lc = L + c;
			for (int l = 0; l < 32; l++) {
				ql[l] = (uint8_t)((Lc[l] & 0xF) | ((Lc[l + 64] & 0xF) << 4));
				ql[l + 32] = (uint8_t)((Lc[l + 32] & 0xF) | ((Lc[l + 96] & 0xF) << 4));
				qh[l] = (uint8_t)((Lc[l] >> 4) | ((Lc[l + 32] >> 4) << 2) | ((Lc[l + 64] >> 4) << 4) |
						  ((Lc[l + 96] >> 4) << 6));
			}
		}
	}
}

void qf_quant_q6_k_ref(const float *x, void *dst, int64_t n) { q6_k_encode(x, dst, n, NULL, 0); }

void qf_quant_q6_k(const float *x, void *dst, int64_t n) { q6_k_encode(x, dst, n, NULL, qf_cpu_has_avx2()); }

void qf_quant_q6_k_w(const float *x, void *dst, int64_t n, const float *qw)
{
	q6_k_encode(x, dst, n, qw, qf_cpu_has_avx2());
}

void qf_dequant_q6_k(const void *src, float *dst, int64_t n)
{
	const qf_block_q6_k *x = src;
	for (int64_t b = 0; b < n / QF_QK_K; b++) {
		const float d = f16(x[b].d);
		float *y = dst + b * QF_QK_K;
		for (int i = 0; i < QF_QK_K; i++) {
			/* value i = 128c + 32k + l: nibble k/2 of ql[64c + 32(k%2) + l], bits 2k of qh[32c + l] */
			const int c = i / 128, k = (i % 128) / 32, l = i % 32;
			const int lo = (x[b].ql[64 * c + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
			const int hi = (x[b].qh[32 * c + l] >> (2 * k)) & 3;
			const int8_t q = (int8_t)((lo | hi << 4) - 32);
			y[i] = d * (float)x[b].scales[i / 16] * (float)q;
		}
	}
}

/* ---- Q5_0 / Q5_1 ----------------------------------------------------------------- */

/* 32 five-bit codes into low nibbles (qs) and the u32 of fifth bits (qh, little-endian). */
static void pack_q5(const uint8_t *L, uint8_t *qh, uint8_t *qs)
{
	uint32_t h = 0;
	for (int j = 0; j < 16; j++) {
		qs[j] = (uint8_t)((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
		h |= (uint32_t)((L[j] >> 4) & 1) << j;
		h |= (uint32_t)((L[j + 16] >> 4) & 1) << (j + 16);
	}
	for (int k = 0; k < 4; k++)
		qh[k] = (uint8_t)(h >> (8 * k));
}

static int q5_code(const uint8_t *qh, const uint8_t *qs, int i)
{
	uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
	int lo = i < 16 ? qs[i] & 0x0F : qs[i - 16] >> 4;
	return lo | (int)((h >> i) & 1) << 4;
}

void qf_quant_q5_0_ref(const float *x, void *dst, int64_t n)
{
	qf_block_q5_0 *y = dst;
	uint8_t L[QF_QK5];
	for (int64_t b = 0; b < n / QF_QK5; b++, x += QF_QK5) {
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < QF_QK5; j++) {
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		const float d = max / -16.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		y[b].d = qf_f32_to_f16(d);
		for (int j = 0; j < QF_QK5; j++) {
			int8_t q = (int8_t)(x[j] * id + 16.5f);
			L[j] = (uint8_t)(q < 31 ? q : 31);
		}
		pack_q5(L, y[b].qh, y[b].qs);
	}
}

void qf_quant_q5_1_ref(const float *x, void *dst, int64_t n)
{
	qf_block_q5_1 *y = dst;
	uint8_t L[QF_QK5];
	for (int64_t b = 0; b < n / QF_QK5; b++, x += QF_QK5) {
		float min = FLT_MAX, max = -FLT_MAX;
		for (int j = 0; j < QF_QK5; j++) {
			if (x[j] < min)
				min = x[j];
			if (x[j] > max)
				max = x[j];
		}
		const float d = (max - min) / 31.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		y[b].d = qf_f32_to_f16(d);
		y[b].m = qf_f32_to_f16(min);
		for (int j = 0; j < QF_QK5; j++)
			L[j] = (uint8_t)((x[j] - min) * id + 0.5f);
		pack_q5(L, y[b].qh, y[b].qs);
	}
}

void qf_dequant_q5_0(const void *src, float *dst, int64_t n)
{
	const qf_block_q5_0 *x = src;
	for (int64_t b = 0; b < n / QF_QK5; b++) {
		const float d = f16(x[b].d);
		for (int i = 0; i < QF_QK5; i++)
			dst[b * QF_QK5 + i] = (float)(q5_code(x[b].qh, x[b].qs, i) - 16) * d;
	}
}

void qf_dequant_q5_1(const void *src, float *dst, int64_t n)
{
	const qf_block_q5_1 *x = src;
	for (int64_t b = 0; b < n / QF_QK5; b++) {
		const float d = f16(x[b].d), m = f16(x[b].m);
		for (int i = 0; i < QF_QK5; i++)
			dst[b * QF_QK5 + i] = (float)q5_code(x[b].qh, x[b].qs, i) * d + m;
	}
}

/* ---- weighted 32-value blocks ------------------------------------------------------ */

/*
 * ggml weights a 32-value block's values by w = qw·sqrt(σ² + x²), where σ² is
 * the mean square of the whole row (n values), not of the block.
 */
static float row_sigma2(const float *x, int64_t n)
{
	float s = 0.0f;
	for (int64_t i = 0; i < n; i++)
		s += x[i] * x[i];
	return s / (float)n;
}

static void block_weights(const float *x, const float *qw, float sigma2, float *w)
{
	for (int j = 0; j < 32; j++)
		w[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
}

void qf_quant_q4_0_w(const float *x, void *dst, int64_t n, const float *qw)
{
	if (!qw) {
		qf_quant_q4_0(x, dst, n);
		return;
	}
	qf_block_q4_0 *y = dst;
	const float sigma2 = row_sigma2(x, n);
	float w[32];
	int8_t L[32];
	for (int64_t b = 0; b < n / 32; b++, x += 32, qw += 32) {
		block_weights(x, qw, sigma2, w);
		y[b].d = qf_f32_to_f16(fit_sym(32, 8, x, L, w, qf_cpu_has_avx2()));
		for (int j = 0; j < 16; j++)
			y[b].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
	}
}

void qf_quant_q4_1_w(const float *x, void *dst, int64_t n, const float *qw)
{
	if (!qw) {
		qf_quant_q4_1_ref(x, dst, n);
		return;
	}
	qf_block_q4_1 *y = dst;
	const float sigma2 = row_sigma2(x, n);
	float w[32], min;
	uint8_t L[32], Laux[32];
	for (int64_t b = 0; b < n / 32; b++, x += 32, qw += 32) {
		block_weights(x, qw, sigma2, w);
		const float d = fit_affine(32, 15, x, w, L, &min, Laux, -0.9f, 0.05f, 36, 0, qf_cpu_has_avx2());
		y[b].d = qf_f32_to_f16(d);
		y[b].m = qf_f32_to_f16(-min);
		for (int j = 0; j < 16; j++)
			y[b].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
	}
}

void qf_quant_q5_0_w(const float *x, void *dst, int64_t n, const float *qw)
{
	if (!qw) {
		qf_quant_q5_0_ref(x, dst, n);
		return;
	}
	qf_block_q5_0 *y = dst;
	const float sigma2 = row_sigma2(x, n);
	float w[32];
	int8_t L[32];
	for (int64_t b = 0; b < n / 32; b++, x += 32, qw += 32) {
		block_weights(x, qw, sigma2, w);
		y[b].d = qf_f32_to_f16(fit_sym(32, 16, x, L, w, qf_cpu_has_avx2()));
		pack_q5((const uint8_t *)L, y[b].qh, y[b].qs);
	}
}

void qf_quant_q5_1_w(const float *x, void *dst, int64_t n, const float *qw)
{
	if (!qw) {
		qf_quant_q5_1_ref(x, dst, n);
		return;
	}
	qf_block_q5_1 *y = dst;
	const float sigma2 = row_sigma2(x, n);
	float w[32], min;
	uint8_t L[32], Laux[32];
	for (int64_t b = 0; b < n / 32; b++, x += 32, qw += 32) {
		block_weights(x, qw, sigma2, w);
		const float d = fit_affine(32, 31, x, w, L, &min, Laux, -0.9f, 0.05f, 36, 0, qf_cpu_has_avx2());
		y[b].d = qf_f32_to_f16(d);
		y[b].m = qf_f32_to_f16(-min);
		pack_q5(L, y[b].qh, y[b].qs);
	}
}
