/*
 * Hugging Face folder output: the float layout against the bundled
 * fp8_cast_bf16.py result (every tensor, byte for byte, same names and
 * shapes), shards and index, __metadata__, integrity, thread determinism.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/hf.h"
#include "formats/checkpoint.h"
#include "formats/hfquant.h"
#include "formats/safetensors.h"
#include "tests/tap.h"
#include "tests/util.h"
#include "quantize/profile.h"
#include "verify/hf_integrity.h"

static qf_status write_hf(const char *src, const char *out, qf_dtype outtype, uint64_t shard, int threads,
			  cvt_hf_plan **plan, qf_err *err)
{
	cvt_options o = { .outtype = outtype, .threads = threads };
	cvt_hf_plan *p = NULL;
	qf_status s = cvt_hf_plan_open(src, &o, &p, err);
	if (s)
		return s;
	cvt_hf_write_opts wo = { .shard_size = shard, .threads = threads, .force = 1 };
	cvt_result r;
	s = cvt_hf_write(p, out, &wo, &r, err);
	if (plan && !s)
		*plan = p;
	else
		cvt_hf_plan_free(p);
	return s;
}

/* Every tensor of a equals b's tensor of the same name: dtype, shape, bytes. */
static void same_tensors(const char *a, const char *b, const char *what)
{
	qf_st *x = NULL, *y = NULL;
	qf_err e = { { 0 } };
	if (qf_st_open(a, &x, &e) || qf_st_open(b, &y, &e)) {
		ok(0, "%s: open: %s", what, e.msg);
		qf_st_close(x);
		return;
	}
	size_t bad = 0, first = (size_t)-1;
	for (size_t i = 0; i < qf_st_count(x); i++) {
		const qf_tensor *t = qf_st_get(x, i), *u = qf_st_find(y, t->name);
		int same = u && t->dtype == u->dtype && t->ndim == u->ndim &&
			   !memcmp(t->shape, u->shape, sizeof t->shape[0] * (size_t)t->ndim) && t->nbytes == u->nbytes &&
			   !memcmp(t->data, u->data, t->nbytes);
		if (!same && first == (size_t)-1)
			first = i;
		bad += !same;
	}
	ok(bad == 0 && qf_st_count(x) == qf_st_count(y), "%s: %zu tensors equal by name, dtype, shape and bytes (%zu vs %zu)%s%s",
	   what, qf_st_count(x) - bad, qf_st_count(x), qf_st_count(y), bad ? "; first bad " : "",
	   bad ? qf_st_get(x, first)->name : "");
	qf_st_close(x);
	qf_st_close(y);
}

