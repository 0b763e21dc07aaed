/*
 * write.c — executes a plan: row blocks stream from the mmap'd source
 * through f32 into each item's format, workers splitting a block's units
 * (rows; 128-row block rows for fp8-b128), then the block is appended to a
 * GGUF or to the bundle's payload.  A unit's bytes depend only on its rows,
 * so the output is identical for any thread count.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "convert/plan.h"
#include "convert/wqueue.h"
#include "formats/mapfile.h"
#include "formats/outfile.h"
#include "formats/sidefile.h"
#include "util/pool.h"

#define BLOCK_BYTES (4u << 20) /* target f32 bytes per thread per block */

typedef struct work {
	const cvt_item *it;
	int packed, quality, allow_nonfinite;
	int direct;               /* FP8 → BF16 in one pass (cvt_item_rows_bf16) */
	int64_t u0;               /* first unit of the block */
	uint64_t main_base, comp_base[QF_MAX_COMP];
	uint8_t *main, *comp[QF_MAX_COMP];
	float **f32, **dec, **scratch; /* per worker */
	int64_t max_rows;         /* per worker capacity */
	qf_status *st;            /* per worker */
	qf_err *errs;
	double (*acc)[4];         /* per worker: Σ(x−y)², Σx², Σy², Σxy */
} work;

static void work_fn(void *ctx, int64_t b, int64_t e, int wk)
{
	work *w = ctx;
	const cvt_item *it = w->it;
	qf_dtype f = it->fmt;
	int64_t C = cvt_item_row_len(it);
	int nc = qf_fmt_ncomp(f, w->packed);
	for (int64_t u = b; u < e && !w->st[wk];) {
		int64_t r0, n, nu = 1;
		qf_fmt_unit_rows(f, it->ndim, it->shape, w->u0 + u, &r0, &n);
		if (qf_dtype_info(f)->brows == 1) /* units are rows: take several */
			n = nu = e - u < w->max_rows ? e - u : w->max_rows;
		uint8_t *mo = w->main + (qf_fmt_main_offset(f, w->packed, C, r0) - w->main_base);
		if (w->direct) {
			w->st[wk] = cvt_item_rows_bf16(it, r0, n, (uint16_t *)(void *)mo, w->allow_nonfinite, &w->errs[wk]);
			u += nu;
			continue;
		}
		float *x = w->f32[wk];
		w->st[wk] = cvt_item_rows_f32(it, r0, n, x, w->scratch[wk], w->allow_nonfinite, &w->errs[wk]);
		if (w->st[wk])
			return;
		uint8_t *co[QF_MAX_COMP] = { NULL, NULL };
		for (int k = 0; k < nc; k++)
			co[k] = w->comp[k] + (qf_fmt_comp_offset(f, k, it->ndim, it->shape, r0) - w->comp_base[k]);
		const qf_dtype_traits *ft = qf_dtype_info(f);
		if (it->repack == 1) {
			/* compressed-tensors int4 codes and scales moved into ggml blocks: the released weights exactly */
			uint64_t rb = qf_fmt_main_offset(f, w->packed, C, 1);
			for (int64_t k = 0; k < n; k++)
				cvt_item_repack_row(it, r0 + k, mo + (uint64_t)k * rb);
		} else if (it->qw && ft->from_f32_w) {
			/* importance weights of the row's matrix (expert, head): ggml_quantize_chunk per matrix */
			uint64_t rb = qf_fmt_main_offset(f, w->packed, C, 1);
			int64_t per = it->ndim >= 3 ? it->shape[it->ndim - 2] : cvt_item_rows(it);
			for (int64_t k = 0; k < n; k++)
				ft->from_f32_w(x + k * C, mo + (uint64_t)k * rb, C, it->qw + ((r0 + k) / per) * C);
		} else {
			qf_fmt_encode(f, w->packed, x, n, C, mo, co);
		}
		if (w->quality && qf_fmt_is_quant(f)) {
			/* units start their own scale blocks, so a view at the unit decodes it */
			qf_fmt_view v = { .fmt = f, .in_bundle = w->packed, .ndim = it->ndim, .main = mo };
			memcpy(v.shape, it->shape, sizeof v.shape);
			for (int k = 0; k < nc; k++)
				v.comp[k] = co[k];
			float *y = w->dec[wk];
			qf_fmt_decode(&v, 0, n, y);
			qf_err_sums(x, y, n * C, w->acc[wk]);
		}
		u += nu;
	}
}

