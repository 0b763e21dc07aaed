/*
 * tokenizer.c — the tokenizer object: its hash maps, building blocks shared
 * by the loaders, and the encoder that matches added tokens and hands each
 * stretch between them to the pre-tokenizers and the model.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "formats/tokenizer_int.h"

/* ---- hash maps ------------------------------------------------------------------- */

uint64_t tok_hbytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

int tok_smap_init(smap *m, size_t n)
{
	uint64_t cap = 16;
	while (cap < (uint64_t)n * 2 + 16)
		cap <<= 1;
	m->slot = calloc(cap, sizeof *m->slot);
	m->mask = cap - 1;
	return m->slot ? 0 : -1;
}

int32_t tok_smap_get(const smap *m, const piece *ps, const char *s, size_t n)
{
	for (uint64_t h = tok_hbytes(s, n) & m->mask;; h = (h + 1) & m->mask) {
		uint32_t v = m->slot[h];
		if (!v)
			return -1;
		const piece *p = &ps[v - 1];
		if (p->len == n && memcmp(p->s, s, n) == 0)
			return (int32_t)(v - 1);
	}
}

/* Adds id unless its string is already present (the first id keeps it). */
void tok_smap_put(smap *m, const piece *ps, int32_t id)
{
	const piece *p = &ps[id];
	for (uint64_t h = tok_hbytes(p->s, p->len) & m->mask;; h = (h + 1) & m->mask) {
		uint32_t v = m->slot[h];
		if (!v) {
			m->slot[h] = (uint32_t)id + 1;
			return;
		}
		if (ps[v - 1].len == p->len && memcmp(ps[v - 1].s, p->s, p->len) == 0)
			return;
	}
}

int tok_pmap_init(pmap *m, size_t n)
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

int tok_pmap_get(const pmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id)
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

void tok_pmap_put(pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id)
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

size_t qf_tok_vocab_size(const qf_tok *t) { return t->n; }
int32_t qf_tok_find(const qf_tok *t, const char *s, size_t len) { return tok_smap_get(&t->vocab, t->p, s, len); }

int qf_tok_specials(const qf_tok *t, int after, const int32_t **ids)
{
	*ids = after ? t->tpl_suf : t->tpl_pre;
	return after ? t->ntpl_suf : t->ntpl_pre;
}
const char *qf_tok_piece_str(const qf_tok *t, int32_t id) { return id >= 0 && (size_t)id < t->n ? t->p[id].s : NULL; }
int32_t qf_tok_bos(const qf_tok *t) { return t->bos; }
int32_t qf_tok_eos(const qf_tok *t) { return t->eos; }
int qf_tok_adds_bos(const qf_tok *t) { return t->add_bos; }
const char *qf_tok_kind(const qf_tok *t) { return t->kind; }

static void pre_step_free(const pre_step *st)
{
	if (st->re)
		onig_free(st->re);
	free(st->lit);
	free(st->pat);
}

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
	for (size_t i = 0; i < t->npre; i++)
		pre_step_free(&t->pre[i]);
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
uint32_t tok_byte_to_cp(int b)
{
	if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
		return (uint32_t)b;
	int k = 0;
	for (int i = 0; i < b; i++)
		if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174))
			k++;
	return 256u + (uint32_t)k;
}

int tok_utf8_put(uint32_t cp, char *o)
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
int tok_utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
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

qf_status tok_alloc(qf_tok **out, size_t n, qf_err *err)
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

qf_status tok_finish_vocab(qf_tok *t, const char *label, qf_err *err)
{
	if (tok_smap_init(&t->vocab, t->n))
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t i = 0; i < t->n; i++) {
		if (!t->p[i].s)
			return qf_fail(err, QF_EFORMAT, "%s: vocabulary has no token with id %zu", label, i);
		tok_smap_put(&t->vocab, t->p, (int32_t)i);
	}
	for (int b = 0; b < 256; b++) {
		char s[8];
		int k;
		if (t->byte_level)
			k = tok_utf8_put(tok_byte_to_cp(b), s);
		else
			k = snprintf(s, sizeof s, "<0x%02X>", b);
		t->byte_id[b] = tok_smap_get(&t->vocab, t->p, s, (size_t)k);
	}
	/*
	 * Without a pre-tokenizer, SentencePiece-style models see a whole stretch
	 * as one word.  When no token holds ▁ anywhere but at its start (and ▁
	 * is a token), no merge can join symbols across a ▁, so cutting the
	 * word before each ▁ changes nothing — and lets the word cache work.
	 */
	t->ms_cut = !t->byte_level && tok_smap_get(&t->vocab, t->p, METASPACE, 3) >= 0;
	for (size_t i = 0; t->ms_cut && i < t->n; i++)
		for (uint32_t j = 1; j + 3 <= t->p[i].len; j++)
			if (memcmp(t->p[i].s + j, METASPACE, 3) == 0) {
				t->ms_cut = 0;
				break;
			}
	return QF_OK;
}

