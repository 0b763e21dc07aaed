/*
 * hf_write.c — writes a Hugging Face checkpoint folder from a cvt_hf_plan.
 *
 * Every output tensor's place is known before any data is read: tensors are
 * assigned to shards in plan order (a shard closes when the next tensor would
 * pass the shard size), each shard's header is written with placeholder
 * hashes of the final width, then row blocks are encoded by the workers
 * while a writer thread hashes and writes the previous block; at the end the
 * headers are rewritten in place with the real xxh64s (same length).
 * Tensors that keep their bytes are copied straight from the mapped source.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "convert/hf.h"
#include "convert/hf_config.h"
#include "convert/wqueue.h"
#include "formats/ctquant.h"
#include "formats/hfquant.h"
#include "formats/outfile.h"
#include "util/pool.h"
#include "formats/qformat.h"

#define BLOCK_FLOATS (1u << 20)      /* f32 values per worker per block (4 MiB) */
#define COPY_CHUNK ((size_t)8 << 20) /* bytes per copied chunk */
#define MAX_PARTS 4
#define DEFAULT_SHARD 5000000000ull

/* One output tensor: where it goes and its running hash. */
typedef struct opart {
	cvt_hf_part p;
	size_t item;
	int shard;
	uint64_t off;             /* absolute offset in the shard file */
	XXH64_state_t *h;
	uint64_t hash;
} opart;

typedef struct shard {
	char name[96];
	int fd;
	int dfd;                  /* the same file opened O_DIRECT, or -1 */
	uint64_t data_bytes;
	size_t first, count;      /* parts [first, first + count) */
	size_t hdr_len;           /* padded JSON length */
} shard;

/* ---- the output folder (one function pair, so the temp-name policy can change) ---- */

static qf_status outdir_begin(qf_out *o, const char *dir, int force, qf_err *err)
{
	return qf_outdir_open(o, dir, force, err);
}

static qf_status outdir_commit(qf_out *o, qf_err *err) { return qf_out_commit(o, err); }
static void outdir_abort(qf_out *o) { qf_out_abort(o); }

/* ---- writes, on the writer thread (convert/wqueue.h) --------------------------------- */

typedef struct wseg {
	int fd;
	int *dfd;                 /* the shard's O_DIRECT descriptor (writer thread only), or NULL */
	uint64_t off;
	const uint8_t *buf;
	size_t len;
	XXH64_state_t *h;
	const uint8_t *release;   /* source range to drop from the resident set after writing */
	size_t release_len;
} wseg;

typedef struct wjob {
	int n;
	wseg s[MAX_PARTS + 2];
} wjob;

static qf_status put(const wseg *s, qf_err *err)
{
	const uint8_t *p = s->buf;
	size_t n = s->len;
	uint64_t off = s->off;
	int nodirect = -1;
	if (s->h)
		XXH64_update(s->h, p, n);
	int e = qf_pwrite_full(s->fd, s->dfd ? s->dfd : &nodirect, p, n, off);
	if (e)
		return qf_fail(err, QF_EIO, "write failed at byte %llu: %s%s", (unsigned long long)off, strerror(e),
			       e == ENOSPC || e == EDQUOT ? " (disk full)" : "");
	if (s->release)
		qf_view_release(s->release, s->release_len);
	return QF_OK;
}

static qf_status put_job(void *ud, const void *job, qf_err *err)
{
	const wjob *j = job;
	for (int i = 0; i < j->n; i++) {
		qf_err e = { { 0 } };
		qf_status st = put(&j->s[i], &e);
		if (st)
			return qf_fail(err, st, "%s: %s", (const char *)ud, e.msg);
	}
	return QF_OK;
}

/* ---- encoding ----------------------------------------------------------------------- */

static int64_t unit_rows(const cvt_hf_item *it)
{
	switch (it->sch.enc) {
	case CVT_HF_FP8_BLOCK: case CVT_HF_CT_FP8: return 128;
	case CVT_HF_CT_PACK: return it->sch.asym ? 32 / it->sch.bits : 1;
	default: return 1;
	}
}

