/*
 * hf_layout.c — the Hugging Face output plan: one item per source tensor,
 * under its own name, and the output tensors each encoding makes of it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert/ct_source.h"
#include "convert/hf.h"

static int has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

cvt_class cvt_class_of_hf(const char *name, int ndim)
{
	if (ndim <= 1 || qf_str_ends_with(name, "norm.weight") || qf_str_ends_with(name, ".bias") ||
	    has(name, "e_score_correction_bias"))
		return CVT_CLASS_NORM;
	if (has(name, "embed_tokens"))
		return CVT_CLASS_EMBED;
	if (has(name, "lm_head") || has(name, "shared_head.head"))
		return CVT_CLASS_OUTPUT;
	if (qf_str_ends_with(name, ".mlp.gate.weight"))
		return CVT_CLASS_ROUTER;
	if (has(name, ".mlp.experts."))
		return CVT_CLASS_EXPERT;
	if (has(name, ".mlp.shared_experts."))
		return CVT_CLASS_SHARED_EXPERT;
	if (has(name, ".mlp."))
		return CVT_CLASS_DENSE_FFN;
	return CVT_CLASS_ATTN;
}

/* ---- schemes ---------------------------------------------------------------------- */

static const struct {
	const char *name;
	cvt_hf_scheme s;
} schemes[] = {
	{ "f32", { .enc = CVT_HF_DEQUANT, .dtype = QF_F32 } },
	{ "f16", { .enc = CVT_HF_DEQUANT, .dtype = QF_F16 } },
	{ "bf16", { .enc = CVT_HF_DEQUANT, .dtype = QF_BF16 } },
	{ "fp8-b128", { .enc = CVT_HF_FP8_BLOCK, .dtype = QF_DTYPE_NONE } },
	{ "fp8-b128-ue8m0", { .enc = CVT_HF_FP8_BLOCK, .ue8m0 = 1, .dtype = QF_DTYPE_NONE } },
	{ "ct-fp8-b128", { .enc = CVT_HF_CT_FP8, .act_dynamic = 1, .dtype = QF_DTYPE_NONE } },
	{ "int4-g32", { .enc = CVT_HF_CT_PACK, .bits = 4, .group = 32, .dtype = QF_DTYPE_NONE } },
	{ "int4-g64", { .enc = CVT_HF_CT_PACK, .bits = 4, .group = 64, .dtype = QF_DTYPE_NONE } },
	{ "int4-g128", { .enc = CVT_HF_CT_PACK, .bits = 4, .group = 128, .dtype = QF_DTYPE_NONE } },
	{ "int4-ch", { .enc = CVT_HF_CT_PACK, .bits = 4, .group = 0, .dtype = QF_DTYPE_NONE } },
	{ "int4-g32-asym", { .enc = CVT_HF_CT_PACK, .bits = 4, .group = 32, .asym = 1, .dtype = QF_DTYPE_NONE } },
	{ "int4-g128-asym", { .enc = CVT_HF_CT_PACK, .bits = 4, .group = 128, .asym = 1, .dtype = QF_DTYPE_NONE } },
	{ "int8-g128", { .enc = CVT_HF_CT_PACK, .bits = 8, .group = 128, .dtype = QF_DTYPE_NONE } },
	{ "int8-ch", { .enc = CVT_HF_CT_PACK, .bits = 8, .group = 0, .dtype = QF_DTYPE_NONE } },
	{ "w8a8", { .enc = CVT_HF_CT_INT8, .act_dynamic = 1, .dtype = QF_DTYPE_NONE } },
	{ "ms-w8a16", { .enc = CVT_HF_MS_INT8, .dtype = QF_DTYPE_NONE } },
	{ "ms-w8a8-dynamic", { .enc = CVT_HF_MS_INT8, .act_dynamic = 1, .dtype = QF_DTYPE_NONE } },
};

int cvt_hf_scheme_parse(const char *name, cvt_hf_scheme *s)
{
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
		if (!strcmp(schemes[i].name, name)) {
			*s = schemes[i].s;
			return 1;
		}
	}
	return 0;
}

const char *cvt_hf_scheme_names(void)
{
	static char buf[512];
	if (!buf[0]) {
		size_t k = 0;
		for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && k < sizeof buf; i++)
			k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? ", " : "", schemes[i].name);
	}
	return buf;
}

/* ---- plan ------------------------------------------------------------------------- */

void cvt_hf_plan_free(cvt_hf_plan *p)
{
	if (!p)
		return;
	qf_ckpt_close(p->ck);
	free(p->items);
	free(p->src_path);
	free(p);
}

static int layer_of_hf(const char *name)
{
	int l;
	return sscanf(name, "model.layers.%d.", &l) == 1 ? l : -1;
}

static qf_dtype dtype_of_torch(const char *s)
{
	if (s && !strcmp(s, "float16"))
		return QF_F16;
	if (s && !strcmp(s, "float32"))
		return QF_F32;
	return QF_BF16;
}

