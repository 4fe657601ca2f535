/* failmalloc.h — allocation-failure injection for tests: fail the Nth allocation, for N = 1, 2, …
 * (the nghttp2 tests/failmalloc.c and SQLite OOM-loop model). See docs/testing.md §Allocation
 * failures.
 *
 * What is counted and failed: a test executable linked with FAILMALLOC_LINK_ARGS (meson:
 * `failmalloc_link_args`, i.e. -Wl,--wrap=malloc,calloc,realloc,free,strdup,strndup) routes
 * every malloc/calloc/realloc/strdup/strndup/free of peermcp's own code (libpeermcp_core.a and
 * the test) through the __wrap_* functions of failmalloc.c. jansson allocates through
 * util/alloc.c (so it is counted too), and fm_init() routes OpenSSL (CRYPTO_set_mem_functions). Allocations made inside other
 * shared libraries (libuv, libsodium, protobuf-c, SQLite, libc) are neither counted nor failed.
 *
 * Only the thread that called fm_arm() counts and fails allocations, so the Nth allocation is
 * the same one in every run whatever the worker threads do.
 *
 * OpenSSL's allocations are counted and failed only for a scenario run with fm_opts.openssl:
 * OpenSSL makes thousands of allocations per RSA verification, and only the scenarios that test
 * how our code takes an OpenSSL failure need them.
 *
 * Leaks: every allocation of peermcp code or jansson made by the armed thread while armed is
 * tracked until it is freed (by any thread); fm_disarm() returns how many are still live.
 * OpenSSL's allocations are never tracked (it keeps caches and per-thread error state);
 * LeakSanitizer at exit still sees what leaks through them.
 *
 * Threads: fm_init/fm_arm/fm_disarm/fm_run_scenario from one test thread; the wrappers from any. */
#ifndef PEERMCP_TESTS_SUPPORT_FAILMALLOC_H
#define PEERMCP_TESTS_SUPPORT_FAILMALLOC_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
  FM_ONCE = 0, /* only the Nth allocation fails; later ones succeed (recovery paths) */
  FM_FROM = 1, /* the Nth and every later allocation fail (error propagation) */
} fm_mode;

/* Installs the jansson and OpenSSL hooks. Call first thing in main(), before any allocation
 * by OpenSSL. */
void fm_init(void);

/* From now on, on this thread, allocation number fail_at (1-based, counted from here) fails
 * (and every later one in FM_FROM mode). fail_at 0 counts without failing. */
void fm_arm(unsigned long fail_at, fm_mode mode);
/* Stops counting; returns the number of tracked allocations still live (leaked), after
 * printing them. */
size_t fm_disarm(void);
/* Allocations counted since fm_arm, and whether one was failed. */
unsigned long fm_count(void);
bool fm_failed(void);
/* The mode of the current run. */
fm_mode fm_current_mode(void);
/* Pauses counting and failing on this thread (nests); tracking goes on. For set-up or checks
 * inside a scenario that must not fail (e.g. the "next call still works" step). */
void fm_pause(void);
void fm_resume(void);

/* A scenario: runs the code under test from scratch and frees everything it made. It returns
 * 0 when every step succeeded. When a step fails, it checks (cmocka assertions) that the
 * error is one the contract allows (e.g. -ENOMEM, or a documented error reply), cleans up and
 * returns that error; fm_failed() tells it whether a failure was injected. */
typedef int (*fm_scenario_fn)(void *ud);

/* In a scenario: checks one step's result. 0 and positive values pass through. A negative
 * value passes only after an injected failure (fm_failed()) and when it is listed in
 * `allowed` (0-terminated; NULL = {-ENOMEM}); otherwise the test fails at file:line.
 * Returns rc. */
long fm_step_at(long rc, const int *allowed, const char *file, int line);
#define FM_STEP(rc, allowed) fm_step_at((long)(rc), (allowed), __FILE__, __LINE__)

typedef struct fm_result {
  unsigned long allocs;      /* allocations of one run with no failure */
  unsigned long runs;        /* runs with an injected failure, both modes */
  unsigned long clean_fails; /* of those, runs that returned an error */
} fm_result;

typedef struct fm_opts {
  bool openssl;   /* count and fail OpenSSL's allocations too */
  bool from_only; /* only FM_FROM: every first failure point once (FM_ONCE over thousands of
                     OpenSSL allocations mostly tests OpenSSL's own recovery, slowly) */
} fm_opts;

/* Runs fn once with no failure (it must return 0 and leak nothing), then for each mode
 * (FM_ONCE, then FM_FROM) and N = 1, 2, …: fails the Nth allocation and runs fn again, until
 * a run completes without reaching N. Fails the test (cmocka) on a leak, or when a run without
 * an injected failure does not return 0. opts may be NULL. Environment: FAILMALLOC_N=<n> runs
 * only that N, FAILMALLOC_MODE=once|from only that mode, FAILMALLOC_VERBOSE=1 prints every run,
 * FAILMALLOC_STACK=1 prints where the Nth allocation is made (ASan builds). */
fm_result fm_run_scenario(const char *name, fm_scenario_fn fn, void *ud, const fm_opts *opts);

#endif
