/*
 * qformat.h — the output formats of convert and quantize: one traits table.
 *
 * A tensor of logical shape [..., R_inner, C] (outermost first; C is the
 * input dimension, R_inner the output rows of one matrix, outer dims stack
 * matrices such as experts) is stored as a main payload plus 0–2 companion
 * tensors.  Every byte layout is row-major in the logical shape:
 *
 *   format          main payload (per row)            companions
 *   f32/f16/bf16    C elements                        —
 *   q8_0            C/32 blocks {f16 d; i8 q[32]}       —   (ggml block_q8_0)
 *   q4_0            C/32 blocks {f16 d; u8 qs[16]}      —   (ggml block_q4_0)
 *   q4_1            C/32 blocks {f16 d, m; u8 qs[16]}   —   (ggml block_q4_1)
 *   mxfp4 (GGUF)    C/32 blocks {e8m0 e; u8 qs[16]}     —   (ggml block_mxfp4)
 *   mxfp4 (packed)  C/2 bytes E2M1, element 2i in the low nibble of byte i
 *                                                     _scale E8M0 [..., R_inner, C/32]
 *   mxfp8           C bytes E4M3                      _scale E8M0 [..., R_inner, C/32]
 *   fp8-b128        C bytes E4M3                      _scale_inv F32 [..., ceil(R_inner/128), ceil(C/128)]
 *   int8-ch         C bytes int8                      _scale F32 [..., R_inner]
 *   int4-g128       ceil(C/2) bytes, element 2i low   _scale F16 [..., R_inner, ceil(C/128)]
 *   int4-g128-asym  as int4-g128, unsigned codes      _scale F16, _zero U8 (same shape)
 *
 * Dequantization (what the formats mean):
 *   fp8-b128   w = e4m3(q) × s[i/128][j/128]          (DeepSeek weight_dequant)
 *   mxfp8      w = e4m3(q) × 2^(e−127)
 *   mxfp4      w = e2m1(q) × 2^(e−127)
 *   int8-ch    w = q × s[i]
 *   int4-g128  w = (q − 8) × d[i][j/128];  asym: w = (q − z[i][j/128]) × d[i][j/128]
 *
 * Blocks of fp8-b128 never straddle two stacked matrices: each matrix of
 * R_inner rows starts a new block row.
 */
#ifndef QF_QFORMAT_H
#define QF_QFORMAT_H

#include <stdint.h>

#include "formats/dtype.h"

/*
 * The formats are rows of the one traits table (formats/dtype.h): every
 * qf_dtype whose traits have a format name (.fmt) is a format convert and
 * quantize can write.  This file is their geometry, encoders and decoders.
 */

/* The format a container's tensor of dtype t is read as (itself, or QF_DTYPE_NONE: F8_E4M3, I8, …). */
qf_dtype qf_fmt_of_dtype(qf_dtype t);
/* 1 if the format can store a row of length C (the block divides it). */
int qf_fmt_fits(qf_dtype f, int64_t C);
/* 1 for formats that lose information relative to BF16/F16/F32 sources. */
int qf_fmt_is_quant(qf_dtype f);

/*
 * Sizes.  shape/ndim are the logical tensor; in_bundle selects the bundle
 * layout (differs from GGUF only for mxfp4).
 */
uint64_t qf_fmt_main_bytes(qf_dtype f, int in_bundle, int ndim, const int64_t *shape);
/* Companions present (mxfp4 has its scale inside ggml blocks in GGUF). */
int qf_fmt_ncomp(qf_dtype f, int in_bundle);
/* Companion k's shape (ndim written to *cnd) and bytes. */
uint64_t qf_fmt_comp_shape(qf_dtype f, int k, int ndim, const int64_t *shape, int *cnd, int64_t *cshape);

/*
 * Units: the row groups that encode independently: block rows of the
 * format's brows rows (one row for every format but fp8-b128, whose 128-row
 * block rows are shorter at the end of each stacked matrix).
 */
int64_t qf_fmt_units(qf_dtype f, int ndim, const int64_t *shape);
void qf_fmt_unit_rows(qf_dtype f, int ndim, const int64_t *shape, int64_t u, int64_t *r0, int64_t *n);

/* Where rows/units start in the payloads. */
uint64_t qf_fmt_main_offset(qf_dtype f, int in_bundle, int64_t C, int64_t row);
uint64_t qf_fmt_comp_offset(qf_dtype f, int k, int ndim, const int64_t *shape, int64_t row);

/*
 * Encodes n rows of C floats (one unit for fp8-b128, any n otherwise) into
 * main (at the rows' position, see qf_fmt_main_offset) and comp[k] (at
 * qf_fmt_comp_offset of the first row).  in_bundle selects mxfp4's layout.
 */
void qf_fmt_encode(qf_dtype f, int in_bundle, const float *x, int64_t n, int64_t C, uint8_t *main,
		uint8_t *const *comp);

/*
 * Decodes rows [r0, r0+n) of a whole tensor: main and comp point at the
 * start of the tensor's payloads.
 */
typedef struct qf_fmt_view {
	qf_dtype fmt;
	int in_bundle;
	int ndim;
	int64_t shape[4];
	const uint8_t *main;
	const uint8_t *comp[QF_MAX_COMP];
} qf_fmt_view;

void qf_fmt_decode(const qf_fmt_view *v, int64_t r0, int64_t n, float *dst);

/* A bundle main tensor's byte size (qf_pk_sizer): 0 for an unknown format. */
uint64_t qf_fmt_bundle_sizer(const char *format, int ndim, const int64_t *shape);

/* Adds Σ(x−y)², Σx², Σy², Σxy of n values (in double) to acc[0..3]: a quantizer's error sums. */
void qf_err_sums(const float *x, const float *y, int64_t n, double acc[4]);

#endif