/* Rows of the source tensor that one row of output part k covers (its first dim's granularity). */
static int64_t part_rows(const cvt_hf_item *it, int k, int64_t N)
{
	switch (it->sch.enc) {
	case CVT_HF_FP8_BLOCK: case CVT_HF_CT_FP8: return k == 1 ? 128 : 1;
	case CVT_HF_CT_PACK:
		if (k == 2)
			return N; /* weight_shape: written with the first row */
		if (k == 3)
			return 32 / it->sch.bits;
		return 1;
	default: return 1;
	}
}

/* Byte offset in part k where the rows from r on start (r unit-aligned, or N). */
static uint64_t part_off(const cvt_hf_item *it, const cvt_hf_part *pt, int k, int64_t N, int64_t r)
{
	int64_t pr = part_rows(it, k, N);
	/* weight_shape [2] is one unit of its 16 bytes, written with the first row */
	int64_t prow = (r + pr - 1) / pr, nprow = it->sch.enc == CVT_HF_CT_PACK && k == 2 ? 1 : pt->shape[0];
	if (prow > nprow)
		prow = nprow;
	return (uint64_t)prow * (pt->nbytes / (uint64_t)(nprow ? nprow : 1));
}

typedef struct work {
	const cvt_hf_item *it;
	cvt_item ci;              /* the source rows as f32 */
	int64_t r0, N, K, U, ur;  /* block's first row, rows, row length, units in block, rows per unit */
	int nparts;
	const cvt_hf_part *pts;
	uint8_t *out[MAX_PARTS];  /* block buffers, at part_off(r0) */
	uint64_t base[MAX_PARTS];
	float **f32;
	int64_t cap_rows;
	int allow_nonfinite;
	int direct;               /* FP8 → BF16 in one pass (cvt_item_rows_bf16) */
	int quality;              /* measure: decode each encoded unit and compare with the rows */
	float **dec;              /* per worker: the decoded unit */
	double (*acc)[4];         /* per worker: Σ(x−y)², Σx², Σy², Σxy */
	qf_status *st;
	qf_err *errs;
} work;

/* 1 when the item's encoding loses information (the summary measures those). */
static int lossy_enc(const cvt_hf_item *it)
{
	return !it->raw && (it->sch.enc == CVT_HF_FP8_BLOCK || it->sch.enc == CVT_HF_CT_FP8 || it->sch.enc == CVT_HF_CT_PACK ||
			    it->sch.enc == CVT_HF_CT_INT8 || it->sch.enc == CVT_HF_MS_INT8);
}

/*
 * n rows of one encoded unit (buffers o, as encode_rows wrote them) decoded back through the
 * compressed-tensors reader's decoder (formats/ctquant.h), whose (q − zp) · scale is each
 * layout's definition: the unit is a view of n rows whose scales and zero points start at o.
 */
static void decode_unit(const work *w, uint8_t *const *o, int64_t n, float *y)
{
	const cvt_hf_item *it = w->it;
	int64_t K = w->K;
	qf_ctq v = { .N = n, .K = K, .q = o[0], .scale = o[1], .sdt = it->scale_dtype, .br = 1, .bc = K, .scols = 1 };
	switch (it->sch.enc) {
	case CVT_HF_FP8_BLOCK: case CVT_HF_CT_FP8:
		v.kind = QF_CTQ_FP8;
		v.bits = 8;
		v.sdt = it->sch.enc == CVT_HF_FP8_BLOCK ? QF_F32 : it->scale_dtype;
		v.br = v.bc = 128;
		v.scols = (K + 127) / 128;
		break;
	case CVT_HF_CT_PACK:
		v.kind = QF_CTQ_PACK;
		v.bits = it->sch.bits;
		v.bc = it->sch.group ? it->sch.group : K;
		v.scols = (K + v.bc - 1) / v.bc;
		v.zp = it->sch.asym ? o[3] : NULL;
		v.zp_packed = it->sch.asym;
		break;
	case CVT_HF_MS_INT8:
		v.sdt = QF_F32;
		v.zp = o[2];
		v.zdt = QF_F32;
		/* fall through */
	default:
		v.kind = QF_CTQ_INT;
		v.bits = 8;
		break;
	}
	qf_ctq_rows(&v, 0, n, y);
}

