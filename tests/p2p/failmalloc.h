/* failmalloc.h — allocation-failure injection for unit tests (the nghttp2 failmalloc / SQLite
 * OOM-loop model): fail the Nth allocation from now, so every -ENOMEM path can be run.
 *
 * How: a test executable links tests/p2p/failmalloc.c with
 *   link_args: ['-Wl,--wrap=malloc', '-Wl,--wrap=calloc', '-Wl,--wrap=realloc']
 * so every malloc/calloc/realloc call made by our own code (the core library and the test;
 * not by shared libraries such as libuv or protobuf-c) goes through a counter first.
 * Works with and without AddressSanitizer (the real allocator is still ASan's).
 *
 * Threads: the counter is atomic; arm it around the code under test only, because any
 * thread's allocation counts. */
#ifndef PEERMCP_TESTS_FAILMALLOC_H
#define PEERMCP_TESTS_FAILMALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* The nth allocation from now (n >= 1) returns NULL; with `sticky`, every one after it too. */
void failmalloc_arm(unsigned long n, bool sticky);
/* Back to normal allocation. */
void failmalloc_disarm(void);
/* Allocations that failed since the last arm (0: the armed one was never reached). */
unsigned long failmalloc_failures(void);
/* Allocations seen since the last arm (whether or not they failed). */
unsigned long failmalloc_count(void);

#endif
