/*
 * gguf.h — GGUF v3 reader (strict, as llama.cpp's loader) and streaming writer.
 *
 * Layout, little-endian:
 *   "GGUF" u32 version=3 u64 n_tensors u64 n_kv
 *   n_kv × { str key; u32 type; value }
 *       str    = u64 len + bytes (no NUL)
 *       types  0 u8 1 i8 2 u16 3 i16 4 u32 5 i32 6 f32 7 bool 8 str
 *              9 array{u32 elem type; u64 count; elems} 10 u64 11 i64 12 f64
 *   n_tensors × { str name (< 64 bytes); u32 n_dims (1..4);
 *                 u64 ne[n_dims] innermost first; u32 ggml type; u64 offset }
 *   padding to general.alignment (u32, default 32, a power of two)
 *   tensor data: in info order, each at its offset, each padded to alignment.
 *
 * qforge integrity keys (written by qf_gguf_writer, checked by verify):
 *   qforge.tensor_xxh64  u64 array, xxh64 of each tensor's nbytes, info order
 *   qforge.data_xxh64    u64, xxh64 of all tensors' bytes concatenated
 *   qforge.meta_xxh64    u64, xxh64 of the header [0, data start) with the
 *                        value bytes of these three keys zeroed
 *
 * Split sets (llama-gguf-split's layout): PREFIX-00001-of-0000n.gguf …
 * PREFIX-0000n-of-0000n.gguf, each a complete GGUF of its own (header,
 * tensor infos, offsets relative to its own data section) carrying
 *   split.no             u16, 0-based part number
 *   split.count          u16, n
 *   split.tensors.count  i32, tensors in all parts together
 * Every other key is only in the first part.  Each part carries its own
 * qforge.* hashes over its own tensors and header.
 */
#ifndef QF_GGUF_H
#define QF_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "util/qf.h"
#include "formats/tensor.h"

enum qf_gguf_type {
	QF_GGUF_U8 = 0, QF_GGUF_I8 = 1, QF_GGUF_U16 = 2, QF_GGUF_I16 = 3,
	QF_GGUF_U32 = 4, QF_GGUF_I32 = 5, QF_GGUF_F32 = 6, QF_GGUF_BOOL = 7,
	QF_GGUF_STR = 8, QF_GGUF_ARR = 9, QF_GGUF_U64 = 10, QF_GGUF_I64 = 11,
	QF_GGUF_F64 = 12, QF_GGUF_NTYPES
};

#define QF_GGUF_MAX_NAME 64
#define QF_GGUF_MAX_DIMS 4
#define QF_GGUF_DEFAULT_ALIGN 32

typedef struct qf_gguf_str {
	const char *p;   /* into the mapping, not NUL-terminated */
	uint64_t len;
} qf_gguf_str;

typedef struct qf_gguf_kv {
	char *key;                 /* owned, NUL-terminated */
	uint32_t type;
	uint32_t arr_type;         /* element type for arrays */
	uint64_t n;                /* array element count (1 for scalars) */
	const uint8_t *raw;        /* value bytes in the file (array: first element) */
	uint64_t raw_off;          /* file offset of the value bytes (after the type) */
	uint64_t raw_len;          /* bytes of the whole value */
	qf_gguf_str *strs;         /* owned: for string arrays, one per element */
} qf_gguf_kv;

typedef struct qf_gguf qf_gguf;

/*
 * Opens a GGUF.  The first part of a split set opens the whole set: the
 * tensors of every part in order (qf_tensor.file = part index), the
 * metadata of the first part.  Any other part is an error naming the first.
 */
qf_status qf_gguf_open(const char *path, qf_gguf **out, qf_err *err);
/* Opens one file only, even when it is a part of a split set. */
qf_status qf_gguf_open_one(const char *path, qf_gguf **out, qf_err *err);
/* Parts of the set (1 for a single file) and their paths (borrowed). */
size_t qf_gguf_nsplits(const qf_gguf *g);
const char *qf_gguf_split_path(const qf_gguf *g, size_t k);
/* "PREFIX-0000{k+1}-of-0000{count}.gguf" (llama.cpp's llama_split_path). */
void qf_gguf_split_name(char *dst, size_t n, const char *prefix, size_t k, size_t count);
/* 1 if path is a regular file starting with the GGUF magic. */
int qf_path_is_gguf(const char *path);
qf_status qf_gguf_open_buffer(const void *buf, size_t len, const char *label, qf_gguf **out,
			      qf_err *err);
void qf_gguf_close(qf_gguf *g);

const char *qf_gguf_path(const qf_gguf *g);
uint32_t qf_gguf_version(const qf_gguf *g);
uint32_t qf_gguf_alignment(const qf_gguf *g);
uint64_t qf_gguf_data_offset(const qf_gguf *g);
uint64_t qf_gguf_file_size(const qf_gguf *g);

size_t qf_gguf_nkv(const qf_gguf *g);
const qf_gguf_kv *qf_gguf_kv_at(const qf_gguf *g, size_t i);
/* -1 when absent. */
int64_t qf_gguf_find_kv(const qf_gguf *g, const char *key);

