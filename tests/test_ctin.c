/*
 * compressed-tensors checkpoints as a source (convert/ct_source.c,
 * formats/ctquant.c):
 *   - a checkpoint written here, byte by byte, reads with known values;
 *   - every layout qforge writes reads back to exactly what an unpack written
 *     here from the format definition gives, each weight within half a step
 *     of the original;
 *   - a table of broken inputs, each an exit-3 error naming file and tensor.
 */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/ct_source.h"
#include "convert/hf.h"
#include "formats/checkpoint.h"
#include "formats/ctquant.h"
#include "formats/safetensors.h"
#include "quantize/profile.h"
#include "formats/gguf.h"
#include "tests/llama_oracle.h"
#include "tests/tap.h"
#include "tests/util.h"

static uint16_t bf16(float f) { return qf_f32_to_bf16(f); }

/* ---- a tensor set written here ------------------------------------------------------ */

#define MAXT 16
typedef struct tset {
	qf_st_entry e[MAXT];
	void *buf[MAXT];
	size_t n;
} tset;

static void *tput(tset *s, const char *name, qf_dtype dt, int ndim, int64_t d0, int64_t d1, size_t nbytes)
{
	qf_st_entry *e = &s->e[s->n];
	memset(e, 0, sizeof *e);
	e->name = name;
	e->dtype = dt;
	e->ndim = ndim;
	e->shape[0] = d0;
	e->shape[1] = d1;
	s->buf[s->n] = calloc(1, nbytes ? nbytes : 1);
	e->data = s->buf[s->n];
	return s->buf[s->n++];
}

static void tfree(tset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->buf[i]);
	s->n = 0;
}

/* Writes s to dir/model.safetensors and cfg to dir/config.json. */
static int write_ckpt(const char *dir, const tset *s, const char *cfg)
{
	char f[4200];
	qf_err e = { { 0 } };
	snprintf(f, sizeof f, "mkdir -p '%s'", dir);
	if (system(f) != 0)
		return -1;
	snprintf(f, sizeof f, "%s/model.safetensors", dir);
	if (qf_st_write(f, s->e, s->n, NULL, &e))
		return -1;
	snprintf(f, sizeof f, "%s/config.json", dir);
	return tu_write(f, cfg, strlen(cfg));
}

/* Packs signed b-bit codes q[K] into words LSB first (element k at bits (k·b) mod 32 of word k·b/32). */
static void pack_row(const int *q, int64_t K, int b, uint32_t *w)
{
	memset(w, 0, (size_t)((K * b + 31) / 32) * 4);
	for (int64_t k = 0; k < K; k++)
		w[k * b / 32] |= (uint32_t)(q[k] + (1 << (b - 1))) << ((k * b) % 32);
}

/*
 * Writes a hand-built tensor set and config as dir NAME, frees the set, and opens it as a
 * compressed-tensors checkpoint: NULL (after a failed check saying WHAT) when it does not read.
 */
static qf_ckpt *hand_open(tset *s, const char *name, const char *cfg, const char *what, cvt_ct_summary *sum)
{
	const char *dir = tu_path(name);
	ok(write_ckpt(dir, s, cfg) == 0, "%s checkpoint written", name);
	tfree(s);
	qf_err e = { { 0 } };
	qf_ckpt *ck = NULL;
	qf_status st = qf_ckpt_open(dir, &ck, &e);
	if (!st)
		st = cvt_ct_attach(ck, sum, &e);
	is_int(0, st, "%s reads: %s", what, e.msg);
	if (st) {
		qf_ckpt_close(ck);
		return NULL;
	}
	return ck;
}

/* ---- 1. a hand-built checkpoint with known values -------------------------------------- */

static const char *hand_cfg =
	"{\"architectures\": [\"LlamaForCausalLM\"], \"torch_dtype\": \"bfloat16\", \"quantization_config\": {"
	"\"quant_method\": \"compressed-tensors\", \"format\": \"mixed-precision\", \"quantization_status\": \"compressed\","
	"\"config_groups\": {"
	" \"g4\": {\"targets\": [\"re:.*down_proj$\"], \"format\": \"pack-quantized\", \"weights\": {\"num_bits\": 4, \"type\": \"int\","
	"   \"symmetric\": true, \"strategy\": \"group\", \"group_size\": 32, \"dynamic\": false, \"actorder\": \"weight\"}},"
	" \"ga\": {\"targets\": [\"model.layers.0.mlp.up_proj\"], \"format\": \"pack-quantized\", \"weights\": {\"num_bits\": 4,"
	"   \"type\": \"int\", \"symmetric\": false, \"strategy\": \"channel\"}},"
	" \"g8\": {\"targets\": [\"re:.*q_proj\"], \"format\": \"int-quantized\", \"weights\": {\"num_bits\": 8, \"type\": \"int\","
	"   \"symmetric\": false, \"strategy\": \"channel\"}, \"input_activations\": {\"num_bits\": 8, \"dynamic\": true, \"strategy\": \"token\"}},"
	" \"gf\": {\"targets\": [\"Linear\"], \"format\": \"float-quantized\", \"weights\": {\"num_bits\": 8, \"type\": \"float\","
	"   \"strategy\": \"block\", \"block_structure\": [2, 32]}}},"
	"\"ignore\": [\"lm_head\", \"re:.*mlp\\\\.gate$\"], \"kv_cache_scheme\": null, \"sparsity_config\": {}, \"transform_config\": {}}}";

