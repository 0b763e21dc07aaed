/*
 * tokenizer_gguf.c — a tokenizer from a GGUF's tokenizer.ggml.* keys
 * (gpt2: merges and the regexes tokenizer.ggml.pre names; llama: scores).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer_int.h"

/* ---- known pre-tokenizers ------------------------------------------------------------ */

/*
 * llama.cpp names a pre-tokenizer (tokenizer.ggml.pre) and hard-codes its
 * regexes; Hugging Face spells them out in tokenizer.json.  Each row is a
 * list of Split regexes (Isolated, in order) before a ByteLevel step, as
 * the released tokenizer.json files spell them, with the normalizer and
 * ignore_merges that go with it.  A GGUF read back gets the first row of
 * its name, so it tokenizes as Hugging Face does.
 */
#define LLAMA3_HF                                                                                          \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
	"\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_HF                                                                                           \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"      \
	"\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const char *const rx_llama3[] = { LLAMA3_HF, NULL };
static const char *const rx_qwen2[] = { QWEN2_HF, NULL };
static const char *const rx_ds3[] = {
	"\\p{N}{1,3}",
	"[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+", /* [一-龥぀-ゟ゠-ヿ]+ */
	"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
	"?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
	NULL,
};
static const char *const rx_none[] = { NULL };
static const char *const rx_digits_llama3[] = { "\\p{N}{1,3}", LLAMA3_HF, NULL };

static const tok_pre_known known[] = {
	{ "llama-bpe", rx_llama3, 0, 1, 0, 0 },   /* Llama 3, 3.1, 3.2, 3.3 */
	{ "qwen2", rx_qwen2, 0, 0, 1, 0 },        /* Qwen2, 2.5, 3, 3-MoE */
	{ "deepseek-v3", rx_ds3, 0, 0, 0, 0 },    /* DeepSeek-V3, V3.1, V3.2, R1 */
	{ "gpt-2", rx_none, 1, 0, 0, 0 },         /* ByteLevel with GPT-2's own regex */
	/*
	 * Named, never read back: the bundled tiny-dsv3 has llama-bpe's regex
	 * after a \p{N}{1,3} Split, and has always been written as llama-bpe
	 * (its golden hashes keep that).  The extra Split differs from
	 * llama-bpe only where whitespace runs into a digit.
	 */
	{ "llama-bpe", rx_digits_llama3, 0, 0, 0, 1 },
};

const tok_pre_known *tok_pre_lookup(const char *name)
{
	if (!strcmp(name, "default")) /* llama.cpp's default is GPT-2's regex */
		name = "gpt-2";
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (!known[i].match_only && !strcmp(known[i].name, name))
			return &known[i];
	return NULL;
}

const char *tok_pre_names(void) { return "llama-bpe, qwen2, deepseek-v3, gpt-2"; }

int qf_tok_pre_known(const char *name) { return tok_pre_lookup(name) != NULL; }

static int matches(const qf_tok *t, const tok_pre_known *k)
{
	if (k->nfc ? !(t->nnorm == 1 && t->norm[0].kind == NORM_NFC) : t->nnorm != 0)
		return 0;
	if (t->ignore_merges != k->ignore_merges || !t->byte_level)
		return 0;
	size_t i = 0;
	for (; k->rx[i]; i++) {
		const pre_step *p = i < t->npre ? &t->pre[i] : NULL;
		if (!p || p->kind != PRE_SPLIT || !p->pat || p->behavior != SPLIT_ISOLATED || p->invert ||
		    strcmp(p->pat, k->rx[i]) != 0)
			return 0;
	}
	const pre_step *b = t->npre == i + 1 ? &t->pre[i] : NULL;
	return b && b->kind == PRE_BYTELEVEL && !b->add_prefix_space && (b->re != NULL) == k->bl_regex;
}

const char *qf_tok_pre_name(const qf_tok *t)
{
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (matches(t, &known[i]))
			return known[i].name;
	return NULL;
}