qf_status tok_add_merge(qf_tok *t, const char *a, size_t al, const char *b, size_t bl, uint32_t rank,
			   const char *label, qf_err *err)
{
	int32_t ia = tok_smap_get(&t->vocab, t->p, a, al), ib = tok_smap_get(&t->vocab, t->p, b, bl);
	char buf[1024];
	if (al + bl > sizeof buf)
		return qf_fail(err, QF_EFORMAT, "%s: merge %u is too long", label, rank);
	memcpy(buf, a, al);
	memcpy(buf + al, b, bl);
	int32_t im = tok_smap_get(&t->vocab, t->p, buf, al + bl);
	if (ia < 0 || ib < 0 || im < 0)
		return qf_fail(err, QF_EFORMAT, "%s: merge %u ('%.*s' '%.*s') names a token not in the vocabulary", label,
			       rank, (int)al, a, (int)bl, b);
	tok_pmap_put(&t->merges, ia, ib, rank, im);
	return QF_OK;
}

qf_status tok_compile_regex(const char *pat, size_t len, OnigRegex *re, const char *label, qf_err *err)
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

char *tok_dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

/* Appends st, which t owns from now on (freed here on failure). */
qf_status tok_push_pre(qf_tok *t, const pre_step *st, qf_err *err)
{
	pre_step *g = realloc(t->pre, (t->npre + 1) * sizeof *g);
	if (!g) {
		pre_step_free(st);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	t->pre = g;
	t->pre[t->npre++] = *st;
	return QF_OK;
}

qf_status tok_add_regex_split(qf_tok *t, const char *pat, const char *label, qf_err *err)
{
	pre_step st = { .kind = PRE_SPLIT, .behavior = SPLIT_ISOLATED };
	qf_status s = tok_compile_regex(pat, strlen(pat), &st.re, label, err);
	if (s)
		return s;
	if (!(st.pat = strdup(pat))) {
		onig_free(st.re);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	return tok_push_pre(t, &st, err);
}

qf_status tok_add_added(qf_tok *t, const char *s, int32_t id, int lstrip, int rstrip, qf_err *err)
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
void tok_index_added(qf_tok *t)
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

int tok_out_push(outv *o, int32_t id, uint64_t s, uint64_t e)
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

int tok_is_ws_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

qf_status qf_tok_encode(qf_tok *t, const char *text, size_t len, int add_special, qf_tok_piece **out, size_t *n,
			qf_err *err)
{
	outv o = { 0 };
	bpe_ws ws = { 0 };
	int rc = -1;
	if (len > 0xe0000000u) /* offsets inside a stretch are 32-bit */
		return qf_fail(err, QF_EUSAGE, "text of %zu bytes: at most 3.5 GiB can be tokenized at once", len);
	o.cap = len / 3 + 16;
	if (!(o.v = malloc(o.cap * sizeof *o.v)))
		goto fail;
	for (int k = 0; add_special && k < t->ntpl_pre; k++) /* the post-processor's, before the text */
		if (tok_out_push(&o, t->tpl_pre[k], 0, 0))
			goto fail;
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
			while (se > start && tok_is_ws_byte(text[se - 1]))
				se--;
		if ((rc = tok_encode_stretch(t, &ws, text + start, se - start, start, &o)) ||
		    (rc = tok_out_push(&o, best->id, ts, te)))
			goto fail;
		if (best->rstrip)
			while (te < len && tok_is_ws_byte(text[te]))
				te++;
		start = i = te;
	}
	if ((rc = tok_encode_stretch(t, &ws, text + start, len - start, start, &o)))
		goto fail;
	rc = -1;
	for (int k = 0; add_special && k < t->ntpl_suf; k++) /* and after it */
		if (tok_out_push(&o, t->tpl_suf[k], len, len))
			goto fail;
	free(ws.s);
	free(ws.h.v);
	free(ws.mapped);
	*out = o.v;
	*n = o.n;
	return QF_OK;
fail:
	free(ws.s);
	free(ws.h.v);
	free(ws.mapped);
	free(o.v);
	if (rc < -1) { /* Oniguruma's error (a retry or stack limit), not "no match" */
		UChar m[ONIG_MAX_ERROR_MESSAGE_LEN];
		onig_error_code_to_str(m, rc);
		return qf_fail(err, QF_EFORMAT, "pre-tokenizer regex search failed: %s", (const char *)m);
	}
	return qf_fail(err, QF_ENOMEM, "out of memory while tokenizing");
}
