/* libFuzzer entry point for the msModelSlim description parser (quant_model_description.json). */
#include <stddef.h>
#include <stdint.h>

#include "formats/msdesc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	qf_msdesc *d = NULL;
	qf_err err = { { 0 } };
	if (qf_msdesc_parse((const char *)data, size, "fuzz", &d, &err) == QF_OK) {
		static const char *const names[] = { "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
						     "model.layers.0.self_attn.q_proj.weight_scale", "", NULL };
		qf_ms_type t;
		const char *tn;
		for (int i = 0; names[i]; i++)
			(void)qf_msdesc_type(d, names[i], &t, &tn);
		(void)qf_msdesc_model_type(d);
		(void)qf_msdesc_count(d);
		qf_msdesc_free(d);
	}
	return 0;
}
