/*
 * ggml_kquants.h — ggml's K-quant super-blocks (256 values) and the 5-bit
 * 32-value blocks, bit-identical to llama.cpp: quantize_row_*_ref without
 * weights, ggml_quantize_chunk's importance-weighted path with them.
 *
 * All fields little-endian, packed, in this order; f16 = IEEE binary16.
 * A K super-block has 16 sub-blocks of 16 (q2_k, q3_k, q6_k) or 8 of 32
 * (q4_k, q5_k); L is the integer code of one value.
 *
 *   Q2_K  84 B: u8 scales[16]; u8 qs[64]; f16 d; f16 dmin          2.625 bpw
 *         scales[j] = sc | m << 4 (4 bits each) for sub-block j of 16;
 *         y = d·sc·L − dmin·m, L in 0..3.
 *         qs: per 128 values, byte 32·(n/128) + l holds L[n+l], L[n+l+32],
 *         L[n+l+64], L[n+l+96] in bits 0-1, 2-3, 4-5, 6-7.
 *   Q3_K 110 B: u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d      3.4375 bpw
 *         16 six-bit scales s (stored s + 32): low nibble of s_j in
 *         scales[j] (j < 8) or the high nibble of scales[j−8]; bits 4-5 in
 *         scales[8 + j%4] at bit 2·(j/4).  y = d·s·(L − 4), L in 0..7:
 *         its low 2 bits in qs (as Q2_K), bit 2 in hmask[i%32] bit i/32.
 *   Q4_K 144 B: f16 d; f16 dmin; u8 scales[12]; u8 qs[128]         4.5 bpw
 *         8 six-bit scales sc and mins m (sub-blocks of 32):
 *           j < 4:  sc = scales[j] & 63, m = scales[j+4] & 63
 *           j ≥ 4:  sc = scales[j+4] & 15 | (scales[j−4] >> 6) << 4
 *                   m  = scales[j+4] >> 4 | (scales[j]   >> 6) << 4
 *         y = d·sc·L − dmin·m, L in 0..15; per 64 values qs[32k + l] =
 *         L[64k+l] | L[64k+l+32] << 4.
 *   Q5_K 176 B: f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]  5.5 bpw
 *         as Q4_K with L in 0..31: low 4 bits in qs, bit 4 of L[64k+l] in
 *         qh[l] bit 2k, of L[64k+l+32] in qh[l] bit 2k+1.
 *   Q6_K 210 B: u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d        6.5625 bpw
 *         y = d·scales[j]·(L − 32), L in 0..63, sub-blocks of 16; per 128
 *         values (ql += 64, qh += 32): ql[l] = L[l] & 15 | (L[l+64] & 15) << 4,
 *         ql[l+32] = L[l+32] & 15 | (L[l+96] & 15) << 4,
 *         qh[l] = L[l] >> 4 | L[l+32] >> 4 << 2 | L[l+64] >> 4 << 4 | L[l+96] >> 4 << 6.
 *   Q5_0  22 B (32 values): f16 d; u8 qh[4]; u8 qs[16]             5.5 bpw
 *         y = d·(L − 16); qs[j] = L[j] & 15 | (L[j+16] & 15) << 4; bit 4 of
 *         L[i] is bit i of the little-endian u32 qh.
 *   Q5_1  24 B (32 values): f16 d; f16 m; u8 qh[4]; u8 qs[16]      6 bpw
 *         y = d·L + m, packed as Q5_0.
 *
 * Encoders: *_ref are llama.cpp's reference quantizers (the bytes of
 * quantize_row_*_ref, which is also what ggml_quantize_chunk writes without
 * an importance matrix).  *_w take importance weights qw (Σx²/count per input
 * column, as llama-quantize passes them): the bytes of ggml_quantize_chunk for
 * one row with that imatrix; qw == NULL gives the *_ref bytes, as in ggml.
 * The unsuffixed encoders and *_w run the groups' candidate searches in AVX2
 * lanes when the CPU has it (QF_NO_SIMD=1 forces the portable path): each
 * lane keeps the scalar summation order, so the bytes are the same.
 * For q4_0 … q5_1 the weights mix in the row's mean square, so a _w call
 * must cover exactly one row.  Decoders are exact (the same f32 values as
 * ggml's dequantize_row_*).
 *
 * n is a multiple of the block (256 for K, 32 otherwise); dst holds n/block
 * blocks; kernels never allocate.
 */
#ifndef QF_GGML_KQUANTS_H
#define QF_GGML_KQUANTS_H

#include <stdint.h>

#include "formats/dtype.h"

