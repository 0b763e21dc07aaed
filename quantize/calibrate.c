/* calibrate.c — llama-imatrix's statistic from forward/'s observer (calibrate.h). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quantize/calibrate.h"

/* One weight's running sums. */
typedef struct acc {
	char *name;
	int64_t cols, n_mat;
	int routed;
	double *sum;       /* (n_mat, cols) Σx² */
	int64_t *count;    /* (routed ? n_mat : 1) */
} acc;

typedef struct collector {
	const qnt_calib_opts *o;
	acc *a;
	size_t n, cap, last;   /* last: where the previous call matched (calls repeat in the same order) */
} collector;

static void collector_free(collector *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->a[i].name);
		free(c->a[i].sum);
		free(c->a[i].count);
	}
	free(c->a);
}

/* llama-imatrix's choice of weights: blk.* (and output.weight when asked); one MLA form. */
static int wanted(const qnt_calib_opts *o, const char *name)
{
	if (!strcmp(name, "output.weight"))
		return o->process_output;
	if (strncmp(name, "blk.", 4))
		return 0;
	if (strstr(name, ".attn_kv_b."))
		return o->legacy_kv_b;
	if (strstr(name, ".attn_k_b.") || strstr(name, ".attn_v_b."))
		return !o->legacy_kv_b;
	return 1;
}

static acc *find(collector *c, const char *name)
{
	for (size_t k = 0; k < c->n; k++) {
		size_t i = (c->last + k) % c->n;
		if (!strcmp(c->a[i].name, name)) {
			c->last = i + 1;
			return &c->a[i];
		}
	}
	return NULL;
}

static qf_status observe(void *ud, const fwd_seen *s, qf_err *err)
{
	collector *c = ud;
	if (!wanted(c->o, s->name))
		return QF_OK;
	acc *a = find(c, s->name);
	if (!a) {
		if (c->n == c->cap) {
			size_t cap = c->cap ? 2 * c->cap : 256;
			acc *g = realloc(c->a, cap * sizeof *g);
			if (!g)
				return qf_fail(err, QF_ENOMEM, "out of memory");
			c->a = g;
			c->cap = cap;
		}
		a = &c->a[c->n];
		*a = (acc){ .name = strdup(s->name), .cols = s->cols, .n_mat = s->n_mat, .routed = s->routed };
		a->sum = calloc((size_t)(s->n_mat * s->cols), sizeof *a->sum);
		a->count = calloc((size_t)(s->routed ? s->n_mat : 1), sizeof *a->count);
		if (!a->name || !a->sum || !a->count) {
			free(a->name);
			free(a->sum);
			free(a->count);
			return qf_fail(err, QF_ENOMEM, "out of memory");
		}
		c->last = ++c->n;
	}
	if (a->cols != s->cols || a->n_mat != s->n_mat || a->routed != s->routed || s->mat < 0 || s->mat >= s->n_mat)
		return qf_fail(err, QF_EFORMAT, "weight '%s' seen as %lld × %lld matrices, then %lld × %lld (matrix %lld)", s->name,
			       (long long)a->n_mat, (long long)a->cols, (long long)s->n_mat, (long long)s->cols,
			       (long long)s->mat);
	double *sum = a->sum + s->mat * s->cols;
	for (int64_t r = 0; r < s->rows; r++) {
		const float *x = s->x + r * s->ldx;
		for (int64_t j = 0; j < s->cols; j++)
			sum[j] += (double)x[j] * (double)x[j];
	}
	if (s->routed)
		a->count[s->mat] += s->rows;
	else if (s->mat == 0) /* one count per product: a 3-D weight reports its matrices in turn */
		a->count[0] += s->rows;
	return QF_OK;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define OUT_ROWS 64 /* positions per output-head product (--process-output) */

static qf_status run(fwd_model *m, const int32_t *tokens, size_t nchunks, const qnt_calib_opts *o,
		     qnt_calib_progress_fn prog, void *ud, qf_err *err)
{
	const fwd_hparams *h = fwd_model_hparams(m);
	int64_t ctx = o->ctx, nb = fwd_model_batch_seqs(m, ctx);
	if (nb > (int64_t)nchunks)
		nb = (int64_t)nchunks;
	int32_t *buf = malloc((size_t)(nb * ctx) * sizeof *buf);
	int64_t *want = malloc(OUT_ROWS * sizeof *want);
	float *lg = o->process_output ? malloc((size_t)(OUT_ROWS * h->vocab) * sizeof *lg) : NULL;
	fwd_batch *b = NULL;
	qf_status s = QF_OK;
	if (!buf || !want || (o->process_output && !lg)) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t c0 = 0; c0 < nchunks; c0 += (size_t)nb) {
		size_t nc = nchunks - c0 < (size_t)nb ? nchunks - c0 : (size_t)nb;
		memcpy(buf, tokens + c0 * (size_t)ctx, nc * (size_t)ctx * sizeof *buf);
		for (size_t q = 0; o->bos >= 0 && q < nc; q++)
			buf[q * (size_t)ctx] = o->bos;
		if ((s = fwd_batch_new(m, buf, (int64_t)nc, ctx, &b, err)))
			goto out;
		for (int64_t l = 0; l < h->n_layer; l++) {
			if ((s = fwd_batch_layer(m, b, l, err)))
				goto out;
			if (prog)
				prog(ud, ((double)c0 + (double)nc * (double)(l + 1) / (double)h->n_layer) / (double)nchunks, c0, nc,
				     nchunks, l + 1, h->n_layer);
		}
		fwd_batch_release(b);
		for (size_t q = 0; o->process_output && q < nc; q++)
			for (int64_t p0 = 0; p0 < ctx; p0 += OUT_ROWS) {
				int64_t np = ctx - p0 < OUT_ROWS ? ctx - p0 : OUT_ROWS;
				for (int64_t i = 0; i < np; i++)
					want[i] = p0 + i;
				if ((s = fwd_batch_logits(m, b, (int64_t)q, want, np, lg, err)))
					goto out;
			}
		fwd_batch_free(b);
		b = NULL;
	}
out:
	fwd_batch_free(b);
	free(buf);
	free(want);
	free(lg);
	return s;
}

