/* packed_write.c — the bundle writer: tensors.bin, the manifest and member files. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/packed_priv.h"

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

qf_status pk_pwrite_all(int fd, const char *what, const void *buf, size_t n, uint64_t off, qf_err *err)
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
	qf_status s = pk_pwrite_all(w->fd, w->path, buf, n, e->off + e->pos, err);
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
	cJSON_AddStringToObject(m, "manifest_xxh64", "0000000000000000"); /* filled in once the text is final */
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
	s = pk_pwrite_all(fd, dst, m.data, (size_t)m.size, 0, err);
	if (close(fd) != 0 && !s)
		s = qf_fail(err, QF_EIO, "%s: %s", dst, strerror(errno));
	qf_mapfile_close(&m);
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
	/* the manifest's own hash: over these exact bytes, its 16 digits read as '0' (they are, until now) */
	static const char ph[] = "\"manifest_xxh64\":\t\"0000000000000000\"";
	char *at = memmem(buf, padded, ph, sizeof ph - 1), hx[17];
	if (!at) {
		free(buf);
		return qf_fail(err, QF_EFORMAT, "bundle writer: manifest_xxh64 placeholder not found");
	}
	snprintf(hx, sizeof hx, "%016llx", (unsigned long long)XXH64(buf, padded, 0));
	memcpy(at + sizeof ph - 1 - 17, hx, 16);
	snprintf(p, sizeof p, "%s/manifest.json", w->dir.tmp);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	s = fd < 0 ? qf_fail(err, QF_EIO, "%s: cannot create: %s", p, strerror(errno))
		   : pk_pwrite_all(fd, p, buf, padded, 0, err);
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
			    : pk_pwrite_all(ffd, p, w->files[i].data, w->files[i].len, 0, err);
		if (ffd >= 0 && close(ffd) != 0 && !s)
			s = qf_fail(err, QF_EIO, "%s: %s", p, strerror(errno));
	}
	if (s)
		return s;
	if (w->as_tar) {
		s = pk_build_tar(w, err);
		qf_out_abort(&w->dir); /* the staging folder */
		return s;
	}
	return qf_out_commit(&w->dir, err);
}
