/*
 * tokenizer_dec.c — decoders: ids back to text (ByteLevel, ByteFallback,
 * Fuse, Replace, Strip, Metaspace).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer_int.h"

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
		return tok_byte_to_cp((int)cp) == cp ? (int)cp : -1;
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
						int kk = tok_utf8_len((const unsigned char *)s + j, sl - j, &cp);
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
				int kk = tok_utf8_len((const unsigned char *)all.p + j, all.n - j, &cp);
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
