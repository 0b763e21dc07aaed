/*
 * hf_config.h — the small files of a Hugging Face output folder (private to convert/).
 */
#ifndef CVT_HF_CONFIG_H
#define CVT_HF_CONFIG_H

#include <cjson/cJSON.h>

#include "convert/hf.h"

/* Writes dir/name as indented JSON (two spaces, like Hugging Face). */
qf_status cvt_hf_write_json(const char *dir, const char *name, const cJSON *j, qf_err *err);

/*
 * config.json with the layout's quantization_config (none for float output
 * and msModelSlim), and for msModelSlim quant_model_description.json with
 * an entry for every saved tensor (names[0..n)).
 */
qf_status cvt_hf_write_config(const cvt_hf_plan *p, const char *dir, const char *const *names, size_t n,
			      const char *profile, qf_err *err);

/* The quantization_config object the plan's layout needs, or NULL (float, msModelSlim). */
cJSON *cvt_hf_quant_config(const cvt_hf_plan *p);

/* Copies the tokenizer, generation-config, chat-template and remote-code files. */
qf_status cvt_hf_copy_files(const cvt_hf_plan *p, const char *dir, qf_err *err);

#endif
