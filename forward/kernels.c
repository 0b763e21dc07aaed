/*
 * kernels.c — the dot products the forward pass is made of: a portable
 * one and an AVX2/FMA one, chosen once per model by what the CPU runs.
 */
#include "config.h"

#include "forward/internal.h"

static float dot(const float *a, const float *b, int64_t n)
{
	float acc[8] = { 0 };
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			acc[k] += a[i + k] * b[i + k];
	float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int64_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	s0 = _mm256_add_ps(s0, s1);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_movehdup_ps(h));
	float s = _mm_cvtss_f32(h);
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}
#endif

fwd_dot_fn fwd_dot_pick(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	unsigned a, b, c, d;
	if (qf_cpu_has_avx2() && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 12)))
		return dot_avx2;
#endif
	return dot;
}
