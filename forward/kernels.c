/*
 * kernels.c — the tile kernels (portable, AVX2/FMA, AVX-512), B packing and
 * the blocked product (see kernels.h for the layout and why results do not
 * depend on blocking or threads).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "formats/dtype.h"
#include "forward/kernels.h"

/* ---- the portable tile (4 × 16) ---------------------------------------------------- */

static void tile_portable(int64_t kc, const float *a, int64_t lda, const float *b, float *c, int64_t ldc, int acc)
{
	float s[4][16];
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 16; j++)
			s[i][j] = acc ? c[i * ldc + j] : 0.0f;
	for (int64_t k = 0; k < kc; k++) {
		const float *bk = b + k * 16;
		for (int i = 0; i < 4; i++) {
			float ai = a[i * lda + k];
			for (int j = 0; j < 16; j++)
				s[i][j] += ai * bk[j];
		}
	}
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 16; j++)
			c[i * ldc + j] = s[i][j];
}

static const fwd_kern k_portable = { "portable", 4, 16, tile_portable };

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* ---- AVX2 + FMA: 6 × 16 (12 accumulators, 2 B vectors, 1 broadcast) ------------------ */

__attribute__((target("avx2,fma"))) static void tile_avx2(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
							  int64_t ldc, int acc)
{
	__m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
	if (acc) {
#define L2(i) c##i##0 = _mm256_loadu_ps(c + i * ldc), c##i##1 = _mm256_loadu_ps(c + i * ldc + 8)
		L2(0); L2(1); L2(2); L2(3); L2(4); L2(5);
#undef L2
	} else {
		c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
	}
	const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
	for (int64_t k = 0; k < kc; k++) {
		__m256 b0 = _mm256_loadu_ps(b + k * 16), b1 = _mm256_loadu_ps(b + k * 16 + 8), x;
#define F2(i) x = _mm256_broadcast_ss(a##i + k), c##i##0 = _mm256_fmadd_ps(x, b0, c##i##0), c##i##1 = _mm256_fmadd_ps(x, b1, c##i##1)
		F2(0); F2(1); F2(2); F2(3); F2(4); F2(5);
#undef F2
	}
#define S2(i) _mm256_storeu_ps(c + i * ldc, c##i##0), _mm256_storeu_ps(c + i * ldc + 8, c##i##1)
	S2(0); S2(1); S2(2); S2(3); S2(4); S2(5);
#undef S2
}

static const fwd_kern k_avx2 = { "avx2", 6, 16, tile_avx2 };

/* ---- AVX-512: 6 × 64 (24 accumulators, 4 B vectors, 1 broadcast) --------------------- */

