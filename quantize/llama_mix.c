/*
 * llama_mix.c — llama.cpp's llama_tensor_get_type for the K-quant mixes.
 *
 * Line numbers below are those of src/llama-quant.cpp in llama.cpp
 * 82bb48500 (unslothai/llama.cpp d32676d7).  Only the branches that the five
 * mixes qforge writes can reach are here (the IQ*, TQ*, MXFP4_MOE and *_S/L
 * ftypes are not); within them every condition is kept, including those
 * (Falcon, 8 experts, 70B) that llama and deepseek2 rarely meet.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantize/llama_mix.h"

/* ggml_type ids (ggml.h) */
enum { G_F16 = 1, G_Q4_0 = 2, G_Q4_1 = 3, G_Q5_0 = 6, G_Q5_1 = 7, G_Q8_0 = 8, G_Q2_K = 10, G_Q3_K = 11, G_Q4_K = 12,
       G_Q5_K = 13, G_Q6_K = 14 };

static const struct { const char *name; int ftype, deflt; } ftypes[] = {
	/* llama_ftype_get_default_type, lines 805-848 */
	{ "Q2_K", QNT_FTYPE_Q2_K, G_Q2_K },
	{ "Q3_K_M", QNT_FTYPE_Q3_K_M, G_Q3_K },
	{ "Q4_K_M", QNT_FTYPE_Q4_K_M, G_Q4_K },
	{ "Q5_K_M", QNT_FTYPE_Q5_K_M, G_Q5_K },
	{ "Q6_K", QNT_FTYPE_Q6_K, G_Q6_K },
};

int qnt_mix_ftype_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
		if (strcasecmp(name, ftypes[i].name) == 0)
			return ftypes[i].ftype;
	return -1;
}

const char *qnt_mix_ftype_name(int ftype)
{
	for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
		if (ftypes[i].ftype == ftype)
			return ftypes[i].name;
	return NULL;
}

static int default_type(int ftype)
{
	for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
		if (ftypes[i].ftype == ftype)
			return ftypes[i].deflt;
	return -1;
}

/* tensor_category and tensor_get_category, lines 26-39 and 116-151: first match wins. */
typedef enum cat {
	C_TOKEN_EMBD, C_ATTN_Q, C_ATTN_V, C_ATTN_K, C_ATTN_QKV, C_ATTN_KV_B, C_ATTN_OUTPUT,
	C_FFN_UP, C_FFN_GATE, C_FFN_DOWN, C_OUTPUT, C_OTHER
} cat;

