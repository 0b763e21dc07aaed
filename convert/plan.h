/*
 * plan.h — the plan's insides, shared by the files of convert/ (private).
 *
 *   convert.c  the plan object: accessors, sizes, free
 *   hparams.c  config.json → hparams
 *   archmap.c  HF → GGUF tensor maps and the shapes config.json implies
 *   build.c    planning a checkpoint (items, classes, row ops)
 *   meta.c     GGUF metadata of a checkpoint plan
 *   rows.c     reading output rows as f32
 *   source.c   GGUF and bundle sources; cvt_plan_open
 */
#ifndef CVT_PLAN_H
#define CVT_PLAN_H

#include "convert/convert.h"
#include "formats/packed.h"

/* Attention families: ARCH_LLAMA is grouped-query attention (Llama, Mistral, Qwen), ARCH_DEEPSEEK is MLA. */
typedef enum arch_kind { ARCH_LLAMA, ARCH_DEEPSEEK } arch_kind;

/* What an architecture adds to its family (cvt_arch.flags). */
enum {
	ARCHF_PERMUTE_QK = 1,     /* Q/K rows to adjacent-pair RoPE order (llama.cpp's Llama converter) */
	ARCHF_QKV_BIAS = 2,       /* q/k/v projections have biases (Qwen2) */
	ARCHF_QK_NORM = 4,        /* per-head RMS norm of q and k before RoPE (Qwen3) */
	ARCHF_MOE = 8,            /* routed experts, softmax top-k (Qwen3-MoE) */
	ARCHF_INDEXER = 16,       /* DeepSeek sparse-attention lightning indexer (V3.2) */
	ARCHF_MTP_DEFAULT = 32,   /* MTP layers kept unless --no-mtp (llama.cpp's deepseek32 converter) */
};

typedef struct cvt_map_row cvt_map_row;

/* One supported Hugging Face architecture. */
typedef struct cvt_arch {
	const char *hf;           /* config.json "architectures"[0] */
	const char *gguf;         /* general.architecture */
	arch_kind kind;
	unsigned flags;
	const cvt_map_row *maps[4]; /* layer tensor maps, searched in order; NULL-terminated */
} cvt_arch;

/* RoPE scaling of the GQA family (config.json rope_scaling). */
typedef enum rope_kind { ROPE_NONE, ROPE_LINEAR, ROPE_DYNAMIC, ROPE_LLAMA3 } rope_kind;

/* Hyperparameters read from config.json. */
typedef struct hparams {
	int64_t hidden, n_layer, n_head, n_head_kv, vocab, ff, ctx;
	double eps, rope_theta;
	int tied;
	/* GQA family */
	int64_t head_dim;         /* head_dim, or hidden / heads */
	int head_dim_given;       /* config.json has head_dim (then key/value_length are written) */
	rope_kind rope;
	double rope_factor, rope_low_freq, rope_high_freq;
	int64_t rope_orig_ctx;
	int64_t sliding_window;   /* 0: none */
	/* DeepSeek-V3.2 indexer */
	int64_t index_n_heads, index_head_dim, index_topk;
	int ue8m0;                /* quantization_config.scale_fmt "ue8m0" (DeepSeek-V3.1+) */
	/* deepseek */
	int64_t q_lora, kv_lora, nope, rope_dim, vdim, moe_ff, n_exp, n_used, n_shared, first_dense;
	int64_t n_group, topk_group, n_mtp;
	double routed_scale;
	int norm_topk, sigmoid;
	int yarn;
	double yarn_factor, yarn_mscale_all, yarn_mscale, yarn_beta_fast, yarn_beta_slow;
	int64_t yarn_orig_ctx;
	int64_t fp8_bo, fp8_bi;   /* quantization_config.weight_block_size */
} hparams;

