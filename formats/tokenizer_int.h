/*
 * tokenizer_int.h — what the tokenizer's files share (not a public API).
 *
 *   tokenizer.c       the object, hash maps, building blocks, the encoder
 *   tokenizer_json.c  tokenizer.json loading
 *   tokenizer_gguf.c  tokenizer.ggml.* loading
 *   tokenizer_post.c  post-processors (BOS/EOS)
 *   tokenizer_pre.c   normalizers and pre-tokenizers
 *   tokenizer_bpe.c   BPE / SentencePiece merges
 *   tokenizer_dec.c   decoders
 *   tokenizer_cut.c   safe cuts and streams (incremental encoding)
 */
#ifndef QF_TOKENIZER_INT_H
#define QF_TOKENIZER_INT_H

#include <cjson/cJSON.h>
#include <oniguruma.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/tokenizer.h"

#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
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

/* (left id, right id) → (rank, merged id) */
typedef struct pmap {
	uint64_t *key; /* (a << 32 | b) + 1, 0 = empty */
	uint32_t *rank;
	int32_t *id;
	uint64_t mask;
} pmap;

enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_PREV, SPLIT_NEXT, SPLIT_CONTIGUOUS };
enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE, PRE_DIGITS };
enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
enum { NORM_REPLACE, NORM_PREPEND, NORM_NFC };

typedef struct norm_step {
	int kind;               /* NORM_PREPEND a; NORM_REPLACE a by b; NORM_NFC */
	char *a, *b;
	size_t alen, blen;
} norm_step;

typedef struct pre_step {
	int kind;
	OnigRegex re;           /* Split with a regex */
	char *pat;              /* its pattern (names it in messages and in the known-regex table) */
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

#define TOK_TPL_MAX 8

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
	int ignore_merges;      /* a word that is a token is that token, unmerged */
	int32_t bos, eos;
	int add_bos, add_eos;   /* the post-processor adds tokens before / after the text */
	int32_t tpl_pre[TOK_TPL_MAX], tpl_suf[TOK_TPL_MAX]; /* what it adds */
	int ntpl_pre, ntpl_suf;
	cache_ent *cache;
	const char *kind;
	uint32_t abeg[257];     /* added tokens sorted by first byte: bucket [abeg[b], abeg[b+1]) */
	int ms_cut;             /* no token has ▁ past its start: words may be cut before each ▁ */
};

/* A working string: bytes plus, per byte, the original [start, end) it came from. */
typedef struct wstr {
	char *b;
	uint32_t *s, *e;       /* offsets from the stretch's start (base) */
	uint64_t base;
	size_t n, cap;
} wstr;

/* Pieces of the pre-tokenized stretch: ranges of one wstr. */
typedef struct span {
	size_t off, len;
} span;

typedef struct spans {
	span *v;
	size_t n, cap;
} spans;

/* Output list of pieces. */
typedef struct outv {
	qf_tok_piece *v;
	size_t n, cap;
} outv;

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

typedef struct bpe_ws {
	sym *s;
	size_t cap;
	heap h;
	char *mapped;           /* ignore_merges: a byte-level word as its token string */
	size_t mcap;
} bpe_ws;

/* hash maps */
uint64_t tok_hbytes(const void *p, size_t n);
int tok_smap_init(smap *m, size_t n);
int32_t tok_smap_get(const smap *m, const piece *ps, const char *s, size_t n);
void tok_smap_put(smap *m, const piece *ps, int32_t id);
int tok_pmap_init(pmap *m, size_t n);
int tok_pmap_get(const pmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id);
void tok_pmap_put(pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id);

/* UTF-8 and GPT-2's bytes_to_unicode */
uint32_t tok_byte_to_cp(int b);
int tok_utf8_put(uint32_t cp, char *o);
int tok_utf8_len(const unsigned char *s, size_t n, uint32_t *cp);
char *tok_dupn(const char *s, size_t n);

/* building (tokenizer.c) */
qf_status tok_alloc(qf_tok **out, size_t n, qf_err *err);
qf_status tok_finish_vocab(qf_tok *t, const char *label, qf_err *err);
qf_status tok_add_merge(qf_tok *t, const char *a, size_t al, const char *b, size_t bl, uint32_t rank,
			const char *label, qf_err *err);
qf_status tok_compile_regex(const char *pat, size_t len, OnigRegex *re, const char *label, qf_err *err);
qf_status tok_push_pre(qf_tok *t, const pre_step *st, qf_err *err);
qf_status tok_add_regex_split(qf_tok *t, const char *pat, const char *label, qf_err *err);
qf_status tok_add_added(qf_tok *t, const char *s, int32_t id, int lstrip, int rstrip, qf_err *err);
void tok_index_added(qf_tok *t);
int tok_out_push(outv *o, int32_t id, uint64_t s, uint64_t e);
int tok_is_ws_byte(char c);

/* tokenizer.json helpers (tokenizer_json.c) */
const char *tok_jstr(const cJSON *o, const char *k);
int tok_jbool(const cJSON *o, const char *k, int def);
typedef qf_status (*visit_fn)(qf_tok *t, const cJSON *node, const char *label, qf_err *err);
qf_status tok_walk(qf_tok *t, const cJSON *node, const char *listkey, visit_fn visit, const char *label, qf_err *err);

/* known pre-tokenizers (tokenizer_gguf.c) */
typedef struct tok_pre_known {
	const char *name;       /* tokenizer.ggml.pre */
	const char *const *rx;  /* Split regexes (Isolated), NULL-terminated, then ByteLevel */
	int bl_regex;           /* the ByteLevel step runs GPT-2's regex (use_regex) */
	int ignore_merges, nfc; /* the model's ignore_merges; an NFC normalizer */
	int match_only;         /* names a tokenizer, never read back */
} tok_pre_known;
const tok_pre_known *tok_pre_lookup(const char *name);
const char *tok_pre_names(void);

/* post-processors (tokenizer_post.c): BOS/EOS from the config and the post-processor */
qf_status tok_post_from_json(qf_tok *t, const cJSON *root, const cJSON *cfg, const char *label, qf_err *err);

/* normalizers and pre-tokenizers (tokenizer_pre.c) */
int tok_ws_reserve(wstr *w, size_t n);
int tok_ws_put(wstr *w, const char *b, size_t n, uint32_t s, uint32_t e);
int tok_ws_copy(wstr *w, const wstr *from, size_t off, size_t n);
void tok_ws_free(wstr *w);
int tok_sp_push(spans *s, size_t off, size_t len);
int tok_split_span(const pre_step *st, const wstr *w, span in, spans *out, OnigRegion *reg);
int tok_normalize(const qf_tok *t, const char *s, size_t n, uint64_t off, wstr *w);
/* Pre-tokenizes and BPE-encodes one stretch of text between added tokens. */
int tok_encode_stretch(qf_tok *t, bpe_ws *ws, const char *s, size_t n, uint64_t off, outv *o);

/* the model (tokenizer_bpe.c) */
int tok_bpe_cached(qf_tok *t, bpe_ws *ws, const wstr *w, span sp, outv *o);

#endif
