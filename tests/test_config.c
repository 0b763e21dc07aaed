/*
 * config.json range checks: every hyperparameter outside its range, of the
 * wrong type or fractional is rejected with QF_EFORMAT (exit 3), a message
 * naming the key and the allowed range, and no output.  Source tensors that
 * no rule maps (layers past num_hidden_layers) are an error listing them;
 * counts are bounded by what the checkpoint can hold, so a huge
 * num_nextn_predict_layers fails fast.
 *
 * Each case is one edit of a bundled model's config.json (a key set to a raw
 * JSON value, or text appended), in the style of the broken-file tables.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convert/convert.h"
#include "tests/tap.h"
#include "tests/util.h"

/* Seconds a hostile count may take to be refused. */
#define FAIL_FAST_SECONDS 2.0

/* Copies model into a fresh folder; returns its path (static rotation via tu_path). */
static const char *copy_model(const char *model, int k)
{
	static char dir[8][4096];
	char *d = dir[k % 8], cmd[12288];
	snprintf(d, sizeof dir[0], "%s/cfg%d", tu_tmpdir(), k);
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && ln -s '%s'/* '%s'/ && rm '%s/config.json' && cp '%s/config.json' '%s/'",
		 d, d, model, d, d, model, d);
	if (system(cmd) != 0)
		bail("copying %s failed", model);
	return d;
}

/* Sets key (dotted for one level of nesting) of dir's config.json to the raw JSON value (NULL: delete). */
static void edit_config(const char *dir, const char *key, const char *value, const char *append)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/config.json", dir);
	size_t n;
	char *text = (char *)tu_read(p, &n);
	cJSON *root = text ? cJSON_Parse(text) : NULL;
	if (!root)
		bail("cannot parse %s", p);
	free(text);
	cJSON *obj = root;
	const char *raw = NULL;
	char k1[128];
	snprintf(k1, sizeof k1, "%s", key ? key : "");
	char *dot = strchr(k1, '.');
	if (dot) {
		*dot = 0;
		obj = cJSON_GetObjectItemCaseSensitive(root, k1);
		if (!obj || !cJSON_IsObject(obj))
			bail("%s has no object %s", p, k1);
	}
	const char *leaf = dot ? dot + 1 : k1;
	if (key) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, leaf);
		if (value) {
			cJSON *v = cJSON_Parse(value);
			if (!v)
				bail("bad test value %s", value);
			if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) { /* cJSON prints inf as null: splice the text */
				cJSON_Delete(v);
				v = cJSON_CreateString("@RAW@");
				raw = value;
			}
			cJSON_AddItemToObject(obj, leaf, v);
		}
	}
	char *out = cJSON_Print(root);
	size_t len = strlen(out);
	char *buf = malloc(len + (append ? strlen(append) : 0) + (raw ? strlen(raw) : 0) + 1);
	char *at = raw ? strstr(out, "\"@RAW@\"") : NULL;
	if (at) {
		memcpy(buf, out, (size_t)(at - out));
		strcpy(buf + (at - out), raw);
		strcat(buf, at + 7);
	} else {
		memcpy(buf, out, len + 1);
	}
	if (append)
		strcat(buf, append);
	tu_write(p, buf, strlen(buf));
	free(buf);
	free(out);
	cJSON_Delete(root);
}

static qf_status plan_and_write(const char *dir, int keep_mtp, const char *out, qf_err *err)
{
	cvt_options o = { .outtype = QF_F32, .threads = 1, .keep_mtp = keep_mtp };
	cvt_plan *p = NULL;
	qf_status s = cvt_plan_open(dir, &o, &p, err);
	cvt_write_opts wo = { .force = 1, .threads = 1 };
	if (!s && out)
		s = cvt_write(p, out, &wo, NULL, err);
	cvt_plan_free(p);
	return s;
}

