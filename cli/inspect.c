#include "config.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "cli/cli.h"
#include "convert/ct_source.h"
#include "formats/mapfile.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/packed.h"
#include "formats/qformat.h"
#include "formats/safetensors.h"

typedef struct totals {
	uint64_t ntensors, params, scale_params, bytes;
	uint64_t by_dtype[QF_DTYPE_COUNT];
} totals;

static void add_total(totals *t, const qf_tensor *x)
{
	t->ntensors++;
	if (qf_str_ends_with(x->name, "_scale_inv"))
		t->scale_params += x->nelems;
	else
		t->params += x->nelems;
	t->bytes += x->nbytes;
	if ((int)x->dtype >= 0 && x->dtype < QF_DTYPE_COUNT)
		t->by_dtype[x->dtype] += x->nbytes;
}

static void shape_str(const qf_tensor *t, char *b, size_t n)
{
	size_t p = 0;
	p += (size_t)snprintf(b + p, n - p, "[");
	for (int i = 0; i < t->ndim && p < n; i++)
		p += (size_t)snprintf(b + p, n - p, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
	if (p < n)
		snprintf(b + p, n - p, "]");
}

static cJSON *tensor_json(const qf_tensor *t, const char *file, int hashes)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", t->name);
	cJSON_AddStringToObject(o, "dtype", qf_dtype_name(t->dtype));
	cJSON *sh = cJSON_AddArrayToObject(o, "shape");
	for (int i = 0; i < t->ndim; i++)
		cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[i]));
	cJSON_AddNumberToObject(o, "nbytes", (double)t->nbytes);
	cJSON_AddNumberToObject(o, "offset", (double)t->offset);
	if (file)
		cJSON_AddStringToObject(o, "file", file);
	if (hashes) {
		char h[17];
		snprintf(h, sizeof h, "%016llx", (unsigned long long)XXH64(t->data, (size_t)t->nbytes, 0));
		cJSON_AddStringToObject(o, "xxh64", h);
	}
	return o;
}

static void print_tensor(const qf_tensor *t, const char *file, int hashes)
{
	char sh[128], hb[32];
	shape_str(t, sh, sizeof sh);
	printf("  %-48s %-8s %-22s %12llu", t->name, qf_dtype_name(t->dtype), sh,
	       (unsigned long long)t->nbytes);
	if (file)
		printf("  %s", file);
	else
		printf("  @%llu", (unsigned long long)t->offset);
	if (hashes) {
		snprintf(hb, sizeof hb, "%016llx", (unsigned long long)XXH64(t->data, (size_t)t->nbytes, 0));
		printf("  %s", hb);
	}
	printf("\n");
}

static cJSON *totals_json(const totals *t)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "tensors", (double)t->ntensors);
	cJSON_AddNumberToObject(o, "parameters", (double)t->params);
	cJSON_AddNumberToObject(o, "scale_elements", (double)t->scale_params);
	cJSON_AddNumberToObject(o, "bytes", (double)t->bytes);
	cJSON *bd = cJSON_AddObjectToObject(o, "bytes_by_dtype");
	for (int i = 0; i < QF_DTYPE_COUNT; i++)
		if (t->by_dtype[i])
			cJSON_AddNumberToObject(bd, qf_dtype_name((qf_dtype)i), (double)t->by_dtype[i]);
	return o;
}

