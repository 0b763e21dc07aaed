/*
 * ct_source.c — compressed-tensors checkpoints as a source: config groups,
 * targets and ignore decide each module's scheme; its stored tensors are
 * checked against it and the module becomes one logical float weight
 * (ct_source.h; decoders in formats/ctquant.c).
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <oniguruma.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/ct_source.h"
#include "formats/hfquant.h"

enum { F_NONE = -1, F_DENSE, F_PACK, F_INT, F_FLOAT, F_NAIVE, F_MIXED, F_BAD };
static const char *const fmt_names[] = { "dense", "pack-quantized", "int-quantized", "float-quantized",
					 "naive-quantized", "mixed-precision", NULL };
/* Formats compressed-tensors defines that qforge does not read (config/base.py CompressionFormat). */
static const char *const fmt_unread[] = { "nvfp4-pack-quantized", "mxfp4-pack-quantized", "mxfp8-quantized",
					  "sparse-bitmask", "sparse-24-bitmask", "marlin-24", NULL };

enum { S_TENSOR, S_CHANNEL, S_GROUP, S_BLOCK };
static const char *const strat_names[] = { "tensor", "channel", "group", "block", NULL };

typedef struct wargs {
	int bits, is_float, sym, strategy;
	int64_t group, b0, b1;
} wargs;

typedef struct group {
	const char *name;
	const cJSON *targets;     /* array of strings */
	int has_w;                /* weights args given (not null) */
	wargs w;
	int fmt;                  /* the group's own format, or F_NONE */
	const char *fmt_str;
} group;

typedef struct pattern {
	const char *src;          /* "re:…" target (borrowed from the config) */
	regex_t *re;              /* Oniguruma */
} pattern;

typedef struct ctx {
	const char *label;        /* config.json path for messages */
	const qf_st *st;
	int fmt;                  /* global format, or F_NONE */
	const char *fmt_str;
	group *groups;
	size_t ng;
	const cJSON *ignore;
	pattern *pats;
	size_t npat;
	qf_err *err;
} ctx;

/* What the view owns. */
typedef struct ct_view {
	qf_tensor *t;
	qf_ctq *q;
	char **names;
	size_t n, nq;
} ct_view;

static void view_free(void *p)
{
	ct_view *v = p;
	if (!v)
		return;
	for (size_t i = 0; i < v->nq; i++)
		free(v->names[i]);
	free(v->names);
	free(v->t);
	free(v->q);
	free(v);
}

static const char *file_of(const ctx *c, const qf_tensor *t)
{
	const char *f = qf_st_file_path(c->st, (size_t)(t->file >= 0 ? t->file : 0));
	return f ? f : c->label;
}

static int str_index(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(names[i], s))
			return i;
	return -1;
}

/* ---- config ------------------------------------------------------------------------ */

/* A format string; one qforge does not read is F_BAD, reported by the first module that uses it. */
static qf_status parse_format(const ctx *c, const cJSON *j, const char *where, int *out, const char **str)
{
	*out = F_NONE;
	*str = NULL;
	if (!j || cJSON_IsNull(j))
		return QF_OK;
	if (!cJSON_IsString(j))
		return qf_fail(c->err, QF_EFORMAT, "%s: quantization_config%s.format is not a string", c->label, where);
	*str = j->valuestring;
	*out = str_index(fmt_names, j->valuestring);
	if (*out < 0)
		*out = F_BAD;
	return QF_OK;
}

static int json_int(const cJSON *j, int64_t lo, int64_t hi, int64_t *v)
{
	if (!cJSON_IsNumber(j) || floor(j->valuedouble) != j->valuedouble || j->valuedouble < (double)lo ||
	    j->valuedouble > (double)hi)
		return 0;
	*v = (int64_t)j->valuedouble;
	return 1;
}

