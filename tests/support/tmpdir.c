/* tmpdir.c — see tmpdir.h. */
#define _XOPEN_SOURCE 700
#include "tmpdir.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

void ts_tmpdir_make(char out[TS_TMPDIR_MAX], const char *tag) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  int n = snprintf(out, TS_TMPDIR_MAX, "%s/peermcp-%s-XXXXXX", base, tag ? tag : "test");
  if (n < 0 || n >= TS_TMPDIR_MAX) fail_msg("temporary directory name too long");
  if (!mkdtemp(out)) fail_msg("mkdtemp %s: %s", out, strerror(errno));
}

void ts_path(char *out, size_t cap, const char *dir, const char *name) {
  int n = snprintf(out, cap, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= cap) fail_msg("path too long: %s/%s", dir, name);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
  return rc == 0 || errno == ENOENT ? 0 : -1;
}

int ts_tmpdir_remove(const char *dir) {
  if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0) return 0;
  return errno == ENOENT ? 0 : -errno;
}
