/* test_host_unix.c — the host's Unix-domain socket transport (/unix/<path>, same-host peers):
 * listen, dial and streams over it; the socket file's hygiene (mode 0600, a stale socket
 * replaced, a regular file or a live socket refused, a too-long path, unlinked on close; the
 * file bound at a temporary name and moved into place, never seen at its path with another mode,
 * no temporary name left behind); the inbound limits applied to it, and the reserved handshakes
 * of a peer remembered at a long unix address; and its address kept out of everything
 * advertised (identify, the announced addresses). Hosts on one libuv loop. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "p2p/core/multiaddr.h"
#include "p2p/host/host.h"
#include "p2p/host/peers.h"
#include "p2p/host/unix_listen.h"
#include "util/log.h"

#include "../support/p2pfix.h"
#include "../support/tmpdir.h"

static ts_p2p fx;
enum { SLOT_A, SLOT_B, SLOT_C, N_SLOTS };
#define WAIT_MS 20000

static int setup(void **state) {
  (void)state;
  log_set_level(getenv("TDEBUG") ? LOG_DEBUG : LOG_ERROR);
  return ts_p2p_setup(&fx, N_SLOTS, "unix");
}
static int teardown(void **state) {
  (void)state;
  return ts_p2p_teardown(&fx);
}

static p2p_host *make_host(int slot, const p2p_host_config *cfg) {
  p2p_host_config c = {0};
  if (cfg) c = *cfg;
  c.state_dir = fx.dirs[slot];
  c.no_peerstore_file = true;
  p2p_host *h = NULL;
  assert_int_equal(p2p_host_new(&fx.loop, &c, &h), 0);
  return h;
}

/* The socket path in slot's directory, and its /unix/ multiaddr (percent-encoded). */
static void sock_path(int slot, const char *name, char *path, size_t cap, char *ma, size_t macap) {
  ts_path(path, cap, fx.dirs[slot], name);
  multiaddr m;
  assert_int_equal(multiaddr_from_unix_path(path, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, macap), 0);
}

static void full(p2p_host *h, const char *ma, char *out, size_t cap) {
  snprintf(out, cap, "%s/p2p/%s", ma, p2p_host_peer_id(h));
}

/* A socket file at path that nobody listens on (a listener that died without unlinking). */
static void make_stale_socket(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  close(fd);
}

static bool is_identified(void *arg) {
  void **w = arg;
  p2p_peer_info pi;
  return p2p_host_peer_info(w[0], w[1], &pi) == 0 && pi.public_key_matches && pi.n_listen_addrs >= 1;
}

/* Echo: every byte back, then our side closed after theirs. */
static void echo_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)ud;
  assert_true(p2p_stream_write(s, d, n) >= 0);
}
static void echo_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}
static void echo_serve(p2p_stream *s, void *ud) {
  static const p2p_stream_callbacks cbs = {.on_data = echo_data, .on_eof = echo_eof};
  p2p_stream_set_callbacks(s, &cbs, ud);
}

typedef struct echo_client {
  char got[64];
  size_t len;
  bool done;
  int err;
} echo_client;
static void cl_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)s;
  echo_client *c = ud;
  if (c->len + n < sizeof c->got) {
    memcpy(c->got + c->len, d, n);
    c->len += n;
  }
}
static void cl_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  echo_client *c = ud;
  c->err = err;
  c->done = true;
}
static void cl_opened(p2p_stream *s, int err, void *ud) {
  echo_client *c = ud;
  if (!s) {
    c->err = err;
    c->done = true;
    return;
  }
  static const p2p_stream_callbacks cbs = {.on_data = cl_data, .on_close = cl_close};
  p2p_stream_set_callbacks(s, &cbs, c);
  assert_int_equal(p2p_stream_write(s, "over a unix socket", 18), 0);
  p2p_stream_close_write(s);
}


