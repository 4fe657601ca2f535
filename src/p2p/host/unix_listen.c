/* unix_listen.c — the socket file of a unix listener (see unix_listen.h). */
#include "p2p/host/unix_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == UNIX_LISTEN_PATH_MAX, "UNIX_LISTEN_PATH_MAX is sun_path");

#define TMP_TRIES 4 /* fresh names after a taken one (a collision, or somebody else's file) */

int unix_listen_make_room(const char *path) {
  struct stat st;
  if (strlen(path) >= UNIX_LISTEN_PATH_MAX) return -ENAMETOOLONG;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK(st.st_mode)) return -EEXIST;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? -EADDRINUSE : errno == ECONNREFUSED ? 0 : -errno;
  close(fd);
  if (rc == -EAGAIN) rc = -EADDRINUSE; /* a full backlog (non-blocking connect): someone listens */
  if (rc == 0 && unlink(path) != 0 && errno != ENOENT) rc = -errno;
  if (rc == 0) log_info("p2p unix listen: stale socket file replaced", "{s:s}", "path", path);
  return rc;
}

/* A fresh temporary name beside `path`: its directory part, ".p2p-", then as many random
 * characters (of 32) as fit, up to UNIX_LISTEN_TMP_RANDOM. -ENAMETOOLONG below
 * UNIX_LISTEN_TMP_RANDOM_MIN. */
static int tmp_name(const char *path, char tmp[UNIX_LISTEN_PATH_MAX]) {
  static const char alphabet[32] = "abcdefghijklmnopqrstuvwxyz234567";
  const char *slash = strrchr(path, '/');
  size_t dir = slash ? (size_t)(slash - path) + 1 : 0, pre = sizeof UNIX_LISTEN_TMP_PREFIX - 1;
  if (dir > UNIX_LISTEN_DIR_MAX) return -ENAMETOOLONG;
  size_t n = UNIX_LISTEN_PATH_MAX - 1 - dir - pre;
  if (n > UNIX_LISTEN_TMP_RANDOM) n = UNIX_LISTEN_TMP_RANDOM;
  uint8_t r[UNIX_LISTEN_TMP_RANDOM];
  randombytes_buf(r, n);
  memcpy(tmp, path, dir);
  memcpy(tmp + dir, UNIX_LISTEN_TMP_PREFIX, pre);
  for (size_t i = 0; i < n; i++) tmp[dir + pre + i] = alphabet[r[i] & 31];
  tmp[dir + pre + n] = 0;
  return 0;
}

int unix_listen_move(const char *from, const char *to, bool use_link) {
  if (!use_link) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -errno;
  }
  /* a filesystem without RENAME_NOREPLACE: a second name (link never replaces), then the first
   * one removed; if that fails, the second is too (both name our file: nothing else is lost) */
  if (link(from, to) != 0) return -errno;
  if (unlink(from) == 0) return 0;
  int rc = -errno;
  (void)unlink(to);
  return rc;
}

int unix_listen_open(const char *path, int backlog, int *fd_out, dev_t *dev, ino_t *ino) {
  if (strlen(path) >= UNIX_LISTEN_PATH_MAX) return -ENAMETOOLONG;
  if (sodium_init() < 0) return -EIO;
  char tmp[UNIX_LISTEN_PATH_MAX];
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc = -EADDRINUSE;
  for (int i = 0; i < TMP_TRIES && rc == -EADDRINUSE; i++) {
    if ((rc = tmp_name(path, tmp)) != 0) break;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
  }
  if (rc) {
    close(fd);
    return rc;
  }
  /* from here the file at tmp is ours: every failure removes it */
  struct stat st;
  if (chmod(tmp, 0600) != 0 || lstat(tmp, &st) != 0) rc = -errno;
  else if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0600) rc = -EIO; /* not what we bound */
  if (rc == 0 && listen(fd, backlog) != 0) rc = -errno;
  if (rc == 0) rc = unix_listen_move(tmp, path, false);
  if (rc == -EEXIST) { /* taken since unix_listen_make_room: say what by, as it would */
    struct stat other;
    if (lstat(path, &other) == 0 && S_ISSOCK(other.st_mode)) rc = -EADDRINUSE;
  }
  if (rc) {
    if (unlink(tmp) != 0 && errno != ENOENT)
      log_warn("p2p unix listen: temporary socket file not removed", "{s:s, s:s}", "path", tmp, "error",
               strerror(errno));
    close(fd);
    return rc;
  }
  *fd_out = fd;
  *dev = st.st_dev;
  *ino = st.st_ino;
  return 0;
}

int unix_listen_remove(const char *path, dev_t dev, ino_t ino) {
  struct stat st;
  if (lstat(path, &st) != 0 || st.st_dev != dev || st.st_ino != ino) return 0;
  return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
}
