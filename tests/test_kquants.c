/*
 * K-quants (q2_k … q6_k) and q5_0/q5_1, plus the weighted q4_0/q4_1:
 * known answers from the format definitions, round-trip error bounds, and —
 * with llama.cpp's libggml-base.so from npm (tests/oracle) — byte identity
 * with quantize_row_*_ref and ggml_quantize_chunk (with and without an
 * importance matrix) and f32 identity of the decoders with dequantize_row_*.
 * Without the oracle those checks skip; under CI=true they fail.
 */
#include "config.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dtype.h"
#include "formats/ggml_kquants.h"
#include "formats/ggml_quants.h"
#include "tests/tap.h"
#include "tests/util.h"

/*
 * Round-trip bounds: sqrt(Σ(x − y)² / Σx²) over the smooth rows (sums of
 * uniforms, no outliers) of the test data, unweighted reference encoders.
 * Measured values are about 20 % below these.
 */
#define Q2_K_MAX_REL_RMSE 0.42
#define Q3_K_MAX_REL_RMSE 0.21
#define Q4_K_MAX_REL_RMSE 0.105
#define Q5_K_MAX_REL_RMSE 0.052
#define Q6_K_MAX_REL_RMSE 0.026
#define Q5_0_MAX_REL_RMSE 0.060
#define Q5_1_MAX_REL_RMSE 0.050
#define Q4_0_MAX_REL_RMSE 0.13
#define Q4_1_MAX_REL_RMSE 0.11

typedef void (*enc_fn)(const float *, void *, int64_t);
typedef void (*dec_fn)(const void *, float *, int64_t);
typedef size_t (*chunk_fn)(int type, const float *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row,
			   const float *imatrix);

static const struct kq {
	const char *name;
	int ggml_type;
	int64_t blk;
	size_t bytes;
	enc_fn ref, fast; /* the scalar reference; the table's encoder (same bytes, AVX2 where it has it) */
	qf_from_f32_w_fn w;
	dec_fn dec;
	const char *their_ref, *their_dec;
	double max_rel_rmse;
} kqs[] = {
	{ "q2_k", 10, 256, sizeof(qf_block_q2_k), qf_quant_q2_k_ref, qf_quant_q2_k, qf_quant_q2_k_w, qf_dequant_q2_k,
	  "quantize_row_q2_K_ref", "dequantize_row_q2_K", Q2_K_MAX_REL_RMSE },
	{ "q3_k", 11, 256, sizeof(qf_block_q3_k), qf_quant_q3_k_ref, qf_quant_q3_k_ref, qf_quant_q3_k_w, qf_dequant_q3_k,
	  "quantize_row_q3_K_ref", "dequantize_row_q3_K", Q3_K_MAX_REL_RMSE },
	{ "q4_k", 12, 256, sizeof(qf_block_q4_k), qf_quant_q4_k_ref, qf_quant_q4_k, qf_quant_q4_k_w, qf_dequant_q4_k,
	  "quantize_row_q4_K_ref", "dequantize_row_q4_K", Q4_K_MAX_REL_RMSE },
	{ "q5_k", 13, 256, sizeof(qf_block_q5_k), qf_quant_q5_k_ref, qf_quant_q5_k, qf_quant_q5_k_w, qf_dequant_q5_k,
	  "quantize_row_q5_K_ref", "dequantize_row_q5_K", Q5_K_MAX_REL_RMSE },
	{ "q6_k", 14, 256, sizeof(qf_block_q6_k), qf_quant_q6_k_ref, qf_quant_q6_k, qf_quant_q6_k_w, qf_dequant_q6_k,
	  "quantize_row_q6_K_ref", "dequantize_row_q6_K", Q6_K_MAX_REL_RMSE },
	{ "q5_0", 6, 32, sizeof(qf_block_q5_0), qf_quant_q5_0_ref, qf_quant_q5_0_ref, qf_quant_q5_0_w, qf_dequant_q5_0,
	  "quantize_row_q5_0_ref", "dequantize_row_q5_0", Q5_0_MAX_REL_RMSE },
	{ "q5_1", 7, 32, sizeof(qf_block_q5_1), qf_quant_q5_1_ref, qf_quant_q5_1_ref, qf_quant_q5_1_w, qf_dequant_q5_1,
	  "quantize_row_q5_1_ref", "dequantize_row_q5_1", Q5_1_MAX_REL_RMSE },
	/* weighted variants only are new; the references are tested in test_ggml_quants */
	{ "q4_0", 2, 32, sizeof(qf_block_q4_0), qf_quant_q4_0_ref, qf_quant_q4_0, qf_quant_q4_0_w, qf_dequant_q4_0,
	  "quantize_row_q4_0_ref", "dequantize_row_q4_0", Q4_0_MAX_REL_RMSE },
	{ "q4_1", 3, 32, sizeof(qf_block_q4_1), qf_quant_q4_1_ref, qf_quant_q4_1_ref, qf_quant_q4_1_w, qf_dequant_q4_1,
	  "quantize_row_q4_1_ref", "dequantize_row_q4_1", Q4_1_MAX_REL_RMSE },
};
enum { NKQ = sizeof kqs / sizeof kqs[0] };

