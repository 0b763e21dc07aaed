#include "config.h"

#include <cjson/cJSON.h>
#include <oniguruma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "formats/mapfile.h"
#include "formats/tokenizer.h"

#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_REGEX                                                                                       \
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| " \
	"?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define METASPACE "\xe2\x96\x81" /* ▁ */

/* ---- hash maps ------------------------------------------------------------------- */

typedef struct piece {
	char *s;
	uint32_t len;
	float score;
	int32_t type;
} piece;

/* string → id (open addressing; slots hold id + 1) */
typedef struct smap {
	uint32_t *slot;
	uint64_t mask;
} smap;

static uint64_t hbytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

static int smap_init(smap *m, size_t n)
{
	uint64_t cap = 16;
	while (cap < (uint64_t)n * 2 + 16)
		cap <<= 1;
	m->slot = calloc(cap, sizeof *m->slot);
	m->mask = cap - 1;
	return m->slot ? 0 : -1;
}

static int32_t smap_get(const smap *m, const piece *ps, const char *s, size_t n)
{
	for (uint64_t h = hbytes(s, n) & m->mask;; h = (h + 1) & m->mask) {
		uint32_t v = m->slot[h];
		if (!v)
			return -1;
		const piece *p = &ps[v - 1];
		if (p->len == n && memcmp(p->s, s, n) == 0)
			return (int32_t)(v - 1);
	}
}

/* Adds id unless its string is already present (the first id keeps it). */
static void smap_put(smap *m, const piece *ps, int32_t id)
{
	const piece *p = &ps[id];
	for (uint64_t h = hbytes(p->s, p->len) & m->mask;; h = (h + 1) & m->mask) {
		uint32_t v = m->slot[h];
		if (!v) {
			m->slot[h] = (uint32_t)id + 1;
			return;
		}
		if (ps[v - 1].len == p->len && memcmp(ps[v - 1].s, p->s, p->len) == 0)
			return;
	}
}

/* (left id, right id) → (rank, merged id) */
typedef struct pmap {
	uint64_t *key; /* (a << 32 | b) + 1, 0 = empty */
	uint32_t *rank;
	int32_t *id;
	uint64_t mask;
} pmap;

static int pmap_init(pmap *m, size_t n)
{
	uint64_t cap = 16;
	while (cap < (uint64_t)n * 2 + 16)
		cap <<= 1;
	m->key = calloc(cap, sizeof *m->key);
	m->rank = calloc(cap, sizeof *m->rank);
	m->id = calloc(cap, sizeof *m->id);
	m->mask = cap - 1;
	return m->key && m->rank && m->id ? 0 : -1;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static int pmap_get(const pmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id)
{
	if (!m->key)
		return 0;
	uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
	for (uint64_t h = mix64(k) & m->mask;; h = (h + 1) & m->mask) {
		if (!m->key[h])
			return 0;
		if (m->key[h] == k) {
			*rank = m->rank[h];
			*id = m->id[h];
			return 1;
		}
	}
}

static void pmap_put(pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id)
{
	uint64_t k = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
	for (uint64_t h = mix64(k) & m->mask;; h = (h + 1) & m->mask) {
		if (m->key[h] == k)
			return; /* the first (lowest) rank wins */
		if (!m->key[h]) {
			m->key[h] = k;
			m->rank[h] = rank;
			m->id[h] = id;
			return;
		}
	}
}

/* ---- the tokenizer ----------------------------------------------------------------- */

enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_PREV, SPLIT_NEXT, SPLIT_CONTIGUOUS };
enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE, PRE_DIGITS };
enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };

typedef struct norm_step {
	int prepend;            /* 1: Prepend a; 0: Replace a by b */
	char *a, *b;
	size_t alen, blen;
} norm_step;

typedef struct pre_step {
	int kind;
	OnigRegex re;           /* Split with a regex */
	char *lit;              /* Split with a string */
	size_t litlen;
	int behavior, invert;
	int add_prefix_space;   /* ByteLevel, Metaspace(prepend) */
	int prepend_first;      /* Metaspace prepend_scheme "first" */
	int ms_split;           /* Metaspace split */
	int individual;         /* Digits */
} pre_step;

typedef struct dec_step {
	int kind;
	char *a, *b;
	size_t alen, blen;
	int start, stop;
} dec_step;

typedef struct added {
	char *s;
	size_t len;
	int32_t id;
	int lstrip, rstrip;
} added;

#define CACHE_SLOTS 32768
#define CACHE_MAX_WORD 40

typedef struct cache_ent {
	char word[CACHE_MAX_WORD];
	uint8_t len;
	uint8_t nids;          /* 0 = empty */
	int32_t ids[CACHE_MAX_WORD];
	uint8_t ends[CACHE_MAX_WORD]; /* end byte of each token in the word */
} cache_ent;

struct qf_tok {
	piece *p;
	size_t n;
	smap vocab;
	pmap merges;
	int byte_level;         /* symbols start as bytes through bytes_to_unicode */
	int spm;                /* GGUF llama: merge by scores */
	int byte_fallback, fuse_unk;
	int32_t unk;
	int32_t byte_id[256];   /* byte-level: the byte's mapped char; fallback: <0xNN> */
	added *add;
	size_t nadd;
	norm_step *norm;
	size_t nnorm;
	pre_step *pre;
	size_t npre;
	dec_step *dec;
	size_t ndec;
	int32_t bos, eos;
	int add_bos, add_eos;
	cache_ent *cache;
	const char *kind;
	uint32_t abeg[257];     /* added tokens sorted by first byte: bucket [abeg[b], abeg[b+1]) */
	int ms_cut;             /* no token has ▁ past its start: words may be cut before each ▁ */
};

size_t qf_tok_vocab_size(const qf_tok *t) { return t->n; }
const char *qf_tok_piece_str(const qf_tok *t, int32_t id) { return id >= 0 && (size_t)id < t->n ? t->p[id].s : NULL; }
int32_t qf_tok_bos(const qf_tok *t) { return t->bos; }
int32_t qf_tok_eos(const qf_tok *t) { return t->eos; }
int qf_tok_adds_bos(const qf_tok *t) { return t->add_bos; }
const char *qf_tok_kind(const qf_tok *t) { return t->kind; }

void qf_tok_free(qf_tok *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->p[i].s);
	free(t->p);
	free(t->vocab.slot);
	free(t->merges.key);
	free(t->merges.rank);
	free(t->merges.id);
	for (size_t i = 0; i < t->nadd; i++)
		free(t->add[i].s);
	free(t->add);
	for (size_t i = 0; i < t->nnorm; i++) {
		free(t->norm[i].a);
		free(t->norm[i].b);
	}
	free(t->norm);
	for (size_t i = 0; i < t->npre; i++) {
		if (t->pre[i].re)
			onig_free(t->pre[i].re);
		free(t->pre[i].lit);
	}
	free(t->pre);
	for (size_t i = 0; i < t->ndec; i++) {
		free(t->dec[i].a);
		free(t->dec[i].b);
	}
	free(t->dec);
	free(t->cache);
	free(t);
}

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest map to 256 + k. */
static uint32_t byte_to_cp(int b)
{
	if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
		return (uint32_t)b;
	int k = 0;
	for (int i = 0; i < b; i++)
		if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174))
			k++;
	return 256u + (uint32_t)k;
}

static int utf8_put(uint32_t cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Length of a valid UTF-8 sequence at s (≤ n bytes), or 0 when invalid. */
static int utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned c = s[0];
	int k;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c < 0xe0) {
		k = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c < 0xf0) {
		k = 3;
		v = c & 0x0f;
	} else if (c >= 0xf0 && c < 0xf5) {
		k = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)k > n)
		return 0;
	for (int i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if ((k == 3 && (v < 0x800 || (v >= 0xd800 && v < 0xe000))) || (k == 4 && (v < 0x10000 || v > 0x10ffff)))
		return 0;
	*cp = v;
	return k;
}

