/*
 * libFuzzer entry point for the packed-bundle reader: the input is split at
 * its first NUL into manifest.json text and a payload; every tensor the
 * reader accepts is decoded in full.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/packed.h"
#include "formats/qformat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t ml = nul ? (size_t)(nul - data) : size;
	const uint8_t *payload = nul ? nul + 1 : data + size;
	size_t pl = nul ? size - ml - 1 : 0;
	qf_pk *pk = NULL;
	qf_err err = { { 0 } };
	if (qf_pk_open_buffer(data, ml, payload, pl, qf_fmt_bundle_sizer, &pk, &err) == QF_OK) {
		for (size_t i = 0; i < qf_pk_ntensors(pk); i++) {
			const qf_pk_tensor *t = qf_pk_tensor_at(pk, i);
			qf_dtype f = qf_fmt_from_name(t->format);
			if (t->of || f == QF_DTYPE_NONE || t->t.shape[t->t.ndim - 1] > 4096)
				continue;
			/* decode the first row when the companions are all there with the right sizes */
			qf_fmt_view v = { .fmt = f, .in_bundle = 1, .ndim = t->t.ndim, .main = t->t.data };
			memcpy(v.shape, t->t.shape, sizeof v.shape);
			int okc = 1;
			for (int k = 0; k < qf_fmt_ncomp(f, 1); k++) {
				int cnd;
				int64_t cs[4];
				uint64_t want = qf_fmt_comp_shape(f, k, t->t.ndim, t->t.shape, &cnd, cs);
				okc &= t->comp[k] >= 0 && qf_pk_tensor_at(pk, (size_t)t->comp[k])->t.nbytes == want;
				if (okc)
					v.comp[k] = qf_pk_tensor_at(pk, (size_t)t->comp[k])->t.data;
			}
			if (okc) {
				float *row = malloc((size_t)t->t.shape[t->t.ndim - 1] * sizeof *row);
				if (row)
					qf_fmt_decode(&v, 0, 1, row);
				free(row);
			}
		}
		qf_pk_close(pk);
	}
	return 0;
}
