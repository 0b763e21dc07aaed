/*
 * hf_config.c — config.json, quantization_config, quant_model_description.json
 * and the copied tokenizer files of a Hugging Face output folder.
 *
 * Loader contracts followed (research §4–5):
 *   vLLM Fp8Config.from_config: quant_method containing "fp8", activation_scheme
 *     (required), weight_block_size, ignored_layers / modules_to_not_convert.
 *   compressed-tensors (vLLM CompressedTensorsConfig.from_config and
 *     vllm-ascend's AscendCompressedTensorsConfig): config_groups {targets,
 *     weights, input_activations, format}, ignore, format, quantization_status.
 *     Targets resolve exact name > "re:" regex > module class ("Linear"); vllm-ascend
 *     gives FusedMoE the "Linear" group's scheme (_add_fused_moe_to_target_scheme_map),
 *     so the routed experts' group is the one that targets "Linear".
 *   ascend-w4a16 is compressed-tensors because vllm-ascend registers W4A16 MoE only there:
 *     vllm_ascend/quantization/compressed_tensors_config.py (commit 0421783…),
 *     AscendCompressedTensorsConfig._detect_quant_type returns "W4A16" only from _is_w4a16
 *     (type int, num_bits 4, strategy group, not dynamic, input_activations None), and
 *     "W8A8_DYNAMIC" from _is_dynamic_token_w8a8 (8-bit channel weights, dynamic per-token
 *     8-bit inputs, both symmetric, format int-quantized): the scheme its other linears use.
 *   msModelSlim: config.json without quantization_config; quant_model_description.json
 *     with model_quant_type, version and "<tensor>": TYPE for every saved tensor.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/hf_config.h"
#include "formats/sidefile.h"

qf_status cvt_hf_write_json(const char *dir, const char *name, const cJSON *j, qf_err *err)
{
	char path[4400];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	char *txt = cJSON_Print(j);
	if (!txt)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	/* cJSON indents with tabs; Hugging Face's files use two spaces */
	size_t n = strlen(txt), k = 0;
	char *o = malloc(2 * n + 2);
	if (!o) {
		free(txt);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	int line_start = 1;
	for (size_t i = 0; i < n; i++) {
		char c = txt[i]; /* raw tabs are all formatting: strings hold them escaped */
		if (c == '\t') {
			o[k++] = ' ';
			if (line_start)
				o[k++] = ' ';
			continue;
		}
		line_start = c == '\n';
		o[k++] = c;
	}
	o[k++] = '\n';
	free(txt);
	FILE *f = fopen(path, "wbx");
	qf_status s = QF_OK;
	if (!f)
		s = qf_fail(err, QF_EIO, "%s: cannot create: %s", path, strerror(errno));
	else if (fwrite(o, 1, k, f) != k)
		s = qf_fail(err, QF_EIO, "%s: write failed: %s", path, strerror(errno));
	if (f && fclose(f) != 0 && !s)
		s = qf_fail(err, QF_EIO, "%s: write failed: %s", path, strerror(errno));
	free(o);
	return s;
}

/* ---- which modules carry which scheme ------------------------------------------------- */

/* A module the loader's quantization config applies to (MTP's eh_proj is a plain nn.Linear in vLLM: never). */
static int is_linear(const cvt_hf_item *it)
{
	return it->t->ndim == 2 && qf_str_ends_with(it->t->name, ".weight") && it->cls != CVT_CLASS_EMBED &&
	       it->cls != CVT_CLASS_NORM && !strstr(it->t->name, ".eh_proj.");
}

static int is_quant(const cvt_hf_scheme *s)
{
	return s->enc != CVT_HF_COPY && s->enc != CVT_HF_DEQUANT;
}

static int same_scheme(const cvt_hf_scheme *a, const cvt_hf_scheme *b)
{
	if (!is_quant(a) || !is_quant(b))
		return is_quant(a) == is_quant(b);
	return a->enc == b->enc && a->bits == b->bits && a->group == b->group && a->asym == b->asym &&
	       a->ue8m0 == b->ue8m0 && a->act_dynamic == b->act_dynamic;
}

static const char *class_regex(cvt_class c)
{
	switch (c) {
	case CVT_CLASS_ATTN: return "re:.*self_attn\\..*";
	case CVT_CLASS_EXPERT: return "re:.*mlp\\.experts\\..*";
	case CVT_CLASS_SHARED_EXPERT: return "re:.*mlp\\.shared_experts\\..*";
	case CVT_CLASS_DENSE_FFN: return "re:.*mlp\\.(gate|up|down)_proj$";
	case CVT_CLASS_ROUTER: return "re:.*mlp\\.gate$";
	case CVT_CLASS_OUTPUT: return "lm_head";
	default: return NULL;
	}
}