/* ---- building ------------------------------------------------------------------------ */

static qf_status tok_alloc(qf_tok **out, size_t n, qf_err *err)
{
	qf_tok *t = calloc(1, sizeof *t);
	if (!t || !(t->p = calloc(n ? n : 1, sizeof *t->p))) {
		free(t);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	t->n = n;
	t->unk = t->bos = t->eos = -1;
	*out = t;
	return QF_OK;
}

static qf_status finish_vocab(qf_tok *t, const char *label, qf_err *err)
{
	if (smap_init(&t->vocab, t->n))
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t i = 0; i < t->n; i++) {
		if (!t->p[i].s)
			return qf_fail(err, QF_EFORMAT, "%s: vocabulary has no token with id %zu", label, i);
		smap_put(&t->vocab, t->p, (int32_t)i);
	}
	for (int b = 0; b < 256; b++) {
		char s[8];
		int k;
		if (t->byte_level)
			k = utf8_put(byte_to_cp(b), s);
		else
			k = snprintf(s, sizeof s, "<0x%02X>", b);
		t->byte_id[b] = smap_get(&t->vocab, t->p, s, (size_t)k);
	}
	/*
	 * Without a pre-tokenizer, SentencePiece-style models see a whole stretch
	 * as one word.  When no token holds ▁ anywhere but at its start (and ▁
	 * is a token), no merge can join symbols across a ▁, so cutting the
	 * word before each ▁ changes nothing — and lets the word cache work.
	 */
	t->ms_cut = !t->byte_level && smap_get(&t->vocab, t->p, METASPACE, 3) >= 0;
	for (size_t i = 0; t->ms_cut && i < t->n; i++)
		for (uint32_t j = 1; j + 3 <= t->p[i].len; j++)
			if (memcmp(t->p[i].s + j, METASPACE, 3) == 0) {
				t->ms_cut = 0;
				break;
			}
	return QF_OK;
}

static qf_status add_merge(qf_tok *t, const char *a, size_t al, const char *b, size_t bl, uint32_t rank,
			   const char *label, qf_err *err)
{
	int32_t ia = smap_get(&t->vocab, t->p, a, al), ib = smap_get(&t->vocab, t->p, b, bl);
	char buf[1024];
	if (al + bl > sizeof buf)
		return qf_fail(err, QF_EFORMAT, "%s: merge %u is too long", label, rank);
	memcpy(buf, a, al);
	memcpy(buf + al, b, bl);
	int32_t im = smap_get(&t->vocab, t->p, buf, al + bl);
	if (ia < 0 || ib < 0 || im < 0)
		return qf_fail(err, QF_EFORMAT, "%s: merge %u ('%.*s' '%.*s') names a token not in the vocabulary", label,
			       rank, (int)al, a, (int)bl, b);
	pmap_put(&t->merges, ia, ib, rank, im);
	return QF_OK;
}

static qf_status compile_regex(const char *pat, size_t len, OnigRegex *re, const char *label, qf_err *err)
{
	static OnigEncoding enc[1];
	enc[0] = ONIG_ENCODING_UTF8;
	onig_initialize(enc, 1);
	OnigErrorInfo ei;
	int rc = onig_new(re, (const UChar *)pat, (const UChar *)pat + len, ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
			  ONIG_SYNTAX_ONIGURUMA, &ei);
	if (rc != ONIG_NORMAL) {
		UChar m[ONIG_MAX_ERROR_MESSAGE_LEN];
		onig_error_code_to_str(m, rc, &ei);
		*re = NULL;
		return qf_fail(err, QF_EFORMAT, "%s: pre-tokenizer regex does not compile: %s", label, (const char *)m);
	}
	return QF_OK;
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(x) ? x->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *k, int def)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsBool(x) ? cJSON_IsTrue(x) : def;
}

/* Flattens a Sequence (key names its list) into visit() calls. */
typedef qf_status (*visit_fn)(qf_tok *t, const cJSON *node, const char *label, qf_err *err);

static qf_status walk(qf_tok *t, const cJSON *node, const char *listkey, visit_fn visit, const char *label,
		      qf_err *err)
{
	if (!node || cJSON_IsNull(node))
		return QF_OK;
	const char *type = jstr(node, "type");
	if (type && strcmp(type, "Sequence") == 0) {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(node, listkey);
		for (const cJSON *c = cJSON_IsArray(list) ? list->child : NULL; c; c = c->next) {
			qf_status s = walk(t, c, listkey, visit, label, err);
			if (s)
				return s;
		}
		return QF_OK;
	}
	return visit(t, node, label, err);
}

