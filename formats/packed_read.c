/* packed_read.c — opens a bundle (folder, tar or buffer) and checks its manifest. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/packed_priv.h"

const cJSON *qf_pk_manifest(const qf_pk *pk) { return pk->manifest; }
size_t qf_pk_ntensors(const qf_pk *pk) { return pk->n; }
const qf_pk_tensor *qf_pk_tensor_at(const qf_pk *pk, size_t i) { return i < pk->n ? &pk->t[i] : NULL; }
uint64_t qf_pk_payload_size(const qf_pk *pk) { return pk->payload_size; }

int64_t qf_pk_find(const qf_pk *pk, const char *name)
{
	for (size_t i = 0; i < pk->n; i++)
		if (strcmp(pk->t[i].t.name, name) == 0)
			return (int64_t)i;
	return -1;
}

void qf_pk_close(qf_pk *pk)
{
	if (!pk)
		return;
	cJSON_Delete(pk->manifest);
	qf_mapfile_close(&pk->tar);
	qf_mapfile_close(&pk->manifest_map);
	qf_mapfile_close(&pk->payload_map);
	for (size_t i = 0; i < pk->nextra; i++)
		qf_mapfile_close(&pk->extra[i]);
	free(pk->extra);
	free(pk->members);
	free(pk->t);
	free(pk->path);
	free(pk);
}

const uint8_t *qf_pk_member(const qf_pk *pk, const char *name, uint64_t *size)
{
	for (size_t i = 0; i < pk->nmembers; i++)
		if (strcmp(pk->members[i].name, name) == 0) {
			*size = pk->members[i].size;
			return pk->tar.data + pk->members[i].off;
		}
	if (!pk->members && pk->path) {
		char p[4096];
		snprintf(p, sizeof p, "%s/%s", pk->path, name);
		for (size_t i = 0; i < pk->nextra; i++) /* mapped by an earlier call */
			if (strcmp(pk->extra[i].path, p) == 0) {
				*size = pk->extra[i].size;
				return pk->extra[i].data ? pk->extra[i].data : (const uint8_t *)"";
			}
		qf_mapfile m;
		if (qf_mapfile_open(&m, p, NULL) != QF_OK)
			return NULL;
		qf_pk *w = (qf_pk *)pk; /* the cache of mapped members is not part of the value */
		qf_mapfile *g = realloc(w->extra, (w->nextra + 1) * sizeof *g);
		if (!g) {
			qf_mapfile_close(&m);
			return NULL;
		}
		w->extra = g;
		w->extra[w->nextra++] = m;
		*size = m.size;
		return m.data ? m.data : (const uint8_t *)"";
	}
	return NULL;
}

static int get_u64(const cJSON *o, const char *key, uint64_t *v)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9007199254740992.0 ||
	    x->valuedouble != (double)(uint64_t)x->valuedouble)
		return 0;
	*v = (uint64_t)x->valuedouble;
	return 1;
}

static const char *get_str(const cJSON *o, const char *key)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(x) && x->valuestring[0] ? x->valuestring : NULL;
}

static int cmp_off(const void *a, const void *b)
{
	const qf_pk_tensor *x = *(const qf_pk_tensor *const *)a, *y = *(const qf_pk_tensor *const *)b;
	return x->t.offset < y->t.offset ? -1 : x->t.offset > y->t.offset;
}

