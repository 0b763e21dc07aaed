/* Exhaustive checks of the element-type conversions against scalar formulas. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/dtype.h"
#include "tests/tap.h"

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static int same(float a, float b) { return (isnan(a) && isnan(b)) || fbits(a) == fbits(b); }

/* Reference value of a sign/exp/mant minifloat code, written from the definition. */
static double ref_minifloat(unsigned code, int ebits, int mbits, int bias)
{
	unsigned s = code >> (ebits + mbits) & 1, e = (code >> mbits) & ((1u << ebits) - 1);
	unsigned m = code & ((1u << mbits) - 1);
	double v = e == 0 ? ldexp((double)m, 1 - bias - mbits)
			  : ldexp(1.0 + ldexp((double)m, -mbits), (int)e - bias);
	return s ? -v : v;
}

typedef float (*dec_fn)(unsigned);
typedef unsigned (*enc_fn)(float);

static float dec_e4m3(unsigned c) { return qf_e4m3_to_f32((uint8_t)c); }
static unsigned enc_e4m3(float f) { return qf_f32_to_e4m3(f); }
static float dec_e5m2(unsigned c) { return qf_e5m2_to_f32((uint8_t)c); }
static unsigned enc_e5m2(float f) { return qf_f32_to_e5m2(f); }
static float dec_f16(unsigned c) { return qf_f16_to_f32((uint16_t)c); }
static unsigned enc_f16(float f) { return qf_f32_to_f16(f); }
static float dec_bf16(unsigned c) { return qf_bf16_to_f32((uint16_t)c); }
static unsigned enc_bf16(float f) { return qf_f32_to_bf16(f); }

/*
 * For every pair of adjacent positive finite codes: the midpoint rounds to
 * the even code, one ulp (f32) either side rounds to the nearer code; and
 * every code round-trips.  Mirrored for negatives.
 */
static int check_rounding(dec_fn dec, enc_fn enc, unsigned maxcode, unsigned signbit)
{
	int bad = 0;
	for (unsigned c = 0; c <= maxcode; c++) {
		float v = dec(c);
		if (enc(v) != c || enc(-v) != (c | signbit))
			bad++;
		if (c == maxcode)
			break;
		float w = dec(c + 1);
		float mid = (float)(((double)v + (double)w) / 2);
		if ((double)mid != ((double)v + (double)w) / 2)
			continue; /* not representable in f32: nothing exact to test */
		unsigned even = (c & 1) ? c + 1 : c;
		if (enc(mid) != even || enc(-mid) != (even | signbit))
			bad++;
		if (enc(nextafterf(mid, -INFINITY)) != c)
			bad++;
		if (enc(nextafterf(mid, INFINITY)) != c + 1)
			bad++;
	}
	return bad;
}

