#include "config.h"

#include <string.h>

#include "formats/checkpoint.h"
#include "formats/sidefile.h"

static const struct {
	const char *name;
	qf_side_kind kind;
	uint64_t max; /* bytes */
} side_files[] = {
	{ "config.json", QF_SIDE_JSON, QF_CONFIG_MAX },
	{ "generation_config.json", QF_SIDE_JSON, QF_CONFIG_MAX },
	{ "tokenizer.json", QF_SIDE_JSON, QF_JSON_MAX },
	{ "tokenizer_config.json", QF_SIDE_JSON, QF_TOKCONFIG_MAX },
	{ "special_tokens_map.json", QF_SIDE_JSON, QF_CONFIG_MAX },
	{ "added_tokens.json", QF_SIDE_JSON, QF_TOKCONFIG_MAX },
	{ "vocab.json", QF_SIDE_JSON, QF_JSON_MAX },
	{ "chat_template.json", QF_SIDE_JSON, QF_CONFIG_MAX },
	{ "tekken.json", QF_SIDE_JSON, QF_JSON_MAX },
	{ "merges.txt", QF_SIDE_MERGES, QF_JSON_MAX },
	{ "chat_template.jinja", QF_SIDE_TEMPLATE, QF_CONFIG_MAX },
	{ "tokenizer.model", QF_SIDE_SPM, QF_JSON_MAX },
	{ "tiktoken.model", QF_SIDE_TIKTOKEN, QF_JSON_MAX },
};
#define NSIDE (sizeof side_files / sizeof side_files[0])

static int side_index(const char *name)
{
	for (size_t i = 0; i < NSIDE; i++)
		if (strcmp(name, side_files[i].name) == 0)
			return (int)i;
	return -1;
}

qf_side_kind qf_side_kind_of(const char *name)
{
	int i = side_index(name);
	if (i >= 0)
		return side_files[i].kind;
	return name[0] != '.' && strlen(name) > 9 && qf_str_ends_with(name, ".tiktoken") ? QF_SIDE_TIKTOKEN
											   : QF_SIDE_NONE;
}

/* 1 if [p, p+n) is well-formed UTF-8 without NUL (no overlongs, surrogates or values past U+10FFFF). */
static int utf8_text(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 9;
		if (c == 0 || k == 9 || k >= n - i)
			return 0;
		uint32_t v = k == 0 ? c : c & (0x3f >> k);
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			v = v << 6 | (p[i + j] & 0x3f);
		}
		static const uint32_t least[] = { 0, 0x80, 0x800, 0x10000 };
		if (v < least[k] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* Next line of [*at, end): its start and length without "\n" or "\r\n"; 0 when none is left. */
static int next_line(const uint8_t **at, const uint8_t *end, const uint8_t **line, size_t *len)
{
	if (*at >= end)
		return 0;
	const uint8_t *nl = memchr(*at, '\n', (size_t)(end - *at));
	const uint8_t *stop = nl ? nl : end;
	*line = *at;
	*len = (size_t)(stop - *at);
	if (*len && (*line)[*len - 1] == '\r')
		(*len)--;
	*at = nl ? nl + 1 : end;
	return 1;
}

/* merges.txt: "A B" per line, one space between two non-empty tokens; "#version…" may open it. */
static const char *merges_bad(const uint8_t *p, size_t n, size_t *lineno)
{
	const uint8_t *at = p, *l;
	size_t len, merges = 0;
	if (!utf8_text(p, n))
		return "not UTF-8 text";
	for (*lineno = 1; next_line(&at, p + n, &l, &len); (*lineno)++) {
		if (!len || (*lineno == 1 && len >= 8 && memcmp(l, "#version", 8) == 0))
			continue;
		const uint8_t *sp = memchr(l, ' ', len);
		if (!sp || sp == l || sp == l + len - 1 || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - l)))
			return "not a merge of two space-separated tokens";
		merges++;
	}
	*lineno = 0;
	return merges ? NULL : "no merges";
}

/* tiktoken ranks: "BASE64 RANK" per line. */
static const char *tiktoken_bad(const uint8_t *p, size_t n, size_t *lineno)
{
	const uint8_t *at = p, *l;
	size_t len, lines = 0;
	for (*lineno = 1; next_line(&at, p + n, &l, &len); (*lineno)++) {
		if (!len && at == p + n)
			break; /* the final newline */
		size_t i = 0;
		while (i < len && (l[i] == '+' || l[i] == '/' || l[i] == '=' || (l[i] >= '0' && l[i] <= '9') ||
				   (l[i] >= 'A' && l[i] <= 'Z') || (l[i] >= 'a' && l[i] <= 'z')))
			i++;
		size_t d = i + 1, digits = 0;
		while (d < len && l[d] >= '0' && l[d] <= '9' && digits < 20)
			d++, digits++;
		if (!i || i % 4 || i >= len || l[i] != ' ' || !digits || d != len)
			return "not a 'BASE64 RANK' line";
		lines++;
	}
	*lineno = 0;
	return lines ? NULL : "no tokens";
}

