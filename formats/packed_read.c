/* packed_read.c — opens a bundle (folder, tar or buffer) and checks its manifest. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/packed_priv.h"

const cJSON *qf_pk_manifest(const qf_pk *pk) { return pk->manifest; }
size_t qf_pk_ntensors(const qf_pk *pk) { return pk->n; }
const qf_pk_tensor *qf_pk_tensor_at(const qf_pk *pk, size_t i) { return i < pk->n ? &pk->t[i] : NULL; }
uint64_t qf_pk_payload_size(const qf_pk *pk) { return pk->payload_size; }
size_t qf_pk_nfiles(const qf_pk *pk) { return pk->nfiles; }
const qf_pk_file *qf_pk_file_at(const qf_pk *pk, size_t i) { return i < pk->nfiles ? &pk->files[i] : NULL; }
int qf_pk_version(const qf_pk *pk) { return pk->version; }

int qf_pk_manifest_hash(const qf_pk *pk, uint64_t *recorded, uint64_t *computed)
{
	*recorded = pk->manifest_want;
	*computed = pk->manifest_got;
	return pk->manifest_hashed;
}

/* A name a member may have: one path component, not "." or "..". */
static int plain_name(const char *s)
{
	return s && *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && strlen(s) < MAX_NAME;
}

static const qf_pk_file *listed(const qf_pk *pk, const char *name)
{
	for (size_t i = 0; i < pk->nfiles; i++)
		if (strcmp(pk->files[i].name, name) == 0)
			return &pk->files[i];
	return NULL;
}

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
	free(pk->files);
	free(pk->t);
	free(pk->path);
	free(pk);
}

/* Any member by name, listed or not (the reader's own lookups). */
static const uint8_t *raw_member(const qf_pk *pk, const char *name, uint64_t *size)
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

const uint8_t *qf_pk_member(const qf_pk *pk, const char *name, uint64_t *size)
{
	/* only what files[] lists (and so hashes) is served: "../../etc/hostname" never is */
	if (!plain_name(name) || !listed(pk, name))
		return NULL;
	return raw_member(pk, name, size);
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
	t->t.dtype = dt ? qf_dtype_from_stored_name(dt) : QF_DTYPE_NONE; /* ggml blocks too */
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
	if (blk && (!cJSON_IsArray(blk) || cJSON_GetArraySize(blk) != 2))
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': block must be [rows, cols]", P, name);
	for (int k = 0; blk && k < 2; k++) {
		/* range first: a double such as 2.4e123 has no int64_t value to cast to */
		const cJSON *x = cJSON_GetArrayItem(blk, k);
		if (!cJSON_IsNumber(x) || !(x->valuedouble >= 1 && x->valuedouble <= (double)MAX_DIM_VALUE) ||
		    x->valuedouble != (double)(int64_t)x->valuedouble)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': block %s must be a whole number from 1 to 2^40", P,
				       name, k ? "cols" : "rows");
		t->block[k] = (int64_t)x->valuedouble;
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

/*
 * files[]: every member but manifest.json, each once, with a plain name and
 * its size; every one but tensors.bin with its xxh64.  tensors.bin is
 * required.
 */
static qf_status parse_files(qf_pk *pk, qf_err *err)
{
	const char *P = pk->path;
	const cJSON *fl = cJSON_GetObjectItemCaseSensitive(pk->manifest, "files");
	if (!cJSON_IsArray(fl))
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json: no files array", P);
	int n = cJSON_GetArraySize(fl);
	pk->files = calloc(n ? (size_t)n : 1, sizeof *pk->files);
	if (!pk->files)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (const cJSON *f = fl->child; f; f = f->next) {
		qf_pk_file *e = &pk->files[pk->nfiles];
		e->name = get_str(f, "name");
		if (!cJSON_IsObject(f) || !plain_name(e->name) || strcmp(e->name, "manifest.json") == 0)
			return qf_fail(err, QF_EFORMAT, "%s: manifest.json: files[%zu]: name '%s' is not a member file's name",
				       P, pk->nfiles, e->name ? e->name : "");
		if (listed(pk, e->name))
			return qf_fail(err, QF_EFORMAT, "%s: manifest.json: file '%s' is listed twice", P, e->name);
		if (!get_u64(f, "size", &e->size))
			return qf_fail(err, QF_EFORMAT, "%s: manifest.json: file '%s': missing or bad size", P, e->name);
		const char *hx = get_str(f, "xxh64");
		e->hashed = hx != NULL;
		if ((hx && !qf_parse_hex64(hx, &e->xxh64)) || (!hx && strcmp(e->name, QF_PK_PAYLOAD) != 0))
			return qf_fail(err, QF_EFORMAT, "%s: manifest.json: file '%s': xxh64 must be 16 lowercase hex digits",
				       P, e->name);
		pk->nfiles++;
	}
	const qf_pk_file *pl = listed(pk, QF_PK_PAYLOAD);
	if (!pl || pl->size != pk->payload_size)
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json: files[] must list %s with its size (%llu bytes)", P,
			       QF_PK_PAYLOAD, (unsigned long long)pk->payload_size);
	return QF_OK;
}

