#include "config.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/mapfile.h"
#include "formats/outfile.h"
#include "formats/safetensors.h"

#define ST_MAX_HEADER 100000000ull
#define ST_MAX_INDEX (64ull << 20) /* DeepSeek-V3's is 8.9 MB */

struct qf_st {
	qf_mapfile *files;
	size_t nfiles;
	qf_tensor *tensors;     /* file order, then offset order */
	char **names;           /* owned names, parallel to tensors */
	size_t ntensors;
	const qf_tensor **by_name; /* sorted by name */
	cJSON *metadata;        /* __metadata__ of the first file, or NULL */
	const qf_tensor *view;  /* qf_st_set_view: what count/get/find see, or NULL */
	size_t nview;
	const qf_tensor **view_by_name;
	void (*view_release)(void *);
	void *view_owner;
};

static int cmp_tensor_ptr_name(const void *a, const void *b)
{
	const qf_tensor *x = *(const qf_tensor *const *)a, *y = *(const qf_tensor *const *)b;
	return strcmp(x->name, y->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
	const qf_tensor *x = a, *y = b;
	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	if (x->nbytes != y->nbytes)
		return x->nbytes < y->nbytes ? -1 : 1;
	return 0;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *j, uint64_t *out)
{
	if (!cJSON_IsNumber(j))
		return 0;
	double v = j->valuedouble;
	if (!(v >= 0) || v > 9007199254740992.0 || floor(v) != v)
		return 0;
	*out = (uint64_t)v;
	return 1;
}

/* Parses one file's header and appends its tensors. */
static qf_status parse_file(qf_st *st, int fi, qf_err *err)
{
	const qf_mapfile *m = &st->files[fi];
	const char *path = m->path;
	qf_status s = QF_OK;
	cJSON *root = NULL;

	if (m->size < 8)
		return qf_fail(err, QF_EFORMAT, "%s: file too short for a safetensors header (%llu bytes)",
			       path, (unsigned long long)m->size);
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | m->data[i];
	if (n < 2 || n > ST_MAX_HEADER)
		return qf_fail(err, QF_EFORMAT, "%s: header length %llu out of range [2, %llu]", path,
			       (unsigned long long)n, ST_MAX_HEADER);
	if (n > m->size - 8)
		return qf_fail(err, QF_EFORMAT,
			       "%s: header length %llu runs past end of file (%llu bytes)", path,
			       (unsigned long long)n, (unsigned long long)m->size);
	const char *hdr = (const char *)m->data + 8;
	const char *end_parse = NULL;
	root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end_parse, 0);
	if (!root || !cJSON_IsObject(root)) {
		size_t at = end_parse ? (size_t)(end_parse - hdr) : 0;
		if (!root && cJSON_GetErrorPtr())
			at = (size_t)(cJSON_GetErrorPtr() - hdr);
		s = qf_fail(err, QF_EFORMAT, "%s: header is not a valid JSON object (near byte %zu)",
			    path, at + 8);
		goto out;
	}
	for (const char *p = end_parse; p < hdr + n; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
			s = qf_fail(err, QF_EFORMAT, "%s: trailing bytes after the JSON header", path);
			goto out;
		}
	}
	uint64_t data_len = m->size - 8 - n;
	uint64_t data_base = 8 + n;

	size_t count = 0;
	for (cJSON *e = root->child; e; e = e->next)
		count++;
	qf_tensor *grown = realloc(st->tensors, (st->ntensors + count + 1) * sizeof *grown);
	if (!grown) {
		s = qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	st->tensors = grown;
	char **gnames = realloc(st->names, (st->ntensors + count + 1) * sizeof *gnames);
	if (!gnames) {
		s = qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
		goto out;
	}
	st->names = gnames;

	size_t first = st->ntensors;
	for (cJSON *e = root->child; e; e = e->next) {
		const char *name = e->string;
		if (strcmp(name, "__metadata__") == 0) {
			if (!cJSON_IsObject(e)) {
				s = qf_fail(err, QF_EFORMAT, "%s: __metadata__ is not an object", path);
				goto out;
			}
			for (cJSON *kv = e->child; kv; kv = kv->next) {
				if (!cJSON_IsString(kv)) {
					s = qf_fail(err, QF_EFORMAT,
						    "%s: __metadata__ value of '%s' is not a string", path,
						    kv->string);
					goto out;
				}
			}
			if (fi == 0 && !st->metadata)
				st->metadata = cJSON_Duplicate(e, 1);
			continue;
		}
		if (!cJSON_IsObject(e)) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s': entry is not an object", path, name);
			goto out;
		}
		const cJSON *jd = NULL, *js = NULL, *jo = NULL;
		for (cJSON *f = e->child; f; f = f->next) {
			if (strcmp(f->string, "dtype") == 0)
				jd = f;
			else if (strcmp(f->string, "shape") == 0)
				js = f;
			else if (strcmp(f->string, "data_offsets") == 0)
				jo = f;
			else {
				s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s': unknown key '%s'", path, name,
					    f->string);
				goto out;
			}
		}
		if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo)) {
			s = qf_fail(err, QF_EFORMAT,
				    "%s: tensor '%s': needs string dtype, array shape and data_offsets",
				    path, name);
			goto out;
		}
		qf_tensor t;
		memset(&t, 0, sizeof t);
		t.dtype = qf_dtype_from_name(jd->valuestring);
		if (t.dtype == QF_DTYPE_NONE) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s': unsupported dtype '%s'", path, name,
				    jd->valuestring);
			goto out;
		}
		int nd = cJSON_GetArraySize(js);
		if (nd > QF_MAX_DIMS) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s': %d dims (at most %d)", path, name,
				    nd, QF_MAX_DIMS);
			goto out;
		}
		t.ndim = nd;
		uint64_t ne = 1;
		int k = 0;
		for (cJSON *d = js->child; d; d = d->next, k++) {
			uint64_t v;
			if (!json_uint(d, &v) || v > (uint64_t)INT64_MAX) {
				s = qf_fail(err, QF_EFORMAT,
					    "%s: tensor '%s': shape[%d] is not a non-negative integer",
					    path, name, k);
				goto out;
			}
			t.shape[k] = (int64_t)v;
			if (!qf_mul_u64(ne, v, &ne) || ne > (uint64_t)INT64_MAX) {
				s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s': element count overflows",
					    path, name);
				goto out;
			}
		}
		t.nelems = ne;
		int ok;
		uint64_t want = qf_dtype_nbytes(t.dtype, ne, &ok);
		if (!ok) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s': byte size overflows", path, name);
			goto out;
		}
		uint64_t b, en;
		if (cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &b) ||
		    !json_uint(jo->child->next, &en) || en < b) {
			s = qf_fail(err, QF_EFORMAT,
				    "%s: tensor '%s': data_offsets must be [begin, end] with begin <= end",
				    path, name);
			goto out;
		}
		if (en - b != want) {
			s = qf_fail(err, QF_EFORMAT,
				    "%s: tensor '%s': %llu bytes in data_offsets but %s%s needs %llu",
				    path, name, (unsigned long long)(en - b), jd->valuestring,
				    "", (unsigned long long)want);
			goto out;
		}
		if (en > data_len) {
			s = qf_fail(err, QF_EFORMAT,
				    "%s: tensor '%s': data [%llu, %llu) past end of data (%llu bytes); file truncated?",
				    path, name, (unsigned long long)b, (unsigned long long)en,
				    (unsigned long long)data_len);
			goto out;
		}
		t.nbytes = want;
		t.offset = data_base + b;
		t.data = m->data ? m->data + t.offset : NULL;
		t.file = fi;
		char *nm = strdup(name);
		if (!nm) {
			s = qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
			goto out;
		}
		st->names[st->ntensors] = nm;
		t.name = nm;
		st->tensors[st->ntensors++] = t;
	}

	/* contiguity: sorted by offset, each begins where the previous ended */
	qsort(st->tensors + first, st->ntensors - first, sizeof *st->tensors, cmp_tensor_offset);
	uint64_t pos = data_base;
	for (size_t i = first; i < st->ntensors; i++) {
		const qf_tensor *t = &st->tensors[i];
		if (t->offset != pos) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s': data at offset %llu but expected %llu (%s)",
				    path, t->name, (unsigned long long)(t->offset - data_base),
				    (unsigned long long)(pos - data_base),
				    t->offset > pos ? "gap" : "overlap");
			goto out;
		}
		pos += t->nbytes;
	}
	if (pos != m->size) {
		s = qf_fail(err, QF_EFORMAT,
			    "%s: tensor data ends at byte %llu but the file has %llu bytes",
			    path, (unsigned long long)pos, (unsigned long long)m->size);
		goto out;
	}
