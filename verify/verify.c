#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "formats/gguf.h"
#include "formats/packed.h"
#include "util/pool.h"
#include "formats/qformat.h"
#include "verify/verify.h"

/* ---- level 1 ------------------------------------------------------------------------ */

void vfy_integrity_free(vfy_integrity *r)
{
	if (r) {
		free(r->bad);
		r->bad = NULL;
		r->nbad = 0;
	}
}

static int add_bad(vfy_integrity *r, const char *name, uint64_t want, uint64_t got)
{
	vfy_mismatch *g = realloc(r->bad, (r->nbad + 1) * sizeof *g);
	if (!g)
		return -1;
	r->bad = g;
	snprintf(g[r->nbad].name, sizeof g[r->nbad].name, "%s", name);
	g[r->nbad].want = want;
	g[r->nbad].got = got;
	r->nbad++;
	return 0;
}

/* xxh64 of a mapped range, releasing pages behind it so any size streams in flat memory. */
static uint64_t hash_range(const uint8_t *p, uint64_t n, XXH64_state_t *also)
{
	XXH64_state_t *st = XXH64_createState();
	XXH64_reset(st, 0);
	for (uint64_t off = 0; off < n;) {
		size_t k = n - off > (64u << 20) ? (64u << 20) : (size_t)(n - off);
		XXH64_update(st, p + off, k);
		if (also)
			XXH64_update(also, p + off, k);
		qf_view_release(p + off, k);
		off += k;
	}
	uint64_t h = XXH64_digest(st);
	XXH64_freeState(st);
	return h;
}