/* Protobuf: one varint at p[*i]; 0 past the end or past 10 bytes. */
static int pb_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	uint64_t r = 0;
	for (int sh = 0; sh < 64 && *i < n; sh += 7) {
		uint8_t b = p[(*i)++];
		r |= (uint64_t)(b & 0x7f) << sh;
		if (!(b & 0x80)) {
			*v = r;
			return 1;
		}
	}
	return 0;
}

/*
 * Walks the fields of one protobuf message that fills [p, p+n) exactly; counts the
 * length-delimited fields numbered 1 into *n1 and, when nested, checks each as a
 * SentencePiece piece (a message with a field 1: the piece's text).  0 if malformed.
 */
static int pb_message(const uint8_t *p, size_t n, int pieces, size_t *n1)
{
	*n1 = 0;
	for (size_t i = 0; i < n;) {
		uint64_t tag, len, v;
		if (!pb_varint(p, n, &i, &tag) || tag >> 3 == 0 || tag >> 3 > 536870911u)
			return 0;
		switch (tag & 7) {
		case 0:
			if (!pb_varint(p, n, &i, &v))
				return 0;
			break;
		case 1:
		case 5: {
			size_t w = (tag & 7) == 1 ? 8 : 4;
			if (n - i < w)
				return 0;
			i += w;
			break;
		}
		case 2:
			if (!pb_varint(p, n, &i, &len) || len > n - i)
				return 0;
			if (tag >> 3 == 1) {
				size_t inner;
				if (pieces && (!pb_message(p + i, (size_t)len, 0, &inner) || inner == 0))
					return 0;
				(*n1)++;
			}
			i += (size_t)len;
			break;
		default:
			return 0;
		}
	}
	return 1;
}

qf_status qf_side_check(qf_side_kind kind, const char *path, const uint8_t *data, size_t n, qf_err *err)
{
	const char *why = NULL, *what = "";
	size_t line = 0, np = 0;
	qf_err e = { { 0 } };
	switch (kind) {
	case QF_SIDE_JSON: {
		qf_status st;
		cJSON *j = qf_json_parse(data, n, "", &e, &st); /* e.msg is ": REASON" */
		int obj = cJSON_IsObject(j);
		cJSON_Delete(j);
		what = "a JSON object";
		why = !j ? e.msg + 2 : !obj ? "another JSON value" : NULL;
		break;
	}
	case QF_SIDE_MERGES:
		what = "a merges.txt";
		why = merges_bad(data, n, &line);
		break;
	case QF_SIDE_TEMPLATE:
		what = "a Jinja chat template";
		why = !utf8_text(data, n) ? "not UTF-8 text"
		      : !memmem(data, n, "{{", 2) && !memmem(data, n, "{%", 2) ? "no {{ or {% tag" : NULL;
		break;
	case QF_SIDE_SPM:
		what = "a SentencePiece model";
		why = !pb_message(data, n, 1, &np) ? "not a protobuf message" : np == 0 ? "no pieces" : NULL;
		break;
	case QF_SIDE_TIKTOKEN:
		what = "a tiktoken file";
		why = tiktoken_bad(data, n, &line);
		break;
	default:
		return qf_fail(err, QF_EFORMAT, "%s: not a file qforge carries", path);
	}
	if (!why)
		return QF_OK;
	if (line)
		return qf_fail(err, QF_EFORMAT, "%s: line %zu: not %s (%s), so it is not copied", path, line, what, why);
	return qf_fail(err, QF_EFORMAT, "%s: not %s (%s), so it is not copied", path, what, why);
}

qf_status qf_side_open(const char *path, qf_mapfile *m, qf_err *err)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	qf_side_kind kind = qf_side_kind_of(base);
	int i = side_index(base);
	uint64_t max = i >= 0 ? side_files[i].max : QF_JSON_MAX;
	memset(m, 0, sizeof *m);
	if (kind == QF_SIDE_NONE)
		return qf_fail(err, QF_EFORMAT, "%s: not a file qforge carries", path);
	qf_status s = qf_mapfile_open(m, path, err);
	if (s)
		return s;
	if (m->size > max)
		s = qf_fail(err, QF_EFORMAT, "%s: %llu bytes, more than the %llu MiB a %s may have, so it is not copied", path,
			    (unsigned long long)m->size, (unsigned long long)(max >> 20), base);
	else
		s = qf_side_check(kind, path, m->data, (size_t)m->size, err);
	if (s)
		qf_mapfile_close(m);
	return s;
}
