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
#ifndef QNT_QFORMAT_H
#define QNT_QFORMAT_H

#include <stdint.h>

#include "formats/dtype.h"

typedef enum qnt_fmt {
	QNT_F32, QNT_F16, QNT_BF16,
	QNT_Q8_0, QNT_Q4_0, QNT_Q4_1, QNT_MXFP4,
	QNT_FP8_B128, QNT_MXFP8, QNT_INT8_CH, QNT_INT4_G128, QNT_INT4_G128_ASYM,
	QNT_FMT_COUNT,
	QNT_FMT_NONE = -1
} qnt_fmt;

#define QNT_MAX_COMP 2

typedef struct qnt_info {
	const char *name;          /* "fp8-b128" */
	qf_dtype gguf;             /* GGUF/ggml type, QF_DTYPE_NONE when bundle-only */
	qf_dtype elem;             /* element type of the main payload in a bundle */
	int64_t brows, bcols;      /* quantization block: rows × columns (0: whole row) */
	int need_div;              /* C must be a multiple of bcols */
	int ncomp;
	const char *comp[QNT_MAX_COMP];      /* companion name suffixes */
	qf_dtype comp_type[QNT_MAX_COMP];
	const char *desc;
} qnt_info;

const qnt_info *qnt_fmt_info(qnt_fmt f);
qnt_fmt qnt_fmt_from_name(const char *name);       /* QNT_FMT_NONE if unknown */
qnt_fmt qnt_fmt_from_dtype(qf_dtype t);            /* GGUF tensor type → format */
/* 1 if the format can store a row of length C (the block divides it). */
int qnt_fmt_fits(qnt_fmt f, int64_t C);
/* 1 for formats that lose information relative to BF16/F16/F32 sources. */
int qnt_fmt_is_quant(qnt_fmt f);

/*
 * Sizes.  shape/ndim are the logical tensor; in_bundle selects the bundle
 * layout (differs from GGUF only for mxfp4).
 */
uint64_t qnt_main_bytes(qnt_fmt f, int in_bundle, int ndim, const int64_t *shape);
/* Companions present (mxfp4 has its scale inside ggml blocks in GGUF). */
int qnt_ncomp(qnt_fmt f, int in_bundle);
/* Companion k's shape (ndim written to *cnd) and bytes. */
uint64_t qnt_comp_shape(qnt_fmt f, int k, int ndim, const int64_t *shape, int *cnd, int64_t *cshape);

/*
 * Units: the row groups that encode independently: block rows of the
 * format's brows rows (one row for every format but fp8-b128, whose 128-row
 * block rows are shorter at the end of each stacked matrix).
 */
int64_t qnt_units(qnt_fmt f, int ndim, const int64_t *shape);
void qnt_unit_rows(qnt_fmt f, int ndim, const int64_t *shape, int64_t u, int64_t *r0, int64_t *n);

/* Where rows/units start in the payloads. */
uint64_t qnt_main_offset(qnt_fmt f, int in_bundle, int64_t C, int64_t row);
uint64_t qnt_comp_offset(qnt_fmt f, int k, int ndim, const int64_t *shape, int64_t row);

/*
 * Encodes n rows of C floats (one unit for fp8-b128, any n otherwise) into
 * main (at the rows' position, see qnt_main_offset) and comp[k] (at
 * qnt_comp_offset of the first row).  in_bundle selects mxfp4's layout.
 */
void qnt_encode(qnt_fmt f, int in_bundle, const float *x, int64_t n, int64_t C, uint8_t *main,
		uint8_t *const *comp);

/*
 * Decodes rows [r0, r0+n) of a whole tensor: main and comp point at the
 * start of the tensor's payloads.
 */
typedef struct qnt_view {
	qnt_fmt fmt;
	int in_bundle;
	int ndim;
	int64_t shape[4];
	const uint8_t *main;
	const uint8_t *comp[QNT_MAX_COMP];
} qnt_view;

void qnt_decode(const qnt_view *v, int64_t r0, int64_t n, float *dst);

/* A bundle main tensor's byte size (qf_pk_sizer): 0 for an unknown format. */
uint64_t qnt_bundle_sizer(const char *format, int ndim, const int64_t *shape);

/* Scalar E2M1 value of a 4-bit code (OCP MX). */
float qnt_e2m1_value(uint8_t code);

#endif
