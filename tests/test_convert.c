/*
 * convert: FP8 dequantization against a scalar reference on every element,
 * Q/K un-permutation, expert stacking and the kv_b split element by element,
 * metadata re-read with our own GGUF reader, golden hashes, thread-count
 * determinism and bad-input handling (no partial output).
 */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "convert/convert.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "tests/tap.h"
#include "tests/util.h"

/* Golden data hashes (xxh64 of all tensor bytes, GGUF order) of the bundled models. */
#define GOLDEN_DSV3_BF16 0x77ffbe11ca0d8d67ull  /* tiny-dsv3 (FP8) → auto (BF16) */
#define GOLDEN_DSV3_F32  0xbb642b5c602ff4a5ull  /* tiny-dsv3 (FP8) → F32 */
#define GOLDEN_ST_F32    0xebb6009c62465889ull  /* stories260k-hf → F32 */

static qf_status convert(const char *model, qf_dtype ot, int threads, const char *out, cvt_result *res,
			 qf_err *err)
{
	qf_ckpt *ck = NULL;
	cvt_plan *p = NULL;
	cvt_options o = { .outtype = ot, .threads = threads };
	qf_status s = qf_ckpt_open(model, &ck, err);
	if (!s)
		s = cvt_plan_build(ck, &o, &p, err);
	cvt_write_opts wo = { .force = 1, .threads = threads };
	if (!s)
		s = cvt_write(p, out, &wo, res, err);
	cvt_plan_free(p);
	qf_ckpt_close(ck);
	return s;
}

/* Scalar reference for DeepSeek's weight_dequant, written from its definition. */
static double ref_fp8(uint8_t v)
{
	int s = v >> 7, e = (v >> 3) & 15, m = v & 7;
	double x = e ? ldexp(1.0 + m / 8.0, e - 7) : ldexp(m / 8.0, -6);
	return s ? -x : x;
}

static const float *f32_of(const qf_gguf *g, const char *name, const qf_tensor **t)
{
	*t = qf_gguf_find_tensor(g, name);
	return *t && (*t)->dtype == QF_F32 ? (const float *)(*t)->data : NULL;
}

