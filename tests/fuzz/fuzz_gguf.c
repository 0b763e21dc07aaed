/* libFuzzer entry point for the GGUF reader. */
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	qf_gguf *g = NULL;
	qf_err err = { { 0 } };
	if (qf_gguf_open_buffer(data, size, "fuzz", &g, &err) == QF_OK) {
		uint64_t h;
		qf_gguf_meta_hash(g, &h, &err);
		for (size_t i = 0; i < qf_gguf_ntensors(g); i++) {
			const qf_tensor *t = qf_gguf_tensor(g, i);
			volatile uint8_t sink = t->nbytes ? t->data[t->nbytes - 1] : 0;
			(void)sink;
		}
		for (size_t i = 0; i < qf_gguf_nkv(g); i++) {
			double d;
			const qf_gguf_kv *kv = qf_gguf_kv_at(g, i);
			if (kv->n)
				qf_gguf_kv_number(kv, kv->n - 1, &d);
		}
		qf_gguf_close(g);
	}
	return 0;
}
