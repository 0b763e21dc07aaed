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

#include "formats/checkpoint.h"
#include "formats/mapfile.h"
#include "formats/outfile.h"

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
	const char *end = NULL;
	cJSON *j = m.size ? cJSON_ParseWithLengthOpts((const char *)m.data, (size_t)m.size, &end, 0)
			  : NULL;
	qf_mapfile_close(&m);
	if (!j) {
		*st = qf_fail(err, QF_EFORMAT, "%s: invalid JSON", path);
		return NULL;
	}
	*st = QF_OK;
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

/* Extracts regular files of a tar into dir (flattened to their base names). */
static qf_status stage_tar(const char *tar, const char *dir, qf_err *err)
{
	struct archive *a = archive_read_new();
	qf_status s = QF_OK;
	if (!a)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_filename(a, tar, 1 << 20) != ARCHIVE_OK) {
		s = qf_fail(err, QF_EFORMAT, "%s: cannot read archive: %s", tar, archive_error_string(a));
		goto out;
	}
	struct archive_entry *e;
	int r, nfiles = 0;
	char *buf = malloc(1 << 20);
	if (!buf) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		if (!name || archive_entry_filetype(e) != AE_IFREG)
			continue;
		if (!safe_member(name)) {
			s = qf_fail(err, QF_EFORMAT, "%s: unsafe member path '%s'", tar, name);
			break;
		}
		const char *base = strrchr(name, '/');
		base = base ? base + 1 : name;
		if (!*base || base[0] == '.')
			continue;
		size_t n = strlen(dir) + strlen(base) + 2;
		char *p = malloc(n);
		if (!p) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			break;
		}
		snprintf(p, n, "%s/%s", dir, base);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			s = qf_fail(err, errno == EEXIST ? QF_EFORMAT : QF_EIO,
				    "%s: cannot stage member '%s': %s", tar, name,
				    errno == EEXIST ? "two members with the same file name" : strerror(errno));
			free(p);
			break;
		}
		la_ssize_t got;
		while ((got = archive_read_data(a, buf, 1 << 20)) > 0) {
			const char *q = buf;
			while (got > 0) {
				ssize_t w = write(fd, q, (size_t)got);
				if (w <= 0) {
					s = qf_fail(err, QF_EIO, "%s: staging '%s' failed: %s", tar, name,
						    strerror(w < 0 ? errno : ENOSPC));
					break;
				}
				q += w;
				got -= w;
			}
			if (s)
				break;
		}
		if (!s && got < 0)
			s = qf_fail(err, QF_EFORMAT, "%s: member '%s' is truncated or corrupt: %s", tar,
				    name, archive_error_string(a));
		close(fd);
		free(p);
		if (s)
			break;
		nfiles++;
	}
	free(buf);
	if (!s && r != ARCHIVE_EOF && r != ARCHIVE_OK)
		s = qf_fail(err, QF_EFORMAT, "%s: corrupt archive: %s", tar, archive_error_string(a));
	if (!s && nfiles == 0)
		s = qf_fail(err, QF_EFORMAT, "%s: archive holds no files", tar);
out:
	archive_read_free(a);
	return s;
}

void qf_ckpt_close(qf_ckpt *c)
{
	if (!c)
		return;
	qf_st_close(c->st);
	cJSON_Delete(c->config);
	cJSON_Delete(c->tok_config);
	qf_temp_remove(&c->stage); /* the staging folder, if any (c->staged is its name) */
	free(c->dir);
	free(c->path);
	free(c);
}

qf_status qf_ckpt_open(const char *path, qf_ckpt **out, qf_err *err)
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
		if ((s = stage_tar(path, c->staged, err)))
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
	s = qf_st_open(is_dir || c->staged ? c->dir : path, &c->st, err);
	if (s)
		goto fail;
	*out = c;
	return QF_OK;
fail:
	qf_ckpt_close(c);
	return s;
}
