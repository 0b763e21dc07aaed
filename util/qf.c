#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/qf.h"

/* Start of the UTF-8 character holding byte i (never splits a sequence). */
static size_t char_start(const char *s, size_t i)
{
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	return i;
}

/*
 * Copies a message of len bytes into cap bytes.  When it does not fit, the
 * longest run without spaces (a path, as a rule) loses its middle to "…", so
 * the start of the path, its file name and the reason after it all survive.
 */
static void fit_message(char *dst, size_t cap, const char *src, size_t len)
{
	if (len < cap) {
		memcpy(dst, src, len + 1);
		return;
	}
	size_t drop = len - (cap - 1) + 3; /* "…" is 3 bytes */
	size_t best = 0, bl = 0;
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && src[j] != ' ')
			j++;
		if (j - i > bl) {
			best = i;
			bl = j - i;
		}
		i = j + 1;
	}
	if (bl < drop + 16) { /* no run long enough: the message's own middle */
		best = 0;
		bl = len;
	}
	size_t keep = bl - drop, head = char_start(src, best + keep / 2);
	size_t tail = best + bl - (keep - keep / 2);
	while (tail < len && ((unsigned char)src[tail] & 0xC0) == 0x80)
		tail++;
	size_t n = head;
	memcpy(dst, src, head);
	memcpy(dst + n, "\xe2\x80\xa6", 3);
	n += 3;
	memcpy(dst + n, src + tail, len - tail);
	n += len - tail;
	dst[n < cap ? n : cap - 1] = 0;
}

qf_status qf_fail(qf_err *err, qf_status st, const char *fmt, ...)
{
	if (err && err->msg[0] == '\0') {
		char big[16384];
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(big, sizeof big, fmt, ap);
		va_end(ap);
		if (n < 0)
			n = 0;
		fit_message(err->msg, sizeof err->msg, big, (size_t)n < sizeof big ? (size_t)n : sizeof big - 1);
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

void qf_dims_str(int ndim, const int64_t *shape, char *b, size_t n)
{
	size_t k = (size_t)snprintf(b, n, "[");
	for (int i = 0; i < ndim && k < n; i++)
		k += (size_t)snprintf(b + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
	if (k < n)
		snprintf(b + k, n - k, "]");
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
