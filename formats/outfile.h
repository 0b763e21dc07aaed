/*
 * outfile.h — atomic output files.
 *
 * Data goes to "PATH.tmp"; qf_out_commit renames it to PATH, qf_out_abort
 * removes it.  Every live temporary name is registered so that a signal
 * handler can remove them (qf_out_cleanup_all is async-signal-safe).
 */
#ifndef QF_OUTFILE_H
#define QF_OUTFILE_H

#include <stdint.h>
#include <stddef.h>

#include "util/qf.h"

typedef struct qf_out {
	char *path;       /* final name */
	char *tmp;        /* temporary name */
	int fd;
	uint64_t pos;     /* bytes written so far */
	int is_dir;       /* a directory output (packed bundle folder) */
} qf_out;

/* Refuses an existing PATH unless force. */
qf_status qf_out_open(qf_out *o, const char *path, int force, qf_err *err);
qf_status qf_out_write(qf_out *o, const void *buf, size_t n, qf_err *err);
qf_status qf_out_pwrite(qf_out *o, const void *buf, size_t n, uint64_t off, qf_err *err);
qf_status qf_out_pad(qf_out *o, uint64_t align, qf_err *err);
/* Reserves SIZE bytes of disk for the file (fallocate, size unchanged); a no-op where unsupported. */
qf_status qf_out_reserve(qf_out *o, uint64_t size, qf_err *err);
qf_status qf_out_commit(qf_out *o, qf_err *err);
void qf_out_abort(qf_out *o);

/* Temporary directory outputs (bundle folders): created as PATH.tmp/. */
qf_status qf_outdir_open(qf_out *o, const char *path, int force, qf_err *err);

/* Removes every registered temporary (safe in a signal handler). */
void qf_out_cleanup_all(void);

/* Recursively removes a directory tree (best effort). */
void qf_rmtree(const char *path);

#endif
