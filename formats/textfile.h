/*
 * textfile.h — reading a whole text file, plain or gzip-compressed (zlib
 * reads both transparently).
 */
#ifndef QF_TEXTFILE_H
#define QF_TEXTFILE_H

#include <stddef.h>

#include "util/qf.h"

/* *out is malloc'd and NUL-terminated; *len excludes the NUL.  "-" reads stdin. */
qf_status qf_text_read(const char *path, char **out, size_t *len, qf_err *err);

#endif
