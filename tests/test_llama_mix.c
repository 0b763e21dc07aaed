/*
 * llama.cpp's mixes, checked against llama.cpp itself: llama_model_quantize
 * (npm libllama, tests/llama_oracle.h) and qforge quantize --target
 * llamacpp-<mix> on the same F32 or BF16 GGUF must give every tensor the
 * same type and the same bytes, and the same general.file_type.
 * On the bundled models most rows fall back from the K-quants (widths 64,
 * 96, 172); the generated checkpoints of tests/gen_arch.h (rows multiples of
 * 256) run the K-quant paths themselves, and there the share of weights in
 * K-quants is checked, and llama.cpp loads every output.
 * llamacpp-q4_0 is llama-quantize Q4_0 with q8_0 embeddings and head, with
 * and without an imatrix (the imatrix makes ffn_down of the first n/8
 * layers q4_1); a q5_0 class profile with "imatrix_rules": "Q5_0" is
 * llama-quantize Q5_0 so.
 * Skips when the oracle is absent (fails under CI=true).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/imatrix.h"
#include "tests/gen_arch.h"
#include "tests/llama_oracle.h"
#include "tests/tap.h"
#include "tests/util.h"

static int qforge(const char *args)
{
	char cmd[16800];
	const char *q = getenv("QFORGE");
	snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null", q ? q : "./qforge", args);
	return system(cmd);
}

static long long file_type(const qf_gguf *g)
{
	uint32_t v;
	return qf_gguf_get_u32(g, "general.file_type", &v, NULL) == QF_OK ? (long long)v : -1;
}

/*
 * The least share of quantized weights (elements) that must be in a K-quant
 * on the generated models: only attn_k_b (rows of nope = 128, 4.7% of
 * dsv3-k256's quantized weights) falls back.
 */
#define K_SHARE_MIN 0.90

static int is_kquant(qf_dtype d)
{
	return d == QF_Q2_K || d == QF_Q3_K || d == QF_Q4_K || d == QF_Q5_K || d == QF_Q6_K;
}

/* llama.cpp loads the file and its logits of a few tokens are finite. */
static void loads(tl_llama *L, const char *what, const char *path)
{
	static const int32_t tok[6] = { 0, 261, 300, 97, 512, 1000 };
	float *lg = malloc(6 * GA_K256_VOCAB * sizeof *lg);
	void *m = tl_llama_load(L, path);
	int rc = m && lg && tl_llama_n_vocab(L, m) == GA_K256_VOCAB ? tl_llama_logits(L, m, tok, 6, lg) : -1;
	int finite = rc == 0;
	for (int i = 0; finite && i < 6 * GA_K256_VOCAB; i++)
		finite = lg[i] == lg[i] && lg[i] > -1e30f && lg[i] < 1e30f;
	ok(finite, "%s: llama.cpp loads qforge's file and its logits are finite (rc %d)", what, rc);
	if (m)
		tl_llama_free_model(L, m);
	free(lg);
}

enum {
	CMP_KSHARE = 1, /* the share of quantized elements in K-quants is at least K_SHARE_MIN */
	/*
	 * A class profile's fallback: where a row is not a multiple of 32, qforge
	 * keeps what convert writes and llama.cpp's Q4_0 writes F16
	 * (tensor_type_fallback); those tensors are counted apart.
	 */
	CMP_CLASS_FALLBACK = 2,
};

