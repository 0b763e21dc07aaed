#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantize/importance.h"

void qnt_importance_free(qnt_importance *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++)
		free(q->w[i]);
	free(q->w);
	memset(q, 0, sizeof *q);
}

qf_status qnt_importance_apply(cvt_plan *p, const qf_imatrix *m, qnt_importance *q, qf_err *err)
{
	memset(q, 0, sizeof *q);
	q->n = cvt_plan_count(p);
	q->w = calloc(q->n ? q->n : 1, sizeof *q->w);
	if (!q->w)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t i = 0; i < q->n; i++) {
		cvt_item *it = cvt_plan_item(p, i);
		it->qw = NULL;
		if (!qf_fmt_is_quant(it->fmt) || it->fmt == (it->srcs[0].coded ? it->srcs[0].qv.fmt : QF_DTYPE_NONE))
			continue; /* not (re)quantized */
		if (!qf_dtype_info(it->fmt)->from_f32_w) {
			q->ignored++;
			continue;
		}
		const qf_imatrix_entry *e = qf_imatrix_find(m, it->name);
		if (!e) {
			if (!q->missing++)
				snprintf(q->first_missing, sizeof q->first_missing, "%s", it->name);
			continue;
		}
		/* llama.cpp: the entry holds ne[0] × ne[2] values (one row of weights per expert or head) */
		int64_t C = cvt_item_row_len(it), nmat = it->ndim >= 3 ? it->shape[0] : 1;
		if (e->n != C * nmat) {
			if (!strcmp(it->name, "token_embd.weight"))
				continue;
			qnt_importance_free(q);
			return qf_fail(err, QF_EFORMAT, "tensor '%s': the imatrix has %lld values for it, the tensor needs %lld (%lld columns × %lld matrices)",
				       it->name, (long long)e->n, (long long)(C * nmat), (long long)C, (long long)nmat);
		}
		if (!(q->w[i] = malloc((size_t)e->n * sizeof(float)))) {
			qnt_importance_free(q);
			return qf_fail(err, QF_ENOMEM, "out of memory");
		}
		qf_status s = qf_imatrix_weights(m, e, q->w[i], err); /* names the entry, which is the tensor */
		if (s) {
			qnt_importance_free(q);
			return s;
		}
		it->qw = q->w[i];
		q->weighted++;
	}
	return QF_OK;
}
