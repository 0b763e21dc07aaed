/*
 * qforge calibrate's statistic (quantize/calibrate.h) on the bundled models:
 *   - known answers: layer 0's attn_q (stories260k) and attn_q_a (tiny-dsv3)
 *     see rmsnorm(embedding) ⊙ attn_norm, computed here from the
 *     safetensors and Hugging Face's own token ids;
 *   - MLA's absorbed inputs, from an observer of our own: attn_k_b's is each
 *     head's q_nope (= q_b · its input), attn_v_b's is what v_b turns into
 *     the attention output of that head, and at position 0 it is ckv itself;
 *   - invariants: counts per expert sum to tokens × top_k, gate and up see
 *     the same input, Σ over experts = top_k × the shared expert's, …;
 *   - the file reads back, and quantize --imatrix with it gives the bytes
 *     llama.cpp's llama_model_quantize gives for the same weights (oracle).
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/gguf.h"
#include "formats/imatrix.h"
#include "formats/safetensors.h"
#include "forward/forward.h"
#include "quantize/calibrate.h"
#include "tests/llama_oracle.h"
#include "tests/tap.h"
#include "tests/util.h"

#define CTX 128
#define CHUNKS 6
#define KA_REL 1e-5   /* known answers: f32 rmsnorm vs this file's fp64, per column, relative */
#define MLA_REL 1e-5  /* v_b · (latent output) vs the attention output, relative to its largest value */
#define SUM_REL 1e-9  /* fp64 sums of the same squares added in another order */

static int qforge(const char *args)
{
	char cmd[16800];
	const char *q = getenv("QFORGE");
	snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null", q ? q : "./qforge", args);
	return system(cmd);
}

static double rms_eps(const char *model)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/config.json", tu_src(model));
	size_t n;
	char *t = (char *)tu_read(p, &n);
	cJSON *j = t ? cJSON_Parse(t) : NULL;
	cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "rms_norm_eps") : NULL;
	double v = cJSON_IsNumber(e) ? e->valuedouble : NAN;
	cJSON_Delete(j);
	free(t);
	return v;
}

