/*
 * bench_tokenize — MB/s of text encoded on one thread by both tokenizer
 * families, on the evaluation text repeated to at least 10 MB.  `make bench`.
 * usage: bench_tokenize SRCDIR
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/textfile.h"
#include "formats/tokenizer.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	const char *src = argc > 1 ? argv[1] : ".";
	char p[4096];
	qf_err err = { { 0 } };
	char *text;
	size_t len;
	snprintf(p, sizeof p, "%s/tests/data/eval-a.txt", src);
	if (qf_text_read(p, &text, &len, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	size_t reps = (10u << 20) / len + 1, big = reps * len;
	char *t = malloc(big);
	for (size_t i = 0; i < reps; i++)
		memcpy(t + i * len, text, len);
	static const char *const models[] = { "tiny-dsv3", "stories260k-hf" };
	printf("tokenizer                      MB      tokens     s      MB/s\n");
	for (int m = 0; m < 2; m++) {
		qf_tok *tk = NULL;
		snprintf(p, sizeof p, "%s/models/%s", src, models[m]);
		if (qf_tok_from_dir(p, &tk, &err)) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		qf_tok_piece *out = NULL;
		size_t n = 0;
		double t0 = now();
		if (qf_tok_encode(tk, t, big, 1, &out, &n, &err)) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		double s = now() - t0;
		printf("%-17s %-12s %5.1f %10zu %6.2f %8.1f\n", models[m], qf_tok_kind(tk)[0] == 'b' ? "byte-level" : "SentencePiece",
		       (double)big / 1e6, n, s, (double)big / 1e6 / s);
		free(out);
		qf_tok_free(tk);
	}
	free(t);
	free(text);
	return 0;
}