static void encode_rows(const work *w, const float *x, int64_t r, int64_t n, uint8_t *const *o)
{
	const cvt_hf_item *it = w->it;
	int64_t K = w->K;
	switch (it->sch.enc) {
	case CVT_HF_DEQUANT:
		if (it->sch.dtype == QF_F32)
			memcpy(o[0], x, (size_t)(n * K) * 4);
		else if (it->sch.dtype == QF_F16)
			qf_row_f32_to_f16(x, o[0], n * K);
		else
			qf_row_f32_to_bf16(x, o[0], n * K);
		break;
	case CVT_HF_FP8_BLOCK:
		if (!it->sch.ue8m0) {
			uint8_t *c[2] = { o[1], NULL };
			qf_fmt_encode(QF_FP8_B128, 0, x, n, K, o[0], c);
		} else {
			qf_hfq_fp8_block(x, n, K, QF_F32, 1, o[0], o[1]);
		}
		break;
	case CVT_HF_CT_FP8:
		qf_hfq_fp8_block(x, n, K, it->scale_dtype, 0, o[0], o[1]);
		break;
	case CVT_HF_CT_PACK: {
		int64_t g = it->sch.group ? it->sch.group : K;
		if (it->sch.asym)
			qf_hfq_pack_asym(x, n, K, it->sch.bits, g, it->scale_dtype, (uint32_t *)(void *)o[0], o[1],
					 (uint32_t *)(void *)o[3]);
		else
			for (int64_t i = 0; i < n; i++)
				qf_hfq_pack_row(x + i * K, K, it->sch.bits, g, it->scale_dtype,
						(uint32_t *)(void *)(o[0] + (uint64_t)i * (w->pts[0].nbytes / (uint64_t)w->N)),
						o[1] + (uint64_t)i * (w->pts[1].nbytes / (uint64_t)w->N));
		if (r == 0) {
			int64_t sh[2] = { w->N, K };
			memcpy(o[2], sh, sizeof sh);
		}
		break;
	}
	case CVT_HF_CT_INT8:
		for (int64_t i = 0; i < n; i++)
			qf_hfq_int8_row(x + i * K, K, 127.5f, it->scale_dtype, (int8_t *)(o[0] + i * K),
					o[1] + (uint64_t)i * qf_dtype_info(it->scale_dtype)->block_bytes);
		break;
	case CVT_HF_MS_INT8:
		for (int64_t i = 0; i < n; i++) {
			qf_hfq_int8_row(x + i * K, K, 127.0f, QF_F32, (int8_t *)(o[0] + i * K), o[1] + i * 4);
			memset(o[2] + i * 4, 0, 4);
		}
		break;
	case CVT_HF_COPY:
		break;
	}
}