/* The names in dir (without . and ..), sorted, joined with '|'; how many. */
static int list_dir(const char *dir, char *out, size_t cap) {
  struct dirent **ents;
  int n = scandir(dir, &ents, NULL, alphasort), k = 0;
  assert_true(n >= 0);
  out[0] = 0;
  for (int i = 0; i < n; i++) {
    if (strcmp(ents[i]->d_name, ".") != 0 && strcmp(ents[i]->d_name, "..") != 0) {
      size_t len = strlen(out);
      snprintf(out + len, cap - len, "%s%s", k ? "|" : "", ents[i]->d_name);
      k++;
    }
    free(ents[i]);
  }
  free(ents);
  return k;
}

/* A fresh directory `name` in slot's directory (0700). */
static void sub_dir(int slot, const char *name, char *out, size_t cap) {
  ts_path(out, cap, fx.dirs[slot], name);
  assert_int_equal(mkdir(out, 0700), 0);
}

/* ---------------------------------------------------------------- tests */

/* Listen on /unix/, dial <addr>/p2p/<id>, ping and an echo stream over it; the file is 0600
 * (under umask 0, which alone would give 0777; the process's umask is left as it was) and is
 * gone once the listener's host closed. */
static void test_unix_listen_dial_stream_mode_and_unlink(void **state) {
  (void)state;
  char path[TS_TMPDIR_MAX + 32], ma[1200], target[1400];
  sock_path(SLOT_A, "a.sock", path, sizeof path, ma, sizeof ma);
  mode_t old = umask(0);
  p2p_host *a = make_host(SLOT_A, NULL);
  assert_int_equal(p2p_host_listen(a, ma), 0);
  assert_int_equal(umask(old), 0);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600);
  const char *ua[4];
  assert_int_equal(p2p_host_unix_addrs(a, ua, 4), 1);
  assert_string_equal(ua[0], ma);
  assert_int_equal(p2p_host_handle(a, "/test/echo/1.0.0", echo_serve, NULL), 0);

  p2p_host *b = make_host(SLOT_B, NULL);
  full(a, ma, target, sizeof target);
  assert_int_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0);
  echo_client c = {0};
  assert_int_equal(p2p_host_open_stream(b, target, "/test/echo/1.0.0", cl_opened, &c), 0);
  assert_true(ts_p2p_run_until(&fx, &c.done, WAIT_MS));
  assert_int_equal(c.err, 0);
  assert_int_equal(c.len, 18);
  assert_memory_equal(c.got, "over a unix socket", 18);
  /* the older slash form dials the same socket */
  char legacy[1400];
  snprintf(legacy, sizeof legacy, "/unix%s/p2p/%s", path, p2p_host_peer_id(a));
  assert_int_equal(ts_p2p_ping(&fx, b, legacy, WAIT_MS), 0);
  ts_p2p_close(&fx, (p2p_host *[]){a, b}, 2);
  assert_int_equal(lstat(path, &st), -1);
  assert_int_equal(errno, ENOENT);
}

/* The socket file never exists at its path with another mode than 0600, even under umask 0: it is
 * bound at a temporary name beside it (".p2p-…"), chmod'ed there and moved into place — the
 * directory's events never show the final name created or chmod'ed, only moved to. Inbound
 * connections still report the listen address (not the temporary name the socket was bound
 * at), and on close the file is unlinked only while the path names our inode. */
