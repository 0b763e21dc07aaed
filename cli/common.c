#include "config.h"

#include <math.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/cli.h"
#include "convert/hf.h"
#include "formats/gguf.h"
#include "util/pool.h"
#include "formats/outfile.h"
#include "formats/packed.h"
#include "util/cleanup.h"
#include "verify/verify.h"

int cli_error(const char *cmd, qf_status st, const qf_err *err)
{
	qf_err changed = { { 0 } };
	if (qf_guard_check(&changed)) { /* the root cause of whatever followed */
		err = &changed;
		st = QF_EFORMAT;
	}
	fprintf(stderr, "qforge %s: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
	return qf_status_exit_code(st);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "qforge %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'qforge help %s')\n", cmd);
	return 2;
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : (n > QF_POOL_MAX ? QF_POOL_MAX : (int)n);
}

int cli_parse_threads(const char *cmd, const char *arg, int *out)
{
	long v;
	if (!cli_parse_int(arg, 1, QF_POOL_MAX, &v)) {
		cli_usage_error(cmd, "-t takes a thread count from 1 to %d, not '%s'", QF_POOL_MAX, arg);
		return 0;
	}
	*out = (int)v;
	return 1;
}

cJSON *cli_class_json(cvt_class c, const char *fmt_key, const char *fmt, const cvt_stats *s)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "class", cvt_class_name(c));
	cJSON_AddStringToObject(o, fmt_key, fmt);
	cJSON_AddNumberToObject(o, "tensors", (double)s->tensors);
	cJSON_AddNumberToObject(o, "fallbacks", (double)s->fallbacks);
	cJSON_AddNumberToObject(o, "bytes_in", (double)s->bytes_in);
	cJSON_AddNumberToObject(o, "bytes_out", (double)s->bytes_out);
	cJSON_AddNumberToObject(o, "bits_per_weight", s->elems ? 8.0 * (double)s->bytes_out / (double)s->elems : 0);
	double rel, cosv;
	if (cli_class_error(s, &rel, &cosv)) {
		cJSON_AddNumberToObject(o, "rel_rms", rel);
		cJSON_AddNumberToObject(o, "cosine", cosv);
	}
	return o;
}

int cli_class_error(const cvt_stats *s, double *rel, double *cosv)
{
	*rel = s->measured && s->x2 > 0 ? sqrt(s->d2 / s->x2) : 0;
	*cosv = s->measured && s->x2 > 0 && s->y2 > 0 ? s->xy / sqrt(s->x2 * s->y2) : 1;
	return s->measured != 0;
}

void cli_write_args_init(cli_write_args *a)
{
	memset(a, 0, sizeof *a);
	a->o.outtype = QF_DTYPE_NONE;
	a->o.threads = cli_default_threads();
	a->o.check_input_hashes = 1;
}

int cli_write_option(const char *cmd, int c, const char *arg, cli_write_args *a)
{
	switch (c) {
	case 'o':
		if (!*arg)
			return cli_usage_error(cmd, "-o needs a file name"), -1;
		a->outpath = arg;
		return 1;
	case 'F': a->format = arg; return 1;
	case 'U':
		if (!strcmp(arg, "f32")) a->o.outtype = QF_F32;
		else if (!strcmp(arg, "f16")) a->o.outtype = QF_F16;
		else if (!strcmp(arg, "bf16")) a->o.outtype = QF_BF16;
		else if (!strcmp(arg, "auto")) a->o.outtype = QF_DTYPE_NONE;
		else {
			cli_usage_error(cmd, "--outtype must be f32, f16, bf16 or auto, not '%s'", arg);
			return -1;
		}
		return 1;
	case 't': return cli_parse_threads(cmd, arg, &a->o.threads) ? 1 : -1;
	case 'n': a->dry = 1; return 1;
	case 'j': a->json = 1; return 1;
	case 'f': a->force = 1; return 1;
	case 'q': a->quiet = 1; return 1;
	case 'M': a->o.keep_mtp = 1; return 1;
	case 'W': a->o.keep_mtp = -1; return 1;
	case 'N': a->o.allow_nonfinite = 1; return 1;
	case 'H': a->o.check_input_hashes = 0; return 1;
	case 'L': a->o.legacy_kv_b = 1; return 1;
	case 'r': a->o.pre = arg; return 1;
	case 'S':
		if (!cli_parse_size(arg, &a->split_max)) {
			cli_usage_error(cmd, "--split-max-size takes a size in bytes, or with M or G (10^6, 10^9), not '%s'", arg);
			return -1;
		}
		return 1;
	case 'Z':
		if (!cvt_parse_size(arg, &a->shard_size)) {
			cli_usage_error(cmd, "--shard-size takes a size such as 5GB, 500MB or 1GiB, not '%s'", arg);
			return -1;
		}
		return 1;
	case 'X':
		if (!cvt_parse_size(arg, &a->o.max_stage) || !a->o.max_stage) {
			cli_usage_error(cmd, "--max-stage-size takes a size such as 5GB, 500MB or 1GiB, not '%s'", arg);
			return -1;
		}
		return 1;
	default: return 0;
	}
}

