/* util.h — helpers shared by the C tests. */
#ifndef QF_TEST_UTIL_H
#define QF_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A fresh temporary folder (removed at exit). */
const char *tu_tmpdir(void);
/* Path inside tu_tmpdir (static buffer rotation: 8 slots). */
const char *tu_path(const char *name);
/* Path of a file in the source tree (QF_SRCDIR or compile-time default). */
const char *tu_src(const char *rel);
int tu_write(const char *path, const void *data, size_t n);
/* Reads a whole file (plus a NUL byte after it); *n gets its size.  NULL on error. */
uint8_t *tu_read(const char *path, size_t *n);
/* Path of one library of the npm llama.cpp oracle (@node-llama-cpp/linux-x64 under
 * QF_ORACLE_DIR, else tests/oracle), e.g. tu_oracle_lib("libggml-base.so"). */
const char *tu_oracle_lib(const char *name);
/* 1 under CI (CI=true): there a missing oracle is a failure, not a skip. */
int tu_ci(void);
/* Deterministic PRNG (splitmix64). */
uint64_t tu_rand(uint64_t *state);
float tu_randf(uint64_t *state);    /* uniform [-1, 1) */
int tu_exists(const char *path);
/* How many temporaries of output PATH (PATH.qftmp-*) are in its folder. */
int tu_temps(const char *path);
/* The whitespace-separated token ids of a .ids file (malloc'd); NULL if unreadable. */
int32_t *tu_read_ids(const char *path, size_t *n);
/* Writes a small random DeepSeek-V2-Lite-shaped checkpoint (q_lora_rank null); 0 on success. */
int tu_gen_dsv2(const char *dir, uint64_t seed);

#endif
