/*
 * tokenizer_cut.c — incremental encoding: where a text may be cut so that
 * encoding the two sides apart gives the ids of encoding it whole, whatever
 * text follows (the proof is in tokenizer.h, above qf_tok_safe_cut).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer_int.h"

typedef struct amatch {
	size_t s, e;
	int lstrip;
} amatch;

static int ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/*
 * The added-token matches of text[0..len) as qf_tok_encode finds them, up to
 * *guard: the first position where an added token could start and end past
 * len (its match, and so everything after it, is not settled yet).
 */
static amatch *added_matches(const qf_tok *t, const char *text, size_t len, size_t *nm, size_t *guard)
{
	size_t cap = 16, n = 0, i = 0;
	amatch *m = malloc(cap * sizeof *m);
	*guard = len;
	while (m && i < len) {
		const added *best = NULL;
		int open = 0;
		uint8_t fb = (uint8_t)text[i];
		for (uint32_t k = t->abeg[fb]; k < t->abeg[fb + 1]; k++) {
			const added *a = &t->add[k];
			if (a->len > len - i) {
				open |= memcmp(text + i, a->s, len - i) == 0; /* could still match, ending past len */
			} else if (!best && memcmp(text + i, a->s, a->len) == 0) {
				best = a; /* longest first within the bucket */
			}
		}
		if (open) {
			*guard = i;
			break;
		}
		if (!best) {
			i++;
			continue;
		}
		if (n == cap) {
			amatch *g = realloc(m, (cap *= 2) * sizeof *m);
			if (!g) {
				free(m);
				return NULL;
			}
			m = g;
		}
		m[n++] = (amatch){ i, i + best->len, best->lstrip };
		i += best->len;
		if (best->rstrip)
			while (i < len && tok_is_ws_byte(text[i]))
				i++;
	}
	*nm = n;
	return m;
}

size_t qf_tok_safe_cut(const qf_tok *t, const char *text, size_t len)
{
	size_t nm = 0, guard = 0;
	amatch *m = added_matches(t, text, len, &nm, &guard);
	if (!m)
		return 0; /* out of memory: no cut is the safe answer */
	/* inside stretches: only for the known byte-level pre-tokenizers (no Prepend, no prefix space) */
	int inner = t->byte_level && qf_tok_pre_name(t) != NULL;
	size_t best = 0, k = nm;
	for (size_t c = guard ? guard - 1 : 0; c > 0 && !best; c--) {
		while (k > 0 && m[k - 1].s > c + 1)
			k--; /* m[k-1]: the last match starting at or before c + 1 */
		if (k > 0 && m[k - 1].s == c && !m[k - 1].lstrip)
			best = c; /* (A) right before a settled added token */
		else if (inner && c + 1 < guard && (k == 0 || m[k - 1].e < c) && ascii_letter(text[c - 1]) && text[c] == ' ' &&
			 ascii_letter(text[c + 1]))
			best = c; /* (B) letter | space letter, inside one stretch */
	}
	free(m);
	return best;
}

/* ---- a stream of text pieces --------------------------------------------------------- */

struct qf_tok_stream {
	qf_tok *t;
	int add_special, started;
	char *buf;          /* text fed since the last cut */
	size_t n, cap;
	uint64_t base;      /* its offset in the whole text */
	size_t tried;       /* buffer length at the last search for a cut */
};

qf_status qf_tok_stream_new(qf_tok *t, int add_special, qf_tok_stream **out, qf_err *err)
{
	qf_tok_stream *s = calloc(1, sizeof *s);
	if (!s)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	s->t = t;
	s->add_special = add_special;
	*out = s;
	return QF_OK;
}

void qf_tok_stream_free(qf_tok_stream *s)
{
	if (!s)
		return;
	free(s->buf);
	free(s);
}

/* Encodes buf[0..c) (with the prefix specials first, if not yet) and drops it from the buffer. */
static qf_status emit(qf_tok_stream *s, size_t c, int last, qf_tok_piece **out, size_t *n, qf_err *err)
{
	qf_tok_piece *p = NULL;
	size_t np = 0;
	qf_status st = qf_tok_encode(s->t, s->buf, c, 0, &p, &np, err);
	if (st)
		return st;
	int npre = s->add_special && !s->started ? s->t->ntpl_pre : 0, nsuf = s->add_special && last ? s->t->ntpl_suf : 0;
	qf_tok_piece *o = malloc((np + (size_t)npre + (size_t)nsuf + 1) * sizeof *o);
	if (!o) {
		free(p);
		return qf_fail(err, QF_ENOMEM, "out of memory while tokenizing");
	}
	size_t k = 0;
	for (int i = 0; i < npre; i++)
		o[k++] = (qf_tok_piece){ s->t->tpl_pre[i], 0, 0 };
	for (size_t i = 0; i < np; i++)
		o[k++] = (qf_tok_piece){ p[i].id, p[i].start + s->base, p[i].end + s->base };
	for (int i = 0; i < nsuf; i++)
		o[k++] = (qf_tok_piece){ s->t->tpl_suf[i], s->base + c, s->base + c };
	free(p);
	s->started = 1;
	if (s->n > c) /* an empty text never allocated buf */
		memmove(s->buf, s->buf + c, s->n - c);
	s->n -= c;
	s->base += c;
	s->tried = 0;
	*out = o;
	*n = k;
	return QF_OK;
}

qf_status qf_tok_stream_feed(qf_tok_stream *s, const char *text, size_t len, qf_tok_piece **out, size_t *n, qf_err *err)
{
	*out = NULL;
	*n = 0;
	if (s->n + len > s->cap) {
		size_t nc = s->cap ? s->cap : 4096;
		while (nc < s->n + len)
			nc *= 2;
		char *g = realloc(s->buf, nc);
		if (!g)
			return qf_fail(err, QF_ENOMEM, "out of memory while tokenizing");
		s->buf = g;
		s->cap = nc;
	}
	memcpy(s->buf + s->n, text, len);
	s->n += len;
	/* look for a cut again only once the buffer has grown by half: linear time overall */
	if (s->n < 2 * s->tried + 64)
		return QF_OK;
	s->tried = s->n;
	size_t c = qf_tok_safe_cut(s->t, s->buf, s->n);
	return c ? emit(s, c, 0, out, n, err) : QF_OK;
}

qf_status qf_tok_stream_finish(qf_tok_stream *s, qf_tok_piece **out, size_t *n, qf_err *err)
{
	return emit(s, s->n, 1, out, n, err);
}