out:
	cJSON_Delete(root);
	return s;
}

static qf_status build_index(qf_st *st, qf_err *err)
{
	st->by_name = malloc((st->ntensors + 1) * sizeof *st->by_name);
	if (!st->by_name)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t i = 0; i < st->ntensors; i++)
		st->by_name[i] = &st->tensors[i];
	qsort(st->by_name, st->ntensors, sizeof *st->by_name, cmp_tensor_ptr_name);
	for (size_t i = 1; i < st->ntensors; i++) {
		const qf_tensor *a = st->by_name[i - 1], *b = st->by_name[i];
		if (strcmp(a->name, b->name) == 0) {
			if (a->file == b->file)
				return qf_fail(err, QF_EFORMAT, "%s: duplicate tensor name '%s'",
					       st->files[a->file].path, a->name);
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is in two shards (also in %s)",
				       st->files[b->file].path, a->name, st->files[a->file].path);
		}
	}
	return QF_OK;
}

void qf_st_close(qf_st *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nfiles; i++)
		qf_mapfile_close(&st->files[i]);
	for (size_t i = 0; i < st->ntensors; i++)
		free(st->names[i]);
	free(st->names);
	free(st->files);
	free(st->tensors);
	free(st->by_name);
	cJSON_Delete(st->metadata);
	free(st->view_by_name);
	if (st->view_release)
		st->view_release(st->view_owner);
	free(st);
}