/* Compares two GGUFs tensor by tensor; says which differ. */
static void compare(const char *what, const char *ref, const char *ours, int flags)
{
	qf_gguf *a = NULL, *b = NULL;
	qf_err err = { { 0 } };
	if (!ok(qf_gguf_open(ref, &a, &err) == QF_OK && qf_gguf_open(ours, &b, &err) == QF_OK, "%s: both open (%s)", what,
		err.msg)) {
		qf_gguf_close(a);
		qf_gguf_close(b);
		return;
	}
	size_t n = qf_gguf_ntensors(a), types = 0, bytes = 0, quant = 0;
	double qel = 0, kel = 0; /* quantized elements, those in K-quants */
	size_t fell = 0;
	char first_t[512] = "", first_b[256] = "";
	for (size_t i = 0; i < n; i++) {
		const qf_tensor *x = qf_gguf_tensor(a, i), *y = qf_gguf_find_tensor(b, x->name);
		if ((flags & CMP_CLASS_FALLBACK) && y && x->dtype == QF_F16 && x->shape[x->ndim - 1] % 32 != 0 &&
		    qf_dtype_info(y->dtype)->block_elems == 1) {
			fell++;
			continue;
		}
		if (!y || y->dtype != x->dtype) {
			if (!types++)
				snprintf(first_t, sizeof first_t, "%s: llama.cpp %s, qforge %s", x->name, qf_dtype_name(x->dtype),
					 y ? qf_dtype_name(y->dtype) : "missing");
			continue;
		}
		quant += qf_dtype_info(x->dtype)->block_elems > 1;
		if (qf_dtype_info(x->dtype)->block_elems > 1) {
			double ne = 1;
			for (int d = 0; d < x->ndim; d++)
				ne *= (double)x->shape[d];
			qel += ne;
			kel += is_kquant(x->dtype) ? ne : 0;
		}
		if (x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes) != 0) {
			if (!bytes++)
				snprintf(first_b, sizeof first_b, "%s (%s)", x->name, qf_dtype_name(x->dtype));
		}
	}
	ok(n == qf_gguf_ntensors(b) && types == 0, "%s: all %zu tensors get llama.cpp's types%s%s%s", what, n - fell,
	   fell ? " (and the rows not multiples of 32 fall back)" : "", types ? "; first of the differing: " : "", first_t);
	ok(types == 0 && bytes == 0, "%s: every tensor's bytes identical (%zu quantized)%s%s", what, quant,
	   bytes ? "; first differing: " : "", first_b);
	is_int(file_type(a), file_type(b), "%s: general.file_type", what);
	if (flags & CMP_KSHARE)
		ok(qel > 0 && kel / qel >= K_SHARE_MIN, "%s: %.1f%% of the quantized weights are in K-quants (at least %.0f%%)",
		   what, qel > 0 ? 100 * kel / qel : 0, 100 * K_SHARE_MIN);
	qf_gguf_close(a);
	qf_gguf_close(b);
}

/*
 * An imatrix over every quantizable weight of src but skip: Σx² and counts
 * made up (expert 1 of a stack saw nothing), written to path as a GGUF
 * imatrix.  *ld gets llama-quantize's weights of it, computed here
 * independently of qforge (Σ/count, 1 for a count of 0), for
 * llama_model_quantize; free with tl_imatrix_data_free.
 */
static int make_imatrix(const char *src, const char *skip_name, const char *path, tl_imatrix_data **ld)
{
	qf_gguf *g = NULL;
	if (qf_gguf_open(src, &g, NULL) != QF_OK)
		return -1;
	qf_imatrix *m = qf_imatrix_new();
	qf_imatrix_add_dataset(m, "made-up.txt", NULL);
	size_t nt = qf_gguf_ntensors(g), k = 0;
	tl_imatrix_data *d = calloc(nt + 1, sizeof *d);
	uint64_t rs = 12345;
	for (size_t i = 0; i < nt; i++) {
		const qf_tensor *t = qf_gguf_tensor(g, i);
		size_t ln = strlen(t->name);
		if (t->ndim < 2 || ln < 7 || strcmp(t->name + ln - 7, ".weight") || !strcmp(t->name, skip_name))
			continue;
		int64_t ne0 = t->shape[t->ndim - 1], nm = t->ndim >= 3 ? t->shape[0] : 1;
		float *sum = malloc((size_t)(ne0 * nm) * sizeof *sum), *w = malloc((size_t)(ne0 * nm) * sizeof *w);
		int64_t *cnt = malloc((size_t)nm * sizeof *cnt);
		for (int64_t e = 0; e < nm; e++) {
			cnt[e] = nm > 1 && e == 1 ? 0 : 40 + e;
			for (int64_t j = 0; j < ne0; j++) {
				float u = tu_randf(&rs); /* [-1, 1) */
				sum[e * ne0 + j] = (float)cnt[e] * (0.05f + u * u * (j % 7 == 3 ? 20.0f : 1.0f));
				w[e * ne0 + j] = cnt[e] ? sum[e * ne0 + j] / (float)cnt[e] : 1.0f;
			}
		}
		qf_imatrix_add(m, t->name, ne0, nm, sum, cnt, NULL);
		d[k++] = (tl_imatrix_data){ strdup(t->name), w, (size_t)(ne0 * nm) };
		free(sum);
		free(cnt);
	}
	m->chunk_count = 10;
	m->chunk_size = 512;
	qf_err err = { { 0 } };
	int rc = qf_imatrix_write(m, path, 1, &err) == QF_OK ? 0 : -1;
	qf_imatrix_free(m);
	qf_gguf_close(g);
	*ld = d;
	return rc;
}

/*
 * A class profile with "imatrix_rules" against llama-quantize of that ftype
 * with --token-embedding-type q8_0 --output-tensor-type q8_0 (ggml type 8),
 * without and with the imatrix; with it, ffn_down of layers below
 * block_count/8 is q4_1 (Q4_0) or q5_1 (Q5_0).  q5: a profile written here
 * (q5_0 classes; no such target ships), else the target llamacpp-q4_0.
 */
