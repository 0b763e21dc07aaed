/*
 * dtype.h — element and block formats: names, sizes and conversions to and
 * from f32.
 *
 * One traits table (dtype.c) describes every type qforge reads or writes,
 * as ggml keeps one table of type traits:
 *   - the safetensors element types (BOOL … F8_E8M0);
 *   - the ggml block types of GGUF (Q4_0, Q8_0, …): block_elems values in
 *     block_bytes bytes;
 *   - the bundle formats (fp8-b128, int8-ch, …), which are a main payload
 *     plus companion tensors and exist only as output formats
 *     (block_elems == 0: no container stores them as one dtype).
 * Rows with a format name (.fmt) are what convert and quantize can write;
 * their geometry, encoders and decoders are in formats/qformat.h.
 * A scalar type has block_elems == 1.  Rows passed to the converters hold a
 * whole number of blocks.
 *
 * Float encodings (all round to nearest even):
 *   F16      IEEE binary16.
 *   BF16     top 16 bits of binary32; NaN stays NaN (quiet bit set).
 *   F8_E4M3  E4M3FN: bias 7, no infinities, NaN = 0x7F/0xFF, max ±448,
 *            min subnormal 2^-9.  Encoding saturates to ±448 (inf too).
 *   F8_E5M2  bias 15, IEEE-like with inf/NaN, max ±57344.  Finite inputs
 *            saturate to ±57344; ±inf stays ±inf.
 *   F8_E8M0  unsigned power of two 2^(e-127), 0xFF = NaN.  Encoding rounds
 *            the f32 significand to nearest even (so 1.5·2^k → 2^(k+1) if
 *            k+1 is even, …); zero and negatives saturate to 2^-127.
 */
#ifndef QF_DTYPE_H
#define QF_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum qf_dtype {
	QF_BOOL, QF_U8, QF_I8, QF_I16, QF_U16, QF_I32, QF_U32, QF_I64, QF_U64,
	QF_F16, QF_BF16, QF_F32, QF_F64,
	QF_F8_E4M3, QF_F8_E5M2, QF_F8_E8M0,
	/* ggml block types (GGUF only) */
	QF_Q8_0, QF_Q4_0, QF_Q4_1, QF_MXFP4,
	QF_Q5_0, QF_Q5_1, QF_Q2_K, QF_Q3_K, QF_Q4_K, QF_Q5_K, QF_Q6_K,
	/* bundle formats: a main payload plus companions (formats/qformat.h) */
	QF_FP8_B128, QF_MXFP8, QF_INT8_CH, QF_INT4_G128, QF_INT4_G128_ASYM,
	QF_DTYPE_COUNT,
	QF_DTYPE_NONE = -1
} qf_dtype;

typedef void (*qf_to_f32_fn)(const void *src, float *dst, int64_t n);
typedef void (*qf_from_f32_fn)(const float *src, void *dst, int64_t n);
/* Importance-weighted encoder of one row: qw[n] per column (Σx²/count), NULL = from_f32's bytes. */
typedef void (*qf_from_f32_w_fn)(const float *src, void *dst, int64_t n, const float *qw);

#define QF_MAX_COMP 2