static void print_totals(const totals *t)
{
	char hb[32];
	printf("totals: %llu tensors, %llu parameters", (unsigned long long)t->ntensors,
	       (unsigned long long)t->params);
	if (t->scale_params)
		printf(" (+%llu scale elements)", (unsigned long long)t->scale_params);
	printf(", %s\n", cli_human_bytes(t->bytes, hb, sizeof hb));
	for (int i = 0; i < QF_DTYPE_COUNT; i++)
		if (t->by_dtype[i])
			printf("  %-8s %s\n", qf_dtype_name((qf_dtype)i),
			       cli_human_bytes(t->by_dtype[i], hb, sizeof hb));
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int inspect_ckpt(const char *path, int json, int hashes)
{
	qf_err err = { { 0 } };
	qf_ckpt *c = NULL;
	qf_status s = qf_ckpt_open(path, &c, &err);
	if (s)
		return cli_error("inspect", s, &err);
	totals tot;
	memset(&tot, 0, sizeof tot);
	const qf_st *st = c->st;
	const char *arch = NULL;
	const cJSON *archs = c->config ? cJSON_GetObjectItemCaseSensitive(c->config, "architectures") : NULL;
	if (cJSON_IsArray(archs) && cJSON_IsString(archs->child))
		arch = archs->child->valuestring;
	const cJSON *qc = c->config ? cJSON_GetObjectItemCaseSensitive(c->config, "quantization_config") : NULL;
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "kind", "safetensors");
		cJSON_AddStringToObject(o, "path", path);
		if (arch)
			cJSON_AddStringToObject(o, "architecture", arch);
		if (qc)
			cJSON_AddItemToObject(o, "quantization_config", cJSON_Duplicate(qc, 1));
		if (c->ms) {
			cJSON *m = cJSON_AddObjectToObject(o, "msmodelslim");
			cJSON_AddStringToObject(m, "model_quant_type", qf_msdesc_model_type(c->ms));
			cJSON_AddNumberToObject(m, "typed_tensors", (double)qf_msdesc_count(c->ms));
		}
		cJSON *fs = cJSON_AddArrayToObject(o, "files");
		for (size_t i = 0; i < qf_st_nfiles(st); i++) {
			cJSON *f = cJSON_CreateObject();
			cJSON_AddStringToObject(f, "file", base_name(qf_st_file_path(st, i)));
			cJSON_AddNumberToObject(f, "size", (double)qf_st_file_size(st, i));
			cJSON_AddItemToArray(fs, f);
		}
		cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
		for (size_t i = 0; i < qf_st_count(st); i++) {
			const qf_tensor *t = qf_st_get(st, i);
			add_total(&tot, t);
			cJSON_AddItemToArray(ts, tensor_json(t, base_name(qf_st_file_path(st, (size_t)t->file)), hashes));
		}
		cJSON_AddItemToObject(o, "totals", totals_json(&tot));
		cvt_ct_summary cs;
		if ((s = cvt_ct_attach(c, &cs, &err))) {
			cJSON_Delete(o);
			qf_ckpt_close(c);
			return cli_error("inspect", s, &err);
		}
		if (cs.is_ct) {
			cJSON *ct = cJSON_AddObjectToObject(o, "compressed_tensors");
			cJSON_AddNumberToObject(ct, "quantized_modules", (double)cs.n_quant);
			cJSON_AddStringToObject(ct, "schemes", cs.schemes);
		}
		cli_print_json(o);
	} else {
		char hb[32];
		uint64_t fsz = 0;
		for (size_t i = 0; i < qf_st_nfiles(st); i++)
			fsz += qf_st_file_size(st, i);
		printf("checkpoint: %s (%zu safetensors file%s, %s)\n", path, qf_st_nfiles(st),
		       qf_st_nfiles(st) == 1 ? "" : "s", cli_human_bytes(fsz, hb, sizeof hb));
		if (arch)
			printf("architecture: %s\n", arch);
		if (qc) {
			const char *qm = qf_json_get_str(qc, "quant_method"), *fmt = qf_json_get_str(qc, "fmt");
			printf("quantization: %s %s\n", qm ? qm : "?", fmt ? fmt : "");
		}
		if (c->ms)
			printf("quantization: msModelSlim %s (quant_model_description.json types %zu tensors)\n",
			       qf_msdesc_model_type(c->ms), qf_msdesc_count(c->ms));
		printf("tensors:\n");
		for (size_t i = 0; i < qf_st_count(st); i++) {
			const qf_tensor *t = qf_st_get(st, i);
			add_total(&tot, t);
			print_tensor(t, base_name(qf_st_file_path(st, (size_t)t->file)), hashes);
		}
		print_totals(&tot);
		cvt_ct_summary cs;
		if ((s = cvt_ct_attach(c, &cs, &err))) {
			qf_ckpt_close(c);
			return cli_error("inspect", s, &err);
		}
		if (cs.is_ct)
			printf("compressed-tensors: %zu quantized modules read as float weights (%s)\n", cs.n_quant,
			       cs.n_quant ? cs.schemes : "none");
	}
	qf_ckpt_close(c);
	return 0;
}

