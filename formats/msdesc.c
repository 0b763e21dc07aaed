/*
 * msdesc.c — quant_model_description.json and the msModelSlim per-module
 * tensors it types (layout in msdesc.h).
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "formats/msdesc.h"

typedef struct entry {
	char *name;
	qf_ms_type t;
	const char *tname;        /* static */
} entry;

struct qf_msdesc {
	char *path;
	char model_type[32];
	int64_t group_size;
	entry *e;                 /* sorted by name */
	size_t n;
};

static const struct {
	const char *name;
	qf_ms_type t;
} types[] = {
	{ "FLOAT", QF_MS_FLOAT },
	{ "W8A16", QF_MS_W8A16 },
	{ "W8A8", QF_MS_W8A8 },
	{ "W8A8_DYNAMIC", QF_MS_W8A8_DYNAMIC },
	{ "W8A8_MIX", QF_MS_W8A8_MIX },
	{ "WFP8AFP8_DYNAMIC", QF_MS_WFP8AFP8_DYNAMIC },
	{ "C8", QF_MS_ACT },
	{ "FAQuant", QF_MS_ACT },
	{ "FAKQuant", QF_MS_ACT },
	/* defined by msModelSlim or registered by vllm-ascend, not read here */
	{ "W16A16S", QF_MS_UNREAD },
	{ "W4A16", QF_MS_UNREAD },
	{ "W4A8_DYNAMIC", QF_MS_UNREAD },
	{ "W4A4_DYNAMIC", QF_MS_UNREAD },
	{ "W8A8_MXFP8", QF_MS_UNREAD },
	{ "W4A8_MXFP", QF_MS_UNREAD },
	{ "W4A4_MXFP4", QF_MS_UNREAD },
	{ "W4A4_MXFP4_DUALSCALE", QF_MS_UNREAD },
	{ "W4A16_MXFP4", QF_MS_UNREAD },
	{ "W8A8FP8_DYNAMIC", QF_MS_UNREAD },
	{ "W8A8_FLATQUANT_DYNAMIC", QF_MS_UNREAD },
	{ "W4A8_FLATQUANT_DYNAMIC", QF_MS_UNREAD },
	{ "W4A4_FLATQUANT_DYNAMIC", QF_MS_UNREAD },
};

#define READABLE "FLOAT, W8A16, W8A8, W8A8_DYNAMIC, W8A8_MIX, WFP8AFP8_DYNAMIC"

static int type_of(const char *s, qf_ms_type *t, const char **name)
{
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		if (!strcmp(types[i].name, s)) {
			*t = types[i].t;
			*name = types[i].name;
			return 1;
		}
	}
	return 0;
}

/* Keys that describe the checkpoint, not a tensor. */
static const char *const str_keys[] = { "version", "kv_quant_type", "kv_cache_type", "fa_quant_type",
					"reduce_quant_type", "qforge_profile", NULL };
static const char *const obj_keys[] = { "metadata", "optional", NULL };

