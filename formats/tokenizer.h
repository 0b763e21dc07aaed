/*
 * tokenizer.h — Hugging Face tokenizer.json (and GGUF tokenizer.ggml.*)
 * tokenizers: byte-level BPE and SentencePiece-style BPE, exactly as the
 * `tokenizers` library encodes.
 *
 * Pipeline (tokenizers' order):
 *   1. added tokens are matched on the raw text (leftmost, longest first;
 *      lstrip/rstrip swallow adjacent whitespace) and emitted as they are;
 *   2. each stretch between them is normalized (Sequence of Prepend,
 *      Replace with a String pattern, NFC);
 *   3. pre-tokenized (Sequence of Split with an Oniguruma regex or a
 *      string and any behaviour; ByteLevel with or without the GPT-2 regex;
 *      Metaspace; Digits);
 *   4. each piece is BPE-merged: merge ranks from "merges" (both the
 *      "a b" and ["a", "b"] forms), lowest rank first, leftmost on ties;
 *      byte-level models start from bytes mapped through GPT-2's
 *      bytes_to_unicode, others from UTF-8 characters with <0xNN> byte
 *      fallback or the unk token;
 *      (with ignore_merges, a word that is a token is that token);
 *   5. the post-processor's special tokens around the text (TemplateProcessing,
 *      alone or in a Sequence; ByteLevel adds none); tokenizer_config.json's
 *      add_bos_token/add_eos_token, when present, decide BOS/EOS instead, as
 *      transformers' Llama-family tokenizers do.
 * A GGUF vocabulary (`gpt2` or `llama`) gives the same tokenizer: gpt2 with
 * its merges and the regexes its `tokenizer.ggml.pre` names (llama-bpe,
 * qwen2, deepseek-v3, gpt-2/default: a table of the released tokenizers'
 * regex lists, with the NFC and ignore_merges that go with them); llama with
 * SentencePiece's rule (merge the adjacent pair whose concatenation is the
 * highest-scoring token).
 *
 * Invalid UTF-8 in the input is replaced by U+FFFD first (what reading the
 * file as text does).  Any component this code does not implement is an
 * error naming it — never an approximation.
 */
#ifndef QF_TOKENIZER_H
#define QF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "util/qf.h"

typedef struct qf_tok qf_tok;

/* tokenizer.json text plus the optional tokenizer_config.json text. */
qf_status qf_tok_from_json(const char *json, size_t len, const char *config, size_t clen,
			   const char *label, qf_tok **out, qf_err *err);
/* A checkpoint folder (tokenizer.json + tokenizer_config.json). */
qf_status qf_tok_from_dir(const char *dir, qf_tok **out, qf_err *err);
/* tokenizer.ggml.* of a GGUF (or a bundle's metadata.gguf). */
qf_status qf_tok_from_gguf(const qf_gguf *g, qf_tok **out, qf_err *err);
void qf_tok_free(qf_tok *t);

typedef struct qf_tok_piece {
	int32_t id;
	uint64_t start, end;   /* byte offsets in the input text ([start, end); added BOS/EOS: 0, 0) */
} qf_tok_piece;

/*
 * Encodes text; with add_special, BOS/EOS are added as the tokenizer says.
 * *out is malloc'd (caller frees); *n its length.
 */
qf_status qf_tok_encode(qf_tok *t, const char *text, size_t len, int add_special, qf_tok_piece **out,
			size_t *n, qf_err *err);