int main(void)
{
	plan_lazy();
	const char *st = tu_src("models/stories260k-hf"), *ds = tu_src("models/tiny-dsv3");
	static const struct {
		int dsv3;              /* tiny-dsv3, else stories260k */
		const char *key, *value, *append;
		const char *expect;    /* in the message */
		int keep_mtp;
	} cases[] = {
		{ 0, "max_position_embeddings", "1099511627776", NULL, "\"max_position_embeddings\" is 1099511627776; allowed an integer from 1 to 4294967295", 0 },
		{ 0, "max_position_embeddings", "-5", NULL, "\"max_position_embeddings\" is -5; allowed", 0 },
		{ 0, "max_position_embeddings", "512.5", NULL, "\"max_position_embeddings\" is 512.5", 0 },
		{ 0, "rms_norm_eps", "0", NULL, "\"rms_norm_eps\" is 0; allowed a number in (0, 1]", 0 },
		{ 0, "rms_norm_eps", "-1e-5", NULL, "\"rms_norm_eps\" is -1.0000000000000001e-05", 0 },
		{ 0, "rms_norm_eps", NULL, NULL, "\"rms_norm_eps\" is missing", 0 },
		{ 0, "rope_theta", "0", NULL, "\"rope_theta\" is 0; allowed a number in (0,", 0 },
		{ 0, "rope_theta", "-10000", NULL, "\"rope_theta\" is -10000", 0 },
		{ 0, "rope_theta", "\"10000\"", NULL, "\"rope_theta\" is not a number", 0 },
		{ 0, "hidden_size", "\"64\"", NULL, "\"hidden_size\" is not a number", 0 },
		{ 0, "hidden_size", NULL, NULL, "\"hidden_size\" is missing", 0 },
		{ 0, "num_attention_heads", "0", NULL, "\"num_attention_heads\" is 0; allowed an integer from 1 to 65536", 0 },
		{ 0, "num_key_value_heads", "16", NULL, "\"num_key_value_heads\" is 16; allowed an integer from 1 to 8", 0 },
		{ 0, "vocab_size", "1e9", NULL, "\"vocab_size\" is 1000000000", 0 },
		{ 0, "tie_word_embeddings", "\"yes\"", NULL, "\"tie_word_embeddings\" is not true or false", 0 },
		{ 0, "num_hidden_layers", "100000000", NULL, "\"num_hidden_layers\" is 100000000; allowed an integer from 1 to", 0 },
		/* layers past num_hidden_layers are not silently dropped */
		{ 0, "num_hidden_layers", "2", NULL, "that no rule for LlamaForCausalLM (num_hidden_layers 2) maps: 'model.layers.2.", 0 },
		{ 1, "topk_group", "-1", NULL, "\"topk_group\" is -1; allowed an integer from 1 to 4", 0 },
		{ 1, "topk_group", "0", NULL, "\"topk_group\" is 0; allowed an integer from 1 to 4", 0 },
		{ 1, "topk_group", "5", NULL, "\"topk_group\" is 5", 0 },
		{ 1, "n_group", "3", NULL, "n_group 3 does not divide n_routed_experts 16", 0 },
		{ 1, "first_k_dense_replace", "-1", NULL, "\"first_k_dense_replace\" is -1; allowed an integer from 0 to 4", 0 },
		{ 1, "first_k_dense_replace", "5", NULL, "\"first_k_dense_replace\" is 5; allowed an integer from 0 to 4", 0 },
		{ 1, "num_experts_per_tok", "17", NULL, "\"num_experts_per_tok\" is 17; allowed an integer from 1 to 16", 0 },
		{ 1, "routed_scaling_factor", "1e300", NULL, "\"routed_scaling_factor\" is 1.0000000000000001e+300; allowed a number in (0, 1e+06]", 0 },
		{ 1, "routed_scaling_factor", "0", NULL, "\"routed_scaling_factor\" is 0", 0 },
		{ 1, "scoring_func", "\"relu\"", NULL, "\"scoring_func\" is \"relu\"; allowed \"softmax\", \"sigmoid\"", 0 },
		{ 1, "norm_topk_prob", "1", NULL, "\"norm_topk_prob\" is not true or false", 0 },
		{ 1, "q_lora_rank", NULL, NULL, "\"q_lora_rank\" is missing", 0 },
		{ 1, "kv_lora_rank", "0", NULL, "\"kv_lora_rank\" is 0", 0 },
		{ 1, "rope_scaling.factor", "0", NULL, "\"rope_scaling.factor\" is 0; allowed a number in (0, 1e+06]", 0 },
		{ 1, "rope_scaling.factor", "-4", NULL, "\"rope_scaling.factor\" is -4", 0 },
		{ 1, "rope_scaling.factor", "1e999", NULL, "\"rope_scaling.factor\" is inf", 0 },
		{ 1, "rope_scaling.original_max_position_embeddings", "0", NULL, "\"rope_scaling.original_max_position_embeddings\" is 0", 0 },
		{ 1, "rope_scaling.beta_fast", "\"x\"", NULL, "\"rope_scaling.beta_fast\" is not a number", 0 },
		{ 1, "quantization_config.weight_block_size", "[128.5, 128]", NULL, "\"quantization_config.weight_block_size\" must be two integers from 1 to 1048576", 0 },
		{ 1, "quantization_config.weight_block_size", "[0, 128]", NULL, "weight_block_size\" must be two integers", 0 },
		{ 1, "quantization_config.weight_block_size", "[1e30, 128]", NULL, "weight_block_size\" must be two integers", 0 },
		{ 1, "quantization_config.weight_block_size", "[128]", NULL, "weight_block_size\" must be two integers", 0 },
		{ 1, "quantization_config.weight_block_size", "\"128x128\"", NULL, "weight_block_size\" must be two integers", 0 },
		{ 0, "sliding_window", "256", NULL, "\"sliding_window\" 256 is below max_position_embeddings 512", 0 },
		{ 0, "rope_scaling", "{\"rope_type\":\"yarn\",\"factor\":4}", NULL, "type \"yarn\" is not supported for this architecture", 0 },
		{ 0, "rope_scaling", "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,\"high_freq_factor\":1}", NULL,
		  "\"rope_scaling.high_freq_factor\" is 1; allowed a number in (4,", 0 },
		{ 0, "rope_scaling", "{\"rope_type\":\"linear\"}", NULL, "\"rope_scaling.factor\" is missing", 0 },
		{ 0, "head_dim", "7", NULL, "\"head_dim\" is 7; RoPE needs an even head size", 0 },
		{ 1, "quantization_config.scale_fmt", "\"ue8m0\"", NULL, "says scale_fmt ue8m0 but", 0 },
		{ 1, "quantization_config.scale_fmt", "\"e5m2\"", NULL, "\"quantization_config.scale_fmt\" is \"e5m2\"; allowed \"ue8m0\"", 0 },
		{ 0, NULL, NULL, "\n}junk", "trailing data after the JSON value", 0 },
		/* a count the checkpoint cannot hold fails before anything is sized by it */
		{ 1, "num_nextn_predict_layers", "100000000", NULL, "\"num_nextn_predict_layers\" is 100000000; allowed an integer from 0 to", 1 },
		{ 1, "num_nextn_predict_layers", "100000000", NULL, "\"num_nextn_predict_layers\" is 100000000", 0 },
	};
	size_t nc = sizeof cases / sizeof cases[0];
	for (size_t i = 0; i < nc; i++) {
		const char *dir = copy_model(cases[i].dsv3 ? ds : st, (int)i);
		edit_config(dir, cases[i].key, cases[i].value, cases[i].append);
		qf_err err = { { 0 } };
		const char *out = tu_path("bad.gguf");
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		qf_status s = plan_and_write(dir, cases[i].keep_mtp, out, &err);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
		ok(s == QF_EFORMAT && strstr(err.msg, cases[i].expect) && !tu_exists(out) && sec < FAIL_FAST_SECONDS,
		   "%s = %s%s: exit 3 naming the key and range (%.2f s): %s", cases[i].key ? cases[i].key : "(text)",
		   cases[i].value ? cases[i].value : "(deleted)", cases[i].keep_mtp ? " --keep-mtp" : "", sec, err.msg);
	}
	/* the unedited copies still convert (the edit machinery itself is neutral) */
	for (int m = 0; m < 2; m++) {
		const char *dir = copy_model(m ? ds : st, 100 + m);
		edit_config(dir, NULL, NULL, NULL);
		qf_err err = { { 0 } };
		ok(plan_and_write(dir, m, NULL, &err) == QF_OK, "%s re-serialized config plans (%s)", m ? "tiny-dsv3" : "stories260k",
		   err.msg);
	}
	return tap_failures() ? 1 : 0;
}
