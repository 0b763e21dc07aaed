/* integrity.c — level 1 of verify: recompute every hash a GGUF or bundle records. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "formats/gguf.h"
#include "formats/hashcheck.h"
#include "formats/packed.h"
#include "formats/qformat.h"
#include "verify/hf_integrity.h"
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
	memset(&g[r->nbad], 0, sizeof g[r->nbad]);
	snprintf(g[r->nbad].name, sizeof g[r->nbad].name, "%s", name);
	g[r->nbad].want = want;
	g[r->nbad].got = got;
	r->nbad++;
	return 0;
}

/* A check that could not be made because what it needs is missing or malformed. */
static int add_broken(vfy_integrity *r, const char *name, const char *what)
{
	if (add_bad(r, name, 0, 0))
		return -1;
	snprintf(r->bad[r->nbad - 1].what, sizeof r->bad[r->nbad - 1].what, "%s", what);
	return 0;
}

/*
 * One file of a GGUF (a split set's part carries the hashes of its own
 * tensors); totals add up in r and all.  Every key that is there is
 * checked; when any of the three is there, a missing or mistyped one is a
 * failure of its own (one flipped type byte must not switch the others
 * off).  *claimed: the part records qforge hashes at all.
 */
static qf_status check_gguf_file(const char *path, int split, vfy_integrity *r, XXH64_state_t *all, int *claimed,
				 qf_err *err)
{
	qf_gguf *g = NULL;
	qf_status s = qf_gguf_open_one(path, &g, err);
	if (s)
		return s;
	size_t nt = qf_gguf_ntensors(g);
	r->tensors += nt;
	qf_gguf_hashes hs;
	qf_gguf_hashes_read(g, &hs);
	*claimed = hs.claimed;
	r->hashed |= hs.claimed;
	char what[160];
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	snprintf(what, sizeof what, "(metadata%s%.100s: qforge hash keys)", split ? " of " : "", split ? base : "");
	if (hs.problem[0] && add_broken(r, what, hs.problem))
		goto oom;
	XXH64_state_t *dh = XXH64_createState();
	if (!dh)
		goto oom;
	XXH64_reset(dh, 0);
	int nomem = 0;
	for (size_t i = 0; i < nt && !nomem; i++) {
		const qf_tensor *t = qf_gguf_tensor(g, i);
		uint64_t h, want;
		if ((s = qf_xxh64_mapped(t->data, t->nbytes, dh, all, &h, err)))
			break;
		r->bytes += t->nbytes;
		if (qf_gguf_hashes_tensor(&hs, i, &want)) {
			r->checked++;
			nomem = want != h && add_bad(r, t->name, want, h);
		}
	}
	uint64_t got = XXH64_digest(dh);
	XXH64_freeState(dh);
	if (s)
		goto out;
	if (nomem)
		goto oom;
	snprintf(what, sizeof what, "(all tensor data%s%.100s)", split ? " of " : "", split ? base : "");
	if (hs.has_data && hs.data != got && add_bad(r, what, hs.data, got))
		goto oom;
	if (hs.has_meta) {
		uint64_t meta = 0;
		if ((s = qf_gguf_meta_hash(g, &meta, err)))
			goto out;
		snprintf(what, sizeof what, "(metadata and tensor table%s%.100s)", split ? " of " : "", split ? base : "");
		if (hs.meta != meta && add_bad(r, what, hs.meta, meta))
			goto oom;
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	qf_gguf_close(g);
	return s;
}

/* A GGUF, or every part of a split set (opened by its first file).  No hashes anywhere: not checked, said plainly. */
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
	int *claimed = calloc(np ? np : 1, sizeof *claimed);
	if (!claimed)
		s = qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t k = 0; k < np && !s; k++)
		s = check_gguf_file(qf_gguf_split_path(set, k), np > 1, r, all, &claimed[k], err);
	r->data_hash = XXH64_digest(all);
	XXH64_freeState(all);
	if (!s && !r->hashed)
		r->unchecked = "no qforge hashes (qforge.*_xxh64 keys): not written by qforge, or they were removed";
	for (size_t k = 0; !s && r->hashed && k < np; k++) {
		const char *p = qf_gguf_split_path(set, k), *base = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
		char what[160];
		snprintf(what, sizeof what, "(part %.120s)", base);
		if (!claimed[k] && add_broken(r, what, "has no qforge hashes, while the other parts do"))
			s = qf_fail(err, QF_ENOMEM, "out of memory");
	}
	free(claimed);
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
	if (!dh)
		goto oom;
	XXH64_reset(dh, 0);
	for (size_t i = 0; i < r->tensors; i++) {
		const qf_pk_tensor *t = qf_pk_tensor_at(pk, i);
		uint64_t h;
		if ((s = qf_xxh64_mapped(t->t.data, t->t.nbytes, NULL, NULL, &h, err)))
			goto out;
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
	for (size_t i = 0; i < qf_pk_nfiles(pk); i++) {
		const qf_pk_file *f = qf_pk_file_at(pk, i);
		if (!f->hashed)
			continue; /* tensors.bin: its tensors are hashed */
		uint64_t len = 0, got = 0;
		const uint8_t *b = qf_pk_member(pk, f->name, &len);
		if (b && (s = qf_xxh64_mapped(b, len, NULL, NULL, &got, err)))
			goto out;
		char label[200];
		snprintf(label, sizeof label, "(file %s)", f->name);
		r->checked++;
		if ((!b || f->xxh64 != got) && add_bad(r, label, f->xxh64, got))
			goto oom;
	}
	/* the manifest itself: shapes, formats, config, and every hash above */
	uint64_t mw, mg;
	if (!qf_pk_manifest_hash(pk, &mw, &mg))
		r->unchecked = "manifest.json itself (shapes, formats, config) is not hashed in bundle format version 1";
	else if (mw != mg && add_bad(r, "(manifest.json)", mw, mg))
		goto oom;
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
	return vfy_hf_integrity(path, r, err); /* hashes in each shard's __metadata__, when qforge wrote it */
}
