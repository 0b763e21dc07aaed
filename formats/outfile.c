#include "config.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/outfile.h"

void qf_out_cleanup_all(void)
{
	qf_cleanup_run();
}

static const char *kind_name(mode_t m)
{
	return S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : S_ISFIFO(m) ? "a FIFO" :
	       S_ISSOCK(m) ? "a socket" : S_ISLNK(m) ? "a symbolic link" : "not a regular file";
}

/* Reads a whole small regular file (at most max bytes) at dfd/name; NULL on any failure. */
static char *read_small(int dfd, const char *name, size_t max, size_t *len)
{
	int fd = openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	char *b = NULL;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= max &&
	    (b = malloc((size_t)st.st_size + 1)) != NULL) {
		size_t n = 0;
		while (n < (size_t)st.st_size) {
			ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		b[n] = 0;
		*len = n;
	}
	close(fd);
	return b;
}

/* 1 if the safetensors file dfd/name has a "qforge.*" key in its __metadata__. */
static int st_marked(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	uint8_t h8[8];
	int ok = 0;
	if (fd < 0)
		return 0;
	if (pread(fd, h8, 8, 0) == 8) {
		uint64_t n = 0;
		for (int i = 7; i >= 0; i--)
			n = n << 8 | h8[i];
		char *hdr = n >= 2 && n <= 100000000u ? malloc((size_t)n) : NULL;
		if (hdr && pread(fd, hdr, (size_t)n, 8) == (ssize_t)n) {
			cJSON *j = cJSON_ParseWithLength(hdr, (size_t)n);
			const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "__metadata__");
			for (const cJSON *k = cJSON_IsObject(md) ? md->child : NULL; k && !ok; k = k->next)
				ok = k->string && strncmp(k->string, QF_OUTPUT_ST_MARK, strlen(QF_OUTPUT_ST_MARK)) == 0;
			cJSON_Delete(j);
		}
		free(hdr);
	}
	close(fd);
	return ok;
}

static int ends_with_any(const char *s, const char *const *suf)
{
	for (int i = 0; suf[i]; i++)
		if (qf_str_ends_with(s, suf[i]))
			return 1;
	return 0;
}

int qf_output_is_ours(const char *path, qf_err *why)
{
	static const char *const side[] = { ".json", ".jinja", ".model", ".txt", ".tiktoken", NULL };
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		qf_fail(why, QF_EUSAGE, "not a folder");
		return 0;
	}
	size_t mlen = 0;
	char *mtext = read_small(dfd, "manifest.json", 1u << 30, &mlen);
	cJSON *man = mtext ? cJSON_ParseWithLength(mtext, mlen) : NULL;
	free(mtext);
	const char *fmt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(man, "format"));
	int bundle = fmt && strcmp(fmt, "qforge-packed") == 0;
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(man, "files");
	DIR *d = fdopendir(dup(dfd));
	int ours = d != NULL, shards = 0;
	struct dirent *e;
	while (ours && (e = readdir(d)) != NULL) {
		const char *n = e->d_name;
		struct stat st;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
			qf_fail(why, QF_EUSAGE, "holds '%s', %s", n, S_ISDIR(st.st_mode) ? "a folder" : kind_name(st.st_mode));
			ours = 0;
		} else if (bundle) {
			int listed = strcmp(n, "manifest.json") == 0 || strcmp(n, "tensors.bin") == 0;
			for (const cJSON *f = cJSON_IsArray(files) ? files->child : NULL; f && !listed; f = f->next) {
				const char *fn = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
				listed = fn && strcmp(fn, n) == 0;
			}
			if (!listed) {
				qf_fail(why, QF_EUSAGE, "holds '%s', which its manifest does not list", n);
				ours = 0;
			}
		} else if (qf_str_ends_with(n, ".safetensors")) {
			if (!st_marked(dfd, n)) {
				qf_fail(why, QF_EUSAGE, "'%s' has no %s* key in its __metadata__", n, QF_OUTPUT_ST_MARK);
				ours = 0;
			}
			shards++;
		} else if (!ends_with_any(n, side)) {
			qf_fail(why, QF_EUSAGE, "holds '%s', which qforge does not write", n);
			ours = 0;
		}
	}
	if (d)
		closedir(d);
	close(dfd);
	cJSON_Delete(man);
	if (ours && !bundle && !shards) {
		qf_fail(why, QF_EUSAGE, "no qforge manifest.json and no qforge-marked *.safetensors");
		ours = 0;
	}
	return ours;
}

