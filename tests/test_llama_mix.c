/*
 * llama.cpp's mixes, checked against llama.cpp itself: llama_model_quantize
 * (npm libllama, tests/llama_oracle.h) and qforge quantize --target
 * llamacpp-<mix> on the same F32 or BF16 GGUF must give every tensor the
 * same type and the same bytes, and the same general.file_type.
 * Skips when the oracle is absent (fails under CI=true).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "tests/llama_oracle.h"
#include "tests/tap.h"
#include "tests/util.h"

static int qforge(const char *args)
{
	char cmd[12800];
	const char *q = getenv("QFORGE");
	snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null", q ? q : "./qforge", args);
	return system(cmd);
}

static long long file_type(const qf_gguf *g)
{
	uint32_t v;
	return qf_gguf_get_u32(g, "general.file_type", &v, NULL) == QF_OK ? (long long)v : -1;
}

/* Compares two GGUFs tensor by tensor; says which differ. */
static void compare(const char *what, const char *ref, const char *ours)
{
	qf_gguf *a = NULL, *b = NULL;
	qf_err err = { { 0 } };
	if (!ok(qf_gguf_open(ref, &a, &err) == QF_OK && qf_gguf_open(ours, &b, &err) == QF_OK, "%s: both open (%s)", what,
		err.msg)) {
		qf_gguf_close(a);
		qf_gguf_close(b);
		return;
	}
	size_t n = qf_gguf_ntensors(a), types = 0, bytes = 0, quant = 0;
	char first_t[512] = "", first_b[256] = "";
	for (size_t i = 0; i < n; i++) {
		const qf_tensor *x = qf_gguf_tensor(a, i), *y = qf_gguf_find_tensor(b, x->name);
		if (!y || y->dtype != x->dtype) {
			if (!types++)
				snprintf(first_t, sizeof first_t, "%s: llama.cpp %s, qforge %s", x->name, qf_dtype_name(x->dtype),
					 y ? qf_dtype_name(y->dtype) : "missing");
			continue;
		}
		quant += qf_dtype_info(x->dtype)->block_elems > 1;
		if (x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes) != 0) {
			if (!bytes++)
				snprintf(first_b, sizeof first_b, "%s (%s)", x->name, qf_dtype_name(x->dtype));
		}
	}
	ok(n == qf_gguf_ntensors(b) && types == 0, "%s: all %zu tensors get llama.cpp's types%s%s", what, n,
	   types ? "; first of the differing: " : "", first_t);
	ok(types == 0 && bytes == 0, "%s: every tensor's bytes identical (%zu quantized)%s%s", what, quant,
	   bytes ? "; first differing: " : "", first_b);
	is_int(file_type(a), file_type(b), "%s: general.file_type", what);
	qf_gguf_close(a);
	qf_gguf_close(b);
}

int main(void)
{
	plan_lazy();
	tl_llama *L = tl_llama_open_tap("llama.cpp's mixes");
	if (!L)
		return tap_failures() ? 1 : 0;
	static const struct { const char *model, *outtype, *opt; } ms[] = {
		{ "models/stories260k-hf", "f32", "" },
		{ "models/tiny-dsv3", "bf16", "" },
		/* attn_kv_b is attn_v-like (use_more_bits → Q6_K in Q4_K_M/Q5_K_M) */
		{ "models/tiny-dsv3", "bf16", "--legacy-kv-b" },
	};
	static const struct { const char *target; int ftype; } mx[] = {
		{ "llamacpp-q2_k", 10 }, { "llamacpp-q3_k_m", 12 }, { "llamacpp-q4_k_m", 15 },
		{ "llamacpp-q5_k_m", 17 }, { "llamacpp-q6_k", 18 },
	};
	for (size_t m = 0; m < sizeof ms / sizeof ms[0]; m++) {
		char src[4200], args[12288];
		snprintf(src, sizeof src, "%s", tu_path("src.gguf"));
		snprintf(args, sizeof args, "convert -q -f %s --outtype %s -o '%s' '%s'", ms[m].opt, ms[m].outtype, src,
			 tu_src(ms[m].model));
		if (!ok(qforge(args) == 0, "%s: %s GGUF %s", ms[m].model, ms[m].outtype, ms[m].opt))
			continue;
		for (size_t k = 0; k < sizeof mx / sizeof mx[0]; k++) {
			char ref[4200], ours[4200], what[256];
			snprintf(ref, sizeof ref, "%s", tu_path("ref.gguf"));
			snprintf(ours, sizeof ours, "%s", tu_path("ours.gguf"));
			snprintf(what, sizeof what, "%s%s%s %s", ms[m].model, *ms[m].opt ? " " : "", ms[m].opt, mx[k].target);
			remove(ref);
			int rc = tl_llama_quantize(L, src, ref, mx[k].ftype, 2);
			snprintf(args, sizeof args, "quantize -q -f --target %s -o '%s' '%s'", mx[k].target, ours, src);
			int rq = qforge(args);
			if (!ok(rc == 0 && rq == 0, "%s: llama_model_quantize (%d) and qforge quantize (%d) both run", what, rc, rq))
				continue;
			compare(what, ref, ours);
		}
	}
	tl_llama_close(L);
	return tap_failures() ? 1 : 0;
}
