/*
 * convert.h — architecture maps and the streaming converter.
 *
 * A plan is made from headers alone: every output tensor (GGUF name, shape
 * outermost first, type, how its rows come from the source tensors), plus
 * the metadata.  Executing a plan streams row blocks from the mmap'd shards
 * through f32 to the output type, threads splitting rows, bytes identical
 * for any thread count.
 */
#ifndef CVT_CONVERT_H
#define CVT_CONVERT_H

#include <stdint.h>

#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "util/qf.h"
#include "formats/tensor.h"
#include "formats/qformat.h"

typedef enum cvt_class {
	CVT_CLASS_ATTN, CVT_CLASS_EXPERT, CVT_CLASS_SHARED_EXPERT, CVT_CLASS_DENSE_FFN,
	CVT_CLASS_ROUTER, CVT_CLASS_EMBED, CVT_CLASS_OUTPUT, CVT_CLASS_NORM,
	CVT_CLASS_INDEXER,        /* DeepSeek-V3.2 lightning indexer (indexer.proj stays f32) */
	CVT_CLASS_COUNT
} cvt_class;

const char *cvt_class_name(cvt_class c);
int cvt_class_from_name(const char *s);   /* -1 if unknown */

typedef enum cvt_op {
	CVT_OP_COPY,      /* out row r = src row r */
	CVT_OP_PERMUTE,   /* Llama Q/K: undo HF's rotate-half row order */
	CVT_OP_STACK,     /* experts: out row r = src[r / rows][r % rows] */
	CVT_OP_KB,        /* kv_b → attn_k_b: per head, transpose the nope rows */
	CVT_OP_VB,        /* kv_b → attn_v_b: per head, the v rows */
} cvt_op;

/* One source tensor, with its FP8 block scale or msModelSlim scales when it has them. */
typedef struct cvt_src {
	const qf_tensor *t;
	const qf_tensor *scale;   /* F32 [ceil(out/bo), ceil(in/bi)], or NULL */
	int64_t bo, bi;           /* block shape of the scale */
	qf_ms_weight ms;          /* msModelSlim int8/fp8 weight (ms.type != QF_MS_FLOAT): rows dequantize through it */
	int coded;                /* rows decode through qv (GGUF blocks, bundle formats) */
	qf_fmt_view qv;
} cvt_src;

typedef enum cvt_source { CVT_SRC_CHECKPOINT, CVT_SRC_GGUF, CVT_SRC_BUNDLE } cvt_source;

typedef struct cvt_item {
	char name[QF_GGUF_MAX_NAME];
	int ndim;
	int64_t shape[4];         /* outermost first */
	qf_dtype type;            /* what convert writes (F32/F16/BF16) */
	qf_dtype fmt;              /* what is written: type's format unless quantize changed it */
	int fallback;             /* quantize wanted a format whose block does not divide the row */
	int src_quant;            /* the source is already quantized (GGUF blocks, bundle formats) */
	int repack;               /* 1: q4_0/q4_1 blocks repacked from compressed-tensors int4 codes (lossless);
				     −1: tried, re-quantized instead (repack_why) */
	char repack_why[200];
	cvt_op op;
	cvt_class cls;
	cvt_src *srcs;            /* owned array */
	int nsrc;
	int64_t n_head, head_dim; /* PERMUTE */
	int64_t nope, vdim, kv_lora; /* KB / VB */
	int layer;                /* -1 for global tensors */
	const float *qw;          /* importance weights [matrices][row_len] (quantize --imatrix; borrowed), or NULL */
} cvt_item;

typedef struct cvt_options {
	qf_dtype outtype;         /* QF_DTYPE_NONE: auto */
	int threads;
	int keep_mtp;             /* 1 keep MTP layers, −1 drop them, 0 the architecture's default */
	int allow_nonfinite;
	int legacy_kv_b;          /* write one attn_kv_b instead of attn_k_b + attn_v_b */
	const char *pre;          /* tokenizer.ggml.pre to write (--pre); NULL: from the known regex lists */
	int check_input_hashes;   /* GGUF/bundle source: refuse one whose recorded hashes fail (before any output) */
	uint64_t max_stage;       /* tar checkpoints: most bytes to stage (--max-stage-size), 0: see qf_ckpt_opts */
} cvt_options;

typedef struct cvt_plan cvt_plan;

qf_status cvt_plan_build(qf_ckpt *ck, const cvt_options *o, cvt_plan **out, qf_err *err);
/*
 * Opens any source qforge reads — a checkpoint folder, tar or safetensors
 * file; a GGUF; a packed bundle — and plans it (GGUF names).  The plan owns
 * the opened source.
 */
