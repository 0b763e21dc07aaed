#include "config.h"

#include <dirent.h>
#include <oniguruma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "formats/mapfile.h"
#include "quantize/llama_mix.h"
#include "quantize/profile.h"

#ifndef QF_PROFILEDIR /* set by Makefile.am from the install prefix */
#define QF_PROFILEDIR "/usr/local/share/qforge/profiles"
#endif

void qnt_profile_free(qnt_profile *p)
{
	if (!p)
		return;
	cJSON_Delete(p->json);
	p->json = NULL;
}

static qf_status list_formats(char *b, size_t n)
{
	size_t k = 0;
	b[0] = 0;
	for (int i = 0; i < QF_DTYPE_COUNT && k < n; i++)
		if (qf_dtype_info((qf_dtype)i)->fmt)
			k += (size_t)snprintf(b + k, n - k, "%s%s", k ? ", " : "", qf_dtype_info((qf_dtype)i)->fmt);
	return QF_OK;
}

/* "layout" of a safetensors profile. */
static qf_status hf_layout_parse(qnt_profile *p, const char *label, qf_err *err)
{
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(p->json, "layout");
	if (!p->hf)
		return l ? qf_fail(err, QF_EUSAGE, "%s: \"layout\" applies to \"output\": \"safetensors\"", label) : QF_OK;
	const char *v = cJSON_IsString(l) ? l->valuestring : "";
	if (!strcmp(v, "vllm-fp8"))
		p->hf_layout = CVT_HF_FP8;
	else if (!strcmp(v, "compressed-tensors"))
		p->hf_layout = CVT_HF_CT;
	else if (!strcmp(v, "msmodelslim"))
		p->hf_layout = CVT_HF_MSMODELSLIM;
	else if (!strcmp(v, "float"))
		p->hf_layout = CVT_HF_FLOAT;
	else
		return qf_fail(err, QF_EUSAGE,
			       "%s: a safetensors profile needs \"layout\": \"vllm-fp8\", \"compressed-tensors\", \"msmodelslim\" or \"float\"",
			       label);
	return QF_OK;
}