/* ---- test data ------------------------------------------------------------------- */

enum { NKIND = 18, KIND_SMOOTH = 1 };

/* Row r of width C, of kind r % NKIND: ordinary rows and the edge cases. */
static void fill_row(float *x, int64_t C, int64_t r, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)r;
	int kind = (int)(r % NKIND);
	int64_t spot = (int64_t)(tu_rand(&s) % (uint64_t)C);
	for (int64_t j = 0; j < C; j++) {
		float u = tu_randf(&s), v;
		switch (kind) {
		case 0: v = u; break;
		case 1: v = (u + tu_randf(&s) + tu_randf(&s) + tu_randf(&s)) * 0.5f; break; /* smooth */
		case 2: v = 0.0f; break;                                                  /* zeros */
		case 3: v = 0.5f; break;                                                  /* constant */
		case 4: v = -3.0f; break;                                                 /* negative constant */
		case 5: v = u * 1e-7f; break;                                             /* f16-subnormal scales */
		case 6: v = u * 1e-20f; break;                                            /* below every epsilon */
		case 7: v = u * 3e4f; break;                                              /* near f16 range */
		case 8: v = j == spot ? 5.0f : u * 0.01f; break;                          /* one outlier */
		case 9: v = -fabsf(u); break;                                             /* negative only */
		case 10: v = fabsf(u) + 0.1f; break;                                      /* positive only */
		case 11: v = (float)(int)(u * 8) * 0.25f; break;                          /* exact ties */
		case 12: v = u * u * u; break;                                            /* heavy centre */
		case 13: v = (j / 16) % 2 ? u : u * 1e-3f; break;                         /* sub-block contrasts */
		case 14: v = j % 17 == 0 ? u : 0.0f; break;                               /* sparse */
		case 15: v = (j / 32) % 3 == 0 ? 0.0f : u * (float)(1 + j / 32); break;   /* zero groups */
		case 16: v = j == spot ? -1e6f : u; break;                                /* huge outlier */
		default: v = (float)(j % 7) - 3.0f; break;                                /* small integers */
		}
		x[j] = v;
	}
}

/* Importance weights (Σx²/count per column): four shapes. */
static void fill_weights(float *w, int64_t C, int set)
{
	uint64_t s = 1000 + (uint64_t)set;
	for (int64_t j = 0; j < C; j++) {
		float u = tu_randf(&s);
		switch (set) {
		case 0: w[j] = 2.0f * (u + 1.0f) + 1e-3f; break;             /* (0, 4] */
		case 1: w[j] = j % 10 == 3 ? 0.0f : u * u; break;            /* some zero columns */
		case 2: w[j] = 1.0f; break;
		default: w[j] = j % 61 == 0 ? 1000.0f : 0.05f + u * u; break; /* spiky */
		}
	}
}

