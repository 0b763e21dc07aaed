/*
 * hfquant.h — row encoders of the quantized Hugging Face layouts
 * (compressed-tensors, DeepSeek FP8 with power-of-two scales, msModelSlim int8).
 *
 * Scales are multipliers (w = (q − zp) · s) stored in a scale dtype (F32, BF16
 * or F16); elements are quantized against the stored, rounded scale, in f32,
 * rounding half to even (torch.round), then clamped to the code range.
 *
 *   fp8 block   128 × 128 blocks of n ≤ 128 rows: s = amax / 448 (ue8m0: the next
 *               power of two ≥ s); q = e4m3(x / s); an all-zero block has s = 0, q = 0.
 *   pack (sym)  per group of g columns: s = max(absmax / ((2^b − 1) / 2), FLT_EPSILON)
 *               (int4: absmax / 7.5, int8: / 127.5); q ∈ [−2^(b−1), 2^(b−1) − 1];
 *               row words: element k at bits (k·b) mod 32 of word ⌊k·b / 32⌋ as q + 2^(b−1).
 *   pack (asym) s = max((max⁺ − min⁻) / (2^b − 1), FLT_EPSILON), zp = round(−2^(b−1) − min⁻ / s)
 *               clamped; q = round(x / s) + zp clamped; zero points packed along rows
 *               (row r of a group column at bits (r·b) mod 32 of word ⌊r·b / 32⌋) as zp + 2^(b−1).
 *   int8 row    s = absmax / div (CT 127.5, msModelSlim 127); q = clamp(round(x / s), −128, 127).
 */
#ifndef QF_HFQUANT_H
#define QF_HFQUANT_H

#include <stdint.h>

#include "formats/dtype.h"

/* Stores s in dt at out (little-endian); returns the stored value as f32. */
float qf_hfq_store_scale(float s, qf_dtype dt, uint8_t *out);
/* Reads a stored scale. */
float qf_hfq_load_scale(qf_dtype dt, const uint8_t *in);

/* n ≤ 128 rows of K: q [n, K] E4M3, scales [⌈K/128⌉] of sdt (one block row). */
void qf_hfq_fp8_block(const float *x, int64_t n, int64_t K, qf_dtype sdt, int ue8m0, uint8_t *q, uint8_t *scales);

/* One row, symmetric: words [⌈K·b/32⌉], scales [⌈K/g⌉] of sdt. */
void qf_hfq_pack_row(const float *x, int64_t K, int bits, int64_t g, qf_dtype sdt, uint32_t *words, uint8_t *scales);

/*
 * n ≤ 32/b rows starting a zero-point word row, asymmetric: words [n][⌈K·b/32⌉],
 * scales [n][⌈K/g⌉] of sdt, zp [⌈K/g⌉] words (this word row of the packed zero points).
 */
void qf_hfq_pack_asym(const float *x, int64_t n, int64_t K, int bits, int64_t g, qf_dtype sdt, uint32_t *words,
		      uint8_t *scales, uint32_t *zp);

/* One row of int8 with one scale. */
void qf_hfq_int8_row(const float *x, int64_t K, float div, qf_dtype sdt, int8_t *q, uint8_t *scale);

/* Unsigned code k of a packed row (b bits per element, LSB first). */
static inline uint32_t qf_hfq_code(const uint32_t *words, int bits, int64_t k)
{
	uint64_t bit = (uint64_t)k * (uint64_t)bits;
	return (words[bit / 32] >> (bit % 32)) & ((1u << bits) - 1u);
}

#endif
