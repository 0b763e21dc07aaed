#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dtype.h"
#include "formats/ggml_kquants.h"
#include "formats/ggml_quants.h"
#include "util/qf.h"

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* ---- F16 ---------------------------------------------------------------- */

float qf_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t mant = h & 0x3ff;
	if (exp == 0x1f)
		return bits_f32(sign | 0x7f800000 | (mant << 13));
	if (exp == 0) {
		/* zero or subnormal: mant · 2^-24, exact in f32 */
		float v = (float)mant * 0x1p-24f;
		return sign ? -v : v;
	}
	return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t qf_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	x &= 0x7fffffff;
	if (x > 0x7f800000)
		return sign | 0x7e00 | (uint16_t)((x >> 13) & 0x3ff); /* NaN stays NaN */
	if (x >= 0x477ff000)
		return sign | 0x7c00; /* rounds to infinity */
	if (x < 0x38800000) {
		/* result is subnormal or zero: let the FPU round at 2^-24 */
		float a = bits_f32(x) + 0.5f;
		return sign | (uint16_t)(f32_bits(a) - 0x3f000000u);
	}
	uint32_t odd = (x >> 13) & 1;
	x += 0xc8000fffu + odd; /* rebias exponent, round to nearest even */
	return sign | (uint16_t)(x >> 13);
}

/* ---- BF16 --------------------------------------------------------------- */

