#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "formats/mapfile.h"
#include "formats/outfile.h"
#include "formats/packed.h"

#define MAX_NAME 512
#define MAX_DIM_VALUE (INT64_C(1) << 40)

/* ---- tar members -------------------------------------------------------------- */

typedef struct member {
	char name[MAX_NAME];
	uint64_t off, size;   /* data inside the tar */
} member;

static uint64_t octal(const uint8_t *p, size_t n, int *ok)
{
	uint64_t v = 0;
	size_t i = 0;
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v >> 60)
			*ok = 0;
		v = v * 8 + (uint64_t)(p[i] - '0');
	}
	if (i < n && p[i] != 0 && p[i] != ' ')
		*ok = 0;
	return v;
}

/*
 * Walks the headers of a ustar/GNU tar held in memory; collects regular
 * files.  Strict: checksums, sizes inside the file, names without '/'.
 */
static qf_status tar_members(const qf_mapfile *m, member **out, size_t *count, qf_err *err)
{
	member *mb = NULL;
	size_t n = 0, cap = 0;
	uint64_t pos = 0;
	char longname[MAX_NAME] = "";
	qf_status s = QF_OK;
	while (pos + 512 <= m->size) {
		const uint8_t *h = m->data + pos;
		int zero = 1;
		for (int i = 0; i < 512 && zero; i++)
			zero = h[i] == 0;
		if (zero)
			break;
		uint32_t sum = 0;
		for (int i = 0; i < 512; i++)
			sum += (i >= 148 && i < 156) ? ' ' : h[i];
		int ok = 1;
		uint64_t want = octal(h + 148, 8, &ok);
		if (!ok || want != sum) {
			s = qf_fail(err, QF_EFORMAT, "%s: tar header at byte %llu: bad checksum", m->path,
				    (unsigned long long)pos);
			goto fail;
		}
		uint64_t size;
		if (h[124] & 0x80) {
			size = 0;
			for (int i = 125; i < 136; i++) {
				if (size >> 55)
					ok = 0;
				size = size << 8 | h[i];
			}
		} else {
			size = octal(h + 124, 12, &ok);
		}
		uint64_t data = pos + 512;
		if (!ok || size > m->size - data) {
			s = qf_fail(err, QF_EFORMAT, "%s: tar member at byte %llu: size runs past the end of the file",
				    m->path, (unsigned long long)pos);
			goto fail;
		}
		char name[MAX_NAME];
		if (longname[0]) {
			snprintf(name, sizeof name, "%s", longname);
			longname[0] = 0;
		} else {
			memcpy(name, h, 100);
			name[100] = 0;
		}
		char type = (char)h[156];
		if (type == 'L') {
			size_t k = size < sizeof longname - 1 ? (size_t)size : sizeof longname - 1;
			memcpy(longname, m->data + data, k);
			longname[k] = 0;
		} else if (type == '0' || type == 0) {
			const char *base = name;
			if (strncmp(base, "./", 2) == 0)
				base += 2;
			if (!*base || strchr(base, '/')) {
				s = qf_fail(err, QF_EFORMAT, "%s: tar member '%s' is not at the top level", m->path, name);
				goto fail;
			}
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				member *g = realloc(mb, nc * sizeof *g);
				if (!g)
					goto oom;
				mb = g;
				cap = nc;
			}
			snprintf(mb[n].name, sizeof mb[n].name, "%s", base);
			mb[n].off = data;
			mb[n].size = size;
			n++;
		}
		pos = data + (size + 511) / 512 * 512;
	}
	*out = mb;
	*count = n;
	return QF_OK;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
fail:
	free(mb);
	return s;
}

/* ---- reader --------------------------------------------------------------------- */

struct qf_pk {
	char *path;
	qf_mapfile tar;            /* whole tar (tar form) */
	qf_mapfile manifest_map;   /* folder form */
	qf_mapfile payload_map;    /* folder form */
	member *members;           /* tar form */
	size_t nmembers;
	qf_mapfile *extra;         /* folder form: member files mapped on demand */
	size_t nextra;
	cJSON *manifest;
	const uint8_t *payload;
	uint64_t payload_size;
	qf_pk_tensor *t;
	size_t n;
};

const char *qf_pk_path(const qf_pk *pk) { return pk->path; }
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
		if ((s = tar_members(&pk->tar, &pk->members, &pk->nmembers, err)))
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

/* ---- writer -------------------------------------------------------------------- */

