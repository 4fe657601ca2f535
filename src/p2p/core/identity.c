/* identity.c — load or create <state-dir>/identity.key (see identity.h). */
#include "p2p/core/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/fscheck.h"
#include "util/log.h"

static int fail(int rc, const char *path, const char *why) {
  log_write(LOG_ERROR, "identity key unusable", "{s:s, s:s, s:s}", "path", path, "reason", why,
            "error", strerror(-rc));
  return rc;
}

static int read_all(int fd, uint8_t *p, size_t cap, size_t *n) {
  size_t got = 0;
  for (;;) {
    if (got == cap) return -EFBIG;
    ssize_t r = read(fd, p + got, cap - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  *n = got;
  return 0;
}

int identity_load(const char *path, keys_private *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int rc = -errno;
    if (rc != -ENOENT) fail(rc, path, "cannot open");
    return rc;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int rc = -errno;
    close(fd);
    return fail(rc, path, "cannot stat");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fail(-EINVAL, path, "not a regular file");
  }
  if (st.st_uid != geteuid()) { /* another user could have planted it: not our identity */
    close(fd);
    return fail(-EPERM, path, "owned by another user; only a key file of this user is loaded");
  }
  if (st.st_mode & 077) {
    close(fd);
    return fail(-EPERM, path, "readable or writable by group/others; run chmod 600 on it");
  }
  if (st.st_size > IDENTITY_FILE_MAX) {
    close(fd);
    return fail(-EFBIG, path, "file too large for a PrivateKey");
  }
  uint8_t data[IDENTITY_FILE_MAX];
  size_t n = 0;
  int rc = read_all(fd, data, sizeof data, &n);
  close(fd);
  if (rc) return fail(rc, path, "read failed");
  rc = keys_private_decode(data, n, out);
  sodium_memzero(data, sizeof data);
  if (rc == -ENOTSUP) return fail(rc, path, "not an Ed25519 PrivateKey (only Ed25519 identities are supported)");
  if (rc) return fail(-EINVAL, path, "not a valid libp2p PrivateKey protobuf");
  return 0;
}

static int fsync_dir_of(const char *path) {
  char dir[PATH_MAX];
  size_t n = strlen(path);
  if (n >= sizeof dir) return -ENAMETOOLONG;
  memcpy(dir, path, n + 1);
  char *slash = strrchr(dir, '/');
  if (!slash) strcpy(dir, ".");
  else if (slash == dir) dir[1] = 0;
  else *slash = 0;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) ? -errno : 0;
  close(fd);
  return rc;
}

/* exclusive: publish with link(2) so a concurrent creator's key is never replaced (-EEXIST). */
static int write_key(const char *path, const keys_private *k, bool exclusive) {
  uint8_t data[128];
  size_t n;
  int rc = keys_private_encode(k, data, sizeof data, &n);
  if (rc) return rc;
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
    sodium_memzero(data, sizeof data);
    return -ENAMETOOLONG;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    rc = -errno;
    sodium_memzero(data, sizeof data);
    return fail(rc, tmp, "cannot create");
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(fd, data + off, n - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    off += (size_t)w;
  }
  sodium_memzero(data, sizeof data);
  if (!rc && fchmod(fd, 0600) != 0) rc = -errno; /* umask cannot widen it, but be explicit */
  if (!rc && fsync(fd) != 0) rc = -errno;
  if (close(fd) != 0 && !rc) rc = -errno;
  if (!rc) {
    if (exclusive) {
      if (link(tmp, path) != 0) rc = -errno;
      unlink(tmp);
    } else if (rename(tmp, path) != 0) {
      rc = -errno;
    }
  }
  if (rc) {
    unlink(tmp);
    return rc == -EEXIST ? rc : fail(rc, path, "cannot write");
  }
  (void)fsync_dir_of(path);
  return 0;
}

int identity_save(const char *path, const keys_private *k) { return write_key(path, k, false); }


int identity_load_or_create(const char *state_dir, keys_private *out, bool *created) {
  char path[PATH_MAX];
  if (created) *created = false;
  if (snprintf(path, sizeof path, "%s/%s", state_dir, IDENTITY_FILE_NAME) >= (int)sizeof path)
    return -ENAMETOOLONG;
  int rc = identity_load(path, out);
  if (rc != -ENOENT) return rc;
  if ((rc = fscheck_mkdir_p(state_dir)) != 0) return fail(rc, state_dir, "cannot create state directory");
  keys_private k;
  rc = keys_ed25519_generate(&k);
  if (rc) return rc;
  rc = write_key(path, &k, true);
  if (rc) {
    keys_private_wipe(&k);
    return rc == -EEXIST ? identity_load(path, out) : rc; /* lost a race: use the winner's key */
  }
  *out = k;
  keys_private_wipe(&k);
  if (created) *created = true;
  log_write(LOG_INFO, "identity key created", "{s:s}", "path", path);
  return 0;
}
