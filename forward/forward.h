/*
 * forward.h — the fp32 reference forward pass (llama2.c is the spirit) for
 * Llama (GQA, tied or untied head) and DeepSeek-V2/V3/R1 (MLA with or
 * without q_lora, sigmoid- or softmax-routed MoE with group limits and
 * correction bias, shared experts, dense leading layers, YaRN).
 *
 * The model is a plan (convert/convert.h) over any source qforge reads —
 * HF folder (FP8 + scales, BF16, F16, F32), GGUF (F32…Q4_1, MXFP4), packed
 * bundle (every format) — so tensors have GGUF names and llama.cpp's layout
 * (adjacent-pair RoPE, stacked experts, split kv_b) whatever the source.
 * Weights are decoded to f32 once when they fit in the memory budget, and
 * otherwise streamed in row groups for every batch of sequences (the
 * weights of a layer are read once per batch, not once per token).
 *
 * A chunk's tokens go through each weight as one blocked matrix product
 * (kernels.h).  Every sum runs in a fixed order that depends only on the
 * model and the tokens of its sequence, so results are bit-identical for
 * any thread count, for cached or streamed weights, and for any number of
 * sequences evaluated together; across the kernels a CPU may run (AVX-512,
 * AVX2/FMA, portable) they agree within the fp64 references' bounds.
 *
 * The room's files, one job each:
 *   weights.c    opening: hyperparameters, weight lookup, the f32 cache
 *   kernels.c    register-blocked tile kernels (chosen at run time), packing, blocked products
 *   matmul.c     weight × activations, row groups decoded per worker when streamed
 *   rope.c       RoPE frequencies (YaRN) and rotation
 *   attention.c  causal attention per head as blocked QKᵀ and PV (MHA, GQA, MLA)
 *   moe.c        routing, experts run once over their tokens, shared experts, dense FFN
 *   gqa.c        the GQA family's extras (Qwen biases, q/k norms, NEOX RoPE,
 *                Llama 3 RoPE scaling) and the context limits
 *   model.c      the recipe: embed → layers → head
 */
#ifndef FWD_FORWARD_H
#define FWD_FORWARD_H

#include <stdint.h>

#include "convert/convert.h"

typedef struct fwd_hparams {
	int deepseek;
	int64_t n_layer, hidden, vocab, n_head, n_head_kv, head_dim, ff;
	double eps, rope_base;
	int64_t rope_dim;
	/* DeepSeek */
	int64_t q_lora, kv_lora, nope, vdim, n_exp, n_used, n_shared, moe_ff, first_dense;
	int64_t n_group, topk_group;
	int sigmoid, norm_topk;
	double routed_scale;
	int yarn;
	double yarn_factor, yarn_beta_fast, yarn_beta_slow, yarn_mscale_all, yarn_attn_factor;
	int64_t yarn_orig_ctx;
	/* GQA family (Qwen, Llama 3) */
	int rope_neox;            /* rotate-half pairs (x[i], x[i + d/2]): Qwen's GGUFs keep HF's row order */
	double rope_linear;       /* rope.scaling.type linear: frequencies divided by this; 0 otherwise */
	int64_t max_ctx;          /* tokens the pass is exact for (dynamic RoPE, V3.2's indexer top-k); 0: no limit */
	int64_t n_ctx_train;      /* context_length: the positions the model was trained for; 0: not recorded */
} fwd_hparams;

typedef struct fwd_model fwd_model;

/*
 * Opens any model path.  mem_budget: bytes of f32 weights that may be kept
 * decoded (0: always stream).
 */
qf_status fwd_model_open(const char *path, int threads, uint64_t mem_budget, fwd_model **out, qf_err *err);
void fwd_model_free(fwd_model *m);
const fwd_hparams *fwd_model_hparams(const fwd_model *m);
cvt_plan *fwd_model_plan(fwd_model *m);
/* QF_EUSAGE, naming why, when a context of T tokens exceeds what the pass is exact for (fwd_hparams.max_ctx). */
qf_status fwd_check_ctx(const fwd_model *m, int64_t T, qf_err *err);
/* Source bytes of all weights. */
uint64_t fwd_model_weight_bytes(const fwd_model *m);
/* Source bytes of weights decoded by forward passes so far (streaming mode). */
uint64_t fwd_model_streamed(const fwd_model *m);

/*
 * Runs tokens[0..T) as one sequence from position 0 and writes the logits
 * of positions want[i] (n_want of them) to logits[i][vocab].
 */