static qf_status visit_norm(qf_tok *t, const cJSON *n, const char *label, qf_err *err)
{
	const char *type = jstr(n, "type");
	norm_step st = { 0 };
	if (type && strcmp(type, "Prepend") == 0 && jstr(n, "prepend")) {
		st.prepend = 1;
		st.a = strdup(jstr(n, "prepend"));
		st.alen = strlen(st.a);
	} else if (type && strcmp(type, "Replace") == 0) {
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
		const char *lit = pat ? jstr(pat, "String") : NULL;
		const char *content = jstr(n, "content");
		if (!lit || !content || !*lit)
			return qf_fail(err, QF_EFORMAT, "%s: normalizer Replace with a Regex pattern is not supported", label);
		st.a = strdup(lit);
		st.alen = strlen(lit);
		st.b = strdup(content);
		st.blen = strlen(content);
	} else {
		return qf_fail(err, QF_EFORMAT, "%s: normalizer '%s' is not supported", label, type ? type : "?");
	}
	norm_step *g = realloc(t->norm, (t->nnorm + 1) * sizeof *g);
	if (!g || !st.a || (!st.prepend && !st.b)) {
		free(g ? NULL : st.a);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	t->norm = g;
	t->norm[t->nnorm++] = st;
	return QF_OK;
}

static int behavior_of(const char *b)
{
	static const char *const names[] = { "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous" };
	for (int i = 0; b && i < 5; i++)
		if (strcmp(b, names[i]) == 0)
			return i;
	return -1;
}

static qf_status push_pre(qf_tok *t, const pre_step *st, qf_err *err)
{
	pre_step *g = realloc(t->pre, (t->npre + 1) * sizeof *g);
	if (!g)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	t->pre = g;
	t->pre[t->npre++] = *st;
	return QF_OK;
}

static qf_status add_regex_split(qf_tok *t, const char *pat, const char *label, qf_err *err)
{
	pre_step st = { .kind = PRE_SPLIT, .behavior = SPLIT_ISOLATED };
	qf_status s = compile_regex(pat, strlen(pat), &st.re, label, err);
	return s ? s : push_pre(t, &st, err);
}

static qf_status visit_pre(qf_tok *t, const cJSON *n, const char *label, qf_err *err)
{
	const char *type = jstr(n, "type");
	if (t->npre && t->pre[t->npre - 1].kind == PRE_BYTELEVEL)
		return qf_fail(err, QF_EFORMAT, "%s: pre-tokenizer '%s' after ByteLevel is not supported", label,
			       type ? type : "?");
	pre_step st = { 0 };
	if (type && strcmp(type, "Split") == 0) {
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
		const char *rx = pat ? jstr(pat, "Regex") : NULL, *lit = pat ? jstr(pat, "String") : NULL;
		st.kind = PRE_SPLIT;
		st.behavior = behavior_of(jstr(n, "behavior"));
		st.invert = jbool(n, "invert", 0);
		if (st.behavior < 0 || (!rx && !lit))
			return qf_fail(err, QF_EFORMAT, "%s: Split pre-tokenizer with unknown behavior or pattern", label);
		if (rx) {
			qf_status s = compile_regex(rx, strlen(rx), &st.re, label, err);
			if (s)
				return s;
		} else {
			st.lit = strdup(lit);
			st.litlen = strlen(lit);
		}
		return push_pre(t, &st, err);
	}
	if (type && strcmp(type, "ByteLevel") == 0) {
		st.kind = PRE_BYTELEVEL;
		st.add_prefix_space = jbool(n, "add_prefix_space", 1);
		if (jbool(n, "use_regex", 1)) {
			qf_status s = add_regex_split(t, GPT2_REGEX, label, err);
			if (s)
				return s;
			/* the regex runs after the prefix space: keep that order */
			pre_step rx = t->pre[t->npre - 1];
			t->npre--;
			st.re = rx.re;
		}
		t->byte_level = 1;
		return push_pre(t, &st, err);
	}
	if (type && strcmp(type, "Metaspace") == 0) {
		const char *rep = jstr(n, "replacement");
		if (rep && strcmp(rep, METASPACE) != 0)
			return qf_fail(err, QF_EFORMAT, "%s: Metaspace replacement other than U+2581 is not supported", label);
		const char *scheme = jstr(n, "prepend_scheme");
		st.kind = PRE_METASPACE;
		st.add_prefix_space = scheme ? strcmp(scheme, "never") != 0 : jbool(n, "add_prefix_space", 1);
		st.prepend_first = scheme && strcmp(scheme, "first") == 0;
		st.ms_split = jbool(n, "split", 1);
		return push_pre(t, &st, err);
	}
	if (type && strcmp(type, "Digits") == 0) {
		st.kind = PRE_DIGITS;
		st.individual = jbool(n, "individual_digits", 0);
		return push_pre(t, &st, err);
	}
	return qf_fail(err, QF_EFORMAT, "%s: pre-tokenizer '%s' is not supported", label, type ? type : "?");
}

static qf_status visit_dec(qf_tok *t, const cJSON *n, const char *label, qf_err *err)
{
	const char *type = jstr(n, "type");
	dec_step st = { 0 };
	if (!type)
		return qf_fail(err, QF_EFORMAT, "%s: decoder without a type", label);
	if (!strcmp(type, "ByteLevel"))
		st.kind = DEC_BYTELEVEL;
	else if (!strcmp(type, "ByteFallback"))
		st.kind = DEC_BYTEFALLBACK;
	else if (!strcmp(type, "Fuse"))
		st.kind = DEC_FUSE;
	else if (!strcmp(type, "Metaspace"))
		st.kind = DEC_METASPACE;
	else if (!strcmp(type, "Strip")) {
		st.kind = DEC_STRIP;
		const char *c = jstr(n, "content");
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(n, "start"), *b = cJSON_GetObjectItemCaseSensitive(n, "stop");
		st.a = strdup(c ? c : " ");
		st.alen = strlen(st.a);
		st.start = cJSON_IsNumber(a) ? a->valueint : 0;
		st.stop = cJSON_IsNumber(b) ? b->valueint : 0;
	} else if (!strcmp(type, "Replace")) {
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
		const char *lit = pat ? jstr(pat, "String") : NULL, *content = jstr(n, "content");
		if (!lit || !content || !*lit)
			return qf_fail(err, QF_EFORMAT, "%s: decoder Replace with a Regex pattern is not supported", label);
		st.kind = DEC_REPLACE;
		st.a = strdup(lit);
		st.alen = strlen(lit);
		st.b = strdup(content);
		st.blen = strlen(content);
	} else {
		return qf_fail(err, QF_EFORMAT, "%s: decoder '%s' is not supported", label, type);
	}
	dec_step *g = realloc(t->dec, (t->ndec + 1) * sizeof *g);
	if (!g)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	t->dec = g;
	t->dec[t->ndec++] = st;
	return QF_OK;
}

static qf_status add_added(qf_tok *t, const char *s, int32_t id, int lstrip, int rstrip, qf_err *err)
{
	if (!s || !*s)
		return QF_OK;
	added *g = realloc(t->add, (t->nadd + 1) * sizeof *g);
	if (!g)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	t->add = g;
	t->add[t->nadd] = (added){ .s = strdup(s), .len = strlen(s), .id = id, .lstrip = lstrip, .rstrip = rstrip };
	if (!t->add[t->nadd].s)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	t->nadd++;
	return QF_OK;
}

static int cmp_added(const void *a, const void *b)
{
	const added *x = a, *y = b;
	int c = (uint8_t)x->s[0] - (uint8_t)y->s[0];
	return c ? c : (x->len > y->len ? -1 : x->len < y->len); /* longest first */
}

/* Buckets the added tokens by first byte, longest first within a bucket. */
static void index_added(qf_tok *t)
{
	if (t->nadd)
		qsort(t->add, t->nadd, sizeof *t->add, cmp_added);
	size_t k = 0;
	for (int b = 0; b < 256; b++) {
		t->abeg[b] = (uint32_t)k;
		while (k < t->nadd && (uint8_t)t->add[k].s[0] == b)
			k++;
	}
	t->abeg[256] = (uint32_t)k;
}

/* The special token's content from tokenizer_config.json (string or AddedToken object). */
static const char *special_content(const cJSON *cfg, const char *key)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, key);
	if (cJSON_IsString(x))
		return x->valuestring;
	return cJSON_IsObject(x) ? jstr(x, "content") : NULL;
}