static void test_hand(void)
{
	tset s = { .n = 0 };
	/* down_proj: int4 g32 sym, [2, 64]: row r, element k has q = ((k + 3r) mod 16) − 8, scales 0.5, 0.25 / 2, 4 */
	int q[64];
	uint32_t *w = tput(&s, "model.layers.0.mlp.down_proj.weight_packed", QF_I32, 2, 2, 8, 2 * 8 * 4);
	for (int r = 0; r < 2; r++) {
		for (int k = 0; k < 64; k++)
			q[k] = ((k + 3 * r) % 16) - 8;
		pack_row(q, 64, 4, w + 8 * r);
	}
	uint16_t *sc = tput(&s, "model.layers.0.mlp.down_proj.weight_scale", QF_BF16, 2, 2, 2, 8);
	sc[0] = bf16(0.5f), sc[1] = bf16(0.25f), sc[2] = bf16(2.0f), sc[3] = bf16(4.0f);
	int32_t *sh = tput(&s, "model.layers.0.mlp.down_proj.weight_shape", QF_I32, 1, 2, 0, 8); /* int32, as Kimi-K2 ships */
	sh[0] = 2, sh[1] = 64;
	/* up_proj: int4 per channel asym, [3, 8]: zp 1, −2, 7 packed along dim 0; q = k − 4; scale 1, 0.5, 0.125 */
	uint32_t *wu = tput(&s, "model.layers.0.mlp.up_proj.weight_packed", QF_I32, 2, 3, 1, 12);
	for (int r = 0; r < 3; r++) {
		for (int k = 0; k < 8; k++)
			q[k] = k - 4;
		pack_row(q, 8, 4, wu + r);
	}
	uint16_t *su = tput(&s, "model.layers.0.mlp.up_proj.weight_scale", QF_BF16, 2, 3, 1, 6);
	su[0] = bf16(1.0f), su[1] = bf16(0.5f), su[2] = bf16(0.125f);
	uint32_t *zu = tput(&s, "model.layers.0.mlp.up_proj.weight_zero_point", QF_I32, 2, 1, 1, 4);
	*zu = (uint32_t)(1 + 8) | (uint32_t)(-2 + 8) << 4 | (uint32_t)(7 + 8) << 8;
	int64_t *shu = tput(&s, "model.layers.0.mlp.up_proj.weight_shape", QF_I64, 1, 2, 0, 16);
	shu[0] = 3, shu[1] = 8;
	/* q_proj: int8 per channel asym, [2, 4], zp int8 [2, 1] = 3, −1; scale 0.5, 2 */
	int8_t *wq = tput(&s, "model.layers.0.self_attn.q_proj.weight", QF_I8, 2, 2, 4, 8);
	for (int i = 0; i < 8; i++)
		wq[i] = (int8_t)(i * 37 - 128);
	uint16_t *sq = tput(&s, "model.layers.0.self_attn.q_proj.weight_scale", QF_BF16, 2, 2, 1, 4);
	sq[0] = bf16(0.5f), sq[1] = bf16(2.0f);
	int8_t *zq = tput(&s, "model.layers.0.self_attn.q_proj.weight_zero_point", QF_I8, 2, 2, 1, 2);
	zq[0] = 3, zq[1] = -1;
	float *is = tput(&s, "model.layers.0.self_attn.q_proj.input_scale", QF_F32, 1, 1, 0, 4);
	*is = 0.1f;
	/* o_proj: fp8 block [2, 32] over [4, 64]: codes 0x38 (1.0) and 0xC0 (−2.0), scales 1, 2, 0.5, 4 (F32) */
	uint8_t *wo = tput(&s, "model.layers.0.self_attn.o_proj.weight", QF_F8_E4M3, 2, 4, 64, 256);
	for (int i = 0; i < 256; i++)
		wo[i] = i % 2 ? 0xC0 : 0x38;
	float *so = tput(&s, "model.layers.0.self_attn.o_proj.weight_scale", QF_F32, 2, 2, 2, 16);
	so[0] = 1, so[1] = 2, so[2] = 0.5f, so[3] = 4;
	/* plain: the router (ignored), a norm */
	uint16_t *gt = tput(&s, "model.layers.0.mlp.gate.weight", QF_BF16, 2, 2, 4, 16);
	gt[5] = bf16(1.5f);
	tput(&s, "model.layers.0.input_layernorm.weight", QF_BF16, 1, 4, 0, 8);
	cvt_ct_summary sum;
	qf_ckpt *ck = hand_open(&s, "hand", hand_cfg, "mixed-precision config with four groups", &sum);
	if (!ck)
		return;
	is_int(4, (long long)sum.n_quant, "four quantized modules (%s)", sum.schemes);
	is_int(6, (long long)qf_st_count(ck->st), "six tensors seen: four weights, the router and a norm (%zu stored)",
	       qf_st_raw_count(ck->st));
	ok(!qf_st_find(ck->st, "model.layers.0.self_attn.q_proj.input_scale") &&
	   !qf_st_find(ck->st, "model.layers.0.mlp.down_proj.weight_packed"), "companions and activation scales are hidden");
	const qf_tensor *t = qf_st_find(ck->st, "model.layers.0.mlp.down_proj.weight");
	ok(t && t->ctq && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 64 && t->dtype == QF_BF16,
	   "down_proj.weight: [2, 64], read as bf16 (torch_dtype)");
	float out[256];
	int bad = 0;
	if (t) {
		qf_ctq_rows(t->ctq, 0, 2, out);
		static const float s4[2][2] = { { 0.5f, 0.25f }, { 2.0f, 4.0f } };
		for (int r = 0; r < 2; r++)
			for (int k = 0; k < 64; k++)
				bad += out[r * 64 + k] != (float)(((k + 3 * r) % 16) - 8) * s4[r][k / 32];
		is_double(-4.0, out[0], 0, "down_proj[0][0]: code 0 → q −8 × 0.5");
		is_double(1.75, out[47], 0, "down_proj[0][47]: q 15 − 8 = 7 × 0.25");
	}
	is_int(0, bad, "down_proj: every element is ((k + 3r) mod 16 − 8) · scale[r][k / 32]");
	t = qf_st_find(ck->st, "model.layers.0.mlp.up_proj.weight");
	bad = !t;
	if (t) {
		qf_ctq_rows(t->ctq, 0, 3, out);
		static const float su4[3] = { 1.0f, 0.5f, 0.125f };
		static const int zp4[3] = { 1, -2, 7 };
		for (int r = 0; r < 3; r++)
			for (int k = 0; k < 8; k++)
				bad += out[r * 8 + k] != (float)(k - 4 - zp4[r]) * su4[r];
		is_double(-0.125 * 11, out[16], 0, "up_proj[2][0]: (−4 − 7) × 0.125");
	}
	is_int(0, bad, "up_proj (asym, zero points packed along dim 0): (q − zp) · scale everywhere");
	t = qf_st_find(ck->st, "model.layers.0.self_attn.q_proj.weight");
	bad = !t;
	if (t) {
		qf_ctq_rows(t->ctq, 0, 2, out);
		for (int i = 0; i < 8; i++)
			bad += out[i] != (float)((int8_t)(i * 37 - 128) - (i < 4 ? 3 : -1)) * (i < 4 ? 0.5f : 2.0f);
	}
	is_int(0, bad, "q_proj (int-quantized, int8 zero points): (q − zp) · scale");
	t = qf_st_find(ck->st, "model.layers.0.self_attn.o_proj.weight");
	bad = !t;
	if (t) {
		qf_ctq_rows(t->ctq, 0, 4, out);
		static const float so4[2][2] = { { 1, 2 }, { 0.5f, 4 } };
		for (int r = 0; r < 4; r++)
			for (int k = 0; k < 64; k++)
				bad += out[r * 64 + k] != (k % 2 ? -2.0f : 1.0f) * so4[r / 2][k / 32];
	}
	is_int(0, bad, "o_proj (float-quantized, blocks of 2 × 32 with F32 scales): e4m3 · scale[r / 2][k / 32]");
	t = qf_st_find(ck->st, "model.layers.0.mlp.gate.weight");
	ok(t && !t->ctq && t->dtype == QF_BF16, "the ignored router is read as stored");
	qf_ckpt_close(ck);
}

