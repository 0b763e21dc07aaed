/*
 * Side files and probes, as an attacker would hand them over.
 *
 * The files beside the weights are carried into an output only when their name is a known one
 * and their bytes parse as what the name claims (formats/sidefile.h): a table of good and bad
 * files per kind, each checked for its status and message.  Probing a path for its kind (bundle
 * tar, GGUF) must not block on a FIFO: each probe runs under an alarm.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "formats/packed.h"
#include "formats/sidefile.h"
#include "tests/tap.h"
#include "tests/util.h"

/* Seconds a probe may take before it counts as hung (SIGALRM ends the test). */
#define PROBE_SECONDS 10

/* A SentencePiece ModelProto with one piece: pieces { piece: "a" score: 1.0 }. */
static const char spm_one[] = "\x0a\x08\x0a\x01\x61\x15\x00\x00\x80\x3f";

static void side_table(void)
{
	static const struct {
		const char *name, *text;
		size_t len;         /* 0: strlen(text) */
		qf_status want;
		const char *msg;    /* in err.msg when refused */
	} cases[] = {
		{ "generation_config.json", "{\"bos_token_id\": 1}\n", 0, QF_OK, "" },
		{ "generation_config.json", "root:x:0:0:root:/root:/bin/bash\n", 0, QF_EFORMAT, "not a JSON object (invalid JSON)" },
		{ "tokenizer_config.json", "[1, 2]", 0, QF_EFORMAT, "not a JSON object (another JSON value)" },
		{ "config.json", "{} {\"x\": 1}", 0, QF_EFORMAT, "trailing data after the JSON value" },
		{ "special_tokens_map.json", "", 0, QF_EFORMAT, "not a JSON object" },
		{ "merges.txt", "#version: 0.2\n\xc4\xa0 t\nh e\r\n", 0, QF_OK, "" },
		{ "merges.txt", "root:x:0:0:root:/root:/bin/bash\n", 0, QF_EFORMAT, "line 1: not a merges.txt" },
		{ "merges.txt", "h e\n-----BEGIN OPENSSH PRIVATE KEY-----\n", 0, QF_EFORMAT, "line 2: not a merges.txt" },
		{ "merges.txt", "h e\n\xff\xfe x\n", 0, QF_EFORMAT, "not UTF-8 text" },
		{ "merges.txt", "#version: 0.2\n", 0, QF_EFORMAT, "no merges" },
		{ "chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}", 0, QF_OK, "" },
		{ "chat_template.jinja", "password=hunter2\n", 0, QF_EFORMAT, "no {{ or {% tag" },
		{ "chat_template.jinja", "{{ x }}\xc0\xaf", 0, QF_EFORMAT, "not UTF-8 text" }, /* an overlong '/' */
		{ "chat_template.jinja", "{{ x }}\0", 8, QF_EFORMAT, "not UTF-8 text" },
		{ "tokenizer.model", spm_one, sizeof spm_one - 1, QF_OK, "" },
		{ "tokenizer.model", "root:x:0:0:secret\n", 0, QF_EFORMAT, "not a protobuf message" },
		{ "tokenizer.model", "\x10\x01", 0, QF_EFORMAT, "no pieces" },
		{ "tokenizer.model", "\x0a\x02\x10\x01", 0, QF_EFORMAT, "not a protobuf message" }, /* a piece without text */
		{ "tokenizer.model", "\x0a\x7f\x0a\x01", 0, QF_EFORMAT, "not a protobuf message" }, /* length past the end */
		{ "tiktoken.model", "IQ== 0\nIg== 1\n", 0, QF_OK, "" },
		{ "o200k.tiktoken", "IQ== 0\nIg== 1", 0, QF_OK, "" },
		{ "tiktoken.model", "IQ== 0\nroot:x:0:0\n", 0, QF_EFORMAT, "line 2: not a tiktoken file" },
		{ "tiktoken.model", "IQ= 0\n", 0, QF_EFORMAT, "line 1: not a tiktoken file" },
		{ "tiktoken.model", "", 0, QF_EFORMAT, "no tokens" },
		{ "secret.json", "{\"aws_secret\": \"x\"}", 0, QF_EFORMAT, "not a file qforge carries" },
		{ "modeling_deepseek.py", "import os\n", 0, QF_EFORMAT, "not a file qforge carries" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char dir[64], rel[128];
		snprintf(dir, sizeof dir, "side%zu", i);
		mkdir(tu_path(dir), 0755);
		snprintf(rel, sizeof rel, "side%zu/%s", i, cases[i].name);
		const char *p = tu_path(rel);
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		tu_write(p, cases[i].text, len);
		qf_mapfile m;
		qf_err err = { { 0 } };
		qf_status s = qf_side_open(p, &m, &err);
		int bytes = s || (m.size == len && memcmp(m.data, cases[i].text, len) == 0);
		ok(s == cases[i].want && strstr(err.msg, cases[i].msg) && bytes, "%s %s: %s", cases[i].name,
		   cases[i].want ? "refused" : "carried", s ? err.msg : "ok");
		if (!s)
			qf_mapfile_close(&m);
	}
	ok(qf_side_kind_of("secret.json") == QF_SIDE_NONE && qf_side_kind_of(".tiktoken") == QF_SIDE_NONE &&
	   qf_side_kind_of("merges.txt") == QF_SIDE_MERGES && qf_side_kind_of("notes.txt") == QF_SIDE_NONE,
	   "a name is a kind only when it is a known one");

	/* the size caps hold before parsing: a 5 MB generation_config.json is refused */
	size_t big = 5u << 20;
	char *b = malloc(big);
	if (!b)
		bail("out of memory");
	memset(b, ' ', big);
	b[0] = '{';
	b[big - 1] = '}';
	mkdir(tu_path("sidebig"), 0755);
	tu_write(tu_path("sidebig/generation_config.json"), b, big);
	free(b);
	qf_mapfile m;
	qf_err err = { { 0 } };
	ok(qf_side_open(tu_path("sidebig/generation_config.json"), &m, &err) == QF_EFORMAT && strstr(err.msg, "more than the 4 MiB"),
	   "a 5 MB generation_config.json: %s", err.msg);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "not ok - a probe blocked (SIGALRM)\n";
	if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0) {
	}
	_exit(1);
}

