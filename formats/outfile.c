#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/outfile.h"

#define MAX_LIVE 256 /* split GGUF sets keep every part's temporary until the last is complete */
/* Fixed slots so the signal handler never touches the heap allocator. */
static char live_tmp[MAX_LIVE][4096];
static volatile sig_atomic_t live_used[MAX_LIVE];
static volatile sig_atomic_t live_isdir[MAX_LIVE];

static void live_add(const char *tmp, int is_dir)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (!live_used[i] && strlen(tmp) < sizeof live_tmp[i]) {
			strcpy(live_tmp[i], tmp);
			live_isdir[i] = is_dir;
			live_used[i] = 1;
			return;
		}
	}
}

static void live_del(const char *tmp)
{
	for (int i = 0; i < MAX_LIVE; i++)
		if (live_used[i] && strcmp(live_tmp[i], tmp) == 0)
			live_used[i] = 0;
}

static void rm_flat_dir(const char *dir)
{
	/* async-signal-safe enough: bundles are one level deep */
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		char p[4096 + 256];
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

void qf_out_cleanup_all(void)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (!live_used[i])
			continue;
		if (live_isdir[i])
			rm_flat_dir(live_tmp[i]);
		else
			unlink(live_tmp[i]);
		live_used[i] = 0;
	}
}

void qf_rmtree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (d) {
			struct dirent *e;
			while ((e = readdir(d)) != NULL) {
				if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
					continue;
				size_t n = strlen(path) + strlen(e->d_name) + 2;
				char *p = malloc(n);
				if (!p)
					continue;
				snprintf(p, n, "%s/%s", path, e->d_name);
				qf_rmtree(p);
				free(p);
			}
			closedir(d);
		}
		rmdir(path);
	} else {
		unlink(path);
	}
}

static qf_status out_init(qf_out *o, const char *path, int force, qf_err *err)
{
	struct stat st;
	memset(o, 0, sizeof *o);
	o->fd = -1;
	if (!force && stat(path, &st) == 0)
		return qf_fail(err, QF_EUSAGE, "%s: output exists (use --force to overwrite)", path);
	size_t n = strlen(path) + 5;
	o->path = strdup(path);
	o->tmp = malloc(n);
	if (!o->path || !o->tmp) {
		free(o->path);
		free(o->tmp);
		return qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
	}
	snprintf(o->tmp, n, "%s.tmp", path);
	return QF_OK;
}

qf_status qf_out_open(qf_out *o, const char *path, int force, qf_err *err)
{
	qf_status s = out_init(o, path, force, err);
	if (s)
		return s;
	o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (o->fd < 0) {
		s = qf_fail(err, QF_EIO, "%s: cannot create: %s", o->tmp, strerror(errno));
		free(o->path);
		free(o->tmp);
		memset(o, 0, sizeof *o);
		o->fd = -1;
		return s;
	}
	live_add(o->tmp, 0);
	return QF_OK;
}

qf_status qf_outdir_open(qf_out *o, const char *path, int force, qf_err *err)
{
	qf_status s = out_init(o, path, force, err);
	if (s)
		return s;
	qf_rmtree(o->tmp);
	if (mkdir(o->tmp, 0755) != 0) {
		s = qf_fail(err, QF_EIO, "%s: cannot create directory: %s", o->tmp, strerror(errno));
		free(o->path);
		free(o->tmp);
		memset(o, 0, sizeof *o);
		o->fd = -1;
		return s;
	}
	o->is_dir = 1;
	live_add(o->tmp, 1);
	return QF_OK;
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

qf_status qf_out_commit(qf_out *o, qf_err *err)
{
	qf_status s = QF_OK;
	if (o->fd >= 0) {
		if (close(o->fd) != 0)
			s = write_error(o, errno, err);
		o->fd = -1;
	}
	if (s == QF_OK) {
		if (o->is_dir)
			qf_rmtree(o->path);
		if (rename(o->tmp, o->path) != 0)
			s = qf_fail(err, QF_EIO, "%s: cannot rename from %s: %s", o->path, o->tmp,
				    strerror(errno));
	}
	if (s != QF_OK) {
		qf_out_abort(o);
		return s;
	}
	live_del(o->tmp);
	free(o->path);
	free(o->tmp);
	memset(o, 0, sizeof *o);
	o->fd = -1;
	return QF_OK;
}

void qf_out_abort(qf_out *o)
{
	if (!o || !o->tmp)
		return;
	if (o->fd >= 0)
		close(o->fd);
	if (o->is_dir)
		qf_rmtree(o->tmp);
	else
		unlink(o->tmp);
	live_del(o->tmp);
	free(o->path);
	free(o->tmp);
	memset(o, 0, sizeof *o);
	o->fd = -1;
}