/* Where the output goes: one GGUF, or a bundle with companions. */
typedef struct sink {
	int packed;
	qf_gguf_writer *g;
	qf_pk_writer *pk;
	int *pk_idx;              /* [item][1 + QF_MAX_COMP] */
} sink;

/*
 * A checkpoint file the bundle carries: read once (a regular file; symlinks are fine, as in
 * Hugging Face's cache), kept only if it parses as what its name says (formats/sidefile.h), and
 * those very bytes are what the bundle gets.  A generation_config.json that links to a secret
 * is refused, not copied.
 */
static qf_status copy_member(qf_pk_writer *pk, const qf_ckpt *ck, const char *name, qf_err *err)
{
	char *f = qf_ckpt_file(ck, name);
	qf_mapfile m;
	if (!f)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	if (access(f, F_OK) != 0) {
		free(f);
		return QF_OK; /* absent: nothing to carry */
	}
	qf_status s = qf_side_open(f, &m, err);
	if (!s) {
		s = qf_pk_writer_add_blob(pk, name, m.data, (size_t)m.size, err);
		qf_mapfile_close(&m);
	}
	free(f);
	return s;
}

static qf_status sink_declare(sink *k, cvt_plan *p, const cvt_write_opts *wo, qf_err *err)
{
	if (!k->packed) {
		for (size_t i = 0; i < p->n; i++) {
			cvt_item *it = &p->items[i];
			const qf_dtype_traits *in = qf_dtype_info(it->fmt);
			if (in->gguf == QF_DTYPE_NONE)
				return qf_fail(err, QF_EUSAGE,
					       "tensor '%s': %s is not a ggml type, so GGUF cannot hold it; write a packed bundle (--format packed)",
					       it->name, in->fmt);
			qf_status s = qf_gguf_add_tensor(k->g, it->name, it->ndim, it->shape, in->gguf, err);
			if (s)
				return s;
		}
		return QF_OK;
	}
	k->pk_idx = malloc((p->n ? p->n : 1) * (1 + QF_MAX_COMP) * sizeof *k->pk_idx);
	if (!k->pk_idx)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		cvt_item *it = &p->items[i];
		const qf_dtype_traits *in = qf_dtype_info(it->fmt);
		int64_t C = cvt_item_row_len(it);
		int64_t blk[2] = { in->brows, in->bcols ? in->bcols : C };
		int *idx = &k->pk_idx[i * (1 + QF_MAX_COMP)];
		idx[0] = qf_pk_writer_add(k->pk, it->name, it->ndim, it->shape, in->fmt, in->elem, blk,
					  qf_fmt_main_bytes(it->fmt, 1, it->ndim, it->shape), cvt_class_name(it->cls),
					  "weight", NULL, err);
		if (idx[0] < 0)
			return QF_EFORMAT; /* qf_pk_writer_add filled err */
		for (int c = 0; c < qf_fmt_ncomp(it->fmt, 1); c++) {
			char name[QF_GGUF_MAX_NAME + 16];
			int cnd;
			int64_t cs[4];
			uint64_t nb = qf_fmt_comp_shape(it->fmt, c, it->ndim, it->shape, &cnd, cs);
			snprintf(name, sizeof name, "%s%s", it->name, in->comp[c]);
			idx[1 + c] = qf_pk_writer_add(k->pk, name, cnd, cs, qf_dtype_name(in->comp_type[c]),
						      in->comp_type[c], NULL, nb, NULL, in->comp[c] + 1, it->name, err);
			if (idx[1 + c] < 0)
				return QF_EFORMAT;
		}
	}
	/* what a runtime needs besides the tensors */
	qf_pk_writer_set(k->pk, "generator", cJSON_CreateString(PACKAGE_STRING));
	qf_pk_writer_set(k->pk, "architecture", cJSON_CreateString(cvt_plan_arch(p)));
	cJSON *src = cJSON_CreateObject();
	cJSON_AddStringToObject(src, "path", p->src_path);
	cJSON_AddStringToObject(src, "kind", p->kind == CVT_SRC_CHECKPOINT ? "checkpoint" :
					     p->kind == CVT_SRC_GGUF ? "gguf" : "bundle");
	qf_pk_writer_set(k->pk, "source", src);
	if (p->ck && p->ck->config)
		qf_pk_writer_set(k->pk, "config", cJSON_Duplicate(p->ck->config, 1));
	if (wo->profile)
		qf_pk_writer_set(k->pk, "profile", cJSON_Duplicate(wo->profile, 1));
	qf_pk_writer_set(k->pk, "metadata", cJSON_CreateString("metadata.gguf"));
	qf_gguf_writer *mw = qf_gguf_writer_new();
	uint8_t *blob = NULL;
	size_t len = 0;
	if (!mw)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	qf_status s = cvt_plan_set_metadata(p, mw, err);
	if (!s)
		s = qf_gguf_writer_meta_blob(mw, &blob, &len, err);
	qf_gguf_writer_free(mw);
	if (!s)
		s = qf_pk_writer_add_blob(k->pk, "metadata.gguf", blob, len, err);
	free(blob);
	static const char *const copied[] = { "config.json", "tokenizer.json", "tokenizer_config.json",
					      "generation_config.json", NULL };
	for (int i = 0; !s && p->ck && copied[i]; i++)
		s = copy_member(k->pk, p->ck, copied[i], err);
	return s;
}

