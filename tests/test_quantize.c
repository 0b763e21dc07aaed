/*
 * quantize: every format against a scalar reference written from its
 * definition (byte for byte), known answers, round-trip error bounds, the
 * fp8-b128 reproduction of the FP8 release fixture, thread-count
 * determinism, the fallback and re-quantization rules, profile errors, and
 * the packed bundle reader's broken-manifest table.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "convert/convert.h"
#include "formats/packed.h"
#include "formats/ggml_quants.h"
#include "quantize/llama_mix.h"
#include "quantize/profile.h"
#include "formats/qformat.h"
#include "tests/tap.h"
#include "tests/util.h"

/*
 * Round-trip bounds: relative RMS error of dequant(quant(x)) on the
 * Gaussian-like test data, whose 1-in-1000 outliers (×40) widen the scales.
 */
#define RT_Q8_0 0.012
#define RT_Q4_0 0.11
#define RT_Q4_1 0.115
#define RT_MXFP4 0.14
#define RT_FP8_B128 0.035
#define RT_MXFP8 0.04
#define RT_INT8_CH 0.035
#define RT_INT4_G128 0.19
#define RT_INT4_G128_ASYM 0.165
#define RT_Q5_0 0.075
#define RT_Q5_1 0.06
#define RT_Q2_K 0.32
#define RT_Q3_K 0.14
#define RT_Q4_K 0.095
#define RT_Q5_K 0.055
#define RT_Q6_K 0.036

/* ---- scalar references, from the definitions in qformat.h ----------------------- */

/* The E4M3 value of a code, from the bit fields. */
static double e4m3_val(int v)
{
	int s = v >> 7, e = (v >> 3) & 15, m = v & 7;
	double x = e ? ldexp(1.0 + m / 8.0, e - 7) : ldexp(m / 8.0, -6);
	return s ? -x : x;
}

/* Nearest E4M3 code (ties to the even code), saturating at ±448. */
static uint8_t e4m3_nearest(float xf)
{
	double x = xf;
	if (x > 448)
		x = 448;
	if (x < -448)
		x = -448;
	int best = 0;
	double bd = INFINITY;
	for (int c = 0; c < 256; c++) {
		if ((c & 0x7f) == 0x7f)
			continue; /* NaN */
		double d = fabs(e4m3_val(c) - x);
		if (d < bd || (d == bd && !(c & 1) && (best & 1))) {
			bd = d;
			best = c;
		}
	}
	if ((best & 0x7f) == 0)
		best = signbit(xf) ? 0x80 : 0; /* zero keeps the sign, as a float cast does */
	return (uint8_t)best;
}

static int32_t rne_clamp(float v, int lo, int hi)
{
	float r = nearbyintf(v);
	return r < lo ? lo : r > hi ? hi : (int32_t)r;
}

/* Reference encoders for one whole tensor [R, C] (2-D). */
static void ref_encode(qf_dtype f, const float *x, int64_t R, int64_t C, uint8_t *main, uint8_t *c0, uint8_t *c1)
{
	switch (f) {
	case QF_FP8_B128:
		for (int64_t br = 0; br * 128 < R; br++)
			for (int64_t bc = 0; bc * 128 < C; bc++) {
				float amax = 0;
				for (int64_t r = br * 128; r < R && r < br * 128 + 128; r++)
					for (int64_t c = bc * 128; c < C && c < bc * 128 + 128; c++)
						amax = fmaxf(amax, fabsf(x[r * C + c]));
				float s = amax / 448.0f;
				memcpy(c0 + (br * ((C + 127) / 128) + bc) * 4, &s, 4);
				for (int64_t r = br * 128; r < R && r < br * 128 + 128; r++)
					for (int64_t c = bc * 128; c < C && c < bc * 128 + 128; c++)
						main[r * C + c] = s > 0 ? e4m3_nearest(x[r * C + c] / s) : 0;
			}
		break;
	case QF_MXFP8:
		for (int64_t r = 0; r < R; r++)
			for (int64_t b = 0; b < C / 32; b++) {
				float amax = 0;
				for (int j = 0; j < 32; j++)
					amax = fmaxf(amax, fabsf(x[r * C + b * 32 + j]));
				int e = amax > 0 ? ilogbf(amax) - 8 : -127;
				if (e < -127)
					e = -127;
				c0[r * (C / 32) + b] = (uint8_t)(e + 127);
				for (int j = 0; j < 32; j++)
					main[r * C + b * 32 + j] = e4m3_nearest(ldexpf(x[r * C + b * 32 + j], -e));
			}
		break;
	case QF_INT8_CH:
		for (int64_t r = 0; r < R; r++) {
			float amax = 0;
			for (int64_t c = 0; c < C; c++)
				amax = fmaxf(amax, fabsf(x[r * C + c]));
			float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
			memcpy(c0 + r * 4, &d, 4);
			for (int64_t c = 0; c < C; c++)
				main[r * C + c] = (uint8_t)(int8_t)rne_clamp(x[r * C + c] * id, -127, 127);
		}
		break;
	case QF_INT4_G128:
	case QF_INT4_G128_ASYM: {
		int64_t G = (C + 127) / 128;
		memset(main, 0, (size_t)(R * ((C + 1) / 2)));
		for (int64_t r = 0; r < R; r++)
			for (int64_t g = 0; g < G; g++) {
				float lo = 0, hi = 0;
				for (int64_t c = g * 128; c < C && c < g * 128 + 128; c++) {
					lo = fminf(lo, x[r * C + c]);
					hi = fmaxf(hi, x[r * C + c]);
				}
				int asym = f == QF_INT4_G128_ASYM;
				uint16_t dh = qf_f32_to_f16(asym ? (hi - lo) / 15.0f : fmaxf(hi, -lo) / 7.0f);
				float d = qf_f16_to_f32(dh), id = d > 0 ? 1.0f / d : 0.0f;
				memcpy(c0 + (r * G + g) * 2, &dh, 2);
				int z = asym ? rne_clamp(-lo * id, 0, 15) : 8;
				if (asym)
					c1[r * G + g] = (uint8_t)z;
				for (int64_t c = g * 128; c < C && c < g * 128 + 128; c++) {
					int q = asym ? rne_clamp(nearbyintf(x[r * C + c] * id) + (float)z, 0, 15)
						     : rne_clamp(x[r * C + c] * id, -8, 7) + 8;
					main[r * ((C + 1) / 2) + c / 2] |= (uint8_t)(q << (4 * (c & 1)));
				}
			}
		break;
	}
	default:
		break;
	}
}

