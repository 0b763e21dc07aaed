#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/checkpoint.h"
#include "formats/mapfile.h"
#include "formats/outfile.h"
#include "formats/sidefile.h"

cJSON *qf_json_parse(const uint8_t *data, size_t n, const char *path, qf_err *err, qf_status *st)
{
	const char *end = NULL;
	cJSON *j = n ? cJSON_ParseWithLengthOpts((const char *)data, n, &end, 0) : NULL;
	/* only whitespace may follow the value: anything else is a bad edit or two files run together */
	const char *stop = (const char *)data + n, *q = j && end ? end : stop;
	while (q < stop && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
		q++;
	if (!j) {
		*st = qf_fail(err, QF_EFORMAT, "%s: invalid JSON", path);
		return NULL;
	}
	if (q < stop) {
		cJSON_Delete(j);
		*st = qf_fail(err, QF_EFORMAT, "%s: trailing data after the JSON value at byte %zu", path,
			      (size_t)(q - (const char *)data));
		return NULL;
	}
	*st = QF_OK;
	return j;
}

cJSON *qf_json_load_max(const char *path, uint64_t max, qf_err *err, qf_status *st)
{
	qf_mapfile m;
	*st = qf_mapfile_open(&m, path, err);
	if (*st)
		return NULL;
	if (m.size > max) { /* cJSON costs ~64 bytes a value: a huge file is gigabytes of tree */
		qf_mapfile_close(&m);
		*st = qf_fail(err, QF_EFORMAT, "%s: %llu bytes, more than the %llu MiB a file of this kind may have", path,
			      (unsigned long long)m.size, (unsigned long long)(max >> 20));
		return NULL;
	}
	cJSON *j = qf_json_parse(m.data, (size_t)m.size, path, err, st);
	qf_mapfile_close(&m);
	return j;
}

cJSON *qf_json_load(const char *path, qf_err *err, qf_status *st)
{
	return qf_json_load_max(path, QF_JSON_MAX, err, st);
}

int qf_json_get_num(const cJSON *o, const char *key, double *v)
{
	const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
	if (!cJSON_IsNumber(j))
		return 0;
	*v = j->valuedouble;
	return 1;
}

int qf_json_get_int(const cJSON *o, const char *key, int64_t *v)
{
	double d;
	if (!qf_json_get_num(o, key, &d) || floor(d) != d || fabs(d) > 9007199254740992.0)
		return 0;
	*v = (int64_t)d;
	return 1;
}

int qf_json_get_bool(const cJSON *o, const char *key, int *v)
{
	const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
	if (!cJSON_IsBool(j))
		return 0;
	*v = cJSON_IsTrue(j);
	return 1;
}

const char *qf_json_get_str(const cJSON *o, const char *key)
{
	const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

int qf_path_is_tar(const char *path)
{
	static const char *const ext[] = { ".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz",
					   ".tar.bz2", NULL };
	for (int i = 0; ext[i]; i++)
		if (qf_str_ends_with(path, ext[i]))
			return 1;
	return 0;
}

char *qf_ckpt_file(const qf_ckpt *c, const char *name)
{
	size_t n = strlen(c->dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", c->dir, name);
	return p;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int safe_member(const char *p)
{
	if (p[0] == '/')
		return 0;
	const char *s = p;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return 0;
		if (!e)
			break;
		s = e + 1;
	}
	return 1;
}

/*
 * Tar staging.  Only what a checkpoint uses is staged: the metadata files below, the index,
 * and the shards the index names (every *.safetensors when there is no index).  Members are
 * flattened to their base names.  Sparse members are refused; a shard larger than the whole
 * index declares is refused; everything staged counts against max.  Without --max-stage-size
 * the bound is 8 times the tar's own size plus 1 GiB (real weights compress by far less than 8:
 * a member past that is a decompression bomb, or zeros), or the index's total_size + 1 GiB when
 * that is lower.  A shard seen before the index is decided in a second pass.
 */
#define STAGE_SLACK ((uint64_t)1 << 30)
#define STAGE_RATIO 8
static const char *const stage_meta[] = { "config.json", "tokenizer.json", "tokenizer_config.json",
					   "generation_config.json", "model.safetensors.index.json",
					   "quant_model_description.json", "quant_model_weights.safetensors.index.json", NULL };

typedef struct stager {
	const char *tar, *dir;
	uint64_t max, staged;
	const char *bound;          /* what set max when the user did not; NULL: --max-stage-size */
	int meta_only, have_index, has_total;
	uint64_t total;             /* index metadata.total_size */
	char **shards;              /* the index's shard names, sorted and unique */
	size_t nshards;
	char **later;               /* *.safetensors seen before the index (or with none) */
	size_t nlater;
	int nfiles;
	char *buf;
} stager;

static int is_meta(const char *b)
{
	for (int i = 0; stage_meta[i]; i++)
		if (strcmp(b, stage_meta[i]) == 0)
			return 1;
	return qf_side_kind_of(b) != QF_SIDE_NONE; /* what an output carries: merges.txt, chat_template.jinja, … */
}

static int is_shard(const char *b)
{
	return b[0] != '.' && qf_str_ends_with(b, ".safetensors");
}

static int index_names(const stager *g, const char *b)
{
	const char *const *k = &b;
	return bsearch(k, g->shards, g->nshards, sizeof *g->shards, cmp_cstr) != NULL;
}

/* The staged index: which shards it names, and how much it declares in all. */
static qf_status stage_read_index(stager *g, const char *path, qf_err *err)
{
	qf_status s;
	cJSON *j = qf_json_load(path, err, &s);
	if (!j)
		return s;
	const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
	double tot;
	g->has_total = qf_json_get_num(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "total_size", &tot) &&
		       tot >= 0 && tot < 9e18;
	g->total = g->has_total ? (uint64_t)tot : 0;
	size_t n = 0;
	for (const cJSON *e = cJSON_IsObject(wm) ? wm->child : NULL; e; e = e->next)
		n++;
	g->shards = calloc(n + 1, sizeof *g->shards);
	if (!g->shards) {
		cJSON_Delete(j);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	for (const cJSON *e = cJSON_IsObject(wm) ? wm->child : NULL; e; e = e->next)
		if (cJSON_IsString(e) && !(g->shards[g->nshards] = strdup(e->valuestring))) {
			cJSON_Delete(j);
			return qf_fail(err, QF_ENOMEM, "out of memory");
		} else if (cJSON_IsString(e))
			g->nshards++;
	cJSON_Delete(j);
	qsort(g->shards, g->nshards, sizeof *g->shards, cmp_cstr);
	size_t u = 0;
	for (size_t i = 0; i < g->nshards; i++) {
		if (u && strcmp(g->shards[u - 1], g->shards[i]) == 0)
			free(g->shards[i]);
		else
			g->shards[u++] = g->shards[i];
	}
	g->nshards = u;
	g->have_index = 1;
	if (g->bound && g->has_total && g->total < g->max - STAGE_SLACK) {
		g->max = g->total + STAGE_SLACK;
		g->bound = "the index's total_size + 1 GiB";
	}
	return QF_OK;
}

/* Copies the current member's data to dir/base, within the bounds. */
static qf_status stage_member(stager *g, struct archive *a, struct archive_entry *e, const char *name,
			      const char *base, qf_err *err)
{
	uint64_t size = archive_entry_size_is_set(e) && archive_entry_size(e) >= 0 ? (uint64_t)archive_entry_size(e) : 0;
	if (archive_entry_sparse_count(e) > 0)
		return qf_fail(err, QF_EFORMAT, "%s: member '%s' is a sparse file; sparse members are not staged", g->tar, name);
	if (is_meta(base) && size > QF_JSON_MAX)
		return qf_fail(err, QF_EFORMAT, "%s: member '%s' is %llu bytes, more than a %s may have", g->tar, name,
			       (unsigned long long)size, base);
	if (is_shard(base) && g->has_total && size > g->total + 100000008u)
		return qf_fail(err, QF_EFORMAT, "%s: member '%s' is %llu bytes, more than the index declares in all (%llu)",
			       g->tar, name, (unsigned long long)size, (unsigned long long)g->total);
	if ((size > g->max || g->staged > g->max - size) && g->bound)
		return qf_fail(err, QF_EFORMAT,
			       "%s: staging member '%s' (%llu bytes, %llu staged before it) would pass the staging bound of %llu bytes "
			       "(%s); --max-stage-size sets another",
			       g->tar, name, (unsigned long long)size, (unsigned long long)g->staged, (unsigned long long)g->max,
			       g->bound);
	if (size > g->max || g->staged > g->max - size)
		return qf_fail(err, QF_EFORMAT,
			       "%s: staging member '%s' (%llu bytes) would pass --max-stage-size (%llu bytes staged of %llu)",
			       g->tar, name, (unsigned long long)size, (unsigned long long)g->staged, (unsigned long long)g->max);
	size_t n = strlen(g->dir) + strlen(base) + 2;
	char *p = malloc(n);
	if (!p)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	snprintf(p, n, "%s/%s", g->dir, base);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	qf_status s = QF_OK;
	if (fd < 0) {
		s = qf_fail(err, errno == EEXIST ? QF_EFORMAT : QF_EIO, "%s: cannot stage member '%s': %s", g->tar, name,
			    errno == EEXIST ? "two members with the same file name" : strerror(errno));
		free(p);
		return s;
	}
	uint64_t got_all = 0;
	la_ssize_t got;
	while (!s && (got = archive_read_data(a, g->buf, 1 << 20)) > 0) {
		got_all += (uint64_t)got;
		if (got_all > size) { /* never more than the header said */
			s = qf_fail(err, QF_EFORMAT, "%s: member '%s' holds more than its %llu bytes", g->tar, name,
				    (unsigned long long)size);
			break;
		}
		for (const char *q = g->buf; got > 0;) {
			ssize_t w = write(fd, q, (size_t)got);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				int en = w < 0 ? errno : ENOSPC;
				s = qf_fail(err, QF_EIO, "%s: staging member '%s' failed: %s%s", g->tar, name, strerror(en),
					    en == ENOSPC || en == EFBIG || en == EDQUOT ? " (disk full or file too large)" : "");
				break;
			}
			q += w;
			got -= w;
		}
	}
	if (!s && got < 0)
		s = qf_fail(err, QF_EFORMAT, "%s: member '%s' is truncated or corrupt: %s", g->tar, name,
			    archive_error_string(a));
	if (close(fd) != 0 && !s)
		s = qf_fail(err, QF_EIO, "%s: staging member '%s' failed: %s", g->tar, name, strerror(errno));
	g->staged += got_all;
	g->nfiles++;
	if (!s && (strcmp(base, "model.safetensors.index.json") == 0 ||
		   strcmp(base, "quant_model_weights.safetensors.index.json") == 0))
		s = stage_read_index(g, p, err);
	free(p);
	return s;
}

/*
 * gzip through zlib, not libarchive's filter: libarchive does not check the
 * trailer's CRC, and reading stops at the tar end marker anyway.  This source
 * inflates every member (concatenated gzip too) and gz_drain reads it to the
 * end of the file, so a bad CRC or a truncated stream is an error.
 */
typedef struct gz_src {
	int fd, in_eof, ended, done;
	z_stream z;
	unsigned char in[1 << 16], out[1 << 18];
	char err[160];
} gz_src;

/* Next block of tar bytes: 0 at the end, −1 with g->err on a gzip error. */
static la_ssize_t gz_next(void *self, const void **buf)
{
	gz_src *g = self;
	g->z.next_out = g->out;
	g->z.avail_out = sizeof g->out;
	while (!g->done && g->z.avail_out == sizeof g->out) {
		if (g->z.avail_in == 0 && !g->in_eof) {
			ssize_t r = read(g->fd, g->in, sizeof g->in);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				snprintf(g->err, sizeof g->err, "read failed: %s", strerror(errno));
				return -1;
			}
			g->in_eof = r == 0;
			g->z.next_in = g->in;
			g->z.avail_in = (uInt)r;
		}
		if (g->z.avail_in == 0 && g->in_eof) {
			if (!g->ended) {
				snprintf(g->err, sizeof g->err, "gzip data is truncated");
				return -1;
			}
			g->done = 1;
			break;
		}
		if (g->ended) { /* another gzip member follows, or trailing bytes that are not one */
			if (g->z.avail_in >= 2 && (g->z.next_in[0] != 0x1f || g->z.next_in[1] != 0x8b)) {
				g->done = 1;
				break;
			}
			g->ended = 0;
		}
		int rc = inflate(&g->z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END) {
			g->ended = 1;
			inflateReset(&g->z);
		} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			snprintf(g->err, sizeof g->err, "corrupt gzip data: %s", g->z.msg ? g->z.msg : "inflate failed");
			return -1;
		}
	}
	*buf = g->out;
	return (la_ssize_t)(sizeof g->out - g->z.avail_out);
}


/*
 * Any other compression (zstd, xz, bzip2, ...) through a second libarchive reader in raw
 * format: its data is the decompressed stream, which the tar reader reads from, and which is
 * drained to the end after the tar's end marker.  Only then do the decoders check their final
 * checksums (zstd's content checksum, xz's block check and index, bzip2's stream CRC): the tar
 * reader alone stops at the end marker and leaves the rest of the record, and the checksums
 * after it, undecoded.
 */
typedef struct flt_src {
	struct archive *raw;
	char err[256];
} flt_src;

/* Next block of tar bytes: 0 at the end, −1 with f->err on a decoding error. */
static la_ssize_t flt_next(void *self, const void **buf)
{
	flt_src *f = self;
	size_t n = 0;
	la_int64_t off;
	int r;
	while ((r = archive_read_data_block(f->raw, buf, &n, &off)) == ARCHIVE_OK && n == 0)
		;
	if (r == ARCHIVE_EOF)
		return 0;
	if (r != ARCHIVE_OK) {
		snprintf(f->err, sizeof f->err, "corrupt %s data: %s", archive_filter_name(f->raw, 0),
			 archive_error_string(f->raw) ? archive_error_string(f->raw) : "decoding failed");
		return -1;
	}
	return (la_ssize_t)n;
}

/* A decompressed source the tar reader reads from: gz_next or flt_next, and its reason on error. */
typedef struct tar_src {
	la_ssize_t (*next)(void *self, const void **buf);
	void *self;
	const char *err;
} tar_src;

static la_ssize_t src_read(struct archive *a, void *ud, const void **buf)
{
	tar_src *t = ud;
	la_ssize_t n = t->next(t->self, buf);
	if (n < 0)
		archive_set_error(a, EIO, "%s", t->err);
	return n;
}

/* Reads the rest of the stream, past the tar end marker: its checksums must hold. */
static qf_status src_drain(tar_src *t, const char *tar, qf_err *err)
{
	const void *b;
	la_ssize_t n;
	while ((n = t->next(t->self, &b)) > 0)
		;
	return n < 0 ? qf_fail(err, QF_EFORMAT, "%s: %s", tar, t->err) : QF_OK;
}

/* The decompressing reader for a compressed tar; *plain = 1 (and NULL) when it is not compressed. */
static qf_status flt_open(const char *tar, flt_src **out, int *plain, qf_err *err)
{
	flt_src *f = calloc(1, sizeof *f);
	struct archive_entry *e;
	*out = NULL;
	*plain = 0;
	if (!f || !(f->raw = archive_read_new())) {
		free(f);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	archive_read_support_filter_all(f->raw);
	archive_read_support_format_raw(f->raw);
	qf_status s = QF_OK;
	if (archive_read_open_filename(f->raw, tar, 1 << 20) != ARCHIVE_OK)
		s = qf_fail(err, QF_EFORMAT, "%s: cannot read archive: %s", tar, archive_error_string(f->raw));
	else if (archive_filter_code(f->raw, 0) == ARCHIVE_FILTER_NONE)
		*plain = 1;
	else if (archive_read_next_header(f->raw, &e) != ARCHIVE_OK)
		s = qf_fail(err, QF_EFORMAT, "%s: corrupt %s data: %s", tar, archive_filter_name(f->raw, 0),
			    archive_error_string(f->raw));
	if (s || *plain) {
		archive_read_free(f->raw);
		free(f);
		return s;
	}
	*out = f;
	return QF_OK;
}

/* One pass over the archive; pass 2 stages only the shards pass 1 left for later. */
static qf_status stage_pass(stager *g, int pass, qf_err *err)
{
	struct archive *a = archive_read_new();
	qf_status s = QF_OK;
	gz_src *gz = NULL;
	flt_src *flt = NULL;
	int plain = 0;
	if (!a)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	int fd = open(g->tar, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	unsigned char magic[2] = { 0, 0 };
	if (fd >= 0 && pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
		if (!(gz = calloc(1, sizeof *gz)) || inflateInit2(&gz->z, 15 + 16) != Z_OK) {
			free(gz);
			close(fd);
			archive_read_free(a);
			return qf_fail(err, QF_ENOMEM, "out of memory");
		}
		gz->fd = fd;
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	if (!gz && (s = flt_open(g->tar, &flt, &plain, err)))
		goto out;
	tar_src src = gz ? (tar_src){ gz_next, gz, gz->err } : flt ? (tar_src){ flt_next, flt, flt->err } : (tar_src){ 0 };
	/* a plain tar is read from the file, so that libarchive seeks past the members not staged */
	int opened = src.next ? archive_read_open(a, &src, NULL, src_read, NULL)
			      : archive_read_open_filename(a, g->tar, 1 << 20);
	if (opened != ARCHIVE_OK) {
		s = qf_fail(err, QF_EFORMAT, "%s: cannot read archive: %s", g->tar, archive_error_string(a));
		goto out;
	}
	struct archive_entry *e;
	int r;
	while (!s && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		if (!name || archive_entry_filetype(e) != AE_IFREG)
			continue;
		if (!safe_member(name)) {
			s = qf_fail(err, QF_EFORMAT, "%s: unsafe member path '%s'", g->tar, name);
			break;
		}
		const char *base = strrchr(name, '/');
		base = base ? base + 1 : name;
		if (!*base || base[0] == '.')
			continue;
		int take = 0;
		if (pass == 1 && is_meta(base))
			take = 1;
		else if (is_shard(base) && !g->meta_only) {
			if (pass == 1 && !g->have_index) { /* decided once the whole archive was seen */
				char **l = realloc(g->later, (g->nlater + 1) * sizeof *l);
				if (!l || !(l[g->nlater] = strdup(base))) {
					g->later = l ? l : g->later;
					s = qf_fail(err, QF_ENOMEM, "out of memory");
					break;
				}
				g->later = l;
				g->nlater++;
			} else if (pass == 1)
				take = index_names(g, base);
			else {
				const char *const *k = &base;
				take = bsearch(k, g->later, g->nlater, sizeof *g->later, cmp_cstr) != NULL &&
				       (!g->have_index || index_names(g, base));
			}
		}
		if (take)
			s = stage_member(g, a, e, name, base, err);
	}
	if (!s && r != ARCHIVE_EOF)
		s = qf_fail(err, QF_EFORMAT, "%s: corrupt archive: %s", g->tar, archive_error_string(a));
	if (!s && src.next)
		s = src_drain(&src, g->tar, err);
	if (s && src.next && src.err[0] && err) { /* the decoder's reason (bad checksum, truncation), not libarchive's echo */
		err->msg[0] = 0;
		qf_fail(err, QF_EFORMAT, "%s: %s", g->tar, src.err);
	}
out:
	archive_read_free(a);
	if (gz) {
		inflateEnd(&gz->z);
		close(gz->fd);
		free(gz);
	}
	if (flt) {
		archive_read_free(flt->raw);
		free(flt);
	}
	return s;
}

static qf_status stage_tar(const char *tar, const char *dir, uint64_t max, int meta_only, qf_err *err)
{
	stager g = { .tar = tar, .dir = dir, .max = max, .meta_only = meta_only };
	qf_status s = QF_OK;
	struct stat sb;
	if (!max) {
		uint64_t tsz = stat(tar, &sb) == 0 && sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
		g.max = tsz > (UINT64_MAX - STAGE_SLACK) / STAGE_RATIO ? UINT64_MAX : tsz * STAGE_RATIO + STAGE_SLACK;
		g.bound = "8 times the tar's size + 1 GiB";
	}
	if (!(g.buf = malloc(1 << 20)))
		return qf_fail(err, QF_ENOMEM, "out of memory");
	s = stage_pass(&g, 1, err);
	if (!s && g.nlater) {
		qsort(g.later, g.nlater, sizeof *g.later, cmp_cstr);
		s = stage_pass(&g, 2, err);
	}
	if (!s && g.nfiles == 0)
		s = qf_fail(err, QF_EFORMAT, "%s: archive holds no checkpoint files", tar);
	for (size_t i = 0; i < g.nshards; i++)
		free(g.shards[i]);
	for (size_t i = 0; i < g.nlater; i++)
		free(g.later[i]);
	free(g.shards);
	free(g.later);
	free(g.buf);
	return s;
}

void qf_ckpt_close(qf_ckpt *c)
{
	if (!c)
		return;
	qf_st_close(c->st);
	qf_msdesc_free(c->ms);
	cJSON_Delete(c->config);
	cJSON_Delete(c->tok_config);
	qf_temp_remove(&c->stage); /* the staging folder, if any (c->staged is its name) */
	free(c->dir);
	free(c->path);
	free(c);
}

void qf_ckpt_name_members(const qf_ckpt *c, qf_err *err)
{
	if (!c || !c->staged || !err || !err->msg[0])
		return;
	char out[sizeof err->msg * 2];
	size_t n = 0, sl = strlen(c->staged);
	for (const char *p = err->msg; *p && n + 1 < sizeof out;) {
		if (strncmp(p, c->staged, sl) == 0) {
			int k = snprintf(out + n, sizeof out - n, p[sl] == '/' ? "%s: member " : "%s", c->path);
			n += k > 0 ? (size_t)k : 0;
			n = n < sizeof out ? n : sizeof out - 1;
			p += sl + (p[sl] == '/');
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = 0;
	err->msg[0] = 0;
	qf_fail(err, QF_OK, "%s", out);
}

qf_status qf_ckpt_open(const char *path, qf_ckpt **out, qf_err *err)
{
	return qf_ckpt_open_opts(path, NULL, out, err);
}

qf_status qf_ckpt_open_opts(const char *path, const qf_ckpt_opts *o, qf_ckpt **out, qf_err *err)
{
	struct stat sb;
	qf_status s = QF_OK;
	qf_ckpt *c = calloc(1, sizeof *c);
	if (!c)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	c->stage.fd = -1;
	c->path = strdup(path);
	if ((s = qf_input_check(path, err))) /* a FIFO named *.tar would block libarchive's open */
		goto fail;
	if (stat(path, &sb) != 0) {
		s = qf_fail(err, QF_EFORMAT, "%s: %s", path, strerror(errno));
		goto fail;
	}
	int is_dir = S_ISDIR(sb.st_mode);
	if (is_dir) {
		c->dir = strdup(path);
	} else if (qf_path_is_tar(path)) {
		/* a unique folder, registered so a signal handler removes it; stale ones of killed runs go */
		const char *tmp = getenv("TMPDIR");
		char stem[4096];
		snprintf(stem, sizeof stem, "%s/qforge-stage-", tmp && *tmp ? tmp : "/tmp");
		qf_temp_sweep(stem);
		if ((s = qf_temp_create(stem, 1, &c->stage, err)))
			goto fail;
		c->staged = c->stage.path;
		if (!(c->dir = strdup(c->staged))) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto fail;
		}
		if ((s = stage_tar(path, c->staged, o ? o->max_stage : 0, o && o->meta_only, err)))
			goto fail;
	} else {
		/* a single .safetensors file: config beside it, if any */
		char *d = strdup(path);
		char *sl = d ? strrchr(d, '/') : NULL;
		if (sl)
			*sl = 0;
		c->dir = sl ? d : (free(d), strdup("."));
	}
	if (!c->dir || !c->path) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto fail;
	}
	char *cfg = qf_ckpt_file(c, "config.json");
	if (cfg && stat(cfg, &sb) == 0) {
		c->config = qf_json_load_max(cfg, QF_CONFIG_MAX, err, &s);
		if (s) {
			free(cfg);
			goto fail;
		}
		if (!cJSON_IsObject(c->config)) {
			s = qf_fail(err, QF_EFORMAT, "%s: not a JSON object", cfg);
			free(cfg);
			goto fail;
		}
	}
	free(cfg);
	char *tc = qf_ckpt_file(c, "tokenizer_config.json");
	if (tc && stat(tc, &sb) == 0) {
		c->tok_config = qf_json_load_max(tc, QF_TOKCONFIG_MAX, err, &s);
		if (s) {
			free(tc);
			goto fail;
		}
	}
	free(tc);
	/* msModelSlim: the description types every saved tensor (formats/msdesc.h) */
	char *md = qf_ckpt_file(c, "quant_model_description.json");
	if (md && stat(md, &sb) == 0 && (s = qf_msdesc_load(md, &c->ms, err))) {
		free(md);
		goto fail;
	}
	free(md);
	if (!(o && o->meta_only) && (s = qf_st_open(is_dir || c->staged ? c->dir : path, &c->st, err)))
		goto fail;
	if (c->ms && c->st && (s = qf_msdesc_check(c->ms, c->st, err)))
		goto fail;
	*out = c;
	return QF_OK;
fail:
	qf_ckpt_name_members(c, err); /* the tar's member, not the staging folder that is about to go */
	qf_ckpt_close(c);
	return s;
}