static void test_unix_socket_file_appears_at_its_path_only_as_0600(void **state) {
  (void)state;
  char dir[TS_TMPDIR_MAX + 32], path[TS_TMPDIR_MAX + 64], ma[1200], target[1400], names[1024];
  p2p_host *a = make_host(SLOT_A, NULL);
  sub_dir(SLOT_A, "run", dir, sizeof dir);
  ts_path(path, sizeof path, dir, "a.sock");
  multiaddr m;
  assert_int_equal(multiaddr_from_unix_path(path, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, sizeof ma), 0);
  int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  assert_true(in >= 0);
  assert_true(inotify_add_watch(in, dir, IN_CREATE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE) >= 0);
  mode_t old = umask(0);
  int rc = p2p_host_listen(a, ma);
  assert_int_equal(umask(old), 0);
  assert_int_equal(rc, 0);
  _Alignas(struct inotify_event) char ev[8192];
  ssize_t n = read(in, ev, sizeof ev);
  close(in);
  assert_true(n > 0);
  char tmp[256] = "";
  bool created = false, chmoded = false, moved_from = false, moved_to = false;
  for (char *p = ev; p < ev + n;) {
    const struct inotify_event *e = (const struct inotify_event *)p;
    assert_true(e->len > 0);
    if (strcmp(e->name, "a.sock") == 0) {
      assert_int_equal(e->mask, IN_MOVED_TO); /* never created (bind) nor chmod'ed under its name */
      assert_true(moved_from);
      moved_to = true;
    } else {
      assert_memory_equal(e->name, UNIX_LISTEN_TMP_PREFIX, strlen(UNIX_LISTEN_TMP_PREFIX));
      assert_int_equal(strlen(e->name), strlen(UNIX_LISTEN_TMP_PREFIX) + UNIX_LISTEN_TMP_RANDOM);
      if (!tmp[0]) snprintf(tmp, sizeof tmp, "%s", e->name);
      assert_string_equal(e->name, tmp); /* one temporary name */
      if (e->mask & IN_CREATE) created = true;
      if (e->mask & IN_ATTRIB) chmoded = created;
      if (e->mask & IN_MOVED_FROM) moved_from = chmoded;
    }
    p += sizeof *e + e->len;
  }
  assert_true(created && chmoded && moved_from && moved_to);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(list_dir(dir, names, sizeof names), 1);
  assert_string_equal(names, "a.sock");

  p2p_host *b = make_host(SLOT_B, NULL);
  full(a, ma, target, sizeof target);
  assert_int_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0);
  p2p_conn_info ci[4];
  assert_int_equal(p2p_host_conns(a, p2p_host_peer_id(b), ci, 4), 1);
  assert_string_equal(ci[0].remote_addr, ma);

  /* somebody moved our file away and put theirs at the path: closing leaves both alone */
  char moved[TS_TMPDIR_MAX + 64];
  ts_path(moved, sizeof moved, dir, "moved.sock");
  assert_int_equal(rename(path, moved), 0);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fclose(f);
  ts_p2p_close(&fx, (p2p_host *[]){a, b}, 2);
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(lstat(moved, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
}

/* No temporary name outlives a listen, whichever way it ends: the path a file took (refused
 * before any binding, or — the race — after the room check, at the move), a socket that took it
 * (-EADDRINUSE), the link()+unlink() way of filesystems without RENAME_NOREPLACE (never replaces),
 * and a success; unix_listen_remove removes only the inode it was given. */
static void test_unix_no_temporary_name_is_left_behind(void **state) {
  (void)state;
  char dir[TS_TMPDIR_MAX + 32], path[TS_TMPDIR_MAX + 64], ma[1200], names[1024];
  p2p_host *a = make_host(SLOT_A, NULL);
  sub_dir(SLOT_A, "run", dir, sizeof dir);
  ts_path(path, sizeof path, dir, "taken");
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("keep me", f);
  fclose(f);
  multiaddr m;
  assert_int_equal(multiaddr_from_unix_path(path, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, sizeof ma), 0);
  assert_int_equal(p2p_host_listen(a, ma), -EEXIST);
  assert_int_equal(list_dir(dir, names, sizeof names), 1);
  assert_string_equal(names, "taken");
  /* the race: the file appeared after the room check; the move refuses, the temp name goes */
  int fd = -1;
  dev_t dv;
  ino_t ino;
  assert_int_equal(unix_listen_open(path, 8, &fd, &dv, &ino), -EEXIST);
  assert_int_equal(fd, -1);
  assert_int_equal(list_dir(dir, names, sizeof names), 1);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_size, 7);
  char live[TS_TMPDIR_MAX + 64];
  ts_path(live, sizeof live, dir, "live");
  make_stale_socket(live);
  assert_int_equal(unix_listen_open(live, 8, &fd, &dv, &ino), -EADDRINUSE);
  assert_int_equal(list_dir(dir, names, sizeof names), 2);
  assert_string_equal(names, "live|taken");

  /* link()+unlink(): refuses a taken name (both left), else moves (same inode, old name gone) */
  char from[TS_TMPDIR_MAX + 64], to[TS_TMPDIR_MAX + 64];
  ts_path(from, sizeof from, dir, "from");
  ts_path(to, sizeof to, dir, "to");
  assert_non_null(f = fopen(from, "w"));
  fclose(f);
  struct stat sf;
  assert_int_equal(lstat(from, &sf), 0);
  assert_int_equal(unix_listen_move(from, path, true), -EEXIST);
  assert_int_equal(unix_listen_move(from, path, false), -EEXIST);
  assert_int_equal(lstat(path, &st), 0);
  assert_int_equal(st.st_size, 7);
  assert_int_equal(unix_listen_move(from, to, true), 0);
  assert_int_equal(lstat(to, &st), 0);
  assert_true(st.st_ino == sf.st_ino);
  assert_int_equal(list_dir(dir, names, sizeof names), 3);
  assert_string_equal(names, "live|taken|to");
  assert_int_equal(unlink(to), 0);

  /* success: listening at once (connect works), 0600, its inode; removed by inode only */
  char ok[TS_TMPDIR_MAX + 64];
  ts_path(ok, sizeof ok, dir, "ok.sock");
  assert_int_equal(unix_listen_open(ok, 8, &fd, &dv, &ino), 0);
  assert_int_equal(list_dir(dir, names, sizeof names), 3);
  assert_string_equal(names, "live|ok.sock|taken");
  assert_int_equal(lstat(ok, &st), 0);
  assert_true(S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0600 && st.st_ino == ino && st.st_dev == dv);
  int cfd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  assert_true(strlen(ok) < sizeof sa.sun_path);
  memcpy(sa.sun_path, ok, strlen(ok) + 1);
  assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
  close(cfd);
  assert_int_equal(unix_listen_remove(ok, dv, ino + 1), 0); /* not ours: left */
  assert_int_equal(lstat(ok, &st), 0);
  assert_int_equal(unix_listen_remove(ok, dv, ino), 0);
  assert_int_equal(lstat(ok, &st), -1);
  close(fd);
  assert_int_equal(list_dir(dir, names, sizeof names), 2);
  ts_p2p_close(&fx, (p2p_host *[]){a}, 1);
}

