/*
 * mapfile.h — read-only memory-mapped files.
 *
 * Only regular files are mapped (a symlink to one is fine: Hugging Face's cache
 * is symlinks); a FIFO, device or socket is refused without blocking, since it
 * is opened O_NONBLOCK and checked with fstat.  Every mapping is registered
 * with util/cleanup's guard, so a file truncated while it is read is an error
 * (qf_guard_check), not a SIGBUS crash, once the CLI's handler is installed.
 */
#ifndef QF_MAPFILE_H
#define QF_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "util/qf.h"

typedef struct qf_mapfile {
	char *path;           /* owned copy */
	const uint8_t *data;  /* NULL for an empty file */
	uint64_t size;
	int owned_map;        /* 1 if data is an mmap to unmap */
	int guard;            /* util/cleanup guard registration, 0 if none */
} qf_mapfile;

/* Maps path read-only.  On failure *m is zeroed and err says why. */
qf_status qf_mapfile_open(qf_mapfile *m, const char *path, qf_err *err);
/* Wraps caller memory (for fuzzing and tests); the buffer must outlive m. */
qf_status qf_mapfile_wrap(qf_mapfile *m, const void *buf, uint64_t size, const char *label);
void qf_mapfile_close(qf_mapfile *m);

/* QF_OK if path (symlinks followed) is a folder or a regular file; else QF_EFORMAT
 * "PATH: not a regular file (a FIFO)", without opening it (a FIFO would block). */
qf_status qf_input_check(const char *path, qf_err *err);

/* 1 if path (symlinks followed) is a regular file whose first n bytes were read into buf;
 * opened O_NONBLOCK and checked with fstat, so probing a FIFO or device never blocks. */
int qf_probe_head(const char *path, void *buf, size_t n);

#endif