static int has(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

static cat category(const char *name)
{
	if (!strcmp(name, "output.weight"))
		return C_OUTPUT;
	if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
		return C_TOKEN_EMBD;
	if (has(name, "attn_qkv.weight"))
		return C_ATTN_QKV;
	if (has(name, "attn_kv_b.weight"))
		return C_ATTN_KV_B;
	if (has(name, "attn_v.weight"))
		return C_ATTN_V;
	if (has(name, "attn_k.weight"))
		return C_ATTN_K;
	if (has(name, "attn_q.weight"))
		return C_ATTN_Q;
	if (has(name, "attn_output.weight"))
		return C_ATTN_OUTPUT;
	if (has(name, "ffn_up"))
		return C_FFN_UP;
	if (has(name, "ffn_gate"))
		return C_FFN_GATE;
	if (has(name, "ffn_down"))
		return C_FFN_DOWN;
	return C_OTHER;
}

/* category_is_attn_v, lines 154-158 */
static int is_attn_v(cat c) { return c == C_ATTN_V || c == C_ATTN_QKV || c == C_ATTN_KV_B; }

int qnt_mix_allows(const char *name, int ndim)
{
	/* tensor_allows_quantization, lines 289-370 (quantize_output_tensor on, only_copy off) */
	if (ndim < 2)
		return 0;
	size_t n = strlen(name);
	if (n < 6 || strcmp(name + n - 6, "weight") != 0)
		return 0;
	static const char *const never[] = {
		"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
		"per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
		"indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
		"time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
		"time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
		"time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
		"time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.",
		"sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd", NULL,
	};
	for (int i = 0; never[i]; i++)
		if (has(name, never[i]))
			return 0;
	/* LLM_TENSOR_POS_EMBD / TOKEN_TYPES, the same names for every architecture */
	return strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
}

int qnt_mix_use_more_bits(int i_layer, int n_layer)
{
	/* line 430 */
	return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

static int kv_int(const qf_gguf *g, const char *arch, const char *suffix, int dflt)
{
	char key[128];
	snprintf(key, sizeof key, "%s.%s", arch, suffix);
	int64_t i = qf_gguf_find_kv(g, key);
	double v;
	if (i < 0 || !qf_gguf_kv_number(qf_gguf_kv_at(g, (size_t)i), 0, &v))
		return dflt;
	return (int)v;
}

qf_status qnt_mix_model_of(cvt_plan *p, qnt_mix_model *m, qf_err *err)
{
	const qf_gguf *g = NULL;
	qf_status s = cvt_plan_meta(p, &g, err);
	if (s)
		return s;
	const char *arch = cvt_plan_arch(p);
	memset(m, 0, sizeof *m);
	m->n_layer = kv_int(g, arch, "block_count", 0);
	m->n_head = kv_int(g, arch, "attention.head_count", 0);
	m->n_head_kv = kv_int(g, arch, "attention.head_count_kv", m->n_head);
	m->n_expert = kv_int(g, arch, "expert_count", 0);
	/* src/models/llama.cpp: case 80 → 70B unless n_head == n_head_kv (65B) */
	m->is_70b = !strcmp(arch, "llama") && m->n_layer == 80 && m->n_head != m->n_head_kv;
	if (m->n_layer <= 0)
		return qf_fail(err, QF_EFORMAT, "%s: no %s.block_count, which llama.cpp's mixes need",
			       cvt_plan_source_path(p), arch);
	return QF_OK;
}

/* quantize_state_impl's counters, lines 163-176 */
typedef struct state {
	int n_attention_wv, i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up;
	int tied;                 /* no output.weight: token_embd is the output head */
} state;

static int n_gqa(const qnt_mix_model *m) { return m->n_head_kv ? m->n_head / m->n_head_kv : 0; }

/* layer_info, lines 434-449: with experts, the layer comes from the name. */
static qf_status layer_of(const qnt_mix_model *m, int counter, const char *name, int *layer, qf_err *err)
{
	*layer = counter;
	if ((m->n_expert > 1 ? m->n_expert : 1) > 1) {
		if (sscanf(name, "blk.%d.", layer) != 1)
			return qf_fail(err, QF_EFORMAT, "tensor %s: failed to determine its layer", name);
		if (*layer < 0 || *layer >= m->n_layer)
			return qf_fail(err, QF_EFORMAT, "tensor %s: bad layer %d, must be in [0, %d)", name, *layer, m->n_layer);
	}
	return QF_OK;
}

/* llama_tensor_get_type_impl, lines 424-671, for the five ftypes. */
static qf_status mix_type(state *st, const qnt_mix_model *m, int ftype, cat c, const char *name, int64_t ne0, int *t,
			  qf_err *err)
{
	int nt = *t, falcon = 0; /* neither llama nor deepseek2 is Falcon */
	qf_status s = QF_OK;
	int li;
	if (c == C_OUTPUT || (st->tied && c == C_TOKEN_EMBD)) {
		/* lines 452-480 */
		const qf_dtype_traits *tr = qf_dtype_info(qf_dtype_from_ggml(nt));
		if (falcon || ne0 % tr->block_elems != 0)
			nt = G_Q8_0;
		else if (nt != G_Q8_0)
			nt = G_Q6_K;
	} else if (c == C_TOKEN_EMBD) {
		/* lines 482-499: nothing for these ftypes */
	} else if (is_attn_v(c)) {
		/* lines 524-561 */
		if (ftype == QNT_FTYPE_Q2_K)
			nt = n_gqa(m) >= 4 ? G_Q4_K : G_Q3_K;
		else if (ftype == QNT_FTYPE_Q3_K_M)
			nt = st->i_attention_wv < 2 ? G_Q5_K : G_Q4_K;
		else if ((ftype == QNT_FTYPE_Q4_K_M || ftype == QNT_FTYPE_Q5_K_M) &&
			 qnt_mix_use_more_bits(st->i_attention_wv, st->n_attention_wv))
			nt = G_Q6_K;
		if (m->is_70b && (nt == G_Q3_K || nt == G_Q4_K))
			nt = G_Q5_K;
		if (m->n_expert == 8)
			nt = G_Q8_0;
		st->i_attention_wv++;
	} else if (c == C_ATTN_K) {
		/* lines 562-573 */
		if (m->n_expert == 8)
			nt = G_Q8_0;
	} else if (c == C_ATTN_Q) {
		/* lines 574-580: IQ ftypes only */
	} else if (c == C_FFN_DOWN) {
		/* lines 581-625 */
		if ((s = layer_of(m, st->i_ffn_down, name, &li, err)))
			return s;
		int nl = m->n_layer;
		if (ftype == QNT_FTYPE_Q2_K)
			nt = G_Q3_K;
		else if (ftype == QNT_FTYPE_Q3_K_M)
			nt = li < nl / 16 ? G_Q5_K : !falcon || qnt_mix_use_more_bits(li, nl) ? G_Q4_K : G_Q3_K;
		else if (ftype == QNT_FTYPE_Q4_K_M)
			nt = qnt_mix_use_more_bits(li, nl) ? G_Q6_K : nt;
		else if (ftype == QNT_FTYPE_Q5_K_M && qnt_mix_use_more_bits(li, nl))
			nt = G_Q6_K;
		st->i_ffn_down++;
	} else if (c == C_ATTN_OUTPUT) {
		/* lines 626-645 */
		if (m->n_expert == 8) {
			if (ftype == QNT_FTYPE_Q2_K || ftype == QNT_FTYPE_Q3_K_M || ftype == QNT_FTYPE_Q4_K_M)
				nt = G_Q5_K;
		} else if (ftype == QNT_FTYPE_Q2_K) {
			nt = G_Q3_K;
		} else if (ftype == QNT_FTYPE_Q3_K_M) {
			nt = G_Q4_K;
		}
	} else if (c == C_ATTN_QKV) {
		/* lines 646-652 (unreachable: attn_qkv is attn_v-like above, as in llama.cpp) */
	} else if (c == C_FFN_GATE || c == C_FFN_UP) {
		/* lines 653-668: the layer is still checked (IQ3_XS uses it) */
		int *ctr = c == C_FFN_GATE ? &st->i_ffn_gate : &st->i_ffn_up;
		if ((s = layer_of(m, *ctr, name, &li, err)))
			return s;
		(*ctr)++;
	}
	*t = nt;
	return QF_OK;
}

/* tensor_type_fallback, lines 374-421 */
static int fallback(int t, int64_t ne0, int *fell)
{
	qf_dtype d = qf_dtype_from_ggml(t);
	*fell = 0;
	if (ne0 % qf_dtype_info(d)->block_elems == 0)
		return t;
	*fell = 1;
	int r = t;
	switch (t) {
	case G_Q2_K: case G_Q3_K: r = G_Q4_0; break;
	case G_Q4_K: r = G_Q5_0; break;
	case G_Q5_K: r = G_Q5_1; break;
	case G_Q6_K: r = G_Q8_0; break;
	default: return t; /* a format of qforge's own: qforge's fallback applies */
	}
	if (ne0 % qf_dtype_info(qf_dtype_from_ggml(r))->block_elems != 0)
		r = G_F16;
	return r;
}

typedef struct ord {
	int layer;
	size_t i;
	const char *name;
} ord;

/* weight_name_comparer (src/llama-model-loader.h lines 53-64): layer, then name */
static int cmp_ord(const void *a, const void *b)
{
	const ord *x = a, *y = b;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* What the rules read of the model, and *o: the plan's items in llama.cpp's loader order (free it). */
static qf_status mix_start(cvt_plan *p, qnt_mix_model *m, ord **o, qf_err *err)
{
	qf_status s = qnt_mix_model_of(p, m, err);
	if (s)
		return s;
	size_t n = cvt_plan_count(p);
	ord *v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		return qf_fail(err, QF_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		v[i].i = i;
		v[i].name = cvt_plan_item(p, i)->name;
		v[i].layer = -1;
		sscanf(v[i].name, "blk.%d.", &v[i].layer);
	}
	qsort(v, n, sizeof *v, cmp_ord);
	*o = v;
	return QF_OK;
}

qf_status qnt_mix_apply(cvt_plan *p, int ftype, const qnt_rule *rules, size_t nrules, int allow_requantize,
			qf_err *err)
{
	int deflt = default_type(ftype);
	if (deflt < 0)
		return qf_fail(err, QF_EUSAGE, "llama.cpp ftype %d is not a mix qforge writes (Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K)",
			       ftype);
	qnt_mix_model m;
	ord *o = NULL;
	qf_status s = mix_start(p, &m, &o, err);
	if (s)
		return s;
	size_t n = cvt_plan_count(p);
	state st = { .tied = 1 };
	for (size_t i = 0; i < n; i++) {
		/* init_quantize_state_counters, lines 851-866 */
		cat c = category(cvt_plan_item(p, i)->name);
		st.n_attention_wv += is_attn_v(c);
		if (c == C_OUTPUT)
			st.tied = 0;
	}
	for (size_t k = 0; k < n && !s; k++) {
		cvt_item *it = cvt_plan_item(p, o[k].i);
		qf_dtype base = it->srcs[0].coded ? it->srcs[0].qv.fmt : qf_fmt_of_dtype(it->type);
		int64_t ne0 = cvt_item_row_len(it);
		it->fallback = 0;
		it->fmt = base;
		/* llama_tensor_get_type, lines 674-718 */
		if (!qnt_mix_allows(it->name, it->ndim))
			continue;
		qf_dtype want = QF_DTYPE_NONE;
		int manual = 0;
		for (size_t r = 0; r < nrules && !manual; r++) {
			if (qnt_rule_match(&rules[r], it->name)) {
				want = rules[r].fmt == QF_DTYPE_NONE ? base : rules[r].fmt;
				manual = 1;
			}
		}
		if (!manual) {
			int t = deflt;
			if ((s = mix_type(&st, &m, ftype, category(it->name), it->name, ne0, &t, err)))
				break;
			int fell;
			t = fallback(t, ne0, &fell);
			it->fallback = fell;
			want = qf_dtype_from_ggml(t);
			if (want == QF_DTYPE_NONE) {
				s = qf_fail(err, QF_EUSAGE, "tensor '%s': llama.cpp's %s mix wants ggml type %d, which qforge cannot write",
					    it->name, qnt_mix_ftype_name(ftype), t);
				break;
			}
		} else if (qf_dtype_info(want)->ggml_type >= 0) {
			int fell;
			want = qf_dtype_from_ggml(fallback(qf_dtype_info(want)->ggml_type, ne0, &fell));
			it->fallback = fell;
		}
		if (it->src_quant && want != base && qf_fmt_is_quant(want) && !allow_requantize) {
			s = qf_fail(err, QF_EUSAGE,
				    "tensor '%s' is already quantized; quantizing it again (to %s) compounds the error — use --allow-requantize to do it anyway",
				    it->name, qf_dtype_info(want)->fmt);
			break;
		}
		if (!qf_fmt_fits(want, ne0)) { /* a --type format of qforge's own that does not fit */
			it->fallback = 1;
			want = base;
		}
		it->fmt = want;
	}
	free(o);
	return s;
}

qf_status qnt_mix_imatrix_ffn_down(cvt_plan *p, int ftype, const qnt_rule *rules, size_t nrules, qf_err *err)
{
	/*
	 * llama_tensor_get_type_impl, lines 581-625: the FFN_DOWN branch; for
	 * Q4_0/Q5_0 only its last arm (lines 618-623) can apply: "has_imatrix &&
	 * i_layer < n_layer/8" → Q4_1 / Q5_1.  The layer is layer_info's: the
	 * ffn_down counter in loader order, or "blk.N." with experts.
	 */
	if (ftype != QNT_FTYPE_Q4_0 && ftype != QNT_FTYPE_Q5_0)
		return qf_fail(err, QF_EUSAGE, "llama.cpp's imatrix ffn_down rule is for its Q4_0 and Q5_0 mixes (ftype %d)", ftype);
	qnt_mix_model m;
	ord *o = NULL;
	qf_status s = mix_start(p, &m, &o, err);
	if (s)
		return s;
	size_t n = cvt_plan_count(p);
	qf_dtype to = qf_dtype_from_ggml(ftype == QNT_FTYPE_Q4_0 ? G_Q4_1 : G_Q5_1);
	int i_ffn_down = 0;
	for (size_t k = 0; k < n && !s; k++) {
		cvt_item *it = cvt_plan_item(p, o[k].i);
		if (!qnt_mix_allows(it->name, it->ndim) || category(it->name) != C_FFN_DOWN)
			continue;
		int manual = 0; /* --type/--keep: llama.cpp skips the mix rules, and the counter with them */
		for (size_t r = 0; r < nrules && !manual; r++)
			manual = qnt_rule_match(&rules[r], it->name);
		if (manual)
			continue;
		int li;
		if ((s = layer_of(&m, i_ffn_down, it->name, &li, err)))
			break;
		i_ffn_down++;
		if (li < m.n_layer / 8 && qf_fmt_is_quant(it->fmt) && qf_fmt_fits(to, cvt_item_row_len(it)))
			it->fmt = to;
	}
	free(o);
	return s;
}
