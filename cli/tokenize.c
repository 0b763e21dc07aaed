#include "config.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "formats/mapfile.h"
#include "formats/textfile.h"
#include "verify/verify.h"

/* The text of a piece with control bytes escaped, for one display line. */
static void show(const char *s, size_t n, char *b, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 8 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			k += (size_t)snprintf(b + k, cap - k, "\\n");
		else if (c == '\t')
			k += (size_t)snprintf(b + k, cap - k, "\\t");
		else if (c < 0x20 || c == 0x7f)
			k += (size_t)snprintf(b + k, cap - k, "\\x%02x", c);
		else
			b[k++] = (char)c;
	}
	b[k] = 0;
}

int cli_tokenize(int argc, char **argv)
{
	int ids_only = 0, json = 0, no_special = 0;
	static const struct option opts[] = {
		{ "ids", no_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-special", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': ids_only = 1; break;
		case 'j': json = 1; break;
		case 'n': no_special = 1; break;
		default: return cli_usage_error("tokenize", "unknown option");
		}
	}
	if (optind != argc - 2)
		return cli_usage_error("tokenize", "expected MODEL and TEXTFILE");
	const char *model = argv[optind], *path = argv[optind + 1];
	qf_err err = { { 0 } };
	qf_tok *t = NULL;
	char *text = NULL;
	size_t len = 0, n = 0;
	qf_tok_piece *p = NULL;
	qf_status s = qf_input_check(model, &err); /* a FIFO would block the probes */
	if (!s)
		s = cli_tokenizer_open(model, &t, &err);
	if (!s)
		s = qf_text_read(path, &text, &len, &err);
	if (!s)
		s = qf_tok_encode(t, text, len, !no_special, &p, &n, &err);
	if (s) {
		free(text);
		qf_tok_free(t);
		return cli_error("tokenize", s, &err);
	}
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "model", model);
		cJSON_AddStringToObject(o, "tokenizer", qf_tok_kind(t));
		cJSON_AddNumberToObject(o, "count", (double)n);
		cJSON *ids = cJSON_AddArrayToObject(o, "ids"), *ps = cJSON_AddArrayToObject(o, "pieces");
		cJSON *off = cJSON_AddArrayToObject(o, "offsets");
		for (size_t i = 0; i < n; i++) {
			cJSON_AddItemToArray(ids, cJSON_CreateNumber(p[i].id));
			cJSON_AddItemToArray(ps, cJSON_CreateString(qf_tok_piece_str(t, p[i].id)));
			cJSON *pr = cJSON_CreateArray();
			cJSON_AddItemToArray(pr, cJSON_CreateNumber((double)p[i].start));
			cJSON_AddItemToArray(pr, cJSON_CreateNumber((double)p[i].end));
			cJSON_AddItemToArray(off, pr);
		}
		cli_print_json(o);
	} else if (ids_only) {
		for (size_t i = 0; i < n; i++)
			printf(i ? " %d" : "%d", p[i].id);
		printf("\n");
	} else {
		char b[256];
		for (size_t i = 0; i < n; i++) {
			show(text + p[i].start, (size_t)(p[i].end - p[i].start), b, sizeof b);
			printf("%8llu %7d  %-24s %s\n", (unsigned long long)p[i].start, p[i].id, qf_tok_piece_str(t, p[i].id), b);
		}
		fprintf(stderr, "%zu tokens from %zu bytes (%s)\n", n, len, qf_tok_kind(t));
	}
	free(p);
	free(text);
	qf_tok_free(t);
	return 0;
}