int cli_parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	if (!s || !*s)
		return 0;
	long v = strtol(s, &end, 10);
	if (*end || v < lo || v > hi)
		return 0;
	*out = v;
	return 1;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return 0;
	unsigned long long v = strtoull(s, &end, 10);
	uint64_t mul = 1;
	if (*end == 'K' || *end == 'k')
		mul = 1000, end++;
	else if (*end == 'M')
		mul = 1000 * 1000, end++;
	else if (*end == 'G')
		mul = 1000 * 1000 * 1000, end++;
	if (*end || v == 0 || !qf_mul_u64(v, mul, out))
		return 0;
	return 1;
}

const char *cli_written_name(const char *outpath, uint64_t split_max, size_t parts, char *buf, size_t n)
{
	if (!split_max)
		return outpath;
	size_t l = strlen(outpath);
	if (qf_str_ends_with(outpath, ".gguf"))
		l -= 5;
	char prefix[4096];
	snprintf(prefix, sizeof prefix, "%.*s", (int)l, outpath);
	qf_gguf_split_name(buf, n, prefix, 0, parts);
	size_t k = strlen(buf);
	snprintf(buf + k, n - k, " (%zu part%s)", parts, parts == 1 ? "" : "s");
	return buf;
}

const char *cli_human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.2f %s", v, u[i]);
	return buf;
}

void cli_print_json(cJSON *j)
{
	char *txt = cJSON_Print(j);
	if (txt)
		printf("%s\n", txt);
	free(txt);
	cJSON_Delete(j);
}

void cli_progress_init(cli_progress *p, const char *what, int quiet)
{
	p->enabled = !quiet && isatty(STDERR_FILENO);
	p->start = cli_now();
	p->last = 0;
	p->what = what;
}

void cli_progress_update(cli_progress *p, uint64_t done, uint64_t total, const char *fmt, ...)
{
	if (!p->enabled)
		return;
	double t = cli_now();
	if (t - p->last < 0.16 && done < total)
		return;
	p->last = t;
	double el = t - p->start;
	double rate = el > 0 ? (double)done / el : 0;
	double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
	char msg[256] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	}
	fprintf(stderr, "\r\033[K%s %s %5.1f%%  %.2f GB/s  ETA %.0fs", p->what, msg,
		total ? 100.0 * (double)done / (double)total : 100.0, rate / 1e9, eta);
	fflush(stderr);
}

void cli_progress_done(cli_progress *p)
{
	if (p->enabled) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
	}
}

/* SIGINT, SIGTERM, SIGHUP: remove the temporaries, then die of the signal as usual. */
static void on_signal(int sig)
{
	qf_cleanup_run();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * SIGBUS: a mapped source was truncated under us.  util/cleanup makes the rest
 * of that mapping zeros and records it; the read carries on (in whichever
 * thread took it), and the command ends with exit 3 naming the file, before any
 * output is renamed into place.  Any other SIGBUS is a crash: clean up, re-raise.
 */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	int saved = errno;
	if (si && qf_guard_fault(si->si_addr)) {
		errno = saved;
		return;
	}
	qf_cleanup_run();
	signal(sig, SIG_DFL);
	raise(sig);
}

