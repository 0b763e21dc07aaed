/*
 * llama_quantize — llama.cpp's llama_model_quantize (npm libllama, via
 * tests/llama_oracle.h) as a command, for the K-quant benchmark.
 * usage: llama_quantize IN.gguf OUT.gguf FTYPE THREADS
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "tests/llama_oracle.h"

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: llama_quantize IN.gguf OUT.gguf FTYPE THREADS\n");
		return 2;
	}
	char why[8192];
	tl_llama *L = tl_llama_open(why, sizeof why);
	if (!L) {
		fprintf(stderr, "%s\n", why);
		return 77;
	}
	int rc = tl_llama_quantize(L, argv[1], argv[2], atoi(argv[3]), atoi(argv[4]));
	tl_llama_close(L);
	return rc;
}
