/* packed_tar.c — the strict ustar/GNU tar walker a bundle tar is read with. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/packed_priv.h"

static uint64_t octal(const uint8_t *p, size_t n, int *ok)
{
	uint64_t v = 0;
	size_t i = 0;
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v >> 60)
			*ok = 0;
		v = v * 8 + (uint64_t)(p[i] - '0');
	}
	if (i < n && p[i] != 0 && p[i] != ' ')
		*ok = 0;
	return v;
}

/*
 * Walks the headers of a ustar/GNU tar held in memory; collects regular
 * files.  Strict: checksums, sizes inside the file, names without '/'.
 */
qf_status pk_tar_members(const qf_mapfile *m, member **out, size_t *count, qf_err *err)
{
	member *mb = NULL;
	size_t n = 0, cap = 0;
	uint64_t pos = 0;
	char longname[MAX_NAME] = "";
	qf_status s = QF_OK;
	while (pos + 512 <= m->size) {
		const uint8_t *h = m->data + pos;
		int zero = 1;
		for (int i = 0; i < 512 && zero; i++)
			zero = h[i] == 0;
		if (zero)
			break;
		uint32_t sum = 0;
		for (int i = 0; i < 512; i++)
			sum += (i >= 148 && i < 156) ? ' ' : h[i];
		int ok = 1;
		uint64_t want = octal(h + 148, 8, &ok);
		if (!ok || want != sum) {
			s = qf_fail(err, QF_EFORMAT, "%s: tar header at byte %llu: bad checksum", m->path,
				    (unsigned long long)pos);
			goto fail;
		}
		uint64_t size;
		if (h[124] & 0x80) {
			size = 0;
			for (int i = 125; i < 136; i++) {
				if (size >> 55)
					ok = 0;
				size = size << 8 | h[i];
			}
		} else {
			size = octal(h + 124, 12, &ok);
		}
		uint64_t data = pos + 512;
		if (!ok || size > m->size - data) {
			s = qf_fail(err, QF_EFORMAT, "%s: tar member at byte %llu: size runs past the end of the file",
				    m->path, (unsigned long long)pos);
			goto fail;
		}
		char name[MAX_NAME];
		if (longname[0]) {
			snprintf(name, sizeof name, "%s", longname);
			longname[0] = 0;
		} else {
			memcpy(name, h, 100);
			name[100] = 0;
		}
		char type = (char)h[156];
		if (type == 'L') {
			size_t k = size < sizeof longname - 1 ? (size_t)size : sizeof longname - 1;
			memcpy(longname, m->data + data, k);
			longname[k] = 0;
		} else if (type == '0' || type == 0) {
			const char *base = name;
			if (strncmp(base, "./", 2) == 0)
				base += 2;
			if (!*base || strchr(base, '/')) {
				s = qf_fail(err, QF_EFORMAT, "%s: tar member '%s' is not at the top level", m->path, name);
				goto fail;
			}
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				member *g = realloc(mb, nc * sizeof *g);
				if (!g)
					goto oom;
				mb = g;
				cap = nc;
			}
			snprintf(mb[n].name, sizeof mb[n].name, "%s", base);
			mb[n].off = data;
			mb[n].size = size;
			n++;
		}
		pos = data + (size + 511) / 512 * 512;
	}
	*out = mb;
	*count = n;
	return QF_OK;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
fail:
	free(mb);
	return s;
}