struct cvt_plan {
	cvt_source kind;
	qf_ckpt *ck;              /* CVT_SRC_CHECKPOINT (owned when opened by cvt_plan_open) */
	qf_gguf *g;               /* CVT_SRC_GGUF (owned) */
	qf_pk *pk;                /* CVT_SRC_BUNDLE (owned) */
	int owns_ck;
	int release_ok;           /* sources are file mappings whose pages may be dropped */
	char *src_path;
	uint8_t *meta_blob;       /* cvt_plan_meta's image */
	qf_gguf *meta;
	char arch_str[64];        /* GGUF/bundle sources: general.architecture */
	arch_kind arch;
	const cvt_arch *ad;       /* checkpoint sources */
	hparams hp;
	cvt_options opt;
	cvt_item *items;
	size_t n, cap;
	size_t skipped;
	int src_is_fp8;
	int src_is_ms;            /* msModelSlim weights were dequantized */
	int src_scale_f32, src_scale_e8m0; /* its block scales are stored F32 / F8_E8M0 */
	int keep_mtp;             /* resolved: --keep-mtp, --no-mtp or the architecture's default */
	float *gen;               /* computed tensors' data (rope_freqs), owned */
	qf_tensor gen_t;          /* rope_freqs.weight as a source tensor (file −1) */
	qf_dtype main_src_type;
	int ftype_set;            /* quantize chose a llama.cpp mix: general.file_type is its ftype */
	uint32_t ftype;
};

/* ---- hparams.c ---- */
/* Reads and checks the hyperparameters of architecture family a. */
qf_status cvt_read_hparams(const qf_ckpt *ck, const cvt_arch *a, hparams *h, qf_err *err);
/* quantization_config: weight_block_size ([128, 128] when absent) and scale_fmt. */
qf_status cvt_read_quant_config(const qf_ckpt *ck, hparams *h, qf_err *err);

/* ---- archmap.c ---- */
struct cvt_map_row {
	const char *hf;     /* suffix after "model.layers.N." */
	const char *gguf;   /* suffix after "blk.N." */
	cvt_class cls;
};

/* The architecture named by config.json's architectures[0], or NULL. */
const cvt_arch *cvt_arch_by_hf(const char *hf);
/* The architecture with this general.architecture, or NULL. */
const cvt_arch *cvt_arch_by_gguf(const char *gguf);
/* "A, B, C" of every supported Hugging Face architecture (static). */
const char *cvt_arch_hf_list(void);
/* The row of a's maps whose hf suffix is rest, or NULL. */
const cvt_map_row *cvt_map_find(const cvt_arch *a, const char *rest);
/* Expected 2-D/1-D shape of GGUF suffix g; returns 0 if no rule. */
int cvt_expected_shape(const hparams *h, arch_kind a, const char *g, int *nd, int64_t *d0, int64_t *d1);
/* "model.layers.N.rest" → N and rest; 0 if not a layer tensor. */
int cvt_parse_layer(const char *name, int64_t *layer, const char **rest);
/* "mlp.experts.E.{gate,up,down}_proj.weight" → E, kind 0/1/2; 0 otherwise. */
int cvt_parse_expert(const char *rest, int64_t *e, int *kind);

/* ---- build.c ---- */
/* llama.cpp's rope_freqs.weight (head_dim / 2 divisors) for rope_scaling llama3. */
void cvt_llama3_rope_factors(const hparams *h, float *out);
/* Appends a zeroed item (layer −1) to the plan. */
cvt_item *cvt_plan_new_item(cvt_plan *p, qf_err *err);

/* ---- meta.c ---- */
/* llama_ftype of the dominant 2-D weight format. */
/* general.file_type: the mix's llama_ftype, else that of the format holding most weight bytes. */
uint32_t cvt_plan_file_type(const cvt_plan *p);
/* Checkpoint sources: every key from config.json and the tokenizer. */
qf_status cvt_ckpt_set_metadata(cvt_plan *p, qf_gguf_writer *w, qf_err *err);

/* ---- source.c ---- */
/* Source pages of output rows [from, to) are no longer needed. */
void cvt_release_consumed(const cvt_plan *p, const cvt_item *it, int64_t from, int64_t to);
void cvt_release_item(const cvt_plan *p, const cvt_item *it);

/* GGUF/bundle sources (cvt_options.check_input_hashes): what is cheap, as the plan opens (inhash.c). */
qf_status cvt_plan_check_source(cvt_plan *p, qf_err *err);
/* … and each item's source tensors, as the writer reaches them. */
qf_status cvt_item_check_source(const cvt_plan *p, const cvt_item *it, qf_err *err);

#endif
