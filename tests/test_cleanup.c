/* test_cleanup.c — the signal-time registry, the mapped-source guard, and what outputs may replace. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "formats/mapfile.h"
#include "formats/outfile.h"
#include "formats/safetensors.h"
#include "tests/tap.h"
#include "tests/util.h"
#include "util/cleanup.h"

/* What the CLI's SIGBUS handler does (tests install their own; the library never does). */
static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!qf_guard_fault(si->si_addr)) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

static void registry(void)
{
	/* far more than the old 16 fixed slots: every one is removed */
	enum { N = 1000 };
	int ids[N], bad = 0;
	mkdir(tu_path("many"), 0755);
	for (int i = 0; i < N; i++) {
		char p[4096];
		snprintf(p, sizeof p, "%s/f%d", tu_path("many"), i);
		bad += tu_write(p, "x", 1) != 0 || qf_cleanup_add(p, 0, &ids[i], NULL) != QF_OK;
	}
	/* a folder tree, as a bundle or staging folder is (nested here to be sure) */
	mkdir(tu_path("tree"), 0755);
	mkdir(tu_path("tree/sub"), 0755);
	tu_write(tu_path("tree/a"), "a", 1);
	tu_write(tu_path("tree/sub/b"), "b", 1);
	symlink("/etc/hostname", tu_path("tree/link"));
	int tid = 0;
	bad += qf_cleanup_add(tu_path("tree"), 1, &tid, NULL) != QF_OK;
	/* forgotten entries stay */
	tu_write(tu_path("kept"), "k", 1);
	int kid = 0;
	qf_cleanup_add(tu_path("kept"), 0, &kid, NULL);
	qf_cleanup_forget(kid);
	ok(!bad, "%d temporaries and a folder registered", N);
	qf_cleanup_run();
	int left = 0;
	for (int i = 0; i < N; i++) {
		char p[4096];
		snprintf(p, sizeof p, "%s/f%d", tu_path("many"), i);
		left += tu_exists(p);
	}
	is_int(0, left, "qf_cleanup_run removed all %d files (no silent drop past 16)", N);
	ok(!tu_exists(tu_path("tree")), "… and the folder tree, without following its symlink");
	ok(tu_exists("/etc/hostname") || access("/etc", F_OK) == 0, "the symlink's target is untouched");
	ok(tu_exists(tu_path("kept")), "a forgotten entry is not removed");
}

static void guard(void)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, &old);
	const char *p = tu_path("shrinks.bin");
	static uint8_t buf[1 << 16];
	memset(buf, 7, sizeof buf);
	tu_write(p, buf, sizeof buf);
	qf_mapfile m;
	qf_err err = { { 0 } };
	ok(qf_mapfile_open(&m, p, &err) == QF_OK && qf_guard_check(NULL) == QF_OK, "mapped; no fault yet");
	ok(truncate(p, 100) == 0, "truncated under the mapping");
	unsigned sum = 0;
	for (size_t i = 0; i < m.size; i += 512)
		sum += m.data[i]; /* SIGBUS past the new end: the guard turns it into zeros */
	ok(sum == 7, "the read finished (pages past the end read as zeros: sum %u)", sum);
	qf_mapfile_close(&m);
	qf_status s = qf_guard_check(&err);
	ok(s == QF_EFORMAT && strstr(err.msg, "shrinks.bin: changed while it was being read"), "reported after unmapping: %s",
	   err.msg);
	/* an output committed after that is refused */
	qf_out o;
	memset(&err, 0, sizeof err);
	s = qf_out_open(&o, tu_path("after.gguf"), 0, &err);
	if (!s)
		s = qf_out_write(&o, "x", 1, &err);
	if (!s)
		s = qf_out_commit(&o, &err);
	ok(s == QF_EFORMAT && !tu_exists(tu_path("after.gguf")) && !tu_temps(tu_path("after.gguf")),
	   "no output is renamed into place once a source changed: %s", err.msg);
	sigaction(SIGBUS, &old, NULL);
}

/* A folder that looks like an HF output: one shard with (or without) a qforge key. */
static void hf_dir(const char *dir, int marked, const char *extra)
{
	mkdir(dir, 0755);
	char p[4096];
	float f[2] = { 1, 2 };
	qf_st_entry e = { .name = "w", .dtype = QF_F32, .ndim = 1, .shape = { 2 }, .data = f };
	const char *md_marked[] = { "format", "pt", "qforge.tensor_xxh64.w", "0123456789abcdef", NULL };
	const char *md_plain[] = { "format", "pt", NULL };
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	qf_st_write(p, &e, 1, marked ? md_marked : md_plain, NULL);
	snprintf(p, sizeof p, "%s/config.json", dir);
	tu_write(p, "{}", 2);
	if (extra) {
		snprintf(p, sizeof p, "%s/%s", dir, extra);
		if (strchr(extra, '/'))
			mkdir(p, 0755);
		else
			tu_write(p, "x", 1);
	}
}

