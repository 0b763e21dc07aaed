/*
 * verify: the reference forward pass reproduces the fixtures' fp64
 * reference logits (max |Δ| ≤ 1e-3 × max |logit|) and perplexities
 * (relative ≤ 1e-3) from the HF original and from our F32 GGUF; results do
 * not depend on the thread count or on streaming vs cached weights; the
 * integrity check catches any flipped bit; per-tensor errors are exact
 * where they must be.
 */
#include "config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "formats/gguf.h"
#include "formats/packed.h"
#include "formats/qformat.h"
#include "formats/textfile.h"
#include "tests/tap.h"
#include "tests/util.h"
#include "forward/forward.h"
#include "forward/kernels.h"
#include "verify/verify.h"

#define LOGIT_TOL_OF_MAX 1e-3   /* the bound: max |Δ| ≤ 1e-3 × max |logit| */
#define PPL_REL_TOL 1e-3

static const struct fixture {
	const char *name, *model;
	int64_t vocab;
	double ppl;
} fixtures[] = {
	{ "stories260k-hf", "models/stories260k-hf", 512, 5.88723600465909 },
	{ "tiny-dsv3", "models/tiny-dsv3", 1024, 18.706541467721422 },
};

static void *read_all(const char *rel, size_t *n)
{
	return tu_read(tu_src(rel), n);
}

static void check_logits(const struct fixture *f, const char *path, const char *how, int threads, uint64_t budget)
{
	char p[256];
	size_t nt = 0, nl = 0;
	snprintf(p, sizeof p, "tests/data/reference/ref-tokens-%s.i32", f->name);
	int32_t *tok = read_all(p, &nt);
	snprintf(p, sizeof p, "tests/data/reference/ref-logits-%s.f32", f->name);
	float *ref = read_all(p, &nl);
	int64_t T = (int64_t)(nt / 4);
	fwd_model *m = NULL;
	qf_err err = { { 0 } };
	qf_status s = fwd_model_open(path, threads, budget, &m, &err);
	float *lg = malloc((size_t)(T * f->vocab) * sizeof *lg);
	int64_t *want = malloc((size_t)T * sizeof *want);
	for (int64_t i = 0; i < T; i++)
		want[i] = i;
	if (!s)
		s = fwd_forward(m, tok, T, want, T, lg, &err);
	double maxd = 0, maxl = 0;
	int64_t top1 = 0;
	for (int64_t i = 0; !s && i < T; i++) {
		int64_t a = 0, b = 0;
		for (int64_t v = 0; v < f->vocab; v++) {
			double d = fabs((double)lg[i * f->vocab + v] - ref[i * f->vocab + v]);
			maxd = d > maxd ? d : maxd;
			maxl = fabs(ref[i * f->vocab + v]) > maxl ? fabs(ref[i * f->vocab + v]) : maxl;
			if (lg[i * f->vocab + v] > lg[i * f->vocab + a])
				a = v;
			if (ref[i * f->vocab + v] > ref[i * f->vocab + b])
				b = v;
		}
		top1 += a == b;
	}
	ok(s == QF_OK && T == 512 && maxd <= LOGIT_TOL_OF_MAX * maxl,
	   "%s from %s (%d thread%s, %s): logits at all %lld positions within %.0e × max |logit| (max |Δ| %.2e, max |logit| %.2f, top-1 %lld/%lld) %s",
	   f->name, how, threads, threads == 1 ? "" : "s", budget ? "cached" : "streamed", (long long)T, LOGIT_TOL_OF_MAX,
	   maxd, maxl, (long long)top1, (long long)T, err.msg);
	fwd_model_free(m);
	free(lg);
	free(want);
	free(tok);
	free(ref);
}

static qf_status write(const char *src, const char *out, int packed, qf_dtype ot, int legacy, qf_err *err)
{
	cvt_options o = { .outtype = ot, .threads = 2, .legacy_kv_b = legacy };
	cvt_plan *p = NULL;
	cvt_write_opts wo = { .packed = packed, .force = 1, .threads = 2 };
	qf_status s = cvt_plan_open(src, &o, &p, err);
	if (!s)
		s = cvt_write(p, out, &wo, NULL, err);
	cvt_plan_free(p);
	return s;
}