static void test_float(void)
{
	qf_err e = { { 0 } };
	const char *M = tu_src("models/tiny-dsv3"), *ref = tu_src("models/tiny-dsv3-bf16");
	char m[4096], r[4096];
	snprintf(m, sizeof m, "%s", M);
	snprintf(r, sizeof r, "%s", ref);
	char one[4096], sh[4096], t1[4096];
	snprintf(one, sizeof one, "%s", tu_path("hf-bf16"));
	snprintf(sh, sizeof sh, "%s", tu_path("hf-bf16-sharded"));
	snprintf(t1, sizeof t1, "%s", tu_path("hf-bf16-t1"));
	qf_status s = write_hf(m, one, QF_BF16, 0, 2, NULL, &e);
	is_int(0, s, "FP8 → BF16 safetensors: %s", e.msg);
	char f[4200];
	snprintf(f, sizeof f, "%s/model.safetensors", one);
	ok(tu_exists(f), "one shard is model.safetensors");
	snprintf(f, sizeof f, "%s/model.safetensors.index.json", one);
	ok(!tu_exists(f), "and has no index");
	same_tensors(one, r, "tiny-dsv3 → BF16 = tiny-dsv3-bf16 (fp8_cast_bf16.py)");
	same_tensors(r, one, "and nothing extra in the reference");
	qf_ckpt *ck = NULL;
	if (!qf_ckpt_open(one, &ck, &e)) {
		ok(!cJSON_GetObjectItemCaseSensitive(ck->config, "quantization_config"), "config.json has no quantization_config");
		is_string("pt", qf_st_metadata(ck->st, "format"), "__metadata__ format is pt");
		const qf_tensor *b = qf_st_find(ck->st, "model.layers.1.mlp.gate.e_score_correction_bias");
		ok(b && b->dtype == QF_F32, "e_score_correction_bias stays F32");
		ok(qf_st_find(ck->st, "model.layers.4.eh_proj.weight") != NULL, "the MTP layer is kept");
		qf_ckpt_close(ck);
	} else {
		ok(0, "reopen: %s", e.msg);
	}
	snprintf(f, sizeof f, "%s/tokenizer.json", one);
	ok(tu_exists(f), "tokenizer.json copied");
	snprintf(f, sizeof f, "%s/generation_config.json", one);
	ok(tu_exists(f), "generation_config.json copied");

	/* shards */
	s = write_hf(m, sh, QF_BF16, 5000000, 2, NULL, &e);
	is_int(0, s, "5 MB shards: %s", e.msg);
	snprintf(f, sizeof f, "%s/model-00003-of-00003.safetensors", sh);
	ok(tu_exists(f), "three shards named model-0000k-of-00003");
	snprintf(f, sizeof f, "%s/model.safetensors.index.json", sh);
	qf_status js;
	cJSON *idx = qf_json_load(f, &e, &js);
	const cJSON *md = idx ? cJSON_GetObjectItemCaseSensitive(idx, "metadata") : NULL;
	const cJSON *wm = idx ? cJSON_GetObjectItemCaseSensitive(idx, "weight_map") : NULL;
	int64_t total = 0;
	int have_total = md && qf_json_get_int(md, "total_size", &total);
	ok(have_total && total == 14340928, "index metadata.total_size is the tensor bytes (%lld)", (long long)total);
	is_int(269, wm ? cJSON_GetArraySize(wm) : 0, "weight_map names every tensor");
	cJSON_Delete(idx);
	for (int k = 1; k <= 3; k++) {
		snprintf(f, sizeof f, "%s/model-0000%d-of-00003.safetensors", sh, k);
		size_t n = 0;
		uint8_t *d = tu_read(f, &n);
		uint64_t hl = 0;
		for (int b = 0; d && n >= 8 && b < 8; b++)
			hl |= (uint64_t)d[b] << (8 * b);
		ok(d && n - 8 - hl <= 5000000, "shard %d holds ≤ 5 MB of data (%llu)", k, (unsigned long long)(n - 8 - hl));
		free(d);
	}
	same_tensors(sh, r, "sharded output = tiny-dsv3-bf16");

	/* integrity */
	vfy_integrity vi;
	s = vfy_hf_integrity(sh, &vi, &e);
	ok(!s && vi.hashed && vi.checked == 269 && vi.nbad == 0, "verify: 269 hashes match (%zu checked, %zu bad)", vi.checked,
	   vi.nbad);
	vfy_integrity_free(&vi);
	snprintf(f, sizeof f, "%s/model-00002-of-00003.safetensors", sh);
	size_t n = 0;
	uint8_t *d = tu_read(f, &n);
	int caught = 0, flips = 0;
	for (size_t off = n - 1; d && off > n - 4000000 && flips < 8; off -= 499999, flips++) {
		d[off] ^= 0x10;
		tu_write(f, d, n);
		s = vfy_hf_integrity(sh, &vi, &e);
		caught += !s && vi.nbad == 1;
		vfy_integrity_free(&vi);
		d[off] ^= 0x10;
	}
	tu_write(f, d, n);
	free(d);
	is_int(flips, caught, "every flipped bit is caught and named");

	/* threads */
	s = write_hf(m, t1, QF_F32, 0, 1, NULL, &e);
	char t2[4096];
	snprintf(t2, sizeof t2, "%s", tu_path("hf-f32-t3"));
	s |= write_hf(m, t2, QF_F32, 0, 3, NULL, &e);
	char a[4200], b[4200];
	snprintf(a, sizeof a, "%s/model.safetensors", t1);
	snprintf(b, sizeof b, "%s/model.safetensors", t2);
	size_t na = 0, nb = 0;
	uint8_t *da = tu_read(a, &na), *db = tu_read(b, &nb);
	ok(!s && da && db && na == nb && !memcmp(da, db, na), "F32 output identical for 1 and 3 threads");
	free(da);
	free(db);
}

/* Plans src for a shipped target (NULL: leave the plan as opened). */
static cvt_hf_plan *plan_target(const char *src, const char *target, qf_err *e)
{
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 2 };
	cvt_hf_plan *p = NULL;
	if (cvt_hf_plan_open(src, &o, &p, e))
		return NULL;
	if (target) {
		qnt_profile prof;
		if (qnt_profile_find(target, &prof, e) || qnt_hf_plan_apply(p, &prof, NULL, NULL, 0, e)) {
			cvt_hf_plan_free(p);
			return NULL;
		}
		qnt_profile_free(&prof);
	}
	return p;
}

static qf_status write_plan(cvt_hf_plan *p, const char *out, int threads, qf_err *e)
{
	cvt_hf_write_opts wo = { .threads = threads, .force = 1 };
	cvt_result r;
	return cvt_hf_write(p, out, &wo, &r, e);
}

static cJSON *quant_config(const char *dir)
{
	char f[4200];
	snprintf(f, sizeof f, "%s/config.json", dir);
	qf_err e = { { 0 } };
	qf_status s;
	cJSON *c = qf_json_load(f, &e, &s);
	cJSON *q = c ? cJSON_DetachItemFromObjectCaseSensitive(c, "quantization_config") : NULL;
	cJSON_Delete(c);
	return q;
}

