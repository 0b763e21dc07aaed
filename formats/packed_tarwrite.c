/* packed_tarwrite.c — builds a bundle tar from the staging folder (libarchive). */
#include "config.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>

#include "formats/packed_priv.h"

static qf_status tar_add(struct archive *a, const char *tarpath, const char *name, const char *src,
			 qf_err *err)
{
	qf_mapfile m;
	qf_status s = qf_mapfile_open(&m, src, err);
	if (s)
		return s;
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, (la_int64_t)m.size);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, 0, 0); /* reproducible archives */
	if (archive_write_header(a, e) != ARCHIVE_OK)
		s = qf_fail(err, QF_EIO, "%s: %s", tarpath, archive_error_string(a));
	for (uint64_t off = 0; !s && off < m.size;) {
		size_t k = m.size - off > (1u << 20) ? (1u << 20) : (size_t)(m.size - off);
		la_ssize_t r = archive_write_data(a, m.data + off, k);
		if (r < 0)
			s = qf_fail(err, QF_EIO, "%s: %s", tarpath, archive_error_string(a));
		off += (uint64_t)(r > 0 ? r : 0);
	}
	archive_entry_free(e);
	qf_mapfile_close(&m);
	return s;
}

/* Folder → tar: manifest.json first, padded so tensors.bin's data is 4096-aligned. */
qf_status pk_build_tar(qf_pk_writer *w, qf_err *err)
{
	qf_out o;
	qf_status s = qf_out_open(&o, w->path, 1, err);
	if (s)
		return s;
	struct archive *a = archive_write_new();
	if (!a || archive_write_set_format_gnutar(a) != ARCHIVE_OK ||
	    archive_write_add_filter_none(a) != ARCHIVE_OK || archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, o.fd) != ARCHIVE_OK) {
		s = qf_fail(err, QF_EIO, "%s: cannot start archive: %s", w->path, a ? archive_error_string(a) : "");
		goto out;
	}
	char p[4096];
	const char *names[3] = { "manifest.json", QF_PK_PAYLOAD, NULL };
	for (int i = 0; !s && names[i]; i++) {
		snprintf(p, sizeof p, "%s/%s", w->dir.tmp, names[i]);
		s = tar_add(a, w->path, names[i], p, err);
	}
	for (size_t i = 0; !s && i < w->nfiles; i++) {
		snprintf(p, sizeof p, "%s/%s", w->dir.tmp, w->files[i].name);
		s = tar_add(a, w->path, w->files[i].name, p, err);
	}
	if (!s && archive_write_close(a) != ARCHIVE_OK)
		s = qf_fail(err, QF_EIO, "%s: %s", w->path, archive_error_string(a));
out:
	if (a)
		archive_write_free(a);
	if (!s)
		s = qf_out_commit(&o, err);
	else
		qf_out_abort(&o);
	return s;
}
