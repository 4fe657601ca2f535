/* policy.h — who may do what: trusted PeerIds (each with its scopes), the shared token, JWTs
 * (through the validator of jwt.h) and the anonymous grant (p2p_tasks_spec.md §4, fixing
 * §12.1–12.3; issue 13).
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
 * A credential is presented as one string, wherever a transport carries one (a TaskQueue
 * message's "token" or "jwt", initialize params "token", a frame's top-level "token", an HTTP
 * Bearer token): auth_policy_present tells the shared token from a JWT and checks it. The rule
 * for a JWT bound to a PeerId ("peer_id" or "cnf": {"peer_id"} claim): it is accepted only from
 * a transport that proved that PeerId (Noise); with require_peer_binding, a JWT presented over
 * a libp2p transport must be bound to the PeerId that presents it.
 *
 * Ownership: built at start-up on one thread, read-only afterwards (safe to share between
 * threads); the JWT validator is borrowed (it must outlive the policy) and locks on its own.
 * The contexts it fills are plain values (auth.h). */
#ifndef PEERMCP_AUTH_POLICY_H
#define PEERMCP_AUTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"
#include "auth/jwt.h"

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
/* When `token` is the shared token or a valid JWT: applies it to *a (auth_policy_present) and
 * returns true. Otherwise *a is unchanged. */
bool auth_policy_present_token(const auth_policy *p, const char *token, auth_ctx *a);

/* JWT validation (NULL: off). The validator is borrowed. */
void auth_policy_set_jwt(auth_policy *p, auth_jwt *jwt, bool require_peer_binding);
auth_jwt *auth_policy_jwt(const auth_policy *p);
/* Something a presented credential could be checked against: the shared token or JWTs. */
bool auth_policy_has_credentials(const auth_policy *p);

typedef enum {
  AUTH_PRESENT_IGNORED = 0, /* nothing to check it against (no token mode, not a JWT or JWTs
                               off): *a unchanged; Python clients attach a token everywhere */
  AUTH_PRESENT_OK,          /* accepted: *a raised */
  AUTH_PRESENT_REFUSED,     /* a credential that is not valid: *a unchanged, *reason and
                               *detail say why */
} auth_present_result;

/* Presents a credential (NUL-terminated) for the caller *a, at the current time:
 *   - the shared token (constant time): its scopes are added; a remote context becomes kind
 *     token, subject "token" (the PeerId stays);
 *   - else, with JWTs on and a credential shaped like one: verified (jwt.h); valid → kind jwt,
 *     subject / issuer / expires_at from the token, its scopes added to what *a holds, the
 *     PeerId kept; invalid → REFUSED (reason invalid_credential, or expired; detail the
 *     validator's status name, or "peer_mismatch" / "unbound_token" for the binding rule);
 *   - else, with a shared token configured → REFUSED (invalid_credential, "bad_token");
 *   - else IGNORED.
 * reason / detail may be NULL. A JWT whose sub or iss does not fit the context is refused
 * (the validator bounds them already). */
auth_present_result auth_policy_present(const auth_policy *p, const char *credential, auth_ctx *a,
                                        auth_reason *reason, const char **detail);
/* The same for a JWT only (the HTTP Bearer token: the shared token is a libp2p compatibility
 * mode). IGNORED only when JWTs are off; anything else that is not a valid JWT is REFUSED. */
auth_present_result auth_policy_present_jwt(const auth_policy *p, const char *credential, auth_ctx *a,
                                            auth_reason *reason, const char **detail);

#endif
