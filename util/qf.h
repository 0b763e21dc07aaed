/*
 * qf.h — status codes and error reporting shared by every qforge library.
 *
 * Libraries never print and never exit.  A function that can fail returns a
 * qf_status and, on failure, writes one line "FILE: what is wrong" into the
 * caller's qf_err (if one was given).  The CLI maps the status to an exit
 * code (DESIGN.md: 0 ok, 1 verification failed, 2 usage, 3 input/format,
 * 4 I/O).
 */
#ifndef QF_QF_H
#define QF_QF_H

#include <stddef.h>
#include <stdint.h>

typedef enum qf_status {
	QF_OK = 0,
	QF_EVERIFY = 1,      /* a verification check failed */
	QF_EUSAGE = 2,       /* bad arguments */
	QF_EFORMAT = 3,      /* input is malformed or unsupported */
	QF_EIO = 4,          /* read/write/mmap/rename failed, disk full */
	QF_ENOMEM = 5,       /* allocation failed (exit 4 at the CLI) */
} qf_status;

/* One error message; the first error set wins (later ones do not overwrite).  A longer one
 * keeps its reason: the longest path in it loses its middle to "…" (qf_fail). */
typedef struct qf_err {
	char msg[1024];
} qf_err;

/* Sets err->msg (if err and the message is still empty) and returns st. */
qf_status qf_fail(qf_err *err, qf_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Exit code for a status (DESIGN.md "Errors and exit codes"). */
int qf_status_exit_code(qf_status st);

/* Checked size arithmetic: return 0 on overflow, 1 on success. */
static inline int qf_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}
static inline int qf_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

/* 1 if path names a folder. */
int qf_is_dir(const char *path);

/* "[d0, d1, …]" of a shape into buf (truncated to n bytes). */
void qf_dims_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* 16 lowercase hex digits (how qforge writes an xxh64) → *v; 0 if malformed. */
int qf_parse_hex64(const char *s, uint64_t *v);

/* 1 if s ends with suf. */
static inline int qf_str_ends_with(const char *s, const char *suf)
{
	size_t a = __builtin_strlen(s), b = __builtin_strlen(suf);
	return a >= b && __builtin_memcmp(s + a - b, suf, b) == 0;
}

/* Progress/log callback the CLI may install; libraries call it, never print. */
typedef void (*qf_log_fn)(void *ud, int level, const char *msg);

#endif