float qf_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t qf_f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);
	if ((u & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((u >> 16) | 64); /* quiet NaN */
	return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

/* ---- 8-bit minifloats ----------------------------------------------------- */

/*
 * Generic encoder for a sign + ebits + mbits minifloat with the given bias
 * and largest finite magnitude code (without sign).  Round to nearest even,
 * saturating to the largest finite value.  All arithmetic is exact in double.
 */
static uint8_t minifloat_encode(float f, int ebits, int mbits, int bias, uint8_t maxcode)
{
	uint8_t sign = signbit(f) ? 0x80 : 0;
	double x = fabs((double)f);
	int emin = 1 - bias;
	uint32_t code;
	if (isinf(x))
		return sign | maxcode;
	if (x < ldexp(1.0, emin)) {
		code = (uint32_t)nearbyint(ldexp(x, mbits - emin)); /* may reach min normal */
	} else {
		int e;
		double m = frexp(x, &e); /* x = m·2^e, m in [0.5,1) */
		e -= 1;
		m *= 2.0;
		double q = nearbyint(ldexp(m - 1.0, mbits));
		if (q >= ldexp(1.0, mbits)) {
			q = 0;
			e += 1;
		}
		int be = e + bias;
		if (be >= (1 << ebits))
			code = maxcode; /* beyond the largest exponent: saturate */
		else
			code = ((uint32_t)be << mbits) | (uint32_t)q;
	}
	if (code > maxcode)
		code = maxcode;
	return sign | (uint8_t)code;
}

float qf_e4m3_to_f32(uint8_t v)
{
	uint32_t sign = v & 0x80;
	uint32_t exp = (v >> 3) & 0xf;
	uint32_t mant = v & 7;
	float r;
	if (exp == 0xf && mant == 7)
		return sign ? -NAN : NAN;
	if (exp == 0)
		r = (float)mant * 0x1p-9f;
	else
		r = ldexpf(1.0f + (float)mant / 8.0f, (int)exp - 7);
	return sign ? -r : r;
}

uint8_t qf_f32_to_e4m3(float f)
{
	if (isnan(f))
		return signbit(f) ? 0xff : 0x7f;
	/* bit arithmetic, round to nearest even, saturating at ±448 (0x7e) */
	uint32_t u;
	memcpy(&u, &f, 4);
	uint8_t sign = (uint8_t)((u >> 24) & 0x80);
	uint32_t a = u & 0x7fffffffu;
	if (a >= 0x43e00000u) /* ≥ 448, or inf */
		return sign | 0x7e;
	if (a < 0x3c800000u) { /* below 2^-6: subnormal steps of 2^-9 (may round up to the min normal) */
		float m;
		memcpy(&m, &a, 4);
		return sign | (uint8_t)nearbyintf(m * 512.0f);
	}
	uint32_t r = (a + 0x7ffffu + ((a >> 20) & 1)) >> 20; /* exponent and 3 mantissa bits, rounded */
	r -= (127 - 7) << 3;
	return sign | (uint8_t)(r > 0x7e ? 0x7e : r);
}

float qf_e5m2_to_f32(uint8_t v)
{
	return qf_f16_to_f32((uint16_t)v << 8);
}

uint8_t qf_f32_to_e5m2(float f)
{
	if (isnan(f))
		return signbit(f) ? 0xfe : 0x7e;
	if (isinf(f))
		return signbit(f) ? 0xfc : 0x7c;
	return minifloat_encode(f, 5, 2, 15, 0x7b);
}

float qf_e8m0_to_f32(uint8_t v)
{
	if (v == 0xff)
		return NAN;
	if (v == 0)
		return 0x1p-127f;
	return bits_f32((uint32_t)v << 23);
}

uint8_t qf_f32_to_e8m0(float f)
{
	if (isnan(f))
		return 0xff;
	uint32_t u = f32_bits(f);
	if (signbit(f) || (u & 0x7fffffff) == 0)
		return 0;
	if (isinf(f))
		return 0xfe;
	uint32_t e = u >> 23, m = u & 0x7fffff;
	if (e == 0) {
		/* subnormal f32: only 2^-127 (0) is representable below 2^-126 */
		return (m > 0x400000) ? 1 : 0;
	}
	if (m > 0x400000 || (m == 0x400000 && (e & 1)))
		e++;
	return e > 0xfe ? 0xfe : (uint8_t)e;
}

static float e4m3_lut[256];
static pthread_once_t e4m3_once = PTHREAD_ONCE_INIT;

static void e4m3_lut_init(void)
{
	for (int i = 0; i < 256; i++)
		e4m3_lut[i] = qf_e4m3_to_f32((uint8_t)i);
}

const float *qf_e4m3_table(void)
{
	pthread_once(&e4m3_once, e4m3_lut_init);
	return e4m3_lut;
}

/* ---- row converters ------------------------------------------------------ */

void qf_row_bf16_to_f32(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	uint32_t *d = (uint32_t *)dst;
	for (int64_t i = 0; i < n; i++)
		d[i] = (uint32_t)s[i] << 16; /* vectorises at -O2 */
}

static void row_f32_to_bf16_scalar(const float *src, void *dst, int64_t n)
{
	uint16_t *d = dst;
	for (int64_t i = 0; i < n; i++)
		d[i] = qf_f32_to_bf16(src[i]);
}

void qf_row_f16_to_f32_scalar(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = qf_f16_to_f32(s[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx,f16c")))
static void row_f16_to_f32_f16c(const void *src, float *dst, int64_t n)
{
	const uint16_t *s = src;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m128i h = _mm_loadu_si128((const __m128i *)(s + i));
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
	}
	for (; i < n; i++)
		dst[i] = qf_f16_to_f32(s[i]);
}

__attribute__((target("avx,f16c")))
static void row_f32_to_f16_f16c(const float *src, void *dst, int64_t n)
{
	uint16_t *d = dst;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(src + i);
		_mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
	}
	for (; i < n; i++)
		d[i] = qf_f32_to_f16(src[i]);
}

#include <cpuid.h>
/*
 * What the CPU can run, found once (pthread_once: several threads may ask
 * first at the same time).  QF_NO_SIMD in the environment turns every SIMD
 * path off, for the portable-path tests.
 */
static int cpu_f16c, cpu_avx2;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_probe(void)
{
	unsigned a, b, c, d;
	/* AVX and F16C, with the OS saving YMM state */
	if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27)) && (c & (1u << 28)) && (c & (1u << 29))) {
		unsigned lo, hi;
		__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		cpu_f16c = (lo & 6) == 6;
	}
	/* AVX2: leaf 7, EBX bit 5 */
	cpu_avx2 = cpu_f16c && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 5));
	if (getenv("QF_NO_SIMD"))
		cpu_f16c = cpu_avx2 = 0;
}

