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

int main(void)
{
	plan_lazy();
	test_float();
	return tap_failures() ? 1 : 0;
}
