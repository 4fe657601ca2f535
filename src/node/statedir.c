/* statedir.c — the state directory: private, checked, locked (see statedir.h). */
#include "node/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fscheck.h"

struct statedir_lock {
  int fd;
};

__attribute__((format(printf, 4, 5))) static int fail(int rc, char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}


int statedir_check_private(const char *path, const char *what, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0) { /* the operator's symlink is followed: its target is judged */
    int e = errno;
    return fail(-e, err, errlen, "%s %s: %s", what, path, strerror(e));
  }
  int rc = fscheck_private_dir(&st, path, what, err, errlen);
  if (rc != 0) return rc;
  if (access(path, W_OK | X_OK) != 0) {
    int e = errno;
    return fail(e == EROFS ? -EROFS : -EACCES, err, errlen, "%s %s is not writable by this user (uid %u): %s", what,
                path, (unsigned)geteuid(), strerror(e));
  }
  return 0;
}

int statedir_prepare(const char *path, char *err, size_t errlen) {
  if (!path || !*path) return fail(-EINVAL, err, errlen, "no state directory");
  int rc = fscheck_mkdir_p(path);
  if (rc != 0 && rc != -ENOTDIR && rc != -EEXIST) {
    /* a component is missing and cannot be made, or a parent is not writable */
    struct stat st;
    if (stat(path, &st) != 0)
      return fail(rc, err, errlen, "cannot create the state directory %s: %s", path, strerror(-rc));
  }
  return statedir_check_private(path, "state directory", err, errlen);
}

int statedir_check_key(const char *path, char *err, size_t errlen) {
  char file[4200];
  if ((size_t)snprintf(file, sizeof file, "%s/identity.key", path) >= sizeof file)
    return fail(-ENAMETOOLONG, err, errlen, "state directory path too long");
  struct stat st;
  if (lstat(file, &st) != 0) return errno == ENOENT ? 0 : fail(-errno, err, errlen, "identity key %s: %s", file, strerror(errno));
  if (S_ISLNK(st.st_mode))
    return fail(-ELOOP, err, errlen, "identity key %s is a symbolic link; refusing to follow it", file);
  int rc = fscheck_own_file(&st, file, "identity key", err, errlen);
  if (rc != 0) return rc;
  if (st.st_mode & 077)
    return fail(-EPERM, err, errlen, "identity key %s can be read or written by group/others (mode %04o); run chmod 600 %s",
                file, (unsigned)(st.st_mode & 07777), file);
  return 0;
}

int statedir_lock_take(const char *path, statedir_lock **out, char *err, size_t errlen) {
  *out = NULL;
  char file[4200];
  if ((size_t)snprintf(file, sizeof file, "%s/%s", path, STATEDIR_LOCK_FILE) >= sizeof file)
    return fail(-ENAMETOOLONG, err, errlen, "state directory path too long");
  int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int e = errno;
    return fail(-e, err, errlen, "cannot open the lock file %s: %s", file, strerror(e));
  }
  struct stat st;
  int rc = fstat(fd, &st) == 0 ? fscheck_own_file(&st, file, "lock file", err, errlen) : -errno;
  if (rc != 0) {
    close(fd);
    return rc;
  }
  /* POSIX record lock: released by the kernel when the process exits, however it exits; the
   * descriptor is never closed before release (closing any descriptor of the file would drop
   * it), and F_GETLK names the holder. */
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_SETLK, &fl) != 0) {
    int e = errno;
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    long pid = fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK ? (long)q.l_pid : 0;
    close(fd);
    if (e == EACCES || e == EAGAIN) {
      if (pid > 0)
        return fail(-EBUSY, err, errlen,
                    "state directory %s is in use by another peermcp serve (pid %ld); stop it or use another "
                    "--state-dir",
                    path, pid);
      return fail(-EBUSY, err, errlen, "state directory %s is in use by another peermcp serve; stop it or use another --state-dir",
                  path);
    }
    return fail(-e, err, errlen, "cannot lock %s: %s", file, strerror(e));
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    /* the lock holds; the pid in the file is only for people */
  }
  statedir_lock *l = malloc(sizeof *l);
  if (!l) {
    close(fd);
    return fail(-ENOMEM, err, errlen, "out of memory");
  }
  l->fd = fd;
  *out = l;
  return 0;
}

void statedir_lock_release(statedir_lock *l) {
  if (!l) return;
  if (ftruncate(l->fd, 0) != 0) {
    /* nothing to do: the lock goes with the descriptor */
  }
  close(l->fd);
  free(l);
}

int statedir_remove_announce(const char *path, const char *peer_id) {
  if (!path) return 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return 0;
  json_t *a = json_loadfd(fd, 0, NULL);
  close(fd);
  const char *pid = json_string_value(json_object_get(a, "peer_id"));
  bool ours = !peer_id || (pid && strcmp(pid, peer_id) == 0);
  json_decref(a);
  return ours && unlink(path) == 0;
}
