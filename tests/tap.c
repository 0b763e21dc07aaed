#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/tap.h"

static int n_tests, n_fail, lazy;

static void at_exit_plan(void)
{
	if (lazy)
		printf("1..%d\n", n_tests);
	fflush(stdout);
}

void plan(int n) { printf("1..%d\n", n); fflush(stdout); }

void plan_lazy(void)
{
	lazy = 1;
	atexit(at_exit_plan);
}

static int report(int cond, const char *fmt, va_list ap)
{
	n_tests++;
	if (!cond)
		n_fail++;
	printf("%sok %d - ", cond ? "" : "not ", n_tests);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = report(cond, fmt, ap);
	va_end(ap);
	return r;
}

int is_int(long long want, long long got, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = report(want == got, fmt, ap);
	va_end(ap);
	if (!r)
		printf("#   want: %lld\n#    got: %lld\n", want, got);
	return r;
}

int is_hex(uint64_t want, uint64_t got, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = report(want == got, fmt, ap);
	va_end(ap);
	if (!r)
		printf("#   want: %016llx\n#    got: %016llx\n", (unsigned long long)want,
		       (unsigned long long)got);
	return r;
}

int is_string(const char *want, const char *got, const char *fmt, ...)
{
	va_list ap;
	int c = want && got ? strcmp(want, got) == 0 : want == got;
	va_start(ap, fmt);
	int r = report(c, fmt, ap);
	va_end(ap);
	if (!r)
		printf("#   want: %s\n#    got: %s\n", want ? want : "(null)", got ? got : "(null)");
	return r;
}

int is_double(double want, double got, double tol, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = report(fabs(want - got) <= tol, fmt, ap);
	va_end(ap);
	if (!r)
		printf("#   want: %.10g (±%g)\n#    got: %.10g\n", want, tol, got);
	return r;
}

void skip(const char *reason, const char *fmt, ...)
{
	va_list ap;
	n_tests++;
	printf("ok %d - ", n_tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", reason);
	fflush(stdout);
}

void diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void bail(const char *fmt, ...)
{
	va_list ap;
	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(255);
}

int tap_failures(void) { return n_fail; }
