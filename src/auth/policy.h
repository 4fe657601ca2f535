/* policy.h — who may do what without a JWT: trusted PeerIds (each with its scopes), the shared
 * token, and the anonymous grant (p2p_tasks_spec.md §4, fixing §12.1–12.3).
 *
 * Closed by default: with no trusted peer and no token, a remote peer holds no scope — it may
 * run what needs none (the TaskQueue `status` op, the MCP handshake, a tools/list that shows it
 * nothing). Access comes from
 *   - the PeerId the transport proved (Noise), listed with auth_policy_add_peer, or
 *   - the shared token, presented by the caller wherever its transport carries one (a TaskQueue
 *     message's "token", initialize params, a frame's top-level "token"). The policy gets the
 *     token only from its caller (config reads IPFS_ACCELERATE_PY_TASK_P2P_TOKEN /
 *     IPFS_DATASETS_PY_TASK_P2P_TOKEN); it is trimmed of blanks like the Python service's strip().
 *     Tokens are compared in constant time: both sides are hashed with a per-process random
 *     BLAKE2b key (so the time does not depend on the length either) and the digests compared
 *     with sodium_memcmp; the token itself is not kept.
 *
 * Ownership: built at start-up on one thread, read-only afterwards (safe to share between
 * threads). The contexts it fills are plain values (auth.h). */
#ifndef PEERMCP_AUTH_POLICY_H
#define PEERMCP_AUTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"

#define AUTH_MAX_TOKEN 4096 /* longer presented tokens are refused without hashing */

typedef struct auth_policy auth_policy;

/* NULL on ENOMEM (or when libsodium cannot initialise). */
auth_policy *auth_policy_new(void);
void auth_policy_free(auth_policy *p);
/* Sets the shared token and the scopes it grants (NULL → AUTH_DEFAULT_MASK). NULL or a token
 * that is empty after trimming blanks means none. 0, -EINVAL (longer than AUTH_MAX_TOKEN). */
int auth_policy_set_token(auth_policy *p, const char *token, const auth_scopes *scopes)
    __attribute__((warn_unused_result));
/* Grants scopes (NULL → AUTH_DEFAULT_MASK) to a PeerId (added to what it already has).
 * 0, -EINVAL (not a PeerId: empty, too long, not alphanumeric), -ENOMEM. */
int auth_policy_add_peer(auth_policy *p, const char *peer_id, const auth_scopes *scopes)
    __attribute__((warn_unused_result));
/* Scopes every remote peer gets without any credential (default: none). For tests and for
 * operators who really want an open mesh. */
void auth_policy_set_anonymous(auth_policy *p, const auth_scopes *scopes);
bool auth_policy_has_token(const auth_policy *p);
size_t auth_policy_peer_count(const auth_policy *p);

/* A remote peer whose PeerId the transport proved (NULL or "" when unknown; a PeerId over
 * AUTH_MAX_PEER_ID is dropped): kind peer, the anonymous grant plus its trusted_peers scopes
 * (subject "trusted_peer" when listed). p may be NULL (closed). */
void auth_policy_peer_ctx(const auth_policy *p, const char *peer_id, auth_ctx *out);
/* Constant-time check of a presented token. False when no token is configured. */
bool auth_policy_token_ok(const auth_policy *p, const char *token);
/* When `token` is the shared token: adds its scopes to *a, and a remote context becomes kind
 * token with subject "token" (the PeerId stays); returns true. Otherwise *a is unchanged. */
bool auth_policy_present_token(const auth_policy *p, const char *token, auth_ctx *a);

#endif
