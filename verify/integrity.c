/* integrity.c — level 1 of verify: recompute every hash a GGUF or bundle records. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "formats/gguf.h"
#include "formats/packed.h"
#include "formats/qformat.h"
#include "verify/verify.h"

void vfy_integrity_free(vfy_integrity *r)
{
	if (r) {
		free(r->bad);
		r->bad = NULL;
		r->nbad = 0;
	}
}

static int add_bad(vfy_integrity *r, const char *name, uint64_t want, uint64_t got)
{
	vfy_mismatch *g = realloc(r->bad, (r->nbad + 1) * sizeof *g);
	if (!g)
		return -1;
	r->bad = g;
	snprintf(g[r->nbad].name, sizeof g[r->nbad].name, "%s", name);
	g[r->nbad].want = want;
	g[r->nbad].got = got;
	r->nbad++;
	return 0;
}

/* xxh64 of a mapped range, releasing pages behind it so any size streams in flat memory. */
static uint64_t hash_range(const uint8_t *p, uint64_t n, XXH64_state_t *also, XXH64_state_t *also2)
{
	XXH64_state_t *st = XXH64_createState();
	XXH64_reset(st, 0);
	for (uint64_t off = 0; off < n;) {
		size_t k = n - off > (64u << 20) ? (64u << 20) : (size_t)(n - off);
		XXH64_update(st, p + off, k);
		if (also)
			XXH64_update(also, p + off, k);
		if (also2)
			XXH64_update(also2, p + off, k);
		qf_view_release(p + off, k);
		off += k;
	}
	uint64_t h = XXH64_digest(st);
	XXH64_freeState(st);
	return h;
}