/* The collected sums as llama-imatrix writes them (calibrate.h). */
static qf_status to_imatrix(const collector *c, const qnt_calib_opts *o, size_t nchunks, const char *src, qf_imatrix *im,
			    qnt_calib_stats *st, qf_err *err)
{
	im->chunk_count = (uint32_t)nchunks;
	im->chunk_size = (uint32_t)o->ctx;
	float *f = NULL;
	qf_status s = QF_OK;
	for (size_t i = 0; i < c->n && !s; i++) {
		const acc *a = &c->a[i];
		int64_t n = a->n_mat * a->cols;
		float *g = realloc(f, (size_t)n * sizeof *f);
		if (!g) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			break;
		}
		f = g;
		int64_t k = 0;
		for (; k < n && isfinite(f[k] = (float)a->sum[k]); k++)
			;
		if (k < n) {
			s = qf_fail(err, QF_EFORMAT,
				    "%s: weight '%s': the sum of squared inputs of column %lld (matrix %lld) is %g: the model's activations are not finite",
				    src, a->name, (long long)(k % a->cols), (long long)(k / a->cols), (double)f[k]);
			break;
		}
		if (a->routed) {
			for (int64_t e = 0; e < a->n_mat; e++)
				st->experts_unused += a->count[e] == 0;
			st->routed++;
			s = qf_imatrix_add(im, a->name, a->cols, a->n_mat, f, a->count, err);
		} else {
			s = qf_imatrix_add(im, a->name, n, 1, f, a->count, err);
		}
		st->entries++;
	}
	free(f);
	return s;
}

qf_status qnt_calibrate(fwd_model *m, const int32_t *tokens, size_t ntok, const qnt_calib_opts *o,
			qnt_calib_progress_fn prog, void *ud, qf_imatrix **out, qnt_calib_stats *st, qf_err *err)
{
	memset(st, 0, sizeof *st);
	if (o->ctx < 1)
		return qf_fail(err, QF_EUSAGE, "a chunk needs at least one token");
	size_t nchunks = ntok / (size_t)o->ctx;
	if (o->max_chunks && nchunks > o->max_chunks)
		nchunks = o->max_chunks;
	if (nchunks == 0)
		return qf_fail(err, QF_EUSAGE, "the text has %zu tokens, fewer than one chunk of %lld (use a smaller --ctx)", ntok,
			       (long long)o->ctx);
	double t0 = now();
	collector c = { .o = o };
	qf_imatrix *im = NULL;
	fwd_model_observe(m, observe, &c);
	qf_status s = run(m, tokens, nchunks, o, prog, ud, err);
	fwd_model_observe(m, NULL, NULL);
	if (!s && !(im = qf_imatrix_new()))
		s = qf_fail(err, QF_ENOMEM, "out of memory");
	if (!s)
		s = to_imatrix(&c, o, nchunks, cvt_plan_source_path(fwd_model_plan(m)), im, st, err);
	collector_free(&c);
	if (s) {
		qf_imatrix_free(im);
		memset(st, 0, sizeof *st);
		return s;
	}
	st->chunks = nchunks;
	st->tokens = (uint64_t)nchunks * (uint64_t)o->ctx;
	st->seconds = now() - t0;
	*out = im;
	return QF_OK;
}