__attribute__((target("avx512f"))) static void tile_avx512(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
							   int64_t ldc, int acc)
{
	__m512 c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33, c40, c41, c42, c43, c50, c51,
		c52, c53;
	if (acc) {
#define L4(i)                                                                                                          \
	c##i##0 = _mm512_loadu_ps(c + i * ldc), c##i##1 = _mm512_loadu_ps(c + i * ldc + 16),                          \
	c##i##2 = _mm512_loadu_ps(c + i * ldc + 32), c##i##3 = _mm512_loadu_ps(c + i * ldc + 48)
		L4(0); L4(1); L4(2); L4(3); L4(4); L4(5);
#undef L4
	} else {
		c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = c20 = c21 = c22 = c23 = _mm512_setzero_ps();
		c30 = c31 = c32 = c33 = c40 = c41 = c42 = c43 = c50 = c51 = c52 = c53 = _mm512_setzero_ps();
	}
	const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
	for (int64_t k = 0; k < kc; k++) {
		const float *bk = b + k * 64;
		__m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16), b2 = _mm512_loadu_ps(bk + 32),
		       b3 = _mm512_loadu_ps(bk + 48), x;
#define F4(i)                                                                                                          \
	x = _mm512_set1_ps(a##i[k]), c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0), c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1), \
	c##i##2 = _mm512_fmadd_ps(x, b2, c##i##2), c##i##3 = _mm512_fmadd_ps(x, b3, c##i##3)
		F4(0); F4(1); F4(2); F4(3); F4(4); F4(5);
#undef F4
	}
#define S4(i)                                                                                                          \
	_mm512_storeu_ps(c + i * ldc, c##i##0), _mm512_storeu_ps(c + i * ldc + 16, c##i##1),                           \
	_mm512_storeu_ps(c + i * ldc + 32, c##i##2), _mm512_storeu_ps(c + i * ldc + 48, c##i##3)
	S4(0); S4(1); S4(2); S4(3); S4(4); S4(5);
#undef S4
}

static const fwd_kern k_avx512 = { "avx512", 6, 64, tile_avx512 };

/* The CPU and the OS run it (qf_cpu_has_avx2 checks the OS saves YMM; GCC's AVX-512 test checks ZMM state). */
static int has(const char *isa)
{
	__builtin_cpu_init();
	if (!qf_cpu_has_avx2() || !__builtin_cpu_supports("fma"))
		return 0;
	return strcmp(isa, "avx512") ? 1 : __builtin_cpu_supports("avx512f");
}
#endif

const fwd_kern *fwd_kern_named(const char *name)
{
	if (!strcmp(name, "portable"))
		return &k_portable;
#if defined(__x86_64__) && defined(__GNUC__)
	if (!strcmp(name, "avx512") && has("avx512"))
		return &k_avx512;
	if (!strcmp(name, "avx2") && has("avx2"))
		return &k_avx2;
#endif
	return NULL;
}

const fwd_kern *fwd_kern_pick(void)
{
	const char *want = getenv("QF_FWD_ISA");
	if (getenv("QF_NO_SIMD"))
		return &k_portable;
	/* from the widest down, starting at the one asked for */
	const char *order[] = { "avx512", "avx2", "portable" };
	int i = 0;
	while (want && i < 2 && strcmp(order[i], want))
		i++;
	for (; i < 3; i++) {
		const fwd_kern *k = fwd_kern_named(order[i]);
		if (k)
			return k;
	}
	return &k_portable;
}

/* ---- packing ------------------------------------------------------------------------- */

void fwd_pack_rows(const fwd_kern *kn, const float *w, int64_t ldw, int64_t n, int64_t K, float *bp)
{
	int64_t nr = kn->nr, npad = fwd_roundup(n, nr);
	for (int64_t k0 = 0; k0 < K; k0 += FWD_KC) {
		int64_t kb = K - k0 < FWD_KC ? K - k0 : FWD_KC;
		float *blk = bp + k0 * npad;
		for (int64_t j0 = 0; j0 < npad; j0 += nr) {
			float *pan = blk + j0 * kb;
			for (int64_t j = 0; j < nr; j++) {
				if (j0 + j >= n) {
					for (int64_t k = 0; k < kb; k++)
						pan[k * nr + j] = 0.0f;
					continue;
				}
				const float *src = w + (j0 + j) * ldw + k0;
				for (int64_t k = 0; k < kb; k++)
					pan[k * nr + j] = src[k];
			}
		}
	}
}

void fwd_pack_cols(const fwd_kern *kn, const float *w, int64_t ldw, int64_t n, int64_t K, float *bp)
{
	int64_t nr = kn->nr, npad = fwd_roundup(n, nr);
	for (int64_t k0 = 0; k0 < K; k0 += FWD_KC) {
		int64_t kb = K - k0 < FWD_KC ? K - k0 : FWD_KC;
		float *blk = bp + k0 * npad;
		for (int64_t j0 = 0; j0 < npad; j0 += nr) {
			float *pan = blk + j0 * kb;
			int64_t nj = n - j0 < nr ? n - j0 : nr;
			for (int64_t k = 0; k < kb; k++) {
				const float *src = w + (k0 + k) * ldw + j0;
				memcpy(pan + k * nr, src, (size_t)nj * sizeof *pan);
				for (int64_t j = nj; j < nr; j++)
					pan[k * nr + j] = 0.0f;
			}
		}
	}
}

/* ---- the blocked product --------------------------------------------------------------- */

void fwd_gemm(const fwd_kern *kn, int64_t T, int64_t nu, int64_t Ku, const float *x, int64_t ldx, const float *bp,
	      int64_t n, int64_t K, float *c, int64_t ldc, float *edge)
{
	int64_t mr = kn->mr, nr = kn->nr, npad = fwd_roundup(n, nr), nupad = fwd_roundup(nu, nr);
	for (int64_t k0 = 0; k0 < Ku; k0 += FWD_KC) {
		int64_t kb = K - k0 < FWD_KC ? K - k0 : FWD_KC, kc = Ku - k0 < kb ? Ku - k0 : kb;
		const float *blk = bp + k0 * npad;
		for (int64_t i0 = 0; i0 < T; i0 += mr) {
			const float *a = x + i0 * ldx + k0;
			int64_t lda = ldx;
			if (i0 + mr > T) { /* last rows: a copy padded with zero rows */
				memset(edge, 0, (size_t)(mr * kc) * sizeof *edge);
				for (int64_t i = 0; i < T - i0; i++)
					memcpy(edge + i * kc, a + i * ldx, (size_t)kc * sizeof *edge);
				a = edge;
				lda = kc;
			}
			for (int64_t j0 = 0; j0 < nupad; j0 += nr)
				kn->tile(kc, a, lda, blk + j0 * kb, c + i0 * ldc + j0, ldc, k0 > 0);
		}
	}
}
