/*
 * calibrate.h — an importance matrix from the reference forward pass, as
 * llama-imatrix collects it (llama.cpp tools/imatrix/imatrix.cpp,
 * IMatrixCollector::collect_imatrix), for qforge calibrate.
 *
 * The text's tokens are cut into chunks of ctx (the first token of each
 * replaced by BOS when the tokenizer adds one), and every position of every
 * chunk goes through forward/ with an observer (forward.h, fwd_seen) that
 * adds, for each weight W named blk.* (and output.weight when asked), the
 * square of every input column:
 *
 *   2-D W, and the 3-D attn_k_b/attn_v_b (llama.cpp's MUL_MAT):
 *       in_sum2 {cols·n_mat, 1}: Σ over tokens of x², matrix after matrix
 *                                (heads of attn_k_b/attn_v_b)
 *       counts  {1, 1}:          tokens
 *   routed experts (llama.cpp's MUL_MAT_ID):
 *       in_sum2 {cols, n_exp}:   per expert, Σ over its routed (token, slot) pairs
 *       counts  {1, n_exp}:      those pairs (0 for an expert no token chose)
 *
 * which are the shapes llama-imatrix writes (its dense entries keep one
 * count; llama-quantize divides every value by it).  Sums are kept in fp64
 * in token order — the order forward/ reports rows in — and rounded to f32
 * once, so the result does not depend on the thread count or on how many
 * chunks are evaluated together.
 *
 * MLA: attn_k_b's input is each head's q_nope and attn_v_b's each head's
 * softmax weights applied to the normed latent kv (the absorbed form
 * llama.cpp runs); with legacy_kv_b, attn_kv_b's input (the normed latent
 * kv) instead, for models converted with --legacy-kv-b.
 */
#ifndef QNT_CALIBRATE_H
#define QNT_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/imatrix.h"
#include "forward/forward.h"

typedef struct qnt_calib_opts {
	int64_t ctx;            /* tokens per chunk */
	size_t max_chunks;      /* 0: every whole chunk of the text */
	int32_t bos;            /* written at each chunk's first position; −1: none */
	int process_output;     /* also output.weight (llama-imatrix --process-output) */
	int legacy_kv_b;        /* attn_kv_b instead of attn_k_b and attn_v_b */
} qnt_calib_opts;

typedef struct qnt_calib_stats {
	size_t chunks;          /* evaluated */
	uint64_t tokens;        /* chunks × ctx */
	size_t entries;         /* weights in the imatrix */
	size_t routed;          /* of them, routed-expert weights */
	size_t experts_unused;  /* (weight, expert) pairs that no token chose: their count is 0 */
	double seconds;
} qnt_calib_stats;

/* Progress: done_frac of the work, in chunk c0 (+nc evaluated together) of nchunks, at layer (1-based) of nlayer. */
typedef void (*qnt_calib_progress_fn)(void *ud, double done_frac, size_t c0, size_t nc, size_t nchunks, int64_t layer,
				      int64_t nlayer);

/*
 * Runs the pass over tokens[0..ntok) and returns the imatrix (datasets
 * empty: the caller adds the text's name).  QF_EUSAGE for a text shorter
 * than one chunk or a ctx the model does not take; QF_EFORMAT when an
 * input sum is not finite (naming the weight).  The model's observer is
 * cleared before returning.
 */
qf_status qnt_calibrate(fwd_model *m, const int32_t *tokens, size_t ntok, const qnt_calib_opts *o,
			qnt_calib_progress_fn prog, void *ud, qf_imatrix **out, qnt_calib_stats *st, qf_err *err);

#endif