static void gen(float *x, int64_t n, uint64_t *rs)
{
	for (int64_t i = 0; i < n; i++) {
		/* sum of uniforms ≈ Gaussian, with zeros, tiny values and outliers mixed in */
		float v = (tu_randf(rs) + tu_randf(rs) + tu_randf(rs)) * 0.02f;
		uint64_t k = tu_rand(rs) % 1000;
		if (k == 0)
			v *= 40;
		else if (k == 1)
			v = 0;
		else if (k == 2)
			v *= 1e-6f;
		x[i] = v;
	}
}

static double rel_rms(const float *x, const float *y, int64_t n)
{
	double d = 0, s = 0;
	for (int64_t i = 0; i < n; i++) {
		d += (double)(x[i] - y[i]) * (x[i] - y[i]);
		s += (double)x[i] * x[i];
	}
	return sqrt(d / s);
}

/* Encodes a 2-D tensor unit by unit, as the writer does. */
static void kernel_encode(qf_dtype f, int bundle, const float *x, int64_t R, int64_t C, uint8_t *main,
			  uint8_t **comp)
{
	int64_t shape[2] = { R, C };
	for (int64_t u = 0; u < qf_fmt_units(f, 2, shape); u++) {
		int64_t r0, n;
		qf_fmt_unit_rows(f, 2, shape, u, &r0, &n);
		uint8_t *co[2] = { NULL, NULL };
		for (int k = 0; k < qf_fmt_ncomp(f, bundle); k++)
			co[k] = comp[k] + qf_fmt_comp_offset(f, k, 2, shape, r0);
		qf_fmt_encode(f, bundle, x + r0 * C, n, C, main + qf_fmt_main_offset(f, bundle, C, r0), co);
	}
}

static void test_formats(void)
{
	static const double bound[QF_DTYPE_COUNT] = {
		[QF_Q8_0] = RT_Q8_0, [QF_Q4_0] = RT_Q4_0, [QF_Q4_1] = RT_Q4_1, [QF_MXFP4] = RT_MXFP4,
		[QF_FP8_B128] = RT_FP8_B128, [QF_MXFP8] = RT_MXFP8, [QF_INT8_CH] = RT_INT8_CH,
		[QF_INT4_G128] = RT_INT4_G128, [QF_INT4_G128_ASYM] = RT_INT4_G128_ASYM,
		[QF_Q5_0] = RT_Q5_0, [QF_Q5_1] = RT_Q5_1, [QF_Q2_K] = RT_Q2_K, [QF_Q3_K] = RT_Q3_K,
		[QF_Q4_K] = RT_Q4_K, [QF_Q5_K] = RT_Q5_K, [QF_Q6_K] = RT_Q6_K,
	};
	uint64_t rs = 42;
	for (int fi = 0; fi < QF_DTYPE_COUNT; fi++) {
		qf_dtype f = (qf_dtype)fi;
		const qf_dtype_traits *in = qf_dtype_info(f);
		if (!qf_fmt_is_quant(f))
			continue;
		/* rows not a multiple of 128; columns a multiple of 32 but not of 128 (and odd ones where
		 * allowed), of 256 for the K-quants */
		int64_t R = 200, C = in->bcols == 256 ? 512 : in->need_div ? 352 : 301;
		int64_t shape[2] = { R, C };
		float *x = malloc((size_t)(R * C) * 4), *y = malloc((size_t)(R * C) * 4);
		gen(x, R * C, &rs);
		for (int bundle = 0; bundle <= 1; bundle++) {
			uint64_t mb = qf_fmt_main_bytes(f, bundle, 2, shape);
			uint8_t *m = calloc(1, mb), *c[2] = { NULL, NULL }, *cr[2] = { NULL, NULL };
			int cnd;
			int64_t cs[4];
			for (int k = 0; k < 2; k++) {
				uint64_t cb = qf_fmt_comp_shape(f, k, 2, shape, &cnd, cs);
				c[k] = calloc(1, cb + 1);
				cr[k] = calloc(1, cb + 1);
			}
			kernel_encode(f, bundle, x, R, C, m, c);
			qf_fmt_view v = { .fmt = f, .in_bundle = bundle, .ndim = 2, .shape = { R, C }, .main = m,
				       .comp = { c[0], c[1] } };
			qf_fmt_decode(&v, 0, R, y);
			double e = rel_rms(x, y, R * C);
			ok(e <= bound[f], "%s%s: round-trip relative RMS error %.5f ≤ %.3f", in->fmt,
			   bundle ? " (bundle)" : "", e, bound[f]);
			/* decoding rows one at a time gives the same values */
			float row[512];
			qf_fmt_decode(&v, 137, 1, row);
			ok(memcmp(row, y + 137 * C, (size_t)C * 4) == 0, "%s: single-row decode matches", in->fmt);
			if (f == QF_MXFP4 && bundle) {
				/* the bundle layout holds exactly ggml's values */
				uint8_t *g = malloc(qf_fmt_main_bytes(f, 0, 2, shape));
				float *yg = malloc((size_t)(R * C) * 4);
				kernel_encode(f, 0, x, R, C, g, NULL);
				qf_fmt_view vg = { .fmt = f, .ndim = 2, .shape = { R, C }, .main = g };
				qf_fmt_decode(&vg, 0, R, yg);
				ok(memcmp(yg, y, (size_t)(R * C) * 4) == 0, "mxfp4: bundle layout decodes to ggml's values");
				free(g);
				free(yg);
			}
			if (!bundle && in->gguf == QF_DTYPE_NONE) {
				uint8_t *rm = calloc(1, mb);
				ref_encode(f, x, R, C, rm, cr[0], cr[1]);
				uint64_t cb0 = qf_fmt_comp_shape(f, 0, 2, shape, &cnd, cs);
				uint64_t cb1 = qf_fmt_comp_shape(f, 1, 2, shape, &cnd, cs);
				for (uint64_t z = 0; z < mb; z++)
					if (rm[z] != m[z]) {
						diag("%s: first main mismatch at %llu: ref %02x kernel %02x x=%a", in->fmt,
						     (unsigned long long)z, rm[z], m[z], (double)x[z]);
						break;
					}
				ok(memcmp(rm, m, mb) == 0 && memcmp(cr[0], c[0], cb0) == 0 && (!cb1 || memcmp(cr[1], c[1], cb1) == 0),
				   "%s: kernel bytes equal the scalar reference on %lld×%lld", in->fmt, (long long)R, (long long)C);
				free(rm);
			}
			free(m);
			for (int k = 0; k < 2; k++) {
				free(c[k]);
				free(cr[k]);
			}
		}
		free(x);
		free(y);
	}
}

