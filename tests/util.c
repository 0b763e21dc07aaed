#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/outfile.h"
#include "formats/safetensors.h"
#include "tests/util.h"

static char tmpdir[4096];

static void rm_tmp(void)
{
	if (tmpdir[0])
		qf_rmtree(tmpdir);
}

const char *tu_tmpdir(void)
{
	if (!tmpdir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(tmpdir, sizeof tmpdir, "%s/qftest-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(99);
		}
		atexit(rm_tmp);
	}
	return tmpdir;
}

const char *tu_path(const char *name)
{
	static char slots[8][8192];
	static int k;
	char *p = slots[k++ & 7];
	snprintf(p, 8192, "%s/%s", tu_tmpdir(), name);
	return p;
}

const char *tu_src(const char *rel)
{
	static char slots[8][8192];
	static int k;
	char *p = slots[k++ & 7];
	const char *s = getenv("QF_SRCDIR");
	snprintf(p, 8192, "%s/%s", s && *s ? s : QF_SRCDIR, rel);
	return p;
}

const char *tu_oracle_lib(const char *name)
{
	static char slots[4][8192];
	static int k;
	char *p = slots[k++ & 3];
	const char *d = getenv("QF_ORACLE_DIR");
	snprintf(p, 8192, "%s/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/%s",
		 d && *d ? d : tu_src("tests/oracle"), name);
	return p;
}

int tu_ci(void)
{
	const char *c = getenv("CI");
	return c && strcmp(c, "true") == 0;
}

int tu_write(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = n ? fwrite(data, 1, n, f) : 0;
	return fclose(f) == 0 && w == n ? 0 : -1;
}

uint8_t *tu_read(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((sz > 0 ? (size_t)sz : 0) + 1); /* NUL-terminated for text */
	if (b && sz > 0 && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b) {
		b[sz > 0 ? sz : 0] = 0;
		*n = (size_t)sz;
	}
	return b;
}

uint64_t tu_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

float tu_randf(uint64_t *s)
{
	return (float)((double)(tu_rand(s) >> 11) * 0x1p-53 * 2.0 - 1.0);
}

int tu_exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

/*
 * A small random DeepSeek-V2-Lite-shaped checkpoint (q_lora_rank null:
 * self_attn.q_proj instead of q_a/q_b; softmax routing; no correction bias):
 * hidden 64, 2 layers (0 dense, 1 MoE of 4 experts, 2 per token, 1 shared),
 * 2 heads of nope 16 + rope 8, v 16, kv_lora 32, vocab 16.  F32, one file.
 */