/*
 * manifest_xxh64: the xxh64 of the manifest's bytes with its own 16 hex
 * digits read as '0'.  The key appears exactly once in the text, so no
 * decoy inside another value can be the one that is zeroed.
 */
static qf_status manifest_hash(qf_pk *pk, const void *text, size_t len, qf_err *err)
{
	static const char key[] = "\"manifest_xxh64\"";
	const char *P = pk->path, *t = text, *at = NULL;
	for (const char *p = t; (p = memmem(p, len - (size_t)(p - t), key, sizeof key - 1)); p++) {
		if (at)
			return qf_fail(err, QF_EFORMAT, "%s: manifest.json: manifest_xxh64 appears more than once", P);
		at = p;
	}
	const char *v = at ? at + sizeof key - 1 : NULL, *end = t + len;
	while (v && v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
		v++;
	if (v && v < end && *v == ':')
		for (v++; v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r');)
			v++;
	const char *rec = get_str(pk->manifest, "manifest_xxh64");
	if (!v || end - v < 18 || v[0] != '"' || v[17] != '"' || !rec || strlen(rec) != 16 || memcmp(v + 1, rec, 16) != 0 ||
	    !qf_parse_hex64(rec, &pk->manifest_want))
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json: version 2 needs manifest_xxh64, 16 lowercase hex digits", P);
	size_t h = (size_t)(v + 1 - t);
	XXH64_state_t *st = XXH64_createState();
	if (!st)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	XXH64_reset(st, 0);
	XXH64_update(st, t, h);
	XXH64_update(st, "0000000000000000", 16);
	XXH64_update(st, t + h + 16, len - h - 16);
	pk->manifest_got = XXH64_digest(st);
	XXH64_freeState(st);
	pk->manifest_hashed = 1;
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
	if (!get_u64(pk->manifest, "version", &ver) || ver < 1 || ver > QF_PK_VERSION)
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json: unsupported version (this qforge reads 1 to %d)", P,
			       QF_PK_VERSION);
	pk->version = (int)ver;
	qf_status fs = parse_files(pk, err);
	if (!fs && ver >= 2)
		fs = manifest_hash(pk, text, len, err);
	if (fs)
		return fs;
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

/* One member that files[] does not list, or whose size differs: the bundle is refused. */
static qf_status member_seen(qf_pk *pk, const char *name, uint64_t size, qf_err *err)
{
	if (strcmp(name, "manifest.json") == 0)
		return QF_OK;
	const qf_pk_file *f = listed(pk, name);
	if (!f)
		return qf_fail(err, QF_EFORMAT, "%s: member '%s' is not listed in manifest.json's files[] (so not hashed)",
			       pk->path, name);
	if (f->size != size)
		return qf_fail(err, QF_EFORMAT, "%s: member '%s' is %llu bytes, files[] says %llu", pk->path, name,
			       (unsigned long long)size, (unsigned long long)f->size);
	return QF_OK;
}

/* Every member is listed in files[], and every listed file is there. */
static qf_status check_members(qf_pk *pk, qf_err *err)
{
	qf_status s = QF_OK;
	if (pk->members) {
		for (size_t i = 0; i < pk->nmembers && !s; i++)
			s = member_seen(pk, pk->members[i].name, pk->members[i].size, err);
	} else {
		DIR *d = opendir(pk->path);
		if (!d)
			return qf_fail(err, QF_EIO, "%s: cannot list the folder", pk->path);
		for (struct dirent *e; !s && (e = readdir(d));) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char p[4096];
			struct stat st;
			snprintf(p, sizeof p, "%s/%s", pk->path, e->d_name);
			if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
				s = qf_fail(err, QF_EFORMAT, "%s: '%s' is not a regular file: a bundle holds regular files only",
					    pk->path, e->d_name);
			else
				s = member_seen(pk, e->d_name, (uint64_t)st.st_size, err);
		}
		closedir(d);
	}
	for (size_t i = 0; i < pk->nfiles && !s; i++) {
		uint64_t sz;
		if (!raw_member(pk, pk->files[i].name, &sz))
			s = qf_fail(err, QF_EFORMAT, "%s: file '%s' listed in manifest.json is missing", pk->path,
				    pk->files[i].name);
	}
	return s;
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
		const uint8_t *m = raw_member(pk, "manifest.json", &ms);
		const uint8_t *pl = raw_member(pk, QF_PK_PAYLOAD, &ps);
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
	if ((s = parse_manifest(pk, mtext, mlen, sizer, err)) || (s = check_members(pk, err)))
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
	uint8_t h[512]; /* the first tar header: a FIFO or device is not probed (it would block) */
	return qf_probe_head(path, h, sizeof h) && memcmp(h, "manifest.json", 14) == 0 && memcmp(h + 257, "ustar", 5) == 0;
}