static void module_name(const cvt_hf_item *it, char *b, size_t n)
{
	snprintf(b, n, "%s", it->t->name);
	if (qf_str_ends_with(b, ".weight"))
		b[strlen(b) - strlen(".weight")] = 0;
}

/* Adds the modules of items with scheme s (s NULL: unquantized) to arr: a class regex when the
 * whole class agrees, else exact names. */
static void add_targets(const cvt_hf_plan *p, const cvt_hf_scheme *s, cJSON *arr, int skip_regex_of_linear_group)
{
	for (int c = 0; c < CVT_CLASS_COUNT; c++) {
		int any = 0, all = 1;
		for (size_t i = 0; i < p->n; i++) {
			const cvt_hf_item *it = &p->items[i];
			if ((int)it->cls != c || !is_linear(it))
				continue;
			int m = s ? same_scheme(&it->sch, s) : !is_quant(&it->sch);
			any |= m;
			all &= m;
		}
		if (!any)
			continue;
		const char *re = class_regex((cvt_class)c);
		if (all && re) {
			if (!(skip_regex_of_linear_group && c == CVT_CLASS_EXPERT))
				cJSON_AddItemToArray(arr, cJSON_CreateString(re));
			continue;
		}
		for (size_t i = 0; i < p->n; i++) {
			const cvt_hf_item *it = &p->items[i];
			if ((int)it->cls != c || !is_linear(it))
				continue;
			if (s ? same_scheme(&it->sch, s) : !is_quant(&it->sch)) {
				char m[256];
				module_name(it, m, sizeof m);
				cJSON_AddItemToArray(arr, cJSON_CreateString(m));
			}
		}
	}
}

static const char *ct_format(const cvt_hf_scheme *s)
{
	switch (s->enc) {
	case CVT_HF_CT_PACK: return "pack-quantized";
	case CVT_HF_CT_INT8: return "int-quantized";
	case CVT_HF_CT_FP8: return "float-quantized";
	default: return "dense";
	}
}

static cJSON *ct_args(int bits, const char *type, int sym, const char *strategy, int group, int dynamic)
{
	cJSON *a = cJSON_CreateObject();
	cJSON_AddNumberToObject(a, "num_bits", bits);
	cJSON_AddStringToObject(a, "type", type);
	cJSON_AddBoolToObject(a, "symmetric", sym);
	cJSON_AddStringToObject(a, "strategy", strategy);
	if (group)
		cJSON_AddNumberToObject(a, "group_size", group);
	else
		cJSON_AddNullToObject(a, "group_size");
	cJSON_AddBoolToObject(a, "dynamic", dynamic);
	cJSON_AddNullToObject(a, "actorder");
	cJSON_AddNullToObject(a, "block_structure");
	cJSON_AddStringToObject(a, "observer", dynamic ? "memoryless" : "minmax");
	cJSON_AddItemToObject(a, "observer_kwargs", cJSON_CreateObject());
	return a;
}

static cJSON *ct_group(const cvt_hf_scheme *s)
{
	cJSON *g = cJSON_CreateObject();
	cJSON *w = NULL, *in = NULL;
	switch (s->enc) {
	case CVT_HF_CT_PACK:
		w = ct_args(s->bits, "int", !s->asym, s->group ? "group" : "channel", s->group, 0);
		break;
	case CVT_HF_CT_INT8:
		w = ct_args(8, "int", 1, "channel", 0, 0);
		in = ct_args(8, "int", 1, "token", 0, 1);
		break;
	case CVT_HF_CT_FP8: {
		w = ct_args(8, "float", 1, "block", 0, 0);
		cJSON *bs = cJSON_CreateIntArray((const int[]){ 128, 128 }, 2);
		cJSON_ReplaceItemInObjectCaseSensitive(w, "block_structure", bs);
		in = ct_args(8, "float", 1, "group", 128, 1);
		break;
	}
	default: break;
	}
	cJSON_AddItemToObject(g, "targets", cJSON_CreateArray());
	cJSON_AddItemToObject(g, "weights", w ? w : cJSON_CreateNull());
	cJSON_AddItemToObject(g, "input_activations", in ? in : cJSON_CreateNull());
	cJSON_AddNullToObject(g, "output_activations");
	cJSON_AddStringToObject(g, "format", ct_format(s));
	return g;
}

