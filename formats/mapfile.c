#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/mapfile.h"
#include "formats/tensor.h"
#include "util/cleanup.h"

qf_status qf_mapfile_open(qf_mapfile *m, const char *path, qf_err *err)
{
	struct stat st;
	memset(m, 0, sizeof *m);
	memset(&st, 0, sizeof st);
	/* O_NONBLOCK: a FIFO here must not hang open(); it is refused just below */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return qf_fail(err, errno == ENOENT ? QF_EFORMAT : QF_EIO, "%s: cannot open: %s",
			       path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		int fifo = S_ISFIFO(st.st_mode), dir = S_ISDIR(st.st_mode);
		close(fd);
		return qf_fail(err, QF_EFORMAT, "%s: not a regular file%s", path,
			       fifo ? " (a FIFO)" : dir ? " (a folder)" : "");
	}
	m->path = strdup(path);
	m->size = (uint64_t)st.st_size;
	if (!m->path) {
		close(fd);
		return qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
	}
	if (m->size > 0) {
		void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			close(fd);
			free(m->path);
			memset(m, 0, sizeof *m);
			return qf_fail(err, QF_EIO, "%s: mmap failed: %s", path, strerror(e));
		}
		m->data = p;
		m->owned_map = 1;
		qf_status s = qf_guard_add(p, m->size, path, &m->guard, err);
		if (s) {
			close(fd);
			qf_mapfile_close(m);
			return s;
		}
	}
	close(fd);
	return QF_OK;
}

qf_status qf_mapfile_wrap(qf_mapfile *m, const void *buf, uint64_t size, const char *label)
{
	memset(m, 0, sizeof *m);
	m->path = strdup(label ? label : "<memory>");
	if (!m->path)
		return QF_ENOMEM;
	m->data = buf;
	m->size = size;
	return QF_OK;
}

void qf_mapfile_close(qf_mapfile *m)
{
	if (!m)
		return;
	qf_guard_forget(m->guard);
	if (m->owned_map && m->data)
		munmap((void *)m->data, (size_t)m->size);
	free(m->path);
	memset(m, 0, sizeof *m);
}

qf_status qf_input_check(const char *path, qf_err *err)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return qf_fail(err, errno == ENOENT || errno == ENOTDIR ? QF_EFORMAT : QF_EIO, "%s: %s", path,
			       strerror(errno));
	if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))
		return QF_OK;
	return qf_fail(err, QF_EFORMAT, "%s: not a regular file (%s)", path,
		       S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" :
		       S_ISSOCK(st.st_mode) ? "a socket" : "not a file");
}

int qf_probe_head(const char *path, void *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	int ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pread(fd, buf, n, 0) == (ssize_t)n;
	if (fd >= 0)
		close(fd);
	return ok;
}

void qf_view_release(const void *p, uint64_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)p, end = a + n;
	uintptr_t lo = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
	uintptr_t hi = end & ~((uintptr_t)pg - 1);
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