static int json_has_str(const cJSON *arr, const char *v)
{
	for (const cJSON *e = arr ? arr->child : NULL; e; e = e->next)
		if (cJSON_IsString(e) && !strcmp(e->valuestring, v))
			return 1;
	return 0;
}

static void test_fp8(void)
{
	qf_err e = { { 0 } };
	char m[4096], bf[4096], out[4096];
	snprintf(m, sizeof m, "%s", tu_src("models/tiny-dsv3"));
	snprintf(bf, sizeof bf, "%s", tu_src("models/tiny-dsv3-bf16"));

	/* the release's own layout: every weight and scale byte */
	snprintf(out, sizeof out, "%s", tu_path("hf-fp8"));
	cvt_hf_plan *p = plan_target(m, "vllm-fp8-block", &e);
	ok(p && !write_plan(p, out, 2, &e), "vllm-fp8-block from the FP8 release: %s", e.msg);
	cvt_hf_plan_free(p);
	same_tensors(out, m, "vllm-fp8-block = the FP8 release (weights, weight_scale_inv, the rest)");
	same_tensors(m, out, "and nothing missing");
	cJSON *q = quant_config(out);
	is_string("fp8", q ? qf_json_get_str(q, "quant_method") : NULL, "quant_method fp8 (vLLM Fp8Config)");
	is_string("dynamic", q ? qf_json_get_str(q, "activation_scheme") : NULL, "activation_scheme dynamic (required)");
	is_string("e4m3", q ? qf_json_get_str(q, "fmt") : NULL, "fmt e4m3");
	const cJSON *bs = q ? cJSON_GetObjectItemCaseSensitive(q, "weight_block_size") : NULL;
	ok(cJSON_GetArraySize(bs) == 2 && cJSON_GetArrayItem(bs, 0)->valueint == 128 && cJSON_GetArrayItem(bs, 1)->valueint == 128,
	   "weight_block_size [128, 128]");
	const cJSON *ig = q ? cJSON_GetObjectItemCaseSensitive(q, "ignored_layers") : NULL;
	ok(json_has_str(ig, "lm_head") &&
	   !json_has_str(ig, "model.layers.0.self_attn.q_a_proj"),
	   "ignored_layers / modules_to_not_convert name the BF16 linears only");
	ok(!cJSON_GetObjectItemCaseSensitive(q, "scale_fmt"), "no scale_fmt without ue8m0");
	cJSON_Delete(q);

	/* the encoder: re-quantizing the dequantized release reproduces it */
	snprintf(out, sizeof out, "%s", tu_path("hf-fp8-requant"));
	p = plan_target(m, NULL, &e);
	size_t nq = 0;
	for (size_t i = 0; p && i < p->n; i++) {
		if (p->items[i].scale) {
			p->items[i].sch.enc = CVT_HF_FP8_BLOCK;
			nq++;
		}
	}
	p->layout = CVT_HF_FP8;
	ok(p && !write_plan(p, out, 3, &e), "re-quantize %zu FP8 weights from their f32 values: %s", nq, e.msg);
	cvt_hf_plan_free(p);
	same_tensors(m, out, "fp8 block encoder gives back every weight and scale byte of the release");

	/* ue8m0 */
	snprintf(out, sizeof out, "%s", tu_path("hf-ue8m0"));
	p = plan_target(m, "vllm-fp8-block-ue8m0", &e);
	size_t lossy = 0;
	for (size_t i = 0; p && i < p->n; i++)
		lossy += (size_t)p->items[i].lossy_note;
	ok(p && lossy > 0, "free scales → ue8m0 is marked lossy (%zu weights)", lossy);
	ok(p && !write_plan(p, out, 2, &e), "vllm-fp8-block-ue8m0: %s", e.msg);
	cvt_hf_plan_free(p);
	q = quant_config(out);
	is_string("ue8m0", q ? qf_json_get_str(q, "scale_fmt") : NULL, "scale_fmt ue8m0");
	cJSON_Delete(q);
	qf_st *st = NULL, *src = NULL;
	if (!qf_st_open(out, &st, &e) && !qf_st_open(m, &src, &e)) {
		size_t npow = 0, nsc = 0, nshape = 0, nerr = 0;
		for (size_t i = 0; i < qf_st_count(st); i++) {
			const qf_tensor *t = qf_st_get(st, i);
			if (!qf_str_ends_with(t->name, "_scale_inv"))
				continue;
			nsc++;
			const qf_tensor *o = qf_st_find(src, t->name);
			nshape += o && o->ndim == t->ndim && !memcmp(o->shape, t->shape, 2 * sizeof t->shape[0]) && t->dtype == QF_F32;
			for (uint64_t k = 0; k < t->nelems; k++) {
				float f, g;
				memcpy(&f, t->data + 4 * k, 4);
				memcpy(&g, o->data + 4 * k, 4);
				int ex;
				npow += f == 0.0f || frexpf(f, &ex) == 0.5f;
				/* the release's block amax ≤ 448·g, so the power of two at or above it is ≤ 2g */
				nerr += !(f >= g * 0.999f && f <= 2.0f * g);
			}
		}
		size_t tot = 0;
		for (size_t i = 0; i < qf_st_count(st); i++)
			if (qf_str_ends_with(qf_st_get(st, i)->name, "_scale_inv"))
				tot += qf_st_get(st, i)->nelems;
		ok(nsc == 232 && nshape == nsc, "232 weight_scale_inv, F32, the release's shapes (%zu/%zu)", nshape, nsc);
		is_int((long long)tot, (long long)npow, "every ue8m0 scale is a power of two");
		is_int(0, (long long)nerr, "each scale lies in [release scale, 2 × release scale]");
	} else {
		ok(0, "open: %s", e.msg);
	}
	qf_st_close(st);
	qf_st_close(src);

	/* from BF16: what vLLM loads — the release's names, dtypes and shapes */
	snprintf(out, sizeof out, "%s", tu_path("hf-fp8-from-bf16"));
	p = plan_target(bf, "vllm-fp8-block", &e);
	ok(p && !write_plan(p, out, 2, &e), "vllm-fp8-block from BF16: %s", e.msg);
	cvt_hf_plan_free(p);
	st = src = NULL;
	if (!qf_st_open(out, &st, &e) && !qf_st_open(m, &src, &e)) {
		size_t same = 0;
		for (size_t i = 0; i < qf_st_count(src); i++) {
			const qf_tensor *a = qf_st_get(src, i), *b = qf_st_find(st, a->name);
			same += b && a->dtype == b->dtype && a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof a->shape[0] * (size_t)a->ndim);
		}
		ok(same == qf_st_count(src) && qf_st_count(st) == qf_st_count(src),
		   "BF16 → FP8 has the release's %zu tensor names, dtypes and shapes (%zu match)", qf_st_count(src), same);
	}
	qf_st_close(st);
	qf_st_close(src);
}

