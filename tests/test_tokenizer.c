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
#include <time.h>

#include "convert/convert.h"
#include "formats/textfile.h"
#include "formats/tokenizer.h"
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

/* ---- the Hugging Face oracle -------------------------------------------------------- */

static const char *const frags[] = {
	"the", " cat", " sat", "Hello", " World", "!", "?", "...", ",", ".", " ", "  ", "   ", "\t", "\n", "\n\n",
	"\r\n", "0", "7", "42", "1234", "3.14", "1,000,000", "é", "été", " naïve", "Straße", "ß", "ñ", "中文", "日本語",
	"한국어", "🎉", "👍🏽", "👨‍👩‍👧", "—", "–", "'s", "'ve", "'LL", " don't", "(", ")", "[", "]", "{", "}", "\"", "#",
	"$", "%", "&", "*", "+", "-", "/", ":", ";", "<", "=", ">", "@", "\\", "^", "_", "`", "|", "~", "Ελληνικά",
	" кириллица", "عربى", "עברית", "x", "Once upon a time", " there was", " a little girl", "Lily", " ABC",
	"aaaaaaaaaaaaaaaaaaaa", "\xc2\xa0", "\xe2\x80\x8b", "ﬁ",
};

static char *gen_text(uint64_t *rs, const char *special)
{
	size_t cap = 512, n = 0;
	char *s = malloc(cap);
	int parts = 1 + (int)(tu_rand(rs) % 24);
	for (int i = 0; i < parts; i++) {
		const char *f = (special && tu_rand(rs) % 40 == 0) ? special : frags[tu_rand(rs) % (sizeof frags / sizeof frags[0])];
		size_t l = strlen(f);
		if (n + l + 1 > cap)
			s = realloc(s, cap = (n + l + 1) * 2);
		memcpy(s + n, f, l);
		n += l;
	}
	s[n] = 0;
	return s;
}

static void oracle(const char *name, qf_tok *t, const char *special)
{
	char od[4096], cmd[6 * 4096];
	const char *d = getenv("QF_ORACLE_DIR");
	snprintf(od, sizeof od, "%s", d && *d ? d : tu_src("tests/oracle"));
	char probe[4200];
	snprintf(probe, sizeof probe, "%s/node_modules/tokenizers/package.json", od);
	if (!tu_exists(probe) || system("node --version > /dev/null 2>&1") != 0) {
		skip("Hugging Face tokenizers oracle absent (npm 'tokenizers' in tests/oracle and node; run .ci/oracle.sh)",
		     "%s: ids identical to Hugging Face tokenizers on generated texts", name);
		return;
	}
	enum { N = 600 };
	uint64_t rs = 1234 + (uint64_t)strlen(name);
	char *texts[N];
	cJSON *arr = cJSON_CreateArray();
	for (int i = 0; i < N; i++) {
		texts[i] = gen_text(&rs, special);
		cJSON_AddItemToArray(arr, cJSON_CreateString(texts[i]));
	}
	char *js = cJSON_PrintUnformatted(arr);
	const char *tp = tu_path("texts.json");
	tu_write(tp, js, strlen(js));
	free(js);
	cJSON_Delete(arr);
	char tj[4096];
	snprintf(tj, sizeof tj, "%s/models/%s/tokenizer.json", tu_src(""), name);
	snprintf(cmd, sizeof cmd, "QF_ORACLE_DIR='%s' node '%s/tokenize.js' '%s' '%s' > '%s'", od, tu_src("tests/oracle"), tj, tp,
		 tu_path("oracle.json"));
	int rc = system(cmd);
	size_t len = 0;
	char *out = rc == 0 ? (char *)tu_read(tu_path("oracle.json"), &len) : NULL;
	cJSON *res = out ? cJSON_Parse(out) : NULL;
	int same = 0, first_bad = -1;
	for (int i = 0; res && i < N; i++) {
		cJSON *want = cJSON_GetArrayItem(res, i);
		qf_tok_piece *p = NULL;
		size_t n = 0;
		qf_err err = { { 0 } };
		int eq = qf_tok_encode(t, texts[i], strlen(texts[i]), 1, &p, &n, &err) == QF_OK &&
			 (size_t)cJSON_GetArraySize(want) == n;
		for (size_t k = 0; eq && k < n; k++)
			eq = cJSON_GetArrayItem(want, (int)k)->valueint == p[k].id;
		same += eq;
		if (!eq && first_bad < 0)
			first_bad = i;
		free(p);
	}
	ok(res && same == N, "%s: ids identical to Hugging Face tokenizers (npm) on %d/%d generated texts", name, same, N);
	if (first_bad >= 0)
		diag("first differing text: '%s'", texts[first_bad]);
	cJSON_Delete(res);
	free(out);
	for (int i = 0; i < N; i++)
		free(texts[i]);
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
	oracle("tiny-dsv3", ds, "<｜end▁of▁sentence｜>");
	oracle("stories260k-hf", st, "</s>");
	qf_tok_free(ds);
	qf_tok_free(st);
	qf_tok_free(dg);
	qf_tok_free(sg);
	free(text);
	return tap_failures() ? 1 : 0;
}