static qf_st *st_new(size_t nfiles)
{
	qf_st *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->files = calloc(nfiles ? nfiles : 1, sizeof *st->files);
	if (!st->files) {
		free(st);
		return NULL;
	}
	return st;
}

qf_status qf_st_open_buffer(const void *buf, size_t len, const char *label, qf_st **out,
			    qf_err *err)
{
	qf_st *st = st_new(1);
	qf_status s;
	if (!st)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	st->nfiles = 1;
	s = qf_mapfile_wrap(&st->files[0], buf, len, label);
	if (!s)
		s = parse_file(st, 0, err);
	if (!s)
		s = build_index(st, err);
	if (s) {
		qf_st_close(st);
		return s;
	}
	*out = st;
	return QF_OK;
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a whole small file into a NUL-terminated buffer. */
static qf_status slurp(const char *path, char **out, qf_err *err)
{
	qf_mapfile m;
	qf_status s = qf_mapfile_open(&m, path, err);
	if (s)
		return s;
	if (m.size > ST_MAX_INDEX) { /* its JSON tree costs ~32× the text */
		qf_mapfile_close(&m);
		return qf_fail(err, QF_EFORMAT, "%s: %llu bytes, more than an index may have (%llu MiB)", path,
			       (unsigned long long)m.size, (unsigned long long)(ST_MAX_INDEX >> 20));
	}
	char *b = malloc(m.size + 1);
	if (!b) {
		qf_mapfile_close(&m);
		return qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
	}
	if (m.size)
		memcpy(b, m.data, m.size);
	b[m.size] = 0;
	qf_mapfile_close(&m);
	*out = b;
	return QF_OK;
}

static qf_status open_files(qf_st *st, char **paths, size_t n, qf_err *err)
{
	for (size_t i = 0; i < n; i++) {
		qf_status s = qf_mapfile_open(&st->files[i], paths[i], err);
		if (s)
			return s;
		st->nfiles = i + 1;
		s = parse_file(st, (int)i, err);
		if (s)
			return s;
	}
	return build_index(st, err);
}

static int cmp_item_key(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static int cmp_key_item(const void *k, const void *b)
{
	return strcmp(*(const char *const *)k, (*(const cJSON *const *)b)->string);
}

static qf_status open_indexed(const char *dir, const char *index_path, qf_st **out, qf_err *err)
{
	char *text = NULL;
	cJSON *root = NULL;
	char **shards = NULL;
	const cJSON **wm_sorted = NULL;
	size_t nshards = 0;
	qf_st *st = NULL;
	qf_status s = slurp(index_path, &text, err);
	if (s)
		return s;
	root = cJSON_Parse(text);
	const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
	if (!cJSON_IsObject(wm)) {
		s = qf_fail(err, QF_EFORMAT, "%s: %s", index_path,
			    root ? "no \"weight_map\" object" : "invalid JSON");
		goto out;
	}
	size_t nmap = (size_t)cJSON_GetArraySize(wm);
	shards = calloc(nmap + 1, sizeof *shards);
	if (!shards) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	for (const cJSON *e = wm->child; e; e = e->next) {
		if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.') {
			s = qf_fail(err, QF_EFORMAT, "%s: weight_map entry '%s' is not a shard file name",
				    index_path, e->string);
			goto out;
		}
		shards[nshards++] = e->valuestring;
	}
	/* sorted, then unique: O(n log n) for DeepSeek-V3's ~90k entries, not a scan per entry */
	qsort(shards, nshards, sizeof *shards, cmp_str);
	size_t nu = 0;
	for (size_t i = 0; i < nshards; i++)
		if (!nu || strcmp(shards[nu - 1], shards[i]) != 0)
			shards[nu++] = shards[i];
	nshards = nu;
	/* the map itself, sorted by tensor name, for the lookups below */
	wm_sorted = malloc((nmap + 1) * sizeof *wm_sorted);
	if (!wm_sorted) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	size_t nw = 0;
	for (const cJSON *e = wm->child; e; e = e->next)
		wm_sorted[nw++] = e;
	qsort(wm_sorted, nw, sizeof *wm_sorted, cmp_item_key);
	for (size_t i = 1; i < nw; i++)
		if (strcmp(wm_sorted[i - 1]->string, wm_sorted[i]->string) == 0) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is listed twice in weight_map", index_path,
				    wm_sorted[i]->string);
			goto out;
		}
	char **paths = calloc(nshards + 1, sizeof *paths);
	if (!paths) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nshards; i++) {
		paths[i] = path_join(dir, shards[i]);
		struct stat sb;
		if (paths[i] && stat(paths[i], &sb) != 0 && !s)
			s = qf_fail(err, QF_EFORMAT, "%s: shard %s named by the index is missing",
				    paths[i], shards[i]);
	}
	st = st_new(nshards);
	if (!s && !st)
		s = qf_fail(err, QF_ENOMEM, "out of memory");
	if (!s)
		s = open_files(st, paths, nshards, err);
	for (size_t i = 0; i < nshards; i++)
		free(paths[i]);
	free(paths);
	if (s)
		goto out;
	/* every mapped tensor must be in the shard the index names */
	for (const cJSON *e = wm->child; e; e = e->next) {
		const qf_tensor *t = qf_st_find(st, e->string);
		if (!t) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is mapped to %s but no shard holds it",
				    index_path, e->string, e->valuestring);
			goto out;
		}
		const char *fp = st->files[t->file].path;
		const char *base = strrchr(fp, '/');
		base = base ? base + 1 : fp;
		if (strcmp(base, e->valuestring) != 0) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is mapped to %s but found in %s",
				    index_path, e->string, e->valuestring, base);
			goto out;
		}
	}
	for (size_t i = 0; i < st->ntensors; i++) {
		const char *key = st->tensors[i].name;
		if (!bsearch(&key, wm_sorted, nw, sizeof *wm_sorted, cmp_key_item)) {
			s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is not listed in %s",
				    st->files[st->tensors[i].file].path, st->tensors[i].name, index_path);
			goto out;
		}
	}
	*out = st;
	st = NULL;