qf_status qf_tok_from_json(const char *json, size_t len, const char *config, size_t clen, const char *label,
			   qf_tok **out, qf_err *err)
{
	qf_status s = QF_OK;
	qf_tok *t = NULL;
	cJSON *root = cJSON_ParseWithLength(json, len), *cfg = config ? cJSON_ParseWithLength(config, clen) : NULL;
	if (!root) {
		s = qf_fail(err, QF_EFORMAT, "%s: tokenizer.json is not valid JSON", label);
		goto done;
	}
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
	const char *mtype = model ? jstr(model, "type") : NULL;
	if (!mtype || strcmp(mtype, "BPE") != 0) {
		s = qf_fail(err, QF_EFORMAT, "%s: tokenizer model '%s' is not supported (BPE only)", label,
			    mtype ? mtype : "(none)");
		goto done;
	}
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
	const cJSON *addl = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
	if (!cJSON_IsObject(vocab)) {
		s = qf_fail(err, QF_EFORMAT, "%s: model.vocab is missing", label);
		goto done;
	}
	/* ids may run past the vocab with added tokens */
	int64_t maxid = -1;
	for (const cJSON *v = vocab->child; v; v = v->next)
		if (cJSON_IsNumber(v) && v->valuedouble > (double)maxid)
			maxid = (int64_t)v->valuedouble;
	for (const cJSON *a = cJSON_IsArray(addl) ? addl->child : NULL; a; a = a->next) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
		if (cJSON_IsNumber(id) && id->valuedouble > (double)maxid)
			maxid = (int64_t)id->valuedouble;
	}
	if (maxid < 0 || maxid > (1 << 24)) {
		s = qf_fail(err, QF_EFORMAT, "%s: vocabulary ids out of range", label);
		goto done;
	}
	if ((s = tok_alloc(&t, (size_t)maxid + 1, err)))
		goto done;
	for (const cJSON *v = vocab->child; v; v = v->next) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
			s = qf_fail(err, QF_EFORMAT, "%s: vocab entry '%s' has no valid id", label, v->string);
			goto done;
		}
		size_t id = (size_t)v->valuedouble;
		if (!t->p[id].s) {
			t->p[id].s = strdup(v->string);
			t->p[id].len = (uint32_t)strlen(v->string);
		}
	}
	for (const cJSON *a = cJSON_IsArray(addl) ? addl->child : NULL; a; a = a->next) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
		const char *c = jstr(a, "content");
		if (!cJSON_IsNumber(id) || !c || id->valuedouble < 0)
			continue;
		size_t i = (size_t)id->valuedouble;
		if (!t->p[i].s) {
			t->p[i].s = strdup(c);
			t->p[i].len = (uint32_t)strlen(c);
		}
		if ((s = add_added(t, c, (int32_t)i, jbool(a, "lstrip", 0), jbool(a, "rstrip", 0), err)))
			goto done;
	}
	t->byte_fallback = jbool(model, "byte_fallback", 0);
	t->fuse_unk = jbool(model, "fuse_unk", 0);
	if (jstr(model, "continuing_subword_prefix") || jstr(model, "end_of_word_suffix")) {
		s = qf_fail(err, QF_EFORMAT, "%s: BPE continuing_subword_prefix / end_of_word_suffix are not supported", label);
		goto done;
	}
	/* pre-tokenizer first: it decides whether symbols are bytes */
	if ((s = walk(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizers", visit_norm, label, err)) ||
	    (s = walk(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pretokenizers", visit_pre, label, err)) ||
	    (s = walk(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoders", visit_dec, label, err)))
		goto done;
	if ((s = finish_vocab(t, label, err)))
		goto done;
	const char *unk = jstr(model, "unk_token");
	t->unk = unk ? smap_get(&t->vocab, t->p, unk, strlen(unk)) : -1;
	int nm = cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : 0;
	if (pmap_init(&t->merges, (size_t)nm)) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto done;
	}
	uint32_t rank = 0;
	for (const cJSON *m = nm ? merges->child : NULL; m; m = m->next, rank++) {
		if (cJSON_IsString(m)) {
			const char *sp = strchr(m->valuestring, ' ');
			if (!sp || strchr(sp + 1, ' ')) {
				s = qf_fail(err, QF_EFORMAT, "%s: merge %u '%s' is not two tokens", label, rank, m->valuestring);
				goto done;
			}
			s = add_merge(t, m->valuestring, (size_t)(sp - m->valuestring), sp + 1, strlen(sp + 1), rank, label, err);
		} else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
			   cJSON_IsString(m->child->next)) {
			const char *a = m->child->valuestring, *b = m->child->next->valuestring;
			s = add_merge(t, a, strlen(a), b, strlen(b), rank, label, err);
		} else {
			s = qf_fail(err, QF_EFORMAT, "%s: merge %u is neither \"a b\" nor [\"a\", \"b\"]", label, rank);
		}
		if (s)
			goto done;
	}
	/* BOS/EOS: tokenizer_config.json first, the post-processor's template otherwise */
	const char *bos = cfg ? special_content(cfg, "bos_token") : NULL, *eos = cfg ? special_content(cfg, "eos_token") : NULL;
	t->bos = bos ? smap_get(&t->vocab, t->p, bos, strlen(bos)) : -1;
	t->eos = eos ? smap_get(&t->vocab, t->p, eos, strlen(eos)) : -1;
	const cJSON *ab = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token") : NULL;
	const cJSON *ae = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token") : NULL;
	const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
	const char *ppt = pp ? jstr(pp, "type") : NULL;
	if (ppt && strcmp(ppt, "TemplateProcessing") == 0) {
		/* the template's specials before and after $A */
		const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
		int seen_a = 0;
		for (const cJSON *e = cJSON_IsArray(single) ? single->child : NULL; e; e = e->next) {
			const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
			if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
				seen_a = 1;
				continue;
			}
			const char *id = sp ? jstr(sp, "id") : NULL;
			int32_t tid = id ? smap_get(&t->vocab, t->p, id, strlen(id)) : -1;
			if (tid < 0)
				continue;
			if (!seen_a) {
				t->bos = tid;
				if (!cJSON_IsBool(ab))
					t->add_bos = 1;
			} else {
				t->eos = tid;
				if (!cJSON_IsBool(ae))
					t->add_eos = 1;
			}
		}
	} else if (ppt && strcmp(ppt, "ByteLevel") != 0) {
		s = qf_fail(err, QF_EFORMAT, "%s: post-processor '%s' is not supported", label, ppt);
		goto done;
	}
	if (cJSON_IsBool(ab))
		t->add_bos = cJSON_IsTrue(ab) && t->bos >= 0;
	if (cJSON_IsBool(ae))
		t->add_eos = cJSON_IsTrue(ae) && t->eos >= 0;
	t->kind = t->byte_level ? "byte-level BPE" : "SentencePiece BPE";
	index_added(t);
done:
	cJSON_Delete(root);
	cJSON_Delete(cfg);
	if (s) {
		qf_tok_free(t);
		return s;
	}
	*out = t;
	return QF_OK;
}

qf_status qf_tok_from_dir(const char *dir, qf_tok **out, qf_err *err)
{
	char p[4096];
	qf_mapfile tj, tc;
	memset(&tc, 0, sizeof tc);
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	qf_status s = qf_mapfile_open(&tj, p, err);
	if (s)
		return s;
	snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
	int have_cfg = qf_mapfile_open(&tc, p, NULL) == QF_OK;
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	s = qf_tok_from_json((const char *)tj.data, (size_t)tj.size, have_cfg ? (const char *)tc.data : NULL,
			     have_cfg ? (size_t)tc.size : 0, p, out, err);
	qf_mapfile_close(&tj);
	if (have_cfg)
		qf_mapfile_close(&tc);
	return s;
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
		t->p[i].s = dupn(tokens->strs[i].p, tokens->strs[i].len);
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
	if ((s = finish_vocab(t, label, err)))
		goto done;
	for (size_t i = 0; i < t->n; i++) /* control and user-defined tokens match as added tokens */
		if ((t->p[i].type == 3 || t->p[i].type == 4) && (s = add_added(t, t->p[i].s, (int32_t)i, 0, 0, err)))
			goto done;
	if (gpt2) {
		int64_t km = qf_gguf_find_kv(g, "tokenizer.ggml.merges");
		const qf_gguf_kv *m = km >= 0 ? qf_gguf_kv_at(g, (size_t)km) : NULL;
		if (!m || m->arr_type != QF_GGUF_STR || pmap_init(&t->merges, (size_t)m->n)) {
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
			if ((s = add_merge(t, ms, (size_t)(sp - ms), sp + 1, ml - (size_t)(sp - ms) - 1, (uint32_t)r, label, err)))
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
			if ((s = add_regex_split(t, rx[i], label, err)))
				goto done;
		pre_step bl = { .kind = PRE_BYTELEVEL };
		if ((s = push_pre(t, &bl, err)))
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
	index_added(t);
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

/* ---- encoding -------------------------------------------------------------------- */

/* A working string: bytes plus, per byte, the original [start, end) it came from. */
typedef struct wstr {
	char *b;
	uint32_t *s, *e;       /* offsets from the stretch's start (base) */
	uint64_t base;
	size_t n, cap;
} wstr;

static int ws_reserve(wstr *w, size_t n)
{
	if (w->n + n <= w->cap)
		return 0;
	size_t nc = w->cap ? w->cap : 256;
	while (nc < w->n + n)
		nc *= 2;
	char *b = realloc(w->b, nc);
	uint32_t *s = b ? realloc(w->s, nc * sizeof *s) : NULL;
	uint32_t *e = s ? realloc(w->e, nc * sizeof *e) : NULL;
	if (b)
		w->b = b;
	if (s)
		w->s = s;
	if (e)
		w->e = e;
	if (!b || !s || !e)
		return -1;
	w->cap = nc;
	return 0;
}

static int ws_put(wstr *w, const char *b, size_t n, uint32_t s, uint32_t e)
{
	if (ws_reserve(w, n))
		return -1;
	memcpy(w->b + w->n, b, n);
	for (size_t i = 0; i < n; i++) {
		w->s[w->n + i] = s;
		w->e[w->n + i] = e;
	}
	w->n += n;
	return 0;
}

static int ws_copy(wstr *w, const wstr *from, size_t off, size_t n)
{
	if (ws_reserve(w, n))
		return -1;
	memcpy(w->b + w->n, from->b + off, n);
	memcpy(w->s + w->n, from->s + off, n * sizeof *w->s);
	memcpy(w->e + w->n, from->e + off, n * sizeof *w->e);
	w->n += n;
	return 0;
}

static void ws_free(wstr *w)
{
	free(w->b);
	free(w->s);
	free(w->e);
	memset(w, 0, sizeof *w);
}

/* Pieces of the pre-tokenized stretch: ranges of one wstr. */
typedef struct span {
	size_t off, len;
} span;

typedef struct spans {
	span *v;
	size_t n, cap;
} spans;

static int sp_push(spans *s, size_t off, size_t len)
{
	if (!len)
		return 0;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		span *g = realloc(s->v, nc * sizeof *g);
		if (!g)
			return -1;
		s->v = g;
		s->cap = nc;
	}
	s->v[s->n++] = (span){ off, len };
	return 0;
}

/* Output list of pieces. */
typedef struct outv {
	qf_tok_piece *v;
	size_t n, cap;
} outv;

static int out_push(outv *o, int32_t id, uint64_t s, uint64_t e)
{
	if (o->n == o->cap) {
		size_t nc = o->cap ? o->cap * 2 : 256;
		qf_tok_piece *g = realloc(o->v, nc * sizeof *g);
		if (!g)
			return -1;
		o->v = g;
		o->cap = nc;
	}
	o->v[o->n++] = (qf_tok_piece){ id, s, e };
	return 0;
}

/* Splits a span by a pattern with tokenizers' behaviours. */
static int split_span(const pre_step *st, const wstr *w, span in, spans *out, OnigRegion *reg)
{
	typedef struct { size_t s, e; int m; } part;
	part stack[64], *parts = stack;
	size_t np = 0, cap = 64;
	const UChar *base = (const UChar *)w->b + in.off, *end = base + in.len;
	size_t prev = 0, pos = 0;
	int rc = 0;
#define PUSH(a, b, mm)                                                             \
	do {                                                                       \
		if (np == cap) {                                                   \
			part *g = malloc(cap * 2 * sizeof *g);                     \
			if (!g) {                                                  \
				rc = -1;                                           \
				goto out;                                          \
			}                                                          \
			memcpy(g, parts, np * sizeof *g);                          \
			if (parts != stack)                                        \
				free(parts);                                       \
			parts = g;                                                 \
			cap *= 2;                                                  \
		}                                                                  \
		parts[np++] = (part){ (a), (b), (mm) };                            \
	} while (0)
	while (pos < in.len) {
		size_t ms, me;
		if (st->re) {
			int r = onig_search(st->re, base, end, base + pos, end, reg, ONIG_OPTION_NONE);
			if (r < 0)
				break;
			ms = (size_t)reg->beg[0];
			me = (size_t)reg->end[0];
		} else {
			const char *f = NULL;
			for (size_t i = pos; i + st->litlen <= in.len && !f; i++)
				if (memcmp(base + i, st->lit, st->litlen) == 0)
					f = (const char *)base + i;
			if (!f)
				break;
			ms = (size_t)(f - (const char *)base);
			me = ms + st->litlen;
		}
		if (me == ms) { /* empty match: step one character */
			uint32_t cp;
			int k = utf8_len(base + ms, in.len - ms, &cp);
			pos = ms + (size_t)(k > 0 ? k : 1);
			continue;
		}
		if (st->behavior == SPLIT_ISOLATED) {
			/* the common case streams straight out: every part is a piece */
			if (sp_push(out, in.off + prev, ms - prev) || sp_push(out, in.off + ms, me - ms)) {
				rc = -1;
				goto out;
			}
		} else {
			if (ms > prev)
				PUSH(prev, ms, st->invert);
			PUSH(ms, me, !st->invert);
		}
		prev = pos = me;
	}
	if (st->behavior == SPLIT_ISOLATED) {
		if (sp_push(out, in.off + prev, in.len - prev))
			rc = -1;
		goto out;
	}
	if (prev < in.len)
		PUSH(prev, in.len, st->invert);
	/* behaviours, as tokenizers' NormalizedString::split */
	switch (st->behavior) {
	case SPLIT_ISOLATED:
		for (size_t i = 0; i < np; i++)
			if (sp_push(out, in.off + parts[i].s, parts[i].e - parts[i].s))
				rc = -1;
		break;
	case SPLIT_REMOVED:
		for (size_t i = 0; i < np; i++)
			if (!parts[i].m && sp_push(out, in.off + parts[i].s, parts[i].e - parts[i].s))
				rc = -1;
		break;
	case SPLIT_PREV: {
		size_t first = out->n;
		int prevm = 0;
		for (size_t i = 0; i < np; i++) {
			if (parts[i].m && !prevm && out->n > first)
				out->v[out->n - 1].len = in.off + parts[i].e - out->v[out->n - 1].off;
			else if (sp_push(out, in.off + parts[i].s, parts[i].e - parts[i].s))
				rc = -1;
			prevm = parts[i].m;
		}
		break;
	}
	case SPLIT_NEXT: {
		/* walk backwards, merging each match into the piece after it */
		size_t first = out->n;
		int prevm = 0;
		for (size_t k = np; k-- > 0;) {
			if (parts[k].m && !prevm && out->n > first) {
				span *l = &out->v[out->n - 1];
				l->len += (l->off - (in.off + parts[k].s));
				l->off = in.off + parts[k].s;
			} else if (sp_push(out, in.off + parts[k].s, parts[k].e - parts[k].s)) {
				rc = -1;
			}
			prevm = parts[k].m;
		}
		for (size_t a = first, b = out->n; a + 1 < b; a++, b--) {
			span x = out->v[a];
			out->v[a] = out->v[b - 1];
			out->v[b - 1] = x;
		}
		break;
	}
	case SPLIT_CONTIGUOUS: {
		size_t first = out->n;
		int prevm = -1;
		for (size_t i = 0; i < np; i++) {
			if (parts[i].m == prevm && out->n > first)
				out->v[out->n - 1].len = in.off + parts[i].e - out->v[out->n - 1].off;
			else if (sp_push(out, in.off + parts[i].s, parts[i].e - parts[i].s))
				rc = -1;
			prevm = parts[i].m;
		}
		break;
	}
	}
out:
#undef PUSH
	if (parts != stack)
		free(parts);
	return rc;
}

/* ---- BPE ---------------------------------------------------------------------------- */

typedef struct sym {
	int32_t id;
	uint32_t s, e;      /* bytes of the word */
	int32_t prev, next; /* -1 at the ends */
} sym;

typedef struct cand {
	float pri;          /* lower first */
	uint32_t pos;       /* left symbol; lower first on ties */
	int32_t left_id, right_id;
} cand;

typedef struct heap {
	cand *v;
	size_t n, cap;
} heap;

static int cand_less(const cand *a, const cand *b)
{
	return a->pri < b->pri || (a->pri == b->pri && a->pos < b->pos);
}

static int heap_push(heap *h, cand c)
{
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 64;
		cand *g = realloc(h->v, nc * sizeof *g);
		if (!g)
			return -1;
		h->v = g;
		h->cap = nc;
	}
	size_t i = h->n++;
	h->v[i] = c;
	while (i > 0 && cand_less(&h->v[i], &h->v[(i - 1) / 2])) {
		cand x = h->v[i];
		h->v[i] = h->v[(i - 1) / 2];
		h->v[(i - 1) / 2] = x;
		i = (i - 1) / 2;
	}
	return 0;
}

static cand heap_pop(heap *h)
{
	cand top = h->v[0];
	h->v[0] = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && cand_less(&h->v[l], &h->v[m]))
			m = l;
		if (r < h->n && cand_less(&h->v[r], &h->v[m]))
			m = r;
		if (m == i)
			break;
		cand x = h->v[i];
		h->v[i] = h->v[m];
		h->v[m] = x;
		i = m;
	}
	return top;
}

typedef struct bpe_ws {
	sym *s;
	size_t cap;
	heap h;
} bpe_ws;

/*
 * The merge of symbols a, b, if any: priority and merged id.  SentencePiece
 * looks only at the text, so pieces unknown on their own (id −2) may still
 * join into a token.
 */
static int pair_of(const qf_tok *t, const char *word, const sym *a, const sym *b, float *pri, int32_t *id)
{
	if (!t->spm) {
		if (a->id < 0 || b->id < 0)
			return 0;
		uint32_t r;
		if (!pmap_get(&t->merges, a->id, b->id, &r, id))
			return 0;
		*pri = (float)r;
		return 1;
	}
	/* SentencePiece: the concatenated text must be a token; its score decides */
	int32_t m = smap_get(&t->vocab, t->p, word + a->s, b->e - a->s);
	if (m < 0)
		return 0;
	*id = m;
	*pri = -t->p[m].score;
	return 1;
}

/* Byte-pair merges of one word (bytes word[0..n)), appended to o with offsets via w/base. */
static int bpe_word(qf_tok *t, bpe_ws *ws, const char *word, size_t n, const wstr *w, size_t base, outv *o)
{
	if (n > ws->cap) {
		size_t nc = ws->cap ? ws->cap : 64;
		while (nc < n)
			nc *= 2;
		sym *g = realloc(ws->s, nc * sizeof *g);
		if (!g)
			return -1;
		ws->s = g;
		ws->cap = nc;
	}
	/* initial symbols */
	size_t ns = 0;
	for (size_t i = 0; i < n;) {
		int k = 1;
		int32_t id;
		if (t->byte_level) {
			id = t->byte_id[(uint8_t)word[i]];
		} else {
			uint32_t cp;
			k = utf8_len((const unsigned char *)word + i, n - i, &cp);
			if (k <= 0)
				k = 1;
			id = smap_get(&t->vocab, t->p, word + i, (size_t)k);
		}
		if (id < 0 && t->spm) {
			id = -2; /* unresolved yet: SentencePiece falls back to bytes after merging */
		} else if (id < 0 && t->byte_fallback && !t->byte_level) {
			int all = 1;
			for (int j = 0; j < k; j++)
				all &= t->byte_id[(uint8_t)word[i + j]] >= 0;
			if (all) {
				for (int j = 0; j < k; j++)
					ws->s[ns++] = (sym){ t->byte_id[(uint8_t)word[i + j]], (uint32_t)(i + j), (uint32_t)(i + j + 1), 0, 0 };
				i += (size_t)k;
				continue;
			}
		}
		if (id == -1) {
			if (t->unk < 0) { /* no unk token: the character is dropped, as tokenizers does */
				i += (size_t)k;
				continue;
			}
			if (t->fuse_unk && ns && ws->s[ns - 1].id == t->unk && ws->s[ns - 1].e == i) {
				ws->s[ns - 1].e = (uint32_t)(i + (size_t)k);
				i += (size_t)k;
				continue;
			}
			id = t->unk;
		}
		ws->s[ns++] = (sym){ id, (uint32_t)i, (uint32_t)(i + (size_t)k), 0, 0 };
		i += (size_t)k;
	}
	for (size_t i = 0; i < ns; i++) {
		ws->s[i].prev = (int32_t)i - 1;
		ws->s[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
	}
	ws->h.n = 0;
	for (size_t i = 0; i + 1 < ns; i++) {
		float pri;
		int32_t id;
		if (pair_of(t, word, &ws->s[i], &ws->s[i + 1], &pri, &id) &&
		    heap_push(&ws->h, (cand){ pri, (uint32_t)i, ws->s[i].id, ws->s[i + 1].id }))
			return -1;
	}
	while (ws->h.n) {
		cand c = heap_pop(&ws->h);
		sym *a = &ws->s[c.pos];
		if (a->next < 0 || a->id != c.left_id)
			continue;
		sym *b = &ws->s[a->next];
		if (b->id != c.right_id)
			continue;
		float pri;
		int32_t id;
		if (!pair_of(t, word, a, b, &pri, &id) || pri != c.pri)
			continue;
		/* merge b into a */
		a->id = id;
		a->e = b->e;
		a->next = b->next;
		if (b->next >= 0)
			ws->s[b->next].prev = (int32_t)c.pos;
		b->id = -3; /* dead */
		if (a->prev >= 0) {
			sym *p = &ws->s[a->prev];
			if (pair_of(t, word, p, a, &pri, &id) &&
			    heap_push(&ws->h, (cand){ pri, (uint32_t)a->prev, p->id, a->id }))
				return -1;
		}
		if (a->next >= 0) {
			sym *nx = &ws->s[a->next];
			if (pair_of(t, word, a, nx, &pri, &id) &&
			    heap_push(&ws->h, (cand){ pri, c.pos, a->id, nx->id }))
				return -1;
		}
	}
	for (int32_t i = ns ? 0 : -1; i >= 0; i = ws->s[i].next) {
		sym *x = &ws->s[i];
		if (x->id == -2) { /* SentencePiece: unknown piece → its bytes */
			for (uint32_t j = x->s; j < x->e; j++) {
				int32_t bid = t->byte_id[(uint8_t)word[j]];
				if (bid < 0)
					bid = t->unk;
				if (bid >= 0 && out_push(o, bid, w->base + w->s[base + j], w->base + w->e[base + j]))
					return -1;
			}
			continue;
		}
		if (out_push(o, x->id, w->base + w->s[base + x->s], w->base + w->e[base + x->e - 1]))
			return -1;
	}
	return 0;
}

/* BPE with a per-word cache (words up to CACHE_MAX_WORD bytes). */
static int bpe_cached(qf_tok *t, bpe_ws *ws, const wstr *w, span sp, outv *o)
{
	const char *word = w->b + sp.off;
	if (!t->cache && sp.len < CACHE_MAX_WORD)
		t->cache = calloc(CACHE_SLOTS, sizeof *t->cache); /* on first use; without it, no caching */
	if (sp.len >= CACHE_MAX_WORD || !t->cache)
		return bpe_word(t, ws, word, sp.len, w, sp.off, o);
	cache_ent *c = &t->cache[hbytes(word, sp.len) & (CACHE_SLOTS - 1)];
	if (c->nids && c->len == sp.len && memcmp(c->word, word, sp.len) == 0) {
		uint32_t st = 0;
		for (int i = 0; i < c->nids; i++) {
			if (out_push(o, c->ids[i], w->base + w->s[sp.off + st], w->base + w->e[sp.off + c->ends[i] - 1]))
				return -1;
			st = c->ends[i];
		}
		return 0;
	}
	size_t before = o->n;
	if (bpe_word(t, ws, word, sp.len, w, sp.off, o))
		return -1;
	/* cache only when every token maps to whole bytes of the word in order */
	size_t k = o->n - before;
	if (k == 0 || k > CACHE_MAX_WORD)
		return 0;
	memcpy(c->word, word, sp.len);
	c->len = (uint8_t)sp.len;
	c->nids = 0;
	uint32_t pos = 0;
	for (size_t i = 0; i < k; i++) {
		/* recover each token's byte length from its piece string (byte-level: one char per byte) */
		const piece *pc = &t->p[o->v[before + i].id];
		uint32_t bytes = 0;
		if (t->byte_level) {
			for (uint32_t j = 0; j < pc->len; j++)
				bytes += ((uint8_t)pc->s[j] & 0xc0) != 0x80;
		} else {
			bytes = (pc->len == 6 && pc->s[0] == '<' && pc->s[1] == '0' && pc->s[2] == 'x') ? 1 : pc->len;
		}
		pos += bytes;
		c->ids[i] = o->v[before + i].id;
		c->ends[i] = (uint8_t)(pos > sp.len ? sp.len : pos);
	}
	if (pos != sp.len) /* unk or normalizer-dependent lengths: do not cache */
		return 0;
	c->nids = (uint8_t)k;
	return 0;
}

/* Normalizes raw text [s, s+n) at original offset off into w (which it owns afterwards). */
static int normalize(const qf_tok *t, const char *s, size_t n, uint64_t off, wstr *w)
{
	wstr a = { 0 }, b = { 0 };
	w->n = 0;
	if (!n)
		return 0;
	/* U+FFFD for invalid UTF-8; each byte remembers its character's span */
	if (ws_reserve(&a, n + n / 4 + 16))
		goto oom;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int k = (unsigned char)s[i] < 0x80 ? (cp = (unsigned char)s[i], 1)
						   : utf8_len((const unsigned char *)s + i, n - i, &cp);
		if (k == 1) {
			if (a.n + 1 > a.cap && ws_reserve(&a, 1))
				goto oom;
			a.b[a.n] = s[i];
			a.s[a.n] = (uint32_t)i;
			a.e[a.n] = (uint32_t)(i + 1);
			a.n++;
			i++;
		} else if (k > 0) {
			if (ws_put(&a, s + i, (size_t)k, (uint32_t)i, (uint32_t)(i + (size_t)k)))
				goto oom;
			i += (size_t)k;
		} else {
			if (ws_put(&a, "\xef\xbf\xbd", 3, (uint32_t)i, (uint32_t)(i + 1)))
				goto oom;
			i++;
		}
	}
	for (size_t k = 0; k < t->nnorm; k++) {
		const norm_step *st = &t->norm[k];
		b.n = 0;
		if (ws_reserve(&b, a.n + a.n / 2 + st->alen + 16))
			goto oom;
		if (st->prepend) {
			if (a.n && (ws_put(&b, st->a, st->alen, a.s[0], a.s[0]) || ws_copy(&b, &a, 0, a.n)))
				goto oom;
		} else {
			size_t run = 0; /* copy unchanged runs in one go */
			for (size_t i = 0; i < a.n;) {
				if (a.b[i] == st->a[0] && i + st->alen <= a.n && memcmp(a.b + i, st->a, st->alen) == 0) {
					if (ws_copy(&b, &a, run, i - run) || ws_put(&b, st->b, st->blen, a.s[i], a.e[i + st->alen - 1]))
						goto oom;
					i += st->alen;
					run = i;
				} else {
					i++;
				}
			}
			if (ws_copy(&b, &a, run, a.n - run))
				goto oom;
		}
		wstr x = a;
		a = b;
		b = x;
	}
	ws_free(w);
	a.base = off;
	*w = a;
	ws_free(&b);
	return 0;
oom:
	ws_free(&a);
	ws_free(&b);
	return -1;
}

static int is_ws_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Pre-tokenizes and BPE-encodes one stretch of text between added tokens. */
static int encode_stretch(qf_tok *t, bpe_ws *ws, const char *s, size_t n, uint64_t off, outv *o)
{
	wstr w = { 0 };
	spans cur = { 0 }, nxt = { 0 };
	int rc = -1;
	OnigRegion *reg = onig_region_new(); /* one for every search of this stretch */
	if (!reg)
		return -1;
	if (normalize(t, s, n, off, &w))
		goto out;
	if (!w.n) {
		rc = 0;
		goto out;
	}
	/* pieces are a few bytes each: size the lists once instead of growing them */
	size_t guess = w.n / 3 + 16;
	cur.v = malloc(guess * sizeof *cur.v);
	nxt.v = malloc(guess * sizeof *nxt.v);
	if (!cur.v || !nxt.v)
		goto out;
	cur.cap = nxt.cap = guess;
	if (sp_push(&cur, 0, w.n))
		goto out;
	for (size_t k = 0; k < t->npre; k++) {
		const pre_step *st = &t->pre[k];
		if (st->kind == PRE_BYTELEVEL && !st->add_prefix_space && !st->re)
			continue; /* only marks the symbols as bytes */
		nxt.n = 0;
		for (size_t i = 0; i < cur.n; i++) {
			span sp = cur.v[i];
			if (st->kind == PRE_SPLIT) {
				if (split_span(st, &w, sp, &nxt, reg))
					goto out;
			} else if (st->kind == PRE_BYTELEVEL) {
				if (st->add_prefix_space && w.b[sp.off] != ' ') {
					size_t at = w.n;
					if (ws_put(&w, " ", 1, w.s[sp.off], w.s[sp.off]) || ws_copy(&w, &w, sp.off, sp.len))
						goto out;
					sp = (span){ at, sp.len + 1 };
				}
				if (st->re) {
					pre_step rx = { .kind = PRE_SPLIT, .re = st->re, .behavior = SPLIT_ISOLATED };
					if (split_span(&rx, &w, sp, &nxt, reg))
						goto out;
				} else if (sp_push(&nxt, sp.off, sp.len)) {
					goto out;
				}
			} else if (st->kind == PRE_METASPACE) {
				/* spaces → ▁, a ▁ in front, then split before each ▁ */
				size_t at = w.n;
				if (st->add_prefix_space && (!st->prepend_first || i == 0) &&
				    !(sp.len >= 3 && memcmp(w.b + sp.off, METASPACE, 3) == 0) &&
				    ws_put(&w, METASPACE, 3, w.s[sp.off], w.s[sp.off]))
					goto out;
				for (size_t j = 0; j < sp.len; j++) {
					if (w.b[sp.off + j] == ' ') {
						if (ws_put(&w, METASPACE, 3, w.s[sp.off + j], w.e[sp.off + j]))
							goto out;
					} else if (ws_copy(&w, &w, sp.off + j, 1)) {
						goto out;
					}
				}
				span ns = { at, w.n - at };
				if (st->ms_split) {
					pre_step lit = { .kind = PRE_SPLIT, .lit = METASPACE, .litlen = 3, .behavior = SPLIT_NEXT };
					if (split_span(&lit, &w, ns, &nxt, reg))
						goto out;
				} else if (sp_push(&nxt, ns.off, ns.len)) {
					goto out;
				}
			} else { /* Digits */
				size_t a = 0;
				for (size_t j = 0; j <= sp.len; j++) {
					int d = j < sp.len && w.b[sp.off + j] >= '0' && w.b[sp.off + j] <= '9';
					int pd = j > 0 && w.b[sp.off + j - 1] >= '0' && w.b[sp.off + j - 1] <= '9';
					if (j == sp.len || (j > a && (d != pd || (d && st->individual)))) {
						if (sp_push(&nxt, sp.off + a, j - a))
							goto out;
						a = j;
					}
				}
			}
		}
		spans x = cur;
		cur = nxt;
		nxt = x;
	}
	if (t->ms_cut && t->npre == 0) {
		pre_step cut = { .kind = PRE_SPLIT, .lit = METASPACE, .litlen = 3, .behavior = SPLIT_NEXT };
		nxt.n = 0;
		for (size_t i = 0; i < cur.n; i++)
			if (split_span(&cut, &w, cur.v[i], &nxt, reg))
				goto out;
		spans x = cur;
		cur = nxt;
		nxt = x;
	}
	for (size_t i = 0; i < cur.n; i++)
		if (bpe_cached(t, ws, &w, cur.v[i], o))
			goto out;
	rc = 0;
out:
	onig_region_free(reg, 1);
	ws_free(&w);
	free(cur.v);
	free(nxt.v);
	return rc;
}

qf_status qf_tok_encode(qf_tok *t, const char *text, size_t len, int add_special, qf_tok_piece **out, size_t *n,
			qf_err *err)
{
	outv o = { 0 };
	bpe_ws ws = { 0 };
	if (len > 0xe0000000u) /* offsets inside a stretch are 32-bit */
		return qf_fail(err, QF_EUSAGE, "text of %zu bytes: at most 3.5 GiB can be tokenized at once", len);
	o.cap = len / 3 + 16;
	if (!(o.v = malloc(o.cap * sizeof *o.v)))
		goto oom;
	if (add_special && t->add_bos && out_push(&o, t->bos, 0, 0))
		goto oom;
	size_t start = 0, i = 0;
	while (i < len) {
		/* the longest added token starting here */
		const added *best = NULL;
		uint8_t fb = (uint8_t)text[i];
		for (uint32_t k = t->abeg[fb]; k < t->abeg[fb + 1] && !best; k++) {
			const added *a = &t->add[k];
			if (a->len <= len - i && memcmp(text + i, a->s, a->len) == 0)
				best = a; /* longest first within the bucket */
		}
		if (!best) {
			i++;
			continue;
		}
		size_t ts = i, te = i + best->len;
		size_t se = ts; /* the stretch before, minus what lstrip swallows */
		if (best->lstrip)
			while (se > start && is_ws_byte(text[se - 1]))
				se--;
		if (encode_stretch(t, &ws, text + start, se - start, start, &o) || out_push(&o, best->id, ts, te))
			goto oom;
		if (best->rstrip)
			while (te < len && is_ws_byte(text[te]))
				te++;
		start = i = te;
	}
	if (encode_stretch(t, &ws, text + start, len - start, start, &o))
		goto oom;
	if (add_special && t->add_eos && out_push(&o, t->eos, len, len))
		goto oom;
	free(ws.s);
	free(ws.h.v);
	*out = o.v;
	*n = o.n;
	return QF_OK;
oom:
	free(ws.s);
	free(ws.h.v);
	free(o.v);
	return qf_fail(err, QF_ENOMEM, "out of memory while tokenizing");
}

/* ---- decoding -------------------------------------------------------------------- */

typedef struct sbuf {
	char *p;
	size_t n, cap;
} sbuf;

static int sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->n + n + 1)
			nc *= 2;
		char *g = realloc(b->p, nc);
		if (!g)
			return -1;
		b->p = g;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
	return 0;
}