void cli_install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = NULL;
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	/* a file-size limit (ulimit -f) is EFBIG from write(), an I/O error (exit 4), not a kill */
	signal(SIGXFSZ, SIG_IGN);
}

const char *cli_path_base(const char *path)
{
	const char *e = path + strlen(path);
	while (e > path && e[-1] == '/')
		e--;
	const char *b = e;
	while (b > path && b[-1] != '/')
		b--;
	return b;
}

void cli_default_output(const char *in, const char *tag, int packed, char *buf, size_t n)
{
	const char *b = cli_path_base(in);
	snprintf(buf, n, "%.*s-%s%s", (int)strcspn(b, "/"), b, tag, packed ? ".qfpack" : ".gguf");
}

void cli_tensor_progress(void *ud, uint64_t done, uint64_t total, size_t item, size_t nitems)
{
	cli_progress_update(ud, done, total, "tensor %zu/%zu", item + 1, nitems);
}

qf_status cli_tokenizer_open(const char *model, qf_tok **out, qf_err *err)
{
	if (!qf_path_is_tar(model) || qf_pk_is_bundle(model))
		return vfy_tokenizer_open(model, out, err);
	qf_ckpt *c = NULL;
	qf_ckpt_opts o = { .meta_only = 1 }; /* the tokenizer files, not the shards */
	qf_status s = qf_ckpt_open_opts(model, &o, &c, err);
	if (!s) {
		s = vfy_tokenizer_open(c->dir, out, err);
		qf_ckpt_name_members(c, err);
	}
	qf_ckpt_close(c);
	return s;
}

/*
 * The text's ids, read and tokenized only as far as need ids (0: all of
 * it): gzread a block at a time into the tokenizer's stream, whose settled
 * ids are those of tokenizing the whole text.
 */
qf_status cli_read_ids(qf_tok *tok, const char *path, size_t need, int32_t **out, size_t *nout, qf_err *err)
{
	gzFile f = strcmp(path, "-") == 0 ? gzdopen(dup(STDIN_FILENO), "rb") : gzopen(path, "rb");
	if (!f)
		return qf_fail(err, QF_EFORMAT, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
	qf_tok_stream *st = NULL;
	char *buf = malloc(1 << 20);
	int32_t *ids = NULL;
	size_t n = 0, cap = 0;
	qf_status s = buf ? qf_tok_stream_new(tok, 1, &st, err) : qf_fail(err, QF_ENOMEM, "out of memory");
	for (int end = 0; !s && !end && !(need && n >= need);) {
		qf_tok_piece *p = NULL;
		size_t np = 0;
		int r = gzread(f, buf, 1 << 20);
		if (r < 0 || (r == 0 && !gzeof(f))) {
			int e;
			s = qf_fail(err, QF_EFORMAT, "%s: corrupt, truncated or unreadable: %s", path, gzerror(f, &e));
			break;
		}
		end = r == 0;
		s = end ? qf_tok_stream_finish(st, &p, &np, err) : qf_tok_stream_feed(st, buf, (size_t)r, &p, &np, err);
		if (!s && n + np > cap) {
			size_t c2 = (n + np) * 2;
			int32_t *g = realloc(ids, c2 * sizeof *ids);
			if (!g)
				s = qf_fail(err, QF_ENOMEM, "out of memory");
			else
				ids = g, cap = c2;
		}
		for (size_t k = 0; !s && k < np; k++)
			ids[n++] = p[k].id;
		free(p);
	}
	qf_tok_stream_free(st);
	free(buf);
	gzclose(f);
	if (s) {
		free(ids);
		return s;
	}
	*out = ids ? ids : malloc(sizeof *ids);
	*nout = n;
	return *out ? QF_OK : qf_fail(err, QF_ENOMEM, "out of memory");
}