/* The temporary name must fit sun_path beside the final one: a directory part (with its '/') of
 * UNIX_LISTEN_DIR_MAX bytes still listens (8 random characters), one byte more is -ENAMETOOLONG
 * with nothing created; a 107-byte path in a short directory listens (16 random characters). */
static void test_unix_long_paths_leave_room_for_the_temporary_name(void **state) {
  (void)state;
  char dir[256], dir2[256], path[256], ma[1200], names[1024], name[128];
  p2p_host *a = make_host(SLOT_A, NULL);
  size_t base = strlen(fx.dirs[SLOT_C]);
  assert_true(base + 2 < UNIX_LISTEN_DIR_MAX);
  size_t k = UNIX_LISTEN_DIR_MAX - base - 2; /* base + '/' + name + '/' */
  memset(name, 'd', k);
  name[k] = 0;
  sub_dir(SLOT_C, name, dir, sizeof dir);
  assert_int_equal(strlen(dir) + 1, UNIX_LISTEN_DIR_MAX);
  multiaddr m;
  ts_path(path, sizeof path, dir, "s");
  assert_int_equal(multiaddr_from_unix_path(path, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, sizeof ma), 0);
  mode_t old = umask(0);
  int rc = p2p_host_listen(a, ma);
  umask(old);
  assert_int_equal(rc, 0);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(list_dir(dir, names, sizeof names), 1);

  name[k] = 'd';
  name[k + 1] = 0;
  sub_dir(SLOT_C, name, dir2, sizeof dir2);
  ts_path(path, sizeof path, dir2, "s");
  assert_int_equal(multiaddr_from_unix_path(path, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, sizeof ma), 0);
  assert_int_equal(p2p_host_listen(a, ma), -ENAMETOOLONG);
  assert_int_equal(list_dir(dir2, names, sizeof names), 0);

  memset(name, 'n', sizeof name);
  name[UNIX_LISTEN_PATH_MAX - 1 - base - 1] = 0;
  ts_path(path, sizeof path, fx.dirs[SLOT_C], name);
  assert_int_equal(strlen(path), UNIX_LISTEN_PATH_MAX - 1);
  assert_int_equal(multiaddr_from_unix_path(path, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, sizeof ma), 0);
  assert_int_equal(p2p_host_listen(a, ma), 0);
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  char target[1400];
  full(a, ma, target, sizeof target);
  p2p_host *b = make_host(SLOT_B, NULL);
  assert_int_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0);
  ts_p2p_close(&fx, (p2p_host *[]){a, b}, 2);
  assert_int_equal(lstat(path, &st), -1);
  assert_int_equal(list_dir(dir, names, sizeof names), 0);
}

