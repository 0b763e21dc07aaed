/*
 * imatrix.h — llama.cpp's importance matrix files, read and written.
 *
 * GGUF imatrix (llama-imatrix's default since 2025): a GGUF with
 *   general.type        str  "imatrix"
 *   imatrix.datasets    arr[str]  the calibration texts
 *   imatrix.chunk_count u32
 *   imatrix.chunk_size  u32
 * and per weight W (a GGUF tensor name), names sorted:
 *   W.in_sum2  F32 {ne0, n_mat}  Σx² of each input column, per matrix
 *                                (experts of a 3-D tensor, heads of attn_k_b)
 *   W.counts   F32 {1, n_mat}    how many inputs (tokens; routed (token,
 *                                slot) pairs for experts) each matrix saw
 * llama-quantize refuses one without the three imatrix.* keys.
 *
 * Legacy .dat (llama-imatrix --output-format dat), little-endian:
 *   i32 n_entries
 *   n_entries × { i32 len; char name[len]; i32 ncall; i32 nval; f32 data[nval] }
 *       data = (Σx²/count)·ncall
 *   optional: i32 chunk_count; i32 len; char dataset[len]
 *
 * The weights a quantizer uses (llama.cpp tools/quantize load_imatrix):
 * GGUF: Σx²/count per matrix, with count rounded to an integer and 1 for
 * every column of a matrix that saw nothing; legacy: data/ncall.
 */
#ifndef QF_IMATRIX_H
#define QF_IMATRIX_H

#include <stddef.h>
#include <stdint.h>

#include "util/qf.h"

typedef struct qf_imatrix_entry {
	char *name;           /* weight name, "blk.3.ffn_down_exps.weight" */
	int64_t n;            /* values: ne0 × n_mat */
	int64_t n_mat;        /* matrices (GGUF: counts; legacy: 1) */
	float *sums;          /* [n_mat][ne0]: GGUF Σx²; legacy (Σx²/count)·ncall */
	int64_t *counts;      /* [n_mat] (legacy: ncall) */
} qf_imatrix_entry;

typedef struct qf_imatrix {
	int legacy;           /* read from a .dat file */
	char **datasets;
	size_t ndatasets;
	uint32_t chunk_count, chunk_size;
	qf_imatrix_entry *e;  /* sorted by name */
	size_t n;
} qf_imatrix;

/* Reads a GGUF imatrix or a legacy .dat (by its first bytes); errors name the file and entry. */
qf_status qf_imatrix_open(const char *path, qf_imatrix **out, qf_err *err);
/* The same from memory (fuzzing, tests). */
qf_status qf_imatrix_parse(const void *buf, size_t len, const char *label, qf_imatrix **out, qf_err *err);
void qf_imatrix_free(qf_imatrix *m);

/* The entry of a weight, or NULL. */
const qf_imatrix_entry *qf_imatrix_find(const qf_imatrix *m, const char *name);
/*
 * Its quantizer weights (n floats into w) as llama-quantize computes them.
 * QF_EFORMAT naming the entry when one is not finite.
 */
qf_status qf_imatrix_weights(const qf_imatrix *m, const qf_imatrix_entry *e, float *w, qf_err *err);

/*
 * A new, empty imatrix for writing; add entries (copied), then write the
 * GGUF form (entries sorted by name).
 */
qf_imatrix *qf_imatrix_new(void);
qf_status qf_imatrix_add(qf_imatrix *m, const char *name, int64_t ne0, int64_t n_mat, const float *sums,
			 const int64_t *counts, qf_err *err);
qf_status qf_imatrix_add_dataset(qf_imatrix *m, const char *dataset, qf_err *err);
qf_status qf_imatrix_write(qf_imatrix *m, const char *path, int force, qf_err *err);

#endif