static void probes(void)
{
	const char *fifo = tu_path("probe.fifo");
	mkdir(tu_path("sidefifo"), 0755);
	const char *gfifo = tu_path("sidefifo/generation_config.json");
	if (mkfifo(fifo, 0644) != 0 || mkfifo(gfifo, 0644) != 0)
		bail("mkfifo failed");
	signal(SIGALRM, on_alarm);
	alarm(PROBE_SECONDS);
	ok(!qf_pk_is_bundle(fifo), "qf_pk_is_bundle: a FIFO is not a bundle, and probing it does not block");
	ok(!qf_path_is_gguf(fifo), "qf_path_is_gguf: a FIFO is not a GGUF, and probing it does not block");
	ok(!qf_pk_is_bundle("/dev/zero"), "qf_pk_is_bundle: a device is not a bundle");
	qf_mapfile m;
	qf_err err = { { 0 } };
	ok(qf_side_open(gfifo, &m, &err) == QF_EFORMAT && strstr(err.msg, "not a regular file"),
	   "a FIFO as generation_config.json is refused without blocking: %s", err.msg);
	alarm(0);
	/* and a probe still finds what it looks for: a first tar header named manifest.json */
	char h[1024] = { 0 };
	memcpy(h, "manifest.json", 14);
	memcpy(h + 257, "ustar", 5);
	tu_write(tu_path("probe.tar"), h, sizeof h);
	ok(qf_pk_is_bundle(tu_path("probe.tar")), "qf_pk_is_bundle: a tar opening with manifest.json is a bundle");
	symlink(tu_path("probe.tar"), tu_path("probe-link.tar"));
	ok(qf_pk_is_bundle(tu_path("probe-link.tar")), "… through a symlink too");
}

int main(void)
{
	plan_lazy();
	side_table();
	probes();
	return tap_failures() ? 1 : 0;
}
