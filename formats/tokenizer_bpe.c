/*
 * tokenizer_bpe.c — the model: byte-pair merges of one piece (ranked merges,
 * or SentencePiece scores), byte fallback, unk, and a per-word cache.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer_int.h"

/* ---- BPE ---------------------------------------------------------------------------- */

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
		if (!tok_pmap_get(&t->merges, a->id, b->id, &r, id))
			return 0;
		*pri = (float)r;
		return 1;
	}
	/* SentencePiece: the concatenated text must be a token; its score decides */
	int32_t m = tok_smap_get(&t->vocab, t->p, word + a->s, b->e - a->s);
	if (m < 0)
		return 0;
	*id = m;
	*pri = -t->p[m].score;
	return 1;
}

/* The token that is the whole word (byte-level: its bytes as mapped chars), -1 if none, -2 out of memory. */
static int32_t whole_word(const qf_tok *t, bpe_ws *ws, const char *word, size_t n)
{
	if (!t->byte_level)
		return tok_smap_get(&t->vocab, t->p, word, n);
	if (n * 2 > ws->mcap) { /* bytes_to_unicode chars are at most 2 bytes */
		char *g = realloc(ws->mapped, n * 2);
		if (!g)
			return -2;
		ws->mapped = g;
		ws->mcap = n * 2;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += (size_t)tok_utf8_put(tok_byte_to_cp((uint8_t)word[i]), ws->mapped + k);
	return tok_smap_get(&t->vocab, t->p, ws->mapped, k);
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
	if (t->ignore_merges && n) { /* the whole word, if it is a token */
		int32_t id = whole_word(t, ws, word, n);
		if (id >= 0)
			return tok_out_push(o, id, w->base + w->s[base], w->base + w->e[base + n - 1]);
		if (id == -2)
			return -1;
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
			k = tok_utf8_len((const unsigned char *)word + i, n - i, &cp);
			if (k <= 0)
				k = 1;
			id = tok_smap_get(&t->vocab, t->p, word + i, (size_t)k);
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
				if (bid >= 0 && tok_out_push(o, bid, w->base + w->s[base + j], w->base + w->e[base + j]))
					return -1;
			}
			continue;
		}
		if (tok_out_push(o, x->id, w->base + w->s[base + x->s], w->base + w->e[base + x->e - 1]))
			return -1;
	}
	return 0;
}

/* BPE with a per-word cache (words up to CACHE_MAX_WORD bytes). */
int tok_bpe_cached(qf_tok *t, bpe_ws *ws, const wstr *w, span sp, outv *o)
{
	const char *word = w->b + sp.off;
	if (!t->cache && sp.len < CACHE_MAX_WORD)
		t->cache = calloc(CACHE_SLOTS, sizeof *t->cache); /* on first use; without it, no caching */
	if (sp.len >= CACHE_MAX_WORD || !t->cache)
		return bpe_word(t, ws, word, sp.len, w, sp.off, o);
	cache_ent *c = &t->cache[tok_hbytes(word, sp.len) & (CACHE_SLOTS - 1)];
	if (c->nids && c->len == sp.len && memcmp(c->word, word, sp.len) == 0) {
		uint32_t st = 0;
		for (int i = 0; i < c->nids; i++) {
			if (tok_out_push(o, c->ids[i], w->base + w->s[sp.off + st], w->base + w->e[sp.off + c->ends[i] - 1]))
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
