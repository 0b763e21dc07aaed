/*
 * rows.c — reading an item's output rows as f32 from its source tensors
 * (FP8 block scales, Q/K un-permutation, expert stacks, kv_b halves).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "convert/plan.h"
#include "formats/ctquant.h"


/* Source row r of s as f32 (row length = product of inner dims). */
static void src_row_f32(const cvt_src *s, int64_t r, float *dst)
{
	if (s->coded) {
		qf_fmt_decode(&s->qv, r, 1, dst);
		return;
	}
	const qf_tensor *t = s->t;
	if (t->ctq) { /* a compressed-tensors module (convert/ct_source.c) */
		qf_ctq_rows(t->ctq, r, 1, dst);
		return;
	}
	if (s->ms.type != QF_MS_FLOAT) {
		qf_ms_row_f32(t, &s->ms, r, dst);
		return;
	}
	const qf_dtype_traits *tr = qf_dtype_info(t->dtype);
	int64_t len = t->ndim ? t->shape[t->ndim - 1] : 1; /* rows of a 3-D tensor are its last dim */
	const uint8_t *row = t->data + (uint64_t)r * (uint64_t)len * tr->block_bytes;
	if (s->scale && t->dtype == QF_F8_E4M3) {
		/* decode and scale in one pass (the same products as below) */
		uint64_t sc = (uint64_t)(r / s->bo) * (uint64_t)s->scale->shape[1];
		for (int64_t c0 = 0, b = 0; c0 < len; c0 += s->bi, b++) {
			float f = qf_st_scale_at(s->scale, sc + (uint64_t)b);
			int64_t c1 = c0 + s->bi < len ? c0 + s->bi : len;
			qf_row_e4m3_scaled_to_f32(row + c0, dst + c0, c1 - c0, f);
		}
		return;
	}
	tr->to_f32(row, dst, len);
	if (s->scale) {
		/* DeepSeek weight_dequant: w[i][j] = fp8(w) * s[i / bo][j / bi] */
		uint64_t sc = (uint64_t)(r / s->bo) * (uint64_t)s->scale->shape[1];
		for (int64_t c0 = 0, b = 0; c0 < len; c0 += s->bi, b++) {
			float f = qf_st_scale_at(s->scale, sc + (uint64_t)b);
			int64_t c1 = c0 + s->bi < len ? c0 + s->bi : len;
			for (int64_t c = c0; c < c1; c++)
				dst[c] *= f;
		}
	}
}

int64_t cvt_scratch_floats(const cvt_item *it)
{
	return it->op == CVT_OP_KB ? it->nope * it->kv_lora : 0;
}

static qf_status check_finite(const cvt_item *it, int64_t row, const float *v, int64_t n, qf_err *err)
{
	if (qf_row_all_finite(v, n)) /* the quick pass; then where */
		return QF_OK;
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(v[i]))
			return qf_fail(err, QF_EFORMAT,
				       "tensor '%s' (output '%s'): non-finite value %g at row %lld, column %lld (use --allow-nonfinite to keep it)",
				       it->srcs[0].t->name, it->name, (double)v[i], (long long)row, (long long)i);
	}
	return QF_OK;
}

qf_status cvt_item_rows_f32(const cvt_item *it, int64_t r0, int64_t n, float *dst, float *scratch,
			    int allow_nonfinite, qf_err *err)
{
	int64_t len = cvt_item_row_len(it);
	for (int64_t i = 0; i < n; i++) {
		int64_t r = r0 + i;
		float *d = dst + i * len;
		switch (it->op) {
		case CVT_OP_COPY:
			src_row_f32(&it->srcs[0], r, d);
			break;
		case CVT_OP_PERMUTE: {
			int64_t hd = it->head_dim, h = r / hd, rem = r % hd;
			int64_t src = h * hd + (rem % 2) * (hd / 2) + rem / 2;
			src_row_f32(&it->srcs[0], src, d);
			break;
		}
		case CVT_OP_STACK: {
			int64_t per = it->shape[1];
			src_row_f32(&it->srcs[r / per], r % per, d);
			break;
		}
		case CVT_OP_VB: {
			int64_t h = r / it->vdim, j = r % it->vdim;
			src_row_f32(&it->srcs[0], h * (it->nope + it->vdim) + it->nope + j, d);
			break;
		}
		case CVT_OP_KB: {
			/* out row (h, c) = kv_b[h*(nope+v) + dd][c] for dd < nope */
			int64_t h = r / it->kv_lora, c = r % it->kv_lora;
			for (int64_t dd = 0; dd < it->nope; dd++) {
				if (c == 0 || i == 0)
					src_row_f32(&it->srcs[0], h * (it->nope + it->vdim) + dd,
						    scratch + dd * it->kv_lora);
				d[dd] = scratch[dd * it->kv_lora + c];
			}
			break;
		}
		}
		if (!allow_nonfinite) {
			qf_status s = check_finite(it, r, d, len, err);
			if (s)
				return s;
		}
	}
	return QF_OK;
}

/* ---- lossless q4_0/q4_1 from compressed-tensors int4 ------------------------------------ */

