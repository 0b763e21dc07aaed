/*
 * source.c — plans over every source qforge reads: a checkpoint (see
 * convert.c), a GGUF, or a packed bundle.  GGUF and bundle tensors already
 * carry GGUF names; each becomes one COPY item whose rows decode through
 * its format.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/plan.h"
#include "formats/mapfile.h"

const char *cvt_plan_source_path(const cvt_plan *p) { return p->src_path; }

static int has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

cvt_class cvt_class_of_gguf(const char *name, int ndim)
{
	if (has(name, ".indexer."))
		return CVT_CLASS_INDEXER;
	if (ndim <= 1 || qf_str_ends_with(name, "_norm.weight") || qf_str_ends_with(name, ".bias"))
		return CVT_CLASS_NORM;
	if (has(name, "token_embd"))
		return CVT_CLASS_EMBED;
	if (!strcmp(name, "output.weight"))
		return CVT_CLASS_OUTPUT;
	if (has(name, "ffn_gate_inp"))
		return CVT_CLASS_ROUTER;
	if (has(name, "_exps"))
		return CVT_CLASS_EXPERT;
	if (has(name, "_shexp"))
		return CVT_CLASS_SHARED_EXPERT;
	if (has(name, ".ffn_"))
		return CVT_CLASS_DENSE_FFN;
	return CVT_CLASS_ATTN;
}

qf_dtype cvt_item_src_fmt(const cvt_item *it)
{
	const cvt_src *s = &it->srcs[0];
	if (s->coded)
		return s->qv.fmt;
	if (s->scale)
		return QF_FP8_B128;
	qf_dtype f = qf_fmt_of_dtype(s->t->dtype);
	return f == QF_DTYPE_NONE ? QF_F32 : f;
}

static int layer_of(const char *name)
{
	int l;
	return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

static cvt_item *push_item(cvt_plan *p, qf_err *err)
{
	cvt_item *it = cvt_plan_new_item(p, err);
	if (!it)
		return NULL;
	it->srcs = calloc(1, sizeof *it->srcs);
	if (!it->srcs) {
		qf_fail(err, QF_ENOMEM, "out of memory");
		return NULL;
	}
	it->nsrc = 1;
	it->op = CVT_OP_COPY;
	return it;
}

/* Fills the common fields of a COPY item over tensor t stored as fmt. */
static qf_status copy_item(cvt_plan *p, const qf_tensor *t, qf_dtype fmt, int in_bundle, cvt_class cls,
			   cvt_item **out, qf_err *err)
{
	if (t->ndim < 1 || t->ndim > 4)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' has %d dims", p->src_path, t->name, t->ndim);
	if (fmt == QF_DTYPE_NONE || !qf_fmt_fits(fmt, t->shape[t->ndim - 1]))
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s': %s cannot be read as a float tensor",
			       p->src_path, t->name, qf_dtype_name(t->dtype));
	cvt_item *it = push_item(p, err);
	if (!it)
		return QF_ENOMEM;
	snprintf(it->name, sizeof it->name, "%s", t->name);
	it->ndim = t->ndim;
	memcpy(it->shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
	it->cls = cls;
	it->layer = layer_of(t->name);
	it->src_quant = qf_fmt_is_quant(fmt);
	/* what convert writes: --outtype, else the source's float type (BF16 for quantized sources) */
	it->type = fmt == QF_F32 ? QF_F32 : fmt == QF_F16 ? QF_F16 : QF_BF16;
	if (p->opt.outtype != QF_DTYPE_NONE)
		it->type = p->opt.outtype;
	if (t->ndim == 1 || cls == CVT_CLASS_NORM || cls == CVT_CLASS_ROUTER)
		it->type = QF_F32;
	it->fmt = qf_fmt_of_dtype(it->type);
	cvt_src *s = &it->srcs[0];
	s->t = t;
	if (it->src_quant || in_bundle) {
		s->coded = 1;
		s->qv.fmt = fmt;
		s->qv.in_bundle = in_bundle;
		s->qv.ndim = t->ndim;
		memcpy(s->qv.shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
		s->qv.main = t->data;
	}
	*out = it;
	return QF_OK;
}

static qf_status plan_gguf(cvt_plan *p, qf_err *err)
{
	char arch[64] = "";
	char *a = NULL;
	if (qf_gguf_get_str(p->g, "general.architecture", &a, NULL) == QF_OK) {
		snprintf(arch, sizeof arch, "%s", a);
		free(a);
	}
	const cvt_arch *ad = cvt_arch_by_gguf(arch);
	if (!ad)
		return qf_fail(err, QF_EFORMAT,
			       "%s: unsupported GGUF architecture '%s' (supported: llama, qwen2, qwen3, qwen3moe, deepseek2, deepseek32)",
			       p->src_path, arch);
	snprintf(p->arch_str, sizeof p->arch_str, "%s", arch);
	p->arch = ad->kind;
	for (size_t i = 0; i < qf_gguf_ntensors(p->g); i++) {
		const qf_tensor *t = qf_gguf_tensor(p->g, i);
		cvt_item *it;
		qf_status s = copy_item(p, t, qf_fmt_of_dtype(t->dtype), 0, cvt_class_of_gguf(t->name, t->ndim),
					&it, err);
		if (s)
			return s;
	}
	return QF_OK;
}

static qf_status plan_bundle(cvt_plan *p, qf_err *err)
{
	const cJSON *m = qf_pk_manifest(p->pk);
	const cJSON *arch = cJSON_GetObjectItemCaseSensitive(m, "architecture");
	const cvt_arch *ad = cJSON_IsString(arch) ? cvt_arch_by_gguf(arch->valuestring) : NULL;
	if (!ad)
		return qf_fail(err, QF_EFORMAT, "%s: manifest.json: unsupported or missing architecture", p->src_path);
	snprintf(p->arch_str, sizeof p->arch_str, "%s", arch->valuestring);
	p->arch = ad->kind;
	for (size_t i = 0; i < qf_pk_ntensors(p->pk); i++) {
		const qf_pk_tensor *pt = qf_pk_tensor_at(p->pk, i);
		if (pt->of)
			continue;
		qf_dtype f = qf_fmt_from_name(pt->format);
		int cls = pt->cls ? cvt_class_from_name(pt->cls) : -1;
		cvt_item *it;
		qf_status s = copy_item(p, &pt->t, f, 1, cls >= 0 ? (cvt_class)cls : cvt_class_of_gguf(pt->t.name, pt->t.ndim),
					&it, err);
		if (s)
			return s;
		const qf_dtype_traits *in = qf_dtype_info(f);
		for (int k = 0; k < qf_fmt_ncomp(f, 1); k++) {
			const qf_pk_tensor *c = NULL;
			for (int j = 0; j < 2 && !c; j++)
				if (pt->comp[j] >= 0 && strcmp(pt->comp_role[j], in->comp[k] + 1) == 0)
					c = qf_pk_tensor_at(p->pk, (size_t)pt->comp[j]);
			int cnd;
			int64_t cs[4];
			qf_fmt_comp_shape(f, k, pt->t.ndim, pt->t.shape, &cnd, cs);
			int same = c && c->t.ndim == cnd && c->t.dtype == in->comp_type[k];
			for (int d = 0; same && d < cnd; d++)
				same = c->t.shape[d] == cs[d];
			if (!same)
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' (%s): companion '%s' is missing or mis-shaped",
					       p->src_path, pt->t.name, pt->format, in->comp[k] + 1);
			it->srcs[0].qv.comp[k] = c->t.data;
		}
	}
	return QF_OK;
}

