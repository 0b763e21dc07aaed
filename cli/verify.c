#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "formats/mapfile.h"
#include "formats/textfile.h"
#include "verify/verify.h"

#define MAX_CAND 16

/*
 * The progress line: chunk-major, chunks done of all; layer-major, the batch,
 * model and layer.  When weights stream, done/total are bytes (so the line's
 * GB/s is the read rate and its ETA follows the bytes still to read).
 */
static void on_progress(void *ud, const vfy_progress *p)
{
	uint64_t done = p->chunk, total = p->nchunks;
	if (p->gb_streamed > 0 && p->done_frac > 0) {
		done = (uint64_t)(p->gb_streamed * 1e9);
		total = (uint64_t)(p->gb_streamed * 1e9 / p->done_frac);
	}
	if (p->batch_chunks > 1) /* layer-major */
		cli_progress_update(ud, done, total, "chunks %zu-%zu/%zu, model %zu/%zu, layer %lld/%lld, %.1f GB streamed",
				    p->chunk + 1, p->chunk + p->batch_chunks, p->nchunks, p->model, p->nmodels,
				    (long long)p->layer, (long long)p->nlayer, p->gb_streamed);
	else
		cli_progress_update(ud, done, total, "chunk %zu/%zu, %.0f tokens/s, %.1f GB streamed", p->chunk, p->nchunks,
				    p->tokens_per_s, p->gb_streamed);
}

static int cmp_terr(const void *a, const void *b)
{
	const vfy_terr *x = a, *y = b;
	/* a problem or a NaN error (an all-NaN tensor) sorts as the worst */
	double rx = x->problem || isnan(x->rel_rms) ? INFINITY : x->rel_rms;
	double ry = y->problem || isnan(y->rel_rms) ? INFINITY : y->rel_rms;
	return rx < ry ? 1 : rx > ry ? -1 : strcmp(x->name, y->name);
}

static char hexs[MAX_CAND + 2][17];

static const char *hx(int slot, uint64_t v)
{
	snprintf(hexs[slot], sizeof hexs[slot], "%016llx", (unsigned long long)v);
	return hexs[slot];
}

