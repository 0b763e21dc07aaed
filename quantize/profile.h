/*
 * profile.h — target-chip profiles and choosing each tensor's format.
 *
 * A profile is a JSON file:
 *
 *   { "name": "hopper-fp8", "description": "…", "output": "gguf" | "packed" | "safetensors",
 *     "layout": "vllm-fp8" | "compressed-tensors" | "msmodelslim"   (safetensors only),
 *     "classes": { "attn": FORMAT, "expert": …, "shared_expert": …,
 *                  "dense_ffn": …, "embed": …, "output": … },
 *     "kv_b": "split" | "joined" }
 *
 * or, instead of "classes", a llama.cpp mix chosen tensor by tensor as
 * llama-quantize does (quantize/llama_mix.h):
 *
 *   { "name": "llamacpp-q4_k_m", "output": "gguf", "llama_ftype": "Q4_K_M" }
 *
 * A class profile may add "imatrix_rules": "Q4_0" | "Q5_0": with --imatrix,
 * llama-quantize's rule for that ftype applies on top of the classes
 * (ffn_down of the first block_count/8 layers → q4_1 / q5_1,
 * qnt_mix_imatrix_ffn_down).  llamacpp-q4_0 so picks every type
 * llama-quantize Q4_0 --token-embedding-type q8_0 --output-tensor-type q8_0
 * does, with or without an imatrix.
 *
 * "kv_b": "joined" keeps DeepSeek's kv_b_proj as one attn_kv_b (as
 * --legacy-kv-b), so its FP8 blocks stay the release's blocks.
 *
 * With "output": "safetensors" the class values are Hugging Face schemes
 * (cvt_hf_scheme_parse: bf16, fp8-b128, fp8-b128-ue8m0, ct-fp8-b128, int4-g32 …
 * int4-ch, int8-ch, int8-g128, w8a8, ms-w8a16, ms-w8a8-dynamic).
 *
 * Classes a profile leaves out keep what convert would write.  Routers,
 * norms and every 1-D tensor stay F32 whatever the profile or overrides say.
 *
 * Choosing a tensor's format, first rule that applies:
 *   1. router / norm / 1-D               → F32 (unchanged)
 *   2. --keep REGEX matches the name      → what convert writes (BF16/F16/F32)
 *   3. --type REGEX=FORMAT, first match   → FORMAT
 *   4. the profile's class entry          → that format
 *   5. otherwise                          → what convert writes
 * Fallback: a format whose block does not divide the row length (32 for
 * q8_0/q4_0/q4_1/mxfp4/mxfp8) is replaced by what convert writes, and the
 * summary counts it.
 */
#ifndef QNT_PROFILE_H
#define QNT_PROFILE_H

#include <cjson/cJSON.h>

#include "convert/convert.h"
#include "convert/hf.h"
#include "formats/qformat.h"

typedef struct qnt_profile {
	char name[64];
	char desc[256];
	int packed;                       /* preferred output */
	int kv_b_joined;                  /* write attn_kv_b unsplit */
	int llama_ftype;                  /* "llama_ftype": a llama.cpp mix (quantize/llama_mix.h), 0: classes */
	int imatrix_like;                 /* "imatrix_rules": the llama.cpp ftype (Q4_0, Q5_0) whose imatrix-only rule applies, 0: none */
	qf_dtype cls[CVT_CLASS_COUNT];     /* QF_DTYPE_NONE: unchanged */
	cJSON *json;                      /* the parsed file (owned) */
	int hf;                           /* "output": "safetensors" */
	cvt_hf_layout hf_layout;
	int hf_set[CVT_CLASS_COUNT];      /* the class names a scheme */
	cvt_hf_scheme hf_cls[CVT_CLASS_COUNT];
} qnt_profile;

/* Parses a profile; errors name the file and the bad entry. */
qf_status qnt_profile_load(const char *path, qnt_profile *p, qf_err *err);
qf_status qnt_profile_parse(const char *text, size_t len, const char *label, qnt_profile *p, qf_err *err);
void qnt_profile_free(qnt_profile *p);

/*
 * The folder of shipped profiles, written into buf (n bytes) and returned:
 * $QFORGE_PROFILES; profiles/ next to the executable; the source tree's
 * when the executable is its build tree's (VPATH builds); the installed
 * data folder.
 */
const char *qnt_profile_dir(char *buf, size_t n);
/* Loads a shipped profile by name. */
qf_status qnt_profile_find(const char *name, qnt_profile *p, qf_err *err);
/* Names of the shipped profiles, sorted (malloc'd array of malloc'd strings). */
size_t qnt_profile_names(char ***names);

/*
 * Override patterns are Oniguruma regular expressions (Perl syntax, the
 * engine the tokenizer uses too), searched anywhere in the tensor name.
 * (glibc's regcomp cannot be used: libonig exports a regcomp of its own.)
 */
typedef struct qnt_rule {
	void *re;                         /* OnigRegex */
	char *pattern;
	qf_dtype fmt;                      /* QF_DTYPE_NONE: --keep */
} qnt_rule;

/* Parses "REGEX=FORMAT" (fmt) or "REGEX" (keep). */
qf_status qnt_rule_parse(const char *arg, int keep, qnt_rule *r, qf_err *err);
void qnt_rule_free(qnt_rule *r);
/* 1 if the rule's pattern occurs in name. */
int qnt_rule_match(const qnt_rule *r, const char *name);

/*
 * Sets every item's format.  A source tensor that is already quantized is
 * only re-quantized with allow_requantize.
 */
qf_status qnt_plan_apply(cvt_plan *p, const qnt_profile *prof, const qnt_rule *rules, size_t nrules,
			 int allow_requantize, qf_err *err);
/* With --imatrix, after qnt_plan_apply: the profile's "imatrix_rules" (prof may be NULL). */
qf_status qnt_plan_apply_imatrix(cvt_plan *p, const qnt_profile *prof, const qnt_rule *rules, size_t nrules,
				 qf_err *err);

/*
 * Hugging Face output: sets every item's scheme from --keep/--type rules (a
 * rule's format is then a scheme name, see qnt_hf_rule_parse) and the profile.
 * Routers, norms, embeddings and 1-D tensors keep the source's type (FP8 is
 * dequantized); a tensor whose row the scheme cannot hold (a group that does
 * not divide it) is kept and marked fallback; an FP8 source whose scheme is its
 * own layout is copied byte for byte.
 */
qf_status qnt_hf_plan_apply(cvt_hf_plan *p, const qnt_profile *prof, const qnt_rule *rules,
			    const cvt_hf_scheme *rule_sch, size_t nrules, qf_err *err);
/* "REGEX=SCHEME" (or REGEX for keep): compiles the pattern into r and the scheme into *sch. */
qf_status qnt_hf_rule_parse(const char *arg, int keep, qnt_rule *r, cvt_hf_scheme *sch, qf_err *err);

#endif