/* Logits of the first T tokens of the eval text. */
static float *logits_of(const char *path, const int32_t *tok, int64_t T, int64_t V, int threads, uint64_t budget,
			qf_err *err)
{
	fwd_model *m = NULL;
	float *lg = malloc((size_t)(T * V) * sizeof *lg);
	int64_t *want = malloc((size_t)T * sizeof *want);
	for (int64_t i = 0; i < T; i++)
		want[i] = i;
	qf_status s = fwd_model_open(path, threads, budget, &m, err);
	if (!s)
		s = fwd_forward(m, tok, T, want, T, lg, err);
	fwd_model_free(m);
	free(want);
	if (s) {
		free(lg);
		return NULL;
	}
	return lg;
}

static double max_diff(const float *a, const float *b, int64_t n)
{
	double d = 0;
	for (int64_t i = 0; i < n; i++)
		d = fabs((double)a[i] - b[i]) > d ? fabs((double)a[i] - b[i]) : d;
	return d;
}

static void check_ppl(const struct fixture *f, const char *path, const char *how)
{
	char p[256];
	size_t n = 0;
	snprintf(p, sizeof p, "tests/data/tokens/eval-a.%s.ids", f->name);
	int32_t *ids = tu_read_ids(tu_src(p), &n);
	fwd_model *m = NULL;
	vfy_ppl r;
	qf_err err = { { 0 } };
	qf_status s = fwd_model_open(path, 2, 1u << 30, &m, &err);
	if (!s)
		s = vfy_perplexity(&m, 1, ids, n, 128, ids[0], 0, NULL, NULL, &r, &err);
	double rel = s ? 1 : fabs(r.ppl - f->ppl) / f->ppl;
	ok(s == QF_OK && rel <= PPL_REL_TOL && r.n == n / 128 * 63,
	   "%s from %s: perplexity %.5f vs the reference %.5f (relative %.1e ≤ %.0e, %zu positions) %s", f->name, how, r.ppl,
	   f->ppl, rel, PPL_REL_TOL, r.n, err.msg);
	fwd_model_free(m);
	free(ids);
}

/* The metrics, bit for bit. */
static int same_ppl(const vfy_ppl *a, const vfy_ppl *b)
{
	return a->n == b->n && memcmp(&a->ppl, &b->ppl, offsetof(vfy_ppl, n) - offsetof(vfy_ppl, ppl)) == 0;
}

/*
 * Reference and candidate in lockstep, chunk-major (cached, or streamed one
 * chunk at a time) and layer-major (streamed, a batch of chunks per layer
 * under a budget that holds a few chunks but not the weights): the same
 * bits.
 */
