/*
 * ggml block quantizers: known answers, error bounds, and — when llama.cpp's
 * prebuilt libggml-base.so is installed (tests/oracle, from npm) — byte-for-byte
 * equality with its quantize_row_*_ref on many blocks.
 */
#include "config.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dtype.h"
#include "formats/ggml_quants.h"
#include "tests/tap.h"
#include "tests/util.h"

/*
 * Named error bounds: |x - dequant(quant(x))| <= factor·d + qmax·δ(d) + δ(m), δ = f16 rounding,
 * where d is the block scale (rounded to f16 after the quants were chosen with the
 * f32 d: each of up to qmax steps can be off by d's f16 rounding) and m the f16 min.
 */
#define Q8_0_MAX_ERR_OF_D 0.5001
#define Q4_0_MAX_ERR_OF_D 1.0001  /* rounding ≤ d/2; the clamp of +8 to 7 costs up to d */
#define Q4_1_MAX_ERR_OF_D 0.5001
#define F16_REL 0x1p-11

typedef void (*ref_fn)(const float *, void *, int64_t);

/* Test data: blocks of different characters. */
static void fill(float *x, int64_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (int64_t b = 0; b < n / 32; b++) {
		int kind = (int)(b % 8);
		for (int j = 0; j < 32; j++) {
			float r = tu_randf(&s);
			float v;
			switch (kind) {
			case 0: v = r; break;
			case 1: v = r * 1e-3f; break;
			case 2: v = 0.0f; break;                          /* all zero */
			case 3: v = (float)((int)(r * 8)) * 0.25f; break; /* ties */
			case 4: v = j == 5 ? -3.0f : r; break;            /* negative extreme */
			case 5: v = r * 65000.0f; break;                  /* near f16 range */
			case 6: v = (float)(j - 16); break;
			default: v = r * r * r * 0.02f; break;            /* heavy centre */
			}
			x[b * 32 + j] = v;
		}
	}
}

static void check_bound(const char *name, qf_dtype t, double factor, double qmax, const float *x,
			int64_t n)
{
	const qf_dtype_traits *tr = qf_dtype_info(t);
	uint8_t *q = malloc((size_t)(n / 32) * tr->block_bytes);
	float *y = malloc((size_t)n * sizeof *y);
	tr->from_f32(x, q, n);
	tr->to_f32(q, y, n);
	int bad = 0;
	for (int64_t b = 0; b < n / 32; b++) {
		const uint8_t *blk = q + b * tr->block_bytes;
		uint16_t dh;
		memcpy(&dh, blk, 2);
		double d = fabs(qf_f16_to_f32(dh)), m = 0;
		if (t == QF_Q4_1) {
			memcpy(&dh, blk + 2, 2);
			m = fabs(qf_f16_to_f32(dh));
		}
		/* f16 rounding: relative 2^-11, or absolute 2^-25 among subnormals */
		double bound = factor * d + qmax * (d * F16_REL + 0x1p-25) + m * F16_REL + 0x1p-25;
		for (int j = 0; j < 32; j++) {
			double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
			if (e > bound)
				bad++;
		}
	}
	is_int(0, bad, "%s: quantize→dequantize error within %.2f×d on %lld values", name, factor,
	       (long long)n);
	free(q);
	free(y);
}

