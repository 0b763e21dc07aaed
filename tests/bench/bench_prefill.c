/*
 * bench_prefill — prompt processing, qforge's forward pass against llama.cpp
 * on the same GGUF, the same threads and the same context, in one run:
 * CHUNKS chunks of CTX tokens each, logits of positions CTX/2 … CTX−2 as
 * qforge verify (and llama-perplexity) score them.  llama.cpp is the npm
 * prebuilt libllama (tests/oracle), dlopen'ed, timed around llama_decode of
 * one batch of CTX tokens per chunk with its memory cleared in between.
 * Also the machine's fp32 peak (FMA chains on every thread) in the same
 * run, and qforge's GFLOP/s against it.
 *
 * usage: bench_prefill GGUF THREADS CTX CHUNKS [qforge|llama|both]
 * QF_BENCH_LLAMA_CPU picks llama.cpp's CPU build (default: the best this CPU
 * runs: sapphirerapids, icelake, skylakex or haswell).
 */
#include "config.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward/forward.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (all threads): on a shared machine, wall time is not ours. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the fp32 peak: 12 independent FMA chains per thread ------------------------------ */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define R(i) __m512 a##i = _mm512_set1_ps(1.0f + (float)i * 1e-7f);
#define F(i) a##i = _mm512_fmadd_ps(a##i, m, b);
#define S(i) _mm512_storeu_ps(v, a##i), s += v[0];
__attribute__((target("avx512f"))) static void *peak_fn(void *arg)
{
	R(0) R(1) R(2) R(3) R(4) R(5) R(6) R(7) R(8) R(9) R(10) R(11)
	__m512 m = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
	for (long k = 0; k < 20000000; k++) {
		F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)
	}
	float v[16], s = 0;
	S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)
	*(float *)arg = s;
	return NULL;
}
#endif

/* GFLOP/s of fp32 FMAs on `threads` threads at once (0 without AVX-512). */
static double fp32_peak(int threads)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f"))
		return 0;
	pthread_t t[256];
	float sink[256];
	double t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, peak_fn, &sink[i]);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	return 20000000.0 * 12 * 16 * 2 * threads / (now() - t0) / 1e9;
#else
	return 0;
#endif
}

/* Multiply-adds ×2 of one chunk: weights × tokens, attention pairs, the head at n_want positions. */
static double chunk_flops(const fwd_hparams *h, int64_t T, int64_t n_want)
{
	double H = (double)h->hidden, per_tok = 0, attn = 0;
	for (int64_t l = 0; l < h->n_layer; l++) {
		if (!h->deepseek) {
			double kv = (double)(h->n_head_kv * h->head_dim);
			per_tok += H * H * 2 + 2 * H * kv + 3 * H * (double)h->ff;
			attn += (double)h->n_head * (double)(T * (T + 1) / 2) * 2.0 * (double)h->head_dim;
			continue;
		}
		double qk = (double)(h->nope + h->rope_dim), nh = (double)h->n_head, C = (double)h->kv_lora;
		per_tok += h->q_lora ? H * (double)h->q_lora + (double)h->q_lora * nh * qk : H * nh * qk;
		per_tok += H * (C + (double)h->rope_dim) + C * nh * (double)(h->nope + h->vdim) + nh * (double)h->vdim * H;
		int moe = h->n_exp > 0 && l >= h->first_dense;
		per_tok += moe ? 3 * H * (double)h->moe_ff * (double)(h->n_used + h->n_shared) + H * (double)h->n_exp
			       : 3 * H * (double)h->ff;
		attn += nh * (double)(T * (T + 1) / 2) * (qk + (double)h->vdim);
	}
	return 2.0 * (per_tok * (double)T + attn + (double)n_want * H * (double)h->vocab);
}

/* ---- llama.cpp ------------------------------------------------------------------------ */

typedef struct { unsigned char b[1024]; } opaque; /* by-value params: see tests/llama_oracle.h */
typedef struct llama_batch {
	int32_t n_tokens;
	int32_t *token;
	float *embd;
	int32_t *pos;
	int32_t *n_seq_id;
	int32_t **seq_id;
	int8_t *logits;
} llama_batch;

static void quiet(int level, const char *text, void *ud) { (void)level; (void)text; (void)ud; }