/* ---- known answers ----------------------------------------------------------------- */

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static void known_answers(void)
{
	float x[256], y[256];

	/* q5_0 on x = j − 16: max is the signed −16, d = −16/−16 = 1, codes L = x + 16 = j */
	for (int j = 0; j < 32; j++)
		x[j] = (float)(j - 16);
	qf_block_q5_0 b50;
	qf_quant_q5_0_ref(x, &b50, 32);
	is_hex(0x3c00, b50.d, "q5_0: d = max/−16 = 1.0 (f16 0x3c00)");
	ok(b50.qs[0] == 0x00 && b50.qs[5] == 0x55 && b50.qs[15] == 0xff, "q5_0: qs[j] = L[j] & 15 | (L[j+16] & 15) << 4");
	ok(b50.qh[0] == 0 && b50.qh[1] == 0 && b50.qh[2] == 0xff && b50.qh[3] == 0xff,
	   "q5_0: qh = the fifth bits, set for L ≥ 16 (values 16..31) → bytes 00 00 ff ff");
	qf_dequant_q5_0(&b50, y, 32);
	ok(memcmp(x, y, sizeof(float) * 32) == 0, "q5_0: d·(L − 16) gives back j − 16 exactly");

	/* q5_1 on x = j: d = (31 − 0)/31 = 1, m = 0, L = j */
	for (int j = 0; j < 32; j++)
		x[j] = (float)j;
	qf_block_q5_1 b51;
	qf_quant_q5_1_ref(x, &b51, 32);
	ok(b51.d == 0x3c00 && b51.m == 0 && b51.qs[1] == 0x11 && b51.qh[3] == 0xff,
	   "q5_1: d = (max − min)/31 = 1, m = min = 0, L = j");
	qf_dequant_q5_1(&b51, y, 32);
	ok(memcmp(x, y, sizeof(float) * 32) == 0, "q5_1: d·L + m gives back j exactly");

	/* a constant block of 1.0 */
	for (int j = 0; j < 256; j++)
		x[j] = 1.0f;
	/* q6_k: per 16, l = −32 (scale −1/32); super scale −128 ↔ −1/32 so d = 2^-12; L = l + 32 = 0 */
	qf_block_q6_k b6;
	qf_quant_q6_k_ref(x, &b6, 256);
	ok(b6.d == 0x0c00 && all_bytes((const uint8_t *)b6.scales, 16, 0x80) && all_bytes(b6.ql, 128, 0) &&
	   all_bytes(b6.qh, 64, 0), "q6_k: constant 1 → d = 2^-12, every scale −128, every code 0 (l = −32)");
	qf_dequant_q6_k(&b6, y, 256);
	ok(y[0] == 1.0f && y[255] == 1.0f, "q6_k: 2^-12 · −128 · (0 − 32) = 1 exactly");
	/* q3_k: l = −4 per 16 (scale −1/4), 6-bit code −32 + 32 = 0, d = 1/128; L = 0, no high bits */
	qf_block_q3_k b3;
	qf_quant_q3_k_ref(x, &b3, 256);
	ok(b3.d == 0x2000 && all_bytes(b3.scales, 12, 0) && all_bytes(b3.hmask, 32, 0) && all_bytes(b3.qs, 64, 0),
	   "q3_k: constant 1 → d = 2^-7, scale codes 0 (−32), codes 0 with no hmask bit (l = −4)");
	qf_dequant_q3_k(&b3, y, 256);
	ok(y[0] == 1.0f && y[255] == 1.0f, "q3_k: 2^-7 · (0 − 32) · (0 − 4) = 1 exactly");
	/* q4_k: min clamps to 0, L = 15 (scale 1/15), scale code 63, min code 0 */
	qf_block_q4_k b4;
	qf_quant_q4_k_ref(x, &b4, 256);
	ok(all_bytes(b4.scales, 4, 0xff) && all_bytes(b4.scales + 4, 4, 0) && all_bytes(b4.scales + 8, 4, 0x0f) &&
	   all_bytes(b4.qs, 128, 0xff) && b4.dmin == 0 && b4.d == qf_f32_to_f16((1.0f / 15.0f) / 63.0f),
	   "q4_k: constant 1 → codes 15, 6-bit scales 63 (split 4+2 bits), mins 0, d = f16((1/15)/63)");
	qf_dequant_q4_k(&b4, y, 256);
	is_double(1.0, y[17], 0x1p-10, "q4_k: d·63·15 ≈ 1 (f16 rounding of d)");
	/* q5_k: as q4_k with 31 */
	qf_block_q5_k b5;
	qf_quant_q5_k_ref(x, &b5, 256);
	ok(all_bytes(b5.qs, 128, 0xff) && all_bytes(b5.qh, 32, 0xff) && all_bytes(b5.scales, 4, 0xff) &&
	   b5.d == qf_f32_to_f16((1.0f / 31.0f) / 63.0f), "q5_k: constant 1 → codes 31 (every qh bit), scales 63");
	/* q2_k: codes 3 (scale 1/3), 4-bit scale 15, min 0 */
	qf_block_q2_k b2;
	qf_quant_q2_k_ref(x, &b2, 256);
	ok(all_bytes(b2.scales, 16, 0x0f) && all_bytes(b2.qs, 64, 0xff) && b2.dmin == 0 &&
	   b2.d == qf_f32_to_f16((1.0f / 3.0f) / 15.0f), "q2_k: constant 1 → codes 3, scale codes 15, mins 0");

	/* decoders from hand-made blocks */
	memset(&b4, 0, sizeof b4);
	b4.d = 0x3c00;    /* 1 */
	b4.dmin = 0x3800; /* 0.5 */
	b4.scales[1] = 2 | 1 << 6;  /* sub-block 1: scale 2; bit 4 of sub-block 5's scale */
	b4.scales[5] = 3;           /* sub-block 1: min 3 */
	b4.scales[9] = 0x4 | 0x7 << 4; /* sub-block 5: scale 4 | 16 = 20, min 7 */
	b4.qs[0] = 0x9 << 4;        /* value 32 (sub-block 1, high nibble) = 9 */
	b4.qs[64 + 5] = 0xb << 4;   /* value 160 + 5 (sub-block 5) = 11 */
	qf_dequant_q4_k(&b4, y, 256);
	ok(y[32] == 2.0f * 9 - 1.5f && y[165] == 20.0f * 11 - 3.5f && y[33] == -1.5f && y[0] == 0.0f,
	   "q4_k decode: y = d·sc·q − dmin·m with the 12-byte 6-bit scale packing (%g %g)", y[32], y[165]);
	memset(&b6, 0, sizeof b6);
	b6.d = 0x3c00;
	b6.scales[14] = -3;          /* sub-block 231/16 */
	b6.ql[64 + 32 + 7] = 0x5 << 4; /* value 128 + 96 + 7 → k = 3: high nibble of ql[64 + 32 + l] */
	b6.qh[32 + 7] = 2 << 6;        /* bits 6-7 of qh[32 + l] */
	qf_dequant_q6_k(&b6, y, 256);
	ok(y[231] == -3.0f * ((0x5 | 2 << 4) - 32) && y[230] == -3.0f * -32,
	   "q6_k decode: value 231 = d·scales[14]·(L − 32), L from ql[103] high nibble and qh[39] bits 6-7 (got %g)", y[231]);
}

