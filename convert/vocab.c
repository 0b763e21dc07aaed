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
 *
 * The tokenizer is first loaded with the same strict loader `qforge tokenize`
 * uses (formats/tokenizer.h): whatever it refuses, convert refuses too.  Its
 * ids must fit the embedding (vocab_size rows); a shorter vocabulary is padded
 * with [PADn], as llama.cpp's converter does, a hole inside it is an error.
 * tokenizer.ggml.pre comes from a table of known regex lists (llama-bpe,
 * qwen2, deepseek-v3, gpt-2); an unknown pre-tokenizer is an error naming its
 * regexes unless the caller names one (--pre).  A tokenizer with no
 * pre-tokenizer at all keeps "default", as before.  add_bos_token /
 * add_eos_token are what the post-processor adds (tokenizer_config.json's
 * flags first), as llama.cpp's converter reads them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert.h"
#include "formats/tokenizer.h"

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

/* A name llama.cpp could know: letters, digits, '-', '_', '.'. */
static int pre_name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_' || *s == '.'))
			return 0;
	return 1;
}

qf_status cvt_vocab_set(const qf_ckpt *ck, int64_t vocab_size, const char *pre_name, qf_gguf_writer *w, qf_err *err)
{
	qf_status s = QF_OK;
	char *path = qf_ckpt_file(ck, "tokenizer.json");
	cJSON *tok = NULL;
	qf_tok *qt = NULL;
	const char **toks = NULL;
	int32_t *types = NULL;
	float *scores = NULL;
	const char **merges = NULL;
	char **merge_bufs = NULL;
	size_t nmerges = 0;
	if (!path)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	if (pre_name && !pre_name_ok(pre_name)) {
		s = qf_fail(err, QF_EUSAGE, "--pre '%s' is not a pre-tokenizer name (letters, digits, '-', '_', '.')", pre_name);
		goto out;
	}
	if ((s = qf_tok_from_dir(ck->dir, &qt, err)))
		goto out;
	if ((int64_t)qf_tok_vocab_size(qt) > vocab_size) {
		s = qf_fail(err, QF_EFORMAT, "%s: token id %zu is past the embedding (vocab_size %lld rows)", path,
			    qf_tok_vocab_size(qt) - 1, (long long)vocab_size);
		goto out;
	}
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
		int32_t mid = qf_tok_find(qt, buf, strlen(buf));
		if (mid >= 0 && scores[mid] == 0.0f)
			scores[mid] = -(float)nmerges;
		free(buf);
		if (!cJSON_IsString(m))
			merge_bufs[nmerges] = (char *)merges[nmerges];
		nmerges++;
	}
	/* a token that no merge creates and that is not a single char keeps score 0 */
	const char *pre = pre_name;
	if (!pre && !spm && !(pre = qf_tok_pre_name(qt))) {
		char what[2048];
		qf_tok_pre_describe(qt, what, sizeof what);
		if (!strcmp(what, "no pre-tokenizer")) {
			pre = "default"; /* as before: llama.cpp's default */
		} else {
			s = qf_fail(err, QF_EFORMAT,
				    "%s: pre-tokenizer not in qforge's table of known ones (llama-bpe, qwen2, deepseek-v3, gpt-2): "
				    "%s; name llama.cpp's with --pre NAME",
				    path, what);
			free(pads);
			goto out;
		}
	}
	/* what the post-processor adds around the text, as one BOS and one EOS */
	const int32_t *bos_ids, *eos_ids;
	int nbos = qf_tok_specials(qt, 0, &bos_ids), neos = qf_tok_specials(qt, 1, &eos_ids);
	if (nbos > 1 || neos > 1) {
		s = qf_fail(err, QF_EFORMAT, "%s: the post-processor adds %d tokens before and %d after the text; a GGUF holds "
			    "one BOS and one EOS", path, nbos, neos);
		free(pads);
		goto out;
	}
	if (spm) {
		qf_gguf_set_str(w, "tokenizer.ggml.model", "llama");
		qf_gguf_set_str(w, "tokenizer.ggml.pre", pre ? pre : "default");
		qf_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (size_t)n);
		qf_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n);
		qf_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
		const cJSON *norm = cJSON_GetObjectItemCaseSensitive(tok, "normalizer");
		char *nt = norm ? cJSON_PrintUnformatted(norm) : NULL;
		qf_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", nt && strstr(nt, "Prepend") != NULL);
		free(nt);
	} else {
		qf_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
		qf_gguf_set_str(w, "tokenizer.ggml.pre", pre);
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
		int64_t id = c ? qf_tok_find(qt, c, strlen(c)) : -1;
		if (id < 0 && i < 2) {
			int64_t v;
			if (qf_json_get_int(ck->config, i == 0 ? "bos_token_id" : "eos_token_id", &v))
				id = v;
		}
		if (i < 2 && (i ? neos : nbos)) /* the token the post-processor adds is the one llama.cpp must add */
			id = i ? eos_ids[0] : bos_ids[0];
		if (id >= 0 && id < n)
			qf_gguf_set_u32(w, sp[i].key, (uint32_t)id);
	}
	qf_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", nbos > 0);
	qf_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", neos > 0);
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
	qf_tok_free(qt);
	free(path);
	return s;
}