static void layer_major_tests(void)
{
	qf_err err = { { 0 } };
	const char *cand = tu_path("lm-bf16.gguf");
	size_t n = 0;
	int32_t *ids = tu_read_ids(tu_src("tests/data/tokens/eval-a.tiny-dsv3.ids"), &n);
	ok(write(tu_src("models/tiny-dsv3"), cand, 0, QF_BF16, 0, &err) == QF_OK, "BF16 candidate written: %s", err.msg);
	fwd_model *probe = NULL;
	uint64_t budget = 0, weights = 0;
	if (fwd_model_open(cand, 1, 0, &probe, &err) == QF_OK) {
		budget = fwd_token_bytes(probe) * 128 * 5 / 2; /* two chunks of 128 and a half */
		weights = fwd_model_weight_bytes(probe);
	}
	fwd_model_free(probe);
	static const struct { uint64_t mem; const char *how; int64_t seqs; } runs[] = {
		{ 1u << 30, "cached, chunk-major", 1 }, { 0, "streamed, chunk by chunk", 1 }, { 1, "streamed, layer-major", 2 }
	};
	vfy_ppl res[3][2];
	int fine = 1;
	for (int r = 0; r < 3; r++) {
		uint64_t mem = runs[r].mem == 1 ? budget : runs[r].mem;
		fwd_model *m[2] = { NULL, NULL };
		qf_status s = fwd_model_open(tu_src("models/tiny-dsv3"), 2, mem, &m[0], &err);
		if (!s)
			s = fwd_model_open(cand, 3, mem, &m[1], &err);
		int64_t seqs = s ? 0 : fwd_model_batch_seqs(m[1], 128);
		if (!s)
			s = vfy_perplexity(m, 2, ids, n, 128, ids[0], 12, NULL, NULL, res[r], &err);
		ok(s == QF_OK && seqs == runs[r].seqs && res[r][1].kld > 0,
		   "%s: %lld chunk(s) per batch, PPL %.5f / %.5f, KLD %.2e %s", runs[r].how, (long long)seqs, res[r][0].ppl,
		   res[r][1].ppl, res[r][1].kld, err.msg);
		fine &= s == QF_OK && (r == 0 || (same_ppl(&res[r][0], &res[0][0]) && same_ppl(&res[r][1], &res[0][1])));
		fwd_model_free(m[0]);
		fwd_model_free(m[1]);
	}
	ok(fine && weights > budget, "layer-major under a %.1f MB budget (weights %.1f MB) gives chunk-major's metrics bit for bit",
	   (double)budget / 1e6, (double)weights / 1e6);
	free(ids);
}

static void flip_bit(const char *path, uint64_t off, int bit)
{
	FILE *fp = fopen(path, "r+b");
	fseek(fp, (long)off, SEEK_SET);
	int c = fgetc(fp);
	fseek(fp, (long)off, SEEK_SET);
	fputc(c ^ (1 << bit), fp);
	fclose(fp);
}

/*
 * Hashes switched off: one broken hash key (renamed away, or one bit turning U64 into I64)
 * must leave the other two checking, and a GGUF with none says it was not checked.
 */
static const struct key_case {
	const char *what;
	const char *keys; /* the keys broken, '|'-separated */
	int mistype;      /* flip the value type U64 → I64 (one bit) instead of renaming the key */
	int flip_data;    /* also flip a bit in the first tensor's data */
	const char *caught; /* the mismatch that must be reported, by name */
	int hashed;
} key_cases[] = {
	{ "tensor_xxh64 U64 → I64", "qforge.tensor_xxh64", 1, 1, "(all tensor data)", 1 },
	{ "tensor_xxh64 missing", "qforge.tensor_xxh64", 0, 1, "(all tensor data)", 1 },
	{ "data_xxh64 U64 → I64", "qforge.data_xxh64", 1, 1, "token_embd.weight", 1 },
	{ "data_xxh64 missing", "qforge.data_xxh64", 0, 1, "token_embd.weight", 1 },
	{ "meta_xxh64 missing", "qforge.meta_xxh64", 0, 1, "token_embd.weight", 1 },
	{ "tensor and data hashes missing", "qforge.tensor_xxh64|qforge.data_xxh64", 0, 0, "(metadata and tensor table)", 1 },
	{ "no qforge hashes at all", "qforge.tensor_xxh64|qforge.data_xxh64|qforge.meta_xxh64", 0, 1, NULL, 0 },
};