/*
 * 1b. The rest of what the reader takes, by hand: 2-bit packing in groups of 48 (not a power
 * of two, dividing the row of 96), naive-quantized int8, and FP8 with per-channel and
 * per-tensor scales.
 */
static const char *hand2_cfg =
	"{\"architectures\": [\"LlamaForCausalLM\"], \"torch_dtype\": \"bfloat16\", \"quantization_config\": {"
	"\"quant_method\": \"compressed-tensors\", \"format\": \"mixed-precision\", \"quantization_status\": \"compressed\","
	"\"config_groups\": {"
	" \"g2\": {\"targets\": [\"re:.*k_proj$\"], \"format\": \"pack-quantized\", \"weights\": {\"num_bits\": 2, \"type\": \"int\","
	"   \"symmetric\": true, \"strategy\": \"group\", \"group_size\": 48}},"
	" \"gn\": {\"targets\": [\"re:.*v_proj$\"], \"format\": \"naive-quantized\", \"weights\": {\"num_bits\": 8, \"type\": \"int\","
	"   \"symmetric\": true, \"strategy\": \"channel\"}},"
	" \"gc\": {\"targets\": [\"re:.*o_proj$\"], \"format\": \"float-quantized\", \"weights\": {\"num_bits\": 8, \"type\": \"float\","
	"   \"strategy\": \"channel\"}},"
	" \"gt\": {\"targets\": [\"re:.*gate_proj$\"], \"format\": \"float-quantized\", \"weights\": {\"num_bits\": 8, \"type\": \"float\","
	"   \"strategy\": \"tensor\"}}},"
	"\"ignore\": [\"lm_head\"]}}";

static void test_hand2(void)
{
	tset s = { .n = 0 };
	/* k_proj: int2 g48 sym, [2, 96]: q = ((k + r) mod 4) − 2, scales 0.5, 0.25 / 1, 8 */
	int q[96];
	uint32_t *w = tput(&s, "model.layers.0.self_attn.k_proj.weight_packed", QF_I32, 2, 2, 6, 2 * 6 * 4);
	for (int r = 0; r < 2; r++) {
		for (int k = 0; k < 96; k++)
			q[k] = ((k + r) % 4) - 2;
		pack_row(q, 96, 2, w + 6 * r);
	}
	uint16_t *sc = tput(&s, "model.layers.0.self_attn.k_proj.weight_scale", QF_BF16, 2, 2, 2, 8);
	sc[0] = bf16(0.5f), sc[1] = bf16(0.25f), sc[2] = bf16(1.0f), sc[3] = bf16(8.0f);
	int64_t *sh = tput(&s, "model.layers.0.self_attn.k_proj.weight_shape", QF_I64, 1, 2, 0, 16);
	sh[0] = 2, sh[1] = 96;
	/* v_proj: naive int8 per channel, [2, 4]: q = 29i − 100; scales 0.125, 3 */
	int8_t *wv = tput(&s, "model.layers.0.self_attn.v_proj.weight", QF_I8, 2, 2, 4, 8);
	for (int i = 0; i < 8; i++)
		wv[i] = (int8_t)(29 * i - 100);
	uint16_t *sv = tput(&s, "model.layers.0.self_attn.v_proj.weight_scale", QF_BF16, 2, 2, 1, 4);
	sv[0] = bf16(0.125f), sv[1] = bf16(3.0f);
	/* o_proj: fp8 per channel, [3, 4]: codes 0x38 (1.0) / 0xC0 (−2.0) alternating; scales 1, 0.5, 4 (F32) */
	uint8_t *wo = tput(&s, "model.layers.0.self_attn.o_proj.weight", QF_F8_E4M3, 2, 3, 4, 12);
	for (int i = 0; i < 12; i++)
		wo[i] = i % 2 ? 0xC0 : 0x38;
	float *so = tput(&s, "model.layers.0.self_attn.o_proj.weight_scale", QF_F32, 2, 3, 1, 12);
	so[0] = 1, so[1] = 0.5f, so[2] = 4;
	/* gate_proj: fp8 per tensor, [2, 4]: codes 0x40 (2.0); one scale 0.75 */
	uint8_t *wg = tput(&s, "model.layers.0.mlp.gate_proj.weight", QF_F8_E4M3, 2, 2, 4, 8);
	memset(wg, 0x40, 8);
	float *sg = tput(&s, "model.layers.0.mlp.gate_proj.weight_scale", QF_F32, 1, 1, 0, 4);
	*sg = 0.75f;
	tput(&s, "model.layers.0.input_layernorm.weight", QF_BF16, 1, 4, 0, 8);
	cvt_ct_summary sum;
	qf_ckpt *ck = hand_open(&s, "hand2", hand2_cfg, "int2 g48, naive int8, fp8 per channel and per tensor", &sum);
	if (!ck)
		return;
	is_int(4, (long long)sum.n_quant, "four quantized modules (%s)", sum.schemes);
	float out[192];
	const qf_tensor *t = qf_st_find(ck->st, "model.layers.0.self_attn.k_proj.weight");
	int bad = !t || t->shape[0] != 2 || t->shape[1] != 96;
	if (!bad) {
		qf_ctq_rows(t->ctq, 0, 2, out);
		static const float s2[2][2] = { { 0.5f, 0.25f }, { 1.0f, 8.0f } };
		for (int r = 0; r < 2; r++)
			for (int k = 0; k < 96; k++)
				bad += out[r * 96 + k] != (float)(((k + r) % 4) - 2) * s2[r][k / 48];
	}
	is_int(0, bad, "k_proj (int2, groups of 48): ((k + r) mod 4 − 2) · scale[r][k / 48] everywhere");
	t = qf_st_find(ck->st, "model.layers.0.self_attn.v_proj.weight");
	bad = !t || !t->ctq;
	if (!bad) {
		qf_ctq_rows(t->ctq, 0, 2, out);
		for (int i = 0; i < 8; i++)
			bad += out[i] != (float)(int8_t)(29 * i - 100) * (i < 4 ? 0.125f : 3.0f);
	}
	is_int(0, bad, "v_proj (naive-quantized int8 per channel): q · scale[r]");
	t = qf_st_find(ck->st, "model.layers.0.self_attn.o_proj.weight");
	bad = !t || !t->ctq;
	if (!bad) {
		qf_ctq_rows(t->ctq, 0, 3, out);
		static const float sc3[3] = { 1, 0.5f, 4 };
		for (int i = 0; i < 12; i++)
			bad += out[i] != (i % 2 ? -2.0f : 1.0f) * sc3[i / 4];
	}
	is_int(0, bad, "o_proj (fp8, per-channel scales): e4m3 · scale[r]");
	t = qf_st_find(ck->st, "model.layers.0.mlp.gate_proj.weight");
	bad = !t || !t->ctq;
	if (!bad) {
		qf_ctq_rows(t->ctq, 0, 2, out);
		for (int i = 0; i < 8; i++)
			bad += out[i] != 1.5f;
	}
	is_int(0, bad, "gate_proj (fp8, one per-tensor scale): 2.0 · 0.75 everywhere");
	qf_ckpt_close(ck);
}

