/* tmpdir.h — temporary state directories for tests: made under $TMPDIR (default /tmp) with a
 * tag in the name, removed with everything in them (no shell). Test-only. */
#ifndef PEERMCP_TESTS_SUPPORT_TMPDIR_H
#define PEERMCP_TESTS_SUPPORT_TMPDIR_H

#include <stddef.h>

#define TS_TMPDIR_MAX 256

/* Makes a fresh directory "<tmp>/peermcp-<tag>-XXXXXX" (0700) into out; fails the test (cmocka)
 * if it cannot. */
void ts_tmpdir_make(char out[TS_TMPDIR_MAX], const char *tag);
/* out = dir "/" name (fails the test if it does not fit). */
void ts_path(char *out, size_t cap, const char *dir, const char *name);
/* Removes dir and everything below it; 0 or -errno (a missing dir is 0). */
int ts_tmpdir_remove(const char *dir);

#endif
