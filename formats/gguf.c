#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "formats/gguf.h"
#include "formats/mapfile.h"
#include "formats/outfile.h"

static const size_t type_size[QF_GGUF_NTYPES] = {
	[QF_GGUF_U8] = 1, [QF_GGUF_I8] = 1, [QF_GGUF_U16] = 2, [QF_GGUF_I16] = 2,
	[QF_GGUF_U32] = 4, [QF_GGUF_I32] = 4, [QF_GGUF_F32] = 4, [QF_GGUF_BOOL] = 1,
	[QF_GGUF_STR] = 0, [QF_GGUF_ARR] = 0, [QF_GGUF_U64] = 8, [QF_GGUF_I64] = 8,
	[QF_GGUF_F64] = 8,
};

static const char *const type_names[QF_GGUF_NTYPES] = {
	"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
};

const char *qf_gguf_type_name(uint32_t t)
{
	return t < QF_GGUF_NTYPES ? type_names[t] : "?";
}

struct qf_gguf {
	qf_mapfile map;
	uint32_t version;
	uint32_t alignment;
	uint64_t data_off;
	qf_gguf_kv *kvs;
	size_t nkv;
	qf_tensor *tensors;       /* every part's tensors (a split set: merged, .file = part) */
	char **tnames;            /* names of this file's own tensors */
	size_t nt, nnames;
	struct qf_gguf **parts;   /* split set: parts 1…n−1 (owned); part 0 is this file */
	char **part_paths;        /* split set: every part's path (owned) */
	size_t nparts;            /* 1 for a single file */
};

typedef struct cursor {
	const uint8_t *p;
	uint64_t pos, size;
	const char *path;
	qf_err *err;
} cursor;

static qf_status need(cursor *c, uint64_t n, const char *what)
{
	if (n > c->size - c->pos)
		return qf_fail(c->err, QF_EFORMAT, "%s: offset %llu: %s runs past end of file", c->path,
			       (unsigned long long)c->pos, what);
	return QF_OK;
}

static qf_status rd(cursor *c, void *dst, uint64_t n, const char *what)
{
	qf_status s = need(c, n, what);
	if (s)
		return s;
	memcpy(dst, c->p + c->pos, (size_t)n);
	c->pos += n;
	return QF_OK;
}

static qf_status rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static qf_status rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

static qf_status rd_str(cursor *c, qf_gguf_str *s, const char *what)
{
	qf_status st = rd_u64(c, &s->len, what);
	if (st)
		return st;
	st = need(c, s->len, what);
	if (st)
		return st;
	s->p = (const char *)c->p + c->pos;
	c->pos += s->len;
	return QF_OK;
}

void qf_gguf_close(qf_gguf *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nkv; i++) {
		free(g->kvs[i].key);
		free(g->kvs[i].strs);
	}
	for (size_t i = 0; i < g->nnames; i++)
		free(g->tnames[i]);
	for (size_t k = 1; k < g->nparts; k++) {
		if (g->parts)
			qf_gguf_close(g->parts[k]);
		if (g->part_paths)
			free(g->part_paths[k]);
	}
	if (g->part_paths)
		free(g->part_paths[0]);
	free(g->parts);
	free(g->part_paths);
	free(g->kvs);
	free(g->tensors);
	free(g->tnames);
	qf_mapfile_close(&g->map);
	free(g);
}

