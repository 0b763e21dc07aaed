/*
 * Importance matrices: the GGUF imatrix written and read back, the legacy
 * .dat read, a table of broken files, and what quantize does with entries
 * that are missing, mis-sized, non-finite or for formats that take no
 * weights.  (Bytes against llama.cpp itself: tests/test_llama_mix.)
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "formats/gguf.h"
#include "formats/imatrix.h"
#include "quantize/importance.h"
#include "quantize/profile.h"
#include "tests/tap.h"
#include "tests/util.h"

/* ---- legacy .dat bytes ---- */
typedef struct db {
	uint8_t b[4096];
	size_t n;
} db;
static void put(db *d, const void *v, size_t n) { memcpy(d->b + d->n, v, n); d->n += n; }
static void i32(db *d, int32_t v) { put(d, &v, 4); }
static void entry(db *d, const char *name, int32_t ncall, int32_t nval, const float *v)
{
	i32(d, (int32_t)strlen(name));
	put(d, name, strlen(name));
	i32(d, ncall);
	i32(d, nval);
	put(d, v, (size_t)nval * 4);
}

static void test_gguf_round_trip(void)
{
	qf_err err = { { 0 } };
	qf_imatrix *m = qf_imatrix_new();
	float s2[6] = { 2, 4, 6, 8, 10, 12 }, s3[2 * 3 * 4];
	int64_t c2[1] = { 2 }, c3[3] = { 4, 0, 8 };
	for (int i = 0; i < 24; i++)
		s3[i] = (float)(i + 1);
	ok(qf_imatrix_add(m, "blk.0.ffn_down_exps.weight", 8, 3, s3, c3, &err) == QF_OK &&
	   qf_imatrix_add(m, "blk.0.attn_q.weight", 6, 1, s2, c2, &err) == QF_OK &&
	   qf_imatrix_add_dataset(m, "calib.txt", &err) == QF_OK, "entries added (%s)", err.msg);
	m->chunk_count = 3;
	m->chunk_size = 512;
	const char *path = tu_path("im.gguf");
	ok(qf_imatrix_write(m, path, 0, &err) == QF_OK, "written (%s)", err.msg);
	qf_imatrix_free(m);
	qf_gguf *g = NULL;
	ok(qf_gguf_open(path, &g, &err) == QF_OK, "a GGUF");
	char *ty = NULL;
	uint32_t cc = 0;
	ok(g && qf_gguf_get_str(g, "general.type", &ty, &err) == QF_OK && !strcmp(ty, "imatrix") &&
	   qf_gguf_get_u32(g, "imatrix.chunk_count", &cc, &err) == QF_OK && cc == 3,
	   "general.type imatrix, imatrix.chunk_count u32");
	free(ty);
	const qf_tensor *t0 = g ? qf_gguf_tensor(g, 0) : NULL, *t3 = g ? qf_gguf_tensor(g, 3) : NULL;
	const qf_tensor *t2 = g ? qf_gguf_tensor(g, 2) : NULL;
	ok(t0 && !strcmp(t0->name, "blk.0.attn_q.weight.in_sum2") && t2 && t3 &&
	   !strcmp(t2->name, "blk.0.ffn_down_exps.weight.in_sum2") && t2->shape[0] == 3 && t2->shape[1] == 8 &&
	   !strcmp(t3->name, "blk.0.ffn_down_exps.weight.counts") && t3->shape[0] == 3 && t3->shape[1] == 1,
	   "entries sorted by name; in_sum2 is {ne0, n_mat} = {8, 3}, counts {1, 3}");
	qf_gguf_close(g);
	m = NULL;
	ok(qf_imatrix_open(path, &m, &err) == QF_OK && m->n == 2 && !m->legacy && m->ndatasets == 1 &&
	   !strcmp(m->datasets[0], "calib.txt") && m->chunk_size == 512, "read back: 2 entries, dataset, chunk size");
	const qf_imatrix_entry *e = m ? qf_imatrix_find(m, "blk.0.ffn_down_exps.weight") : NULL;
	float w[24];
	ok(e && e->n == 24 && e->n_mat == 3 && qf_imatrix_weights(m, e, w, &err) == QF_OK && w[0] == 1.0f / 4 &&
	   w[8] == 1.0f && w[15] == 1.0f && w[16] == 17.0f / 8, "weights Σx²/count per expert; an expert with count 0 gets 1");
	ok(m && !qf_imatrix_find(m, "blk.9.attn_q.weight"), "no entry → NULL");
	qf_imatrix_free(m);
}

