#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/qf.h"

qf_status qf_fail(qf_err *err, qf_status st, const char *fmt, ...)
{
	if (err && err->msg[0] == '\0') {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return st;
}

int qf_status_exit_code(qf_status st)
{
	switch (st) {
	case QF_OK: return 0;
	case QF_EVERIFY: return 1;
	case QF_EUSAGE: return 2;
	case QF_EFORMAT: return 3;
	case QF_EIO: return 4;
	case QF_ENOMEM: return 4;
	}
	return 4;
}

int qf_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int qf_parse_hex64(const char *s, uint64_t *v)
{
	if (!s || strlen(s) != 16)
		return 0;
	uint64_t r = 0;
	for (int i = 0; i < 16; i++) {
		int c = s[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return 0;
		r = r << 4 | (uint64_t)d;
	}
	*v = r;
	return 1;
}
