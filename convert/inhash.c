/*
 * inhash.c — a GGUF or bundle source is checked against the hashes it
 * records before convert or quantize writes anything from it, so corruption
 * is never laundered into a fresh file with valid hashes.  What is cheap
 * (GGUF metadata, the bundle manifest and member files) is checked as the
 * plan opens; each tensor is hashed as the writer reaches it, and a
 * mismatch aborts the write before the output is renamed into place.
 * A GGUF that records no qforge hashes has nothing to check.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "convert/plan.h"
#include "formats/hashcheck.h"
#include "formats/mapfile.h"

#define HINT "the source is corrupt (qforge verify names what); use --ignore-input-hashes to convert it anyway"

#define CHECK_CHUNK ((uint64_t)16 << 20)

/*
 * Hashes t in 16 MiB pieces, dropping each piece's pages from the resident set as it goes
 * (release: the mapping is a file's): a tensor of stacked experts can be gigabytes, and
 * keeping it resident until the writer reached it made peak RSS the largest tensor's size.
 * The writer maps the pages again from the page cache.
 */
static qf_status check_one(const char *src, const qf_tensor *t, uint64_t want, int release, qf_err *err)
{
	XXH64_state_t *st = XXH64_createState();
	if (!st)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	XXH64_reset(st, 0);
	for (uint64_t o = 0; o < t->nbytes; o += CHECK_CHUNK) {
		size_t n = (size_t)(t->nbytes - o < CHECK_CHUNK ? t->nbytes - o : CHECK_CHUNK);
		XXH64_update(st, t->data + o, n);
		if (release)
			qf_view_release(t->data + o, n);
	}
	uint64_t got = XXH64_digest(st);
	XXH64_freeState(st);
	if (got != want)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': hash mismatch (recorded %016llx, computed %016llx): %s",
			       src, t->name, (unsigned long long)want, (unsigned long long)got, HINT);
	return QF_OK;
}

/* One GGUF file's keys and metadata hash; all: its tensors too (the parts of a split set). */
static qf_status check_gguf_file(const char *label, const qf_gguf *g, int all, qf_err *err)
{
	qf_gguf_hashes h;
	qf_gguf_hashes_read(g, &h);
	if (!h.claimed)
		return QF_OK;
	if (h.problem[0])
		return qf_fail(err, QF_EFORMAT, "%s: %s: %s", label, h.problem, HINT);
	uint64_t meta = 0, want;
	qf_status s = qf_gguf_meta_hash(g, &meta, err);
	if (s)
		return s;
	if (meta != h.meta)
		return qf_fail(err, QF_EFORMAT, "%s: metadata hash mismatch (recorded %016llx, computed %016llx): %s", label,
			       (unsigned long long)h.meta, (unsigned long long)meta, HINT);
	for (size_t i = 0; all && !s && i < qf_gguf_ntensors(g); i++)
		if (qf_gguf_hashes_tensor(&h, i, &want))
			s = check_one(label, qf_gguf_tensor(g, i), want, 1, err);
	return s;
}

qf_status cvt_plan_check_source(cvt_plan *p, qf_err *err)
{
	if (p->g && qf_gguf_nsplits(p->g) > 1) {
		/* each part records its own tensors' hashes: checked here, part by part, in full */
		qf_status s = QF_OK;
		for (size_t k = 0; k < qf_gguf_nsplits(p->g) && !s; k++) {
			qf_gguf *part = NULL;
			if (!(s = qf_gguf_open_one(qf_gguf_split_path(p->g, k), &part, err)))
				s = check_gguf_file(qf_gguf_split_path(p->g, k), part, 1, err);
			qf_gguf_close(part);
		}
		return s;
	}
	if (p->g)
		return check_gguf_file(p->src_path, p->g, 0, err);
	if (!p->pk)
		return QF_OK;
	uint64_t want, got;
	if (qf_pk_manifest_hash(p->pk, &want, &got) && want != got)
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json hash mismatch (recorded %016llx, computed %016llx): %s",
			       p->src_path, (unsigned long long)want, (unsigned long long)got, HINT);
	for (size_t i = 0; i < qf_pk_nfiles(p->pk); i++) {
		const qf_pk_file *f = qf_pk_file_at(p->pk, i);
		uint64_t len = 0;
		const uint8_t *b = f->hashed ? qf_pk_member(p->pk, f->name, &len) : NULL;
		if (f->hashed && (!b || (got = XXH64(b, (size_t)len, 0)) != f->xxh64))
			return qf_fail(err, QF_EFORMAT, "%s: %s: hash mismatch (recorded %016llx, computed %016llx): %s",
				       p->src_path, f->name, (unsigned long long)f->xxh64, (unsigned long long)(b ? got : 0),
				       HINT);
	}
	return QF_OK;
}

qf_status cvt_item_check_source(const cvt_plan *p, const cvt_item *it, qf_err *err)
{
	const qf_tensor *t = it->srcs[0].t;
	if (p->g && qf_gguf_nsplits(p->g) > 1)
		return QF_OK; /* checked as the plan opened */
	if (p->g) {
		qf_gguf_hashes h;
		qf_gguf_hashes_read(p->g, &h);
		size_t n = qf_gguf_ntensors(p->g), k = (size_t)(it - p->items); /* item k is tensor k */
		for (size_t j = 0; j < n; j++) {
			size_t i = (k + j) % n;
			uint64_t want;
			if (qf_gguf_tensor(p->g, i) == t)
				return qf_gguf_hashes_tensor(&h, i, &want)
					       ? check_one(p->src_path, t, want, p->release_ok && t->file >= 0, err)
					       : QF_OK;
		}
		return QF_OK;
	}
	if (!p->pk)
		return QF_OK;
	/* a bundle item reads its main tensor and its companions */
	const qf_pk_tensor *pt = (const qf_pk_tensor *)(const void *)((const char *)t - offsetof(qf_pk_tensor, t));
	int rel = p->release_ok && t->file >= 0;
	qf_status s = check_one(p->src_path, t, pt->xxh64, rel, err);
	for (int k = 0; k < 2 && !s; k++)
		if (pt->comp[k] >= 0) {
			const qf_pk_tensor *c = qf_pk_tensor_at(p->pk, (size_t)pt->comp[k]);
			s = check_one(p->src_path, &c->t, c->xxh64, rel, err);
		}
	return s;
}