#define QF_QK_K 256
#define QF_QK5 32

typedef struct {
	uint8_t scales[QF_QK_K / 16]; /* sc | m << 4 per sub-block of 16 */
	uint8_t qs[QF_QK_K / 4];      /* 2-bit codes */
	uint16_t d, dmin;             /* f16 */
} qf_block_q2_k;

typedef struct {
	uint8_t hmask[QF_QK_K / 8];   /* bit 2 of each code */
	uint8_t qs[QF_QK_K / 4];      /* low 2 bits */
	uint8_t scales[12];           /* 16 × 6 bits */
	uint16_t d;
} qf_block_q3_k;

typedef struct {
	uint16_t d, dmin;
	uint8_t scales[12];           /* 8 × (6-bit scale, 6-bit min) */
	uint8_t qs[QF_QK_K / 2];
} qf_block_q4_k;

typedef struct {
	uint16_t d, dmin;
	uint8_t scales[12];
	uint8_t qh[QF_QK_K / 8];      /* bit 4 of each code */
	uint8_t qs[QF_QK_K / 2];      /* low 4 bits */
} qf_block_q5_k;

typedef struct {
	uint8_t ql[QF_QK_K / 2];      /* low 4 bits */
	uint8_t qh[QF_QK_K / 4];      /* high 2 bits */
	int8_t scales[QF_QK_K / 16];
	uint16_t d;
} qf_block_q6_k;

typedef struct {
	uint16_t d;
	uint8_t qh[4];                /* u32, bit i = bit 4 of code i */
	uint8_t qs[QF_QK5 / 2];
} qf_block_q5_0;

typedef struct {
	uint16_t d, m;
	uint8_t qh[4];
	uint8_t qs[QF_QK5 / 2];
} qf_block_q5_1;

_Static_assert(sizeof(qf_block_q2_k) == 84, "q2_k block");
_Static_assert(sizeof(qf_block_q3_k) == 110, "q3_k block");
_Static_assert(sizeof(qf_block_q4_k) == 144, "q4_k block");
_Static_assert(sizeof(qf_block_q5_k) == 176, "q5_k block");
_Static_assert(sizeof(qf_block_q6_k) == 210, "q6_k block");
_Static_assert(sizeof(qf_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(qf_block_q5_1) == 24, "q5_1 block");

void qf_quant_q2_k_ref(const float *src, void *dst, int64_t n);
void qf_quant_q3_k_ref(const float *src, void *dst, int64_t n);
void qf_quant_q4_k_ref(const float *src, void *dst, int64_t n);
void qf_quant_q5_k_ref(const float *src, void *dst, int64_t n);
void qf_quant_q6_k_ref(const float *src, void *dst, int64_t n);
void qf_quant_q5_0_ref(const float *src, void *dst, int64_t n);
void qf_quant_q5_1_ref(const float *src, void *dst, int64_t n);
/* The same bytes as the references, the group searches in AVX2 when the CPU has it. */
void qf_quant_q2_k(const float *src, void *dst, int64_t n);
void qf_quant_q4_k(const float *src, void *dst, int64_t n);
void qf_quant_q5_k(const float *src, void *dst, int64_t n);
void qf_quant_q6_k(const float *src, void *dst, int64_t n);

void qf_quant_q2_k_w(const float *src, void *dst, int64_t n, const float *qw);
void qf_quant_q3_k_w(const float *src, void *dst, int64_t n, const float *qw);
void qf_quant_q4_k_w(const float *src, void *dst, int64_t n, const float *qw);
void qf_quant_q5_k_w(const float *src, void *dst, int64_t n, const float *qw);
void qf_quant_q6_k_w(const float *src, void *dst, int64_t n, const float *qw);
void qf_quant_q5_0_w(const float *src, void *dst, int64_t n, const float *qw);
void qf_quant_q5_1_w(const float *src, void *dst, int64_t n, const float *qw);
void qf_quant_q4_0_w(const float *src, void *dst, int64_t n, const float *qw);
void qf_quant_q4_1_w(const float *src, void *dst, int64_t n, const float *qw);

void qf_dequant_q2_k(const void *src, float *dst, int64_t n);
void qf_dequant_q3_k(const void *src, float *dst, int64_t n);
void qf_dequant_q4_k(const void *src, float *dst, int64_t n);
void qf_dequant_q5_k(const void *src, float *dst, int64_t n);
void qf_dequant_q6_k(const void *src, float *dst, int64_t n);
void qf_dequant_q5_0(const void *src, float *dst, int64_t n);
void qf_dequant_q5_1(const void *src, float *dst, int64_t n);

#endif
