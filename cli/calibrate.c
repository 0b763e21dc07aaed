/* calibrate.c — qforge calibrate: llama.cpp's GGUF importance matrix from the reference forward pass. */
#include "config.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "formats/mapfile.h"
#include "formats/outfile.h"
#include "formats/tokenizer.h"
#include "quantize/calibrate.h"

static void on_progress(void *ud, double frac, size_t c0, size_t nc, size_t nchunks, int64_t layer, int64_t nlayer)
{
	if (nc > 1)
		cli_progress_update(ud, (uint64_t)(frac * 1e6), 1000000, "chunks %zu-%zu/%zu, layer %lld/%lld", c0 + 1, c0 + nc,
				    nchunks, (long long)layer, (long long)nlayer);
	else
		cli_progress_update(ud, (uint64_t)(frac * 1e6), 1000000, "chunk %zu/%zu, layer %lld/%lld", c0 + 1, nchunks,
				    (long long)layer, (long long)nlayer);
}

int cli_calibrate(int argc, char **argv)
{
	const char *text_path = NULL, *outpath = NULL;
	long ctx = 512, chunks = 0;
	int threads = cli_default_threads();
	double mem_gib = 4;
	int json = 0, quiet = 0, force = 0, process_output = 0, legacy_kv_b = 0;
	static const struct option opts[] = {
		{ "text", required_argument, NULL, 'x' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "chunks", required_argument, NULL, 'k' },
		{ "output", required_argument, NULL, 'o' },
		{ "process-output", no_argument, NULL, 'P' },
		{ "legacy-kv-b", no_argument, NULL, 'L' },
		{ "threads", required_argument, NULL, 't' },
		{ "mem", required_argument, NULL, 'm' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:t:fq", opts, NULL)) != -1) {
		char *end = NULL;
		switch (c) {
		case 'x': text_path = optarg; break;
		case 'o': outpath = optarg; break;
		case 'c':
			if (!cli_parse_int(optarg, 16, 1 << 20, &ctx))
				return cli_usage_error("calibrate", "--ctx needs a token count ≥ 16 (llama-imatrix ignores shorter products), not '%s'",
						       optarg);
			break;
		case 'k':
			if (!cli_parse_int(optarg, 1, 1L << 30, &chunks))
				return cli_usage_error("calibrate", "--chunks needs a positive count, not '%s'", optarg);
			break;
		case 't':
			if (!cli_parse_threads("calibrate", optarg, &threads))
				return 2;
			break;
		case 'm':
			mem_gib = strtod(optarg, &end);
			if (!end || *end || !(mem_gib >= 0))
				return cli_usage_error("calibrate", "--mem needs GiB ≥ 0 (0: always stream), not '%s'", optarg);
			break;
		case 'P': process_output = 1; break;
		case 'L': legacy_kv_b = 1; break;
		case 'f': force = 1; break;
		case 'j': json = 1; break;
		case 'q': quiet = 1; break;
		default: return cli_usage_error("calibrate", "unknown option");
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("calibrate", "expected one MODEL (checkpoint, GGUF or packed bundle)");
	if (!text_path)
		return cli_usage_error("calibrate", "--text FILE is required: the calibration text");
	if (!outpath)
		return cli_usage_error("calibrate", "-o FILE is required: where the imatrix goes");
	const char *in = argv[optind];
	qf_err err = { { 0 } };
	qf_status s;
	qf_tok *tok = NULL;
	int32_t *ids = NULL;
	size_t n = 0;
	fwd_model *m = NULL;
	qf_imatrix *im = NULL;
	qf_out probe;
	/* refuse an output that cannot be written before the pass, not after it */
	if ((s = qf_input_check(in, &err)) || (s = qf_out_open(&probe, outpath, force, &err)))
		goto done;
	qf_out_abort(&probe);
	if ((s = cli_tokenizer_open(in, &tok, &err)) ||
	    (s = cli_read_ids(tok, text_path, chunks ? (size_t)chunks * (size_t)ctx : 0, &ids, &n, &err)))
		goto done;
	int32_t bos = qf_tok_adds_bos(tok) ? qf_tok_bos(tok) : -1;
	if (n == 0 || (n == 1 && ids[0] == bos)) {
		s = qf_fail(&err, QF_EFORMAT, "%s: no text to calibrate on (%zu tokens)", text_path, n);
		goto done;
	}
	if ((s = fwd_model_open(in, threads, (uint64_t)(mem_gib * (double)(1ull << 30)), &m, &err)))
		goto done;
	const fwd_hparams *h = fwd_model_hparams(m);
	if (h->n_ctx_train > 0 && ctx > h->n_ctx_train) {
		s = qf_fail(&err, QF_EUSAGE, "%s: --ctx %ld exceeds the %lld positions the model takes (context_length)", in, ctx,
			    (long long)h->n_ctx_train);
		goto done;
	}
	/* and one the pass is not exact for (DeepSeek-V3.2 beyond indexer.top_k), before any chunk runs */
	if ((s = fwd_check_ctx(m, ctx, &err)))
		goto done;
	qnt_calib_opts o = { .ctx = ctx, .max_chunks = (size_t)chunks, .bos = bos, .process_output = process_output,
			     .legacy_kv_b = legacy_kv_b };
	qnt_calib_stats st;
	cli_progress pr;
	cli_progress_init(&pr, "calibrate", quiet || json);
	s = qnt_calibrate(m, ids, n, &o, on_progress, &pr, &im, &st, &err);
	cli_progress_done(&pr);
	if (s || (s = qf_imatrix_add_dataset(im, text_path, &err)) || (s = qf_imatrix_write(im, outpath, force, &err)))
		goto done;
	if (json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "model", in);
		cJSON_AddStringToObject(j, "text", text_path);
		cJSON_AddStringToObject(j, "output", outpath);
		cJSON_AddNumberToObject(j, "tokens_read", (double)n);
		cJSON_AddNumberToObject(j, "ctx", (double)ctx);
		cJSON_AddNumberToObject(j, "chunks", (double)st.chunks);
		cJSON_AddNumberToObject(j, "tokens", (double)st.tokens);
		cJSON_AddNumberToObject(j, "entries", (double)st.entries);
		cJSON_AddNumberToObject(j, "routed_entries", (double)st.routed);
		cJSON_AddNumberToObject(j, "experts_unused", (double)st.experts_unused);
		cJSON_AddBoolToObject(j, "process_output", process_output);
		cJSON_AddBoolToObject(j, "legacy_kv_b", legacy_kv_b);
		cJSON_AddNumberToObject(j, "seconds", st.seconds);
		cJSON_AddNumberToObject(j, "threads", threads);
		cli_print_json(j);
	} else if (!quiet) {
		printf("calibrated %s on %s: %zu chunks of %ld (%llu tokens of %zu) in %.2f s (%.0f tokens/s, %d threads)\n", in,
		       cli_path_base(text_path), st.chunks, ctx, (unsigned long long)st.tokens, n, st.seconds,
		       st.seconds > 0 ? (double)st.tokens / st.seconds : 0.0, threads);
		if (st.routed)
			printf("wrote %s: %zu weights, %zu of them routed experts (kept per expert)%s\n", outpath, st.entries,
			       st.routed, legacy_kv_b ? "; attn_kv_b for --legacy-kv-b models" : "");
		else
			printf("wrote %s: %zu weights%s\n", outpath, st.entries,
			       legacy_kv_b ? "; attn_kv_b for --legacy-kv-b models" : "");
		if (st.experts_unused)
			printf("note: %zu (weight, expert) pairs saw no token: llama-quantize gives those experts weight 1\n",
			       st.experts_unused);
	}
done:
	fwd_model_free(m);
	qf_tok_free(tok);
	free(ids);
	qf_imatrix_free(im);
	if (s)
		return cli_error("calibrate", s, &err);
	return 0;
}
