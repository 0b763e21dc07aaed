/*
 * hf.c — convert/quantize to a Hugging Face checkpoint folder (--format safetensors).
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/hf.h"

static void shape_str(const cvt_hf_part *p, char *b, size_t n) { qf_dims_str(p->ndim, p->shape, b, n); }

static const char *enc_name(const cvt_hf_item *it)
{
	switch (it->sch.enc) {
	case CVT_HF_COPY: return "copy";
	case CVT_HF_DEQUANT: return it->scale ? "fp8-dequant" : it->ms.type != QF_MS_FLOAT ? "ms-dequant" : "float";
	case CVT_HF_FP8_BLOCK: return it->sch.ue8m0 ? "fp8-b128-ue8m0" : "fp8-b128";
	case CVT_HF_CT_FP8: return "ct-fp8-b128";
	case CVT_HF_CT_PACK: return it->sch.bits == 4 ? (it->sch.asym ? "ct-int4-asym" : "ct-int4") : "ct-int8-pack";
	case CVT_HF_CT_INT8: return "ct-w8a8";
	case CVT_HF_MS_INT8: return it->sch.act_dynamic ? "ms-w8a8-dynamic" : "ms-w8a16";
	}
	return "?";
}

void cli_hf_default_output(const char *in, const char *tag, char *buf, size_t n)
{
	const char *b = cli_path_base(in);
	snprintf(buf, n, "%.*s-%s-hf", (int)strcspn(b, "/"), b, tag);
}

int cli_hf_dry_run(const char *cmd, cvt_hf_plan *p, const char *in, const char *out, int json)
{
	(void)cmd;
	uint64_t tin = 0, tout = 0;
	cJSON *j = json ? cJSON_CreateObject() : NULL;
	cJSON *ts = json ? cJSON_AddArrayToObject(j, "tensors") : NULL;
	if (!json)
		printf("plan: %s → %s (safetensors)\n", in, out);
	for (size_t i = 0; i < p->n; i++) {
		const cvt_hf_item *it = &p->items[i];
		cvt_hf_part pts[4];
		int np = cvt_hf_item_parts(p, it, pts);
		tin += it->t->nbytes + (it->scale ? it->scale->nbytes : 0);
		for (int k = 0; k < np; k++) {
			tout += pts[k].nbytes;
			if (json) {
				cJSON *t = cJSON_CreateObject();
				cJSON_AddStringToObject(t, "name", pts[k].name);
				cJSON_AddStringToObject(t, "source", it->t->name);
				cJSON_AddStringToObject(t, "class", cvt_class_name(it->cls));
				cJSON_AddStringToObject(t, "encoding", enc_name(it));
				cJSON_AddStringToObject(t, "dtype", qf_dtype_name(pts[k].dtype));
				cJSON *sh = cJSON_AddArrayToObject(t, "shape");
				for (int d = 0; d < pts[k].ndim; d++)
					cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)pts[k].shape[d]));
				cJSON_AddNumberToObject(t, "bytes", (double)pts[k].nbytes);
				cJSON_AddItemToArray(ts, t);
			} else {
				char sh[96];
				shape_str(&pts[k], sh, sizeof sh);
				printf("  %-56s %-14s %-15s %-8s %-20s %12llu\n", pts[k].name, cvt_class_name(it->cls),
				       enc_name(it), qf_dtype_name(pts[k].dtype), sh, (unsigned long long)pts[k].nbytes);
			}
		}
	}
	if (json) {
		cJSON_AddNumberToObject(j, "bytes_in", (double)tin);
		cJSON_AddNumberToObject(j, "bytes_out", (double)tout);
		cli_print_json(j);
	} else {
		char a[32], b[32];
		printf("totals: %zu source tensors, %s in → %s out\n", p->n, cli_human_bytes(tin, a, sizeof a),
		       cli_human_bytes(tout, b, sizeof b));
	}
	return 0;
}

int cli_hf_write(const char *cmd, cvt_hf_plan *p, const char *in, const char *out, const cli_hf_opts *o,
		 cvt_result *res)
{
	qf_err err = { { 0 } };
	cli_progress pr;
	cli_progress_init(&pr, cmd, o->quiet || o->json);
	cvt_hf_write_opts wo = { .shard_size = o->shard_size, .force = o->force, .threads = o->threads,
				 .quality = o->quality, .prog = cli_tensor_progress, .ud = &pr,
				 .profile_name = o->profile_name };
	qf_status s = cvt_hf_write(p, out, &wo, res, &err);
	cli_progress_done(&pr);
	if (s)
		return cli_error(cmd, s, &err);
	if (!o->summary)
		return 0;
	char h[17], a[32], b[32];
	snprintf(h, sizeof h, "%016llx", (unsigned long long)res->data_hash);
	if (o->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "input", in);
		cJSON_AddStringToObject(j, "output", out);
		cJSON_AddStringToObject(j, "format", "safetensors");
		cJSON_AddNumberToObject(j, "tensors", (double)p->n);
		cJSON_AddNumberToObject(j, "bytes_in", (double)res->bytes_in);
		cJSON_AddNumberToObject(j, "bytes_out", (double)res->bytes_out);
		cJSON_AddNumberToObject(j, "seconds", res->seconds);
		cJSON_AddNumberToObject(j, "threads", o->threads);
		cJSON_AddStringToObject(j, "data_xxh64", h);
		cli_print_json(j);
	} else {
		printf("%s %s → %s (safetensors): %zu tensors, %s in → %s out in %.2f s (%.2f GB/s in, %d threads), data xxh64 %s\n",
		       !strcmp(cmd, "convert") ? "converted" : "quantized", in, out, p->n,
		       cli_human_bytes(res->bytes_in, a, sizeof a), cli_human_bytes(res->bytes_out, b, sizeof b), res->seconds,
		       res->seconds > 0 ? (double)res->bytes_in / res->seconds / 1e9 : 0.0, o->threads, h);
	}
	return 0;
}

/* Per class: schemes used, bytes in → out, and what was kept, re-quantized or copied. */
/* quality: the errors were measured while writing (not --no-quality) */
static void hf_summary(const cvt_hf_plan *p, const cvt_result *r, int quality, int json, cJSON *jo)
{
	cJSON *cls = json ? cJSON_AddArrayToObject(jo, "classes") : NULL;
	if (!json)
		printf("%-14s %-26s %7s %24s %7s %9s %9s\n", "class", "encoding", "tensors", "bytes in → out", "bits/w",
		       "rel-RMS", "cosine");
	for (int c = 0; c < CVT_CLASS_COUNT; c++) {
		const cvt_stats *s = &r->cls[c];
		if (!s->tensors)
			continue;
		char fm[128] = "", a[32], b[32], io[72];
		size_t k = 0;
		const char *seen[16];
		int ns = 0;
		for (size_t i = 0; i < p->n; i++) {
			if ((int)p->items[i].cls != c)
				continue;
			const char *e = enc_name(&p->items[i]);
			int dup = 0;
			for (int j = 0; j < ns; j++)
				dup |= !strcmp(seen[j], e);
			if (!dup && ns < 16) {
				seen[ns++] = e;
				k += (size_t)snprintf(fm + k, k < sizeof fm ? sizeof fm - k : 0, "%s%s", k ? "+" : "", e);
			}
		}
		double bpw = s->elems ? 8.0 * (double)s->bytes_out / (double)s->elems : 0;
		if (json) {
			cJSON *o = cli_class_json((cvt_class)c, "encoding", fm, s);
			cJSON_AddItemToArray(cls, o);
		} else {
			snprintf(io, sizeof io, "%s → %s", cli_human_bytes(s->bytes_in, a, sizeof a),
				 cli_human_bytes(s->bytes_out, b, sizeof b));
			printf("%-14s %-26s %7zu %26s %7.2f", cvt_class_name((cvt_class)c), fm, s->tensors, io, bpw);
			double rel, cosv;
			if (cli_class_error(s, &rel, &cosv))
				printf(" %9.5f %9.6f\n", rel, cosv);
			else /* copied or float: nothing quantized was measured */
				printf(" %9s %9s\n", quality ? "exact" : "-", "-");
		}
	}
	size_t nfb = 0, nlossy = 0, ncopy = 0;
	for (size_t i = 0; i < p->n; i++) {
		nfb += (size_t)p->items[i].fallback;
		nlossy += (size_t)p->items[i].lossy_note;
		ncopy += p->items[i].scale && (p->items[i].sch.enc == CVT_HF_COPY || p->items[i].raw);
	}
	if (json) {
		cJSON_AddNumberToObject(jo, "fp8_copied", (double)ncopy);
		cJSON_AddNumberToObject(jo, "requantized_lossy", (double)nlossy);
		cJSON *fb = cJSON_AddArrayToObject(jo, "fallbacks");
		for (size_t i = 0; i < p->n; i++)
			if (p->items[i].fallback)
				cJSON_AddItemToArray(fb, cJSON_CreateString(p->items[i].t->name));
		return;
	}
	if (ncopy)
		printf("fp8: %zu FP8 weights kept with their own 128×128 scales, byte for byte\n", ncopy);
	if (nlossy)
		printf("lossy: %zu FP8 weights had scales that are not powers of two; rounding them up re-quantized those weights (lossy)\n",
		       nlossy);
	if (nfb) {
		printf("fallback: %zu tensor%s kept unquantized (the scheme's group does not divide the row):\n", nfb,
		       nfb == 1 ? "" : "s");
		for (size_t i = 0; i < p->n; i++)
			if (p->items[i].fallback)
				printf("  %s (row length %lld)\n", p->items[i].t->name, (long long)p->items[i].t->shape[1]);
	}
}