/* ---- compressed-tensors and msModelSlim, checked from the format definitions ---------------- */

static float bf16v(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return qf_bf16_to_f32(h); }
static float f32v(const uint8_t *p) { float f; memcpy(&f, p, 4); return f; }
static float scale_at(const qf_tensor *t, uint64_t i)
{
	return t->dtype == QF_BF16 ? bf16v(t->data + 2 * i) : t->dtype == QF_F16 ? qf_f16_to_f32(*(const uint16_t *)(const void *)(t->data + 2 * i)) : f32v(t->data + 4 * i);
}

static void test_pack_known(void)
{
	/* row 0: 7.5, −7 … 7 → scale 7.5/7.5 = 1, q = 7 (7.5 rounds to 8, clamped), −7 … 7;
	 * row 1: −3.75 at column 3, zeros elsewhere → scale 0.5, q = −8 there, 0 elsewhere */
	float x[2][16] = { { 0 } };
	x[0][0] = 7.5f;
	for (int k = 1; k < 16; k++)
		x[0][k] = (float)(k - 8);
	x[1][3] = -3.75f;
	uint32_t w[2][2];
	uint8_t sc[2][2];
	for (int r = 0; r < 2; r++)
		qf_hfq_pack_row(x[r], 16, 4, 128, QF_BF16, w[r], sc[r]);
	/* element k of a row: bits 4·(k mod 8) of word k/8, stored as q + 8 */
	is_hex(0x7654321Fu, w[0][0], "row 0 word 0: codes 15,1,2,…,7 (7.5 → 7 + 8)");
	is_hex(0xFEDCBA98u, w[0][1], "row 0 word 1: codes 8 … 15");
	is_hex(0x88880888u, w[1][0], "row 1 word 0: code 0 (−8 + 8) at element 3, 8 elsewhere");
	is_hex(0x88888888u, w[1][1], "row 1 word 1: all zero values");
	is_hex(0x3F80u, (uint64_t)(sc[0][0] | sc[0][1] << 8), "row 0 scale: bf16 1.0 (absmax / 7.5)");
	is_hex(0x3F00u, (uint64_t)(sc[1][0] | sc[1][1] << 8), "row 1 scale: bf16 0.5");
	/* int8: four per word, q + 128 */
	float y[4] = { 127.5f, -127.5f, 0.0f, 1.0f };
	uint32_t w8;
	uint8_t s8[2];
	qf_hfq_pack_row(y, 4, 8, 4, QF_BF16, &w8, s8);
	is_hex(0x818000FFu, w8, "int8 pack: 127.5 → 127 (+128 = 0xFF), −127.5 → −128 (0x00), 0 → 0x80, 1 → 0x81");
}