qf_status cvt_hf_plan_open(const char *path, const cvt_options *o, cvt_hf_plan **out, qf_err *err)
{
	cvt_hf_plan *p = calloc(1, sizeof *p);
	if (!p)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	p->opt = *o;
	qf_status s = qf_ckpt_open(path, &p->ck, err);
	if (s)
		goto fail;
	if (!(p->src_path = strdup(path)))
		goto oom;
	if (!p->ck->config) {
		s = qf_fail(err, QF_EFORMAT, "%s: no config.json (a Hugging Face checkpoint is needed for safetensors output)",
			    path);
		goto fail;
	}
	{
		/* layouts not read yet: never copy packed tensors under a float config */
		const cJSON *qcfg = cJSON_GetObjectItemCaseSensitive(p->ck->config, "quantization_config");
		const char *qm = qcfg ? qf_json_get_str(qcfg, "quant_method") : NULL;
		if (cvt_ct_is(p->ck)) {
			if ((s = cvt_ct_attach(p->ck, NULL, err)))
				goto fail;
			p->src_ct = 1;
		} else if (qcfg && (!qm || strcmp(qm, "fp8"))) {
			s = qf_fail(err, QF_EFORMAT, "%s: %s checkpoints are not read as a source yet (DeepSeek FP8, compressed-tensors, msModelSlim, BF16, F16 and F32 are)",
				    path, qm ? qm : "quantization_config without quant_method");
			goto fail;
		}
	}
	int64_t nl = 0;
	qf_json_get_int(p->ck->config, "num_hidden_layers", &nl);
	p->n_layer = nl;
	p->torch_dtype = dtype_of_torch(qf_json_get_str(p->ck->config, "torch_dtype"));
	int64_t bo = 128, bi = 128;
	const cJSON *qc = cJSON_GetObjectItemCaseSensitive(p->ck->config, "quantization_config");
	const cJSON *bs = qc ? cJSON_GetObjectItemCaseSensitive(qc, "weight_block_size") : NULL;
	if (cJSON_IsArray(bs) && cJSON_GetArraySize(bs) == 2) {
		bo = (int64_t)cJSON_GetArrayItem(bs, 0)->valuedouble;
		bi = (int64_t)cJSON_GetArrayItem(bs, 1)->valuedouble;
		if (bo <= 0 || bi <= 0 || bo > (1 << 20) || bi > (1 << 20)) {
			s = qf_fail(err, QF_EFORMAT, "%s/config.json: invalid weight_block_size", path);
			goto fail;
		}
	}
	const qf_st *st = p->ck->st;
	size_t nt = qf_st_count(st);
	p->items = calloc(nt ? nt : 1, sizeof *p->items);
	if (!p->items)
		goto oom;
	qf_dtype deq = o->outtype == QF_DTYPE_NONE ? QF_BF16 : o->outtype;
	for (size_t i = 0; i < nt; i++) {
		const qf_tensor *t = qf_st_get(st, i);
		qf_ms_weight msw = { 0 };
		qf_ms_role role = p->ck->ms ? qf_ms_resolve(p->ck->ms, st, t, &msw) : QF_MS_PLAIN;
		if (role == QF_MS_DROPPED)
			continue; /* msModelSlim scales travel with their weight; activation parameters are not needed */
		if (qf_str_ends_with(t->name, "_scale_inv")) {
			/* a block scale travels with its FP8 weight */
			size_t l = strlen(t->name) - strlen("_scale_inv");
			char *w = strndup(t->name, l);
			if (!w)
				goto oom;
			const qf_tensor *wt = qf_st_find(st, w);
			free(w);
			if (wt && (wt->dtype == QF_F8_E4M3 || wt->dtype == QF_F8_E5M2))
				continue;
		}
		cvt_hf_item *it = &p->items[p->n++];
		it->t = t;
		it->bo = bo;
		it->bi = bi;
		it->cls = cvt_class_of_hf(t->name, t->ndim);
		it->layer = layer_of_hf(t->name);
		it->scale_dtype = p->torch_dtype;
		it->sch.enc = CVT_HF_COPY;
		it->sch.dtype = t->dtype;
		if (t->ctq) { /* a compressed-tensors module: its rows decode, never copied */
			it->sch.enc = CVT_HF_DEQUANT;
			it->sch.dtype = o->outtype == QF_DTYPE_NONE ? t->dtype : o->outtype;
		} else if (role == QF_MS_QUANT) {
			it->ms = msw; /* (q − weight_offset) · weight_scale, in the model's dtype unless --outtype */
			p->src_ms = 1;
			it->sch.enc = CVT_HF_DEQUANT;
			it->sch.dtype = o->outtype == QF_DTYPE_NONE ? p->torch_dtype : o->outtype;
		} else if (t->dtype == QF_F8_E4M3 || t->dtype == QF_F8_E5M2) {
			if ((s = qf_st_fp8_scale(st, t, bo, bi, &it->scale, err)))
				goto fail;
			p->src_fp8 = 1;
			it->sch.enc = CVT_HF_DEQUANT;
			it->sch.dtype = deq;
		}
	}
	*out = p;
	return QF_OK;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
fail:
	cvt_hf_plan_free(p);
	return s;
}