/* Element i of an F32 or BF16 safetensors tensor. */
static double st_val(const qf_tensor *t, int64_t i)
{
	if (t->dtype == QF_F32) {
		float f;
		memcpy(&f, t->data + 4 * i, 4);
		return f;
	}
	uint16_t h;
	memcpy(&h, t->data + 2 * i, 2);
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/*
 * Σ over every position of CHUNKS chunks (first token BOS) of
 * (rmsnorm(embedding) ⊙ attn_norm)², per column, from the safetensors.
 */
static double *known_norm_input(const char *model, const int32_t *ids, int32_t bos, int64_t *H)
{
	qf_st *st = NULL;
	if (qf_st_open(tu_src(model), &st, NULL) != QF_OK)
		return NULL;
	const qf_tensor *E = qf_st_find(st, "model.embed_tokens.weight");
	const qf_tensor *W = qf_st_find(st, "model.layers.0.input_layernorm.weight");
	double eps = rms_eps(model), *sum = NULL;
	if (E && W && E->ndim == 2 && isfinite(eps)) {
		*H = E->shape[1];
		sum = calloc((size_t)*H, sizeof *sum);
		double *x = malloc((size_t)*H * sizeof *x);
		for (int64_t t = 0; t < CHUNKS * CTX; t++) {
			int64_t tok = t % CTX == 0 ? bos : ids[t];
			double ss = 0;
			for (int64_t j = 0; j < *H; j++) {
				x[j] = st_val(E, tok * *H + j);
				ss += x[j] * x[j];
			}
			double r = 1.0 / sqrt(ss / (double)*H + eps);
			for (int64_t j = 0; j < *H; j++) {
				double y = x[j] * r * st_val(W, j);
				sum[j] += y * y;
			}
		}
		free(x);
	}
	qf_st_close(st);
	return sum;
}

static const qf_imatrix_entry *entry(const qf_imatrix *m, const char *fmt, int l)
{
	char nm[128];
	snprintf(nm, sizeof nm, fmt, l);
	return qf_imatrix_find(m, nm);
}

static int same_sums(const qf_imatrix_entry *a, const qf_imatrix_entry *b)
{
	return a && b && a->n == b->n && a->n_mat == b->n_mat && !memcmp(a->sums, b->sums, (size_t)a->n * sizeof *a->sums) &&
	       !memcmp(a->counts, b->counts, (size_t)a->n_mat * sizeof *a->counts);
}

static int64_t count_sum(const qf_imatrix_entry *e)
{
	int64_t s = 0;
	for (int64_t i = 0; e && i < e->n_mat; i++)
		s += e->counts[i];
	return s;
}

/* ---- an observer of our own: layer 0's MLA inputs --------------------------------------- */

typedef struct mla_seen {
	int64_t T, nh, nope, qk, C, qlora, vdim;
	float *qb_in;   /* (T, q_lora) attn_q_b's input */
	float *kb_in;   /* (nh, T, nope) attn_k_b's, per head */
	float *kvb_in;  /* (T, C) attn_kv_b's: ckv */
	float *vb_in;   /* (nh, T, C) attn_v_b's, per head */
	float *o_in;    /* (T, nh·vdim) attn_output's */
	int bad;
} mla_seen;

static void grab(float *dst, const fwd_seen *s)
{
	for (int64_t r = 0; r < s->rows; r++)
		memcpy(dst + r * s->cols, s->x + r * s->ldx, (size_t)s->cols * sizeof *dst);
}

static qf_status mla_observe(void *ud, const fwd_seen *s, qf_err *err)
{
	mla_seen *g = ud;
	(void)err;
	if (s->layer != 0)
		return QF_OK;
	if (s->rows != g->T)
		g->bad = 1;
	else if (!strcmp(s->name, "blk.0.attn_q_b.weight") && s->cols == g->qlora)
		grab(g->qb_in, s);
	else if (!strcmp(s->name, "blk.0.attn_k_b.weight") && s->cols == g->nope && s->n_mat == g->nh)
		grab(g->kb_in + s->mat * g->T * g->nope, s);
	else if (!strcmp(s->name, "blk.0.attn_kv_b.weight") && s->cols == g->C)
		grab(g->kvb_in, s);
	else if (!strcmp(s->name, "blk.0.attn_v_b.weight") && s->cols == g->C && s->n_mat == g->nh)
		grab(g->vb_in + s->mat * g->T * g->C, s);
	else if (!strcmp(s->name, "blk.0.attn_output.weight") && s->cols == g->nh * g->vdim)
		grab(g->o_in, s);
	return QF_OK;
}

/* Rows [r0, r0+n) of a weight as the forward pass reads it. */
static float *weight_rows(fwd_model *m, const char *name, int64_t r0, int64_t n, int64_t *cols)
{
	const cvt_item *it = cvt_plan_find(fwd_model_plan(m), name);
	if (!it)
		return NULL;
	*cols = cvt_item_row_len(it);
	float *w = malloc((size_t)(n * *cols) * sizeof *w), *scr = malloc((size_t)(cvt_scratch_floats(it) + 1) * sizeof *scr);
	if (cvt_item_rows_f32(it, r0, n, w, scr, 1, NULL) != QF_OK) {
		free(w);
		w = NULL;
	}
	free(scr);
	return w;
}

static void test_mla(fwd_model *m, const int32_t *ids)
{
	const fwd_hparams *h = fwd_model_hparams(m);
	mla_seen g = { .T = CTX, .nh = h->n_head, .nope = h->nope, .qk = h->nope + h->rope_dim, .C = h->kv_lora,
		       .qlora = h->q_lora, .vdim = h->vdim };
	g.qb_in = calloc((size_t)(g.T * g.qlora), sizeof(float));
	g.kb_in = calloc((size_t)(g.nh * g.T * g.nope), sizeof(float));
	g.kvb_in = calloc((size_t)(g.T * g.C), sizeof(float));
	g.vb_in = calloc((size_t)(g.nh * g.T * g.C), sizeof(float));
	g.o_in = calloc((size_t)(g.T * g.nh * g.vdim), sizeof(float));
	fwd_model_observe(m, mla_observe, &g);
	float *lg = malloc((size_t)h->vocab * sizeof *lg);
	int64_t last = CTX - 1;
	ok(fwd_forward(m, ids, CTX, &last, 1, lg, NULL) == QF_OK && !g.bad, "tiny-dsv3: one chunk observed");
	fwd_model_observe(m, NULL, NULL);
	/* attn_k_b: q_nope of head hh = rows hh·qk … hh·qk+nope of q_b times q_b's input */
	int64_t qc = 0, vc = 0;
	float *qb = weight_rows(m, "blk.0.attn_q_b.weight", 0, g.nh * g.qk, &qc);
	double worst = 0, big = 0;
	for (int64_t hh = 0; qb && hh < g.nh; hh++)
		for (int64_t t = 0; t < g.T; t++)
			for (int64_t d = 0; d < g.nope; d++) {
				double y = 0;
				for (int64_t c = 0; c < qc; c++)
					y += (double)qb[(hh * g.qk + d) * qc + c] * g.qb_in[t * g.qlora + c];
				double got = g.kb_in[(hh * g.T + t) * g.nope + d];
				worst = fmax(worst, fabs(got - y));
				big = fmax(big, fabs(y));
			}
	ok(qb && qc == g.qlora && big > 0 && worst <= MLA_REL * big,
	   "attn_k_b's input is each head's q_nope (= q_b · q_a_norm output, before RoPE): max |Δ| %.3g of %.3g", worst, big);
	/* attn_v_b: v_b[hh] · its input is head hh's attention output */
	float *vb = weight_rows(m, "blk.0.attn_v_b.weight", 0, g.nh * g.vdim, &vc);
	worst = big = 0;
	for (int64_t hh = 0; vb && hh < g.nh; hh++)
		for (int64_t t = 0; t < g.T; t++)
			for (int64_t d = 0; d < g.vdim; d++) {
				double y = 0;
				for (int64_t c = 0; c < vc; c++)
					y += (double)vb[(hh * g.vdim + d) * vc + c] * g.vb_in[(hh * g.T + t) * g.C + c];
				double want = g.o_in[t * g.nh * g.vdim + hh * g.vdim + d];
				worst = fmax(worst, fabs(want - y));
				big = fmax(big, fabs(want));
			}
	ok(vb && vc == g.C && big > 0 && worst <= MLA_REL * big,
	   "attn_v_b's input: v_b of each head turns it into that head's attention output: max |Δ| %.3g of %.3g", worst, big);
	int first = 1;
	for (int64_t hh = 0; hh < g.nh; hh++)
		first &= !memcmp(g.vb_in + hh * g.T * g.C, g.kvb_in, (size_t)g.C * sizeof(float));
	ok(first, "at position 0 (softmax weight 1) every head's attn_v_b input is ckv, attn_kv_b's input, bit for bit");
	free(qb);
	free(vb);
	free(lg);
	free(g.qb_in);
	free(g.kb_in);
	free(g.kvb_in);
	free(g.vb_in);
	free(g.o_in);
}

/* ---- the models ---------------------------------------------------------------------------- */

/* legacy: --legacy-kv-b and --process-output */
static qf_imatrix *calibrate(const char *model, const int32_t *ids, size_t n, int threads, int legacy, qnt_calib_stats *st)
{
	fwd_model *m = NULL;
	qf_imatrix *im = NULL;
	qf_err err = { { 0 } };
	qnt_calib_opts o = { .ctx = CTX, .max_chunks = CHUNKS, .bos = ids[0], .legacy_kv_b = legacy, .process_output = legacy };
	if (fwd_model_open(tu_src(model), threads, 1ull << 30, &m, &err) == QF_OK)
		qnt_calibrate(m, ids, n, &o, NULL, NULL, &im, st, &err);
	if (!im)
		diag("%s: %s", model, err.msg);
	fwd_model_free(m);
	return im;
}

static void test_known(const char *model, const char *wname, const qf_imatrix *im, const int32_t *ids)
{
	int64_t H = 0;
	double *want = known_norm_input(model, ids, ids[0], &H);
	const qf_imatrix_entry *e = qf_imatrix_find(im, wname);
	double worst = 0;
	int64_t at = -1;
	for (int64_t j = 0; want && e && e->n == H && j < H; j++) {
		double d = fabs(e->sums[j] - want[j]) / want[j];
		if (d > worst || at < 0)
			worst = d, at = j;
	}
	ok(want && e && e->n == H && e->n_mat == 1 && worst <= KA_REL,
	   "%s: %s's Σx² per column = Σ (rmsnorm(embedding) ⊙ attn_norm)² from the safetensors (worst relative error %.2g, column %lld, bound %g)",
	   model, wname, worst, (long long)at, KA_REL);
	is_int(CHUNKS * CTX, e ? e->counts[0] : -1, "%s: %s counts every position of %d chunks", model, wname, CHUNKS);
	free(want);
}

static void test_dsv3_invariants(const qf_imatrix *im, uint64_t tokens)
{
	const int top_k = 4, n_exp = 16;
	int okc = 1, okgu = 1, okdown = 1, oksh = 1, okq = 1, okr = 1, okmla = 1;
	double worst = 0;
	for (int l = 0; l < 4; l++) {
		const qf_imatrix_entry *qa = entry(im, "blk.%d.attn_q_a.weight", l), *kva = entry(im, "blk.%d.attn_kv_a_mqa.weight", l);
		okq &= same_sums(qa, kva);
		const qf_imatrix_entry *kb = entry(im, "blk.%d.attn_k_b.weight", l), *vb = entry(im, "blk.%d.attn_v_b.weight", l);
		okmla &= kb && vb && kb->n == 4 * 32 && vb->n == 4 * 64 && kb->n_mat == 1 && vb->n_mat == 1 &&
			 kb->counts[0] == (int64_t)tokens && vb->counts[0] == (int64_t)tokens;
		if (l == 0) {
			const qf_imatrix_entry *g = entry(im, "blk.%d.ffn_gate.weight", l), *u = entry(im, "blk.%d.ffn_up.weight", l);
			okgu &= same_sums(g, u) && g->counts[0] == (int64_t)tokens;
			continue;
		}
		const qf_imatrix_entry *g = entry(im, "blk.%d.ffn_gate_exps.weight", l), *u = entry(im, "blk.%d.ffn_up_exps.weight", l);
		const qf_imatrix_entry *d = entry(im, "blk.%d.ffn_down_exps.weight", l);
		const qf_imatrix_entry *gs = entry(im, "blk.%d.ffn_gate_shexp.weight", l), *us = entry(im, "blk.%d.ffn_up_shexp.weight", l);
		const qf_imatrix_entry *ds = entry(im, "blk.%d.ffn_down_shexp.weight", l), *r = entry(im, "blk.%d.ffn_gate_inp.weight", l);
		okc &= g && g->n_mat == n_exp && count_sum(g) == (int64_t)tokens * top_k;
		okgu &= same_sums(g, u) && same_sums(gs, us);
		okdown &= d && g && d->n_mat == n_exp && !memcmp(d->counts, g->counts, (size_t)n_exp * sizeof *d->counts);
		oksh &= gs && ds && gs->n_mat == 1 && gs->counts[0] == (int64_t)tokens && ds->counts[0] == (int64_t)tokens;
		okr &= same_sums(r, gs);
		for (int64_t j = 0; g && gs && j < gs->n; j++) { /* each token adds its x² to top_k experts */
			double s = 0;
			for (int64_t e = 0; e < n_exp; e++)
				s += g->sums[e * gs->n + j];
			worst = fmax(worst, fabs(s - top_k * (double)gs->sums[j]) / (top_k * (double)gs->sums[j]));
		}
	}
	ok(okc, "routed experts: Σ over experts of the counts = tokens × top_k (%llu × %d), per MoE layer",
	   (unsigned long long)tokens, top_k);
	ok(okdown, "ffn_down_exps counts the same (token, slot) pairs per expert as ffn_gate_exps");
	ok(oksh, "shared experts and dense FFNs count every token");
	ok(okgu, "gate and up of the same FFN or expert have identical in_sum2");
	ok(okq, "attn_q_a and attn_kv_a_mqa see the same input: identical in_sum2");
	ok(okr, "the router (ffn_gate_inp) and the shared expert see the same input");
	ok(okmla, "attn_k_b (4 heads × nope 32) and attn_v_b (4 × kv_lora 64): one entry of per-head sums, counting tokens");
	ok(worst < 1e-6, "Σ over experts of ffn_gate_exps' Σx² = top_k × ffn_gate_shexp's (worst relative %.2g; f32 rounding)", worst);
}

/* A copy of stories260k whose BOS embedding row holds an infinity: the sums are not finite. */
static void test_nonfinite(const int32_t *ids, size_t n)
{
	static const char *files[] = { "config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors" };
	const char *dir = tu_path("inf-model");
	char src[4200], dst[4200];
	int rc = mkdir(dir, 0755);
	uint8_t *st = NULL;
	size_t len = 0;
	for (size_t i = 0; !rc && i < sizeof files / sizeof files[0]; i++) {
		snprintf(src, sizeof src, "%s/%s", tu_src("models/stories260k-hf"), files[i]);
		snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
		uint8_t *b = tu_read(src, &len);
		rc = !b || tu_write(dst, b, len);
		if (i == 3)
			st = b;
		else
			free(b);
	}
	qf_st *t = NULL;
	const qf_tensor *E = NULL;
	if (!rc && qf_st_open_buffer(st, len, "model.safetensors", &t, NULL) == QF_OK &&
	    (E = qf_st_find(t, "model.embed_tokens.weight")) && E->dtype == QF_F32) {
		float inf = INFINITY;
		memcpy(st + (E->data - st) + (size_t)ids[0] * (size_t)E->shape[1] * 4 + 8, &inf, 4);
		rc = tu_write(dst, st, len);
	} else {
		rc = 1;
	}
	qf_st_close(t);
	free(st);
	fwd_model *m = NULL;
	qf_imatrix *im = NULL;
	qf_err err = { { 0 } };
	qnt_calib_stats sx;
	qnt_calib_opts o = { .ctx = CTX, .max_chunks = 1, .bos = ids[0] };
	qf_status s = rc ? QF_EIO : fwd_model_open(dir, 1, 1ull << 30, &m, &err);
	if (!s)
		s = qnt_calibrate(m, ids, n, &o, NULL, NULL, &im, &sx, &err);
	ok(s == QF_EFORMAT && !im && strstr(err.msg, "blk.0.attn_") && strstr(err.msg, "not finite"),
	   "an infinite activation is an error naming the first weight it reaches (%s)", err.msg);
	fwd_model_free(m);
	qf_imatrix_free(im);
}

/* ---- the written file, and llama.cpp's quantizer given the same weights -------------------- */

static void test_file(const qf_imatrix *im)
{
	qf_imatrix *rb = NULL;
	qf_err err = { { 0 } };
	const char *p = tu_path("dsv3.imatrix.gguf");
	ok(qf_imatrix_write((qf_imatrix *)im, p, 1, &err) == QF_OK && qf_imatrix_open(p, &rb, &err) == QF_OK,
	   "the imatrix is written and reads back through formats/imatrix.c (%s)", err.msg);
	if (!rb)
		return;
	int same = rb->n == im->n && !rb->legacy;
	for (size_t i = 0; same && i < im->n; i++)
		same = !strcmp(rb->e[i].name, im->e[i].name) && same_sums(&rb->e[i], &im->e[i]);
	ok(same, "every entry reads back with the same name, shape, sums and counts (%zu entries)", im->n);
	ok(rb->chunk_count == CHUNKS && rb->chunk_size == CTX && rb->ndatasets == 1 && !strcmp(rb->datasets[0], "eval-a.txt"),
	   "imatrix.chunk_count, chunk_size and datasets");
	qf_imatrix_free(rb);
}

/* llama-quantize's weights from a file read with our reader: Σ/count, 1 where the count is 0. */
static tl_imatrix_data *oracle_weights(const char *path)
{
	qf_imatrix *m = NULL;
	if (qf_imatrix_open(path, &m, NULL) != QF_OK)
		return NULL;
	tl_imatrix_data *d = calloc(m->n + 1, sizeof *d);
	for (size_t i = 0; i < m->n; i++) {
		const qf_imatrix_entry *e = &m->e[i];
		int64_t ne0 = e->n / e->n_mat;
		float *w = malloc((size_t)e->n * sizeof *w);
		for (int64_t k = 0; k < e->n; k++)
			w[k] = e->counts[k / ne0] ? e->sums[k] / (float)e->counts[k / ne0] : 1.0f;
		d[i] = (tl_imatrix_data){ strdup(e->name), w, (size_t)e->n };
	}
	qf_imatrix_free(m);
	return d;
}

/* Tensors whose bytes differ between two GGUFs (−1: unreadable or different tensors). */
static long differing(const char *a, const char *b, char *first, size_t n)
{
	qf_gguf *x = NULL, *y = NULL;
	long d = -1;
	if (qf_gguf_open(a, &x, NULL) == QF_OK && qf_gguf_open(b, &y, NULL) == QF_OK &&
	    qf_gguf_ntensors(x) == qf_gguf_ntensors(y)) {
		d = 0;
		for (size_t i = 0; i < qf_gguf_ntensors(x); i++) {
			const qf_tensor *s = qf_gguf_tensor(x, i), *t = qf_gguf_find_tensor(y, s->name);
			if (!t || t->dtype != s->dtype || t->nbytes != s->nbytes || memcmp(s->data, t->data, s->nbytes)) {
				if (!d++ && first)
					snprintf(first, n, "%s", s->name);
			}
		}
	}
	qf_gguf_close(x);
	qf_gguf_close(y);
	return d;
}

static void test_oracle(const char *model, const char *outtype)
{
	char args[16800], src[4200], imx[4200], ours[4200], plain[4200], ref[4200], first[256] = "";
	snprintf(src, sizeof src, "%s", tu_path("src.gguf"));
	snprintf(imx, sizeof imx, "%s", tu_path("cli.imatrix.gguf"));
	snprintf(ours, sizeof ours, "%s", tu_path("ours.gguf"));
	snprintf(plain, sizeof plain, "%s", tu_path("plain.gguf"));
	snprintf(ref, sizeof ref, "%s", tu_path("ref.gguf"));
	snprintf(args, sizeof args, "convert -q -f --outtype %s -o '%s' '%s'", outtype, src, tu_src(model));
	int rc = qforge(args);
	snprintf(args, sizeof args, "calibrate -q -f --text '%s' --ctx %d --chunks %d -o '%s' '%s'",
		 tu_src("tests/data/eval-a.txt"), CTX, CHUNKS, imx, tu_src(model));
	rc |= qforge(args);
	snprintf(args, sizeof args, "quantize -q -f --target llamacpp-q4_k_m --imatrix '%s' -o '%s' '%s'", imx, ours, src);
	rc |= qforge(args);
	snprintf(args, sizeof args, "quantize -q -f --target llamacpp-q4_k_m -o '%s' '%s'", plain, src);
	rc |= qforge(args);
	if (!ok(rc == 0, "%s: %s GGUF, calibrate, quantize llamacpp-q4_k_m with and without the imatrix", model, outtype))
		return;
	long nd = differing(plain, ours, first, sizeof first);
	ok(nd > 0, "%s: the imatrix changes the bytes of %ld tensors (first: %s)", model, nd, first);
	tl_llama *L = tl_llama_open_tap("llama_model_quantize with calibrate's imatrix");
	if (!L)
		return;
	tl_imatrix_data *ld = oracle_weights(imx);
	remove(ref);
	int lr = ld ? tl_llama_quantize_imatrix(L, src, ref, 15, 2, ld) : -1;
	first[0] = 0;
	nd = lr == 0 ? differing(ref, ours, first, sizeof first) : -1;
	ok(nd == 0, "%s: quantize --imatrix = llama_model_quantize (Q4_K_M) given the same importance (%ld tensors differ%s%s)",
	   model, nd, *first ? ", first " : "", first);
	tl_imatrix_data_free(ld);
	tl_llama_close(L);
}

int main(void)
{
	plan_lazy();
	static const struct { const char *model, *ids, *wname; } ms[] = {
		{ "models/stories260k-hf", "tests/data/tokens/eval-a.stories260k-hf.ids", "blk.0.attn_q.weight" },
		{ "models/tiny-dsv3", "tests/data/tokens/eval-a.tiny-dsv3.ids", "blk.0.attn_q_a.weight" },
	};
	for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++) {
		size_t n = 0;
		int32_t *ids = tu_read_ids(tu_src(ms[k].ids), &n);
		if (!ok(ids && n >= CHUNKS * CTX, "%s: Hugging Face's token ids of eval-a.txt (%zu)", ms[k].model, n)) {
			free(ids);
			continue;
		}
		qnt_calib_stats st;
		qf_imatrix *im = calibrate(ms[k].model, ids, n, 2, 0, &st);
		if (ok(im != NULL, "%s: calibrated on %d chunks of %d", ms[k].model, CHUNKS, CTX)) {
			test_known(ms[k].model, ms[k].wname, im, ids);
			is_int(CHUNKS * CTX, (long long)st.tokens, "%s: tokens", ms[k].model);
		}
		if (im && k == 0) {
			test_nonfinite(ids, n);
			int same = 1;
			for (int l = 0; l < 5; l++) {
				same &= same_sums(entry(im, "blk.%d.attn_q.weight", l), entry(im, "blk.%d.attn_k.weight", l));
				same &= same_sums(entry(im, "blk.%d.attn_q.weight", l), entry(im, "blk.%d.attn_v.weight", l));
				same &= same_sums(entry(im, "blk.%d.ffn_gate.weight", l), entry(im, "blk.%d.ffn_up.weight", l));
			}
			ok(same && st.entries == 35 && st.routed == 0,
			   "stories260k: attn_q, attn_k, attn_v identical, ffn_gate and ffn_up identical; 7 weights × 5 layers (%zu)",
			   st.entries);
		}
		if (im && k == 1) {
			test_dsv3_invariants(im, st.tokens);
			ok(st.entries == 48 && st.routed == 9, "tiny-dsv3: 48 weights, 9 of them routed (%zu, %zu)", st.entries,
			   st.routed);
			qf_imatrix_add_dataset(im, "eval-a.txt", NULL);
			test_file(im);
			qnt_calib_stats s1;
			qf_imatrix *one = calibrate(ms[k].model, ids, n, 1, 0, &s1);
			int same = one && one->n == im->n;
			for (size_t i = 0; same && i < im->n; i++)
				same = same_sums(&one->e[i], &im->e[i]);
			ok(same, "tiny-dsv3: one thread gives the same sums as two");
			qf_imatrix_free(one);
			qf_imatrix *lg = calibrate(ms[k].model, ids, n, 2, 1, &s1);
			const qf_imatrix_entry *kvb = lg ? qf_imatrix_find(lg, "blk.2.attn_kv_b.weight") : NULL;
			ok(kvb && kvb->n == 64 && kvb->counts[0] == CHUNKS * CTX && !qf_imatrix_find(lg, "blk.2.attn_k_b.weight") &&
				   s1.entries == 45,
			   "--legacy-kv-b: attn_kv_b (the normed latent kv, 64 columns) instead of attn_k_b and attn_v_b");
			const qf_imatrix_entry *out = lg ? qf_imatrix_find(lg, "output.weight") : NULL;
			ok(out && out->n == 256 && out->counts[0] == CHUNKS * CTX,
			   "--process-output: output.weight over every position (256 columns, %d tokens)", CHUNKS * CTX);
			qf_imatrix_free(lg);
			fwd_model *m = NULL;
			if (fwd_model_open(tu_src(ms[k].model), 2, 1ull << 30, &m, NULL) == QF_OK)
				test_mla(m, ids);
			fwd_model_free(m);
		}
		qf_imatrix_free(im);
		free(ids);
	}
	test_oracle("models/stories260k-hf", "f32");
	test_oracle("models/tiny-dsv3", "bf16");
	return tap_failures() ? 1 : 0;
}