typedef struct ctcheck {
	size_t quant, kept, bad_shape, bad_err, bad_scale;
	double maxrel;
	char first_bad[256];
} ctcheck;

static void note_bad(ctcheck *c, size_t *ctr, const char *name)
{
	if (!c->first_bad[0])
		snprintf(c->first_bad, sizeof c->first_bad, "%s", name);
	(*ctr)++;
}

/*
 * Every linear module of the BF16 reference, in the output: either kept (.weight, same bytes)
 * or quantized in its layout; the weights unpacked and dequantized here from the definitions
 * (w = (q − zp)·s) lie within half a step of the source, with the scale the rule gives.
 */
static ctcheck check_modules(const char *out, const char *ref, const char *layout, int bits, int64_t g)
{
	ctcheck c = { 0 };
	qf_st *o = NULL, *r = NULL;
	qf_err e = { { 0 } };
	if (qf_st_open(out, &o, &e) || qf_st_open(ref, &r, &e)) {
		snprintf(c.first_bad, sizeof c.first_bad, "open: %s", e.msg);
		c.bad_shape = 1;
		qf_st_close(o);
		return c;
	}
	for (size_t i = 0; i < qf_st_count(r); i++) {
		const qf_tensor *x = qf_st_get(r, i);
		if (x->ndim != 2 || !qf_str_ends_with(x->name, ".weight"))
			continue;
		char mod[256], nm[300];
		snprintf(mod, sizeof mod, "%.*s", (int)(strlen(x->name) - 7), x->name);
		int64_t N = x->shape[0], K = x->shape[1];
		const qf_tensor *kept = qf_st_find(o, x->name);
		snprintf(nm, sizeof nm, "%s.weight_packed", mod);
		const qf_tensor *pk = qf_st_find(o, nm);
		snprintf(nm, sizeof nm, "%s.weight_scale", mod);
		const qf_tensor *sc = qf_st_find(o, nm);
		snprintf(nm, sizeof nm, "%s.weight_offset", mod);
		const qf_tensor *off = qf_st_find(o, nm);
		snprintf(nm, sizeof nm, "%s.weight_shape", mod);
		const qf_tensor *ws = qf_st_find(o, nm);
		int is_int8 = kept && kept->dtype == QF_I8;
		if (kept && !is_int8 && !sc) {
			c.kept++;
			if (kept->dtype != x->dtype || kept->nbytes != x->nbytes || memcmp(kept->data, x->data, x->nbytes))
				note_bad(&c, &c.bad_shape, x->name);
			continue;
		}
		c.quant++;
		int64_t G = 1, gs = K;
		if (!strcmp(layout, "pack")) {
			G = g ? K / g : 1;
			gs = g ? g : K;
			int64_t sh[2] = { 0, 0 };
			if (ws && ws->dtype == QF_I64 && ws->nelems == 2)
				memcpy(sh, ws->data, 16);
			if (!pk || pk->dtype != QF_I32 || pk->shape[0] != N || pk->shape[1] != K * bits / 32 || !sc ||
			    sc->dtype != QF_BF16 || sc->shape[0] != N || sc->shape[1] != G || sh[0] != N || sh[1] != K || kept) {
				if (!c.first_bad[0])
					diag("%s: packed %s, scale %s, shape %lld×%lld, kept %s", x->name, pk ? qf_dtype_name(pk->dtype) : "-",
					     sc ? qf_dtype_name(sc->dtype) : "-", (long long)sh[0], (long long)sh[1], kept ? "yes" : "no");
				note_bad(&c, &c.bad_shape, x->name);
				continue;
			}
		} else if (!strcmp(layout, "int8")) {
			if (!is_int8 || kept->shape[0] != N || kept->shape[1] != K || !sc || sc->dtype != QF_BF16 || sc->shape[0] != N ||
			    sc->shape[1] != 1 || pk || ws) {
				note_bad(&c, &c.bad_shape, x->name);
				continue;
			}
		} else { /* msModelSlim */
			if (!is_int8 || kept->shape[0] != N || kept->shape[1] != K || !sc || sc->dtype != QF_F32 || sc->shape[0] != N ||
			    sc->shape[1] != 1 || !off || off->dtype != QF_F32 || off->shape[0] != N || off->shape[1] != 1) {
				note_bad(&c, &c.bad_shape, x->name);
				continue;
			}
		}
		float half = (float)((1 << bits) - 1) / 2.0f;
		if (!strcmp(layout, "ms"))
			half = 127.0f;
		for (int64_t n = 0; n < N; n++) {
			for (int64_t j = 0; j < G; j++) {
				float amax = 0;
				for (int64_t k = j * gs; k < (j + 1) * gs; k++)
					amax = fmaxf(amax, fabsf(bf16v(x->data + 2 * (uint64_t)(n * K + k))));
				float s = scale_at(sc, (uint64_t)(n * G + j)), want = fmaxf(amax / half, 1.1920929e-07f);
				if (sc->dtype == QF_BF16)
					want = qf_bf16_to_f32(qf_f32_to_bf16(want));
				if (s != want)
					note_bad(&c, &c.bad_scale, x->name);
				for (int64_t k = j * gs; k < (j + 1) * gs; k++) {
					int q;
					if (!strcmp(layout, "pack")) {
						const uint32_t *wd = (const uint32_t *)(const void *)(pk->data + (uint64_t)n * (uint64_t)(K * bits / 32) * 4);
						uint32_t u = (wd[(k * bits) / 32] >> ((k * bits) % 32)) & ((1u << bits) - 1);
						q = (int)u - (1 << (bits - 1));
					} else {
						q = (int8_t)kept->data[n * K + k];
					}
					float zp = off ? f32v(off->data + 4 * (uint64_t)n) : 0.0f;
					float w = ((float)q - zp) * s, v = bf16v(x->data + 2 * (uint64_t)(n * K + k));
					/* nearest code, or the end code when the value lies beyond it (clamped) */
					int qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
					if (!strcmp(layout, "ms"))
						qmax = 127, qmin = -128;
					int okq = fabsf(w - v) <= 0.5f * s * 1.0001f + 1e-12f ||
						  (q == qmax && v >= ((float)qmax - 0.5f) * s) || (q == qmin && v <= ((float)qmin + 0.5f) * s);
					if (!okq)
						note_bad(&c, &c.bad_err, x->name);
					if (amax > 0 && fabs(w - v) / amax > c.maxrel)
						c.maxrel = fabs(w - v) / amax;
				}
			}
		}
	}
	qf_st_close(o);
	qf_st_close(r);
	return c;
}