/* Typed getters: QF_OK, or QF_EFORMAT (missing key or wrong type, with message). */
qf_status qf_gguf_get_u32(const qf_gguf *g, const char *key, uint32_t *v, qf_err *err);
qf_status qf_gguf_get_u64(const qf_gguf *g, const char *key, uint64_t *v, qf_err *err);
qf_status qf_gguf_get_f32(const qf_gguf *g, const char *key, float *v, qf_err *err);
qf_status qf_gguf_get_bool(const qf_gguf *g, const char *key, int *v, qf_err *err);
/* Returns a malloc'd NUL-terminated copy. */
qf_status qf_gguf_get_str(const qf_gguf *g, const char *key, char **v, qf_err *err);
/* Scalar value of any integer/float/bool type as double. */
int qf_gguf_kv_number(const qf_gguf_kv *kv, uint64_t i, double *v);

size_t qf_gguf_ntensors(const qf_gguf *g);
const qf_tensor *qf_gguf_tensor(const qf_gguf *g, size_t i);
const qf_tensor *qf_gguf_find_tensor(const qf_gguf *g, const char *name);

const char *qf_gguf_type_name(uint32_t t);

/* ---- streaming writer ------------------------------------------------------ */

typedef struct qf_gguf_writer qf_gguf_writer;

qf_gguf_writer *qf_gguf_writer_new(void);
void qf_gguf_writer_free(qf_gguf_writer *w); /* aborts an unfinished output */

/* Metadata (added in order; a repeated key replaces nothing: it is an error
 * reported at begin). */
void qf_gguf_set_u32(qf_gguf_writer *w, const char *key, uint32_t v);
void qf_gguf_set_i32(qf_gguf_writer *w, const char *key, int32_t v);
void qf_gguf_set_u64(qf_gguf_writer *w, const char *key, uint64_t v);
void qf_gguf_set_f32(qf_gguf_writer *w, const char *key, float v);
void qf_gguf_set_bool(qf_gguf_writer *w, const char *key, int v);
void qf_gguf_set_str(qf_gguf_writer *w, const char *key, const char *v);
void qf_gguf_set_arr_str(qf_gguf_writer *w, const char *key, const char *const *v, size_t n);
void qf_gguf_set_arr_i32(qf_gguf_writer *w, const char *key, const int32_t *v, size_t n);
void qf_gguf_set_arr_f32(qf_gguf_writer *w, const char *key, const float *v, size_t n);
/* Copies every KV of a reader except qforge.* (for re-writing a GGUF). */
void qf_gguf_copy_kvs(qf_gguf_writer *w, const qf_gguf *g, const char *const *skip);

/* Declares the next tensor; shape outermost first. */
qf_status qf_gguf_add_tensor(qf_gguf_writer *w, const char *name, int ndim,
			     const int64_t *shape, qf_dtype type, qf_err *err);
uint64_t qf_gguf_writer_tensor_nbytes(const qf_gguf_writer *w, size_t i);
uint64_t qf_gguf_writer_total_bytes(const qf_gguf_writer *w);

/* The metadata alone as a GGUF image with no tensors (malloc'd; caller frees). */
qf_status qf_gguf_writer_meta_blob(const qf_gguf_writer *w, uint8_t **out, size_t *len, qf_err *err);

/*
 * Split output: parts of at most max_bytes of tensor data each, every
 * tensor counted padded to the alignment, as llama-gguf-split counts (a
 * tensor larger than max_bytes gets a part of its own).  PATH names the
 * set: "out.gguf" writes out-00001-of-0000n.gguf … .  0: one file.
 * Call before begin.
 */
void qf_gguf_writer_set_split(qf_gguf_writer *w, uint64_t max_bytes);
/* After begin: the number of files and the path of each (borrowed). */
size_t qf_gguf_writer_nsplits(const qf_gguf_writer *w);
const char *qf_gguf_writer_split_path(const qf_gguf_writer *w, size_t k);

/* Writes the header to PATH.tmp; then tensor data is appended in order. */
qf_status qf_gguf_writer_begin(qf_gguf_writer *w, const char *path, int force, qf_err *err);
/* Appends bytes of the current tensor (may be called many times per tensor). */
qf_status qf_gguf_writer_write(qf_gguf_writer *w, const void *buf, size_t n, qf_err *err);
/* Fills in the hashes and renames the file into place. */
qf_status qf_gguf_writer_finish(qf_gguf_writer *w, qf_err *err);
/* Per-tensor hash after its data was written. */
uint64_t qf_gguf_writer_tensor_hash(const qf_gguf_writer *w, size_t i);
uint64_t qf_gguf_writer_data_hash(const qf_gguf_writer *w);

/* Computes the three integrity values of a GGUF as the writer defines them. */
qf_status qf_gguf_meta_hash(const qf_gguf *g, uint64_t *meta, qf_err *err);

#endif
