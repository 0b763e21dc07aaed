/*
 * kernels.h — blocked f32 matrix products, the forward pass's only arithmetic
 * that matters for time:
 *
 *   C[t][j] = Σ_{k<K} X[t][k] · B(k, j),   t < T, j < n
 *
 * X is row-major (T × K, row stride ldx).  B is packed first — fwd_pack_rows
 * from an n × K row-major weight (B(k, j) = W[j][k]), fwd_pack_cols from a
 * K × n matrix (B(k, j) = W[k][j]) — into blocks of FWD_KC values of k, each
 * cut into panels of nr columns, k-major inside a panel:
 *
 *   block b (k0 = b·FWD_KC, kb = min(FWD_KC, K − k0)) at k0 · npad,
 *   its panel p at p · kb · nr,  B(k, j) at (k − k0) · nr + (j mod nr)
 *
 * (npad = n rounded up to nr; the padding columns are zero).  A
 * register-blocked tile kernel computes mr × nr of C, broadcasting X[t][k]
 * and multiplying it into nr consecutive B(k, ·) with fused multiply-adds.
 * We write these ourselves rather than link a BLAS: OpenBLAS promises no
 * result independent of its thread count, and picks kernels by
 * OPENBLAS_CORETYPE, which this environment sets on some processors.
 *
 * Determinism: every C element is one fp32 accumulator running over
 * k = 0, 1, …, K−1 in order, one fused multiply-add per k (a block of k
 * stores the accumulator and the next reloads it, which changes nothing).
 * An element's value therefore depends on neither the tile it falls in,
 * nor how T or n were cut, nor which thread ran it, nor how many other rows
 * were in the product — only on the kernel (AVX-512, AVX2/FMA or portable),
 * which is chosen once per machine.
 */
#ifndef FWD_KERNELS_H
#define FWD_KERNELS_H

#include <stdint.h>

#define FWD_KC 192   /* values of k per packed block: a 64-wide B panel is 48 KiB (L1) */

typedef struct fwd_kern {
	const char *name;      /* "avx512", "avx2", "portable" */
	int mr, nr;            /* tile: rows of X × columns of B */
	/* c[i·ldc + j] (=, or += when acc) Σ_{k<kc} a[i·lda + k] · b[k·nr + j] for i < mr, j < nr */
	void (*tile)(int64_t kc, const float *a, int64_t lda, const float *b, float *c, int64_t ldc, int acc);
} fwd_kern;

/*
 * The fastest kernel this CPU runs; QF_NO_SIMD=1 gives the portable one,
 * QF_FWD_ISA=avx2|portable at most that one.
 */
const fwd_kern *fwd_kern_pick(void);
/* The kernel of that name when this CPU runs it, else NULL. */
const fwd_kern *fwd_kern_named(const char *name);

static inline int64_t fwd_roundup(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* Floats of a packed B of n columns and K rows. */
static inline int64_t fwd_pack_floats(const fwd_kern *kn, int64_t n, int64_t K) { return fwd_roundup(n, kn->nr) * K; }

void fwd_pack_rows(const fwd_kern *kn, const float *w, int64_t ldw, int64_t n, int64_t K, float *bp);
void fwd_pack_cols(const fwd_kern *kn, const float *w, int64_t ldw, int64_t n, int64_t K, float *bp);

/*
 * C = X · B over the first nu ≤ n columns and Ku ≤ K rows of a B packed as
 * n × K.  C (row stride ldc ≥ nu rounded up to nr) has room for T rounded up
 * to mr rows; the padding is scratch.  edge: mr · FWD_KC floats of scratch.
 */
void fwd_gemm(const fwd_kern *kn, int64_t T, int64_t nu, int64_t Ku, const float *x, int64_t ldx, const float *bp,
	      int64_t n, int64_t K, float *c, int64_t ldc, float *edge);

#endif
