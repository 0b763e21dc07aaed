/*
 * tokenizer_json.c — loading tokenizer.json (+ tokenizer_config.json):
 * the vocabulary, merges, added tokens, normalizers, pre-tokenizers and
 * decoders, each unsupported component an error naming it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/mapfile.h"
#include "formats/tokenizer_int.h"

const char *tok_jstr(const cJSON *o, const char *k)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(x) ? x->valuestring : NULL;
}

int tok_jbool(const cJSON *o, const char *k, int def)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsBool(x) ? cJSON_IsTrue(x) : def;
}

/* Flattens a Sequence (key names its list) into visit() calls. */
qf_status tok_walk(qf_tok *t, const cJSON *node, const char *listkey, visit_fn visit, const char *label,
		      qf_err *err)
{
	if (!node || cJSON_IsNull(node))
		return QF_OK;
	const char *type = tok_jstr(node, "type");
	if (type && strcmp(type, "Sequence") == 0) {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(node, listkey);
		for (const cJSON *c = cJSON_IsArray(list) ? list->child : NULL; c; c = c->next) {
			qf_status s = tok_walk(t, c, listkey, visit, label, err);
			if (s)
				return s;
		}
		return QF_OK;
	}
	return visit(t, node, label, err);
}

static qf_status visit_norm(qf_tok *t, const cJSON *n, const char *label, qf_err *err)
{
	const char *type = tok_jstr(n, "type");
	norm_step st = { 0 };
	if (type && strcmp(type, "Prepend") == 0 && tok_jstr(n, "prepend")) {
		st.kind = NORM_PREPEND;
		st.a = strdup(tok_jstr(n, "prepend"));
		st.alen = st.a ? strlen(st.a) : 0;
	} else if (type && strcmp(type, "NFC") == 0) {
		st.kind = NORM_NFC;
	} else if (type && strcmp(type, "Replace") == 0) {
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
		const char *lit = pat ? tok_jstr(pat, "String") : NULL;
		const char *content = tok_jstr(n, "content");
		if (!lit || !content || !*lit)
			return qf_fail(err, QF_EFORMAT, "%s: normalizer Replace with a Regex pattern is not supported", label);
		st.a = strdup(lit);
		st.alen = strlen(lit);
		st.b = strdup(content);
		st.blen = strlen(content);
	} else {
		return qf_fail(err, QF_EFORMAT, "%s: normalizer '%s' is not supported", label, type ? type : "?");
	}
	norm_step *g = NULL;
	if ((st.kind != NORM_NFC && !st.a) || (st.kind == NORM_REPLACE && !st.b) ||
	    !(g = realloc(t->norm, (t->nnorm + 1) * sizeof *g))) {
		free(st.a);
		free(st.b);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	t->norm = g;
	t->norm[t->nnorm++] = st;
	return QF_OK;
}

static int behavior_of(const char *b)
{
	static const char *const names[] = { "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous" };
	for (int i = 0; b && i < 5; i++)
		if (strcmp(b, names[i]) == 0)
			return i;
	return -1;
}

static qf_status visit_pre(qf_tok *t, const cJSON *n, const char *label, qf_err *err)
{
	const char *type = tok_jstr(n, "type");
	if (t->npre && t->pre[t->npre - 1].kind == PRE_BYTELEVEL)
		return qf_fail(err, QF_EFORMAT, "%s: pre-tokenizer '%s' after ByteLevel is not supported", label,
			       type ? type : "?");
	pre_step st = { 0 };
	if (type && strcmp(type, "Split") == 0) {
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
		const char *rx = pat ? tok_jstr(pat, "Regex") : NULL, *lit = pat ? tok_jstr(pat, "String") : NULL;
		st.kind = PRE_SPLIT;
		st.behavior = behavior_of(tok_jstr(n, "behavior"));
		st.invert = tok_jbool(n, "invert", 0);
		if (st.behavior < 0 || (!rx && !lit))
			return qf_fail(err, QF_EFORMAT, "%s: Split pre-tokenizer with unknown behavior or pattern", label);
		if (rx) {
			qf_status s = tok_compile_regex(rx, strlen(rx), &st.re, label, err);
			if (s)
				return s;
			if (!(st.pat = strdup(rx))) {
				onig_free(st.re);
				return qf_fail(err, QF_ENOMEM, "out of memory");
			}
		} else {
			if (!(st.lit = strdup(lit)))
				return qf_fail(err, QF_ENOMEM, "out of memory");
			st.litlen = strlen(lit);
		}
		return tok_push_pre(t, &st, err);
	}
	if (type && strcmp(type, "ByteLevel") == 0) {
		st.kind = PRE_BYTELEVEL;
		st.add_prefix_space = tok_jbool(n, "add_prefix_space", 1);
		if (tok_jbool(n, "use_regex", 1)) { /* GPT-2's regex, run after the prefix space */
			qf_status s = tok_compile_regex(GPT2_REGEX, strlen(GPT2_REGEX), &st.re, label, err);
			if (s)
				return s;
		}
		t->byte_level = 1;
		return tok_push_pre(t, &st, err);
	}
	if (type && strcmp(type, "Metaspace") == 0) {
		const char *rep = tok_jstr(n, "replacement");
		if (rep && strcmp(rep, METASPACE) != 0)
			return qf_fail(err, QF_EFORMAT, "%s: Metaspace replacement other than U+2581 is not supported", label);
		const char *scheme = tok_jstr(n, "prepend_scheme");
		st.kind = PRE_METASPACE;
		st.add_prefix_space = scheme ? strcmp(scheme, "never") != 0 : tok_jbool(n, "add_prefix_space", 1);
		st.prepend_first = scheme && strcmp(scheme, "first") == 0;
		st.ms_split = tok_jbool(n, "split", 1);
		return tok_push_pre(t, &st, err);
	}
	if (type && strcmp(type, "Digits") == 0) {
		st.kind = PRE_DIGITS;
		st.individual = tok_jbool(n, "individual_digits", 0);
		return tok_push_pre(t, &st, err);
	}
	return qf_fail(err, QF_EFORMAT, "%s: pre-tokenizer '%s' is not supported", label, type ? type : "?");
}

static qf_status visit_dec(qf_tok *t, const cJSON *n, const char *label, qf_err *err)
{
	const char *type = tok_jstr(n, "type");
	dec_step st = { 0 };
	if (!type)
		return qf_fail(err, QF_EFORMAT, "%s: decoder without a type", label);
	if (!strcmp(type, "ByteLevel"))
		st.kind = DEC_BYTELEVEL;
	else if (!strcmp(type, "ByteFallback"))
		st.kind = DEC_BYTEFALLBACK;
	else if (!strcmp(type, "Fuse"))
		st.kind = DEC_FUSE;
	else if (!strcmp(type, "Metaspace"))
		st.kind = DEC_METASPACE;
	else if (!strcmp(type, "Strip")) {
		st.kind = DEC_STRIP;
		const char *c = tok_jstr(n, "content");
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(n, "start"), *b = cJSON_GetObjectItemCaseSensitive(n, "stop");
		if (!(st.a = strdup(c ? c : " ")))
			return qf_fail(err, QF_ENOMEM, "out of memory");
		st.alen = strlen(st.a);
		st.start = cJSON_IsNumber(a) ? a->valueint : 0;
		st.stop = cJSON_IsNumber(b) ? b->valueint : 0;
	} else if (!strcmp(type, "Replace")) {
		const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
		const char *lit = pat ? tok_jstr(pat, "String") : NULL, *content = tok_jstr(n, "content");
		if (!lit || !content || !*lit)
			return qf_fail(err, QF_EFORMAT, "%s: decoder Replace with a Regex pattern is not supported", label);
		st.kind = DEC_REPLACE;
		st.a = strdup(lit);
		st.alen = strlen(lit);
		st.b = strdup(content);
		st.blen = strlen(content);
		if (!st.a || !st.b) {
			free(st.a);
			free(st.b);
			return qf_fail(err, QF_ENOMEM, "out of memory");
		}
	} else {
		return qf_fail(err, QF_EFORMAT, "%s: decoder '%s' is not supported", label, type);
	}
	dec_step *g = realloc(t->dec, (t->ndec + 1) * sizeof *g);
	if (!g) {
		free(st.a);
		free(st.b);
		return qf_fail(err, QF_ENOMEM, "out of memory");
	}
	t->dec = g;
	t->dec[t->ndec++] = st;
	return QF_OK;
}

/* A token id: a whole number in [0, 2^24]. */
static int valid_id(const cJSON *v)
{
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= (double)(1 << 24) &&
	       v->valuedouble == (double)(int64_t)v->valuedouble;
}

qf_status qf_tok_from_json(const char *json, size_t len, const char *config, size_t clen, const char *label,
			   qf_tok **out, qf_err *err)
{
	qf_status s = QF_OK;
	qf_tok *t = NULL;
	cJSON *root = cJSON_ParseWithLength(json, len), *cfg = config ? cJSON_ParseWithLength(config, clen) : NULL;
	if (!root) {
		s = qf_fail(err, QF_EFORMAT, "%s: tokenizer.json is not valid JSON", label);
		goto done;
	}
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
	const char *mtype = model ? tok_jstr(model, "type") : NULL;
	if (!mtype || strcmp(mtype, "BPE") != 0) {
		s = qf_fail(err, QF_EFORMAT, "%s: tokenizer model '%s' is not supported (BPE only)", label,
			    mtype ? mtype : "(none)");
		goto done;
	}
	const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
	const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
	const cJSON *addl = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
	if (!cJSON_IsObject(vocab)) {
		s = qf_fail(err, QF_EFORMAT, "%s: model.vocab is missing", label);
		goto done;
	}
	/* ids may run past the vocab with added tokens; each a whole number below 2^24 */
	int64_t maxid = -1;
	for (const cJSON *v = vocab->child; v; v = v->next) {
		if (!valid_id(v)) {
			s = qf_fail(err, QF_EFORMAT, "%s: vocab entry '%s' has no valid id", label, v->string);
			goto done;
		}
		if ((int64_t)v->valuedouble > maxid)
			maxid = (int64_t)v->valuedouble;
	}
	int na = 0;
	for (const cJSON *a = cJSON_IsArray(addl) ? addl->child : NULL; a; a = a->next, na++) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
		if (!valid_id(id) || !tok_jstr(a, "content")) {
			s = qf_fail(err, QF_EFORMAT, "%s: added_tokens[%d] has no valid id and content", label, na);
			goto done;
		}
		if ((int64_t)id->valuedouble > maxid)
			maxid = (int64_t)id->valuedouble;
	}
	if (maxid < 0) {
		s = qf_fail(err, QF_EFORMAT, "%s: the vocabulary is empty", label);
		goto done;
	}
	if ((s = tok_alloc(&t, (size_t)maxid + 1, err)))
		goto done;
	for (const cJSON *v = vocab->child; v; v = v->next) {
		size_t id = (size_t)v->valuedouble;
		if (t->p[id].s) {
			s = qf_fail(err, QF_EFORMAT, "%s: tokens '%s' and '%s' have the same id %zu", label, t->p[id].s, v->string, id);
			goto done;
		}
		if (!(t->p[id].s = strdup(v->string))) {
			s = qf_fail(err, QF_ENOMEM, "out of memory");
			goto done;
		}
		t->p[id].len = (uint32_t)strlen(v->string);
	}
	for (const cJSON *a = cJSON_IsArray(addl) ? addl->child : NULL; a; a = a->next) {
		const char *c = tok_jstr(a, "content");
		size_t i = (size_t)cJSON_GetObjectItemCaseSensitive(a, "id")->valuedouble;
		if (t->p[i].s && strcmp(t->p[i].s, c) != 0) {
			s = qf_fail(err, QF_EFORMAT, "%s: added token '%s' has id %zu, which is '%s' in the vocabulary", label, c,
				    i, t->p[i].s);
			goto done;
		}
		if (!t->p[i].s) {
			if (!(t->p[i].s = strdup(c))) {
				s = qf_fail(err, QF_ENOMEM, "out of memory");
				goto done;
			}
			t->p[i].len = (uint32_t)strlen(c);
		}
		if ((s = tok_add_added(t, c, (int32_t)i, tok_jbool(a, "lstrip", 0), tok_jbool(a, "rstrip", 0), err)))
			goto done;
	}
	t->byte_fallback = tok_jbool(model, "byte_fallback", 0);
	t->fuse_unk = tok_jbool(model, "fuse_unk", 0);
	t->ignore_merges = tok_jbool(model, "ignore_merges", 0);
	const char *csp = tok_jstr(model, "continuing_subword_prefix"), *ews = tok_jstr(model, "end_of_word_suffix");
	if ((csp && *csp) || (ews && *ews)) { /* empty strings mean none, as null does */
		s = qf_fail(err, QF_EFORMAT, "%s: BPE continuing_subword_prefix / end_of_word_suffix are not supported", label);
		goto done;
	}
	/* pre-tokenizer first: it decides whether symbols are bytes */
	if ((s = tok_walk(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizers", visit_norm, label, err)) ||
	    (s = tok_walk(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pretokenizers", visit_pre, label, err)) ||
	    (s = tok_walk(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoders", visit_dec, label, err)))
		goto done;
	if ((s = tok_finish_vocab(t, label, err)))
		goto done;
	for (const cJSON *v = vocab->child; v; v = v->next) /* a key twice in model.vocab */
		if (tok_smap_get(&t->vocab, t->p, v->string, strlen(v->string)) != (int32_t)v->valuedouble) {
			s = qf_fail(err, QF_EFORMAT, "%s: token '%s' appears twice in the vocabulary", label, v->string);
			goto done;
		}
	const char *unk = tok_jstr(model, "unk_token");
	t->unk = unk ? tok_smap_get(&t->vocab, t->p, unk, strlen(unk)) : -1;
	int nm = cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : 0;
	if (tok_pmap_init(&t->merges, (size_t)nm)) {
		s = qf_fail(err, QF_ENOMEM, "out of memory");
		goto done;
	}
	uint32_t rank = 0;
	for (const cJSON *m = nm ? merges->child : NULL; m; m = m->next, rank++) {
		if (cJSON_IsString(m)) {
			const char *sp = strchr(m->valuestring, ' ');
			if (!sp || strchr(sp + 1, ' ')) {
				s = qf_fail(err, QF_EFORMAT, "%s: merge %u '%s' is not two tokens", label, rank, m->valuestring);
				goto done;
			}
			s = tok_add_merge(t, m->valuestring, (size_t)(sp - m->valuestring), sp + 1, strlen(sp + 1), rank, label, err);
		} else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
			   cJSON_IsString(m->child->next)) {
			const char *a = m->child->valuestring, *b = m->child->next->valuestring;
			s = tok_add_merge(t, a, strlen(a), b, strlen(b), rank, label, err);
		} else {
			s = qf_fail(err, QF_EFORMAT, "%s: merge %u is neither \"a b\" nor [\"a\", \"b\"]", label, rank);
		}
		if (s)
			goto done;
	}
	if ((s = tok_post_from_json(t, root, cfg, label, err)))
		goto done;
	t->kind = t->byte_level ? "byte-level BPE" : "SentencePiece BPE";
	tok_index_added(t);
done:
	cJSON_Delete(root);
	cJSON_Delete(cfg);
	if (s) {
		qf_tok_free(t);
		return s;
	}
	*out = t;
	return QF_OK;
}

qf_status qf_tok_from_dir(const char *dir, qf_tok **out, qf_err *err)
{
	char p[4096];
	qf_mapfile tj, tc;
	memset(&tc, 0, sizeof tc);
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	qf_status s = qf_mapfile_open(&tj, p, err);
	if (s)
		return s;
	snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
	int have_cfg = qf_mapfile_open(&tc, p, NULL) == QF_OK;
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	s = qf_tok_from_json((const char *)tj.data, (size_t)tj.size, have_cfg ? (const char *)tc.data : NULL,
			     have_cfg ? (size_t)tc.size : 0, p, out, err);
	qf_mapfile_close(&tj);
	if (have_cfg)
		qf_mapfile_close(&tc);
	return s;
}
