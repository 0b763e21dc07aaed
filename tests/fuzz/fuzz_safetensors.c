/* libFuzzer entry point for the safetensors reader. */
#include <stddef.h>
#include <stdint.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	qf_st *st = NULL;
	qf_err err = { { 0 } };
	if (qf_st_open_buffer(data, size, "fuzz", &st, &err) == QF_OK) {
		for (size_t i = 0; i < qf_st_count(st); i++) {
			const qf_tensor *t = qf_st_get(st, i), *sc;
			volatile uint8_t sink = t->nbytes ? t->data[t->nbytes - 1] : 0;
			(void)sink;
			qf_st_fp8_scale(st, t, 128, 128, &sc, &err);
		}
		qf_st_close(st);
	}
	return 0;
}
