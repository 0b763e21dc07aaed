/*
 * plan.h — the plan's insides, shared by the files of convert/ (private).
 */
#ifndef CVT_PLAN_H
#define CVT_PLAN_H

#include "convert/convert.h"
#include "formats/packed.h"

typedef enum arch_kind { ARCH_LLAMA, ARCH_DEEPSEEK } arch_kind;

/* Hyperparameters read from config.json. */
typedef struct hparams {
	int64_t hidden, n_layer, n_head, n_head_kv, vocab, ff, ctx;
	double eps, rope_theta;
	int tied;
	/* deepseek */
	int64_t q_lora, kv_lora, nope, rope_dim, vdim, moe_ff, n_exp, n_used, n_shared, first_dense;
	int64_t n_group, topk_group, n_mtp;
	double routed_scale;
	int norm_topk, sigmoid;
	int yarn;
	double yarn_factor, yarn_mscale_all, yarn_mscale, yarn_beta_fast, yarn_beta_slow;
	int64_t yarn_orig_ctx;
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
	hparams hp;
	cvt_options opt;
	cvt_item *items;
	size_t n, cap;
	size_t skipped;
	int src_is_fp8;
	qf_dtype main_src_type;
};


/* Appends a zeroed item (layer −1) to the plan. */
cvt_item *cvt_plan_new_item(cvt_plan *p, qf_err *err);

/* llama_ftype of the dominant 2-D weight format. */
uint32_t cvt_plan_file_type(const cvt_plan *p);
/* Checkpoint sources: every key from config.json and the tokenizer. */
qf_status cvt_ckpt_set_metadata(cvt_plan *p, qf_gguf_writer *w, qf_err *err);

/* Source pages of output rows [from, to) are no longer needed. */
void cvt_release_consumed(const cvt_plan *p, const cvt_item *it, int64_t from, int64_t to);
void cvt_release_item(const cvt_plan *p, const cvt_item *it);

#endif
