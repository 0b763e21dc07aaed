/*
 * checkpoint.h — a Hugging Face checkpoint: folder or tar of one.
 *
 * A folder holds config.json, tokenizer.json, tokenizer_config.json and the
 * safetensors shards (with model.safetensors.index.json when sharded).
 * A .tar (optionally gzip/xz/zstd/bzip2-compressed: whatever libarchive
 * reads) is staged: its regular files are extracted into a private folder
 * under $TMPDIR (or /tmp), registered with util/cleanup (a signal removes it
 * too) and removed on close.  Member paths that are
 * absolute or contain ".." are rejected.  One leading folder shared by every
 * member is stripped.
 */
#ifndef QF_CHECKPOINT_H
#define QF_CHECKPOINT_H

#include <cjson/cJSON.h>

#include "util/qf.h"
#include "formats/msdesc.h"
#include "formats/safetensors.h"
#include "util/cleanup.h"

typedef struct qf_ckpt {
	char *path;          /* what the user named */
	char *dir;           /* folder holding the files */
	char *staged;        /* temporary folder to remove, or NULL (borrowed from stage) */
	qf_temp stage;       /* $TMPDIR/qforge-stage-<pid>-<random>-<host>, registered for signal cleanup */
	qf_st *st;           /* the tensors */
	cJSON *config;       /* config.json, or NULL when absent */
	cJSON *tok_config;   /* tokenizer_config.json, or NULL */
	qf_msdesc *ms;       /* msModelSlim quant_model_description.json (checked against st), or NULL */
} qf_ckpt;

qf_status qf_ckpt_open(const char *path, qf_ckpt **out, qf_err *err);

/*
 * Tar staging: only what a checkpoint uses is staged (config.json, tokenizer.json,
 * tokenizer_config.json, generation_config.json, the index and the shards it names;
 * every *.safetensors when there is none).  Sparse members, a shard larger than the
 * index declares in all, and staging past max_stage bytes are refused (0: 8 times the
 * tar's size + 1 GiB, or the index's total_size + 1 GiB when lower).  A compressed tar is
 * read to the end of its compressed stream, so its checksums are checked.
 */
typedef struct qf_ckpt_opts {
	uint64_t max_stage;  /* bytes; 0 for the default */
	int meta_only;       /* stage and read only the metadata files (no tensors: st is NULL) */
} qf_ckpt_opts;
qf_status qf_ckpt_open_opts(const char *path, const qf_ckpt_opts *o, qf_ckpt **out, qf_err *err);
/* Rewrites a message naming a staged file to name the tar and its member instead. */
void qf_ckpt_name_members(const qf_ckpt *c, qf_err *err);
void qf_ckpt_close(qf_ckpt *c);
/* Path of a file inside the checkpoint folder (malloc'd). */
char *qf_ckpt_file(const qf_ckpt *c, const char *name);
/* 1 if path names a tar (by extension or magic). */
int qf_path_is_tar(const char *path);

/* Size bounds: a parsed JSON tree costs ~32× its text, so each kind of file has a cap
 * far above real ones (DeepSeek-V3: config 1.7 KB, index 8.9 MB; Gemma 3 tokenizer.json 33 MB). */
#define QF_CONFIG_MAX ((uint64_t)4 << 20)     /* config.json, generation_config.json */
#define QF_TOKCONFIG_MAX ((uint64_t)16 << 20) /* tokenizer_config.json */
#define QF_JSON_MAX ((uint64_t)64 << 20)      /* any other (tokenizer.json, the shard index) */

/* Reads a JSON file of at most QF_JSON_MAX (or max) bytes; NULL with err set on failure. */
cJSON *qf_json_load(const char *path, qf_err *err, qf_status *st);
cJSON *qf_json_load_max(const char *path, uint64_t max, qf_err *err, qf_status *st);
/* Parses n bytes (of the file at path, for messages) as one JSON value with only whitespace after it. */
cJSON *qf_json_parse(const uint8_t *data, size_t n, const char *path, qf_err *err, qf_status *st);

/* Config getters: 1 and *v on success, 0 when absent or of another type. */
int qf_json_get_int(const cJSON *o, const char *key, int64_t *v);
int qf_json_get_num(const cJSON *o, const char *key, double *v);
int qf_json_get_bool(const cJSON *o, const char *key, int *v);
const char *qf_json_get_str(const cJSON *o, const char *key);

#endif