static qf_status parse(qf_gguf *g, qf_err *err)
{
	cursor c = { .p = g->map.data, .pos = 0, .size = g->map.size, .path = g->map.path, .err = err };
	char magic[4];
	uint64_t nt, nkv;
	qf_status s;

	if ((s = rd(&c, magic, 4, "magic")))
		return s;
	if (memcmp(magic, "GGUF", 4) != 0)
		return qf_fail(err, QF_EFORMAT, "%s: bad magic (not a GGUF file)", c.path);
	if ((s = rd_u32(&c, &g->version, "version")))
		return s;
	if (g->version != 3 && g->version != 2)
		return qf_fail(err, QF_EFORMAT, "%s: unsupported GGUF version %u (want 3)", c.path,
			       g->version);
	if ((s = rd_u64(&c, &nt, "tensor count")) || (s = rd_u64(&c, &nkv, "KV count")))
		return s;
	/* each KV takes at least 8+4+1 bytes, each tensor info at least 8+4+8+4+8 */
	if (nkv > (c.size - c.pos) / 13 || nt > (c.size - c.pos) / 32)
		return qf_fail(err, QF_EFORMAT, "%s: %llu KVs / %llu tensors cannot fit in %llu bytes",
			       c.path, (unsigned long long)nkv, (unsigned long long)nt,
			       (unsigned long long)c.size);
	g->kvs = calloc(nkv + 1, sizeof *g->kvs);
	g->tensors = calloc(nt + 1, sizeof *g->tensors);
	g->tnames = calloc(nt + 1, sizeof *g->tnames);
	if (!g->kvs || !g->tensors || !g->tnames)
		return qf_fail(err, QF_ENOMEM, "%s: out of memory", c.path);

	g->alignment = QF_GGUF_DEFAULT_ALIGN;
	for (uint64_t i = 0; i < nkv; i++) {
		qf_gguf_kv *kv = &g->kvs[i];
		qf_gguf_str key;
		uint64_t kpos = c.pos;
		if ((s = rd_str(&c, &key, "KV key")))
			return s;
		if (key.len == 0 || key.len > 65535 || memchr(key.p, 0, key.len))
			return qf_fail(err, QF_EFORMAT, "%s: offset %llu: invalid key of %llu bytes",
				       c.path, (unsigned long long)kpos, (unsigned long long)key.len);
		kv->key = malloc(key.len + 1);
		if (!kv->key)
			return qf_fail(err, QF_ENOMEM, "out of memory");
		memcpy(kv->key, key.p, key.len);
		kv->key[key.len] = 0;
		g->nkv = i + 1;
		for (uint64_t j = 0; j < i; j++)
			if (strcmp(g->kvs[j].key, kv->key) == 0)
				return qf_fail(err, QF_EFORMAT, "%s: duplicate key '%s'", c.path, kv->key);
		if ((s = rd_u32(&c, &kv->type, "KV type")))
			return s;
		if (kv->type >= QF_GGUF_NTYPES)
			return qf_fail(err, QF_EFORMAT, "%s: key '%s': unknown value type %u", c.path,
				       kv->key, kv->type);
		uint64_t vstart = c.pos;
		kv->n = 1;
		uint32_t et = kv->type;
		if (kv->type == QF_GGUF_ARR) {
			if ((s = rd_u32(&c, &kv->arr_type, "array type")) ||
			    (s = rd_u64(&c, &kv->n, "array count")))
				return s;
			et = kv->arr_type;
			if (et >= QF_GGUF_NTYPES || et == QF_GGUF_ARR)
				return qf_fail(err, QF_EFORMAT, "%s: key '%s': invalid array element type %u",
					       c.path, kv->key, et);
		}
		kv->raw = c.p + c.pos;
		kv->raw_off = c.pos;
		if (et == QF_GGUF_STR) {
			if (kv->n > (c.size - c.pos) / 8)
				return qf_fail(err, QF_EFORMAT,
					       "%s: key '%s': %llu strings run past end of file", c.path,
					       kv->key, (unsigned long long)kv->n);
			kv->strs = malloc((size_t)(kv->n + 1) * sizeof *kv->strs);
			if (!kv->strs)
				return qf_fail(err, QF_ENOMEM, "out of memory");
			for (uint64_t j = 0; j < kv->n; j++)
				if ((s = rd_str(&c, &kv->strs[j], kv->key)))
					return s;
		} else {
			uint64_t nb;
			if (!qf_mul_u64(kv->n, type_size[et], &nb))
				return qf_fail(err, QF_EFORMAT, "%s: key '%s': array size overflows",
					       c.path, kv->key);
			if ((s = need(&c, nb, kv->key)))
				return s;
			c.pos += nb;
		}
		kv->raw_len = c.pos - vstart;
		if (strcmp(kv->key, "general.alignment") == 0) {
			uint32_t a;
			if (kv->type != QF_GGUF_U32)
				return qf_fail(err, QF_EFORMAT, "%s: general.alignment must be u32, is %s",
					       c.path, qf_gguf_type_name(kv->type));
			memcpy(&a, kv->raw, 4);
			if (a == 0 || (a & (a - 1)) != 0)
				return qf_fail(err, QF_EFORMAT,
					       "%s: general.alignment %u is not a power of two", c.path, a);
			g->alignment = a;
		}
	}

	for (uint64_t i = 0; i < nt; i++) {
		qf_tensor *t = &g->tensors[i];
		qf_gguf_str name;
		uint32_t nd, type;
		uint64_t ne[QF_GGUF_MAX_DIMS], off;
		if ((s = rd_str(&c, &name, "tensor name")))
			return s;
		if (name.len >= QF_GGUF_MAX_NAME || memchr(name.p, 0, name.len))
			return qf_fail(err, QF_EFORMAT, "%s: tensor %llu: name of %llu bytes (max %d)",
				       c.path, (unsigned long long)i, (unsigned long long)name.len,
				       QF_GGUF_MAX_NAME - 1);
		g->tnames[i] = malloc(name.len + 1);
		if (!g->tnames[i])
			return qf_fail(err, QF_ENOMEM, "out of memory");
		memcpy(g->tnames[i], name.p, name.len);
		g->tnames[i][name.len] = 0;
		g->nt = g->nnames = i + 1;
		t->name = g->tnames[i];
		for (uint64_t j = 0; j < i; j++)
			if (strcmp(g->tnames[j], t->name) == 0)
				return qf_fail(err, QF_EFORMAT, "%s: duplicate tensor '%s'", c.path, t->name);
		if ((s = rd_u32(&c, &nd, t->name)))
			return s;
		if (nd < 1 || nd > QF_GGUF_MAX_DIMS)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': %u dims (1 to %d allowed)",
				       c.path, t->name, nd, QF_GGUF_MAX_DIMS);
		uint64_t nel = 1;
		for (uint32_t j = 0; j < nd; j++) {
			if ((s = rd_u64(&c, &ne[j], t->name)))
				return s;
			if (ne[j] > (uint64_t)INT64_MAX || !qf_mul_u64(nel, ne[j], &nel) ||
			    nel > (uint64_t)INT64_MAX)
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': element count overflows",
					       c.path, t->name);
		}
		if ((s = rd_u32(&c, &type, t->name)) || (s = rd_u64(&c, &off, t->name)))
			return s;
		t->dtype = qf_dtype_from_ggml((int)type);
		if (t->dtype == QF_DTYPE_NONE)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': unsupported ggml type %u",
				       c.path, t->name, type);
		const qf_dtype_traits *tr = qf_dtype_info(t->dtype);
		if (ne[0] % (uint64_t)tr->block_elems)
			return qf_fail(err, QF_EFORMAT,
				       "%s: tensor '%s': row of %llu not a multiple of the %s block (%lld)",
				       c.path, t->name, (unsigned long long)ne[0], tr->name,
				       (long long)tr->block_elems);
		t->ndim = (int)nd;
		for (uint32_t j = 0; j < nd; j++)
			t->shape[nd - 1 - j] = (int64_t)ne[j];
		t->nelems = nel;
		int ok;
		t->nbytes = qf_dtype_nbytes(t->dtype, nel, &ok);
		if (!ok)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': byte size overflows", c.path,
				       t->name);
		t->offset = off; /* relative for now */
	}
	uint64_t a = g->alignment;
	uint64_t data_off = (c.pos + a - 1) / a * a;
	if (data_off > c.size && nt > 0)
		return qf_fail(err, QF_EFORMAT, "%s: data section at %llu is past end of file", c.path,
			       (unsigned long long)data_off);
	g->data_off = data_off;
	uint64_t expect = 0;
	for (size_t i = 0; i < g->nt; i++) {
		qf_tensor *t = &g->tensors[i];
		if (t->offset != expect)
			return qf_fail(err, QF_EFORMAT,
				       "%s: tensor '%s': offset %llu, expected %llu (out of order, misaligned or overlapping)",
				       c.path, t->name, (unsigned long long)t->offset,
				       (unsigned long long)expect);
		uint64_t end;
		if (!qf_add_u64(t->offset, t->nbytes, &end) || !qf_add_u64(end, data_off, &end) ||
		    end > c.size)
			return qf_fail(err, QF_EFORMAT,
				       "%s: tensor '%s': data [%llu, +%llu) runs past end of file (%llu bytes)",
				       c.path, t->name, (unsigned long long)(data_off + t->offset),
				       (unsigned long long)t->nbytes, (unsigned long long)c.size);
		t->offset += data_off;
		t->data = c.p + t->offset;
		t->file = 0;
		expect = (t->offset - data_off + t->nbytes + a - 1) / a * a;
	}
	return QF_OK;
}