static void test_known_answers(void)
{
	/* int8-ch: amax 127 → d = 1; 0.5 rounds to even 0, 2.5 to 2 */
	float x8[4] = { 1.0f, -2.0f, 0.5f, 127.0f }, x8b[4] = { 2.5f, -127.0f, 0, 0 };
	uint8_t q[8], s[8];
	uint8_t *co[2] = { s, NULL };
	qf_fmt_encode(QF_INT8_CH, 1, x8, 1, 4, q, co);
	float d;
	memcpy(&d, s, 4);
	ok(q[0] == 1 && q[1] == 0xfe && q[2] == 0 && q[3] == 127 && d == 1.0f, "int8-ch known answer");
	qf_fmt_encode(QF_INT8_CH, 1, x8b, 1, 4, q, co);
	ok(q[0] == 2 && q[1] == 0x81, "int8-ch rounds half to even: 2.5 → 2");
	/* fp8-b128: amax 448 → scale 1, values are their own E4M3 codes */
	float xf[3] = { 448.0f, -1.0f, 0.3f };
	uint8_t qf8[3], sf[4];
	uint8_t *cf[2] = { sf, NULL };
	qf_fmt_encode(QF_FP8_B128, 1, xf, 1, 3, qf8, cf);
	memcpy(&d, sf, 4);
	ok(d == 1.0f && qf8[0] == 0x7e && qf8[1] == 0xb8 && qf8[2] == 0x2a,
	   "fp8-b128 known answer: scale %g, codes %02x %02x %02x (want 1, 7e b8 2a)", (double)d, qf8[0], qf8[1],
	   qf8[2]);
	/* mxfp8: amax 1.0 → exponent 1 - 8 ... shared scale 2^-8 → stored 119; 1.0 → 256 → code 0x78 */
	float xm[32] = { 1.0f, 0.5f };
	uint8_t qm[32], em[1];
	uint8_t *cm[2] = { em, NULL };
	qf_fmt_encode(QF_MXFP8, 1, xm, 1, 32, qm, cm);
	ok(em[0] == 119 && qm[0] == 0x78 && qm[1] == 0x70 && qm[2] == 0, "mxfp8 known answer: e %u, codes %02x %02x",
	   em[0], qm[0], qm[1]);
	/* int4-g128 symmetric: amax 7 → d = 1; codes q + 8, low nibble first */
	float x4[4] = { 7.0f, -7.0f, 1.0f, -3.0f };
	uint8_t q4[2], s4[2];
	uint8_t *c4[2] = { s4, NULL };
	qf_fmt_encode(QF_INT4_G128, 1, x4, 1, 4, q4, c4);
	ok(q4[0] == (15 | 1 << 4) && q4[1] == (9 | 5 << 4), "int4-g128 known answer: %02x %02x", q4[0], q4[1]);
	/* int4-g128-asym: range [-1, 14] → d = 1, zero point 1 */
	float xa[4] = { -1.0f, 14.0f, 0.0f, 3.0f };
	uint8_t qa[2], sa[2], za[1];
	uint8_t *ca[2] = { sa, za };
	qf_fmt_encode(QF_INT4_G128_ASYM, 1, xa, 1, 4, qa, ca);
	ok(za[0] == 1 && qa[0] == (0 | 15 << 4) && qa[1] == (1 | 4 << 4), "int4-g128-asym known answer: z %u, %02x %02x",
	   za[0], qa[0], qa[1]);
	/* sizes */
	int64_t sh[3] = { 4, 300, 1000 };
	int cnd;
	int64_t cs[4];
	uint64_t b = qf_fmt_comp_shape(QF_FP8_B128, 0, 3, sh, &cnd, cs);
	ok(cnd == 3 && cs[0] == 4 && cs[1] == 3 && cs[2] == 8 && b == 4 * 3 * 8 * 4,
	   "fp8-b128 scale of a [4, 300, 1000] stack is [4, 3, 8] (blocks never straddle matrices)");
	ok(qf_fmt_main_bytes(QF_INT4_G128, 1, 3, sh) == 4 * 300 * 500, "int4-g128 packs two per byte");
	ok(qf_fmt_units(QF_FP8_B128, 3, sh) == 12, "fp8-b128 units: 3 block rows × 4 matrices");
}