static int have_f16c(void)
{
	pthread_once(&cpu_once, cpu_probe);
	return cpu_f16c;
}

static int have_avx2(void)
{
	pthread_once(&cpu_once, cpu_probe);
	return cpu_avx2;
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
/* qf_f32_to_bf16 on 8 lanes (the bits of 8 floats, results in the low 16 bits): round to nearest even, NaN kept quiet. */
__attribute__((target("avx2"))) static inline __m256i bf16x8_avx2(__m256i u)
{
	const __m256i absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
	const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(64);
	__m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absmask), inf);
	__m256i rnd = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
	return _mm256_blendv_epi8(_mm256_srli_epi32(rnd, 16), _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet), nan);
}

/* Two 8-lane results of bf16x8_avx2 (each < 65536) → 16 × u16, in order. */
__attribute__((target("avx2"))) static inline void store_bf16x16_avx2(uint16_t *d, __m256i lo, __m256i hi)
{
	__m256i p = _mm256_packus_epi32(lo, hi);
	_mm256_storeu_si256((__m256i *)d, _mm256_permute4x64_epi64(p, 0xd8));
}

__attribute__((target("avx2"))) static void row_f32_to_bf16_avx2(const float *src, void *dst, int64_t n)
{
	uint16_t *d = dst;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		store_bf16x16_avx2(d + i, bf16x8_avx2(_mm256_loadu_si256((const __m256i *)(src + i))),
				   bf16x8_avx2(_mm256_loadu_si256((const __m256i *)(src + i + 8))));
	for (; i < n; i++)
		d[i] = qf_f32_to_bf16(src[i]);
}
#endif

void qf_row_f32_to_bf16(const float *src, void *dst, int64_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_avx2()) {
		row_f32_to_bf16_avx2(src, dst, n);
		return;
	}
#endif
	row_f32_to_bf16_scalar(src, dst, n);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* E4M3 → f32 by bit arithmetic on 8 lanes (8 bytes at src): the LUT's exact values. */
__attribute__((target("avx2"))) static inline __m256 e4m3x8_avx2(const uint8_t *src)
{
	const __m256 sub = _mm256_set1_ps(0x1p-9f);
	__m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)src));
	__m256i sign = _mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x80)), 24);
	__m256i e = _mm256_and_si256(_mm256_srli_epi32(b, 3), _mm256_set1_epi32(15));
	__m256i m = _mm256_and_si256(b, _mm256_set1_epi32(7));
	/* normal: 2^(e−7)·(1 + m/8) → exponent e + 120, mantissa m << 20 */
	__m256i nb = _mm256_or_si256(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(120)), 23),
				     _mm256_slli_epi32(m, 20));
	__m256 nrm = _mm256_castsi256_ps(nb);
	__m256 sbn = _mm256_mul_ps(_mm256_cvtepi32_ps(m), sub); /* e = 0: m · 2^-9 */
	__m256 isz = _mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_setzero_si256()));
	__m256 v = _mm256_blendv_ps(nrm, sbn, isz);
	__m256 isnan = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7f)),
							      _mm256_set1_epi32(0x7f)));
	v = _mm256_blendv_ps(v, _mm256_set1_ps(NAN), isnan);
	return _mm256_or_ps(v, _mm256_castsi256_ps(sign));
}

/* E4M3 → f32 on 8 lanes, times s: one rounding. */
__attribute__((target("avx2"))) static void row_e4m3_scaled_avx2(const uint8_t *src, float *dst, int64_t n, float s)
{
	const __m256 vs = _mm256_set1_ps(s);
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_mul_ps(e4m3x8_avx2(src + i), vs));
	const float *lut = qf_e4m3_table();
	for (; i < n; i++)
		dst[i] = lut[src[i]] * s;
}

