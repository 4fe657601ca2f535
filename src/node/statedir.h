/* statedir.h — the state directory: created private, checked before anything in it is trusted,
 * and locked by the one `serve` that owns it (issue 9 item 9, issue 10 "a state directory that
 * cannot be used is a start-up error").
 *
 * The rules (docs/security.md, "The state directory"):
 *   - the state directory is created with mode 0700 (every directory mkdir -p makes);
 *   - it must be a directory (a symlink the operator named is followed: its target is what is
 *     checked), owned by this process's user, writable and searchable by it, and not writable
 *     by group or others — otherwise another local user could plant identity.key,
 *     queue.sqlite3 or cache/ and the node would adopt them;
 *   - `serve` holds an exclusive lock on <state_dir>/lock (fcntl, released by the kernel when
 *     the process dies, so a crash leaves no stale lock); a second serve on the same directory
 *     refuses to start, naming the holder's pid;
 *   - while it holds the lock, an announce.json in the directory is stale (left by a process
 *     that died) and is removed; the node's own is removed at exit.
 * The files inside have their own checks where they are opened: identity.key (p2p/core/
 * identity.c: a regular file, owned by us, mode 0600), queue.sqlite3 (store/queue_sqlite.c:
 * not a symlink, ours), cache/ (store/cache.c: not a symlink, ours, private).
 *
 * Errors are negative errno with a one-line reason in err: -ENOTDIR (not a directory), -EPERM
 * (owned by another user, or writable by group/others), -EACCES / -EROFS (not writable by us),
 * -EBUSY (locked by another process), others from the system calls.
 *
 * Threads: call at start-up on the main thread; blocking file-system calls. */
#ifndef PEERMCP_NODE_STATEDIR_H
#define PEERMCP_NODE_STATEDIR_H

#include <stddef.h>
#include <sys/types.h>

#define STATEDIR_LOCK_FILE "lock"

/* mkdir -p (0700) then the checks above. */
int statedir_prepare(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The checks of a directory peermcp writes into (the state directory, the queue file's
 * directory, the cache directory): a directory, ours, not writable by group or others. `what`
 * names it in the message ("state directory", "cache directory"). */
int statedir_check_private(const char *path, const char *what, char *err, size_t errlen)
    __attribute__((warn_unused_result));

typedef struct statedir_lock statedir_lock;

/* Takes the exclusive lock on <path>/lock and writes our pid into it. -EBUSY when another
 * process holds it (err names its pid). *out NULL on failure. */
int statedir_lock_take(const char *path, statedir_lock **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Releases the lock (NULL: no-op). */
void statedir_lock_release(statedir_lock *l);

/* <path>/identity.key, when it exists: not a symlink, a regular file of ours that group/others
 * can neither read nor write (p2p/core/identity.c checks the same when it loads it; this says
 * it at start-up in words). -ELOOP, -EPERM, -EINVAL with the reason; 0 when absent. */
int statedir_check_key(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Removes the announce file at `path` if it names peer_id (NULL: whatever it names). Returns
 * whether it removed one. */
int statedir_remove_announce(const char *path, const char *peer_id);

#endif