/* A socket file nobody listens on is replaced; one somebody listens on, a regular file and a
 * directory are refused and left as they were; a path that does not fit sun_path is refused
 * with -ENAMETOOLONG (listen and dial). */
static void test_unix_existing_paths_and_long_paths(void **state) {
  (void)state;
  char path[TS_TMPDIR_MAX + 32], ma[1200];
  p2p_host *a = make_host(SLOT_A, NULL);
  p2p_host *b = make_host(SLOT_B, NULL);

  /* dials to a third PeerId: a failed dial backs its PeerId off, an open connection would be
   * taken instead of the address */
  p2p_host *c = make_host(SLOT_C, NULL);
  char longp[300];
  memset(longp, 'x', sizeof longp);
  memcpy(longp, "/tmp/", 5);
  longp[108] = 0; /* 108 bytes: one too many for sun_path's NUL */
  multiaddr m;
  assert_int_equal(multiaddr_from_unix_path(longp, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, sizeof ma), 0);
  assert_int_equal(p2p_host_listen(a, ma), -ENAMETOOLONG);
  char target[1400];
  full(c, ma, target, sizeof target);
  ts_ping pr = {0};
  int prc = p2p_host_ping(b, target, ts_ping_cb, &pr);
  if (prc == 0) { /* the dial's error comes to the callback */
    assert_true(ts_p2p_run_until(&fx, &pr.done, WAIT_MS));
    prc = pr.err;
  }
  assert_int_equal(prc, -ENAMETOOLONG);
  longp[107] = 0; /* fits, names nothing: listen would create it, so only dial it */
  assert_int_equal(multiaddr_from_unix_path(longp, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, sizeof ma), 0);
  full(c, ma, target, sizeof target);
  assert_int_not_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0); /* ENOENT from connect, not truncation */
  ts_p2p_close(&fx, (p2p_host *[]){c}, 1);
  sock_path(SLOT_A, "stale.sock", path, sizeof path, ma, sizeof ma);
  make_stale_socket(path);
  assert_int_equal(p2p_host_listen(a, ma), 0);
  full(a, ma, target, sizeof target);
  assert_int_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0);
  /* now somebody listens there: a second listener must not take the path over */
  assert_int_equal(p2p_host_listen(b, ma), -EADDRINUSE);
  assert_int_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0);

  sock_path(SLOT_A, "regular", path, sizeof path, ma, sizeof ma);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("keep me", f);
  fclose(f);
  assert_int_equal(p2p_host_listen(a, ma), -EEXIST);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_size, 7);

  sock_path(SLOT_A, "adir", path, sizeof path, ma, sizeof ma);
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(p2p_host_listen(a, ma), -EEXIST);
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(rmdir(path), 0);

  ts_p2p_close(&fx, (p2p_host *[]){a, b}, 2);
}

static bool no_conns(void *arg) { return p2p_host_conns(arg, NULL, NULL, 0) == 0; }
static bool fd_readable(void *arg) {
  struct pollfd p = {.fd = *(int *)arg, .events = POLLIN};
  return poll(&p, 1, 0) == 1;
}

/* Reserved handshakes (issue 9 item 1) for a peer remembered over a unix listener whose address
 * is long: a path of 100 bytes mostly '+' is a /unix/ address of ~290 characters (%2B), which
 * the table of remembered sources dropped when it kept addresses of up to 63. With the one
 * pending slot of that source held by a handshake that moves (its multistream header answered:
 * not evicted younger than 500 ms), the remembered peer still gets in, through a reserved
 * handshake. Tried up to three times, as the VM may stall past 500 ms (then the holder is
 * evicted instead and nothing is reserved). */
