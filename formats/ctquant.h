/*
 * ctquant.h — decoders of compressed-tensors quantized weights (bytes → f32
 * rows) and their lossless repack into ggml q4_0 / q4_1 blocks.
 *
 * One weight of logical shape [N, K] (out, in), stored as (compressed-tensors
 * compressors/quantized_compressors/{pack,naive}_quantized.py):
 *
 *   PACK   MOD.weight_packed I32 [N, ⌈K·b/32⌉], b ∈ {1, 2, 4, 8}: element k of
 *          row r is the b-bit code u at bits (k·b) mod 32 of word ⌊k·b/32⌋
 *          (LSB first); the signed value q = u − 2^(b−1).
 *   INT    MOD.weight I8 [N, K]: q as stored (int-quantized, naive-quantized)
 *   FP8    MOD.weight F8_E4M3 [N, K]: q = e4m3(code) (float-quantized)
 *
 *   scale  MOD.weight_scale F32/BF16/F16 [⌈N/br⌉, ⌈K/bc⌉] (a multiplier):
 *          tensor br = N, bc = K (shape [1] or [1, 1]); channel br = 1, bc = K
 *          ([N, 1]); group br = 1, bc = g ([N, K/g]); block [b0, b1].
 *   zp     asymmetric only, same grid as the scale: PACK stores it packed along
 *          dim 0 (I32 [⌈N·b/32⌉, ⌈K/bc⌉]: row r of a column at bits (r·b) mod 32
 *          of word ⌊r·b/32⌋, as zp + 2^(b−1)); INT stores it as is (any int or
 *          float dtype).
 *
 *   w[r][k] = (q − zp) · scale[r / br][k / bc]      computed in f32
 *
 * For int codes of ≤ 8 bits and a BF16/F16 scale the product is exact in f32
 * (≤ 9 + 11 significant bits): these rows are the released weights exactly.
 */
#ifndef QF_CTQUANT_H
#define QF_CTQUANT_H

#include <stdint.h>

#include "formats/dtype.h"

typedef enum qf_ctq_kind { QF_CTQ_PACK, QF_CTQ_INT, QF_CTQ_FP8 } qf_ctq_kind;

typedef struct qf_ctq {
	qf_ctq_kind kind;
	int bits;                 /* PACK: 1, 2, 4 or 8; INT: 8; FP8: 8 */
	int64_t N, K;             /* logical shape */
	const uint8_t *q;         /* the codes (see above) */
	const uint8_t *scale;     /* [⌈N/br⌉, scols] of sdt */
	qf_dtype sdt;
	int64_t br, bc;           /* scale block: rows, columns */
	int64_t scols;            /* ⌈K/bc⌉ */
	const uint8_t *zp;        /* NULL: symmetric */
	qf_dtype zdt;             /* INT: dtype of zp */
	int zp_packed;            /* PACK: zp packed along dim 0 as I32 */
} qf_ctq;

/* Words per packed row: ⌈K·b/32⌉. */
int64_t qf_ctq_row_words(int64_t K, int bits);

/* Rows [r0, r0 + n) as f32 into dst [n][K]. */
void qf_ctq_rows(const qf_ctq *v, int64_t r0, int64_t n, float *dst);

/* The scale and zero point of element (r, k) (zp 0 when symmetric). */
float qf_ctq_scale_at(const qf_ctq *v, int64_t r, int64_t k);
float qf_ctq_zp_at(const qf_ctq *v, int64_t r, int64_t k);

/*
 * Lossless repack of 4-bit PACK weights into ggml blocks of 32: q4_0 for a
 * symmetric weight (d = scale, nibble = u), q4_1 for any (d = scale,
 * m = −scale·(zp + 8), zp = 0 when symmetric; nibble = u), so that llama.cpp's decode
 * (nibble − 8)·d, resp. nibble·d + m, is the source's (q − zp)·scale exactly.
 *
 * qf_ctq_q4_check: 1 when the geometry allows it (b = 4, a scale column
 * covers whole 32-blocks: bc a multiple of 32 and K % 32 == 0, br = 1 or the
 * tensor scale) and every d (and m) is exactly an f16; else 0, with *why set
 * to a static reason and (*bad_r, *bad_k) the first element whose scale fails.
 */
int qf_ctq_q4_check(const qf_ctq *v, int q4_1, const char **why, int64_t *bad_r, int64_t *bad_k);
/* Row r as K/32 blocks (q4_1 = 0: 18-byte q4_0, symmetric only; 1: 20-byte q4_1) into out. */
void qf_ctq_q4_row(const qf_ctq *v, int64_t r, int q4_1, uint8_t *out);

#endif