static qf_status open_common(qf_gguf *g, qf_gguf **out, qf_err *err)
{
	g->nparts = 1;
	qf_status s = parse(g, err);
	if (s) {
		qf_gguf_close(g);
		return s;
	}
	*out = g;
	return QF_OK;
}

int qf_path_is_gguf(const char *path)
{
	if (qf_is_dir(path))
		return 0;
	char magic[4];
	return qf_probe_head(path, magic, 4) && memcmp(magic, "GGUF", 4) == 0; /* a FIFO must not hang */
}

qf_status qf_gguf_open_one(const char *path, qf_gguf **out, qf_err *err)
{
	qf_gguf *g = calloc(1, sizeof *g);
	if (!g)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	qf_status s = qf_mapfile_open(&g->map, path, err);
	if (s) {
		free(g);
		return s;
	}
	return open_common(g, out, err);
}

void qf_gguf_split_name(char *dst, size_t n, const char *prefix, size_t k, size_t count)
{
	snprintf(dst, n, "%s-%05zu-of-%05zu.gguf", prefix, k + 1, count);
}

/* split.no / split.count: absent → -1; not u16 → error. */
static qf_status split_key(const qf_gguf *g, const char *key, int64_t *v, qf_err *err)
{
	int64_t i = qf_gguf_find_kv(g, key);
	*v = -1;
	if (i < 0)
		return QF_OK;
	if (g->kvs[i].type != QF_GGUF_U16)
		return qf_fail(err, QF_EFORMAT, "%s: key '%s' is %s, expected u16", g->map.path, key,
			       qf_gguf_type_name(g->kvs[i].type));
	uint16_t u;
	memcpy(&u, g->kvs[i].raw, 2);
	*v = u;
	return QF_OK;
}

/*
 * A split set (llama-gguf-split): the first file names the others
 * PREFIX-0000k-of-0000n.gguf; each must say split.no = k−1 and the same
 * split.count; tensor names are unique across parts and their number is
 * split.tensors.count (as llama.cpp's loader checks).
 */
static qf_status open_split(qf_gguf *g, int64_t count, qf_err *err)
{
	const char *path = g->map.path;
	int64_t no;
	qf_status s = split_key(g, "split.no", &no, err);
	if (s)
		return s;
	size_t pl = strlen(path);
	char want[64];
	snprintf(want, sizeof want, "-%05lld-of-%05lld.gguf", (long long)(no < 0 ? 0 : no) + 1, (long long)count);
	if (no != 0) {
		return qf_fail(err, QF_EFORMAT, "%s: part %lld of a %lld-part split GGUF; open its first part (…-00001-of-%05lld.gguf)",
			       path, (long long)no + 1, (long long)count, (long long)count);
	}
	if (pl < strlen(want) || strcmp(path + pl - strlen(want), want) != 0)
		return qf_fail(err, QF_EFORMAT, "%s: first part of a %lld-part split GGUF, but its name does not end in '%s'",
			       path, (long long)count, want);
	char *prefix = strndup(path, pl - strlen(want));
	g->parts = calloc((size_t)count, sizeof *g->parts);
	g->part_paths = calloc((size_t)count, sizeof *g->part_paths);
	if (!prefix || !g->parts || !g->part_paths) {
		free(prefix);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	g->nparts = (size_t)count;
	size_t total = g->nt;
	for (size_t k = 0; k < g->nparts; k++) {
		size_t n = strlen(prefix) + 32;
		if (!(g->part_paths[k] = malloc(n))) {
			free(prefix);
			return qf_fail(err, QF_ENOMEM, "out of memory");
		}
		qf_gguf_split_name(g->part_paths[k], n, prefix, k, g->nparts);
		if (k == 0)
			continue;
		if ((s = qf_gguf_open_one(g->part_paths[k], &g->parts[k], err))) {
			free(prefix);
			return s;
		}
		int64_t pno, pc;
		if ((s = split_key(g->parts[k], "split.no", &pno, err)) || (s = split_key(g->parts[k], "split.count", &pc, err))) {
			free(prefix);
			return s;
		}
		if (pno != (int64_t)k || pc != count) {
			free(prefix);
			return qf_fail(err, QF_EFORMAT, "%s: says it is part %lld of %lld, expected part %zu of %lld",
				       g->part_paths[k], (long long)pno + 1, (long long)pc, k + 1, (long long)count);
		}
		total += g->parts[k]->nt;
	}
	free(prefix);
	qf_tensor *all = realloc(g->tensors, (total + 1) * sizeof *all);
	if (!all)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	g->tensors = all;
	for (size_t k = 1; k < g->nparts; k++) {
		for (size_t i = 0; i < g->parts[k]->nt; i++) {
			qf_tensor *t = &g->tensors[g->nt];
			*t = g->parts[k]->tensors[i];
			t->file = (int)k;
			for (size_t j = 0; j < g->nt; j++)
				if (strcmp(g->tensors[j].name, t->name) == 0)
					return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is also in %s", g->part_paths[k], t->name,
						       g->part_paths[g->tensors[j].file]);
			g->nt++;
		}
	}
	int64_t kc = qf_gguf_find_kv(g, "split.tensors.count");
	if (kc >= 0) {
		int32_t c;
		if (g->kvs[kc].type != QF_GGUF_I32)
			return qf_fail(err, QF_EFORMAT, "%s: key 'split.tensors.count' is %s, expected i32", path,
				       qf_gguf_type_name(g->kvs[kc].type));
		memcpy(&c, g->kvs[kc].raw, 4);
		if ((int64_t)c != (int64_t)g->nt)
			return qf_fail(err, QF_EFORMAT, "%s: split.tensors.count is %d, but the %zu parts hold %zu tensors", path,
				       c, g->nparts, g->nt);
	}
	return QF_OK;
}