/* ---- round-trip bounds --------------------------------------------------------------- */

static void round_trip(const struct kq *k, const float *x, int64_t R, int64_t C)
{
	uint8_t *q = malloc((size_t)(C / k->blk) * k->bytes);
	float *y = malloc((size_t)C * sizeof *y);
	double se = 0, sx = 0;
	for (int64_t r = KIND_SMOOTH; r < R; r += NKIND) {
		k->ref(x + r * C, q, C);
		k->dec(q, y, C);
		for (int64_t j = 0; j < C; j++) {
			double e = (double)x[r * C + j] - y[j];
			se += e * e;
			sx += (double)x[r * C + j] * x[r * C + j];
		}
	}
	double rel = sqrt(se / sx);
	ok(rel <= k->max_rel_rmse, "%s: round-trip relative RMS error %.4f ≤ %.3f", k->name, rel, k->max_rel_rmse);
	free(q);
	free(y);
}

/* With weights the weighted error Σ qw·(x − y)² falls (over the smooth rows). */
static void weighted_gain(const struct kq *k, const float *x, const float *qw, int64_t R, int64_t C)
{
	uint8_t *q = malloc((size_t)(C / k->blk) * k->bytes);
	float *y = malloc((size_t)C * sizeof *y);
	double e_ref = 0, e_w = 0;
	for (int64_t r = KIND_SMOOTH; r < R; r += NKIND) {
		k->ref(x + r * C, q, C);
		k->dec(q, y, C);
		for (int64_t j = 0; j < C; j++)
			e_ref += qw[j] * ((double)x[r * C + j] - y[j]) * ((double)x[r * C + j] - y[j]);
		k->w(x + r * C, q, C, qw);
		k->dec(q, y, C);
		for (int64_t j = 0; j < C; j++)
			e_w += qw[j] * ((double)x[r * C + j] - y[j]) * ((double)x[r * C + j] - y[j]);
	}
	ok(e_w < e_ref, "%s: importance weights lower the weighted error (%.4g → %.4g, %.1f%%)", k->name, e_ref, e_w,
	   100.0 * (e_w / e_ref - 1.0));
	free(q);
	free(y);
}