qf_status qnt_profile_parse(const char *text, size_t len, const char *label, qnt_profile *p, qf_err *err)
{
	memset(p, 0, sizeof *p);
	for (int i = 0; i < CVT_CLASS_COUNT; i++)
		p->cls[i] = QF_DTYPE_NONE;
	p->json = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(p->json)) {
		qnt_profile_free(p);
		return qf_fail(err, QF_EUSAGE, "%s: profile is not a JSON object", label);
	}
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(p->json, "name");
	const cJSON *desc = cJSON_GetObjectItemCaseSensitive(p->json, "description");
	const cJSON *out = cJSON_GetObjectItemCaseSensitive(p->json, "output");
	const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p->json, "classes");
	qf_status s = QF_OK;
	if (!cJSON_IsString(name) || !name->valuestring[0]) {
		s = qf_fail(err, QF_EUSAGE, "%s: profile needs a \"name\" string", label);
		goto fail;
	}
	snprintf(p->name, sizeof p->name, "%s", name->valuestring);
	if (cJSON_IsString(desc))
		snprintf(p->desc, sizeof p->desc, "%s", desc->valuestring);
	if (out && (!cJSON_IsString(out) || (strcmp(out->valuestring, "gguf") && strcmp(out->valuestring, "packed") &&
					     strcmp(out->valuestring, "safetensors")))) {
		s = qf_fail(err, QF_EUSAGE, "%s: \"output\" must be \"gguf\", \"packed\" or \"safetensors\"", label);
		goto fail;
	}
	p->packed = out && strcmp(out->valuestring, "packed") == 0;
	p->hf = out && strcmp(out->valuestring, "safetensors") == 0;
	if ((s = hf_layout_parse(p, label, err)))
		goto fail;
	const cJSON *kvb = cJSON_GetObjectItemCaseSensitive(p->json, "kv_b");
	if (kvb && (!cJSON_IsString(kvb) || (strcmp(kvb->valuestring, "split") && strcmp(kvb->valuestring, "joined")))) {
		s = qf_fail(err, QF_EUSAGE, "%s: \"kv_b\" must be \"split\" or \"joined\"", label);
		goto fail;
	}
	p->kv_b_joined = kvb && strcmp(kvb->valuestring, "joined") == 0;
	const cJSON *mix = cJSON_GetObjectItemCaseSensitive(p->json, "llama_ftype");
	if (mix) {
		p->llama_ftype = cJSON_IsString(mix) ? qnt_mix_ftype_from_name(mix->valuestring) : -1;
		if (p->llama_ftype < 0) {
			s = qf_fail(err, QF_EUSAGE, "%s: \"llama_ftype\" must be one of Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K", label);
			goto fail;
		}
		if (cls || p->packed) {
			s = qf_fail(err, QF_EUSAGE, "%s: a \"llama_ftype\" mix writes GGUF and takes no \"classes\"", label);
			goto fail;
		}
		return QF_OK;
	}
	if (!cJSON_IsObject(cls)) {
		s = qf_fail(err, QF_EUSAGE, "%s: profile needs a \"classes\" object (or a \"llama_ftype\")", label);
		goto fail;
	}
	const cJSON *imr = cJSON_GetObjectItemCaseSensitive(p->json, "imatrix_rules");
	if (imr) {
		const char *v = cJSON_IsString(imr) ? imr->valuestring : "";
		p->imatrix_like = !strcasecmp(v, "Q4_0") ? QNT_FTYPE_Q4_0 : !strcasecmp(v, "Q5_0") ? QNT_FTYPE_Q5_0 : 0;
		if (!p->imatrix_like) {
			s = qf_fail(err, QF_EUSAGE, "%s: \"imatrix_rules\" must be \"Q4_0\" or \"Q5_0\"", label);
			goto fail;
		}
	}
	for (const cJSON *c = cls->child; c; c = c->next) {
		int k = cvt_class_from_name(c->string);
		if (k < 0) {
			s = qf_fail(err, QF_EUSAGE,
				    "%s: unknown tensor class '%s' (classes: attn, expert, shared_expert, dense_ffn, router, embed, output, norm, indexer)",
				    label, c->string);
			goto fail;
		}
		if (p->hf) {
			if (!cJSON_IsString(c) || !cvt_hf_scheme_parse(c->valuestring, &p->hf_cls[k])) {
				s = qf_fail(err, QF_EUSAGE, "%s: class '%s': unknown safetensors scheme '%s' (schemes: %s)", label,
					    c->string, cJSON_IsString(c) ? c->valuestring : "(not a string)", cvt_hf_scheme_names());
				goto fail;
			}
			p->hf_set[k] = 1;
			continue;
		}
		qf_dtype f = cJSON_IsString(c) ? qf_fmt_from_name(c->valuestring) : QF_DTYPE_NONE;
		if (f == QF_DTYPE_NONE) {
			char fl[256];
			list_formats(fl, sizeof fl);
			s = qf_fail(err, QF_EUSAGE, "%s: class '%s': unknown format '%s' (formats: %s)", label, c->string,
				    cJSON_IsString(c) ? c->valuestring : "(not a string)", fl);
			goto fail;
		}
		if ((k == CVT_CLASS_ROUTER || k == CVT_CLASS_NORM) && f != QF_F32) {
			s = qf_fail(err, QF_EUSAGE, "%s: class '%s' always stays f32", label, c->string);
			goto fail;
		}
		p->cls[k] = f;
	}
	return QF_OK;
fail:
	qnt_profile_free(p);
	return s;
}

qf_status qnt_profile_load(const char *path, qnt_profile *p, qf_err *err)
{
	qf_mapfile m;
	qf_status s = qf_mapfile_open(&m, path, err);
	if (s)
		return s;
	s = qnt_profile_parse((const char *)m.data, (size_t)m.size, path, p, err);
	qf_mapfile_close(&m);
	return s;
}