/* ---- 2. round trips through qforge's own writer ------------------------------------------ */

static float scale_val(const qf_tensor *t, uint64_t i)
{
	uint16_t h;
	float f;
	switch (t->dtype) {
	case QF_BF16: memcpy(&h, t->data + 2 * i, 2); return qf_bf16_to_f32(h);
	case QF_F16: memcpy(&h, t->data + 2 * i, 2); return qf_f16_to_f32(h);
	default: memcpy(&f, t->data + 4 * i, 4); return f;
	}
}

/*
 * Dequantizes module mod of a raw tensor set from the definition alone (CT's
 * unpack_from_int32 and dequantize): out [N][K].  Block scales are 128 × 128.
 * Returns 0 when the module's tensors are not a layout this unpack knows.
 */
static int unpack_ref(const qf_st *st, const char *mod, int bits, int block, int64_t N, int64_t K, float *out, float *step)
{
	char n[640];
	snprintf(n, sizeof n, "%s.weight_scale", mod);
	const qf_tensor *sc = qf_st_raw_find(st, n);
	snprintf(n, sizeof n, "%s.weight_packed", mod);
	const qf_tensor *pk = qf_st_raw_find(st, n);
	snprintf(n, sizeof n, "%s.weight", mod);
	const qf_tensor *wt = qf_st_raw_find(st, n);
	snprintf(n, sizeof n, "%s.weight_zero_point", mod);
	const qf_tensor *zp = qf_st_raw_find(st, n);
	if (!sc || (!pk && !wt))
		return 0;
	int64_t G = sc->ndim == 2 ? sc->shape[1] : 1, SR = sc->ndim == 2 ? sc->shape[0] : 1;
	int pf = 32 / bits, off = 1 << (bits - 1);
	for (int64_t r = 0; r < N; r++) {
		for (int64_t k = 0; k < K; k++) {
			int64_t g = block ? k / 128 : k / (K / G), sr = block ? r / 128 : (SR == 1 ? 0 : r);
			float s = scale_val(sc, (uint64_t)(sr * G + g)), v;
			int z = 0;
			if (zp) {
				int32_t word;
				memcpy(&word, zp->data + 4 * ((r / pf) * G + g), 4);
				z = (int)(((uint32_t)word >> (bits * (r % pf))) & ((1u << bits) - 1)) - off;
			}
			if (pk) {
				int32_t word;
				memcpy(&word, pk->data + 4 * (r * pk->shape[1] + k / pf), 4);
				v = (float)((int)(((uint32_t)word >> (bits * (k % pf))) & ((1u << bits) - 1)) - off - z) * s;
			} else if (wt->dtype == QF_I8) {
				v = (float)((int8_t)wt->data[r * K + k] - z) * s;
			} else {
				v = qf_e4m3_to_f32(wt->data[r * K + k]) * s;
			}
			out[r * K + k] = v;
			step[r * K + k] = s;
		}
	}
	return 1;
}

/* A compressed-tensors folder from src by target, every pack-quantized item re-planned with scheme (if given). */
static qf_status write_ct(const char *src, const char *target, const char *scheme, const char *out, qf_err *e)
{
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 2 };
	cvt_hf_plan *p = NULL;
	qnt_profile prof;
	qf_status s = cvt_hf_plan_open(src, &o, &p, e);
	if (!s && !(s = qnt_profile_find(target, &prof, e))) {
		s = qnt_hf_plan_apply(p, &prof, NULL, NULL, 0, e);
		qnt_profile_free(&prof);
	}
	cvt_hf_scheme want;
	if (!s && scheme && cvt_hf_scheme_parse(scheme, &want)) {
		for (size_t i = 0; i < p->n; i++) {
			cvt_hf_item *it = &p->items[i];
			/* the items the target packs, and those it kept because its group did not divide the row */
			if ((it->sch.enc == CVT_HF_CT_PACK || it->fallback) && (!want.group || it->t->shape[1] % want.group == 0)) {
				it->sch = want;
				it->fallback = 0;
				it->scale_dtype = p->torch_dtype;
			}
		}
	}
	cvt_hf_write_opts wo = { .threads = 2, .force = 1 };
	cvt_result res;
	if (!s)
		s = cvt_hf_write(p, out, &wo, &res, e);
	cvt_hf_plan_free(p);
	return s;
}

typedef struct rt_case {
	const char *target, *scheme; /* scheme: every CT_PACK item re-planned with it, or NULL */
	int bits;
	int fp8;
} rt_case;