static int in_list(const char *const *l, const char *k)
{
	for (int i = 0; l[i]; i++)
		if (!strcmp(l[i], k))
			return 1;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

void qf_msdesc_free(qf_msdesc *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	free(d->path);
	free(d);
}

static qf_status parse_tree(const cJSON *j, qf_msdesc *d, qf_err *err)
{
	const char *L = d->path;
	if (!cJSON_IsObject(j))
		return qf_fail(err, QF_EFORMAT, "%s: not a JSON object (msModelSlim's description maps tensor names to types)", L);
	size_t n = 0;
	for (const cJSON *e = j->child; e; e = e->next)
		n++;
	d->e = calloc(n ? n : 1, sizeof *d->e);
	if (!d->e)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	int have_type = 0;
	for (const cJSON *e = j->child; e; e = e->next) {
		const char *k = e->string ? e->string : "";
		if (!strcmp(k, "model_quant_type")) {
			qf_ms_type t;
			const char *tn;
			if (!cJSON_IsString(e) || !type_of(e->valuestring, &t, &tn))
				return qf_fail(err, QF_EFORMAT, "%s: \"model_quant_type\" is %s%s%s, not a msModelSlim type (%s, …)", L,
					       cJSON_IsString(e) ? "'" : "not a string", cJSON_IsString(e) ? e->valuestring : "",
					       cJSON_IsString(e) ? "'" : "", READABLE);
			snprintf(d->model_type, sizeof d->model_type, "%s", tn);
			have_type = 1;
		} else if (!strcmp(k, "group_size")) {
			if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (1 << 24) ||
			    floor(e->valuedouble) != e->valuedouble)
				return qf_fail(err, QF_EFORMAT, "%s: \"group_size\" must be an integer from 0 to 16777216", L);
			d->group_size = (int64_t)e->valuedouble;
		} else if (!strcmp(k, "is_rot_used")) {
			if (!cJSON_IsBool(e))
				return qf_fail(err, QF_EFORMAT, "%s: \"is_rot_used\" is not a boolean", L);
			if (cJSON_IsTrue(e))
				return qf_fail(err, QF_EFORMAT,
					       "%s: \"is_rot_used\" is true: QuaRot weights need msModelSlim's global rotation applied at run time, which qforge does not do",
					       L);
		} else if (!strcmp(k, "ignore")) {
			if (!cJSON_IsArray(e))
				return qf_fail(err, QF_EFORMAT, "%s: \"ignore\" is not an array", L);
		} else if (in_list(str_keys, k)) {
			if (!cJSON_IsString(e))
				return qf_fail(err, QF_EFORMAT, "%s: \"%s\" is not a string", L, k);
		} else if (in_list(obj_keys, k)) {
			if (!cJSON_IsObject(e))
				return qf_fail(err, QF_EFORMAT, "%s: \"%s\" is not an object", L, k);
		} else {
			if (!*k)
				return qf_fail(err, QF_EFORMAT, "%s: an entry with an empty tensor name", L);
			if (!cJSON_IsString(e))
				return qf_fail(err, QF_EFORMAT, "%s: the type of tensor '%s' is not a string", L, k);
			entry *x = &d->e[d->n];
			if (!type_of(e->valuestring, &x->t, &x->tname))
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' has unknown type '%s' (qforge reads %s)", L, k,
					       e->valuestring, READABLE);
			if (!(x->name = strdup(k)))
				return qf_fail(err, QF_ENOMEM, "out of memory");
			d->n++;
		}
	}
	if (!have_type)
		return qf_fail(err, QF_EFORMAT, "%s: no \"model_quant_type\"", L);
	qsort(d->e, d->n, sizeof *d->e, cmp_entry);
	for (size_t i = 1; i < d->n; i++)
		if (!strcmp(d->e[i - 1].name, d->e[i].name))
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is listed twice", L, d->e[i].name);
	return QF_OK;
}