static void test_legacy(void)
{
	db d = { .n = 0 };
	float a[4] = { 3, 6, 9, 12 }, b[2] = { 5, 7 };
	i32(&d, 2);
	entry(&d, "blk.1.ffn_up.weight", 3, 4, a);
	entry(&d, "blk.0.attn_k.weight", 0, 2, b);
	i32(&d, 10);
	i32(&d, 9);
	put(&d, "wiki.text", 9);
	qf_imatrix *m = NULL;
	qf_err err = { { 0 } };
	ok(qf_imatrix_parse(d.b, d.n, "x.dat", &m, &err) == QF_OK && m->legacy && m->n == 2 && m->chunk_count == 10 &&
	   m->ndatasets == 1 && !strcmp(m->datasets[0], "wiki.text"), "legacy .dat: entries and trailer (%s)", err.msg);
	float w[4];
	const qf_imatrix_entry *e = m ? qf_imatrix_find(m, "blk.1.ffn_up.weight") : NULL;
	ok(e && qf_imatrix_weights(m, e, w, &err) == QF_OK && w[0] == 1 && w[3] == 4, "legacy weights are data/ncall");
	e = m ? qf_imatrix_find(m, "blk.0.attn_k.weight") : NULL;
	ok(e && qf_imatrix_weights(m, e, w, &err) == QF_OK && w[0] == 5 && w[1] == 7, "ncall 0: the data as it is");
	qf_imatrix_free(m);
}

enum bad { B_EMPTY, B_NAME_PAST_EOF, B_NVAL_PAST_EOF, B_NVAL_ZERO, B_DUP, B_NO_META, B_NO_COUNTS, B_NEG_COUNT,
	   B_NONFINITE, B_COUNT };

static void test_broken(void)
{
	static const char *const want[B_COUNT] = {
		[B_EMPTY] = "no entries", [B_NAME_PAST_EOF] = "bad name length", [B_NVAL_PAST_EOF] = "past end of file",
		[B_NVAL_ZERO] = "value count", [B_DUP] = "appears twice", [B_NO_META] = "imatrix.chunk_size",
		[B_NO_COUNTS] = "mismatched sums and counts", [B_NEG_COUNT] = "count 0 is", [B_NONFINITE] = "not finite",
	};
	for (int k = 0; k < B_COUNT; k++) {
		db d = { .n = 0 };
		float v[2] = { 1, 2 };
		uint8_t *buf = NULL;
		size_t len = 0;
		if (k <= B_DUP) {
			i32(&d, k == B_EMPTY ? 0 : k == B_DUP ? 2 : 1);
			if (k == B_NAME_PAST_EOF)
				i32(&d, 100);
			else if (k == B_NVAL_PAST_EOF) { /* says 1000 values, holds 2 */
				i32(&d, 8);
				put(&d, "a.weight", 8);
				i32(&d, 1);
				i32(&d, 1000);
				put(&d, v, sizeof v);
			}
			else if (k == B_NVAL_ZERO)
				entry(&d, "a.weight", 1, 0, v);
			else if (k == B_DUP) {
				entry(&d, "a.weight", 1, 2, v);
				entry(&d, "a.weight", 1, 2, v);
			}
			buf = d.b;
			len = d.n;
		} else {
			/* a GGUF built with the writer */
			qf_gguf_writer *w = qf_gguf_writer_new();
			qf_err e2 = { { 0 } };
			const char *ds[1] = { "x" };
			qf_gguf_set_str(w, "general.type", "imatrix");
			qf_gguf_set_arr_str(w, "imatrix.datasets", ds, 1);
			qf_gguf_set_u32(w, "imatrix.chunk_count", 1);
			if (k != B_NO_META)
				qf_gguf_set_u32(w, "imatrix.chunk_size", 512);
			int64_t s1[2] = { 1, 2 }, s2[2] = { 1, 1 };
			qf_gguf_add_tensor(w, "a.weight.in_sum2", 2, s1, QF_F32, &e2);
			if (k != B_NO_COUNTS)
				qf_gguf_add_tensor(w, "a.weight.counts", 2, s2, QF_F32, &e2);
			qf_gguf_writer_begin(w, tu_path("bad.gguf"), 1, &e2);
			float sv[2] = { 1, k == B_NONFINITE ? NAN : 2 }, cv[1] = { k == B_NEG_COUNT ? -3.0f : 2.0f };
			qf_gguf_writer_write(w, sv, 8, &e2);
			if (k != B_NO_COUNTS)
				qf_gguf_writer_write(w, cv, 4, &e2);
			qf_gguf_writer_finish(w, &e2);
			qf_gguf_writer_free(w);
			buf = tu_read(tu_path("bad.gguf"), &len);
		}
		qf_imatrix *m = NULL;
		qf_err err = { { 0 } };
		qf_status s = qf_imatrix_parse(buf, len, "bad", &m, &err);
		if (s == QF_OK && k == B_NONFINITE) { /* the reader keeps it; using it fails */
			float w[2];
			s = qf_imatrix_weights(m, &m->e[0], w, &err);
		}
		ok(s == QF_EFORMAT && strstr(err.msg, want[k]), "broken imatrix %d rejected: %s", k, err.msg);
		qf_imatrix_free(m);
		if (buf != d.b)
			free(buf);
	}
}