qf_status qf_output_check(const char *path, int force, int is_dir, qf_err *err)
{
	struct stat st;
	if (!path || !*path)
		return qf_fail(err, QF_EUSAGE, "the output path is empty");
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? QF_OK : qf_fail(err, QF_EIO, "%s: %s", path, strerror(errno));
	if (!force)
		return qf_fail(err, QF_EUSAGE, "%s: output exists (use --force to overwrite)", path);
	if (S_ISREG(st.st_mode))
		return QF_OK;
	if (S_ISLNK(st.st_mode))
		return qf_fail(err, QF_EUSAGE, "%s: is a symbolic link; --force does not replace links (remove it, or name its target)",
			       path);
	if (!S_ISDIR(st.st_mode))
		return qf_fail(err, QF_EUSAGE, "%s: %s; --force replaces only regular files and folders qforge wrote",
			       path, kind_name(st.st_mode));
	if (!is_dir)
		return qf_fail(err, QF_EUSAGE, "%s: is a folder and this output is a file; remove it or choose another name",
			       path);
	qf_err why = { { 0 } };
	if (!qf_output_is_ours(path, &why))
		return qf_fail(err, QF_EUSAGE, "%s: a folder qforge did not write (%s); --force replaces only regular files and folders qforge wrote",
			       path, why.msg);
	return QF_OK;
}

static qf_status out_init(qf_out *o, const char *path, int force, int is_dir, qf_err *err)
{
	memset(o, 0, sizeof *o);
	o->fd = -1;
	qf_status s = qf_output_check(path, force, is_dir, err);
	if (s)
		return s;
	size_t n = strlen(path) + sizeof QF_OUTPUT_TMP_TAG;
	char *stem = malloc(n);
	if (!stem || !(o->path = strdup(path))) {
		free(stem);
		return qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
	}
	snprintf(stem, n, "%s%s", path, QF_OUTPUT_TMP_TAG);
	qf_temp_sweep(stem); /* what a killed run left for this output */
	qf_temp t;
	s = qf_temp_create(stem, is_dir, &t, err);
	free(stem);
	if (s) {
		free(o->path);
		memset(o, 0, sizeof *o);
		o->fd = -1;
		return s;
	}
	o->tmp = t.path;
	o->fd = is_dir ? -1 : t.fd;
	o->id = t.id;
	o->is_dir = is_dir;
	o->force = force;
	return QF_OK;
}

qf_status qf_out_open(qf_out *o, const char *path, int force, qf_err *err)
{
	return out_init(o, path, force, 0, err);
}

qf_status qf_outdir_open(qf_out *o, const char *path, int force, qf_err *err)
{
	return out_init(o, path, force, 1, err);
}

static qf_status write_error(qf_out *o, int e, qf_err *err)
{
	if (e == ENOSPC || e == EFBIG || e == EDQUOT)
		return qf_fail(err, QF_EIO, "%s: disk full or file too large at byte %llu: %s",
			       o->path, (unsigned long long)o->pos, strerror(e));
	return qf_fail(err, QF_EIO, "%s: write failed at byte %llu: %s", o->path,
		       (unsigned long long)o->pos, strerror(e));
}

qf_status qf_out_write(qf_out *o, const void *buf, size_t n, qf_err *err)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(o->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return write_error(o, errno, err);
		}
		if (w == 0)
			return write_error(o, ENOSPC, err);
		p += w;
		n -= (size_t)w;
		o->pos += (uint64_t)w;
	}
	return QF_OK;
}

qf_status qf_out_pwrite(qf_out *o, const void *buf, size_t n, uint64_t off, qf_err *err)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = pwrite(o->fd, p, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return write_error(o, errno, err);
		}
		if (w == 0)
			return write_error(o, ENOSPC, err);
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return QF_OK;
}

