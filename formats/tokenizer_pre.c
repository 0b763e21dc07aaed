/*
 * tokenizer_pre.c — normalizers and pre-tokenizers: a stretch of text
 * becomes normalized bytes (each remembering its original span) cut into
 * pieces for the model.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "formats/tokenizer_int.h"

int tok_ws_reserve(wstr *w, size_t n)
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

int tok_ws_put(wstr *w, const char *b, size_t n, uint32_t s, uint32_t e)
{
	if (tok_ws_reserve(w, n))
		return -1;
	memcpy(w->b + w->n, b, n);
	for (size_t i = 0; i < n; i++) {
		w->s[w->n + i] = s;
		w->e[w->n + i] = e;
	}
	w->n += n;
	return 0;
}

int tok_ws_copy(wstr *w, const wstr *from, size_t off, size_t n)
{
	if (tok_ws_reserve(w, n))
		return -1;
	memcpy(w->b + w->n, from->b + off, n);
	memcpy(w->s + w->n, from->s + off, n * sizeof *w->s);
	memcpy(w->e + w->n, from->e + off, n * sizeof *w->e);
	w->n += n;
	return 0;
}

void tok_ws_free(wstr *w)
{
	free(w->b);
	free(w->s);
	free(w->e);
	memset(w, 0, sizeof *w);
}

int tok_sp_push(spans *s, size_t off, size_t len)
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

/* Splits a span by a pattern with tokenizers' behaviours. */
int tok_split_span(const pre_step *st, const wstr *w, span in, spans *out, OnigRegion *reg)
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
			if (r == ONIG_MISMATCH)
				break;
			if (r < 0) { /* an error, such as the retry limit: not "no match" */
				rc = r;
				goto out;
			}
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
			int k = tok_utf8_len(base + ms, in.len - ms, &cp);
			pos = ms + (size_t)(k > 0 ? k : 1);
			continue;
		}
		if (st->behavior == SPLIT_ISOLATED) {
			/* the common case streams straight out: every part is a piece */
			if (tok_sp_push(out, in.off + prev, ms - prev) || tok_sp_push(out, in.off + ms, me - ms)) {
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
		if (tok_sp_push(out, in.off + prev, in.len - prev))
			rc = -1;
		goto out;
	}
	if (prev < in.len)
		PUSH(prev, in.len, st->invert);
	/* behaviours, as tokenizers' NormalizedString::split */
	switch (st->behavior) {
	case SPLIT_ISOLATED:
		for (size_t i = 0; i < np; i++)
			if (tok_sp_push(out, in.off + parts[i].s, parts[i].e - parts[i].s))
				rc = -1;
		break;
	case SPLIT_REMOVED:
		for (size_t i = 0; i < np; i++)
			if (!parts[i].m && tok_sp_push(out, in.off + parts[i].s, parts[i].e - parts[i].s))
				rc = -1;
		break;
	case SPLIT_PREV: {
		size_t first = out->n;
		int prevm = 0;
		for (size_t i = 0; i < np; i++) {
			if (parts[i].m && !prevm && out->n > first)
				out->v[out->n - 1].len = in.off + parts[i].e - out->v[out->n - 1].off;
			else if (tok_sp_push(out, in.off + parts[i].s, parts[i].e - parts[i].s))
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
			} else if (tok_sp_push(out, in.off + parts[k].s, parts[k].e - parts[k].s)) {
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
			else if (tok_sp_push(out, in.off + parts[i].s, parts[i].e - parts[i].s))
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

/*
 * A cut before cp never changes NFC: cp is a starter that composes with
 * nothing before it and reorders with nothing (Latin/Greek/Cyrillic below
 * U+0300, CJK ideographs, precomposed Hangul).
 */
static int nfc_boundary(uint32_t cp)
{
	return cp < 0x300 || (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xac00 && cp <= 0xd7a3);
}

/*
 * NFC (utf8proc) of a into b, one segment between such boundaries at a
 * time; a segment's output bytes all map to its original span.  Segments
 * of one character below U+0300 are already NFC and are copied in runs.
 */
static int nfc(const wstr *a, wstr *b)
{
	size_t run = 0;
	for (size_t i = 0; i < a->n;) {
		uint32_t cp;
		int k = tok_utf8_len((const unsigned char *)a->b + i, a->n - i, &cp);
		size_t j = i + (size_t)(k > 0 ? k : 1);
		if (k <= 0 || cp < 0x300) {
			uint32_t c2;
			int k2 = j < a->n ? tok_utf8_len((const unsigned char *)a->b + j, a->n - j, &c2) : 0;
			if (k <= 0 || j == a->n || k2 <= 0 || nfc_boundary(c2)) {
				i = j; /* stays in the run */
				continue;
			}
		}
		while (j < a->n) {
			int kk = tok_utf8_len((const unsigned char *)a->b + j, a->n - j, &cp);
			if (kk <= 0 || nfc_boundary(cp))
				break;
			j += (size_t)kk;
		}
		utf8proc_uint8_t *d = NULL;
		utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)a->b + i, (utf8proc_ssize_t)(j - i), &d,
						  (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
		if (r < 0 || tok_ws_copy(b, a, run, i - run) || tok_ws_put(b, (const char *)d, (size_t)r, a->s[i], a->e[j - 1])) {
			free(d);
			return -1;
		}
		free(d);
		run = i = j;
	}
	return tok_ws_copy(b, a, run, a->n - run);
}

/* Normalizes raw text [s, s+n) at original offset off into w (which it owns afterwards). */
int tok_normalize(const qf_tok *t, const char *s, size_t n, uint64_t off, wstr *w)
{
	wstr a = { 0 }, b = { 0 };
	w->n = 0;
	if (!n)
		return 0;
	/* U+FFFD for invalid UTF-8; each byte remembers its character's span */
	if (tok_ws_reserve(&a, n + n / 4 + 16))
		goto oom;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int k = (unsigned char)s[i] < 0x80 ? (cp = (unsigned char)s[i], 1)
						   : tok_utf8_len((const unsigned char *)s + i, n - i, &cp);
		if (k == 1) {
			if (a.n + 1 > a.cap && tok_ws_reserve(&a, 1))
				goto oom;
			a.b[a.n] = s[i];
			a.s[a.n] = (uint32_t)i;
			a.e[a.n] = (uint32_t)(i + 1);
			a.n++;
			i++;
		} else if (k > 0) {
			if (tok_ws_put(&a, s + i, (size_t)k, (uint32_t)i, (uint32_t)(i + (size_t)k)))
				goto oom;
			i += (size_t)k;
		} else {
			if (tok_ws_put(&a, "\xef\xbf\xbd", 3, (uint32_t)i, (uint32_t)(i + 1)))
				goto oom;
			i++;
		}
	}
	for (size_t k = 0; k < t->nnorm; k++) {
		const norm_step *st = &t->norm[k];
		b.n = 0;
		if (tok_ws_reserve(&b, a.n + a.n / 2 + st->alen + 16))
			goto oom;
		if (st->kind == NORM_NFC) {
			if (nfc(&a, &b))
				goto oom;
		} else if (st->kind == NORM_PREPEND) {
			if (a.n && (tok_ws_put(&b, st->a, st->alen, a.s[0], a.s[0]) || tok_ws_copy(&b, &a, 0, a.n)))
				goto oom;
		} else {
			size_t run = 0; /* copy unchanged runs in one go */
			for (size_t i = 0; i < a.n;) {
				if (a.b[i] == st->a[0] && i + st->alen <= a.n && memcmp(a.b + i, st->a, st->alen) == 0) {
					if (tok_ws_copy(&b, &a, run, i - run) || tok_ws_put(&b, st->b, st->blen, a.s[i], a.e[i + st->alen - 1]))
						goto oom;
					i += st->alen;
					run = i;
				} else {
					i++;
				}
			}
			if (tok_ws_copy(&b, &a, run, a.n - run))
				goto oom;
		}
		wstr x = a;
		a = b;
		b = x;
	}
	tok_ws_free(w);
	a.base = off;
	*w = a;
	tok_ws_free(&b);
	return 0;
oom:
	tok_ws_free(&a);
	tok_ws_free(&b);
	return -1;
}

/* Pre-tokenizes and BPE-encodes one stretch of text between added tokens. */
int tok_encode_stretch(qf_tok *t, bpe_ws *ws, const char *s, size_t n, uint64_t off, outv *o)
{
	/* a failed split returns -1 (memory) or Oniguruma's error code */
#define SPLIT_OR_FAIL(st, w, sp, dst)                                       \
	do {                                                                \
		int e_ = tok_split_span((st), (w), (sp), (dst), reg);        \
		if (e_) {                                                   \
			rc = e_ < -1 ? e_ : -1;                             \
			goto out;                                           \
		}                                                           \
	} while (0)
	wstr w = { 0 };
	spans cur = { 0 }, nxt = { 0 };
	int rc = -1;
	OnigRegion *reg = onig_region_new(); /* one for every search of this stretch */
	if (!reg)
		return -1;
	if (tok_normalize(t, s, n, off, &w))
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
	if (tok_sp_push(&cur, 0, w.n))
		goto out;
	for (size_t k = 0; k < t->npre; k++) {
		const pre_step *st = &t->pre[k];
		if (st->kind == PRE_BYTELEVEL && !st->add_prefix_space && !st->re)
			continue; /* only marks the symbols as bytes */
		nxt.n = 0;
		for (size_t i = 0; i < cur.n; i++) {
			span sp = cur.v[i];
			if (st->kind == PRE_SPLIT) {
				SPLIT_OR_FAIL(st, &w, sp, &nxt);
			} else if (st->kind == PRE_BYTELEVEL) {
				if (st->add_prefix_space && w.b[sp.off] != ' ') {
					size_t at = w.n;
					if (tok_ws_put(&w, " ", 1, w.s[sp.off], w.s[sp.off]) || tok_ws_copy(&w, &w, sp.off, sp.len))
						goto out;
					sp = (span){ at, sp.len + 1 };
				}
				if (st->re) {
					pre_step rx = { .kind = PRE_SPLIT, .re = st->re, .behavior = SPLIT_ISOLATED };
					SPLIT_OR_FAIL(&rx, &w, sp, &nxt);
				} else if (tok_sp_push(&nxt, sp.off, sp.len)) {
					goto out;
				}
			} else if (st->kind == PRE_METASPACE) {
				/* spaces → ▁, a ▁ in front, then split before each ▁ */
				size_t at = w.n;
				if (st->add_prefix_space && (!st->prepend_first || i == 0) &&
				    !(sp.len >= 3 && memcmp(w.b + sp.off, METASPACE, 3) == 0) &&
				    tok_ws_put(&w, METASPACE, 3, w.s[sp.off], w.s[sp.off]))
					goto out;
				for (size_t j = 0; j < sp.len; j++) {
					if (w.b[sp.off + j] == ' ') {
						if (tok_ws_put(&w, METASPACE, 3, w.s[sp.off + j], w.e[sp.off + j]))
							goto out;
					} else if (tok_ws_copy(&w, &w, sp.off + j, 1)) {
						goto out;
					}
				}
				span ns = { at, w.n - at };
				if (st->ms_split) {
					pre_step lit = { .kind = PRE_SPLIT, .lit = METASPACE, .litlen = 3, .behavior = SPLIT_NEXT };
					SPLIT_OR_FAIL(&lit, &w, ns, &nxt);
				} else if (tok_sp_push(&nxt, ns.off, ns.len)) {
					goto out;
				}
			} else { /* Digits */
				size_t a = 0;
				for (size_t j = 0; j <= sp.len; j++) {
					int d = j < sp.len && w.b[sp.off + j] >= '0' && w.b[sp.off + j] <= '9';
					int pd = j > 0 && w.b[sp.off + j - 1] >= '0' && w.b[sp.off + j - 1] <= '9';
					if (j == sp.len || (j > a && (d != pd || (d && st->individual)))) {
						if (tok_sp_push(&nxt, sp.off + a, j - a))
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
			SPLIT_OR_FAIL(&cut, &w, cur.v[i], &nxt);
		spans x = cur;
		cur = nxt;
		nxt = x;
	}
	for (size_t i = 0; i < cur.n; i++)
		if (tok_bpe_cached(t, ws, &w, cur.v[i], o))
			goto out;
	rc = 0;
#undef SPLIT_OR_FAIL
out:
	onig_region_free(reg, 1);
	tok_ws_free(&w);
	free(cur.v);
	free(nxt.v);
	return rc;
}
