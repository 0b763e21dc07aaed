/* GGUF: writer → reader round trip, integrity hashes, and a table of broken files. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "formats/gguf.h"
#include "tests/tap.h"
#include "tests/util.h"

/* ---- a hand-rolled GGUF byte builder for the broken-file table ---- */
typedef struct gb {
	uint8_t b[8192];
	size_t n;
} gb;
static void put(gb *g, const void *v, size_t n) { memcpy(g->b + g->n, v, n); g->n += n; }
static void u32(gb *g, uint32_t v) { put(g, &v, 4); }
static void u64(gb *g, uint64_t v) { put(g, &v, 8); }
static void str(gb *g, const char *s) { u64(g, strlen(s)); put(g, s, strlen(s)); }
static void pad(gb *g, size_t a) { while (g->n % a) g->b[g->n++] = 0; }

enum bad_kind {
	B_MAGIC, B_VERSION, B_DUP_KEY, B_STR_PAST_EOF, B_ARR_PAST_EOF, B_ALIGN_NOT_POW2,
	B_ALIGN_WRONG_TYPE, B_OFFSET_ORDER, B_OFFSET_PAST_EOF, B_TOO_MANY_DIMS, B_BAD_TYPE,
	B_NAME_TOO_LONG, B_DUP_TENSOR, B_HUGE_COUNTS, B_NESTED_ARRAY, B_BLOCK_PARTIAL, B_TRUNC_HEADER,
	B_COUNT
};

static const struct { const char *what, *expect; } bad_info[B_COUNT] = {
	[B_MAGIC] = { "bad magic", "bad magic" },
	[B_VERSION] = { "unsupported version", "version" },
	[B_DUP_KEY] = { "duplicate key", "duplicate key" },
	[B_STR_PAST_EOF] = { "string length past EOF", "past end of file" },
	[B_ARR_PAST_EOF] = { "array length past EOF", "past end of file" },
	[B_ALIGN_NOT_POW2] = { "alignment not a power of two", "power of two" },
	[B_ALIGN_WRONG_TYPE] = { "alignment of the wrong type", "must be u32" },
	[B_OFFSET_ORDER] = { "tensor offsets out of order", "expected" },
	[B_OFFSET_PAST_EOF] = { "tensor data past EOF", "past end of file" },
	[B_TOO_MANY_DIMS] = { "too many dims", "dims" },
	[B_BAD_TYPE] = { "unknown ggml type", "unsupported ggml type" },
	[B_NAME_TOO_LONG] = { "tensor name of 64 bytes", "name of" },
	[B_DUP_TENSOR] = { "duplicate tensor name", "duplicate tensor" },
	[B_HUGE_COUNTS] = { "hostile tensor/KV counts", "cannot fit" },
	[B_NESTED_ARRAY] = { "array of arrays", "array element type" },
	[B_BLOCK_PARTIAL] = { "Q8_0 row not a multiple of 32", "multiple" },
	[B_TRUNC_HEADER] = { "header cut short", "past end of file" },
};