static void *sym(void *h, const char *n)
{
	void *p = dlsym(h, n);
	if (!p) {
		fprintf(stderr, "bench_prefill: libllama lacks %s\n", n);
		exit(1);
	}
	return p;
}

static const char *best_cpu(void)
{
	const char *e = getenv("QF_BENCH_LLAMA_CPU");
	if (e && *e)
		return e;
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		unsigned a, b, c, d;
		__asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
		if (d & (1u << 24)) /* AMX tiles */
			return "sapphirerapids";
		return __builtin_cpu_supports("avx512vbmi") ? "icelake" : "skylakex";
	}
#endif
	return "haswell";
}

/* Tokens/s of llama_decode over the chunks; 0 when llama.cpp is absent. */
static double run_llama(const char *gguf, int threads, int ctx, int chunks, const int32_t *tok, const char **variant,
			double *cpu_tps)
{
	const char *od = getenv("QF_ORACLE_DIR");
	char dir[4096], p[4400];
	snprintf(dir, sizeof dir, "%s/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64", od && *od ? od : QF_SRCDIR "/tests/oracle");
	snprintf(p, sizeof p, "%s/libggml-base.so", dir);
	void *hb = dlopen(p, RTLD_NOW | RTLD_GLOBAL);
	snprintf(p, sizeof p, "%s/libggml.v0.5.0.so", dir);
	void *hg = hb ? dlopen(p, RTLD_NOW | RTLD_GLOBAL) : NULL;
	snprintf(p, sizeof p, "%s/libllama.v0.5.0.so", dir);
	void *hl = hg ? dlopen(p, RTLD_NOW | RTLD_GLOBAL) : NULL;
	if (!hl) {
		fprintf(stderr, "bench_prefill: llama.cpp absent (%s): run .ci/oracle.sh\n", dir);
		return 0;
	}
	((void (*)(void (*)(int, const char *, void *), void *))sym(hl, "llama_log_set"))(quiet, NULL);
	*variant = best_cpu();
	snprintf(p, sizeof p, "%s/libggml-cpu-%s.so", dir, *variant);
	if (!((void *(*)(const char *))sym(hg, "ggml_backend_load"))(p)) {
		fprintf(stderr, "bench_prefill: cannot load %s\n", p);
		return 0;
	}
	((void (*)(void))sym(hl, "llama_backend_init"))();
	opaque mp = ((opaque (*)(void))sym(hl, "llama_model_default_params"))();
	void *model = ((void *(*)(const char *, opaque))sym(hl, "llama_model_load_from_file"))(gguf, mp);
	if (!model) {
		fprintf(stderr, "bench_prefill: llama.cpp cannot load %s\n", gguf);
		return 0;
	}
	opaque cp = ((opaque (*)(void))sym(hl, "llama_context_default_params"))();
	uint32_t n = (uint32_t)ctx; /* llama_context_params opens with n_ctx, n_batch, n_ubatch */
	for (int k = 0; k < 3; k++)
		memcpy(cp.b + 4 * k, &n, 4);
	void *c = ((void *(*)(void *, opaque))sym(hl, "llama_init_from_model"))(model, cp);
	if (!c) {
		fprintf(stderr, "bench_prefill: llama.cpp cannot make a context of %d\n", ctx);
		return 0;
	}
	((void (*)(void *, int32_t, int32_t))sym(hl, "llama_set_n_threads"))(c, threads, threads);
	llama_batch (*binit)(int32_t, int32_t, int32_t) = (llama_batch (*)(int32_t, int32_t, int32_t))sym(hl, "llama_batch_init");
	int32_t (*decode)(void *, llama_batch) = (int32_t (*)(void *, llama_batch))sym(hl, "llama_decode");
	void *(*get_mem)(void *) = (void *(*)(void *))sym(hl, "llama_get_memory");
	void (*clear)(void *, bool) = (void (*)(void *, bool))sym(hl, "llama_memory_clear");
	llama_batch b = binit(ctx, 0, 1);
	double t = 0, cpu = 0;
	for (int k = -1; k < chunks; k++) { /* chunk −1 warms up */
		int ck = k < 0 ? 0 : k;
		b.n_tokens = ctx;
		for (int i = 0; i < ctx; i++) {
			b.token[i] = tok[(size_t)ck * (size_t)ctx + (size_t)i];
			b.pos[i] = i;
			b.n_seq_id[i] = 1;
			b.seq_id[i][0] = 0;
			b.logits[i] = i >= ctx / 2 && i <= ctx - 2;
		}
		clear(get_mem(c), true);
		double t0 = now(), c0 = cpu_now();
		if (decode(c, b) != 0) {
			fprintf(stderr, "bench_prefill: llama_decode failed\n");
			return 0;
		}
		if (k >= 0) {
			t += now() - t0;
			cpu += cpu_now() - c0;
		}
	}
	((void (*)(llama_batch))sym(hl, "llama_batch_free"))(b);
	((void (*)(void *))sym(hl, "llama_free"))(c);
	((void (*)(void *))sym(hl, "llama_model_free"))(model);
	*cpu_tps = (double)chunks * ctx / cpu;
	return (double)chunks * ctx / t;
}

