/*
 * tokenizer_post.c — post-processors: which special tokens go around the
 * encoded text.
 *
 * tokenizers applies the post-processor when asked for special tokens:
 *   TemplateProcessing  its "single" template: special tokens (each one or
 *                       more ids from "special_tokens") around $A;
 *   ByteLevel           only trims offsets: no ids;
 *   Sequence            each in turn, so a later template wraps the result
 *                       of an earlier one.
 * transformers' Llama-family tokenizers rebuild the template from
 * tokenizer_config.json's add_bos_token / add_eos_token when it has them
 * (bos_token before $A, eos_token after); without them the template stands
 * (Llama 3's add_bos_token is absent: its TemplateProcessing adds BOS).
 */
#include "config.h"

#include <stdio.h>
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

/* Appends the ids of the template's special token `name` to list (n of TOK_TPL_MAX). */
static qf_status template_ids(const qf_tok *t, const cJSON *pp, const char *name, int32_t *list, int *n,
			      const char *label, qf_err *err)
{
	const cJSON *sp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pp, "special_tokens"), name);
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids");
	if (!cJSON_IsArray(ids) || !cJSON_GetArraySize(ids))
		return qf_fail(err, QF_EFORMAT, "%s: TemplateProcessing names special token '%s' without ids in special_tokens",
			       label, name);
	for (const cJSON *x = ids->child; x; x = x->next) {
		if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= (double)t->n ||
		    x->valuedouble != (double)(int64_t)x->valuedouble)
			return qf_fail(err, QF_EFORMAT, "%s: TemplateProcessing special token '%s' has an id outside the vocabulary",
				       label, name);
		if (*n == TOK_TPL_MAX)
			return qf_fail(err, QF_EFORMAT, "%s: TemplateProcessing adds more than %d tokens", label, TOK_TPL_MAX);
		list[(*n)++] = (int32_t)x->valuedouble;
	}
	return QF_OK;
}

/* One TemplateProcessing: its specials before $A go in front of what is there, those after it behind. */
static qf_status visit_template(qf_tok *t, const cJSON *pp, const char *label, qf_err *err)
{
	const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
	int32_t pre[TOK_TPL_MAX], suf[TOK_TPL_MAX];
	int npre = 0, nsuf = 0, seen_a = 0;
	if (!cJSON_IsArray(single))
		return qf_fail(err, QF_EFORMAT, "%s: TemplateProcessing without a \"single\" template", label);
	for (const cJSON *e = single->child; e; e = e->next) {
		const cJSON *sq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
		const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
		const char *id = sq ? tok_jstr(sq, "id") : sp ? tok_jstr(sp, "id") : NULL;
		if (!id || (sq && (strcmp(id, "A") != 0 || seen_a)))
			return qf_fail(err, QF_EFORMAT, "%s: TemplateProcessing \"single\" must be special tokens around one $A",
				       label);
		if (sq) {
			seen_a = 1;
			continue;
		}
		qf_status s = seen_a ? template_ids(t, pp, id, suf, &nsuf, label, err) : template_ids(t, pp, id, pre, &npre, label, err);
		if (s)
			return s;
	}
	if (!seen_a)
		return qf_fail(err, QF_EFORMAT, "%s: TemplateProcessing \"single\" has no $A", label);
	if (npre + t->ntpl_pre > TOK_TPL_MAX || nsuf + t->ntpl_suf > TOK_TPL_MAX)
		return qf_fail(err, QF_EFORMAT, "%s: the post-processors add more than %d tokens", label, TOK_TPL_MAX);
	memmove(t->tpl_pre + npre, t->tpl_pre, (size_t)t->ntpl_pre * sizeof *t->tpl_pre);
	memcpy(t->tpl_pre, pre, (size_t)npre * sizeof *pre);
	t->ntpl_pre += npre;
	memcpy(t->tpl_suf + t->ntpl_suf, suf, (size_t)nsuf * sizeof *suf);
	t->ntpl_suf += nsuf;
	return QF_OK;
}

static qf_status visit_post(qf_tok *t, const cJSON *pp, const char *label, qf_err *err)
{
	const char *type = tok_jstr(pp, "type");
	if (type && !strcmp(type, "TemplateProcessing"))
		return visit_template(t, pp, label, err);
	if (type && !strcmp(type, "ByteLevel"))
		return QF_OK; /* offsets only */
	return qf_fail(err, QF_EFORMAT, "%s: post-processor '%s' is not supported", label, type ? type : "?");
}

qf_status tok_post_from_json(qf_tok *t, const cJSON *root, const cJSON *cfg, const char *label, qf_err *err)
{
	qf_status s = tok_walk(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "processors", visit_post, label, err);
	if (s)
		return s;
	/* BOS/EOS: the config's tokens; the template's first and last when it has them */
	const char *bos = cfg ? special_content(cfg, "bos_token") : NULL, *eos = cfg ? special_content(cfg, "eos_token") : NULL;
	t->bos = bos ? tok_smap_get(&t->vocab, t->p, bos, strlen(bos)) : -1;
	t->eos = eos ? tok_smap_get(&t->vocab, t->p, eos, strlen(eos)) : -1;
	if (t->ntpl_pre)
		t->bos = t->tpl_pre[0];
	if (t->ntpl_suf)
		t->eos = t->tpl_suf[t->ntpl_suf - 1];
	const cJSON *ab = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token") : NULL;
	const cJSON *ae = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token") : NULL;
	if (cJSON_IsBool(ab)) {
		t->ntpl_pre = 0;
		if (cJSON_IsTrue(ab) && t->bos >= 0)
			t->tpl_pre[t->ntpl_pre++] = t->bos;
	}
	if (cJSON_IsBool(ae)) {
		t->ntpl_suf = 0;
		if (cJSON_IsTrue(ae) && t->eos >= 0)
			t->tpl_suf[t->ntpl_suf++] = t->eos;
	}
	t->add_bos = t->ntpl_pre > 0;
	t->add_eos = t->ntpl_suf > 0;
	return QF_OK;
}
