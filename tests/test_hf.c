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
	ok(json_has_str(ig, "lm_head") && json_has_str(ig, "model.layers.4.eh_proj") &&
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

int main(void)
{
	plan_lazy();
	test_float();
	test_fp8();
	return tap_failures() ? 1 : 0;
}