/* ---- plans --------------------------------------------------------------------- */

static const char *model(const char *m)
{
	static char p[4][4096];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s", tu_src(m));
	return p[k];
}

static qf_status write_plan(cvt_plan *p, const char *out, int packed, int threads, cvt_result *r, qf_err *err)
{
	cvt_write_opts wo = { .packed = packed, .force = 1, .threads = threads, .quality = 1 };
	return cvt_write(p, out, &wo, r, err);
}

static void test_fp8_reproduction(void)
{
	qf_err err = { { 0 } };
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 2, .legacy_kv_b = 1 };
	cvt_plan *p = NULL;
	qf_status s = cvt_plan_open(model("models/tiny-dsv3"), &o, &p, &err);
	ok(s == QF_OK, "open FP8 fixture: %s", err.msg);
	if (s)
		return;
	size_t nfp8 = 0;
	for (size_t i = 0; i < cvt_plan_count(p); i++) {
		cvt_item *it = cvt_plan_item(p, i);
		if (it->srcs[0].scale) {
			it->fmt = QF_FP8_B128;
			nfp8++;
		}
	}
	cvt_result r;
	s = write_plan(p, tu_path("fp8.qfpack"), 1, 2, &r, &err);
	ok(s == QF_OK, "write fp8-b128 bundle: %s", err.msg);
	qf_pk *pk = NULL;
	s = s ? s : qf_pk_open(tu_path("fp8.qfpack"), qf_fmt_bundle_sizer, &pk, &err);
	ok(s == QF_OK, "re-open it: %s", err.msg);
	size_t same_w = 0, same_s = 0, n = 0;
	for (size_t i = 0; pk && i < cvt_plan_count(p); i++) {
		cvt_item *it = cvt_plan_item(p, i);
		if (it->fmt != QF_FP8_B128)
			continue;
		n++;
		const qf_pk_tensor *w = qf_pk_tensor_at(pk, (size_t)qf_pk_find(pk, it->name));
		const qf_pk_tensor *sc = qf_pk_tensor_at(pk, (size_t)w->comp[0]);
		/* the release's bytes, in output order (stacked experts are concatenated) */
		uint64_t wo = 0, so = 0;
		int wsame = 1, ssame = 1;
		for (int k = 0; k < it->nsrc; k++) {
			const cvt_src *src = &it->srcs[k];
			wsame &= wo + src->t->nbytes <= w->t.nbytes && memcmp(w->t.data + wo, src->t->data, src->t->nbytes) == 0;
			ssame &= so + src->scale->nbytes <= sc->t.nbytes &&
				 memcmp(sc->t.data + so, src->scale->data, src->scale->nbytes) == 0;
			wo += src->t->nbytes;
			so += src->scale->nbytes;
		}
		same_w += (size_t)(wsame && wo == w->t.nbytes);
		same_s += (size_t)(ssame && so == sc->t.nbytes);
	}
	ok(n == nfp8 && n > 0 && same_w == n && same_s == n,
	   "fp8-b128 from the release's own dequantized values reproduces its weight bytes (%zu/%zu) and scales (%zu/%zu)",
	   same_w, n, same_s, n);
	qf_pk_close(pk);
	cvt_plan_free(p);
}

static qf_status quantize(const char *src, const char *target, int threads, const char *out, int packed,
			  int allow_rq, cvt_result *r, qf_err *err)
{
	qnt_profile prof;
	qf_status s = qnt_profile_find(target, &prof, err);
	if (s)
		return s;
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = threads, .legacy_kv_b = prof.kv_b_joined };
	cvt_plan *p = NULL;
	s = cvt_plan_open(src, &o, &p, err);
	if (!s)
		s = qnt_plan_apply(p, &prof, NULL, 0, allow_rq, err);
	if (!s)
		s = write_plan(p, out, packed, threads, r, err);
	cvt_plan_free(p);
	qnt_profile_free(&prof);
	return s;
}

