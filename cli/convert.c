#include "config.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/hf.h"
#include "convert/convert.h"

static void shape_str(const cvt_item *it, char *b, size_t n) { qf_dims_str(it->ndim, it->shape, b, n); }

static const char *op_name(cvt_op op)
{
	switch (op) {
	case CVT_OP_COPY: return "copy";
	case CVT_OP_PERMUTE: return "unpermute-rope";
	case CVT_OP_STACK: return "stack-experts";
	case CVT_OP_KB: return "kv_b→k_b";
	case CVT_OP_VB: return "kv_b→v_b";
	}
	return "?";
}

/* --format safetensors: the source's own names, FP8 dequantized to --outtype (BF16 by default). */
static int convert_hf(const char *in, const cli_write_args *wa)
{
	if (wa->split_max)
		return cli_usage_error("convert", "--split-max-size splits GGUF output; safetensors output uses --shard-size");
	qf_err err = { { 0 } };
	cvt_hf_plan *p = NULL;
	qf_status s = cvt_hf_plan_open(in, &wa->o, &p, &err);
	if (s)
		return cli_error("convert", s, &err);
	char defname[4096];
	const char *outpath = wa->outpath;
	if (!outpath) {
		const char *ot = wa->o.outtype == QF_F32 ? "f32" : wa->o.outtype == QF_F16 ? "f16" : "bf16";
		cli_hf_default_output(in, ot, defname, sizeof defname);
		outpath = defname;
	}
	int rc;
	if (wa->dry) {
		rc = cli_hf_dry_run("convert", p, in, outpath, wa->json);
	} else {
		cvt_result res;
		cli_hf_opts ho = { .shard_size = wa->shard_size, .force = wa->force, .threads = wa->o.threads,
				   .quiet = wa->quiet, .json = wa->json, .summary = 1 };
		rc = cli_hf_write("convert", p, in, outpath, &ho, &res);
	}
	cvt_hf_plan_free(p);
	return rc;
}