static size_t count_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t unit, long long *first)
{
	size_t d = 0;
	*first = -1;
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i]) {
			if (*first < 0)
				*first = (long long)(i / unit);
			d++;
		}
	}
	return d;
}

/* The table's encoders (AVX2 search where the CPU has it) write the reference's bytes. */
static void fast_is_ref(const float *x, int64_t R, int64_t C)
{
	for (int i = 0; i < NKQ; i++) {
		const struct kq *k = &kqs[i];
		if (k->fast == k->ref)
			continue;
		size_t nb = (size_t)(R * C / k->blk) * k->bytes;
		uint8_t *a = malloc(nb), *b = malloc(nb);
		memset(a, 0xAA, nb);
		memset(b, 0x55, nb);
		k->fast(x, a, R * C);
		k->ref(x, b, R * C);
		long long f;
		size_t d = count_diff(a, b, nb, k->bytes, &f);
		ok(d == 0, "%s: the %s encoder writes the scalar reference's bytes on %lld blocks of all %d row kinds (%zu differ, first block %lld)",
		   k->name, qf_cpu_has_avx2() ? "AVX2" : "portable", (long long)(R * C / k->blk), NKIND, d, f);
		free(a);
		free(b);
	}
}

/* ---- the traits table ------------------------------------------------------------------- */

typedef int64_t (*blck_fn)(int type);
typedef size_t (*tsize_fn)(int type);
typedef const char *(*tname_fn)(int type);

/* Every format is one row of the table: found by ggml id and by name, sized as its block. */
static void traits_rows(void *h)
{
	blck_fn blck = h ? (blck_fn)dlsym(h, "ggml_blck_size") : NULL;
	tsize_fn tsize = h ? (tsize_fn)dlsym(h, "ggml_type_size") : NULL;
	tname_fn tname = h ? (tname_fn)dlsym(h, "ggml_type_name") : NULL;
	int bad = 0, bad_ggml = 0;
	for (int i = 0; i < NKQ; i++) {
		const struct kq *k = &kqs[i];
		qf_dtype t = qf_dtype_from_ggml(k->ggml_type);
		const qf_dtype_traits *tr = qf_dtype_info(t);
		if (!tr || qf_fmt_from_name(k->name) != t || tr->block_elems != k->blk || tr->block_bytes != k->bytes ||
		    tr->to_f32 != k->dec || tr->from_f32 != k->fast || tr->from_f32_w != k->w || tr->gguf != t || tr->bcols != k->blk ||
		    !tr->need_div) {
			diag("%s: traits row does not match its codec", k->name);
			bad++;
			continue;
		}
		if (blck && tsize && tname &&
		    (blck(k->ggml_type) != k->blk || tsize(k->ggml_type) != k->bytes ||
		     strcmp(tname(k->ggml_type), tr->ggml_name) != 0)) {
			diag("%s: ggml says %lld values in %zu bytes, named %s", k->name, (long long)blck(k->ggml_type),
			     tsize(k->ggml_type), tname(k->ggml_type));
			bad_ggml++;
		}
	}
	is_int(0, bad, "each format is one traits row: ggml id, name, block geometry, codecs (%d formats)", NKQ);
	if (blck && tsize && tname)
		is_int(0, bad_ggml, "the rows agree with ggml's own type traits (block size, bytes, name)");
	else
		skip("llama.cpp oracle absent", "the rows agree with ggml's own type traits");
	is_int(0, qf_dtype_info(QF_Q8_0)->from_f32_w == NULL && qf_dtype_info(QF_MXFP4)->from_f32_w == NULL ? 0 : 1,
	       "q8_0 and mxfp4 have no weighted encoder (ggml ignores the imatrix for them)");
}