static void class_mix(tl_llama *L, const char *model, const char *src, const char *imx, const tl_imatrix_data *ld, int q5)
{
	char prof[4200] = "";
	if (q5) {
		static const char json[] = "{\"name\":\"q5_0-like\",\"output\":\"gguf\",\"classes\":{\"attn\":\"q5_0\","
					   "\"expert\":\"q5_0\",\"shared_expert\":\"q5_0\",\"dense_ffn\":\"q5_0\",\"embed\":\"q8_0\","
					   "\"output\":\"q8_0\"},\"imatrix_rules\":\"Q5_0\"}";
		snprintf(prof, sizeof prof, "%s", tu_path("q5_0-like.json"));
		tu_write(prof, json, sizeof json - 1);
	}
	const char *name = q5 ? "q5_0-like profile" : "llamacpp-q4_0";
	qf_dtype lo = q5 ? QF_Q5_0 : QF_Q4_0, hi = q5 ? QF_Q5_1 : QF_Q4_1;
	for (int with = 0; with < 2; with++) {
		char ref[4200], ours[4200], what[256], args[16384];
		snprintf(ref, sizeof ref, "%s", tu_path("ref.gguf"));
		snprintf(ours, sizeof ours, "%s", tu_path("ours.gguf"));
		snprintf(what, sizeof what, "%s %s%s", model, name, with ? " --imatrix" : "");
		remove(ref);
		int rc = tl_llama_quantize_ex(L, src, ref, q5 ? 8 : 2, 2, with ? ld : NULL, 8, 8);
		snprintf(args, sizeof args, "quantize -q -f %s '%s' %s%s%s -o '%s' '%s'", q5 ? "--profile" : "--target",
			 q5 ? prof : "llamacpp-q4_0", with ? "--imatrix '" : "", with ? imx : "", with ? "'" : "", ours, src);
		int rq = qforge(args);
		if (!ok(rc == 0 && rq == 0, "%s: llama_model_quantize %s (%d) and qforge (%d) both run", what, q5 ? "Q5_0" : "Q4_0",
			rc, rq))
			continue;
		compare(what, ref, ours, CMP_CLASS_FALLBACK);
		qf_gguf *g = NULL;
		long long bc = -1;
		int nhi = 0, nlo = 0;
		if (qf_gguf_open(ours, &g, NULL) == QF_OK) {
			for (size_t i = 0; i < qf_gguf_ntensors(g); i++) {
				const qf_tensor *t = qf_gguf_tensor(g, i);
				int l = -1;
				if (!strstr(t->name, "ffn_down") || sscanf(t->name, "blk.%d.", &l) != 1)
					continue;
				nhi += t->dtype == hi;
				nlo += t->dtype == lo;
			}
			char key[128];
			uint32_t v;
			char *arch = NULL;
			qf_gguf_get_str(g, "general.architecture", &arch, NULL);
			snprintf(key, sizeof key, "%s.block_count", arch ? arch : "?");
			free(arch);
			bc = qf_gguf_get_u32(g, key, &v, NULL) == QF_OK ? (long long)v : -1;
		}
		qf_gguf_close(g);
		if (bc >= 8) /* the rule has layers to act on */
			ok(with ? nhi > 0 && nlo > 0 : nhi == 0, "%s: ffn_down %s in %d tensors, %s in %d", what,
			   qf_dtype_name(hi), nhi, qf_dtype_name(lo), nlo);
	}
}