/* One file of a GGUF (a split set's part carries the hashes of its own tensors); totals add up in r and all. */
static qf_status check_gguf_file(const char *path, int split, vfy_integrity *r, XXH64_state_t *all, qf_err *err)
{
	qf_gguf *g = NULL;
	qf_status s = qf_gguf_open_one(path, &g, err);
	if (s)
		return s;
	size_t nt = qf_gguf_ntensors(g);
	r->tensors += nt;
	int64_t kt = qf_gguf_find_kv(g, "qforge.tensor_xxh64"), kd = qf_gguf_find_kv(g, "qforge.data_xxh64");
	int64_t km = qf_gguf_find_kv(g, "qforge.meta_xxh64");
	const qf_gguf_kv *th = kt >= 0 ? qf_gguf_kv_at(g, (size_t)kt) : NULL;
	int hashed = th && kd >= 0 && km >= 0 && th->type == QF_GGUF_ARR && th->arr_type == QF_GGUF_U64;
	r->hashed |= hashed;
	XXH64_state_t *dh = XXH64_createState();
	XXH64_reset(dh, 0);
	if (hashed && th->n != nt && add_bad(r, "(metadata: tensor hash count)", nt, th->n))
		goto oom;
	for (size_t i = 0; i < nt; i++) {
		const qf_tensor *t = qf_gguf_tensor(g, i);
		uint64_t h = hash_range(t->data, t->nbytes, dh, all);
		r->bytes += t->nbytes;
		if (hashed && i < th->n) {
			uint64_t want;
			memcpy(&want, th->raw + 8 * i, 8);
			r->checked++;
			if (want != h && add_bad(r, t->name, want, h))
				goto oom;
		}
	}
	uint64_t got = XXH64_digest(dh);
	char what[160];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (hashed) {
		uint64_t want = 0, meta = 0;
		const qf_gguf_kv *d = qf_gguf_kv_at(g, (size_t)kd), *mk = qf_gguf_kv_at(g, (size_t)km);
		memcpy(&want, d->raw, 8);
		snprintf(what, sizeof what, "(all tensor data%s%.100s)", split ? " of " : "", split ? base : "");
		if (want != got && add_bad(r, what, want, got))
			goto oom;
		memcpy(&want, mk->raw, 8);
		if ((s = qf_gguf_meta_hash(g, &meta, err)))
			goto out;
		snprintf(what, sizeof what, "(metadata and tensor table%s%.100s)", split ? " of " : "", split ? base : "");
		if (want != meta && add_bad(r, what, want, meta))
			goto oom;
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	XXH64_freeState(dh);
	qf_gguf_close(g);
	return s;
}

/* A GGUF, or every part of a split set (opened by its first file). */
static qf_status check_gguf(const char *path, vfy_integrity *r, qf_err *err)
{
	qf_gguf *set = NULL;
	qf_status s = qf_gguf_open(path, &set, err);
	if (s)
		return s;
	r->kind = "gguf";
	XXH64_state_t *all = XXH64_createState();
	if (!all) {
		qf_gguf_close(set);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	XXH64_reset(all, 0);
	size_t np = qf_gguf_nsplits(set);
	for (size_t k = 0; k < np && !s; k++)
		s = check_gguf_file(qf_gguf_split_path(set, k), np > 1, r, all, err);
	r->data_hash = XXH64_digest(all);
	XXH64_freeState(all);
	qf_gguf_close(set);
	return s;
}

static qf_status check_bundle(const char *path, vfy_integrity *r, qf_err *err)
{
	qf_pk *pk = NULL;
	qf_status s = qf_pk_open(path, qf_fmt_bundle_sizer, &pk, err);
	if (s)
		return s;
	r->kind = "bundle";
	r->hashed = 1;
	r->tensors = qf_pk_ntensors(pk);
	XXH64_state_t *dh = XXH64_createState();
	XXH64_reset(dh, 0);
	for (size_t i = 0; i < r->tensors; i++) {
		const qf_pk_tensor *t = qf_pk_tensor_at(pk, i);
		uint64_t h = hash_range(t->t.data, t->t.nbytes, NULL, NULL);
		uint8_t le[8];
		for (int k = 0; k < 8; k++)
			le[k] = (uint8_t)(h >> (8 * k));
		XXH64_update(dh, le, 8);
		r->bytes += t->t.nbytes;
		r->checked++;
		if (h != t->xxh64 && add_bad(r, t->t.name, t->xxh64, h))
			goto oom;
	}
	r->data_hash = XXH64_digest(dh);
	const cJSON *m = qf_pk_manifest(pk);
	uint64_t want = 0;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "data_xxh64");
	int ok = qf_parse_hex64(cJSON_IsString(d) ? d->valuestring : NULL, &want);
	if ((!ok || want != r->data_hash) && add_bad(r, "(all tensor data)", want, r->data_hash))
		goto oom;
	/* member files carry their own hashes (metadata.gguf holds the hyperparameters) */
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
	for (const cJSON *f = cJSON_IsArray(files) ? files->child : NULL; f; f = f->next) {
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name"), *hx = cJSON_GetObjectItemCaseSensitive(f, "xxh64");
		if (!cJSON_IsString(nm) || !cJSON_IsString(hx))
			continue;
		uint64_t len = 0;
		const uint8_t *b = qf_pk_member(pk, nm->valuestring, &len);
		uint64_t w = 0, got = b ? XXH64(b, (size_t)len, 0) : 0;
		ok = qf_parse_hex64(hx->valuestring, &w);
		char label[200];
		snprintf(label, sizeof label, "(file %s)", nm->valuestring);
		r->checked++;
		if ((!ok || !b || w != got) && add_bad(r, label, w, got))
			goto oom;
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	XXH64_freeState(dh);
	qf_pk_close(pk);
	return s;
}

qf_status vfy_integrity_check(const char *path, vfy_integrity *r, qf_err *err)
{
	memset(r, 0, sizeof *r);
	if (qf_pk_is_bundle(path))
		return check_bundle(path, r, err);
	if (qf_path_is_gguf(path))
		return check_gguf(path, r, err);
	r->kind = "checkpoint"; /* safetensors carry no hashes */
	return QF_OK;
}
