#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "formats/textfile.h"

qf_status qf_text_read(const char *path, char **out, size_t *len, qf_err *err)
{
	gzFile f = strcmp(path, "-") == 0 ? gzdopen(dup(STDIN_FILENO), "rb") : gzopen(path, "rb");
	if (!f)
		return qf_fail(err, QF_EFORMAT, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap);
	qf_status s = QF_OK;
	for (;;) {
		if (!b) {
			s = qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
			break;
		}
		if (n + 1 >= cap) {
			char *g = cap > ((size_t)1 << 40) ? NULL : realloc(b, cap * 2);
			if (!g) {
				s = qf_fail(err, QF_ENOMEM, "%s: out of memory", path);
				break;
			}
			b = g;
			cap *= 2;
		}
		unsigned want = (unsigned)(cap - n - 1 > (1u << 30) ? (1u << 30) : cap - n - 1);
		int r = gzread(f, b + n, want);
		if (r < 0) {
			int e;
			const char *m = gzerror(f, &e);
			s = qf_fail(err, QF_EFORMAT, "%s: corrupt or truncated gzip data: %s", path, m);
			break;
		}
		if (r == 0) {
			int e;
			const char *m = gzerror(f, &e);
			if (e != Z_OK) /* Z_BUF_ERROR here is "unexpected end of file" */
				s = qf_fail(err, QF_EFORMAT, "%s: corrupt or truncated gzip data: %s", path, m);
			else if (!gzeof(f))
				s = qf_fail(err, QF_EIO, "%s: read failed", path);
			break;
		}
		n += (size_t)r;
	}
	gzclose(f);
	if (s) {
		free(b);
		return s;
	}
	b[n] = 0;
	*out = b;
	*len = n;
	return QF_OK;
}