qf_status fwd_forward(fwd_model *m, const int32_t *tokens, int64_t T, const int64_t *want, int64_t n_want,
		      float *logits, qf_err *err);

/*
 * Layer-major evaluation: nseq sequences of T tokens go through one layer
 * at a time, so a streamed model's weights are read once per batch rather
 * than once per sequence.  Logits are bit-identical to fwd_forward's.
 *
 *   fwd_batch_new      embeds tokens[nseq·T] (sequence q at q·T);
 *   fwd_batch_layer    runs layer l (0, 1, …, n_layer−1 in order) over all of them;
 *   fwd_batch_release  frees the per-layer buffers, keeping the final hidden states;
 *   fwd_batch_logits   the logits of sequence seq at positions want[0..n_want).
 */
typedef struct fwd_batch fwd_batch;
qf_status fwd_batch_new(fwd_model *m, const int32_t *tokens, int64_t nseq, int64_t T, fwd_batch **out, qf_err *err);
qf_status fwd_batch_layer(fwd_model *m, fwd_batch *b, int64_t l, qf_err *err);
void fwd_batch_release(fwd_batch *b);
qf_status fwd_batch_logits(fwd_model *m, const fwd_batch *b, int64_t seq, const int64_t *want, int64_t n_want,
			   float *logits, qf_err *err);
void fwd_batch_free(fwd_batch *b);
/* Bytes of activations a batch holds per token. */
uint64_t fwd_token_bytes(const fwd_model *m);
/*
 * Sequences of T tokens worth evaluating together: 1 when the weights are
 * cached (nothing to save), otherwise as many as the memory budget holds
 * (at least 1).
 */
int64_t fwd_model_batch_seqs(const fwd_model *m, int64_t T);

/*
 * Observing what the weights multiply (qforge calibrate).  With an observer
 * set, every weight of a layer reports, before or while it is used, the
 * rows it takes as input in llama.cpp's graph of the model:
 *
 *   attn_q, attn_k, attn_v, attn_q_a, attn_q (MLA), attn_kv_a_mqa
 *                          the attn_norm output
 *   attn_q_b               the attn_q_a_norm output
 *   attn_k_b  (head h)     q_nope of head h: llama.cpp's absorbed MLA form
 *   attn_v_b  (head h)     Σ_s p_h(t,s)·ckv_s, head h's softmax weights
 *                          applied to the normed latent kv (absorbed form)
 *   attn_kv_b              ckv, the normed latent kv (the legacy form)
 *   attn_output            the attention output
 *   ffn_gate, ffn_up, ffn_gate_inp, ffn_gate_shexp, ffn_up_shexp,
 *   ffn_gate_exps, ffn_up_exps (expert e: the tokens routed to it)
 *                          the ffn_norm output
 *   ffn_down*              silu(gate) ⊙ up of the same FFN or expert
 *   output (fwd_batch_logits)  the output_norm output of the positions asked
 *
 * Each MLA layer reports attn_k_b, attn_v_b and attn_kv_b whatever form the
 * model stores (the observer keeps the ones it wants); the naive attention
 * also applies each head's softmax weights to ckv for attn_v_b, and only
 * then (no cost when no observer is set).  A 3-D weight is reported one
 * matrix at a time (mat 0 … n_mat−1, heads in order, each with the same
 * rows; routed experts only those with tokens, in expert order).  Calls come
 * on the thread running the pass, in an order fixed by the model and the
 * tokens, and rows in token order (so sums kept by the observer in call and
 * row order do not depend on the thread count or batching).
 */
typedef struct fwd_seen {
	const char *name;        /* the weight's GGUF name, "blk.3.ffn_up_exps.weight" */
	int64_t layer;           /* −1: the output head */
	int64_t mat, n_mat;      /* matrix (expert, head) of a 3-D weight, and how many; 0 and 1 for 2-D */
	int routed;              /* routed experts: llama.cpp counts each expert's (token, slot) pairs */
	const float *x;          /* (rows, cols), row r at x + r·ldx */
	int64_t rows, cols, ldx;
} fwd_seen;
typedef qf_status (*fwd_observe_fn)(void *ud, const fwd_seen *seen, qf_err *err);
/* Sets (fn NULL: clears) the observer; a failure it returns ends the pass with that status. */
void fwd_model_observe(fwd_model *m, fwd_observe_fn fn, void *ud);

#endif