static void ownership(void)
{
	/* bundles */
	mkdir(tu_path("b_ok"), 0755);
	const char *man = "{\"format\": \"qforge-packed\", \"files\": [{\"name\": \"tensors.bin\"}, {\"name\": \"config.json\"}]}";
	tu_write(tu_path("b_ok/manifest.json"), man, strlen(man));
	tu_write(tu_path("b_ok/tensors.bin"), "", 0);
	tu_write(tu_path("b_ok/config.json"), "{}", 2);
	mkdir(tu_path("b_extra"), 0755);
	man = "{\"format\": \"qforge-packed\", \"files\": []}";
	tu_write(tu_path("b_extra/manifest.json"), man, strlen(man));
	tu_write(tu_path("b_extra/notes.txt"), "mine", 4);
	mkdir(tu_path("b_foreign"), 0755);
	man = "{\"format\": \"something-else\"}";
	tu_write(tu_path("b_foreign/manifest.json"), man, strlen(man));
	mkdir(tu_path("home"), 0755);
	tu_write(tu_path("home/.bashrc"), "x", 1);
	mkdir(tu_path("empty"), 0755);
	hf_dir(tu_path("hf_ok"), 1, NULL);
	hf_dir(tu_path("hf_plain"), 0, NULL);
	hf_dir(tu_path("hf_sub"), 1, "sub/");
	hf_dir(tu_path("hf_junk"), 1, "photo.jpg");
	symlink(tu_path("hf_ok"), tu_path("hf_link"));
	static const struct {
		const char *name;
		int ours;
		const char *why;
	} cases[] = {
		{ "b_ok", 1, "" },
		{ "b_extra", 0, "'notes.txt', which its manifest does not list" },
		{ "b_foreign", 0, "no qforge manifest.json" },
		{ "home", 0, "'.bashrc', which qforge does not write" },
		{ "empty", 0, "no qforge manifest.json" },
		{ "hf_ok", 1, "" },
		{ "hf_plain", 0, "no qforge.* key" },
		{ "hf_sub", 0, "'sub', a folder" },
		{ "hf_junk", 0, "'photo.jpg', which qforge does not write" },
		{ "hf_link", 0, "not a folder" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		qf_err why = { { 0 } };
		int got = qf_output_is_ours(tu_path(cases[i].name), &why);
		ok(got == cases[i].ours && strstr(why.msg, cases[i].why), "%s: %s (%s)", cases[i].name,
		   cases[i].ours ? "qforge's" : "not qforge's", why.msg);
	}

	/* what --force may replace, by kind */
	tu_write(tu_path("plain.gguf"), "old", 3);
	symlink(tu_path("plain.gguf"), tu_path("link.gguf"));
	mkfifo(tu_path("fifo.gguf"), 0644);
	static const struct {
		const char *path; /* NULL: use literal */
		const char *lit;
		int is_dir, force;
		qf_status want;
		const char *msg;
	} rep[] = {
		{ NULL, "", 0, 1, QF_EUSAGE, "output path is empty" },
		{ "new.gguf", NULL, 0, 0, QF_OK, "" },
		{ "plain.gguf", NULL, 0, 0, QF_EUSAGE, "use --force" },
		{ "plain.gguf", NULL, 0, 1, QF_OK, "" },
		{ NULL, "/dev/null", 0, 1, QF_EUSAGE, "a character device" },
		{ "fifo.gguf", NULL, 0, 1, QF_EUSAGE, "a FIFO" },
		{ "link.gguf", NULL, 0, 1, QF_EUSAGE, "symbolic link" },
		{ "b_ok", NULL, 0, 1, QF_EUSAGE, "is a folder and this output is a file" },
		{ "b_ok", NULL, 1, 1, QF_OK, "" },
		{ "home", NULL, 1, 1, QF_EUSAGE, "a folder qforge did not write" },
		{ "hf_ok", NULL, 1, 1, QF_OK, "" },
		{ "hf_plain", NULL, 1, 1, QF_EUSAGE, "a folder qforge did not write" },
	};
	for (size_t i = 0; i < sizeof rep / sizeof rep[0]; i++) {
		qf_err err = { { 0 } };
		const char *p = rep[i].path ? tu_path(rep[i].path) : rep[i].lit;
		qf_status s = qf_output_check(p, rep[i].force, rep[i].is_dir, &err);
		ok(s == rep[i].want && strstr(err.msg, rep[i].msg), "%s%s as a %s output: %s", rep[i].force ? "-f " : "",
		   rep[i].path ? rep[i].path : rep[i].lit, rep[i].is_dir ? "folder" : "file", s ? err.msg : "allowed");
	}
	struct stat st;
	ok(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode), "/dev/null is still a device");
}

