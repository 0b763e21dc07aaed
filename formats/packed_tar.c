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
 * One PAX extended header's records ("LEN key=value\n" …): takes path and
 * size; 0 on a malformed record.  A global header (type 'g') may not set
 * either: the walker refuses it rather than guess what tar -x would do.
 */
static int pax_records(const uint8_t *p, uint64_t n, char *path, size_t pathcap, int *has_path, uint64_t *size,
		       int *has_size)
{
	uint64_t pos = 0;
	while (pos < n) {
		uint64_t len = 0, i = pos;
		while (i < n && p[i] >= '0' && p[i] <= '9' && len < (UINT64_C(1) << 40))
			len = len * 10 + (uint64_t)(p[i++] - '0');
		if (i == pos || i >= n || p[i] != ' ' || len < 5 || len > n - pos || p[pos + len - 1] != '\n')
			return 0;
		const char *kv = (const char *)p + i + 1, *end = (const char *)p + pos + len - 1;
		const char *eq = memchr(kv, '=', (size_t)(end - kv));
		if (!eq)
			return 0;
		size_t kl = (size_t)(eq - kv), vl = (size_t)(end - eq - 1);
		if (kl == 4 && memcmp(kv, "path", 4) == 0) {
			if (vl >= pathcap || memchr(eq + 1, 0, vl))
				return 0;
			memcpy(path, eq + 1, vl);
			path[vl] = 0;
			*has_path = 1;
		} else if (kl == 4 && memcmp(kv, "size", 4) == 0) {
			uint64_t v = 0;
			if (vl == 0 || vl > 19)
				return 0;
			for (size_t k = 0; k < vl; k++) {
				if (eq[1 + k] < '0' || eq[1 + k] > '9')
					return 0;
				v = v * 10 + (uint64_t)(eq[1 + k] - '0');
			}
			*size = v;
			*has_size = 1;
		}
		pos += len;
	}
	return 1;
}

/*
 * Walks the headers of a ustar/GNU/PAX tar held in memory; collects its
 * regular files under the names tar -x would give them: a PAX path or a GNU
 * long name wins, a POSIX ustar prefix is joined on, "./" is dropped.
 * Strict: checksums, sizes inside the file, every member a regular file at
 * the top level (a "." directory entry aside), no name twice (tar -x keeps
 * the last copy, a reader would see the first), no links, devices or sparse
 * files.
 */
qf_status pk_tar_members(const qf_mapfile *m, member **out, size_t *count, qf_err *err)
{
	member *mb = NULL;
	size_t n = 0, cap = 0;
	uint64_t pos = 0;
	char longname[MAX_NAME] = "", paxname[MAX_NAME] = "";
	int has_pax_name = 0, has_pax_size = 0;
	uint64_t pax_size = 0;
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
		char type = (char)h[156];
		int is_file = type == '0' || type == 0 || type == '7';
		if (is_file && has_pax_size)
			size = pax_size;
		uint64_t data = pos + 512;
		if (!ok || size > m->size - data) {
			s = qf_fail(err, QF_EFORMAT, "%s: tar member at byte %llu: size runs past the end of the file",
				    m->path, (unsigned long long)pos);
			goto fail;
		}
		char name[2 * MAX_NAME];
		if (has_pax_name) {
			snprintf(name, sizeof name, "%s", paxname);
		} else if (longname[0]) {
			snprintf(name, sizeof name, "%s", longname);
		} else if (memcmp(h + 257, "ustar\0", 6) == 0 && h[345]) { /* POSIX: prefix "/" name */
			snprintf(name, sizeof name, "%.155s/%.100s", (const char *)h + 345, (const char *)h);
		} else {
			memcpy(name, h, 100);
			name[100] = 0;
		}
		const char *base = name;
		while (strncmp(base, "./", 2) == 0)
			base += 2;
		if (type == 'L') {
			size_t k = size < sizeof longname - 1 ? (size_t)size : sizeof longname - 1;
			memcpy(longname, m->data + data, k);
			longname[k] = 0;
		} else if (type == 'x' || type == 'g') {
			char pth[MAX_NAME];
			int hp = 0, hs = 0;
			uint64_t sz = 0;
			if (!pax_records(m->data + data, size, pth, sizeof pth, &hp, &sz, &hs) || (type == 'g' && (hp || hs))) {
				s = qf_fail(err, QF_EFORMAT, "%s: tar header at byte %llu: %s PAX header", m->path,
					    (unsigned long long)pos, type == 'g' ? "a path or size in a global" : "malformed");
				goto fail;
			}
			if (type == 'x') {
				if (hp)
					memcpy(paxname, pth, sizeof paxname);
				has_pax_name |= hp;
				if (hs)
					pax_size = sz;
				has_pax_size |= hs;
			}
		} else if (type == 'K') {
			/* a long link target: the link member it belongs to is refused below */
		} else if (type == '5' && (!*base || strcmp(base, ".") == 0)) {
			/* the top-level folder itself */
		} else if (!is_file) {
			s = qf_fail(err, QF_EFORMAT, "%s: tar member '%s' is %s (type '%c'): a bundle holds regular files only",
				    m->path, name, type == '1' ? "a hard link" : type == '2' ? "a symbolic link" :
				    type == '5' ? "a folder" : type == 'S' ? "a sparse file" : "not a regular file",
				    type >= 32 && type < 127 ? type : '?');
			goto fail;
		} else {
			if (!*base || strchr(base, '/') || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 ||
			    strlen(base) >= MAX_NAME) {
				s = qf_fail(err, QF_EFORMAT, "%s: tar member '%s' is not at the top level", m->path, name);
				goto fail;
			}
			for (size_t j = 0; j < n; j++)
				if (strcmp(mb[j].name, base) == 0) {
					s = qf_fail(err, QF_EFORMAT,
						    "%s: tar member '%s' appears twice (tar -x would keep the last, a reader the first)",
						    m->path, base);
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
		if (type != 'L' && type != 'x' && type != 'g' && type != 'K') { /* these describe the next member only */
			longname[0] = 0;
			has_pax_name = has_pax_size = 0;
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