/* The config group whose targets hold t, or NULL. */
static const cJSON *group_with_target(const cJSON *q, const char *t)
{
	const cJSON *gs = cJSON_GetObjectItemCaseSensitive(q, "config_groups");
	for (const cJSON *g = gs ? gs->child : NULL; g; g = g->next)
		if (json_has_str(cJSON_GetObjectItemCaseSensitive(g, "targets"), t))
			return g;
	return NULL;
}

/*
 * The scheme vLLM's CompressedTensorsConfig (and vllm-ascend's) selects for a group, from the
 * contract in research §4–5: weight-only int 4/8-bit group/channel pack-quantized → WNA16
 * (Marlin group sizes −1/channel, 32, 64, 128); int8 channel weights + dynamic per-token int8
 * acts → W8A8 int8 (vllm-ascend: W8A8_DYNAMIC); fp8 block weights + dynamic fp8 acts → W8A8Fp8.
 */
static const char *vllm_scheme(const cJSON *q, const cJSON *g)
{
	const char *fmt = qf_json_get_str(g, "format");
	if (!fmt)
		fmt = qf_json_get_str(q, "format");
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(g, "weights");
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(g, "input_activations");
	int64_t bits = 0, gsz = -1;
	int sym = 0, dyn = 1;
	qf_json_get_int(w, "num_bits", &bits);
	qf_json_get_bool(w, "symmetric", &sym);
	qf_json_get_bool(w, "dynamic", &dyn);
	const char *type = qf_json_get_str(w, "type"), *strat = qf_json_get_str(w, "strategy");
	if (!qf_json_get_int(w, "group_size", &gsz))
		gsz = -1;
	if (!type || !strat || !fmt)
		return "none";
	if (cJSON_IsNull(in) && !strcmp(fmt, "pack-quantized") && !strcmp(type, "int") && (bits == 4 || bits == 8) && !dyn &&
	    ((!strcmp(strat, "group") && (gsz == 32 || gsz == 64 || gsz == 128)) || (!strcmp(strat, "channel") && gsz == -1)))
		return bits == 4 ? "WNA16 uint4b8" : "WNA16 uint8b128";
	int64_t ib = 0;
	int idyn = 0, isym = 0;
	qf_json_get_int(in, "num_bits", &ib);
	qf_json_get_bool(in, "dynamic", &idyn);
	qf_json_get_bool(in, "symmetric", &isym);
	const char *is = cJSON_IsObject(in) ? qf_json_get_str(in, "strategy") : NULL;
	if (!strcmp(fmt, "int-quantized") && !strcmp(type, "int") && bits == 8 && !strcmp(strat, "channel") && sym && !dyn && ib == 8 &&
	    idyn && isym && is && !strcmp(is, "token"))
		return "W8A8 int8 dynamic-token";
	if (!strcmp(fmt, "float-quantized") && !strcmp(type, "float") && bits == 8 && !strcmp(strat, "block") && sym && !dyn && ib == 8 && idyn)
		return "W8A8 fp8 block";
	return "none";
}