/* 1 if dir holds the shipped profiles (probed by one of them). */
static int has_profiles(const char *dir)
{
	char probe[4200];
	return snprintf(probe, sizeof probe, "%s/hopper-fp8.json", dir) < (int)sizeof probe && access(probe, R_OK) == 0;
}

const char *qnt_profile_dir(char *buf, size_t n)
{
	const char *env = getenv("QFORGE_PROFILES");
	if (env && *env) {
		snprintf(buf, n, "%s", env);
		return buf;
	}
	/*
	 * Next to the executable (an in-tree build), then the source tree when
	 * the executable is the build tree's (a VPATH build), then the installed
	 * data folder.
	 */
	char exe[4096];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (len > 0) {
		exe[len] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			static const char *const rel[] = { "/profiles", "/../profiles", "/../../profiles", NULL };
			for (int i = 0; rel[i]; i++)
				if (snprintf(buf, n, "%s%s", exe, rel[i]) < (int)n && has_profiles(buf))
					return buf;
			char real[4096];
			if (realpath(QF_BUILDDIR, real) && strcmp(real, exe) == 0 &&
			    snprintf(buf, n, "%s/profiles", QF_SRCDIR) < (int)n && has_profiles(buf))
				return buf;
		}
	}
	snprintf(buf, n, "%s", QF_PROFILEDIR);
	return buf;
}

qf_status qnt_profile_find(const char *name, qnt_profile *p, qf_err *err)
{
	if (strchr(name, '/'))
		return qnt_profile_load(name, p, err);
	char dir[4096], path[4200];
	snprintf(path, sizeof path, "%s/%s.json", qnt_profile_dir(dir, sizeof dir), name);
	if (access(path, R_OK) != 0)
		return qf_fail(err, QF_EUSAGE, "unknown target '%s' (see qforge quantize --list-targets)", name);
	return qnt_profile_load(path, p, err);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t qnt_profile_names(char ***names)
{
	char dir[4096];
	DIR *d = opendir(qnt_profile_dir(dir, sizeof dir));
	size_t n = 0, cap = 0;
	char **v = NULL;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l <= 5 || strcmp(e->d_name + l - 5, ".json") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **g = realloc(v, cap * sizeof *g);
			if (!g)
				break;
			v = g;
		}
		v[n] = strndup(e->d_name, l - 5);
		if (v[n])
			n++;
	}
	if (d)
		closedir(d);
	if (n)
		qsort(v, n, sizeof *v, cmp_str);
	*names = v;
	return n;
}

qf_status qnt_rule_parse(const char *arg, int keep, qnt_rule *r, qf_err *err)
{
	memset(r, 0, sizeof *r);
	r->fmt = QF_DTYPE_NONE;
	const char *eq = keep ? NULL : strrchr(arg, '=');
	if (!keep && !eq)
		return qf_fail(err, QF_EUSAGE, "--type '%s': expected REGEX=FORMAT", arg);
	r->pattern = keep ? strdup(arg) : strndup(arg, (size_t)(eq - arg));
	if (!r->pattern)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	if (!keep) {
		r->fmt = qf_fmt_from_name(eq + 1);
		if (r->fmt == QF_DTYPE_NONE) {
			char fl[256];
			list_formats(fl, sizeof fl);
			free(r->pattern);
			r->pattern = NULL;
			return qf_fail(err, QF_EUSAGE, "--type '%s': unknown format '%s' (formats: %s)", arg, eq + 1, fl);
		}
	}
	static OnigEncoding enc[1];
	enc[0] = ONIG_ENCODING_UTF8;
	onig_initialize(enc, 1);
	OnigErrorInfo einfo;
	OnigRegex re = NULL;
	const UChar *pat = (const UChar *)r->pattern;
	int rc = onig_new(&re, pat, pat + strlen(r->pattern), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
			  ONIG_SYNTAX_PERL, &einfo);
	r->re = re;
	if (rc != ONIG_NORMAL) {
		UChar m[ONIG_MAX_ERROR_MESSAGE_LEN];
		onig_error_code_to_str(m, rc, &einfo);
		r->re = NULL;
		qf_status s = qf_fail(err, QF_EUSAGE, "%s '%s': bad regular expression: %s", keep ? "--keep" : "--type",
				      r->pattern, (const char *)m);
		free(r->pattern);
		r->pattern = NULL;
		return s;
	}
	return QF_OK;
}

