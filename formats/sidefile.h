/*
 * sidefile.h — the files beside the weights that an output carries, and what each must be.
 *
 * A checkpoint folder holds more than weights: tokenizer files, generation settings, chat
 * templates.  An output carries only the known ones below, and only after their bytes parse as
 * what their name claims; the bytes checked are the bytes copied (one mapping).  A name is not
 * a kind: `secret.json` is not carried at all, and a `generation_config.json` that links to a
 * private key is refused, not copied.  Symlinks to regular files are fine (Hugging Face's cache
 * is all symlinks); a FIFO or device is refused without blocking (formats/mapfile.h).
 *
 *   kind        names                                         must be
 *   JSON        config, generation_config, tokenizer,          one JSON object, nothing after it
 *               tokenizer_config, special_tokens_map,
 *               added_tokens, vocab, chat_template, tekken
 *               (each NAME.json)
 *   merges      merges.txt                                     lines of two space-separated tokens
 *                                                              (a first '#version' line allowed)
 *   template    chat_template.jinja                            UTF-8 text with a {{ or {% tag
 *   sentencepiece tokenizer.model                              a protobuf ModelProto with pieces
 *   tiktoken    tiktoken.model, *.tiktoken                     lines of 'BASE64 RANK'
 */
#ifndef QF_SIDEFILE_H
#define QF_SIDEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/mapfile.h"
#include "util/qf.h"

typedef enum qf_side_kind {
	QF_SIDE_NONE = 0, /* not a file qforge carries */
	QF_SIDE_JSON,
	QF_SIDE_MERGES,
	QF_SIDE_TEMPLATE,
	QF_SIDE_SPM,
	QF_SIDE_TIKTOKEN,
} qf_side_kind;

/* The kind of a file by its base name; QF_SIDE_NONE for any other name. */
qf_side_kind qf_side_kind_of(const char *name);

/* QF_OK if data (n bytes of the file at path, for messages) is a valid file of kind;
 * else QF_EFORMAT "PATH: not WHAT (why), so it is not copied". */
qf_status qf_side_check(qf_side_kind kind, const char *path, const uint8_t *data, size_t n, qf_err *err);

/* Maps path (a regular file, symlinks followed) and checks it as the kind its base name says;
 * on QF_OK *m holds the checked bytes (close it with qf_mapfile_close). */
qf_status qf_side_open(const char *path, qf_mapfile *m, qf_err *err);

#endif