/* The description from a parsed tree, which it frees; label names the file in errors. */
static qf_status from_tree(cJSON *j, const char *label, qf_msdesc **out, qf_err *err)
{
	qf_msdesc *d = calloc(1, sizeof *d);
	if (!d || !(d->path = strdup(label))) {
		free(d);
		cJSON_Delete(j);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	qf_status s = parse_tree(j, d, err);
	cJSON_Delete(j);
	if (s) {
		qf_msdesc_free(d);
		return s;
	}
	*out = d;
	return QF_OK;
}

qf_status qf_msdesc_parse(const char *text, size_t len, const char *label, qf_msdesc **out, qf_err *err)
{
	qf_status s;
	cJSON *j = qf_json_parse((const uint8_t *)text, len, label, err, &s);
	return j ? from_tree(j, label, out, err) : s;
}

qf_status qf_msdesc_load(const char *path, qf_msdesc **out, qf_err *err)
{
	qf_status s;
	cJSON *j = qf_json_load(path, err, &s);
	return j ? from_tree(j, path, out, err) : s;
}

const char *qf_msdesc_path(const qf_msdesc *d) { return d->path; }
const char *qf_msdesc_model_type(const qf_msdesc *d) { return d->model_type; }
size_t qf_msdesc_count(const qf_msdesc *d) { return d->n; }

int qf_msdesc_type(const qf_msdesc *d, const char *tensor, qf_ms_type *t, const char **name)
{
	entry key = { .name = (char *)tensor };
	const entry *e = bsearch(&key, d->e, d->n, sizeof *d->e, cmp_entry);
	if (!e)
		return 0;
	*t = e->t;
	if (name)
		*name = e->tname;
	return 1;
}

/* ---- modules -------------------------------------------------------------------------- */

/* Companion suffixes of a quantized module (after MOD). */
static const char *const companions[] = { ".weight_scale", ".weight_offset", ".deq_scale", ".input_scale",
					  ".input_offset", ".quant_bias", NULL };

/* The suffix of name among companions, or NULL. */
static const char *companion_of(const char *name)
{
	for (int i = 0; companions[i]; i++)
		if (qf_str_ends_with(name, companions[i]))
			return companions[i];
	return NULL;
}

static int quantized(qf_ms_type t)
{
	return t == QF_MS_W8A16 || t == QF_MS_W8A8 || t == QF_MS_W8A8_DYNAMIC || t == QF_MS_W8A8_MIX ||
	       t == QF_MS_WFP8AFP8_DYNAMIC;
}

static const qf_tensor *sibling(const qf_st *st, const char *mod, size_t ml, const char *suffix)
{
	char nm[600];
	if (ml + strlen(suffix) >= sizeof nm)
		return NULL;
	memcpy(nm, mod, ml);
	snprintf(nm + ml, sizeof nm - ml, "%s", suffix);
	return qf_st_find(st, nm);
}

static int float_dtype(qf_dtype d) { return d == QF_F32 || d == QF_BF16 || d == QF_F16; }

static void shape_str(const qf_tensor *t, char *b, size_t n) { qf_dims_str(t->ndim, t->shape, b, n); }

/* scale/offset of a weight [N, K]: [N, G], G dividing K (and matching group_size when given). */
static qf_status check_group_tensor(const qf_msdesc *d, const qf_st *st, const qf_tensor *w, const qf_tensor *x,
				    int64_t want_g, qf_err *err)
{
	int64_t N = w->shape[0], K = w->shape[1];
	char got[96];
	shape_str(x, got, sizeof got);
	const char *f = qf_st_file_path(st, (size_t)x->file);
	if (!float_dtype(x->dtype))
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %s; msModelSlim scales and offsets are F32, BF16 or F16", f,
			       x->name, qf_dtype_name(x->dtype));
	if (x->ndim != 2 || x->shape[0] != N || x->shape[1] < 1 || K % x->shape[1] ||
	    (want_g >= 0 && x->shape[1] != want_g))
		return qf_fail(err, QF_EFORMAT,
			       "%s: tensor '%s' is %s but its weight '%s' [%lld, %lld] needs [%lld, 1]%s%s", f, x->name, got,
			       w->name, (long long)N, (long long)K, (long long)N,
			       d->group_size > 0 ? " or groups of group_size" : " (per channel) or [N, K / group]",
			       want_g >= 0 ? ", the shape of its weight_scale" : "");
	if (x->shape[1] > 1 && d->group_size > 0 && K / x->shape[1] != d->group_size)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %s: groups of %lld columns, but group_size is %lld", f,
			       x->name, got, (long long)(K / x->shape[1]), (long long)d->group_size);
	return QF_OK;
}

