/*
 * bench_kernels — conversion kernels in GB/s of output next to a memcpy of
 * the same output bytes, one thread, same run.  Not a test: `make bench`.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/dtype.h"
#include "formats/qformat.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define N (16 * 1024 * 1024) /* elements per pass: 64 MiB of f32 output */
#define REPS 8

static float *out, *out2;
static uint8_t *src;
static const float *scales; /* one per 128x128 block of a [N/4096, 4096] FP8 weight */

static void k_memcpy(void) { memcpy(out2, out, (size_t)N * 4); }
static void k_bf16(void) { qf_row_bf16_to_f32(src, out, N); }
static void k_f16(void) { qf_row_f16_to_f32(src, out, N); }
static void k_f16_scalar(void) { qf_row_f16_to_f32_scalar(src, out, N); }
static void k_fp8(void)
{
	/* FP8 + 128x128 block scale, as convert does it: LUT decode, multiply */
	const float *lut = qf_e4m3_table();
	const int64_t cols = 4096, rows = N / cols;
	for (int64_t r = 0; r < rows; r++) {
		const uint8_t *s = src + r * cols;
		float *d = out + r * cols;
		const float *sc = scales + (r / 128) * (cols / 128);
		for (int64_t c0 = 0; c0 < cols; c0 += 128) {
			float f = sc[c0 / 128];
			for (int64_t c = c0; c < c0 + 128; c++)
				d[c] = lut[s[c]] * f;
		}
	}
}

/* ---- quantizers: rows of 4096 f32 in, GB/s of f32 consumed ---- */
#define QC 4096
static float *qin;
static uint8_t *qout, *qcomp[2];
static qf_dtype cur_fmt;

static void k_quant(void)
{
	int64_t shape[2] = { N / QC, QC };
	int64_t units = qf_fmt_units(cur_fmt, 2, shape);
	for (int64_t u = 0; u < units; u++) {
		int64_t r0, n;
		qf_fmt_unit_rows(cur_fmt, 2, shape, u, &r0, &n);
		uint8_t *co[2] = { qcomp[0] + qf_fmt_comp_offset(cur_fmt, 0, 2, shape, r0),
				   qcomp[1] + (qf_fmt_ncomp(cur_fmt, 1) > 1 ? qf_fmt_comp_offset(cur_fmt, 1, 2, shape, r0) : 0) };
		if (cur_fmt == QF_FP8_B128 || qf_fmt_ncomp(cur_fmt, 1) == 0)
			co[0] = qf_fmt_ncomp(cur_fmt, 1) ? co[0] : NULL;
		qf_fmt_encode(cur_fmt, 1, qin + r0 * QC, n, QC, qout + qf_fmt_main_offset(cur_fmt, 1, QC, r0), co);
	}
}

/* importance-weighted encoders (--imatrix): one row at a time, the same weights for every row */
static float *qweights;

static void k_quant_w(void)
{
	const qf_dtype_traits *tr = qf_dtype_info(cur_fmt);
	size_t rb = (size_t)(QC / tr->block_elems) * tr->block_bytes;
	for (int64_t r = 0; r < N / QC; r++)
		tr->from_f32_w(qin + r * QC, qout + (size_t)r * rb, QC, qweights);
}

/* bf16 source → q8_0, row by row through an f32 row buffer (what quantize does) */
static void k_bf16_q8(void)
{
	static float row[QC];
	for (int64_t r = 0; r < N / QC; r++) {
		qf_row_bf16_to_f32(src + r * QC * 2, row, QC);
		uint8_t *co[2] = { NULL, NULL };
		qf_fmt_encode(QF_Q8_0, 0, row, 1, QC, qout + qf_fmt_main_offset(QF_Q8_0, 0, QC, r), co);
	}
}

static double run(void (*fn)(void))
{
	double best = 1e9;
	fn();
	for (int i = 0; i < REPS; i++) {
		double t = now();
		fn();
		t = now() - t;
		if (t < best)
			best = t;
	}
	return (double)N * 4 / best / 1e9; /* GB/s of f32 output */
}

int main(void)
{
	out = malloc((size_t)N * 4);
	out2 = malloc((size_t)N * 4);
	src = malloc((size_t)N * 2);
	float *sc = malloc((size_t)(N / 4096 / 128 + 1) * 32 * sizeof *sc);
	for (size_t i = 0; i < (size_t)N * 2; i++)
		src[i] = (uint8_t)(i * 2654435761u >> 13);
	for (size_t i = 0; i < (size_t)(N / 4096 / 128 + 1) * 32; i++)
		sc[i] = 1.0f / (float)(i + 1);
	scales = sc;
	memset(out, 1, (size_t)N * 4);
	double m = run(k_memcpy);
	printf("kernel                      GB/s(f32 out)  ratio vs memcpy\n");
	printf("memcpy (same bytes)         %8.2f       1.00\n", m);
	struct { const char *name; void (*fn)(void); } ks[] = {
		{ "bf16 -> f32", k_bf16 },
		{ "f16 -> f32 (F16C if avail)", k_f16 },
		{ "f16 -> f32 (portable)", k_f16_scalar },
		{ "fp8 e4m3 x block scale", k_fp8 },
	};
	for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
		double g = run(ks[i].fn);
		printf("%-27s %8.2f       %.2f\n", ks[i].name, g, g / m);
	}
	qin = malloc((size_t)N * 4);
	qout = malloc((size_t)N * 4);
	qcomp[0] = malloc((size_t)N);
	qcomp[1] = malloc((size_t)N);
	uint64_t s = 1;
	for (size_t i = 0; i < (size_t)N; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		qin[i] = (float)((int64_t)(s >> 11) - (INT64_C(1) << 52)) * 0x1p-52f * 0.05f;
	}
	printf("\nquantizer (f32 in)          GB/s(f32 in)   ratio vs memcpy\n");
	for (int f = 0; f < QF_DTYPE_COUNT; f++) {
		if (!qf_fmt_is_quant((qf_dtype)f))
			continue;
		cur_fmt = (qf_dtype)f;
		double g = run(k_quant);
		printf("%-27s %8.2f       %.2f\n", qf_dtype_info(cur_fmt)->fmt, g, g / m);
	}
	qweights = malloc(QC * sizeof *qweights);
	for (int j = 0; j < QC; j++)
		qweights[j] = 0.5f + (float)(j % 13) * 0.25f;
	for (int f = 0; f < QF_DTYPE_COUNT; f++) {
		if (!qf_dtype_info((qf_dtype)f)->from_f32_w)
			continue;
		cur_fmt = (qf_dtype)f;
		double g = run(k_quant_w);
		char name[64];
		snprintf(name, sizeof name, "%s + imatrix", qf_dtype_info(cur_fmt)->fmt);
		printf("%-27s %8.2f       %.2f\n", name, g, g / m);
	}
	free(qweights);
	double g = run(k_bf16_q8) / 2; /* run() counts f32 bytes; bf16 source is half */
	printf("%-27s %8.2f       %.2f   (GB/s of bf16 in)\n", "bf16 -> q8_0", g, g / m);
	free(qin); free(qout); free(qcomp[0]); free(qcomp[1]);
	free(out); free(out2); free(src); free(sc);
	return 0;
}
