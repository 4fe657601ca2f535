/* unix_listen.h — the socket file of a unix listener (/unix/<path>): making room for it at its
 * path, creating it so that the path never names it with another mode than 0600, and removing it
 * only while the path still names it. Plain POSIX/Linux calls, no libuv: the host wraps the
 * listening fd in a uv_pipe_t (p2p_host_listen).
 *
 * The file is bound at a temporary name in the same directory (".p2p-" and 8 to 16 random
 * characters), made 0600 (chmod), listened on, and only then moved to its path without replacing
 * anything (renameat2 RENAME_NOREPLACE, else link + unlink): the process umask is never changed
 * (it is the process's; other threads create files), and a connection that finds the path finds a
 * listening socket (never "refused", which another starting listener would take for a stale file).
 * Every failure removes the temporary name; a crash between bind and the move leaves it behind
 * (nothing removes stale ".p2p-" files: the directory should be the node user's own).
 *
 * Threads: any; the functions share nothing. Errors are negative errno values. */
#ifndef PEERMCP_P2P_HOST_UNIX_LISTEN_H
#define PEERMCP_P2P_HOST_UNIX_LISTEN_H

#include <stdbool.h>
#include <sys/types.h>

#define UNIX_LISTEN_PATH_MAX 108   /* sizeof sun_path on Linux (checked in unix_listen.c) */
#define UNIX_LISTEN_TMP_PREFIX ".p2p-"
#define UNIX_LISTEN_TMP_RANDOM 16  /* random characters of a temporary name (5 bits each)… */
#define UNIX_LISTEN_TMP_RANDOM_MIN 8 /* …fewer when the directory is long, never fewer than this */
/* The longest directory part (up to and including the last '/') that leaves room for a temporary
 * name of UNIX_LISTEN_TMP_RANDOM_MIN random characters: 94 bytes. */
#define UNIX_LISTEN_DIR_MAX \
  (UNIX_LISTEN_PATH_MAX - 1 - (sizeof UNIX_LISTEN_TMP_PREFIX - 1) - UNIX_LISTEN_TMP_RANDOM_MIN)

/* Makes room at `path`: nothing there, or a socket file nobody listens on (connect is refused: a
 * listener that died), which is removed. Anything else is left alone: a socket somebody serves
 * (connect succeeds or its backlog is full) -EADDRINUSE, a regular file, directory, symlink or
 * other -EEXIST; other lstat/connect errors as they come. */
int unix_listen_make_room(const char *path) __attribute__((warn_unused_result));

/* Creates a listening Unix-domain stream socket (SOCK_CLOEXEC, blocking) whose file appears at
 * `path` with mode 0600 (see the top comment), and returns its fd and the file's dev/inode (for
 * unix_listen_remove). Does not make room: call unix_listen_make_room first. -ENAMETOOLONG when
 * the path does not fit sun_path or its directory part is longer than UNIX_LISTEN_DIR_MAX;
 * -EADDRINUSE when a socket, -EEXIST when anything else, took the path meanwhile (left as it is);
 * else the errno of socket/bind/chmod/listen/rename. On error nothing is left behind: no fd, no
 * file (the temporary name removed). */
int unix_listen_open(const char *path, int backlog, int *fd, dev_t *dev, ino_t *ino)
    __attribute__((warn_unused_result));

/* Gives `from` the name `to` if `to` names nothing (same filesystem): renameat2 with
 * RENAME_NOREPLACE, or where a filesystem lacks it (EINVAL) link(from, to) then unlink(from).
 * use_link takes the second way at once (tests). 0; -EEXIST when `to` exists (both names left as
 * they were); else an errno (then `from` keeps its name; `to` is not created). */
int unix_listen_move(const char *from, const char *to, bool use_link) __attribute__((warn_unused_result));

/* Removes `path` if it still names the file (dev, ino) unix_listen_open made: another process may
 * have replaced it meanwhile. 0 (removed, or not ours / gone: left alone), or the errno of
 * unlink. */
int unix_listen_remove(const char *path, dev_t dev, ino_t ino) __attribute__((warn_unused_result));

#endif