/*
 * Incremental encoding (for a reader that gets its text piece by piece).
 *
 * qf_tok_safe_cut returns an offset c <= len (0: none found) such that, for
 * every continuation S, the ids of text[0..len)+S are the ids of text[0..c)
 * followed by those of text[c..len)+S, each side encoded with add_special 0
 * (the post-processor's tokens, qf_tok_specials, go around the whole).  c is
 * the last spot of one of two kinds:
 *  (A) the start of an added-token match no later byte can change: complete,
 *      the longest that can start there, before the first spot where an added
 *      token could begin and run past len; and without lstrip.  The text
 *      before it is one stretch that ends there in both encodings, and the
 *      normalizers, pre-tokenizers and merges work inside stretches.
 *  (B) for the known byte-level pre-tokenizers (qf_tok_pre_name != NULL:
 *      llama-bpe, qwen2, deepseek-v3, gpt-2 — no normalizer but NFC, no prefix
 *      space), a space between two ASCII letters inside one stretch
 *      (text[c-1], text[c] == ' ', text[c+1]).  In each of those regexes only
 *      the letter-run alternatives can end in a letter, and they stop at the
 *      space whatever follows it; the piece at c is the space and the letters
 *      after it, found again when the search starts at c (no lookbehind, no
 *      anchors); each earlier Split has no match spanning c (digits, CJK); NFC
 *      cannot join across a space (a starter no character composes with);
 *      merges never cross a piece.  No added token covers c-1..c+1, and the
 *      strip options cannot reach it (letters on both sides).
 * O(len).  Text without such spots (a long run of CJK, or SentencePiece text
 * without added tokens) gets no cut: keep it until more comes or it ends.
 */
size_t qf_tok_safe_cut(const qf_tok *t, const char *text, size_t len);

/*
 * A stream over qf_tok_safe_cut: feed pieces of a text, get its ids (and byte
 * offsets in the whole text) as qf_tok_encode(whole, add_special) gives them,
 * in order, each as soon as it is settled.  Buffers the unsettled tail;
 * searches for a cut again only when the tail has doubled (linear time).  The
 * stream uses t (its word cache): one thread at a time per tokenizer.
 */
typedef struct qf_tok_stream qf_tok_stream;
qf_status qf_tok_stream_new(qf_tok *t, int add_special, qf_tok_stream **out, qf_err *err);
/* Appends text; *out (malloc'd, or NULL when *n is 0) gets the pieces settled now. */
qf_status qf_tok_stream_feed(qf_tok_stream *s, const char *text, size_t len, qf_tok_piece **out, size_t *n,
			     qf_err *err);
/* The end of the text: the remaining pieces, then the post-processor's suffix. */
qf_status qf_tok_stream_finish(qf_tok_stream *s, qf_tok_piece **out, size_t *n, qf_err *err);
void qf_tok_stream_free(qf_tok_stream *s);

/* Decodes ids to text with the tokenizer's decoder (malloc'd, NUL-terminated). */
qf_status qf_tok_decode(const qf_tok *t, const int32_t *ids, size_t n, char **out, size_t *len, qf_err *err);

/* Number of ids (the highest id + 1; every id below it is a token). */
size_t qf_tok_vocab_size(const qf_tok *t);
/* The id of the token spelled s[0..len) (hashed), or -1. */
int32_t qf_tok_find(const qf_tok *t, const char *s, size_t len);
/* The ids the post-processor adds before (after = 0) or after (after = 1) the text: their count; *ids borrowed. */
int qf_tok_specials(const qf_tok *t, int after, const int32_t **ids);
/*
 * llama.cpp's name for this tokenizer's pre-tokenizer (tokenizer.ggml.pre) when
 * its normalizer, pre-tokenizer regexes and ignore_merges are one of the known
 * lists; NULL otherwise.
 */
const char *qf_tok_pre_name(const qf_tok *t);
/* The normalizers and pre-tokenizers with their regexes, for messages. */
void qf_tok_pre_describe(const qf_tok *t, char *buf, size_t n);
/* 1 if a GGUF's tokenizer.ggml.pre of this name can be read back. */
int qf_tok_pre_known(const char *name);
/* The token's string as the vocabulary spells it (borrowed), or NULL. */
const char *qf_tok_piece_str(const qf_tok *t, int32_t id);
int32_t qf_tok_bos(const qf_tok *t);   /* -1 if none */
int32_t qf_tok_eos(const qf_tok *t);
int qf_tok_adds_bos(const qf_tok *t);
/* "byte-level BPE" or "SentencePiece BPE" */
const char *qf_tok_kind(const qf_tok *t);

#endif