/* QuantizationArgs of a group's weights (compressed-tensors quant_args.py, with its defaults). */
static qf_status parse_wargs(const ctx *c, const char *gname, const cJSON *w, wargs *a)
{
	char where[200];
	snprintf(where, sizeof where, "%s: quantization_config.config_groups.%s.weights", c->label, gname);
	memset(a, 0, sizeof *a);
	a->bits = 8;
	a->sym = 1;
	a->strategy = -1;
	const cJSON *j;
	int64_t v;
	if ((j = cJSON_GetObjectItemCaseSensitive(w, "num_bits")) && !cJSON_IsNull(j)) {
		if (!json_int(j, 1, 64, &v))
			return qf_fail(c->err, QF_EFORMAT, "%s.num_bits is not a positive integer", where);
		a->bits = (int)v;
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(w, "type")) && !cJSON_IsNull(j)) {
		if (!cJSON_IsString(j) || (strcmp(j->valuestring, "int") && strcmp(j->valuestring, "float")))
			return qf_fail(c->err, QF_EFORMAT, "%s.type must be \"int\" or \"float\"", where);
		a->is_float = !strcmp(j->valuestring, "float");
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(w, "symmetric")) && !cJSON_IsNull(j)) {
		if (!cJSON_IsBool(j))
			return qf_fail(c->err, QF_EFORMAT, "%s.symmetric is not a boolean", where);
		a->sym = cJSON_IsTrue(j);
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(w, "dynamic")) && !cJSON_IsNull(j) && !cJSON_IsFalse(j))
		return qf_fail(c->err, QF_EFORMAT,
			       "%s.dynamic: dynamic weight quantization is not read (a checkpoint's weights carry static scales)",
			       where);
	if ((j = cJSON_GetObjectItemCaseSensitive(w, "actorder")) && !cJSON_IsNull(j) && !cJSON_IsFalse(j)) {
		/* "weight"/"static" only reorders the quantization: groups stay contiguous, no g_idx */
		if (!cJSON_IsString(j) || (strcmp(j->valuestring, "weight") && strcmp(j->valuestring, "static")))
			return qf_fail(c->err, QF_EFORMAT,
				       "%s.actorder %s: activation-order group indices (weight_g_idx) are not read",
				       where, cJSON_IsString(j) ? j->valuestring : "true");
	}
	int64_t gs = 0;
	int has_gs = 0;
	if ((j = cJSON_GetObjectItemCaseSensitive(w, "group_size")) && !cJSON_IsNull(j)) {
		if (!json_int(j, -1, (int64_t)1 << 30, &gs) || gs == 0)
			return qf_fail(c->err, QF_EFORMAT, "%s.group_size is not a positive integer or -1", where);
		has_gs = 1;
	}
	if ((j = cJSON_GetObjectItemCaseSensitive(w, "strategy")) && !cJSON_IsNull(j)) {
		if (!cJSON_IsString(j))
			return qf_fail(c->err, QF_EFORMAT, "%s.strategy is not a string", where);
		a->strategy = str_index(strat_names, j->valuestring);
		if (a->strategy < 0)
			return qf_fail(c->err, QF_EFORMAT, "%s.strategy \"%s\" is not read for weights (tensor, channel, group and block are)",
				       where, j->valuestring);
	} else {
		/* quant_args.py: a group_size implies group (−1: channel); none: tensor */
		a->strategy = has_gs ? (gs > 0 ? S_GROUP : S_CHANNEL) : S_TENSOR;
	}
	if (a->strategy == S_GROUP) {
		if (!has_gs || gs <= 0)
			return qf_fail(c->err, QF_EFORMAT, "%s: strategy group needs a positive group_size", where);
		a->group = gs;
	}
	if (a->strategy == S_BLOCK) {
		const cJSON *bs = cJSON_GetObjectItemCaseSensitive(w, "block_structure");
		int64_t b0 = 0, b1 = 0;
		int okk = cJSON_IsArray(bs) && cJSON_GetArraySize(bs) == 2 &&
			  json_int(cJSON_GetArrayItem(bs, 0), 1, 1 << 20, &b0) && json_int(cJSON_GetArrayItem(bs, 1), 1, 1 << 20, &b1);
		if (!okk && cJSON_IsString(bs)) /* older releases: "128x128" */
			okk = sscanf(bs->valuestring, "%" SCNd64 "x%" SCNd64, &b0, &b1) == 2 && b0 >= 1 && b1 >= 1 &&
			      b0 <= 1 << 20 && b1 <= 1 << 20;
		if (!okk)
			return qf_fail(c->err, QF_EFORMAT, "%s.block_structure must be two integers from 1 to 1048576", where);
		a->b0 = b0;
		a->b1 = b1;
	}
	if (a->is_float && a->bits != 8)
		return qf_fail(c->err, QF_EFORMAT, "%s: float weights of %d bits are not read (fp8 is)", where, a->bits);
	if (!a->is_float && a->bits > 8)
		return qf_fail(c->err, QF_EFORMAT, "%s: int weights of %d bits are not read (at most 8)", where, a->bits);
	return QF_OK;
}