int main(void)
{
	plan_lazy();
	float x[32];
	for (int j = 0; j < 32; j++)
		x[j] = (float)(j - 16);

	/* known answers for x = j - 16 */
	qf_block_q8_0 b8;
	qf_quant_q8_0_ref(x, &b8, 32);
	is_int(qf_f32_to_f16(16.0f / 127.0f), b8.d, "q8_0: d = amax/127 stored as f16");
	is_int(-127, b8.qs[0], "q8_0: -16 → -127");
	is_int(119, b8.qs[31], "q8_0: 15 → round(15·127/16) = 119");
	is_int(8, b8.qs[17], "q8_0: 1 → round(7.9375) = 8");
	qf_block_q4_0 b4;
	qf_quant_q4_0_ref(x, &b4, 32);
	is_int(qf_f32_to_f16(2.0f), b4.d, "q4_0: d = max/-8 = 2 (max is the signed -16)");
	is_int(0x80, b4.qs[0], "q4_0: qs[0] = q(-16)=0 | q(0)=8 << 4");
	is_int(0xf8, b4.qs[15], "q4_0: qs[15] = q(-1)=8 | q(15)=16→15 (clamped) << 4");
	qf_block_q4_1 b41;
	qf_quant_q4_1_ref(x, &b41, 32);
	is_int(qf_f32_to_f16(31.0f / 15.0f), b41.d, "q4_1: d = (15 - -16)/15 stored as f16");
	is_int(qf_f32_to_f16(-16.0f), b41.m, "q4_1: m = min");
	qf_block_mxfp4 bm;
	qf_quant_mxfp4_ref(x, &bm, 32);
	is_int(127 + 4 - 2, bm.e, "mxfp4: e = floor(log2 16) - 2 + 127");
	float y[32];
	qf_dequant_mxfp4(&bm, y, 32);
	is_double(-16.0, y[0], 0, "mxfp4: -16 is exactly representable (-12·2^(e-128)·… = -16)");
	memset(x, 0, sizeof x);
	qf_quant_q8_0_ref(x, &b8, 32);
	ok(b8.d == 0 && b8.qs[0] == 0 && b8.qs[31] == 0, "q8_0: an all-zero block is all zero");

	enum { N = 32 * 4096 };
	float *data = malloc(N * sizeof *data);
	fill(data, N, 42);
	check_bound("q8_0", QF_Q8_0, Q8_0_MAX_ERR_OF_D, 127, data, N);
	check_bound("q4_0", QF_Q4_0, Q4_0_MAX_ERR_OF_D, 8, data, N);
	check_bound("q4_1", QF_Q4_1, Q4_1_MAX_ERR_OF_D, 15, data, N);

	/* the AVX2 kernels (when this CPU has AVX2) write the reference's bytes */
	{
		enum { NT = 32 * 2048 };
		float *tx = malloc(NT * sizeof *tx);
		fill(tx, NT, 7);
		/* exact ties for q8_0: amax 127 → d = 1, values k + 0.5; for q4_0 x·id + 8.5 on integers */
		for (int b = 0; b < 64; b++)
			for (int j = 0; j < 32; j++)
				tx[b * 32 + j] = j == 0 ? 127.0f : (float)((j * 7 + b) % 200 - 100) + 0.5f;
		for (int b = 64; b < 128; b++)
			for (int j = 0; j < 32; j++)
				tx[b * 32 + j] = j == 3 ? -8.0f : (float)((j + b) % 16 - 8) * (b & 1 ? 1.0f : -1.0f);
		static const struct { const char *name; void (*fast)(const float *, void *, int64_t);
				      void (*ref)(const float *, void *, int64_t); size_t bb; } ks[] = {
			{ "q8_0", qf_quant_q8_0, qf_quant_q8_0_ref, sizeof(qf_block_q8_0) },
			{ "q4_0", qf_quant_q4_0, qf_quant_q4_0_ref, sizeof(qf_block_q4_0) },
		};
		for (int k = 0; k < 2; k++) {
			size_t nb = (size_t)(NT / 32) * ks[k].bb;
			uint8_t *a = malloc(nb), *b = malloc(nb);
			memset(a, 0xAA, nb);
			memset(b, 0x55, nb);
			ks[k].fast(tx, a, NT);
			ks[k].ref(tx, b, NT);
			ok(memcmp(a, b, nb) == 0, "%s: optimized kernel (%s) equals the scalar reference on %d blocks with ties",
			   ks[k].name, qf_cpu_has_avx2() ? "AVX2" : "portable", NT / 32);
			free(a);
			free(b);
		}
		free(tx);
	}

	/* bit-identity with llama.cpp's own reference quantizers */
	void *h = dlopen(tu_oracle_lib("libggml-base.so"), RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = "llama.cpp oracle absent (npm @node-llama-cpp/linux-x64 in tests/oracle; run .ci/oracle.sh)";
		skip(why, "q8_0 bit-identical to quantize_row_q8_0_ref");
		skip(why, "q4_0 bit-identical to quantize_row_q4_0_ref");
		skip(why, "q4_1 bit-identical to quantize_row_q4_1_ref");
		skip(why, "mxfp4 bit-identical to quantize_row_mxfp4_ref");
	} else {
		static const struct { const char *sym; qf_dtype t; } fs[] = {
			{ "quantize_row_q8_0_ref", QF_Q8_0 },
			{ "quantize_row_q4_0_ref", QF_Q4_0 },
			{ "quantize_row_q4_1_ref", QF_Q4_1 },
			{ "quantize_row_mxfp4_ref", QF_MXFP4 },
		};
		for (size_t i = 0; i < 4; i++) {
			ref_fn theirs = (ref_fn)dlsym(h, fs[i].sym);
			const qf_dtype_traits *tr = qf_dtype_info(fs[i].t);
			size_t nb = (size_t)(N / 32) * tr->block_bytes;
			uint8_t *a = malloc(nb), *b = malloc(nb);
			memset(a, 0xAA, nb);
			memset(b, 0x55, nb);
			tr->from_f32(data, a, N);
			if (theirs)
				theirs(data, b, N);
			size_t diff = 0;
			for (size_t k = 0; k < nb; k++)
				diff += a[k] != b[k];
			ok(theirs && diff == 0, "%s bit-identical to llama.cpp %s on %d blocks (%zu bytes differ)",
			   tr->ggml_name, fs[i].sym, N / 32, diff);
			free(a);
			free(b);
		}
		dlclose(h);
	}
	free(data);
	return tap_failures() ? 1 : 0;
}