cJSON *cvt_hf_quant_config(const cvt_hf_plan *p)
{
	if (p->layout == CVT_HF_FLOAT || p->layout == CVT_HF_MSMODELSLIM)
		return NULL;
	cJSON *q = cJSON_CreateObject();
	if (p->layout == CVT_HF_FP8) {
		int ue = 0;
		for (size_t i = 0; i < p->n; i++)
			ue |= p->items[i].sch.enc == CVT_HF_FP8_BLOCK && p->items[i].sch.ue8m0;
		cJSON_AddStringToObject(q, "activation_scheme", "dynamic");
		cJSON_AddStringToObject(q, "fmt", "e4m3");
		cJSON_AddStringToObject(q, "quant_method", "fp8");
		if (ue)
			cJSON_AddStringToObject(q, "scale_fmt", "ue8m0");
		cJSON_AddItemToObject(q, "weight_block_size", cJSON_CreateIntArray((const int[]){ 128, 128 }, 2));
		/* Linear modules kept unquantized (the head, routers, what the profile keeps) */
		cJSON *keep = cJSON_CreateArray();
		for (size_t i = 0; i < p->n; i++) {
			const cvt_hf_item *it = &p->items[i];
			int fp8 = it->sch.enc == CVT_HF_FP8_BLOCK || (it->sch.enc == CVT_HF_COPY && it->scale);
			if (is_linear(it) && !fp8) {
				char m[256];
				module_name(it, m, sizeof m);
				cJSON_AddItemToArray(keep, cJSON_CreateString(m));
			}
		}
		cJSON_AddItemToObject(q, "modules_to_not_convert", keep);
		cJSON_AddItemToObject(q, "ignored_layers", cJSON_Duplicate(keep, 1));
		return q;
	}
	/* compressed-tensors: one config group per distinct scheme */
	cvt_hf_scheme sch[16];
	int ns = 0, linear_group = -1;
	for (size_t i = 0; i < p->n; i++) {
		const cvt_hf_item *it = &p->items[i];
		if (!is_linear(it) || !is_quant(&it->sch))
			continue;
		int k = 0;
		while (k < ns && !same_scheme(&sch[k], &it->sch))
			k++;
		if (k == ns && ns < 16)
			sch[ns++] = it->sch;
		if (it->cls == CVT_CLASS_EXPERT && linear_group < 0)
			linear_group = k;
	}
	if (linear_group < 0)
		linear_group = 0;
	const char *fmt0 = ns ? ct_format(&sch[0]) : "dense";
	int mixed = 0;
	for (int k = 1; k < ns; k++)
		mixed |= strcmp(ct_format(&sch[k]), fmt0) != 0;
	cJSON_AddStringToObject(q, "quant_method", "compressed-tensors");
	cJSON_AddStringToObject(q, "format", mixed ? "mixed-precision" : fmt0);
	cJSON_AddStringToObject(q, "quantization_status", "compressed");
	cJSON_AddStringToObject(q, "version", "0.12.2");
	cJSON *groups = cJSON_AddObjectToObject(q, "config_groups");
	for (int k = 0; k < ns; k++) {
		char gn[32];
		snprintf(gn, sizeof gn, "group_%d", k);
		cJSON *g = ct_group(&sch[k]);
		cJSON *t = cJSON_GetObjectItemCaseSensitive(g, "targets");
		if (k == linear_group) /* Linear, and FusedMoE through it */
			cJSON_AddItemToArray(t, cJSON_CreateString("Linear"));
		add_targets(p, &sch[k], t, k == linear_group);
		cJSON_AddItemToObject(groups, gn, g);
	}
	cJSON *ign = cJSON_AddArrayToObject(q, "ignore");
	cJSON_AddItemToArray(ign, cJSON_CreateString("lm_head"));
	cJSON *rest = cJSON_CreateArray();
	add_targets(p, NULL, rest, 0);
	for (cJSON *e = rest->child; e; e = e->next)
		if (strcmp(e->valuestring, "lm_head"))
			cJSON_AddItemToArray(ign, cJSON_CreateString(e->valuestring));
	cJSON_Delete(rest);
	cJSON_AddNullToObject(q, "kv_cache_scheme");
	cJSON_AddNullToObject(q, "global_compression_ratio");
	cJSON_AddItemToObject(q, "sparsity_config", cJSON_CreateObject());
	cJSON_AddItemToObject(q, "transform_config", cJSON_CreateObject());
	return q;
}

/* msModelSlim type of a saved tensor. */
static const char *ms_type(const cvt_hf_item *it)
{
	if (it->sch.enc != CVT_HF_MS_INT8)
		return "FLOAT";
	return it->sch.act_dynamic ? "W8A8_DYNAMIC" : "W8A16";
}

