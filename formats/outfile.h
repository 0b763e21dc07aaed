/*
 * outfile.h — atomic outputs that never destroy what qforge did not write.
 *
 * Data goes to a unique temporary next to the output, PATH.qftmp-<pid>-<random>-<host>
 * (O_CREAT|O_EXCL: a symlink there is never followed, concurrent writers never share
 * one), registered with util/cleanup so a signal handler can remove it.  qf_out_commit
 * renames it to PATH; qf_out_abort removes it.  Opening sweeps the temporaries that
 * a killed qforge (SIGKILL) left for the same PATH, once their process is gone.
 *
 * What may be replaced (DESIGN.md "Errors and exit codes"): nothing without force;
 * with force, a regular file, or a folder that qf_output_is_ours accepts.  Devices,
 * FIFOs, sockets, symbolic links and foreign folders are refused (QF_EUSAGE), both
 * when opening and again just before the rename.
 *
 * A folder is a qforge output when every entry in it is a regular file and either:
 *   - bundle: manifest.json says "format": "qforge-packed", and every other entry
 *     is tensors.bin or a name in its "files"; or
 *   - Hugging Face / msModelSlim layout: it holds at least one *.safetensors, every
 *     *.safetensors has a key starting with QF_OUTPUT_ST_MARK ("qforge.") in its
 *     __metadata__ (writers put the tensor hashes there), and every other entry is
 *     *.json, *.jinja, *.model, *.txt or *.tiktoken (the files qforge copies).
 */
#ifndef QF_OUTFILE_H
#define QF_OUTFILE_H

#include <stdint.h>
#include <stddef.h>

#include "util/cleanup.h"
#include "util/qf.h"

#define QF_OUTPUT_ST_MARK "qforge."
#define QF_OUTPUT_TMP_TAG ".qftmp-"

typedef struct qf_out {
	char *path;       /* final name */
	char *tmp;        /* temporary name (a sibling of path) */
	int fd;
	uint64_t pos;     /* bytes written so far */
	int is_dir;       /* a directory output (packed bundle folder) */
	int force;
	int id;           /* cleanup registration */
} qf_out;

/* Refuses an existing PATH unless force (and then only what the rules above allow). */
qf_status qf_out_open(qf_out *o, const char *path, int force, qf_err *err);
qf_status qf_out_write(qf_out *o, const void *buf, size_t n, qf_err *err);
qf_status qf_out_pwrite(qf_out *o, const void *buf, size_t n, uint64_t off, qf_err *err);
qf_status qf_out_pad(qf_out *o, uint64_t align, qf_err *err);
/* Reserves SIZE bytes of disk for the file (fallocate, size unchanged); a no-op where unsupported. */
qf_status qf_out_reserve(qf_out *o, uint64_t size, qf_err *err);
/*
 * Direct I/O for large outputs: the page cache is not filled with what is written,
 * and no dirty-page throttling applies (the writer waits for the device instead).
 * qf_open_direct opens PATH again with O_DIRECT (-1 where the file system refuses, or
 * when QF_NO_DIRECT_IO is set in the environment).
 * qf_pwrite_full writes all N bytes at OFF: the QF_DIO_ALIGN-aligned middle through
 * *dfd when BUF and OFF agree modulo QF_DIO_ALIGN, the rest (and everything when
 * *dfd < 0) through fd.  If direct writes are refused, *dfd is closed and set to -1
 * and fd is used.  Returns 0 or an errno (ENOSPC for a write of nothing).
 */
#define QF_DIO_ALIGN 4096
int qf_open_direct(const char *path);
int qf_pwrite_full(int fd, int *dfd, const void *buf, size_t n, uint64_t off);

/* Fails, removing the temporary, when a mapped source changed while it was read (util/cleanup). */
qf_status qf_out_commit(qf_out *o, qf_err *err);
void qf_out_abort(qf_out *o);

/* Temporary directory outputs (bundle and HF folders): a unique PATH.qftmp-…/ folder. */
qf_status qf_outdir_open(qf_out *o, const char *path, int force, qf_err *err);

/* QF_OK when an output of this kind (is_dir) may be written at PATH; QF_EUSAGE naming why not. */
qf_status qf_output_check(const char *path, int force, int is_dir, qf_err *err);
/* 1 if PATH is a folder qforge wrote (rules above); else 0, with the reason in why (may be NULL). */
int qf_output_is_ours(const char *path, qf_err *why);

/* Removes every registered temporary (safe in a signal handler): util/cleanup's qf_cleanup_run. */
void qf_out_cleanup_all(void);

#endif