/* Length of s cut to at most max bytes without splitting a UTF-8 character. */
static int utf8_cut(const char *s, uint64_t len, uint64_t max)
{
	if (len <= max)
		return (int)len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return (int)max;
}

/* Element i of an integer-typed value as exact text ("18446744073709551615", not 1.84467e+19); 0 if not an integer type. */
static int kv_int_str(const qf_gguf_kv *kv, uint32_t type, uint64_t i, char *b, size_t n)
{
	const uint8_t *p = kv->raw;
	switch (type) {
	case QF_GGUF_U8: snprintf(b, n, "%u", (unsigned)p[i]); return 1;
	case QF_GGUF_I8: snprintf(b, n, "%d", (int)(int8_t)p[i]); return 1;
	case QF_GGUF_U16: case QF_GGUF_I16: {
		uint16_t v;
		memcpy(&v, p + 2 * i, 2);
		snprintf(b, n, "%d", type == QF_GGUF_U16 ? (int)v : (int)(int16_t)v);
		return 1;
	}
	case QF_GGUF_U32: case QF_GGUF_I32: {
		uint32_t v;
		memcpy(&v, p + 4 * i, 4);
		if (type == QF_GGUF_U32)
			snprintf(b, n, "%lu", (unsigned long)v);
		else
			snprintf(b, n, "%ld", (long)(int32_t)v);
		return 1;
	}
	case QF_GGUF_U64: case QF_GGUF_I64: {
		uint64_t v;
		memcpy(&v, p + 8 * i, 8);
		if (type == QF_GGUF_U64)
			snprintf(b, n, "%llu", (unsigned long long)v);
		else
			snprintf(b, n, "%lld", (long long)(int64_t)v);
		return 1;
	}
	default: return 0;
	}
}

static void kv_value_str(const qf_gguf_kv *kv, char *b, size_t n)
{
	char ib[32];
	double v;
	if (kv->type == QF_GGUF_STR) {
		snprintf(b, n, "\"%.*s\"", utf8_cut(kv->strs[0].p, kv->strs[0].len, 60), kv->strs[0].p);
	} else if (kv->type == QF_GGUF_ARR) {
		size_t p = (size_t)snprintf(b, n, "[%s × %llu]", qf_gguf_type_name(kv->arr_type),
					    (unsigned long long)kv->n);
		for (uint64_t i = 0; i < kv->n && i < 4 && p < n; i++) {
			if (kv->arr_type == QF_GGUF_STR)
				p += (size_t)snprintf(b + p, n - p, " \"%.*s\"",
						      utf8_cut(kv->strs[i].p, kv->strs[i].len, 16),
						      kv->strs[i].p);
			else if (kv_int_str(kv, kv->arr_type, i, ib, sizeof ib))
				p += (size_t)snprintf(b + p, n - p, " %s", ib);
			else if (qf_gguf_kv_number(kv, i, &v))
				p += (size_t)snprintf(b + p, n - p, " %.9g", v);
		}
		if (kv->n > 4 && p < n)
			snprintf(b + p, n - p, " …");
	} else if (qf_gguf_kv_number(kv, 0, &v)) {
		if (kv->type == QF_GGUF_U64 && strncmp(kv->key, "qforge.", 7) == 0) {
			uint64_t u;
			memcpy(&u, kv->raw, 8);
			snprintf(b, n, "%016llx", (unsigned long long)u);
		} else if (kv->type == QF_GGUF_BOOL) {
			snprintf(b, n, "%s", kv->raw[0] ? "true" : "false");
		} else if (!kv_int_str(kv, kv->type, 0, b, n)) {
			snprintf(b, n, "%.9g", v);
		}
	}
}