/* The source and its row that output row r of a row-for-row item reads; 0 for KB (a transpose). */
static int src_row_of(const cvt_item *it, int64_t r, const cvt_src **s, int64_t *sr)
{
	switch (it->op) {
	case CVT_OP_COPY: *s = &it->srcs[0]; *sr = r; return 1;
	case CVT_OP_PERMUTE: {
		int64_t hd = it->head_dim, h = r / hd, rem = r % hd;
		*s = &it->srcs[0];
		*sr = h * hd + (rem % 2) * (hd / 2) + rem / 2;
		return 1;
	}
	case CVT_OP_STACK: *s = &it->srcs[r / it->shape[1]]; *sr = r % it->shape[1]; return 1;
	case CVT_OP_VB: *s = &it->srcs[0]; *sr = (r / it->vdim) * (it->nope + it->vdim) + it->nope + r % it->vdim; return 1;
	case CVT_OP_KB: return 0;
	}
	return 0;
}

void cvt_item_plan_repack(cvt_item *it)
{
	it->repack = 0;
	it->repack_why[0] = 0;
	if ((it->fmt != QF_Q4_0 && it->fmt != QF_Q4_1) || !it->nsrc)
		return;
	for (int k = 0; k < it->nsrc; k++)
		if (!it->srcs[k].t || !it->srcs[k].t->ctq)
			return; /* not (wholly) a compressed-tensors source: nothing to repack */
	const cvt_src *s0;
	int64_t r0;
	if (!src_row_of(it, 0, &s0, &r0)) {
		it->repack = -1;
		snprintf(it->repack_why, sizeof it->repack_why, "'%s': its rows are transposed (attn_k_b), not repacked",
			 it->srcs[0].t->name);
		return;
	}
	int asym = 0;
	for (int k = 0; k < it->nsrc; k++)
		asym |= it->srcs[k].t->ctq->zp != NULL;
	int q4_1 = asym || it->fmt == QF_Q4_1;
	for (int k = 0; k < it->nsrc; k++) {
		const char *why = NULL;
		int64_t br, bk;
		if (!qf_ctq_q4_check(it->srcs[k].t->ctq, q4_1, &why, &br, &bk)) {
			it->repack = -1;
			if (br >= 0)
				snprintf(it->repack_why, sizeof it->repack_why, "'%s': %s (row %lld, column %lld)",
					 it->srcs[k].t->name, why, (long long)br, (long long)bk);
			else
				snprintf(it->repack_why, sizeof it->repack_why, "'%s': %s", it->srcs[k].t->name, why);
			return;
		}
	}
	it->repack = 1;
	it->fmt = q4_1 ? QF_Q4_1 : QF_Q4_0;
}

void cvt_item_repack_row(const cvt_item *it, int64_t r, uint8_t *out)
{
	const cvt_src *s;
	int64_t sr;
	if (src_row_of(it, r, &s, &sr))
		qf_ctq_q4_row(s->t->ctq, sr, it->fmt == QF_Q4_1, out);
}

/* ---- FP8 → BF16 in one pass --------------------------------------------------------------- */

int cvt_item_bf16_direct(const cvt_item *it)
{
	const cvt_src *s0;
	int64_t r0;
	if (!it->nsrc || !src_row_of(it, 0, &s0, &r0))
		return 0;
	for (int k = 0; k < it->nsrc; k++) {
		const cvt_src *s = &it->srcs[k];
		if (s->coded || !s->scale || s->t->dtype != QF_F8_E4M3)
			return 0;
	}
	return 1;
}

qf_status cvt_item_rows_bf16(const cvt_item *it, int64_t r0, int64_t n, uint16_t *dst, int allow_nonfinite,
			     qf_err *err)
{
	int64_t len = cvt_item_row_len(it);
	for (int64_t i = 0; i < n; i++) {
		int64_t r = r0 + i, sr;
		const cvt_src *s;
		src_row_of(it, r, &s, &sr);
		const uint8_t *row = s->t->data + (uint64_t)sr * (uint64_t)len;
		const float *sc = (const float *)s->scale->data + (sr / s->bo) * s->scale->shape[1];
		int fin = 1;
		for (int64_t c0 = 0, b = 0; c0 < len; c0 += s->bi, b++) {
			float f;
			memcpy(&f, sc + b, 4);
			int64_t c1 = c0 + s->bi < len ? c0 + s->bi : len;
			fin &= qf_row_e4m3_scaled_to_bf16(row + c0, dst + i * len + c0, c1 - c0, f);
		}
		if (!fin && !allow_nonfinite) {
			/* where: the same products, one at a time */
			for (int64_t c = 0; c < len; c++) {
				float f;
				memcpy(&f, sc + c / s->bi, 4);
				float v = qf_e4m3_to_f32(row[c]) * f;
				if (!isfinite(v))
					return qf_fail(err, QF_EFORMAT,
						       "tensor '%s' (output '%s'): non-finite value %g at row %lld, column %lld (use --allow-nonfinite to keep it)",
						       it->srcs[0].t->name, it->name, (double)v, (long long)r, (long long)c);
			}
		}
	}
	return QF_OK;
}