/* The two above in registers: e4m3 × s → bf16, and whether every product was finite. */
__attribute__((target("avx2"))) static int row_e4m3_scaled_bf16_avx2(const uint8_t *src, uint16_t *dst, int64_t n, float s)
{
	const __m256 vs = _mm256_set1_ps(s);
	const __m256i e = _mm256_set1_epi32(0x7f800000);
	__m256i any = _mm256_setzero_si256();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256i a = _mm256_castps_si256(_mm256_mul_ps(e4m3x8_avx2(src + i), vs));
		__m256i b = _mm256_castps_si256(_mm256_mul_ps(e4m3x8_avx2(src + i + 8), vs));
		any = _mm256_or_si256(any, _mm256_cmpeq_epi32(_mm256_and_si256(a, e), e));
		any = _mm256_or_si256(any, _mm256_cmpeq_epi32(_mm256_and_si256(b, e), e));
		store_bf16x16_avx2(dst + i, bf16x8_avx2(a), bf16x8_avx2(b));
	}
	int fin = _mm256_testz_si256(any, any);
	const float *lut = qf_e4m3_table();
	for (; i < n; i++) {
		float f = lut[src[i]] * s;
		fin &= isfinite(f) != 0;
		dst[i] = qf_f32_to_bf16(f);
	}
	return fin;
}
#endif

int qf_row_e4m3_scaled_to_bf16(const void *src, void *dst, int64_t n, float s)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_avx2())
		return row_e4m3_scaled_bf16_avx2(src, dst, n, s);
#endif
	const float *lut = qf_e4m3_table();
	const uint8_t *b = src;
	uint16_t *d = dst;
	int fin = 1;
	for (int64_t i = 0; i < n; i++) {
		float f = lut[b[i]] * s;
		fin &= isfinite(f) != 0;
		d[i] = qf_f32_to_bf16(f);
	}
	return fin;
}

void qf_row_e4m3_scaled_to_f32(const void *src, float *dst, int64_t n, float s)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_avx2()) {
		row_e4m3_scaled_avx2(src, dst, n, s);
		return;
	}
#endif
	const float *lut = qf_e4m3_table();
	const uint8_t *b = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = lut[b[i]] * s;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) static int all_finite_avx2(const float *v, int64_t n)
{
	const __m256i e = _mm256_set1_epi32(0x7f800000);
	__m256i any = _mm256_setzero_si256();
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256i u = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(v + i)), e);
		any = _mm256_or_si256(any, _mm256_cmpeq_epi32(u, e));
	}
	int bad = !_mm256_testz_si256(any, any);
	for (; i < n; i++) {
		uint32_t u;
		memcpy(&u, v + i, 4);
		bad |= (u & 0x7f800000u) == 0x7f800000u;
	}
	return !bad;
}
#endif

int qf_row_all_finite(const float *v, int64_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_avx2())
		return all_finite_avx2(v, n);
#endif
	uint32_t any = 0;
	for (int64_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, v + i, 4);
		any |= (u & 0x7f800000u) == 0x7f800000u;
	}
	return !any;
}

int qf_cpu_has_avx2(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	return have_avx2();
#else
	return 0;
#endif
}

void qf_row_f16_to_f32(const void *src, float *dst, int64_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_f16c()) {
		row_f16_to_f32_f16c(src, dst, n);
		return;
	}
#endif
	qf_row_f16_to_f32_scalar(src, dst, n);
}

void qf_row_f32_to_f16(const float *src, void *dst, int64_t n)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_f16c()) {
		row_f32_to_f16_f16c(src, dst, n);
		return;
	}
#endif
	uint16_t *d = dst;
	for (int64_t i = 0; i < n; i++)
		d[i] = qf_f32_to_f16(src[i]);
}

void qf_row_e4m3_to_f32(const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;
	const float *lut = qf_e4m3_table();
	for (int64_t i = 0; i < n; i++)
		dst[i] = lut[s[i]];
}

static void row_e5m2_to_f32(const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = qf_e5m2_to_f32(s[i]);
}

static void row_e8m0_to_f32(const void *src, float *dst, int64_t n)
{
	const uint8_t *s = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = qf_e8m0_to_f32(s[i]);
}

static void row_f32_to_e4m3(const float *src, void *dst, int64_t n)
{
	uint8_t *d = dst;
	for (int64_t i = 0; i < n; i++)
		d[i] = qf_f32_to_e4m3(src[i]);
}

