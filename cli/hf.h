/*
 * hf.h — the command-line side of Hugging Face folder output (private to cli/).
 */
#ifndef QF_CLI_HF_H
#define QF_CLI_HF_H

#include <stddef.h>
#include <stdint.h>

#include "convert/hf.h"
#include "quantize/profile.h"

typedef struct cli_hf_opts {
	uint64_t shard_size;
	int force, threads, quiet, json, quality, summary;
	const char *profile_name;
} cli_hf_opts;

/* <base of in>-<tag>-hf */
void cli_hf_default_output(const char *in, const char *tag, char *buf, size_t n);
int cli_hf_dry_run(const char *cmd, cvt_hf_plan *p, const char *in, const char *out, int json);
/* Writes the folder and (o->summary) prints the result line; returns the exit code. */
int cli_hf_write(const char *cmd, cvt_hf_plan *p, const char *in, const char *out, const cli_hf_opts *o,
		 cvt_result *res);

/* quantize with a safetensors profile (or --format safetensors): returns the exit code. */
int cli_hf_quantize(const char *in, const char *outpath, const cvt_options *o, const qnt_profile *prof,
		    const char *const *type_args, const int *type_keep, size_t nrules, const cli_hf_opts *ho, int dry);

#endif