static qf_status check_weight(const qf_msdesc *d, const qf_st *st, const qf_tensor *w, qf_ms_type t,
			      const char *tname, qf_err *err)
{
	const char *f = qf_st_file_path(st, (size_t)w->file);
	qf_dtype want = t == QF_MS_WFP8AFP8_DYNAMIC ? QF_F8_E4M3 : QF_I8;
	if (w->dtype != want)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is typed %s but stored as %s (%s weights are %s)", f, w->name,
			       tname, qf_dtype_name(w->dtype), tname, qf_dtype_name(want));
	if (w->ndim != 2)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' (%s) has %d dims; a quantized linear weight has 2", f,
			       w->name, tname, w->ndim);
	size_t ml = strlen(w->name) - strlen(".weight");
	const qf_tensor *sc = sibling(st, w->name, ml, ".weight_scale");
	const qf_tensor *of = sibling(st, w->name, ml, ".weight_offset");
	if (sc) {
		qf_status s = check_group_tensor(d, st, w, sc, -1, err);
		if (s || (of && (s = check_group_tensor(d, st, w, of, sc->shape[1], err))))
			return s;
		if (!of && t != QF_MS_W8A8)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' (%s) has a weight_scale but no '%.*s.weight_offset'", f,
				       w->name, tname, (int)ml, w->name);
		return QF_OK;
	}
	if (t != QF_MS_W8A8)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' (%s) has no '%.*s.weight_scale'", f, w->name, tname, (int)ml,
			       w->name);
	/* static W8A8 as AscendV1Saver writes it: the weight scale is deq_scale / input_scale */
	const qf_tensor *dq = sibling(st, w->name, ml, ".deq_scale"), *is = sibling(st, w->name, ml, ".input_scale");
	if (!dq || !is)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' (W8A8) has no weight_scale and no '%.*s%s'", f, w->name,
			       (int)ml, w->name, !dq ? ".deq_scale" : ".input_scale");
	char got[96];
	shape_str(dq, got, sizeof got);
	if ((dq->dtype != QF_F32 && dq->dtype != QF_I64) || dq->ndim != 1 || dq->shape[0] != w->shape[0])
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %s %s; W8A8 deq_scale is F32 or I64 [%lld]",
			       qf_st_file_path(st, (size_t)dq->file), dq->name, qf_dtype_name(dq->dtype), got,
			       (long long)w->shape[0]);
	shape_str(is, got, sizeof got);
	if (!float_dtype(is->dtype) || is->nelems != 1)
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %s %s; W8A8 input_scale is one float",
			       qf_st_file_path(st, (size_t)is->file), is->name, qf_dtype_name(is->dtype), got);
	float v;
	qf_dtype_info(is->dtype)->to_f32(is->data, &v, 1);
	if (!(v > 0) || !isfinite(v))
		return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %g; the weight scale deq_scale / input_scale needs it positive",
			       qf_st_file_path(st, (size_t)is->file), is->name, (double)v);
	return QF_OK;
}