/* Level 2 report for one candidate; returns the JSON (or prints). */
static cJSON *report_tensors(vfy_terr *e, size_t n, int top, int json)
{
	qsort(e, n, sizeof *e, cmp_terr);
	cJSON *o = json ? cJSON_CreateObject() : NULL;
	cJSON *arr = json ? cJSON_AddArrayToObject(o, "tensors") : NULL;
	if (!json)
		printf("  per-tensor error against the reference, worst first:\n  %-44s %-15s %10s %10s %10s\n", "tensor", "format",
		       "rel-RMS", "max |Δ|", "cosine");
	for (size_t i = 0; i < n; i++) {
		if (json) {
			cJSON *t = cJSON_CreateObject();
			cJSON_AddStringToObject(t, "name", e[i].name);
			cJSON_AddStringToObject(t, "class", cvt_class_name(e[i].cls));
			cJSON_AddStringToObject(t, "format", e[i].fmt);
			if (e[i].problem) {
				cJSON_AddStringToObject(t, "problem", e[i].problem);
			} else {
				cJSON_AddNumberToObject(t, "rel_rms", e[i].rel_rms);
				cJSON_AddNumberToObject(t, "max_abs", e[i].max_abs);
				cJSON_AddNumberToObject(t, "cosine", e[i].cosine);
			}
			cJSON_AddItemToArray(arr, t);
		} else if ((int)i < top) {
			if (e[i].problem)
				printf("  %-44s %-15s %s\n", e[i].name, e[i].fmt, e[i].problem);
			else
				printf("  %-44s %-15s %10.5f %10.4g %10.6f\n", e[i].name, e[i].fmt, e[i].rel_rms, e[i].max_abs, e[i].cosine);
		}
	}
	if (!json && (size_t)top < n)
		printf("  … %zu more (--top N, or --json for all)\n", n - (size_t)top);
	/* per class */
	cJSON *cls = json ? cJSON_AddArrayToObject(o, "classes") : NULL;
	if (!json)
		printf("  per class:\n  %-14s %7s %10s %10s %10s\n", "class", "tensors", "rel-RMS", "max |Δ|", "cosine");
	for (int c = 0; c < CVT_CLASS_COUNT; c++) {
		double d2 = 0, x2 = 0, y2 = 0, xy = 0, mx = 0;
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if ((int)e[i].cls != c || e[i].problem)
				continue;
			d2 += e[i].d2;
			x2 += e[i].x2;
			y2 += e[i].y2;
			xy += e[i].xy;
			mx = e[i].max_abs > mx ? e[i].max_abs : mx;
			k++;
		}
		if (!k)
			continue;
		double rel = x2 > 0 ? sqrt(d2 / x2) : 0, cosv = x2 > 0 && y2 > 0 ? xy / sqrt(x2 * y2) : 1;
		if (isnan(d2 + x2 + y2 + xy)) /* a NaN tensor in the class: its totals are NaN, not exact */
			rel = cosv = NAN;
		if (json) {
			cJSON *t = cJSON_CreateObject();
			cJSON_AddStringToObject(t, "class", cvt_class_name((cvt_class)c));
			cJSON_AddNumberToObject(t, "tensors", (double)k);
			cJSON_AddNumberToObject(t, "rel_rms", rel);
			cJSON_AddNumberToObject(t, "max_abs", mx);
			cJSON_AddNumberToObject(t, "cosine", cosv);
			cJSON_AddItemToArray(cls, t);
		} else {
			printf("  %-14s %7zu %10.5f %10.4g %10.6f\n", cvt_class_name((cvt_class)c), k, rel, mx, cosv);
		}
	}
	return o;
}