static void test_determinism_and_rules(void)
{
	static const char *const targets[] = { "bundle-w4a16", "hopper-fp8", "ocp-mx", "llamacpp-q4_0" };
	qf_err err = { { 0 } };
	for (size_t t = 0; t < 4; t++) {
		cvt_result r1, r3;
		int packed = t < 3;
		char o1[64], o3[64];
		snprintf(o1, sizeof o1, "det-%zu-1", t);
		snprintf(o3, sizeof o3, "det-%zu-3", t);
		qf_status s1 = quantize(model("models/tiny-dsv3"), targets[t], 1, tu_path(o1), packed, 0, &r1, &err);
		qf_status s3 = quantize(model("models/tiny-dsv3"), targets[t], 3, tu_path(o3), packed, 0, &r3, &err);
		ok(s1 == QF_OK && s3 == QF_OK && r1.data_hash == r3.data_hash,
		   "%s: same bytes with 1 and 3 threads (%016llx, %016llx) %s", targets[t],
		   (unsigned long long)r1.data_hash, (unsigned long long)r3.data_hash, err.msg);
	}
	/* GGUF cannot hold fp8-b128 */
	cvt_result r;
	memset(&err, 0, sizeof err);
	qf_status s = quantize(model("models/tiny-dsv3"), "hopper-fp8", 1, tu_path("x.gguf"), 0, 0, &r, &err);
	ok(s == QF_EUSAGE && strstr(err.msg, "packed bundle") && !tu_exists(tu_path("x.gguf")),
	   "fp8-b128 into GGUF is refused, naming the bundle: %s", err.msg);
	/* fallback: stories260K's FFN width 172 is not a multiple of 32 */
	memset(&err, 0, sizeof err);
	qnt_profile prof;
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 1 };
	cvt_plan *p = NULL;
	s = qnt_profile_find("llamacpp-q8_0", &prof, &err);
	if (!s)
		s = cvt_plan_open(model("models/stories260k-hf"), &o, &p, &err);
	if (!s)
		s = qnt_plan_apply(p, &prof, NULL, 0, 0, &err);
	size_t fb = 0, q8 = 0;
	for (size_t i = 0; !s && i < cvt_plan_count(p); i++) {
		cvt_item *it = cvt_plan_item(p, i);
		fb += (size_t)(it->fallback && it->fmt == QF_F32 && strstr(it->name, "ffn_down"));
		q8 += (size_t)(it->fmt == QF_Q8_0);
	}
	ok(s == QF_OK && fb == 5 && q8 == 5 * 6 + 1, "fallback: the 5 ffn_down (rows of 172) stay F32, %zu tensors q8_0", q8);
	/* --type first match wins, --keep leaves a tensor alone */
	qnt_rule rules[2];
	qf_status rs = qnt_rule_parse("attn_q", 1, &rules[0], &err);
	rs = rs ? rs : qnt_rule_parse("blk\\.[0-9]+\\.attn_.*=q4_1", 0, &rules[1], &err);
	if (!s && !rs)
		s = qnt_plan_apply(p, &prof, rules, 2, 0, &err);
	int keep_ok = 1, q41 = 0;
	for (size_t i = 0; !s && i < cvt_plan_count(p); i++) {
		cvt_item *it = cvt_plan_item(p, i);
		if (strstr(it->name, "attn_q."))
			keep_ok &= it->fmt == QF_F32;
		else if (strstr(it->name, "attn_") && it->ndim == 2)
			q41 += it->fmt == QF_Q4_1;
	}
	ok(!s && !rs && keep_ok && q41 == 15, "--keep attn_q then --type attn_*=q4_1: first match wins (%d q4_1)", q41);
	qnt_rule_free(&rules[0]);
	qnt_rule_free(&rules[1]);
	cvt_plan_free(p);
	if (!s)
		qnt_profile_free(&prof);
	/* re-quantizing a quantized GGUF needs --allow-requantize */
	memset(&err, 0, sizeof err);
	s = quantize(model("models/tiny-dsv3"), "llamacpp-q8_0", 1, tu_path("q8.gguf"), 0, 0, &r, &err);
	ok(s == QF_OK, "q8_0 GGUF written: %s", err.msg);
	memset(&err, 0, sizeof err);
	s = quantize(tu_path("q8.gguf"), "llamacpp-q4_0", 1, tu_path("q4.gguf"), 0, 0, &r, &err);
	ok(s == QF_EUSAGE && strstr(err.msg, "already quantized") && strstr(err.msg, "--allow-requantize"),
	   "q8_0 → q4_0 refused: %s", err.msg);
	memset(&err, 0, sizeof err);
	s = quantize(tu_path("q8.gguf"), "llamacpp-q4_0", 1, tu_path("q4.gguf"), 0, 1, &r, &err);
	ok(s == QF_OK && tu_exists(tu_path("q4.gguf")), "… and allowed with --allow-requantize");
	/* a q8_0 GGUF re-quantized to q8_0 is what it was */
	memset(&err, 0, sizeof err);
	cvt_result ra, rb;
	s = quantize(model("models/tiny-dsv3"), "llamacpp-q8_0", 1, tu_path("qa.gguf"), 0, 0, &ra, &err);
	s = s ? s : quantize(tu_path("qa.gguf"), "llamacpp-q8_0", 1, tu_path("qb.gguf"), 0, 0, &rb, &err);
	ok(s == QF_OK && ra.data_hash == rb.data_hash, "q8_0 → q8_0 keeps every byte (%016llx)",
	   (unsigned long long)rb.data_hash);
	/* a bundle converts back to the same values */
	memset(&err, 0, sizeof err);
	s = quantize(model("models/tiny-dsv3"), "bundle-w4a16", 2, tu_path("w4.qfpack"), 1, 0, &r, &err);
	cvt_plan *pb = NULL;
	if (!s)
		s = cvt_plan_open(tu_path("w4.qfpack"), &o, &pb, &err);
	ok(s == QF_OK && pb && cvt_plan_count(pb) == 70, "bundle opens as a source with its 70 tensors: %s", err.msg);
	cvt_plan_free(pb);
}