qf_status qf_gguf_open(const char *path, qf_gguf **out, qf_err *err)
{
	qf_gguf *g = NULL;
	qf_status s = qf_gguf_open_one(path, &g, err);
	if (s)
		return s;
	int64_t count;
	if ((s = split_key(g, "split.count", &count, err)) || (count > 1 && (s = open_split(g, count, err)))) {
		qf_gguf_close(g);
		return s;
	}
	*out = g;
	return QF_OK;
}

size_t qf_gguf_nsplits(const qf_gguf *g) { return g->nparts; }
const char *qf_gguf_split_path(const qf_gguf *g, size_t k)
{
	return g->nparts > 1 ? (k < g->nparts ? g->part_paths[k] : NULL) : (k == 0 ? g->map.path : NULL);
}

qf_status qf_gguf_open_buffer(const void *buf, size_t len, const char *label, qf_gguf **out,
			      qf_err *err)
{
	qf_gguf *g = calloc(1, sizeof *g);
	if (!g || qf_mapfile_wrap(&g->map, buf, len, label)) {
		free(g);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	return open_common(g, out, err);
}

const char *qf_gguf_path(const qf_gguf *g) { return g->map.path; }
uint32_t qf_gguf_version(const qf_gguf *g) { return g->version; }
uint32_t qf_gguf_alignment(const qf_gguf *g) { return g->alignment; }
uint64_t qf_gguf_data_offset(const qf_gguf *g) { return g->data_off; }
uint64_t qf_gguf_file_size(const qf_gguf *g) { return g->map.size; }
size_t qf_gguf_nkv(const qf_gguf *g) { return g->nkv; }
const qf_gguf_kv *qf_gguf_kv_at(const qf_gguf *g, size_t i) { return i < g->nkv ? &g->kvs[i] : NULL; }
size_t qf_gguf_ntensors(const qf_gguf *g) { return g->nt; }
const qf_tensor *qf_gguf_tensor(const qf_gguf *g, size_t i) { return i < g->nt ? &g->tensors[i] : NULL; }

int64_t qf_gguf_find_kv(const qf_gguf *g, const char *key)
{
	for (size_t i = 0; i < g->nkv; i++)
		if (strcmp(g->kvs[i].key, key) == 0)
			return (int64_t)i;
	return -1;
}

const qf_tensor *qf_gguf_find_tensor(const qf_gguf *g, const char *name)
{
	for (size_t i = 0; i < g->nt; i++)
		if (strcmp(g->tensors[i].name, name) == 0)
			return &g->tensors[i];
	return NULL;
}

static const qf_gguf_kv *typed(const qf_gguf *g, const char *key, uint32_t type, qf_err *err,
			       qf_status *s)
{
	int64_t i = qf_gguf_find_kv(g, key);
	if (i < 0) {
		*s = qf_fail(err, QF_EFORMAT, "%s: missing key '%s'", g->map.path, key);
		return NULL;
	}
	if (g->kvs[i].type != type) {
		*s = qf_fail(err, QF_EFORMAT, "%s: key '%s' is %s, expected %s", g->map.path, key,
			     qf_gguf_type_name(g->kvs[i].type), qf_gguf_type_name(type));
		return NULL;
	}
	*s = QF_OK;
	return &g->kvs[i];
}

qf_status qf_gguf_get_u32(const qf_gguf *g, const char *key, uint32_t *v, qf_err *err)
{
	qf_status s;
	const qf_gguf_kv *kv = typed(g, key, QF_GGUF_U32, err, &s);
	if (kv)
		memcpy(v, kv->raw, 4);
	return s;
}

qf_status qf_gguf_get_u64(const qf_gguf *g, const char *key, uint64_t *v, qf_err *err)
{
	qf_status s;
	const qf_gguf_kv *kv = typed(g, key, QF_GGUF_U64, err, &s);
	if (kv)
		memcpy(v, kv->raw, 8);
	return s;
}

qf_status qf_gguf_get_f32(const qf_gguf *g, const char *key, float *v, qf_err *err)
{
	qf_status s;
	const qf_gguf_kv *kv = typed(g, key, QF_GGUF_F32, err, &s);
	if (kv)
		memcpy(v, kv->raw, 4);
	return s;
}

qf_status qf_gguf_get_bool(const qf_gguf *g, const char *key, int *v, qf_err *err)
{
	qf_status s;
	const qf_gguf_kv *kv = typed(g, key, QF_GGUF_BOOL, err, &s);
	if (kv)
		*v = kv->raw[0] != 0;
	return s;
}

qf_status qf_gguf_get_str(const qf_gguf *g, const char *key, char **v, qf_err *err)
{
	qf_status s;
	const qf_gguf_kv *kv = typed(g, key, QF_GGUF_STR, err, &s);
	if (!kv)
		return s;
	char *r = malloc(kv->strs[0].len + 1);
	if (!r)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	memcpy(r, kv->strs[0].p, kv->strs[0].len);
	r[kv->strs[0].len] = 0;
	*v = r;
	return QF_OK;
}

int qf_gguf_kv_number(const qf_gguf_kv *kv, uint64_t i, double *v)
{
	uint32_t t = kv->type == QF_GGUF_ARR ? kv->arr_type : kv->type;
	if (i >= kv->n || t >= QF_GGUF_NTYPES || t == QF_GGUF_STR || t == QF_GGUF_ARR)
		return 0;
	const uint8_t *p = kv->raw + i * type_size[t];
	union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
		float f32; uint64_t u64; int64_t i64; double f64; } u;
	memcpy(&u, p, type_size[t]);
	switch (t) {
	case QF_GGUF_U8: *v = u.u8; break;
	case QF_GGUF_I8: *v = u.i8; break;
	case QF_GGUF_U16: *v = u.u16; break;
	case QF_GGUF_I16: *v = u.i16; break;
	case QF_GGUF_U32: *v = u.u32; break;
	case QF_GGUF_I32: *v = u.i32; break;
	case QF_GGUF_F32: *v = u.f32; break;
	case QF_GGUF_BOOL: *v = u.u8 != 0; break;
	case QF_GGUF_U64: *v = (double)u.u64; break;
	case QF_GGUF_I64: *v = (double)u.i64; break;
	case QF_GGUF_F64: *v = u.f64; break;
	default: return 0;
	}
	return 1;
}