typedef struct pk_entry {
	char *name, *format, *cls, *role, *of;
	int ndim;
	int64_t shape[4], block[2];
	qf_dtype elem;
	uint64_t nbytes, off, pos, hash;
	XXH64_state_t *h;
} pk_entry;

typedef struct pk_file {
	char *name, *src;    /* copied from src, or */
	uint8_t *data;       /* written from memory */
	size_t len;
} pk_file;

struct qf_pk_writer {
	pk_entry *e;
	size_t n, cap;
	pk_file *files;
	size_t nfiles;
	cJSON *top;
	char *path;
	int as_tar;
	qf_out dir;          /* PATH.tmp/ or the staging folder */
	int fd;              /* tensors.bin */
	uint64_t total, data_hash;
	int begun;
};

qf_pk_writer *qf_pk_writer_new(void)
{
	qf_pk_writer *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->fd = -1;
	w->dir.fd = -1;
	w->top = cJSON_CreateObject();
	if (!w->top) {
		free(w);
		return NULL;
	}
	return w;
}

void qf_pk_writer_free(qf_pk_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	qf_out_abort(&w->dir);
	for (size_t i = 0; i < w->n; i++) {
		pk_entry *e = &w->e[i];
		free(e->name);
		free(e->format);
		free(e->cls);
		free(e->role);
		free(e->of);
		if (e->h)
			XXH64_freeState(e->h);
	}
	for (size_t i = 0; i < w->nfiles; i++) {
		free(w->files[i].name);
		free(w->files[i].src);
		free(w->files[i].data);
	}
	free(w->files);
	free(w->e);
	free(w->path);
	cJSON_Delete(w->top);
	free(w);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int qf_pk_writer_add(qf_pk_writer *w, const char *name, int ndim, const int64_t *shape,
		     const char *format, qf_dtype elem, const int64_t block[2], uint64_t nbytes,
		     const char *cls, const char *role, const char *of, qf_err *err)
{
	if (ndim < 1 || ndim > 4 || strlen(name) >= MAX_NAME) {
		qf_fail(err, QF_EFORMAT, "tensor '%s': cannot be stored in a bundle", name);
		return -1;
	}
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 256;
		pk_entry *g = realloc(w->e, nc * sizeof *g);
		if (!g) {
			qf_fail(err, QF_ENOMEM, "out of memory");
			return -1;
		}
		w->e = g;
		w->cap = nc;
	}
	pk_entry *e = &w->e[w->n];
	memset(e, 0, sizeof *e);
	e->name = strdup(name);
	e->format = strdup(format);
	e->cls = dup_or_null(cls);
	e->role = dup_or_null(role ? role : "weight");
	e->of = dup_or_null(of);
	e->h = XXH64_createState();
	if (!e->name || !e->format || !e->role || !e->h || (cls && !e->cls) || (of && !e->of)) {
		w->n++; /* so free releases the partial entry */
		qf_fail(err, QF_ENOMEM, "out of memory");
		return -1;
	}
	XXH64_reset(e->h, 0);
	e->ndim = ndim;
	memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
	e->block[0] = block ? block[0] : 1;
	e->block[1] = block ? block[1] : 1;
	e->elem = elem;
	e->nbytes = nbytes;
	e->off = (w->total + QF_PK_ALIGN - 1) / QF_PK_ALIGN * QF_PK_ALIGN;
	w->total = e->off + nbytes;
	return (int)w->n++;
}

void qf_pk_writer_set(qf_pk_writer *w, const char *key, cJSON *value)
{
	if (!value)
		return;
	cJSON_DeleteItemFromObjectCaseSensitive(w->top, key);
	cJSON_AddItemToObject(w->top, key, value);
}

/* Appends a member entry named name; NULL with err set when memory runs out. */
static pk_file *push_file(qf_pk_writer *w, const char *name, qf_err *err)
{
	pk_file *g = realloc(w->files, (w->nfiles + 1) * sizeof *g);
	if (!g) {
		qf_fail(err, QF_ENOMEM, "out of memory");
		return NULL;
	}
	w->files = g;
	pk_file *f = &g[w->nfiles++];
	memset(f, 0, sizeof *f);
	if (!(f->name = strdup(name))) {
		qf_fail(err, QF_ENOMEM, "out of memory");
		return NULL;
	}
	return f;
}

qf_status qf_pk_writer_add_file(qf_pk_writer *w, const char *name, const char *src, qf_err *err)
{
	if (access(src, R_OK) != 0)
		return QF_OK;
	pk_file *f = push_file(w, name, err);
	if (!f)
		return QF_ENOMEM;
	if (!(f->src = strdup(src)))
		return qf_fail(err, QF_ENOMEM, "out of memory");
	return QF_OK;
}