void qf_tok_pre_describe(const qf_tok *t, char *buf, size_t n)
{
	static const char *const kinds[] = { "Split", "ByteLevel", "Metaspace", "Digits" };
	size_t k = 0;
	buf[0] = 0;
	for (size_t i = 0; i < t->nnorm && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%snormalizer %s", k ? ", " : "",
				      t->norm[i].kind == NORM_NFC ? "NFC" : t->norm[i].kind == NORM_PREPEND ? "Prepend" : "Replace");
	for (size_t i = 0; i < t->npre && k < n; i++) {
		const pre_step *p = &t->pre[i];
		k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? ", " : "", kinds[p->kind]);
		if (k < n && p->pat)
			k += (size_t)snprintf(buf + k, n - k, " /%s/", p->pat);
		else if (k < n && p->kind == PRE_BYTELEVEL && p->re)
			k += (size_t)snprintf(buf + k, n - k, " (GPT-2 regex)");
	}
	if (k < n && t->ignore_merges)
		snprintf(buf + k, n - k, "%signore_merges", k ? ", " : "");
	if (!buf[0])
		snprintf(buf, n, "no pre-tokenizer");
}

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
		if (qf_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL) != QF_OK && !(pre = strdup("default"))) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto done;
		}
		const tok_pre_known *k = tok_pre_lookup(pre);
		if (!k) {
			s = qf_fail(err, QF_EFORMAT, "%s: tokenizer.ggml.pre '%s' is not supported (%s)", label, pre, tok_pre_names());
			goto done;
		}
		const char *const *rx = k->rx;
		t->ignore_merges = k->ignore_merges;
		if (k->nfc) {
			t->norm = calloc(1, sizeof *t->norm);
			if (!t->norm) {
				s = qf_fail(err, QF_ENOMEM, "out of memory");
				goto done;
			}
			t->norm[t->nnorm++] = (norm_step){ .kind = NORM_NFC };
		}
		for (int i = 0; rx[i]; i++)
			if ((s = tok_add_regex_split(t, rx[i], label, err)))
				goto done;
		pre_step bl = { .kind = PRE_BYTELEVEL };
		if (k->bl_regex && (s = tok_compile_regex(GPT2_REGEX, strlen(GPT2_REGEX), &bl.re, label, err)))
			goto done;
		if ((s = tok_push_pre(t, &bl, err))) {
			onig_free(bl.re);
			goto done;
		}
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
			t->norm[t->nnorm++] = (norm_step){ .kind = NORM_PREPEND, .a = strdup(METASPACE), .alen = 3 };
		t->norm[t->nnorm++] = (norm_step){ .kind = NORM_REPLACE, .a = strdup(" "), .alen = 1, .b = strdup(METASPACE), .blen = 3 };
		t->dec[t->ndec++] = (dec_step){ .kind = DEC_REPLACE, .a = strdup(METASPACE), .alen = 3, .b = strdup(" "), .blen = 1 };
		t->dec[t->ndec++] = (dec_step){ .kind = DEC_BYTEFALLBACK };
		t->dec[t->ndec++] = (dec_step){ .kind = DEC_FUSE };
		if (asp)
			t->dec[t->ndec++] = (dec_step){ .kind = DEC_STRIP, .a = strdup(" "), .alen = 1, .start = 1 };
		int lost = 0; /* a strdup above failed (the steps own what they got: freed with the tokenizer) */
		for (size_t k = 0; k < t->nnorm; k++)
			lost |= !t->norm[k].a || (t->norm[k].kind == NORM_REPLACE && !t->norm[k].b);
		for (size_t k = 0; k < t->ndec; k++)
			lost |= (t->dec[k].kind == DEC_REPLACE && (!t->dec[k].a || !t->dec[k].b)) ||
				(t->dec[k].kind == DEC_STRIP && !t->dec[k].a);
		if (lost) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto done;
		}
	}
	int64_t kv;
	double v;
	static const char *const idkeys[] = { "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
					      "tokenizer.ggml.unknown_token_id" };
	int32_t *ids[] = { &t->bos, &t->eos, &t->unk };
	for (int i = 0; i < 3; i++) {
		if ((kv = qf_gguf_find_kv(g, idkeys[i])) < 0 || !qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)kv), 0, &v))
			continue;
		if (!(v >= 0 && v < (double)t->n)) {
			s = qf_fail(err, QF_EFORMAT, "%s: %s %g is past the vocabulary (%zu tokens)", label, idkeys[i], v, t->n);
			goto done;
		}
		*ids[i] = (int32_t)v;
	}
	t->add_bos = t->bos >= 0;
	if ((kv = qf_gguf_find_kv(g, "tokenizer.ggml.add_bos_token")) >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)kv), 0, &v))
		t->add_bos = v != 0 && t->bos >= 0;
	if ((kv = qf_gguf_find_kv(g, "tokenizer.ggml.add_eos_token")) >= 0 && qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)kv), 0, &v))
		t->add_eos = v != 0 && t->eos >= 0;
	if (t->add_bos)
		t->tpl_pre[t->ntpl_pre++] = t->bos;
	if (t->add_eos)
		t->tpl_suf[t->ntpl_suf++] = t->eos;
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