qf_status cvt_hf_write_config(const cvt_hf_plan *p, const char *dir, const char *const *names, size_t n,
			      const char *profile, qf_err *err)
{
	cJSON *cfg = cJSON_Duplicate(p->ck->config, 1);
	if (!cfg)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization_config");
	cJSON *q = cvt_hf_quant_config(p);
	if (q)
		cJSON_AddItemToObject(cfg, "quantization_config", q);
	if (p->layout == CVT_HF_FLOAT && p->src_fp8 && p->opt.outtype != QF_DTYPE_NONE) {
		const char *td = p->opt.outtype == QF_F32 ? "float32" : p->opt.outtype == QF_F16 ? "float16" : "bfloat16";
		cJSON_DeleteItemFromObjectCaseSensitive(cfg, "torch_dtype");
		cJSON_AddStringToObject(cfg, "torch_dtype", td);
	}
	qf_status s = cvt_hf_write_json(dir, "config.json", cfg, err);
	cJSON_Delete(cfg);
	if (s || p->layout != CVT_HF_MSMODELSLIM)
		return s;
	/* quant_model_description.json: every saved tensor, typed by the module it belongs to */
	cJSON *d = cJSON_CreateObject();
	int dyn = 0, w8 = 0;
	for (size_t i = 0; i < p->n; i++) {
		dyn |= p->items[i].sch.enc == CVT_HF_MS_INT8 && p->items[i].sch.act_dynamic;
		w8 |= p->items[i].sch.enc == CVT_HF_MS_INT8;
	}
	cJSON_AddStringToObject(d, "model_quant_type", dyn ? "W8A8_DYNAMIC" : w8 ? "W8A16" : "FLOAT");
	cJSON_AddStringToObject(d, "version", "1.0.0");
	cJSON_AddNumberToObject(d, "group_size", 0);
	if (profile)
		cJSON_AddStringToObject(d, "qforge_profile", profile);
	size_t k = 0;
	for (size_t i = 0; i < p->n && k <= n; i++) {
		cvt_hf_part pts[4];
		int np = cvt_hf_item_parts(p, &p->items[i], pts);
		for (int j = 0; j < np; j++, k++)
			cJSON_AddStringToObject(d, pts[j].name, ms_type(&p->items[i]));
	}
	(void)names;
	s = cvt_hf_write_json(dir, "quant_model_description.json", d, err);
	cJSON_Delete(d);
	return s;
}

/* ---- copied files ------------------------------------------------------------------------ */

/* The side files this writer writes itself, and so does not copy. */
static int written_here(const char *n)
{
	static const char *const own[] = { "config.json", "model.safetensors.index.json", "quant_model_description.json",
					   "quant_model_weights.safetensors.index.json", NULL };
	for (int i = 0; own[i]; i++)
		if (!strcmp(n, own[i]))
			return 1;
	return 0;
}

/* Writes the n checked bytes of from to the new file to. */
static qf_status write_copy(const char *from, const char *to, const uint8_t *data, size_t n, qf_err *err)
{
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0)
		return qf_fail(err, QF_EIO, "%s: cannot create (copying %s): %s", to, from, strerror(errno));
	qf_status s = QF_OK;
	for (size_t o = 0; o < n;) {
		ssize_t w = write(out, data + o, n - o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s = qf_fail(err, QF_EIO, "%s: write failed: %s", to, strerror(w < 0 ? errno : ENOSPC));
			break;
		}
		o += (size_t)w;
	}
	if (close(out) != 0 && !s)
		s = qf_fail(err, QF_EIO, "%s: write failed: %s", to, strerror(errno));
	return s;
}

/*
 * The known side files (formats/sidefile.h) beside the weights, each only after it parses as
 * what its name says: the bytes checked are the bytes written.  Any other file (secret.json,
 * remote-code .py) is not copied; a known one that does not parse is an error.
 */
qf_status cvt_hf_copy_files(const cvt_hf_plan *p, const char *dir, qf_err *err)
{
	DIR *d = opendir(p->ck->dir);
	if (!d)
		return QF_OK; /* a single .safetensors file: nothing beside it */
	qf_status s = QF_OK;
	struct dirent *e;
	while (!s && (e = readdir(d)) != NULL) {
		if (qf_side_kind_of(e->d_name) == QF_SIDE_NONE || written_here(e->d_name))
			continue;
		char from[4400], to[4400];
		snprintf(from, sizeof from, "%s/%s", p->ck->dir, e->d_name);
		snprintf(to, sizeof to, "%s/%s", dir, e->d_name);
		struct stat st;
		if (stat(from, &st) != 0 || S_ISDIR(st.st_mode))
			continue; /* a dangling link or a folder: nothing to carry */
		qf_mapfile m;
		if (!(s = qf_side_open(from, &m, err))) {
			s = write_copy(from, to, m.data, (size_t)m.size, err);
			qf_mapfile_close(&m);
		}
	}
	closedir(d);
	return s;
}
