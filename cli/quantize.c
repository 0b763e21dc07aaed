#include "config.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/hf.h"
#include "convert/convert.h"
#include "quantize/importance.h"
#include "quantize/profile.h"

#define MAX_RULES 64

static int list_targets(int json)
{
	char **names = NULL, dir[4096];
	size_t n = qnt_profile_names(&names);
	cJSON *arr = json ? cJSON_CreateArray() : NULL;
	if (!json)
		printf("targets (profiles in %s):\n", qnt_profile_dir(dir, sizeof dir));
	for (size_t i = 0; i < n; i++) {
		qnt_profile p;
		qf_err err = { { 0 } };
		if (qnt_profile_find(names[i], &p, &err) == QF_OK) {
			if (json) {
				cJSON *o = cJSON_Duplicate(p.json, 1);
				cJSON_AddItemToArray(arr, o);
			} else {
				printf("  %-22s %-11s %s\n", p.name, p.hf ? "safetensors" : p.packed ? "packed" : "gguf", p.desc);
			}
			qnt_profile_free(&p);
		} else if (!json) {
			printf("  %-20s (broken: %s)\n", names[i], err.msg);
		}
		free(names[i]);
	}
	free(names);
	if (json)
		cli_print_json(arr);
	return 0;
}

/* Formats used by the items of one class, "q8_0+f16". */
static void class_formats(cvt_plan *p, int cls, char *b, size_t n)
{
	int seen[QF_DTYPE_COUNT] = { 0 };
	for (size_t i = 0; i < cvt_plan_count(p); i++) {
		cvt_item *it = cvt_plan_item(p, i);
		if ((int)it->cls == cls)
			seen[it->fmt] = 1;
	}
	size_t k = 0;
	b[0] = 0;
	for (int f = 0; f < QF_DTYPE_COUNT && k < n; f++)
		if (seen[f])
			k += (size_t)snprintf(b + k, n - k, "%s%s", k ? "+" : "", qf_dtype_info((qf_dtype)f)->fmt);
}

/* quality: the errors were measured while writing (not --no-quality) */
static void summary(cvt_plan *p, const cvt_result *r, int quality, int json, cJSON *jo)
{
	cJSON *cls = json ? cJSON_AddArrayToObject(jo, "classes") : NULL;
	if (!json)
		printf("%-14s %-18s %7s %22s %7s %9s %9s\n", "class", "format", "tensors", "bytes in → out",
		       "bits/w", "rel-RMS", "cosine");
	for (int c = 0; c < CVT_CLASS_COUNT; c++) {
		const cvt_stats *s = &r->cls[c];
		if (!s->tensors)
			continue;
		char fm[96], a[32], b[32], io[72];
		class_formats(p, c, fm, sizeof fm);
		double bpw = s->elems ? 8.0 * (double)s->bytes_out / (double)s->elems : 0;
		double rel, cosv;
		cli_class_error(s, &rel, &cosv);
		if (json) {
			cJSON_AddItemToArray(cls, cli_class_json((cvt_class)c, "format", fm, s));
		} else {
			snprintf(io, sizeof io, "%s → %s", cli_human_bytes(s->bytes_in, a, sizeof a),
				 cli_human_bytes(s->bytes_out, b, sizeof b));
			printf("%-14s %-18s %7zu %24s %7.2f", cvt_class_name((cvt_class)c), fm, s->tensors, io, bpw);
			if (s->measured)
				printf(" %9.5f %9.6f", rel, cosv);
			else /* unquantized classes are exact only when measured; --no-quality measures nothing */
				printf(" %9s %9s", quality ? "exact" : "-", "-");
			printf("\n");
		}
	}
	/* compressed-tensors int4 moved into q4_0/q4_1 blocks as released, or re-quantized (and why) */
	size_t nrp = 0, nrf = 0;
	cJSON *rp = NULL, *rf = NULL;
	for (size_t i = 0; i < cvt_plan_count(p); i++) {
		cvt_item *it = cvt_plan_item(p, i);
		nrp += it->repack == 1;
		nrf += it->repack == -1;
	}
	if (json && (nrp || nrf)) {
		rp = cJSON_AddArrayToObject(jo, "repacked_lossless");
		rf = cJSON_AddArrayToObject(jo, "repack_fallbacks");
	} else if (nrp || nrf) {
		printf("repacked losslessly from compressed-tensors int4 (codes and scales as released): %zu tensor%s\n", nrp,
		       nrp == 1 ? "" : "s");
	}
	for (size_t i = 0; i < cvt_plan_count(p) && (nrp || nrf); i++) {
		cvt_item *it = cvt_plan_item(p, i);
		if (it->repack == 1 && json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "name", it->name);
			cJSON_AddStringToObject(o, "format", qf_dtype_info(it->fmt)->fmt);
			cJSON_AddItemToArray(rp, o);
		} else if (it->repack == 1) {
			printf("  %s → %s\n", it->name, qf_dtype_info(it->fmt)->fmt);
		} else if (it->repack == -1 && json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "name", it->name);
			cJSON_AddStringToObject(o, "format", qf_dtype_info(it->fmt)->fmt);
			cJSON_AddStringToObject(o, "reason", it->repack_why);
			cJSON_AddItemToArray(rf, o);
		}
	}
	if (nrf && !json) {
		printf("re-quantized instead (not exactly representable in the block): %zu tensor%s\n", nrf, nrf == 1 ? "" : "s");
		for (size_t i = 0; i < cvt_plan_count(p); i++) {
			cvt_item *it = cvt_plan_item(p, i);
			if (it->repack == -1)
				printf("  %s → %s: %s\n", it->name, qf_dtype_info(it->fmt)->fmt, it->repack_why);
		}
	}
	size_t nfb = 0;
	for (size_t i = 0; i < cvt_plan_count(p); i++)
		nfb += (size_t)cvt_plan_item(p, i)->fallback;
	if (nfb && !json) {
		printf("fallback: %zu tensor%s whose row length is not a multiple of the format's block:\n", nfb,
		       nfb == 1 ? "" : "s");
		for (size_t i = 0; i < cvt_plan_count(p); i++) {
			cvt_item *it = cvt_plan_item(p, i);
			if (it->fallback)
				printf("  %s (row length %lld) → %s\n", it->name, (long long)cvt_item_row_len(it),
				       qf_dtype_info(it->fmt)->fmt);
		}
	}
}