static void work_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	work *w = ctx;
	int64_t per = w->cap_rows / w->ur; /* units per chunk */
	for (int64_t u = b; u < e && !w->st[wk]; u += per) {
		int64_t ue = u + per < e ? u + per : e;
		int64_t r = w->r0 + u * w->ur, re = w->r0 + ue * w->ur;
		if (re > w->N)
			re = w->N;
		if (w->direct) {
			uint8_t *o = w->out[0] + (part_off(w->it, &w->pts[0], 0, w->N, r) - w->base[0]);
			w->st[wk] = cvt_item_rows_bf16(&w->ci, r, re - r, (uint16_t *)(void *)o, w->allow_nonfinite,
						       &w->errs[wk]);
			continue;
		}
		float *x = w->f32[wk];
		w->st[wk] = cvt_item_rows_f32(&w->ci, r, re - r, x, NULL, w->allow_nonfinite, &w->errs[wk]);
		if (w->st[wk])
			return;
		for (int64_t q = r; q < re; q += w->ur) {
			int64_t n = q + w->ur < re ? w->ur : re - q;
			uint8_t *o[MAX_PARTS] = { NULL };
			for (int k = 0; k < w->nparts; k++)
				o[k] = w->out[k] + (part_off(w->it, &w->pts[k], k, w->N, q) - w->base[k]);
			encode_rows(w, x + (q - r) * w->K, q, n, o);
			if (w->quality) {
				const float *a = x + (q - r) * w->K;
				float *y = w->dec[wk];
				decode_unit(w, o, n, y);
				qf_err_sums(a, y, n * w->K, w->acc[wk]);
			}
		}
	}
}

/* ---- headers ------------------------------------------------------------------------- */

static char *shard_header(const shard *sh, const opart *parts, int final, size_t *len)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(root, "__metadata__");
	cJSON_AddStringToObject(md, "format", "pt");
	for (size_t i = sh->first; i < sh->first + sh->count; i++) {
		char key[300], hex[17];
		snprintf(key, sizeof key, "qforge.xxh64.%s", parts[i].p.name);
		snprintf(hex, sizeof hex, "%016llx", final ? (unsigned long long)parts[i].hash : 0ull);
		cJSON_AddStringToObject(md, key, hex);
	}
	uint64_t off = 0;
	for (size_t i = sh->first; i < sh->first + sh->count; i++) {
		const cvt_hf_part *p = &parts[i].p;
		cJSON *t = cJSON_AddObjectToObject(root, p->name);
		cJSON_AddStringToObject(t, "dtype", qf_dtype_name(p->dtype));
		cJSON *s = cJSON_AddArrayToObject(t, "shape");
		for (int k = 0; k < p->ndim; k++)
			cJSON_AddItemToArray(s, cJSON_CreateNumber((double)p->shape[k]));
		cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
		cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
		cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + p->nbytes)));
		off += p->nbytes;
	}
	char *j = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!j)
		return NULL;
	size_t l = strlen(j), pad = (l + 7) & ~(size_t)7;
	char *b = malloc(8 + pad);
	if (!b) {
		free(j);
		return NULL;
	}
	for (int i = 0; i < 8; i++)
		b[i] = (char)((uint64_t)pad >> (8 * i));
	memcpy(b + 8, j, l);
	memset(b + 8 + l, ' ', pad - l);
	free(j);
	*len = 8 + pad;
	return b;
}

static qf_status write_all(int fd, const void *buf, size_t n, uint64_t off, const char *path, qf_err *err)
{
	wseg s = { .fd = fd, .off = off, .buf = buf, .len = n };
	qf_err e = { { 0 } };
	qf_status st = put(&s, &e);
	if (st)
		return qf_fail(err, st, "%s: %s", path, e.msg);
	return QF_OK;
}

static int cmp_parts_name(const void *a, const void *b)
{
	const opart *x = *(const opart *const *)a, *y = *(const opart *const *)b;
	return strcmp(x->p.name, y->p.name);
}

static qf_status write_index(const char *tmp, const char *index_name, const opart *parts, size_t np,
			     const shard *shards, uint64_t total, qf_err *err)
{
	const opart **v = malloc((np ? np : 1) * sizeof *v);
	if (!v)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t i = 0; i < np; i++)
		v[i] = &parts[i];
	qsort(v, np, sizeof *v, cmp_parts_name);
	cJSON *root = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(root, "metadata");
	cJSON_AddNumberToObject(md, "total_size", (double)total);
	cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
	for (size_t i = 0; i < np; i++)
		cJSON_AddStringToObject(wm, v[i]->p.name, shards[v[i]->shard].name);
	free(v);
	qf_status s = cvt_hf_write_json(tmp, index_name, root, err);
	cJSON_Delete(root);
	return s;
}

