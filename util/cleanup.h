/*
 * cleanup.h — what a signal handler must know: the temporary outputs to
 * remove, and the mapped inputs that may shrink while they are read.
 *
 * The library registers every temporary output (a file or a folder) for as
 * long as it exists, and every read-only file mapping for as long as it is
 * mapped.  Only the CLI installs signal handlers; they call:
 *   - qf_cleanup_run()   on SIGINT, SIGTERM, SIGHUP: removes every temporary;
 *   - qf_guard_fault()   on SIGBUS: if the address lies in a registered
 *     mapping (its file was truncated under us), the rest of that mapping
 *     becomes zero pages, the fault is recorded and the read carries on.
 *     Later, qf_guard_check() turns it into "FILE: changed while it was
 *     being read" (QF_EFORMAT), and no output that read it is committed.
 * Both are async-signal-safe: no allocation, no locks, no stdio, no
 * opendir; only open/getdents64/unlinkat/rmdir/mmap system calls.  Any
 * thread may take the signal, so there is no per-thread state.
 *
 * The table: 256 chunks of 256 slots, each chunk allocated when first needed
 * and never freed, so a handler walks it without locks while other threads
 * add and remove entries (each slot is a small state machine on an atomic
 * int).  A full table (65536 live entries) is an error when registering,
 * never a silent drop.
 *
 * Temporary names: qf_temp_create makes STEM<pid>-<random>-<host> with
 * O_CREAT|O_EXCL (or mkdir), so a symlink planted there is never followed
 * and two writers never share one.  A process killed by SIGKILL leaves such
 * a name behind; qf_temp_sweep(STEM) removes those whose process is gone
 * (same host, same user, pid no longer running).
 */
#ifndef QF_CLEANUP_H
#define QF_CLEANUP_H

#include <stdint.h>

#include "util/qf.h"

/* Registers a temporary output; *id (≥ 1) is for qf_cleanup_forget. */
qf_status qf_cleanup_add(const char *path, int is_dir, int *id, qf_err *err);
/* The temporary was renamed into place or removed: stop tracking it.  0 is a no-op. */
void qf_cleanup_forget(int id);
/* Removes every registered temporary (async-signal-safe; for a process about to end). */
void qf_cleanup_run(void);

/* Registers a read-only mapping [base, base + size) of path. */
qf_status qf_guard_add(const void *base, uint64_t size, const char *path, int *id, qf_err *err);
/* Before munmap.  0 is a no-op. */
void qf_guard_forget(int id);
/* From a SIGBUS handler: 1 if addr was in a registered mapping (now readable, as zeros). */
int qf_guard_fault(const void *addr);
/* QF_OK, or QF_EFORMAT with "FILE: changed while it was being read …" once any fault happened. */
qf_status qf_guard_check(qf_err *err);

/* A unique temporary next to its final place: STEM<pid>-<random>-<host>. */
typedef struct qf_temp {
	char *path;   /* owned */
	int fd;       /* open for writing (files), else -1 */
	int id;       /* cleanup registration */
} qf_temp;
qf_status qf_temp_create(const char *stem, int is_dir, qf_temp *t, qf_err *err);
/* Removes it (file or tree) and forgets it; t may be half set up or zeroed. */
void qf_temp_remove(qf_temp *t);
/* Stops tracking it without removing (after a rename into place); frees the name. */
void qf_temp_release(qf_temp *t);
/* Removes temporaries named STEM… that a dead process on this host left (best effort). */
void qf_temp_sweep(const char *stem);

/* Recursively removes a tree without following symlinks (best effort). */
void qf_rmtree(const char *path);

#endif