static void row_f32_to_e5m2(const float *src, void *dst, int64_t n)
{
	uint8_t *d = dst;
	for (int64_t i = 0; i < n; i++)
		d[i] = qf_f32_to_e5m2(src[i]);
}

static void row_f32_to_e8m0(const float *src, void *dst, int64_t n)
{
	uint8_t *d = dst;
	for (int64_t i = 0; i < n; i++)
		d[i] = qf_f32_to_e8m0(src[i]);
}

static void row_f32_to_f32(const void *src, float *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * 4);
}

static void row_f32_from_f32(const float *src, void *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * 4);
}

static void row_f64_to_f32(const void *src, float *dst, int64_t n)
{
	const unsigned char *s = src;
	for (int64_t i = 0; i < n; i++) {
		double v;
		memcpy(&v, s + 8 * i, 8);
		dst[i] = (float)v;
	}
}

static void row_f32_to_f64(const float *src, void *dst, int64_t n)
{
	unsigned char *d = dst;
	for (int64_t i = 0; i < n; i++) {
		double v = src[i];
		memcpy(d + 8 * i, &v, 8);
	}
}

#define INT_TO_F32(NAME, T)                                                  \
	static void NAME(const void *src, float *dst, int64_t n)              \
	{                                                                     \
		const unsigned char *s = src;                                 \
		for (int64_t i = 0; i < n; i++) {                             \
			T v;                                                  \
			memcpy(&v, s + sizeof(T) * i, sizeof(T));             \
			dst[i] = (float)v;                                    \
		}                                                             \
	}
INT_TO_F32(row_u8_to_f32, uint8_t)
INT_TO_F32(row_i8_to_f32, int8_t)
INT_TO_F32(row_i16_to_f32, int16_t)
INT_TO_F32(row_u16_to_f32, uint16_t)
INT_TO_F32(row_i32_to_f32, int32_t)
INT_TO_F32(row_u32_to_f32, uint32_t)
INT_TO_F32(row_i64_to_f32, int64_t)
INT_TO_F32(row_u64_to_f32, uint64_t)

/* The output-format half of a row; COMP1: its one bundle companion. */
#define FMT(NAME, GGUF, ELEM, BR, BC, DIV, DESC) \
	.fmt = NAME, .gguf = GGUF, .elem = ELEM, .brows = BR, .bcols = BC, .need_div = DIV, .desc = DESC
#define COMP1(SUFFIX, TYPE) .ncomp = 1, .comp = { SUFFIX }, .comp_type = { TYPE }