static void test_roundtrip(void)
{
	static const rt_case cases[] = {
		{ "vllm-w4a16", NULL, 4, 0 },          /* g128 */
		{ "vllm-w4a16", "int4-g32", 4, 0 },   { "vllm-w4a16", "int4-g64", 4, 0 },
		{ "vllm-w4a16", "int4-ch", 4, 0 },    { "vllm-w4a16", "int4-g32-asym", 4, 0 },
		{ "vllm-w4a16", "int4-g128-asym", 4, 0 },
		{ "vllm-w8a16", NULL, 8, 0 },         { "vllm-w8a16", "int8-g128", 8, 0 },
		{ "vllm-w8a8", NULL, 8, 0 },          { "vllm-fp8-block-ct", NULL, 8, 1 },
	};
	const char *bf = tu_src("models/tiny-dsv3-bf16");
	char bfp[4096];
	snprintf(bfp, sizeof bfp, "%s", bf);
	qf_st *orig = NULL;
	qf_err e = { { 0 } };
	if (qf_st_open(bfp, &orig, &e))
		bail("%s", e.msg);
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const rt_case *rc = &cases[c];
		int asym = rc->scheme && strstr(rc->scheme, "asym") != NULL;
		char out[4096], what[96];
		snprintf(what, sizeof what, "%s%s%s", rc->target, rc->scheme ? " " : "", rc->scheme ? rc->scheme : "");
		snprintf(out, sizeof out, "%s", tu_path(what));
		for (char *p = strrchr(out, '/'); p && *p; p++)
			if (*p == ' ')
				*p = '_';
		qf_status s = write_ct(bfp, rc->target, rc->scheme, out, &e);
		is_int(0, s, "%s: written from BF16: %s", what, e.msg);
		qf_ckpt *ck = NULL;
		cvt_ct_summary sum;
		if (!s && !(s = qf_ckpt_open(out, &ck, &e)))
			s = cvt_ct_attach(ck, &sum, &e);
		is_int(0, s, "%s: read back: %s", what, e.msg);
		if (s) {
			qf_ckpt_close(ck);
			continue;
		}
		size_t nq = 0, differ = 0, far = 0, plain_bad = 0;
		char first[256] = "";
		for (size_t i = 0; i < qf_st_count(ck->st); i++) {
			const qf_tensor *t = qf_st_get(ck->st, i), *u = qf_st_find(orig, t->name);
			if (!t->ctq) {
				/* a kept tensor is the original's bytes */
				plain_bad += !u || u->nbytes != t->nbytes || memcmp(u->data, t->data, t->nbytes);
				continue;
			}
			nq++;
			int64_t N = t->shape[0], K = t->shape[1];
			float *a = malloc((size_t)(N * K) * 4), *b = malloc((size_t)(N * K) * 4), *st = malloc((size_t)(N * K) * 4);
			float *x = malloc((size_t)(N * K) * 4);
			char mod[600];
			snprintf(mod, sizeof mod, "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
			qf_ctq_rows(t->ctq, 0, N, a);
			int known = unpack_ref(ck->st, mod, rc->bits, rc->fp8, N, K, b, st);
			if (u && u->dtype == QF_BF16 && (int64_t)u->nelems == N * K)
				qf_row_bf16_to_f32(u->data, x, N * K);
			else
				known = 0;
			for (int64_t j = 0; known && j < N * K; j++) {
				differ += a[j] != b[j];
				/* round to nearest on the stored scale: half a step, plus at the range's ends what the clamp
				 * adds when the bf16 scale rounded down (≤ 2^(b−1)·2^-8 steps); asymmetric grids also shift
				 * by the rounded zero point (another half step).  fp8: a relative 2^-4, or half the
				 * smallest subnormal step. */
				double d = fabs((double)a[j] - x[j]);
				double lim = rc->fp8 ? fmax(fabs((double)x[j]) / 16, st[j] * 0x1p-10)
					   : st[j] * ((asym ? 1.0 : 0.5) + (double)(1 << (rc->bits - 1 + asym)) / 256);
				far += d > lim * (1 + 1e-6) + 1e-30;
			}
			if ((!known || differ || far) && !first[0])
				snprintf(first, sizeof first, "%s%s", t->name, known ? "" : " (not unpacked)");
			differ += !known;
			free(a), free(b), free(st), free(x);
		}
		ok(nq > 0 && differ == 0, "%s: %zu modules (%s) decode to exactly the unpack written from the definition%s%s",
		   what, nq, sum.schemes, first[0] ? "; first bad " : "", first);
		is_int(0, (long long)far, "%s: every weight is within half a quantization step of the BF16 original (plus the clamp and zero-point terms)", what);
		is_int(0, (long long)plain_bad, "%s: the kept tensors are the original's bytes", what);
		qf_ckpt_close(ck);
	}
	qf_st_close(orig);
}

/* ---- 3. broken inputs ----------------------------------------------------------------------- */

enum mut { M_NONE, M_NO_SHAPE, M_WIDTH, M_SCALE_SHAPE, M_NAN, M_ZP_SHAPE, M_G_IDX, M_SHAPE_F32, M_SHAPE_VAL,
	   M_NO_SCALE, M_ZP };

#define MOD "model.layers.0.mlp.down_proj"

/* Module MOD: int4 [4, 64] packed, BF16 scales [4, 2] (group 32), weight_shape I64. */
static void broken_set(tset *s, enum mut m)
{
	uint32_t *w = tput(s, MOD ".weight_packed", QF_I32, 2, 4, m == M_WIDTH ? 7 : 8, 4 * 8 * 4);
	for (int i = 0; i < 32; i++)
		w[i] = 0x76543210u;
	if (m != M_NO_SCALE) {
		uint16_t *sc = tput(s, MOD ".weight_scale", QF_BF16, 2, 4, m == M_SCALE_SHAPE ? 3 : 2, 4 * 3 * 2);
		for (int i = 0; i < 12; i++)
			sc[i] = bf16(m == M_NAN && i == 5 ? NAN : 0.5f);
	}
	if (m == M_SHAPE_F32) {
		float *sh = tput(s, MOD ".weight_shape", QF_F32, 1, 2, 0, 8);
		sh[0] = 4, sh[1] = 64;
	} else if (m != M_NO_SHAPE) {
		int64_t *sh = tput(s, MOD ".weight_shape", QF_I64, 1, 2, 0, 16);
		sh[0] = 4, sh[1] = m == M_SHAPE_VAL ? 70 : 64;
	}
	if (m == M_ZP_SHAPE)
		tput(s, MOD ".weight_zero_point", QF_I32, 2, 1, 3, 12);
	if (m == M_ZP)
		tput(s, MOD ".weight_zero_point", QF_I32, 2, 1, 2, 8);
	if (m == M_G_IDX)
		tput(s, MOD ".weight_g_idx", QF_I32, 1, 64, 0, 256);
	tput(s, "model.norm.weight", QF_BF16, 1, 64, 0, 128);
}

#define CFG_HEAD "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", "
#define GROUP(w) "\"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"weights\": {" w "}}}"
#define W4 "\"num_bits\": 4, \"type\": \"int\", \"symmetric\": true, \"strategy\": \"group\", \"group_size\": 32"
#define W4A "\"num_bits\": 4, \"type\": \"int\", \"symmetric\": false, \"strategy\": \"group\", \"group_size\": 32"
#define CFG(extra, w) CFG_HEAD "\"format\": \"pack-quantized\", " extra GROUP(w) "}}"

typedef struct broken {
	const char *what;
	enum mut m;
	const char *cfg;
	const char *says;         /* in the message */
	const char *tensor;       /* the tensor the message names, or NULL: config.json is named */
} broken;

