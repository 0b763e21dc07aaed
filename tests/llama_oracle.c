#include "config.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/llama_oracle.h"
#include "tests/tap.h"
#include "tests/util.h"

typedef struct { unsigned char b[1024]; } opaque_params;
typedef struct llama_batch {
	int32_t n_tokens;
	int32_t *token;
	float *embd;
	int32_t *pos;
	int32_t *n_seq_id;
	int32_t **seq_id;
	int8_t *logits;
} llama_batch;

struct tl_llama {
	void *hb, *hg, *hl;
	opaque_params (*mdef)(void), (*cdef)(void), (*qdef)(void);
	void *(*mload)(const char *, opaque_params);
	void (*mfree)(void *);
	void *(*cinit)(void *, opaque_params);
	void (*cfree)(void *);
	const void *(*get_vocab)(const void *);
	int32_t (*n_tokens)(const void *);
	int32_t (*tokenize)(const void *, const char *, int32_t, int32_t *, int32_t, bool, bool);
	llama_batch (*binit)(int32_t, int32_t, int32_t);
	void (*bfree)(llama_batch);
	int32_t (*decode)(void *, llama_batch);
	float *(*logits_ith)(void *, int32_t);
	uint32_t (*quantize)(const char *, const char *, const opaque_params *);
};

static void quiet_log(int level, const char *text, void *ud) { (void)level; (void)text; (void)ud; }

void *tl_llama_sym(tl_llama *L, const char *name)
{
	void *p = dlsym(L->hl, name);
	if (!p)
		bail("llama.cpp oracle lacks %s", name);
	return p;
}

static void *gsym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (!p)
		bail("llama.cpp oracle lacks %s", name);
	return p;
}

tl_llama *tl_llama_open(char *why, size_t why_size)
{
	char dir[4096], p[4200];
	const char *od = getenv("QF_ORACLE_DIR");
	snprintf(dir, sizeof dir, "%s/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64",
		 od && *od ? od : tu_src("tests/oracle"));
	tl_llama *L = calloc(1, sizeof *L);
	if (!L)
		bail("out of memory");
	snprintf(p, sizeof p, "%s/libggml-base.so", dir);
	L->hb = dlopen(p, RTLD_NOW | RTLD_GLOBAL);
	snprintf(p, sizeof p, "%s/libggml.v0.5.0.so", dir);
	L->hg = L->hb ? dlopen(p, RTLD_NOW | RTLD_GLOBAL) : NULL;
	snprintf(p, sizeof p, "%s/libllama.v0.5.0.so", dir);
	L->hl = L->hg ? dlopen(p, RTLD_NOW | RTLD_GLOBAL) : NULL;
	if (!L->hl) {
		snprintf(why, why_size, "llama.cpp oracle absent (%s; run .ci/oracle.sh to install @node-llama-cpp/linux-x64 from npm)",
			 dir);
		free(L);
		return NULL;
	}
	void *(*load_one)(const char *) = (void *(*)(const char *))gsym(L->hg, "ggml_backend_load");
	void (*log_set)(void (*)(int, const char *, void *), void *) =
		(void (*)(void (*)(int, const char *, void *), void *))tl_llama_sym(L, "llama_log_set");
	log_set(quiet_log, NULL);
	snprintf(p, sizeof p, "%s/libggml-cpu-haswell.so", dir);
	if (!load_one(p)) {
		snprintf(p, sizeof p, "%s/libggml-cpu-x64.so", dir);
		if (!load_one(p))
			bail("llama.cpp oracle: cannot load a CPU backend from %s", dir);
	}
	((void (*)(void))tl_llama_sym(L, "llama_backend_init"))();
	L->mdef = (opaque_params (*)(void))tl_llama_sym(L, "llama_model_default_params");
	L->cdef = (opaque_params (*)(void))tl_llama_sym(L, "llama_context_default_params");
	L->qdef = (opaque_params (*)(void))tl_llama_sym(L, "llama_model_quantize_default_params");
	L->mload = (void *(*)(const char *, opaque_params))tl_llama_sym(L, "llama_model_load_from_file");
	L->mfree = (void (*)(void *))tl_llama_sym(L, "llama_model_free");
	L->cinit = (void *(*)(void *, opaque_params))tl_llama_sym(L, "llama_init_from_model");
	L->cfree = (void (*)(void *))tl_llama_sym(L, "llama_free");
	L->get_vocab = (const void *(*)(const void *))tl_llama_sym(L, "llama_model_get_vocab");
	L->n_tokens = (int32_t (*)(const void *))tl_llama_sym(L, "llama_vocab_n_tokens");
	L->tokenize = (int32_t (*)(const void *, const char *, int32_t, int32_t *, int32_t, bool, bool))
		tl_llama_sym(L, "llama_tokenize");
	L->binit = (llama_batch (*)(int32_t, int32_t, int32_t))tl_llama_sym(L, "llama_batch_init");
	L->bfree = (void (*)(llama_batch))tl_llama_sym(L, "llama_batch_free");
	L->decode = (int32_t (*)(void *, llama_batch))tl_llama_sym(L, "llama_decode");
	L->logits_ith = (float *(*)(void *, int32_t))tl_llama_sym(L, "llama_get_logits_ith");
	L->quantize = (uint32_t (*)(const char *, const char *, const opaque_params *))tl_llama_sym(L, "llama_model_quantize");
	return L;
}

