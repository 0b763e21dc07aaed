/*
 * libFuzzer entry point for the compressed-tensors source reader
 * (convert/ct_source.c, formats/ctquant.c).  Input: u32 LE n, n bytes of
 * config.json, then a safetensors image.  Every module that plans is decoded
 * whole and, where it may, repacked to q4_0/q4_1.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convert/ct_source.h"
#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint32_t n = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
	if (n > size - 4)
		return 0;
	cJSON *cfg = cJSON_ParseWithLength((const char *)data + 4, n);
	qf_st *st = NULL;
	qf_err err = { { 0 } };
	if (cfg && qf_st_open_buffer(data + 4 + n, size - 4 - n, "fuzz", &st, &err) == QF_OK) {
		cvt_ct_summary sum;
		if (cvt_ct_attach_st(st, cfg, "fuzz/config.json", &sum, &err) == QF_OK) {
			for (size_t i = 0; i < qf_st_count(st); i++) {
				const qf_tensor *t = qf_st_get(st, i);
				if (!t->ctq || t->ctq->K > (1 << 16) || (uint64_t)t->ctq->N * (uint64_t)t->ctq->K > (1u << 22))
					continue;
				const qf_ctq *q = t->ctq;
				float *row = malloc((size_t)q->K * sizeof *row);
				uint8_t *blk = malloc((size_t)(q->K / 32 + 1) * 20);
				const char *why;
				int64_t br, bk;
				int q4_1 = q->zp != NULL;
				int rp = qf_ctq_q4_check(q, q4_1, &why, &br, &bk);
				for (int64_t r = 0; row && blk && r < q->N; r++) {
					qf_ctq_rows(q, r, 1, row);
					if (rp)
						qf_ctq_q4_row(q, r, q4_1, blk);
				}
				free(row);
				free(blk);
			}
		}
	}
	qf_st_close(st);
	cJSON_Delete(cfg);
	return 0;
}