void qnt_rule_free(qnt_rule *r)
{
	if (!r)
		return;
	if (r->re)
		onig_free(r->re);
	r->re = NULL;
	free(r->pattern);
	r->pattern = NULL;
}

int qnt_rule_match(const qnt_rule *r, const char *name)
{
	const UChar *s = (const UChar *)name, *e = s + strlen(name);
	return onig_search(r->re, s, e, s, e, NULL, ONIG_OPTION_NONE) >= 0;
}

qf_status qnt_plan_apply(cvt_plan *p, const qnt_profile *prof, const qnt_rule *rules, size_t nrules,
			 int allow_requantize, qf_err *err)
{
	if (prof && prof->llama_ftype) {
		qf_status s = qnt_mix_apply(p, prof->llama_ftype, rules, nrules, allow_requantize, err);
		if (!s)
			cvt_plan_set_file_type(p, (uint32_t)prof->llama_ftype);
		for (size_t i = 0; !s && i < cvt_plan_count(p); i++)
			cvt_item_plan_repack(cvt_plan_item(p, i));
		return s;
	}
	if (prof && prof->imatrix_like) /* llama.cpp's general.file_type of that ftype, as llama-quantize writes it */
		cvt_plan_set_file_type(p, (uint32_t)prof->imatrix_like);
	for (size_t i = 0; i < cvt_plan_count(p); i++) {
		cvt_item *it = cvt_plan_item(p, i);
		/* "unchanged": the source's own format when it is already quantized, else what convert writes */
		qf_dtype base = it->srcs[0].coded ? it->srcs[0].qv.fmt : qf_fmt_of_dtype(it->type);
		qf_dtype want = QF_DTYPE_NONE;
		it->fallback = 0;
		if (cvt_item_keeps_f32(it)) { /* norms, routers, indexer.proj */
			it->fmt = base;
			continue;
		}
		int decided = 0;
		for (size_t r = 0; r < nrules && !decided; r++) {
			if (qnt_rule_match(&rules[r], it->name)) {
				want = rules[r].fmt == QF_DTYPE_NONE ? base : rules[r].fmt;
				decided = 1;
			}
		}
		if (!decided)
			want = prof && prof->cls[it->cls] != QF_DTYPE_NONE ? prof->cls[it->cls] : base;
		if (it->src_quant && want != base && qf_fmt_is_quant(want) && !allow_requantize) {
			return qf_fail(err, QF_EUSAGE,
				       "tensor '%s' is already quantized; quantizing it again (to %s) compounds the error — use --allow-requantize to do it anyway",
				       it->name, qf_dtype_info(want)->fmt);
		}
		if (!qf_fmt_fits(want, cvt_item_row_len(it))) {
			it->fallback = 1;
			want = base;
		}
		it->fmt = want;
		cvt_item_plan_repack(it); /* compressed-tensors int4 → q4_0/q4_1 without re-rounding, where exact */
	}
	return QF_OK;
}

qf_status qnt_plan_apply_imatrix(cvt_plan *p, const qnt_profile *prof, const qnt_rule *rules, size_t nrules,
				 qf_err *err)
{
	if (!prof || !prof->imatrix_like)
		return QF_OK; /* the K-quant mixes have no imatrix-only rule (src/llama-quant.cpp lines 424-671) */
	return qnt_mix_imatrix_ffn_down(p, prof->imatrix_like, rules, nrules, err);
}
