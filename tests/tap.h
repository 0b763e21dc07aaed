/*
 * tap.h — a tiny TAP producer (in the spirit of c-tap-harness).
 */
#ifndef QF_TAP_H
#define QF_TAP_H

#include <stdint.h>

void plan(int n);
void plan_lazy(void);           /* print the plan at exit */
int ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int is_int(long long want, long long got, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int is_hex(uint64_t want, uint64_t got, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int is_string(const char *want, const char *got, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int is_double(double want, double got, double tol, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void skip(const char *reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int tap_failures(void);

#endif