static void hash_key_tests(const char *g)
{
	size_t len;
	uint8_t *orig = tu_read(g, &len);
	for (size_t c = 0; orig && c < sizeof key_cases / sizeof key_cases[0]; c++) {
		const struct key_case *k = &key_cases[c];
		uint8_t *b = malloc(len);
		memcpy(b, orig, len);
		char keys[128];
		snprintf(keys, sizeof keys, "%s", k->keys);
		for (char *key = strtok(keys, "|"); key; key = strtok(NULL, "|")) {
			uint8_t *at = memmem(b, len, key, strlen(key));
			if (!at)
				continue;
			if (k->mistype) /* u32 type after the key; arrays: then the u32 element type */
				at[strlen(key) + (at[strlen(key)] == 9 ? 4 : 0)] ^= 1;
			else
				at[strlen(key) - 1] = 'X'; /* another key of the same length */
		}
		qf_gguf *gg = NULL;
		qf_err err = { { 0 } };
		if (k->flip_data && qf_gguf_open(g, &gg, &err) == QF_OK) {
			b[qf_gguf_tensor(gg, 0)->offset + 3] ^= 4;
			qf_gguf_close(gg);
		}
		const char *p = tu_path("keys.gguf");
		tu_write(p, b, len);
		vfy_integrity r;
		qf_status s = vfy_integrity_check(p, &r, &err);
		int found = 0, broken = 0;
		for (size_t i = 0; s == QF_OK && i < r.nbad; i++) {
			found |= k->caught && strcmp(r.bad[i].name, k->caught) == 0;
			broken |= r.bad[i].what[0] != 0;
		}
		if (k->hashed)
			ok(s == QF_OK && r.hashed && found && broken,
			   "%s: still checked, the key reported and the flip caught by %s (%zu findings) %s", k->what, k->caught,
			   s ? 0 : r.nbad, err.msg);
		else
			ok(s == QF_OK && !r.hashed && r.unchecked && r.nbad == 0, "%s: reported as not checked (%s)", k->what,
			   s == QF_OK && r.unchecked ? r.unchecked : err.msg);
		vfy_integrity_free(&r);
		free(b);
	}
	free(orig);
}

/* ---- bundle tars: names as tar -x gives them, every member listed, no duplicates ---------- */

typedef struct tarbuf {
	uint8_t *p;
	size_t n;
} tarbuf;

/* One ustar header (POSIX magic, so a prefix counts) and its data, padded. */
static void tar_put(tarbuf *t, const char *name, const char *prefix, char type, const void *data, size_t len)
{
	t->p = realloc(t->p, t->n + 512 + (len + 511) / 512 * 512);
	uint8_t *h = t->p + t->n;
	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "0000644");
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)len);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = (uint8_t)type;
	if (type == '2')
		snprintf((char *)h + 157, 100, "/etc/hostname");
	memcpy(h + 257, "ustar\0" "00", 8);
	if (prefix)
		snprintf((char *)h + 345, 155, "%s", prefix);
	unsigned sum = 0;
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	char ck[16];
	snprintf(ck, sizeof ck, "%06o", sum & 0777777);
	memcpy(h + 148, ck, 7);
	memcpy(h + 512, data, len);
	memset(h + 512 + len, 0, (len + 511) / 512 * 512 - len);
	t->n += 512 + (len + 511) / 512 * 512;
}

/* A PAX extended header giving the next member this path. */
static void tar_pax(tarbuf *t, char type, const char *path)
{
	char rec[256];
	int len = (int)strlen(path) + 9; /* "NN path=" + path + "\n", two digits */
	len += len >= 100 ? 1 : 0;
	snprintf(rec, sizeof rec, "%d path=%s\n", len, path);
	tar_put(t, "./PaxHeaders/x", NULL, type, rec, strlen(rec));
}

static const struct tar_case {
	const char *what, *want;
} tar_cases[] = {
	{ "the members of a valid bundle", NULL },
	{ "a second tensors.bin at the end", "'tensors.bin' appears twice" },
	{ "a second manifest.json at the end", "'manifest.json' appears twice" },
	{ "tensors.bin under a ustar prefix", "'sub/tensors.bin' is not at the top level" },
	{ "a PAX path ../../etc/hostname", "'../../etc/hostname' is not at the top level" },
	{ "a PAX path renaming junk to tensors.bin", "'tensors.bin' appears twice" },
	{ "a PAX global header with a path", "a path or size in a global PAX header" },
	{ "a symbolic link named tokenizer.json", "is a symbolic link" },
	{ "a member files[] does not list", "'extra.txt' is not listed in manifest.json's files[]" },
	{ "a listed member missing", "file 'tokenizer.json' listed in manifest.json is missing" },
	{ "a folder member", "is a folder" },
};