qf_status qf_pk_writer_add_blob(qf_pk_writer *w, const char *name, const void *data, size_t len, qf_err *err)
{
	pk_file *f = push_file(w, name, err);
	if (!f)
		return QF_ENOMEM;
	if (!(f->data = malloc(len ? len : 1)))
		return qf_fail(err, QF_ENOMEM, "out of memory");
	memcpy(f->data, data, len);
	f->len = len;
	return QF_OK;
}

uint64_t qf_pk_writer_total_bytes(const qf_pk_writer *w) { return w->total; }
uint64_t qf_pk_writer_data_hash(const qf_pk_writer *w) { return w->data_hash; }

qf_status qf_pk_writer_begin(qf_pk_writer *w, const char *path, int force, qf_err *err)
{
	qf_status s;
	struct stat st;
	w->path = strdup(path);
	if (!w->path)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	w->as_tar = qf_str_ends_with(path, ".tar");
	if (w->as_tar) {
		if (!force && stat(path, &st) == 0)
			return qf_fail(err, QF_EUSAGE, "%s: output exists (use --force to overwrite)", path);
		char stage[4096];
		snprintf(stage, sizeof stage, "%s.stage", path);
		s = qf_outdir_open(&w->dir, stage, 1, err);
	} else {
		s = qf_outdir_open(&w->dir, path, force, err);
	}
	if (s)
		return s;
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", w->dir.tmp, QF_PK_PAYLOAD);
	w->fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0)
		return qf_fail(err, QF_EIO, "%s: cannot create: %s", p, strerror(errno));
	/* allocate it all now (a full disk shows at once); sparse when the filesystem cannot */
	int fr = w->total ? fallocate(w->fd, 0, 0, (off_t)w->total) : 0;
	if (fr != 0 && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
		return qf_fail(err, QF_EIO, "%s: cannot reserve %llu bytes: %s%s", p, (unsigned long long)w->total,
			       strerror(errno), errno == ENOSPC || errno == EFBIG || errno == EDQUOT ? " (disk full or file too large)" : "");
	if (fr != 0 && ftruncate(w->fd, (off_t)w->total) != 0)
		return qf_fail(err, QF_EIO, "%s: cannot size to %llu bytes: %s", p,
			       (unsigned long long)w->total, strerror(errno));
	w->begun = 1;
	return QF_OK;
}

static qf_status pwrite_all(int fd, const char *what, const void *buf, size_t n, uint64_t off, qf_err *err)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : ENOSPC;
			return qf_fail(err, QF_EIO, "%s: write failed at byte %llu: %s%s", what,
				       (unsigned long long)off, strerror(e),
				       e == ENOSPC || e == EFBIG || e == EDQUOT ? " (disk full or file too large)" : "");
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return QF_OK;
}

qf_status qf_pk_writer_write(qf_pk_writer *w, int idx, const void *buf, size_t n, qf_err *err)
{
	if (!w->begun || idx < 0 || (size_t)idx >= w->n)
		return qf_fail(err, QF_EUSAGE, "bundle writer: bad tensor index %d", idx);
	pk_entry *e = &w->e[idx];
	if (n > e->nbytes - e->pos)
		return qf_fail(err, QF_EFORMAT, "tensor '%s': more than its %llu bytes written", e->name,
			       (unsigned long long)e->nbytes);
	qf_status s = pwrite_all(w->fd, w->path, buf, n, e->off + e->pos, err);
	if (s)
		return s;
	XXH64_update(e->h, buf, n);
	e->pos += n;
	return QF_OK;
}

static cJSON *shape_json(int nd, const int64_t *s)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < nd; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber((double)s[i]));
	return a;
}

