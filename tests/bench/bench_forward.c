/*
 * bench_forward — the reference forward pass streaming its weights: tokens/s
 * and GB/s of weights read, next to memcpy of the same number of bytes in
 * the same run (the memory bound).  `tests/bench/forward.sh` runs it on a
 * generated full-width DeepSeek-V3 layer.
 * usage: bench_forward MODEL THREADS [PREFILL_TOKENS]
 */
#include "config.h"

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

/* CPU seconds of the process (all threads): on a shared machine, wall time is not all ours. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench_forward MODEL THREADS [PREFILL_TOKENS]\n");
		return 2;
	}
	int threads = atoi(argv[2]);
	int64_t T = argc > 3 ? atoll(argv[3]) : 64;
	fwd_model *m = NULL;
	qf_err err = { { 0 } };
	if (fwd_model_open(argv[1], threads, 0, &m, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	const fwd_hparams *h = fwd_model_hparams(m);
	int32_t *tok = malloc((size_t)T * sizeof *tok);
	for (int64_t i = 0; i < T; i++)
		tok[i] = (int32_t)((i * 7919 + 13) % h->vocab);
	float *lg = malloc((size_t)(T * h->vocab) * sizeof *lg);
	int64_t last = 0;
	/* one token at a time (decode-like: every active weight read per token) */
	double best = 1e9, cbest = 1e9;
	uint64_t per_tok = 0;
	for (int r = 0; r < 4; r++) {
		uint64_t b0 = fwd_model_streamed(m);
		double t0 = now(), c0 = cpu_now();
		if (fwd_forward(m, tok + r, 1, &last, 1, lg, &err)) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		double t = now() - t0, ct = cpu_now() - c0;
		per_tok = fwd_model_streamed(m) - b0;
		if (r > 0 && t < best)
			best = t;
		if (r > 0 && ct < cbest)
			cbest = ct;
	}
	/* memcpy of the same bytes */
	char *a = malloc(per_tok), *b = malloc(per_tok);
	memset(a, 1, per_tok);
	memset(b, 2, per_tok);
	double mbest = 1e9;
	for (int r = 0; r < 4; r++) {
		double t0 = now();
		memcpy(b, a, per_tok);
		double t = now() - t0;
		if (t < mbest)
			mbest = t;
	}
	free(a);
	free(b);
	double gbs = (double)per_tok / best / 1e9, mgbs = (double)per_tok / mbest / 1e9;
	printf("model: %lld layers, hidden %lld, %lld experts (%lld used), vocab %lld, weights %.2f GB (source bytes)\n",
	       (long long)h->n_layer, (long long)h->hidden, (long long)h->n_exp, (long long)h->n_used, (long long)h->vocab,
	       (double)fwd_model_weight_bytes(m) / 1e9);
	printf("threads %d\n", threads);
	printf("one token:   %.3f s/token (%.2f tokens/s), %.3f GB of weights read per token = %.2f GB/s; memcpy of the same bytes %.2f GB/s; ratio %.2f of the memory bound\n",
	       best, 1.0 / best, (double)per_tok / 1e9, gbs, mgbs, gbs / mgbs);
	printf("             %.3f CPU-seconds/token = %.2f GB of weights per CPU-second\n", cbest, (double)per_tok / cbest / 1e9);
	/* a chunk at once (prefill: weights read once per chunk) */
	int64_t *want = malloc((size_t)T * sizeof *want);
	for (int64_t i = 0; i < T; i++)
		want[i] = i;
	uint64_t b0 = fwd_model_streamed(m);
	double t0 = now(), c0 = cpu_now();
	if (fwd_forward(m, tok, T, want, T, lg, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	double t = now() - t0, ct = cpu_now() - c0;
	printf("chunk of %lld: %.2f s (%.2f tokens/s), %.3f GB of weights read = %.2f GB/s; %.2f CPU-seconds (%.2f tokens, %.2f GB per CPU-second)\n",
	       (long long)T, t, (double)T / t, (double)(fwd_model_streamed(m) - b0) / 1e9,
	       (double)(fwd_model_streamed(m) - b0) / t / 1e9, ct, (double)T / ct, (double)(fwd_model_streamed(m) - b0) / ct / 1e9);
	free(want);
	free(lg);
	free(tok);
	fwd_model_free(m);
	return 0;
}