static uint32_t gguf_file_type(const char *path)
{
	qf_gguf *g = NULL;
	uint32_t v = 999;
	if (qf_gguf_open(path, &g, NULL) == QF_OK)
		qf_gguf_get_u32(g, "general.file_type", &v, NULL);
	qf_gguf_close(g);
	return v;
}

/*
 * llama.cpp's mixes (their byte-for-byte check against llama_model_quantize
 * is tests/test_llama_mix): the rules on names and shapes, and the file type.
 */
static void test_llama_mix(void)
{
	/* research §1.9: the layers of a 61-layer DeepSeek V3 and a 32-layer Llama 3 that get more bits */
	char got[512] = "";
	size_t k = 0;
	for (int i = 0; i < 61; i++)
		if (qnt_mix_use_more_bits(i, 61))
			k += (size_t)snprintf(got + k, sizeof got - k, "%s%d", k ? "," : "", i);
	is_string("0,1,2,3,4,5,6,9,12,15,18,21,24,27,30,33,36,39,42,45,48,51,53,54,55,56,57,58,59,60", got,
		  "use_more_bits over 61 layers");
	k = 0;
	for (int i = 0; i < 32; i++)
		if (qnt_mix_use_more_bits(i, 32))
			k += (size_t)snprintf(got + k, sizeof got - k, "%s%d", k ? "," : "", i);
	is_string("0,1,2,3,6,9,12,15,18,21,24,27,28,29,30,31", got, "use_more_bits over 32 layers");
	ok(!qnt_mix_allows("blk.3.ffn_gate_inp.weight", 2) && !qnt_mix_allows("blk.0.attn_norm.weight", 2) &&
	   !qnt_mix_allows("blk.3.exp_probs_b.bias", 2) && !qnt_mix_allows("blk.0.attn_q.weight", 1) &&
	   qnt_mix_allows("blk.0.attn_k_b.weight", 3) && qnt_mix_allows("output.weight", 2),
	   "routers, norms, biases and 1-D tensors are never quantized; attn_k_b and the output head are");
	is_int(15, qnt_mix_ftype_from_name("q4_k_m"), "Q4_K_M is ftype 15");
	/* the tiny DeepSeek's Q4_K_M: rows of 256 get Q4_K, attn_k_b (rows of 32) falls back to Q5_0 */
	qf_err err = { { 0 } };
	qnt_profile prof;
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 1 };
	cvt_plan *p = NULL;
	qf_status s = qnt_profile_find("llamacpp-q4_k_m", &prof, &err);
	if (!s)
		s = cvt_plan_open(model("models/tiny-dsv3"), &o, &p, &err);
	if (!s)
		s = qnt_plan_apply(p, &prof, NULL, 0, 0, &err);
	const cvt_item *kb = s ? NULL : cvt_plan_find(p, "blk.1.attn_k_b.weight");
	const cvt_item *qa = s ? NULL : cvt_plan_find(p, "blk.1.attn_q_a.weight");
	const cvt_item *out = s ? NULL : cvt_plan_find(p, "output.weight");
	const cvt_item *rt = s ? NULL : cvt_plan_find(p, "blk.1.ffn_gate_inp.weight");
	ok(kb && kb->fmt == QF_Q5_0 && kb->fallback && qa && qa->fmt == QF_Q4_K && out && out->fmt == QF_Q6_K && rt &&
	   rt->fmt == QF_F32, "Q4_K_M: attn_k_b → q5_0 (fallback), attn_q_a q4_k, output q6_k, router f32 %s", err.msg);
	cvt_plan_free(p);
	if (!s)
		qnt_profile_free(&prof);
	/* general.file_type: the mix's ftype; else the format of most weight bytes (not the first tensor's) */
	cvt_result r;
	memset(&err, 0, sizeof err);
	s = quantize(model("models/tiny-dsv3"), "llamacpp-q4_k_m", 2, tu_path("qkm.gguf"), 0, 0, &r, &err);
	is_int(15, s ? 0 : gguf_file_type(tu_path("qkm.gguf")), "Q4_K_M file says general.file_type 15 %s", err.msg);
	s = quantize(model("models/tiny-dsv3"), "llamacpp-q4_0", 2, tu_path("q40.gguf"), 0, 0, &r, &err);
	is_int(2, s ? 0 : gguf_file_type(tu_path("q40.gguf")), "a Q4_0 file with Q8_0 embeddings says 2 (MOSTLY_Q4_0), not 7 %s",
	       err.msg);
}

