/*
 * safetensors.h — strict, zero-copy reader and a small writer.
 *
 * File layout:
 *   u64 LE   N                      header length, 2 ≤ N ≤ 100,000,000
 *   N bytes  UTF-8 JSON object      {name: {"dtype": D, "shape": [..],
 *                                     "data_offsets": [begin, end]}, ...,
 *                                    "__metadata__": {str: str}}   (optional)
 *   data     tensors, little-endian, C order; offsets relative to here.
 * Rules enforced: header inside the file, valid JSON, known dtype, shape of
 * non-negative integers whose element count does not overflow, byte size =
 * elements × dtype size, offsets contiguous from 0 (no gaps, no overlaps),
 * last end = file size − 8 − N, no duplicate names, no unknown keys.
 *
 * Sharded checkpoints: model.safetensors.index.json =
 *   {"metadata": {"total_size": …}, "weight_map": {tensor: shard file}}
 * Every mapped shard must exist and hold each tensor mapped to it; a tensor
 * present in two shards is an error.
 */
#ifndef QF_SAFETENSORS_H
#define QF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util/qf.h"
#include "formats/tensor.h"

typedef struct qf_st qf_st;

/* Opens a .safetensors file, or a folder (index.json, else model.safetensors,
 * else every *.safetensors in name order).  The caller owns *out. */
qf_status qf_st_open(const char *path, qf_st **out, qf_err *err);
/* Parses a safetensors image held in memory (fuzzing, tests). */
qf_status qf_st_open_buffer(const void *buf, size_t len, const char *label, qf_st **out,
			    qf_err *err);
void qf_st_close(qf_st *st);

size_t qf_st_count(const qf_st *st);
/* Tensors in file order, then data-offset order.  Borrowed. */
const qf_tensor *qf_st_get(const qf_st *st, size_t i);
/* NULL when absent. */
const qf_tensor *qf_st_find(const qf_st *st, const char *name);
size_t qf_st_nfiles(const qf_st *st);
const char *qf_st_file_path(const qf_st *st, size_t i);
uint64_t qf_st_file_size(const qf_st *st, size_t i);
/*
 * A logical view: count/get/find answer from view[0..n) instead of the files'
 * tensors (compressed-tensors: one float weight per quantized module, its
 * companions hidden).  view must stay valid until close; release(owner) runs
 * at close (or when another view replaces this one).  The stored tensors stay
 * reachable through qf_st_raw_*.  Two tensors of the view with one name are an error.
 */
qf_status qf_st_set_view(qf_st *st, const qf_tensor *view, size_t n, void (*release)(void *), void *owner,
			 qf_err *err);
size_t qf_st_raw_count(const qf_st *st);
const qf_tensor *qf_st_raw_get(const qf_st *st, size_t i);
const qf_tensor *qf_st_raw_find(const qf_st *st, const char *name);
/* Value of a "__metadata__" key of the first file, or NULL. */
const char *qf_st_metadata(const qf_st *st, const char *key);

/*
 * FP8 block scales (DeepSeek layout): finds "<name>_scale_inv" (any shard),
 * checks it is F32 or F8_E8M0 (UE8M0 powers of two, as DeepSeek-V4 stores
 * them; V3.1/V3.2 store their ue8m0 scales as F32) of shape
 * [ceil(out/bo), ceil(in/bi)] for a 2-D weight.
 * Returns QF_OK with *scale = NULL when the weight is not FP8.
 */
qf_status qf_st_fp8_scale(const qf_st *st, const qf_tensor *w, int64_t bo, int64_t bi,
			  const qf_tensor **scale, qf_err *err);
/* Element i of a block-scale tensor qf_st_fp8_scale accepted, as f32 (E8M0: exactly 2^(e−127), 0xFF NaN). */
float qf_st_scale_at(const qf_tensor *sc, uint64_t i);

/* ---- writer -------------------------------------------------------------- */

typedef struct qf_st_entry {
	const char *name;
	qf_dtype dtype;
	int ndim;
	int64_t shape[QF_MAX_DIMS];
	const void *data;   /* nbytes = elements × size */
} qf_st_entry;

/* Writes a complete file (tmp + rename).  metadata: NULL-terminated key,value
 * pairs or NULL. */
qf_status qf_st_write(const char *path, const qf_st_entry *entries, size_t n,
		      const char *const *metadata, qf_err *err);

#endif