/* Rows without FMT() are not output formats; their .gguf is 0 but unused. */
static const qf_dtype_traits traits[QF_DTYPE_COUNT] = {
	[QF_BOOL] = { .name = "BOOL", .ggml_type = -1, .block_elems = 1, .block_bytes = 1,
		      .to_f32 = row_u8_to_f32 },
	[QF_U8] = { .name = "U8", .ggml_type = -1, .block_elems = 1, .block_bytes = 1,
		    .to_f32 = row_u8_to_f32 },
	[QF_I8] = { .name = "I8", .ggml_name = "i8", .ggml_type = 24, .block_elems = 1,
		    .block_bytes = 1, .to_f32 = row_i8_to_f32 },
	[QF_I16] = { .name = "I16", .ggml_name = "i16", .ggml_type = 25, .block_elems = 1,
		     .block_bytes = 2, .to_f32 = row_i16_to_f32 },
	[QF_U16] = { .name = "U16", .ggml_type = -1, .block_elems = 1, .block_bytes = 2,
		     .to_f32 = row_u16_to_f32 },
	[QF_I32] = { .name = "I32", .ggml_name = "i32", .ggml_type = 26, .block_elems = 1,
		     .block_bytes = 4, .to_f32 = row_i32_to_f32 },
	[QF_U32] = { .name = "U32", .ggml_type = -1, .block_elems = 1, .block_bytes = 4,
		     .to_f32 = row_u32_to_f32 },
	[QF_I64] = { .name = "I64", .ggml_name = "i64", .ggml_type = 27, .block_elems = 1,
		     .block_bytes = 8, .to_f32 = row_i64_to_f32 },
	[QF_U64] = { .name = "U64", .ggml_type = -1, .block_elems = 1, .block_bytes = 8,
		     .to_f32 = row_u64_to_f32 },
	[QF_F16] = { .name = "F16", .ggml_name = "f16", .ggml_type = 1, .block_elems = 1,
		     .block_bytes = 2, .is_float = 1, .to_f32 = qf_row_f16_to_f32,
		     .from_f32 = qf_row_f32_to_f16,
		     FMT("f16", QF_F16, QF_F16, 1, 1, 0, "IEEE float16") },
	[QF_BF16] = { .name = "BF16", .ggml_name = "bf16", .ggml_type = 30, .block_elems = 1,
		      .block_bytes = 2, .is_float = 1, .to_f32 = qf_row_bf16_to_f32,
		      .from_f32 = qf_row_f32_to_bf16,
		      FMT("bf16", QF_BF16, QF_BF16, 1, 1, 0, "bfloat16") },
	[QF_F32] = { .name = "F32", .ggml_name = "f32", .ggml_type = 0, .block_elems = 1,
		     .block_bytes = 4, .is_float = 1, .to_f32 = row_f32_to_f32,
		     .from_f32 = row_f32_from_f32,
		     FMT("f32", QF_F32, QF_F32, 1, 1, 0, "IEEE float32") },
	[QF_F64] = { .name = "F64", .ggml_name = "f64", .ggml_type = 28, .block_elems = 1,
		     .block_bytes = 8, .is_float = 1, .to_f32 = row_f64_to_f32,
		     .from_f32 = row_f32_to_f64 },
	[QF_F8_E4M3] = { .name = "F8_E4M3", .ggml_type = -1, .block_elems = 1, .block_bytes = 1,
			 .is_float = 1, .to_f32 = qf_row_e4m3_to_f32, .from_f32 = row_f32_to_e4m3 },
	[QF_F8_E5M2] = { .name = "F8_E5M2", .ggml_type = -1, .block_elems = 1, .block_bytes = 1,
			 .is_float = 1, .to_f32 = row_e5m2_to_f32, .from_f32 = row_f32_to_e5m2 },
	[QF_F8_E8M0] = { .name = "F8_E8M0", .ggml_type = -1, .block_elems = 1, .block_bytes = 1,
			 .is_float = 1, .to_f32 = row_e8m0_to_f32, .from_f32 = row_f32_to_e8m0 },
	[QF_Q4_0] = { .name = "Q4_0", .ggml_name = "q4_0", .ggml_type = 2, .block_elems = 32,
		      .block_bytes = 18, .is_float = 1, .to_f32 = qf_dequant_q4_0,
		      .from_f32 = qf_quant_q4_0, .from_f32_w = qf_quant_q4_0_w,
		      FMT("q4_0", QF_Q4_0, QF_Q4_0, 1, 32, 1, "ggml q4_0: 4-bit × f16 scale per 32") },
	[QF_Q4_1] = { .name = "Q4_1", .ggml_name = "q4_1", .ggml_type = 3, .block_elems = 32,
		      .block_bytes = 20, .is_float = 1, .to_f32 = qf_dequant_q4_1,
		      .from_f32 = qf_quant_q4_1_ref, .from_f32_w = qf_quant_q4_1_w,
		      FMT("q4_1", QF_Q4_1, QF_Q4_1, 1, 32, 1, "ggml q4_1: 4-bit × f16 scale + f16 min per 32") },
	[QF_Q8_0] = { .name = "Q8_0", .ggml_name = "q8_0", .ggml_type = 8, .block_elems = 32,
		      .block_bytes = 34, .is_float = 1, .to_f32 = qf_dequant_q8_0,
		      .from_f32 = qf_quant_q8_0,
		      FMT("q8_0", QF_Q8_0, QF_Q8_0, 1, 32, 1, "ggml q8_0: int8 × f16 scale per 32") },
	[QF_MXFP4] = { .name = "MXFP4", .ggml_name = "mxfp4", .ggml_type = 39, .block_elems = 32,
		       .block_bytes = 17, .is_float = 1, .to_f32 = qf_dequant_mxfp4,
		       .from_f32 = qf_quant_mxfp4_ref,
		       FMT("mxfp4", QF_MXFP4, QF_U8, 1, 32, 1, "OCP MXFP4: E2M1 × E8M0 per 32 (GGUF: ggml block)"),
		       COMP1("_scale", QF_F8_E8M0) },
	[QF_Q5_0] = { .name = "Q5_0", .ggml_name = "q5_0", .ggml_type = 6, .block_elems = 32,
		      .block_bytes = 22, .is_float = 1, .to_f32 = qf_dequant_q5_0,
		      .from_f32 = qf_quant_q5_0_ref, .from_f32_w = qf_quant_q5_0_w,
		      FMT("q5_0", QF_Q5_0, QF_Q5_0, 1, 32, 1, "ggml q5_0: 5-bit × f16 scale per 32") },
	[QF_Q5_1] = { .name = "Q5_1", .ggml_name = "q5_1", .ggml_type = 7, .block_elems = 32,
		      .block_bytes = 24, .is_float = 1, .to_f32 = qf_dequant_q5_1,
		      .from_f32 = qf_quant_q5_1_ref, .from_f32_w = qf_quant_q5_1_w,
		      FMT("q5_1", QF_Q5_1, QF_Q5_1, 1, 32, 1, "ggml q5_1: 5-bit × f16 scale + f16 min per 32") },
	[QF_Q2_K] = { .name = "Q2_K", .ggml_name = "q2_K", .ggml_type = 10, .block_elems = 256,
		      .block_bytes = 84, .is_float = 1, .to_f32 = qf_dequant_q2_k,
		      .from_f32 = qf_quant_q2_k, .from_f32_w = qf_quant_q2_k_w,
		      FMT("q2_k", QF_Q2_K, QF_Q2_K, 1, 256, 1,
			  "ggml Q2_K: 2-bit, 4-bit scales and mins per 16, f16 scales per 256") },
	[QF_Q3_K] = { .name = "Q3_K", .ggml_name = "q3_K", .ggml_type = 11, .block_elems = 256,
		      .block_bytes = 110, .is_float = 1, .to_f32 = qf_dequant_q3_k,
		      .from_f32 = qf_quant_q3_k_ref, .from_f32_w = qf_quant_q3_k_w,
		      FMT("q3_k", QF_Q3_K, QF_Q3_K, 1, 256, 1, "ggml Q3_K: 3-bit, 6-bit scales per 16, f16 scale per 256") },
	[QF_Q4_K] = { .name = "Q4_K", .ggml_name = "q4_K", .ggml_type = 12, .block_elems = 256,
		      .block_bytes = 144, .is_float = 1, .to_f32 = qf_dequant_q4_k,
		      .from_f32 = qf_quant_q4_k, .from_f32_w = qf_quant_q4_k_w,
		      FMT("q4_k", QF_Q4_K, QF_Q4_K, 1, 256, 1,
			  "ggml Q4_K: 4-bit, 6-bit scales and mins per 32, f16 scales per 256") },
	[QF_Q5_K] = { .name = "Q5_K", .ggml_name = "q5_K", .ggml_type = 13, .block_elems = 256,
		      .block_bytes = 176, .is_float = 1, .to_f32 = qf_dequant_q5_k,
		      .from_f32 = qf_quant_q5_k, .from_f32_w = qf_quant_q5_k_w,
		      FMT("q5_k", QF_Q5_K, QF_Q5_K, 1, 256, 1,
			  "ggml Q5_K: 5-bit, 6-bit scales and mins per 32, f16 scales per 256") },
	[QF_Q6_K] = { .name = "Q6_K", .ggml_name = "q6_K", .ggml_type = 14, .block_elems = 256,
		      .block_bytes = 210, .is_float = 1, .to_f32 = qf_dequant_q6_k,
		      .from_f32 = qf_quant_q6_k, .from_f32_w = qf_quant_q6_k_w,
		      FMT("q6_k", QF_Q6_K, QF_Q6_K, 1, 256, 1, "ggml Q6_K: 6-bit, int8 scales per 16, f16 scale per 256") },
	/* bundle formats */
	[QF_FP8_B128] = { .name = "fp8-b128", .ggml_type = -1,
			  FMT("fp8-b128", QF_DTYPE_NONE, QF_F8_E4M3, 128, 128, 0,
			      "E4M3 × f32 scale per 128×128 block (DeepSeek layout)"),
			  COMP1("_scale_inv", QF_F32) },
	[QF_MXFP8] = { .name = "mxfp8", .ggml_type = -1,
		       FMT("mxfp8", QF_DTYPE_NONE, QF_F8_E4M3, 1, 32, 1, "OCP MXFP8: E4M3 × E8M0 per 32"),
		       COMP1("_scale", QF_F8_E8M0) },
	[QF_INT8_CH] = { .name = "int8-ch", .ggml_type = -1,
			 FMT("int8-ch", QF_DTYPE_NONE, QF_I8, 1, 0, 0,
			     "symmetric int8 × f32 scale per output channel"),
			 COMP1("_scale", QF_F32) },
	[QF_INT4_G128] = { .name = "int4-g128", .ggml_type = -1,
			   FMT("int4-g128", QF_DTYPE_NONE, QF_U8, 1, 128, 0,
			       "symmetric 4-bit × f16 scale per 128 inputs (W4A16)"),
			   COMP1("_scale", QF_F16) },
	[QF_INT4_G128_ASYM] = { .name = "int4-g128-asym", .ggml_type = -1,
				FMT("int4-g128-asym", QF_DTYPE_NONE, QF_U8, 1, 128, 0,
				    "4-bit with zero point × f16 scale per 128 inputs (W4A16)"),
				.ncomp = 2, .comp = { "_scale", "_zero" }, .comp_type = { QF_F16, QF_U8 } },
};

