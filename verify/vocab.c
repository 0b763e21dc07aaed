#include "config.h"

#include <stdio.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/packed.h"
#include "verify/verify.h"

qf_status vfy_tokenizer_open(const char *model, qf_tok **out, qf_err *err)
{
	qf_status s;
	if (qf_pk_is_bundle(model)) {
		qf_pk *pk = NULL;
		if ((s = qf_pk_open(model, NULL, &pk, err)))
			return s;
		uint64_t tn = 0, cn = 0, mn = 0;
		const uint8_t *tj = qf_pk_member(pk, "tokenizer.json", &tn);
		const uint8_t *tc = qf_pk_member(pk, "tokenizer_config.json", &cn);
		if (tj) {
			char label[4200];
			snprintf(label, sizeof label, "%s/tokenizer.json", model);
			s = qf_tok_from_json((const char *)tj, (size_t)tn, tc ? (const char *)tc : NULL, (size_t)cn, label, out, err);
		} else {
			const uint8_t *mg = qf_pk_member(pk, "metadata.gguf", &mn);
			qf_gguf *g = NULL;
			s = mg ? qf_gguf_open_buffer(mg, (size_t)mn, model, &g, err)
			       : qf_fail(err, QF_EFORMAT, "%s: bundle has no tokenizer.json and no metadata.gguf", model);
			if (!s)
				s = qf_tok_from_gguf(g, out, err);
			qf_gguf_close(g);
		}
		qf_pk_close(pk);
		return s;
	}
	if (qf_is_dir(model))
		return qf_tok_from_dir(model, out, err);
	qf_gguf *g = NULL;
	if ((s = qf_gguf_open(model, &g, err)))
		return s;
	s = qf_tok_from_gguf(g, out, err);
	qf_gguf_close(g);
	return s;
}
