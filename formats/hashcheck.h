/*
 * hashcheck.h — reading back the hashes qforge records in its outputs, for
 * whoever must trust a file before using it (verify, and convert/quantize
 * of a GGUF or bundle source).  The GGUF keys are described in gguf.h.
 *
 * A file "claims" qforge hashes when any of the three keys is present; it
 * is then checked with whatever is there, and a missing or mistyped key is
 * itself a failure (one flipped type byte must not switch the checks off).
 */
#ifndef QF_HASHCHECK_H
#define QF_HASHCHECK_H

#include <stdint.h>

#include <xxhash.h>

#include "formats/gguf.h"

typedef struct qf_gguf_hashes {
	int claimed;             /* any qforge.*_xxh64 key is present */
	const uint8_t *tensor;   /* qforge.tensor_xxh64: ntensor little-endian u64, or NULL */
	uint64_t ntensor;
	int has_data, has_meta;
	uint64_t data, meta;     /* as recorded */
	char problem[192];       /* the first missing or mistyped key, or "" */
} qf_gguf_hashes;

/* Reads the keys (no data is hashed). */
void qf_gguf_hashes_read(const qf_gguf *g, qf_gguf_hashes *h);
/* Recorded hash of tensor i: 1 when there is one. */
int qf_gguf_hashes_tensor(const qf_gguf_hashes *h, size_t i, uint64_t *want);

/*
 * xxh64 of n mapped bytes, releasing the pages behind it so that any size
 * streams in flat memory; also feeds `also` and `also2` when not NULL.
 * QF_ENOMEM only.
 */
qf_status qf_xxh64_mapped(const uint8_t *p, uint64_t n, XXH64_state_t *also, XXH64_state_t *also2, uint64_t *out,
			  qf_err *err);

#endif