qf_status cvt_plan_open(const char *path, const cvt_options *o, cvt_plan **out, qf_err *err)
{
	qf_status s;
	if ((s = qf_input_check(path, err))) /* before probing: a FIFO would block */
		return s;
	if (qf_pk_is_bundle(path) || qf_path_is_gguf(path)) {
		cvt_plan *p = calloc(1, sizeof *p);
		if (!p || !(p->src_path = strdup(path))) {
			free(p);
			return qf_fail(err, QF_ENOMEM, "out of memory");
		}
		p->opt = *o;
		p->release_ok = 1;
		if (qf_path_is_gguf(path)) {
			p->kind = CVT_SRC_GGUF;
			s = qf_gguf_open(path, &p->g, err);
			if (!s)
				s = plan_gguf(p, err);
		} else {
			p->kind = CVT_SRC_BUNDLE;
			s = qf_pk_open(path, qf_fmt_bundle_sizer, &p->pk, err);
			if (!s)
				s = plan_bundle(p, err);
		}
		if (!s && p->n == 0)
			s = qf_fail(err, QF_EFORMAT, "%s: the %s holds no tensors: nothing to convert", path,
				    p->g ? "GGUF" : "bundle");
		if (!s && o->check_input_hashes)
			s = cvt_plan_check_source(p, err);
		if (s) {
			cvt_plan_free(p);
			return s;
		}
		*out = p;
		return QF_OK;
	}
	qf_ckpt *ck = NULL;
	qf_ckpt_opts co = { .max_stage = o->max_stage };
	if ((s = qf_ckpt_open_opts(path, &co, &ck, err)))
		return s;
	cvt_plan *p = NULL;
	if ((s = cvt_plan_build(ck, o, &p, err))) {
		qf_ckpt_name_members(ck, err);
		qf_ckpt_close(ck);
		return s;
	}
	p->owns_ck = 1;
	return (*out = p, QF_OK);
}

/* ---- metadata -------------------------------------------------------------------- */