typedef struct qf_dtype_traits {
	const char *name;       /* safetensors spelling ("F8_E4M3"); upper-case ggml name for blocks */
	const char *ggml_name;  /* ggml spelling ("f32", "q8_0"), NULL if not a ggml type */
	int ggml_type;          /* ggml_type id, -1 if none */
	int64_t block_elems;    /* 1 for scalar types, 0 for bundle formats */
	size_t block_bytes;     /* bytes per block (element size for scalars) */
	int is_float;           /* converts to/from f32 */
	qf_to_f32_fn to_f32;    /* row decoder, NULL if none */
	qf_from_f32_fn from_f32;/* row encoder (SIMD where it writes the reference's bytes), NULL if none */
	qf_from_f32_w_fn from_f32_w; /* weighted encoder as ggml_quantize_chunk with an imatrix;
				       NULL where ggml ignores weights (q8_0, mxfp4) or has none */
	/* As an output format (NULL .fmt: not one). */
	const char *fmt;        /* format name in profiles, --type and manifests ("q8_0", "fp8-b128") */
	qf_dtype gguf;          /* the GGUF tensor type that stores it, QF_DTYPE_NONE when bundle-only */
	qf_dtype elem;          /* element type of the main payload in a bundle */
	int64_t brows, bcols;   /* quantization block: rows × columns (0: whole row) */
	int need_div;           /* the row length must be a multiple of bcols */
	int ncomp;              /* companion tensors in a bundle */
	const char *comp[QF_MAX_COMP];   /* companion name suffixes */
	qf_dtype comp_type[QF_MAX_COMP];
	const char *desc;
} qf_dtype_traits;

const qf_dtype_traits *qf_dtype_info(qf_dtype t);
/* Lookup by safetensors name, or -1 (QF_DTYPE_NONE). */
qf_dtype qf_dtype_from_name(const char *name);
/* Lookup by ggml type id, or -1. */
qf_dtype qf_dtype_from_ggml(int ggml_type);
const char *qf_dtype_name(qf_dtype t);
/* Lookup among every type a container stores (safetensors names and ggml blocks, "Q8_0"), or QF_DTYPE_NONE. */
qf_dtype qf_dtype_from_stored_name(const char *name);
/* Lookup by format name ("q4_0", "fp8-b128"), or QF_DTYPE_NONE. */
qf_dtype qf_fmt_from_name(const char *name);

/* Bytes of n elements (n must be a whole number of blocks); 0 on overflow
 * or partial block, with *ok cleared. */
uint64_t qf_dtype_nbytes(qf_dtype t, uint64_t n, int *ok);

/* Scalar conversions. */
float qf_f16_to_f32(uint16_t h);
uint16_t qf_f32_to_f16(float f);
float qf_bf16_to_f32(uint16_t h);
uint16_t qf_f32_to_bf16(float f);
float qf_e4m3_to_f32(uint8_t v);
uint8_t qf_f32_to_e4m3(float f);
float qf_e5m2_to_f32(uint8_t v);
uint8_t qf_f32_to_e5m2(float f);
float qf_e8m0_to_f32(uint8_t v);
uint8_t qf_f32_to_e8m0(float f);

/* The 256-entry E4M3 decode table (exact values). */
const float *qf_e4m3_table(void);

/* Row converters (SIMD where the CPU has it, portable path otherwise). */
void qf_row_f16_to_f32(const void *src, float *dst, int64_t n);
void qf_row_bf16_to_f32(const void *src, float *dst, int64_t n);
void qf_row_f32_to_f16(const float *src, void *dst, int64_t n);
void qf_row_f32_to_bf16(const float *src, void *dst, int64_t n);
void qf_row_e4m3_to_f32(const void *src, float *dst, int64_t n);
/* dst[i] = e4m3(src[i]) × s (DeepSeek's weight_dequant for one block's columns). */
void qf_row_e4m3_scaled_to_f32(const void *src, float *dst, int64_t n, float s);
/* The same products rounded to bf16 (qf_f32_to_bf16), with no f32 in memory; 1 if every product is finite. */
int qf_row_e4m3_scaled_to_bf16(const void *src, void *dst, int64_t n, float s);

/* 1 when no element is NaN or ±inf. */
int qf_row_all_finite(const float *v, int64_t n);

/* 1 when AVX2 kernels may run (the CPU has it, the OS saves YMM, QF_NO_SIMD unset). */
int qf_cpu_has_avx2(void);

/* Portable paths of the SIMD converters (for tests and benchmarks). */
void qf_row_f16_to_f32_scalar(const void *src, float *dst, int64_t n);

#endif