static cJSON *build_manifest(qf_pk_writer *w)
{
	cJSON *m = cJSON_CreateObject();
	if (!m)
		return NULL;
	cJSON_AddStringToObject(m, "format", "qforge-packed");
	cJSON_AddNumberToObject(m, "version", QF_PK_VERSION);
	cJSON_AddNumberToObject(m, "alignment", QF_PK_ALIGN);
	for (cJSON *x = w->top->child; x; x = x->next)
		cJSON_AddItemToObject(m, x->string, cJSON_Duplicate(x, 1));
	char hex[17];
	snprintf(hex, sizeof hex, "%016llx", (unsigned long long)w->data_hash);
	cJSON_AddStringToObject(m, "data_xxh64", hex);
	cJSON *files = cJSON_AddArrayToObject(m, "files");
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "name", QF_PK_PAYLOAD);
	cJSON_AddNumberToObject(f, "size", (double)w->total);
	cJSON_AddItemToArray(files, f);
	for (size_t i = 0; i < w->nfiles; i++) {
		/* each member's own hash: metadata.gguf and the tokenizer are part of what verify checks */
		uint64_t h = 0, size = w->files[i].len;
		if (w->files[i].src) {
			qf_mapfile mf;
			if (qf_mapfile_open(&mf, w->files[i].src, NULL) == QF_OK) {
				h = XXH64(mf.data, (size_t)mf.size, 0);
				size = mf.size;
				qf_mapfile_close(&mf);
			}
		} else {
			h = XXH64(w->files[i].data, w->files[i].len, 0);
		}
		f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "name", w->files[i].name);
		cJSON_AddNumberToObject(f, "size", (double)size);
		snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
		cJSON_AddStringToObject(f, "xxh64", hex);
		cJSON_AddItemToArray(files, f);
	}
	cJSON *ts = cJSON_AddArrayToObject(m, "tensors");
	for (size_t i = 0; i < w->n; i++) {
		pk_entry *e = &w->e[i];
		cJSON *t = cJSON_CreateObject();
		cJSON_AddStringToObject(t, "name", e->name);
		cJSON_AddItemToObject(t, "shape", shape_json(e->ndim, e->shape));
		cJSON_AddStringToObject(t, "format", e->format);
		cJSON_AddStringToObject(t, "dtype", qf_dtype_name(e->elem));
		cJSON_AddItemToObject(t, "block", shape_json(2, e->block));
		if (e->cls)
			cJSON_AddStringToObject(t, "class", e->cls);
		cJSON_AddStringToObject(t, "role", e->role);
		if (e->of)
			cJSON_AddStringToObject(t, "of", e->of);
		cJSON *comps = NULL;
		for (size_t j = i + 1; j < w->n && w->e[j].of && strcmp(w->e[j].of, e->name) == 0; j++) {
			if (!comps)
				comps = cJSON_AddObjectToObject(t, "companions");
			cJSON_AddStringToObject(comps, w->e[j].role, w->e[j].name);
		}
		cJSON_AddStringToObject(t, "file", QF_PK_PAYLOAD);
		cJSON_AddNumberToObject(t, "offset", (double)e->off);
		cJSON_AddNumberToObject(t, "nbytes", (double)e->nbytes);
		snprintf(hex, sizeof hex, "%016llx", (unsigned long long)e->hash);
		cJSON_AddStringToObject(t, "xxh64", hex);
		cJSON_AddItemToArray(ts, t);
	}
	return m;
}

static qf_status copy_file(const char *src, const char *dst, qf_err *err)
{
	qf_mapfile m;
	qf_status s = qf_mapfile_open(&m, src, err);
	if (s)
		return s;
	int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		qf_mapfile_close(&m);
		return qf_fail(err, QF_EIO, "%s: cannot create: %s", dst, strerror(errno));
	}
	s = pwrite_all(fd, dst, m.data, (size_t)m.size, 0, err);
	if (close(fd) != 0 && !s)
		s = qf_fail(err, QF_EIO, "%s: %s", dst, strerror(errno));
	qf_mapfile_close(&m);
	return s;
}

static qf_status tar_add(struct archive *a, const char *tarpath, const char *name, const char *src,
			 qf_err *err)
{
	qf_mapfile m;
	qf_status s = qf_mapfile_open(&m, src, err);
	if (s)
		return s;
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, (la_int64_t)m.size);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, 0, 0); /* reproducible archives */
	if (archive_write_header(a, e) != ARCHIVE_OK)
		s = qf_fail(err, QF_EIO, "%s: %s", tarpath, archive_error_string(a));
	for (uint64_t off = 0; !s && off < m.size;) {
		size_t k = m.size - off > (1u << 20) ? (1u << 20) : (size_t)(m.size - off);
		la_ssize_t r = archive_write_data(a, m.data + off, k);
		if (r < 0)
			s = qf_fail(err, QF_EIO, "%s: %s", tarpath, archive_error_string(a));
		off += (uint64_t)(r > 0 ? r : 0);
	}
	archive_entry_free(e);
	qf_mapfile_close(&m);
	return s;
}

