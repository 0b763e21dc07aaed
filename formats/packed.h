/*
 * packed.h — the packed bundle: qforge's raw format for chip runtimes.
 * The versioned spec is docs/packed-format.md; in short:
 *
 *   BUNDLE/ (a folder, or one GNU tar of the same members)
 *     manifest.json    format "qforge-packed", version 2, files[], tensors[], …
 *     tensors.bin      every tensor's bytes, each starting at a multiple of 4096
 *     metadata.gguf, config.json, tokenizer.json, …   (each listed in files[])
 *
 * In a tar, manifest.json is the first member and is padded with trailing
 * spaces so that tensors.bin's data starts at byte 4096·k of the tar: a
 * runtime can mmap the tar itself.  Each manifest tensor entry:
 *
 *   { "name", "shape": [outermost first], "format", "dtype", "block": [r, c],
 *     "class", "role": "weight"|"scale"|"zero", "of": main name (companions),
 *     "companions": { role: name }, "file", "offset", "nbytes", "xxh64": hex }
 *
 * data_xxh64 is the xxh64 of the tensors' xxh64 values (u64, little
 * endian) in manifest order.  manifest_xxh64 (version 2) is the xxh64 of
 * manifest.json's bytes with its own 16 hex digits read as '0'; files[]
 * names every other member with its size and xxh64, so the manifest hash
 * covers the whole bundle.
 *
 * formats/ does not know the quantization formats: qf_pk_open takes a
 * callback that gives the byte size a format implies (NULL: unchecked).
 */
#ifndef QF_PACKED_H
#define QF_PACKED_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "util/qf.h"
#include "formats/tensor.h"

#define QF_PK_ALIGN 4096
#define QF_PK_VERSION 2         /* written; versions 1 and 2 are read */
#define QF_PK_PAYLOAD "tensors.bin"

typedef struct qf_pk_tensor {
	qf_tensor t;            /* dtype = element type; data mapped; offset inside the payload */
	const char *format;     /* "q8_0", "fp8-b128", "f32", … (borrowed) */
	const char *cls;        /* tensor class or NULL */
	const char *role;       /* "weight", "scale", "zero" */
	const char *of;         /* companions: the main tensor's name; else NULL */
	int64_t block[2];
	uint64_t xxh64;         /* as recorded */
	int comp[2];            /* companion indices by role order (scale, zero), -1 */
	const char *comp_role[2];
} qf_pk_tensor;

/* A member file as files[] lists it. */
typedef struct qf_pk_file {
	const char *name;       /* a plain name at the bundle's top level (borrowed) */
	uint64_t size;
	int hashed;             /* xxh64 recorded (every member but tensors.bin) */
	uint64_t xxh64;
} qf_pk_file;

/* Byte size the format implies for a main tensor, or 0 when the format is unknown. */
typedef uint64_t (*qf_pk_sizer)(const char *format, int ndim, const int64_t *shape);

typedef struct qf_pk qf_pk;

/* Opens a bundle folder or tar; every structural rule is checked. */
qf_status qf_pk_open(const char *path, qf_pk_sizer sizer, qf_pk **out, qf_err *err);
/* Parses a manifest and payload held in memory (fuzzing, tests). */
qf_status qf_pk_open_buffer(const void *manifest, size_t mlen, const void *payload, size_t plen,
			    qf_pk_sizer sizer, qf_pk **out, qf_err *err);
void qf_pk_close(qf_pk *pk);

const cJSON *qf_pk_manifest(const qf_pk *pk);
size_t qf_pk_ntensors(const qf_pk *pk);
const qf_pk_tensor *qf_pk_tensor_at(const qf_pk *pk, size_t i);
/* -1 when absent. */
int64_t qf_pk_find(const qf_pk *pk, const char *name);
uint64_t qf_pk_payload_size(const qf_pk *pk);
/* A member file's bytes (config.json, …), or NULL when files[] does not list it or it is absent. */
const uint8_t *qf_pk_member(const qf_pk *pk, const char *name, uint64_t *size);
size_t qf_pk_nfiles(const qf_pk *pk);
const qf_pk_file *qf_pk_file_at(const qf_pk *pk, size_t i);
int qf_pk_version(const qf_pk *pk);
/*
 * The manifest's own hash (version 2: manifest_xxh64): 1 with the recorded
 * and the recomputed value; 0 for a version 1 bundle, whose manifest is not
 * hashed (its shapes, formats and config cannot be checked).
 */
int qf_pk_manifest_hash(const qf_pk *pk, uint64_t *recorded, uint64_t *computed);
/* 1 if path looks like a bundle (folder with manifest.json, or a tar whose first member is one). */
int qf_pk_is_bundle(const char *path);

/* ---- writer -------------------------------------------------------------------- */

typedef struct qf_pk_writer qf_pk_writer;

qf_pk_writer *qf_pk_writer_new(void);
void qf_pk_writer_free(qf_pk_writer *w);    /* aborts an unfinished output */

/* Declares a tensor; returns its index, or -1 with err set. */
int qf_pk_writer_add(qf_pk_writer *w, const char *name, int ndim, const int64_t *shape,
		     const char *format, qf_dtype elem, const int64_t block[2], uint64_t nbytes,
		     const char *cls, const char *role, const char *of, qf_err *err);
/* Sets a top-level manifest field (takes ownership of value). */
void qf_pk_writer_set(qf_pk_writer *w, const char *key, cJSON *value);
/* Copies a member file into the bundle when the source exists. */
qf_status qf_pk_writer_add_file(qf_pk_writer *w, const char *name, const char *src, qf_err *err);

/* Adds a member file from memory (copied). */
qf_status qf_pk_writer_add_blob(qf_pk_writer *w, const char *name, const void *data, size_t len, qf_err *err);

/* Creates PATH.tmp/ (or a staging folder for PATH ending in .tar). */
qf_status qf_pk_writer_begin(qf_pk_writer *w, const char *path, int force, qf_err *err);
/* Appends bytes to tensor idx (each tensor is written in order, tensors in any order). */
qf_status qf_pk_writer_write(qf_pk_writer *w, int idx, const void *buf, size_t n, qf_err *err);
/* Writes the manifest, builds the tar when asked, renames into place. */
qf_status qf_pk_writer_finish(qf_pk_writer *w, qf_err *err);
uint64_t qf_pk_writer_total_bytes(const qf_pk_writer *w);
uint64_t qf_pk_writer_data_hash(const qf_pk_writer *w);

#endif