/* ---- the oracle ------------------------------------------------------------------------ */


typedef struct {
	int64_t C, R;
} geom;

static void against_oracle(void *h, const struct kq *k, const geom *g, int ng)
{
	enc_fn their_ref = (enc_fn)dlsym(h, k->their_ref);
	dec_fn their_dec = (dec_fn)dlsym(h, k->their_dec);
	chunk_fn chunk = (chunk_fn)dlsym(h, "ggml_quantize_chunk");
	int is_new = k->ggml_type != 2 && k->ggml_type != 3;
	long long rows = 0, rows_w = 0, blocks = 0;
	size_t d_ref = 0, d_chunk = 0, d_w = 0, d_dec = 0, d_rand = 0;
	long long f_ref = -1, f_chunk = -1, f_w = -1, f_dec = -1, f_rand = -1, f;
	for (int gi = 0; gi < ng; gi++) {
		int64_t C = g[gi].C, R = g[gi].R;
		if (C % k->blk)
			continue;
		size_t nb = (size_t)(R * C / k->blk) * k->bytes, n = (size_t)(R * C);
		float *x = malloc(n * sizeof *x), *qw = malloc((size_t)C * sizeof *qw);
		float *ya = malloc(n * sizeof *ya), *yb = malloc(n * sizeof *yb);
		uint8_t *a = malloc(nb), *b = malloc(nb);
		for (int64_t r = 0; r < R; r++)
			fill_row(x + r * C, C, r, (uint64_t)(C * 31 + k->ggml_type));
		rows += R;
		blocks += (long long)(R * C / k->blk);

		/* the reference quantizer, and chunk without weights */
		memset(a, 0xAA, nb);
		memset(b, 0x55, nb);
		k->ref(x, a, (int64_t)n);
		if (their_ref && is_new) {
			their_ref(x, b, (int64_t)n);
			d_ref += count_diff(a, b, nb, k->bytes, &f);
			f_ref = f_ref < 0 ? f : f_ref;
		}
		memset(b, 0x55, nb);
		if (chunk) {
			chunk(k->ggml_type, x, b, 0, R, C, NULL);
			k->fast(x, a, (int64_t)n); /* the table's encoder */
			d_chunk += count_diff(a, b, nb, k->bytes, &f);
			f_chunk = f_chunk < 0 ? f : f_chunk;
		}
		/* decoders on our bytes */
		if (their_dec) {
			k->dec(a, ya, (int64_t)n);
			their_dec(a, yb, (int64_t)n);
			d_dec += count_diff((uint8_t *)ya, (uint8_t *)yb, n * 4, 4 * (size_t)k->blk, &f);
			f_dec = f_dec < 0 ? f : f_dec;
		}
		/* with each weight set: chunk over all rows vs ours row by row */
		for (int set = 0; set < 4 && chunk; set++) {
			fill_weights(qw, C, set);
			memset(a, 0xAA, nb);
			memset(b, 0x55, nb);
			for (int64_t r = 0; r < R; r++)
				k->w(x + r * C, a + (size_t)(r * C / k->blk) * k->bytes, C, qw);
			chunk(k->ggml_type, x, b, 0, R, C, qw);
			d_w += count_diff(a, b, nb, k->bytes, &f);
			f_w = f_w < 0 ? f : f_w;
			rows_w += R;
			if (their_dec) {
				k->dec(a, ya, (int64_t)n);
				their_dec(a, yb, (int64_t)n);
				d_dec += count_diff((uint8_t *)ya, (uint8_t *)yb, n * 4, 4 * (size_t)k->blk, &f);
				f_dec = f_dec < 0 ? f : f_dec;
			}
		}
		/* decoders on random bytes (f16 fields kept finite) */
		if (their_dec) {
			uint64_t s = 77 + (uint64_t)k->ggml_type;
			for (size_t i = 0; i < nb; i++)
				a[i] = (uint8_t)tu_rand(&s);
			for (size_t bi = 0; bi < nb / k->bytes; bi++) {
				uint8_t *blk = a + bi * k->bytes;
				size_t off[2] = { 0, 2 }, nf = 2;
				if (k->ggml_type == 10) /* q2_k: d, dmin at the end */
					off[0] = 80, off[1] = 82;
				else if (k->ggml_type == 11 || k->ggml_type == 14) /* q3_k, q6_k: d at the end */
					off[0] = k->bytes - 2, nf = 1;
				else if (k->ggml_type == 6 || k->ggml_type == 2) /* one f16 first */
					nf = 1;
				for (size_t fi = 0; fi < nf; fi++)
					blk[off[fi] + 1] &= 0xbf; /* exponent below 31 */
			}
			k->dec(a, ya, (int64_t)n);
			their_dec(a, yb, (int64_t)n);
			d_rand += count_diff((uint8_t *)ya, (uint8_t *)yb, n * 4, 4 * (size_t)k->blk, &f);
			f_rand = f_rand < 0 ? f : f_rand;
		}
		free(x);
		free(qw);
		free(ya);
		free(yb);
		free(a);
		free(b);
	}
	if (is_new)
		ok(their_ref && d_ref == 0, "%s: bytes identical to llama.cpp %s on %lld rows, %lld blocks (%zu bytes differ, first block %lld)",
		   k->name, k->their_ref, rows, blocks, d_ref, f_ref);
	if (is_new)
		ok(chunk && d_chunk == 0, "%s: bytes identical to ggml_quantize_chunk without an imatrix (%zu differ, first block %lld)",
		   k->name, d_chunk, f_chunk);
	ok(chunk && d_w == 0, "%s: weighted bytes identical to ggml_quantize_chunk with an imatrix on %lld rows × 4 weight sets (%zu differ, first block %lld)",
	   k->name, rows_w / 4, d_w, f_w);
	if (is_new) {
		ok(their_dec && d_dec == 0, "%s: decoder gives %s's floats bit for bit on encoded rows (%zu bytes differ, first block %lld)",
		   k->name, k->their_dec, d_dec, f_dec);
		ok(their_dec && d_rand == 0, "%s: decoder equals %s on %lld random blocks (%zu bytes differ, first block %lld)",
		   k->name, k->their_dec, blocks, d_rand, f_rand);
	}
}