/* A "re:" target, compiled with Python's syntax (Oniguruma's; libonig also shadows POSIX regcomp). */
static qf_status add_pattern(ctx *c, const char *target)
{
	const UChar *p = (const UChar *)target + 3, *e = p + strlen((const char *)p);
	pattern *g = realloc(c->pats, (c->npat + 1) * sizeof *g);
	if (!g)
		return qf_fail(c->err, QF_ENOMEM, "out of memory");
	c->pats = g;
	OnigEncoding enc = ONIG_ENCODING_UTF8;
	OnigErrorInfo einfo;
	regex_t *re = NULL;
	onig_initialize(&enc, 1);
	int rc = onig_new(&re, p, e, ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_PYTHON, &einfo);
	if (rc != ONIG_NORMAL) {
		UChar m[ONIG_MAX_ERROR_MESSAGE_LEN];
		onig_error_code_to_str(m, rc, &einfo);
		return qf_fail(c->err, QF_EFORMAT, "%s: quantization_config: target \"%s\" is not a regex qforge reads: %s",
			       c->label, target, (const char *)m);
	}
	g[c->npat].re = re;
	g[c->npat++].src = target;
	return QF_OK;
}

static const pattern *find_pattern(const ctx *c, const char *target)
{
	for (size_t i = 0; i < c->npat; i++)
		if (c->pats[i].src == target)
			return &c->pats[i];
	return NULL;
}

/* The targets of an array (config_groups' or ignore) are strings; regexes compiled once. */
static qf_status add_targets(ctx *c, const cJSON *arr, const char *what)
{
	if (!cJSON_IsArray(arr))
		return qf_fail(c->err, QF_EFORMAT, "%s: quantization_config.%s is not a list", c->label, what);
	const cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		if (!cJSON_IsString(e))
			return qf_fail(c->err, QF_EFORMAT, "%s: quantization_config.%s holds a non-string", c->label, what);
		qf_status s;
		if (!strncmp(e->valuestring, "re:", 3) && (s = add_pattern(c, e->valuestring)))
			return s;
	}
	return QF_OK;
}

/*
 * Backtracking steps one target may take on one module name.  Real targets take a few hundred
 * on names of ~80 bytes; Oniguruma's own default (10 million, per name and per target) lets a
 * pattern such as "re:(.*)*x$" run for minutes over a checkpoint's modules.
 */
#define CT_REGEX_RETRY_LIMIT 100000

/* Match level of module name against target: 3 exact, 2 regex, 1 class "Linear", 0 none;
 * -1 with c->err set when the regex gives up (its retry limit), which is not "no match". */
static int match_level(const ctx *c, const char *name, const char *target)
{
	if (!strcmp(name, target))
		return 3;
	if (!strncmp(target, "re:", 3)) {
		const pattern *p = find_pattern(c, target);
		if (!p)
			return 0;
		const UChar *s = (const UChar *)name, *e = s + strlen(name);
		OnigMatchParam *mp = onig_new_match_param();
		if (!mp) {
			qf_fail(c->err, QF_ENOMEM, "out of memory");
			return -1;
		}
		onig_initialize_match_param(mp);
		onig_set_retry_limit_in_match_of_match_param(mp, CT_REGEX_RETRY_LIMIT);
		int r = onig_match_with_param(p->re, s, e, s, NULL, ONIG_OPTION_NONE, mp); /* re.match: from the start */
		onig_free_match_param(mp);
		if (r >= 0)
			return 2;
		if (r == ONIG_MISMATCH)
			return 0;
		UChar m[ONIG_MAX_ERROR_MESSAGE_LEN];
		onig_error_code_to_str(m, r);
		qf_fail(c->err, QF_EFORMAT, "%s: quantization_config: target \"%s\" gave up matching module '%s' (%s); a target this costly is not read",
			c->label, target, name, (const char *)m);
		return -1;
	}
	return !strcmp(target, "Linear") ? 1 : 0;
}

static int best_level(const ctx *c, const char *name, const cJSON *arr, const char **which)
{
	int best = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		int l = cJSON_IsString(e) ? match_level(c, name, e->valuestring) : 0;
		if (l < 0)
			return -1;
		if (l > best) {
			best = l;
			*which = e->valuestring;
		}
	}
	return best;
}

static void ctx_free(ctx *c)
{
	for (size_t i = 0; i < c->npat; i++)
		onig_free(c->pats[i].re);
	free(c->pats);
	free(c->groups);
}

static int empty_or_null(const cJSON *j)
{
	return !j || cJSON_IsNull(j) || (cJSON_IsObject(j) && !j->child);
}

