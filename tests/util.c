#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/outfile.h"
#include "tests/util.h"

static char tmpdir[4096];

static void rm_tmp(void)
{
	if (tmpdir[0])
		qf_rmtree(tmpdir);
}

const char *tu_tmpdir(void)
{
	if (!tmpdir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(tmpdir, sizeof tmpdir, "%s/qftest-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(99);
		}
		atexit(rm_tmp);
	}
	return tmpdir;
}

const char *tu_path(const char *name)
{
	static char slots[8][8192];
	static int k;
	char *p = slots[k++ & 7];
	snprintf(p, 8192, "%s/%s", tu_tmpdir(), name);
	return p;
}

const char *tu_src(const char *rel)
{
	static char slots[8][8192];
	static int k;
	char *p = slots[k++ & 7];
	const char *s = getenv("QF_SRCDIR");
	snprintf(p, 8192, "%s/%s", s && *s ? s : QF_SRCDIR, rel);
	return p;
}

int tu_write(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = n ? fwrite(data, 1, n, f) : 0;
	return fclose(f) == 0 && w == n ? 0 : -1;
}

uint8_t *tu_read(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((sz > 0 ? (size_t)sz : 0) + 1); /* NUL-terminated for text */
	if (b && sz > 0 && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b) {
		b[sz > 0 ? sz : 0] = 0;
		*n = (size_t)sz;
	}
	return b;
}

uint64_t tu_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

float tu_randf(uint64_t *s)
{
	return (float)((double)(tu_rand(s) >> 11) * 0x1p-53 * 2.0 - 1.0);
}

int tu_exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}
