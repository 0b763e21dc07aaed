/*
 * ct_source.h — compressed-tensors checkpoints as a source.
 *
 * config.json "quantization_config" with quant_method "compressed-tensors"
 * (compressed-tensors quantization/quant_config.py, quant_args.py; vLLM
 * compressed_tensors.py from_config) is read as:
 *   format               global compression format; a group's own "format" wins;
 *                        absent: inferred from each module's tensors
 *   config_groups        {name: {targets: [...], weights: QuantizationArgs | null, …}}
 *   ignore               modules left unquantized
 *   quantization_status  "compressed" (or absent)
 *   sparsity_config, transform_config   absent, null, {} or format "dense"
 * A module's group: the first target equal to its name, else the first "re:"
 * target whose regex matches from its start (Python re.match), else the first
 * "Linear" target.  Module M is quantized when M.weight_scale is stored; its
 * tensors (ctquant.h) must agree with its group's weights args, and it is then
 * seen as one float tensor M.weight [N, K] decoding through formats/ctquant.h;
 * its companions and the activation / KV-cache scales (input_scale,
 * output_scale, k_scale, v_scale and their zero points) are hidden.  Modules
 * without quantized tensors are read as they are stored.
 *
 * Read: pack-quantized (int, 1/2/4/8 bits), int-quantized and naive-quantized
 * (int8 or fp8), float-quantized (fp8 E4M3); strategies tensor, channel, group
 * (group_size dividing the row), block; symmetric, or asymmetric with
 * weight_zero_point; weight_shape I32 or I64.
 * Refused (exit 3, naming the feature and the file and tensor): act-order
 * (actorder "group"/"dynamic", weight_g_idx), dynamic weights, other formats
 * (nvfp4, mxfp4, sparse, marlin-24), transforms, sparsity, statuses other
 * than "compressed", and every inconsistency between config and tensors.
 */
#ifndef CVT_CT_SOURCE_H
#define CVT_CT_SOURCE_H

#include "formats/checkpoint.h"
#include "formats/ctquant.h"

/* What a compressed-tensors source holds (for inspect and summaries). */
typedef struct cvt_ct_summary {
	int is_ct;                /* quant_method is compressed-tensors */
	size_t n_quant;           /* quantized modules */
	size_t n_hidden;          /* stored tensors hidden behind them (companions, activation scales) */
	char schemes[256];        /* "int4 g32 sym pack-quantized ×N; …" */
} cvt_ct_summary;

/* 1 if ck's config.json names quant_method "compressed-tensors". */
int cvt_ct_is(const qf_ckpt *ck);

/*
 * For a compressed-tensors checkpoint, checks every quantized module and
 * installs the logical view on ck->st (qf_st_set_view); QF_OK with nothing done
 * for any other checkpoint, or when the view is already installed.  sum may be NULL.
 */
qf_status cvt_ct_attach(qf_ckpt *ck, cvt_ct_summary *sum, qf_err *err);

/* The same, from a config.json object and a tensor set (fuzzing, tests): label names the config. */
qf_status cvt_ct_attach_st(qf_st *st, const cJSON *config, const char *label, cvt_ct_summary *sum, qf_err *err);

#endif