int qf_open_direct(const char *path)
{
	if (getenv("QF_NO_DIRECT_IO")) /* the buffered path, for tests and comparisons */
		return -1;
	return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

static int pwrite_loop(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : ENOSPC;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int qf_pwrite_full(int fd, int *dfd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;
	const uint64_t a = QF_DIO_ALIGN;
	if (*dfd >= 0 && ((uintptr_t)p - off) % a == 0) {
		size_t head = (size_t)((a - off % a) % a);
		size_t mid = head < n ? (n - head) / a * a : 0;
		if (mid) {
			int e = head ? pwrite_loop(fd, p, head, off) : 0;
			if (e)
				return e;
			p += head;
			off += head;
			n -= head;
			/* a short direct write leaves an aligned remainder: loop */
			while (mid > 0) {
				ssize_t w = pwrite(*dfd, p, mid, (off_t)off);
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0 && errno == EINVAL) { /* direct I/O refused here: buffered from now on */
					close(*dfd);
					*dfd = -1;
					break;
				}
				if (w <= 0)
					return w < 0 ? errno : ENOSPC;
				p += w;
				off += (uint64_t)w;
				n -= (size_t)w;
				mid -= (size_t)w;
			}
		}
	}
	return pwrite_loop(fd, p, n, off);
}

qf_status qf_out_pad(qf_out *o, uint64_t align, qf_err *err)
{
	static const char zeros[4096];
	uint64_t pad = (align - o->pos % align) % align;
	while (pad > 0) {
		size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
		qf_status s = qf_out_write(o, zeros, k, err);
		if (s)
			return s;
		pad -= k;
	}
	return QF_OK;
}

qf_status qf_out_reserve(qf_out *o, uint64_t size, qf_err *err)
{
	/* one allocation up front: no per-page block allocation while writing, and a full disk shows now */
	int r = fallocate(o->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size);
	if (r == 0 || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)
		return QF_OK;
	return write_error(o, errno, err);
}

/* Moves tmp to path: no replacement without force; with force an existing folder is swapped out, then removed. */
static qf_status place(qf_out *o, qf_err *err)
{
	struct stat st;
	int exists = lstat(o->path, &st) == 0;
	if (!exists || !o->force) {
		if (renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->path, RENAME_NOREPLACE) == 0)
			return QF_OK;
		if (errno == EEXIST)
			return qf_fail(err, QF_EUSAGE, "%s: output exists (use --force to overwrite)", o->path);
		if (errno != EINVAL && errno != ENOSYS)
			return qf_fail(err, QF_EIO, "%s: cannot rename from %s: %s", o->path, o->tmp, strerror(errno));
		/* no RENAME_NOREPLACE here: a hard link fails the same way when the name is taken (files) */
		if (!o->is_dir) {
			if (link(o->tmp, o->path) != 0)
				return qf_fail(err, errno == EEXIST ? QF_EUSAGE : QF_EIO, "%s: cannot rename from %s: %s", o->path,
					       o->tmp, errno == EEXIST ? "output exists (use --force to overwrite)" : strerror(errno));
			unlink(o->tmp);
			return QF_OK;
		}
	}
	if (!o->is_dir || !exists || !S_ISDIR(st.st_mode)) {
		if (rename(o->tmp, o->path) != 0)
			return qf_fail(err, QF_EIO, "%s: cannot rename from %s: %s", o->path, o->tmp, strerror(errno));
		return QF_OK;
	}
	/* a qforge folder: swap, then the old one (now at tmp, still registered) goes */
	if (renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->path, RENAME_EXCHANGE) == 0) {
		qf_rmtree(o->tmp);
		return QF_OK;
	}
	size_t n = strlen(o->tmp) + 8;
	char *old = malloc(n);
	if (!old)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	snprintf(old, n, "%s-old", o->tmp);
	qf_status s = QF_OK;
	if (rename(o->path, old) != 0)
		s = qf_fail(err, QF_EIO, "%s: cannot move the old output aside: %s", o->path, strerror(errno));
	else if (rename(o->tmp, o->path) != 0) {
		s = qf_fail(err, QF_EIO, "%s: cannot rename from %s: %s", o->path, o->tmp, strerror(errno));
		rename(old, o->path);
	} else
		qf_rmtree(old);
	free(old);
	return s;
}

qf_status qf_out_commit(qf_out *o, qf_err *err)
{
	qf_status s = QF_OK;
	if (o->fd >= 0) {
		if (close(o->fd) != 0)
			s = write_error(o, errno, err);
		o->fd = -1;
	}
	if (!s)
		s = qf_guard_check(err); /* a source shrank under us: its bytes are not what we wrote */
	if (!s && o->force)
		s = qf_output_check(o->path, 1, o->is_dir, err); /* what is there now, just before replacing it */
	if (!s)
		s = place(o, err);
	if (s != QF_OK) {
		qf_out_abort(o);
		return s;
	}
	qf_temp t = { .path = o->tmp, .fd = -1, .id = o->id };
	qf_temp_release(&t);
	free(o->path);
	memset(o, 0, sizeof *o);
	o->fd = -1;
	return QF_OK;
}

void qf_out_abort(qf_out *o)
{
	if (!o || !o->tmp)
		return;
	qf_temp t = { .path = o->tmp, .fd = o->fd, .id = o->id };
	qf_temp_remove(&t);
	free(o->path);
	memset(o, 0, sizeof *o);
	o->fd = -1;
}
