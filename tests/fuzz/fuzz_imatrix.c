/* libFuzzer entry point for the importance-matrix reader (GGUF imatrix and legacy .dat). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/imatrix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	qf_imatrix *m = NULL;
	qf_err err = { { 0 } };
	if (qf_imatrix_parse(data, size, "fuzz", &m, &err) == QF_OK) {
		for (size_t i = 0; i < m->n; i++) {
			float *w = malloc((size_t)m->e[i].n * sizeof *w);
			if (w)
				qf_imatrix_weights(m, &m->e[i], w, &err);
			free(w);
			(void)qf_imatrix_find(m, m->e[i].name);
		}
		qf_imatrix_free(m);
	}
	return 0;
}