int tu_gen_dsv2(const char *dir, uint64_t seed)
{
	enum { HD = 64, NH = 2, NOPE = 16, RP = 8, VD = 16, KVL = 32, FF = 96, MFF = 32, NE = 4, V = 16 };
	typedef struct { char name[160]; int64_t r, c; } spec;
	spec sp[64];
	int n = 0;
#define ADD(nm, R, C) do { snprintf(sp[n].name, sizeof sp[n].name, "%s", nm); sp[n].r = R; sp[n].c = C; n++; } while (0)
	ADD("model.embed_tokens.weight", V, HD);
	ADD("model.norm.weight", HD, 0);
	ADD("lm_head.weight", V, HD);
	for (int l = 0; l < 2; l++) {
		char b[160];
#define L(suffix, R, C) do { snprintf(b, sizeof b, "model.layers.%d.%s", l, suffix); ADD(b, R, C); } while (0)
		L("input_layernorm.weight", HD, 0);
		L("post_attention_layernorm.weight", HD, 0);
		L("self_attn.q_proj.weight", NH * (NOPE + RP), HD);
		L("self_attn.kv_a_proj_with_mqa.weight", KVL + RP, HD);
		L("self_attn.kv_a_layernorm.weight", KVL, 0);
		L("self_attn.kv_b_proj.weight", NH * (NOPE + VD), KVL);
		L("self_attn.o_proj.weight", HD, NH * VD);
		if (l == 0) {
			L("mlp.gate_proj.weight", FF, HD);
			L("mlp.up_proj.weight", FF, HD);
			L("mlp.down_proj.weight", HD, FF);
		} else {
			L("mlp.gate.weight", NE, HD);
			for (int e = 0; e < NE; e++) {
				char s2[96];
				snprintf(s2, sizeof s2, "mlp.experts.%d.gate_proj.weight", e);
				L(s2, MFF, HD);
				snprintf(s2, sizeof s2, "mlp.experts.%d.up_proj.weight", e);
				L(s2, MFF, HD);
				snprintf(s2, sizeof s2, "mlp.experts.%d.down_proj.weight", e);
				L(s2, HD, MFF);
			}
			L("mlp.shared_experts.gate_proj.weight", MFF, HD);
			L("mlp.shared_experts.up_proj.weight", MFF, HD);
			L("mlp.shared_experts.down_proj.weight", HD, MFF);
		}
#undef L
	}
#undef ADD
	qf_st_entry es[64];
	float *bufs[64];
	uint64_t rs = seed;
	for (int i = 0; i < n; i++) {
		int64_t ne = sp[i].r * (sp[i].c ? sp[i].c : 1);
		bufs[i] = malloc((size_t)ne * sizeof(float));
		int norm = sp[i].c == 0;
		for (int64_t k = 0; k < ne; k++)
			bufs[i][k] = norm ? 1.0f + 0.1f * tu_randf(&rs) : 0.15f * tu_randf(&rs);
		memset(&es[i], 0, sizeof es[i]);
		es[i].name = sp[i].name;
		es[i].dtype = QF_F32;
		es[i].ndim = sp[i].c ? 2 : 1;
		es[i].shape[0] = sp[i].r;
		es[i].shape[1] = sp[i].c;
		es[i].data = bufs[i];
	}
	char p[4200];
	mkdir(dir, 0755);
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	qf_err err = { { 0 } };
	int rc = qf_st_write(p, es, (size_t)n, NULL, &err) == QF_OK ? 0 : -1;
	for (int i = 0; i < n; i++)
		free(bufs[i]);
	snprintf(p, sizeof p, "%s/config.json", dir);
	char cfg[2048];
	snprintf(cfg, sizeof cfg,
		 "{\"architectures\":[\"DeepseekV2ForCausalLM\"],\"hidden_size\":%d,\"intermediate_size\":%d,"
		 "\"num_hidden_layers\":2,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"vocab_size\":%d,"
		 "\"q_lora_rank\":null,\"kv_lora_rank\":%d,\"qk_nope_head_dim\":%d,\"qk_rope_head_dim\":%d,"
		 "\"v_head_dim\":%d,\"moe_intermediate_size\":%d,\"n_routed_experts\":%d,\"num_experts_per_tok\":2,"
		 "\"n_shared_experts\":1,\"first_k_dense_replace\":1,\"n_group\":1,\"topk_group\":1,"
		 "\"topk_method\":\"greedy\",\"routed_scaling_factor\":1.0,\"norm_topk_prob\":false,"
		 "\"scoring_func\":\"softmax\",\"rms_norm_eps\":1e-6,\"rope_theta\":10000,"
		 "\"max_position_embeddings\":256,\"tie_word_embeddings\":false,\"bos_token_id\":0,\"eos_token_id\":1}",
		 HD, FF, NH, NH, V, KVL, NOPE, RP, VD, MFF, NE);
	rc |= tu_write(p, cfg, strlen(cfg));
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	const char *tj = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"d\":3,\"e\":4,\"f\":5,"
			 "\"g\":6,\"h\":7,\"i\":8,\"j\":9,\"k\":10,\"l\":11,\"m\":12,\"n\":13,\"o\":14,\"p\":15},"
			 "\"merges\":[]},\"added_tokens\":[]}";
	rc |= tu_write(p, tj, strlen(tj));
	return rc;
}

int32_t *tu_read_ids(const char *path, size_t *n)
{
	size_t len;
	char *t = (char *)tu_read(path, &len);
	if (!t)
		return NULL;
	int32_t *v = malloc((len / 2 + 1) * sizeof *v); /* each id takes at least two bytes with its separator */
	size_t k = 0;
	for (char *p = t, *e; v && *p; p = e) {
		long x = strtol(p, &e, 10);
		if (e == p) { /* a separator */
			e++;
			continue;
		}
		v[k++] = (int32_t)x;
	}
	free(t);
	*n = k;
	return v;
}

int tu_temps(const char *path)
{
	char dir[8192], pre[8192];
	const char *sl = strrchr(path, '/');
	snprintf(dir, sizeof dir, "%.*s", sl ? (int)(sl - path) : 1, sl ? path : ".");
	snprintf(pre, sizeof pre, "%s" QF_OUTPUT_TMP_TAG, sl ? sl + 1 : path);
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		n += strncmp(e->d_name, pre, strlen(pre)) == 0;
	if (d)
		closedir(d);
	return n;
}