static const broken cases[] = {
	{ "the base case", M_NONE, CFG("", W4), NULL, NULL },
	{ "asymmetric with its zero points", M_ZP, CFG("", W4A), NULL, NULL },
	{ "missing weight_shape", M_NO_SHAPE, CFG("", W4), "weight_shape", MOD ".weight_packed" },
	{ "packed width ≠ shape", M_WIDTH, CFG("", W4), "packed shape [4, 7]", MOD ".weight_packed" },
	{ "weight_shape values ≠ packed", M_SHAPE_VAL, CFG("", W4), "weight_shape [4, 70]", MOD ".weight_packed" },
	{ "weight_shape of F32", M_SHAPE_F32, CFG("", W4), "I32 or I64", MOD ".weight_shape" },
	{ "scale shape wrong", M_SCALE_SHAPE, CFG("", W4), "scale shape [4, 3]", MOD ".weight_scale" },
	{ "group size not dividing the row", M_NONE,
	  CFG("", "\"num_bits\": 4, \"type\": \"int\", \"strategy\": \"group\", \"group_size\": 48"), "does not divide",
	  MOD ".weight_packed" },
	{ "unknown format", M_NONE, CFG_HEAD "\"format\": \"pack-quantised\", " GROUP(W4) "}}", "\"pack-quantised\" (group group_0) is unknown",
	  MOD ".weight_scale" },
	{ "a format qforge does not read", M_NONE, CFG_HEAD "\"format\": \"nvfp4-pack-quantized\", " GROUP(W4) "}}",
	  "is not read", MOD ".weight_scale" },
	{ "zero-point shape wrong", M_ZP_SHAPE, CFG("", W4A), "zero-point shape [1, 3]", MOD ".weight_zero_point" },
	{ "asymmetric without zero points", M_NONE, CFG("", W4A), "weight_zero_point", MOD ".weight_packed" },
	{ "non-finite scale", M_NAN, CFG("", W4), "non-finite scale", MOD ".weight_scale" },
	{ "weight_g_idx (act-order)", M_G_IDX, CFG("", W4), "weight_g_idx", MOD ".weight_g_idx" },
	{ "a companion without its scale", M_NO_SCALE, CFG("", W4), "without its scale", MOD ".weight_packed" },
	{ "3-bit packing", M_NONE, CFG("", "\"num_bits\": 3, \"type\": \"int\", \"strategy\": \"group\", \"group_size\": 32"),
	  "3-bit", MOD ".weight_scale" },
	{ "ignored but stored quantized", M_NONE, CFG("\"ignore\": [\"re:.*down_proj$\"], ", W4), "ignore",
	  MOD ".weight_scale" },
	{ "no group targets the module", M_NONE,
	  CFG_HEAD "\"format\": \"pack-quantized\", \"config_groups\": {\"g\": {\"targets\": [\"re:.*q_proj$\"], \"weights\": {" W4 "}}}}}",
	  "no quantization_config.config_groups", MOD ".weight_scale" },
	{ "actorder group", M_NONE, CFG("", W4 ", \"actorder\": \"group\""), "actorder group", NULL },
	{ "dynamic weights", M_NONE, CFG("", W4 ", \"dynamic\": true"), "dynamic weight quantization", NULL },
	{ "a transform", M_NONE, CFG("\"transform_config\": {\"config_groups\": {\"u\": {}}}, ", W4), "transform_config", NULL },
	{ "status frozen", M_NONE, CFG("\"quantization_status\": \"frozen\", ", W4), "only compressed", NULL },
	{ "sparsity", M_NONE, CFG("\"sparsity_config\": {\"format\": \"sparse-24-bitmask\"}, ", W4), "sparsity_config", NULL },
	{ "a broken regex", M_NONE, CFG("\"ignore\": [\"re:(x\"], ", W4), "is not a regex", NULL },
};

static void test_broken(void)
{
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const broken *b = &cases[c];
		tset s = { .n = 0 };
		broken_set(&s, b->m);
		char dir[64];
		snprintf(dir, sizeof dir, "broken%zu", c);
		const char *d = tu_path(dir);
		char dd[4096];
		snprintf(dd, sizeof dd, "%s", d);
		int w = write_ckpt(dd, &s, b->cfg);
		tfree(&s);
		qf_err e = { { 0 } };
		qf_ckpt *ck = NULL;
		qf_status st = w ? QF_EIO : qf_ckpt_open(dd, &ck, &e);
		if (!st)
			st = cvt_ct_attach(ck, NULL, &e);
		if (!b->says) {
			is_int(0, st, "%s reads: %s", b->what, e.msg);
		} else {
			const char *file = b->tensor ? "model.safetensors: tensor '" : "config.json: ";
			int names = strstr(e.msg, file) && (!b->tensor || strstr(e.msg, b->tensor)) && strstr(e.msg, b->says);
			ok(st == QF_EFORMAT && names, "%s: exit 3 naming %s%s: %s", b->what, b->tensor ? "file and " : "config.json",
			   b->tensor ? b->tensor : "", e.msg);
		}
		qf_ckpt_close(ck);
	}
}


/* ---- 4. lossless q4_0 / q4_1 ------------------------------------------------------------- */

/* ggml's own decoder (ggml.h struct ggml_type_traits, first fields). */
typedef struct tl_ggml_traits {
	const char *type_name;
	int64_t blck_size, blck_size_interleave;
	size_t type_size;
	bool is_quantized;
	void (*to_float)(const void *x, float *y, int64_t k);
} tl_ggml_traits;

/* Plans src for llamacpp-q4_0 (plan kept in *out), writes gguf. */
static qf_status quantize_q4(const char *src, const char *gguf, cvt_plan **out, qf_err *e)
{
	cvt_options o = { .outtype = QF_DTYPE_NONE, .threads = 2 };
	cvt_plan *p = NULL;
	qnt_profile prof;
	qf_status s = cvt_plan_open(src, &o, &p, e);
	if (!s && !(s = qnt_profile_find("llamacpp-q4_0", &prof, e))) {
		s = qnt_plan_apply(p, &prof, NULL, 0, 0, e);
		qnt_profile_free(&prof);
	}
	cvt_write_opts wo = { .force = 1, .threads = 2 };
	cvt_result res;
	if (!s)
		s = cvt_write(p, gguf, &wo, &res, e);
	if (s)
		cvt_plan_free(p);
	else
		*out = p;
	return s;
}

/*
 * Every repacked tensor of gguf, decoded by dec (ours, or ggml's), equals the
 * source rows the plan reads (the compressed-tensors dequantization) element
 * by element.  Returns the count of repacked tensors; *bad the differing ones.
 */