static qf_status parse_config(ctx *c, const cJSON *qc)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(qc, "quantization_status");
	if (j && !cJSON_IsNull(j) && (!cJSON_IsString(j) || strcmp(j->valuestring, "compressed")))
		return qf_fail(c->err, QF_EFORMAT,
			       "%s: quantization_config.quantization_status \"%s\": only compressed checkpoints are read",
			       c->label, cJSON_IsString(j) ? j->valuestring : "?");
	const cJSON *sp = cJSON_GetObjectItemCaseSensitive(qc, "sparsity_config");
	if (!empty_or_null(sp)) {
		const char *f = cJSON_IsObject(sp) ? qf_json_get_str(sp, "format") : NULL;
		if (!f || strcmp(f, "dense"))
			return qf_fail(c->err, QF_EFORMAT, "%s: quantization_config.sparsity_config (format %s) is not read",
				       c->label, f ? f : "?");
	}
	if (!empty_or_null(cJSON_GetObjectItemCaseSensitive(qc, "transform_config")))
		return qf_fail(c->err, QF_EFORMAT,
			       "%s: quantization_config.transform_config: weights stored in a transformed (rotated) basis are not read",
			       c->label);
	qf_status s = parse_format(c, cJSON_GetObjectItemCaseSensitive(qc, "format"), "", &c->fmt, &c->fmt_str);
	if (s)
		return s;
	const cJSON *ig = cJSON_GetObjectItemCaseSensitive(qc, "ignore");
	if (ig && !cJSON_IsNull(ig)) {
		if ((s = add_targets(c, ig, "ignore")))
			return s;
		c->ignore = ig;
	}
	const cJSON *gs = cJSON_GetObjectItemCaseSensitive(qc, "config_groups");
	if (!gs || cJSON_IsNull(gs))
		return QF_OK;
	if (!cJSON_IsObject(gs))
		return qf_fail(c->err, QF_EFORMAT, "%s: quantization_config.config_groups is not an object", c->label);
	size_t n = (size_t)cJSON_GetArraySize(gs);
	c->groups = calloc(n ? n : 1, sizeof *c->groups);
	if (!c->groups)
		return qf_fail(c->err, QF_ENOMEM, "out of memory");
	const cJSON *g;
	cJSON_ArrayForEach(g, gs)
	{
		group *gr = &c->groups[c->ng++];
		char what[200];
		gr->name = g->string;
		snprintf(what, sizeof what, "config_groups.%s.targets", g->string);
		if (!cJSON_IsObject(g))
			return qf_fail(c->err, QF_EFORMAT, "%s: quantization_config.config_groups.%s is not an object",
				       c->label, g->string);
		gr->targets = cJSON_GetObjectItemCaseSensitive(g, "targets");
		if ((s = add_targets(c, gr->targets, what)))
			return s;
		snprintf(what, sizeof what, ".config_groups.%s", g->string);
		if ((s = parse_format(c, cJSON_GetObjectItemCaseSensitive(g, "format"), what, &gr->fmt, &gr->fmt_str)))
			return s;
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(g, "weights");
		if (w && !cJSON_IsNull(w)) {
			if (!cJSON_IsObject(w))
				return qf_fail(c->err, QF_EFORMAT, "%s: quantization_config.config_groups.%s.weights is not an object",
					       c->label, g->string);
			gr->has_w = 1;
			if ((s = parse_wargs(c, g->string, w, &gr->w)))
				return s;
		}
	}
	return QF_OK;
}

/* ---- modules ------------------------------------------------------------------------ */

static const char *const companions[] = { "weight_packed", "weight_scale", "weight_zero_point", "weight_shape",
					  "weight_g_idx", "weight_global_scale", NULL };
static const char *const act_scales[] = { "input_scale", "input_zero_point", "output_scale", "output_zero_point",
					  "k_scale", "v_scale", "k_zero_point", "v_zero_point", "input_global_scale", NULL };

/* The suffix after the module's last '.', if it is one of names; module length in *ml. */
static int suffix_in(const char *name, const char *const *names, size_t *ml)
{
	const char *dot = strrchr(name, '.');
	if (!dot)
		return -1;
	*ml = (size_t)(dot - name);
	return str_index(names, dot + 1);
}

static const qf_tensor *companion(const ctx *c, const char *mod, const char *suffix)
{
	char n[640];
	snprintf(n, sizeof n, "%s.%s", mod, suffix);
	return qf_st_raw_find(c->st, n);
}