/* A plan of the tiny DeepSeek under target, with imatrix m applied. */
static qf_status apply(const char *target, qf_imatrix *m, qnt_importance *q, qf_err *err)
{
	qnt_profile prof;
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 1 };
	cvt_plan *p = NULL;
	qf_status s = qnt_profile_find(target, &prof, err);
	if (s)
		return s;
	if (!(s = cvt_plan_open(tu_src("models/tiny-dsv3"), &o, &p, err)) && !(s = qnt_plan_apply(p, &prof, NULL, 0, 0, err)))
		s = qnt_importance_apply(p, m, q, err);
	cvt_plan_free(p);
	qnt_profile_free(&prof);
	return s;
}

static void test_apply(void)
{
	qf_err err = { { 0 } };
	float s[16 * 256];
	int64_t c[16];
	for (int i = 0; i < 16 * 256; i++)
		s[i] = 1;
	for (int i = 0; i < 16; i++)
		c[i] = 1;
	qf_imatrix *m = qf_imatrix_new();
	qf_imatrix_add(m, "blk.1.ffn_gate_exps.weight", 256, 16, s, c, &err); /* right: 256 columns × 16 experts */
	qf_imatrix_add(m, "blk.1.attn_q_a.weight", 256, 1, s, c, &err);
	qnt_importance q;
	qf_status st = apply("llamacpp-q4_k_m", m, &q, &err);
	ok(st == QF_OK && q.weighted == 2 && q.missing > 0,
	   "two tensors weighted, the rest without an entry quantized unweighted (%zu weighted, %zu missing, e.g. %s) %s",
	   q.weighted, q.missing, q.first_missing, err.msg);
	qnt_importance_free(&q);
	st = apply("ocp-mx", m, &q, &err);
	ok(st == QF_OK && q.weighted == 0 && q.ignored > 0, "mxfp4/mxfp8 take no weights: %zu tensors ignore the imatrix %s",
	   q.ignored, err.msg);
	qnt_importance_free(&q);
	qf_imatrix_add(m, "blk.2.ffn_up_exps.weight", 256, 1, s, c, &err); /* one matrix for a stack of 16 */
	memset(&err, 0, sizeof err);
	ok(apply("llamacpp-q4_k_m", m, &q, &err) == QF_EFORMAT && strstr(err.msg, "blk.2.ffn_up_exps.weight") &&
	   strstr(err.msg, "256 values"), "a size mismatch is an error naming the tensor: %s", err.msg);
	qf_imatrix_free(m);
	m = qf_imatrix_new();
	s[7] = INFINITY;
	qf_imatrix_add(m, "blk.1.attn_q_a.weight", 256, 1, s, c, &err);
	memset(&err, 0, sizeof err);
	ok(apply("llamacpp-q4_k_m", m, &q, &err) == QF_EFORMAT && strstr(err.msg, "blk.1.attn_q_a.weight") &&
	   strstr(err.msg, "not finite"), "a non-finite value is an error naming the tensor: %s", err.msg);
	qf_imatrix_free(m);
}

int main(void)
{
	plan_lazy();
	test_gguf_round_trip();
	test_legacy();
	test_broken();
	test_apply();
	return tap_failures() ? 1 : 0;
}
