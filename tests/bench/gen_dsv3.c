/*
 * gen_dsv3 — seeded generator of a synthetic DeepSeek-V3-shaped FP8 checkpoint
 * (release form: F8_E4M3 linears with F32 128×128 _scale_inv, BF16 embeddings,
 * norms and router, F32 correction bias, one shard per layer plus an index).
 *
 * usage: gen_dsv3 OUTDIR [--layers N] [--experts E] [--vocab V] [--seed S]
 *        gen_dsv3 OUTDIR --llama TOKENIZER_DIR [--layers N]
 * Real V3 widths: hidden 7168, MLA q_lora 1536 / kv_lora 512, 128 heads of
 * nope 128 + rope 64, v 128, experts of 2048, dense FFN 18432.  Layer 0 is dense
 * (first_k_dense_replace = 1) only when --layers > 1; otherwise layer 0 is MoE.
 * --llama: an F32 Llama instead (hidden 1024, 16 heads, 4 KV heads, FFN 2816,
 * default 8 layers) with the tokenizer (and vocabulary size) of the
 * Llama checkpoint in TOKENIZER_DIR.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/dtype.h"

enum { H = 7168, QL = 1536, KVL = 512, NH = 128, NOPE = 128, ROPE = 64, VD = 128, MFF = 2048, FF = 18432 };

#define P(s) (snprintf(n, sizeof n, "model.layers.%d.%s", L, s), n)

static uint64_t rng;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

typedef struct ent { char name[256]; const char *dtype; int64_t r, c; int nd; } ent;
static ent ents[4096];
static int nent;

static void add(const char *name, const char *dt, int nd, int64_t r, int64_t c)
{
	ent *e = &ents[nent++];
	snprintf(e->name, sizeof e->name, "%s", name);
	e->dtype = dt;
	e->nd = nd;
	e->r = r;
	e->c = c;
}

static void add_fp8(const char *name, int64_t r, int64_t c)
{
	char s[200];
	add(name, "F8_E4M3", 2, r, c);
	snprintf(s, sizeof s, "%s_scale_inv", name);
	add(s, "F32", 2, (r + 127) / 128, (c + 127) / 128);
}

static uint64_t bytes_of(const ent *e)
{
	uint64_t n = (uint64_t)e->r * (uint64_t)(e->nd == 2 ? e->c : 1);
	return n * (!strcmp(e->dtype, "F8_E4M3") ? 1 : !strcmp(e->dtype, "BF16") ? 2 : 4);
}

static void fill(FILE *f, const ent *e)
{
	static uint8_t buf[1 << 20];
	uint64_t left = bytes_of(e);
	int fp8 = !strcmp(e->dtype, "F8_E4M3"), bf = !strcmp(e->dtype, "BF16");
	while (left) {
		size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
		if (fp8) {
			for (size_t i = 0; i < k; i += 8) {
				uint64_t v = next();
				for (int j = 0; j < 8 && i + (size_t)j < k; j++) {
					uint8_t b = (uint8_t)(v >> (8 * j));
					buf[i + (size_t)j] = (b & 0x7f) == 0x7f ? (uint8_t)(b ^ 0x08) : b; /* no NaN */
				}
			}
		} else if (bf) {
			for (size_t i = 0; i + 1 < k; i += 2) {
				uint16_t h = qf_f32_to_bf16((float)((int64_t)(next() % 2001) - 1000) * 1e-5f);
				memcpy(buf + i, &h, 2);
			}
		} else {
			for (size_t i = 0; i + 3 < k; i += 4) {
				float x = 4e-5f * (float)((int64_t)(next() % 2001) - 1000);
				memcpy(buf + i, &x, 4);
			}
		}
		fwrite(buf, 1, k, f);
		left -= k;
	}
}

static void write_shard(const char *dir, const char *file, int first, int last)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	char *hdr = malloc(1 << 20);
	size_t p = (size_t)sprintf(hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
	uint64_t off = 0;
	for (int i = first; i < last; i++) {
		const ent *e = &ents[i];
		if (e->nd == 2)
			p += (size_t)sprintf(hdr + p, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}",
					     e->name, e->dtype, (long long)e->r, (long long)e->c, (unsigned long long)off,
					     (unsigned long long)(off + bytes_of(e)));
		else
			p += (size_t)sprintf(hdr + p, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}",
					     e->name, e->dtype, (long long)e->r, (unsigned long long)off,
					     (unsigned long long)(off + bytes_of(e)));
		off += bytes_of(e);
	}
	p += (size_t)sprintf(hdr + p, "}");
	while (p % 8)
		hdr[p++] = ' ';
	uint64_t n = p;
	fwrite(&n, 8, 1, f);
	fwrite(hdr, 1, p, f);
	for (int i = first; i < last; i++)
		fill(f, &ents[i]);
	if (fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	free(hdr);
}