const qf_dtype_traits *qf_dtype_info(qf_dtype t)
{
	if ((int)t < 0 || t >= QF_DTYPE_COUNT)
		return NULL;
	return &traits[t];
}

const char *qf_dtype_name(qf_dtype t)
{
	const qf_dtype_traits *tr = qf_dtype_info(t);
	return tr ? tr->name : "?";
}

qf_dtype qf_dtype_from_name(const char *name)
{
	for (int i = 0; i < QF_Q8_0; i++) /* the safetensors types come first */
		if (strcmp(traits[i].name, name) == 0)
			return (qf_dtype)i;
	return QF_DTYPE_NONE;
}

qf_dtype qf_dtype_from_stored_name(const char *name)
{
	for (int i = 0; i < QF_DTYPE_COUNT; i++)
		if (traits[i].block_elems > 0 && strcmp(traits[i].name, name) == 0)
			return (qf_dtype)i;
	return QF_DTYPE_NONE;
}

qf_dtype qf_fmt_from_name(const char *name)
{
	for (int i = 0; i < QF_DTYPE_COUNT; i++)
		if (traits[i].fmt && strcmp(traits[i].fmt, name) == 0)
			return (qf_dtype)i;
	return QF_DTYPE_NONE;
}

qf_dtype qf_dtype_from_ggml(int ggml_type)
{
	for (int i = 0; i < QF_DTYPE_COUNT; i++)
		if (traits[i].ggml_type == ggml_type && ggml_type >= 0)
			return (qf_dtype)i;
	return QF_DTYPE_NONE;
}

uint64_t qf_dtype_nbytes(qf_dtype t, uint64_t n, int *ok)
{
	const qf_dtype_traits *tr = qf_dtype_info(t);
	uint64_t r;
	if (!tr || tr->block_elems <= 0 || n % (uint64_t)tr->block_elems != 0 ||
	    !qf_mul_u64(n / (uint64_t)tr->block_elems, tr->block_bytes, &r)) {
		if (ok)
			*ok = 0;
		return 0;
	}
	if (ok)
		*ok = 1;
	return r;
}