qf_status cvt_plan_open(const char *path, const cvt_options *o, cvt_plan **out, qf_err *err);
const char *cvt_plan_source_path(const cvt_plan *p);
/* The plan's metadata (every GGUF key convert would write) as a reader; borrowed. */
qf_status cvt_plan_meta(cvt_plan *p, const qf_gguf **out, qf_err *err);
/* Class of a GGUF tensor name (blk.N.attn_q.weight → attn). */
/* 1 when the item is written f32 whatever the profile (norms, routers, indexer.proj, 1-D). */
int cvt_item_keeps_f32(const cvt_item *it);
cvt_class cvt_class_of_gguf(const char *name, int ndim);
void cvt_plan_free(cvt_plan *p);
size_t cvt_plan_count(const cvt_plan *p);
cvt_item *cvt_plan_item(cvt_plan *p, size_t i);
/* The item with this GGUF name, or NULL. */
const cvt_item *cvt_plan_find(cvt_plan *p, const char *name);
const char *cvt_plan_arch(const cvt_plan *p);      /* GGUF architecture name */
uint64_t cvt_item_nbytes(const cvt_item *it);             /* main payload, GGUF layout */
uint64_t cvt_item_out_bytes(const cvt_item *it, int packed); /* with companions */
/* The format the item's source is stored in (FP8 with block scales: fp8-b128). */
qf_dtype cvt_item_src_fmt(const cvt_item *it);
uint64_t cvt_item_src_bytes(const cvt_item *it);
int64_t cvt_item_rows(const cvt_item *it);
int64_t cvt_item_row_len(const cvt_item *it);
/* Number of skipped source tensors (MTP layers, rotary caches). */
size_t cvt_plan_skipped(const cvt_plan *p);

/* general.file_type of the output is this llama_ftype (a llama.cpp mix), not one derived from the formats. */
void cvt_plan_set_file_type(cvt_plan *p, uint32_t ftype);

/* Sets every metadata key (architecture, hyperparameters, tokenizer). */
qf_status cvt_plan_set_metadata(cvt_plan *p, qf_gguf_writer *w, qf_err *err);

/*
 * Streams rows [r0, r0 + n) of an item as f32 into dst (n × row_len).
 * scratch: caller memory of cvt_scratch_floats(it) floats (KB only).
 * Returns QF_EFORMAT on a non-finite value unless allow_nonfinite.
 */
qf_status cvt_item_rows_f32(const cvt_item *it, int64_t r0, int64_t n, float *dst, float *scratch,
			    int allow_nonfinite, qf_err *err);
int64_t cvt_scratch_floats(const cvt_item *it);
/*
 * 1 when every source is block-scaled F8_E4M3 read row by row (not KB): then
 * cvt_item_rows_bf16 gives the bytes of cvt_item_rows_f32 followed by
 * qf_row_f32_to_bf16, the same finiteness error included, with no f32 pass.
 */
int cvt_item_bf16_direct(const cvt_item *it);
qf_status cvt_item_rows_bf16(const cvt_item *it, int64_t r0, int64_t n, uint16_t *dst, int allow_nonfinite,
			     qf_err *err);

/*
 * Lossless q4_0/q4_1 from compressed-tensors int4 (formats/ctquant.h): for an
 * item quantize put in q4_0 or q4_1 whose every source is a 4-bit packed
 * module read row for row (copy, Q/K permutation, expert stack, v half of
 * kv_b), sets repack = 1 (an asymmetric source, or a q4_1 target, writes
 * q4_1) when every scale (and min) is exactly an fp16 and the scale groups
 * are whole 32-blocks; else repack = −1 with repack_why naming the source
 * tensor and the reason.  Other items are left as they are.
 */
void cvt_item_plan_repack(cvt_item *it);
/* Output row r of a repack = 1 item as K/32 ggml blocks into out. */
void cvt_item_repack_row(const cvt_item *it, int64_t r, uint8_t *out);

/* Progress callback: bytes of source consumed so far, total, item index. */
typedef void (*cvt_progress_fn)(void *ud, uint64_t done, uint64_t total, size_t item, size_t nitems);

/* Per class: what was written and how close it is to the source. */
typedef struct cvt_stats {
	size_t tensors, fallbacks;
	uint64_t elems, bytes_in, bytes_out;
	double d2, x2, y2, xy;    /* Σ(x−y)², Σx², Σy², Σxy over quantized tensors */
	size_t measured;          /* tensors that contributed to the sums */
} cvt_stats;

typedef struct cvt_result {
	uint64_t bytes_in, bytes_out;
	double seconds;
	uint64_t data_hash;
	size_t parts;             /* files written (a split GGUF: its parts) */
	cvt_stats cls[CVT_CLASS_COUNT];
} cvt_result;

typedef struct cvt_write_opts {
	int packed;               /* bundle (folder, or .tar) instead of GGUF */
	int force, threads;
	int quality;              /* measure rel-RMS / cosine of quantized tensors while writing */
	cvt_progress_fn prog;
	void *ud;
	const cJSON *profile;     /* recorded in a bundle's manifest (borrowed), or NULL */
	uint64_t split_max;       /* GGUF: split into parts of at most this many bytes of padded tensor data (0: one file) */
	void (*extra_meta)(void *ud, qf_gguf_writer *w); /* GGUF: adds keys after the plan's (or NULL) */
	void *extra_ud;
} cvt_write_opts;

/* Writes the plan; bytes identical for any thread count. */
qf_status cvt_write(cvt_plan *p, const char *path, const cvt_write_opts *wo, cvt_result *res, qf_err *err);

/* Vocabulary from tokenizer.json (+ tokenizer_config.json) into tokenizer.ggml.*. */
qf_status cvt_vocab_set(const qf_ckpt *ck, int64_t vocab_size, const char *pre, qf_gguf_writer *w, qf_err *err);

#endif