int cli_verify(int argc, char **argv)
{
	const char *ref_path = NULL, *text_path = NULL;
	long ctx = 512, chunks = 0, top = 10;
	int threads = cli_default_threads();
	double max_ratio = 0, max_kld = -1, mem_gib = 4;
	int json = 0, quiet = 0, no_tensors = 0;
	static const struct option opts[] = {
		{ "reference", required_argument, NULL, 'r' },
		{ "text", required_argument, NULL, 'x' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "chunks", required_argument, NULL, 'k' },
		{ "max-ppl-ratio", required_argument, NULL, 'R' },
		{ "max-kld", required_argument, NULL, 'K' },
		{ "threads", required_argument, NULL, 't' },
		{ "mem", required_argument, NULL, 'm' },
		{ "top", required_argument, NULL, 'T' },
		{ "no-tensors", no_argument, NULL, 'N' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:q", opts, NULL)) != -1) {
		char *end = NULL;
		switch (c) {
		case 'r': ref_path = optarg; break;
		case 'x': text_path = optarg; break;
		case 'c':
			if (!cli_parse_int(optarg, 4, 1 << 20, &ctx))
				return cli_usage_error("verify", "--ctx needs a token count ≥ 4, not '%s'", optarg);
			break;
		case 'k':
			if (!cli_parse_int(optarg, 1, 1L << 30, &chunks))
				return cli_usage_error("verify", "--chunks needs a positive count, not '%s'", optarg);
			break;
		case 'T':
			if (!cli_parse_int(optarg, 0, 1L << 30, &top))
				return cli_usage_error("verify", "--top needs a count, not '%s'", optarg);
			break;
		case 't':
			if (!cli_parse_threads("verify", optarg, &threads))
				return 2;
			break;
		case 'R':
			max_ratio = strtod(optarg, &end);
			if (!end || *end || !(max_ratio > 0))
				return cli_usage_error("verify", "--max-ppl-ratio needs a positive number, not '%s'", optarg);
			break;
		case 'K':
			max_kld = strtod(optarg, &end);
			if (!end || *end || !(max_kld >= 0))
				return cli_usage_error("verify", "--max-kld needs a number ≥ 0, not '%s'", optarg);
			break;
		case 'm':
			mem_gib = strtod(optarg, &end);
			if (!end || *end || !(mem_gib >= 0))
				return cli_usage_error("verify", "--mem needs GiB ≥ 0 (0: always stream), not '%s'", optarg);
			break;
		case 'N': no_tensors = 1; break;
		case 'j': json = 1; break;
		case 'q': quiet = 1; break;
		default: return cli_usage_error("verify", "unknown option");
		}
	}
	int nc = argc - optind;
	if (nc < 1 || nc > MAX_CAND)
		return cli_usage_error("verify", "expected 1 to %d MODELs to verify", MAX_CAND);
	if ((max_ratio > 0 || max_kld >= 0) && (!ref_path || !text_path))
		return cli_usage_error("verify", "--max-ppl-ratio and --max-kld need --reference and --text");
	char **cand = argv + optind;
	qf_err err = { { 0 } };
	for (int i = -1; i < nc; i++) /* a FIFO would block the probes */
		if ((i >= 0 || ref_path) && qf_input_check(i >= 0 ? cand[i] : ref_path, &err))
			return cli_error("verify", QF_EFORMAT, &err);
	qf_status s = QF_OK;
	int failed = 0, partial = 0; /* partial: something was NOT checked (a version 1 bundle's manifest) */
	cJSON *jo = json ? cJSON_CreateObject() : NULL, *jc = json ? cJSON_AddArrayToObject(jo, "models") : NULL;
	cJSON *jfail = json ? cJSON_AddArrayToObject(jo, "failures") : NULL;
	fwd_model *models[MAX_CAND + 1] = { 0 };
	cvt_plan *refplan = NULL;
	int ref_joined = 0; /* refplan keeps kv_b joined */
	qf_tok *tok = NULL;
	int32_t *ids = NULL;
	char msg[512];
#define FAIL(...)                                                              \
	do {                                                                   \
		snprintf(msg, sizeof msg, __VA_ARGS__);                        \
		failed = 1;                                                    \
		fflush(stdout);                                                \
		if (json)                                                      \
			cJSON_AddItemToArray(jfail, cJSON_CreateString(msg));  \
		else                                                           \
			fprintf(stderr, "qforge verify: %s\n", msg);           \
	} while (0)

	/* the reference is measured against, so it is checked too when it records hashes (a GGUF or bundle) */
	if (ref_path) {
		vfy_integrity rr;
		if ((s = vfy_integrity_check(ref_path, &rr, &err)))
			goto done;
		if (json) {
			cJSON *ji = cJSON_AddObjectToObject(jo, "reference_integrity");
			cJSON_AddStringToObject(ji, "path", ref_path);
			cJSON_AddStringToObject(ji, "status", rr.nbad ? "FAILED" : !rr.hashed ? "NOT checked" : "OK");
		} else if (rr.hashed) {
			printf("reference %s: integrity %s\n", ref_path, rr.nbad ? "FAILED" : "OK");
		}
		for (size_t k = 0; k < rr.nbad; k++)
			if (rr.bad[k].what[0])
				FAIL("%s (the reference): %s: %s", ref_path, rr.bad[k].name, rr.bad[k].what);
			else
				FAIL("%s (the reference): %s: hash mismatch (recorded %s, computed %s)", ref_path, rr.bad[k].name,
				     hx(0, rr.bad[k].want), hx(1, rr.bad[k].got));
		vfy_integrity_free(&rr);
	}

	/* level 1 and 2 per candidate */
	for (int i = 0; i < nc; i++) {
		vfy_integrity ir;
		cJSON *jm = json ? cJSON_CreateObject() : NULL;
		if (json) {
			cJSON_AddStringToObject(jm, "path", cand[i]);
			cJSON_AddItemToArray(jc, jm);
		}
		if ((s = vfy_integrity_check(cand[i], &ir, &err)))
			goto done;
		const char *status = ir.nbad ? "FAILED" : !ir.hashed ? "NOT checked" : "OK";
		if (json) {
			cJSON *ji = cJSON_AddObjectToObject(jm, "integrity");
			cJSON_AddStringToObject(ji, "kind", ir.kind);
			cJSON_AddStringToObject(ji, "status", status);
			cJSON_AddBoolToObject(ji, "hashed", ir.hashed);
			if (ir.unchecked)
				cJSON_AddStringToObject(ji, "not_checked", ir.unchecked);
			cJSON_AddNumberToObject(ji, "tensors", (double)ir.tensors);
			cJSON_AddNumberToObject(ji, "checked", (double)ir.checked);
			cJSON_AddNumberToObject(ji, "bytes", (double)ir.bytes);
			cJSON_AddStringToObject(ji, "data_xxh64", hx(0, ir.data_hash));
			cJSON *mm = cJSON_AddArrayToObject(ji, "mismatches");
			for (size_t k = 0; k < ir.nbad; k++) {
				cJSON *x = cJSON_CreateObject();
				cJSON_AddStringToObject(x, "name", ir.bad[k].name);
				if (ir.bad[k].what[0]) {
					cJSON_AddStringToObject(x, "problem", ir.bad[k].what);
				} else {
					cJSON_AddStringToObject(x, "recorded", hx(0, ir.bad[k].want));
					cJSON_AddStringToObject(x, "computed", hx(1, ir.bad[k].got));
				}
				cJSON_AddItemToArray(mm, x);
			}
		} else {
			char hb[32];
			printf("%s (%s)\n", cand[i], ir.kind);
			if (!ir.hashed)
				printf("  integrity: NOT checked — %s\n", ir.unchecked);
			else if (!ir.nbad)
				printf("  integrity: OK — %zu hashes match over %zu tensors, %s, data xxh64 %s\n", ir.checked, ir.tensors,
				       cli_human_bytes(ir.bytes, hb, sizeof hb), hx(0, ir.data_hash));
			if (ir.hashed && ir.unchecked)
				printf("  integrity: NOT checked: %s\n", ir.unchecked);
			for (size_t k = 0; k < ir.nbad; k++)
				if (ir.bad[k].what[0])
					printf("  integrity: BROKEN %s: %s\n", ir.bad[k].name, ir.bad[k].what);
				else
					printf("  integrity: MISMATCH %s: recorded %s, computed %s\n", ir.bad[k].name,
					       hx(0, ir.bad[k].want), hx(1, ir.bad[k].got));
		}
		/*
		 * Nothing checked is never OK, but it is no failure either: a
		 * third-party GGUF or a Hugging Face checkpoint has no qforge
		 * hashes, and its perplexity is still worth measuring.  The last
		 * line says "passed what was checked" and JSON "complete": false.
		 */
		partial |= !ir.hashed || ir.unchecked;
		for (size_t k = 0; k < ir.nbad; k++)
			if (ir.bad[k].what[0])
				FAIL("%s: %s: %s (integrity cannot be trusted)", cand[i], ir.bad[k].name, ir.bad[k].what);
			else
				FAIL("%s: %s: hash mismatch (recorded %s, computed %s)", cand[i], ir.bad[k].name,
				     hx(0, ir.bad[k].want), hx(1, ir.bad[k].got));
		vfy_integrity_free(&ir);
		if (ref_path && !no_tensors) {
			cvt_options o = { .outtype = QF_F32, .threads = (int)threads, .allow_nonfinite = 1 };
			cvt_plan *cp = NULL;
			vfy_terr *te = NULL;
			size_t nte = 0;
			if ((s = cvt_plan_open(cand[i], &o, &cp, &err)))
				goto done;
			/* a candidate that keeps kv_b joined is compared with a joined reference */
			for (size_t k = 0; k < cvt_plan_count(cp); k++)
				if (strstr(cvt_plan_item(cp, k)->name, ".attn_kv_b."))
					o.legacy_kv_b = 1;
			/* (re)open the reference only when the form it needs changes: a tar reference is staged each time */
			if (refplan && o.legacy_kv_b != ref_joined) {
				cvt_plan_free(refplan);
				refplan = NULL;
			}
			ref_joined = o.legacy_kv_b;
			if ((!refplan && (s = cvt_plan_open(ref_path, &o, &refplan, &err))) ||
			    (s = vfy_tensor_errors(cp, refplan, (int)threads, &te, &nte, &err))) {
				cvt_plan_free(cp);
				goto done;
			}
			cJSON *t = report_tensors(te, nte, (int)top, json);
			if (json)
				cJSON_AddItemToObject(jm, "tensor_errors", t);
			for (size_t k = 0; k < nte; k++)
				if (te[k].problem)
					FAIL("%s: tensor '%s': %s", cand[i], te[k].name, te[k].problem);
			free(te);
			cvt_plan_free(cp);
		}
	}
	cvt_plan_free(refplan);
	refplan = NULL;

	/* level 3: the forward pass */
	if (text_path) {
		const char *tokpath = ref_path ? ref_path : cand[0];
		size_t n = 0;
		if ((s = cli_tokenizer_open(tokpath, &tok, &err)) ||
		    (s = cli_read_ids(tok, text_path, chunks ? (size_t)chunks * (size_t)ctx : 0, &ids, &n, &err)))
			goto done;
		size_t nm = 0;
		uint64_t budget = (uint64_t)(mem_gib * (double)(1ull << 30));
		if (ref_path && (s = fwd_model_open(ref_path, (int)threads, budget, &models[nm++], &err)))
			goto done;
		for (int i = 0; i < nc; i++)
			if ((s = fwd_model_open(cand[i], (int)threads, budget, &models[nm++], &err)))
				goto done;
		vfy_ppl res[MAX_CAND + 1];
		cli_progress pr;
		cli_progress_init(&pr, "verify", quiet || json);
		int32_t bos = qf_tok_adds_bos(tok) ? qf_tok_bos(tok) : -1;
		s = vfy_perplexity(models, nm, ids, n, ctx, bos, (size_t)chunks, on_progress, &pr, res, &err);
		cli_progress_done(&pr);
		if (s)
			goto done;
		size_t nch = (size_t)(n / (size_t)ctx);
		if (chunks && nch > (size_t)chunks)
			nch = (size_t)chunks;
		if (json) {
			cJSON *jp = cJSON_AddObjectToObject(jo, "perplexity");
			cJSON_AddStringToObject(jp, "text", text_path);
			cJSON_AddNumberToObject(jp, "tokens", (double)n);
			cJSON_AddNumberToObject(jp, "ctx", (double)ctx);
			cJSON_AddNumberToObject(jp, "chunks", (double)nch);
			cJSON_AddNumberToObject(jp, "scored", (double)res[0].n);
			cJSON *rows = cJSON_AddArrayToObject(jp, "rows");
			for (size_t k = 0; k < nm; k++) {
				cJSON *r = cJSON_CreateObject();
				int is_ref = ref_path && k == 0;
				cJSON_AddStringToObject(r, "model", is_ref ? ref_path : cand[k - (ref_path ? 1 : 0)]);
				cJSON_AddBoolToObject(r, "reference", is_ref);
				cJSON_AddNumberToObject(r, "ppl", res[k].ppl);
				cJSON_AddNumberToObject(r, "ppl_err", res[k].ppl_err);
				if (res[k].nonfinite_at >= 0) {
					cJSON_AddNumberToObject(r, "nonfinite_at", (double)res[k].nonfinite_at);
					cJSON_AddStringToObject(r, "nonfinite", res[k].nonfinite_what);
				}
				if (ref_path && k > 0) {
					cJSON_AddNumberToObject(r, "ppl_ratio", res[k].ppl_ratio);
					cJSON_AddNumberToObject(r, "kld", res[k].kld);
					cJSON_AddNumberToObject(r, "kld_err", res[k].kld_err);
					cJSON_AddNumberToObject(r, "kld_p99", res[k].kld_p99);
					cJSON_AddNumberToObject(r, "same_top1", res[k].top1);
					cJSON_AddNumberToObject(r, "rms_dp", res[k].rms_dp);
				}
				cJSON_AddItemToArray(rows, r);
			}
		} else {
			printf("\nperplexity on %s: %zu tokens, %zu chunks of %ld, %zu positions scored (%s tokenizer of %s)\n",
			       cli_path_base(text_path), n, nch, ctx, res[0].n, qf_tok_kind(tok), cli_path_base(tokpath));
			printf("%-26s %18s %9s %16s %9s %8s %7s\n", "model", "PPL", "ratio", "mean KLD", "KLD p99", "top-1",
			       "RMS Δp");
			for (size_t k = 0; k < nm; k++) {
				int is_ref = ref_path && k == 0;
				const char *nmn = cli_path_base(is_ref ? ref_path : cand[k - (ref_path ? 1 : 0)]);
				char ppl[40];
				snprintf(ppl, sizeof ppl, "%.4f ± %.4f", res[k].ppl, res[k].ppl_err);
				if (ref_path && k > 0)
					printf("%-26.26s %18s %9.4f %8.5f±%.5f %9.5f %7.2f%% %6.2f%%\n", nmn, ppl, res[k].ppl_ratio,
					       res[k].kld, res[k].kld_err, res[k].kld_p99, 100 * res[k].top1, 100 * res[k].rms_dp);
				else
					printf("%-26.26s %18s %9s %16s %9s %8s %7s\n", nmn, ppl, is_ref ? "(ref)" : "-", "-", "-", "-", "-");
			}
		}
		for (size_t k = 0; k < nm; k++) {
			const char *nmn = ref_path && k == 0 ? ref_path : cand[k - (ref_path ? 1 : 0)];
			int64_t at = res[k].nonfinite_at;
			if (at >= 0)
				FAIL("%s: non-finite %s at token %lld of the text (chunk %lld, position %lld)", nmn,
				     res[k].nonfinite_what, (long long)at, (long long)(at / ctx), (long long)(at % ctx));
			if (!ref_path || k == 0)
				continue;
			/* written so that NaN fails: NaN compares false */
			if (max_ratio > 0 && !(res[k].ppl_ratio <= max_ratio))
				FAIL("%s: PPL ratio %.4f exceeds --max-ppl-ratio %.4f", nmn, res[k].ppl_ratio, max_ratio);
			if (max_kld >= 0 && !(res[k].kld <= max_kld))
				FAIL("%s: mean KLD %.5f exceeds --max-kld %.5f", nmn, res[k].kld, max_kld);
		}
	}
done:
	cvt_plan_free(refplan);
	for (size_t k = 0; k <= MAX_CAND; k++)
		fwd_model_free(models[k]);
	qf_tok_free(tok);
	free(ids);
	if (s) {
		cJSON_Delete(jo);
		return cli_error("verify", s, &err);
	}
	if (json) {
		cJSON_AddBoolToObject(jo, "ok", !failed);
		cJSON_AddBoolToObject(jo, "complete", !partial); /* false: something was NOT checked */
		cli_print_json(jo);
	} else {
		printf("%s\n", failed    ? "verify: FAILED"
				: partial ? "verify: passed what was checked (see NOT checked above)"
					  : "verify: OK");
	}
	return failed ? 1 : 0;
#undef FAIL
}