int main(void)
{
	plan_lazy();
	tl_llama *L = tl_llama_open_tap("llama.cpp's mixes");
	if (!L)
		return tap_failures() ? 1 : 0;
	/* gen: a generated checkpoint of tests/gen_arch.h (ga_k256 + 1), 0: the bundled model */
	static const struct { const char *model, *outtype, *opt; int gen; } ms[] = {
		{ "models/stories260k-hf", "f32", "", 0 },
		{ "models/tiny-dsv3", "bf16", "", 0 },
		/* attn_kv_b is attn_v-like (use_more_bits → Q6_K in Q4_K_M/Q5_K_M) */
		{ "models/tiny-dsv3", "bf16", "--legacy-kv-b", 0 },
		{ "dsv3-k256", "bf16", "", 1 + GA_K256_DSV3 },
		{ "llama-k256", "bf16", "", 1 + GA_K256_LLAMA },
	};
	static const struct { const char *target; int ftype; } mx[] = {
		{ "llamacpp-q2_k", 10 }, { "llamacpp-q3_k_m", 12 }, { "llamacpp-q4_k_m", 15 },
		{ "llamacpp-q5_k_m", 17 }, { "llamacpp-q6_k", 18 },
	};
	for (size_t m = 0; m < sizeof ms / sizeof ms[0]; m++) {
		char src[4200], args[16384], dir[4200];
		snprintf(src, sizeof src, "%s", tu_path("src.gguf"));
		snprintf(dir, sizeof dir, "%s", ms[m].gen ? tu_path(ms[m].model) : tu_src(ms[m].model));
		if (ms[m].gen && !ok(ga_gen_k256((ga_k256)(ms[m].gen - 1), dir, 1) == 0, "%s: generated", ms[m].model))
			continue;
		snprintf(args, sizeof args, "convert -q -f %s --outtype %s -o '%s' '%s'", ms[m].opt, ms[m].outtype, src, dir);
		if (!ok(qforge(args) == 0, "%s: %s GGUF %s", ms[m].model, ms[m].outtype, ms[m].opt))
			continue;
		for (size_t k = 0; k < sizeof mx / sizeof mx[0]; k++) {
			char ref[4200], ours[4200], what[256];
			snprintf(ref, sizeof ref, "%s", tu_path("ref.gguf"));
			snprintf(ours, sizeof ours, "%s", tu_path("ours.gguf"));
			snprintf(what, sizeof what, "%s%s%s %s", ms[m].model, *ms[m].opt ? " " : "", ms[m].opt, mx[k].target);
			if (mx[k].ftype == 15) /* kept: the same mix with an imatrix must differ from it */
				snprintf(ours, sizeof ours, "%s", tu_path("plain.gguf"));
			remove(ref);
			int rc = tl_llama_quantize(L, src, ref, mx[k].ftype, 2);
			snprintf(args, sizeof args, "quantize -q -f --target %s -o '%s' '%s'", mx[k].target, ours, src);
			int rq = qforge(args);
			if (!ok(rc == 0 && rq == 0, "%s: llama_model_quantize (%d) and qforge quantize (%d) both run", what, rc, rq))
				continue;
			compare(what, ref, ours, ms[m].gen ? CMP_KSHARE : 0);
			if (ms[m].gen)
				loads(L, what, ours);
		}
		/*
		 * With an importance matrix: llama_model_quantize given Σx²/count per
		 * column (per expert), qforge quantize --imatrix given the GGUF imatrix.
		 * One weight has no entry (quantized without); one expert saw nothing.
		 */
		char imx[4200];
		snprintf(imx, sizeof imx, "%s", tu_path("imatrix.gguf"));
		tl_imatrix_data *ld = NULL;
		const char *skip_name = m == 0 || ms[m].gen == 1 + GA_K256_LLAMA ? "blk.1.attn_q.weight" : "blk.1.attn_q_a.weight";
		if (!ok(make_imatrix(src, skip_name, imx, &ld) == 0, "%s: a GGUF imatrix of every weight but %s", ms[m].model,
			skip_name)) {
			tl_imatrix_data_free(ld);
			continue;
		}
		for (size_t k = 0; k < sizeof mx / sizeof mx[0]; k++) {
			char ref[4200], ours[4200], what[256];
			snprintf(ref, sizeof ref, "%s", tu_path("ref.gguf"));
			snprintf(ours, sizeof ours, "%s", tu_path("ours.gguf"));
			snprintf(what, sizeof what, "%s%s%s %s --imatrix", ms[m].model, *ms[m].opt ? " " : "", ms[m].opt,
				 mx[k].target);
			remove(ref);
			int rc = tl_llama_quantize_imatrix(L, src, ref, mx[k].ftype, 2, ld);
			snprintf(args, sizeof args, "quantize -q -f --target %s --imatrix '%s' -o '%s' '%s'", mx[k].target, imx,
				 ours, src);
			int rq = qforge(args);
			if (!ok(rc == 0 && rq == 0, "%s: both run (%d, %d)", what, rc, rq))
				continue;
			compare(what, ref, ours, ms[m].gen ? CMP_KSHARE : 0);
			if (ms[m].gen)
				loads(L, what, ours);
			if (mx[k].ftype == 15) {
				qf_gguf *a = NULL, *b = NULL;
				qf_gguf_open(tu_path("plain.gguf"), &a, NULL);
				qf_gguf_open(ours, &b, NULL);
				const qf_tensor *x = a ? qf_gguf_find_tensor(a, "blk.0.ffn_gate.weight") : NULL;
				const qf_tensor *y = b ? qf_gguf_find_tensor(b, "blk.0.ffn_gate.weight") : NULL;
				ok(x && y && x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) != 0,
				   "%s: the imatrix changes blk.0.ffn_gate.weight's bytes", what);
				qf_gguf_close(a);
				qf_gguf_close(b);
			}
		}
		class_mix(L, ms[m].model, src, imx, ld, 0);
		if (ms[m].gen)
			class_mix(L, ms[m].model, src, imx, ld, 1);
		tl_imatrix_data_free(ld);
	}
	tl_llama_close(L);
	return tap_failures() ? 1 : 0;
}