static void test_unix_reserved_handshake_for_a_remembered_peer_at_a_long_address(void **state) {
  (void)state;
  char path[TS_TMPDIR_MAX + 128], ma[1200], target[1400], name[128];
  size_t base = strlen(fx.dirs[SLOT_A]);
  assert_true(base + 2 < 100);
  memset(name, '+', sizeof name);
  name[100 - base - 1] = 0;
  ts_path(path, sizeof path, fx.dirs[SLOT_A], name);
  assert_int_equal(strlen(path), 100);
  multiaddr m;
  assert_int_equal(multiaddr_from_unix_path(path, &m), 0);
  assert_int_equal(multiaddr_to_string(&m, ma, sizeof ma), 0);
  assert_true(strlen(ma) > 250);
  p2p_host_config ca = {.max_pending_per_ip = 1, .reserved_handshakes = 1};
  p2p_host *a = make_host(SLOT_A, &ca);
  assert_int_equal(p2p_host_listen(a, ma), 0);
  full(a, ma, target, sizeof target);
  p2p_host *b = make_host(SLOT_B, NULL);
  assert_int_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0);
  p2p_host_remember_authorized(a, p2p_host_peer_id(b));
  ts_p2p_close(&fx, (p2p_host *[]){b}, 1);
  assert_true(ts_p2p_wait_for(&fx, no_conns, a, WAIT_MS));
  p2p_host_stats st = {0};
  int err = -1;
  for (int i = 0; i < 3 && st.reserve_admitted == 0; i++) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write(fd, "\x13/multistream/1.0.0\n", 20), 20);
    assert_true(ts_p2p_wait_for(&fx, fd_readable, &fd, WAIT_MS)); /* A answered: it moves */
    b = make_host(SLOT_B, NULL); /* the same identity (its state directory), a new connection */
    err = ts_p2p_ping(&fx, b, target, WAIT_MS);
    p2p_host_get_stats(a, &st);
    ts_p2p_close(&fx, (p2p_host *[]){b}, 1);
    close(fd);
    assert_true(ts_p2p_wait_for(&fx, no_conns, a, WAIT_MS));
  }
  assert_true(st.reserve_admitted >= 1);
  assert_int_equal(err, 0);
  ts_p2p_close(&fx, (p2p_host *[]){a}, 1);
}

/* A unix listener's address is local only: not a listen address identify sends, not announced,
 * no observedAddr over a unix connection (either way), never taken from the network (identify,
 * DHT) — only from the operator (p2p_host_add_peer_addrs with P2P_SRC_MANUAL). */
