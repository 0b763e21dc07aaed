/*
 * verify.h — qforge verify: integrity (hashes), per-tensor error against a
 * reference, and a reference fp32 forward pass with perplexity, KL
 * divergence and top-1 agreement (llama.cpp's perplexity definitions).
 */
#ifndef VFY_VERIFY_H
#define VFY_VERIFY_H

#include "formats/tokenizer.h"

/*
 * The tokenizer of any model qforge reads: a checkpoint folder's
 * tokenizer.json, a GGUF's tokenizer.ggml.*, a bundle's tokenizer.json (or
 * its metadata.gguf when it has none).
 */
qf_status vfy_tokenizer_open(const char *model, qf_tok **out, qf_err *err);

#include "convert/convert.h"
#include "forward/forward.h"

/* ---- level 1: integrity ---------------------------------------------------------- */

typedef struct vfy_mismatch {
	char name[160];             /* tensor name, or "(metadata)", "(all data)" */
	uint64_t want, got;
	char what[224];             /* "": a hash mismatch; else why the check could not be made */
} vfy_mismatch;

typedef struct vfy_integrity {
	const char *kind;           /* "gguf", "bundle" or "checkpoint" */
	int hashed;                 /* the file carries (or claims) qforge hashes */
	const char *unchecked;      /* what was NOT checked and why (static), or NULL */
	size_t tensors, checked;
	uint64_t bytes;
	uint64_t data_hash;         /* recomputed */
	vfy_mismatch *bad;          /* malloc'd */
	size_t nbad;
} vfy_integrity;

/* Recomputes every hash a GGUF or bundle records.  Fails (QF_EFORMAT) only when it cannot read it. */
qf_status vfy_integrity_check(const char *path, vfy_integrity *r, qf_err *err);
void vfy_integrity_free(vfy_integrity *r);

/* ---- level 2: per-tensor error against a reference ---------------------------------- */

typedef struct vfy_terr {
	char name[160];
	cvt_class cls;
	const char *fmt;            /* candidate's format */
	uint64_t n;
	double rel_rms, max_abs, cosine;
	double d2, x2, y2, xy;      /* sums, for class totals */
	const char *problem;        /* "missing in the reference", "shapes differ", or NULL */
} vfy_terr;

/* Compares every candidate tensor with the reference tensor of the same name (streaming, threads over rows). */
qf_status vfy_tensor_errors(cvt_plan *cand, cvt_plan *ref, int threads, vfy_terr **out, size_t *n, qf_err *err);

/* ---- level 3: perplexity, KL divergence, top-1 (llama.cpp's definitions) ------------- */

typedef struct vfy_ppl {
	double ppl, ppl_err;        /* exp(mean NLL) ± its standard error */
	double nll, nll_var;
	/* against the reference (model 0); zero for the reference itself */
	double ppl_ratio, kld, kld_err, kld_p99, top1, rms_dp;
	size_t n;
	int64_t nonfinite_at;       /* text position of the first non-finite logit, NLL or KLD; -1: none */
	const char *nonfinite_what; /* "logit", "NLL" or "KLD" (static) */
} vfy_ppl;

/*
 * Progress of vfy_perplexity: after every chunk when all weights are cached
 * (chunk-major), after every layer of every model when a model streams
 * (layer-major: a batch of chunks goes through one layer at a time).
 */
typedef struct vfy_progress {
	size_t chunk, nchunks;      /* chunk-major: chunks done; layer-major: the batch's first chunk */
	size_t batch_chunks;        /* chunks in the batch (1: chunk-major) */
	size_t model, nmodels;      /* layer-major: the model (1-based) whose layer just ran */
	int64_t layer, nlayer;      /* layer-major: that layer (1-based) and the model's count */
	double tokens_per_s;        /* tokens of all models per second, so far */
	double gb_streamed;         /* weights decoded from their source so far (streaming only) */
	double done_frac;           /* of the whole evaluation */
	double eta_s;               /* seconds left, by the rate so far */
} vfy_progress;
typedef void (*vfy_progress_fn)(void *ud, const vfy_progress *p);

/*
 * Evaluates models[0..nm) on the same tokens: floor(n/ctx) chunks (at most
 * max_chunks if > 0), BOS first in each chunk when bos >= 0, positions
 * ctx/2 … ctx−2 scored.  res[i] for each model; res[i>0] also against res[0].
 * The models run in lockstep, a batch of chunks at a time, so KLD, top-1
 * and Δp come from both final logits as they are made: nothing the size of
 * vocabulary × tokens is kept.  When a model streams its weights, a batch
 * is as many chunks as every model's memory budget holds and goes through
 * one layer at a time (each layer's weights read once per batch); results
 * are bit-identical to one chunk at a time.
 * A non-finite logit, NLL or KLD is not an error here: res[i].nonfinite_at
 * names the first position, and the caller fails the model.
 */
qf_status vfy_perplexity(fwd_model *const *models, size_t nm, const int32_t *tokens, size_t ntok, int64_t ctx,
			 int32_t bos, size_t max_chunks, vfy_progress_fn prog, void *ud, vfy_ppl *res, qf_err *err);

#endif