/* Folder → tar: manifest.json first, padded so tensors.bin's data is 4096-aligned. */
static qf_status build_tar(qf_pk_writer *w, qf_err *err)
{
	qf_out o;
	qf_status s = qf_out_open(&o, w->path, 1, err);
	if (s)
		return s;
	struct archive *a = archive_write_new();
	if (!a || archive_write_set_format_gnutar(a) != ARCHIVE_OK ||
	    archive_write_add_filter_none(a) != ARCHIVE_OK || archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, o.fd) != ARCHIVE_OK) {
		s = qf_fail(err, QF_EIO, "%s: cannot start archive: %s", w->path, a ? archive_error_string(a) : "");
		goto out;
	}
	char p[4096];
	const char *names[3] = { "manifest.json", QF_PK_PAYLOAD, NULL };
	for (int i = 0; !s && names[i]; i++) {
		snprintf(p, sizeof p, "%s/%s", w->dir.tmp, names[i]);
		s = tar_add(a, w->path, names[i], p, err);
	}
	for (size_t i = 0; !s && i < w->nfiles; i++) {
		snprintf(p, sizeof p, "%s/%s", w->dir.tmp, w->files[i].name);
		s = tar_add(a, w->path, w->files[i].name, p, err);
	}
	if (!s && archive_write_close(a) != ARCHIVE_OK)
		s = qf_fail(err, QF_EIO, "%s: %s", w->path, archive_error_string(a));
out:
	if (a)
		archive_write_free(a);
	if (!s)
		s = qf_out_commit(&o, err);
	else
		qf_out_abort(&o);
	return s;
}

qf_status qf_pk_writer_finish(qf_pk_writer *w, qf_err *err)
{
	qf_status s;
	char p[4096];
	if (!w->begun)
		return qf_fail(err, QF_EUSAGE, "bundle writer: finish before begin");
	XXH64_state_t *dh = XXH64_createState();
	if (!dh)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	XXH64_reset(dh, 0);
	for (size_t i = 0; i < w->n; i++) {
		pk_entry *e = &w->e[i];
		if (e->pos != e->nbytes) {
			XXH64_freeState(dh);
			return qf_fail(err, QF_EFORMAT, "tensor '%s': %llu of %llu bytes written", e->name,
				       (unsigned long long)e->pos, (unsigned long long)e->nbytes);
		}
		e->hash = XXH64_digest(e->h);
		uint8_t le[8];
		for (int k = 0; k < 8; k++)
			le[k] = (uint8_t)(e->hash >> (8 * k));
		XXH64_update(dh, le, 8);
	}
	w->data_hash = XXH64_digest(dh);
	XXH64_freeState(dh);
	if (close(w->fd) != 0) {
		w->fd = -1;
		return qf_fail(err, QF_EIO, "%s: %s", w->path, strerror(errno));
	}
	w->fd = -1;
	cJSON *m = build_manifest(w);
	char *text = m ? cJSON_Print(m) : NULL;
	cJSON_Delete(m);
	if (!text)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	/* pad with spaces to 3072 mod 4096 bytes: then, in the tar, tensors.bin's data is aligned */
	size_t len = strlen(text) + 1, padded = len;
	while (padded % QF_PK_ALIGN != 3072)
		padded++;
	char *buf = malloc(padded);
	if (!buf) {
		free(text);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	memcpy(buf, text, len - 1);
	memset(buf + len - 1, ' ', padded - len);
	buf[padded - 1] = '\n';
	free(text);
	snprintf(p, sizeof p, "%s/manifest.json", w->dir.tmp);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	s = fd < 0 ? qf_fail(err, QF_EIO, "%s: cannot create: %s", p, strerror(errno))
		   : pwrite_all(fd, p, buf, padded, 0, err);
	free(buf);
	if (fd >= 0 && close(fd) != 0 && !s)
		s = qf_fail(err, QF_EIO, "%s: %s", p, strerror(errno));
	for (size_t i = 0; !s && i < w->nfiles; i++) {
		snprintf(p, sizeof p, "%s/%s", w->dir.tmp, w->files[i].name);
		if (w->files[i].src) {
			s = copy_file(w->files[i].src, p, err);
			continue;
		}
		int ffd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		s = ffd < 0 ? qf_fail(err, QF_EIO, "%s: cannot create: %s", p, strerror(errno))
			    : pwrite_all(ffd, p, w->files[i].data, w->files[i].len, 0, err);
		if (ffd >= 0 && close(ffd) != 0 && !s)
			s = qf_fail(err, QF_EIO, "%s: %s", p, strerror(errno));
	}
	if (s)
		return s;
	if (w->as_tar) {
		s = build_tar(w, err);
		qf_out_abort(&w->dir); /* the staging folder */
		return s;
	}
	return qf_out_commit(&w->dir, err);
}
