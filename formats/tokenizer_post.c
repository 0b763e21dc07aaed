/*
 * tokenizer_post.c — post-processors: which special tokens go around the
 * encoded text (tokenizer_config.json's add_bos_token/add_eos_token first,
 * the post-processor's template otherwise).
 */
#include "config.h"

#include <string.h>

#include "formats/tokenizer_int.h"

/* The special token's content from tokenizer_config.json (string or AddedToken object). */
static const char *special_content(const cJSON *cfg, const char *key)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(cfg, key);
	if (cJSON_IsString(x))
		return x->valuestring;
	return cJSON_IsObject(x) ? tok_jstr(x, "content") : NULL;
}

qf_status tok_post_from_json(qf_tok *t, const cJSON *root, const cJSON *cfg, const char *label, qf_err *err)
{
	/* BOS/EOS: tokenizer_config.json first, the post-processor's template otherwise */
	const char *bos = cfg ? special_content(cfg, "bos_token") : NULL, *eos = cfg ? special_content(cfg, "eos_token") : NULL;
	t->bos = bos ? tok_smap_get(&t->vocab, t->p, bos, strlen(bos)) : -1;
	t->eos = eos ? tok_smap_get(&t->vocab, t->p, eos, strlen(eos)) : -1;
	const cJSON *ab = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token") : NULL;
	const cJSON *ae = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token") : NULL;
	const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
	const char *ppt = pp ? tok_jstr(pp, "type") : NULL;
	if (ppt && strcmp(ppt, "TemplateProcessing") == 0) {
		/* the template's specials before and after $A */
		const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
		int seen_a = 0;
		for (const cJSON *e = cJSON_IsArray(single) ? single->child : NULL; e; e = e->next) {
			const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
			if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
				seen_a = 1;
				continue;
			}
			const char *id = sp ? tok_jstr(sp, "id") : NULL;
			int32_t tid = id ? tok_smap_get(&t->vocab, t->p, id, strlen(id)) : -1;
			if (tid < 0)
				continue;
			if (!seen_a) {
				t->bos = tid;
				if (!cJSON_IsBool(ab))
					t->add_bos = 1;
			} else {
				t->eos = tid;
				if (!cJSON_IsBool(ae))
					t->add_eos = 1;
			}
		}
	} else if (ppt && strcmp(ppt, "ByteLevel") != 0) {
		return qf_fail(err, QF_EFORMAT, "%s: post-processor '%s' is not supported", label, ppt);
	}
	if (cJSON_IsBool(ab))
		t->add_bos = cJSON_IsTrue(ab) && t->bos >= 0;
	if (cJSON_IsBool(ae))
		t->add_eos = cJSON_IsTrue(ae) && t->eos >= 0;
	return QF_OK;
}