static bool no_unix(const char *a) { return !a || !strstr(a, "/unix/"); }
static void test_unix_address_is_not_advertised(void **state) {
  (void)state;
  char path[TS_TMPDIR_MAX + 32], ma[1200], target[1400];
  sock_path(SLOT_A, "a.sock", path, sizeof path, ma, sizeof ma);
  p2p_host *a = make_host(SLOT_A, NULL);
  assert_int_equal(p2p_host_listen(a, ma), 0);
  assert_int_equal(p2p_host_listen(a, "/ip4/127.0.0.1/tcp/0"), 0);
  const char *la[8];
  size_t nl = p2p_host_listen_addrs(a, la, 8);
  assert_int_equal(nl, 1);
  assert_true(no_unix(la[0]));
  char ann[1400];
  for (size_t i = 0; p2p_host_announce_addr(a, i, ann, sizeof ann) == 0; i++) assert_true(no_unix(ann));
  const char *an[16];
  size_t na = p2p_host_announced_addrs(a, an, 16);
  for (size_t i = 0; i < na; i++) assert_true(no_unix(an[i]));

  /* B dials A over TCP: identify tells it A's TCP address, not the unix one */
  p2p_host *b = make_host(SLOT_B, NULL);
  ts_p2p_full_addr(a, target, sizeof target);
  assert_int_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0);
  void *w[2] = {b, (void *)p2p_host_peer_id(a)};
  assert_true(ts_p2p_wait_for(&fx, is_identified, w, WAIT_MS));
  p2p_peer_info pi;
  assert_int_equal(p2p_host_peer_info(b, p2p_host_peer_id(a), &pi), 0);
  assert_true(pi.n_listen_addrs >= 1);
  for (size_t i = 0; i < pi.n_listen_addrs; i++) assert_true(no_unix(pi.listen_addrs[i]));

  /* C dials A over the unix socket: no /unix/ observedAddr either way */
  p2p_host *c = make_host(SLOT_C, NULL);
  full(a, ma, target, sizeof target);
  assert_int_equal(ts_p2p_ping(&fx, c, target, WAIT_MS), 0);
  void *wc[2] = {c, (void *)p2p_host_peer_id(a)};
  assert_true(ts_p2p_wait_for(&fx, is_identified, wc, WAIT_MS));
  void *wa[2] = {a, (void *)p2p_host_peer_id(c)};
  assert_int_equal(p2p_host_peer_info(c, p2p_host_peer_id(a), &pi), 0);
  assert_true(no_unix(pi.observed_addr));
  ts_p2p_wait_for(&fx, is_identified, wa, 2000); /* C listens nowhere: A may see 0 addresses */
  if (p2p_host_peer_info(a, p2p_host_peer_id(c), &pi) == 0) assert_true(no_unix(pi.observed_addr));

  /* addresses from the network never bring a /unix/ path; the operator's do */
  const char *one[1] = {ma};
  assert_int_equal(p2p_host_add_peer_addrs(b, p2p_host_peer_id(c), one, 1, P2P_SRC_DHT), 0);
  assert_int_equal(p2p_host_add_peer_addrs(b, p2p_host_peer_id(c), one, 1, P2P_SRC_MDNS), 0);
  assert_int_equal(p2p_host_add_peer_addrs(b, p2p_host_peer_id(c), one, 1, P2P_SRC_MANUAL), 1);

  /* the announce file (a local file) lists it after the TCP one */
  char file[TS_TMPDIR_MAX + 32];
  ts_path(file, sizeof file, fx.dirs[SLOT_A], "announce.json");
  assert_int_equal(p2p_host_write_announce(a, file), 0);
  FILE *f = fopen(file, "r");
  assert_non_null(f);
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  assert_non_null(strstr(buf, "/unix/"));
  assert_true(strstr(buf, "/tcp/") < strstr(buf, "/unix/"));
  ts_p2p_close(&fx, (p2p_host *[]){a, b, c}, 3);
}

/* Inbound unix connections pass the same gates as TCP, the listener being one source: with
 * max_connections_per_ip = 1 a second local peer is refused while the first is connected. */
static void test_unix_inbound_goes_through_the_limits(void **state) {
  (void)state;
  char path[TS_TMPDIR_MAX + 32], ma[1200], target[1400];
  sock_path(SLOT_A, "a.sock", path, sizeof path, ma, sizeof ma);
  p2p_host_config ca = {.max_conns_per_ip = 1};
  p2p_host *a = make_host(SLOT_A, &ca);
  assert_int_equal(p2p_host_listen(a, ma), 0);
  full(a, ma, target, sizeof target);
  p2p_host *b = make_host(SLOT_B, NULL);
  p2p_host *c = make_host(SLOT_C, NULL);
  assert_int_equal(ts_p2p_ping(&fx, b, target, WAIT_MS), 0);
  assert_int_not_equal(ts_p2p_ping(&fx, c, target, WAIT_MS), 0);
  p2p_host_stats st = {0};
  p2p_host_get_stats(a, &st);
  assert_true(st.inbound_refused >= 1);
  ts_p2p_close(&fx, (p2p_host *[]){a, b, c}, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unix_listen_dial_stream_mode_and_unlink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unix_existing_paths_and_long_paths, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unix_socket_file_appears_at_its_path_only_as_0600, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unix_no_temporary_name_is_left_behind, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unix_long_paths_leave_room_for_the_temporary_name, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unix_address_is_not_advertised, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unix_inbound_goes_through_the_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unix_reserved_handshake_for_a_remembered_peer_at_a_long_address, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