static void test_profile_errors(void)
{
	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "{\"name\":\"x\",\"classes\":{\"attn\":\"iq4_xs\"}}", "unknown format 'iq4_xs'" },
		{ "{\"name\":\"x\",\"classes\":{\"attention\":\"q8_0\"}}", "unknown tensor class 'attention'" },
		{ "{\"name\":\"x\",\"classes\":{\"router\":\"q8_0\"}}", "class 'router' always stays f32" },
		{ "{\"name\":\"x\",\"output\":\"onnx\",\"classes\":{}}", "\"output\" must be" },
		{ "{\"classes\":{}}", "needs a \"name\"" },
		{ "{\"name\":\"x\"}", "needs a \"classes\" object" },
		{ "[1,2", "not a JSON object" },
		{ "{\"name\":\"x\",\"kv_b\":1,\"classes\":{}}", "\"kv_b\" must be" },
		{ "{\"name\":\"x\",\"llama_ftype\":\"Q4_K_S\"}", "\"llama_ftype\" must be one of" },
		{ "{\"name\":\"x\",\"llama_ftype\":\"Q4_K_M\",\"classes\":{}}", "takes no \"classes\"" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		qnt_profile p;
		qf_err err = { { 0 } };
		qf_status s = qnt_profile_parse(bad[i].json, strlen(bad[i].json), "my.json", &p, &err);
		ok(s == QF_EUSAGE && strstr(err.msg, bad[i].want) && strstr(err.msg, "my.json"), "bad profile: %s",
		   err.msg);
	}
	qnt_rule r;
	qf_err err = { { 0 } };
	ok(qnt_rule_parse("blk.(0=q8_0", 0, &r, &err) == QF_EUSAGE && strstr(err.msg, "bad regular expression"),
	   "bad --type regex: %s", err.msg);
	memset(&err, 0, sizeof err);
	ok(qnt_rule_parse("blk=q9", 0, &r, &err) == QF_EUSAGE && strstr(err.msg, "unknown format 'q9'"),
	   "unknown --type format: %s", err.msg);
	memset(&err, 0, sizeof err);
	ok(qnt_rule_parse("noequals", 0, &r, &err) == QF_EUSAGE && strstr(err.msg, "REGEX=FORMAT"),
	   "--type without =: %s", err.msg);
	memset(&err, 0, sizeof err);
	ok(qnt_profile_find("no-such-chip", &(qnt_profile){ 0 }, &err) == QF_EUSAGE && strstr(err.msg, "--list-targets"),
	   "unknown target: %s", err.msg);
	char **names;
	size_t n = qnt_profile_names(&names);
	int all_ok = n >= 7;
	for (size_t i = 0; i < n; i++) {
		qnt_profile p;
		all_ok &= qnt_profile_find(names[i], &p, &err) == QF_OK;
		if (all_ok)
			qnt_profile_free(&p);
		free(names[i]);
	}
	free(names);
	ok(all_ok, "all %zu shipped profiles parse", n);
}

/* ---- bundle reader: broken manifests ------------------------------------------- */

static const char *good_manifest =
	"{\"format\":\"qforge-packed\",\"version\":1,\"files\":[{\"name\":\"tensors.bin\",\"size\":8192},"
	"{\"name\":\"config.json\",\"size\":2,\"xxh64\":\"fedcba9876543210\"}],\"tensors\":["
	"{\"name\":\"w\",\"shape\":[2,256],\"format\":\"int8-ch\",\"dtype\":\"I8\",\"file\":\"tensors.bin\","
	"\"offset\":0,\"nbytes\":512,\"xxh64\":\"0123456789abcdef\",\"block\":[1,1],\"companions\":{\"scale\":\"w_scale\"}},"
	"{\"name\":\"w_scale\",\"shape\":[2],\"format\":\"F32\",\"dtype\":\"F32\",\"role\":\"scale\",\"of\":\"w\","
	"\"file\":\"tensors.bin\",\"offset\":4096,\"nbytes\":8,\"xxh64\":\"0123456789abcdef\"}]}";