static const char *const hash_keys[] = { "qforge.tensor_xxh64", "qforge.data_xxh64",
					 "qforge.meta_xxh64" };

static int is_hash_key(const char *k)
{
	for (size_t i = 0; i < 3; i++)
		if (strcmp(k, hash_keys[i]) == 0)
			return 1;
	return 0;
}

qf_status qf_gguf_meta_hash(const qf_gguf *g, uint64_t *meta, qf_err *err)
{
	XXH64_state_t *st = XXH64_createState();
	if (!st)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	XXH64_reset(st, 0);
	uint64_t pos = 0;
	static const uint8_t zeros[4096];
	/* KVs appear in file order; zero the value bytes of the hash keys */
	for (size_t i = 0; i < g->nkv; i++) {
		const qf_gguf_kv *kv = &g->kvs[i];
		if (!is_hash_key(kv->key))
			continue;
		uint64_t vstart = kv->raw_off;
		uint64_t vlen = kv->raw_len - (kv->type == QF_GGUF_ARR ? 12 : 0);
		XXH64_update(st, g->map.data + pos, (size_t)(vstart - pos));
		for (uint64_t z = vlen; z > 0;) {
			size_t k = z > sizeof zeros ? sizeof zeros : (size_t)z;
			XXH64_update(st, zeros, k);
			z -= k;
		}
		pos = vstart + vlen;
	}
	uint64_t end = g->data_off < g->map.size ? g->data_off : g->map.size;
	XXH64_update(st, g->map.data + pos, (size_t)(end - pos));
	*meta = XXH64_digest(st);
	XXH64_freeState(st);
	return QF_OK;
}

/* ---- writer ---------------------------------------------------------------- */

typedef struct wkv {
	char *key;
	uint32_t type;
	uint8_t *val;        /* serialized value (after the type field) */
	size_t len;
} wkv;

typedef struct wtensor {
	char *name;
	int ndim;
	int64_t shape[QF_GGUF_MAX_DIMS];
	qf_dtype type;
	uint64_t nbytes;
	uint64_t offset;     /* relative to data start */
	uint64_t hash;
} wtensor;

/* One output file: the whole GGUF, or one part of a split set. */
typedef struct wpart {
	qf_out out;
	char *path;
	size_t t0, t1;       /* its tensors [t0, t1) */
	uint64_t base;       /* offset of tensor t0 in the concatenated layout */
	uint64_t hash_arr_off, data_hash_off, meta_hash_off; /* file offsets of values */
	uint8_t *header;     /* kept to compute the meta hash */
	size_t header_len;
	XXH64_state_t *dh;   /* its tensors' data */
} wpart;

struct qf_gguf_writer {
	wkv *kvs;
	size_t nkv, capkv;
	wtensor *ts;
	size_t nt, capt;
	int oom;
	uint32_t align;
	uint64_t split_max;  /* 0: one file */
	wpart *parts;
	size_t nparts, cur_part;
	int begun;
	size_t cur;          /* tensor being written */
	uint64_t cur_done;   /* bytes of it written */
	XXH64_state_t *th, *dh;
};

qf_gguf_writer *qf_gguf_writer_new(void)
{
	qf_gguf_writer *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->align = QF_GGUF_DEFAULT_ALIGN;
	w->th = XXH64_createState();
	w->dh = XXH64_createState();
	if (!w->th || !w->dh) {
		qf_gguf_writer_free(w);
		return NULL;
	}
	return w;
}

void qf_gguf_writer_free(qf_gguf_writer *w)
{
	if (!w)
		return;
	for (size_t k = 0; k < w->nparts; k++) {
		wpart *pt = &w->parts[k];
		if (pt->out.tmp)
			qf_out_abort(&pt->out);
		free(pt->path);
		free(pt->header);
		if (pt->dh)
			XXH64_freeState(pt->dh);
	}
	free(w->parts);
	for (size_t i = 0; i < w->nkv; i++) {
		free(w->kvs[i].key);
		free(w->kvs[i].val);
	}
	for (size_t i = 0; i < w->nt; i++)
		free(w->ts[i].name);
	free(w->kvs);
	free(w->ts);
	if (w->th)
		XXH64_freeState(w->th);
	if (w->dh)
		XXH64_freeState(w->dh);
	free(w);
}

static void add_kv(qf_gguf_writer *w, const char *key, uint32_t type, const void *val, size_t len)
{
	if (w->oom)
		return;
	if (w->nkv == w->capkv) {
		size_t nc = w->capkv ? w->capkv * 2 : 32;
		wkv *g = realloc(w->kvs, nc * sizeof *g);
		if (!g) {
			w->oom = 1;
			return;
		}
		w->kvs = g;
		w->capkv = nc;
	}
	wkv *kv = &w->kvs[w->nkv];
	kv->key = strdup(key);
	kv->val = malloc(len ? len : 1);
	if (!kv->key || !kv->val) {
		free(kv->key);
		free(kv->val);
		w->oom = 1;
		return;
	}
	if (len)
		memcpy(kv->val, val, len);
	kv->len = len;
	kv->type = type;
	w->nkv++;
	if (strcmp(key, "general.alignment") == 0 && type == QF_GGUF_U32 && len == 4) {
		uint32_t a;
		memcpy(&a, val, 4);
		if (a && !(a & (a - 1)))
			w->align = a;
	}
}

void qf_gguf_set_u32(qf_gguf_writer *w, const char *key, uint32_t v) { add_kv(w, key, QF_GGUF_U32, &v, 4); }
void qf_gguf_set_i32(qf_gguf_writer *w, const char *key, int32_t v) { add_kv(w, key, QF_GGUF_I32, &v, 4); }
void qf_gguf_set_u64(qf_gguf_writer *w, const char *key, uint64_t v) { add_kv(w, key, QF_GGUF_U64, &v, 8); }
void qf_gguf_set_f32(qf_gguf_writer *w, const char *key, float v) { add_kv(w, key, QF_GGUF_F32, &v, 4); }
void qf_gguf_set_bool(qf_gguf_writer *w, const char *key, int v)
{
	uint8_t b = v ? 1 : 0;
	add_kv(w, key, QF_GGUF_BOOL, &b, 1);
}