static qf_status parse_tensor(qf_pk *pk, const cJSON *e, size_t i, qf_pk_sizer sizer, qf_err *err)
{
	const char *P = pk->path;
	qf_pk_tensor *t = &pk->t[i];
	memset(t, 0, sizeof *t);
	t->comp[0] = t->comp[1] = -1;
	const char *name = get_str(e, "name");
	if (!cJSON_IsObject(e) || !name || strlen(name) >= MAX_NAME)
		return qf_fail(err, QF_EFORMAT, "%s: manifest tensor %zu: missing or bad name", P, i);
	t->t.name = name;
	const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
	int nd = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
	if (nd < 1 || nd > 4)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': shape must be an array of 1 to 4 dims", P, name);
	uint64_t ne = 1;
	for (int d = 0; d < nd; d++) {
		const cJSON *x = cJSON_GetArrayItem(shape, d);
		if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > (double)MAX_DIM_VALUE ||
		    x->valuedouble != (double)(int64_t)x->valuedouble)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': bad dimension %d", P, name, d);
		t->t.shape[d] = (int64_t)x->valuedouble;
		if (!qf_mul_u64(ne, (uint64_t)t->t.shape[d], &ne))
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': element count overflows", P, name);
	}
	t->t.ndim = nd;
	t->t.nelems = ne;
	t->format = get_str(e, "format");
	const char *dt = get_str(e, "dtype");
	t->t.dtype = dt ? qf_dtype_from_name(dt) : QF_DTYPE_NONE;
	if (!t->format || t->t.dtype == QF_DTYPE_NONE)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': missing format or unknown dtype", P, name);
	const char *file = get_str(e, "file");
	if (!file || strcmp(file, QF_PK_PAYLOAD) != 0)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': file must be \"%s\"", P, name, QF_PK_PAYLOAD);
	uint64_t end;
	if (!get_u64(e, "offset", &t->t.offset) || !get_u64(e, "nbytes", &t->t.nbytes))
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': missing or bad offset/nbytes", P, name);
	if (t->t.offset % QF_PK_ALIGN)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': offset %llu is not a multiple of %d", P, name,
			       (unsigned long long)t->t.offset, QF_PK_ALIGN);
	if (!qf_add_u64(t->t.offset, t->t.nbytes, &end) || end > pk->payload_size)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': bytes %llu..%llu lie outside %s (%llu bytes)",
			       P, name, (unsigned long long)t->t.offset, (unsigned long long)end, QF_PK_PAYLOAD,
			       (unsigned long long)pk->payload_size);
	if (!qf_parse_hex64(get_str(e, "xxh64"), &t->xxh64))
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': xxh64 must be 16 lowercase hex digits", P, name);
	t->cls = get_str(e, "class");
	t->role = get_str(e, "role");
	if (!t->role)
		t->role = "weight";
	t->of = get_str(e, "of");
	const cJSON *blk = cJSON_GetObjectItemCaseSensitive(e, "block");
	t->block[0] = t->block[1] = 1;
	if (cJSON_IsArray(blk) && cJSON_GetArraySize(blk) == 2) {
		t->block[0] = (int64_t)cJSON_GetArrayItem(blk, 0)->valuedouble;
		t->block[1] = (int64_t)cJSON_GetArrayItem(blk, 1)->valuedouble;
	}
	/* the implied size */
	uint64_t want = 0;
	if (t->of && !qf_mul_u64(ne, qf_dtype_info(t->t.dtype)->block_bytes, &want))
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': byte size overflows", P, name);
	if (!t->of && sizer)
		want = sizer(t->format, nd, t->t.shape);
	if (!t->of && sizer && want == 0)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': unknown format '%s'", P, name, t->format);
	if (want && want != t->t.nbytes)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': %s of this shape is %llu bytes, manifest says %llu",
			       P, name, t->format, (unsigned long long)want, (unsigned long long)t->t.nbytes);
	t->t.data = pk->payload + t->t.offset;
	t->t.file = 0;
	return QF_OK;
}

static qf_status parse_manifest(qf_pk *pk, const void *text, size_t len, qf_pk_sizer sizer, qf_err *err)
{
	const char *P = pk->path;
	pk->manifest = cJSON_ParseWithLength(text, len);
	if (!pk->manifest)
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json is not valid JSON", P);
	const char *fmt = get_str(pk->manifest, "format");
	if (!fmt || strcmp(fmt, "qforge-packed") != 0)
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json: format is not \"qforge-packed\"", P);
	uint64_t ver;
	if (!get_u64(pk->manifest, "version", &ver) || ver != QF_PK_VERSION)
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json: unsupported version (this qforge reads %d)", P,
			       QF_PK_VERSION);
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(pk->manifest, "tensors");
	if (!cJSON_IsArray(ts))
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json: no tensors array", P);
	int n = cJSON_GetArraySize(ts);
	pk->t = calloc(n ? (size_t)n : 1, sizeof *pk->t);
	if (!pk->t)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	pk->n = (size_t)n;
	size_t i = 0;
	for (const cJSON *e = ts->child; e; e = e->next, i++) {
		qf_status s = parse_tensor(pk, e, i, sizer, err);
		if (s)
			return s;
	}
	/* unique names; companions resolve both ways */
	for (i = 0; i < pk->n; i++) {
		qf_pk_tensor *t = &pk->t[i];
		for (size_t j = 0; j < i; j++)
			if (strcmp(pk->t[j].t.name, t->t.name) == 0)
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' appears twice", P, t->t.name);
		if (t->of) {
			int64_t m = qf_pk_find(pk, t->of);
			if (m < 0 || pk->t[m].of)
				return qf_fail(err, QF_EFORMAT, "%s: companion '%s' names a missing main tensor '%s'",
					       P, t->t.name, t->of);
		}
	}
	i = 0;
	for (const cJSON *e = ts->child; e; e = e->next, i++) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "companions");
		if (!c)
			continue;
		int k = 0;
		for (const cJSON *x = c->child; x; x = x->next) {
			int64_t j = cJSON_IsString(x) ? qf_pk_find(pk, x->valuestring) : -1;
			if (k >= 2 || j < 0 || !pk->t[j].of || strcmp(pk->t[j].of, pk->t[i].t.name) != 0)
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': companion '%s' is missing or not its own",
					       P, pk->t[i].t.name, x->string ? x->string : "?");
			pk->t[i].comp[k] = (int)j;
			pk->t[i].comp_role[k] = x->string;
			k++;
		}
	}
	/* no two tensors share bytes */
	qf_pk_tensor **ord = malloc((pk->n ? pk->n : 1) * sizeof *ord);
	if (!ord)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (i = 0; i < pk->n; i++)
		ord[i] = &pk->t[i];
	qsort(ord, pk->n, sizeof *ord, cmp_off);
	for (i = 1; i < pk->n; i++) {
		if (ord[i - 1]->t.offset + ord[i - 1]->t.nbytes > ord[i]->t.offset) {
			qf_status s = qf_fail(err, QF_EFORMAT, "%s: tensors '%s' and '%s' overlap", P,
					      ord[i - 1]->t.name, ord[i]->t.name);
			free(ord);
			return s;
		}
	}
	free(ord);
	return QF_OK;
}

