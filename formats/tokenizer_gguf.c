/*
 * tokenizer_gguf.c — a tokenizer from a GGUF's tokenizer.ggml.* keys
 * (gpt2: merges and the regexes tokenizer.ggml.pre names; llama: scores).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer_int.h"

/* GGUF: tokenizer.ggml.{model,tokens,scores,token_type,merges,pre,…} */
qf_status qf_tok_from_gguf(const qf_gguf *g, qf_tok **out, qf_err *err)
{
	const char *label = qf_gguf_path(g);
	char *model = NULL, *pre = NULL;
	qf_status s = qf_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
	if (s)
		return s;
	int64_t kt = qf_gguf_find_kv(g, "tokenizer.ggml.tokens");
	const qf_gguf_kv *tokens = kt >= 0 ? qf_gguf_kv_at(g, (size_t)kt) : NULL;
	qf_tok *t = NULL;
	if (!tokens || tokens->type != QF_GGUF_ARR || tokens->arr_type != QF_GGUF_STR) {
		s = qf_fail(err, QF_EFORMAT, "%s: no tokenizer.ggml.tokens string array", label);
		goto done;
	}
	int gpt2 = strcmp(model, "gpt2") == 0, llama = strcmp(model, "llama") == 0;
	if (!gpt2 && !llama) {
		s = qf_fail(err, QF_EFORMAT, "%s: tokenizer.ggml.model '%s' is not supported (gpt2, llama)", label, model);
		goto done;
	}
	if ((s = tok_alloc(&t, (size_t)tokens->n, err)))
		goto done;
	int64_t ks = qf_gguf_find_kv(g, "tokenizer.ggml.scores"), ktt = qf_gguf_find_kv(g, "tokenizer.ggml.token_type");
	const qf_gguf_kv *scores = ks >= 0 ? qf_gguf_kv_at(g, (size_t)ks) : NULL;
	const qf_gguf_kv *types = ktt >= 0 ? qf_gguf_kv_at(g, (size_t)ktt) : NULL;
	for (size_t i = 0; i < t->n; i++) {
		t->p[i].s = tok_dupn(tokens->strs[i].p, tokens->strs[i].len);
		t->p[i].len = (uint32_t)tokens->strs[i].len;
		double v = 0;
		if (scores && i < scores->n && qf_gguf_kv_number(scores, i, &v))
			t->p[i].score = (float)v;
		if (types && i < types->n && qf_gguf_kv_number(types, i, &v))
			t->p[i].type = (int32_t)v;
		if (!t->p[i].s) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto done;
		}
	}
	t->byte_level = gpt2;
	t->spm = llama;
	t->byte_fallback = llama;
	if ((s = tok_finish_vocab(t, label, err)))
		goto done;
	for (size_t i = 0; i < t->n; i++) /* control and user-defined tokens match as added tokens */
		if ((t->p[i].type == 3 || t->p[i].type == 4) && (s = tok_add_added(t, t->p[i].s, (int32_t)i, 0, 0, err)))
			goto done;
	if (gpt2) {
		int64_t km = qf_gguf_find_kv(g, "tokenizer.ggml.merges");
		const qf_gguf_kv *m = km >= 0 ? qf_gguf_kv_at(g, (size_t)km) : NULL;
		if (!m || m->arr_type != QF_GGUF_STR || tok_pmap_init(&t->merges, (size_t)m->n)) {
			s = qf_fail(err, QF_EFORMAT, "%s: gpt2 vocabulary without tokenizer.ggml.merges", label);
			goto done;
		}
		for (uint64_t r = 0; r < m->n; r++) {
			const char *ms = m->strs[r].p;
			size_t ml = m->strs[r].len;
			const char *sp = memchr(ms, ' ', ml);
			if (!sp) {
				s = qf_fail(err, QF_EFORMAT, "%s: merge %llu is not two tokens", label, (unsigned long long)r);
				goto done;
			}
			if ((s = tok_add_merge(t, ms, (size_t)(sp - ms), sp + 1, ml - (size_t)(sp - ms) - 1, (uint32_t)r, label, err)))
				goto done;
		}
		if (qf_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL) != QF_OK)
			pre = strdup("default");
		static const char *const ds3[] = {
			"\\p{N}{1,3}",
			"[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
			"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
			"?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
			NULL,
		};
		static const char *const l3[] = { LLAMA3_REGEX, NULL }, *const g2[] = { GPT2_REGEX, NULL };
		const char *const *rx = !strcmp(pre, "deepseek-v3") ? ds3 : !strcmp(pre, "llama-bpe") ? l3 :
					(!strcmp(pre, "gpt-2") || !strcmp(pre, "default")) ? g2 : NULL;
		if (!rx) {
			s = qf_fail(err, QF_EFORMAT, "%s: tokenizer.ggml.pre '%s' is not supported (deepseek-v3, llama-bpe, gpt-2)",
				    label, pre);
			goto done;
		}
		for (int i = 0; rx[i]; i++)
			if ((s = tok_add_regex_split(t, rx[i], label, err)))
				goto done;
		pre_step bl = { .kind = PRE_BYTELEVEL };
		if ((s = tok_push_pre(t, &bl, err)))
			goto done;
		dec_step d = { .kind = DEC_BYTELEVEL };
		t->dec = malloc(sizeof *t->dec);
		if (!t->dec) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto done;
		}
		t->dec[t->ndec++] = d;
	} else {
		int asp = 1;
		int64_t ka = qf_gguf_find_kv(g, "tokenizer.ggml.add_space_prefix");
		if (ka >= 0) {
			double v;
			if (qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)ka), 0, &v))
				asp = v != 0;
		}
		t->norm = calloc(2, sizeof *t->norm);
		t->dec = calloc(4, sizeof *t->dec);
		if (!t->norm || !t->dec) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto done;
		}
		if (asp)
			t->norm[t->nnorm++] = (norm_step){ .prepend = 1, .a = strdup(METASPACE), .alen = 3 };
		t->norm[t->nnorm++] = (norm_step){ .a = strdup(" "), .alen = 1, .b = strdup(METASPACE), .blen = 3 };
		t->dec[t->ndec++] = (dec_step){ .kind = DEC_REPLACE, .a = strdup(METASPACE), .alen = 3, .b = strdup(" "), .blen = 1 };
		t->dec[t->ndec++] = (dec_step){ .kind = DEC_BYTEFALLBACK };
		t->dec[t->ndec++] = (dec_step){ .kind = DEC_FUSE };
		if (asp)
			t->dec[t->ndec++] = (dec_step){ .kind = DEC_STRIP, .a = strdup(" "), .alen = 1, .start = 1 };
	}
	int64_t kv;
	double v;
	if ((kv = qf_gguf_find_kv(g, "tokenizer.ggml.bos_token_id")) >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)kv), 0, &v))
		t->bos = (int32_t)v;
	if ((kv = qf_gguf_find_kv(g, "tokenizer.ggml.eos_token_id")) >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)kv), 0, &v))
		t->eos = (int32_t)v;
	if ((kv = qf_gguf_find_kv(g, "tokenizer.ggml.unknown_token_id")) >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)kv), 0, &v))
		t->unk = (int32_t)v;
	t->add_bos = t->bos >= 0;
	if ((kv = qf_gguf_find_kv(g, "tokenizer.ggml.add_bos_token")) >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)kv), 0, &v))
		t->add_bos = v != 0 && t->bos >= 0;
	if ((kv = qf_gguf_find_kv(g, "tokenizer.ggml.add_eos_token")) >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)kv), 0, &v))
		t->add_eos = v != 0 && t->eos >= 0;
	t->kind = gpt2 ? "byte-level BPE" : "SentencePiece BPE";
	tok_index_added(t);
done:
	free(model);
	free(pre);
	if (s) {
		qf_tok_free(t);
		return s;
	}
	*out = t;
	return QF_OK;
}