void qf_gguf_set_str(qf_gguf_writer *w, const char *key, const char *v)
{
	size_t n = strlen(v);
	uint8_t *b = malloc(8 + n);
	if (!b) {
		w->oom = 1;
		return;
	}
	uint64_t l = n;
	memcpy(b, &l, 8);
	memcpy(b + 8, v, n);
	add_kv(w, key, QF_GGUF_STR, b, 8 + n);
	free(b);
}

static void add_arr(qf_gguf_writer *w, const char *key, uint32_t et, const void *v, size_t n,
		    size_t esz)
{
	size_t len = 12 + n * esz;
	uint8_t *b = malloc(len);
	if (!b) {
		w->oom = 1;
		return;
	}
	uint64_t c = n;
	memcpy(b, &et, 4);
	memcpy(b + 4, &c, 8);
	if (n)
		memcpy(b + 12, v, n * esz);
	add_kv(w, key, QF_GGUF_ARR, b, len);
	free(b);
}

void qf_gguf_set_arr_i32(qf_gguf_writer *w, const char *key, const int32_t *v, size_t n) { add_arr(w, key, QF_GGUF_I32, v, n, 4); }
void qf_gguf_set_arr_f32(qf_gguf_writer *w, const char *key, const float *v, size_t n) { add_arr(w, key, QF_GGUF_F32, v, n, 4); }

void qf_gguf_set_arr_str(qf_gguf_writer *w, const char *key, const char *const *v, size_t n)
{
	size_t len = 12;
	for (size_t i = 0; i < n; i++)
		len += 8 + strlen(v[i]);
	uint8_t *b = malloc(len);
	if (!b) {
		w->oom = 1;
		return;
	}
	uint32_t et = QF_GGUF_STR;
	uint64_t c = n;
	memcpy(b, &et, 4);
	memcpy(b + 4, &c, 8);
	size_t p = 12;
	for (size_t i = 0; i < n; i++) {
		uint64_t l = strlen(v[i]);
		memcpy(b + p, &l, 8);
		memcpy(b + p + 8, v[i], l);
		p += 8 + l;
	}
	add_kv(w, key, QF_GGUF_ARR, b, len);
	free(b);
}

void qf_gguf_copy_kvs(qf_gguf_writer *w, const qf_gguf *g, const char *const *skip)
{
	for (size_t i = 0; i < g->nkv; i++) {
		const qf_gguf_kv *kv = &g->kvs[i];
		if (strncmp(kv->key, "qforge.", 7) == 0)
			continue;
		int sk = 0;
		for (size_t j = 0; skip && skip[j] && !sk; j++)
			sk = strcmp(skip[j], kv->key) == 0;
		if (sk)
			continue;
		/* raw points past the array header; re-include it */
		const uint8_t *start = kv->type == QF_GGUF_ARR ? kv->raw - 12 : kv->raw;
		add_kv(w, kv->key, kv->type, start, (size_t)kv->raw_len);
	}
}

qf_status qf_gguf_add_tensor(qf_gguf_writer *w, const char *name, int ndim, const int64_t *shape,
			     qf_dtype type, qf_err *err)
{
	const qf_dtype_traits *tr = qf_dtype_info(type);
	if (!tr || tr->ggml_type < 0)
		return qf_fail(err, QF_EUSAGE, "tensor '%s': %s is not a GGUF (ggml) type", name,
			       tr ? tr->name : "?");
	if (strlen(name) >= QF_GGUF_MAX_NAME)
		return qf_fail(err, QF_EUSAGE, "tensor '%s': name longer than %d bytes", name,
			       QF_GGUF_MAX_NAME - 1);
	if (ndim < 1 || ndim > QF_GGUF_MAX_DIMS)
		return qf_fail(err, QF_EUSAGE, "tensor '%s': %d dims", name, ndim);
	if (shape[ndim - 1] % tr->block_elems)
		return qf_fail(err, QF_EUSAGE, "tensor '%s': row of %lld is not a multiple of %lld for %s",
			       name, (long long)shape[ndim - 1], (long long)tr->block_elems, tr->name);
	for (size_t i = 0; i < w->nt; i++)
		if (strcmp(w->ts[i].name, name) == 0)
			return qf_fail(err, QF_EUSAGE, "tensor '%s' declared twice", name);
	if (w->nt == w->capt) {
		size_t nc = w->capt ? w->capt * 2 : 64;
		wtensor *g = realloc(w->ts, nc * sizeof *g);
		if (!g)
			return qf_fail(err, QF_ENOMEM, "out of memory");
		w->ts = g;
		w->capt = nc;
	}
	wtensor *t = &w->ts[w->nt];
	memset(t, 0, sizeof *t);
	t->name = strdup(name);
	if (!t->name)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	t->ndim = ndim;
	uint64_t ne = 1;
	for (int i = 0; i < ndim; i++) {
		t->shape[i] = shape[i];
		ne *= (uint64_t)shape[i];
	}
	t->type = type;
	t->nbytes = qf_dtype_nbytes(type, ne, NULL);
	uint64_t prev_end = 0;
	if (w->nt > 0) {
		const wtensor *p = &w->ts[w->nt - 1];
		prev_end = (p->offset + p->nbytes + w->align - 1) / w->align * w->align;
	}
	t->offset = prev_end;
	w->nt++;
	return QF_OK;
}

uint64_t qf_gguf_writer_tensor_nbytes(const qf_gguf_writer *w, size_t i) { return i < w->nt ? w->ts[i].nbytes : 0; }
uint64_t qf_gguf_writer_tensor_hash(const qf_gguf_writer *w, size_t i) { return i < w->nt ? w->ts[i].hash : 0; }
uint64_t qf_gguf_writer_data_hash(const qf_gguf_writer *w) { return XXH64_digest(w->dh); }

uint64_t qf_gguf_writer_total_bytes(const qf_gguf_writer *w)
{
	if (!w->nt)
		return 0;
	const wtensor *p = &w->ts[w->nt - 1];
	return (p->offset + p->nbytes + w->align - 1) / w->align * w->align;
}

typedef struct buf {
	uint8_t *p;
	size_t n, cap;
	int oom;
} buf;

