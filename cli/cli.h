/*
 * cli.h — the command-line layer: the only code that prints or exits.
 */
#ifndef QF_CLI_H
#define QF_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "convert/convert.h"
#include "util/qf.h"

/* Subcommand entry points: return the process exit code. */
int cli_inspect(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_calibrate(int argc, char **argv);

/* "qforge CMD: message" on stderr; returns the exit code for st. */
int cli_error(const char *cmd, qf_status st, const qf_err *err);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Progress line on stderr, only when it is a terminal; ~6 refreshes/s. */
typedef struct cli_progress {
	int enabled;
	double start, last;
	const char *what;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *what, int quiet);
void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void cli_progress_done(cli_progress *p);

double cli_now(void);
/* The machine's cores, capped at QF_POOL_MAX. */
int cli_default_threads(void);
/* -t N: 1 … QF_POOL_MAX threads; 0 on error (a usage error was printed for cmd). */
int cli_parse_threads(const char *cmd, const char *arg, int *out);

/*
 * The options convert and quantize share: both write a plan.  Their
 * getopt_long tables start with CLI_WRITE_OPTIONS, their short options
 * with CLI_WRITE_SHORT, and every option cli_write_option handles is
 * handled the same way in both.
 */
typedef struct cli_write_args {
	const char *outpath;      /* -o, NULL: a name derived from the input */
	const char *format;       /* --format, NULL: the command's default */
	cvt_options o;            /* --outtype, -t, --keep-mtp/--no-mtp, --allow-nonfinite, --ignore-input-hashes, --legacy-kv-b, --pre */
	int dry, json, force, quiet;
	uint64_t split_max;       /* --split-max-size, 0: one GGUF */
	uint64_t shard_size;      /* --shard-size (safetensors output), 0: 5 GB */
} cli_write_args;
#define CLI_WRITE_SHORT "o:t:fq"
#define CLI_WRITE_OPTIONS                                                  \
	{ "output", required_argument, NULL, 'o' },                         \
	{ "format", required_argument, NULL, 'F' },                         \
	{ "outtype", required_argument, NULL, 'U' },                        \
	{ "threads", required_argument, NULL, 't' },                        \
	{ "dry-run", no_argument, NULL, 'n' },                              \
	{ "json", no_argument, NULL, 'j' },                                 \
	{ "force", no_argument, NULL, 'f' },                                \
	{ "quiet", no_argument, NULL, 'q' },                                \
	{ "keep-mtp", no_argument, NULL, 'M' },                             \
	{ "no-mtp", no_argument, NULL, 'W' },                               \
	{ "allow-nonfinite", no_argument, NULL, 'N' },                      \
	{ "ignore-input-hashes", no_argument, NULL, 'H' },                  \
	{ "legacy-kv-b", no_argument, NULL, 'L' },                          \
	{ "pre", required_argument, NULL, 'r' },                            \
	{ "split-max-size", required_argument, NULL, 'S' },                 \
	{ "shard-size", required_argument, NULL, 'Z' },                     \
	{ "max-stage-size", required_argument, NULL, 'X' }
/* One class's row of a quantize summary in JSON: class, fmt_key: fmt, tensors, fallbacks, bytes, bits/weight. */
struct cJSON *cli_class_json(cvt_class c, const char *fmt_key, const char *fmt, const cvt_stats *s);
/* A class's relative RMS error √(Σ(x−y)²/Σx²) and cosine; 0 when nothing in it was measured. */
int cli_class_error(const cvt_stats *s, double *rel, double *cosv);
/* Defaults: automatic outtype, cli_default_threads(), GGUF/bundle sources checked against their hashes. */
void cli_write_args_init(cli_write_args *a);
/* 1: c was a shared option and is applied; 0: not one of them; −1: a bad value (usage error printed). */
int cli_write_option(const char *cmd, int c, const char *arg, cli_write_args *a);
/* Parses a positive int option value; returns 0 on error. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
/* A size: digits, optionally followed by K, M or G (decimal: 10^3, 10^6, 10^9); plain = bytes.  0 on error. */
int cli_parse_size(const char *s, uint64_t *out);
/* What a write produced: outpath, or with a split the first part's name and " (n parts)" after it. */
const char *cli_written_name(const char *outpath, uint64_t split_max, size_t parts, char *buf, size_t n);
/* Prints j (pretty) on stdout and frees it. */
struct cJSON;
void cli_print_json(struct cJSON *j);
/* The last component of a path (trailing slashes are not part of it: its length is strcspn(r, "/")). */
const char *cli_path_base(const char *path);
/* Default output name beside the working folder: <base of in>-<tag>.gguf or .qfpack. */
void cli_default_output(const char *in, const char *tag, int packed, char *buf, size_t n);
/* Progress of a convert/quantize write (a cvt_progress_fn on a cli_progress). */
void cli_tensor_progress(void *ud, uint64_t done, uint64_t total, size_t item, size_t nitems);
/* "1.23 GiB" */
const char *cli_human_bytes(uint64_t n, char *buf, size_t len);
/* A model's tokenizer (vfy_tokenizer_open), from a tar checkpoint too: its metadata files are staged. */
struct qf_tok;
qf_status cli_tokenizer_open(const char *model, struct qf_tok **out, qf_err *err);
/*
 * The ids of a text file (plain or gzip; "-": stdin), tokenized with BOS/EOS as tok adds them, read only
 * as far as need ids (0: all of it).  *out is the caller's to free.
 */
qf_status cli_read_ids(struct qf_tok *tok, const char *path, size_t need, int32_t **out, size_t *nout, qf_err *err);
/* Installs SIGINT/SIGTERM handlers that remove partial outputs. */
void cli_install_signals(void);

#endif
