#include "config.h"

#include <stdio.h>
#include <string.h>

#include "formats/hashcheck.h"

static void problem(qf_gguf_hashes *h, const char *key, const char *what)
{
	if (!h->problem[0])
		snprintf(h->problem, sizeof h->problem, "%s %s", key, what);
}

/* A scalar U64 key: 1 when present with that type. */
static int read_u64(const qf_gguf *g, const char *key, qf_gguf_hashes *h, uint64_t *v)
{
	int64_t k = qf_gguf_find_kv(g, key);
	if (k < 0) {
		problem(h, key, "is missing");
		return 0;
	}
	const qf_gguf_kv *kv = qf_gguf_kv_at(g, (size_t)k);
	if (kv->type != QF_GGUF_U64) {
		char b[96];
		snprintf(b, sizeof b, "has type %s, not u64", qf_gguf_type_name(kv->type));
		problem(h, key, b);
		return 0;
	}
	memcpy(v, kv->raw, 8);
	return 1;
}

void qf_gguf_hashes_read(const qf_gguf *g, qf_gguf_hashes *h)
{
	static const char *const keys[] = { "qforge.tensor_xxh64", "qforge.data_xxh64", "qforge.meta_xxh64" };
	memset(h, 0, sizeof *h);
	for (int i = 0; i < 3; i++)
		h->claimed |= qf_gguf_find_kv(g, keys[i]) >= 0;
	if (!h->claimed)
		return;
	int64_t k = qf_gguf_find_kv(g, keys[0]);
	const qf_gguf_kv *th = k >= 0 ? qf_gguf_kv_at(g, (size_t)k) : NULL;
	if (!th) {
		problem(h, keys[0], "is missing");
	} else if (th->type != QF_GGUF_ARR || th->arr_type != QF_GGUF_U64) {
		char b[96];
		snprintf(b, sizeof b, "has type %s of %s, not an array of u64", qf_gguf_type_name(th->type),
			 th->type == QF_GGUF_ARR ? qf_gguf_type_name(th->arr_type) : "-");
		problem(h, keys[0], b);
	} else {
		h->tensor = th->raw;
		h->ntensor = th->n;
		if (th->n != qf_gguf_ntensors(g)) {
			char b[96];
			snprintf(b, sizeof b, "has %llu entries for %zu tensors", (unsigned long long)th->n, qf_gguf_ntensors(g));
			problem(h, keys[0], b);
		}
	}
	h->has_data = read_u64(g, keys[1], h, &h->data);
	h->has_meta = read_u64(g, keys[2], h, &h->meta);
}

int qf_gguf_hashes_tensor(const qf_gguf_hashes *h, size_t i, uint64_t *want)
{
	if (!h->tensor || i >= h->ntensor)
		return 0;
	memcpy(want, h->tensor + 8 * i, 8);
	return 1;
}

qf_status qf_xxh64_mapped(const uint8_t *p, uint64_t n, XXH64_state_t *also, XXH64_state_t *also2, uint64_t *out,
			  qf_err *err)
{
	XXH64_state_t *st = XXH64_createState();
	if (!st)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	XXH64_reset(st, 0);
	for (uint64_t off = 0; off < n;) {
		size_t k = n - off > (64u << 20) ? (64u << 20) : (size_t)(n - off);
		XXH64_update(st, p + off, k);
		if (also)
			XXH64_update(also, p + off, k);
		if (also2)
			XXH64_update(also2, p + off, k);
		qf_view_release(p + off, k);
		off += k;
	}
	*out = XXH64_digest(st);
	XXH64_freeState(st);
	return QF_OK;
}
