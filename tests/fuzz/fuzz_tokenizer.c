/*
 * libFuzzer entry point for the tokenizer: a fixed small tokenizer.json of
 * each family encodes (and decodes) arbitrary bytes, and the input is also
 * parsed as a tokenizer.json.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer.h"

static const char *bl =
	"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"Ġ\":3,\"Ġa\":4,\"<s>\":5},\"merges\":[\"a b\",\"Ġ a\"]},"
	"\"added_tokens\":[{\"id\":5,\"content\":\"<s>\",\"special\":true}],"
	"\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},"
	"\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}]},"
	"\"decoder\":{\"type\":\"ByteLevel\"}}";
static const char *sp =
	"{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
	"\"vocab\":{\"<unk>\":0,\"<0x41>\":1,\"▁\":2,\"a\":3,\"▁a\":4},\"merges\":[\"▁ a\"]},"
	"\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"▁\"},"
	"{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"▁\"}]},"
	"\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"▁\"},\"content\":\" \"},"
	"{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}}";

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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static qf_tok *a, *b;
	qf_err err = { { 0 } };
	if (!a && qf_tok_from_json(bl, strlen(bl), NULL, 0, "bl", &a, &err))
		abort();
	if (!b && qf_tok_from_json(sp, strlen(sp), NULL, 0, "sp", &b, &err))
		abort();
	run(a, data, size);
	run(b, data, size);
	qf_tok *t = NULL;
	if (qf_tok_from_json((const char *)data, size, NULL, 0, "fuzz", &t, &err) == QF_OK) {
		run(t, (const uint8_t *)"hello world 123", 15);
		qf_tok_free(t);
	}
	return 0;
}
