/* fscheck.h — whether another local user could change a path peermcp trusts: the checks made
 * before a file or directory on disk is used (the state directory, the cache directory, the
 * queue database and its directory, the lock file; issue 9 item 9). They judge a struct stat
 * the caller got from the object it will use (fstat of an open descriptor where it can), so
 * there is no gap between the check and the use.
 *
 * Rules: a private directory is a directory owned by this process's effective user and not
 * writable by group or others; an own file is a regular file owned by this user.
 *
 * Returns 0 or a negative errno with a one-line reason in err (may be NULL): -ENOTDIR / -EINVAL
 * (wrong kind: the reason says what it is), -EPERM (another owner, or writable by group/others).
 * Threads: any (pure over the stat; geteuid). */
#ifndef PEERMCP_UTIL_FSCHECK_H
#define PEERMCP_UTIL_FSCHECK_H

#include <stddef.h>
#include <sys/stat.h>

/* "a regular file", "a symbolic link", "a directory", … */
const char *fscheck_kind(mode_t mode);

/* `what` names the object in the reason ("state directory", "cache directory"). */
int fscheck_private_dir(const struct stat *st, const char *path, const char *what, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int fscheck_own_file(const struct stat *st, const char *path, const char *what, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* mkdir -p: creates every missing directory of `path` with mode 0700 (existing ones are left as
 * they are; the checks above judge them). 0, -ENAMETOOLONG (path of PATH_MAX or more), or the
 * negative errno of the mkdir that failed. */
int fscheck_mkdir_p(const char *path) __attribute__((warn_unused_result));

#endif