static void bundle_tar_tests(const char *folder)
{
	static const char *const names[] = { "manifest.json", "tensors.bin", "metadata.gguf", "config.json",
					     "tokenizer.json", "tokenizer_config.json", "generation_config.json" };
	uint8_t *data[7];
	size_t len[7];
	char p[4200];
	for (int i = 0; i < 7; i++) {
		snprintf(p, sizeof p, "%s/%s", folder, names[i]);
		data[i] = tu_read(p, &len[i]);
	}
	for (size_t c = 0; c < sizeof tar_cases / sizeof tar_cases[0]; c++) {
		tarbuf t = { NULL, 0 };
		for (int i = 0; i < 7; i++) {
			if (c == 3 && i == 1) {
				tar_put(&t, names[i], "sub", '0', data[i], len[i]);
				continue;
			}
			if (c == 4 && i == 2)
				tar_pax(&t, 'x', "../../etc/hostname");
			if (c == 7 && i == 4) {
				tar_put(&t, names[i], NULL, '2', "", 0);
				continue;
			}
			if (c == 9 && i == 4)
				continue;
			tar_put(&t, names[i], NULL, '0', data[i], len[i]);
		}
		if (c == 1)
			tar_put(&t, names[1], NULL, '0', data[1], len[1]);
		if (c == 2)
			tar_put(&t, names[0], NULL, '0', data[0], len[0]);
		if (c == 5) {
			tar_pax(&t, 'x', "tensors.bin");
			tar_put(&t, "junk.bin", NULL, '0', data[1], len[1]);
		}
		if (c == 6) {
			tar_pax(&t, 'g', "evil");
			tar_put(&t, "x", NULL, '0', "", 0);
		}
		if (c == 8)
			tar_put(&t, "extra.txt", NULL, '0', "hi", 2);
		if (c == 10)
			tar_put(&t, "sub/", NULL, '5', "", 0);
		t.p = realloc(t.p, t.n + 1024);
		memset(t.p + t.n, 0, 1024);
		const char *tp = tu_path("case.tar");
		tu_write(tp, t.p, t.n + 1024);
		free(t.p);
		qf_pk *pk = NULL;
		qf_err err = { { 0 } };
		qf_status s = qf_pk_open(tp, qf_fmt_bundle_sizer, &pk, &err);
		if (!tar_cases[c].want)
			ok(s == QF_OK && qf_pk_ntensors(pk) == 70, "bundle tar, %s: opens %s", tar_cases[c].what, err.msg);
		else
			ok(s == QF_EFORMAT && !pk && strstr(err.msg, tar_cases[c].want), "bundle tar, %s: refused (%s)",
			   tar_cases[c].what, err.msg);
		qf_pk_close(pk);
	}
	for (int i = 0; i < 7; i++)
		free(data[i]);
}