static void test_ct(void)
{
	qf_err e = { { 0 } };
	char m[4096], bf[4096], out[4096];
	snprintf(m, sizeof m, "%s", tu_src("models/tiny-dsv3"));
	snprintf(bf, sizeof bf, "%s", tu_src("models/tiny-dsv3-bf16"));
	test_pack_known();

	static const struct {
		const char *target, *layout, *scheme;
		int bits;
		int64_t g;
	} cases[] = {
		{ "vllm-w4a16", "pack", "WNA16 uint4b8", 4, 128 },
		{ "vllm-w8a16", "pack", "WNA16 uint8b128", 8, 0 },
		{ "vllm-w8a8", "int8", "W8A8 int8 dynamic-token", 8, 0 },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		snprintf(out, sizeof out, "%s", tu_path(cases[c].target));
		cvt_hf_plan *p = plan_target(bf, cases[c].target, &e);
		size_t fb = 0;
		for (size_t i = 0; p && i < p->n; i++)
			fb += (size_t)p->items[i].fallback;
		ok(p && !write_plan(p, out, 2, &e), "%s from BF16 (%zu fallbacks): %s", cases[c].target, fb, e.msg);
		cvt_hf_plan_free(p);
		cJSON *q = quant_config(out);
		is_string("compressed-tensors", q ? qf_json_get_str(q, "quant_method") : NULL, "%s: quant_method", cases[c].target);
		is_string("compressed", q ? qf_json_get_str(q, "quantization_status") : NULL, "%s: quantization_status", cases[c].target);
		const cJSON *g = q ? group_with_target(q, "Linear") : NULL;
		is_string(cases[c].scheme, g ? vllm_scheme(q, g) : "no group targets Linear", "%s: vLLM selects %s", cases[c].target,
			  cases[c].scheme);
		const cJSON *ig = q ? cJSON_GetObjectItemCaseSensitive(q, "ignore") : NULL;
		ok(json_has_str(ig, "lm_head") && json_has_str(ig, "re:.*mlp\\.gate$"), "%s: ignore has lm_head and the routers",
		   cases[c].target);
		cJSON_Delete(q);
		ctcheck k = check_modules(out, bf, cases[c].layout, cases[c].bits, cases[c].g);
		ok(k.quant > 0 && !k.bad_shape, "%s: %zu modules quantized, %zu kept: names, dtypes, shapes%s%s", cases[c].target,
		   k.quant, k.kept, k.first_bad[0] ? "; first bad " : "", k.first_bad);
		is_int(0, (long long)k.bad_scale, "%s: every scale is the stored absmax/%.1f", cases[c].target,
		       (double)((1 << cases[c].bits) - 1) / 2);
		is_int(0, (long long)k.bad_err, "%s: unpacked and dequantized here, every weight within half a step (max %.4f of absmax)",
		       cases[c].target, k.maxrel);
		qf_st *st = NULL;
		if (!qf_st_open(out, &st, &e)) {
			is_string("pt", qf_st_metadata(st, "format"), "%s: format pt", cases[c].target);
			qf_st_close(st);
		}
	}

	/* ascend-w4a16: experts int4 g32 in the Linear group (vllm-ascend gives FusedMoE that one), the rest W8A8_DYNAMIC */
	snprintf(out, sizeof out, "%s", tu_path("ascend-w4a16"));
	cvt_hf_plan *p = plan_target(m, "ascend-w4a16", &e);
	ok(p && !write_plan(p, out, 2, &e), "ascend-w4a16 from the FP8 release: %s", e.msg);
	cvt_hf_plan_free(p);
	cJSON *q = quant_config(out);
	const cJSON *gl = q ? group_with_target(q, "Linear") : NULL;
	const cJSON *ga = q ? group_with_target(q, "re:.*self_attn\\..*") : NULL;
	is_string("WNA16 uint4b8", gl ? vllm_scheme(q, gl) : "none", "ascend-w4a16: the Linear/FusedMoE group is W4A16");
	int64_t gsz = 0;
	ok(gl && qf_json_get_int(cJSON_GetObjectItemCaseSensitive(gl, "weights"), "group_size", &gsz) && gsz == 32,
	   "ascend-w4a16: group_size 32 for the routed experts");
	is_string("W8A8 int8 dynamic-token", ga ? vllm_scheme(q, ga) : "none", "ascend-w4a16: attention is W8A8_DYNAMIC");
	is_string("mixed-precision", q ? qf_json_get_str(q, "format") : NULL, "two formats: global format mixed-precision");
	cJSON_Delete(q);
	qf_st *st = NULL;
	if (!qf_st_open(out, &st, &e)) {
		const qf_tensor *a = qf_st_find(st, "model.layers.1.mlp.experts.3.down_proj.weight_packed");
		const qf_tensor *b = qf_st_find(st, "model.layers.1.mlp.experts.3.down_proj.weight_scale");
		const qf_tensor *c = qf_st_find(st, "model.layers.1.self_attn.o_proj.weight");
		ok(a && a->dtype == QF_I32 && a->shape[0] == 256 && a->shape[1] == 12 && b && b->shape[1] == 3 && c &&
		   c->dtype == QF_I8, "expert down_proj packed [256, 96/8], scale [256, 96/32]; o_proj int8");
		qf_st_close(st);
	}

	/* float-quantized FP8 block: the release's blocks under CT's names */
	snprintf(out, sizeof out, "%s", tu_path("ct-fp8"));
	p = plan_target(m, "vllm-fp8-block-ct", &e);
	ok(p && !write_plan(p, out, 2, &e), "vllm-fp8-block-ct from the FP8 release: %s", e.msg);
	cvt_hf_plan_free(p);
	q = quant_config(out);
	gl = q ? group_with_target(q, "Linear") : NULL;
	is_string("W8A8 fp8 block", gl ? vllm_scheme(q, gl) : "none", "vllm-fp8-block-ct: vLLM selects W8A8Fp8 block");
	cJSON_Delete(q);
	qf_st *src = NULL;
	st = NULL;
	if (!qf_st_open(out, &st, &e) && !qf_st_open(m, &src, &e)) {
		size_t n = 0, same = 0;
		for (size_t i = 0; i < qf_st_count(src); i++) {
			const qf_tensor *t = qf_st_get(src, i);
			if (!qf_str_ends_with(t->name, "_scale_inv"))
				continue;
			char w[300], s2[300];
			snprintf(w, sizeof w, "%.*s", (int)(strlen(t->name) - 10), t->name);
			snprintf(s2, sizeof s2, "%.*s_scale", (int)(strlen(t->name) - 10), t->name);
			const qf_tensor *a = qf_st_find(st, w), *b = qf_st_find(st, s2), *aw = qf_st_find(src, w);
			n++;
			same += a && b && aw && a->nbytes == aw->nbytes && !memcmp(a->data, aw->data, a->nbytes) && b->nbytes == t->nbytes &&
				!memcmp(b->data, t->data, t->nbytes) && b->dtype == QF_F32;
		}
		ok(n == 232 && same == n, "every FP8 weight and its F32 block scale kept byte for byte as weight/weight_scale (%zu/%zu)",
		   same, n);
	}
	qf_st_close(st);
	qf_st_close(src);

	/* msModelSlim */
	snprintf(out, sizeof out, "%s", tu_path("ascend-w8a8-dyn"));
	p = plan_target(bf, "ascend-w8a8-dynamic", &e);
	ok(p && !write_plan(p, out, 2, &e), "ascend-w8a8-dynamic: %s", e.msg);
	cvt_hf_plan_free(p);
	char f[4200];
	snprintf(f, sizeof f, "%s/quant_model_weights.safetensors", out);
	ok(tu_exists(f), "quant_model_weights.safetensors");
	q = quant_config(out);
	ok(!q, "config.json has no quantization_config");
	cJSON_Delete(q);
	snprintf(f, sizeof f, "%s/quant_model_description.json", out);
	qf_status js;
	cJSON *d = qf_json_load(f, &e, &js);
	is_string("W8A8_DYNAMIC", d ? qf_json_get_str(d, "model_quant_type") : NULL, "model_quant_type");
	ok(d && qf_json_get_str(d, "version"), "version");
	st = NULL;
	if (d && !qf_st_open(out, &st, &e)) {
		size_t miss = 0;
		for (size_t i = 0; i < qf_st_count(st); i++)
			miss += !qf_json_get_str(d, qf_st_get(st, i)->name);
		is_int(0, (long long)miss, "quant_model_description.json has an entry for every one of %zu saved tensors", qf_st_count(st));
		is_string("W8A8_DYNAMIC", qf_json_get_str(d, "model.layers.0.self_attn.o_proj.weight"), "a linear is W8A8_DYNAMIC");
		is_string("FLOAT", qf_json_get_str(d, "model.norm.weight"), "a norm is FLOAT");
		qf_st_close(st);
	}
	cJSON_Delete(d);
	ctcheck k = check_modules(out, bf, "ms", 8, 0);
	ok(k.quant > 0 && !k.bad_shape, "msModelSlim: weight int8, weight_scale/weight_offset f32 [N,1] (%zu modules)%s%s", k.quant,
	   k.first_bad[0] ? "; first bad " : "", k.first_bad);
	is_int(0, (long long)(k.bad_scale + k.bad_err), "msModelSlim: scale absmax/127, every weight within half a step");
}

int main(void)
{
	plan_lazy();
	test_float();
	test_fp8();
	test_ct();
	return tap_failures() ? 1 : 0;
}
