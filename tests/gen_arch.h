/*
 * gen_arch.h — seeded tiny checkpoints, one per supported architecture,
 * written as Hugging Face saves them (config.json, model.safetensors,
 * tokenizer files): real layouts and names, random but finite F32 weights.
 * The tokenizer is the bundled tiny-dsv3 one (byte-level BPE, 1024 ids).
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
	GA_COUNT
} ga_arch;

const char *ga_name(ga_arch a);
/* Writes the checkpoint into dir (created); 0 on success. */
int ga_gen(ga_arch a, const char *dir, uint64_t seed);
/* Vocabulary size of every generated checkpoint. */
#define GA_VOCAB 1024

#endif