/* Folder bundles: what files[] does not list is refused, the manifest is hashed, v1 says what it misses. */
static void bundle_manifest_tests(const char *folder)
{
	char p[4200];
	qf_err err = { { 0 } };
	qf_pk *pk = NULL;
	snprintf(p, sizeof p, "%s/extra.txt", folder);
	tu_write(p, "hi", 2);
	ok(qf_pk_open(folder, qf_fmt_bundle_sizer, &pk, &err) == QF_EFORMAT && strstr(err.msg, "'extra.txt' is not listed"),
	   "bundle folder: an unlisted file is refused (%s)", err.msg);
	remove(p);
	/* a manifest edit that keeps every size and rule (a class renamed) is caught by the manifest hash */
	snprintf(p, sizeof p, "%s/manifest.json", folder);
	size_t n;
	uint8_t *m = tu_read(p, &n), *mm = malloc(n);
	memcpy(mm, m, n);
	uint8_t *at = memmem(mm, n, "\"class\":\t\"attn\"", 15);
	if (at)
		memcpy(at + 10, "norm", 4);
	tu_write(p, mm, n);
	vfy_integrity r;
	memset(&err, 0, sizeof err);
	qf_status s = vfy_integrity_check(folder, &r, &err);
	ok(at && s == QF_OK && r.nbad == 1 && strcmp(r.bad[0].name, "(manifest.json)") == 0,
	   "bundle: a class edited in manifest.json is caught by its own hash %s", err.msg);
	vfy_integrity_free(&r);
	/* version 1 (no manifest_xxh64): still read, and verify says the manifest was not checked */
	at = memmem(m, n, "\"version\":\t2", 12);
	uint8_t *h = memmem(m, n, "\t\"manifest_xxh64\":\t\"", 20);
	if (at && h) {
		at[11] = '1';
		memset(h, ' ', 20 + 16 + 2); /* the key, its value and the comma become spaces */
	}
	tu_write(p, m, n);
	memset(&err, 0, sizeof err);
	s = vfy_integrity_check(folder, &r, &err);
	ok(at && h && s == QF_OK && r.nbad == 0 && r.hashed && r.unchecked && strstr(r.unchecked, "version 1"),
	   "a version 1 bundle is read and says its manifest was not checked (%s) %s", r.unchecked ? r.unchecked : "",
	   err.msg);
	vfy_integrity_free(&r);
	free(mm);
	free(m);
}

static void integrity_tests(void)
{
	qf_err err = { { 0 } };
	const char *g = tu_path("int.gguf");
	ok(write(tu_src("models/tiny-dsv3"), g, 0, QF_DTYPE_NONE, 0, &err) == QF_OK, "wrote a GGUF: %s", err.msg);
	vfy_integrity r;
	ok(vfy_integrity_check(g, &r, &err) == QF_OK && r.hashed && r.nbad == 0 && r.checked == 70,
	   "a fresh GGUF: all 70 tensor hashes match");
	vfy_integrity_free(&r);
	/* flip single bits: inside tensor data (sampled all over) and inside the metadata */
	qf_gguf *gg = NULL;
	qf_gguf_open(g, &gg, &err);
	uint64_t rs = 99;
	int caught = 0, tries = 0, named = 0;
	for (int k = 0; k < 64 && gg; k++) {
		const qf_tensor *t = qf_gguf_tensor(gg, (size_t)(tu_rand(&rs) % qf_gguf_ntensors(gg)));
		uint64_t off = t->offset + tu_rand(&rs) % t->nbytes;
		int bit = (int)(tu_rand(&rs) % 8);
		char name[128];
		snprintf(name, sizeof name, "%s", t->name);
		flip_bit(g, off, bit);
		memset(&err, 0, sizeof err);
		qf_status s = vfy_integrity_check(g, &r, &err);
		tries++;
		caught += s == QF_OK && r.nbad >= 1;
		named += s == QF_OK && r.nbad >= 1 && strcmp(r.bad[0].name, name) == 0;
		vfy_integrity_free(&r);
		flip_bit(g, off, bit);
	}
	qf_gguf_close(gg);
	ok(tries == 64 && caught == tries && named == tries, "64 single-bit flips in tensor data: all caught, each naming its tensor");
	/* metadata: the value of general.name */
	size_t len;
	uint8_t *bytes = tu_read(g, &len);
	uint8_t *at = memmem(bytes, len, "tiny-dsv3", 9);
	flip_bit(g, (uint64_t)(at - bytes) + 2, 0);
	memset(&err, 0, sizeof err);
	qf_status s = vfy_integrity_check(g, &r, &err);
	ok(s == QF_OK && r.nbad == 1 && strstr(r.bad[0].name, "metadata"), "a flipped bit in a metadata value is caught");
	vfy_integrity_free(&r);
	flip_bit(g, (uint64_t)(at - bytes) + 2, 0);
	free(bytes);
	hash_key_tests(g);
	/* bundles: tensor data, and metadata.gguf */
	char bdir[1024]; /* tu_path buffers rotate */
	snprintf(bdir, sizeof bdir, "%s", tu_path("int.qfpack"));
	const char *b = bdir;
	ok(write(tu_src("models/tiny-dsv3"), b, 1, QF_DTYPE_NONE, 0, &err) == QF_OK, "wrote a bundle: %s", err.msg);
	ok(vfy_integrity_check(b, &r, &err) == QF_OK && r.nbad == 0 && r.checked == 70 + 5 && !r.unchecked,
	   "a fresh bundle: 70 tensor, 5 file and the manifest's hashes match");
	vfy_integrity_free(&r);
	bundle_tar_tests(b);
	bundle_manifest_tests(b);
	char p[4200];
	snprintf(p, sizeof p, "%s/tensors.bin", b);
	flip_bit(p, 5000, 3);
	memset(&err, 0, sizeof err);
	s = vfy_integrity_check(b, &r, &err);
	ok(s == QF_OK && r.nbad == 2 && strcmp(r.bad[0].name, "blk.0.attn_norm.weight") != 0, "a flipped bit in tensors.bin is caught (%s)",
	   r.nbad ? r.bad[0].name : "");
	vfy_integrity_free(&r);
	flip_bit(p, 5000, 3);
	snprintf(p, sizeof p, "%s/metadata.gguf", b);
	flip_bit(p, 200, 1);
	s = vfy_integrity_check(b, &r, &err);
	ok(s == QF_OK && r.nbad == 1 && strstr(r.bad[0].name, "metadata.gguf"), "a flipped bit in metadata.gguf is caught");
	vfy_integrity_free(&r);
}

