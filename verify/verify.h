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

#endif