qf_status qf_msdesc_check(const qf_msdesc *d, const qf_st *st, qf_err *err)
{
	size_t n = qf_st_count(st);
	for (size_t i = 0; i < n; i++) {
		const qf_tensor *t = qf_st_get(st, i);
		const char *f = qf_st_file_path(st, (size_t)t->file);
		qf_ms_type ty;
		const char *tn;
		if (!qf_msdesc_type(d, t->name, &ty, &tn))
			return qf_fail(err, QF_EFORMAT, "%s: no entry for tensor '%s' (saved in %s); every saved tensor needs a type",
				       d->path, t->name, f);
		if (ty == QF_MS_UNREAD)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %s, which qforge does not read (it reads %s)", f,
				       t->name, tn, READABLE);
		if (ty == QF_MS_ACT)
			continue;
		const char *cs = companion_of(t->name);
		if (cs) {
			size_t ml = strlen(t->name) - strlen(cs);
			const qf_tensor *w = sibling(st, t->name, ml, ".weight");
			qf_ms_type wt;
			const char *wn;
			if (!w)
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' has no weight '%.*s.weight' in any shard", f, t->name,
					       (int)ml, t->name);
			if (!qf_msdesc_type(d, w->name, &wt, &wn) || wt != ty)
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is typed %s but its weight '%s' is %s", d->path,
					       t->name, tn, w->name, qf_msdesc_type(d, w->name, &wt, &wn) ? wn : "not listed");
			if (!quantized(ty))
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is typed FLOAT but names a quantization parameter of '%s'",
					       d->path, t->name, w->name);
			if (!strcmp(cs, ".weight_offset") && !sibling(st, t->name, ml, ".weight_scale"))
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is an offset without a '%.*s.weight_scale'", f,
					       t->name, (int)ml, t->name);
			continue;
		}
		if (quantized(ty)) {
			qf_status s;
			if (!qf_str_ends_with(t->name, ".weight"))
				return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is typed %s but is neither a weight nor one of its scales",
					       f, t->name, tn);
			if ((s = check_weight(d, st, t, ty, tn, err)))
				return s;
			continue;
		}
		/* FLOAT */
		if (t->dtype == QF_I8 || t->dtype == QF_U8 || t->dtype == QF_F8_E4M3 || t->dtype == QF_F8_E5M2)
			return qf_fail(err, QF_EFORMAT, "%s: tensor '%s' is %s but typed FLOAT; a quantized weight needs its type (%s)",
				       f, t->name, qf_dtype_name(t->dtype), READABLE);
	}
	return QF_OK;
}

qf_ms_role qf_ms_resolve(const qf_msdesc *d, const qf_st *st, const qf_tensor *t, qf_ms_weight *w)
{
	qf_ms_type ty;
	const char *tn;
	if (!qf_msdesc_type(d, t->name, &ty, &tn))
		return QF_MS_PLAIN;
	if (ty == QF_MS_ACT)
		return QF_MS_DROPPED;
	if (!quantized(ty))
		return QF_MS_PLAIN;
	if (companion_of(t->name))
		return QF_MS_DROPPED;
	memset(w, 0, sizeof *w);
	w->type = ty;
	size_t ml = strlen(t->name) - strlen(".weight");
	w->scale = sibling(st, t->name, ml, ".weight_scale");
	w->offset = sibling(st, t->name, ml, ".weight_offset");
	if (!w->scale) {
		w->deq = sibling(st, t->name, ml, ".deq_scale");
		w->in_scale = sibling(st, t->name, ml, ".input_scale");
	}
	w->group = w->scale ? t->shape[1] / w->scale->shape[1] : t->shape[1];
	return QF_MS_QUANT;
}

static float load1(const qf_tensor *x, int64_t i)
{
	float v;
	const qf_dtype_traits *tr = qf_dtype_info(x->dtype);
	tr->to_f32(x->data + (uint64_t)i * tr->block_bytes, &v, 1);
	return v;
}

void qf_ms_row_f32(const qf_tensor *t, const qf_ms_weight *w, int64_t r, float *dst)
{
	const qf_dtype_traits *tr = qf_dtype_info(t->dtype);
	int64_t K = t->shape[1];
	tr->to_f32(t->data + (uint64_t)r * (uint64_t)K * tr->block_bytes, dst, K);
	if (!w->scale) {
		float dq;
		if (w->deq->dtype == QF_I64) { /* the f32's bits, widened */
			uint32_t b;
			memcpy(&b, w->deq->data + (uint64_t)r * 8, 4);
			memcpy(&dq, &b, 4);
		} else {
			memcpy(&dq, w->deq->data + (uint64_t)r * 4, 4);
		}
		float s = dq / load1(w->in_scale, 0);
		for (int64_t k = 0; k < K; k++)
			dst[k] *= s;
		return;
	}
	int64_t G = w->scale->shape[1];
	for (int64_t g = 0; g < G; g++) {
		float s = load1(w->scale, r * G + g), o = w->offset ? load1(w->offset, r * G + g) : 0.0f;
		float *x = dst + g * w->group;
		for (int64_t k = 0; k < w->group; k++)
			x[k] = (x[k] - o) * s;
	}
}