static void temps(void)
{
	/* a symlink where the old fixed OUT.tmp was is never followed */
	tu_write(tu_path("victim"), "precious", 8);
	symlink(tu_path("victim"), tu_path("o.gguf.tmp"));
	qf_out a, b;
	qf_err err = { { 0 } };
	ok(qf_out_open(&a, tu_path("o.gguf"), 0, &err) == QF_OK && qf_out_open(&b, tu_path("o.gguf"), 0, &err) == QF_OK,
	   "two writers of one output open at once (%s)", err.msg);
	ok(strcmp(a.tmp, b.tmp) != 0 && tu_temps(tu_path("o.gguf")) == 2, "… each with its own temporary");
	qf_out_write(&a, "A", 1, &err);
	qf_out_write(&b, "B", 1, &err);
	ok(qf_out_commit(&a, &err) == QF_OK, "the first commits");
	memset(&err, 0, sizeof err);
	ok(qf_out_commit(&b, &err) == QF_EUSAGE && strstr(err.msg, "output exists"),
	   "the second, without --force, does not replace it: %s", err.msg);
	size_t n = 0;
	uint8_t *v = tu_read(tu_path("victim"), &n);
	uint8_t *o = tu_read(tu_path("o.gguf"), &n);
	ok(v && memcmp(v, "precious", 8) == 0 && o && o[0] == 'A' && !tu_temps(tu_path("o.gguf")),
	   "the symlink's target is intact, the output is the first writer's, no temporary is left");
	free(v);
	free(o);

	/* a temporary that a killed run left: removed when its process is gone, kept while it runs */
	char host[256] = "", dead[4096], live[4096];
	gethostname(host, sizeof host);
	for (char *c = host; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.'))
			*c = '_';
	host[32] = 0;
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0); /* a pid that no longer runs */
	snprintf(dead, sizeof dead, "%s" QF_OUTPUT_TMP_TAG "%ld-abcdef-%s", tu_path("k.gguf"), (long)child, host);
	snprintf(live, sizeof live, "%s" QF_OUTPUT_TMP_TAG "%ld-abcdef-%s", tu_path("k.gguf"), (long)getppid(), host);
	tu_write(dead, "x", 1);
	tu_write(live, "x", 1);
	mkdir(tu_path("k.gguf.qftmp-1-abcdef-otherhost"), 0755);
	qf_out k;
	ok(qf_out_open(&k, tu_path("k.gguf"), 0, &err) == QF_OK, "open sweeps the stale temporaries");
	ok(!tu_exists(dead) && tu_exists(live) && tu_exists(tu_path("k.gguf.qftmp-1-abcdef-otherhost")),
	   "a dead process's is removed; a running one's and another host's stay");
	qf_out_abort(&k);
}

static void messages(void)
{
	/* a path of 3000 bytes: the message still ends with its reason, and starts with the path */
	char path[3200] = "/data";
	while (strlen(path) < 3000)
		strcat(path, "/some-folder-name");
	strcat(path, "/model-00007-of-00163.safetensors");
	qf_err err = { { 0 } };
	qf_fail(&err, QF_EFORMAT, "%s: tensor '%s': data [0, 9) past end of data (8 bytes); file truncated?", path, "w");
	size_t n = strlen(err.msg);
	ok(n < sizeof err.msg && strncmp(err.msg, "/data/some-folder-name", 22) == 0 &&
	   strstr(err.msg, "…") && strstr(err.msg, "model-00007-of-00163.safetensors: tensor 'w': data [0, 9) past end of data (8 bytes); file truncated?"),
	   "a 3 KB message keeps its file name and reason (%zu bytes): %.60s…%s", n, err.msg, err.msg + n - 60);
	qf_err e2 = { { 0 } };
	qf_fail(&e2, QF_EFORMAT, "short: %s", "fine");
	is_string("short: fine", e2.msg, "a short message is unchanged");
}

int main(void)
{
	plan_lazy();
	messages();
	registry();
	ownership();
	temps();
	guard(); /* last: once a source changed, nothing more commits */
	return tap_failures() ? 1 : 0;
}
