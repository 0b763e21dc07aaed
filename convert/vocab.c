/*
 * vocab.c — tokenizer.json (+ tokenizer_config.json) → tokenizer.ggml.* keys.
 *
 * Byte-level BPE (GPT-2 style, DeepSeek) → model "gpt2": tokens, token_type,
 * merges, pre.  SentencePiece-style BPE (byte_fallback, ▁) → model "llama":
 * tokens, scores, token_type.  llama.cpp's SentencePiece tokenizer merges the
 * highest-scoring pair first, so a token created by merge k (0-based rank) gets
 * score −k; characters, bytes and specials get 0.  Byte tokens <0xNN> are type
 * 6, the unk token 2, special added tokens 3 (control), other added tokens 4,
 * padding ids beyond the tokenizer's vocabulary "[PADn]" type 5 (unused).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static int is_byte_token(const char *s)
{
	return strlen(s) == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>';
}

/* Content of a tokenizer_config special-token entry (string or AddedToken). */
static const char *tok_content(const cJSON *tc, const char *key)
{
	const cJSON *v = tc ? cJSON_GetObjectItemCaseSensitive(tc, key) : NULL;
	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsObject(v))
		return qf_json_get_str(v, "content");
	return NULL;
}

static const char *detect_pre(const cJSON *tok)
{
	const cJSON *pre = cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer");
	char *txt = pre ? cJSON_PrintUnformatted(pre) : NULL;
	const char *r = "default";
	if (txt) {
		if (strstr(txt, "\\u4e00-\\u9fa5") || strstr(txt, "一-龥"))
			r = "deepseek-v3";
		else if (strstr(txt, "[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}"))
			r = "llama-bpe";
		else if (strstr(txt, "ByteLevel") && !strstr(txt, "Split"))
			r = "gpt-2";
	}
	free(txt);
	return r;
}

static int is_spm_style(const cJSON *tok, const cJSON *model)
{
	int bf = 0;
	if (qf_json_get_bool(model, "byte_fallback", &bf) && bf)
		return 1;
	const cJSON *norm = cJSON_GetObjectItemCaseSensitive(tok, "normalizer");
	char *txt = norm ? cJSON_PrintUnformatted(norm) : NULL;
	int r = txt && strstr(txt, "\xe2\x96\x81") != NULL; /* ▁ */
	free(txt);
	return r;
}

