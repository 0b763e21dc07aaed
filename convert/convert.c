/*
 * convert.c — the plan object: tensor classes, item sizes, lookups, free.
 * The plan is built in build.c (checkpoints) and source.c (GGUF, bundles);
 * plan.h lists the other files of convert/.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "convert/plan.h"

static const char *const class_names[CVT_CLASS_COUNT] = {
	"attn", "expert", "shared_expert", "dense_ffn", "router", "embed", "output", "norm", "indexer",
};

const char *cvt_class_name(cvt_class c) { return (unsigned)c < CVT_CLASS_COUNT ? class_names[c] : "?"; }

int cvt_class_from_name(const char *s)
{
	for (int i = 0; i < CVT_CLASS_COUNT; i++)
		if (strcmp(s, class_names[i]) == 0)
			return i;
	return -1;
}

int cvt_item_keeps_f32(const cvt_item *it)
{
	return it->ndim < 2 || it->cls == CVT_CLASS_ROUTER || it->cls == CVT_CLASS_NORM ||
	       qf_str_ends_with(it->name, "indexer.proj.weight");
}

size_t cvt_plan_count(const cvt_plan *p) { return p->n; }
cvt_item *cvt_plan_item(cvt_plan *p, size_t i) { return i < p->n ? &p->items[i] : NULL; }
const char *cvt_plan_arch(const cvt_plan *p)
{
	if (p->arch_str[0])
		return p->arch_str;
	if (p->ad)
		return p->ad->gguf;
	return p->arch == ARCH_LLAMA ? "llama" : "deepseek2";
}
size_t cvt_plan_skipped(const cvt_plan *p) { return p->skipped; }

void cvt_plan_free(cvt_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->items[i].srcs);
	free(p->items);
	qf_gguf_close(p->meta);
	free(p->meta_blob);
	qf_gguf_close(p->g);
	qf_pk_close(p->pk);
	if (p->owns_ck)
		qf_ckpt_close(p->ck);
	free(p->src_path);
	free(p->gen);
	free(p);
}

const cvt_item *cvt_plan_find(cvt_plan *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return &p->items[i];
	return NULL;
}

int64_t cvt_item_row_len(const cvt_item *it) { return it->shape[it->ndim - 1]; }

int64_t cvt_item_rows(const cvt_item *it)
{
	int64_t r = 1;
	for (int i = 0; i < it->ndim - 1; i++)
		r *= it->shape[i];
	return r;
}

uint64_t cvt_item_nbytes(const cvt_item *it)
{
	return qf_fmt_main_bytes(it->fmt, 0, it->ndim, it->shape);
}

uint64_t cvt_item_out_bytes(const cvt_item *it, int packed)
{
	if (!packed)
		return cvt_item_nbytes(it);
	uint64_t b = qf_fmt_main_bytes(it->fmt, 1, it->ndim, it->shape);
	int64_t cs[4];
	int cnd;
	for (int k = 0; k < qf_fmt_ncomp(it->fmt, 1); k++)
		b += qf_fmt_comp_shape(it->fmt, k, it->ndim, it->shape, &cnd, cs);
	return b;
}

uint64_t cvt_item_src_bytes(const cvt_item *it)
{
	uint64_t b = 0;
	for (int i = 0; i < it->nsrc; i++) {
		b += it->srcs[i].t->nbytes;
		if (it->srcs[i].scale)
			b += it->srcs[i].scale->nbytes;
		if (it->srcs[i].ms.scale)
			b += it->srcs[i].ms.scale->nbytes + (it->srcs[i].ms.offset ? it->srcs[i].ms.offset->nbytes : 0);
	}
	if (it->op == CVT_OP_KB || it->op == CVT_OP_VB) /* each reads its half of kv_b */
		b = b * (uint64_t)(it->op == CVT_OP_KB ? it->nope : it->vdim) /
		    (uint64_t)(it->nope + it->vdim);
	return b;
}