/* ---- qforge --------------------------------------------------------------------------- */

static double run_qforge(fwd_model *m, int ctx, int chunks, const int32_t *tok, double *gflops, double *cpu_tps)
{
	const fwd_hparams *h = fwd_model_hparams(m);
	int64_t first = ctx / 2, ns = ctx - 1 - first;
	int64_t *want = malloc((size_t)ns * sizeof *want);
	float *lg = malloc((size_t)(ns * h->vocab) * sizeof *lg);
	for (int64_t j = 0; j < ns; j++)
		want[j] = first + j;
	double t = 0, cpu = 0;
	qf_err err = { { 0 } };
	for (int k = -1; k < chunks; k++) {
		double t0 = now(), c0 = cpu_now();
		if (fwd_forward(m, tok + (size_t)(k < 0 ? 0 : k) * (size_t)ctx, ctx, want, ns, lg, &err)) {
			fprintf(stderr, "bench_prefill: %s\n", err.msg);
			exit(1);
		}
		if (k >= 0) {
			t += now() - t0;
			cpu += cpu_now() - c0;
		}
	}
	*cpu_tps = (double)chunks * ctx / cpu;
	*gflops = chunk_flops(h, ctx, ns) * chunks / t / 1e9;
	free(want);
	free(lg);
	return (double)chunks * ctx / t;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_prefill GGUF THREADS CTX CHUNKS [qforge|llama|both]\n");
		return 2;
	}
	const char *gguf = argv[1], *which = argc > 5 ? argv[5] : "both";
	int threads = atoi(argv[2]), ctx = atoi(argv[3]), chunks = atoi(argv[4]);
	fwd_model *m = NULL;
	qf_err err = { { 0 } };
	if (fwd_model_open(gguf, threads, 1ull << 40, &m, &err)) {
		fprintf(stderr, "bench_prefill: %s\n", err.msg);
		return 1;
	}
	const fwd_hparams *h = fwd_model_hparams(m);
	int32_t *tok = malloc((size_t)chunks * (size_t)ctx * sizeof *tok);
	uint64_t r = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < (size_t)chunks * (size_t)ctx; i++) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		tok[i] = (int32_t)(r % (uint64_t)h->vocab);
	}
	double peak = fp32_peak(threads), gf = 0, q = 0, l = 0, qc = 0, lc = 0;
	const char *variant = "-";
	if (strcmp(which, "llama"))
		q = run_qforge(m, ctx, chunks, tok, &gf, &qc);
	fwd_model_free(m);
	if (strcmp(which, "qforge"))
		l = run_llama(gguf, threads, ctx, chunks, tok, &variant, &lc);
	double peak2 = fp32_peak(threads);
	peak = peak2 > peak ? peak2 : peak;
	printf("%s: %d threads, ctx %d, %d chunks\n", gguf, threads, ctx, chunks);
	printf("  fp32 peak (FMA chains, %d threads): %.1f GFLOP/s\n", threads, peak);
	if (q > 0)
		printf("  qforge forward:     %8.1f tokens/s  %8.1f tokens per CPU-second  %6.1f GFLOP/s  (%.0f%% of peak)\n", q, qc,
		       gf, peak > 0 ? 100 * gf / peak : 0);
	if (l > 0)
		printf("  llama.cpp (%s): %8.1f tokens/s  %8.1f tokens per CPU-second\n", variant, l, lc);
	if (q > 0 && l > 0)
		printf("  ratio qforge / llama.cpp: %.2f wall, %.2f per CPU-second (llama.cpp's workers spin while they wait)\n",
		       q / l, qc / lc);
	free(tok);
	return 0;
}