qf_status qf_pk_open_buffer(const void *manifest, size_t mlen, const void *payload, size_t plen,
			    qf_pk_sizer sizer, qf_pk **out, qf_err *err)
{
	qf_pk *pk = calloc(1, sizeof *pk);
	if (!pk || !(pk->path = strdup("<buffer>"))) {
		free(pk);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	pk->payload = payload;
	pk->payload_size = plen;
	qf_status s = parse_manifest(pk, manifest, mlen, sizer, err);
	if (s) {
		qf_pk_close(pk);
		return s;
	}
	*out = pk;
	return QF_OK;
}

qf_status qf_pk_open(const char *path, qf_pk_sizer sizer, qf_pk **out, qf_err *err)
{
	qf_status s;
	qf_pk *pk = calloc(1, sizeof *pk);
	if (!pk || !(pk->path = strdup(path))) {
		free(pk);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	const void *mtext;
	size_t mlen;
	if (qf_is_dir(path)) {
		char p[4096];
		snprintf(p, sizeof p, "%s/manifest.json", path);
		if ((s = qf_mapfile_open(&pk->manifest_map, p, err)))
			goto fail;
		snprintf(p, sizeof p, "%s/%s", path, QF_PK_PAYLOAD);
		if ((s = qf_mapfile_open(&pk->payload_map, p, err)))
			goto fail;
		mtext = pk->manifest_map.data;
		mlen = (size_t)pk->manifest_map.size;
		pk->payload = pk->payload_map.data;
		pk->payload_size = pk->payload_map.size;
	} else {
		if ((s = qf_mapfile_open(&pk->tar, path, err)))
			goto fail;
		if ((s = pk_tar_members(&pk->tar, &pk->members, &pk->nmembers, err)))
			goto fail;
		uint64_t ms = 0, ps = 0;
		const uint8_t *m = qf_pk_member(pk, "manifest.json", &ms);
		const uint8_t *pl = qf_pk_member(pk, QF_PK_PAYLOAD, &ps);
		if (!m || !pl) {
			s = qf_fail(err, QF_EFORMAT, "%s: not a packed bundle (no manifest.json or %s member)", path,
				    QF_PK_PAYLOAD);
			goto fail;
		}
		mtext = m;
		mlen = (size_t)ms;
		pk->payload = pl;
		pk->payload_size = ps;
	}
	if ((s = parse_manifest(pk, mtext, mlen, sizer, err)))
		goto fail;
	*out = pk;
	return QF_OK;
fail:
	qf_pk_close(pk);
	return s;
}

int qf_pk_is_bundle(const char *path)
{
	char p[4096];
	if (qf_is_dir(path)) {
		snprintf(p, sizeof p, "%s/manifest.json", path);
		return access(p, R_OK) == 0;
	}
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	uint8_t h[512];
	int ok = fread(h, 1, sizeof h, f) == sizeof h && memcmp(h, "manifest.json", 14) == 0 &&
		 memcmp(h + 257, "ustar", 5) == 0;
	fclose(f);
	return ok;
}
