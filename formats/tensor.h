/*
 * tensor.h — the tensor view every reader hands out.
 *
 * Shapes are outermost first (C order, as safetensors and PyTorch write
 * them): an HF linear weight is {out, in}.  GGUF stores dims innermost first
 * ({in, out}); the GGUF reader and writer reverse them at the boundary, so
 * the rest of qforge sees one convention.
 */
#ifndef QF_TENSOR_H
#define QF_TENSOR_H

#include <stdint.h>

#include "formats/dtype.h"

#define QF_MAX_DIMS 8

typedef struct qf_tensor {
	const char *name;             /* borrowed; valid until the reader closes */
	qf_dtype dtype;
	int ndim;
	int64_t shape[QF_MAX_DIMS];   /* outermost first */
	uint64_t nelems;
	uint64_t nbytes;
	uint64_t offset;              /* absolute byte offset in its file */
	const uint8_t *data;          /* read-only mapped view of nbytes */
	int file;                     /* index of the file (shard) holding it */
	/* A compressed-tensors module seen as one float weight (convert/ct_source.c): its rows
	 * decode through ctq (formats/ctquant.h); data/nbytes are the main stored payload
	 * (packed words, int8 or E4M3), never read as dtype.  NULL for stored tensors. */
	const struct qf_ctq *ctq;
} qf_tensor;

/* Elements per "row" (product of all but the outermost dim; 1-D: all). */
static inline int64_t qf_tensor_row_len(const qf_tensor *t)
{
	if (t->ndim <= 1)
		return t->ndim == 1 ? t->shape[0] : 1;
	int64_t n = 1;
	for (int i = 1; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

static inline int64_t qf_tensor_rows(const qf_tensor *t)
{
	return t->ndim <= 1 ? 1 : t->shape[0];
}

/* Tell the kernel a processed range of a mapped view is no longer needed, so
 * the resident set stays flat while streaming a file larger than memory. */
void qf_view_release(const void *p, uint64_t n);

#endif