static cJSON *kv_json(const qf_gguf_kv *kv)
{
	double v;
	if (kv->type == QF_GGUF_STR) {
		char *s = strndup(kv->strs[0].p, (size_t)kv->strs[0].len);
		cJSON *r = cJSON_CreateString(s ? s : "");
		free(s);
		return r;
	}
	if (kv->type == QF_GGUF_BOOL)
		return cJSON_CreateBool(kv->raw[0]);
	if (kv->type == QF_GGUF_ARR) {
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "type", qf_gguf_type_name(kv->arr_type));
		cJSON_AddNumberToObject(a, "count", (double)kv->n);
		return a;
	}
	if (kv->type == QF_GGUF_U64 && strncmp(kv->key, "qforge.", 7) == 0) {
		uint64_t u;
		char h[17];
		memcpy(&u, kv->raw, 8);
		snprintf(h, sizeof h, "%016llx", (unsigned long long)u);
		return cJSON_CreateString(h);
	}
	char ib[32];
	if (kv_int_str(kv, kv->type, 0, ib, sizeof ib))
		return cJSON_CreateRaw(ib); /* exact: a double cannot hold every u64 */
	qf_gguf_kv_number(kv, 0, &v);
	return cJSON_CreateNumber(v);
}

static int inspect_gguf(const char *path, int json, int hashes)
{
	qf_err err = { { 0 } };
	qf_gguf *g = NULL;
	qf_status s = qf_gguf_open(path, &g, &err);
	if (s)
		return cli_error("inspect", s, &err);
	totals tot;
	memset(&tot, 0, sizeof tot);
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "kind", "gguf");
		cJSON_AddStringToObject(o, "path", path);
		cJSON_AddNumberToObject(o, "version", qf_gguf_version(g));
		cJSON_AddNumberToObject(o, "alignment", qf_gguf_alignment(g));
		cJSON_AddNumberToObject(o, "data_offset", (double)qf_gguf_data_offset(g));
		cJSON *md = cJSON_AddObjectToObject(o, "metadata");
		for (size_t i = 0; i < qf_gguf_nkv(g); i++) {
			const qf_gguf_kv *kv = qf_gguf_kv_at(g, i);
			cJSON_AddItemToObject(md, kv->key, kv_json(kv));
		}
		cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
		for (size_t i = 0; i < qf_gguf_ntensors(g); i++) {
			const qf_tensor *t = qf_gguf_tensor(g, i);
			add_total(&tot, t);
			cJSON_AddItemToArray(ts, tensor_json(t, NULL, hashes));
		}
		cJSON_AddItemToObject(o, "totals", totals_json(&tot));
		cli_print_json(o);
	} else {
		char vb[256];
		printf("gguf: %s (version %u, alignment %u, data at %llu)\n", path, qf_gguf_version(g),
		       qf_gguf_alignment(g), (unsigned long long)qf_gguf_data_offset(g));
		printf("metadata (%zu keys):\n", qf_gguf_nkv(g));
		for (size_t i = 0; i < qf_gguf_nkv(g); i++) {
			const qf_gguf_kv *kv = qf_gguf_kv_at(g, i);
			kv_value_str(kv, vb, sizeof vb);
			printf("  %-44s %-4s %s\n", kv->key, qf_gguf_type_name(kv->type), vb);
		}
		printf("tensors (%zu, shapes outermost first):\n", qf_gguf_ntensors(g));
		for (size_t i = 0; i < qf_gguf_ntensors(g); i++) {
			const qf_tensor *t = qf_gguf_tensor(g, i);
			add_total(&tot, t);
			print_tensor(t, NULL, hashes);
		}
		print_totals(&tot);
	}
	qf_gguf_close(g);
	return 0;
}

