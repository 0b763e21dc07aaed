/*
 * packed_priv.h — what the files of the bundle reader and writer share (private):
 * packed_tar.c (tar parser), packed_read.c (manifest reader), packed_write.c
 * (writer), packed_tarwrite.c (tar builder).
 */
#ifndef QF_PACKED_PRIV_H
#define QF_PACKED_PRIV_H

#include <xxhash.h>

#include "formats/mapfile.h"
#include "formats/outfile.h"
#include "formats/packed.h"

#define MAX_NAME 512
#define MAX_DIM_VALUE (INT64_C(1) << 40)

typedef struct member {
	char name[MAX_NAME];
	uint64_t off, size;   /* data inside the tar */
} member;

/* Walks the headers of a ustar/GNU tar held in memory; collects regular files. */
qf_status pk_tar_members(const qf_mapfile *m, member **out, size_t *count, qf_err *err);

struct qf_pk {
	char *path;
	qf_mapfile tar;            /* whole tar (tar form) */
	qf_mapfile manifest_map;   /* folder form */
	qf_mapfile payload_map;    /* folder form */
	member *members;           /* tar form */
	size_t nmembers;
	qf_mapfile *extra;         /* folder form: member files mapped on demand */
	size_t nextra;
	cJSON *manifest;
	const uint8_t *payload;
	uint64_t payload_size;
	qf_pk_tensor *t;
	size_t n;
	qf_pk_file *files;         /* files[] of the manifest (names borrowed from it) */
	size_t nfiles;
	int version;
	int manifest_hashed;       /* version ≥ 2: manifest_xxh64 recorded */
	uint64_t manifest_want, manifest_got;
};

typedef struct pk_entry {
	char *name, *format, *cls, *role, *of;
	int ndim;
	int64_t shape[4], block[2];
	qf_dtype elem;
	uint64_t nbytes, off, pos, hash;
	XXH64_state_t *h;
} pk_entry;

typedef struct pk_file {
	char *name, *src;    /* copied from src, or */
	uint8_t *data;       /* written from memory */
	size_t len;
} pk_file;

struct qf_pk_writer {
	pk_entry *e;
	size_t n, cap;
	pk_file *files;
	size_t nfiles;
	cJSON *top;
	char *path;
	int as_tar;
	qf_out dir;          /* PATH.tmp/ or the staging folder */
	int fd;              /* tensors.bin */
	uint64_t total, data_hash;
	int begun;
};

qf_status pk_pwrite_all(int fd, const char *what, const void *buf, size_t n, uint64_t off, qf_err *err);
/* Folder → tar: manifest.json first, padded so tensors.bin's data is 4096-aligned. */
qf_status pk_build_tar(qf_pk_writer *w, qf_err *err);

#endif