int main(void)
{
	plan_lazy();
	qf_err err = { { 0 } };
	cvt_result r1, r2;
	const char *ds = tu_src("models/tiny-dsv3"), *dsbf = tu_src("models/tiny-dsv3-bf16"),
		   *st = tu_src("models/stories260k-hf");
	const char *o1 = tu_path("ds_f32_t1.gguf"), *o2 = tu_path("ds_f32_t2.gguf");

	ok(convert(ds, QF_F32, 1, o1, &r1, &err) == QF_OK, "tiny-dsv3 → F32, 1 thread (%s)", err.msg);
	ok(convert(ds, QF_F32, 3, o2, &r2, &err) == QF_OK, "tiny-dsv3 → F32, 3 threads");
	size_t n1, n2;
	uint8_t *b1 = tu_read(o1, &n1), *b2 = tu_read(o2, &n2);
	ok(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0, "output bytes identical for 1 and 3 threads");
	free(b2);
	is_hex(GOLDEN_DSV3_F32, r1.data_hash, "golden data hash: tiny-dsv3 → F32");

	/* every element of every FP8 weight against the scalar reference */
	qf_ckpt *ck = NULL;
	qf_gguf *g = NULL;
	ok(qf_ckpt_open(ds, &ck, &err) == QF_OK && qf_gguf_open(o1, &g, &err) == QF_OK, "re-open source and output");
	if (!ck || !g)
		bail("cannot continue: %s", err.msg);
	int64_t bad = 0, checked = 0, partial = 0;
	char name[128];
	for (int L = 0; L < 4; L++) {
		static const char *const hf[] = { "self_attn.q_a_proj", "self_attn.q_b_proj", "self_attn.kv_a_proj_with_mqa",
						  "self_attn.o_proj" };
		static const char *const gg[] = { "attn_q_a", "attn_q_b", "attn_kv_a_mqa", "attn_output" };
		for (int k = 0; k < 4; k++) {
			snprintf(name, sizeof name, "model.layers.%d.%s.weight", L, hf[k]);
			const qf_tensor *w = qf_st_find(ck->st, name), *sc = NULL, *o;
			snprintf(name, sizeof name, "model.layers.%d.%s.weight_scale_inv", L, hf[k]);
			sc = qf_st_find(ck->st, name);
			snprintf(name, sizeof name, "blk.%d.%s.weight", L, gg[k]);
			const float *y = f32_of(g, name, &o);
			if (!w || !sc || !y) {
				bad++;
				continue;
			}
			int64_t R = w->shape[0], C = w->shape[1];
			if (R % 128 || C % 128)
				partial++;
			for (int64_t i = 0; i < R; i++)
				for (int64_t j = 0; j < C; j++) {
					float s;
					memcpy(&s, sc->data + 4 * ((i / 128) * sc->shape[1] + j / 128), 4);
					float want = (float)ref_fp8(w->data[i * C + j]) * s;
					bad += memcmp(&want, &y[i * C + j], 4) != 0;
					checked++;
				}
		}
	}
	ok(bad == 0 && checked > 0, "FP8 × block scale equals the scalar reference on all %lld attention elements (%lld tensors with partial 128-blocks)",
	   (long long)checked, (long long)partial);

	/* expert stacking: ffn_down_exps[e] == experts.e.down_proj dequantized, every element */
	bad = checked = 0;
	for (int L = 1; L < 4; L++) {
		const qf_tensor *o;
		snprintf(name, sizeof name, "blk.%d.ffn_down_exps.weight", L);
		const float *y = f32_of(g, name, &o);
		for (int e = 0; e < 16 && y; e++) {
			snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.down_proj.weight", L, e);
			const qf_tensor *w = qf_st_find(ck->st, name);
			snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.down_proj.weight_scale_inv", L, e);
			const qf_tensor *sc = qf_st_find(ck->st, name);
			int64_t R = w->shape[0], C = w->shape[1];
			for (int64_t i = 0; i < R; i++)
				for (int64_t j = 0; j < C; j++) {
					float s;
					memcpy(&s, sc->data + 4 * ((i / 128) * sc->shape[1] + j / 128), 4);
					float want = (float)ref_fp8(w->data[i * C + j]) * s;
					bad += memcmp(&want, &y[(e * R + i) * C + j], 4) != 0;
					checked++;
				}
		}
		ok(o && o->ndim == 3 && o->shape[0] == 16 && o->shape[1] == 256 && o->shape[2] == 96,
		   "blk.%d.ffn_down_exps is [16, 256, 96]", L);
	}
	ok(bad == 0 && checked == 3 * 16 * 256 * 96, "expert stacking exact on %lld elements (moe 96 = partial blocks)",
	   (long long)checked);

	/* kv_b split: k_b[h][c][d] = kv_b[h*(32+32)+d][c], v_b[h][j][c] = kv_b[h*64+32+j][c] */
	bad = checked = 0;
	for (int L = 0; L < 4; L++) {
		const qf_tensor *kb, *vb;
		snprintf(name, sizeof name, "blk.%d.attn_k_b.weight", L);
		const float *K = f32_of(g, name, &kb);
		snprintf(name, sizeof name, "blk.%d.attn_v_b.weight", L);
		const float *V = f32_of(g, name, &vb);
		snprintf(name, sizeof name, "model.layers.%d.self_attn.kv_b_proj.weight", L);
		const qf_tensor *w = qf_st_find(ck->st, name);
		snprintf(name, sizeof name, "model.layers.%d.self_attn.kv_b_proj.weight_scale_inv", L);
		const qf_tensor *sc = qf_st_find(ck->st, name);
		if (!K || !V || !w || !sc) {
			bad++;
			continue;
		}
		for (int h = 0; h < 4; h++)
			for (int row = 0; row < 64; row++)
				for (int c = 0; c < 64; c++) {
					int sr = h * 64 + row;
					float s;
					memcpy(&s, sc->data + 4 * ((sr / 128) * sc->shape[1] + c / 128), 4);
					float want = (float)ref_fp8(w->data[sr * 64 + c]) * s;
					float got = row < 32 ? K[(h * 64 + c) * 32 + row] : V[(h * 32 + row - 32) * 64 + c];
					bad += memcmp(&want, &got, 4) != 0;
					checked++;
				}
	}
	ok(bad == 0 && checked == 4 * 4 * 64 * 64, "kv_b split into attn_k_b (transposed) and attn_v_b exact on %lld elements",
	   (long long)checked);

	/* metadata as written, re-read with our reader */
	uint32_t u;
	float f;
	int bo;
	char *sv = NULL;
	ok(qf_gguf_get_str(g, "general.architecture", &sv, &err) == QF_OK && !strcmp(sv, "deepseek2"), "architecture deepseek2");
	free(sv);
	sv = NULL;
	static const struct { const char *k; uint32_t v; } u32s[] = {
		{ "deepseek2.block_count", 4 }, { "deepseek2.embedding_length", 256 },
		{ "deepseek2.attention.head_count", 4 }, { "deepseek2.attention.head_count_kv", 1 },
		{ "deepseek2.attention.q_lora_rank", 96 }, { "deepseek2.attention.kv_lora_rank", 64 },
		{ "deepseek2.attention.key_length", 80 }, { "deepseek2.attention.value_length", 64 },
		{ "deepseek2.attention.key_length_mla", 48 }, { "deepseek2.attention.value_length_mla", 32 },
		{ "deepseek2.rope.dimension_count", 16 }, { "deepseek2.expert_count", 16 },
		{ "deepseek2.expert_used_count", 4 }, { "deepseek2.expert_shared_count", 1 },
		{ "deepseek2.expert_feed_forward_length", 96 }, { "deepseek2.leading_dense_block_count", 1 },
		{ "deepseek2.expert_gating_func", 2 }, { "deepseek2.expert_group_count", 4 },
		{ "deepseek2.expert_group_used_count", 2 }, { "deepseek2.rope.scaling.original_context_length", 128 },
		{ "deepseek2.vocab_size", 1024 }, { "general.file_type", 0 }, { "tokenizer.ggml.bos_token_id", 0 },
		{ "tokenizer.ggml.eos_token_id", 1 },
	};
	for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
		memset(&err, 0, sizeof err);
		qf_status s = qf_gguf_get_u32(g, u32s[i].k, &u, &err);
		ok(s == QF_OK && u == u32s[i].v, "%s = %u (u32) %s", u32s[i].k, u32s[i].v, err.msg);
	}
	ok(qf_gguf_get_f32(g, "deepseek2.expert_weights_scale", &f, &err) == QF_OK && f == 2.5f, "expert_weights_scale 2.5 (f32)");
	ok(qf_gguf_get_f32(g, "deepseek2.rope.scaling.yarn_log_multiplier", &f, &err) == QF_OK && f == 0.1f,
	   "yarn_log_multiplier = 0.1 × mscale_all_dim (f32)");
	ok(qf_gguf_get_bool(g, "deepseek2.expert_weights_norm", &bo, &err) == QF_OK && bo == 1, "expert_weights_norm (bool)");
	ok(qf_gguf_get_str(g, "tokenizer.ggml.model", &sv, &err) == QF_OK && !strcmp(sv, "gpt2"), "tokenizer model gpt2");
	free(sv);
	ok(qf_gguf_find_tensor(g, "blk.1.ffn_gate_inp.weight")->dtype == QF_F32 &&
	   qf_gguf_find_tensor(g, "blk.1.exp_probs_b.bias")->dtype == QF_F32, "router and exp_probs_b stay F32");
	ok(qf_gguf_find_tensor(g, "blk.4.attn_norm.weight") == NULL, "MTP layer 4 skipped by default");
	/* per-tensor hashes in the file equal xxh64 of the bytes */
	const qf_gguf_kv *hk = qf_gguf_kv_at(g, (size_t)qf_gguf_find_kv(g, "qforge.tensor_xxh64"));
	bad = 0;
	for (size_t i = 0; i < qf_gguf_ntensors(g); i++) {
		const qf_tensor *t = qf_gguf_tensor(g, i);
		uint64_t h;
		memcpy(&h, hk->raw + 8 * i, 8);
		bad += h != XXH64(t->data, (size_t)t->nbytes, 0);
	}
	is_int(0, bad, "every stored tensor xxh64 equals xxh64 of its data (%zu tensors)", qf_gguf_ntensors(g));
	qf_gguf_close(g);
	qf_ckpt_close(ck);
	free(b1);

	/* FP8 → BF16 equals DeepSeek's fp8_cast_bf16 output (the BF16 fixture), byte for byte */
	cvt_result rb, rf;
	ok(convert(ds, QF_DTYPE_NONE, 2, tu_path("ds_auto.gguf"), &rb, &err) == QF_OK, "tiny-dsv3 → auto (BF16)");
	ok(convert(dsbf, QF_DTYPE_NONE, 2, tu_path("dsbf_auto.gguf"), &rf, &err) == QF_OK, "tiny-dsv3-bf16 → auto");
	is_hex(GOLDEN_DSV3_BF16, rb.data_hash, "golden data hash: tiny-dsv3 → BF16");
	is_hex(rf.data_hash, rb.data_hash, "FP8 release → BF16 is byte-identical to the BF16 checkpoint's conversion");

	/* Llama: Q/K un-permutation */
	ok(convert(st, QF_F32, 2, tu_path("st.gguf"), &r1, &err) == QF_OK, "stories260k → F32");
	is_hex(GOLDEN_ST_F32, r1.data_hash, "golden data hash: stories260k → F32");
	ok(qf_ckpt_open(st, &ck, &err) == QF_OK && qf_gguf_open(tu_path("st.gguf"), &g, &err) == QF_OK, "re-open");
	bad = 0;
	for (int L = 0; L < 5; L++) {
		for (int k = 0; k < 2; k++) {
			snprintf(name, sizeof name, "model.layers.%d.self_attn.%s_proj.weight", L, k ? "k" : "q");
			const qf_tensor *w = qf_st_find(ck->st, name), *o;
			snprintf(name, sizeof name, "blk.%d.attn_%s.weight", L, k ? "k" : "q");
			const float *y = f32_of(g, name, &o);
			int nh = k ? 4 : 8, hd = 8;
			/* new row h·hd + 2r + s ← old row h·hd + s·(hd/2) + r */
			for (int h = 0; h < nh; h++)
				for (int r = 0; r < hd / 2; r++)
					for (int s = 0; s < 2; s++)
						bad += memcmp(y + (h * hd + 2 * r + s) * 64,
							      (const float *)w->data + (h * hd + s * hd / 2 + r) * 64, 64 * 4) != 0;
		}
	}
	is_int(0, bad, "Q and K rows un-permuted to adjacent-pair RoPE order (all 5 layers)");
	ok(qf_gguf_find_tensor(g, "output.weight") == NULL, "tied embeddings: no output.weight");
	ok(qf_gguf_get_str(g, "tokenizer.ggml.model", &sv, &err) == QF_OK && !strcmp(sv, "llama"), "tokenizer model llama");
	free(sv);
	const qf_gguf_kv *sk = qf_gguf_kv_at(g, (size_t)qf_gguf_find_kv(g, "tokenizer.ggml.scores"));
	const qf_gguf_kv *tk = qf_gguf_kv_at(g, (size_t)qf_gguf_find_kv(g, "tokenizer.ggml.token_type"));
	double d3, d0, sc0;
	ok(tk && qf_gguf_kv_number(tk, 3, &d3) && d3 == 6 && qf_gguf_kv_number(tk, 0, &d0) && d0 == 2,
	   "token types: <0x00> is byte (6), <unk> is unknown (2)");
	ok(sk && qf_gguf_kv_number(sk, 259, &sc0) && sc0 <= 0, "scores present (−merge rank)");
	qf_gguf_close(g);
	qf_ckpt_close(ck);

	/* bad input: each rejected with exit-3-class status, a message naming the problem, no output */
	static const struct { const char *what, *edit, *expect; } bad_cfg[] = {
		{ "missing hidden_size", "\"hidden_size\": 64,", "hidden_size" },
		{ "unsupported architecture", "\"LlamaForCausalLM\"", "unsupported architecture" },
		{ "shape disagrees with config", "\"intermediate_size\": 172", "config.json implies" },
	};
	for (size_t i = 0; i < sizeof bad_cfg / sizeof bad_cfg[0]; i++) {
		char dir[4096], cmd[12288];
		snprintf(dir, sizeof dir, "%s/badcfg%zu", tu_tmpdir(), i);
		snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/* '%s'/", dir, st, dir);
		if (system(cmd) != 0)
			bail("cp failed");
		char cfgp[4200];
		snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
		size_t cn;
		char *cfg = (char *)tu_read(cfgp, &cn);
		char *pos = strstr(cfg, bad_cfg[i].edit);
		const char *repl = i == 0 ? "" : i == 1 ? "\"GPTNeoXForCausalLM\"" : "\"intermediate_size\": 173";
		char *nc = malloc(cn + 64);
		size_t pre = (size_t)(pos - cfg);
		memcpy(nc, cfg, pre);
		strcpy(nc + pre, repl);
		strcat(nc, pos + strlen(bad_cfg[i].edit));
		tu_write(cfgp, nc, strlen(nc));
		free(cfg);
		free(nc);
		memset(&err, 0, sizeof err);
		const char *out = tu_path("bad.gguf");
		qf_status s = convert(dir, QF_DTYPE_NONE, 1, out, &r1, &err);
		ok(s == QF_EFORMAT && strstr(err.msg, bad_cfg[i].expect) && !tu_exists(out) && !tu_temps(tu_path("bad.gguf")),
		   "rejects %s: %s", bad_cfg[i].what, err.msg);
	}

	/* DeepSeek V2 with q_lora_rank null: self_attn.q_proj → attn_q, no q_lora key */
	{
		const char *dir = tu_path("dsv2");
		ok(tu_gen_dsv2(dir, 7) == 0, "generated a V2-Lite-shaped checkpoint");
		memset(&err, 0, sizeof err);
		qf_status s = convert(dir, QF_F32, 2, tu_path("dsv2.gguf"), &r1, &err);
		ok(s == QF_OK, "converted q_lora_rank null checkpoint: %s", err.msg);
		qf_gguf *g2 = NULL;
		qf_ckpt *ck2 = NULL;
		if (!s)
			s = qf_gguf_open(tu_path("dsv2.gguf"), &g2, &err);
		if (!s)
			s = qf_ckpt_open(dir, &ck2, &err);
		if (!s) {
			const qf_tensor *q = qf_gguf_find_tensor(g2, "blk.0.attn_q.weight");
			const qf_tensor *src = qf_st_find(ck2->st, "model.layers.0.self_attn.q_proj.weight");
			ok(q && src && q->ndim == 2 && q->shape[0] == 48 && q->shape[1] == 64 &&
			   memcmp(q->data, src->data, src->nbytes) == 0, "attn_q is q_proj, [48, 64], bytes equal");
			ok(!qf_gguf_find_tensor(g2, "blk.0.attn_q_a.weight") && qf_gguf_find_kv(g2, "deepseek2.attention.q_lora_rank") < 0,
			   "no attn_q_a and no q_lora_rank key");
			uint32_t gf = 0;
			qf_gguf_get_u32(g2, "deepseek2.expert_gating_func", &gf, &err);
			ok(gf == 1, "softmax routing recorded as gating func 1");
			const qf_tensor *ex = qf_gguf_find_tensor(g2, "blk.1.ffn_down_exps.weight");
			ok(ex && ex->ndim == 3 && ex->shape[0] == 4 && ex->shape[1] == 64 && ex->shape[2] == 32,
			   "experts stacked [4, 64, 32]");
		}
		qf_gguf_close(g2);
		qf_ckpt_close(ck2);
	}

	/* non-finite weights: error naming tensor and index; allowed with the option */
	{
		float wv[8] = { 1, 2, 3, NAN, 5, 6, 7, 8 }, nv[4] = { 1, 1, 1, 1 }, emb[8 * 4];
		for (int i = 0; i < 32; i++)
			emb[i] = (float)i;
		const char *dir = tu_path("nanmodel");
		mkdir(dir, 0755);
		qf_st_entry es[] = {
			{ .name = "model.embed_tokens.weight", .dtype = QF_F32, .ndim = 2, .shape = { 8, 4 }, .data = emb },
			{ .name = "model.norm.weight", .dtype = QF_F32, .ndim = 1, .shape = { 4 }, .data = nv },
			{ .name = "model.layers.0.input_layernorm.weight", .dtype = QF_F32, .ndim = 1, .shape = { 4 }, .data = nv },
			{ .name = "model.layers.0.mlp.up_proj.weight", .dtype = QF_F32, .ndim = 2, .shape = { 2, 4 }, .data = wv },
		};
		char p[4200];
		snprintf(p, sizeof p, "%s/model.safetensors", dir);
		qf_st_write(p, es, 4, NULL, &err);
		snprintf(p, sizeof p, "%s/config.json", dir);
		const char *cfg = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":4,\"num_hidden_layers\":1,"
				  "\"num_attention_heads\":2,\"vocab_size\":8,\"intermediate_size\":2,\"rms_norm_eps\":1e-5,"
				  "\"tie_word_embeddings\":true}";
		tu_write(p, cfg, strlen(cfg));
		snprintf(p, sizeof p, "%s/tokenizer.json", dir);
		const char *tj = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]},\"added_tokens\":[]}";
		tu_write(p, tj, strlen(tj));
		memset(&err, 0, sizeof err);
		qf_status s = convert(dir, QF_F32, 1, tu_path("nan.gguf"), &r1, &err);
		ok(s == QF_EFORMAT && strstr(err.msg, "model.layers.0.mlp.up_proj.weight") && strstr(err.msg, "row 0, column 3") &&
		   !tu_exists(tu_path("nan.gguf")), "NaN weight rejected naming tensor and index: %s", err.msg);
		qf_ckpt *c2 = NULL;
		cvt_plan *p2 = NULL;
		cvt_options o = { .outtype = QF_F32, .threads = 1, .allow_nonfinite = 1 };
		memset(&err, 0, sizeof err);
		s = qf_ckpt_open(dir, &c2, &err);
		if (!s)
			s = cvt_plan_build(c2, &o, &p2, &err);
		cvt_write_opts wo = { .force = 1, .threads = 1 };
		if (!s)
			s = cvt_write(p2, tu_path("nan.gguf"), &wo, NULL, &err);
		ok(s == QF_OK && tu_exists(tu_path("nan.gguf")), "--allow-nonfinite passes it through (%s)", err.msg);
		cvt_plan_free(p2);
		qf_ckpt_close(c2);
	}

	/* disk full: a file-size limit below the output size */
	{
		struct rlimit old, lim;
		getrlimit(RLIMIT_FSIZE, &old);
		lim = old;
		lim.rlim_cur = 100000;
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &lim);
		memset(&err, 0, sizeof err);
		const char *out = tu_path("full.gguf");
		qf_status s = convert(ds, QF_F32, 2, out, &r1, &err);
		setrlimit(RLIMIT_FSIZE, &old);
		ok(s == QF_EIO && strstr(err.msg, "full.gguf") && !tu_exists(out) && !tu_temps(tu_path("full.gguf")),
		   "disk full: I/O error, no partial output: %s", err.msg);
	}
	return tap_failures() ? 1 : 0;
}