out:
	qf_st_close(st);
	free(shards);
	free(wm_sorted);
	cJSON_Delete(root);
	free(text);
	return s;
}

qf_status qf_st_open(const char *path, qf_st **out, qf_err *err)
{
	struct stat sb;
	qf_status s;
	if (stat(path, &sb) != 0)
		return qf_fail(err, QF_EFORMAT, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(sb.st_mode)) {
		qf_st *st = st_new(1);
		char *p = (char *)path;
		if (!st)
			return qf_fail(err, QF_ENOMEM, "out of memory");
		s = open_files(st, &p, 1, err);
		if (s) {
			qf_st_close(st);
			return s;
		}
		*out = st;
		return QF_OK;
	}
	char *idx = path_join(path, "model.safetensors.index.json");
	if (idx && stat(idx, &sb) != 0) { /* msModelSlim names its index after its shards */
		free(idx);
		idx = path_join(path, "quant_model_weights.safetensors.index.json");
	}
	if (!idx)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	if (stat(idx, &sb) == 0) {
		s = open_indexed(path, idx, out, err);
		free(idx);
		return s;
	}
	free(idx);
	/* no index: every *.safetensors in name order */
	DIR *d = opendir(path);
	if (!d)
		return qf_fail(err, QF_EIO, "%s: cannot read directory: %s", path, strerror(errno));
	char **paths = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	s = QF_OK;
	while ((e = readdir(d)) != NULL) {
		if (!qf_str_ends_with(e->d_name, ".safetensors") || e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			char **g = realloc(paths, cap * sizeof *g);
			if (!g) {
				s = qf_fail(err, QF_ENOMEM, "out of memory");
				break;
			}
			paths = g;
		}
		paths[n] = path_join(path, e->d_name);
		if (!paths[n]) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			break;
		}
		n++;
	}
	closedir(d);
	if (!s && n == 0)
		s = qf_fail(err, QF_EFORMAT, "%s: no *.safetensors files and no model.safetensors.index.json",
			    path);
	qf_st *st = NULL;
	if (!s) {
		qsort(paths, n, sizeof *paths, cmp_str);
		st = st_new(n);
		if (!st)
			s = qf_fail(err, QF_ENOMEM, "out of memory");
		else
			s = open_files(st, paths, n, err);
	}
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	if (s) {
		qf_st_close(st);
		return s;
	}
	*out = st;
	return QF_OK;
}

