/*
 * gen_k256 — writes one of tests/gen_arch.h's checkpoints whose rows are
 * multiples of 256 (so llama.cpp's K-quant mixes really use K-quants).
 * usage: gen_k256 dsv3-k256|llama-k256 OUTDIR [SEED]   (default seed 1)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/gen_arch.h"

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: gen_k256 dsv3-k256|llama-k256 OUTDIR [SEED]\n");
		return 2;
	}
	for (int k = 0; k < GA_K256_COUNT; k++) {
		if (strcmp(argv[1], ga_k256_name((ga_k256)k)))
			continue;
		if (ga_gen_k256((ga_k256)k, argv[2], argc == 4 ? strtoull(argv[3], NULL, 0) : 1) != 0) {
			fprintf(stderr, "gen_k256: cannot write %s\n", argv[2]);
			return 4;
		}
		return 0;
	}
	fprintf(stderr, "gen_k256: unknown model '%s' (dsv3-k256, llama-k256)\n", argv[1]);
	return 2;
}
