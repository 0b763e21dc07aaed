/*
 * mapfile.h — read-only memory-mapped files.
 */
#ifndef QF_MAPFILE_H
#define QF_MAPFILE_H

#include <stdint.h>

#include "util/qf.h"

typedef struct qf_mapfile {
	char *path;           /* owned copy */
	const uint8_t *data;  /* NULL for an empty file */
	uint64_t size;
	int owned_map;        /* 1 if data is an mmap to unmap */
} qf_mapfile;

/* Maps path read-only.  On failure *m is zeroed and err says why. */
qf_status qf_mapfile_open(qf_mapfile *m, const char *path, qf_err *err);
/* Wraps caller memory (for fuzzing and tests); the buffer must outlive m. */
qf_status qf_mapfile_wrap(qf_mapfile *m, const void *buf, uint64_t size, const char *label);
void qf_mapfile_close(qf_mapfile *m);

#endif