/* ---- output tensors of an item ------------------------------------------------------- */

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static void part(cvt_hf_part *pt, const char *mod, const char *suffix, qf_dtype dt, int ndim, int64_t d0, int64_t d1)
{
	snprintf(pt->name, sizeof pt->name, "%s%s", mod, suffix);
	pt->dtype = dt;
	pt->ndim = ndim;
	pt->shape[0] = d0;
	pt->shape[1] = d1;
	uint64_t ne = (uint64_t)d0 * (uint64_t)(ndim > 1 ? d1 : 1);
	pt->nbytes = ne * qf_dtype_info(dt)->block_bytes;
}

int cvt_hf_item_parts(const cvt_hf_plan *p, const cvt_hf_item *it, cvt_hf_part *pts)
{
	(void)p;
	const qf_tensor *t = it->t;
	char mod[240];
	snprintf(mod, sizeof mod, "%s", t->name);
	if (qf_str_ends_with(mod, ".weight"))
		mod[strlen(mod) - strlen(".weight")] = 0;
	int64_t N = t->ndim >= 2 ? t->shape[0] : 1, K = t->ndim >= 2 ? t->shape[1] : 0;
	switch (it->sch.enc) {
	case CVT_HF_COPY:
	case CVT_HF_DEQUANT: {
		snprintf(pts[0].name, sizeof pts[0].name, "%s", t->name);
		pts[0].dtype = it->sch.dtype;
		pts[0].ndim = t->ndim;
		memcpy(pts[0].shape, t->shape, sizeof pts[0].shape);
		pts[0].nbytes = it->sch.enc == CVT_HF_COPY ? t->nbytes : t->nelems * qf_dtype_info(it->sch.dtype)->block_bytes;
		if (it->sch.enc == CVT_HF_COPY && it->scale) {
			snprintf(pts[1].name, sizeof pts[1].name, "%s", it->scale->name);
			pts[1].dtype = it->scale->dtype;
			pts[1].ndim = it->scale->ndim;
			memcpy(pts[1].shape, it->scale->shape, sizeof pts[1].shape);
			pts[1].nbytes = it->scale->nbytes;
			return 2;
		}
		return 1;
	}
	case CVT_HF_FP8_BLOCK:
		part(&pts[0], mod, ".weight", QF_F8_E4M3, 2, N, K);
		part(&pts[1], mod, ".weight_scale_inv", QF_F32, 2, cdiv(N, 128), cdiv(K, 128));
		return 2;
	case CVT_HF_CT_FP8:
		part(&pts[0], mod, ".weight", QF_F8_E4M3, 2, N, K);
		part(&pts[1], mod, ".weight_scale", it->raw ? QF_F32 : it->scale_dtype, 2, cdiv(N, 128), cdiv(K, 128));
		return 2;
	case CVT_HF_CT_PACK: {
		int b = it->sch.bits;
		int64_t G = it->sch.group ? cdiv(K, it->sch.group) : 1;
		part(&pts[0], mod, ".weight_packed", QF_I32, 2, N, cdiv(K * b, 32));
		part(&pts[1], mod, ".weight_scale", it->scale_dtype, 2, N, G);
		part(&pts[2], mod, ".weight_shape", QF_I64, 1, 2, 0);
		if (!it->sch.asym)
			return 3;
		part(&pts[3], mod, ".weight_zero_point", QF_I32, 2, cdiv(N * b, 32), G);
		return 4;
	}
	case CVT_HF_CT_INT8:
		part(&pts[0], mod, ".weight", QF_I8, 2, N, K);
		part(&pts[1], mod, ".weight_scale", it->scale_dtype, 2, N, 1);
		return 2;
	case CVT_HF_MS_INT8:
		part(&pts[0], mod, ".weight", QF_I8, 2, N, K);
		part(&pts[1], mod, ".weight_scale", QF_F32, 2, N, 1);
		part(&pts[2], mod, ".weight_offset", QF_F32, 2, N, 1);
		return 3;
	}
	return 0;
}

/* ---- sizes ---------------------------------------------------------------------------- */

int cvt_parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		return 0;
	static const struct { const char *u; double m; } units[] = {
		{ "", 1 }, { "B", 1 }, { "K", 1e3 }, { "KB", 1e3 }, { "M", 1e6 }, { "MB", 1e6 }, { "G", 1e9 }, { "GB", 1e9 },
		{ "T", 1e12 }, { "TB", 1e12 }, { "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 },
		{ "TiB", 1099511627776.0 },
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (!strcasecmp(end, units[i].u) && (units[i].u[0] || !*end)) {
			double b = v * units[i].m;
			if (b < 1 || b > 1e18)
				return 0;
			*out = (uint64_t)b;
			return 1;
		}
	}
	return 0;
}