tl_llama *tl_llama_open_tap(const char *what)
{
	char why[8192];
	tl_llama *L = tl_llama_open(why, sizeof why);
	if (!L) {
		if (tu_ci())
			ok(0, "%s (CI=true: a missing oracle is a failure)", why);
		else
			skip(why, "%s", what);
	}
	return L;
}

void tl_llama_close(tl_llama *L)
{
	free(L); /* the libraries stay loaded: ggml keeps global state */
}

void *tl_llama_load(tl_llama *L, const char *gguf)
{
	return L->mload(gguf, L->mdef());
}

void tl_llama_free_model(tl_llama *L, void *model)
{
	if (model)
		L->mfree(model);
}

int tl_llama_n_vocab(tl_llama *L, void *model)
{
	return L->n_tokens(L->get_vocab(model));
}

int tl_llama_logits(tl_llama *L, void *model, const int32_t *tok, int n, float *out)
{
	opaque_params cp = L->cdef();
	/* llama_context_params opens with n_ctx, n_batch, n_ubatch (uint32_t) */
	uint32_t nctx = (uint32_t)n, nb[2];
	memcpy(nb, cp.b + 4, sizeof nb);
	memcpy(cp.b, &nctx, 4);
	for (int k = 0; k < 2; k++)
		if (nb[k] < (uint32_t)n)
			memcpy(cp.b + 4 + 4 * k, &nctx, 4);
	void *ctx = L->cinit(model, cp);
	if (!ctx)
		return -1;
	llama_batch b = L->binit(n, 0, 1);
	b.n_tokens = n;
	for (int i = 0; i < n; i++) {
		b.token[i] = tok[i];
		b.pos[i] = i;
		b.n_seq_id[i] = 1;
		b.seq_id[i][0] = 0;
		b.logits[i] = 1;
	}
	int rc = L->decode(ctx, b) != 0;
	int nv = tl_llama_n_vocab(L, model);
	for (int i = 0; rc == 0 && i < n; i++) {
		const float *lg = L->logits_ith(ctx, i);
		if (!lg)
			rc = -1;
		else
			memcpy(out + (size_t)i * (size_t)nv, lg, (size_t)nv * sizeof *out);
	}
	L->bfree(b);
	L->cfree(ctx);
	return rc;
}

int tl_llama_tokenize(tl_llama *L, void *model, const char *text, int len, int32_t *ids, int max,
		      int add_special, int parse_special)
{
	int32_t n = L->tokenize(L->get_vocab(model), text, len, ids, max, add_special != 0, parse_special != 0);
	return n < 0 ? -1 : n;
}

int tl_llama_quantize(tl_llama *L, const char *in, const char *out, int ftype, int nthread)
{
	return tl_llama_quantize_imatrix(L, in, out, ftype, nthread, NULL);
}

int tl_llama_quantize_imatrix(tl_llama *L, const char *in, const char *out, int ftype, int nthread,
			      const tl_imatrix_data *imatrix)
{
	return tl_llama_quantize_ex(L, in, out, ftype, nthread, imatrix, -1, -1);
}

int tl_llama_quantize_ex(tl_llama *L, const char *in, const char *out, int ftype, int nthread,
			 const tl_imatrix_data *imatrix, int output_type, int embd_type)
{
	/*
	 * llama_model_quantize_params (llama.h): int32_t nthread; enum ftype,
	 * output_tensor_type, token_embedding_type (GGML_TYPE_COUNT: the mix
	 * decides); six bools (allow_requantize, quantize_output_tensor = true,
	 * only_copy, pure, keep_split, dry_run); then the imatrix pointer at
	 * offset 24.  The defaults must look so.
	 */
	opaque_params qp = L->qdef();
	static const uint8_t bools[6] = { 0, 1, 0, 0, 0, 0 };
	void *none;
	int32_t types[2];
	memcpy(&none, qp.b + 24, sizeof none);
	memcpy(types, qp.b + 8, sizeof types);
	if ((imatrix || output_type >= 0 || embd_type >= 0) &&
	    (memcmp(qp.b + 16, bools, 6) != 0 || none != NULL || types[0] != types[1] || types[0] < 30))
		bail("llama_model_quantize_params is not laid out as llama.h says; cannot pass an imatrix or tensor types");
	int32_t v[2] = { nthread, ftype };
	memcpy(qp.b, v, sizeof v);
	if (output_type >= 0)
		memcpy(qp.b + 8, &output_type, sizeof output_type);
	if (embd_type >= 0)
		memcpy(qp.b + 12, &embd_type, sizeof embd_type);
	memcpy(qp.b + 24, &imatrix, sizeof imatrix);
	return L->quantize(in, out, &qp) != 0;
}

void tl_imatrix_data_free(tl_imatrix_data *d)
{
	for (size_t i = 0; d && d[i].name; i++) {
		free((void *)d[i].name);
		free((void *)d[i].data);
	}
	free(d);
}