static size_t check_repack(cvt_plan *p, const char *gguf, void (*dec)(const void *, float *, int64_t), qf_dtype want,
			   size_t *bad, size_t *wrong_fmt, char *first, size_t fn)
{
	qf_gguf *g = NULL;
	qf_err e = { { 0 } };
	size_t n = 0;
	*bad = *wrong_fmt = 0;
	if (qf_gguf_open(gguf, &g, &e))
		return 0;
	for (size_t i = 0; i < cvt_plan_count(p); i++) {
		const cvt_item *it = cvt_plan_item(p, i);
		if (it->repack != 1)
			continue;
		n++;
		const qf_tensor *t = qf_gguf_find_tensor(g, it->name);
		int64_t C = cvt_item_row_len(it), R = cvt_item_rows(it);
		int okk = t && t->dtype == want;
		*wrong_fmt += !okk;
		float *x = malloc((size_t)C * 4), *y = malloc((size_t)C * 4);
		size_t rb = t ? (size_t)(C / 32) * qf_dtype_info(t->dtype)->block_bytes : 0;
		for (int64_t r = 0; okk && r < R; r++) {
			if (cvt_item_rows_f32(it, r, 1, x, NULL, 0, &e))
				okk = 0;
			dec(t->data + (uint64_t)r * rb, y, C);
			for (int64_t k = 0; okk && k < C; k++)
				okk = x[k] == y[k];
		}
		if (!okk && !*bad)
			snprintf(first, fn, "%s", it->name);
		*bad += !okk;
		free(x), free(y);
	}
	qf_gguf_close(g);
	return n;
}

/* q4_1 from an asymmetric int4 g32 weight whose mins are fp16s: [2, 64], by hand; dec2: ggml's, or NULL. */
static void test_q4_1_unit(void (*dec2)(const void *, float *, int64_t))
{
	uint32_t w[2][8], zpw[2] = { 0, 0 };
	int q[64];
	for (int r = 0; r < 2; r++) {
		for (int k = 0; k < 64; k++)
			q[k] = ((5 * k + r) % 16) - 8;
		pack_row(q, 64, 4, w[r]);
	}
	uint16_t sc[4] = { bf16(0.5f), bf16(0.25f), bf16(1.0f), bf16(2.0f) };
	static const int zp[2][2] = { { 3, -8 }, { 7, 0 } }; /* [row][group] */
	for (int r = 0; r < 2; r++)
		for (int g = 0; g < 2; g++)
			zpw[g] |= (uint32_t)(zp[r][g] + 8) << (4 * r);
	qf_ctq v = { .kind = QF_CTQ_PACK, .bits = 4, .N = 2, .K = 64, .q = (const uint8_t *)w, .scale = (const uint8_t *)sc,
		     .sdt = QF_BF16, .br = 1, .bc = 32, .scols = 2, .zp = (const uint8_t *)zpw, .zp_packed = 1 };
	const char *why = "";
	int64_t br, bk;
	ok(qf_ctq_q4_check(&v, 1, &why, &br, &bk), "q4_1: scales and mins −s·(zp + 8) of the hand-built weight are fp16s (%s)", why);
	ok(!qf_ctq_q4_check(&v, 0, &why, &br, &bk) && strstr(why, "asymmetric"), "q4_0 refuses an asymmetric weight: %s", why);
	uint8_t blk[2][2 * 20];
	float x[64], y[64], z[64];
	int bad = 0, bad2 = 0;
	for (int r = 0; r < 2; r++) {
		qf_ctq_q4_row(&v, r, 1, blk[r]);
		qf_ctq_rows(&v, r, 1, x);
		qf_dtype_info(QF_Q4_1)->to_f32(blk[r], y, 64);
		for (int k = 0; k < 64; k++) {
			bad += y[k] != x[k] || x[k] != (float)(((5 * k + r) % 16) - 8 - zp[r][k / 32]) * qf_bf16_to_f32(sc[r * 2 + k / 32]);
			if (dec2) {
				dec2(blk[r], z, 64);
				bad2 += z[k] != x[k];
			}
		}
	}
	is_int(0, bad, "q4_1 blocks decode to (q − zp) · scale exactly (qforge's decoder)");
	if (dec2)
		is_int(0, bad2, "… and with ggml's dequantize_row_q4_1");
	/* a min no fp16 holds: (255/256) · (zp + 8) with zp = 5 is 3315/256, 12 significant bits */
	sc[0] = bf16(0.99609375f);
	zpw[0] = (uint32_t)(5 + 8);
	ok(!qf_ctq_q4_check(&v, 1, &why, &br, &bk) && strstr(why, "min") && br == 0 && bk == 0,
	   "a min that no fp16 holds is found at row %lld, column %lld: %s", (long long)br, (long long)bk, why);
}