static void build_bad(enum bad_kind k, gb *g)
{
	memset(g, 0, sizeof *g);
	put(g, k == B_MAGIC ? "GGUX" : "GGUF", 4);
	u32(g, k == B_VERSION ? 7 : 3);
	uint64_t nt = k == B_OFFSET_ORDER || k == B_DUP_TENSOR ? 2 : 1;
	uint64_t nkv = k == B_DUP_KEY ? 2 : 1;
	if (k == B_HUGE_COUNTS) {
		u64(g, UINT64_MAX / 2);
		u64(g, UINT64_MAX / 3);
		return;
	}
	u64(g, nt);
	u64(g, nkv);
	/* KVs */
	str(g, "general.alignment");
	if (k == B_ALIGN_WRONG_TYPE) {
		u32(g, 10); /* u64 */
		u64(g, 32);
	} else if (k == B_STR_PAST_EOF) {
		u32(g, 8);
		u64(g, 1u << 30);
		return;
	} else if (k == B_ARR_PAST_EOF) {
		u32(g, 9);
		u32(g, 4);
		u64(g, 1u << 28);
		return;
	} else if (k == B_NESTED_ARRAY) {
		u32(g, 9);
		u32(g, 9);
		u64(g, 1);
	} else {
		u32(g, 4);
		u32(g, k == B_ALIGN_NOT_POW2 ? 24 : 32);
	}
	if (k == B_DUP_KEY) {
		str(g, "general.alignment");
		u32(g, 4);
		u32(g, 32);
	}
	if (k == B_TRUNC_HEADER) {
		str(g, "t");
		u32(g, 1);
		return;
	}
	for (uint64_t i = 0; i < nt; i++) {
		if (k == B_NAME_TOO_LONG)
			str(g, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234");
		else if (k == B_DUP_TENSOR)
			str(g, "t");
		else
			str(g, i ? "u" : "t");
		uint32_t nd = k == B_TOO_MANY_DIMS ? 5 : 1;
		u32(g, nd);
		for (uint32_t d = 0; d < nd; d++)
			u64(g, k == B_BLOCK_PARTIAL ? 16 : 8);
		u32(g, k == B_BAD_TYPE ? 77 : (k == B_BLOCK_PARTIAL ? 8 : 0));
		u64(g, k == B_OFFSET_ORDER ? (i ? 0 : 32) : (i ? 32 : 0));
	}
	pad(g, 32);
	size_t data = k == B_OFFSET_PAST_EOF ? 16 : 64;
	memset(g->b + g->n, 0, data);
	g->n += data;
}

/* u16/i32 value of a key, or -1. */
static long long kv_int(const qf_gguf *g, const char *key, uint32_t type)
{
	int64_t i = qf_gguf_find_kv(g, key);
	const qf_gguf_kv *kv = i >= 0 ? qf_gguf_kv_at(g, (size_t)i) : NULL;
	double d;
	return kv && kv->type == type && qf_gguf_kv_number(kv, 0, &d) ? (long long)d : -1;
}

/*
 * Split sets: seven F32 tensors of 40…64 padded bytes under a 150-byte
 * budget cut as llama-gguf-split cuts them; the first part opens the whole
 * set; a middle part, a missing part and a wrong split.no are refused.
 */
static void test_split(void)
{
	qf_err err = { { 0 } };
	qf_gguf_writer *w = qf_gguf_writer_new();
	qf_gguf_set_str(w, "general.architecture", "llama");
	qf_gguf_set_u32(w, "llama.block_count", 2);
	static const int64_t len[7] = { 10, 16, 12, 3, 16, 16, 9 }; /* padded: 64 64 64 32 64 64 64 */
	float v[16 * 7];
	for (int i = 0; i < 16 * 7; i++)
		v[i] = (float)i;
	char nm[7][8];
	for (int i = 0; i < 7; i++) {
		snprintf(nm[i], sizeof nm[i], "t%d", i);
		qf_gguf_add_tensor(w, nm[i], 1, &len[i], QF_F32, &err);
	}
	qf_gguf_writer_set_split(w, 150);
	const char *path = tu_path("sp.gguf");
	ok(qf_gguf_writer_begin(w, path, 0, &err) == QF_OK, "split writer begins (%s)", err.msg);
	is_int(4, (long long)qf_gguf_writer_nsplits(w), "padded 64+64 | 64+32 | 64+64 | 64: 4 parts of ≤ 150 bytes");
	for (int i = 0; i < 7; i++)
		qf_gguf_writer_write(w, v + 16 * i, (size_t)len[i] * 4, &err);
	ok(qf_gguf_writer_finish(w, &err) == QF_OK, "split writer finishes (%s)", err.msg);
	qf_gguf_writer_free(w);
	char p[4][4200];
	for (int k = 0; k < 4; k++) {
		char pre[4200];
		snprintf(pre, sizeof pre, "%s", tu_path("sp"));
		qf_gguf_split_name(p[k], sizeof p[k], pre, (size_t)k, 4);
	}
	ok(tu_exists(p[0]) && tu_exists(p[1]) && tu_exists(p[2]) && tu_exists(p[3]) && !tu_exists(path),
	   "four files NAME-0000k-of-00004.gguf, none named NAME.gguf");
	qf_gguf *g = NULL;
	ok(qf_gguf_open(p[0], &g, &err) == QF_OK, "the first part opens the set (%s)", err.msg);
	if (g) {
		is_int(7, (long long)qf_gguf_ntensors(g), "all 7 tensors, in order");
		int same = 1;
		for (int i = 0; i < 7; i++) {
			const qf_tensor *t = qf_gguf_tensor(g, (size_t)i);
			same &= t && strcmp(t->name, nm[i]) == 0 && t->nelems == (uint64_t)len[i] &&
				memcmp(t->data, v + 16 * i, (size_t)len[i] * 4) == 0;
		}
		ok(same, "every tensor's name, size and bytes as written");
		is_int(4, (long long)qf_gguf_nsplits(g), "4 parts");
		ok(qf_gguf_find_tensor(g, "t6") && qf_gguf_find_tensor(g, "t6")->file == 3, "t6 lives in part 4");
		is_int(0, kv_int(g, "split.no", QF_GGUF_U16), "split.no u16 0");
		is_int(4, kv_int(g, "split.count", QF_GGUF_U16), "split.count u16 4");
		is_int(7, kv_int(g, "split.tensors.count", QF_GGUF_I32), "split.tensors.count i32 7");
	}
	qf_gguf_close(g);
	g = NULL;
	ok(qf_gguf_open_one(p[1], &g, &err) == QF_OK, "a part opens alone with open_one");
	if (g) {
		is_int(1, kv_int(g, "split.no", QF_GGUF_U16), "part 2: split.no 1");
		ok(qf_gguf_find_kv(g, "general.architecture") < 0 && qf_gguf_find_kv(g, "qforge.tensor_xxh64") >= 0,
		   "part 2: no model metadata, its own hashes");
		is_int(2, (long long)qf_gguf_ntensors(g), "part 2 holds t2, t3");
	}
	qf_gguf_close(g);
	g = NULL;
	memset(&err, 0, sizeof err);
	ok(qf_gguf_open(p[1], &g, &err) == QF_EFORMAT && strstr(err.msg, "first part"), "opening part 2 names the first part: %s", err.msg);
	/* part 4 missing */
	char moved[4300];
	snprintf(moved, sizeof moved, "%s.x", p[3]);
	rename(p[3], moved);
	memset(&err, 0, sizeof err);
	ok(qf_gguf_open(p[0], &g, &err) != QF_OK && strstr(err.msg, "00004-of-00004"), "a missing part is an error naming it: %s", err.msg);
	/* part 4 in place of part 2 */
	rename(p[1], tu_path("p2.saved"));
	rename(moved, p[1]);
	memset(&err, 0, sizeof err);
	ok(qf_gguf_open(p[0], &g, &err) == QF_EFORMAT && strstr(err.msg, "part 4 of 4"), "a part under the wrong name is refused: %s", err.msg);
	qf_gguf_close(g);
}

int main(void)
{
	plan_lazy();

	for (int k = 0; k < B_COUNT; k++) {
		gb g;
		build_bad((enum bad_kind)k, &g);
		const char *p = tu_path("bad.gguf");
		tu_write(p, g.b, g.n);
		qf_gguf *r = NULL;
		qf_err err = { { 0 } };
		qf_status s = qf_gguf_open(p, &r, &err);
		ok(s == QF_EFORMAT && strstr(err.msg, bad_info[k].expect) && strstr(err.msg, "bad.gguf"),
		   "rejects %s: %s", bad_info[k].what, err.msg);
		qf_gguf_close(r);
	}

	/* round trip: every KV type we write, several tensor types, odd sizes */
	qf_gguf_writer *w = qf_gguf_writer_new();
	qf_err err = { { 0 } };
	qf_gguf_set_str(w, "general.architecture", "llama");
	qf_gguf_set_u32(w, "llama.block_count", 5);
	qf_gguf_set_i32(w, "some.i32", -7);
	qf_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f);
	qf_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
	qf_gguf_set_u64(w, "some.u64", 1ull << 40);
	const char *toks[] = { "<unk>", "<s>", "▁a", "" };
	qf_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4);
	int32_t ii[3] = { 1, -2, 3 };
	qf_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", ii, 3);
	float ff[2] = { -1.5f, 2.0f };
	qf_gguf_set_arr_f32(w, "tokenizer.ggml.scores", ff, 2);
	int64_t s1[2] = { 3, 5 }, s2[1] = { 7 }, s3[3] = { 2, 2, 64 };
	ok(qf_gguf_add_tensor(w, "a", 2, s1, QF_F32, &err) == QF_OK, "declare F32 [3,5]");
	ok(qf_gguf_add_tensor(w, "b", 1, s2, QF_F16, &err) == QF_OK, "declare F16 [7]");
	ok(qf_gguf_add_tensor(w, "c", 3, s3, QF_Q8_0, &err) == QF_OK, "declare Q8_0 [2,2,64]");
	int64_t s4[1] = { 33 };
	ok(qf_gguf_add_tensor(w, "d", 1, s4, QF_Q8_0, &err) == QF_EUSAGE, "Q8_0 row of 33 refused");
	memset(&err, 0, sizeof err);
	ok(qf_gguf_add_tensor(w, "e", 1, s2, QF_F8_E4M3, &err) == QF_EUSAGE && strstr(err.msg, "not a GGUF"),
	   "FP8 in GGUF refused: %s", err.msg);
	memset(&err, 0, sizeof err);
	const char *path = tu_path("rt.gguf");
	ok(qf_gguf_writer_begin(w, path, 0, &err) == QF_OK, "begin (%s)", err.msg);
	float a[15];
	for (int i = 0; i < 15; i++)
		a[i] = (float)i * 0.5f - 3;
	uint16_t b[7] = { 1, 2, 3, 4, 5, 6, 7 };
	uint8_t c[4 * 2 * 34];
	for (size_t i = 0; i < sizeof c; i++)
		c[i] = (uint8_t)(i * 37);
	/* write in uneven pieces spanning tensor boundaries */
	uint8_t all[60 + 14 + sizeof c];
	memcpy(all, a, 60);
	memcpy(all + 60, b, 14);
	memcpy(all + 74, c, sizeof c);
	ok(qf_gguf_writer_write(w, all, 7, &err) == QF_OK && qf_gguf_writer_write(w, all + 7, 70, &err) == QF_OK &&
	   qf_gguf_writer_write(w, all + 77, sizeof all - 77, &err) == QF_OK, "write data in uneven pieces");
	ok(tu_temps(tu_path("rt.gguf")) && !tu_exists(path), "data goes to a temporary until finished");
	ok(qf_gguf_writer_finish(w, &err) == QF_OK, "finish (%s)", err.msg);
	ok(!tu_temps(tu_path("rt.gguf")) && tu_exists(path), "renamed into place");
	uint64_t h_a = qf_gguf_writer_tensor_hash(w, 0);
	qf_gguf_writer_free(w);

	qf_gguf *g = NULL;
	ok(qf_gguf_open(path, &g, &err) == QF_OK, "re-read (%s)", err.msg);
	if (!g)
		bail("cannot re-read %s", path);
	is_int(3, qf_gguf_version(g), "version 3");
	is_int(3, (long long)qf_gguf_ntensors(g), "3 tensors");
	is_int(9 + 3, (long long)qf_gguf_nkv(g), "9 KVs + 3 qforge hash keys");
	char *arch = NULL;
	ok(qf_gguf_get_str(g, "general.architecture", &arch, &err) == QF_OK && strcmp(arch, "llama") == 0,
	   "string KV");
	free(arch);
	uint32_t u;
	ok(qf_gguf_get_u32(g, "llama.block_count", &u, &err) == QF_OK && u == 5, "u32 KV");
	float f;
	ok(qf_gguf_get_f32(g, "llama.rope.freq_base", &f, &err) == QF_OK && f == 10000.0f, "f32 KV");
	int bo;
	ok(qf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &bo, &err) == QF_OK && bo == 1, "bool KV");
	uint64_t u6;
	ok(qf_gguf_get_u64(g, "some.u64", &u6, &err) == QF_OK && u6 == (1ull << 40), "u64 KV");
	memset(&err, 0, sizeof err);
	ok(qf_gguf_get_u32(g, "some.u64", &u, &err) == QF_EFORMAT && strstr(err.msg, "is u64"),
	   "typed getter refuses the wrong type: %s", err.msg);
	const qf_gguf_kv *kv = qf_gguf_kv_at(g, (size_t)qf_gguf_find_kv(g, "tokenizer.ggml.tokens"));
	ok(kv && kv->type == QF_GGUF_ARR && kv->arr_type == QF_GGUF_STR && kv->n == 4 &&
	   kv->strs[2].len == strlen("▁a") && memcmp(kv->strs[2].p, "▁a", kv->strs[2].len) == 0 &&
	   kv->strs[3].len == 0, "string array with UTF-8 and an empty string");
	kv = qf_gguf_kv_at(g, (size_t)qf_gguf_find_kv(g, "tokenizer.ggml.token_type"));
	double d;
	ok(kv && kv->n == 3 && qf_gguf_kv_number(kv, 1, &d) && d == -2, "i32 array");
	kv = qf_gguf_kv_at(g, (size_t)qf_gguf_find_kv(g, "tokenizer.ggml.scores"));
	ok(kv && qf_gguf_kv_number(kv, 0, &d) && d == -1.5, "f32 array");
	const qf_tensor *ta = qf_gguf_find_tensor(g, "a"), *tb = qf_gguf_find_tensor(g, "b"),
			*tc = qf_gguf_find_tensor(g, "c");
	ok(ta && ta->ndim == 2 && ta->shape[0] == 3 && ta->shape[1] == 5 && memcmp(ta->data, a, 60) == 0,
	   "F32 tensor: shape outermost first, bytes equal");
	ok(tb && tb->nbytes == 14 && memcmp(tb->data, b, 14) == 0, "F16 tensor bytes");
	ok(tc && tc->dtype == QF_Q8_0 && tc->nbytes == sizeof c && memcmp(tc->data, c, sizeof c) == 0 &&
	   tc->shape[0] == 2 && tc->shape[2] == 64, "Q8_0 3-D tensor bytes and shape");
	ok(ta && (ta->offset % 32) == 0 && tb && (tb->offset % 32) == 0 && tc && (tc->offset % 32) == 0,
	   "every tensor starts aligned");
	size_t fsz;
	uint8_t *file = tu_read(path, &fsz);
	ok(fsz % 32 == 0, "file ends padded to the alignment (%zu bytes)", fsz);

	/* hashes */
	const qf_gguf_kv *hk = qf_gguf_kv_at(g, (size_t)qf_gguf_find_kv(g, "qforge.tensor_xxh64"));
	uint64_t stored;
	memcpy(&stored, hk->raw, 8);
	is_hex(XXH64(a, 60, 0), stored, "stored xxh64 of 'a' equals xxh64 of its bytes");
	is_hex(h_a, stored, "writer reports the same hash");
	uint64_t dh;
	qf_gguf_get_u64(g, "qforge.data_xxh64", &dh, &err);
	is_hex(XXH64(all, sizeof all, 0), dh, "data hash is xxh64 of all tensor bytes in order");
	uint64_t mh, mh_stored;
	qf_gguf_get_u64(g, "qforge.meta_xxh64", &mh_stored, &err);
	ok(qf_gguf_meta_hash(g, &mh, &err) == QF_OK, "meta hash recomputes");
	is_hex(mh_stored, mh, "meta hash matches");
	uint64_t data_off = qf_gguf_data_offset(g);
	qf_gguf_close(g);

	/* flip a bit of a tensor name in the header ('a' → 'q'): still a valid file, another meta hash */
	static const uint8_t name_a[9] = { 1, 0, 0, 0, 0, 0, 0, 0, 'a' };
	size_t pos = 0;
	for (size_t i = 24; i + 9 <= data_off && !pos; i++)
		if (memcmp(file + i, name_a, 9) == 0)
			pos = i + 8;
	ok(pos != 0, "tensor 'a' found in the header");
	file[pos] ^= 0x10;
	qf_gguf *g2 = NULL;
	memset(&err, 0, sizeof err);
	mh = mh_stored;
	int readable = qf_gguf_open_buffer(file, fsz, "flipped", &g2, &err) == QF_OK && qf_gguf_meta_hash(g2, &mh, &err) == QF_OK;
	ok(readable && mh != mh_stored, "a flipped bit in a tensor name changes the meta hash (%016llx → %016llx)",
	   (unsigned long long)mh_stored, (unsigned long long)mh);
	qf_gguf_close(g2);
	free(file);

	/* refusing to overwrite */
	w = qf_gguf_writer_new();
	qf_gguf_set_str(w, "general.architecture", "llama");
	memset(&err, 0, sizeof err);
	ok(qf_gguf_writer_begin(w, path, 0, &err) == QF_EUSAGE && strstr(err.msg, "--force"),
	   "existing output not overwritten without force: %s", err.msg);
	qf_gguf_writer_free(w);

	/* abort leaves nothing */
	w = qf_gguf_writer_new();
	qf_gguf_set_str(w, "general.architecture", "llama");
	qf_gguf_add_tensor(w, "a", 2, s1, QF_F32, &err);
	const char *p2 = tu_path("aborted.gguf");
	qf_gguf_writer_begin(w, p2, 0, &err);
	qf_gguf_writer_write(w, a, 10, &err);
	qf_gguf_writer_free(w);
	ok(!tu_exists(p2) && !tu_temps(tu_path("aborted.gguf")), "an unfinished writer leaves no file");
	test_split();
	return tap_failures() ? 1 : 0;
}