static void bput(buf *b, const void *v, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->n + n)
			nc *= 2;
		uint8_t *g = realloc(b->p, nc);
		if (!g) {
			b->oom = 1;
			return;
		}
		b->p = g;
		b->cap = nc;
	}
	memcpy(b->p + b->n, v, n);
	b->n += n;
}

static void bput_str(buf *b, const char *s)
{
	uint64_t l = strlen(s);
	bput(b, &l, 8);
	bput(b, s, (size_t)l);
}

static void bput_u32(buf *b, uint32_t v) { bput(b, &v, 4); }
static void bput_u64(buf *b, uint64_t v) { bput(b, &v, 8); }

qf_status qf_gguf_writer_meta_blob(const qf_gguf_writer *w, uint8_t **out, size_t *len, qf_err *err)
{
	buf b = { 0 };
	bput(&b, "GGUF", 4);
	bput_u32(&b, 3);
	bput_u64(&b, 0);
	bput_u64(&b, w->nkv);
	for (size_t i = 0; i < w->nkv; i++) {
		bput_str(&b, w->kvs[i].key);
		bput_u32(&b, w->kvs[i].type);
		bput(&b, w->kvs[i].val, w->kvs[i].len);
	}
	if (b.oom || w->oom) {
		free(b.p);
		return qf_fail(err, QF_ENOMEM, "out of memory building metadata");
	}
	*out = b.p;
	*len = b.n;
	return QF_OK;
}

void qf_gguf_writer_set_split(qf_gguf_writer *w, uint64_t max_bytes) { w->split_max = max_bytes; }
size_t qf_gguf_writer_nsplits(const qf_gguf_writer *w) { return w->nparts; }
const char *qf_gguf_writer_split_path(const qf_gguf_writer *w, size_t k) { return k < w->nparts ? w->parts[k].path : NULL; }

static uint64_t padded(const qf_gguf_writer *w, uint64_t n) { return (n + w->align - 1) / w->align * w->align; }

/* Cuts the tensors into parts as llama-gguf-split does (never an empty part). */
static qf_status plan_parts(qf_gguf_writer *w, const char *path, qf_err *err)
{
	size_t cap = 1;
	if (w->split_max)
		cap = w->nt ? w->nt : 1;
	w->parts = calloc(cap, sizeof *w->parts);
	if (!w->parts)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	w->nparts = 1;
	uint64_t cur = 0;
	for (size_t i = 0; i < w->nt; i++) {
		uint64_t n = padded(w, w->ts[i].nbytes);
		if (w->split_max && i > w->parts[w->nparts - 1].t0 && cur + n > w->split_max) {
			w->parts[w->nparts - 1].t1 = i;
			w->parts[w->nparts].t0 = i;
			w->parts[w->nparts].base = w->ts[i].offset;
			w->nparts++;
			cur = 0;
		}
		cur += n;
	}
	w->parts[w->nparts - 1].t1 = w->nt;
	if (w->nparts > 65535)
		return qf_fail(err, QF_EUSAGE, "%s: %zu parts; split.count holds at most 65535", path, w->nparts);
	size_t pl = strlen(path);
	size_t stem = w->split_max && qf_str_ends_with(path, ".gguf") ? pl - 5 : pl;
	for (size_t k = 0; k < w->nparts; k++) {
		wpart *pt = &w->parts[k];
		pt->out.fd = -1;
		pt->dh = XXH64_createState();
		pt->path = malloc(pl + 32);
		if (!pt->dh || !pt->path)
			return qf_fail(err, QF_ENOMEM, "out of memory");
		if (!w->split_max) {
			memcpy(pt->path, path, pl + 1);
		} else {
			char *prefix = strndup(path, stem);
			if (!prefix)
				return qf_fail(err, QF_ENOMEM, "out of memory");
			qf_gguf_split_name(pt->path, pl + 32, prefix, k, w->nparts);
			free(prefix);
		}
		XXH64_reset(pt->dh, 0);
	}
	return QF_OK;
}

static void put_kv(buf *b, const char *key, uint32_t type, const void *val, size_t len)
{
	bput_str(b, key);
	bput_u32(b, type);
	bput(b, val, len);
}

/* Part k's header: its KVs, the split keys, the qforge hash keys (zeroed), its tensor infos, padding. */
static void build_header(qf_gguf_writer *w, size_t k, buf *b)
{
	wpart *pt = &w->parts[k];
	int split = w->split_max != 0;
	size_t nkv = (k == 0 ? w->nkv : 0) + (split ? 3 : 0) + 3;
	bput(b, "GGUF", 4);
	bput_u32(b, 3);
	bput_u64(b, pt->t1 - pt->t0);
	bput_u64(b, nkv);
	for (size_t i = 0; k == 0 && i < w->nkv; i++)
		put_kv(b, w->kvs[i].key, w->kvs[i].type, w->kvs[i].val, w->kvs[i].len);
	if (split) {
		uint16_t no = (uint16_t)k, cnt = (uint16_t)w->nparts;
		int32_t tc = (int32_t)w->nt;
		put_kv(b, "split.no", QF_GGUF_U16, &no, 2);
		put_kv(b, "split.count", QF_GGUF_U16, &cnt, 2);
		put_kv(b, "split.tensors.count", QF_GGUF_I32, &tc, 4);
	}
	bput_str(b, hash_keys[0]);
	bput_u32(b, QF_GGUF_ARR);
	bput_u32(b, QF_GGUF_U64);
	bput_u64(b, pt->t1 - pt->t0);
	pt->hash_arr_off = b->n;
	for (size_t i = pt->t0; i < pt->t1; i++)
		bput_u64(b, 0);
	bput_str(b, hash_keys[1]);
	bput_u32(b, QF_GGUF_U64);
	pt->data_hash_off = b->n;
	bput_u64(b, 0);
	bput_str(b, hash_keys[2]);
	bput_u32(b, QF_GGUF_U64);
	pt->meta_hash_off = b->n;
	bput_u64(b, 0);
	for (size_t i = pt->t0; i < pt->t1; i++) {
		const wtensor *t = &w->ts[i];
		bput_str(b, t->name);
		bput_u32(b, (uint32_t)t->ndim);
		for (int j = t->ndim - 1; j >= 0; j--)
			bput_u64(b, (uint64_t)t->shape[j]);
		bput_u32(b, (uint32_t)qf_dtype_info(t->type)->ggml_type);
		bput_u64(b, t->offset - pt->base);
	}
	static const uint8_t zeros[256];
	size_t pad = (w->align - b->n % w->align) % w->align;
	while (pad > 0) {
		size_t n = pad > sizeof zeros ? sizeof zeros : pad;
		bput(b, zeros, n);
		pad -= n;
	}
}