static qf_status bundle_meta(const cvt_plan *p, qf_gguf **g, qf_err *err)
{
	uint64_t n = 0;
	const uint8_t *b = qf_pk_member(p->pk, "metadata.gguf", &n);
	if (!b)
		return qf_fail(err, QF_EFORMAT, "%s: bundle has no metadata.gguf", p->src_path);
	return qf_gguf_open_buffer(b, (size_t)n, "metadata.gguf", g, err);
}

qf_status cvt_plan_set_metadata(cvt_plan *p, qf_gguf_writer *w, qf_err *err)
{
	/* a split source's part keys are not the output's (the writer sets its own) */
	static const char *const skip[] = { "general.file_type", "general.quantization_version", "split.no", "split.count",
					    "split.tensors.count", NULL };
	qf_gguf *g = NULL;
	switch (p->kind) {
	case CVT_SRC_CHECKPOINT:
		return cvt_ckpt_set_metadata(p, w, err);
	case CVT_SRC_GGUF:
		qf_gguf_copy_kvs(w, p->g, skip);
		break;
	case CVT_SRC_BUNDLE: {
		qf_status s = bundle_meta(p, &g, err);
		if (s)
			return s;
		qf_gguf_copy_kvs(w, g, skip);
		qf_gguf_close(g);
		break;
	}
	}
	qf_gguf_set_u32(w, "general.file_type", cvt_plan_file_type(p));
	return QF_OK;
}

qf_status cvt_plan_meta(cvt_plan *p, const qf_gguf **out, qf_err *err)
{
	if (p->meta)
		return (*out = p->meta, QF_OK);
	if (p->kind == CVT_SRC_GGUF)
		return (*out = p->g, QF_OK);
	qf_status s;
	if (p->kind == CVT_SRC_BUNDLE) {
		if ((s = bundle_meta(p, &p->meta, err)))
			return s;
		return (*out = p->meta, QF_OK);
	}
	qf_gguf_writer *w = qf_gguf_writer_new();
	size_t len = 0;
	if (!w)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	s = cvt_plan_set_metadata(p, w, err);
	if (!s)
		s = qf_gguf_writer_meta_blob(w, &p->meta_blob, &len, err);
	qf_gguf_writer_free(w);
	if (!s)
		s = qf_gguf_open_buffer(p->meta_blob, len, p->src_path, &p->meta, err);
	if (!s)
		*out = p->meta;
	return s;
}

/* ---- releasing consumed source pages ------------------------------------------- */

/* Drops bytes [a, b) of t's mapping from the resident set (whole pages inside the range). */
static void release_range(const cvt_plan *p, const qf_tensor *t, uint64_t a, uint64_t b)
{
	b = b < t->nbytes ? b : t->nbytes;
	if (p->release_ok && t->data && b > a && t->file >= 0) /* file −1: computed in memory, not a mapping */
		qf_view_release(t->data + a, b - a);
}

static void release(const cvt_plan *p, const qf_tensor *t, uint64_t n)
{
	release_range(p, t, 0, n);
}

/* Bytes of one row (last dimension) of t. */
static uint64_t row_bytes(const qf_tensor *t)
{
	uint64_t last = t->ndim ? (uint64_t)t->shape[t->ndim - 1] : 1;
	uint64_t rows = last ? t->nelems / last : 0;
	return rows ? t->nbytes / rows : t->nbytes;
}

/*
 * Drops the source pages of output rows [from, to) — consumed — from the
 * resident set, so peak RSS stays at the row-block working set even for a
 * stack of 256 experts.  Only the new range is released each time.  KB/VB
 * read a head's rows out of order: released at the end of the item.
 */
void cvt_release_consumed(const cvt_plan *p, const cvt_item *it, int64_t from, int64_t to)
{
	const qf_tensor *t = it->srcs[0].t;
	switch (it->op) {
	case CVT_OP_COPY:
		release_range(p, t, (uint64_t)from * row_bytes(t), (uint64_t)to * row_bytes(t));
		break;
	case CVT_OP_PERMUTE: {
		int64_t hd = it->head_dim;
		release_range(p, t, (uint64_t)(from / hd * hd) * row_bytes(t), (uint64_t)(to / hd * hd) * row_bytes(t));
		break;
	}
	case CVT_OP_STACK: {
		int64_t per = it->shape[1];
		for (int64_t e = from / per; e < it->nsrc && e * per < to; e++) {
			const qf_tensor *x = it->srcs[e].t;
			int64_t a = from > e * per ? from - e * per : 0, b = to < (e + 1) * per ? to - e * per : per;
			release_range(p, x, (uint64_t)a * row_bytes(x), (uint64_t)b * row_bytes(x));
		}
		break;
	}
	default:
		break;
	}
}

void cvt_release_item(const cvt_plan *p, const cvt_item *it)
{
	for (int k = 0; k < it->nsrc; k++)
		release(p, it->srcs[k].t, it->srcs[k].t->nbytes);
}
