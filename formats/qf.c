#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "formats/qf.h"

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
