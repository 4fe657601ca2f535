/* fscheck.c — who could change a path (see fscheck.h). */
#include "util/fscheck.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

__attribute__((format(printf, 4, 5))) static int fail(int rc, char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

const char *fscheck_kind(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "of an unknown kind";
}

int fscheck_private_dir(const struct stat *st, const char *path, const char *what, char *err, size_t errlen) {
  if (!S_ISDIR(st->st_mode))
    return fail(-ENOTDIR, err, errlen, "%s %s is %s, not a directory", what, path, fscheck_kind(st->st_mode));
  uid_t me = geteuid();
  if (st->st_uid != me)
    return fail(-EPERM, err, errlen,
                "%s %s is owned by uid %u, not by this user (uid %u); refusing to trust what another user can "
                "change (use a directory of your own)",
                what, path, (unsigned)st->st_uid, (unsigned)me);
  if (st->st_mode & (S_IWGRP | S_IWOTH))
    return fail(-EPERM, err, errlen,
                "%s %s is writable by %s (mode %04o): another local user could plant files in it; run chmod 700 %s",
                what, path, st->st_mode & S_IWOTH ? "others" : "its group", (unsigned)(st->st_mode & 07777), path);
  return 0;
}

int fscheck_own_file(const struct stat *st, const char *path, const char *what, char *err, size_t errlen) {
  if (!S_ISREG(st->st_mode))
    return fail(-EINVAL, err, errlen, "%s %s is %s, not a regular file", what, path, fscheck_kind(st->st_mode));
  uid_t me = geteuid();
  if (st->st_uid != me)
    return fail(-EPERM, err, errlen, "%s %s is owned by uid %u, not by this user (uid %u); refusing to use it", what,
                path, (unsigned)st->st_uid, (unsigned)me);
  return 0;
}

int fscheck_mkdir_p(const char *path) {
  char p[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof p) return -ENAMETOOLONG;
  memcpy(p, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != 0) continue;
    char c = p[i];
    p[i] = 0;
    if (mkdir(p, 0700) != 0 && errno != EEXIST) return -errno;
    p[i] = c;
  }
  return 0;
}