static void shape_str(const qf_tensor *t, char *b, size_t n) { qf_dims_str(t->ndim, t->shape, b, n); }

static qf_status bad_t(const ctx *c, const qf_tensor *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static qf_status bad_t(const ctx *c, const qf_tensor *t, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return qf_fail(c->err, QF_EFORMAT, "%s: tensor '%s': %s", file_of(c, t), t->name, msg);
}

static int is_scale_dtype(qf_dtype d) { return d == QF_F32 || d == QF_BF16 || d == QF_F16; }

/* Checks module mod (its weight_scale is sc) and fills q; *main is the tensor holding its codes. */
static qf_status plan_module(const ctx *c, const char *mod, const qf_tensor *sc, qf_ctq *q, const qf_tensor **main,
			     char *desc, size_t dn)
{
	const qf_tensor *g_idx = companion(c, mod, "weight_g_idx");
	if (g_idx)
		return bad_t(c, g_idx, "activation-order group indices (weight_g_idx) are not read");
	const qf_tensor *gsc = companion(c, mod, "weight_global_scale");
	if (gsc)
		return bad_t(c, gsc, "a global scale (nvfp4) is not read");
	const char *which = NULL;
	int ig = c->ignore ? best_level(c, mod, c->ignore, &which) : 0;
	if (ig < 0)
		return QF_EFORMAT;
	if (ig)
		return bad_t(c, sc, "module '%s' is in quantization_config.ignore (\"%s\") but stored quantized", mod, which);
	const group *gr = NULL;
	int best = 0;
	for (size_t i = 0; i < c->ng; i++) {
		if (!c->groups[i].has_w || !cJSON_IsArray(c->groups[i].targets))
			continue;
		int l = best_level(c, mod, c->groups[i].targets, &which);
		if (l < 0)
			return QF_EFORMAT; /* c->err says why */
		if (l > best) {
			best = l;
			gr = &c->groups[i];
		}
	}
	if (!gr)
		return bad_t(c, sc, "no quantization_config.config_groups entry with weights targets module '%s'", mod);
	const wargs *a = &gr->w;
	const qf_tensor *packed = companion(c, mod, "weight_packed"), *w = companion(c, mod, "weight");
	int fmt = gr->fmt != F_NONE ? gr->fmt : c->fmt;
	if (fmt == F_BAD) {
		const char *f = gr->fmt != F_NONE ? gr->fmt_str : c->fmt_str;
		if (str_index(fmt_unread, f) >= 0)
			return bad_t(c, sc, "format \"%s\" (group %s) is not read (qforge reads pack-quantized, int-quantized, float-quantized and naive-quantized)",
				     f, gr->name);
		return bad_t(c, sc, "format \"%s\" (group %s) is unknown", f, gr->name);
	}
	if (fmt == F_NONE || fmt == F_MIXED) /* inferred from what is stored */
		fmt = packed ? F_PACK : a->is_float ? F_FLOAT : F_INT;
	if (fmt == F_DENSE)
		return bad_t(c, sc, "group %s is stored \"dense\" but module '%s' has a weight_scale", gr->name, mod);
	if (fmt == F_NAIVE)
		fmt = a->is_float ? F_FLOAT : F_INT;
	memset(q, 0, sizeof *q);
	q->bits = a->bits;
	if (fmt == F_PACK) {
		if (a->is_float)
			return bad_t(c, sc, "pack-quantized float weights are not read");
		if (32 % a->bits)
			return bad_t(c, sc, "pack-quantized %d-bit weights are not read (1, 2, 4 and 8 bits are)", a->bits);
		if (!packed)
			return bad_t(c, sc, "module '%s' has no %s.weight_packed (format pack-quantized)", mod, mod);
		if (w)
			return bad_t(c, w, "stored next to %s.weight_packed", mod);
		const qf_tensor *ws = companion(c, mod, "weight_shape");
		if (!ws)
			return bad_t(c, packed, "no %s.weight_shape: the unpacked shape is unknown", mod);
		if ((ws->dtype != QF_I32 && ws->dtype != QF_I64) || ws->ndim != 1 || ws->shape[0] != 2)
			return bad_t(c, ws, "weight_shape must be I32 or I64 [2], not %s with %d dims", qf_dtype_name(ws->dtype),
				     ws->ndim);
		int64_t sh[2];
		for (int i = 0; i < 2; i++) {
			if (ws->dtype == QF_I64) {
				memcpy(&sh[i], ws->data + 8 * i, 8);
			} else {
				int32_t x;
				memcpy(&x, ws->data + 4 * i, 4);
				sh[i] = x;
			}
		}
		if (sh[0] < 1 || sh[1] < 1 || sh[0] > ((int64_t)1 << 32) || sh[1] > ((int64_t)1 << 32))
			return bad_t(c, ws, "weight_shape [%lld, %lld] is not a matrix shape", (long long)sh[0], (long long)sh[1]);
		if (packed->dtype != QF_I32 || packed->ndim != 2)
			return bad_t(c, packed, "weight_packed must be I32 with 2 dims, not %s with %d", qf_dtype_name(packed->dtype),
				     packed->ndim);
		if (packed->shape[0] != sh[0] || packed->shape[1] != qf_ctq_row_words(sh[1], a->bits)) {
			char b[64];
			shape_str(packed, b, sizeof b);
			return bad_t(c, packed, "packed shape %s does not hold weight_shape [%lld, %lld] at %d bits (want [%lld, %lld])", b,
				     (long long)sh[0], (long long)sh[1], a->bits, (long long)sh[0],
				     (long long)qf_ctq_row_words(sh[1], a->bits));
		}
		q->kind = QF_CTQ_PACK;
		q->N = sh[0];
		q->K = sh[1];
		*main = packed;
	} else {
		if (packed)
			return bad_t(c, packed, "format %s does not store weight_packed", fmt_names[fmt]);
		if (!w)
			return bad_t(c, sc, "module '%s' has no %s.weight", mod, mod);
		if (w->ndim != 2)
			return bad_t(c, w, "a quantized weight must have 2 dims, not %d", w->ndim);
		if (fmt == F_FLOAT) {
			if (!a->is_float)
				return bad_t(c, w, "float-quantized needs weights of type float");
			if (w->dtype != QF_F8_E4M3)
				return bad_t(c, w, "float-quantized weight is %s, not F8_E4M3", qf_dtype_name(w->dtype));
			q->kind = QF_CTQ_FP8;
		} else {
			if (a->is_float)
				return bad_t(c, w, "int-quantized needs weights of type int");
			if (w->dtype != QF_I8)
				return bad_t(c, w, "int-quantized weight is %s, not I8", qf_dtype_name(w->dtype));
			q->kind = QF_CTQ_INT;
		}
		q->N = w->shape[0];
		q->K = w->shape[1];
		*main = w;
	}
	/* the scale grid */
	int64_t N = q->N, K = q->K, rows = 1, cols = 1;
	switch (a->strategy) {
	case S_TENSOR: q->br = N; q->bc = K; break;
	case S_CHANNEL: q->br = 1; q->bc = K; rows = N; break;
	case S_GROUP:
		if (K % a->group)
			return bad_t(c, *main, "group_size %lld does not divide the row length %lld", (long long)a->group,
				     (long long)K);
		q->br = 1; q->bc = a->group; rows = N; cols = K / a->group;
		break;
	case S_BLOCK:
		q->br = a->b0; q->bc = a->b1; rows = (N + a->b0 - 1) / a->b0; cols = (K + a->b1 - 1) / a->b1;
		break;
	}
	q->scols = cols;
	int shape_ok = (uint64_t)rows * (uint64_t)cols == sc->nelems &&
		       ((sc->ndim == 2 && sc->shape[0] == rows && sc->shape[1] == cols) ||
			(sc->ndim == 1 && (rows == 1 || cols == 1)) || (sc->ndim == 0 && rows * cols == 1));
	if (!shape_ok) {
		char b[64];
		shape_str(sc, b, sizeof b);
		return bad_t(c, sc, "scale shape %s does not fit strategy %s of [%lld, %lld] (want [%lld, %lld])", b,
			     strat_names[a->strategy], (long long)N, (long long)K, (long long)rows, (long long)cols);
	}
	if (!is_scale_dtype(sc->dtype))
		return bad_t(c, sc, "scale dtype %s is not read (F32, BF16 and F16 are)", qf_dtype_name(sc->dtype));
	for (uint64_t i = 0; i < sc->nelems; i++) {
		float f = qf_hfq_load_scale(sc->dtype, sc->data + i * qf_dtype_info(sc->dtype)->block_bytes);
		if (!isfinite(f))
			return bad_t(c, sc, "non-finite scale %g at element %llu", (double)f, (unsigned long long)i);
	}
	q->scale = sc->data;
	q->sdt = sc->dtype;
	/* zero points */
	const qf_tensor *zp = companion(c, mod, "weight_zero_point");
	if (zp) {
		char b[64];
		shape_str(zp, b, sizeof b);
		if (fmt == F_PACK && zp->dtype == QF_I32 && zp->ndim == 2 &&
		    zp->shape[0] == qf_ctq_row_words(rows, a->bits) && zp->shape[1] == cols && a->strategy != S_TENSOR &&
		    a->strategy != S_BLOCK) {
			q->zp_packed = 1;
		} else if (zp->nelems == sc->nelems && (zp->ndim == sc->ndim || zp->ndim <= 1) &&
			   (zp->ndim < 2 || (zp->shape[0] == rows && zp->shape[1] == cols)) &&
			   (qf_dtype_info(zp->dtype)->is_float || zp->dtype == QF_I8 || zp->dtype == QF_U8 ||
			    zp->dtype == QF_I16 || zp->dtype == QF_I32 || zp->dtype == QF_I64)) {
			q->zdt = zp->dtype;
		} else if (fmt == F_PACK) {
			return bad_t(c, zp, "zero-point shape %s %s fits neither packed [%lld, %lld] I32 nor the scale's [%lld, %lld]",
				     b, qf_dtype_name(zp->dtype), (long long)qf_ctq_row_words(rows, a->bits), (long long)cols,
				     (long long)rows, (long long)cols);
		} else {
			return bad_t(c, zp, "zero-point shape %s %s does not match the scale's [%lld, %lld]", b,
				     qf_dtype_name(zp->dtype), (long long)rows, (long long)cols);
		}
		q->zp = zp->data;
	} else if (!a->sym) {
		return bad_t(c, *main, "asymmetric weights need %s.weight_zero_point", mod);
	}
	q->q = (*main)->data;
	const char *kind = a->is_float ? "fp" : "int";
	if (a->strategy == S_GROUP)
		snprintf(desc, dn, "%s%d g%lld", kind, a->bits, (long long)a->group);
	else if (a->strategy == S_BLOCK)
		snprintf(desc, dn, "%s%d block %lldx%lld", kind, a->bits, (long long)a->b0, (long long)a->b1);
	else
		snprintf(desc, dn, "%s%d %s", kind, a->bits, strat_names[a->strategy]);
	size_t l = strlen(desc);
	snprintf(desc + l, dn - l, "%s %s", a->sym ? "" : " asym", fmt_names[fmt]);
	return QF_OK;
}

static qf_dtype logical_dtype(const cJSON *config)
{
	const char *s = config ? qf_json_get_str(config, "torch_dtype") : NULL;
	if (!s && config)
		s = qf_json_get_str(config, "dtype"); /* transformers ≥ 4.56 */
	if (s && !strcmp(s, "float16"))
		return QF_F16;
	if (s && !strcmp(s, "float32"))
		return QF_F32;
	return QF_BF16;
}

static void note_scheme(cvt_ct_summary *sum, const char *desc, size_t *counts, char (*descs)[64], size_t *nd)
{
	for (size_t i = 0; i < *nd; i++) {
		if (!strcmp(descs[i], desc)) {
			counts[i]++;
			return;
		}
	}
	if (*nd < 8) {
		snprintf(descs[*nd], 64, "%s", desc);
		counts[(*nd)++] = 1;
	}
	(void)sum;
}

int cvt_ct_is(const qf_ckpt *ck)
{
	const cJSON *qc = ck && ck->config ? cJSON_GetObjectItemCaseSensitive(ck->config, "quantization_config") : NULL;
	const char *qm = cJSON_IsObject(qc) ? qf_json_get_str(qc, "quant_method") : NULL;
	return qm && !strcmp(qm, "compressed-tensors");
}

qf_status cvt_ct_attach_st(qf_st *st, const cJSON *config, const char *label, cvt_ct_summary *sum, qf_err *err)
{
	cvt_ct_summary dummy;
	if (!sum)
		sum = &dummy;
	memset(sum, 0, sizeof *sum);
	const cJSON *qc = config ? cJSON_GetObjectItemCaseSensitive(config, "quantization_config") : NULL;
	const char *qm = cJSON_IsObject(qc) ? qf_json_get_str(qc, "quant_method") : NULL;
	if (!qm || strcmp(qm, "compressed-tensors"))
		return QF_OK;
	sum->is_ct = 1;
	if (qf_st_count(st) != qf_st_raw_count(st) || (qf_st_count(st) && qf_st_get(st, 0) != qf_st_raw_get(st, 0)))
		return QF_OK; /* already installed */
	ctx c = { .label = label, .st = st, .fmt = F_NONE, .err = err };
	qf_status s = parse_config(&c, qc);
	size_t n = qf_st_raw_count(st);
	ct_view *v = NULL;
	size_t counts[8] = { 0 }, nd = 0;
	char descs[8][64];
	if (s)
		goto out;
	if (!(v = calloc(1, sizeof *v)) || !(v->t = calloc(n ? n : 1, sizeof *v->t)) ||
	    !(v->q = calloc(n ? n : 1, sizeof *v->q)) || !(v->names = calloc(n ? n : 1, sizeof *v->names))) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	/* pass 1: every module with a weight_scale becomes one logical weight, in its main tensor's place */
	const qf_tensor **main_of = calloc(n ? n : 1, sizeof *main_of); /* raw index → its module's main, or NULL */
	size_t *slot = calloc(n ? n : 1, sizeof *slot);
	if (!main_of || !slot) {
		free(main_of);
		free(slot);
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	char mod[600];
	for (size_t i = 0; i < n && !s; i++) {
		const qf_tensor *t = qf_st_raw_get(st, i);
		size_t ml;
		if (suffix_in(t->name, companions, &ml) != 1 || ml >= sizeof mod)
			continue;
		memcpy(mod, t->name, ml);
		mod[ml] = 0;
		qf_ctq *q = &v->q[v->nq];
		const qf_tensor *m = NULL;
		char desc[64];
		if ((s = plan_module(&c, mod, t, q, &m, desc, sizeof desc)))
			break;
		note_scheme(sum, desc, counts, descs, &nd);
		size_t mi = (size_t)(m - qf_st_raw_get(st, 0));
		char *name = malloc(ml + 8);
		if (!name) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			break;
		}
		snprintf(name, ml + 8, "%s.weight", mod);
		v->names[v->nq] = name;
		main_of[mi] = m;
		slot[mi] = v->nq++;
	}
	/* pass 2: the view, in stored order; companions and activation scales hidden */
	for (size_t i = 0; i < n && !s; i++) {
		const qf_tensor *t = qf_st_raw_get(st, i);
		size_t ml;
		if (main_of[i]) {
			qf_tensor *o = &v->t[v->n++];
			const qf_ctq *q = &v->q[slot[i]];
			*o = *t;
			o->name = v->names[slot[i]];
			o->dtype = logical_dtype(config);
			o->ndim = 2;
			memset(o->shape, 0, sizeof o->shape);
			o->shape[0] = q->N;
			o->shape[1] = q->K;
			o->nelems = (uint64_t)q->N * (uint64_t)q->K;
			o->ctq = q;
			continue;
		}
		int k = suffix_in(t->name, companions, &ml);
		if (k >= 0) {
			if (ml < sizeof mod) {
				memcpy(mod, t->name, ml);
				mod[ml] = 0;
			}
			if (ml >= sizeof mod || !companion(&c, mod, "weight_scale")) {
				s = bad_t(&c, t, "no %.*s.weight_scale: a compressed-tensors companion without its scale",
					  (int)ml, t->name);
				break;
			}
			sum->n_hidden++;
			continue;
		}
		if (suffix_in(t->name, act_scales, &ml) >= 0) {
			sum->n_hidden++;
			continue;
		}
		/* a stored weight whose module is quantized is its main tensor (handled above) */
		v->t[v->n++] = *t;
	}
	free(main_of);
	free(slot);
	if (s)
		goto out;
	sum->n_quant = v->nq;
	for (size_t i = 0, k = 0; i < nd && k < sizeof sum->schemes; i++)
		k += (size_t)snprintf(sum->schemes + k, sizeof sum->schemes - k, "%s%s ×%zu", i ? "; " : "", descs[i],
				      counts[i]);
	s = qf_st_set_view(st, v->t, v->n, view_free, v, err);
	v = NULL; /* owned by st now (freed on failure too) */
out:
	view_free(v);
	ctx_free(&c);
	return s;
}

qf_status cvt_ct_attach(qf_ckpt *ck, cvt_ct_summary *sum, qf_err *err)
{
	char label[4200];
	snprintf(label, sizeof label, "%s/config.json", ck->path);
	if (!ck->st) {
		if (sum)
			memset(sum, 0, sizeof *sum);
		return QF_OK;
	}
	return cvt_ct_attach_st(ck->st, ck->config, label, sum, err);
}