int cli_convert(int argc, char **argv)
{
	cli_write_args wa;
	cli_write_args_init(&wa);
	static const struct option opts[] = {
		CLI_WRITE_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, CLI_WRITE_SHORT, opts, NULL)) != -1) {
		int h = cli_write_option("convert", c, optarg, &wa);
		if (h < 0)
			return 2;
		if (h == 0)
			return cli_usage_error("convert", "unknown option");
	}
	const char *outpath = wa.outpath, *format = wa.format ? wa.format : "gguf";
	cvt_options o = wa.o;
	int dry = wa.dry, json = wa.json, force = wa.force, quiet = wa.quiet;
	uint64_t split_max = wa.split_max;
	if (optind != argc - 1)
		return cli_usage_error("convert", "expected one CHECKPOINT (folder, tar or .safetensors)");
	int packed = strcmp(format, "packed") == 0;
	if (!strcmp(format, "safetensors"))
		return convert_hf(argv[optind], &wa);
	if (!packed && strcmp(format, "gguf") != 0)
		return cli_usage_error("convert", "--format must be gguf, safetensors or packed, not '%s'", format);
	if (wa.shard_size)
		return cli_usage_error("convert", "--shard-size applies to --format safetensors");
	if (packed && split_max)
		return cli_usage_error("convert", "--split-max-size splits GGUF output; a packed bundle is not split");
	const char *in = argv[optind];
	qf_err err = { { 0 } };
	cvt_plan *plan = NULL;
	qf_status s = cvt_plan_open(in, &o, &plan, &err);
	if (s)
		return cli_error("convert", s, &err);
	char defname[4096];
	if (!outpath) {
		const char *ot = o.outtype == QF_F32 ? "f32" : o.outtype == QF_F16 ? "f16" : o.outtype == QF_BF16 ? "bf16" : "auto";
		cli_default_output(in, ot, packed, defname, sizeof defname);
		outpath = defname;
	}
	size_t n = cvt_plan_count(plan);
	uint64_t tin = 0, tout = 0;
	for (size_t i = 0; i < n; i++) {
		tin += cvt_item_src_bytes(cvt_plan_item(plan, i));
		tout += cvt_item_out_bytes(cvt_plan_item(plan, i), packed);
	}
	int rc = 0;
	if (dry) {
		if (json) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "input", in);
			cJSON_AddStringToObject(j, "output", outpath);
			cJSON_AddStringToObject(j, "architecture", cvt_plan_arch(plan));
			cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
			for (size_t i = 0; i < n; i++) {
				cvt_item *it = cvt_plan_item(plan, i);
				cJSON *t = cJSON_CreateObject();
				cJSON_AddStringToObject(t, "name", it->name);
				cJSON_AddStringToObject(t, "source", it->srcs[0].t->name);
				cJSON_AddNumberToObject(t, "sources", it->nsrc);
				cJSON_AddStringToObject(t, "op", op_name(it->op));
				cJSON_AddStringToObject(t, "class", cvt_class_name(it->cls));
				cJSON_AddStringToObject(t, "type", qf_dtype_name(it->type));
				cJSON *sh = cJSON_AddArrayToObject(t, "shape");
				for (int k = 0; k < it->ndim; k++)
					cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)it->shape[k]));
				cJSON_AddNumberToObject(t, "bytes", (double)cvt_item_nbytes(it));
				cJSON_AddItemToArray(ts, t);
			}
			cJSON_AddNumberToObject(j, "bytes_in", (double)tin);
			cJSON_AddNumberToObject(j, "bytes_out", (double)tout);
			cli_print_json(j);
		} else {
			char a[32], b[32];
			printf("plan: %s → %s (%s)\n", in, outpath, cvt_plan_arch(plan));
			for (size_t i = 0; i < n; i++) {
				cvt_item *it = cvt_plan_item(plan, i);
				char sh[96];
				shape_str(it, sh, sizeof sh);
				printf("  %-44s ← %-52s%s %-14s %-5s %-20s %12llu\n", it->name, it->srcs[0].t->name,
				       it->nsrc > 1 ? "…" : " ", op_name(it->op), qf_dtype_name(it->type), sh,
				       (unsigned long long)cvt_item_nbytes(it));
			}
			printf("totals: %zu tensors, %s in → %s out, %zu source tensors skipped\n", n,
			       cli_human_bytes(tin, a, sizeof a), cli_human_bytes(tout, b, sizeof b),
			       cvt_plan_skipped(plan));
		}
	} else {
		cli_progress pr;
		cli_progress_init(&pr, "convert", quiet || json);
		cvt_result res;
		cvt_write_opts wo = { .packed = packed, .force = force, .threads = o.threads,
				      .prog = cli_tensor_progress, .ud = &pr, .split_max = split_max };
		s = cvt_write(plan, outpath, &wo, &res, &err);
		char wname[4200];
		const char *written = s ? outpath : cli_written_name(outpath, split_max, res.parts, wname, sizeof wname);
		cli_progress_done(&pr);
		if (s) {
			rc = cli_error("convert", s, &err);
		} else if (json) {
			cJSON *j = cJSON_CreateObject();
			char h[17];
			snprintf(h, sizeof h, "%016llx", (unsigned long long)res.data_hash);
			cJSON_AddStringToObject(j, "input", in);
			cJSON_AddStringToObject(j, "output", outpath);
			cJSON_AddNumberToObject(j, "parts", (double)res.parts);
			cJSON_AddStringToObject(j, "architecture", cvt_plan_arch(plan));
			cJSON_AddNumberToObject(j, "tensors", (double)n);
			cJSON_AddNumberToObject(j, "bytes_in", (double)res.bytes_in);
			cJSON_AddNumberToObject(j, "bytes_out", (double)res.bytes_out);
			cJSON_AddNumberToObject(j, "seconds", res.seconds);
			cJSON_AddNumberToObject(j, "threads", o.threads);
			cJSON_AddStringToObject(j, "data_xxh64", h);
			cli_print_json(j);
		} else {
			char a[32], b[32];
			printf("converted %s → %s (%s): %zu tensors, %s in → %s out in %.2f s (%.2f GB/s in, %d threads), data xxh64 %016llx\n",
			       in, written, cvt_plan_arch(plan), n, cli_human_bytes(res.bytes_in, a, sizeof a),
			       cli_human_bytes(res.bytes_out, b, sizeof b), res.seconds,
			       res.seconds > 0 ? (double)res.bytes_in / res.seconds / 1e9 : 0.0, o.threads,
			       (unsigned long long)res.data_hash);
		}
	}
	cvt_plan_free(plan);
	return rc;
}