int cli_hf_quantize(const char *in, const char *outpath, const cvt_options *o, const qnt_profile *prof,
		    const char *const *type_args, const int *type_keep, size_t nrules, const cli_hf_opts *ho, int dry)
{
	qf_err err = { { 0 } };
	qnt_rule rules[64];
	cvt_hf_scheme sch[64];
	size_t nr = 0;
	cvt_hf_plan *p = NULL;
	int rc = 0;
	qf_status s = QF_OK;
	for (; nr < nrules && nr < 64; nr++)
		if ((s = qnt_hf_rule_parse(type_args[nr], type_keep[nr], &rules[nr], &sch[nr], &err)))
			goto done;
	if ((s = cvt_hf_plan_open(in, o, &p, &err)))
		goto done;
	if (!prof)
		p->layout = CVT_HF_CT; /* --type rules alone: compressed-tensors holds every scheme but two */
	if ((s = qnt_hf_plan_apply(p, prof, rules, sch, nr, &err)))
		goto done;
	char defname[4096];
	if (!outpath) {
		cli_hf_default_output(in, prof ? prof->name : "custom", defname, sizeof defname);
		outpath = defname;
	}
	if (dry) {
		rc = cli_hf_dry_run("quantize", p, in, outpath, ho->json);
		goto done;
	}
	cvt_result res;
	cli_hf_opts h2 = *ho;
	h2.summary = 0;
	h2.profile_name = prof ? prof->name : NULL;
	if ((rc = cli_hf_write("quantize", p, in, outpath, &h2, &res)))
		goto done;
	char hx[17], a[32], b[32];
	snprintf(hx, sizeof hx, "%016llx", (unsigned long long)res.data_hash);
	if (ho->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "input", in);
		cJSON_AddStringToObject(j, "output", outpath);
		cJSON_AddStringToObject(j, "target", prof ? prof->name : "");
		cJSON_AddStringToObject(j, "format", "safetensors");
		cJSON_AddNumberToObject(j, "tensors", (double)p->n);
		cJSON_AddNumberToObject(j, "bytes_in", (double)res.bytes_in);
		cJSON_AddNumberToObject(j, "bytes_out", (double)res.bytes_out);
		cJSON_AddNumberToObject(j, "seconds", res.seconds);
		cJSON_AddNumberToObject(j, "threads", o->threads);
		cJSON_AddStringToObject(j, "data_xxh64", hx);
		hf_summary(p, &res, ho->quality, 1, j);
		cli_print_json(j);
	} else {
		printf("quantized %s → %s (%s, safetensors): %zu tensors, %s in → %s out in %.2f s (%.2f GB/s in, %d threads), data xxh64 %s\n",
		       in, outpath, prof ? prof->name : "--type rules", p->n, cli_human_bytes(res.bytes_in, a, sizeof a),
		       cli_human_bytes(res.bytes_out, b, sizeof b), res.seconds,
		       res.seconds > 0 ? (double)res.bytes_in / res.seconds / 1e9 : 0.0, o->threads, hx);
		hf_summary(p, &res, ho->quality, 0, NULL);
	}
done:
	if (s)
		rc = cli_error("quantize", s, &err);
	cvt_hf_plan_free(p);
	for (size_t i = 0; i < nr; i++)
		qnt_rule_free(&rules[i]);
	return rc;
}
