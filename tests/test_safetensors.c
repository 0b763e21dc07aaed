/* safetensors reader: real fixtures, writer round trip, and a table of broken files. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "tests/tap.h"
#include "tests/util.h"

/* Builds "u64 len + header + data_len zero bytes" (hdr_len_override if != 0). */
static uint8_t *build(const char *hdr, size_t data_len, uint64_t hdr_len_override, size_t *n)
{
	size_t hl = strlen(hdr);
	*n = 8 + hl + data_len;
	uint8_t *b = calloc(1, *n);
	uint64_t L = hdr_len_override ? hdr_len_override : hl;
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(L >> (8 * i));
	memcpy(b + 8, hdr, hl);
	return b;
}

typedef struct bad_case {
	const char *what;
	const char *hdr;
	size_t data_len;
	uint64_t hdr_len;      /* 0: real length */
	size_t truncate_to;    /* 0: no truncation */
	const char *expect;    /* substring of the message */
} bad_case;

static const bad_case bad[] = {
	{ "file shorter than 8 bytes", "{}", 0, 0, 5, "too short" },
	{ "header length below 2", "{", 0, 1, 0, "out of range" },
	{ "header length above 100,000,000", "{}", 0, 200000000ull, 0, "out of range" },
	{ "header length past end of file", "{}", 0, 4096, 0, "past end of file" },
	{ "invalid JSON", "{\"a\": {\"dtype\": \"F32\", ", 0, 0, 0, "not a valid JSON" },
	{ "JSON that is not an object", "[1, 2]", 0, 0, 0, "not a valid JSON object" },
	{ "unknown dtype", "{\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1, 0, 0,
	  "unsupported dtype 'F4'" },
	{ "unknown key in entry", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
	  4, 0, 0, "unknown key 'x'" },
	{ "negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, 0, 0,
	  "not a non-negative integer" },
	{ "fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, 0, 0,
	  "not a non-negative integer" },
	{ "byte size != elements x size",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, 0, "needs 12" },
	{ "element count overflow",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4, 0,
	  0, "overflows" },
	{ "byte size overflow",
	  "{\"a\":{\"dtype\":\"F64\",\"shape\":[1099511627776,2097152],\"data_offsets\":[0,4]}}", 4, 0, 0,
	  "overflows" },
	{ "gap between tensors",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, 0, 0, "gap" },
	{ "overlapping tensors",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, 0, "overlap" },
	{ "data not starting at 0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
	  0, 0, "gap" },
	{ "truncated data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, 0,
	  8 + 60 + 8, "past end of data" },
	{ "extra bytes after the last tensor",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, 0, 0,
	  "ends at byte" },
	{ "duplicate names",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, 0, "duplicate tensor name" },
	{ "offsets reversed", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, 0,
	  0, "begin <= end" },
	{ "metadata not strings", "{\"__metadata__\":{\"k\":1}}", 0, 0, 0, "not a string" },
	{ "trailing garbage after JSON", "{} x", 0, 0, 0, "trailing bytes" },
};

static void write_shard(const char *dir, const char *name, const char *hdr, size_t data_len)
{
	char p[4096];
	size_t n;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	uint8_t *b = build(hdr, data_len, 0, &n);
	tu_write(p, b, n);
	free(b);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	tu_write(p, text, strlen(text));
}

static const char *mkdir_case(const char *name)
{
	const char *d = tu_path(name);
	mkdir(d, 0755);
	return d;
}

static void expect_open_fail(const char *dir, const char *substr, const char *what)
{
	qf_st *st = NULL;
	qf_err err = { { 0 } };
	qf_status s = qf_st_open(dir, &st, &err);
	ok(s == QF_EFORMAT && strstr(err.msg, substr) != NULL, "%s: rejected (%s)", what, err.msg);
	qf_st_close(st);
}

#define W1 "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[200,300],\"data_offsets\":[0,60000]}}"