static qf_status check_gguf(const char *path, vfy_integrity *r, qf_err *err)
{
	qf_gguf *g = NULL;
	qf_status s = qf_gguf_open(path, &g, err);
	if (s)
		return s;
	r->kind = "gguf";
	r->tensors = qf_gguf_ntensors(g);
	int64_t kt = qf_gguf_find_kv(g, "qforge.tensor_xxh64"), kd = qf_gguf_find_kv(g, "qforge.data_xxh64");
	int64_t km = qf_gguf_find_kv(g, "qforge.meta_xxh64");
	const qf_gguf_kv *th = kt >= 0 ? qf_gguf_kv_at(g, (size_t)kt) : NULL;
	r->hashed = th && kd >= 0 && km >= 0 && th->type == QF_GGUF_ARR && th->arr_type == QF_GGUF_U64;
	XXH64_state_t *dh = XXH64_createState();
	XXH64_reset(dh, 0);
	if (r->hashed && th->n != r->tensors && add_bad(r, "(metadata: tensor hash count)", r->tensors, th->n))
		goto oom;
	for (size_t i = 0; i < r->tensors; i++) {
		const qf_tensor *t = qf_gguf_tensor(g, i);
		uint64_t h = hash_range(t->data, t->nbytes, dh);
		r->bytes += t->nbytes;
		if (r->hashed && i < th->n) {
			uint64_t want;
			memcpy(&want, th->raw + 8 * i, 8);
			r->checked++;
			if (want != h && add_bad(r, t->name, want, h))
				goto oom;
		}
	}
	r->data_hash = XXH64_digest(dh);
	if (r->hashed) {
		uint64_t want = 0, meta = 0;
		const qf_gguf_kv *d = qf_gguf_kv_at(g, (size_t)kd), *mk = qf_gguf_kv_at(g, (size_t)km);
		memcpy(&want, d->raw, 8);
		if (want != r->data_hash && add_bad(r, "(all tensor data)", want, r->data_hash))
			goto oom;
		memcpy(&want, mk->raw, 8);
		if ((s = qf_gguf_meta_hash(g, &meta, err)))
			goto out;
		if (want != meta && add_bad(r, "(metadata and tensor table)", want, meta))
			goto oom;
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	XXH64_freeState(dh);
	qf_gguf_close(g);
	return s;
}

static qf_status check_bundle(const char *path, vfy_integrity *r, qf_err *err)
{
	qf_pk *pk = NULL;
	qf_status s = qf_pk_open(path, qf_fmt_bundle_sizer, &pk, err);
	if (s)
		return s;
	r->kind = "bundle";
	r->hashed = 1;
	r->tensors = qf_pk_ntensors(pk);
	XXH64_state_t *dh = XXH64_createState();
	XXH64_reset(dh, 0);
	for (size_t i = 0; i < r->tensors; i++) {
		const qf_pk_tensor *t = qf_pk_tensor_at(pk, i);
		uint64_t h = hash_range(t->t.data, t->t.nbytes, NULL);
		uint8_t le[8];
		for (int k = 0; k < 8; k++)
			le[k] = (uint8_t)(h >> (8 * k));
		XXH64_update(dh, le, 8);
		r->bytes += t->t.nbytes;
		r->checked++;
		if (h != t->xxh64 && add_bad(r, t->t.name, t->xxh64, h))
			goto oom;
	}
	r->data_hash = XXH64_digest(dh);
	const cJSON *m = qf_pk_manifest(pk);
	uint64_t want = 0;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "data_xxh64");
	int ok = qf_parse_hex64(cJSON_IsString(d) ? d->valuestring : NULL, &want);
	if ((!ok || want != r->data_hash) && add_bad(r, "(all tensor data)", want, r->data_hash))
		goto oom;
	/* member files carry their own hashes (metadata.gguf holds the hyperparameters) */
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
	for (const cJSON *f = cJSON_IsArray(files) ? files->child : NULL; f; f = f->next) {
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(f, "name"), *hx = cJSON_GetObjectItemCaseSensitive(f, "xxh64");
		if (!cJSON_IsString(nm) || !cJSON_IsString(hx))
			continue;
		uint64_t len = 0;
		const uint8_t *b = qf_pk_member(pk, nm->valuestring, &len);
		uint64_t w = 0, got = b ? XXH64(b, (size_t)len, 0) : 0;
		ok = qf_parse_hex64(hx->valuestring, &w);
		char label[200];
		snprintf(label, sizeof label, "(file %s)", nm->valuestring);
		r->checked++;
		if ((!ok || !b || w != got) && add_bad(r, label, w, got))
			goto oom;
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	XXH64_freeState(dh);
	qf_pk_close(pk);
	return s;
}

qf_status vfy_integrity_check(const char *path, vfy_integrity *r, qf_err *err)
{
	memset(r, 0, sizeof *r);
	if (qf_pk_is_bundle(path))
		return check_bundle(path, r, err);
	if (qf_path_is_gguf(path))
		return check_gguf(path, r, err);
	r->kind = "checkpoint"; /* safetensors carry no hashes */
	return QF_OK;
}

/* ---- level 2 ------------------------------------------------------------------------ */

#define TE_RB 64

typedef struct te_job {
	const cvt_item *a, *b;
	int64_t C;
	float **fa, **fb, **sa, **sb;
	double (*acc)[5];  /* per worker: d2, x2, y2, xy, max */
	qf_status *st;
	qf_err *errs;
} te_job;

static void te_fn(void *ctx, int64_t b0, int64_t e0, int wk)
{
	te_job *j = ctx;
	for (int64_t r = b0 * TE_RB; r < e0 * TE_RB && !j->st[wk]; r += TE_RB) {
		int64_t rows = cvt_item_rows(j->a), n = rows - r < TE_RB ? rows - r : TE_RB;
		if (n <= 0)
			break;
		if ((j->st[wk] = cvt_item_rows_f32(j->a, r, n, j->fa[wk], j->sa[wk], 1, &j->errs[wk])) ||
		    (j->st[wk] = cvt_item_rows_f32(j->b, r, n, j->fb[wk], j->sb[wk], 1, &j->errs[wk])))
			return;
		double *acc = j->acc[wk];
		for (int64_t i = 0; i < n * j->C; i++) {
			double y = j->fa[wk][i], x = j->fb[wk][i], d = x - y;
			acc[0] += d * d;
			acc[1] += x * x;
			acc[2] += y * y;
			acc[3] += x * y;
			if (fabs(d) > acc[4] || isnan(d))
				acc[4] = isnan(d) ? INFINITY : fabs(d);
		}
	}
}

qf_status vfy_tensor_errors(cvt_plan *cand, cvt_plan *ref, int threads, vfy_terr **out, size_t *nout, qf_err *err)
{
	size_t n = cvt_plan_count(cand);
	vfy_terr *v = calloc(n ? n : 1, sizeof *v);
	int64_t maxc = 1, maxs = 1;
	for (size_t i = 0; i < n; i++) {
		const cvt_item *a = cvt_plan_item(cand, i), *b = cvt_plan_find(ref, a->name);
		maxc = cvt_item_row_len(a) > maxc ? cvt_item_row_len(a) : maxc;
		maxs = cvt_scratch_floats(a) > maxs ? cvt_scratch_floats(a) : maxs;
		if (b)
			maxs = cvt_scratch_floats(b) > maxs ? cvt_scratch_floats(b) : maxs;
	}
	threads = threads < 1 ? 1 : threads;
	float **fa = calloc((size_t)threads, sizeof *fa), **fb = calloc((size_t)threads, sizeof *fb);
	float **sa = calloc((size_t)threads, sizeof *sa), **sb = calloc((size_t)threads, sizeof *sb);
	double (*acc)[5] = calloc((size_t)threads, sizeof *acc);
	qf_status *st = calloc((size_t)threads, sizeof *st), s = QF_OK;
	qf_err *errs = calloc((size_t)threads, sizeof *errs);
	qf_pool *pool = NULL;
	if (!v || !fa || !fb || !sa || !sb || !acc || !st || !errs)
		goto oom;
	if ((s = qf_pool_new(threads, &pool, err)))
		goto out;
	for (int w = 0; w < threads; w++) {
		fa[w] = malloc((size_t)(TE_RB * maxc) * sizeof(float));
		fb[w] = malloc((size_t)(TE_RB * maxc) * sizeof(float));
		sa[w] = malloc((size_t)maxs * sizeof(float));
		sb[w] = malloc((size_t)maxs * sizeof(float));
		if (!fa[w] || !fb[w] || !sa[w] || !sb[w])
			goto oom;
	}
	for (size_t i = 0; i < n; i++) {
		const cvt_item *a = cvt_plan_item(cand, i), *b = cvt_plan_find(ref, a->name);
		vfy_terr *e = &v[i];
		snprintf(e->name, sizeof e->name, "%s", a->name);
		e->cls = a->cls;
		e->fmt = qf_dtype_info(cvt_item_src_fmt(a))->fmt;
		e->n = (uint64_t)(cvt_item_rows(a) * cvt_item_row_len(a));
		if (!b) {
			e->problem = "missing in the reference";
			continue;
		}
		int same = a->ndim == b->ndim;
		for (int d = 0; same && d < a->ndim; d++)
			same = a->shape[d] == b->shape[d];
		if (!same) {
			e->problem = "shapes differ";
			continue;
		}
		memset(acc, 0, (size_t)threads * sizeof *acc);
		memset(st, 0, (size_t)threads * sizeof *st);
		te_job j = { .a = a, .b = b, .C = cvt_item_row_len(a), .fa = fa, .fb = fb, .sa = sa, .sb = sb, .acc = acc,
			     .st = st, .errs = errs };
		qf_pool_for(pool, threads, (cvt_item_rows(a) + TE_RB - 1) / TE_RB, te_fn, &j);
		for (int w = 0; w < threads; w++) {
			if (st[w]) {
				s = qf_fail(err, st[w], "%s", errs[w].msg);
				goto out;
			}
			e->d2 += acc[w][0];
			e->x2 += acc[w][1];
			e->y2 += acc[w][2];
			e->xy += acc[w][3];
			e->max_abs = acc[w][4] > e->max_abs ? acc[w][4] : e->max_abs;
		}
		e->rel_rms = e->x2 > 0 ? sqrt(e->d2 / e->x2) : (e->d2 > 0 ? INFINITY : 0);
		e->cosine = e->x2 > 0 && e->y2 > 0 ? e->xy / sqrt(e->x2 * e->y2) : (e->d2 == 0 ? 1 : 0);
	}
	*out = v;
	*nout = n;
	v = NULL;
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	for (int w = 0; w < threads; w++) {
		if (fa)
			free(fa[w]);
		if (fb)
			free(fb[w]);
		if (sa)
			free(sa[w]);
		if (sb)
			free(sb[w]);
	}
	free(fa);
	free(fb);
	free(sa);
	free(sb);
	free(acc);
	free(st);
	free(errs);
	free(v);
	qf_pool_free(pool);
	return s;
}

/* ---- level 3 ------------------------------------------------------------------------ */

static void log_softmax(const float *x, int64_t n, double *o)
{
	double mx = -INFINITY, sum = 0;
	for (int64_t i = 0; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	for (int64_t i = 0; i < n; i++)
		sum += exp((double)x[i] - mx);
	double lse = mx + log(sum);
	for (int64_t i = 0; i < n; i++)
		o[i] = (double)x[i] - lse;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

qf_status vfy_perplexity(vfy_model *const *models, size_t nm, const int32_t *tokens, size_t ntok, int64_t ctx,
			 int32_t bos, size_t max_chunks, vfy_progress_fn prog, void *ud, vfy_ppl *res, qf_err *err)
{
	if (nm == 0)
		return qf_fail(err, QF_EUSAGE, "no model to evaluate");
	int64_t V = vfy_model_hparams(models[0])->vocab;
	for (size_t i = 1; i < nm; i++)
		if (vfy_model_hparams(models[i])->vocab != V)
			return qf_fail(err, QF_EFORMAT, "%s: vocabulary of %lld tokens, the reference has %lld",
				       cvt_plan_source_path(vfy_model_plan(models[i])),
				       (long long)vfy_model_hparams(models[i])->vocab, (long long)V);
	if (ctx < 4)
		return qf_fail(err, QF_EUSAGE, "--ctx must be at least 4");
	size_t nchunks = ntok / (size_t)ctx;
	if (max_chunks && nchunks > max_chunks)
		nchunks = max_chunks;
	if (nchunks == 0)
		return qf_fail(err, QF_EUSAGE, "the text has %zu tokens, fewer than one chunk of %lld (use a smaller --ctx)", ntok,
			       (long long)ctx);
	int64_t first = ctx / 2, ns = ctx - 1 - first; /* positions ctx/2 … ctx−2 */
	qf_status s = QF_OK;
	int32_t *buf = malloc((size_t)ctx * sizeof *buf);
	int64_t *want = malloc((size_t)ns * sizeof *want);
	float **lg = calloc(nm, sizeof *lg);
	double *lp0 = malloc((size_t)V * sizeof *lp0), *lpi = malloc((size_t)V * sizeof *lpi);
	size_t nsc = nchunks * (size_t)ns;
	double *kl = nm > 1 ? malloc(nsc * (nm - 1) * sizeof *kl) : NULL;
	double (*sum)[6] = calloc(nm, sizeof *sum); /* nll, nll², kld, kld², top1, dp² */
	if (!buf || !want || !lg || !lp0 || !lpi || (nm > 1 && !kl) || !sum)
		goto oom;
	for (size_t i = 0; i < nm; i++)
		if (!(lg[i] = malloc((size_t)(ns * V) * sizeof(float))))
			goto oom;
	for (int64_t j = 0; j < ns; j++)
		want[j] = first + j;
	double t0 = now();
	size_t scored = 0;
	for (size_t c = 0; c < nchunks; c++) {
		memcpy(buf, tokens + c * (size_t)ctx, (size_t)ctx * sizeof *buf);
		if (bos >= 0)
			buf[0] = bos;
		for (size_t i = 0; i < nm; i++)
			if ((s = vfy_forward(models[i], buf, ctx, want, ns, lg[i], err)))
				goto out;
		for (int64_t j = 0; j < ns; j++, scored++) {
			int32_t next = buf[first + j + 1];
			log_softmax(lg[0] + j * V, V, lp0);
			int64_t a0 = 0;
			for (int64_t v = 1; v < V; v++)
				a0 = lp0[v] > lp0[a0] ? v : a0;
			double nll0 = -lp0[next];
			sum[0][0] += nll0;
			sum[0][1] += nll0 * nll0;
			for (size_t i = 1; i < nm; i++) {
				log_softmax(lg[i] + j * V, V, lpi);
				double k = 0;
				int64_t ai = 0;
				for (int64_t v = 0; v < V; v++) {
					k += exp(lp0[v]) * (lp0[v] - lpi[v]);
					ai = lpi[v] > lpi[ai] ? v : ai;
				}
				double nll = -lpi[next], dp = exp(lpi[next]) - exp(lp0[next]);
				sum[i][0] += nll;
				sum[i][1] += nll * nll;
				sum[i][2] += k;
				sum[i][3] += k * k;
				sum[i][4] += ai == a0;
				sum[i][5] += dp * dp;
				kl[(i - 1) * nsc + scored] = k;
			}
		}
		if (prog)
			prog(ud, c + 1, nchunks, (double)((c + 1) * (size_t)ctx * nm) / (now() - t0 + 1e-9));
	}
	for (size_t i = 0; i < nm; i++) {
		vfy_ppl *r = &res[i];
		double N = (double)scored;
		memset(r, 0, sizeof *r);
		r->n = scored;
		r->nll = sum[i][0] / N;
		r->nll_var = sum[i][1] / N - r->nll * r->nll;
		r->ppl = exp(r->nll);
		r->ppl_err = N > 1 ? r->ppl * sqrt(r->nll_var / (N - 1)) : 0;
		if (i == 0)
			continue;
		r->ppl_ratio = r->ppl / res[0].ppl;
		r->kld = sum[i][2] / N;
		double kv = sum[i][3] / N - r->kld * r->kld;
		r->kld_err = N > 1 && kv > 0 ? sqrt(kv / (N - 1)) : 0;
		double *kk = kl + (i - 1) * nsc;
		qsort(kk, scored, sizeof *kk, cmp_double);
		r->kld_p99 = kk[(size_t)floor(0.99 * (N - 1))];
		r->top1 = sum[i][4] / N;
		r->rms_dp = sqrt(sum[i][5] / N);
	}
	goto out;
oom:
	s = qf_fail(err, QF_ENOMEM, "out of memory");
out:
	for (size_t i = 0; lg && i < nm; i++)
		free(lg[i]);
	free(lg);
	free(buf);
	free(want);
	free(lp0);
	free(lpi);
	free(kl);
	free(sum);
	return s;
}