qf_status cvt_vocab_set(const qf_ckpt *ck, int64_t vocab_size, qf_gguf_writer *w, qf_err *err)
{
	qf_status s = QF_OK;
	char *path = qf_ckpt_file(ck, "tokenizer.json");
	cJSON *tok = NULL;
	const char **toks = NULL;
	int32_t *types = NULL;
	float *scores = NULL;
	const char **merges = NULL;
	char **merge_bufs = NULL;
	size_t nmerges = 0;
	if (!path)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	tok = qf_json_load(path, err, &s);
	if (s)
		goto out;
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
	const char *mt = qf_json_get_str(model, "type");
	if (!mt || strcmp(mt, "BPE") != 0) {
		s = qf_fail(err, QF_EFORMAT, "%s: unsupported tokenizer model '%s' (only BPE)", path, mt ? mt : "?");
		goto out;
	}
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
	const cJSON *mlist = cJSON_GetObjectItemCaseSensitive(model, "merges");
	const cJSON *added = cJSON_GetObjectItemCaseSensitive(tok, "added_tokens");
	if (!cJSON_IsObject(vocab) || (mlist && !cJSON_IsArray(mlist))) {
		s = qf_fail(err, QF_EFORMAT, "%s: model.vocab must be an object and model.merges an array", path);
		goto out;
	}
	int64_t n = vocab_size;
	for (const cJSON *e = vocab->child; e; e = e->next) {
		if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > (1 << 26)) {
			s = qf_fail(err, QF_EFORMAT, "%s: vocab entry '%s' has no valid id", path, e->string);
			goto out;
		}
		if ((int64_t)e->valuedouble >= n)
			n = (int64_t)e->valuedouble + 1;
	}
	for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
		int64_t id;
		if (qf_json_get_int(a, "id", &id) && id >= n && id < (1 << 26))
			n = id + 1;
	}
	toks = calloc((size_t)n, sizeof *toks);
	types = calloc((size_t)n, sizeof *types);
	scores = calloc((size_t)n, sizeof *scores);
	char (*pads)[32] = calloc((size_t)n, 32);
	if (!toks || !types || !scores || !pads) {
		free(pads);
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	int spm = is_spm_style(tok, model);
	const char *unk = qf_json_get_str(model, "unk_token");
	for (const cJSON *e = vocab->child; e; e = e->next) {
		int64_t id = (int64_t)e->valuedouble;
		toks[id] = e->string;
		types[id] = spm && is_byte_token(e->string) ? TT_BYTE
			    : (unk && !strcmp(unk, e->string) ? TT_UNKNOWN : TT_NORMAL);
	}
	for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
		int64_t id;
		const char *c = qf_json_get_str(a, "content");
		int special = 0;
		qf_json_get_bool(a, "special", &special);
		if (!qf_json_get_int(a, "id", &id) || id < 0 || id >= n || !c) {
			s = qf_fail(err, QF_EFORMAT, "%s: added_tokens entry without a valid id/content", path);
			free(pads);
			goto out;
		}
		toks[id] = c;
		types[id] = unk && !strcmp(unk, c) ? TT_UNKNOWN : (special ? TT_CONTROL : TT_USER);
	}
	for (int64_t i = 0; i < n; i++) {
		if (!toks[i]) {
			snprintf(pads[i], 32, "[PAD%lld]", (long long)i);
			toks[i] = pads[i];
			types[i] = TT_UNUSED;
		}
	}
	/* merges: "a b" or ["a", "b"] */
	size_t nm = mlist ? (size_t)cJSON_GetArraySize(mlist) : 0;
	merges = calloc(nm + 1, sizeof *merges);
	merge_bufs = calloc(nm + 1, sizeof *merge_bufs);
	if (!merges || !merge_bufs) {
		free(pads);
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto out;
	}
	for (const cJSON *m = mlist ? mlist->child : NULL; m; m = m->next) {
		const char *a = NULL, *b = NULL;
		char *buf = NULL;
		if (cJSON_IsString(m)) {
			merges[nmerges] = m->valuestring;
			const char *sp = strchr(m->valuestring, ' ');
			if (!sp) {
				s = qf_fail(err, QF_EFORMAT, "%s: merge %zu '%s' has no space", path, nmerges, m->valuestring);
				free(pads);
				goto out;
			}
			buf = malloc(strlen(m->valuestring));
			if (buf) {
				memcpy(buf, m->valuestring, (size_t)(sp - m->valuestring));
				strcpy(buf + (sp - m->valuestring), sp + 1);
			}
		} else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
			   cJSON_IsString(m->child->next)) {
			a = m->child->valuestring;
			b = m->child->next->valuestring;
			size_t la = strlen(a), lb = strlen(b);
			char *pair = malloc(la + lb + 2);
			buf = malloc(la + lb + 1);
			if (pair && buf) {
				snprintf(pair, la + lb + 2, "%s %s", a, b);
				snprintf(buf, la + lb + 1, "%s%s", a, b);
			}
			merges[nmerges] = pair; /* owned: freed through merge_bufs */
			if (!pair) {
				free(buf);
				buf = NULL;
			}
		} else {
			s = qf_fail(err, QF_EFORMAT, "%s: merge %zu is neither \"a b\" nor [a, b]", path, nmerges);
			free(pads);
			goto out;
		}
		if (!buf || !merges[nmerges]) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			free(pads);
			goto out;
		}
		/* the token this merge creates gets score -rank (SentencePiece order) */
		const cJSON *idj = cJSON_GetObjectItemCaseSensitive(vocab, buf);
		if (cJSON_IsNumber(idj) && scores[(int64_t)idj->valuedouble] == 0.0f)
			scores[(int64_t)idj->valuedouble] = -(float)nmerges;
		free(buf);
		if (!cJSON_IsString(m))
			merge_bufs[nmerges] = (char *)merges[nmerges];
		nmerges++;
	}
	/* a token that no merge creates and that is not a single char keeps score 0 */
	if (spm) {
		qf_gguf_set_str(w, "tokenizer.ggml.model", "llama");
		qf_gguf_set_str(w, "tokenizer.ggml.pre", "default");
		qf_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (size_t)n);
		qf_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n);
		qf_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
		const cJSON *norm = cJSON_GetObjectItemCaseSensitive(tok, "normalizer");
		char *nt = norm ? cJSON_PrintUnformatted(norm) : NULL;
		qf_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", nt && strstr(nt, "Prepend") != NULL);
		free(nt);
	} else {
		qf_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
		qf_gguf_set_str(w, "tokenizer.ggml.pre", detect_pre(tok));
		qf_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (size_t)n);
		qf_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
		qf_gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, nmerges);
	}
	free(pads);
	/* special ids */
	const cJSON *tc = ck->tok_config;
	static const struct { const char *cfg, *key; } sp[] = {
		{ "bos_token", "tokenizer.ggml.bos_token_id" },
		{ "eos_token", "tokenizer.ggml.eos_token_id" },
		{ "unk_token", "tokenizer.ggml.unknown_token_id" },
		{ "pad_token", "tokenizer.ggml.padding_token_id" },
	};
	for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
		const char *c = tok_content(tc, sp[i].cfg);
		int64_t id = -1;
		for (int64_t k = 0; c && k < n && id < 0; k++)
			if (!strcmp(toks[k], c))
				id = k;
		if (id < 0 && i < 2) {
			int64_t v;
			if (qf_json_get_int(ck->config, i == 0 ? "bos_token_id" : "eos_token_id", &v))
				id = v;
		}
		if (id >= 0 && id < n)
			qf_gguf_set_u32(w, sp[i].key, (uint32_t)id);
	}
	int ab = spm, ae = 0;
	if (tc) {
		qf_json_get_bool(tc, "add_bos_token", &ab);
		qf_json_get_bool(tc, "add_eos_token", &ae);
	}
	qf_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", ab);
	qf_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", ae);
	const char *tmpl = qf_json_get_str(tc, "chat_template");
	if (tmpl)
		qf_gguf_set_str(w, "tokenizer.chat_template", tmpl);
out:
	for (size_t i = 0; merge_bufs && i < nmerges; i++)
		free(merge_bufs[i]);
	free(merge_bufs);
	free(merges);
	free(toks);
	free(types);
	free(scores);
	cJSON_Delete(tok);
	free(path);
	return s;
}
