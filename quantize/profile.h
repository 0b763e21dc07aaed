/*
 * profile.h — target-chip profiles and choosing each tensor's format.
 *
 * A profile is a JSON file:
 *
 *   { "name": "hopper-fp8", "description": "…", "output": "gguf" | "packed",
 *     "classes": { "attn": FORMAT, "expert": …, "shared_expert": …,
 *                  "dense_ffn": …, "embed": …, "output": … },
 *     "kv_b": "split" | "joined" }
 *
 * or, instead of "classes", a llama.cpp mix chosen tensor by tensor as
 * llama-quantize does (quantize/llama_mix.h):
 *
 *   { "name": "llamacpp-q4_k_m", "output": "gguf", "llama_ftype": "Q4_K_M" }
 *
 * "kv_b": "joined" keeps DeepSeek's kv_b_proj as one attn_kv_b (as
 * --legacy-kv-b), so its FP8 blocks stay the release's blocks.
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
#include "formats/qformat.h"

typedef struct qnt_profile {
	char name[64];
	char desc[256];
	int packed;                       /* preferred output */
	int kv_b_joined;                  /* write attn_kv_b unsplit */
	int llama_ftype;                  /* "llama_ftype": a llama.cpp mix (quantize/llama_mix.h), 0: classes */
	qf_dtype cls[CVT_CLASS_COUNT];     /* QF_DTYPE_NONE: unchanged */
	cJSON *json;                      /* the parsed file (owned) */
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

#endif