/* The byte a bytes_to_unicode code point stands for, or -1. */
static int cp_to_byte(uint32_t cp)
{
	if (cp < 256)
		return byte_to_cp((int)cp) == cp ? (int)cp : -1;
	if (cp >= 256 + 68) /* 68 bytes are remapped */
		return -1;
	int k = 0;
	for (int i = 0; i < 256; i++)
		if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174) && k++ == (int)(cp - 256))
			return i;
	return -1;
}

qf_status qf_tok_decode(const qf_tok *t, const int32_t *ids, size_t n, char **out, size_t *len, qf_err *err)
{
	/* a list of token strings, transformed by each decoder step in turn */
	sbuf *tok = calloc(n ? n : 1, sizeof *tok);
	size_t nt = n;
	sbuf res = { 0 };
	if (!tok)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < 0 || (size_t)ids[i] >= t->n) {
			for (size_t k = 0; k < i; k++)
				free(tok[k].p);
			free(tok);
			return qf_fail(err, QF_EFORMAT, "token id %d is outside the vocabulary (%zu)", ids[i], t->n);
		}
		if (sb_put(&tok[i], t->p[ids[i]].s, t->p[ids[i]].len))
			goto oom;
	}
	for (size_t k = 0; k < t->ndec; k++) {
		const dec_step *d = &t->dec[k];
		if (d->kind == DEC_FUSE || d->kind == DEC_BYTELEVEL || d->kind == DEC_BYTEFALLBACK) {
			/* these join tokens (byte sequences decode across token boundaries) */
			sbuf all = { 0 };
			for (size_t i = 0; i < nt; i++) {
				const char *s = tok[i].p ? tok[i].p : "";
				size_t sl = tok[i].n;
				if (d->kind == DEC_BYTELEVEL) {
					for (size_t j = 0; j < sl;) {
						uint32_t cp;
						int kk = utf8_len((const unsigned char *)s + j, sl - j, &cp);
						int b = kk > 0 ? cp_to_byte(cp) : -1;
						char c = (char)b;
						if (kk <= 0)
							kk = 1;
						if (b >= 0 ? sb_put(&all, &c, 1) : sb_put(&all, s + j, (size_t)kk))
							goto oom;
						j += (size_t)kk;
					}
				} else if (d->kind == DEC_BYTEFALLBACK && sl == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') {
					char c = (char)strtol(s + 3, NULL, 16);
					if (sb_put(&all, &c, 1))
						goto oom;
				} else if (sb_put(&all, s, sl)) {
					goto oom;
				}
			}
			/* invalid UTF-8 from bytes becomes U+FFFD */
			sbuf fixed = { 0 };
			for (size_t j = 0; j < all.n;) {
				uint32_t cp;
				int kk = utf8_len((const unsigned char *)all.p + j, all.n - j, &cp);
				if (kk > 0 ? sb_put(&fixed, all.p + j, (size_t)kk) : sb_put(&fixed, "\xef\xbf\xbd", 3)) {
					free(all.p);
					goto oom;
				}
				j += (size_t)(kk > 0 ? kk : 1);
			}
			free(all.p);
			for (size_t i = 0; i < nt; i++)
				free(tok[i].p);
			memset(tok, 0, nt * sizeof *tok);
			tok[0] = fixed;
			nt = 1;
			continue;
		}
		for (size_t i = 0; i < nt; i++) {
			sbuf nb = { 0 };
			const char *s = tok[i].p ? tok[i].p : "";
			size_t sl = tok[i].n;
			if (d->kind == DEC_REPLACE || d->kind == DEC_METASPACE) {
				const char *from = d->kind == DEC_REPLACE ? d->a : METASPACE;
				size_t fl = d->kind == DEC_REPLACE ? d->alen : 3;
				const char *to = d->kind == DEC_REPLACE ? d->b : " ";
				size_t tl = d->kind == DEC_REPLACE ? d->blen : 1;
				for (size_t j = 0; j < sl;) {
					if (j + fl <= sl && memcmp(s + j, from, fl) == 0) {
						if (sb_put(&nb, to, tl))
							goto oom;
						j += fl;
					} else {
						if (sb_put(&nb, s + j, 1))
							goto oom;
						j++;
					}
				}
				if (d->kind == DEC_METASPACE && i == 0 && nb.n && nb.p[0] == ' ') {
					memmove(nb.p, nb.p + 1, nb.n);
					nb.n--;
				}
			} else { /* Strip */
				size_t a = 0, e = sl;
				for (int c = 0; c < d->start && a + d->alen <= e && memcmp(s + a, d->a, d->alen) == 0; c++)
					a += d->alen;
				for (int c = 0; c < d->stop && e >= a + d->alen && memcmp(s + e - d->alen, d->a, d->alen) == 0; c++)
					e -= d->alen;
				if (sb_put(&nb, s + a, e - a))
					goto oom;
			}
			free(tok[i].p);
			tok[i] = nb;
		}
	}
	for (size_t i = 0; i < nt; i++)
		if (sb_put(&res, tok[i].p ? tok[i].p : "", tok[i].n))
			goto oom;
	if (!res.p && sb_put(&res, "", 0))
		goto oom;
	for (size_t i = 0; i < nt; i++)
		free(tok[i].p);
	free(tok);
	*out = res.p;
	*len = res.n;
	return QF_OK;
oom:
	for (size_t i = 0; i < nt; i++)
		free(tok[i].p);
	free(tok);
	free(res.p);
	return qf_fail(err, QF_ENOMEM, "out of memory while decoding");
}
