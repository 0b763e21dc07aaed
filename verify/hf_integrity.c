#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "verify/hf_integrity.h"

#define KEY_PREFIX "qforge.xxh64."

static int bad(vfy_integrity *r, const char *name, uint64_t want, uint64_t got)
{
	vfy_mismatch *g = realloc(r->bad, (r->nbad + 1) * sizeof *g);
	if (!g)
		return -1;
	r->bad = g;
	snprintf(g[r->nbad].name, sizeof g[r->nbad].name, "%s", name);
	g[r->nbad].want = want;
	g[r->nbad].got = got;
	g[r->nbad].what[0] = 0;
	r->nbad++;
	return 0;
}

static uint64_t hash_view(const uint8_t *p, uint64_t n)
{
	XXH64_state_t *st = XXH64_createState();
	if (!st)
		return 0;
	XXH64_reset(st, 0);
	for (uint64_t off = 0; off < n;) {
		size_t k = n - off > (64u << 20) ? (64u << 20) : (size_t)(n - off);
		XXH64_update(st, p + off, k);
		qf_view_release(p + off, k);
		off += k;
	}
	uint64_t h = XXH64_digest(st);
	XXH64_freeState(st);
	return h;
}

/* Every key "qforge.xxh64.*" in one shard's raw header, checked against its tensors. */
static qf_status check_file(const char *file, vfy_integrity *r, XXH64_state_t *dh, qf_err *err)
{
	qf_st *st = NULL;
	qf_status s = qf_st_open(file, &st, err);
	if (s)
		return s;
	size_t n = qf_st_count(st);
	r->tensors += n;
	for (size_t i = 0; i < n; i++) {
		const qf_tensor *t = qf_st_get(st, i);
		char key[512];
		snprintf(key, sizeof key, KEY_PREFIX "%s", t->name);
		const char *hex = qf_st_metadata(st, key);
		uint64_t h = hash_view(t->data, t->nbytes), want = 0;
		unsigned char le[8];
		for (int b = 0; b < 8; b++)
			le[b] = (unsigned char)(h >> (8 * b));
		XXH64_update(dh, le, 8);
		r->bytes += t->nbytes;
		if (!hex)
			continue;
		r->hashed = 1;
		r->checked++;
		if ((!qf_parse_hex64(hex, &want) || want != h) && bad(r, t->name, want, h)) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			break;
		}
	}
	qf_st_close(st);
	return s;
}

qf_status vfy_hf_integrity(const char *path, vfy_integrity *r, qf_err *err)
{
	memset(r, 0, sizeof *r);
	r->kind = "checkpoint";
	qf_st *all = NULL;
	qf_status s;
	if (qf_is_dir(path) || !qf_path_is_tar(path)) {
		s = qf_st_open(path, &all, err);
	} else {
		r->unchecked = "a tar of a checkpoint is not checked in place";
		return QF_OK;
	}
	if (s)
		return s;
	XXH64_state_t *dh = XXH64_createState();
	if (!dh) {
		qf_st_close(all);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	XXH64_reset(dh, 0);
	for (size_t f = 0; !s && f < qf_st_nfiles(all); f++)
		s = check_file(qf_st_file_path(all, f), r, dh, err);
	r->data_hash = XXH64_digest(dh);
	XXH64_freeState(dh);
	r->unchecked = r->hashed ? "the safetensors headers (tensor names, dtypes, shapes) carry no hash of their own"
				 : "no qforge.xxh64.* keys in any shard's __metadata__: not written by qforge, or they were removed";
	qf_st_close(all);
	return s;
}