static qf_status sink_put(sink *k, size_t item, int part, const void *buf, size_t n, qf_err *err)
{
	if (!n)
		return QF_OK;
	if (!k->packed)
		return qf_gguf_writer_write(k->g, buf, n, err);
	return qf_pk_writer_write(k->pk, k->pk_idx[item * (1 + QF_MAX_COMP) + (size_t)part], buf, n, err);
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* One block for the writer thread (convert/wqueue.h): the parts of one item. */
typedef struct wjob {
	size_t item;
	int nparts;
	const uint8_t *buf[1 + QF_MAX_COMP];
	size_t len[1 + QF_MAX_COMP];
} wjob;

static qf_status put_job(void *ud, const void *job, qf_err *err)
{
	const wjob *j = job;
	for (int p = 0; p < j->nparts; p++) {
		qf_status st = sink_put(ud, j->item, p, j->buf[p], j->len[p], err);
		if (st)
			return st;
	}
	return QF_OK;
}

static int same_file(const struct stat *a, const char *path)
{
	struct stat b;
	return path && stat(path, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

/* The output must not be what this run reads (hard links and symlinks to it included). */
static qf_status check_not_source(const cvt_plan *p, const char *path, qf_err *err)
{
	static const char *const side[] = { "config.json", "tokenizer.json", "tokenizer_config.json",
					    "generation_config.json", "model.safetensors.index.json", NULL };
	struct stat o;
	if (stat(path, &o) != 0)
		return QF_OK;
	int same = same_file(&o, p->src_path);
	for (size_t i = 0; !same && p->ck && i < qf_st_nfiles(p->ck->st); i++)
		same = same_file(&o, qf_st_file_path(p->ck->st, i));
	for (int i = 0; !same && p->ck && side[i]; i++) {
		char *f = qf_ckpt_file(p->ck, side[i]);
		if (!f)
			return qf_fail(err, QF_ENOMEM, "out of memory");
		same = same_file(&o, f);
		free(f);
	}
	return same ? qf_fail(err, QF_EUSAGE, "%s: is a file of the source being read; choose another output", path)
		    : QF_OK;
}

qf_status cvt_write(cvt_plan *p, const char *path, const cvt_write_opts *wo, cvt_result *res, qf_err *err)
{
	qf_status s = QF_OK;
	int threads = wo->threads < 1 ? 1 : wo->threads;
	sink k = { .packed = wo->packed };
	float **f32 = NULL, **dec = NULL, **scr = NULL;
	uint8_t *mainbufs[2] = { NULL, NULL }, *compbufs[2][QF_MAX_COMP] = { { NULL, NULL }, { NULL, NULL } };
	int set = 0; /* the buffer set being filled; the writer may hold the other */
	cvt_wq wr = { 0 };
	qf_status *wst = NULL;
	qf_err *werr = NULL;
	double (*acc)[4] = NULL;
	qf_pool *pool = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (res)
		memset(res, 0, sizeof *res);
	if ((s = qf_output_check(path, wo->force, wo->packed && !qf_str_ends_with(path, ".tar"), err)) ||
	    (s = check_not_source(p, path, err)))
		return s;
	if ((s = qf_pool_new(threads, &pool, err)))
		return s;
	if (wo->packed)
		k.pk = qf_pk_writer_new();
	else
		k.g = qf_gguf_writer_new();
	if (!k.pk && !k.g) {
		qf_pool_free(pool);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	if (!wo->packed && (s = cvt_plan_set_metadata(p, k.g, err)))
		goto out;
	for (size_t i = 0; !wo->packed && i < p->n; i++) {
		if (qf_fmt_is_quant(p->items[i].fmt) && qf_dtype_info(p->items[i].fmt)->ggml_type >= 0) {
			qf_gguf_set_u32(k.g, "general.quantization_version", 2); /* GGML_QNT_VERSION, as llama-quantize writes */
			break;
		}
	}
	if (!wo->packed && wo->extra_meta)
		wo->extra_meta(wo->extra_ud, k.g);
	if (!wo->packed)
		qf_gguf_writer_set_split(k.g, wo->split_max);
	if ((s = sink_declare(&k, p, wo, err)))
		goto out;

	uint64_t total_in = 0;
	int64_t max_len = 1, max_scr = 1, min_rows = 1;
	for (size_t i = 0; i < p->n; i++) {
		cvt_item *it = &p->items[i];
		total_in += cvt_item_src_bytes(it);
		int64_t l = cvt_item_row_len(it);
		if (it->op == CVT_OP_COPY || it->op == CVT_OP_STACK || it->op == CVT_OP_PERMUTE)
			l = max64(l, it->srcs[0].t->shape[it->srcs[0].t->ndim - 1]);
		if (it->op == CVT_OP_KB)
			l = max64(l, it->kv_lora);
		max_len = max64(max_len, l);
		max_scr = max64(max_scr, cvt_scratch_floats(it));
		min_rows = max64(min_rows, qf_dtype_info(it->fmt)->brows); /* a worker holds a whole unit */
	}
	int64_t rows_per_worker = max64(max64((int64_t)(BLOCK_BYTES / 4) / max_len, 1), min_rows);
	f32 = calloc((size_t)threads, sizeof *f32);
	dec = calloc((size_t)threads, sizeof *dec);
	scr = calloc((size_t)threads, sizeof *scr);
	wst = calloc((size_t)threads, sizeof *wst);
	werr = calloc((size_t)threads, sizeof *werr);
	acc = calloc((size_t)threads, sizeof *acc);
	if (!f32 || !dec || !scr || !wst || !werr || !acc)
		goto oom;
	size_t fl = (size_t)(rows_per_worker * max_len) * sizeof(float);
	for (int i = 0; i < threads; i++) {
		f32[i] = malloc(fl);
		dec[i] = wo->quality ? malloc(fl) : NULL;
		scr[i] = malloc((size_t)max_scr * sizeof(float));
		if (!f32[i] || !scr[i] || (wo->quality && !dec[i]))
			goto oom;
	}
	int64_t block_rows = rows_per_worker * threads;
	for (int b = 0; b < 2; b++) {
		mainbufs[b] = malloc((size_t)(block_rows * max_len) * 4);
		for (int c = 0; c < QF_MAX_COMP; c++)
			compbufs[b][c] = malloc((size_t)(block_rows * (max_len / 16 + 16)));
		if (!mainbufs[b] || !compbufs[b][0] || !compbufs[b][1])
			goto oom;
	}
	s = wo->packed ? qf_pk_writer_begin(k.pk, path, wo->force, err) : qf_gguf_writer_begin(k.g, path, wo->force, err);
	if (s)
		goto out;
	cvt_wq_start(&wr, put_job, &k);

	uint64_t done_in = 0;
	for (size_t i = 0; i < p->n; i++) {
		cvt_item *it = &p->items[i];
		qf_dtype f = it->fmt;
		int nc = qf_fmt_ncomp(f, wo->packed);
		int64_t rows = cvt_item_rows(it), C = cvt_item_row_len(it);
		int64_t U = qf_fmt_units(f, it->ndim, it->shape);
		int64_t br = qf_dtype_info(f)->brows;
		int64_t ub = max64(block_rows / br, 1); /* units per block */
		/* KB reuses a head's transposed rows: keep blocks on head boundaries */
		if (it->op == CVT_OP_KB && br == 1 && ub > it->kv_lora)
			ub = ub / it->kv_lora * it->kv_lora;
		uint64_t in_bytes = cvt_item_src_bytes(it);
		if (p->opt.check_input_hashes && (s = cvt_item_check_source(p, it, err)))
			goto out; /* nothing is renamed into place */
		for (int w = 0; w < threads; w++)
			memset(acc[w], 0, sizeof acc[w]);
		for (int64_t u0 = 0; u0 < U; u0 += ub) {
			int64_t u1 = u0 + ub < U ? u0 + ub : U, ra, rb, n;
			qf_fmt_unit_rows(f, it->ndim, it->shape, u0, &ra, &n);
			if (u1 < U)
				qf_fmt_unit_rows(f, it->ndim, it->shape, u1, &rb, &n);
			else
				rb = rows;
			uint8_t *mainbuf = mainbufs[set], **compbuf = compbufs[set];
			work wk = { .it = it, .packed = wo->packed, .quality = wo->quality,
				    .allow_nonfinite = p->opt.allow_nonfinite, .u0 = u0,
				    .main_base = qf_fmt_main_offset(f, wo->packed, C, ra), .main = mainbuf,
				    .f32 = f32, .dec = dec, .scratch = scr, .max_rows = rows_per_worker,
				    .st = wst, .errs = werr, .acc = acc,
				    .direct = f == QF_BF16 && !it->qw && cvt_item_bf16_direct(it) };
			uint64_t comp_end[QF_MAX_COMP] = { 0, 0 };
			for (int c = 0; c < nc; c++) {
				wk.comp[c] = compbuf[c];
				wk.comp_base[c] = qf_fmt_comp_offset(f, c, it->ndim, it->shape, ra);
				comp_end[c] = qf_fmt_comp_offset(f, c, it->ndim, it->shape, rb);
			}
			qf_pool_for(pool, threads, u1 - u0, work_fn, &wk);
			for (int w = 0; w < threads; w++) {
				if (wst[w]) {
					s = qf_fail(err, wst[w], "%s: %s", p->src_path, werr[w].msg);
					goto out;
				}
			}
			uint64_t main_end = qf_fmt_main_offset(f, wo->packed, C, rb);
			wjob job = { .item = i, .nparts = 1 + nc, .buf = { mainbuf }, .len = { (size_t)(main_end - wk.main_base) } };
			for (int c = 0; c < nc; c++) {
				job.buf[1 + c] = compbuf[c];
				job.len[1 + c] = (size_t)(comp_end[c] - wk.comp_base[c]);
			}
			if ((s = cvt_wq_submit(&wr, &job, sizeof job, err)))
				goto out;
			set ^= 1;
			cvt_release_consumed(p, it, ra, rb);
			if ((s = qf_guard_check(err))) /* a source shrank under us: stop now, not at the commit */
				goto out;
			if (wo->prog)
				wo->prog(wo->ud, done_in + (rows ? in_bytes * (uint64_t)rb / (uint64_t)rows : in_bytes),
					 total_in, i, p->n);
		}
		cvt_release_item(p, it);
		done_in += in_bytes;
		if (res) {
			cvt_stats *cs = &res->cls[it->cls];
			cs->tensors++;
			cs->fallbacks += (size_t)it->fallback;
			cs->elems += (uint64_t)rows * (uint64_t)C;
			cs->bytes_in += in_bytes;
			cs->bytes_out += cvt_item_out_bytes(it, wo->packed);
			if (wo->quality && qf_fmt_is_quant(f)) {
				for (int w = 0; w < threads; w++) {
					cs->d2 += acc[w][0];
					cs->x2 += acc[w][1];
					cs->y2 += acc[w][2];
					cs->xy += acc[w][3];
				}
				cs->measured++;
			}
		}
	}
	if ((s = cvt_wq_drain(&wr, err)))
		goto out;
	cvt_wq_stop(&wr);
	s = wo->packed ? qf_pk_writer_finish(k.pk, err) : qf_gguf_writer_finish(k.g, err);
	if (s)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (res) {
		res->bytes_in = total_in;
		res->bytes_out = wo->packed ? qf_pk_writer_total_bytes(k.pk) : qf_gguf_writer_total_bytes(k.g);
		res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
		res->data_hash = wo->packed ? qf_pk_writer_data_hash(k.pk) : qf_gguf_writer_data_hash(k.g);
		res->parts = wo->packed ? 1 : qf_gguf_writer_nsplits(k.g);
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	cvt_wq_stop(&wr);
	qf_pool_free(pool);
	for (int i = 0; i < threads; i++) {
		if (f32)
			free(f32[i]);
		if (dec)
			free(dec[i]);
		if (scr)
			free(scr[i]);
	}
	free(f32);
	free(dec);
	free(scr);
	free(wst);
	free(werr);
	free(acc);
	for (int b = 0; b < 2; b++) {
		free(mainbufs[b]);
		free(compbufs[b][0]);
		free(compbufs[b][1]);
	}
	free(k.pk_idx);
	qf_gguf_writer_free(k.g); /* removes the .tmp on failure */
	qf_pk_writer_free(k.pk);
	if (s && p->ck)
		qf_ckpt_name_members(p->ck, err); /* a tar member, not its staged copy */
	return s;
}
