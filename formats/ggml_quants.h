/*
 * ggml_quants.h — ggml block formats, bit-identical to llama.cpp's reference
 * quantizers (quantize_row_*_ref, no importance matrix).
 *
 *   Q8_0  32 values: { f16 d; int8 qs[32] }              34 bytes
 *         d = amax/127; q = roundf(x · (1/d))
 *   Q4_0  32 values: { f16 d; u8 qs[16] }                18 bytes
 *         max = signed value of largest |x| (first wins); d = max/-8;
 *         q = min(15, (int8)(x·(1/d) + 8.5)); qs[j] = q[j] | q[j+16] << 4
 *   Q4_1  32 values: { f16 d; f16 m; u8 qs[16] }         20 bytes
 *         d = (max-min)/15, m = min; q = min(15, (int8)((x-min)·(1/d) + 0.5))
 *   MXFP4 32 values: { u8 e (E8M0); u8 qs[16] }          17 bytes
 *         e = floor(log2 amax) - 2 + 127; value = kvalues[q] · 2^(e-128),
 *         kvalues = {0,1,2,3,4,6,8,12, -0,-1,-2,-3,-4,-6,-8,-12};
 *         q = nearest kvalue (first index wins ties).
 * The f16 scale is stored round-to-nearest-even; the quants use the f32 d.
 */
#ifndef QF_GGML_QUANTS_H
#define QF_GGML_QUANTS_H

#include <stdint.h>

#define QF_QK 32

typedef struct { uint16_t d; int8_t qs[QF_QK]; } qf_block_q8_0;
typedef struct { uint16_t d; uint8_t qs[QF_QK / 2]; } qf_block_q4_0;
typedef struct { uint16_t d; uint16_t m; uint8_t qs[QF_QK / 2]; } qf_block_q4_1;
typedef struct { uint8_t e; uint8_t qs[QF_QK / 2]; } qf_block_mxfp4;

_Static_assert(sizeof(qf_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(qf_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(qf_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(qf_block_mxfp4) == 17, "mxfp4 block");

/* n is a multiple of 32; dst holds n/32 blocks. */
void qf_quant_q8_0_ref(const float *src, void *dst, int64_t n);
void qf_quant_q4_0_ref(const float *src, void *dst, int64_t n);
void qf_quant_q4_1_ref(const float *src, void *dst, int64_t n);
void qf_quant_mxfp4_ref(const float *src, void *dst, int64_t n);
/* The same bytes as the references, with AVX2 when the CPU has it. */
void qf_quant_q8_0(const float *src, void *dst, int64_t n);
void qf_quant_q4_0(const float *src, void *dst, int64_t n);
void qf_dequant_q8_0(const void *src, float *dst, int64_t n);
void qf_dequant_q4_0(const void *src, float *dst, int64_t n);
void qf_dequant_q4_1(const void *src, float *dst, int64_t n);
void qf_dequant_mxfp4(const void *src, float *dst, int64_t n);

/* 2^(e-128) as ggml computes it (half of the E8M0 value). */
float qf_e8m0_half(uint8_t e);

#endif