static int inspect_bundle(const char *path, int json, int hashes)
{
	qf_err err = { { 0 } };
	qf_pk *pk = NULL;
	qf_status s = qf_pk_open(path, qf_fmt_bundle_sizer, &pk, &err);
	if (s)
		return cli_error("inspect", s, &err);
	const cJSON *m = qf_pk_manifest(pk);
	totals tot;
	memset(&tot, 0, sizeof tot);
	if (json) {
		cJSON *o = cJSON_Duplicate(m, 1);
		cJSON_AddStringToObject(o, "kind", "bundle");
		cJSON_AddStringToObject(o, "path", path);
		if (hashes) {
			cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "tensors");
			size_t i = 0;
			for (cJSON *t = ts ? ts->child : NULL; t; t = t->next, i++) {
				const qf_pk_tensor *pt = qf_pk_tensor_at(pk, i);
				char h[17];
				snprintf(h, sizeof h, "%016llx", (unsigned long long)XXH64(pt->t.data, (size_t)pt->t.nbytes, 0));
				cJSON_AddStringToObject(t, "xxh64_now", h);
			}
		}
		for (size_t i = 0; i < qf_pk_ntensors(pk); i++)
			add_total(&tot, &qf_pk_tensor_at(pk, i)->t);
		cJSON_AddItemToObject(o, "totals", totals_json(&tot));
		cli_print_json(o);
	} else {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "architecture");
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(m, "generator");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "data_xxh64");
		const cJSON *pr = cJSON_GetObjectItemCaseSensitive(m, "profile");
		const cJSON *pn = pr ? cJSON_GetObjectItemCaseSensitive(pr, "name") : NULL;
		printf("bundle: %s (qforge-packed v%d, %s, by %s, data xxh64 %s)\n", path, qf_pk_version(pk),
		       cJSON_IsString(a) ? a->valuestring : "?", cJSON_IsString(g) ? g->valuestring : "?",
		       cJSON_IsString(d) ? d->valuestring : "?");
		if (cJSON_IsString(pn))
			printf("profile: %s\n", pn->valuestring);
		printf("tensors (%zu, shapes outermost first):\n", qf_pk_ntensors(pk));
		for (size_t i = 0; i < qf_pk_ntensors(pk); i++) {
			const qf_pk_tensor *pt = qf_pk_tensor_at(pk, i);
			char sh[128];
			shape_str(&pt->t, sh, sizeof sh);
			printf("  %-52s %-15s %-8s %-22s %12llu  @%llu", pt->t.name, pt->format, qf_dtype_name(pt->t.dtype),
			       sh, (unsigned long long)pt->t.nbytes, (unsigned long long)pt->t.offset);
			if (hashes)
				printf("  %016llx", (unsigned long long)XXH64(pt->t.data, (size_t)pt->t.nbytes, 0));
			printf("\n");
			add_total(&tot, &pt->t);
		}
		print_totals(&tot);
	}
	qf_pk_close(pk);
	return 0;
}

int cli_inspect(int argc, char **argv)
{
	int json = 0, hashes = 0;
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "hashes", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'j': json = 1; break;
		case 'H': hashes = 1; break;
		default: return cli_usage_error("inspect", "unknown option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("inspect", "expected one PATH");
	const char *path = argv[optind];
	struct stat sb;
	if (stat(path, &sb) != 0) {
		qf_err err = { { 0 } };
		qf_fail(&err, QF_EFORMAT, "%s: no such file or folder", path);
		return cli_error("inspect", QF_EFORMAT, &err);
	}
	qf_err ierr = { { 0 } };
	if (qf_input_check(path, &ierr)) /* a FIFO would block the probes below */
		return cli_error("inspect", QF_EFORMAT, &ierr);
	if (qf_pk_is_bundle(path))
		return inspect_bundle(path, json, hashes);
	if (S_ISREG(sb.st_mode) && !qf_path_is_tar(path) && qf_path_is_gguf(path))
		return inspect_gguf(path, json, hashes);
	return inspect_ckpt(path, json, hashes);
}