/* DeepSeek-V3 has ~90k index entries: opening must not look each one up linearly. */
static void big_index(void)
{
	enum { NT = 90000, NS = 3 };
	char dir[4096], p[8192];
	snprintf(dir, sizeof dir, "%s", tu_path("bigidx"));
	mkdir(dir, 0755);
	static float zero[NT];
	qf_st_entry *e = calloc(NT, sizeof *e);
	char (*names)[48] = calloc(NT, sizeof *names);
	size_t cap = (size_t)NT * 96 + 256, n = 0;
	char *idx = malloc(cap);
	n += (size_t)snprintf(idx + n, cap - n, "{\"metadata\": {\"total_size\": %d}, \"weight_map\": {", NT * 4);
	for (int i = 0; i < NT; i++) {
		snprintf(names[i], sizeof names[i], "model.layers.%d.mlp.experts.%d.w", i / 768, i % 768);
		n += (size_t)snprintf(idx + n, cap - n, "%s\"%s\": \"s%d.safetensors\"", i ? ", " : "", names[i], i % NS);
	}
	n += (size_t)snprintf(idx + n, cap - n, "}}");
	for (int k = 0; k < NS; k++) {
		size_t m = 0;
		for (int i = k; i < NT; i += NS)
			e[m++] = (qf_st_entry){ .name = names[i], .dtype = QF_F32, .ndim = 1, .shape = { 1 }, .data = &zero[i] };
		snprintf(p, sizeof p, "%s/s%d.safetensors", dir, k);
		qf_st_write(p, e, m, NULL, NULL);
	}
	snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
	tu_write(p, idx, n);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	qf_st *st = NULL;
	qf_err err = { { 0 } };
	qf_status s = qf_st_open(dir, &st, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double sec = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	ok(s == QF_OK && qf_st_count(st) == NT, "a %d-entry index over %d shards opens (%s)", NT, NS, err.msg);
	ok(sec < 10, "… in %.2f s (it was a linear lookup per tensor: 15-20 s for DeepSeek-V3)", sec);
	qf_st_close(st);
	/* a tensor listed twice in the map is an error, not a silent last-wins */
	n -= 2;
	n += (size_t)snprintf(idx + n, cap - n, ", \"%s\": \"s0.safetensors\"}}", names[0]);
	tu_write(p, idx, n);
	memset(&err, 0, sizeof err);
	ok(qf_st_open(dir, &st, &err) == QF_EFORMAT && strstr(err.msg, "listed twice"), "a duplicate map entry: %s", err.msg);
	free(idx);
	free(names);
	free(e);
}

int main(void)
{
	plan_lazy();

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t n;
		uint8_t *b = build(bad[i].hdr, bad[i].data_len, bad[i].hdr_len, &n);
		if (bad[i].truncate_to && bad[i].truncate_to < n)
			n = bad[i].truncate_to;
		/* through a real file, as the CLI sees it */
		const char *p = tu_path("bad.safetensors");
		tu_write(p, b, n);
		qf_st *st = NULL;
		qf_err err = { { 0 } };
		qf_status s = qf_st_open(p, &st, &err);
		ok(s == QF_EFORMAT && strstr(err.msg, bad[i].expect) && strstr(err.msg, "bad.safetensors"),
		   "rejects %s: %s", bad[i].what, err.msg);
		qf_st_close(st);
		free(b);
	}

	/* a good file with a scalar, an empty tensor and padding spaces in the header */
	{
		const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
				"\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
				"\"e\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
				"\"v\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[4,7]}}      ";
		size_t n;
		uint8_t *b = build(h, 7, 0, &n);
		qf_st *st = NULL;
		qf_err err = { { 0 } };
		ok(qf_st_open_buffer(b, n, "mem", &st, &err) == QF_OK, "accepts scalar, empty tensor, padded header (%s)", err.msg);
		if (st) {
			is_int(3, (long long)qf_st_count(st), "three tensors");
			is_string("pt", qf_st_metadata(st, "format"), "__metadata__ is readable");
			const qf_tensor *t = qf_st_find(st, "v");
			ok(t && t->nbytes == 3 && t->offset == 8 + strlen(h) + 4, "offset of 'v' is absolute");
			ok(qf_st_find(st, "nope") == NULL, "lookup of a missing name is NULL");
		}
		qf_st_close(st);
		free(b);
	}

	/* writer round trip */
	{
		float f[6] = { 1, -2, 3.5f, 0, 1e-3f, -7 };
		uint16_t h[4] = { 0x3f80, 0xbf80, 0x4000, 0 };
		qf_st_entry e[2] = {
			{ .name = "a.weight", .dtype = QF_F32, .ndim = 2, .shape = { 2, 3 }, .data = f },
			{ .name = "b", .dtype = QF_BF16, .ndim = 1, .shape = { 4 }, .data = h },
		};
		const char *md[] = { "format", "pt", NULL };
		qf_err err = { { 0 } };
		const char *p = tu_path("rt.safetensors");
		ok(qf_st_write(p, e, 2, md, &err) == QF_OK, "writer writes a file");
		qf_st *st = NULL;
		ok(qf_st_open(p, &st, &err) == QF_OK, "reader reads it back (%s)", err.msg);
		if (st) {
			const qf_tensor *a = qf_st_find(st, "a.weight"), *bb = qf_st_find(st, "b");
			ok(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 &&
			   memcmp(a->data, f, sizeof f) == 0, "F32 tensor bytes and shape survive");
			ok(bb && bb->dtype == QF_BF16 && memcmp(bb->data, h, sizeof h) == 0, "BF16 tensor survives");
			ok(!tu_temps(tu_path("rt.safetensors")), "no temporary file left");
		}
		qf_st_close(st);
	}

	/* sharded folders */
	{
		const char *d = mkdir_case("missing_shard");
		write_shard(d, "a.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
		write_text(d, "model.safetensors.index.json",
			   "{\"metadata\":{},\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}");
		expect_open_fail(d, "missing", "index naming a missing shard");

		d = mkdir_case("two_shards");
		write_shard(d, "a.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
		write_shard(d, "b.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
		write_text(d, "model.safetensors.index.json",
			   "{\"weight_map\":{\"x\":\"a.safetensors\",\"z\":\"b.safetensors\"}}");
		expect_open_fail(d, "in two shards", "tensor in two shards");

		d = mkdir_case("not_in_shard");
		write_shard(d, "a.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
		write_text(d, "model.safetensors.index.json",
			   "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"a.safetensors\"}}");
		expect_open_fail(d, "no shard holds it", "tensor mapped but in no shard");

		d = mkdir_case("bad_index");
		write_shard(d, "a.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
		write_text(d, "model.safetensors.index.json", "{\"weight_map\": [");
		expect_open_fail(d, "invalid JSON", "index that is not JSON");

		d = mkdir_case("escape");
		write_text(d, "model.safetensors.index.json", "{\"weight_map\":{\"x\":\"../a.safetensors\"}}");
		expect_open_fail(d, "not a shard file name", "index naming a path outside the folder");
	}

	/* FP8 scale pairing */
	{
		const char *d = mkdir_case("fp8_noscale");
		write_shard(d, "model.safetensors", W1, 60000);
		qf_st *st = NULL;
		qf_err err = { { 0 } };
		const qf_tensor *sc;
		ok(qf_st_open(d, &st, &err) == QF_OK, "FP8 weight without scale opens");
		ok(st && qf_st_fp8_scale(st, qf_st_find(st, "w"), 128, 128, &sc, &err) == QF_EFORMAT &&
		   strstr(err.msg, "w_scale_inv"), "missing _scale_inv: %s", err.msg);
		qf_st_close(st);

		d = mkdir_case("fp8_badscale");
		write_shard(d, "model.safetensors",
			    "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[200,300],\"data_offsets\":[0,60000]},"
			    "\"w_scale_inv\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[60000,60016]}}",
			    60016);
		st = NULL;
		memset(&err, 0, sizeof err);
		ok(qf_st_open(d, &st, &err) == QF_OK, "FP8 weight with mis-shaped scale opens");
		ok(st && qf_st_fp8_scale(st, qf_st_find(st, "w"), 128, 128, &sc, &err) == QF_EFORMAT &&
		   strstr(err.msg, "[2, 3]"), "mis-shaped _scale_inv: %s", err.msg);
		qf_st_close(st);
	}

	/* the real FP8 release-form fixture: 3 shards with an index */
	{
		qf_ckpt *c = NULL;
		qf_err err = { { 0 } };
		ok(qf_ckpt_open(tu_src("models/tiny-dsv3"), &c, &err) == QF_OK, "opens tiny-dsv3 (%s)", err.msg);
		if (c) {
			is_int(3, (long long)qf_st_nfiles(c->st), "three shards");
			is_int(501, (long long)qf_st_count(c->st), "501 tensors across shards");
			int nfp8 = 0, cross = 0, bad_pairs = 0;
			for (size_t i = 0; i < qf_st_count(c->st); i++) {
				const qf_tensor *t = qf_st_get(c->st, i), *sc;
				if (t->dtype != QF_F8_E4M3)
					continue;
				nfp8++;
				if (qf_st_fp8_scale(c->st, t, 128, 128, &sc, &err) != QF_OK || !sc)
					bad_pairs++;
				else if (sc->file != t->file)
					cross++;
			}
			ok(nfp8 > 100, "%d FP8 weights", nfp8);
			is_int(0, bad_pairs, "every FP8 weight has a well-shaped _scale_inv");
			is_int(20, cross, "20 scales live in another shard than their weight");
			const qf_tensor *t = qf_st_find(c->st, "model.layers.1.mlp.experts.0.down_proj.weight");
			ok(t && t->ndim == 2 && t->shape[0] == 256 && t->shape[1] == 96, "expert down_proj is [256, 96]");
			int64_t v;
			ok(qf_json_get_int(c->config, "n_routed_experts", &v) && v == 16, "config.json: 16 routed experts");
		}
		qf_ckpt_close(c);
	}

	/* a tar of the Llama fixture is staged and read, then the staging folder goes away */
	{
		char cmd[8192];
		const char *tar = tu_path("stories.tar.gz");
		snprintf(cmd, sizeof cmd, "tar -C '%s' -czf '%s' stories260k-hf", tu_src("models"), tar);
		if (system(cmd) != 0) {
			skip("tar not available", "tar checkpoint");
		} else {
			qf_ckpt *c = NULL;
			qf_err err = { { 0 } };
			ok(qf_ckpt_open(tar, &c, &err) == QF_OK, "opens a .tar.gz checkpoint (%s)", err.msg);
			char staged[4096] = "";
			if (c) {
				snprintf(staged, sizeof staged, "%s", c->staged);
				is_int(47, (long long)qf_st_count(c->st), "47 tensors in stories260K");
				ok(c->config != NULL, "config.json found inside the tar");
			}
			qf_ckpt_close(c);
			ok(staged[0] && !tu_exists(staged), "staging folder removed on close");
		}
		const char *junk = tu_path("junk.tar");
		tu_write(junk, "this is not a tar archive at all", 32);
		qf_ckpt *c = NULL;
		qf_err err = { { 0 } };
		qf_status s = qf_ckpt_open(junk, &c, &err);
		ok(s == QF_EFORMAT && strstr(err.msg, "junk.tar"), "corrupt tar rejected: %s", err.msg);
		qf_ckpt_close(c);
	}
	big_index();
	return tap_failures() ? 1 : 0;
}