int main(void)
{
	plan_lazy();

	/* E4M3FN: every code */
	int bad = 0;
	for (unsigned c = 0; c < 256; c++) {
		float got = qf_e4m3_to_f32((uint8_t)c);
		if ((c & 0x7f) == 0x7f) {
			if (!isnan(got))
				bad++;
			continue;
		}
		if (!same(got, (float)ref_minifloat(c, 4, 3, 7)))
			bad++;
		if (qf_e4m3_table()[c] != got && !(got == 0 && qf_e4m3_table()[c] == 0))
			bad++;
	}
	is_int(0, bad, "E4M3: all 256 codes decode to the reference values (NaN at 0x7F/0xFF)");
	is_double(448.0, qf_e4m3_to_f32(0x7e), 0, "E4M3 max is 448");
	is_double(0x1p-9, qf_e4m3_to_f32(0x01), 0, "E4M3 min subnormal is 2^-9");
	is_int(0, check_rounding(dec_e4m3, enc_e4m3, 0x7e, 0x80),
	       "E4M3: round trip, midpoints to even, neighbours to nearest");
	is_int(0x7e, qf_f32_to_e4m3(464.0f), "E4M3: 464 saturates to 448, not NaN");
	is_int(0x7e, qf_f32_to_e4m3(1e30f), "E4M3: 1e30 saturates to 448");
	is_int(0xfe, qf_f32_to_e4m3(-INFINITY), "E4M3: -inf saturates to -448");
	is_int(0x7f, qf_f32_to_e4m3(NAN), "E4M3: NaN encodes to 0x7F");
	is_int(0x00, qf_f32_to_e4m3(0x1p-11f), "E4M3: 2^-11 rounds to zero");
	is_int(0x01, qf_f32_to_e4m3(0x1.8p-10f), "E4M3: 0.75·2^-9 rounds up to min subnormal");
	bad = 0;
	for (int i = -2000; i <= 2000; i++) {
		float f = (float)i * 0.37f;
		if ((qf_f32_to_e4m3(f) & 0x7f) == 0x7f)
			bad++;
	}
	is_int(0, bad, "E4M3: no finite input encodes to NaN");

	/* E5M2 */
	bad = 0;
	for (unsigned c = 0; c < 256; c++) {
		float got = qf_e5m2_to_f32((uint8_t)c);
		unsigned e = (c >> 2) & 31;
		if (e == 31) {
			if ((c & 3) ? !isnan(got) : !isinf(got))
				bad++;
			continue;
		}
		if (!same(got, (float)ref_minifloat(c, 5, 2, 15)))
			bad++;
	}
	is_int(0, bad, "E5M2: all 256 codes decode to the reference values");
	is_int(0, check_rounding(dec_e5m2, enc_e5m2, 0x7b, 0x80), "E5M2: rounding to nearest even");
	is_int(0x7b, qf_f32_to_e5m2(1e9f), "E5M2: finite overflow saturates to 57344");
	is_int(0x7c, qf_f32_to_e5m2(INFINITY), "E5M2: inf stays inf");

	/* E8M0 */
	bad = 0;
	for (unsigned c = 0; c < 255; c++) {
		if (qf_e8m0_to_f32((uint8_t)c) != (float)ldexp(1.0, (int)c - 127))
			bad++;
		if (qf_f32_to_e8m0(qf_e8m0_to_f32((uint8_t)c)) != c)
			bad++;
	}
	is_int(0, bad, "E8M0: codes 0..254 decode to 2^(e-127) and round-trip");
	ok(isnan(qf_e8m0_to_f32(0xff)), "E8M0: 0xFF is NaN");
	is_int(128, qf_f32_to_e8m0(1.5f), "E8M0: 1.5 (tie) rounds to even exponent 2^1");
	is_int(127, qf_f32_to_e8m0(1.4f), "E8M0: 1.4 rounds to 2^0");

	/* F16: all codes */
	bad = 0;
	for (unsigned c = 0; c < 65536; c++) {
		float got = qf_f16_to_f32((uint16_t)c);
		unsigned e = (c >> 10) & 31;
		if (e == 31) {
			if ((c & 0x3ff) ? !isnan(got) : !isinf(got))
				bad++;
			if ((c & 0x3ff) && !(qf_f32_to_f16(got) & 0x3ff))
				bad++; /* NaN must stay NaN */
			continue;
		}
		if (!same(got, (float)ref_minifloat(c, 5, 10, 15)))
			bad++;
	}
	is_int(0, bad, "F16: all 65536 codes decode to the reference values");
	is_int(0, check_rounding(dec_f16, enc_f16, 0x7bff, 0x8000), "F16: rounding to nearest even");
	is_int(0x7c00, qf_f32_to_f16(65520.0f), "F16: 65520 rounds to inf");
	is_int(0x7bff, qf_f32_to_f16(65519.99f), "F16: 65519.99 rounds to 65504");

	/* BF16 row encoder (AVX2 when available) equals the scalar one: every high half × tie-relevant low halves */
	{
		static const uint32_t lows[] = { 0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234, 0xc000 };
		size_t nv = 65536 * 8 + 3;
		float *v = malloc(nv * sizeof *v);
		uint16_t *o = malloc(nv * sizeof *o);
		for (uint32_t hi = 0; hi < 65536; hi++)
			for (int k = 0; k < 8; k++) {
				uint32_t u = hi << 16 | lows[k];
				memcpy(&v[hi * 8 + (uint32_t)k], &u, 4);
			}
		for (size_t k = 65536 * 8; k < nv; k++)
			v[k] = 1.00390625f; /* a ragged tail */
		qf_row_f32_to_bf16(v, o, (int64_t)nv);
		size_t badb = 0;
		for (size_t k = 0; k < nv; k++)
			badb += o[k] != qf_f32_to_bf16(v[k]);
		is_int(0, (long long)badb, "BF16 row encoder (SIMD when available) matches scalar on %zu values", nv);
		free(v);
		free(o);
	}

	/* FP8 × scale rows (AVX2 when available) equal the table's exact values times the scale */
	{
		uint8_t codes[256 + 5];
		float out[256 + 5];
		static const float scales[] = { 1.0f, 0.000123f, 3.5e-38f, 7.0e10f };
		size_t badf = 0;
		for (int c = 0; c < 256 + 5; c++)
			codes[c] = (uint8_t)(c * 37 + 11);
		for (int k = 0; k < 4; k++) {
			qf_row_e4m3_scaled_to_f32(codes, out, 256 + 5, scales[k]);
			for (int c = 0; c < 256 + 5; c++) {
				float want = qf_e4m3_table()[codes[c]] * scales[k];
				badf += !(same(want, out[c]));
			}
		}
		is_int(0, (long long)badf, "E4M3 × scale rows match the exact table times the scale on all codes");
		/* the one-pass FP8 → BF16: the bytes of the two passes, and the finiteness of their f32 */
		static const float sc2[] = { 1.0f, 0.000123f, 3.5e-38f, 7.0e10f, 1e38f, 3.4e38f };
		uint16_t bf[256 + 5], bf2[256 + 5];
		size_t badb = 0, badfin = 0;
		for (int k = 0; k < 6; k++) {
			for (int len = 0; len <= 256 + 5; len += len < 40 ? 1 : 37) {
				for (int c = 0; c < len; c++)
					codes[c] = (uint8_t)(c * 37 + 11 + k);
				/* a run without NaN codes (0x7f, 0xff), so the finite flag is seen both ways */
				if (k & 1)
					for (int c = 0; c < len; c++)
						codes[c] = (uint8_t)((codes[c] & 0x7f) == 0x7f ? 0x7e : codes[c]);
				qf_row_e4m3_scaled_to_f32(codes, out, len, sc2[k]);
				qf_row_f32_to_bf16(out, bf2, len);
				int fin = qf_row_e4m3_scaled_to_bf16(codes, bf, len, sc2[k]);
				badb += len && memcmp(bf, bf2, (size_t)len * 2) != 0;
				badfin += fin != qf_row_all_finite(out, len);
			}
		}
		is_int(0, (long long)badb, "E4M3 × scale → BF16 in one pass writes the bytes of the two passes (lengths 0..261, 6 scales)");
		is_int(0, (long long)badfin, "... and says finite exactly when every f32 product is (NaN codes and overflow to inf)");
	}

	/* F16 SIMD row path equals the scalar path on every code */
	uint16_t *h = malloc(65536 * 2);
	float *a = malloc(65536 * 4), *b = malloc(65536 * 4);
	for (unsigned c = 0; c < 65536; c++)
		h[c] = (uint16_t)c;
	qf_row_f16_to_f32(h, a, 65536);
	qf_row_f16_to_f32_scalar(h, b, 65536);
	bad = 0;
	for (unsigned c = 0; c < 65536; c++)
		if (!same(a[c], b[c]))
			bad++;
	is_int(0, bad, "F16 row converter (SIMD when available) matches scalar on all codes");
	uint16_t *h2 = malloc(65536 * 2);
	qf_row_f32_to_f16(b, h2, 65536);
	bad = 0;
	for (unsigned c = 0; c < 65536; c++) {
		if (((c >> 10) & 31) == 31 && (c & 0x3ff))
			continue;
		if (h2[c] != c)
			bad++;
	}
	is_int(0, bad, "F16 row encoder round-trips every non-NaN code");
	uint64_t seed = 7;
	bad = 0;
	for (int i = 0; i < 200000; i++) {
		uint32_t u = (uint32_t)(seed = seed * 6364136223846793005ull + 1442695040888963407ull) ;
		u = (uint32_t)(seed >> 32);
		float f;
		memcpy(&f, &u, 4);
		if (isnan(f))
			continue;
		uint16_t x;
		qf_row_f32_to_f16(&f, &x, 1);
		float g[8] = { f, f, f, f, f, f, f, f };
		uint16_t y[8];
		qf_row_f32_to_f16(g, y, 8);
		if (x != qf_f32_to_f16(f) || y[3] != x)
			bad++;
	}
	is_int(0, bad, "F16 encoder: SIMD and scalar agree on 200k random bit patterns");

	/* BF16 */
	bad = 0;
	for (unsigned c = 0; c < 65536; c++) {
		float got = qf_bf16_to_f32((uint16_t)c);
		if (fbits(got) != (uint32_t)c << 16)
			bad++;
		if (!isnan(got) && qf_f32_to_bf16(got) != c)
			bad++;
		if (isnan(got) && !isnan(qf_bf16_to_f32(qf_f32_to_bf16(got))))
			bad++;
	}
	is_int(0, bad, "BF16: all 65536 codes decode exactly and round-trip (NaN stays NaN)");
	is_int(0, check_rounding(dec_bf16, enc_bf16, 0x7f7f, 0x8000), "BF16: rounding to nearest even");
	float qn;
	uint32_t snan = 0x7f800001;
	memcpy(&qn, &snan, 4);
	ok(isnan(qf_bf16_to_f32(qf_f32_to_bf16(qn))), "BF16: signalling NaN with low payload stays NaN");

	/* traits table */
	is_int(QF_F8_E4M3, qf_dtype_from_name("F8_E4M3"), "lookup F8_E4M3 by name");
	is_int(QF_DTYPE_NONE, qf_dtype_from_name("F4"), "unknown dtype name is -1");
	is_int(QF_Q8_0, qf_dtype_from_ggml(8), "ggml type 8 is Q8_0");
	is_int(QF_BF16, qf_dtype_from_ggml(30), "ggml type 30 is BF16");
	int okk;
	is_int(34 * 4, (long long)qf_dtype_nbytes(QF_Q8_0, 128, &okk), "Q8_0: 128 values take 136 bytes");
	qf_dtype_nbytes(QF_Q8_0, 100, &okk);
	is_int(0, okk, "Q8_0: a partial block is rejected");
	qf_dtype_nbytes(QF_F32, UINT64_MAX / 2, &okk);
	is_int(0, okk, "byte count overflow is detected");
	free(h); free(h2); free(a); free(b);
	return tap_failures() ? 1 : 0;
}