static void test_repack(void)
{
	qf_err e = { { 0 } };
	char bfp[4096], ct[4096], cta[4096], ctb[4096], g0[4096], g1[4096], g2[4096], first[256] = "";
	snprintf(bfp, sizeof bfp, "%s", tu_src("models/tiny-dsv3-bf16"));
	snprintf(ct, sizeof ct, "%s", tu_path("rp-g32"));
	snprintf(cta, sizeof cta, "%s", tu_path("rp-g32-asym"));
	snprintf(ctb, sizeof ctb, "%s", tu_path("rp-g32-bad"));
	snprintf(g0, sizeof g0, "%s", tu_path("rp-g32.gguf"));
	snprintf(g1, sizeof g1, "%s", tu_path("rp-g32-asym.gguf"));
	snprintf(g2, sizeof g2, "%s", tu_path("rp-g32-bad.gguf"));
	ok(!write_ct(bfp, "vllm-w4a16", "int4-g32", ct, &e) && !write_ct(bfp, "vllm-w4a16", "int4-g32-asym", cta, &e) &&
	   !write_ct(bfp, "vllm-w4a16", "int4-g32", ctb, &e), "int4 g32 sources (symmetric, asymmetric) written: %s", e.msg);
	/* one scale of one expert that no fp16 holds: 2^-20 + 2^-27 (bf16 0x3581) */
	const char *victim = "model.layers.1.mlp.experts.1.down_proj.weight_scale";
	qf_st *st = NULL;
	char f[4200];
	snprintf(f, sizeof f, "%s/model.safetensors", ctb);
	int patched = 0;
	if (!qf_st_open(f, &st, &e)) {
		const qf_tensor *t = qf_st_find(st, victim);
		uint64_t off = t ? t->offset : 0;
		qf_st_close(st);
		size_t n = 0;
		uint8_t *b = off ? tu_read(f, &n) : NULL;
		if (b && off + 2 <= n) {
			b[off] = 0x81, b[off + 1] = 0x35;
			patched = tu_write(f, b, n) == 0;
		}
		free(b);
	}
	if (!patched)
		diag("patch: %s", e.msg);
	ok(patched, "one scale of %s set to bf16 0x3581 (2^-20 + 2^-27, no fp16)", victim);

	cvt_plan *p = NULL;
	size_t bad = 0, wf = 0, n;
	qf_status s = quantize_q4(ct, g0, &p, &e);
	is_int(0, s, "symmetric int4 g32 → llamacpp-q4_0: %s", e.msg);
	n = s ? 0 : check_repack(p, g0, qf_dtype_info(QF_Q4_0)->to_f32, QF_Q4_0, &bad, &wf, first, sizeof first);
	size_t nq = 0, nkb = 0, nother = 0;
	for (size_t i = 0; p && i < cvt_plan_count(p); i++) {
		const cvt_item *it = cvt_plan_item(p, i);
		nq += it->srcs[0].t && it->srcs[0].t->ctq && (it->fmt == QF_Q4_0 || it->fmt == QF_Q4_1);
		if (it->repack == -1 && it->op == CVT_OP_KB && strstr(it->repack_why, "transposed"))
			nkb++;
		else if (it->repack == -1)
			nother++;
	}
	ok(n > 0 && n + nkb == nq && nother == 0,
	   "every q4_0 tensor with a compressed-tensors source is repacked (%zu of %zu), but attn_k_b, kv_b's transpose (%zu)", n, nq, nkb);
	ok(n > 0 && bad == 0 && wf == 0, "q4_0 blocks decode (qforge's decoder) to the CT-dequantized source, element by element (%zu of %zu differ%s%s)",
	   bad, n, bad ? "; first " : "", first);

	/* llama.cpp: ggml's decoder on the same blocks, and the model loads */
	tl_llama *L = tl_llama_open_tap("lossless q4_0 repack in llama.cpp");
	if (L) {
		const tl_ggml_traits *(*traits)(int) = (const tl_ggml_traits *(*)(int))tl_llama_sym(L, "ggml_get_type_traits");
		const tl_ggml_traits *q4 = traits ? traits(qf_dtype_info(QF_Q4_0)->ggml_type) : NULL;
		int sane = q4 && q4->type_name && !strcmp(q4->type_name, "q4_0") && q4->blck_size == 32 && q4->type_size == 18;
		ok(sane, "ggml_get_type_traits(q4_0) found (%s, block %lld)", q4 && q4->type_name ? q4->type_name : "-",
		   q4 ? (long long)q4->blck_size : 0);
		if (sane && p) {
			n = check_repack(p, g0, q4->to_float, QF_Q4_0, &bad, &wf, first, sizeof first);
			ok(n > 0 && bad == 0, "ggml's dequantize_row_q4_0 gives the released weights exactly in all %zu repacked tensors%s%s", n,
			   bad ? "; first bad " : "", first);
		}
		const tl_ggml_traits *q41 = traits ? traits(qf_dtype_info(QF_Q4_1)->ggml_type) : NULL;
		test_q4_1_unit(q41 && q41->type_name && !strcmp(q41->type_name, "q4_1") && q41->type_size == 20 ? q41->to_float : NULL);
		void *m = tl_llama_load(L, g0);
		int fin = 0;
		if (m) {
			int nv = tl_llama_n_vocab(L, m);
			int32_t tok[4] = { 1, 2, 3, 4 };
			float *lg = malloc((size_t)nv * 4 * 4);
			fin = lg && !tl_llama_logits(L, m, tok, 4, lg);
			for (int i = 0; fin && i < nv * 4; i++)
				fin = isfinite(lg[i]);
			free(lg);
			tl_llama_free_model(L, m);
		}
		ok(m && fin, "llama.cpp loads the repacked GGUF and its logits are finite");
		tl_llama_close(L);
	} else {
		test_q4_1_unit(NULL);
	}
	cvt_plan_free(p);
	p = NULL;

	s = quantize_q4(cta, g1, &p, &e);
	is_int(0, s, "asymmetric int4 g32 → llamacpp-q4_0: %s", e.msg);
	n = s ? 0 : check_repack(p, g1, qf_dtype_info(QF_Q4_1)->to_f32, QF_Q4_1, &bad, &wf, first, sizeof first);
	size_t nmin = 0, nelse = 0;
	for (size_t i = 0; p && i < cvt_plan_count(p); i++) {
		const cvt_item *it = cvt_plan_item(p, i);
		if (it->repack == -1 && strstr(it->repack_why, "a min −scale·(zp + 8) is not exactly an fp16"))
			nmin++;
		else if (it->repack == -1 && it->op != CVT_OP_KB)
			nelse++;
	}
	/* a bf16 scale has 8 significant bits, so −scale·(zp + 8) needs up to 12: often more than an fp16's 11 */
	ok(!s && bad == 0 && wf == 0 && nelse == 0 && n + nmin + nkb == nq,
	   "asymmetric: %zu tensors repack to q4_1 decoding exactly, %zu fall back naming a min no fp16 holds", n, nmin);
	cvt_plan_free(p);
	p = NULL;

	s = quantize_q4(ctb, g2, &p, &e);
	is_int(0, s, "a source with one non-fp16 scale quantizes: %s", e.msg);
	const cvt_item *fb = NULL;
	size_t nrp = 0;
	for (size_t i = 0; p && i < cvt_plan_count(p); i++) {
		const cvt_item *it = cvt_plan_item(p, i);
		nrp += it->repack == 1;
		if (it->repack == -1 && it->op != CVT_OP_KB)
			fb = fb ? (const cvt_item *)p : it; /* a second one is a failure */
	}
	int one = fb && fb != (const cvt_item *)p;
	ok(one && strstr(fb->repack_why, "model.layers.1.mlp.experts.1.down_proj.weight") &&
	   strstr(fb->repack_why, "a scale is not exactly an fp16 (row 0, column 0)") && strstr(fb->name, "blk.1.ffn_down_exps"),
	   "exactly that expert stack falls back, naming the tensor and element: %s: %s", one ? fb->name : "-",
	   one ? fb->repack_why : "-");
	is_int((long long)(nq - nkb - 1), (long long)nrp, "the other tensors are still repacked");
	cvt_plan_free(p);
}

int main(void)
{
	plan_lazy();
	test_hand();
	test_hand2();
	test_roundtrip();
	test_broken();
	test_repack();
	return tap_failures() != 0;
}
