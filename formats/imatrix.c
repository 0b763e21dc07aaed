#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/imatrix.h"
#include "formats/mapfile.h"

static void entry_free(qf_imatrix_entry *e)
{
	free(e->name);
	free(e->sums);
	free(e->counts);
}

void qf_imatrix_free(qf_imatrix *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		entry_free(&m->e[i]);
	for (size_t i = 0; i < m->ndatasets; i++)
		free(m->datasets[i]);
	free(m->datasets);
	free(m->e);
	free(m);
}

qf_imatrix *qf_imatrix_new(void) { return calloc(1, sizeof(qf_imatrix)); }

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const qf_imatrix_entry *)a)->name, ((const qf_imatrix_entry *)b)->name);
}

const qf_imatrix_entry *qf_imatrix_find(const qf_imatrix *m, const char *name)
{
	qf_imatrix_entry key = { .name = (char *)name };
	return m->n ? bsearch(&key, m->e, m->n, sizeof *m->e, cmp_entry) : NULL;
}

/* Appends an entry that takes ownership of name/sums/counts (freed on failure). */
static qf_status push(qf_imatrix *m, char *name, int64_t n, int64_t n_mat, float *sums, int64_t *counts, qf_err *err)
{
	qf_imatrix_entry *g = realloc(m->e, (m->n + 1) * sizeof *g);
	if (!g || !name || !sums || !counts) {
		if (g)
			m->e = g;
		free(name);
		free(sums);
		free(counts);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	m->e = g;
	m->e[m->n++] = (qf_imatrix_entry){ .name = name, .n = n, .n_mat = n_mat, .sums = sums, .counts = counts };
	return QF_OK;
}

qf_status qf_imatrix_add(qf_imatrix *m, const char *name, int64_t ne0, int64_t n_mat, const float *sums,
			 const int64_t *counts, qf_err *err)
{
	if (ne0 < 1 || n_mat < 1 || ne0 > INT32_MAX / n_mat)
		return qf_fail(err, QF_EUSAGE, "imatrix entry '%s': bad size %lld × %lld", name, (long long)ne0, (long long)n_mat);
	size_t n = (size_t)(ne0 * n_mat);
	float *s = malloc(n * sizeof *s);
	int64_t *c = malloc((size_t)n_mat * sizeof *c);
	if (s)
		memcpy(s, sums, n * sizeof *s);
	if (c)
		memcpy(c, counts, (size_t)n_mat * sizeof *c);
	qf_status st = push(m, strdup(name), (int64_t)n, n_mat, s, c, err);
	if (!st)
		qsort(m->e, m->n, sizeof *m->e, cmp_entry); /* qf_imatrix_find searches sorted entries */
	return st;
}

qf_status qf_imatrix_add_dataset(qf_imatrix *m, const char *dataset, qf_err *err)
{
	char **g = realloc(m->datasets, (m->ndatasets + 1) * sizeof *g);
	if (!g)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	m->datasets = g;
	if (!(m->datasets[m->ndatasets] = strdup(dataset)))
		return qf_fail(err, QF_ENOMEM, "out of memory");
	m->ndatasets++;
	return QF_OK;
}

/* ---- legacy .dat ------------------------------------------------------------------ */

typedef struct rd {
	const uint8_t *p;
	size_t pos, len;
} rd;

static int rd_i32(rd *r, int32_t *v)
{
	if (r->len - r->pos < 4)
		return 0;
	memcpy(v, r->p + r->pos, 4);
	r->pos += 4;
	return 1;
}

static qf_status parse_dat(const uint8_t *buf, size_t len, const char *label, qf_imatrix *m, qf_err *err)
{
	rd r = { buf, 0, len };
	int32_t ne;
	m->legacy = 1;
	if (!rd_i32(&r, &ne) || ne < 1)
		return qf_fail(err, QF_EFORMAT, "%s: not an imatrix (no entries, and not a GGUF)", label);
	for (int32_t i = 0; i < ne; i++) {
		int32_t nl, ncall, nval;
		size_t at = r.pos;
		if (!rd_i32(&r, &nl) || nl < 1 || nl > 4096 || (size_t)nl > r.len - r.pos)
			return qf_fail(err, QF_EFORMAT, "%s: offset %zu: entry %d: bad name length", label, at, i + 1);
		char *name = strndup((const char *)r.p + r.pos, (size_t)nl);
		r.pos += (size_t)nl;
		if (!name)
			return qf_fail(err, QF_ENOMEM, "out of memory");
		if (strlen(name) != (size_t)nl || !rd_i32(&r, &ncall) || !rd_i32(&r, &nval) || nval < 1 ||
		    (size_t)nval > (r.len - r.pos) / 4) {
			qf_status s = qf_fail(err, QF_EFORMAT, "%s: entry %d ('%s'): bad call or value count, or data past end of file",
					      label, i + 1, name);
			free(name);
			return s;
		}
		float *s = malloc((size_t)nval * sizeof *s);
		int64_t *c = malloc(sizeof *c);
		if (s)
			memcpy(s, r.p + r.pos, (size_t)nval * 4);
		if (c)
			c[0] = ncall;
		r.pos += (size_t)nval * 4;
		qf_status st = push(m, name, nval, 1, s, c, err);
		if (st)
			return st;
	}
	int32_t chunks, dl;
	if (rd_i32(&r, &chunks)) {
		m->chunk_count = chunks > 0 ? (uint32_t)chunks : 0;
		if (rd_i32(&r, &dl) && dl > 0 && (size_t)dl <= r.len - r.pos) {
			char *d = strndup((const char *)r.p + r.pos, (size_t)dl);
			qf_status s = d ? qf_imatrix_add_dataset(m, d, err) : qf_fail(err, QF_ENOMEM, "out of memory");
			free(d);
			if (s)
				return s;
		}
	}
	return QF_OK;
}

/* ---- GGUF ------------------------------------------------------------------------- */

static int strip(const char *name, const char *suf, char *out, size_t n)
{
	size_t a = strlen(name), b = strlen(suf);
	if (a <= b || strcmp(name + a - b, suf) != 0 || a - b >= n)
		return 0;
	memcpy(out, name, a - b);
	out[a - b] = 0;
	return 1;
}

static qf_status parse_gguf(const qf_gguf *g, const char *label, qf_imatrix *m, qf_err *err)
{
	static const char *const need[] = { "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size" };
	for (int k = 0; k < 3; k++)
		if (qf_gguf_find_kv(g, need[k]) < 0)
			return qf_fail(err, QF_EFORMAT, "%s: no %s: not a GGUF imatrix llama.cpp accepts (it needs imatrix.datasets, .chunk_count and .chunk_size)",
				       label, need[k]);
	qf_status s;
	if ((s = qf_gguf_get_u32(g, "imatrix.chunk_count", &m->chunk_count, err)) ||
	    (s = qf_gguf_get_u32(g, "imatrix.chunk_size", &m->chunk_size, err)))
		return s;
	const qf_gguf_kv *ds = qf_gguf_kv_at(g, (size_t)qf_gguf_find_kv(g, "imatrix.datasets"));
	if (ds->type == QF_GGUF_ARR && ds->arr_type == QF_GGUF_STR) {
		for (uint64_t i = 0; i < ds->n; i++) {
			char *d = strndup(ds->strs[i].p, (size_t)ds->strs[i].len);
			s = d ? qf_imatrix_add_dataset(m, d, err) : qf_fail(err, QF_ENOMEM, "out of memory");
			free(d);
			if (s)
				return s;
		}
	}
	size_t nt = qf_gguf_ntensors(g);
	for (size_t i = 0; i < nt; i++) {
		const qf_tensor *t = qf_gguf_tensor(g, i);
		char w[QF_GGUF_MAX_NAME], other[QF_GGUF_MAX_NAME + 16];
		if (!strip(t->name, ".in_sum2", w, sizeof w))
			continue;
		snprintf(other, sizeof other, "%s.counts", w);
		const qf_tensor *c = qf_gguf_find_tensor(g, other);
		if (!c)
			return qf_fail(err, QF_EFORMAT, "%s: mismatched sums and counts for %s (no %s)", label, w, other);
		if (t->dtype != QF_F32 || c->dtype != QF_F32 || c->nelems < 1 || t->nelems % c->nelems)
			return qf_fail(err, QF_EFORMAT, "%s: %s: in_sum2 (%llu values) and counts (%llu) must be F32 with one count per matrix",
				       label, w, (unsigned long long)t->nelems, (unsigned long long)c->nelems);
		float *sums = malloc((size_t)t->nelems * sizeof *sums);
		int64_t *cnt = malloc((size_t)c->nelems * sizeof *cnt);
		if (sums)
			memcpy(sums, t->data, (size_t)t->nelems * 4);
		for (uint64_t j = 0; cnt && j < c->nelems; j++) {
			float f;
			memcpy(&f, c->data + 4 * j, 4);
			if (!isfinite(f) || f < 0 || f > 9.2e18f) {
				free(sums);
				free(cnt);
				return qf_fail(err, QF_EFORMAT, "%s: %s: count %llu is %g", label, w, (unsigned long long)j, (double)f);
			}
			cnt[j] = (int64_t)llroundf(f); /* std::lround, as llama.cpp's loader */
		}
		if ((s = push(m, strdup(w), (int64_t)t->nelems, (int64_t)c->nelems, sums, cnt, err)))
			return s;
	}
	for (size_t i = 0; i < nt; i++) {
		char w[QF_GGUF_MAX_NAME], other[QF_GGUF_MAX_NAME + 16];
		if (strip(qf_gguf_tensor(g, i)->name, ".counts", w, sizeof w)) {
			snprintf(other, sizeof other, "%s.in_sum2", w);
			if (!qf_gguf_find_tensor(g, other))
				return qf_fail(err, QF_EFORMAT, "%s: mismatched sums and counts for %s (no %s)", label, w, other);
		}
	}
	if (!m->n)
		return qf_fail(err, QF_EFORMAT, "%s: no data in the imatrix", label);
	return QF_OK;
}

qf_status qf_imatrix_parse(const void *buf, size_t len, const char *label, qf_imatrix **out, qf_err *err)
{
	qf_imatrix *m = qf_imatrix_new();
	if (!m)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	qf_status s;
	if (len >= 4 && memcmp(buf, "GGUF", 4) == 0) {
		qf_gguf *g = NULL;
		s = qf_gguf_open_buffer(buf, len, label, &g, err);
		if (!s)
			s = parse_gguf(g, label, m, err);
		qf_gguf_close(g);
	} else {
		s = parse_dat(buf, len, label, m, err);
	}
	if (!s && m->n)
		qsort(m->e, m->n, sizeof *m->e, cmp_entry);
	for (size_t i = 1; !s && i < m->n; i++)
		if (strcmp(m->e[i - 1].name, m->e[i].name) == 0)
			s = qf_fail(err, QF_EFORMAT, "%s: entry '%s' appears twice", label, m->e[i].name);
	if (s) {
		qf_imatrix_free(m);
		return s;
	}
	*out = m;
	return QF_OK;
}

qf_status qf_imatrix_open(const char *path, qf_imatrix **out, qf_err *err)
{
	qf_mapfile f;
	qf_status s = qf_mapfile_open(&f, path, err);
	if (s)
		return s;
	s = qf_imatrix_parse(f.data, (size_t)f.size, path, out, err);
	qf_mapfile_close(&f);
	return s;
}

qf_status qf_imatrix_weights(const qf_imatrix *m, const qf_imatrix_entry *e, float *w, qf_err *err)
{
	int64_t ne0 = e->n / e->n_mat;
	for (int64_t j = 0; j < e->n_mat; j++) {
		float count = (float)e->counts[j];
		for (int64_t i = 0; i < ne0; i++) {
			float s = e->sums[j * ne0 + i];
			if (m->legacy)
				w[j * ne0 + i] = e->counts[0] > 0 ? s / (float)e->counts[0] : s;
			else
				w[j * ne0 + i] = count > 0.0f ? s / count : 1.0f;
			if (!isfinite(w[j * ne0 + i]))
				return qf_fail(err, QF_EFORMAT, "imatrix entry '%s': value %lld is not finite (%g)", e->name,
					       (long long)(j * ne0 + i), (double)s);
		}
	}
	return QF_OK;
}

qf_status qf_imatrix_write(qf_imatrix *m, const char *path, int force, qf_err *err)
{
	if (m->n)
		qsort(m->e, m->n, sizeof *m->e, cmp_entry);
	qf_gguf_writer *w = qf_gguf_writer_new();
	if (!w)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	qf_gguf_set_str(w, "general.type", "imatrix");
	qf_gguf_set_arr_str(w, "imatrix.datasets", (const char *const *)m->datasets, m->ndatasets);
	qf_gguf_set_u32(w, "imatrix.chunk_count", m->chunk_count);
	qf_gguf_set_u32(w, "imatrix.chunk_size", m->chunk_size);
	qf_status s = QF_OK;
	float *cf = NULL;
	for (size_t i = 0; i < m->n && !s; i++) {
		const qf_imatrix_entry *e = &m->e[i];
		char nm[QF_GGUF_MAX_NAME + 16];
		int64_t ss[2] = { e->n_mat, e->n / e->n_mat }, cs[2] = { e->n_mat, 1 };
		snprintf(nm, sizeof nm, "%s.in_sum2", e->name);
		s = qf_gguf_add_tensor(w, nm, 2, ss, QF_F32, err);
		snprintf(nm, sizeof nm, "%s.counts", e->name);
		if (!s)
			s = qf_gguf_add_tensor(w, nm, 2, cs, QF_F32, err);
	}
	if (!s)
		s = qf_gguf_writer_begin(w, path, force, err);
	for (size_t i = 0; i < m->n && !s; i++) {
		const qf_imatrix_entry *e = &m->e[i];
		float *g = realloc(cf, (size_t)e->n_mat * sizeof *cf);
		if (!g) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			break;
		}
		cf = g;
		for (int64_t j = 0; j < e->n_mat; j++)
			cf[j] = (float)e->counts[j];
		s = qf_gguf_writer_write(w, e->sums, (size_t)e->n * sizeof(float), err);
		if (!s)
			s = qf_gguf_writer_write(w, cf, (size_t)e->n_mat * sizeof(float), err);
	}
	if (!s)
		s = qf_gguf_writer_finish(w, err);
	free(cf);
	qf_gguf_writer_free(w);
	return s;
}
