/*
 * rows.c — reading an item's output rows as f32 from its source tensors
 * (FP8 block scales, Q/K un-permutation, expert stacks, kv_b halves).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "convert/plan.h"


/* Source row r of s as f32 (row length = product of inner dims). */
static void src_row_f32(const cvt_src *s, int64_t r, float *dst)
{
	if (s->coded) {
		qf_fmt_decode(&s->qv, r, 1, dst);
		return;
	}
	const qf_tensor *t = s->t;
	if (s->ms.type != QF_MS_FLOAT) {
		qf_ms_row_f32(t, &s->ms, r, dst);
		return;
	}
	const qf_dtype_traits *tr = qf_dtype_info(t->dtype);
	int64_t len = t->ndim ? t->shape[t->ndim - 1] : 1; /* rows of a 3-D tensor are its last dim */
	const uint8_t *row = t->data + (uint64_t)r * (uint64_t)len * tr->block_bytes;
	if (s->scale && t->dtype == QF_F8_E4M3) {
		/* decode and scale in one pass (the same products as below) */
		const float *sc = (const float *)s->scale->data + (r / s->bo) * s->scale->shape[1];
		for (int64_t c0 = 0, b = 0; c0 < len; c0 += s->bi, b++) {
			float f;
			memcpy(&f, sc + b, 4);
			int64_t c1 = c0 + s->bi < len ? c0 + s->bi : len;
			qf_row_e4m3_scaled_to_f32(row + c0, dst + c0, c1 - c0, f);
		}
		return;
	}
	tr->to_f32(row, dst, len);
	if (s->scale) {
		/* DeepSeek weight_dequant: w[i][j] = fp8(w) * s[i / bo][j / bi] */
		const float *sc = (const float *)s->scale->data + (r / s->bo) * s->scale->shape[1];
		for (int64_t c0 = 0, b = 0; c0 < len; c0 += s->bi, b++) {
			float f;
			memcpy(&f, sc + b, 4);
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