int main(void)
{
	plan_lazy();
	known_answers();

	enum { C = 1024, R = 18 * 12 };
	float *x = malloc((size_t)C * R * sizeof *x), *qw = malloc(C * sizeof *qw);
	for (int64_t r = 0; r < R; r++)
		fill_row(x + r * C, C, r, 5);
	fill_weights(qw, C, 0);
	for (int i = 0; i < NKQ; i++)
		round_trip(&kqs[i], x, R, C);
	for (int i = 0; i < NKQ; i++)
		weighted_gain(&kqs[i], x, qw, R, C);
	fast_is_ref(x, R, C);
	free(x);
	free(qw);

	void *h = dlopen(tu_oracle_lib("libggml-base.so"), RTLD_NOW | RTLD_LOCAL);
	traits_rows(h);
	if (!h) {
		const char *why = "llama.cpp oracle absent (npm @node-llama-cpp/linux-x64 in tests/oracle; run .ci/oracle.sh)";
		if (tu_ci())
			ok(0, "CI=true: the ggml oracle must be present (%s)", dlerror());
		else
			skip(why, "K-quants and q5_0/q5_1 bit-identical to ggml (references, ggml_quantize_chunk, decoders)");
	} else {
		/* widths: full K rows, one super-block, and 32-only widths (llama.cpp's fallbacks) */
		static const geom g[] = { { 1024, 18 * 8 }, { 256, 18 * 4 }, { 2816, 18 }, { 96, 18 * 4 }, { 160, 18 * 2 } };
		for (int i = 0; i < NKQ; i++)
			against_oracle(h, &kqs[i], g, (int)(sizeof g / sizeof g[0]));
		dlclose(h);
	}
	return tap_failures() ? 1 : 0;
}
