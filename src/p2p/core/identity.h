/* identity.h — this node's long-term Ed25519 identity, kept in <state-dir>/identity.key.
 *
 * File format: the libp2p PrivateKey protobuf bytes exactly as the peer-ids spec defines
 * them (Type = Ed25519, Data = 64-byte [seed ‖ public key]), so the file can be moved to or
 * from go/js/rust-libp2p tools. The file is created once with mode 0600, written to a
 * temporary file, fsync'd and renamed (atomic); a file that group or others may read, or one
 * owned by another user (it could have been planted), is refused (-EPERM) with a clear log
 * line, and so is a file that is not a regular file.
 * Blocking file I/O: call at start-up, before the event loop runs. */
#ifndef PEERMCP_P2P_CORE_IDENTITY_H
#define PEERMCP_P2P_CORE_IDENTITY_H

#include <stdbool.h>

#include "p2p/core/keys.h"

#define IDENTITY_FILE_NAME "identity.key"
#define IDENTITY_FILE_MAX 4096 /* ceiling on the file size read */

/* Loads <state_dir>/identity.key, creating it (and state_dir, mode 0700) if it does not
 * exist. *created (may be NULL) tells which. 0 or negative errno: -EPERM (permissions too
 * open, or another user's file), -EINVAL (not a valid PrivateKey), -ENOTSUP (a non-Ed25519 key), other I/O errors.
 * Each failure is logged once with the path and the reason. */
int identity_load_or_create(const char *state_dir, keys_private *out, bool *created)
    __attribute__((warn_unused_result));

/* Loads the key at path (same checks). */
int identity_load(const char *path, keys_private *out) __attribute__((warn_unused_result));

/* Writes k to path atomically with mode 0600 (replaces an existing file). */
int identity_save(const char *path, const keys_private *k) __attribute__((warn_unused_result));

#endif
