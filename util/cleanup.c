#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"

#define CHUNK 256
#define NCHUNK 256

enum { S_FREE, S_BUSY, S_LIVE, S_CLAIMED };
enum { K_FILE = 1, K_DIR, K_MAP };

typedef struct slot {
	atomic_int state;
	int kind;
	char *path;          /* owned; read by handlers only while LIVE */
	uintptr_t base;      /* K_MAP */
	uint64_t size;
	atomic_int faulted;
} slot;

static _Atomic(slot *) chunks[NCHUNK];
static atomic_int any_fault;
static atomic_long page_size; /* sysconf is not async-signal-safe: read it when registering */
static _Atomic(char *) fault_path; /* the name of a faulted mapping that was since unmapped */

static slot *slot_of(int id)
{
	if (id < 1 || id > CHUNK * NCHUNK)
		return NULL;
	slot *c = atomic_load(&chunks[(id - 1) / CHUNK]);
	return c ? &c[(id - 1) % CHUNK] : NULL;
}

static qf_status reg_add(int kind, const char *path, uintptr_t base, uint64_t size, int *id, qf_err *err)
{
	char *p = strdup(path);
	if (!p)
		return qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
	for (int c = 0; c < NCHUNK; c++) {
		slot *ch = atomic_load(&chunks[c]);
		if (!ch) {
			slot *n = calloc(CHUNK, sizeof *n);
			if (!n) {
				free(p);
				return qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
			}
			slot *want = NULL;
			if (atomic_compare_exchange_strong(&chunks[c], &want, n)) {
				ch = n;
			} else {
				free(n); /* another thread published one first */
				ch = want;
			}
		}
		for (int i = 0; i < CHUNK; i++) {
			int e = S_FREE;
			if (!atomic_compare_exchange_strong(&ch[i].state, &e, S_BUSY))
				continue;
			ch[i].kind = kind;
			ch[i].path = p;
			ch[i].base = base;
			ch[i].size = size;
			atomic_store(&ch[i].faulted, 0);
			atomic_store(&ch[i].state, S_LIVE);
			*id = c * CHUNK + i + 1;
			return QF_OK;
		}
	}
	free(p);
	return qf_fail(err, QF_EIO, "%s: more than %d temporary outputs and mapped files at once", path,
		       CHUNK * NCHUNK);
}

static void reg_forget(int id)
{
	slot *s = slot_of(id);
	int e = S_LIVE;
	if (!s || !atomic_compare_exchange_strong(&s->state, &e, S_BUSY))
		return; /* unknown, or a handler is removing it: the process is ending */
	char *p = s->path;
	s->path = NULL;
	char *none = NULL;
	if (s->kind == K_MAP && atomic_load(&s->faulted) && atomic_compare_exchange_strong(&fault_path, &none, p))
		p = NULL; /* kept for qf_guard_check's message */
	free(p);
	atomic_store(&s->state, S_FREE);
}

qf_status qf_cleanup_add(const char *path, int is_dir, int *id, qf_err *err)
{
	return reg_add(is_dir ? K_DIR : K_FILE, path, 0, 0, id, err);
}

void qf_cleanup_forget(int id) { reg_forget(id); }

qf_status qf_guard_add(const void *base, uint64_t size, const char *path, int *id, qf_err *err)
{
	if (!atomic_load(&page_size))
		atomic_store(&page_size, sysconf(_SC_PAGESIZE));
	return reg_add(K_MAP, path, (uintptr_t)base, size, id, err);
}

void qf_guard_forget(int id) { reg_forget(id); }

/* Removes name under dfd: a file, or a tree up to 16 levels (async-signal-safe). */
static void rm_at(int dfd, const char *name, int depth)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return;
	if (depth > 16)
		return;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	_Alignas(8) char buf[2048];
	for (int pass = 0; pass < 1024; pass++) {
		int seen = 0;
		long n;
		if (lseek(fd, 0, SEEK_SET) != 0)
			break;
		while ((n = (long)getdents64(fd, buf, sizeof buf)) > 0) {
			for (long off = 0; off < n;) {
				struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
				off += d->d_reclen;
				if (d->d_name[0] == '.' && (!d->d_name[1] || (d->d_name[1] == '.' && !d->d_name[2])))
					continue;
				rm_at(fd, d->d_name, depth + 1);
				seen++;
			}
		}
		if (!seen)
			break;
	}
	close(fd);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

void qf_cleanup_run(void)
{
	int saved = errno;
	for (int c = 0; c < NCHUNK; c++) {
		slot *ch = atomic_load(&chunks[c]);
		if (!ch)
			break; /* chunks fill in order */
		for (int i = 0; i < CHUNK; i++) {
			slot *s = &ch[i];
			int e = S_LIVE;
			if (s->kind == K_MAP || atomic_load(&s->state) != S_LIVE ||
			    !atomic_compare_exchange_strong(&s->state, &e, S_CLAIMED))
				continue;
			rm_at(AT_FDCWD, s->path, 0);
		}
	}
	errno = saved;
}

