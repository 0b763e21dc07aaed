/*
 * hf_integrity.h — hashes of a Hugging Face safetensors folder or file that
 * qforge wrote: each shard's "__metadata__" holds "qforge.xxh64.NAME" (16 hex
 * digits) for every tensor in it.
 */
#ifndef VFY_HF_INTEGRITY_H
#define VFY_HF_INTEGRITY_H

#include "verify/verify.h"

/* Recomputes every recorded tensor hash; r->hashed is 0 when no shard records any.
 * A tensor with a recorded hash that is absent, or a malformed hash, is a mismatch. */
qf_status vfy_hf_integrity(const char *path, vfy_integrity *r, qf_err *err);

#endif