static void test_bundle_reader(void)
{
	static uint8_t payload[8192];
	static const struct {
		const char *from, *to, *want;
	} cases[] = {
		{ "\"version\":1", "\"version\":3", "unsupported version" },
		{ "\"version\":1", "\"version\":2", "version 2 needs manifest_xxh64" },
		{ "\"version\":1,", "\"version\":2,\"manifest_xxh64\":\"0123456789abcdef\",\"x\":{\"manifest_xxh64\":\"0\"},",
		  "manifest_xxh64 appears more than once" },
		/* block: range-checked before the double → int64 cast (UBSan found 2.4e123 here) */
		{ "\"block\":[1,1]", "\"block\":[2.4e123,1]", "block rows must be a whole number" },
		{ "\"block\":[1,1]", "\"block\":[1,-9.3e300]", "block cols must be a whole number" },
		{ "\"block\":[1,1]", "\"block\":[1,1.5]", "block cols must be a whole number" },
		{ "\"block\":[1,1]", "\"block\":[0,1]", "block rows must be a whole number" },
		{ "\"block\":[1,1]", "\"block\":[1]", "block must be [rows, cols]" },
		{ "\"block\":[1,1]", "\"block\":\"1x1\"", "block must be [rows, cols]" },
		/* files[]: complete, plain names, each once, hashed */
		{ "\"files\":[", "\"filez\":[", "no files array" },
		{ "\"name\":\"config.json\"", "\"name\":\"../../etc/hostname\"", "is not a member file's name" },
		{ "\"name\":\"config.json\"", "\"name\":\"sub/config.json\"", "is not a member file's name" },
		{ "\"name\":\"config.json\"", "\"name\":\"..\"", "is not a member file's name" },
		{ "\"name\":\"config.json\"", "\"name\":\"manifest.json\"", "is not a member file's name" },
		{ "\"name\":\"config.json\"", "\"name\":\"tensors.bin\"", "listed twice" },
		{ "\"size\":8192", "\"size\":8191", "must list tensors.bin with its size" },
		{ "\"size\":2,\"xxh64\":\"fedcba9876543210\"", "\"size\":2", "xxh64 must be 16" },
		{ "\"size\":2,", "\"size\":1e300,", "missing or bad size" },
		{ "qforge-packed", "qforge-other", "format is not" },
		{ "\"offset\":4096", "\"offset\":4000", "not a multiple of 4096" },
		{ "\"offset\":4096", "\"offset\":8192", "lie outside" },
		{ "\"nbytes\":512", "\"nbytes\":500", "manifest says 500" },
		{ "\"int8-ch\"", "\"int3\"", "unknown format 'int3'" },
		{ "\"of\":\"w\"", "\"of\":\"v\"", "missing main tensor" },
		{ "\"name\":\"w_scale\"", "\"name\":\"w\"", "appears twice" },
		{ "0123456789abcdef", "0123456789abcdeg", "xxh64 must be" },
		{ "[2,256]", "[2,0]", "bad dimension" },
		{ "[2,256]", "[2,256,1,1,1]", "1 to 4 dims" },
		{ "\"I8\"", "\"I9\"", "unknown dtype" },
		{ "\"tensors.bin\",\"offset\":0", "\"other.bin\",\"offset\":0", "file must be" },
		{ "\"offset\":0,\"nbytes\":512", "\"offset\":0,\"nbytes\":8192", "manifest says" },
		{ "\"shape\":[2],", "\"shape\":[3],", "manifest says 8" },
		{ "{\"scale\":\"w_scale\"}", "{\"scale\":\"nope\"}", "companion 'scale'" },
		{ "\"tensors\":[", "\"tensorz\":[", "no tensors array" },
		{ "\"offset\":4096", "\"offset\":-4096", "bad offset" },
	};
	qf_pk *pk = NULL;
	qf_err err = { { 0 } };
	qf_status s = qf_pk_open_buffer(good_manifest, strlen(good_manifest), payload, sizeof payload, qf_fmt_bundle_sizer,
					&pk, &err);
	ok(s == QF_OK && pk && qf_pk_ntensors(pk) == 2 && qf_pk_tensor_at(pk, 0)->comp[0] == 1,
	   "valid manifest parses: %s", err.msg);
	qf_pk_close(pk);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char m[4096];
		const char *at = strstr(good_manifest, cases[i].from);
		if (!at) {
			ok(0, "case %zu: pattern missing", i);
			continue;
		}
		snprintf(m, sizeof m, "%.*s%s%s", (int)(at - good_manifest), good_manifest, cases[i].to,
			 at + strlen(cases[i].from));
		pk = NULL;
		memset(&err, 0, sizeof err);
		s = qf_pk_open_buffer(m, strlen(m), payload, sizeof payload, qf_fmt_bundle_sizer, &pk, &err);
		ok(s == QF_EFORMAT && !pk && (strstr(err.msg, cases[i].want) || (strstr(cases[i].want, "bad offset") &&
										strstr(err.msg, "offset"))),
		   "broken manifest %zu rejected: %s", i, err.msg);
		qf_pk_close(pk);
	}
	/* version 2: the manifest's hash is over its bytes with its own digits read as '0' */
	char v2[4096];
	const char *vat = strstr(good_manifest, "\"version\":1,");
	snprintf(v2, sizeof v2, "%.*s\"version\":2,\"manifest_xxh64\":\t\"0000000000000000\",%s", (int)(vat - good_manifest),
		 good_manifest, vat + strlen("\"version\":1,"));
	uint64_t rec = 1, got = 0;
	pk = NULL;
	s = qf_pk_open_buffer(v2, strlen(v2), payload, sizeof payload, qf_fmt_bundle_sizer, &pk, &err);
	ok(s == QF_OK && qf_pk_manifest_hash(pk, &rec, &got) && rec == 0 && got == XXH64(v2, strlen(v2), 0),
	   "version 2: the manifest hash is recomputed over the text %s", err.msg);
	qf_pk_close(pk);
	pk = NULL;
	/* overlap */
	char m[4096];
	snprintf(m, sizeof m, "%s", good_manifest);
	char *o = strstr(m, "\"offset\":4096");
	memcpy(o, "\"offset\":0   ", 13);
	memset(&err, 0, sizeof err);
	s = qf_pk_open_buffer(m, strlen(m), payload, sizeof payload, qf_fmt_bundle_sizer, &pk, &err);
	ok(s == QF_EFORMAT && strstr(err.msg, "overlap"), "overlapping tensors rejected: %s", err.msg);
}

static void test_tar_alignment(void)
{
	qf_err err = { { 0 } };
	cvt_result r;
	qf_status s = quantize(model("models/tiny-dsv3"), "ocp-mx", 2, tu_path("mx.tar"), 1, 0, &r, &err);
	qf_pk *pk = NULL;
	s = s ? s : qf_pk_open(tu_path("mx.tar"), qf_fmt_bundle_sizer, &pk, &err);
	int aligned = pk != NULL;
	for (size_t i = 0; pk && i < qf_pk_ntensors(pk); i++)
		aligned &= ((uintptr_t)qf_pk_tensor_at(pk, i)->t.data % 4096) == 0;
	ok(s == QF_OK && aligned, "tar bundle: every tensor's bytes start on a 4096 boundary of the tar itself");
	uint64_t ms = 0;
	ok(pk && qf_pk_member(pk, "metadata.gguf", &ms) && ms > 1000 && qf_pk_member(pk, "tokenizer.json", &ms),
	   "tar bundle carries metadata.gguf and tokenizer.json");
	qf_pk_close(pk);
	ok(!tu_exists(tu_path("mx.tar.stage")) && !tu_temps(tu_path("mx.tar.stage")) && !tu_temps(tu_path("mx.tar")),
	   "no staging folder left behind");
}

int main(void)
{
	plan_lazy();
	test_known_answers();
	test_formats();
	test_profile_errors();
	test_llama_mix();
	test_bundle_reader();
	test_fp8_reproduction();
	test_determinism_and_rules();
	test_tar_alignment();
	return tap_failures() ? 1 : 0;
}