/* ---- the folder ------------------------------------------------------------------------ */

qf_status cvt_hf_write(cvt_hf_plan *p, const char *dir, const cvt_hf_write_opts *wo, cvt_result *res, qf_err *err)
{
	qf_status s = QF_OK;
	int threads = wo->threads < 1 ? 1 : wo->threads;
	uint64_t limit = wo->shard_size ? wo->shard_size : DEFAULT_SHARD;
	opart *parts = NULL;
	shard *shards = NULL;
	size_t np = 0, ns = 0;
	qf_out od;
	int have_od = 0;
	float **f32 = NULL, **dec = NULL;
	double (*acc)[4] = NULL;
	uint8_t *bufs[2][MAX_PARTS] = { { NULL } };
	qf_status *wst = NULL;
	qf_err *werr = NULL;
	qf_pool *pool = NULL;
	cvt_wq wr = { 0 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (res)
		memset(res, 0, sizeof *res);
	int ms = p->layout == CVT_HF_MSMODELSLIM;
	const char *stem = ms ? "quant_model_weights" : "model";

	/* 1. every output tensor and its shard */
	parts = calloc(p->n * MAX_PARTS + 1, sizeof *parts);
	if (!parts)
		goto oom;
	for (size_t i = 0; i < p->n; i++) {
		cvt_hf_part pt[MAX_PARTS];
		int k = cvt_hf_item_parts(p, &p->items[i], pt);
		for (int j = 0; j < k; j++) {
			parts[np].p = pt[j];
			parts[np].item = i;
			if (!(parts[np].h = XXH64_createState()))
				goto oom;
			XXH64_reset(parts[np].h, 0);
			np++;
		}
	}
	shards = calloc(np + 1, sizeof *shards);
	if (!shards)
		goto oom;
	uint64_t total = 0;
	for (size_t i = 0; i < np; i++) {
		if (!ns || (shards[ns - 1].count && shards[ns - 1].data_bytes + parts[i].p.nbytes > limit)) {
			shards[ns].first = i;
			shards[ns].fd = -1;
			shards[ns].dfd = -1;
			ns++;
		}
		shard *sh = &shards[ns - 1];
		parts[i].shard = (int)(ns - 1);
		parts[i].off = sh->data_bytes; /* relative until the header length is known */
		sh->data_bytes += parts[i].p.nbytes;
		sh->count++;
		total += parts[i].p.nbytes;
	}
	for (size_t k = 0; k < ns; k++) {
		if (ns == 1)
			snprintf(shards[k].name, sizeof shards[k].name, "%s.safetensors", stem);
		else
			snprintf(shards[k].name, sizeof shards[k].name, "%s-%05zu-of-%05zu.safetensors", stem, k + 1, ns);
	}

	/* 2. the folder and the shard headers */
	if ((s = outdir_begin(&od, dir, wo->force, err)))
		goto out;
	have_od = 1;
	for (size_t k = 0; k < ns; k++) {
		shard *sh = &shards[k];
		char path[4400];
		snprintf(path, sizeof path, "%s/%s", od.tmp, sh->name);
		sh->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (sh->fd < 0) {
			s = qf_fail(err, QF_EIO, "%s: cannot create: %s", path, strerror(errno));
			goto out;
		}
		size_t hl;
		char *h = shard_header(sh, parts, 0, &hl);
		if (!h)
			goto oom;
		sh->hdr_len = hl;
		s = write_all(sh->fd, h, hl, 0, path, err);
		free(h);
		if (s)
			goto out;
		if (fallocate(sh->fd, 0, 0, (off_t)(hl + sh->data_bytes)) != 0 && errno != EOPNOTSUPP && errno != ENOSYS &&
		    errno != EINVAL) {
			s = qf_fail(err, QF_EIO, "%s: cannot reserve %llu bytes: %s", path,
				    (unsigned long long)(hl + sh->data_bytes), strerror(errno));
			goto out;
		}
		for (size_t i = sh->first; i < sh->first + sh->count; i++)
			parts[i].off += hl;
		sh->dfd = qf_open_direct(path); /* -1 where refused: then every write is buffered */
	}

	/* 3. buffers */
	int64_t max_k = 1;
	for (size_t i = 0; i < p->n; i++) {
		const qf_tensor *t = p->items[i].t;
		int64_t k = t->ndim ? t->shape[t->ndim - 1] : 1;
		max_k = k > max_k ? k : max_k;
	}
	int64_t cap_rows = (int64_t)BLOCK_FLOATS / max_k;
	if (cap_rows < 128)
		cap_rows = 128; /* a worker holds whole 128-row units */
	else
		cap_rows = cap_rows / 128 * 128;
	if ((s = qf_pool_new(threads, &pool, err)))
		goto out;
	f32 = calloc((size_t)threads, sizeof *f32);
	dec = calloc((size_t)threads, sizeof *dec);
	acc = calloc((size_t)threads, sizeof *acc);
	wst = calloc((size_t)threads, sizeof *wst);
	werr = calloc((size_t)threads, sizeof *werr);
	if (!f32 || !dec || !acc || !wst || !werr)
		goto oom;
	for (int i = 0; i < threads; i++)
		if (wo->quality && !(dec[i] = malloc((size_t)(cap_rows * max_k) * sizeof(float))))
			goto oom;
	for (int i = 0; i < threads; i++)
		if (!(f32[i] = malloc((size_t)(cap_rows * max_k) * sizeof(float))))
			goto oom;
	/* a block lands at its file offset modulo QF_DIO_ALIGN, so its aligned middle is written directly */
	size_t bufcap = (size_t)(cap_rows * threads * max_k) * 4 + 64 + QF_DIO_ALIGN;
	for (int b = 0; b < 2; b++)
		for (int k = 0; k < MAX_PARTS; k++) {
			void *m = NULL;
			if (posix_memalign(&m, QF_DIO_ALIGN, k == 0 ? bufcap : bufcap / 4 + 2 * QF_DIO_ALIGN) != 0)
				goto oom;
			bufs[b][k] = m;
		}
	cvt_wq_start(&wr, put_job, (void *)dir);

	/* 4. the data */
	uint64_t total_in = 0, done_in = 0;
	for (size_t i = 0; i < p->n; i++)
		total_in += p->items[i].t->nbytes + (p->items[i].scale ? p->items[i].scale->nbytes : 0);
	int set = 0;
	size_t pi = 0; /* first part of the current item */
	for (size_t i = 0; i < p->n; i++) {
		cvt_hf_item *it = &p->items[i];
		const qf_tensor *t = it->t;
		int npi = 0;
		while (pi + (size_t)npi < np && parts[pi + (size_t)npi].item == i)
			npi++;
		opart *op = &parts[pi];
		uint64_t in_b = t->nbytes + (it->scale ? it->scale->nbytes : 0), out_b = 0;
		int measure = wo->quality && lossy_enc(it);
		if (measure)
			memset(acc, 0, (size_t)threads * sizeof *acc);
		for (int k = 0; k < npi; k++)
			out_b += op[k].p.nbytes;
		if (it->sch.enc == CVT_HF_COPY || it->raw) {
			for (int k = 0; k < npi; k++) {
				const qf_tensor *src = k == 0 ? t : it->scale;
				for (uint64_t o = 0; o < src->nbytes; o += COPY_CHUNK) {
					size_t n = src->nbytes - o < COPY_CHUNK ? (size_t)(src->nbytes - o) : COPY_CHUNK;
					wjob j = { .n = 1 };
					j.s[0] = (wseg){ .fd = shards[op[k].shard].fd, .off = op[k].off + o, .buf = src->data + o,
							 .len = n, .h = op[k].h, .release = src->data + o, .release_len = n };
					if ((s = cvt_wq_submit(&wr, &j, sizeof j, err)))
						goto out;
				}
			}
		} else {
			work w = { .it = it, .pts = &op[0].p, .nparts = npi, .f32 = f32, .cap_rows = cap_rows,
				   .allow_nonfinite = p->opt.allow_nonfinite, .quality = measure, .dec = dec, .acc = acc,
				   .st = wst, .errs = werr };
			cvt_src src = { .t = t, .scale = it->scale, .bo = it->bo, .bi = it->bi, .ms = it->ms };
			w.ci.op = CVT_OP_COPY;
			w.ci.srcs = &src;
			w.ci.nsrc = 1;
			w.ci.ndim = t->ndim < 1 ? 1 : t->ndim;
			if (t->ndim > 4) {
				s = qf_fail(err, QF_EFORMAT, "%s: tensor '%s' has %d dims", p->src_path, t->name, t->ndim);
				goto out;
			}
			for (int d = 0; d < t->ndim; d++)
				w.ci.shape[d] = t->shape[d];
			if (t->ndim == 0)
				w.ci.shape[0] = 1;
			snprintf(w.ci.name, sizeof w.ci.name, "%s", t->name);
			w.N = cvt_item_rows(&w.ci);
			w.K = cvt_item_row_len(&w.ci);
			w.ur = unit_rows(it);
			w.direct = it->sch.enc == CVT_HF_DEQUANT && it->sch.dtype == QF_BF16 && cvt_item_bf16_direct(&w.ci);
			/* the op parts' .p are consecutive opart structs: index through a copy */
			cvt_hf_part pts[MAX_PARTS];
			for (int k = 0; k < npi; k++)
				pts[k] = op[k].p;
			w.pts = pts;
			int64_t per_block = cap_rows * threads;
			for (int64_t r0 = 0; r0 < w.N; r0 += per_block) {
				int64_t r1 = r0 + per_block < w.N ? r0 + per_block : w.N;
				w.r0 = r0;
				w.U = (r1 - r0 + w.ur - 1) / w.ur;
				for (int k = 0; k < npi; k++) {
					w.base[k] = part_off(it, &pts[k], k, w.N, r0);
					w.out[k] = bufs[set][k] + (op[k].off + w.base[k]) % QF_DIO_ALIGN;
				}
				memset(wst, 0, (size_t)threads * sizeof *wst);
				qf_pool_for(pool, threads, w.U, work_fn, &w);
				for (int k = 0; k < threads; k++) {
					if (wst[k]) {
						s = qf_fail(err, wst[k], "%s: %s", p->src_path, werr[k].msg);
						goto out;
					}
				}
				wjob j = { .n = 0 };
				for (int k = 0; k < npi; k++) {
					uint64_t e = part_off(it, &pts[k], k, w.N, r1);
					if (e <= w.base[k])
						continue;
					/* hashed here, so the writer thread only writes and the disk never waits on a hash */
					XXH64_update(op[k].h, w.out[k], (size_t)(e - w.base[k]));
					j.s[j.n++] = (wseg){ .fd = shards[op[k].shard].fd, .dfd = &shards[op[k].shard].dfd,
							     .off = op[k].off + w.base[k], .buf = w.out[k],
							     .len = (size_t)(e - w.base[k]) };
				}
				/* source rows [r0, r1) are consumed once this block is encoded */
				uint64_t rb = t->nbytes / (uint64_t)w.N;
				qf_view_release(t->data + (uint64_t)r0 * rb, (uint64_t)(r1 - r0) * rb);
				if ((s = cvt_wq_submit(&wr, &j, sizeof j, err)))
					goto out;
				set ^= 1;
			}
		}
		pi += (size_t)npi;
		done_in += in_b;
		if (wo->prog)
			wo->prog(wo->ud, done_in, total_in, i, p->n);
		if (res) {
			cvt_stats *cs = &res->cls[it->cls];
			cs->tensors++;
			cs->fallbacks += (size_t)it->fallback;
			cs->elems += t->nelems;
			cs->bytes_in += in_b;
			cs->bytes_out += out_b;
			if (measure) {
				for (int k = 0; k < threads; k++) {
					cs->d2 += acc[k][0];
					cs->x2 += acc[k][1];
					cs->y2 += acc[k][2];
					cs->xy += acc[k][3];
				}
				cs->measured++;
			}
		}
	}
	if ((s = cvt_wq_drain(&wr, err)))
		goto out;
	cvt_wq_stop(&wr);

	/* 5. final headers, index, config, the other files */
	XXH64_state_t *dh = XXH64_createState();
	if (!dh)
		goto oom;
	XXH64_reset(dh, 0);
	for (size_t i = 0; i < np; i++) {
		parts[i].hash = XXH64_digest(parts[i].h);
		unsigned char le[8];
		for (int b = 0; b < 8; b++)
			le[b] = (unsigned char)(parts[i].hash >> (8 * b));
		XXH64_update(dh, le, 8);
	}
	uint64_t data_hash = XXH64_digest(dh);
	XXH64_freeState(dh);
	for (size_t k = 0; k < ns; k++) {
		shard *sh = &shards[k];
		size_t hl;
		char *h = shard_header(sh, parts, 1, &hl);
		if (!h)
			goto oom;
		if (hl != sh->hdr_len) {
			free(h);
			s = qf_fail(err, QF_EIO, "%s/%s: header length changed while writing", dir, sh->name);
			goto out;
		}
		s = write_all(sh->fd, h, hl, 0, sh->name, err);
		free(h);
		if (s)
			goto out;
		if (sh->dfd >= 0)
			close(sh->dfd);
		sh->dfd = -1;
		if (close(sh->fd) != 0) {
			sh->fd = -1;
			s = qf_fail(err, QF_EIO, "%s/%s: close failed: %s", dir, sh->name, strerror(errno));
			goto out;
		}
		sh->fd = -1;
	}
	if (ns > 1) {
		char idx[128];
		snprintf(idx, sizeof idx, "%s.safetensors.index.json", stem);
		if ((s = write_index(od.tmp, idx, parts, np, shards, total, err)))
			goto out;
	}
	{
		const char **names = malloc((np + 1) * sizeof *names);
		if (!names)
			goto oom;
		for (size_t i = 0; i < np; i++)
			names[i] = parts[i].p.name;
		s = cvt_hf_write_config(p, od.tmp, names, np, wo->profile_name, err);
		free(names);
		if (s)
			goto out;
	}
	if ((s = cvt_hf_copy_files(p, od.tmp, err)))
		goto out;
	if ((s = outdir_commit(&od, err)))
		goto out;
	have_od = 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (res) {
		res->bytes_in = total_in;
		res->bytes_out = total;
		res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
		res->data_hash = data_hash;
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	cvt_wq_stop(&wr);
	qf_pool_free(pool);
	for (size_t k = 0; shards && k < ns; k++) {
		if (shards[k].fd >= 0)
			close(shards[k].fd);
		if (shards[k].dfd >= 0)
			close(shards[k].dfd);
	}
	if (have_od)
		outdir_abort(&od);
	for (size_t i = 0; parts && i < np; i++)
		XXH64_freeState(parts[i].h);
	free(parts);
	free(shards);
	for (int i = 0; f32 && i < threads; i++)
		free(f32[i]);
	free(f32);
	for (int i = 0; dec && i < threads; i++)
		free(dec[i]);
	free(dec);
	free(acc);
	free(wst);
	free(werr);
	for (int b = 0; b < 2; b++)
		for (int k = 0; k < MAX_PARTS; k++)
			free(bufs[b][k]);
	return s;
}