typedef struct imatrix_ud {
	const char *path;
	const qf_imatrix *m;
} imatrix_ud;

/* The keys llama-quantize records for its --imatrix (tools/quantize/quantize.cpp). */
static void imatrix_meta(void *ud, qf_gguf_writer *w)
{
	const imatrix_ud *u = ud;
	qf_gguf_set_str(w, "quantize.imatrix.file", u->path);
	if (u->m->ndatasets)
		qf_gguf_set_str(w, "quantize.imatrix.dataset", u->m->datasets[0]);
	qf_gguf_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)u->m->n);
	qf_gguf_set_u32(w, "quantize.imatrix.chunks_count", u->m->chunk_count);
}

int cli_quantize(int argc, char **argv)
{
	const char *target = NULL, *profile_path = NULL;
	int list = 0, allow_rq = 0, quality = 1;
	const char *type_args[MAX_RULES];
	int type_keep[MAX_RULES];
	size_t nrules = 0;
	const char *imatrix_path = NULL;
	qf_imatrix *imx = NULL;
	qnt_importance imp = { 0 };
	cli_write_args wa;
	cli_write_args_init(&wa);
	static const struct option opts[] = {
		CLI_WRITE_OPTIONS,
		{ "target", required_argument, NULL, 'T' },
		{ "profile", required_argument, NULL, 'P' },
		{ "type", required_argument, NULL, 'y' },
		{ "keep", required_argument, NULL, 'k' },
		{ "allow-requantize", no_argument, NULL, 'R' },
		{ "imatrix", required_argument, NULL, 'I' },
		{ "list-targets", no_argument, NULL, 'l' },
		{ "no-quality", no_argument, NULL, 'Q' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_WRITE_SHORT, opts, NULL)) != -1) {
		int h = cli_write_option("quantize", c, optarg, &wa);
		if (h < 0)
			return 2;
		if (h > 0)
			continue;
		switch (c) {
		case 'T': target = optarg; break;
		case 'P': profile_path = optarg; break;
		case 'y':
		case 'k':
			if (nrules == MAX_RULES)
				return cli_usage_error("quantize", "at most %d --type/--keep rules", MAX_RULES);
			type_args[nrules] = optarg;
			type_keep[nrules++] = c == 'k';
			break;
		case 'R': allow_rq = 1; break;
		case 'I': imatrix_path = optarg; break;
		case 'l': list = 1; break;
		case 'Q': quality = 0; break;
		default: return cli_usage_error("quantize", "unknown option");
		}
	}
	const char *outpath = wa.outpath, *format = wa.format;
	cvt_options o = wa.o;
	int force = wa.force, json = wa.json, quiet = wa.quiet, dry = wa.dry;
	uint64_t split_max = wa.split_max;
	if (list)
		return list_targets(json);
	if (optind != argc - 1)
		return cli_usage_error("quantize", "expected one SOURCE (checkpoint, GGUF or packed bundle)");
	if (target && profile_path)
		return cli_usage_error("quantize", "give --target or --profile, not both");
	if (!target && !profile_path && nrules == 0)
		return cli_usage_error("quantize", "no target: use --target NAME (see --list-targets), --profile FILE or --type");
	if (format && strcmp(format, "gguf") && strcmp(format, "packed") && strcmp(format, "safetensors"))
		return cli_usage_error("quantize", "--format must be gguf, packed or safetensors, not '%s'", format);
	if (split_max && format && strcmp(format, "packed") == 0)
		return cli_usage_error("quantize", "--split-max-size splits GGUF output; a packed bundle is not split");
	const char *in = argv[optind];
	qf_err err = { { 0 } };
	qf_status s = QF_OK;
	qnt_profile prof;
	int have_prof = 0;
	qnt_rule rules[MAX_RULES];
	size_t nr = 0;
	cvt_plan *plan = NULL;
	int rc = 0;
	if (target || profile_path) {
		s = target ? qnt_profile_find(target, &prof, &err) : qnt_profile_load(profile_path, &prof, &err);
		if (s)
			return cli_error("quantize", s, &err);
		have_prof = 1;
	}
	int want_hf = format && !strcmp(format, "safetensors");
	if (have_prof && (prof.hf != want_hf) && format) {
		rc = cli_usage_error("quantize", "--format %s disagrees with target '%s', whose output is %s", format, prof.name,
				     prof.hf ? "safetensors" : prof.packed ? "packed" : "gguf");
		goto done;
	}
	int hf_out = want_hf || (have_prof && prof.hf);
	if ((hf_out && split_max) || (!hf_out && wa.shard_size)) {
		rc = cli_usage_error("quantize", hf_out ? "--split-max-size splits GGUF output; safetensors output uses --shard-size"
							: "--shard-size applies to safetensors output");
		goto done;
	}
	if (hf_out) {
		cli_hf_opts ho = { .shard_size = wa.shard_size, .force = force, .threads = o.threads, .quiet = quiet,
				   .json = json, .quality = quality };
		rc = cli_hf_quantize(in, outpath, &o, have_prof ? &prof : NULL, type_args, type_keep, nrules, &ho, dry);
		goto done;
	}
	for (; nr < nrules; nr++)
		if ((s = qnt_rule_parse(type_args[nr], type_keep[nr], &rules[nr], &err)))
			goto done;
	int packed = format ? strcmp(format, "packed") == 0 : have_prof && prof.packed;
	if (packed && split_max) {
		s = qf_fail(&err, QF_EUSAGE, "--split-max-size splits GGUF output; target %s writes a packed bundle", prof.name);
		goto done;
	}
	if (have_prof && prof.kv_b_joined)
		o.legacy_kv_b = 1;
	if ((s = cvt_plan_open(in, &o, &plan, &err)))
		goto done;
	if ((s = qnt_plan_apply(plan, have_prof ? &prof : NULL, rules, nr, allow_rq, &err)))
		goto done;
	if (imatrix_path) {
		if ((s = qf_imatrix_open(imatrix_path, &imx, &err)) ||
		    (s = qnt_plan_apply_imatrix(plan, have_prof ? &prof : NULL, rules, nr, &err)) ||
		    (s = qnt_importance_apply(plan, imx, &imp, &err)))
			goto done;
		if (!imp.weighted && !quiet)
			fprintf(stderr, "qforge quantize: note: --imatrix ignored: %s\n",
				imp.missing ? "no tensor quantized to a weighted format has an entry in it"
					    : "this target's formats quantize without weights (ggml's q8_0 and mxfp4, and qforge's bundle formats)");
		else if (!quiet && !json)
			printf("imatrix %s: %zu tensors weighted, %zu without an entry (unweighted%s%s), %zu in formats that take no weights\n",
			       imatrix_path, imp.weighted, imp.missing, imp.missing ? ", e.g. " : "", imp.first_missing, imp.ignored);
	}
	char defname[4096];
	if (!outpath) {
		cli_default_output(in, have_prof ? prof.name : "custom", packed, defname, sizeof defname);
		outpath = defname;
	}
	size_t n = cvt_plan_count(plan);
	if (dry) {
		uint64_t tin = 0, tout = 0;
		cJSON *j = json ? cJSON_CreateObject() : NULL;
		cJSON *ts = json ? cJSON_AddArrayToObject(j, "tensors") : NULL;
		if (!json)
			printf("plan: %s → %s (%s, %s)\n", in, outpath, have_prof ? prof.name : "--type rules",
			       packed ? "packed" : "gguf");
		for (size_t i = 0; i < n; i++) {
			cvt_item *it = cvt_plan_item(plan, i);
			uint64_t ob = cvt_item_out_bytes(it, packed);
			tin += cvt_item_src_bytes(it);
			tout += ob;
			if (json) {
				cJSON *t = cJSON_CreateObject();
				cJSON_AddStringToObject(t, "name", it->name);
				cJSON_AddStringToObject(t, "class", cvt_class_name(it->cls));
				cJSON_AddStringToObject(t, "format", qf_dtype_info(it->fmt)->fmt);
				cJSON_AddBoolToObject(t, "fallback", it->fallback);
				cJSON_AddNumberToObject(t, "bytes", (double)ob);
				cJSON_AddItemToArray(ts, t);
			} else {
				printf("  %-44s %-14s %-15s%s %12llu\n", it->name, cvt_class_name(it->cls),
				       qf_dtype_info(it->fmt)->fmt, it->fallback ? "*" : " ", (unsigned long long)ob);
			}
		}
		if (json) {
			cJSON_AddNumberToObject(j, "bytes_in", (double)tin);
			cJSON_AddNumberToObject(j, "bytes_out", (double)tout);
			cli_print_json(j);
		} else {
			char a[32], b[32];
			printf("totals: %zu tensors, %s in → %s out (* = fallback)\n", n, cli_human_bytes(tin, a, sizeof a),
			       cli_human_bytes(tout, b, sizeof b));
		}
		goto done;
	}
	cli_progress pr;
	cli_progress_init(&pr, "quantize", quiet || json);
	cvt_result res;
	cvt_write_opts wo = { .packed = packed, .force = force, .threads = o.threads, .quality = quality,
			      .prog = cli_tensor_progress, .ud = &pr, .profile = have_prof ? prof.json : NULL,
			      .split_max = split_max, .extra_meta = imx && imp.weighted ? imatrix_meta : NULL,
			      .extra_ud = &(imatrix_ud){ imatrix_path, imx } };
	s = cvt_write(plan, outpath, &wo, &res, &err);
	cli_progress_done(&pr);
	if (s)
		goto done;
	char wname[4200];
	const char *written = cli_written_name(outpath, split_max, res.parts, wname, sizeof wname);
	char h[17];
	snprintf(h, sizeof h, "%016llx", (unsigned long long)res.data_hash);
	if (json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "input", in);
		cJSON_AddStringToObject(j, "output", outpath);
		cJSON_AddNumberToObject(j, "parts", (double)res.parts);
		cJSON_AddStringToObject(j, "target", have_prof ? prof.name : "");
		cJSON_AddStringToObject(j, "format", packed ? "packed" : "gguf");
		cJSON_AddNumberToObject(j, "tensors", (double)n);
		cJSON_AddNumberToObject(j, "bytes_in", (double)res.bytes_in);
		cJSON_AddNumberToObject(j, "bytes_out", (double)res.bytes_out);
		cJSON_AddNumberToObject(j, "seconds", res.seconds);
		cJSON_AddNumberToObject(j, "threads", o.threads);
		cJSON_AddStringToObject(j, "data_xxh64", h);
		summary(plan, &res, quality, 1, j);
		cli_print_json(j);
	} else {
		char a[32], b[32];
		printf("quantized %s → %s (%s, %s): %zu tensors, %s in → %s out in %.2f s (%.2f GB/s in, %d threads), data xxh64 %s\n",
		       in, written, have_prof ? prof.name : "--type rules", packed ? "packed" : "gguf", n,
		       cli_human_bytes(res.bytes_in, a, sizeof a), cli_human_bytes(res.bytes_out, b, sizeof b),
		       res.seconds, res.seconds > 0 ? (double)res.bytes_in / res.seconds / 1e9 : 0.0, o.threads, h);
		summary(plan, &res, quality, 0, NULL);
	}
done:
	if (s)
		rc = cli_error("quantize", s, &err);
	cvt_plan_free(plan);
	for (size_t i = 0; i < nr; i++)
		qnt_rule_free(&rules[i]);
	if (have_prof)
		qnt_profile_free(&prof);
	qnt_importance_free(&imp);
	qf_imatrix_free(imx);
	return rc;
}
