/*
 * hf_apply.c — choosing each tensor's scheme for Hugging Face output.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantize/profile.h"

qf_status qnt_hf_rule_parse(const char *arg, int keep, qnt_rule *r, cvt_hf_scheme *sch, qf_err *err)
{
	memset(sch, 0, sizeof *sch);
	sch->enc = CVT_HF_COPY;
	if (keep)
		return qnt_rule_parse(arg, 1, r, err);
	const char *eq = strrchr(arg, '=');
	if (!eq)
		return qf_fail(err, QF_EUSAGE, "--type '%s': expected REGEX=SCHEME", arg);
	if (!cvt_hf_scheme_parse(eq + 1, sch))
		return qf_fail(err, QF_EUSAGE, "--type '%s': unknown safetensors scheme '%s' (schemes: %s)", arg, eq + 1,
			       cvt_hf_scheme_names());
	char *pat = strndup(arg, (size_t)(eq - arg));
	if (!pat)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	qf_status s = qnt_rule_parse(pat, 1, r, err);
	free(pat);
	r->fmt = QF_F32; /* not a keep rule: the scheme is in *sch */
	return s;
}

static int layout_takes(cvt_hf_layout l, const cvt_hf_scheme *s)
{
	switch (s->enc) {
	case CVT_HF_COPY: case CVT_HF_DEQUANT: return 1;
	case CVT_HF_FP8_BLOCK: return l == CVT_HF_FP8;
	case CVT_HF_CT_FP8: case CVT_HF_CT_PACK: case CVT_HF_CT_INT8: return l == CVT_HF_CT;
	case CVT_HF_MS_INT8: return l == CVT_HF_MSMODELSLIM;
	}
	return 0;
}

static const char *layout_name(cvt_hf_layout l)
{
	switch (l) {
	case CVT_HF_FP8: return "vllm-fp8";
	case CVT_HF_CT: return "compressed-tensors";
	case CVT_HF_MSMODELSLIM: return "msmodelslim";
	default: return "float";
	}
}

/* 1 when every block scale of an FP8 weight is a power of two. */
static int scales_pow2(const qf_tensor *sc)
{
	const uint8_t *d = sc->data;
	for (uint64_t i = 0; i < sc->nelems; i++) {
		float f;
		memcpy(&f, d + 4 * i, 4);
		int e;
		if (f != 0.0f && frexpf(f, &e) != 0.5f)
			return 0;
	}
	return 1;
}

/* What the item keeps when not quantized: its bytes, or FP8 dequantized to want (BF16 by default). */
static void keep_source(cvt_hf_item *it, const cvt_hf_plan *p, qf_dtype want)
{
	int fp8 = it->t->dtype == QF_F8_E4M3 || it->t->dtype == QF_F8_E5M2;
	if (it->ms.type != QF_MS_FLOAT) { /* msModelSlim int8/fp8 is never copied under another layout's names */
		it->sch.enc = CVT_HF_DEQUANT;
		it->sch.dtype = want == QF_DTYPE_NONE ? p->torch_dtype : want;
		return;
	}
	if (fp8 && p->layout == CVT_HF_FP8 && want == QF_DTYPE_NONE && it->scale) {
		it->sch.enc = CVT_HF_COPY; /* DeepSeek FP8 stays as released */
		it->sch.dtype = it->t->dtype;
		return;
	}
	if (fp8 || it->t->ctq) { /* a compressed-tensors module decodes too */
		it->sch.enc = CVT_HF_DEQUANT;
		it->sch.dtype = want == QF_DTYPE_NONE ? QF_BF16 : want;
		return;
	}
	it->sch.enc = CVT_HF_COPY;
	it->sch.dtype = it->t->dtype;
}

qf_status qnt_hf_plan_apply(cvt_hf_plan *p, const qnt_profile *prof, const qnt_rule *rules,
			    const cvt_hf_scheme *rule_sch, size_t nrules, qf_err *err)
{
	if (prof)
		p->layout = prof->hf_layout;
	for (size_t i = 0; i < p->n; i++) {
		cvt_hf_item *it = &p->items[i];
		const qf_tensor *t = it->t;
		it->fallback = 0;
		it->lossy_note = 0;
		it->raw = 0;
		int floaty = t->dtype == QF_BF16 || t->dtype == QF_F16 || t->dtype == QF_F32 || t->dtype == QF_F8_E4M3 ||
			     t->dtype == QF_F8_E5M2 || it->ms.type != QF_MS_FLOAT;
		int eligible = floaty && t->ndim == 2 && qf_str_ends_with(t->name, ".weight") &&
			       it->cls != CVT_CLASS_ROUTER && it->cls != CVT_CLASS_NORM && it->cls != CVT_CLASS_EMBED &&
			       !strstr(t->name, ".eh_proj."); /* MTP's eh_proj is a plain nn.Linear in vLLM: never quantized */
		cvt_hf_scheme want = { .enc = CVT_HF_COPY, .dtype = QF_DTYPE_NONE };
		int decided = 0;
		for (size_t r = 0; r < nrules && !decided; r++) {
			if (qnt_rule_match(&rules[r], t->name)) {
				want = rules[r].fmt == QF_DTYPE_NONE ? want : rule_sch[r];
				decided = 1;
			}
		}
		if (!decided && prof && prof->hf_set[it->cls])
			want = prof->hf_cls[it->cls];
		if (!layout_takes(p->layout, &want))
			return qf_fail(err, QF_EUSAGE, "tensor '%s': a %s scheme cannot go in a %s checkpoint", t->name,
				       want.enc == CVT_HF_FP8_BLOCK ? "DeepSeek FP8" : want.enc == CVT_HF_MS_INT8 ? "msModelSlim" : "compressed-tensors",
				       layout_name(p->layout));
		if (!eligible || want.enc == CVT_HF_COPY || want.enc == CVT_HF_DEQUANT) {
			/* a float scheme names the dtype FP8 dequantizes to; other tensors keep theirs */
			keep_source(it, p, eligible && want.enc == CVT_HF_DEQUANT ? want.dtype : QF_DTYPE_NONE);
			continue;
		}
		int64_t K = t->shape[1];
		int fits = 1;
		if (want.enc == CVT_HF_CT_PACK)
			fits = (K * want.bits) % 32 == 0 && (!want.group || K % want.group == 0);
		if (!fits) {
			it->fallback = 1;
			keep_source(it, p, QF_DTYPE_NONE);
			continue;
		}
		it->sch = want;
		it->scale_dtype = p->torch_dtype;
		if (want.enc == CVT_HF_FP8_BLOCK && it->scale && !want.ue8m0 && it->bo == 128 && it->bi == 128 &&
		    t->dtype == QF_F8_E4M3) {
			it->sch.enc = CVT_HF_COPY; /* the release's own blocks: every weight and scale byte as shipped */
			it->sch.dtype = t->dtype;
		} else if (want.enc == CVT_HF_CT_FP8 && it->scale && it->bo == 128 && it->bi == 128 && t->dtype == QF_F8_E4M3) {
			it->raw = 1; /* the same blocks under CT's names: the release's F32 scales, not re-rounded */
		} else if (want.enc == CVT_HF_FP8_BLOCK && want.ue8m0 && it->scale) {
			it->lossy_note = !scales_pow2(it->scale);
		}
	}
	return QF_OK;
}
