/*
 * libFuzzer entry point for the tokenizer.  The first byte picks what the
 * rest is:
 *   0  text for fixed small tokenizer.json files of each family (byte-level
 *      with a template, SentencePiece, Llama 3's and Qwen2's pre-tokenizers
 *      with ignore_merges, NFC and lstrip/rstrip added tokens), encoded and
 *      decoded; cut where
 *      qf_tok_safe_cut says, the two sides must encode to the whole text's
 *      ids (abort otherwise), with the text after the cut's search unseen;
 *   1  a post_processor object inside a fixed tokenizer.json;
 *   2  a tokenizer_config.json for a fixed tokenizer.json;
 *   3  a whole tokenizer.json (this byte included: '{' selects it).
 * Every tokenizer that loads encodes a fixed text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer.h"

static const char *bl =
	"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"Ġ\":3,\"Ġa\":4,\"<s>\":5},\"merges\":[\"a b\",\"Ġ a\"]},"
	"\"added_tokens\":[{\"id\":5,\"content\":\"<s>\",\"special\":true}],"
	"\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},"
	"\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}]},"
	"\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
	"\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[5]}}},"
	"\"decoder\":{\"type\":\"ByteLevel\"}}";
static const char *sp =
	"{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
	"\"vocab\":{\"<unk>\":0,\"<0x41>\":1,\"▁\":2,\"a\":3,\"▁a\":4,\"</s>\":5},\"merges\":[\"▁ a\"]},"
	"\"added_tokens\":[{\"id\":5,\"content\":\"</s>\",\"special\":true}],"
	"\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"▁\"},"
	"{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"▁\"}]},"
	"\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"▁\"},\"content\":\" \"},"
	"{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}}";
/* Llama 3's and Qwen2's pre-tokenizers (safe cuts inside stretches), ignore_merges, NFC, a Sequence
 * post-processor, added tokens that strip */
#define BODY(norm, im, digits)                                                                                                   \
	"{" norm "\"model\":{\"type\":\"BPE\",\"ignore_merges\":" im ","                                                          \
	"\"vocab\":{\"a\":0,\"b\":1,\"Ġ\":2,\"ab\":3,\"Ġa\":4,\"Ġab\":5,\"ba\":6,\"Ã\":7,\"©\":8,\"Ã©\":9,\"<|x|>\":10,\"<m>\":11," \
	"\"<r>\":12,\"1\":13,\"11\":14},\"merges\":[\"b a\",\"a b\",\"Ġ a\",\"Ġa b\",\"Ã ©\",\"1 1\"]},"                          \
	"\"added_tokens\":[{\"id\":10,\"content\":\"<|x|>\",\"special\":true},{\"id\":11,\"content\":\"<m>\",\"lstrip\":true},"  \
	"{\"id\":12,\"content\":\"<r>\",\"rstrip\":true}],"                                                                      \
	"\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"             \
	"\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}" digits "| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|" \
	"\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"                               \
	"{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"                                             \
	"\"post_processor\":{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\",\"trim_offsets\":false},"             \
	"{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|x|>\"}},{\"Sequence\":{\"id\":\"A\"}}],"    \
	"\"special_tokens\":{\"<|x|>\":{\"id\":\"<|x|>\",\"ids\":[10]}}}]},"                                                   \
	"\"decoder\":{\"type\":\"ByteLevel\"}}"
static const char *l3 = BODY("", "true", "{1,3}");
static const char *q2 = BODY("\"normalizer\":{\"type\":\"NFC\"},", "false", "");

static qf_tok_piece *enc(qf_tok *t, const uint8_t *d, size_t n, size_t *np)
{
	qf_tok_piece *p = NULL;
	qf_err err = { { 0 } };
	*np = 0;
	return qf_tok_encode(t, (const char *)d, n, 0, &p, np, &err) == QF_OK ? p : NULL;
}

static void run(qf_tok *t, const uint8_t *data, size_t size)
{
	qf_tok_piece *p = NULL;
	size_t n = 0;
	qf_err err = { { 0 } };
	if (qf_tok_encode(t, (const char *)data, size, 1, &p, &n, &err) == QF_OK) {
		int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
		for (size_t i = 0; ids && i < n; i++)
			ids[i] = p[i].id;
		char *d = NULL;
		size_t dl = 0;
		if (ids && qf_tok_decode(t, ids, n, &d, &dl, &err) == QF_OK)
			free(d);
		free(ids);
		free(p);
	}
	/* a cut found in the first half is safe whatever the second half is */
	size_t seen = size / 2, c = qf_tok_safe_cut(t, (const char *)data, seen);
	if (c > seen)
		abort();
	if (!c)
		return;
	size_t nw, na, nb;
	qf_tok_piece *w = enc(t, data, size, &nw), *a = enc(t, data, c, &na), *b = enc(t, data + c, size - c, &nb);
	if (w && a && b) {
		if (na + nb != nw)
			abort();
		for (size_t i = 0; i < nw; i++)
			if (w[i].id != (i < na ? a[i].id : b[i - na].id))
				abort();
	}
	free(w);
	free(a);
	free(b);
}

static void load_and_run(const char *json, size_t len, const char *cfg, size_t clen)
{
	qf_tok *t = NULL;
	qf_err err = { { 0 } };
	if (qf_tok_from_json(json, len, cfg, clen, "fuzz", &t, &err) == QF_OK) {
		run(t, (const uint8_t *)"hello world 123 <s> a b", 23);
		qf_tok_free(t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum { NT = 4 };
	static qf_tok *toks[NT];
	const char *json[NT] = { bl, sp, l3, q2 };
	qf_err err = { { 0 } };
	for (int i = 0; i < NT; i++)
		if (!toks[i] && qf_tok_from_json(json[i], strlen(json[i]), NULL, 0, "fixed", &toks[i], &err))
			abort();
	if (!size)
		return 0;
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	switch (data[0] & 3) {
	case 0:
		for (int i = 0; i < NT; i++)
			run(toks[i], d, n);
		break;
	case 1: { /* the input as l3's post_processor */
		const char *head = strstr(l3, "\"post_processor\":") + strlen("\"post_processor\":");
		const char *tail = strstr(l3, ",\"decoder\":");
		size_t hl = (size_t)(head - l3), tl = strlen(tail);
		char *j = malloc(hl + n + tl + 1);
		if (!j)
			return 0;
		memcpy(j, l3, hl);
		memcpy(j + hl, d, n);
		memcpy(j + hl + n, tail, tl + 1);
		load_and_run(j, hl + n + tl, NULL, 0);
		free(j);
		break;
	}
	case 2:
		load_and_run(l3, strlen(l3), (const char *)d, n);
		break;
	default: /* '{' is 0x7b: a tokenizer.json is read whole */
		load_and_run((const char *)data, size, NULL, 0);
	}
	return 0;
}