static void tensor_error_tests(void)
{
	qf_err err = { { 0 } };
	cvt_options o = { .outtype = QF_F32, .threads = 2, .allow_nonfinite = 1 };
	cvt_plan *ref = NULL, *cand = NULL;
	const char *g = tu_path("bf16.gguf");
	vfy_terr *e = NULL;
	size_t n = 0;
	qf_status s = write(tu_src("models/tiny-dsv3"), g, 0, QF_DTYPE_NONE, 0, &err);
	if (!s)
		s = cvt_plan_open(tu_src("models/tiny-dsv3"), &o, &ref, &err);
	if (!s)
		s = cvt_plan_open(g, &o, &cand, &err);
	if (!s)
		s = vfy_tensor_errors(cand, ref, 3, &e, &n, &err);
	int within = s == QF_OK && n == 70;
	for (size_t i = 0; within && i < n; i++)
		within = !e[i].problem && e[i].rel_rms <= 0x1p-8 && e[i].cosine > 0.9999;
	ok(within, "BF16 GGUF vs the FP8 original: every tensor within BF16 rounding (rel-RMS ≤ 2^-8) %s", err.msg);
	free(e);
	cvt_plan_free(cand);
	cvt_plan_free(ref);
}

int main(void)
{
	plan_lazy();
	qf_err err = { { 0 } };
	for (size_t i = 0; i < 2; i++) {
		const struct fixture *f = &fixtures[i];
		char g[64];
		snprintf(g, sizeof g, "%s-f32.gguf", f->name);
		check_logits(f, tu_src(f->model), "the HF checkpoint", 2, 1u << 30);
		check_logits(f, tu_src(f->model), "the HF checkpoint", 1, 0);
		ok(write(tu_src(f->model), tu_path(g), 0, QF_F32, 0, &err) == QF_OK, "F32 GGUF written: %s", err.msg);
		check_logits(f, tu_path(g), "our F32 GGUF", 3, 1u << 30);
		check_ppl(f, tu_src(f->model), "the HF checkpoint");
		check_ppl(f, tu_path(g), "our F32 GGUF");
	}
	/* every kernel this CPU runs (AVX-512, AVX2/FMA, portable) stays within the reference bounds */
	static const char *isa[] = { "avx512", "avx2", "portable" };
	for (size_t i = 0; i < 3; i++) {
		if (!fwd_kern_named(isa[i])) {
			skip("this CPU does not run it", "the %s kernel", isa[i]);
			continue;
		}
		setenv("QF_FWD_ISA", isa[i], 1);
		char how[64];
		snprintf(how, sizeof how, "the HF checkpoint, %s kernel", isa[i]);
		check_logits(&fixtures[1], tu_src(fixtures[1].model), how, 2, 1u << 30);
		unsetenv("QF_FWD_ISA");
	}
	/* thread counts and streaming change nothing */
	size_t nt;
	int32_t *tok = (int32_t *)(void *)tu_read(tu_src("tests/data/reference/ref-tokens-tiny-dsv3.i32"), &nt);
	float *a = logits_of(tu_src("models/tiny-dsv3"), tok, 200, 1024, 1, 1u << 30, &err);
	float *b = logits_of(tu_src("models/tiny-dsv3"), tok, 200, 1024, 3, 1u << 30, &err);
	float *c = logits_of(tu_src("models/tiny-dsv3"), tok, 200, 1024, 2, 0, &err);
	ok(a && b && c && memcmp(a, b, 200 * 1024 * 4) == 0 && memcmp(a, c, 200 * 1024 * 4) == 0,
	   "logits are bit-identical for 1 and 3 threads, cached or streamed");
	/* split attn_k_b/attn_v_b and the joined attn_kv_b compute the same attention */
	const char *lg = tu_path("legacy.gguf");
	float *d = write(tu_src("models/tiny-dsv3"), lg, 0, QF_F32, 1, &err) == QF_OK
			   ? logits_of(lg, tok, 200, 1024, 2, 1u << 30, &err) : NULL;
	ok(d && a && max_diff(a, d, 200 * 1024) < 1e-4, "joined attn_kv_b gives the split form's logits (max |Δ| %.1e)",
	   d && a ? max_diff(a, d, 200 * 1024) : -1.0);
	/* a bundle (every tensor in its own format) runs too: fp8-b128 bundle = the FP8 original exactly */
	free(d);
	d = NULL;
	const char *bp = tu_path("f32.qfpack");
	if (write(tu_src("models/tiny-dsv3"), bp, 1, QF_F32, 0, &err) == QF_OK)
		d = logits_of(bp, tok, 200, 1024, 2, 0, &err);
	ok(d && a && memcmp(a, d, 200 * 1024 * 4) == 0, "an F32 bundle gives the original's logits exactly %s", err.msg);
	free(a);
	free(b);
	free(c);
	free(d);
	/* the q_lora_rank null variant (DeepSeek-V2-Lite shape, softmax routing): HF folder = GGUF = bundle */
	const char *v2 = tu_path("dsv2");
	int32_t t2[48];
	for (int i = 0; i < 48; i++)
		t2[i] = (int32_t)((i * 7 + 3) % 16);
	a = b = c = NULL;
	if (tu_gen_dsv2(v2, 11) == 0 && write(v2, tu_path("dsv2.gguf"), 0, QF_F32, 0, &err) == QF_OK &&
	    write(v2, tu_path("dsv2.qfpack"), 1, QF_F32, 0, &err) == QF_OK) {
		a = logits_of(v2, t2, 48, 16, 2, 1u << 30, &err);
		b = logits_of(tu_path("dsv2.gguf"), t2, 48, 16, 1, 0, &err);
		c = logits_of(tu_path("dsv2.qfpack"), t2, 48, 16, 3, 1u << 30, &err);
	}
	int finite = a != NULL;
	for (int i = 0; a && i < 48 * 16; i++)
		finite &= isfinite(a[i]) && fabsf(a[i]) > 0;
	ok(finite && b && c && memcmp(a, b, 48 * 16 * 4) == 0 && memcmp(a, c, 48 * 16 * 4) == 0,
	   "q_lora_rank null model: same logits from the HF folder, the GGUF and the bundle %s", err.msg);
	free(a);
	free(b);
	free(c);
	free(tok);
	layer_major_tests();
	integrity_tests();
	tensor_error_tests();
	return tap_failures() ? 1 : 0;
}