/* The Llama variant: one shard, F32, the tokenizer files of an existing Llama checkpoint. */
static int gen_llama(const char *dir, const char *tokdir, int layers)
{
	enum { LH = 1024, LNH = 16, LKV = 4, LFF = 2816 };
	char n[256], p[4096], cmd[9000];
	snprintf(p, sizeof p, "%s/config.json", tokdir);
	FILE *fc = fopen(p, "r");
	int vocab = 0;
	if (fc) {
		char buf[8192];
		size_t k = fread(buf, 1, sizeof buf - 1, fc);
		buf[k] = 0;
		const char *v = strstr(buf, "\"vocab_size\"");
		vocab = v ? atoi(strchr(v, ':') + 1) : 0;
		fclose(fc);
	}
	if (vocab <= 0) {
		fprintf(stderr, "gen_dsv3: %s has no vocab_size\n", p);
		return 1;
	}
	mkdir(dir, 0755);
	add("model.embed_tokens.weight", "F32", 2, vocab, LH);
	add("model.norm.weight", "F32", 1, LH, 0);
	add("lm_head.weight", "F32", 2, vocab, LH);
	for (int L = 0; L < layers; L++) {
		add(P("input_layernorm.weight"), "F32", 1, LH, 0);
		add(P("post_attention_layernorm.weight"), "F32", 1, LH, 0);
		add(P("self_attn.q_proj.weight"), "F32", 2, LH, LH);
		add(P("self_attn.k_proj.weight"), "F32", 2, LH / LNH * LKV, LH);
		add(P("self_attn.v_proj.weight"), "F32", 2, LH / LNH * LKV, LH);
		add(P("self_attn.o_proj.weight"), "F32", 2, LH, LH);
		add(P("mlp.gate_proj.weight"), "F32", 2, LFF, LH);
		add(P("mlp.up_proj.weight"), "F32", 2, LFF, LH);
		add(P("mlp.down_proj.weight"), "F32", 2, LH, LFF);
	}
	write_shard(dir, "model.safetensors", 0, nent);
	snprintf(p, sizeof p, "%s/config.json", dir);
	FILE *fi = fopen(p, "w");
	if (!fi)
		return 1;
	fprintf(fi, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":%d,"
		    "\"intermediate_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
		    "\"vocab_size\":%d,\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,"
		    "\"hidden_act\":\"silu\",\"tie_word_embeddings\":false,\"torch_dtype\":\"float32\",\"bos_token_id\":1,"
		    "\"eos_token_id\":2}\n",
		LH, LFF, layers, LNH, LKV, vocab);
	fclose(fi);
	snprintf(cmd, sizeof cmd, "cp '%s/tokenizer.json' '%s/tokenizer_config.json' '%s/'", tokdir, tokdir, dir);
	return system(cmd) != 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: gen_dsv3 OUTDIR [--layers N] [--experts E] [--vocab V] [--seed S]\n");
		return 2;
	}
	const char *dir = argv[1];
	int layers = 0, experts = 256, vocab = 129280;
	const char *llama = NULL;
	rng = 0x9e3779b97f4a7c15ull;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--experts")) experts = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--vocab")) vocab = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed")) rng = strtoull(argv[i + 1], NULL, 0) | 1;
		else if (!strcmp(argv[i], "--llama")) llama = argv[i + 1];
	}
	if (llama)
		return gen_llama(dir, llama, layers ? layers : 8);
	layers = layers ? layers : 1;
	mkdir(dir, 0755);
	int dense = layers > 1 ? 1 : 0;
	char n[256], idx[4096];
	int starts[1024], nshard = 0;
	starts[nshard++] = nent;
	add("model.embed_tokens.weight", "BF16", 2, vocab, H);
	add("model.norm.weight", "BF16", 1, H, 0);
	add("lm_head.weight", "BF16", 2, vocab, H);
	for (int L = 0; L < layers; L++) {
		starts[nshard++] = nent;
		add(P("input_layernorm.weight"), "BF16", 1, H, 0);
		add(P("post_attention_layernorm.weight"), "BF16", 1, H, 0);
		add_fp8(P("self_attn.q_a_proj.weight"), QL, H);
		add(P("self_attn.q_a_layernorm.weight"), "BF16", 1, QL, 0);
		add_fp8(P("self_attn.q_b_proj.weight"), NH * (NOPE + ROPE), QL);
		add_fp8(P("self_attn.kv_a_proj_with_mqa.weight"), KVL + ROPE, H);
		add(P("self_attn.kv_a_layernorm.weight"), "BF16", 1, KVL, 0);
		add_fp8(P("self_attn.kv_b_proj.weight"), NH * (NOPE + VD), KVL);
		add_fp8(P("self_attn.o_proj.weight"), H, NH * VD);
		if (L < dense) {
			add_fp8(P("mlp.gate_proj.weight"), FF, H);
			add_fp8(P("mlp.up_proj.weight"), FF, H);
			add_fp8(P("mlp.down_proj.weight"), H, FF);
		} else {
			add(P("mlp.gate.weight"), "BF16", 2, experts, H);
			add(P("mlp.gate.e_score_correction_bias"), "F32", 1, experts, 0);
			add_fp8(P("mlp.shared_experts.gate_proj.weight"), MFF, H);
			add_fp8(P("mlp.shared_experts.up_proj.weight"), MFF, H);
			add_fp8(P("mlp.shared_experts.down_proj.weight"), H, MFF);
			for (int e = 0; e < experts; e++) {
				char en[128];
				snprintf(en, sizeof en, "mlp.experts.%d.gate_proj.weight", e);
				add_fp8(P(en), MFF, H);
				snprintf(en, sizeof en, "mlp.experts.%d.up_proj.weight", e);
				add_fp8(P(en), MFF, H);
				snprintf(en, sizeof en, "mlp.experts.%d.down_proj.weight", e);
				add_fp8(P(en), H, MFF);
			}
		}
	}
	starts[nshard] = nent;
	snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
	FILE *fi = fopen(idx, "w");
	fprintf(fi, "{\"metadata\":{},\"weight_map\":{");
	for (int s = 0; s < nshard; s++) {
		char file[64];
		snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, nshard);
		for (int i = starts[s]; i < starts[s + 1]; i++)
			fprintf(fi, "%s\"%s\":\"%s\"", i ? "," : "", ents[i].name, file);
		write_shard(dir, file, starts[s], starts[s + 1]);
	}
	fprintf(fi, "}}\n");
	fclose(fi);
	snprintf(idx, sizeof idx, "%s/config.json", dir);
	fi = fopen(idx, "w");
	fprintf(fi, "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"hidden_size\":%d,\"intermediate_size\":%d,"
		    "\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"vocab_size\":%d,"
		    "\"q_lora_rank\":%d,\"kv_lora_rank\":%d,\"qk_nope_head_dim\":%d,\"qk_rope_head_dim\":%d,\"v_head_dim\":%d,"
		    "\"moe_intermediate_size\":%d,\"n_routed_experts\":%d,\"num_experts_per_tok\":%d,\"n_shared_experts\":1,"
		    "\"first_k_dense_replace\":%d,\"n_group\":%d,\"topk_group\":%d,\"routed_scaling_factor\":2.5,"
		    "\"norm_topk_prob\":true,\"scoring_func\":\"sigmoid\",\"rms_norm_eps\":1e-6,\"rope_theta\":10000,"
		    "\"max_position_embeddings\":163840,\"tie_word_embeddings\":false,"
		    "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":40,\"original_max_position_embeddings\":4096,"
		    "\"beta_fast\":32,\"beta_slow\":1,\"mscale\":1.0,\"mscale_all_dim\":1.0},"
		    "\"quantization_config\":{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\",\"weight_block_size\":[128,128],"
		    "\"activation_scheme\":\"dynamic\"}}\n",
		H, FF, layers, NH, NH, vocab, QL, KVL, NOPE, ROPE, VD, MFF, experts, experts < 8 ? experts : 8, dense,
		experts % 8 ? 1 : 8, experts % 8 ? 1 : 4);
	fclose(fi);
	snprintf(idx, sizeof idx, "%s/tokenizer.json", dir);
	fi = fopen(idx, "w");
	fprintf(fi, "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]},\"added_tokens\":[]}\n");
	fclose(fi);
	return 0;
}
