/*
 * llama_oracle.h — llama.cpp as a test oracle: the prebuilt libraries of
 * npm's @node-llama-cpp/linux-x64 (tests/oracle, installed by
 * .ci/oracle.sh), opened with dlopen.  Test-only; never linked into qforge.
 *
 * Structs llama.cpp passes by value (model, context and quantize params)
 * are handled as opaque buffers filled by llama.cpp's own *_default_params:
 * on x86-64 a by-value struct this large travels in memory, so a larger
 * buffer is ABI-compatible for the single by-value argument used here.
 */
#ifndef TESTS_LLAMA_ORACLE_H
#define TESTS_LLAMA_ORACLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tl_llama tl_llama;

/*
 * Opens llama.cpp (NULL when absent: *why says what is missing).  Loads the
 * AVX2 build of the CPU backend (generic x64 as a fallback), never the AMX
 * one: ggml's AMX weight buffer cannot run DeepSeek's 3-D attn_k_b/attn_v_b
 * products and graph scheduling aborts (GGML_ASSERT(*cur_backend_id != -1)),
 * also on llama.cpp's own quantizer output.
 */
tl_llama *tl_llama_open(char *why, size_t why_size);
void tl_llama_close(tl_llama *L);
/* tl_llama_open for a TAP test: when absent, a skip of `what` (a failure under CI=true) and NULL. */
tl_llama *tl_llama_open_tap(const char *what);
/* The library handle for other symbols (libllama), for tests that need more. */
void *tl_llama_sym(tl_llama *L, const char *name);

/* A GGUF loaded with default parameters (NULL on failure); free with tl_llama_free_model. */
void *tl_llama_load(tl_llama *L, const char *gguf);
void tl_llama_free_model(tl_llama *L, void *model);
int tl_llama_n_vocab(tl_llama *L, void *model);

/*
 * Runs tok[0..n) as one sequence from position 0 in a fresh context of at
 * least n positions and copies every position's logits to out[n][n_vocab].
 * 0 on success.
 */
int tl_llama_logits(tl_llama *L, void *model, const int32_t *tok, int n, float *out);

/* llama_tokenize with the model's vocabulary: the count, or −1. */
int tl_llama_tokenize(tl_llama *L, void *model, const char *text, int len, int32_t *ids, int max,
		      int add_special, int parse_special);

/*
 * llama_model_quantize(in, out) with ftype (llama_ftype) and nthread; the
 * rest of llama.cpp's defaults.  0 on success.
 */
int tl_llama_quantize(tl_llama *L, const char *in, const char *out, int ftype, int nthread);
/* llama.h's struct llama_model_imatrix_data: Σx²/count per column (and expert); a NULL name ends the array. */
typedef struct tl_imatrix_data {
	const char *name;
	const float *data;
	size_t size;
} tl_imatrix_data;
/* Frees an array of entries whose names and data were malloc'd (NULL-name-terminated). */
void tl_imatrix_data_free(tl_imatrix_data *d);
/* The same with an importance matrix. */
int tl_llama_quantize_imatrix(tl_llama *L, const char *in, const char *out, int ftype, int nthread,
			      const tl_imatrix_data *imatrix);
/* The same with llama-quantize's --output-tensor-type / --token-embedding-type (ggml type ids; −1: the mix's own). */
int tl_llama_quantize_ex(tl_llama *L, const char *in, const char *out, int ftype, int nthread,
			 const tl_imatrix_data *imatrix, int output_type, int embd_type);

#endif
