/*
 * importance.h — an importance matrix (formats/imatrix.h) applied to a plan:
 * every tensor whose format has a weighted ggml encoder gets llama-quantize's
 * weights, Σx²/count per input column and per matrix (expert, head), so its
 * bytes are ggml_quantize_chunk's with that imatrix.  As llama.cpp does:
 *   - a tensor with no entry is quantized without weights;
 *   - a matrix that saw no input (count 0) gets weight 1;
 *   - an entry whose size is not row length × matrices is an error naming the
 *     tensor (token_embd: no weights, as llama.cpp ignores it there);
 *   - a non-finite weight is an error naming the tensor.
 * Formats ggml quantizes without weights (q8_0, mxfp4, floats) and qforge's
 * bundle formats ignore the imatrix; the counts say how many.
 */
#ifndef QNT_IMPORTANCE_H
#define QNT_IMPORTANCE_H

#include "convert/convert.h"
#include "formats/imatrix.h"

typedef struct qnt_importance {
	float **w;                /* per plan item: its weights, or NULL (owned) */
	size_t n;
	size_t weighted;          /* tensors quantized with weights */
	size_t missing;           /* weighted format, no entry: quantized without */
	size_t ignored;           /* quantized to a format that takes no weights */
	char first_missing[64];
} qnt_importance;

/* Sets each item's importance weights (cvt_item.qw, borrowed from q). */
qf_status qnt_importance_apply(cvt_plan *p, const qf_imatrix *m, qnt_importance *q, qf_err *err);
void qnt_importance_free(qnt_importance *q);

#endif