/* Bytes of tensor data in part k, padded. */
static uint64_t part_bytes(const qf_gguf_writer *w, size_t k)
{
	const wpart *pt = &w->parts[k];
	if (pt->t1 == pt->t0)
		return 0;
	const wtensor *l = &w->ts[pt->t1 - 1];
	return padded(w, l->offset + l->nbytes) - pt->base;
}

qf_status qf_gguf_writer_begin(qf_gguf_writer *w, const char *path, int force, qf_err *err)
{
	qf_status s;
	if (w->oom)
		return qf_fail(err, QF_ENOMEM, "%s: out of memory building the header", path);
	for (size_t i = 0; i < w->nkv; i++) {
		if (is_hash_key(w->kvs[i].key) || (w->split_max && strncmp(w->kvs[i].key, "split.", 6) == 0))
			return qf_fail(err, QF_EUSAGE, "%s: key '%s' is reserved", path, w->kvs[i].key);
		for (size_t j = 0; j < i; j++)
			if (strcmp(w->kvs[i].key, w->kvs[j].key) == 0)
				return qf_fail(err, QF_EUSAGE, "%s: duplicate key '%s'", path,
					       w->kvs[i].key);
	}
	if ((s = plan_parts(w, path, err)))
		return s;
	for (size_t k = 0; k < w->nparts; k++) {
		wpart *pt = &w->parts[k];
		buf b = { 0 };
		build_header(w, k, &b);
		if (b.oom) {
			free(b.p);
			return qf_fail(err, QF_ENOMEM, "%s: out of memory building the header", pt->path);
		}
		s = qf_out_open(&pt->out, pt->path, force, err);
		if (!s)
			s = qf_out_reserve(&pt->out, b.n + part_bytes(w, k), err);
		if (!s)
			s = qf_out_write(&pt->out, b.p, b.n, err);
		if (s) {
			free(b.p);
			return s; /* free aborts every opened part */
		}
		pt->header = b.p;
		pt->header_len = b.n;
	}
	w->begun = 1;
	w->cur = 0;
	w->cur_part = 0;
	w->cur_done = 0;
	XXH64_reset(w->th, 0);
	XXH64_reset(w->dh, 0);
	return QF_OK;
}

/* Closes the current tensor if complete, padding after it. */
static qf_status close_complete(qf_gguf_writer *w, qf_err *err)
{
	while (w->cur < w->nt && w->cur_done == w->ts[w->cur].nbytes) {
		w->ts[w->cur].hash = XXH64_digest(w->th);
		while (w->cur >= w->parts[w->cur_part].t1)
			w->cur_part++;
		qf_status s = qf_out_pad(&w->parts[w->cur_part].out, w->align, err);
		if (s)
			return s;
		w->cur++;
		w->cur_done = 0;
		XXH64_reset(w->th, 0);
	}
	return QF_OK;
}

qf_status qf_gguf_writer_write(qf_gguf_writer *w, const void *data, size_t n, qf_err *err)
{
	const uint8_t *p = data;
	if (!w->begun)
		return qf_fail(err, QF_EUSAGE, "GGUF writer: write before begin");
	while (n > 0) {
		if (w->cur >= w->nt)
			return qf_fail(err, QF_EUSAGE, "%s: more tensor data than declared", w->parts[0].path);
		while (w->cur >= w->parts[w->cur_part].t1)
			w->cur_part++;
		wpart *pt = &w->parts[w->cur_part];
		uint64_t left = w->ts[w->cur].nbytes - w->cur_done;
		size_t k = n < left ? n : (size_t)left;
		qf_status s = qf_out_write(&pt->out, p, k, err);
		if (s)
			return s;
		XXH64_update(w->th, p, k);
		XXH64_update(w->dh, p, k);
		XXH64_update(pt->dh, p, k);
		w->cur_done += k;
		p += k;
		n -= k;
		if ((s = close_complete(w, err)))
			return s;
	}
	return QF_OK;
}

qf_status qf_gguf_writer_finish(qf_gguf_writer *w, qf_err *err)
{
	qf_status s = close_complete(w, err); /* zero-byte tensors at the end */
	if (s)
		return s;
	if (w->cur != w->nt)
		return qf_fail(err, QF_EUSAGE, "%s: tensor '%s' not fully written", w->parts[0].path,
			       w->ts[w->cur].name);
	for (size_t k = 0; k < w->nparts; k++) {
		wpart *pt = &w->parts[k];
		for (size_t i = pt->t0; i < pt->t1; i++)
			memcpy(pt->header + pt->hash_arr_off + 8 * (i - pt->t0), &w->ts[i].hash, 8);
		uint64_t dh = XXH64_digest(pt->dh);
		memcpy(pt->header + pt->data_hash_off, &dh, 8);
		/* meta hash: header with the three hash values zeroed */
		uint8_t *copy = malloc(pt->header_len);
		if (!copy)
			return qf_fail(err, QF_ENOMEM, "out of memory");
		memcpy(copy, pt->header, pt->header_len);
		memset(copy + pt->hash_arr_off, 0, 8 * (pt->t1 - pt->t0));
		memset(copy + pt->data_hash_off, 0, 8);
		memset(copy + pt->meta_hash_off, 0, 8);
		uint64_t mh = XXH64(copy, pt->header_len, 0);
		free(copy);
		memcpy(pt->header + pt->meta_hash_off, &mh, 8);
		if ((s = qf_out_pwrite(&pt->out, pt->header, pt->header_len, 0, err)))
			return s;
	}
	/* every part complete: only now do the names appear */
	for (size_t k = 0; k < w->nparts && !s; k++)
		s = qf_out_commit(&w->parts[k].out, err);
	w->begun = 0;
	return s;
}