size_t qf_st_raw_count(const qf_st *st) { return st->ntensors; }
const qf_tensor *qf_st_raw_get(const qf_st *st, size_t i) { return i < st->ntensors ? &st->tensors[i] : NULL; }
size_t qf_st_count(const qf_st *st) { return st->view ? st->nview : st->ntensors; }
const qf_tensor *qf_st_get(const qf_st *st, size_t i)
{
	if (st->view)
		return i < st->nview ? &st->view[i] : NULL;
	return qf_st_raw_get(st, i);
}
size_t qf_st_nfiles(const qf_st *st) { return st->nfiles; }
const char *qf_st_file_path(const qf_st *st, size_t i) { return i < st->nfiles ? st->files[i].path : NULL; }
uint64_t qf_st_file_size(const qf_st *st, size_t i) { return i < st->nfiles ? st->files[i].size : 0; }

static const qf_tensor *find_in(const qf_tensor *const *by_name, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	if (!by_name)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(by_name[mid]->name, name);
		if (c == 0)
			return by_name[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const qf_tensor *qf_st_raw_find(const qf_st *st, const char *name)
{
	return find_in(st->by_name, st->ntensors, name);
}

const qf_tensor *qf_st_find(const qf_st *st, const char *name)
{
	if (st->view)
		return find_in(st->view_by_name, st->nview, name);
	return qf_st_raw_find(st, name);
}

qf_status qf_st_set_view(qf_st *st, const qf_tensor *view, size_t n, void (*release)(void *), void *owner,
			 qf_err *err)
{
	const qf_tensor **idx = malloc((n + 1) * sizeof *idx);
	if (!idx) {
		if (release)
			release(owner);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		idx[i] = &view[i];
	qsort(idx, n, sizeof *idx, cmp_tensor_ptr_name);
	for (size_t i = 1; i < n; i++) {
		if (!strcmp(idx[i - 1]->name, idx[i]->name)) {
			qf_status s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is stored twice (once as it is, once compressed)",
					      st->files[idx[i]->file >= 0 ? idx[i]->file : 0].path, idx[i]->name);
			free(idx);
			if (release)
				release(owner);
			return s;
		}
	}
	free(st->view_by_name);
	if (st->view_release)
		st->view_release(st->view_owner);
	st->view = view;
	st->nview = n;
	st->view_by_name = idx;
	st->view_release = release;
	st->view_owner = owner;
	return QF_OK;
}

const char *qf_st_metadata(const qf_st *st, const char *key)
{
	const cJSON *v = st->metadata ? cJSON_GetObjectItemCaseSensitive(st->metadata, key) : NULL;
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

qf_status qf_st_fp8_scale(const qf_st *st, const qf_tensor *w, int64_t bo, int64_t bi,
			  const qf_tensor **scale, qf_err *err)
{
	*scale = NULL;
	if (w->dtype != QF_F8_E4M3 && w->dtype != QF_F8_E5M2)
		return QF_OK;
	const char *fp = st->files[w->file].path;
	size_t n = strlen(w->name) + 16;
	char *sn = malloc(n);
	if (!sn)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	snprintf(sn, n, "%s_scale_inv", w->name);
	const qf_tensor *sc = qf_st_find(st, sn);
	free(sn);
	if (!sc)
		return qf_fail(err, QF_EFORMAT, "%s: FP8 tensor '%s' has no '%s_scale_inv' in any shard",
			       fp, w->name, w->name);
	if (w->ndim != 2)
		return qf_fail(err, QF_EFORMAT, "%s: FP8 tensor '%s' is %d-D; block scales need 2-D",
			       fp, w->name, w->ndim);
	int64_t r = (w->shape[0] + bo - 1) / bo, c = (w->shape[1] + bi - 1) / bi;
	if ((sc->dtype != QF_F32 && sc->dtype != QF_F8_E8M0) || sc->ndim != 2 || sc->shape[0] != r || sc->shape[1] != c)
		return qf_fail(err, QF_EFORMAT,
			       "%s: '%s' must be F32 or F8_E8M0 [%lld, %lld] for weight [%lld, %lld] with %lldx%lld blocks, is %s of %d dims",
			       st->files[sc->file].path, sc->name, (long long)r, (long long)c,
			       (long long)w->shape[0], (long long)w->shape[1], (long long)bo,
			       (long long)bi, qf_dtype_name(sc->dtype), sc->ndim);
	*scale = sc;
	return QF_OK;
}

float qf_st_scale_at(const qf_tensor *sc, uint64_t i)
{
	if (sc->dtype == QF_F8_E8M0)
		return qf_e8m0_to_f32(sc->data[i]);
	float f;
	memcpy(&f, sc->data + 4 * i, 4);
	return f;
}

/* ---- writer -------------------------------------------------------------- */

qf_status qf_st_write(const char *path, const qf_st_entry *entries, size_t n,
		      const char *const *metadata, qf_err *err)
{
	qf_status s = QF_OK;
	cJSON *root = cJSON_CreateObject();
	char *json = NULL;
	qf_out o;
	memset(&o, 0, sizeof o);
	o.fd = -1;
	if (!root)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	if (metadata) {
		cJSON *md = cJSON_AddObjectToObject(root, "__metadata__");
		for (size_t i = 0; metadata[i] && metadata[i + 1]; i += 2)
			cJSON_AddStringToObject(md, metadata[i], metadata[i + 1]);
	}
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		const qf_st_entry *e = &entries[i];
		uint64_t ne = 1;
		for (int k = 0; k < e->ndim; k++)
			ne *= (uint64_t)e->shape[k];
		int ok;
		uint64_t nb = qf_dtype_nbytes(e->dtype, ne, &ok);
		cJSON *t = cJSON_AddObjectToObject(root, e->name);
		cJSON_AddStringToObject(t, "dtype", qf_dtype_name(e->dtype));
		cJSON *sh = cJSON_AddArrayToObject(t, "shape");
		for (int k = 0; k < e->ndim; k++)
			cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[k]));
		cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
		cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
		cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
		off += nb;
	}
	json = cJSON_PrintUnformatted(root);
	if (!json) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	size_t jl = strlen(json);
	size_t padded = (jl + 7) & ~(size_t)7;
	s = qf_out_open(&o, path, 1, err);
	if (s)
		goto out;
	unsigned char hdr[8];
	for (int i = 0; i < 8; i++)
		hdr[i] = (unsigned char)((uint64_t)padded >> (8 * i));
	s = qf_out_write(&o, hdr, 8, err);
	if (!s)
		s = qf_out_write(&o, json, jl, err);
	for (size_t i = jl; !s && i < padded; i++)
		s = qf_out_write(&o, " ", 1, err);
	for (size_t i = 0; !s && i < n; i++) {
		const qf_st_entry *e = &entries[i];
		uint64_t ne = 1;
		for (int k = 0; k < e->ndim; k++)
			ne *= (uint64_t)e->shape[k];
		uint64_t nb = qf_dtype_nbytes(e->dtype, ne, NULL);
		if (nb)
			s = qf_out_write(&o, e->data, (size_t)nb, err);
	}
	if (!s)
		s = qf_out_commit(&o, err);
out:
	if (s)
		qf_out_abort(&o);
	free(json);
	cJSON_Delete(root);
	return s;
}