int qf_guard_fault(const void *addr)
{
	uintptr_t a = (uintptr_t)addr;
	long pg = atomic_load(&page_size);
	if (pg <= 0)
		return 0;
	for (int c = 0; c < NCHUNK; c++) {
		slot *ch = atomic_load(&chunks[c]);
		if (!ch)
			break;
		for (int i = 0; i < CHUNK; i++) {
			slot *s = &ch[i];
			if (atomic_load(&s->state) != S_LIVE || s->kind != K_MAP || a < s->base || a - s->base >= s->size)
				continue;
			uintptr_t from = a & ~(uintptr_t)(pg - 1), end = s->base + s->size;
			/* the rest of the mapping reads as zeros; the data is wrong, which qf_guard_check reports */
			void *r = mmap((void *)from, end - from, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			if (r == MAP_FAILED)
				return 0;
			atomic_store(&s->faulted, 1);
			atomic_store(&any_fault, 1);
			return 1;
		}
	}
	return 0;
}

qf_status qf_guard_check(qf_err *err)
{
	if (!atomic_load(&any_fault))
		return QF_OK;
	const char *p = atomic_load(&fault_path);
	for (int c = 0; !p && c < NCHUNK; c++) {
		slot *ch = atomic_load(&chunks[c]);
		for (int i = 0; ch && !p && i < CHUNK; i++)
			if (atomic_load(&ch[i].state) == S_LIVE && ch[i].kind == K_MAP && atomic_load(&ch[i].faulted))
				p = ch[i].path;
	}
	return qf_fail(err, QF_EFORMAT,
		       "%s: changed while it was being read (truncated or rewritten by another program); nothing was written",
		       p ? p : "a source file");
}

/* ---- unique temporary names ---------------------------------------------- */

/* This host's name, reduced to [A-Za-z0-9._] and at most 32 characters. */
static void host_tag(char *b, size_t n)
{
	char h[256] = "";
	if (gethostname(h, sizeof h - 1) != 0 || !h[0])
		strcpy(h, "host");
	size_t k = 0;
	for (size_t i = 0; h[i] && k + 1 < n && k < 32; i++) {
		char c = h[i];
		b[k++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ? c : '_';
	}
	b[k] = 0;
}

static void rand_tag(char *b)
{
	static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	static atomic_uint ctr;
	unsigned char r[6];
	if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)atomic_fetch_add(&ctr, 1) << 40);
		for (int i = 0; i < 6; i++, x >>= 8)
			r[i] = (unsigned char)x;
	}
	for (int i = 0; i < 6; i++)
		b[i] = al[r[i] % 36];
	b[6] = 0;
}

qf_status qf_temp_create(const char *stem, int is_dir, qf_temp *t, qf_err *err)
{
	char host[40], rnd[8];
	memset(t, 0, sizeof *t);
	t->fd = -1;
	host_tag(host, sizeof host);
	size_t n = strlen(stem) + 64;
	char *p = malloc(n);
	if (!p)
		return qf_fail(err, QF_ENOMEM, "%s: out of memory", stem);
	const char *base = strrchr(stem, '/');
	base = base ? base + 1 : stem;
	if (strlen(base) + 12 + 8 + strlen(host) > 255) /* keep within NAME_MAX: drop the host tag */
		host[0] = 0;
	for (int tries = 0;; tries++) {
		rand_tag(rnd);
		snprintf(p, n, "%s%ld-%s-%s", stem, (long)getpid(), rnd, host);
		/* registered before it exists, so no signal can come between creating and registering;
		 * the name holds our pid, so whatever a handler removes there is ours */
		qf_status s = qf_cleanup_add(p, is_dir, &t->id, err);
		if (s) {
			free(p);
			return s;
		}
		int r = is_dir ? mkdir(p, 0777) : (t->fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
		if (r >= 0)
			break;
		int e = errno;
		qf_cleanup_forget(t->id);
		t->id = 0;
		t->fd = -1;
		if (e != EEXIST || tries >= 100) {
			s = qf_fail(err, QF_EIO, "%s: cannot create %s: %s", p, is_dir ? "folder" : "file", strerror(e));
			free(p);
			return s;
		}
	}
	t->path = p;
	return QF_OK;
}

void qf_temp_remove(qf_temp *t)
{
	if (!t || !t->path)
		return;
	if (t->fd >= 0)
		close(t->fd);
	rm_at(AT_FDCWD, t->path, 0);
	qf_temp_release(t);
}

void qf_temp_release(qf_temp *t)
{
	if (!t)
		return;
	qf_cleanup_forget(t->id);
	free(t->path);
	memset(t, 0, sizeof *t);
	t->fd = -1;
}

void qf_rmtree(const char *path)
{
	rm_at(AT_FDCWD, path, 0);
}

/* "<pid>-<6 chars>-<host>" → pid, when host is ours. */
static long stale_pid(const char *rest, const char *host)
{
	char *e;
	long pid = strtol(rest, &e, 10);
	if (e == rest || *e != '-' || pid <= 0)
		return 0;
	e++;
	for (int i = 0; i < 6; i++)
		if (!e[i] || e[i] == '-')
			return 0;
	if (e[6] != '-' || strcmp(e + 7, host) != 0)
		return 0;
	return pid;
}

void qf_temp_sweep(const char *stem)
{
	char host[40];
	host_tag(host, sizeof host);
	const char *slash = strrchr(stem, '/');
	const char *prefix = slash ? slash + 1 : stem;
	size_t plen = strlen(prefix);
	char *dir = slash ? strndup(stem, (size_t)(slash - stem) + (slash == stem)) : strdup(".");
	if (!dir || !plen) {
		free(dir);
		return;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		free(dir);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, plen) != 0)
			continue;
		long pid = stale_pid(e->d_name + plen, host);
		struct stat st;
		if (!pid || pid == (long)getpid() || fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    st.st_uid != geteuid() || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* still running (or not ours to ask about) */
		rm_at(dfd, e->d_name, 0);
	}
	closedir(d);
	free(dir);
}
